#![no_main]
//! Any bytes as a registries.conf (main file and drop-in, oldest and newest rules): parsing,
//! merging, hashing and resolving must never panic.
use libfuzzer_sys::fuzz_target;
use mirrorscope_core::cimage_version::CImageVersion;
use mirrorscope_core::reference::ImageReference;
use mirrorscope_core::registries::{parse_config_str, EffectiveConfig, FileKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for version in [CImageVersion::V5_23, CImageVersion::LATEST] {
        for kind in [FileKind::Main, FileKind::DropIn] {
            if let Ok(file) = parse_config_str(text, "/fuzz.conf", kind, version) {
                let cfg = EffectiveConfig::from_main_file(file);
                let _ = cfg.canonical_sha256();
                for r in &cfg.registries {
                    if let Ok(reference) = ImageReference::parse_docker(&format!("{}/x/y:1", r.prefix.trim_start_matches("*."))) {
                        let _ = cfg.pull_sources(&reference);
                    }
                }
            }
        }
    }
});
