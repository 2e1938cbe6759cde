//! Reports carry the agent instance and a sequence number: a replayed older report (seq at or
//! below the last accepted one of the same instance) is answered 200 with `"stale": ...` and
//! leaves the node's state alone; its pull records are still filed (deduplicated), so an agent
//! never forgets records the collector did not keep. A new instance (agent restart) starts over.

use mirrorscope_e2e::collector::*;

const OLD: &str = "[[registry]]\nlocation = 'quay.io/ns'\n[[registry.mirror]]\nlocation = 'old-mirror.example.com/ns'\n";
const NEW: &str = "[[registry]]\nlocation = 'quay.io/ns'\n[[registry.mirror]]\nlocation = 'new-mirror.example.com/ns'\n";

fn sha_of(c: &Collector) -> serde_json::Value {
    c.get_json("/v1/nodes/node-a")["report"]["registries"]["effective_digest"].clone()
}

#[test]
fn an_older_report_does_not_overwrite_a_newer_one() {
    let c = Collector::start(&[]);
    let mut n = FakeNode::new("node-a");
    n.write_registries(OLD);
    let mut seq5 = n.report();
    seq5.seq = 5;
    n.write_registries(NEW);
    let mut seq10 = n.report();
    seq10.seq = 10;
    let (status, body) = push(&c.url, None, &seq10);
    assert_eq!(status, 200, "{body}");
    let newest = sha_of(&c);
    assert_eq!(newest, serde_json::json!(seq10.registries.effective_digest));

    // The replay of seq 5, with a pull record the collector has not seen.
    seq5.pulls = vec![pull_record(
        "late",
        "quay.io/ns/a:1",
        "quay.io/ns/a:1",
        false,
        false,
    )];
    let (status, body) = push(&c.url, None, &seq5);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"stale\""), "{body}");
    assert!(body.contains("\"accepted\":1"), "{body}");
    assert_eq!(sha_of(&c), newest, "seq 5 restored the old configuration");
    assert_eq!(c.get_json("/v1/pulls")["matching"], 1);
    // The same seq again is stale too.
    let (_, body) = push(&c.url, None, &seq10);
    assert!(body.contains("\"stale\""), "{body}");
    let metrics = c.get("/metrics").1;
    assert!(
        metrics.contains(
            r#"mirrorscope_errors_total{component="ingest",error_type="stale_report"} 2"#
        ),
        "{metrics}"
    );

    // The agent restarts: a new instance's seq 1 is accepted.
    let mut restarted = seq5.clone();
    restarted.agent_instance = "restarted".into();
    restarted.seq = 1;
    restarted.pulls.clear();
    let (status, body) = push(&c.url, None, &restarted);
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("\"stale\""), "{body}");
    assert_eq!(
        sha_of(&c),
        serde_json::json!(seq5.registries.effective_digest)
    );
    // The old instance is gone for good: a late report of it is stale, whatever its seq.
    seq10.seq = 11;
    let (_, body) = push(&c.url, None, &seq10);
    assert!(body.contains("\"stale\""), "{body}");
    assert_eq!(
        sha_of(&c),
        serde_json::json!(seq5.registries.effective_digest)
    );
}
