#![no_main]
//! containers/image error splitter and classifier: no panic, and every piece is a substring.
use libfuzzer_sys::fuzz_target;
use mirrorscope_core::journal::cimage_error::{classify_error, split_error};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first line lists the anchors (space separated); the rest is the error text.
    let (anchors, error) = text.split_once('\n').unwrap_or(("", &text));
    let anchors: Vec<&str> = anchors.split(' ').filter(|a| !a.is_empty()).collect();
    for a in split_error(error, &anchors) {
        assert!(error.contains(a.error.as_str()));
        assert_eq!(a.class, classify_error(&a.error));
    }
    let _ = split_error(error, &[]);
});
