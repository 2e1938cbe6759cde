//! Pull ids are the agent's own (a journal-derived counter or hash): two nodes may use the same
//! one, so the collector deduplicates per (node, pull id), never cluster-wide.

use mirrorscope_e2e::collector::*;

#[test]
fn two_nodes_with_the_same_pull_id_both_keep_their_pulls() {
    let c = Collector::start(&[]);
    let mut a = FakeNode::new("node-a");
    let mut b = FakeNode::new("node-b");
    a.pulls = vec![pull_record(
        "p1",
        "quay.io/ns/app:1",
        "quay.io/ns/app:1",
        false,
        false,
    )];
    b.pulls = vec![pull_record(
        "p1",
        "quay.io/ns/app:2",
        "quay.io/ns/app:2",
        false,
        false,
    )];
    let ack_a = a.push_to(&c.url);
    let ack_b = b.push_to(&c.url);
    assert_eq!((ack_a.accepted, ack_a.duplicates), (1, 0));
    assert_eq!(
        (ack_b.accepted, ack_b.duplicates),
        (1, 0),
        "node-b's pull was taken for node-a's"
    );
    let pulls = c.get_json("/v1/pulls");
    assert_eq!(pulls["matching"], 2, "{pulls}");
    let mut nodes: Vec<&str> = pulls["pulls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["node"].as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["node-a", "node-b"]);
    // Still deduplicated within one node.
    b.pulls = vec![pull_record(
        "p1",
        "quay.io/ns/app:2",
        "quay.io/ns/app:2",
        false,
        false,
    )];
    let again = b.push_to(&c.url);
    assert_eq!((again.accepted, again.duplicates), (0, 1));
}
