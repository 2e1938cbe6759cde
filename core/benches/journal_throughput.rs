//! Grammar + correlation throughput (entries/s) on a synthetic node journal where 10 % of the
//! entries are about pulls, the shape `mirrorscope-agent scan` sees.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mirrorscope_core::journal::{
    crio, kubelet, Correlator, CorrelatorConfig, JournalEntry, StaticResolver,
};

const ENTRIES: usize = 100_000;

fn entry(i: usize, unit: &str, message: String) -> JournalEntry {
    JournalEntry {
        cursor: format!("s=bench;i={i:x}"),
        realtime_usec: 1_795_219_200_000_000 + i as u64 * 1000,
        systemd_unit: Some(unit.to_owned()),
        syslog_identifier: Some(
            if unit == "crio.service" {
                "crio"
            } else {
                "kubenswrapper"
            }
            .to_owned(),
        ),
        hostname: Some("worker-1".to_owned()),
        pid: Some(if unit == "crio.service" { 1484 } else { 2213 }),
        message,
        line_continues: false,
    }
}

/// Builds the journal: per 100 entries, 10 belong to pulls (one success with a mirror miss,
/// one failure closed by a multi-entry kubelet error), 90 are ordinary CRI-O/kubelet chatter.
fn journal() -> (Vec<JournalEntry>, StaticResolver) {
    let mut resolver = StaticResolver::new();
    let mut out = Vec::with_capacity(ENTRIES);
    let mut block = 0usize;
    while out.len() < ENTRIES {
        let img = format!("quay.io/acme/app{}:{}", block % 50, block % 7);
        let m = format!("mirror.example.net/acme/app{}:{}", block % 50, block % 7);
        resolver.insert(&img, vec![m.clone(), img.clone()]);
        let t = |s: usize| {
            format!(
                "2026-11-21T07:{:02}:{:02}.{:06}Z",
                (block / 60) % 60,
                block % 60,
                s
            )
        };
        let id = format!("{block:08x}-0000-4000-8000-000000000001");
        let id2 = format!("{block:08x}-0000-4000-8000-000000000002");
        let mut pull: Vec<(&str, String)> = vec![
            ("crio.service", format!(r#"time="{}" level=info msg="Pulling image: {img}" id={id} name=/runtime.v1.ImageService/PullImage"#, t(1))),
            ("crio.service", format!(r#"time="{}" level=info msg="Trying to access \"{m}\"""#, t(2))),
            ("crio.service", format!(r#"time="{}" level=info msg="Trying to access \"{img}\"""#, t(3))),
            ("crio.service", format!(r#"time="{}" level=info msg="Pulled image: {img}@sha256:{:064x}" id={id} name=/runtime.v1.ImageService/PullImage"#, t(4), block)),
            ("crio.service", format!(r#"time="{}" level=info msg="Pulling image: {img}" id={id2} name=/runtime.v1.ImageService/PullImage"#, t(5))),
            ("crio.service", format!(r#"time="{}" level=info msg="Trying to access \"{m}\"""#, t(6))),
            ("crio.service", format!(r#"time="{}" level=info msg="Trying to access \"{img}\"""#, t(7))),
            ("kubelet.service", r#"E1121 07:05:01.123456    2213 log.go:32] "PullImage from image service failed" err=<"#.to_owned()),
            ("kubelet.service", format!("\trpc error: code = Unknown desc = initializing source docker://{img}: (Mirrors also failed: [{m}: reading manifest x in {m}: manifest unknown]")),
            ("kubelet.service", format!(" > image=\"{img}\"")),
        ];
        for k in 0..90 {
            let noise = match k % 3 {
                0 => (
                    "crio.service",
                    format!(
                        r#"time="{}" level=info msg="Checking image status: registry.k8s.io/pause:3.10" id={block:08x}-1111-4000-8000-{k:012} name=/runtime.v1.ImageService/ImageStatus"#,
                        t(10 + k)
                    ),
                ),
                1 => (
                    "crio.service",
                    format!(
                        r#"time="{}" level=info msg="Created container {k:064x}: shop/web-{block}/web" id={block:08x}-2222-4000-8000-{k:012} name=/runtime.v1.RuntimeService/CreateContainer"#,
                        t(10 + k)
                    ),
                ),
                _ => (
                    "kubelet.service",
                    format!(
                        r#"I1121 07:05:01.123456    2213 kubelet.go:2510] "SyncLoop (PLEG): event for pod" pod="shop/web-{block}" event={{"ID":"{k}","Type":"ContainerStarted"}}"#
                    ),
                ),
            };
            pull.push(noise);
        }
        for (unit, msg) in pull {
            let i = out.len();
            out.push(entry(i, unit, msg));
        }
        block += 1;
    }
    out.truncate(ENTRIES);
    (out, resolver)
}

/// 40,000 pulls of distinct images opened before any of them moves: every pull sees one
/// `Trying` line for its mirror while all are open, then its `Pulled` line. Correlation work per
/// line must not grow with the number of open pulls.
const OPEN_PULLS: usize = 40_000;

fn many_open_pulls() -> (Vec<JournalEntry>, StaticResolver) {
    let mut resolver = StaticResolver::new();
    let mut out = Vec::with_capacity(OPEN_PULLS * 3);
    let img = |k: usize| format!("quay.io/acme/svc{k}:1.{}", k % 13);
    let mirror = |k: usize| format!("mirror.example.net/acme/svc{k}:1.{}", k % 13);
    let id = |k: usize| format!("{k:08x}-0000-4000-8000-000000000003");
    const T: &str = "2026-11-21T07:05:01.000000Z";
    for k in 0..OPEN_PULLS {
        resolver.insert(&img(k), vec![mirror(k), img(k)]);
        let msg = format!(
            r#"time="{T}" level=info msg="Pulling image: {}" id={} name=/runtime.v1.ImageService/PullImage"#,
            img(k),
            id(k)
        );
        let i = out.len();
        out.push(entry(i, "crio.service", msg));
    }
    for k in 0..OPEN_PULLS {
        let msg = format!(
            r#"time="{T}" level=info msg="Trying to access \"{}\"""#,
            mirror(k)
        );
        let i = out.len();
        out.push(entry(i, "crio.service", msg));
    }
    for k in 0..OPEN_PULLS {
        let msg = format!(
            r#"time="{T}" level=info msg="Pulled image: {}@sha256:{k:064x}" id={} name=/runtime.v1.ImageService/PullImage"#,
            img(k),
            id(k)
        );
        let i = out.len();
        out.push(entry(i, "crio.service", msg));
    }
    (out, resolver)
}

fn bench_many_open(c: &mut Criterion) {
    let (entries, resolver) = many_open_pulls();
    let mut g = c.benchmark_group("journal");
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.sample_size(10);
    g.bench_function("correlate_40k_open_pulls", |b| {
        b.iter(|| {
            let mut c = Correlator::new(Box::new(resolver.clone()), CorrelatorConfig::default());
            let mut out = Vec::new();
            for e in &entries {
                let _ = c.push(e, &mut out);
            }
            out.extend(c.finish());
            assert_eq!(out.len(), OPEN_PULLS);
            black_box(out.len())
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let (entries, resolver) = journal();
    let mut g = c.benchmark_group("journal");
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.sample_size(10);
    g.bench_function("correlate_100k_entries", |b| {
        b.iter(|| {
            let mut c = Correlator::new(Box::new(resolver.clone()), CorrelatorConfig::default());
            let mut out = Vec::new();
            for e in &entries {
                let _ = c.push(e, &mut out);
            }
            out.extend(c.finish());
            black_box(out.len())
        })
    });
    // The hot path: entries that are not about pulls must be rejected without allocating.
    let noise: Vec<JournalEntry> = entries
        .iter()
        .filter(|e| {
            !crio::line_matters_for_pulls(&e.message)
                && !e.message.starts_with(['\t', ' '])
                && !kubelet::may_be_relevant(&e.message)
        })
        .cloned()
        .collect();
    g.throughput(Throughput::Elements(noise.len() as u64));
    g.bench_function("reject_noise_only", |b| {
        b.iter(|| {
            let mut c = Correlator::new(Box::new(resolver.clone()), CorrelatorConfig::default());
            let mut out = Vec::new();
            for e in &noise {
                let _ = c.push(e, &mut out);
            }
            black_box(out.len())
        })
    });
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function("grammar_only_100k_entries", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for e in &entries {
                if let Ok(Some(_)) = crio::parse_crio_line(&e.message) {
                    n += 1;
                } else if let Ok(Some(_)) = kubelet::parse_kubelet_line(&e.message) {
                    n += 1;
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench, bench_many_open);
criterion_main!(benches);
