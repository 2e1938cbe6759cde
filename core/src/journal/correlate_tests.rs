//! The indexed correlator against its definition: records equal to the scanning correlator's
//! (`correlate_naive`, the code before the indexes) on random journals, and work per line that
//! does not grow with the number of open pulls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::journal::correlate_naive;
use crate::journal::{JournalEntry, StaticResolver};

const T0: u64 = 1_795_219_200_000_000;
const TIME: &str = "2026-11-21T07:05:01.000000Z";

fn entry(i: usize, usec: u64, message: String) -> JournalEntry {
    let crio = message.starts_with("time=");
    JournalEntry {
        cursor: format!("s=corr;i={i:x}"),
        realtime_usec: usec,
        systemd_unit: Some(
            if crio {
                "crio.service"
            } else {
                "kubelet.service"
            }
            .to_owned(),
        ),
        syslog_identifier: Some(if crio { "crio" } else { "kubenswrapper" }.to_owned()),
        hostname: Some("worker-1".to_owned()),
        pid: Some(if crio { 1484 } else { 2213 }),
        message,
        line_continues: false,
    }
}

fn pulling(img: &str, id: &str) -> String {
    format!(
        r#"time="{TIME}" level=info msg="Pulling image: {img}" id={id} name=/runtime.v1.ImageService/PullImage"#
    )
}

fn trying(loc: &str, level: &str) -> String {
    format!(r#"time="{TIME}" level={level} msg="Trying to access \"{loc}\"""#)
}

fn pulled(reference: &str, id: &str) -> String {
    format!(
        r#"time="{TIME}" level=info msg="Pulled image: {reference}" id={id} name=/runtime.v1.ImageService/PullImage"#
    )
}

fn kubelet_failed(img: &str, err: &str) -> String {
    format!(
        r#"E1121 07:05:01.100000    2213 log.go:32] "PullImage from image service failed" err="rpc error: code = Unknown desc = {err}" image="{img}""#
    )
}

fn run_indexed(
    resolver: &StaticResolver,
    config: CorrelatorConfig,
    entries: &[JournalEntry],
) -> (Vec<PullRecord>, u64) {
    let mut c = Correlator::new(Box::new(resolver.clone()), config);
    let mut out = Vec::new();
    for e in entries {
        let _ = c.push(e, &mut out);
    }
    let visits = c.open.visits;
    out.extend(c.finish());
    (out, visits)
}

fn run_naive(
    resolver: &StaticResolver,
    config: CorrelatorConfig,
    entries: &[JournalEntry],
) -> Vec<PullRecord> {
    let config = correlate_naive::CorrelatorConfig {
        abandon_after_usec: config.abandon_after_usec,
        linger_usec: config.linger_usec,
        pod_hint_usec: config.pod_hint_usec,
    };
    let mut c = correlate_naive::Correlator::new(Box::new(resolver.clone()), config);
    let mut out = Vec::new();
    for e in entries {
        let _ = c.push(e, &mut out);
    }
    out.extend(c.finish());
    out
}

fn img(k: usize) -> String {
    format!("quay.io/acme/svc{k}:1.{}", k % 13)
}

fn mirror(k: usize) -> String {
    format!("mirror.example.net/acme/svc{k}:1.{}", k % 13)
}

fn id(k: usize) -> String {
    format!("{k:08x}-0000-4000-8000-000000000003")
}

/// `n` pulls of distinct images, all opened first; then each tries its mirror and its source
/// while all are still open, then is pulled.
fn distinct_pulls(n: usize) -> (Vec<JournalEntry>, StaticResolver) {
    let mut resolver = StaticResolver::new();
    let mut lines = Vec::new();
    for k in 0..n {
        resolver.insert(&img(k), vec![mirror(k), img(k)]);
        lines.push(pulling(&img(k), &id(k)));
    }
    for k in 0..n {
        lines.push(trying(&mirror(k), "info"));
    }
    for k in 0..n {
        lines.push(trying(&img(k), "info"));
    }
    for k in 0..n {
        lines.push(pulled(&format!("{}@sha256:{k:064x}", img(k)), &id(k)));
    }
    let entries = lines
        .into_iter()
        .enumerate()
        .map(|(i, m)| entry(i, T0 + i as u64, m))
        .collect();
    (entries, resolver)
}

#[test]
fn twenty_thousand_open_pulls_give_the_right_records() {
    let n = 20_000;
    let (entries, resolver) = distinct_pulls(n);
    let (mut out, visits) = run_indexed(&resolver, CorrelatorConfig::default(), &entries);
    assert_eq!(out.len(), n);
    out.sort_by(|a, b| a.pull_id.cmp(&b.pull_id));
    for (k, r) in out.iter().enumerate() {
        assert_eq!(r.pull_id, id(k));
        assert_eq!(r.image, img(k));
        assert_eq!(r.outcome, PullOutcome::Pulled);
        assert_eq!(r.served_by.as_deref(), Some(img(k).as_str()));
        assert!(!r.via_mirror);
        assert!(r.fallback);
        assert_eq!(
            r.digest.as_deref(),
            Some(format!("sha256:{k:064x}").as_str())
        );
        assert!(!r.partial);
        let got: Vec<(&str, AttemptOutcome, bool, u32)> = r
            .attempts
            .iter()
            .map(|a| (a.reference.as_str(), a.outcome, a.mirror, a.tries))
            .collect();
        assert_eq!(
            got,
            vec![
                (mirror(k).as_str(), AttemptOutcome::Failed, true, 1),
                (img(k).as_str(), AttemptOutcome::Served, false, 1),
            ]
        );
    }
    // One pull read or changed per line: inserted, tried twice, removed.
    assert_eq!(visits, 4 * n as u64);
}

#[test]
fn open_pull_work_per_line_does_not_grow_with_open_pulls() {
    // The scanning correlator visited every open pull for each `Trying` and `Pulled` line:
    // about 2.5 n² visits here. The indexed one visits a constant number per line.
    for n in [100, 1_000, 10_000] {
        let (entries, resolver) = distinct_pulls(n);
        let (_, visits) = run_indexed(&resolver, CorrelatorConfig::default(), &entries);
        assert_eq!(visits, entries.len() as u64, "n = {n}");
    }
    // Concurrent pulls of one image (one pod each, the case where several pulls match every
    // location): still one pull per line.
    for n in [100, 1_000, 10_000] {
        let (entries, resolver) = identical_pulls(n);
        let (out, visits) = run_indexed(&resolver, CorrelatorConfig::default(), &entries);
        assert_eq!(out.len(), n);
        assert!(visits <= 2 * entries.len() as u64, "n = {n}: {visits}");
    }
}

/// `n` pulls of the same image, each trying the mirror (info line, its debug echo, the debug
/// failure) and then failing as the kubelet reports it.
fn identical_pulls(n: usize) -> (Vec<JournalEntry>, StaticResolver) {
    let image = "quay.io/acme/shared:1";
    let m = "mirror.example.net/acme/shared:1";
    let resolver = StaticResolver::new().with(image, &[m, image]);
    let mut lines = Vec::new();
    for k in 0..n {
        lines.push(pulling(image, &id(k)));
    }
    for _ in 0..n {
        lines.push(trying(m, "info"));
        lines.push(trying(m, "debug"));
        lines.push(format!(
            r#"time="{TIME}" level=debug msg="Accessing \"{m}\" failed: reading manifest 1 in {m}: manifest unknown""#
        ));
    }
    for _ in 0..n {
        lines.push(kubelet_failed(image, "boom"));
    }
    let entries = lines
        .into_iter()
        .enumerate()
        .map(|(i, msg)| entry(i, T0 + i as u64, msg))
        .collect();
    (entries, resolver)
}

#[test]
fn same_records_as_the_scanning_correlator_on_the_load_shapes() {
    for (entries, resolver) in [distinct_pulls(300), identical_pulls(300)] {
        let config = CorrelatorConfig::default();
        let (indexed, _) = run_indexed(&resolver, config, &entries);
        assert_eq!(indexed, run_naive(&resolver, config, &entries));
    }
}

/// A small deterministic generator (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
}

const IMAGES: &[&str] = &[
    "quay.io/a/app:1",
    "quay.io/b/app:1",
    "quay.io/x/db:2",
    "web",
    "docker.io/library/web",
    "quay.io/c/api@sha256:00000000000000000000000000000000000000000000000000000000000000aa",
];

const LOCATIONS: &[&str] = &[
    "mirror.example/a/app:1",
    "mirror2.example/a/app:1",
    "quay.io/a/app:1",
    "quay.io/b/app:1",
    "quay.io/x/db:2",
    "other.example/x/db:2",
    "docker.io/library/web:latest",
    "mirror.example/library/web:latest",
    "quay.io/c/api@sha256:00000000000000000000000000000000000000000000000000000000000000aa",
    "mirror.example/c/api@sha256:00000000000000000000000000000000000000000000000000000000000000aa",
];

const PODS: &[&str] = &["shop/web-1", "shop/web-2", "ops/db-0"];

fn resolvers() -> [StaticResolver; 2] {
    let a = StaticResolver::new()
        .with(
            "quay.io/a/app:1",
            &["mirror.example/a/app:1", "quay.io/a/app:1"],
        )
        .with(
            "quay.io/b/app:1",
            &[
                "mirror.example/a/app:1",
                "quay.io/b/app:1",
                "mirror.example/a/app:1",
            ],
        )
        .with(
            "quay.io/c/api@sha256:00000000000000000000000000000000000000000000000000000000000000aa",
            &[
                "mirror.example/c/api@sha256:00000000000000000000000000000000000000000000000000000000000000aa",
                "quay.io/c/api@sha256:00000000000000000000000000000000000000000000000000000000000000aa",
            ],
        )
        .with("web", &["mirror.example/library/web:latest", "docker.io/library/web:latest"]);
    let b = StaticResolver::new()
        .with(
            "quay.io/a/app:1",
            &["mirror2.example/a/app:1", "quay.io/a/app:1"],
        )
        .with(
            "quay.io/x/db:2",
            &["other.example/x/db:2", "quay.io/x/db:2"],
        );
    [a, b]
}

fn random_line(rng: &mut Lcg) -> String {
    let ids = [
        "id-0", "id-1", "id-2", "id-3", "id-4", "id-5", "id-6", "id-7",
    ];
    match rng.below(20) {
        0..=3 => {
            let image = rng.pick(IMAGES);
            if rng.below(8) == 0 {
                format!(r#"time="{TIME}" level=info msg="Pulling image: {image}""#)
            } else {
                pulling(image, rng.pick(&ids))
            }
        }
        4..=8 => {
            let level = if rng.below(3) == 0 { "debug" } else { "info" };
            trying(rng.pick(LOCATIONS), level)
        }
        9 => {
            let loc = rng.pick(LOCATIONS);
            format!(
                r#"time="{TIME}" level=debug msg="Accessing \"{loc}\" failed: reading manifest 1 in {loc}: manifest unknown""#
            )
        }
        10 | 11 => {
            let id = rng.pick(&ids);
            match rng.below(4) {
                0 => pulled(
                    "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                    id,
                ),
                1 => pulled(rng.pick(IMAGES), id),
                _ => pulled(
                    &format!(
                        "{}@sha256:{:064x}",
                        rng.pick(IMAGES).split('@').next().unwrap_or(""),
                        rng.below(5)
                    ),
                    id,
                ),
            }
        }
        12 | 13 => {
            let image = rng.pick(IMAGES);
            let err = match rng.below(3) {
                0 => "boom".to_owned(),
                1 => format!(
                    "initializing source docker://{image}: (Mirrors also failed: [mirror.example/a/app:1: reading manifest 1 in mirror.example/a/app: manifest unknown]): {image}: reading manifest 1 in {image}: manifest unknown"
                ),
                _ => format!("reading manifest 1 in {image}: unauthorized: authentication required"),
            };
            kubelet_failed(image, &err)
        }
        14 => {
            let image = rng.pick(IMAGES);
            format!(
                r#"time="{TIME}" level=info msg="Falling back to pull {image} as an OCI artifact: reading manifest 1 in {image}: manifest unknown" id={}"#,
                rng.pick(&ids)
            )
        }
        15 => {
            if rng.below(4) == 0 {
                format!(
                    r#"time="{TIME}" level=info msg="Starting CRI-O, version: 1.34.11, git: abc(clean)""#
                )
            } else {
                // containers/image's blob-level fallback (debug only), and other debug lines.
                let loc = rng.pick(LOCATIONS);
                match rng.below(6) {
                    0 => format!(
                        r#"time="{TIME}" level=debug msg="Blob sha256:{:064x} fetch from \"{loc}\" failed (fetching blob: blob unknown to registry), trying fallback sources""#,
                        rng.below(3)
                    ),
                    1 => format!(
                        r#"time="{TIME}" level=debug msg="Blob fetch succeeded from fallback source \"{loc}\", switching to it for future requests""#
                    ),
                    2 => format!(
                        r#"time="{TIME}" level=debug msg="Downloading /v2/a/app/blobs/sha256:00""#
                    ),
                    _ => trying(loc, "debug"),
                }
            }
        }
        16 | 17 => {
            let reason = ["Pulling", "Pulled", "Failed"][rng.below(3)];
            let image = rng.pick(IMAGES);
            let message = match reason {
                "Pulling" => format!(r#"Pulling image \"{image}\""#),
                "Pulled" => format!(
                    r#"Successfully pulled image \"{image}\" in 1s (1s including waiting). Image size: 10 bytes."#
                ),
                _ => format!(r#"Failed to pull image \"{image}\": boom"#),
            };
            format!(
                r#"I1121 07:05:00.900000    2213 event.go:389] "Event occurred" object="{}" fieldPath="spec.containers{{web}}" kind="Pod" apiVersion="v1" type="Normal" reason="{reason}" message="{message}""#,
                rng.pick(PODS)
            )
        }
        _ => {
            let pod = rng.pick(PODS);
            let (ns, name) = pod.split_once('/').unwrap_or(("", ""));
            let err = ["boom", "unauthorized: authentication required"][rng.below(2)];
            format!(
                r#"E1121 07:05:01.000200    2213 kuberuntime_manager.go:1449] "Unhandled Error" err="container web start failed in pod {name}_{ns}(0c1f-22): ErrImagePull: {err}" logger="UnhandledError""#
            )
        }
    }
}

#[test]
fn same_records_as_the_scanning_correlator_on_random_journals() {
    let config = CorrelatorConfig {
        abandon_after_usec: 5_000_000,
        linger_usec: 1_000_000,
        pod_hint_usec: 2_000_000,
        emit_early: false,
    };
    let [ra, rb] = resolvers();
    let mut compared = 0usize;
    for seed in 0..400u64 {
        let mut rng = Lcg(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5151);
        let mut fast = Correlator::new(Box::new(ra.clone()), config);
        let naive_config = correlate_naive::CorrelatorConfig {
            abandon_after_usec: config.abandon_after_usec,
            linger_usec: config.linger_usec,
            pod_hint_usec: config.pod_hint_usec,
        };
        let mut slow = correlate_naive::Correlator::new(Box::new(ra.clone()), naive_config);
        let (mut out_fast, mut out_slow) = (Vec::new(), Vec::new());
        let mut now = T0;
        for i in 0..300 {
            // Mostly close together; sometimes past the linger, hint or abandon windows, or
            // a little backwards (journal time is not monotonic).
            now = match rng.below(30) {
                0 => now + 1_500_000,
                1 => now + 6_000_000,
                2 => now.saturating_sub(300_000),
                3 => now + 2_100_000,
                _ => now + rng.below(200_000) as u64,
            };
            match rng.below(60) {
                0 => {
                    fast.set_resolver(Box::new(rb.clone()));
                    slow.set_resolver(Box::new(rb.clone()));
                }
                1 => {
                    fast.set_resolver(Box::new(ra.clone()));
                    slow.set_resolver(Box::new(ra.clone()));
                }
                2 => {
                    fast.advance(now, &mut out_fast);
                    slow.advance(now, &mut out_slow);
                    continue;
                }
                _ => {}
            }
            let e = entry(i, now, random_line(&mut rng));
            let nf = fast.push(&e, &mut out_fast);
            let ns = slow.push(&e, &mut out_slow);
            assert_eq!(format!("{nf:?}"), format!("{ns:?}"), "seed {seed} line {i}");
            assert_eq!(out_fast, out_slow, "seed {seed} line {i}: {}", e.message);
            assert_eq!(fast.open_pulls(), slow.open_pulls(), "seed {seed} line {i}");
        }
        let st = slow.stats();
        let sf = fast.stats();
        assert_eq!(
            (sf.entries, sf.relevant, sf.malformed, sf.unattached),
            (st.entries, st.relevant, st.malformed, st.unattached),
            "seed {seed}"
        );
        assert_eq!(fast.finish(), slow.finish(), "seed {seed}");
        compared += out_fast.len();
    }
    // The journals must exercise the correlator, not just parse.
    assert!(compared > 2_000, "{compared}");
}

/// With `emit_early`, every record comes out when its pull finishes, and again only when late
/// lines amended it: the latest revision of each pull is exactly the record the lingering
/// correlator gives, on random journals.
#[test]
fn early_records_amended_by_revision_end_as_the_lingering_ones() {
    let lingering = CorrelatorConfig {
        abandon_after_usec: 5_000_000,
        linger_usec: 1_000_000,
        pod_hint_usec: 2_000_000,
        emit_early: false,
    };
    let early = CorrelatorConfig {
        emit_early: true,
        ..lingering
    };
    let [ra, _] = resolvers();
    let (mut amended, mut earlier) = (0usize, 0usize);
    for seed in 0..300u64 {
        let mut rng = Lcg(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x7171);
        let mut now = T0;
        let mut entries = Vec::new();
        for i in 0..200 {
            now = match rng.below(20) {
                0 => now + 1_500_000,
                1 => now + 6_000_000,
                _ => now + rng.below(200_000) as u64,
            };
            entries.push(entry(i, now, random_line(&mut rng)));
        }
        let mut want = Correlator::new(Box::new(ra.clone()), lingering);
        let mut got = Correlator::new(Box::new(ra.clone()), early);
        let (mut out_want, mut out_got) = (Vec::new(), Vec::new());
        // The random journals reuse request ids: a pull is its id and the entry that opened it.
        let key = |r: &PullRecord| (r.pull_id.clone(), r.cursor.clone(), r.started_at.clone());
        let mut first_seen: std::collections::HashMap<_, usize> = Default::default();
        for (i, e) in entries.iter().enumerate() {
            let (w0, g0) = (out_want.len(), out_got.len());
            let _ = want.push(e, &mut out_want);
            let _ = got.push(e, &mut out_got);
            for r in &out_got[g0..] {
                first_seen.entry(key(r)).or_insert(i);
            }
            // Nothing comes out later than it would have lingering.
            for r in &out_want[w0..] {
                assert!(
                    first_seen.contains_key(&key(r)),
                    "seed {seed}: {} late",
                    r.pull_id
                );
            }
        }
        out_want.extend(want.finish());
        out_got.extend(got.finish());
        let mut latest: std::collections::BTreeMap<_, PullRecord> = Default::default();
        for r in out_got {
            if let Some(prev) = latest.get(&key(&r)) {
                assert!(
                    r.revision > prev.revision,
                    "seed {seed}: {} sent twice unchanged",
                    r.pull_id
                );
                amended += 1;
            }
            latest.insert(key(&r), r);
        }
        let want: std::collections::BTreeMap<_, PullRecord> =
            out_want.into_iter().map(|r| (key(&r), r)).collect();
        assert_eq!(want.len(), latest.len(), "seed {seed}");
        for (id, mut r) in latest {
            if r.revision == 0 {
                earlier += 1;
            }
            r.revision = 0;
            assert_eq!(Some(&r), want.get(&id), "seed {seed}");
        }
    }
    // Both paths must be exercised: records never amended, and amendments (a pod learned late).
    assert!(
        amended > 50 && earlier > 500,
        "amended {amended}, unchanged {earlier}"
    );
}

/// Blob provenance from containers/image's debug lines: with them, the source each layer came
/// from and each failed layer fetch; without any debug line, `unknown`. Both correlators agree.
#[test]
fn blob_source_follows_the_fallback_lines_and_is_unknown_at_info_level() {
    let (src, m1, m2) = (
        "quay.io/a/app:1",
        "m1.example/a/app:1",
        "m2.example/a/app:1",
    );
    let resolver = StaticResolver::new().with(src, &[m1, m2, src]);
    let digest = format!("sha256:{:064x}", 7);
    let debug = |msg: &str| format!(r#"time="{TIME}" level=debug msg="{msg}""#);
    let pull = |id: &str, middle: Vec<String>| {
        let mut lines = vec![pulling(src, id), trying(m1, "info")];
        lines.extend(middle);
        lines.push(pulled(&format!("{m1}@{digest}"), id));
        lines
    };
    let mut lines = pull(
        "id-fallback",
        vec![
            debug(&format!(
                r#"Blob sha256:5e fetch from \"{m1}\" failed (fetching blob: blob unknown to registry), trying fallback sources"#
            )),
            trying(m2, "debug"),
            debug(&format!(
                r#"Accessing \"{m2}\" failed: pinging container registry m2.example: dial tcp 127.0.0.1:5: connect: connection refused"#
            )),
            trying(src, "debug"),
            debug(&format!(
                r#"Blob fetch succeeded from fallback source \"{src}\", switching to it for future requests"#
            )),
        ],
    );
    lines.extend(pull("id-info", vec![]));
    lines.extend(pull(
        "id-debug",
        vec![debug("Downloading /v2/a/app/blobs/sha256:5e")],
    ));
    let entries: Vec<JournalEntry> = lines
        .into_iter()
        .enumerate()
        .map(|(i, m)| entry(i, T0 + i as u64 * 1_000, m))
        .collect();
    let (records, _) = run_indexed(&resolver, CorrelatorConfig::default(), &entries);
    assert_eq!(
        records,
        run_naive(&resolver, CorrelatorConfig::default(), &entries)
    );
    let by_id = |id: &str| records.iter().find(|r| r.pull_id == id).unwrap();

    let r = by_id("id-fallback");
    // The manifest came from the first mirror; the blob lines are not manifest attempts.
    assert_eq!(r.served_by.as_deref(), Some(m1));
    assert!(r.via_mirror && !r.fallback);
    assert_eq!(r.attempts.len(), 1, "{:?}", r.attempts);
    assert_eq!(r.blob_source.as_deref(), Some(src));
    let failures: Vec<(&str, Option<&str>, Option<ErrorClass>)> = r
        .blob_failures
        .iter()
        .map(|f| (f.reference.as_str(), f.digest.as_deref(), f.error_class))
        .collect();
    assert_eq!(
        failures,
        [
            (m1, Some("sha256:5e"), Some(ErrorClass::BlobUnknown)),
            (m2, None, Some(ErrorClass::ConnectionRefused)),
        ]
    );

    // Nothing at debug level since that pull: nobody can tell where its layers came from.
    let r = by_id("id-info");
    assert_eq!(
        r.blob_source.as_deref(),
        Some(super::super::BLOB_SOURCE_UNKNOWN)
    );
    assert!(r.blob_failures.is_empty());
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["blob_source"], "unknown");
    assert!(json.get("blob_failures").is_none());

    // Debug lines during the pull and no fallback line: the layers came with the manifest.
    let r = by_id("id-debug");
    assert_eq!(r.blob_source.as_deref(), Some(m1));
}
