//! `mirrorscope-agent scan` over real journal files (built by systemd-journal-remote) for each
//! scenario of the spec: which location served each pull, which failed and why, in start order.

use mirrorscope_e2e::journal::{at, rfc3339, scan, Entry, Scenario, TimeFormat};
use serde_json::Value;

use TimeFormat::{Rfc3339Nano as NANO, Spaced as SPACED};

/// (reference, mirror, outcome, error_class, tries) of each attempt.
fn attempts(r: &Value) -> Vec<(String, bool, String, Option<String>, u64)> {
    r["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["reference"].as_str().unwrap().to_owned(),
                a["mirror"].as_bool().unwrap(),
                a["outcome"].as_str().unwrap().to_owned(),
                a["error_class"].as_str().map(str::to_owned),
                a["tries"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn att(
    r: &str,
    mirror: bool,
    outcome: &str,
    class: Option<&str>,
    tries: u64,
) -> (String, bool, String, Option<String>, u64) {
    (
        r.to_owned(),
        mirror,
        outcome.to_owned(),
        class.map(str::to_owned),
        tries,
    )
}

fn by_id<'a>(records: &'a [Value], id: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["pull_id"] == id)
        .unwrap_or_else(|| panic!("no record {id} in {records:#?}"))
}

#[test]
fn mirror_hit_digest_pull_v134() {
    let recs = Scenario::fixture("mirror_hit_v134").scan();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    let d = "sha256:4f1c9e0d2b7a66c1d0e5f3a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9";
    let mirror = format!("mirror.corp.example.com:8443/acme/ledger@{d}");
    assert_eq!(r["pull_id"], "c3a9e2f4-1b6d-4e8a-9f0c-7d2e5b8a1c34");
    assert_eq!(r["image"], format!("quay.io/acme/ledger@{d}"));
    assert_eq!(r["node"], "worker-1.example.com");
    assert_eq!(r["outcome"], "pulled");
    assert_eq!(r["started_at"], rfc3339(at("07:05:00.101")));
    assert_eq!(r["finished_at"], rfc3339(at("07:05:02.4")));
    assert_eq!(attempts(r), [att(&mirror, true, "served", None, 1)]);
    assert_eq!(r["served_by"], mirror);
    assert_eq!(r["via_mirror"], true);
    assert_eq!(r["fallback"], false);
    assert_eq!(r["digest"], d);
    assert_eq!(r["pod"], Value::Null);
    assert!(r["cursor"].as_str().unwrap().starts_with("s="));
}

#[test]
fn mirror_miss_then_source_is_a_fallback_v131() {
    let recs = Scenario::fixture("miss_then_source_v131").scan();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    assert_eq!(r["outcome"], "pulled");
    assert_eq!(
        attempts(r),
        [
            // CRI-O logs why a location failed only at debug level.
            att(
                "mirror-a.example.net/team/api:2.4.1",
                true,
                "failed",
                None,
                1
            ),
            att(
                "registry.example.org/team/api:2.4.1",
                false,
                "served",
                None,
                1
            ),
        ]
    );
    assert_eq!(r["attempts"][0]["error"], Value::Null);
    assert_eq!(r["served_by"], "registry.example.org/team/api:2.4.1");
    assert_eq!(r["via_mirror"], false);
    assert_eq!(r["fallback"], true);
    assert_eq!(
        r["digest"],
        "sha256:9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d"
    );
    assert_eq!(r["node"], "worker-2.example.com");
}

const BLOCKED_CONF: &str = r#"
[[registry]]
prefix = "quay.io/acme"
location = "quay.io/acme"
blocked = true

[[registry.mirror]]
location = "mirror-a.example.net/acme"

[[registry.mirror]]
location = "127.0.0.1:5999/acme"
"#;

/// The c/image error of the blocked-source scenario, as CRI-O 1.34 wraps it.
fn blocked_error() -> String {
    let ci = "(Mirrors also failed: [mirror-a.example.net/acme/ledger:7: reading manifest 7 in mirror-a.example.net/acme/ledger: manifest unknown]\n\
              [127.0.0.1:5999/acme/ledger:7: pinging container registry 127.0.0.1:5999: Get \"https://127.0.0.1:5999/v2/\": dial tcp 127.0.0.1:5999: connect: connection refused]): \
              quay.io/acme/ledger:7: registry quay.io/acme is blocked in /etc/containers/registries.conf or /etc/containers/registries.conf.d";
    format!(
        "unable to pull image or OCI artifact: pull image err: initializing source docker://quay.io/acme/ledger:7: {ci}; artifact err: get manifest: build image source: {ci}"
    )
}

#[test]
fn blocked_source_with_failing_mirrors_through_the_multi_entry_kubelet_error_v134() {
    let mut s = Scenario::new("blocked", BLOCKED_CONF);
    let id = "7e3f1c2a-9b4d-4c6e-8a1f-2d3c4b5a6978";
    s.crio(
        "09:00:00.1",
        NANO,
        "Pulling image: quay.io/acme/ledger:7",
        Some(id),
    );
    // 1.33.4–1.35.0: a failed pull repeats the round for the OCI-artifact fallback.
    for round in ["09:00:01", "09:00:03"] {
        for (i, l) in [
            "mirror-a.example.net/acme/ledger:7",
            "127.0.0.1:5999/acme/ledger:7",
            "quay.io/acme/ledger:7",
        ]
        .iter()
        .enumerate()
        {
            s.crio(
                &format!("{round}.{}00000", i + 1),
                NANO,
                &format!("Trying to access \"{l}\""),
                None,
            );
        }
    }
    let err = blocked_error();
    s.klog(
        "09:00:05.1",
        'E',
        "log.go:32",
        "PullImage from image service failed",
        &[
            ("err", &format!("rpc error: code = Unknown desc = {err}")),
            ("image", "quay.io/acme/ledger:7"),
        ],
    );
    s.klog(
        "09:00:05.1001",
        'E',
        "kuberuntime_image.go:43",
        "Failed to pull image",
        &[("err", &err), ("image", "quay.io/acme/ledger:7")],
    );
    // v=2: the pod comes only from the failure lines.
    let k4 = format!(
        "failed to \"StartContainer\" for \"ledger\" with ErrImagePull: {}",
        mirrorscope_e2e::journal::go_quote(&err)
    );
    s.klog(
        "09:00:05.1003",
        'E',
        "pod_workers.go:1324",
        "Error syncing pod, skipping",
        &[
            ("err", &k4),
            ("pod", "shop/ledger-0"),
            ("podUID", "6a1b2c3d-0000-4000-8000-00000000abcd"),
        ],
    );
    // The multi-line value really is several journal entries.
    assert!(
        s.entries
            .iter()
            .filter(|e| e.message().is_some_and(|m| m.starts_with('\t')))
            .count()
            >= 3
    );

    let recs = s.scan();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    assert_eq!(r["pull_id"], id);
    assert_eq!(r["outcome"], "failed");
    assert_eq!(
        attempts(r),
        [
            att(
                "mirror-a.example.net/acme/ledger:7",
                true,
                "failed",
                Some("manifest_unknown"),
                2
            ),
            att(
                "127.0.0.1:5999/acme/ledger:7",
                true,
                "failed",
                Some("connection_refused"),
                2
            ),
            att("quay.io/acme/ledger:7", false, "failed", Some("blocked"), 2),
        ]
    );
    assert_eq!(
        r["attempts"][0]["error"],
        "reading manifest 7 in mirror-a.example.net/acme/ledger: manifest unknown"
    );
    assert!(r["attempts"][2]["error"]
        .as_str()
        .unwrap()
        .starts_with("registry quay.io/acme is blocked in /etc/containers/registries.conf"));
    assert_eq!(r["served_by"], Value::Null);
    assert_eq!(r["via_mirror"], false);
    assert_eq!(r["fallback"], false);
    assert_eq!(r["digest"], Value::Null);
    assert_eq!(r["pod"], "shop/ledger-0");
    // Closed when the kubelet's value is complete: its ` >` entry, the fifth of the call.
    assert_eq!(r["finished_at"], rfc3339(at("09:00:05.1") + 4));
}

#[test]
fn digest_only_mirror_is_skipped_for_a_tag_pull_v129() {
    let conf = r#"
[[registry]]
prefix = "quay.io/acme"
location = "quay.io/acme"

[[registry.mirror]]
location = "mirror.corp.example.com/acme"
pull-from-mirror = "digest-only"
"#;
    let mut s = Scenario::new("digest-only", conf);
    let d = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    // ≤1.30: a successful pull logs the sources twice (PrepareImage, then copy), and
    // `Pulled image` logs RepoDigests[0].
    s.crio(
        "10:00:00.0",
        SPACED,
        "Pulling image: quay.io/acme/tool:3",
        Some("aaaaaaaa-0000-4000-8000-000000000001"),
    );
    s.crio(
        "10:00:00.1",
        SPACED,
        "Trying to access \"quay.io/acme/tool:3\"",
        None,
    );
    s.crio(
        "10:00:00.5",
        SPACED,
        "Trying to access \"quay.io/acme/tool:3\"",
        None,
    );
    s.crio(
        "10:00:01.0",
        SPACED,
        &format!("Pulled image: quay.io/acme/tool@{d}"),
        Some("aaaaaaaa-0000-4000-8000-000000000001"),
    );
    s.crio(
        "10:01:00.0",
        SPACED,
        &format!("Pulling image: quay.io/acme/tool@{d}"),
        Some("aaaaaaaa-0000-4000-8000-000000000002"),
    );
    s.crio(
        "10:01:00.1",
        SPACED,
        &format!("Trying to access \"mirror.corp.example.com/acme/tool@{d}\""),
        None,
    );
    s.crio(
        "10:01:00.5",
        SPACED,
        &format!("Trying to access \"mirror.corp.example.com/acme/tool@{d}\""),
        None,
    );
    s.crio(
        "10:01:01.0",
        SPACED,
        &format!("Pulled image: quay.io/acme/tool@{d}"),
        Some("aaaaaaaa-0000-4000-8000-000000000002"),
    );
    let recs = s.scan();
    assert_eq!(recs.len(), 2, "{recs:#?}");
    let tag = &recs[0];
    assert_eq!(tag["image"], "quay.io/acme/tool:3");
    assert_eq!(
        attempts(tag),
        [att("quay.io/acme/tool:3", false, "served", None, 2)]
    );
    assert_eq!(
        (tag["via_mirror"].clone(), tag["fallback"].clone()),
        (Value::Bool(false), Value::Bool(false))
    );
    assert_eq!(tag["digest"], d);
    let dig = &recs[1];
    let m = format!("mirror.corp.example.com/acme/tool@{d}");
    assert_eq!(attempts(dig), [att(&m, true, "served", None, 2)]);
    assert_eq!(dig["via_mirror"], true);
}

#[test]
fn auth_failure_with_the_artifact_fallback_line_v1351() {
    let conf = r#"
[[registry]]
prefix = "docker.io/acmecorp"
location = "docker.io/acmecorp"

[[registry.mirror]]
location = "mirror.corp.example.com/acmecorp"
"#;
    let mut s = Scenario::new("auth", conf);
    let id = "2b4d6f80-1a3c-4e5f-9876-543210fedcba";
    let img = "docker.io/acmecorp/private:3.2.0";
    let m = "mirror.corp.example.com/acmecorp/private:3.2.0";
    let ci = format!(
        "initializing source docker://acmecorp/private:3.2.0: (Mirrors also failed: [{m}: reading manifest 3.2.0 in mirror.corp.example.com/acmecorp/private: unauthorized: authentication required]): {img}: reading manifest 3.2.0 in docker.io/acmecorp/private: requested access to the resource is denied"
    );
    s.crio(
        "10:10:00.0001",
        NANO,
        &format!("Pulling image: {img}"),
        Some(id),
    );
    s.crio(
        "10:10:00.0002",
        NANO,
        &format!("Trying to access \"{m}\""),
        None,
    );
    s.crio(
        "10:10:00.3",
        NANO,
        &format!("Trying to access \"{img}\""),
        None,
    );
    s.crio(
        "10:10:00.6",
        NANO,
        &format!("Falling back to pull {img} as an OCI artifact: {ci}"),
        Some(id),
    );
    s.crio(
        "10:10:00.6001",
        NANO,
        &format!("Trying to access \"{m}\""),
        None,
    );
    s.crio(
        "10:10:00.9",
        NANO,
        &format!("Trying to access \"{img}\""),
        None,
    );
    let err = format!("unable to pull image or OCI artifact: pull image err: {ci}; artifact err: pull artifact: {ci}");
    s.klog(
        "10:10:01.2",
        'E',
        "log.go:32",
        "PullImage from image service failed",
        &[
            ("err", &format!("rpc error: code = Unknown desc = {err}")),
            ("image", img),
        ],
    );
    let recs = s.scan();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    assert_eq!(r["outcome"], "failed");
    assert_eq!(
        attempts(r),
        [
            att(m, true, "failed", Some("unauthorized"), 2),
            att(img, false, "failed", Some("denied"), 2),
        ]
    );
    assert_eq!(r["attempts"][0]["error"], "reading manifest 3.2.0 in mirror.corp.example.com/acmecorp/private: unauthorized: authentication required");
}

#[test]
fn two_identical_concurrent_pulls_interleaved_with_others_v134() {
    let mut s = Scenario::new("concurrent", TWO_MIRRORS_CONF);
    let (a, b, c) = (
        "11111111-aaaa-4000-8000-000000000001",
        "22222222-bbbb-4000-8000-000000000002",
        "33333333-cccc-4000-8000-000000000003",
    );
    let d1 = "sha256:aaaa000000000000000000000000000000000000000000000000000000000001";
    let d2 = "sha256:bbbb000000000000000000000000000000000000000000000000000000000002";
    let img = "quay.io/acme/web:1";
    s.crio(
        "11:00:00.000",
        NANO,
        &format!("Pulling image: {img}"),
        Some(a),
    );
    s.crio(
        "11:00:00.001",
        NANO,
        "Trying to access \"mirror-a.example.net/acme/web:1\"",
        None,
    );
    s.crio(
        "11:00:00.002",
        NANO,
        &format!("Pulling image: {img}"),
        Some(b),
    );
    s.crio(
        "11:00:00.003",
        NANO,
        "Pulling image: quay.io/acme/db:2",
        Some(c),
    );
    s.crio(
        "11:00:00.004",
        NANO,
        "Trying to access \"mirror-a.example.net/acme/web:1\"",
        None,
    );
    s.crio(
        "11:00:00.005",
        NANO,
        "Trying to access \"mirror-a.example.net/acme/db:2\"",
        None,
    );
    // a misses on mirror-a and moves on; b is served by mirror-a.
    s.crio(
        "11:00:00.300",
        NANO,
        "Trying to access \"mirror-b.example.net/acme/web:1\"",
        None,
    );
    s.crio(
        "11:00:00.400",
        NANO,
        "Trying to access \"mirror-b.example.net/acme/db:2\"",
        None,
    );
    s.crio(
        "11:00:01.000",
        NANO,
        &format!("Pulled image: quay.io/acme/web@{d1}"),
        Some(b),
    );
    s.crio(
        "11:00:01.500",
        NANO,
        &format!("Pulled image: quay.io/acme/web@{d1}"),
        Some(a),
    );
    s.crio(
        "11:00:02.000",
        NANO,
        &format!("Pulled image: quay.io/acme/db@{d2}"),
        Some(c),
    );
    let recs = s.scan();
    assert_eq!(recs.len(), 3, "{recs:#?}");
    // Start order, not finish order.
    let ids: Vec<&str> = recs
        .iter()
        .map(|r| r["pull_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a, b, c]);
    assert_eq!(
        attempts(by_id(&recs, a)),
        [
            att("mirror-a.example.net/acme/web:1", true, "failed", None, 1),
            att("mirror-b.example.net/acme/web:1", true, "served", None, 1),
        ]
    );
    assert_eq!(
        attempts(by_id(&recs, b)),
        [att(
            "mirror-a.example.net/acme/web:1",
            true,
            "served",
            None,
            1
        )]
    );
    assert_eq!(
        attempts(by_id(&recs, c)),
        [
            att("mirror-a.example.net/acme/db:2", true, "failed", None, 1),
            att("mirror-b.example.net/acme/db:2", true, "served", None, 1),
        ]
    );
    assert_eq!(by_id(&recs, c)["digest"], d2);
}

#[test]
fn repeated_rounds_fold_into_tries_v1332() {
    let conf = r#"
[[registry]]
prefix = "quay.io/acme"
location = "quay.io/acme"

[[registry.mirror]]
location = "mirror-a.example.net/acme"
"#;
    let mut s = Scenario::new("rounds", conf);
    let id = "44444444-dddd-4000-8000-000000000004";
    // 1.33.0–1.33.3: the OCI-artifact probe opens the source first, then copy.Image again.
    s.crio(
        "12:00:00.0",
        NANO,
        "Pulling image: quay.io/acme/job:5",
        Some(id),
    );
    for t in ["12:00:00.1", "12:00:00.3"] {
        s.crio(
            t,
            NANO,
            "Trying to access \"mirror-a.example.net/acme/job:5\"",
            None,
        );
    }
    s.crio(
        "12:00:00.2",
        NANO,
        "Trying to access \"quay.io/acme/job:5\"",
        None,
    );
    // Reorder so the journal reads mirror, source, mirror, source.
    s.entries.swap(2, 3);
    s.crio(
        "12:00:00.4",
        NANO,
        "Trying to access \"quay.io/acme/job:5\"",
        None,
    );
    s.crio("12:00:01.0", NANO, "Pulled image: quay.io/acme/job@sha256:5555555555555555555555555555555555555555555555555555555555555555", Some(id));
    let recs = s.scan();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    assert_eq!(
        attempts(r),
        [
            att("mirror-a.example.net/acme/job:5", true, "failed", None, 2),
            att("quay.io/acme/job:5", false, "served", None, 2),
        ]
    );
    assert_eq!(r["fallback"], true);
}

#[test]
fn image_id_in_pulled_and_single_round_network_failure_v1352() {
    let conf = r#"
[[registry]]
prefix = "quay.io/acme"
location = "quay.io/acme"

[[registry.mirror]]
location = "127.0.0.1:5998/acme"
"#;
    let mut s = Scenario::new("v1352", conf);
    let (ok, bad) = (
        "55555555-eeee-4000-8000-000000000005",
        "66666666-ffff-4000-8000-000000000006",
    );
    s.crio(
        "13:00:00.0",
        NANO,
        "Pulling image: quay.io/acme/svc:1",
        Some(ok),
    );
    s.crio(
        "13:00:00.1",
        NANO,
        "Trying to access \"127.0.0.1:5998/acme/svc:1\"",
        None,
    );
    // ≥1.35.2 logs the 64-hex image ID: not a digest.
    s.crio(
        "13:00:01.0",
        NANO,
        "Pulled image: 0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000",
        Some(ok),
    );
    s.crio(
        "13:01:00.0",
        NANO,
        "Pulling image: quay.io/acme/svc:2",
        Some(bad),
    );
    s.crio(
        "13:01:00.1",
        NANO,
        "Trying to access \"127.0.0.1:5998/acme/svc:2\"",
        None,
    );
    s.crio(
        "13:01:00.2",
        NANO,
        "Trying to access \"quay.io/acme/svc:2\"",
        None,
    );
    let err = "unable to pull image: initializing source docker://quay.io/acme/svc:2: (Mirrors also failed: [127.0.0.1:5998/acme/svc:2: pinging container registry 127.0.0.1:5998: Get \"https://127.0.0.1:5998/v2/\": dial tcp 127.0.0.1:5998: i/o timeout]): quay.io/acme/svc:2: pinging container registry quay.io: Get \"https://quay.io/v2/\": dial tcp: lookup quay.io on 10.0.0.10:53: no such host";
    s.klog(
        "13:01:31.0",
        'E',
        "log.go:32",
        "PullImage from image service failed",
        &[
            ("err", &format!("rpc error: code = Unknown desc = {err}")),
            ("image", "quay.io/acme/svc:2"),
        ],
    );
    let recs = s.scan();
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert_eq!(recs[0]["outcome"], "pulled");
    assert_eq!(recs[0]["served_by"], "127.0.0.1:5998/acme/svc:1");
    assert_eq!(recs[0]["digest"], Value::Null);
    assert_eq!(
        attempts(&recs[1]),
        [
            att(
                "127.0.0.1:5998/acme/svc:2",
                true,
                "failed",
                Some("timeout"),
                1
            ),
            att("quay.io/acme/svc:2", false, "failed", Some("dns"), 1),
        ]
    );
}

#[test]
fn kubelet_v3_events_name_the_pod_of_a_successful_pull() {
    let conf = r#"
[[registry]]
prefix = "quay.io/acme"
location = "quay.io/acme"

[[registry.mirror]]
location = "mirror-a.example.net/acme"
"#;
    let mut s = Scenario::new("v3", conf);
    let id = "77777777-0000-4000-8000-000000000007";
    let ev = |reason: &str, msg: &str| {
        vec![
            ("object", "jobs/batch-x1".to_owned()),
            ("fieldPath", "spec.containers{main}".to_owned()),
            ("kind", "Pod".to_owned()),
            ("apiVersion", "v1".to_owned()),
            ("type", "Normal".to_owned()),
            ("reason", reason.to_owned()),
            ("message", msg.to_owned()),
        ]
    };
    let pulling = ev("Pulling", "Pulling image \"quay.io/acme/batch:2\"");
    let pairs: Vec<(&str, &str)> = pulling.iter().map(|(k, v)| (*k, v.as_str())).collect();
    s.klog(
        "14:00:00.00005",
        'I',
        "event.go:389",
        "Event occurred",
        &pairs,
    );
    s.crio(
        "14:00:00.0001",
        NANO,
        "Pulling image: quay.io/acme/batch:2",
        Some(id),
    );
    s.crio(
        "14:00:00.0002",
        NANO,
        "Trying to access \"mirror-a.example.net/acme/batch:2\"",
        None,
    );
    s.crio("14:00:01.0", NANO, "Pulled image: quay.io/acme/batch@sha256:7777777777777777777777777777777777777777777777777777777777777777", Some(id));
    let pulled = ev("Pulled", "Successfully pulled image \"quay.io/acme/batch:2\" in 1s (1s including waiting). Image size: 1234 bytes.");
    let pairs: Vec<(&str, &str)> = pulled.iter().map(|(k, v)| (*k, v.as_str())).collect();
    s.klog(
        "14:00:01.001",
        'I',
        "event.go:389",
        "Event occurred",
        &pairs,
    );
    // Older OpenShift: the kubelet runs as hyperkube, and here journald recorded no unit.
    for e in s.entries.iter_mut() {
        if e.message().is_some_and(|m| m.starts_with('I')) {
            e.set("SYSLOG_IDENTIFIER", "hyperkube");
            e.remove("_SYSTEMD_UNIT");
        }
    }
    let recs = s.scan();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["pod"], "jobs/batch-x1");
    assert_eq!(recs[0]["served_by"], "mirror-a.example.net/acme/batch:2");
}

#[test]
fn output_forms_since_and_unfinished_pulls() {
    let mut s = Scenario::fixture("mirror_hit_v134");
    // A second pull that never finishes before the journal ends.
    let t = at("07:06:00");
    s.push(Entry::crio(
        t,
        &mirrorscope_e2e::journal::crio_msg(
            t,
            NANO,
            "Pulling image: quay.io/acme/ledger:9",
            Some("88888888-0000-4000-8000-000000000008"),
        ),
    ));
    let mut args = s.prepare();
    let arg = |extra: &[&str]| -> Vec<String> {
        let mut v = args.clone();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |v: Vec<String>| {
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        let out = scan(&v);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let jsonl: Vec<Value> = run(arg(&["-o", "jsonl"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(jsonl.len(), 2);
    assert_eq!(jsonl[1]["outcome"], "in_progress");
    assert_eq!(jsonl[1]["finished_at"], Value::Null);
    let json: Value = serde_json::from_str(&run(arg(&["-o", "json"]))).unwrap();
    assert_eq!(json, Value::Array(jsonl.clone()));
    let table = run(arg(&["-o", "table"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("STARTED") && lines[0].contains("SERVED BY"));
    assert!(
        lines[1].contains("pulled")
            && lines[1].contains("mirror")
            && lines[1].contains("mirror.corp.example.com:8443/acme/ledger@sha256:4f1c")
    );
    assert!(lines[2].contains("in_progress") && lines[2].contains("quay.io/acme/ledger:9"));

    let since = run(arg(&["--since", "2026-11-21T07:05:30Z"]));
    let since: Vec<Value> = since
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(since.len(), 1);
    assert_eq!(since[0]["image"], "quay.io/acme/ledger:9");

    // A broken registries.conf is a clear error naming the file.
    std::fs::write(
        s.dir.join("registries.conf"),
        "[[registry]]\nlocation = 5\n",
    )
    .unwrap();
    args.extend(["-o".into(), "jsonl".into()]);
    let v: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = scan(&v);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("registries.conf"), "{err}");
}

#[test]
fn checkpointed_scans_report_each_pull_once_and_unfinished_pulls_when_they_finish() {
    let conf = r#"
[[registry]]
prefix = "quay.io/acme"
location = "quay.io/acme"

[[registry.mirror]]
location = "mirror-a.example.net/acme"
"#;
    let pulled = |s: &mut Scenario, t: &str, n: u32| {
        s.crio(
            t,
            NANO,
            &format!("Pulled image: quay.io/acme/app@sha256:{n:064x}"),
            Some(&format!("99999999-0000-4000-8000-{n:012}")),
        );
    };
    let pulling = |s: &mut Scenario, t: &str, n: u32| {
        s.crio(
            t,
            NANO,
            "Pulling image: quay.io/acme/app:1",
            Some(&format!("99999999-0000-4000-8000-{n:012}")),
        );
        s.crio(
            t,
            NANO,
            "Trying to access \"mirror-a.example.net/acme/app:1\"",
            None,
        );
    };
    // First part of the journal: pull 1 finishes, pull 2 is still running at its end.
    let mut s = Scenario::new("ckpt-records", conf);
    pulling(&mut s, "15:00:00", 1);
    pulling(&mut s, "15:00:01", 2);
    pulled(&mut s, "15:00:02", 1);
    let dir = s.dir.join("journal");
    std::fs::create_dir_all(&dir).unwrap();
    mirrorscope_e2e::journal::write_journal(&dir, "part1", &s.entries);
    let mut args = s.prepare();
    args[0] = "--journal-dir".into();
    args[1] = dir.display().to_string();
    let cp = s.dir.join("checkpoint.json");
    args.extend(["--checkpoint".into(), cp.display().to_string()]);
    let run = || {
        let v: Vec<&str> = args.iter().map(String::as_str).collect();
        mirrorscope_e2e::journal::scan_jsonl(&v)
    };
    let first = run();
    let outcomes: Vec<(&str, &str)> = first
        .iter()
        .map(|r| {
            (
                r["pull_id"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("99999999-0000-4000-8000-000000000001", "pulled"),
            ("99999999-0000-4000-8000-000000000002", "in_progress"),
        ]
    );
    // Nothing new: pull 1 is not repeated; pull 2 is shown again, still in progress.
    let again = run();
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!(again[0]["outcome"], "in_progress");

    // The rest of the journal arrives (a later file): pull 2 finishes, pull 3 runs whole.
    let mut rest = Scenario::new("ckpt-records-2", conf);
    pulled(&mut rest, "15:01:00", 2);
    pulling(&mut rest, "15:01:01", 3);
    pulled(&mut rest, "15:01:02", 3);
    mirrorscope_e2e::journal::write_journal(&dir, "part2", &rest.entries);
    let second = run();
    let outcomes: Vec<(&str, &str)> = second
        .iter()
        .map(|r| {
            (
                r["pull_id"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("99999999-0000-4000-8000-000000000002", "pulled"),
            ("99999999-0000-4000-8000-000000000003", "pulled"),
        ]
    );
    assert_eq!(second[0]["served_by"], "mirror-a.example.net/acme/app:1");
    assert!(run().is_empty());
}

/// quay.io/acme with two mirrors, all pulls allowed from them.
const TWO_MIRRORS_CONF: &str = r#"
[[registry]]
prefix = "quay.io/acme"
location = "quay.io/acme"
[[registry.mirror]]
location = "mirror-a.example.net/acme"
[[registry.mirror]]
location = "mirror-b.example.net/acme"
"#;

/// A CRI-O debug line at `clock`, as journald stores it (priority 7).
fn crio_debug(s: &mut Scenario, clock: &str, msg: &str) {
    let t = at(clock);
    let line = mirrorscope_e2e::journal::crio_msg(t, NANO, msg, None).replacen(
        "level=info",
        "level=debug",
        1,
    );
    let mut e = Entry::crio(t, &line);
    e.set("PRIORITY", "7");
    s.push(e);
}

/// containers/image's blob-level mirror fallback (2026): the manifest from the first mirror,
/// one layer missing there, the second mirror down, the layer from the source. At debug level
/// the record names each failed layer fetch and the source its layers came from, and the blob
/// lines are not taken for manifest attempts; the same pull logged at info level says the
/// layers' source is `unknown`, because nothing in the journal tells.
#[test]
fn blob_fallback_at_debug_level_and_the_same_pull_at_info_level() {
    let d = "sha256:3b1c0e9d8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c";
    let layer = "sha256:77aa0e9d8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c";
    let image = format!("quay.io/acme/ledger@{d}");
    let (m1, m2) = (
        format!("mirror-a.example.net/acme/ledger@{d}"),
        format!("mirror-b.example.net/acme/ledger@{d}"),
    );
    let pull = |s: &mut Scenario, id: &str, t: &str, debug: bool| {
        s.crio(
            &format!("{t}:00.1"),
            NANO,
            &format!("Pulling image: {image}"),
            Some(id),
        );
        s.crio(
            &format!("{t}:00.2"),
            NANO,
            &format!("Trying to access \"{m1}\""),
            None,
        );
        if debug {
            crio_debug(
                s,
                &format!("{t}:00.3"),
                &format!("Downloading /v2/acme/ledger/blobs/{layer}"),
            );
            crio_debug(s, &format!("{t}:00.4"), &format!(
                "Blob {layer} fetch from \"{m1}\" failed (fetching blob: blob unknown to registry), trying fallback sources"
            ));
            crio_debug(
                s,
                &format!("{t}:00.5"),
                &format!("Trying to access \"{m2}\""),
            );
            crio_debug(s, &format!("{t}:00.6"), &format!(
                "Accessing \"{m2}\" failed: pinging container registry mirror-b.example.net: Get \"https://mirror-b.example.net/v2/\": dial tcp 127.0.0.1:5999: connect: connection refused"
            ));
            crio_debug(
                s,
                &format!("{t}:00.7"),
                &format!("Trying to access \"{image}\""),
            );
            crio_debug(s, &format!("{t}:00.8"), &format!(
                "Blob fetch succeeded from fallback source \"{image}\", switching to it for future requests"
            ));
        }
        s.crio(
            &format!("{t}:02.0"),
            NANO,
            &format!("Pulled image: {m1}"),
            Some(id),
        );
    };
    let mut s = Scenario::new("blob-fallback", TWO_MIRRORS_CONF);
    let (debug_id, info_id) = (
        "0b10b000-0000-4000-8000-000000000001",
        "0b10b000-0000-4000-8000-000000000002",
    );
    pull(&mut s, debug_id, "10:00", true);
    pull(&mut s, info_id, "10:05", false);
    let recs = s.scan();
    assert_eq!(recs.len(), 2, "{recs:#?}");

    let r = by_id(&recs, debug_id);
    assert_eq!(r["outcome"], "pulled");
    assert_eq!(attempts(r), [att(&m1, true, "served", None, 1)]);
    assert_eq!(r["served_by"], m1.as_str());
    assert_eq!(r["via_mirror"], true);
    assert_eq!(r["fallback"], false);
    assert_eq!(r["digest"], d);
    assert_eq!(r["blob_source"], image.as_str());
    let failures: Vec<(&str, Option<&str>, &str)> = r["blob_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["reference"].as_str().unwrap(),
                f["digest"].as_str(),
                f["error_class"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failures,
        [
            (m1.as_str(), Some(layer), "blob_unknown"),
            (m2.as_str(), None, "connection_refused"),
        ]
    );

    let r = by_id(&recs, info_id);
    assert_eq!(r["served_by"], m1.as_str());
    assert_eq!(r["blob_source"], "unknown");
    assert!(r.get("blob_failures").is_none(), "{r:#}");
}
