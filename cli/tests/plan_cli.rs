//! `mirrorscope plan` as a user runs it: the diff of what MCO writes, the MCD's disruption,
//! `--merge`, and MCO's refusal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

const CURRENT: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: quay}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/ns\n    mirrors: [mirror.example.com/ns]\n";
const NEW_IDMS: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: nvidia}\nspec:\n  imageDigestMirrors:\n  - source: nvcr.io/nvidia\n    mirrors: [mirror.example.com/nvidia]\n";
const ITMS: &str = "apiVersion: config.openshift.io/v1\nkind: ImageTagMirrorSet\nmetadata: {name: hub}\nspec:\n  imageTagMirrors:\n  - source: docker.io\n    mirrors: [mirror.example.com/docker]\n";
const QUAY_NEVER: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: quay}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/ns\n    mirrors: [mirror.example.com/ns]\n    mirrorSourcePolicy: NeverContactSource\n";
const CONFLICT: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata: {name: other}\nspec:\n  imageDigestMirrors:\n  - source: quay.io/ns\n    mirrors: [mirror2.example.com/ns]\n    mirrorSourcePolicy: AllowContactingSource\n";

/// A test's input files, in a directory removed when the test ends, passed or failed.
struct Files(mirrorscope_e2e::collector::TempDir);

impl Files {
    fn new() -> Files {
        Files(mirrorscope_e2e::collector::TempDir::new("plan-cli"))
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

fn plan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mirrorscope"))
        .arg("plan")
        .args(args)
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn disruption_follows_the_mcd() {
    let files = Files::new();
    let current = files.file("current.yaml", CURRENT);
    // A new IDMS (digest-only mirrors): CRI-O reload, no drain.
    let o = plan(&[
        "--current",
        &current,
        "-f",
        &files.file("new.yaml", NEW_IDMS),
        "--merge",
        "-o",
        "json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["disruption"]["action"], "reload-crio");
    assert_eq!(v["disruption"]["drain"], false);
    let diff = v["files"][0]["diff"].as_str().unwrap();
    assert!(diff.contains("+  location = \"nvcr.io/nvidia\""), "{diff}");
    assert!(
        !diff.contains("-  location = \"quay.io/ns\""),
        "--merge keeps the current IDMS: {diff}"
    );
    // Without --merge -f is the whole new set: quay.io/ns goes away, so the node drains.
    let o = plan(&[
        "--current",
        &current,
        "-f",
        &files.file("new.yaml", NEW_IDMS),
        "-o",
        "json",
    ]);
    let v = json(&o);
    assert_eq!(v["disruption"]["action"], "drain-and-reload-crio");
    assert!(v["disruption"]["reasons"][0]
        .as_str()
        .unwrap()
        .contains("registry quay.io/ns was removed"));
    // An ITMS (tag mirrors) drains.
    let o = plan(&[
        "--current",
        &current,
        "-f",
        &files.file("itms.yaml", ITMS),
        "--merge",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("node disruption: drain-and-reload-crio"),
        "{text}"
    );
    // NeverContactSource on an existing source changes `blocked`: drain.
    let o = plan(&[
        "--current",
        &current,
        "-f",
        &files.file("never.yaml", QUAY_NEVER),
        "--merge",
        "-o",
        "json",
    ]);
    assert_eq!(json(&o)["disruption"]["action"], "drain-and-reload-crio");
    assert!(json(&o)["disruption"]["reasons"][0]
        .as_str()
        .unwrap()
        .contains("blocked of registry quay.io/ns changed to true"));
    // The same objects again: nothing happens.
    let o = plan(&["--current", &current, "-f", &current]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("node disruption: none"));
}

#[test]
fn refusal_exits_3_and_bad_input_is_named() {
    let files = Files::new();
    let current = files.file("current2.yaml", QUAY_NEVER);
    let o = plan(&[
        "--current",
        &current,
        "-f",
        &files.file("conflict.yaml", CONFLICT),
        "--merge",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("conflicting mirrorSourcePolicy"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = plan(&[
        "--current",
        &current,
        "-f",
        Path::new("/nonexistent/objects.yaml").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/objects.yaml"));
}

#[test]
fn an_inventory_replays_against_both_renderings_and_names_the_workloads() {
    let files = Files::new();
    let current = files.file("inv-current.yaml", CURRENT);
    let pods = files.file(
        "inv-pods.json",
        r#"{"kind":"List","items":[
          {"kind":"Pod","metadata":{"name":"web","namespace":"shop"},"spec":{"containers":[{"name":"c","image":"docker.io/library/nginx:1.25.3"}]}},
          {"kind":"Deployment","metadata":{"name":"api","namespace":"shop"},"spec":{"template":{"spec":{"containers":[{"name":"c","image":"quay.io/ns/api@sha256:0123456789012345678901234567890123456789012345678901234567890123"}]}}}},
          {"kind":"Pod","metadata":{"name":"other","namespace":"ops"},"spec":{"containers":[{"name":"c","image":"ghcr.io/x/y:1"}]}}]}"#,
    );
    // docker.io gains a tag mirror; quay.io/ns turns NeverContactSource (the source is blocked
    // after its mirror); ghcr.io is untouched.
    let o = plan(&[
        "--current",
        &current,
        "-f",
        &files.file("inv-itms.yaml", ITMS),
        "-f",
        &files.file("inv-never.yaml", QUAY_NEVER),
        "--merge",
        "--images-from",
        &pods,
        "-o",
        "json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    let affected = v["affected"].as_array().unwrap();
    let by = |image: &str| affected.iter().find(|a| a["image"] == image);
    let nginx = by("docker.io/library/nginx:1.25.3").unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(nginx["used_by"], serde_json::json!(["shop/Pod/web"]));
    assert_eq!(
        nginx["after"],
        "mirror.example.com/docker/library/nginx:1.25.3"
    );
    assert_eq!(nginx["change"], "served by a mirror instead of the source");
    let api = by(
        "quay.io/ns/api@sha256:0123456789012345678901234567890123456789012345678901234567890123",
    )
    .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(api["used_by"], serde_json::json!(["shop/Deployment/api"]));
    assert_eq!(
        api["change"],
        "the source is blocked from now on: only the mirrors can serve it"
    );
    assert!(by("ghcr.io/x/y:1").is_none(), "{v:#}");

    let o = plan(&[
        "--current",
        &current,
        "-f",
        &files.file("inv-itms2.yaml", ITMS),
        "--merge",
        "--images-from",
        &pods,
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("images the change affects: 1"), "{text}");
    assert!(text.contains("docker.io/library/nginx:1.25.3: served by a mirror instead of the source (docker.io/library/nginx:1.25.3 -> mirror.example.com/docker/library/nginx:1.25.3, used by shop/Pod/web)"), "{text}");

    let o = plan(&[
        "--current",
        &current,
        "-f",
        &files.file("inv-itms3.yaml", ITMS),
        "--images-from",
        &files.file("inv-bad.txt", "a=\n"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("inv-bad.txt:1: expected source=destination")
    );
}
