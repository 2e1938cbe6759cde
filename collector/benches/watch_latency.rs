//! From an IDMS change at the API server to the collector's new desired state: the collector
//! watches the mocked API server (real object shapes, a watch stream per kind) and this measures
//! how long until `/v1/nodes` names the new rendering (p50/p99 over `MIRRORSCOPE_BENCH_CHANGES`
//! changes, default 50). Goal: under 1 s (the old re-listing took up to 10 s).
//!
//! `cargo build --workspace --bins && cargo bench -p mirrorscope-collector --bench watch_latency`
//! (not part of `tests/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use mirrorscope_e2e::collector::{list, Collector, MockApi};
use serde_json::json;

fn idms(mirror: &str) -> serde_json::Value {
    json!({
        "apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet",
        "metadata": {"name": "bench"},
        "spec": {"imageDigestMirrors": [{"source": "quay.io/ns", "mirrors": [mirror]}]}
    })
}

fn desired(c: &Collector) -> Option<String> {
    c.get_json("/v1/nodes")["target"]["digest"]
        .as_str()
        .map(str::to_string)
}

fn main() {
    let changes: usize = std::env::var("MIRRORSCOPE_BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let api = MockApi::start();
    for (path, kind, version) in [
        ("/api/v1/nodes", "Node", "v1"),
        (
            "/apis/machineconfiguration.openshift.io/v1/machineconfigpools",
            "MachineConfigPool",
            "machineconfiguration.openshift.io/v1",
        ),
        (
            "/apis/machineconfiguration.openshift.io/v1/machineconfigs",
            "MachineConfig",
            "machineconfiguration.openshift.io/v1",
        ),
        (
            "/apis/config.openshift.io/v1/imagetagmirrorsets",
            "ImageTagMirrorSet",
            "config.openshift.io/v1",
        ),
    ] {
        api.set(path, list(kind, version, vec![]));
    }
    api.set(
        "/apis/config.openshift.io/v1/imagedigestmirrorsets",
        list(
            "ImageDigestMirrorSet",
            "config.openshift.io/v1",
            vec![idms("m0.example.com/ns")],
        ),
    );
    let c = Collector::start(&["--in-cluster", "--kube-api", &api.url]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while desired(&c).is_none() {
        assert!(Instant::now() < deadline, "no desired state: {}", c.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut samples = Vec::with_capacity(changes);
    for i in 1..=changes {
        let before = desired(&c);
        let t = Instant::now();
        api.set(
            "/apis/config.openshift.io/v1/imagedigestmirrorsets/bench",
            idms(&format!("m{i}.example.com/ns")),
        );
        while desired(&c) == before {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "change {i} never arrived"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        samples.push(t.elapsed());
    }
    samples.sort();
    let pct =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "IDMS change to desired state over {} changes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        samples.len(),
        pct(0.5).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        samples[samples.len() - 1].as_secs_f64() * 1000.0
    );
}
