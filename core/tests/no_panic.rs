//! Many random and mutated inputs through the reference parser and the registries.conf engine:
//! every one must give a value or an error, never a panic. (The cargo-fuzz targets in fuzz/ go
//! further; this keeps a cheap version in every test run.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mirrorscope_core::cimage_version::CImageVersion;
use mirrorscope_core::reference::ImageReference;
use mirrorscope_core::registries::{parse_config_str, EffectiveConfig, FileKind};

mod common;
use common::Rng;

const SEEDS: &[&str] = &[
    "[[registry]]\nprefix = \"*.example.com\"\n[[registry.mirror]]\nlocation = \"m.local/ex\"\npull-from-mirror = \"tag-only\"\n",
    "unqualified-search-registries = [\"a.io\"]\nshort-name-mode = \"enforcing\"\n[aliases]\nx = \"quay.io/x\"\n",
    "[registries.search]\nregistries = [\"s.io\"]\n[registries.block]\nregistries = [\"b.io/\"]\n",
    "[[registry]]\nlocation = \"r:5001\"\nblocked = true\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m:5002/\"\ninsecure = true\n",
];
const ALPHABET: &[u8] = b"abc.:/@*-_[]=\"\n #09AZ";

fn mutate(rng: &mut Rng, s: &str) -> String {
    let mut b = s.as_bytes().to_vec();
    for _ in 0..1 + rng.below(6) {
        match rng.below(3) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b.remove(i);
            }
            1 => {
                let i = rng.below(b.len() + 1);
                b.insert(i, ALPHABET[rng.below(ALPHABET.len())]);
            }
            _ if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = ALPHABET[rng.below(ALPHABET.len())];
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

#[test]
fn mutated_configs_never_panic() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut parsed = 0;
    for i in 0..20_000 {
        let text = mutate(&mut rng, SEEDS[i % SEEDS.len()]);
        for version in [CImageVersion::V5_23, CImageVersion::LATEST] {
            for kind in [FileKind::Main, FileKind::DropIn] {
                if let Ok(f) = parse_config_str(&text, "/x.conf", kind, version) {
                    parsed += 1;
                    let cfg = EffectiveConfig::from_main_file(f);
                    let _ = cfg.canonical_sha256();
                    for img in ["a.example.com:5000/ns/img:1", "r:5001/x@sha256:0000000000000000000000000000000000000000000000000000000000000000", "x", "b.io/y"] {
                        if let Ok(r) = ImageReference::parse_docker(img) {
                            let _ = cfg.pull_sources(&r);
                        }
                        let _ = cfg.resolve_short_name(img);
                    }
                }
            }
        }
    }
    // The mutations must leave many configs valid, or this test would exercise only the parser.
    assert!(parsed > 10_000, "only {parsed} mutated configs parsed");
}

#[test]
fn mutated_references_never_panic_and_round_trip() {
    let mut rng = Rng(0xC0FF_EE00_0000_0042);
    let seeds = ["docker.io/library/nginx:1.25.3", "localhost:5000/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "nginx", "a.b-c_d/e__f---g:tag.1"];
    let mut ok = 0;
    for i in 0..50_000 {
        let s = mutate(&mut rng, seeds[i % seeds.len()]);
        let _ = ImageReference::parse_unnormalized(&s);
        if let Ok(r) = ImageReference::parse_docker(&s) {
            ok += 1;
            assert_eq!(
                ImageReference::parse_canonical(r.as_str()).as_ref(),
                Ok(&r),
                "{s}"
            );
        }
    }
    assert!(ok > 5_000, "only {ok} mutated references parsed");
}
