//! Debian's skopeo (containers/image 5.23.1) accepts every registries.conf (and search-registries
//! drop-in) that `mirrorscope render` produces for the fixture inputs, on every OCP family: a
//! pull of `127.0.0.1:9/x/y:1` gets as far as the network (connection refused) instead of
//! failing on the configuration. Conversely, the renderings `render` flags as `cimage-rejects`
//! (MCO writes a file CRI-O cannot load) must fail in skopeo on the configuration.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use mirrorscope_core::openshift::{
    parse_str, render, OcpVersion, ParseOptions, RenderOptions, REGISTRIES_CONF, SEARCH_DROP_IN,
};

const SKOPEO: &str = "/usr/bin/skopeo";

fn fixture_inputs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures/render");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .flat_map(|d| ["input.yaml", "input.json"].map(|n| d.join(n)))
        .filter(|p| p.exists())
        .collect();
    out.sort();
    out
}

/// The distinct (registries.conf, drop-in) pairs rendered from the fixtures.
fn renderings() -> BTreeSet<(String, Option<String>, bool)> {
    let mut out = BTreeSet::new();
    for input in fixture_inputs() {
        let text = std::fs::read_to_string(&input).unwrap();
        for minor in [12, 13, 16, 18, 19, 23] {
            let version = OcpVersion::new(4, minor);
            let set = parse_str(&text, "input", &ParseOptions { version });
            if !set.errors.is_empty() {
                continue;
            }
            let options = RenderOptions {
                ocp_version: version,
                release_image: None,
            };
            if let Ok(r) = render(&set.input, &options) {
                if let Some(conf) = r.registries_conf() {
                    let flagged = r.notes.iter().any(|n| n.code == "cimage-rejects");
                    let drop_in = r.file(SEARCH_DROP_IN).map(str::to_string);
                    out.insert((conf.to_string(), drop_in, flagged));
                }
            }
        }
    }
    out
}

#[test]
fn skopeo_accepts_every_rendered_registries_conf() {
    assert!(
        Path::new(SKOPEO).exists(),
        "{SKOPEO} is missing: install Debian's skopeo (tests/deps.txt)"
    );
    let renderings = renderings();
    assert!(
        renderings.len() >= 30,
        "only {} distinct renderings",
        renderings.len()
    );
    let base =
        std::env::temp_dir().join(format!("mirrorscope-render-skopeo-{}", std::process::id()));
    let mut failures = Vec::new();
    let mut flagged_seen = 0;
    for (i, (conf, drop_in, flagged)) in renderings.iter().enumerate() {
        let dir = base.join(i.to_string());
        let home = dir.join("home");
        let drop_dir = home.join(".config/containers/registries.conf.d");
        std::fs::create_dir_all(&drop_dir).unwrap();
        let conf_path = dir.join("registries.conf");
        std::fs::write(&conf_path, conf).unwrap();
        if let Some(d) = drop_in {
            std::fs::write(drop_dir.join("01-image-searchRegistries.conf"), d).unwrap();
        }
        let out = Command::new(SKOPEO)
            .env("HOME", &home)
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .arg("--registries-conf")
            .arg(&conf_path)
            .args(["inspect", "--raw", "docker://127.0.0.1:9/x/y:1"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {SKOPEO}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reached_network = stderr.contains("pinging container registry 127.0.0.1:9")
            && stderr.contains("connection refused");
        let config_error = stderr.contains("loading registries configuration");
        let ok = if *flagged {
            flagged_seen += 1;
            !out.status.success() && config_error && !reached_network
        } else {
            !out.status.success() && reached_network && !config_error
        };
        if !ok {
            failures.push(format!(
                "{REGISTRIES_CONF} #{i} (flagged {flagged}):\n{conf}\ndrop-in: {drop_in:?}\nskopeo: {stderr}"
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    assert!(
        flagged_seen >= 1,
        "no rendering flagged cimage-rejects was checked"
    );
    assert!(
        failures.is_empty(),
        "{} of {} renderings failed:\n{}",
        failures.len(),
        renderings.len(),
        failures.join("\n")
    );
}
