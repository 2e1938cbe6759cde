//! Resolution speed on a 500-entry registries.conf with drop-ins, and parse time of that file.
//! Run: `cargo bench -p mirrorscope-core --bench resolve`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mirrorscope_core::cimage_version::CImageVersion;
use mirrorscope_core::reference::ImageReference;
use mirrorscope_core::registries::{parse_config_str, EffectiveConfig, FileKind};

/// 450 entries in the main file (hosts, namespaces, wildcards, 1-3 mirrors each) and 5 drop-ins
/// of 20 entries, half of them overriding main-file prefixes.
fn config_texts() -> (String, Vec<String>) {
    let entry = |i: usize, out: &mut String| {
        let prefix = match i % 4 {
            0 => format!("registry{i}.example.com"),
            1 => format!("registry{}.example.com/team{i}", i - 1),
            2 => format!("*.zone{i}.example.net"),
            _ => format!("quay.io/org{i}"),
        };
        let location = if i % 4 == 2 {
            String::new()
        } else {
            format!("location = \"{}\"\n", prefix)
        };
        out.push_str(&format!(
            "[[registry]]\nprefix = \"{prefix}\"\n{location}blocked = {}\n",
            i.is_multiple_of(3)
        ));
        for m in 0..1 + i % 3 {
            let usage = ["digest-only", "tag-only", "all"][m % 3];
            out.push_str(&format!("[[registry.mirror]]\nlocation = \"mirror{m}.corp.example.com:8443/m{i}\"\npull-from-mirror = \"{usage}\"\n"));
        }
    };
    let mut main = String::from(
        "unqualified-search-registries = [\"registry.access.redhat.com\", \"docker.io\"]\n",
    );
    for i in 0..450 {
        entry(i, &mut main);
    }
    let drop_ins = (0..5)
        .map(|d| {
            let mut s = String::new();
            for k in 0..20 {
                let i = if k % 2 == 0 {
                    d * 40 + k
                } else {
                    450 + d * 20 + k
                };
                entry(i, &mut s);
            }
            s
        })
        .collect();
    (main, drop_ins)
}

fn build() -> EffectiveConfig {
    let (main, drop_ins) = config_texts();
    let v = CImageVersion::LATEST;
    let main = parse_config_str(&main, "/etc/containers/registries.conf", FileKind::Main, v)
        .expect("main parses");
    let d = drop_ins.iter().enumerate().map(|(i, t)| {
        parse_config_str(t, &format!("/d/{i}.conf"), FileKind::DropIn, v).expect("drop-in parses")
    });
    EffectiveConfig::from_files(Some(main), d, ("/m".into(), "/d".into()))
}

fn images() -> Vec<String> {
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    (0..64)
        .map(|i| match i % 5 {
            0 => format!("registry{}.example.com/app/x:{i}", i * 4),
            1 => format!(
                "registry{}.example.com/team{}/svc@{digest}",
                i * 4,
                i * 4 + 1
            ),
            2 => format!("a.b.zone{}.example.net/ns/img:1", i * 4 + 2),
            3 => format!("quay.io/org{}/tool:v{i}", i * 4 + 3),
            _ => format!("ghcr.io/unmapped/thing{i}:latest"),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let cfg = build();
    assert!(
        cfg.registries.len() >= 500,
        "{} entries",
        cfg.registries.len()
    );
    let imgs = images();
    let parsed: Vec<ImageReference> = imgs
        .iter()
        .map(|i| ImageReference::parse_docker(i).expect("valid"))
        .collect();

    let mut g = c.benchmark_group("resolve");
    g.throughput(Throughput::Elements(parsed.len() as u64));
    g.bench_function("pull_sources/500 entries", |b| {
        b.iter(|| {
            for r in &parsed {
                black_box(cfg.pull_sources(black_box(r)).ok());
            }
        })
    });
    g.bench_function("parse_ref+pull_sources/500 entries", |b| {
        b.iter(|| {
            for i in &imgs {
                let r = ImageReference::parse_docker(black_box(i)).ok();
                black_box(r.and_then(|r| cfg.pull_sources(&r).ok()));
            }
        })
    });
    g.finish();

    let (main, drop_ins) = config_texts();
    let mut g = c.benchmark_group("load");
    g.throughput(Throughput::Bytes(
        (main.len() + drop_ins.iter().map(String::len).sum::<usize>()) as u64,
    ));
    g.bench_function("parse+merge 500-entry config with 5 drop-ins", |b| {
        b.iter(|| black_box(build()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
