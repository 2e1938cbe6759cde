//! A pull reaches the collector as soon as CRI-O logs `Pulled image`, not after the
//! correlator's wait for late kubelet lines: the record is sent at once and amended (same pull
//! id, revision 1) when the kubelet's event names the pod, and the collector replaces the first
//! with it. The latencies are printed (`MEASURE` lines) for BENCHMARKS.md, not asserted.

use std::time::{Duration, Instant};

use mirrorscope_e2e::agent::{Agent, HostRoot, LivePulls, LIVE_CONF};
use mirrorscope_e2e::collector::{registry_stats, write_atomic, Collector};
use mirrorscope_e2e::journal::Journald;
use serde_json::Value;

/// Far beyond any latency worth measuring: only a pull that never arrives fails the test.
const NEVER: Duration = Duration::from_secs(30);
const PULLS: u32 = 40;

fn pull_of(c: &Collector, id: &str) -> Option<Value> {
    let pulls = c.get_json("/v1/pulls?node=worker-1&limit=1000");
    let mine: Vec<Value> = pulls["pulls"]
        .as_array()?
        .iter()
        .filter(|p| p["pull_id"] == id)
        .cloned()
        .collect();
    assert!(mine.len() <= 1, "pull {id} kept twice: {mine:?}");
    mine.into_iter().next()
}

fn wait_for(c: &Collector, agent: &Agent, what: &str, ok: impl Fn() -> bool) -> Duration {
    let t0 = Instant::now();
    while !ok() {
        assert!(
            t0.elapsed() < NEVER,
            "{what} never reached the collector\nagent log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = c;
    t0.elapsed()
}

#[test]
fn pulls_reach_the_collector_at_once_and_amendments_replace_them() {
    let j = Journald::start();
    let root = HostRoot::new("agent-latency");
    write_atomic(
        &root.at("/etc/containers/registries.conf"),
        LIVE_CONF.as_bytes(),
    );
    let c = Collector::start(&[]);
    let mut args = root.args();
    args.extend(
        [
            "--journal-dir",
            j.dir().to_str().unwrap(),
            "--node-name",
            "worker-1",
            "--collector",
            &c.url,
        ]
        .map(String::from),
    );
    // The helper's --journal-dir comes first; the agent follows both (the first is empty).
    let agent = Agent::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    wait_for(&c, &agent, "the node's first report", || {
        c.get("/v1/nodes/worker-1").0 == 200
    });
    let live = LivePulls(&j);
    let mut latencies = Vec::new();
    for n in 0..PULLS {
        let id = LivePulls::id(n);
        let t0 = Instant::now();
        live.via_mirror(n);
        wait_for(&c, &agent, "a pull", || pull_of(&c, &id).is_some());
        latencies.push(t0.elapsed());
        let first = pull_of(&c, &id).unwrap();
        assert_eq!(first["outcome"], "pulled", "{first}");
        assert_eq!(
            first["served_by"],
            format!("mirror.live.example.net/live/app-{n}:1")
        );
        if n % 4 == 0 {
            // The kubelet's event after the record went out: an amendment, to replace it.
            assert!(first["pod"].is_null(), "{first}");
            live.kubelet_pulled(n, &format!("live/web-{n}"));
        }
    }
    // Amendments leave with the correlator's linger (10 s) for further late lines.
    for n in (0..PULLS).step_by(4) {
        let id = LivePulls::id(n);
        wait_for(&c, &agent, "an amendment", || {
            pull_of(&c, &id).is_some_and(|p| p["pod"] == format!("live/web-{n}"))
        });
        assert_eq!(pull_of(&c, &id).unwrap()["revision"], 1);
    }
    // The others were sent once: nothing late changed them.
    for n in (1..PULLS).filter(|n| n % 4 != 0) {
        let p = pull_of(&c, &LivePulls::id(n)).unwrap();
        assert!(p.get("revision").is_none() && p["pod"].is_null(), "{p}");
    }
    // Counted once each, amendments included.
    let quay = registry_stats(&c, "quay.io");
    assert_eq!(quay["pulls"], PULLS, "{quay}");
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "MEASURE pull-to-collector latency over {PULLS} pulls: p50 {:?} p99 {:?} max {:?}",
        at(0.5),
        at(0.99),
        latencies[latencies.len() - 1]
    );
}
