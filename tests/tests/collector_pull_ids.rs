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

/// The agent sends a pull the moment it ends and amends it (same pull id, higher revision)
/// when the kubelet names its pod later: the collector keeps the latest, counted once.
#[test]
fn an_amended_record_replaces_the_first_and_is_not_counted_twice() {
    let c = Collector::start(&[]);
    let mut n = FakeNode::new("node-a");
    let mut first = pull_record("p1", "quay.io/ns/app:1", "quay.io/ns/app:1", false, false);
    first.pod = None;
    n.pulls = vec![first.clone()];
    let ack = n.push_to(&c.url);
    assert_eq!((ack.accepted, ack.duplicates, ack.amended), (1, 0, 0));
    let mut amended = first.clone();
    amended.pod = Some("ns/web-0".into());
    amended.revision = 1;
    n.pulls = vec![amended];
    let ack = n.push_to(&c.url);
    assert_eq!((ack.accepted, ack.duplicates, ack.amended), (0, 0, 1));
    // The first revision again (an agent restart resending its outbox) changes nothing.
    n.pulls = vec![first];
    let ack = n.push_to(&c.url);
    assert_eq!((ack.accepted, ack.duplicates, ack.amended), (0, 1, 0));
    let pulls = c.get_json("/v1/pulls");
    assert_eq!(pulls["matching"], 1, "{pulls}");
    assert_eq!(pulls["pulls"][0]["pod"], "ns/web-0", "{pulls}");
    assert_eq!(pulls["pulls"][0]["revision"], 1, "{pulls}");
    let quay = registry_stats(&c, "quay.io");
    assert_eq!(quay["pulls"], 1, "{quay}");
}
