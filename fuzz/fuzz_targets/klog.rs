#![no_main]
//! klog grammar, multi-entry re-assembly and kubelet line classification: no panic.
use libfuzzer_sys::fuzz_target;
use mirrorscope_core::journal::{klog, kubelet};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = klog::parse_klog(&text);
    let _ = kubelet::parse_kubelet_line(&text);
    let _ = kubelet::parse_pulled_message(&text);
    // Treat each input line as a journal entry of one process, as journald would split it.
    let mut r = klog::KlogReassembler::new();
    for line in text.split('\n') {
        if klog::opens_multiline(line) && !klog::is_continuation(line) {
            r.start(Some(1), line);
        } else if let klog::Fed::Complete(whole) = r.feed(Some(1), line) {
            let _ = klog::parse_klog(&whole);
            let _ = kubelet::parse_kubelet_line(&whole);
        }
    }
    for rest in r.drain() {
        let _ = kubelet::parse_kubelet_line(&rest);
    }
});
