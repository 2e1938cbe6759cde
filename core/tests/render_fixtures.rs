//! Fixture pairs for `openshift::render`: each directory under `fixtures/render/` holds the input
//! objects (`input.yaml` or `input.json`) and a `case.toml` with one `[[run]]` per OCP release:
//! the expected files as a node root (`out-<ocp>/etc/containers/…`; no directory = no files),
//! or MCO's exact refusal text, or the API server's field errors. Expected outputs were written
//! by hand from the MCO's `pkg/controller/container-runtime-config` (see `generate.py`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mirrorscope_core::openshift::{parse_str, render, OcpVersion, ParseOptions, RenderOptions};
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
    refusal: Option<String>,
    invalid: Option<Vec<String>>,
    #[serde(default)]
    notes: Vec<String>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    skipped: Vec<String>,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/render")
}

fn fixture_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn input_of(dir: &Path) -> (String, String) {
    for name in ["input.yaml", "input.json"] {
        let p = dir.join(name);
        if p.exists() {
            return (std::fs::read_to_string(&p).unwrap(), name.to_string());
        }
    }
    panic!("{}: no input.yaml or input.json", dir.display());
}

/// Every file under `root`, keyed by its host path (`/etc/...`).
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(format!("/{rel}"), std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

fn check_run(dir: &Path, case: &Case, run: &Run) -> Result<(), String> {
    let version: OcpVersion = run.ocp.parse().map_err(|e| format!("{e}"))?;
    let (text, origin) = input_of(dir);
    let set = parse_str(&text, &origin, &ParseOptions { version });
    let skipped: Vec<String> = set
        .skipped
        .iter()
        .map(|s| format!("{}/{}", s.kind, s.name))
        .collect();
    for want in &run.skipped {
        if !skipped.contains(want) {
            return Err(format!(
                "expected {want} to be skipped, skipped: {skipped:?}"
            ));
        }
    }
    if let Some(invalid) = &run.invalid {
        let errors: Vec<String> = set.errors.iter().map(|e| e.to_string()).collect();
        if errors.len() != invalid.len() {
            return Err(format!(
                "expected {} input errors, got {errors:#?}",
                invalid.len()
            ));
        }
        for want in invalid {
            if !errors.iter().any(|e| e.contains(want.as_str())) {
                return Err(format!(
                    "no input error contains {want:?}; errors: {errors:#?}"
                ));
            }
        }
        return Ok(());
    }
    if !set.errors.is_empty() {
        return Err(format!("unexpected input errors: {:#?}", set.errors));
    }
    let options = RenderOptions {
        ocp_version: version,
        release_image: case.release_image.clone(),
    };
    let result = render(&set.input, &options);
    let notes = match (&result, &run.refusal) {
        (Err(refusal), Some(want)) => {
            if &refusal.reason != want {
                return Err(format!("refusal {:?}, expected {want:?}", refusal.reason));
            }
            if !refusal
                .log
                .starts_with("Error syncing image config openshift-config: ")
                || !refusal.log.ends_with(want.as_str())
            {
                return Err(format!("unexpected log line {:?}", refusal.log));
            }
            refusal.notes.clone()
        }
        (Err(refusal), None) => return Err(format!("unexpected refusal: {}", refusal.reason)),
        (Ok(r), Some(want)) => {
            return Err(format!(
                "expected refusal {want:?}, rendered {:#?}",
                r.files
            ))
        }
        (Ok(r), None) => {
            let expect = run
                .expect
                .as_deref()
                .ok_or("run has neither expect, refusal nor invalid")?;
            let want = tree(&dir.join(expect));
            let got: BTreeMap<String, String> = r
                .files
                .iter()
                .map(|f| (f.path.clone(), f.contents.clone()))
                .collect();
            if want.keys().collect::<Vec<_>>() != got.keys().collect::<Vec<_>>() {
                return Err(format!(
                    "files differ: expected {:?}, rendered {:?}",
                    want.keys().collect::<Vec<_>>(),
                    got.keys().collect::<Vec<_>>()
                ));
            }
            for (path, want) in &want {
                let got = &got[path];
                if got != want {
                    return Err(format!(
                        "{path} differs.\n--- expected\n{want}\n--- rendered\n{got}\n---"
                    ));
                }
            }
            r.notes.clone()
        }
    };
    let all: Vec<&str> = notes
        .iter()
        .chain(set.notes.iter())
        .map(|n| n.code.as_str())
        .collect();
    for want in &run.notes {
        if !all.contains(&want.as_str()) {
            return Err(format!("note {want} missing; notes: {all:?}"));
        }
    }
    for unwanted in &run.absent {
        if all.contains(&unwanted.as_str()) {
            return Err(format!("note {unwanted} present; notes: {all:?}"));
        }
    }
    Ok(())
}

#[test]
fn render_fixtures() {
    let dirs = fixture_dirs();
    assert!(dirs.len() >= 25, "only {} fixtures", dirs.len());
    let mut failures = Vec::new();
    let mut runs = 0;
    for dir in &dirs {
        let case: Case = toml::from_str(&std::fs::read_to_string(dir.join("case.toml")).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert!(!case.run.is_empty(), "{}: no run", dir.display());
        for run in &case.run {
            runs += 1;
            if let Err(e) = check_run(dir, &case, run) {
                let name = dir.file_name().unwrap().to_string_lossy();
                failures.push(format!("{name} @ {}: {e}", run.ocp));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Each family is covered by rendered (not only refused) fixtures.
#[test]
fn every_family_is_covered() {
    let mut families = std::collections::BTreeSet::new();
    for dir in fixture_dirs() {
        let case: Case =
            toml::from_str(&std::fs::read_to_string(dir.join("case.toml")).unwrap()).unwrap();
        for run in case.run.iter().filter(|r| r.expect.is_some()) {
            let v: OcpVersion = run.ocp.parse().unwrap();
            families.insert(format!("{:?}", v.family()));
        }
    }
    assert_eq!(families.len(), 3, "{families:?}");
}
