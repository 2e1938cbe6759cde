//! Every registries.conf the fixtures render loads in the core registries engine, and `explain`
//! on it gives the pull sources the mirror sets promise: each real mirror of an entry is tried
//! (in the entry's own order when it is the only list for its source), the source comes last,
//! and NeverContactSource blocks it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use mirrorscope_core::cimage_version::CImageVersion;
use mirrorscope_core::explain::explain;
use mirrorscope_core::openshift::{
    parse_str, patterns, render, MirrorEntry, MirrorSourcePolicy, OcpVersion, ParseOptions,
    RenderInput, RenderOptions, Rendering, REGISTRIES_CONF, SEARCH_DROP_IN,
};
use mirrorscope_core::registries::{parse_config_str, EffectiveConfig, FileKind};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    release_image: Option<String>,
    run: Vec<Run>,
}

#[derive(Deserialize)]
struct Run {
    ocp: String,
    expect: Option<String>,
}

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn fixture_runs() -> Vec<(String, RenderInput, OcpVersion, Rendering)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/render");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut out = Vec::new();
    for dir in dirs {
        let case: Case =
            toml::from_str(&std::fs::read_to_string(dir.join("case.toml")).unwrap()).unwrap();
        let input = ["input.yaml", "input.json"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.exists())
            .unwrap();
        let text = std::fs::read_to_string(&input).unwrap();
        for run in case.run.iter().filter(|r| r.expect.is_some()) {
            let version: OcpVersion = run.ocp.parse().unwrap();
            let set = parse_str(&text, "input", &ParseOptions { version });
            let options = RenderOptions {
                ocp_version: version,
                release_image: case.release_image.clone(),
            };
            let rendering = render(&set.input, &options).unwrap();
            let name = format!(
                "{} @ {}",
                dir.file_name().unwrap().to_string_lossy(),
                run.ocp
            );
            out.push((name, set.input, version, rendering));
        }
    }
    assert!(out.len() >= 40, "only {} rendered runs", out.len());
    out
}

fn load(rendering: &Rendering, cimage: CImageVersion) -> Result<EffectiveConfig, String> {
    let main = rendering
        .registries_conf()
        .map(|t| parse_config_str(t, REGISTRIES_CONF, FileKind::Main, cimage));
    let main = main.transpose().map_err(|e| e.to_string())?;
    let drop_in = rendering
        .file(SEARCH_DROP_IN)
        .map(|t| parse_config_str(t, SEARCH_DROP_IN, FileKind::DropIn, cimage));
    let drop_in = drop_in.transpose().map_err(|e| e.to_string())?;
    Ok(EffectiveConfig::from_files(
        main,
        drop_in,
        (
            REGISTRIES_CONF.into(),
            "/etc/containers/registries.conf.d".into(),
        ),
    ))
}

#[test]
fn every_rendering_loads_in_the_engine() {
    let mut loaded = 0;
    let mut rejected = 0;
    for (name, _, version, rendering) in fixture_runs() {
        // Renderings that containers/image refuses are flagged, and only those.
        let flagged = rendering.notes.iter().any(|n| n.code == "cimage-rejects");
        for cimage in [
            CImageVersion::V5_23,
            version.containers_image(),
            CImageVersion::LATEST,
        ] {
            match load(&rendering, cimage) {
                Err(e) if !flagged => {
                    panic!("{name}: containers/image {cimage} rejects the rendering: {e}")
                }
                Ok(_) if flagged => {
                    panic!("{name}: flagged cimage-rejects but containers/image {cimage} loads it")
                }
                _ => {}
            }
        }
        rejected += usize::from(flagged);
        loaded += usize::from(rendering.registries_conf().is_some() && !flagged);
    }
    assert_eq!(rejected, 1, "fixture 40 is the one rendering nodes reject");
    assert!(loaded >= 35, "only {loaded} registries.conf files");
}

/// An image reference under `source` that no nested scope of the fixtures catches.
fn probe(source: &str, digest: bool) -> String {
    let base = match source.strip_prefix("*.") {
        Some(domain) => format!("mirrorscope-probe.{domain}/ns/img"),
        None => format!("{source}/mirrorscope-probe/img"),
    };
    if digest {
        format!("{base}@{DIGEST}")
    } else {
        format!("{base}:v1")
    }
}

/// What `mirror` becomes for the probe of `source`.
fn rewritten(mirror: &str, source: &str, probe: &str) -> String {
    match source.strip_prefix("*.") {
        Some(_) => format!("{mirror}{}", &probe[probe.find('/').unwrap()..]),
        None => format!("{mirror}{}", &probe[source.len()..]),
    }
}

fn check_pool(name: &str, config: &EffectiveConfig, pool: &[&MirrorEntry], digest: bool) -> usize {
    let mut checked = 0;
    for e in pool {
        let real: Vec<&String> = e.mirrors.iter().filter(|m| **m != e.source).collect();
        if real.is_empty() || !patterns::matches_source_pattern(&e.source) {
            continue;
        }
        let image = probe(&e.source, digest);
        let x = explain(config, &image);
        assert!(x.error.is_none(), "{name}: {image}: {:?}", x.error);
        let (last, mirrors) = x
            .sources
            .split_last()
            .unwrap_or_else(|| panic!("{name}: {image}: no sources"));
        assert!(!last.mirror, "{name}: {image}: last source is a mirror");
        assert_eq!(last.reference, image, "{name}: the source is tried last");
        if e.policy == MirrorSourcePolicy::NeverContactSource {
            assert!(
                last.blocked,
                "{name}: {image}: NeverContactSource must block the source"
            );
        }
        let tried: Vec<&str> = mirrors.iter().map(|s| s.reference.as_str()).collect();
        for m in &real {
            let want = rewritten(m, &e.source, &image);
            assert!(
                tried.contains(&want.as_str()),
                "{name}: {image}: mirror {want} not tried; tried {tried:?}"
            );
        }
        let same_source = pool.iter().filter(|o| o.source == e.source).count();
        if same_source == 1 {
            let mut want: Vec<String> = e
                .mirrors
                .iter()
                .map(|m| rewritten(m, &e.source, &image))
                .collect();
            if e.mirrors.last() == Some(&e.source) {
                want.pop();
            }
            assert_eq!(
                tried, want,
                "{name}: {image}: mirror order of the only list for this source"
            );
        }
        checked += 1;
    }
    checked
}

#[test]
fn explain_gives_the_promised_sources() {
    let mut checked = 0;
    for (name, input, version, rendering) in fixture_runs() {
        let flagged = rendering.notes.iter().any(|n| n.code == "cimage-rejects");
        if rendering.registries_conf().is_none() || flagged {
            continue;
        }
        let config = load(&rendering, version.containers_image()).unwrap();
        let mut digest_pool: Vec<&MirrorEntry> =
            input.icsp.iter().flat_map(|s| s.entries.iter()).collect();
        if version.at_least(13) {
            digest_pool.extend(input.idms.iter().flat_map(|s| s.entries.iter()));
        }
        let tag_pool: Vec<&MirrorEntry> =
            input.itms.iter().flat_map(|s| s.entries.iter()).collect();
        checked += check_pool(&name, &config, &digest_pool, true);
        checked += check_pool(&name, &config, &tag_pool, false);
    }
    assert!(checked >= 30, "only {checked} mirror entries checked");
}
