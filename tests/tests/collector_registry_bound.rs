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
