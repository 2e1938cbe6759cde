#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // filled in by the work that owns this target
    let _ = data;
});
