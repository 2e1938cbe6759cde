#![no_main]
//! Any bytes as the input objects of `mirrorscope render` (YAML, JSON, multi-document, List),
//! for every OCP release family: reading, validating and rendering must never panic, and a
//! rendering's TOML must load in the registries engine whenever its strings passed the CRD
//! patterns (checked by the unit tests; here only the no-panic property).
use libfuzzer_sys::fuzz_target;
use mirrorscope_core::openshift::{parse_str, render, OcpVersion, ParseOptions, RenderOptions};

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let version = OcpVersion::new(4, 10 + u32::from(first % 16));
    let release_image = (first & 0x80 != 0).then(|| "quay.io/openshift-release-dev/ocp-release:4.19.0".to_string());
    let set = parse_str(text, "fuzz.yaml", &ParseOptions { version });
    let _ = render(&set.input, &RenderOptions { ocp_version: version, release_image });
});
