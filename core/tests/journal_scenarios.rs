//! Pull correlation over fixture journals: one test per scenario of the spec.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod journal_support;

use journal_support::{by_id, load, run, run_with};
use mirrorscope_core::journal::{
    AttemptOutcome, CorrelatorConfig, ErrorClass, Notice, PullOutcome, PullRecord,
};

fn refs(r: &PullRecord) -> Vec<(&str, bool, AttemptOutcome, Option<ErrorClass>, u32)> {
    r.attempts
        .iter()
        .map(|a| {
            (
                a.reference.as_str(),
                a.mirror,
                a.outcome,
                a.error_class,
                a.tries,
            )
        })
        .collect()
}

#[test]
fn mirror_hit_digest_pull() {
    let out = run("mirror_hit_v134.txt");
    assert_eq!(out.records.len(), 1);
    let r = &out.records[0];
    let d = "sha256:4f1c9e0d2b7a66c1d0e5f3a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9";
    assert_eq!(r.pull_id, "c3a9e2f4-1b6d-4e8a-9f0c-7d2e5b8a1c34");
    assert_eq!(r.image, format!("quay.io/acme/ledger@{d}"));
    assert_eq!(r.node.as_deref(), Some("worker-1.example"));
    assert_eq!(r.outcome, PullOutcome::Pulled);
    assert_eq!(r.started_at.as_deref(), Some("2026-11-21T07:05:00.101000Z"));
    assert_eq!(
        r.finished_at.as_deref(),
        Some("2026-11-21T07:05:02.400000Z")
    );
    let mirror = format!("mirror.corp.example.com:8443/acme/ledger@{d}");
    assert_eq!(
        refs(r),
        vec![(mirror.as_str(), true, AttemptOutcome::Served, None, 1)]
    );
    assert_eq!(r.served_by.as_deref(), Some(mirror.as_str()));
    assert!(r.via_mirror);
    assert!(!r.fallback);
    assert_eq!(r.digest.as_deref(), Some(d));
    assert_eq!(r.pod, None);
    assert_eq!(r.cursor.as_deref(), Some("s=fixture;i=6"));
    // Emitted by push once the linger window passed (the last entry is 27 s later).
    assert_eq!(out.correlator.stats().malformed, 0);
}

#[test]
fn mirror_miss_then_source_is_a_fallback() {
    let out = run("miss_then_source_v131.txt");
    let r = by_id(&out.records, "5d0c6a1e-8f3b-4c2d-a1e0-9b7f6d5c4b3a");
    assert_eq!(r.outcome, PullOutcome::Pulled);
    assert_eq!(
        refs(r),
        vec![
            (
                "mirror-a.example.net/team/api:2.4.1",
                true,
                AttemptOutcome::Failed,
                None,
                1
            ),
            (
                "registry.example.org/team/api:2.4.1",
                false,
                AttemptOutcome::Served,
                None,
                1
            ),
        ]
    );
    assert_eq!(r.attempts[0].error, None);
    assert!(!r.via_mirror);
    assert!(r.fallback);
    assert_eq!(r.started_at.as_deref(), Some("2026-11-21T08:00:00.000100Z"));
    assert_eq!(
        r.digest.as_deref(),
        Some("sha256:9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b")
    );
}

#[test]
fn blocked_source_with_failing_mirrors_through_multi_entry_kubelet_error() {
    let out = run("blocked_source_failing_mirrors_v134.txt");
    assert_eq!(out.records.len(), 1, "{:#?}", out.records);
    let r = &out.records[0];
    assert_eq!(r.outcome, PullOutcome::Failed);
    assert_eq!(
        refs(r),
        vec![
            (
                "mirror-a.example.net/acme/ledger:7",
                true,
                AttemptOutcome::Failed,
                Some(ErrorClass::ManifestUnknown),
                2
            ),
            (
                "127.0.0.1:5999/acme/ledger:7",
                true,
                AttemptOutcome::Failed,
                Some(ErrorClass::ConnectionRefused),
                2
            ),
            (
                "quay.io/acme/ledger:7",
                false,
                AttemptOutcome::Failed,
                Some(ErrorClass::Blocked),
                2
            ),
        ]
    );
    assert_eq!(
        r.attempts[2].error.as_deref(),
        Some("registry quay.io/acme is blocked in /etc/containers/registries.conf or /etc/containers/registries.conf.d")
    );
    assert_eq!(
        r.attempts[0].error.as_deref(),
        Some("reading manifest 7 in mirror-a.example.net/acme/ledger: manifest unknown")
    );
    assert_eq!(r.served_by, None);
    assert!(!r.via_mirror && !r.fallback);
    assert_eq!(r.digest, None);
    assert!(r
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("unable to pull image or OCI artifact: pull image err: ")));
    // v=2: the pod comes from the `Unhandled Error` / `Error syncing pod` lines.
    assert_eq!(r.pod.as_deref(), Some("shop/ledger-0"));
    assert_eq!(
        r.finished_at.as_deref(),
        Some("2026-11-21T09:00:05.100000Z")
    );
    assert_eq!(out.correlator.stats().malformed, 0);
}

#[test]
fn digest_only_mirrors_skipped_for_a_tag_pull() {
    let out = run("digest_only_tag_pull_v129.txt");
    assert_eq!(out.records.len(), 2);
    let tag = by_id(&out.records, "88888888-1111-4222-8333-444444444444");
    assert_eq!(
        refs(tag),
        vec![(
            "quay.io/openshift/tools:v4.16",
            false,
            AttemptOutcome::Served,
            None,
            2
        )]
    );
    assert!(!tag.via_mirror && !tag.fallback);
    // <=1.30 logs RepoDigests[0]: a digest, possibly under another name.
    assert_eq!(
        tag.digest.as_deref(),
        Some("sha256:2222222222222222222222222222222222222222222222222222222222222222")
    );
    assert_eq!(
        tag.started_at.as_deref(),
        Some("2026-11-21T13:00:00.000100Z")
    );
    let dig = by_id(&out.records, "88888888-1111-4222-8333-555555555555");
    assert!(dig.via_mirror);
    assert_eq!(dig.attempts.len(), 1);
    assert_eq!(dig.attempts[0].tries, 2);
    assert!(dig.attempts[0]
        .reference
        .starts_with("mirror.corp.example.com:8443/"));
}

#[test]
fn auth_failure_with_artifact_fallback_line() {
    let out = run("auth_failure_v1351.txt");
    assert_eq!(out.records.len(), 1);
    let r = &out.records[0];
    assert_eq!(r.outcome, PullOutcome::Failed);
    assert_eq!(
        refs(r),
        vec![
            (
                "mirror.corp.example.com/acmecorp/private:3.2.0",
                true,
                AttemptOutcome::Failed,
                Some(ErrorClass::Unauthorized),
                2
            ),
            (
                "docker.io/acmecorp/private:3.2.0",
                false,
                AttemptOutcome::Failed,
                Some(ErrorClass::Denied),
                2
            ),
        ]
    );
    assert_eq!(r.pod.as_deref(), Some("billing/app-5c7d9"));
}

#[test]
fn artifact_fallback_without_kubelet_line_expires_as_failed() {
    let mut f = load("auth_failure_v1351.txt");
    f.entries
        .retain(|e| e.syslog_identifier.as_deref() == Some("crio"));
    let out = run_with(f, CorrelatorConfig::default());
    assert_eq!(out.records.len(), 1);
    // Still open at the end of input: reported in progress, errors already known from C7.
    let r = &out.records[0];
    assert_eq!(r.outcome, PullOutcome::InProgress);
    assert_eq!(r.attempts[1].error_class, Some(ErrorClass::Denied));
}

#[test]
fn two_identical_concurrent_pulls_interleaved_with_others() {
    let out = run("concurrent_pulls_v1335.txt");
    assert_eq!(out.records.len(), 3, "{:#?}", out.records);
    for (id, pod) in [
        ("a1a1a1a1-0000-4000-8000-00000000000a", "shop/web-a"),
        ("a2a2a2a2-0000-4000-8000-00000000000b", "shop/web-b"),
    ] {
        let r = by_id(&out.records, id);
        assert_eq!(r.outcome, PullOutcome::Pulled);
        assert_eq!(
            refs(r),
            vec![
                (
                    "mirror-a.example.net/acme/web:1.8",
                    true,
                    AttemptOutcome::Failed,
                    None,
                    1
                ),
                (
                    "quay.io/acme/web:1.8",
                    false,
                    AttemptOutcome::Served,
                    None,
                    1
                ),
            ],
            "{id}"
        );
        assert!(r.fallback);
        assert_eq!(r.pod.as_deref(), Some(pod), "{id}");
    }
    let b = by_id(&out.records, "b1b1b1b1-0000-4000-8000-00000000000c");
    assert_eq!(
        refs(b),
        vec![(
            "mirror-b.example.net/team/api:2.4.1",
            true,
            AttemptOutcome::Served,
            None,
            1
        )]
    );
    assert_eq!(b.pod.as_deref(), Some("team/api-0"));
    // finish() gives the held-back records in start order.
    let ids: Vec<_> = out.records.iter().map(|r| &r.pull_id[..2]).collect();
    assert_eq!(ids, ["a1", "a2", "b1"]);
}

#[test]
fn repeated_rounds_fold_into_tries() {
    let out = run("repeated_rounds_v1332.txt");
    let r = by_id(&out.records, "c0c0c0c0-1111-4000-8000-000000000001");
    assert_eq!(
        refs(r),
        vec![
            (
                "mirror-a.example.net/acme/ml:3",
                true,
                AttemptOutcome::Failed,
                None,
                2
            ),
            (
                "mirror-b.example.net/acme/ml:3",
                true,
                AttemptOutcome::Served,
                None,
                2
            ),
        ]
    );
    assert!(r.via_mirror && !r.fallback);
    assert_eq!(
        r.served_by.as_deref(),
        Some("mirror-b.example.net/acme/ml:3")
    );
    // The failing pull of 1.33.0-1.33.3: one round, wrapper `unable to try pulling possible OCI
    // artifact: get manifest: build image source: `, a multi-entry kubelet error.
    let f = by_id(&out.records, "c0c0c0c0-1111-4000-8000-000000000002");
    assert_eq!(f.outcome, PullOutcome::Failed);
    let got: Vec<_> = f
        .attempts
        .iter()
        .map(|a| (a.error_class, a.tries))
        .collect();
    assert_eq!(
        got,
        [
            (Some(ErrorClass::ManifestUnknown), 1),
            (Some(ErrorClass::Http), 1),
            (Some(ErrorClass::Tls), 1)
        ]
    );
}

#[test]
fn network_failure_single_round_and_image_id_pulled() {
    let out = run("network_failure_v1352.txt");
    assert_eq!(out.records.len(), 2);
    let f = by_id(&out.records, "44444444-aaaa-4bbb-8ccc-000000000001");
    assert_eq!(f.outcome, PullOutcome::Failed);
    assert_eq!(
        refs(f),
        vec![
            (
                "mirror-b.example.net/acme/cache:5",
                true,
                AttemptOutcome::Failed,
                Some(ErrorClass::Timeout),
                1
            ),
            (
                "quay.io/acme/cache:5",
                false,
                AttemptOutcome::Failed,
                Some(ErrorClass::ConnectionRefused),
                1
            ),
        ]
    );
    let ok = by_id(&out.records, "44444444-aaaa-4bbb-8ccc-000000000002");
    assert_eq!(ok.outcome, PullOutcome::Pulled);
    // 1.35.2+ logs the image ID, which is not a digest: a tag pull has no digest, and the ID is
    // kept as the kubelet's imageID names it.
    assert_eq!(ok.digest, None);
    assert_eq!(
        ok.image_id.as_deref(),
        Some("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(
        ok.served_by.as_deref(),
        Some("registry.example.org/team/worker:9")
    );
    assert!(!ok.via_mirror && !ok.fallback);
}

#[test]
fn image_id_pulled_keeps_the_requested_digest_and_the_id_in_text_and_json() {
    let out = run("image_id_pulled_v136.txt");
    assert_eq!(out.records.len(), 2, "{:?}", out.records);
    let by_digest = by_id(&out.records, "55555555-aaaa-4bbb-8ccc-000000000001");
    assert_eq!(by_digest.outcome, PullOutcome::Pulled);
    assert_eq!(
        by_digest.digest.as_deref(),
        Some("sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd")
    );
    assert_eq!(
        by_digest.image_id.as_deref(),
        Some("sha256:7777777777777777777777777777777777777777777777777777777777777777")
    );
    assert_eq!(
        by_digest.served_by.as_deref(),
        Some("mirror.example.net/acme/app@sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd")
    );
    assert!(by_digest.via_mirror);
    let by_tag = by_id(&out.records, "55555555-aaaa-4bbb-8ccc-000000000002");
    assert_eq!(by_tag.outcome, PullOutcome::Pulled);
    assert_eq!(by_tag.digest, None);
    assert_eq!(
        by_tag.image_id.as_deref(),
        Some("sha256:8888888888888888888888888888888888888888888888888888888888888888")
    );
    assert_eq!(
        by_tag.served_by.as_deref(),
        Some("mirror.example.net/acme/job:2")
    );
}

#[test]
fn the_namespaced_auth_file_a_pull_used_is_recorded() {
    let out = run("namespaced_auth_v135.txt");
    assert_eq!(out.records.len(), 2, "{:?}", out.records);
    let private = by_id(&out.records, "66666666-aaaa-4bbb-8ccc-000000000001");
    let auth = private
        .namespaced_auth
        .as_ref()
        .expect("the auth file line");
    assert_eq!(auth.namespace, "shop");
    assert_eq!(
        auth.auth_file,
        "/etc/crio/auth/shop-abababababababababababababababababababababababababababababababab.json"
    );
    assert_eq!(
        private.served_by.as_deref(),
        Some("mirror.example.net/acme/private:1")
    );
    let public = by_id(&out.records, "66666666-aaaa-4bbb-8ccc-000000000002");
    assert_eq!(public.namespaced_auth, None);
    let json = serde_json::to_value(private).unwrap();
    assert_eq!(json["namespaced_auth"]["namespace"], "shop");
    assert!(serde_json::to_value(public)
        .unwrap()
        .get("namespaced_auth")
        .is_none());
}

#[test]
fn a_failure_line_journald_cut_at_line_max_is_joined_again() {
    let out = run("line_max_split_v134.txt");
    let f = by_id(&out.records, "77777777-aaaa-4bbb-8ccc-000000000001");
    assert_eq!(f.outcome, PullOutcome::Failed, "{f:?}");
    assert_eq!(
        refs(f),
        vec![
            (
                "mirror-b.example.net/acme/cache:5",
                true,
                AttemptOutcome::Failed,
                Some(ErrorClass::ManifestUnknown),
                1
            ),
            (
                "quay.io/acme/cache:5",
                false,
                AttemptOutcome::Failed,
                Some(ErrorClass::ConnectionRefused),
                1
            ),
        ]
    );
    // The CRI-O line between the pieces was read on its own.
    let other = by_id(&out.records, "77777777-aaaa-4bbb-8ccc-000000000002");
    assert_eq!(other.image, "quay.io/acme/other:1");
    assert_eq!(out.correlator.stats().split_lines_joined, 1);
}

#[test]
fn kubelet_json_logging_reads_as_its_text_logging() {
    let text = run("kubelet_v3_failure_v1334.txt");
    let json = run("kubelet_json_failure_v1334.txt");
    assert_eq!(json.correlator.stats().malformed, 0);
    assert_eq!(json.records.len(), 1);
    assert_eq!(json.records[0].pod.as_deref(), Some("jobs/batch-x1"));
    assert_eq!(json.records, text.records);
}

#[test]
fn kubelet_v3_events_carry_the_pod_of_a_failed_pull() {
    let out = run("kubelet_v3_failure_v1334.txt");
    assert_eq!(out.records.len(), 1);
    let r = &out.records[0];
    assert_eq!(r.outcome, PullOutcome::Failed);
    assert_eq!(r.pod.as_deref(), Some("jobs/batch-x1"));
    assert_eq!(
        refs(r),
        vec![
            (
                "mirror-a.example.net/acme/batch:2",
                true,
                AttemptOutcome::Failed,
                Some(ErrorClass::ManifestUnknown),
                2
            ),
            (
                "quay.io/acme/batch:2",
                false,
                AttemptOutcome::Failed,
                Some(ErrorClass::ManifestUnknown),
                2
            ),
        ]
    );
}

#[test]
fn json_log_format() {
    let out = run("json_format.txt");
    let r = &out.records[0];
    assert_eq!(r.pull_id, "d0d0d0d0-0000-4000-8000-000000000001");
    assert_eq!(
        r.served_by.as_deref(),
        Some("mirror-a.example.net/acme/tiny:1")
    );
    assert!(r.via_mirror);
}

#[test]
fn lifecycle_abandon_restart_reload_in_progress() {
    let out = run("lifecycle.txt");
    assert_eq!(out.records.len(), 3, "{:#?}", out.records);
    let expired = by_id(&out.records, "e0e0e0e0-0000-4000-8000-000000000001");
    assert_eq!(expired.outcome, PullOutcome::Abandoned);
    assert_eq!(expired.finished_at, None);
    assert_eq!(expired.attempts[0].tries, 1);
    let cut = by_id(&out.records, "e0e0e0e0-0000-4000-8000-000000000002");
    assert_eq!(cut.outcome, PullOutcome::Abandoned);
    let open = out
        .records
        .iter()
        .find(|r| r.outcome == PullOutcome::InProgress)
        .expect("in progress");
    // No id on the line: a UUID-shaped hash of the cursor, stable across replays.
    assert_eq!(open.pull_id.len(), 36);
    assert_eq!(run("lifecycle.txt").records[2].pull_id, open.pull_id);
    assert_eq!(open.attempts.len(), 2);
    assert_eq!(open.served_by, None);
    assert!(matches!(
        out.notices.as_slice(),
        [
            Notice::RegistriesApplied { .. },
            Notice::RegistriesReloadFailed { .. },
            Notice::CrioStarted { .. }
        ]
    ));
    if let Notice::CrioStarted { version, .. } = &out.notices[2] {
        assert_eq!(version, "1.34.11");
    }
    // Emission order: the expired pull was pushed out during the scan, before finish().
    assert_eq!(out.records[0].pull_id, expired.pull_id);
}

#[test]
fn without_a_source_list_the_tail_of_the_name_matches() {
    let mut f = load("miss_then_source_v131.txt");
    f.resolver = mirrorscope_core::journal::StaticResolver::new();
    let out = run_with(f, CorrelatorConfig::default());
    let r = &out.records[0];
    assert_eq!(r.attempts.len(), 2);
    // Mirror flag falls back to comparing registry hosts with the requested image.
    assert!(r.attempts[0].mirror && !r.attempts[1].mirror);
    assert!(r.fallback);
}

#[test]
fn records_serialize_with_the_wire_field_names() {
    let out = run("blocked_source_failing_mirrors_v134.txt");
    let v = serde_json::to_value(&out.records[0]).unwrap();
    for key in [
        "pull_id",
        "image",
        "node",
        "started_at",
        "finished_at",
        "outcome",
        "attempts",
        "served_by",
        "via_mirror",
        "fallback",
        "digest",
        "pod",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    assert_eq!(v["outcome"], "failed");
    assert_eq!(v["attempts"][1]["error_class"], "connection_refused");
    assert_eq!(v["attempts"][0]["tries"], 2);
}
