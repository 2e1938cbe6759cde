//! `mirrorscope-agent scan` on journals (built by systemd-journal-remote) that end or begin in the
//! middle of a pull: an attempt still pending, a pull whose start lies before the window read
//! (`--since`, a rotated-away file), and containers/image 5.10–5.13 debug logging,
//! which prints every location twice.

use std::process::Command;

use mirrorscope_e2e::journal::{
    agent_bin, at, crio_msg, rfc3339, scratch, write_journal, Entry, Scenario, TimeFormat,
};
use serde_json::Value;

use TimeFormat::{Rfc3339Nano as NANO, Spaced as SPACED};

const CONF: &str = r#"
[[registry]]
prefix = "quay.io/acme"
location = "quay.io/acme"

[[registry.mirror]]
location = "mirror.corp.example.com/acme"
"#;

const ID: &str = "0b7c2d4e-5f60-4a1b-9c8d-7e6f5a4b3c2d";
const DIGEST: &str = "sha256:5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

/// (reference, outcome, error, tries) of each attempt.
fn attempts(r: &Value) -> Vec<(String, String, Value, u64)> {
    r["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["reference"].as_str().unwrap().to_owned(),
                a["outcome"].as_str().unwrap().to_owned(),
                a["error"].clone(),
                a["tries"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn att(r: &str, outcome: &str, tries: u64) -> (String, String, Value, u64) {
    (r.to_owned(), outcome.to_owned(), Value::Null, tries)
}

fn scan_with(s: &Scenario, extra: &[&str]) -> Vec<Value> {
    let mut args = s.prepare();
    args.extend(["-o".to_owned(), "jsonl".to_owned()]);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    mirrorscope_e2e::journal::scan_jsonl(&args)
}

#[test]
fn a_location_still_being_tried_is_pending_not_failed_v134() {
    let mut s = Scenario::new("pending", CONF);
    s.crio(
        "10:00:00.1",
        NANO,
        "Pulling image: quay.io/acme/ledger:7",
        Some(ID),
    );
    s.crio(
        "10:00:00.2",
        NANO,
        "Trying to access \"mirror.corp.example.com/acme/ledger:7\"",
        None,
    );
    let args = s.prepare();
    let run = |format: &str| {
        let mut args = args.clone();
        args.extend(["-o".to_owned(), format.to_owned()]);
        mirrorscope_e2e::journal::scan(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let out = run("jsonl");
    assert!(out.status.success());
    let recs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    assert_eq!(r["outcome"], "in_progress");
    assert_eq!(
        attempts(r),
        [att("mirror.corp.example.com/acme/ledger:7", "pending", 1)]
    );
    assert_eq!(r["served_by"], Value::Null);
    let out = run("table");
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("mirror.corp.example.com/acme/ledger:7 (pending)"),
        "{table}"
    );
    assert!(!table.contains("failed"), "{table}");
}

#[test]
fn an_earlier_location_of_a_pull_in_progress_failed_and_the_last_is_pending_v134() {
    let mut s = Scenario::new("pending-second", CONF);
    s.crio(
        "10:00:00.1",
        NANO,
        "Pulling image: quay.io/acme/ledger:7",
        Some(ID),
    );
    s.crio(
        "10:00:00.2",
        NANO,
        "Trying to access \"mirror.corp.example.com/acme/ledger:7\"",
        None,
    );
    s.crio(
        "10:00:00.3",
        NANO,
        "Trying to access \"quay.io/acme/ledger:7\"",
        None,
    );
    let recs = s.scan();
    assert_eq!(
        attempts(&recs[0]),
        [
            att("mirror.corp.example.com/acme/ledger:7", "failed", 1),
            att("quay.io/acme/ledger:7", "pending", 1),
        ]
    );
}

/// A 1.34 pull served by the mirror: `Pulling` at 10:00:00.1, `Trying` at 10:00:05.2,
/// `Pulled` at 10:00:06.
fn mirror_pull(s: &mut Scenario) {
    s.crio(
        "10:00:00.1",
        NANO,
        "Pulling image: quay.io/acme/ledger:7",
        Some(ID),
    );
    s.crio(
        "10:00:05.2",
        NANO,
        "Trying to access \"mirror.corp.example.com/acme/ledger:7\"",
        None,
    );
    s.crio(
        "10:00:06",
        NANO,
        &format!("Pulled image: quay.io/acme/ledger@{DIGEST}"),
        Some(ID),
    );
}

fn assert_partial_mirror_pull(r: &Value) {
    assert_eq!(r["pull_id"], ID);
    assert_eq!(r["partial"], true);
    assert_eq!(r["started_at"], Value::Null);
    assert_eq!(r["finished_at"], rfc3339(at("10:00:06")));
    assert_eq!(r["outcome"], "pulled");
    assert_eq!(r["served_by"], "mirror.corp.example.com/acme/ledger:7");
    assert_eq!(r["via_mirror"], true);
    assert_eq!(r["digest"], DIGEST);
    assert_eq!(r["node"], "worker-1.example.com");
}

#[test]
fn a_pull_started_before_since_is_a_partial_record() {
    let mut s = Scenario::new("partial-since", CONF);
    mirror_pull(&mut s);
    let since = rfc3339(at("10:00:03"));
    let recs = scan_with(&s, &["--since", &since]);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_partial_mirror_pull(&recs[0]);
    assert_eq!(
        attempts(&recs[0]),
        [att("mirror.corp.example.com/acme/ledger:7", "served", 1)]
    );
    // The whole journal gives the complete record, not marked partial.
    let mut whole = Scenario::new("partial-since-whole", CONF);
    mirror_pull(&mut whole);
    let full = whole.scan();
    assert_eq!(full.len(), 1);
    assert_eq!(full[0]["started_at"], rfc3339(at("10:00:00.1")));
    assert!(full[0].get("partial").is_none(), "{:#}", full[0]);
}

#[test]
fn a_pull_whose_start_was_rotated_away_is_a_partial_record() {
    let mut whole = Scenario::new("partial-rotated", CONF);
    mirror_pull(&mut whole);
    // Only the file written after the rotation is left on the node.
    let dir = scratch("partial-rotated-files");
    let kept = write_journal(&dir, "user-1000@0002", &whole.entries[1..]);
    let conf = dir.join("registries.conf");
    std::fs::write(&conf, CONF).unwrap();
    let recs = mirrorscope_e2e::journal::scan_jsonl(&[
        "--journal-file",
        kept.to_str().unwrap(),
        "--registries-conf",
        conf.to_str().unwrap(),
        "-o",
        "jsonl",
    ]);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_partial_mirror_pull(&recs[0]);
}

#[test]
fn a_pull_open_at_the_checkpoint_is_read_again_whole_not_partial() {
    let mut s = Scenario::new("partial-checkpoint", CONF);
    mirror_pull(&mut s);
    let dir = scratch("partial-checkpoint-dir");
    let journals = dir.join("journal");
    std::fs::create_dir_all(&journals).unwrap();
    let conf = dir.join("registries.conf");
    std::fs::write(&conf, CONF).unwrap();
    let checkpoint = dir.join("checkpoint.json");
    let run = || {
        let out = Command::new(agent_bin())
            .args(["scan", "--journal-dir"])
            .arg(&journals)
            .arg("--registries-conf")
            .arg(&conf)
            .arg("--checkpoint")
            .arg(&checkpoint)
            .args(["-o", "jsonl"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    // An earlier run read only the `Pulling` line and saved its position.
    write_journal(&journals, "system@0001", &s.entries[..1]);
    let first = run();
    assert_eq!(first.len(), 1, "{first:#?}");
    assert_eq!(first[0]["outcome"], "in_progress");
    assert!(checkpoint.exists());
    // The checkpoint points before the open pull's start, so the next run reads it again: the
    // record is whole, not partial (partial is only for starts the agent can no longer read).
    write_journal(&journals, "system@0002", &s.entries[1..]);
    let second = run();
    assert_eq!(second.len(), 1, "{second:#?}");
    assert_eq!(second[0]["outcome"], "pulled");
    assert_eq!(second[0]["started_at"], rfc3339(at("10:00:00.1")));
    assert!(second[0].get("partial").is_none(), "{:#}", second[0]);
}

#[test]
fn a_partial_pull_without_a_trying_line_has_no_known_server() {
    let mut s = Scenario::new("partial-unknown", CONF);
    mirror_pull(&mut s);
    let since = rfc3339(at("10:00:05.5"));
    let recs = scan_with(&s, &["--since", &since]);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    assert_eq!(r["partial"], true);
    assert_eq!(r["started_at"], Value::Null);
    assert_eq!(r["outcome"], "pulled");
    assert_eq!(r["served_by"], Value::Null);
    assert_eq!(r["attempts"], serde_json::json!([]));
    assert_eq!(r["digest"], DIGEST);
}

#[test]
fn a_kubelet_failure_whose_crio_lines_are_missing_is_a_partial_record_v134() {
    let mut s = Scenario::new("partial-kubelet", CONF);
    let err = "unable to pull image or OCI artifact: pull image err: initializing source docker://quay.io/acme/ledger:7: \
               (Mirrors also failed: [mirror.corp.example.com/acme/ledger:7: reading manifest 7 in mirror.corp.example.com/acme/ledger: manifest unknown]): \
               quay.io/acme/ledger:7: reading manifest 7 in quay.io/acme/ledger: manifest unknown; \
               artifact err: get manifest: build image source: (Mirrors also failed: [mirror.corp.example.com/acme/ledger:7: reading manifest 7 in mirror.corp.example.com/acme/ledger: manifest unknown]): \
               quay.io/acme/ledger:7: reading manifest 7 in quay.io/acme/ledger: manifest unknown";
    s.crio(
        "10:00:00.1",
        NANO,
        "Pulling image: quay.io/acme/ledger:7",
        Some(ID),
    );
    for (t, l) in [
        ("10:00:00.2", "mirror.corp.example.com/acme/ledger:7"),
        ("10:00:00.3", "quay.io/acme/ledger:7"),
    ] {
        s.crio(t, NANO, &format!("Trying to access \"{l}\""), None);
    }
    s.klog(
        "10:00:09",
        'E',
        "log.go:32",
        "PullImage from image service failed",
        &[
            ("err", &format!("rpc error: code = Unknown desc = {err}")),
            ("image", "quay.io/acme/ledger:7"),
        ],
    );
    let since = rfc3339(at("10:00:05"));
    let recs = scan_with(&s, &["--since", &since]);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    assert_eq!(r["partial"], true);
    assert_eq!(r["started_at"], Value::Null);
    assert_eq!(r["finished_at"], rfc3339(at("10:00:09")));
    assert_eq!(r["outcome"], "failed");
    assert_eq!(r["image"], "quay.io/acme/ledger:7");
    assert_eq!(r["error"], err);
    let a = r["attempts"].as_array().unwrap();
    assert_eq!(a.len(), 2, "{r:#}");
    assert_eq!(a[0]["reference"], "mirror.corp.example.com/acme/ledger:7");
    assert_eq!(a[0]["error_class"], "manifest_unknown");
    assert_eq!(a[0]["tries"], 0);
    assert_eq!(a[1]["reference"], "quay.io/acme/ledger:7");
    assert_eq!(a[1]["outcome"], "failed");
    assert_eq!(r["served_by"], Value::Null);
}

/// A CRI-O 1.21 line at debug level, which carries `file=` on info lines too.
fn crio_debug(s: &mut Scenario, clock: &str, level: &str, msg: &str, file: &str, id: Option<&str>) {
    let t = at(clock);
    let line = crio_msg(t, SPACED, msg, None).replacen("level=info", &format!("level={level}"), 1);
    let mut line = format!("{line} file=\"{file}\"");
    if let Some(id) = id {
        line.push_str(&format!(
            " id={id} name=/runtime.v1alpha2.ImageService/PullImage"
        ));
    }
    s.push(Entry::crio(t, &line));
}

#[test]
fn debug_logging_of_cimage_5_10_prints_each_location_twice_but_it_is_one_try_v121() {
    let mut s = Scenario::new("echo", CONF);
    let mirror = "mirror.corp.example.com/acme/ledger:7";
    let source = "quay.io/acme/ledger:7";
    crio_debug(
        &mut s,
        "10:00:00.1",
        "info",
        "Pulling image: quay.io/acme/ledger:7",
        "server/image_pull.go:42",
        Some(ID),
    );
    // ≤1.30 opens the source twice on success (prepare, then copy): two real rounds, each
    // location logged by an info line and its debug echo.
    for round in ["10:00:01", "10:00:03"] {
        for (i, (loc, fails)) in [(mirror, true), (source, false)].iter().enumerate() {
            let t = |k: u32| format!("{round}.{}{k}", i + 1);
            crio_debug(
                &mut s,
                &t(1),
                "info",
                &format!("Trying to access \"{loc}\""),
                "docker/docker_image_src.go:68",
                None,
            );
            crio_debug(
                &mut s,
                &t(2),
                "debug",
                &format!("Trying to access \"{loc}\""),
                "docker/docker_image_src.go:72",
                None,
            );
            if *fails {
                crio_debug(
                    &mut s,
                    &t(3),
                    "debug",
                    &format!("Accessing \"{loc}\" failed: Error reading manifest 7 in mirror.corp.example.com/acme/ledger: manifest unknown: manifest unknown"),
                    "docker/docker_image_src.go:77",
                    None,
                );
            }
        }
    }
    crio_debug(
        &mut s,
        "10:00:05",
        "info",
        &format!("Pulled image: quay.io/acme/ledger@{DIGEST}"),
        "server/image_pull.go:124",
        Some(ID),
    );
    let recs = s.scan();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    assert_eq!(r["outcome"], "pulled");
    let got: Vec<(String, String, u64)> = attempts(r)
        .into_iter()
        .map(|(l, o, _, t)| (l, o, t))
        .collect();
    assert_eq!(
        got,
        [
            (mirror.to_owned(), "failed".to_owned(), 2),
            (source.to_owned(), "served".to_owned(), 2),
        ]
    );
    assert_eq!(r["served_by"], source);
    assert_eq!(r["fallback"], true);
}

#[test]
fn a_debug_echo_of_a_single_round_counts_once_v121() {
    let mut s = Scenario::new("echo-once", CONF);
    let mirror = "mirror.corp.example.com/acme/ledger:7";
    crio_debug(
        &mut s,
        "10:00:00.1",
        "info",
        "Pulling image: quay.io/acme/ledger:7",
        "server/image_pull.go:42",
        Some(ID),
    );
    crio_debug(
        &mut s,
        "10:00:00.2",
        "info",
        &format!("Trying to access \"{mirror}\""),
        "docker/docker_image_src.go:68",
        None,
    );
    crio_debug(
        &mut s,
        "10:00:00.21",
        "debug",
        &format!("Trying to access \"{mirror}\""),
        "docker/docker_image_src.go:72",
        None,
    );
    let recs = s.scan();
    assert_eq!(recs[0]["outcome"], "in_progress");
    assert_eq!(attempts(&recs[0]), [att(mirror, "pending", 1)]);
}
