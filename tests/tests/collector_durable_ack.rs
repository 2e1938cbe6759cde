//! An acknowledged pull record survives `kill -9`: with `--state-file`, accepted records are in
//! a write-ahead log (fsync'd) before the 200, and replayed at the next start.

use mirrorscope_e2e::collector::*;

#[test]
fn acknowledged_records_survive_kill_9() {
    let dir = TempDir::new("wal");
    let state = dir.path().join("state.json");
    let args = ["--state-file", state.to_str().unwrap()];
    let mut c = Collector::start(&args);
    let mut n = FakeNode::new("node-a");
    n.pulls = vec![
        pull_record("p1", "quay.io/ns/app:1", "quay.io/ns/app:1", false, false),
        pull_record("p2", "quay.io/ns/app:2", "quay.io/ns/app:2", false, false),
    ];
    let ack = n.push_to(&c.url);
    assert_eq!(ack.accepted, 2);
    // Killed right after the 200, long before the periodic save.
    c.kill();
    let c = Collector::start(&args);
    let pulls = c.get_json("/v1/pulls");
    assert_eq!(
        pulls["matching"],
        2,
        "acknowledged records lost:\n{}",
        c.log()
    );
    let regs = c.get_json("/v1/registries");
    assert_eq!(regs["registries"][0]["pulls"], 2, "{regs}");
    // A replay of the same records is a duplicate, and nothing is counted twice after another
    // restart (the log was folded into the state file).
    n.pulls = vec![pull_record(
        "p1",
        "quay.io/ns/app:1",
        "quay.io/ns/app:1",
        false,
        false,
    )];
    let again = n.push_to(&c.url);
    assert_eq!((again.accepted, again.duplicates), (0, 1));
    c.stop();
    let c = Collector::start(&args);
    assert_eq!(c.get_json("/v1/pulls")["matching"], 2);
    assert_eq!(c.get_json("/v1/registries")["registries"][0]["pulls"], 2);
}
