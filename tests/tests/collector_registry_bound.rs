//! Per-registry statistics are bounded: past the bound (500), pulls count under `other` and the
//! folded ones are counted as an error, so `/v1/registries` and `/metrics` stay small whatever
//! image names the agents send.

use mirrorscope_e2e::collector::*;

const BOUND: usize = 500;

#[test]
fn a_thousand_distinct_registries_fold_into_other() {
    let c = Collector::start(&[]);
    let mut n = FakeNode::new("node-a");
    for batch in 0..4 {
        n.pulls = (0..250)
            .map(|i| {
                let image = format!("r{batch}-{i}.example.com/app:1");
                pull_record(&format!("p{batch}-{i}"), &image, &image, false, false)
            })
            .collect();
        let ack = n.push_to(&c.url);
        assert_eq!(ack.accepted, 250);
    }
    let regs = c.get_json("/v1/registries");
    let list = regs["registries"].as_array().unwrap();
    assert!(list.len() <= BOUND + 1, "{} registries kept", list.len());
    let other = list
        .iter()
        .find(|r| r["registry"] == "other")
        .expect("an `other` entry");
    let total: u64 = list.iter().map(|r| r["pulls"].as_u64().unwrap()).sum();
    assert_eq!(total, 1000, "every pull is still counted");
    assert_eq!(
        other["pulls"].as_u64().unwrap(),
        1000 - (list.len() as u64 - 1)
    );
    let metrics = c.get("/metrics").1;
    let labels: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("mirrorscope_cluster_fallbacks_total{"))
        .collect();
    assert!(
        labels.len() <= BOUND + 1,
        "{} registry label sets",
        labels.len()
    );
    assert!(
        metrics.contains(&format!(
            "mirrorscope_errors_total{{component=\"ingest\",error_type=\"registry_folded\"}} {}",
            1000 - BOUND
        )),
        "{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("mirrorscope_errors"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn flood_size() -> usize {
    std::env::var("MIRRORSCOPE_FLOOD_REGISTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// The attack that took the collector to 1.5 GB: one node sends pulls from hundreds of
/// thousands of distinct registries (`MIRRORSCOPE_FLOOD_REGISTRIES`, 20,000 in `tests/run`;
/// BENCHMARKS.md has 336,000 on the release build), then `/metrics` is scraped. The views and
/// label sets stay at the bound and the memory is printed (`MEASURE`).
#[test]
fn a_flood_of_distinct_registries_leaves_views_and_metrics_small() {
    let c = Collector::start(&[]);
    let mut n = FakeNode::new("node-a");
    let total = flood_size();
    let batch = 2_000;
    for start in (0..total).step_by(batch) {
        n.pulls = (start..(start + batch).min(total))
            .map(|i| {
                let image = format!("r{i}.flood.example.com/app:1");
                pull_record(&format!("f{i}"), &image, &image, false, false)
            })
            .collect();
        n.push_to(&c.url);
    }
    let metrics = c.get("/metrics").1;
    let registries = c.get("/v1/registries").1;
    let (rss, peak) = rss_kib(c.child.id());
    eprintln!(
        "MEASURE collector after {total} distinct registries and a scrape: VmRSS {rss} KiB, VmHWM {peak} KiB; /metrics {} bytes, /v1/registries {} bytes",
        metrics.len(),
        registries.len()
    );
    let labels = metrics
        .lines()
        .filter(|l| l.starts_with("mirrorscope_cluster_fallbacks_total{"))
        .count();
    assert!(labels <= BOUND + 1, "{labels} registry label sets");
    // 500 registries' series, whatever the flood's size.
    assert!(metrics.len() < 2 * 1024 * 1024, "{} bytes", metrics.len());
    let regs: serde_json::Value = serde_json::from_str(&registries).unwrap();
    assert_eq!(regs["registries"].as_array().unwrap().len(), BOUND + 1);
    assert!(metrics.contains(&format!(
        "mirrorscope_errors_total{{component=\"ingest\",error_type=\"registry_folded\"}} {}",
        total - BOUND
    )));
}

/// Records with long texts, 200 MiB of them in 7 MiB pushes (each within the body limit): the
/// pull window keeps at most 128 MiB of records, oldest out first, and every pull is counted.
#[test]
fn records_with_long_texts_are_bounded_by_bytes() {
    let c = Collector::start(&[]);
    let mut n = FakeNode::new("node-a");
    let text = "e".repeat(60 * 1024);
    let (pushes, per_push) = (30, 115);
    for push in 0..pushes {
        n.pulls = (0..per_push)
            .map(|i| {
                let image = format!("quay.io/app/p{push}-{i}:1");
                let mut p = pull_record(&format!("t{push}-{i}"), &image, &image, false, false);
                p.error = Some(text.clone());
                p
            })
            .collect();
        assert_eq!(n.push_to(&c.url).accepted, per_push as u64);
    }
    let pulls = c.get_json("/v1/pulls?limit=1");
    let kept = pulls["matching"].as_u64().unwrap();
    let (rss, peak) = rss_kib(c.child.id());
    eprintln!(
        "MEASURE collector after {} records of 60 KiB: VmRSS {rss} KiB, VmHWM {peak} KiB; {kept} kept",
        pushes * per_push
    );
    // 128 MiB of 60 KiB records is about 2,100; the window would otherwise keep all 3,450.
    assert!((1_500..=2_200).contains(&kept), "{kept} kept");
    let newest = format!("t{}-{}", pushes - 1, per_push - 1);
    assert_eq!(
        pulls["pulls"][0]["pull_id"],
        newest.as_str(),
        "the newest is kept"
    );
    assert_eq!(
        registry_stats(&c, "quay.io")["pulls"].as_u64(),
        Some((pushes * per_push) as u64)
    );
}
