//! `mirrorscope render` end to end: files and directories in, registries.conf on stdout or a
//! node-root tree under --output-dir, exit 3 with MCO's reason on refusal, exit 1 with field
//! paths for objects the API server rejects, explanations for --image.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mirrorscope_core::cimage_version::CImageVersion;
use mirrorscope_core::registries::{parse_config_str, FileKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures/render")
        .join(name)
}

fn fixture_input(name: &str) -> PathBuf {
    let dir = fixture(name);
    ["input.yaml", "input.json"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
        .unwrap()
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

/// A directory removed when the test ends, passed or failed.
fn tmpdir() -> mirrorscope_e2e::collector::TempDir {
    mirrorscope_e2e::collector::TempDir::new("render-cli")
}

fn mirrorscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mirrorscope"))
        .arg("render")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Splits fixture 06 over a directory (two documents in two files, plus files to ignore) and
/// expects exactly the fixture's registries.conf on stdout.
#[test]
fn directory_input_prints_registries_conf() {
    let dir = tmpdir();
    let text = read(fixture_input("06_image_config_nested_propagation"));
    let (image, idms) = text.split_once("---\n").unwrap();
    std::fs::write(dir.join("b-mirrors.yml"), idms).unwrap();
    std::fs::write(dir.join("a-image.yaml"), image).unwrap();
    std::fs::write(dir.join("notes.md"), "not: [valid").unwrap();
    std::fs::create_dir(dir.join("sub.yaml")).unwrap();
    let rel = "quay.io/openshift-release-dev/ocp-release@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let o = mirrorscope(&["-f", dir.to_str().unwrap(), "--release-image", rel]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let want = read(fixture(
        "06_image_config_nested_propagation/out-4.19/etc/containers/registries.conf",
    ));
    assert_eq!(stdout(&o), want);
    assert!(
        stderr(&o).contains("containerRuntimeSearchRegistries"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn output_dir_is_a_node_root() {
    let out = tmpdir();
    let o = mirrorscope(&[
        "-f",
        fixture_input("06_image_config_nested_propagation")
            .to_str()
            .unwrap(),
        "--ocp-version",
        "4.14",
        "--output-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let want = fixture("06_image_config_nested_propagation/out-4.14");
    for rel in [
        "etc/containers/registries.conf",
        "etc/containers/policy.json",
        "etc/containers/registries.conf.d/01-image-searchRegistries.conf",
    ] {
        assert_eq!(read(out.join(rel)), read(want.join(rel)), "{rel}");
    }
}

#[test]
fn refusal_exits_3_with_mcos_reason() {
    let o = mirrorscope(&[
        "-f",
        fixture_input("10_conflict_idms_idms").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    assert!(
        err.contains("conflicting mirrorSourcePolicy is set for the same source \"registry.example.com/app\" in imagedigestmirrorsets, imagetagmirrorsets, or imagecontentsourcepolicies"),
        "{err}"
    );
    assert!(
        err.contains(
            "Error syncing image config openshift-config: could not Create/Update MachineConfig"
        ),
        "{err}"
    );
    let o = mirrorscope(&[
        "-f",
        fixture_input("10_conflict_idms_idms").to_str().unwrap(),
        "--ocp-version",
        "4.13",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("in imagedigestmirrorsets and/or imagetagmirrorsets"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn invalid_objects_exit_1_with_field_paths() {
    let o = mirrorscope(&["-f", fixture_input("29_invalid_fields").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("ImageDigestMirrorSet/bad: spec.imageDigestMirrors[0].mirrors[0]: Invalid value: \"mirror.example.com/ubi9:latest\""), "{err}");
    assert!(
        err.contains("spec.imageDigestMirrors[1].source: Required value"),
        "{err}"
    );
    assert_eq!(stdout(&o), "");
}

#[test]
fn nothing_to_write_prints_nothing() {
    let o = mirrorscope(&[
        "-f",
        fixture_input("18_empty_image_config").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("MCO writes no /etc/containers/registries.conf"),
        "{}",
        stderr(&o)
    );
    let o = mirrorscope(&[
        "-f",
        fixture_input("08_allowed_registries_only")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("/etc/containers/policy.json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn standard_input() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorscope"))
        .args(["render", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = read(fixture_input("31_json_list_from_oc"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        read(fixture(
            "31_json_list_from_oc/out-4.19/etc/containers/registries.conf"
        ))
    );
}

#[test]
fn legacy_family_and_unknown_kinds() {
    let o = mirrorscope(&[
        "-f",
        fixture_input("20_icsp_legacy_format").to_str().unwrap(),
        "--ocp-version",
        "4.12",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        read(fixture(
            "20_icsp_legacy_format/out-4.12/etc/containers/registries.conf"
        ))
    );
    let o = mirrorscope(&[
        "-f",
        fixture_input("30_list_with_unknown_kind").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("skipped ConfigMap/foo"),
        "{}",
        stderr(&o)
    );
    let o = mirrorscope(&[
        "-f",
        fixture_input("20_icsp_legacy_format").to_str().unwrap(),
        "--ocp-version",
        "3.11",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn traps_are_warned_with_object_field_and_fix() {
    let o = mirrorscope(&[
        "-f",
        fixture_input("03_never_contact_source_sorted")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(
        err.contains("warning: ImageDigestMirrorSet/redhat: spec.imageDigestMirrors[0].mirrorSourcePolicy: NeverContactSource only on an ImageDigestMirrorSet"),
        "{err}"
    );
    assert!(err.contains("\n  fix: "), "{err}");
}

/// `--image` appends the explanation as comments, so stdout stays a registries.conf.
#[test]
fn image_explanations_follow_the_file() {
    let o = mirrorscope(&[
        "-f",
        fixture_input("03_never_contact_source_sorted").to_str().unwrap(),
        "--image",
        "registry.redhat.io/ubi9/ubi:latest",
        "registry.redhat.io/ubi9/ubi@sha256:1111111111111111111111111111111111111111111111111111111111111111",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let conf = read(fixture(
        "03_never_contact_source_sorted/out-4.19/etc/containers/registries.conf",
    ));
    assert!(out.starts_with(&conf), "{out}");
    let comments = &out[conf.len()..];
    assert!(
        comments.lines().all(|l| l.is_empty() || l.starts_with('#')),
        "{comments}"
    );
    assert!(
        comments.contains("# registry.redhat.io/ubi9/ubi:latest"),
        "{comments}"
    );
    assert!(
        comments.contains("mirror.corp.example:8443/redhat/ubi9/ubi@sha256:1111"),
        "{comments}"
    );
    assert!(comments.contains("BLOCKED"), "{comments}");
    let parsed = parse_config_str(&out, "stdout", FileKind::Main, CImageVersion::LATEST);
    assert!(parsed.is_ok(), "{parsed:?}");
}

#[test]
fn json_report() {
    let o = mirrorscope(&[
        "-f",
        fixture_input("10_conflict_idms_idms").to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["ocp_version"], "4.19");
    assert!(v["refusal"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("conflicting mirrorSourcePolicy"));
    assert!(v.get("rendering").is_none());

    let o = mirrorscope(&[
        "-f",
        fixture_input("03_never_contact_source_sorted")
            .to_str()
            .unwrap(),
        "-o",
        "json",
        "--image",
        "registry.redhat.io/ubi9/ubi:latest",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let files = v["rendering"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        files[0]["contents"].as_str().unwrap(),
        read(fixture(
            "03_never_contact_source_sorted/out-4.19/etc/containers/registries.conf"
        ))
    );
    let codes: Vec<&str> = v["rendering"]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"never-contact-idms-only"), "{codes:?}");
    assert_eq!(v["explanations"][0]["sources"][0]["blocked"], true);

    let o = mirrorscope(&[
        "-f",
        fixture_input("29_invalid_fields").to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["input_errors"].as_array().unwrap().len(), 7);
}
