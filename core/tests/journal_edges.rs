//! Correlation edge cases, each with a small inline journal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod journal_support;

use journal_support::{parse, run_with};
use mirrorscope_core::journal::{AttemptOutcome, CorrelatorConfig, ErrorClass, PullOutcome};

const SRC: &str =
    "@sources quay.io/x/app:1 => m1.example/x/app:1 m2.example/x/app:1 quay.io/x/app:1";

fn run(body: &str) -> journal_support::Run {
    run_with(
        parse(&format!("@node n\n{SRC}\n{body}")),
        CorrelatorConfig::default(),
    )
}

fn crio(t: &str, msg: &str, id: Option<&str>) -> String {
    let quoted = format!("{msg:?}");
    let fields = id
        .map(|i| format!(" id={i} name=/runtime.v1.ImageService/PullImage"))
        .unwrap_or_default();
    format!("{t} crio[1]: time=\"2026-11-21T{t}Z\" level=info msg={quoted}{fields}")
}

#[test]
fn debug_access_failed_lines_give_the_mirror_error_of_a_successful_pull() {
    let body = [
        crio("01:00:00.000001", "Pulling image: quay.io/x/app:1", Some("p1")),
        crio("01:00:00.000002", "Trying to access \"m1.example/x/app:1\"", None),
        crio(
            "01:00:00.000003",
            "Accessing \"m1.example/x/app:1\" failed: reading manifest 1 in m1.example/x/app: manifest unknown",
            None,
        ),
        crio("01:00:00.000004", "Trying to access \"m2.example/x/app:1\"", None),
        crio("01:00:01.000000", "Pulled image: quay.io/x/app@sha256:00", Some("p1")),
    ]
    .join("\n");
    let out = run(&body);
    let r = &out.records[0];
    assert_eq!(r.attempts[0].error_class, Some(ErrorClass::ManifestUnknown));
    assert_eq!(r.attempts[1].outcome, AttemptOutcome::Served);
    assert_eq!(r.attempts[1].error_class, None);
    assert!(r.via_mirror && !r.fallback);
}

#[test]
fn unhandled_error_alone_names_the_pod() {
    let err = "reading manifest 1 in quay.io/x/app: manifest unknown";
    let body = [
        crio("01:00:00.000001", "Pulling image: quay.io/x/app:1", Some("p1")),
        crio("01:00:00.000002", "Trying to access \"quay.io/x/app:1\"", None),
        format!(r#"01:00:00.100000 kubelet[9]: E1121 01:00:00.100000       9 log.go:32] "PullImage from image service failed" err="rpc error: code = Unknown desc = {err}" image="quay.io/x/app:1""#),
        format!(r#"01:00:00.100100 kubelet[9]: E1121 01:00:00.100100       9 kuberuntime_manager.go:1449] "Unhandled Error" err="init container setup start failed in pod app-7f_team-a(0a0b): ErrImagePull: {err}" logger="UnhandledError""#),
    ]
    .join("\n");
    let out = run(&body);
    let r = &out.records[0];
    assert_eq!(r.outcome, PullOutcome::Failed);
    assert_eq!(r.pod.as_deref(), Some("team-a/app-7f"));
    // A single location tried: the bare error belongs to it.
    assert_eq!(r.attempts.len(), 1);
    assert_eq!(r.attempts[0].error.as_deref(), Some(err));
}

#[test]
fn failure_lines_of_another_error_do_not_steal_the_pod() {
    let body = [
        crio("01:00:00.000001", "Pulling image: quay.io/x/app:1", Some("p1")),
        r#"01:00:00.100000 kubelet[9]: E1121 01:00:00.100000       9 log.go:32] "PullImage from image service failed" err="rpc error: code = Unknown desc = boom A" image="quay.io/x/app:1""#.to_owned(),
        r#"01:00:00.100300 kubelet[9]: E1121 01:00:00.100300       9 pod_workers.go:1324] "Error syncing pod, skipping" err="failed to \"StartContainer\" for \"c\" with ErrImagePull: \"boom B\"" pod="ns/other" podUID="u""#.to_owned(),
    ]
    .join("\n");
    let out = run(&body);
    assert_eq!(out.records[0].pod, None);
    assert_eq!(out.records[0].error.as_deref(), Some("boom A"));
    // The error named no location and none was tried: nothing to attach it to.
    assert!(out.records[0].attempts.is_empty());
}

#[test]
fn successfully_pulled_event_after_the_crio_line_still_names_the_pod() {
    let body = [
        crio("01:00:00.000001", "Pulling image: quay.io/x/app:1", Some("p1")),
        crio("01:00:00.000002", "Trying to access \"m1.example/x/app:1\"", None),
        crio("01:00:01.000000", "Pulled image: quay.io/x/app@sha256:00", Some("p1")),
        r#"01:00:01.000400 kubelet[9]: I1121 01:00:01.000400       9 event.go:389] "Event occurred" object="ns/web-1" fieldPath="spec.containers{web}" kind="Pod" apiVersion="v1" type="Normal" reason="Pulled" message="Successfully pulled image \"quay.io/x/app:1\" in 1s (1s including waiting). Image size: 10 bytes.""#.to_owned(),
    ]
    .join("\n");
    let out = run(&body);
    assert_eq!(out.records[0].pod.as_deref(), Some("ns/web-1"));
}

#[test]
fn stale_pod_hints_expire() {
    let body = [
        r#"01:00:00.000000 kubelet[9]: I1121 01:00:00.000000       9 event.go:389] "Event occurred" object="ns/early" fieldPath="spec.containers{web}" kind="Pod" apiVersion="v1" type="Normal" reason="Pulling" message="Pulling image \"quay.io/x/app:1\"""#.to_owned(),
        crio("01:05:00.000001", "Pulling image: quay.io/x/app:1", Some("p1")),
    ]
    .join("\n");
    let out = run(&body);
    assert_eq!(out.records[0].pod, None);
    assert_eq!(out.records[0].outcome, PullOutcome::InProgress);
}

#[test]
fn deduplicated_identical_requests_and_duplicate_ids() {
    let body = [
        crio(
            "01:00:00.000001",
            "Pulling image: quay.io/x/app:1",
            Some("p1"),
        ),
        crio(
            "01:00:00.000002",
            "Pulling image: quay.io/x/app:1",
            Some("p2"),
        ),
        crio(
            "01:00:00.000003",
            "Pulling image: quay.io/x/app:1",
            Some("p2"),
        ),
        crio(
            "01:00:00.000004",
            "Trying to access \"m1.example/x/app:1\"",
            None,
        ),
        crio(
            "01:00:01.000000",
            "Pulled image: quay.io/x/app@sha256:00",
            Some("p1"),
        ),
        crio(
            "01:00:01.000001",
            "Pulled image: quay.io/x/app@sha256:00",
            Some("p2"),
        ),
        crio(
            "01:00:01.000002",
            "Pulled image: quay.io/x/app@sha256:00",
            Some("p3"),
        ),
    ]
    .join("\n");
    let out = run(&body);
    assert_eq!(out.records.len(), 3);
    assert_eq!(
        out.records[0].served_by.as_deref(),
        Some("m1.example/x/app:1")
    );
    // p3 never opened: its start is outside the input, so it is a partial record with no
    // location (the only `Trying` line belongs to p1).
    let p3 = &out.records[2];
    assert_eq!(p3.pull_id, "p3");
    assert!(p3.partial);
    assert_eq!(p3.started_at, None);
    assert_eq!(p3.outcome, PullOutcome::Pulled);
    assert_eq!(p3.served_by, None);
    assert_eq!(p3.digest.as_deref(), Some("sha256:00"));
    // p2 was served by the same underlying pull: it takes p1's locations.
    assert_eq!(
        out.records[1].served_by.as_deref(),
        Some("m1.example/x/app:1")
    );
    assert_eq!(out.records[1].attempts.len(), 1);
    assert!(out.records[1].via_mirror);
}

#[test]
fn a_pull_without_locations_and_without_twin_has_no_attempts() {
    let body = [
        crio(
            "01:00:00.000001",
            "Pulling image: quay.io/x/app:1",
            Some("p1"),
        ),
        crio(
            "01:00:01.000000",
            "Pulled image: quay.io/x/app@sha256:00",
            Some("p1"),
        ),
    ]
    .join("\n");
    let out = run(&body);
    assert_eq!(out.records[0].outcome, PullOutcome::Pulled);
    assert!(out.records[0].attempts.is_empty());
    assert_eq!(out.records[0].served_by, None);
    assert!(!out.records[0].via_mirror && !out.records[0].fallback);
}

#[test]
fn a_location_missing_from_the_source_list_attaches_by_name() {
    let body = [
        crio(
            "01:00:00.000001",
            "Pulling image: quay.io/x/app:1",
            Some("p1"),
        ),
        crio(
            "01:00:00.000002",
            "Trying to access \"new-mirror.example/x/app:1\"",
            None,
        ),
        crio(
            "01:00:01.000000",
            "Pulled image: quay.io/x/app@sha256:00",
            Some("p1"),
        ),
    ]
    .join("\n");
    let out = run(&body);
    let r = &out.records[0];
    assert_eq!(r.served_by.as_deref(), Some("new-mirror.example/x/app:1"));
    assert!(r.via_mirror);
    assert_eq!(out.correlator.stats().unattached, 0);
}

#[test]
fn trying_lines_of_unknown_pulls_are_counted_not_attached() {
    let body = [
        crio(
            "01:00:00.000001",
            "Pulling image: quay.io/x/app:1",
            Some("p1"),
        ),
        crio(
            "01:00:00.000002",
            "Trying to access \"elsewhere.example/y/z:9\"",
            None,
        ),
    ]
    .join("\n");
    let out = run(&body);
    assert!(out.records[0].attempts.is_empty());
    assert_eq!(out.correlator.stats().unattached, 1);
}

#[test]
fn out_of_order_location_still_attaches_and_starts_no_bogus_round() {
    // m2 before m1 (e.g. the configuration changed under a running pull): tier-3 match.
    let body = [
        crio(
            "01:00:00.000001",
            "Pulling image: quay.io/x/app:1",
            Some("p1"),
        ),
        crio(
            "01:00:00.000002",
            "Trying to access \"m2.example/x/app:1\"",
            None,
        ),
        crio(
            "01:00:00.000003",
            "Trying to access \"quay.io/x/app:1\"",
            None,
        ),
        crio(
            "01:00:01.000000",
            "Pulled image: quay.io/x/app@sha256:00",
            Some("p1"),
        ),
    ]
    .join("\n");
    let out = run(&body);
    let r = &out.records[0];
    let tries: Vec<u32> = r.attempts.iter().map(|a| a.tries).collect();
    assert_eq!(tries, [1, 1]);
    assert!(r.fallback);
}

/// Lines written by the real Debian skopeo 1.9.3 (`--debug`, three closed ports on 127.0.0.1),
/// captured into `journal_fixtures/skopeo_1.9.3_refused.log` with the time masked.
#[test]
fn real_skopeo_debug_output() {
    use mirrorscope_core::journal::{cimage_error, crio, logrus};
    let path = format!(
        "{}/tests/journal_fixtures/skopeo_1.9.3_refused.log",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut tried = Vec::new();
    let mut failed = Vec::new();
    let mut fatal = None;
    for line in text.lines() {
        match crio::parse_crio_line(line).unwrap() {
            Some(crio::CrioEvent::TryingToAccess { location, .. }) => tried.push(location),
            Some(crio::CrioEvent::AccessFailed { location, error }) => {
                failed.push((location, cimage_error::classify_error(&error)))
            }
            None => fatal = Some(logrus::parse_logrus(line).unwrap().msg.into_owned()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        tried,
        [
            "127.0.0.1:5999/library/tiny:2",
            "127.0.0.1:5997/sub/library/tiny:2",
            "127.0.0.1:5998/library/tiny:2"
        ]
    );
    assert!(failed
        .iter()
        .all(|(_, c)| *c == ErrorClass::ConnectionRefused));
    assert_eq!(failed.len(), 3);
    let fatal = fatal.expect("fatal line");
    let anchors: Vec<&str> = tried.iter().map(String::as_str).collect();
    let split = cimage_error::split_error(&fatal, &anchors);
    assert_eq!(split.len(), 3);
    for (a, t) in split.iter().zip(&tried) {
        assert_eq!(a.reference.as_deref(), Some(t.as_str()));
        assert_eq!(a.class, ErrorClass::ConnectionRefused);
        assert!(a
            .error
            .starts_with("pinging container registry 127.0.0.1:59"));
    }
    // Without anchors the structural split finds the same locations.
    let loose = cimage_error::split_error(&fatal, &[]);
    assert_eq!(loose, split);
}

#[test]
fn registry_unavailable_failure_names_the_pod_through_the_kubelet_rewording() {
    let e = r#"pinging container registry quay.io: Get \"https://quay.io/v2/\": dial tcp 127.0.0.1:443: connect: connection refused"#;
    let body = [
        crio("01:00:00.000001", "Pulling image: quay.io/x/app:1", Some("p1")),
        crio("01:00:00.000002", "Trying to access \"quay.io/x/app:1\"", None),
        format!(r#"01:00:00.100000 kubelet[9]: E1121 01:00:00.100000       9 log.go:32] "PullImage from image service failed" err="rpc error: code = Unknown desc = RegistryUnavailable: unable to pull image: initializing source docker://quay.io/x/app:1: {e}" image="quay.io/x/app:1""#),
        format!(r#"01:00:00.100300 kubelet[9]: E1121 01:00:00.100300       9 pod_workers.go:1324] "Error syncing pod, skipping" err="failed to \"StartContainer\" for \"c\" with RegistryUnavailable: \"image pull failed for quay.io/x/app:1 because the registry is unavailable: unable to pull image: initializing source docker://quay.io/x/app:1: {}\"" pod="ns/down-1" podUID="u""#, e.replace(r#"\""#, r#"\\\""#)),
    ]
    .join("\n");
    let out = run(&body);
    let r = &out.records[0];
    assert_eq!(r.outcome, PullOutcome::Failed);
    assert_eq!(
        r.attempts[0].error_class,
        Some(ErrorClass::ConnectionRefused)
    );
    assert_eq!(r.pod.as_deref(), Some("ns/down-1"));
}

#[test]
fn a_multi_entry_error_cut_short_still_closes_the_pull() {
    // The closing ` >` entry never arrives (journald rate limit, or end of the journal).
    let body = [
        crio("01:00:00.000001", "Pulling image: quay.io/x/app:1", Some("p1")),
        crio("01:00:00.000002", "Trying to access \"m1.example/x/app:1\"", None),
        crio("01:00:00.000003", "Trying to access \"m2.example/x/app:1\"", None),
        crio("01:00:00.000004", "Trying to access \"quay.io/x/app:1\"", None),
        r#"01:00:00.100000 kubelet[9]: E1121 01:00:00.100000       9 log.go:32] "PullImage from image service failed" image="quay.io/x/app:1" err=<"#.to_owned(),
        "01:00:00.100000 kubelet[9]: \\trpc error: code = Unknown desc = (Mirrors also failed: [m1.example/x/app:1: reading manifest 1 in m1.example/x/app: manifest unknown]".to_owned(),
        "01:00:00.100000 kubelet[9]: \\t[m2.example/x/app:1: reading manifest 1 in m2.example/x/app: manifest unknown]): quay.io/x/app:1: reading manifest 1 in quay.io/x/app: manifest unknown".to_owned(),
    ]
    .join("\n");
    let out = run(&body);
    let r = &out.records[0];
    assert_eq!(r.outcome, PullOutcome::Failed);
    assert_eq!(
        r.finished_at.as_deref(),
        Some("2026-11-21T01:00:00.100000Z")
    );
    assert!(r
        .attempts
        .iter()
        .all(|a| a.error_class == Some(ErrorClass::ManifestUnknown)));
}

#[test]
fn kubelet_failure_closes_the_pull_crio_reported_failing() {
    let body = [
        crio("01:00:00.000001", "Pulling image: quay.io/x/app:1", Some("ok")),
        crio("01:00:00.000002", "Pulling image: quay.io/x/app:1", Some("bad")),
        crio(
            "01:00:00.000003",
            "Falling back to pull quay.io/x/app:1 as an OCI artifact: reading manifest 1 in quay.io/x/app: unauthorized: authentication required",
            Some("bad"),
        ),
        r#"01:00:00.100000 kubelet[9]: E1121 01:00:00.100000       9 log.go:32] "PullImage from image service failed" err="rpc error: code = Unknown desc = unable to pull image or OCI artifact: pull image err: reading manifest 1 in quay.io/x/app: unauthorized: authentication required; artifact err: x" image="quay.io/x/app:1""#.to_owned(),
        crio("01:00:02.000000", "Pulled image: quay.io/x/app@sha256:00", Some("ok")),
    ]
    .join("\n");
    let out = run(&body);
    let ok = journal_support::by_id(&out.records, "ok");
    let bad = journal_support::by_id(&out.records, "bad");
    assert_eq!(ok.outcome, PullOutcome::Pulled);
    assert_eq!(bad.outcome, PullOutcome::Failed);
}

#[test]
fn advance_releases_and_expires_without_entries() {
    use mirrorscope_core::journal::{Correlator, StaticResolver};
    let f = parse(
        &[
            "@node n",
            &crio(
                "01:00:00.000001",
                "Pulling image: quay.io/x/app:1",
                Some("done"),
            ),
            &crio(
                "01:00:00.000002",
                "Pulled image: quay.io/x/app@sha256:00",
                Some("done"),
            ),
            &crio(
                "01:00:00.000003",
                "Pulling image: quay.io/x/app:1",
                Some("stuck"),
            ),
        ]
        .join("\n"),
    );
    let mut c = Correlator::new(Box::new(StaticResolver::new()), CorrelatorConfig::default());
    let mut out = Vec::new();
    for e in &f.entries {
        c.push(e, &mut out);
    }
    assert!(out.is_empty());
    let t0 = f.entries[0].realtime_usec;
    c.advance(t0 + 11_000_000, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].pull_id, "done");
    c.advance(t0 + 31 * 60 * 1_000_000, &mut out);
    assert_eq!(out.len(), 1, "abandoned pulls are held back too");
    c.advance(t0 + 32 * 60 * 1_000_000, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].outcome, PullOutcome::Abandoned);
    assert_eq!(c.stats().entries, 3);
}

fn crio_debug(t: &str, msg: &str) -> String {
    crio(t, msg, None).replacen("level=info", "level=debug", 1)
}

#[test]
fn debug_echoes_of_interleaved_pulls_are_each_one_try() {
    // Two pods pull the same image at once under containers/image 5.10–5.13 debug logging: each
    // info line's echo follows it, but the two pulls' lines interleave.
    let t = |l: &str| format!("Trying to access \"{l}\"");
    let body = [
        crio(
            "01:00:00.000001",
            "Pulling image: quay.io/x/app:1",
            Some("p1"),
        ),
        crio(
            "01:00:00.000002",
            "Pulling image: quay.io/x/app:1",
            Some("p2"),
        ),
        crio("01:00:00.000003", &t("m1.example/x/app:1"), None),
        crio("01:00:00.000004", &t("m1.example/x/app:1"), None),
        crio_debug("01:00:00.000005", &t("m1.example/x/app:1")),
        crio_debug("01:00:00.000006", &t("m1.example/x/app:1")),
        crio(
            "01:00:01.000000",
            "Pulled image: quay.io/x/app@sha256:00",
            Some("p1"),
        ),
        crio(
            "01:00:01.000001",
            "Pulled image: quay.io/x/app@sha256:00",
            Some("p2"),
        ),
    ]
    .join("\n");
    let out = run(&body);
    assert_eq!(out.records.len(), 2);
    for r in &out.records {
        assert_eq!(r.attempts.len(), 1, "{r:#?}");
        assert_eq!(r.attempts[0].tries, 1, "{r:#?}");
        assert_eq!(r.attempts[0].outcome, AttemptOutcome::Served);
    }
}

#[test]
fn a_debug_line_without_its_info_line_still_counts() {
    // Without the info line (a location retried after `Accessing … failed`), it is a try.
    let t = "Trying to access \"m1.example/x/app:1\"";
    let body = [
        crio("01:00:00.000001", "Pulling image: quay.io/x/app:1", Some("p1")),
        crio("01:00:00.000002", t, None),
        crio_debug("01:00:00.000003", t),
        crio_debug(
            "01:00:00.000004",
            "Accessing \"m1.example/x/app:1\" failed: reading manifest 1 in m1.example/x/app: manifest unknown",
        ),
        crio_debug("01:00:00.000005", t),
    ]
    .join("\n");
    let out = run(&body);
    let r = &out.records[0];
    assert_eq!(r.outcome, PullOutcome::InProgress);
    assert_eq!(r.attempts[0].tries, 2, "{r:#?}");
    // Its last known error stays: the location is not pending.
    assert_eq!(r.attempts[0].outcome, AttemptOutcome::Failed);
    assert_eq!(r.attempts[0].error_class, Some(ErrorClass::ManifestUnknown));
}

#[test]
fn a_kubelet_failure_after_a_crio_restart_is_not_a_second_record() {
    let body = [
        crio("01:00:00.000001", "Pulling image: quay.io/x/app:1", Some("p1")),
        crio("01:00:00.000002", "Trying to access \"m1.example/x/app:1\"", None),
        "01:00:01.000000 crio[2]: time=\"2026-11-21T01:00:01Z\" level=info msg=\"Starting CRI-O, version: 1.34.2, git: x(clean)\"".to_owned(),
        r#"01:00:02.000000 kubelet[9]: E1121 01:00:02.000000       9 log.go:32] "PullImage from image service failed" err="rpc error: code = Unavailable desc = error reading from server: EOF" image="quay.io/x/app:1""#.to_owned(),
    ];
    let out = run(&body.join("\n"));
    assert_eq!(out.records.len(), 1, "{:#?}", out.records);
    assert_eq!(out.records[0].outcome, PullOutcome::Abandoned);
    assert_eq!(out.records[0].attempts[0].outcome, AttemptOutcome::Pending);
    // The same kubelet line with the start of the pull before the input is a partial record.
    let out = run(&body[3]);
    assert_eq!(out.records.len(), 1, "{:#?}", out.records);
    let r = &out.records[0];
    assert!(r.partial);
    assert_eq!(r.started_at, None);
    assert_eq!(r.outcome, PullOutcome::Failed);
    assert_eq!(r.error.as_deref(), Some("error reading from server: EOF"));
}
