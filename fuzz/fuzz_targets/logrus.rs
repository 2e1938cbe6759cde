#![no_main]
//! logrus grammar and CRI-O line classification: any input, no panic.
use libfuzzer_sys::fuzz_target;
use mirrorscope_core::journal::{crio, logrus, timefmt};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(line) = logrus::parse_logrus(&text) {
        if let Some(t) = line.time.as_deref() {
            let _ = timefmt::parse_logrus_time(t);
        }
        let _ = crio::classify_message(&line.msg, line.field("id").map(str::to_owned));
    }
    let _ = logrus::raw_msg(&text);
    if let Ok(Some(crio::CrioEvent::PulledImage { reference, .. })) = crio::parse_crio_line(&text) {
        let _ = crio::pulled_value(&reference);
    }
});
