#![no_main]
//! Any string as an image reference: every parser must return a value or an error, never panic,
//! and a parsed reference must print back to a string that parses to the same reference.
use libfuzzer_sys::fuzz_target;
use mirrorscope_core::reference::ImageReference;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = ImageReference::parse_unnormalized(s);
    let _ = ImageReference::parse_canonical(s);
    if let Ok(r) = ImageReference::parse_docker(s) {
        let again = ImageReference::parse_canonical(r.as_str()).expect("normalised form is canonical");
        assert_eq!(again, r);
        let _ = (r.domain(), r.path(), r.tag(), r.digest());
    }
});
