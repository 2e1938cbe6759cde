//! Bounded load test of the collector (not part of tests/run): N simulated nodes push reports
//! on loopback for a fixed time; prints ingest latency p50/p99, the collector's RSS, `status`
//! latency, and the time from the last node landing to `mirrorscope wait` returning.
//!
//! `cargo bench -p mirrorscope-collector --bench load`
//! Knobs: MIRRORSCOPE_BENCH_NODES (5000), MIRRORSCOPE_BENCH_SECS (60),
//! MIRRORSCOPE_BENCH_HEARTBEAT_SECS (10), MIRRORSCOPE_BENCH_CONNS (64).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mirrorscope_core::journal::PullRecord;
use mirrorscope_core::openshift::TEMPLATE_REGISTRIES_CONF;
use mirrorscope_core::openshift::{parse_str, render, ParseOptions, RenderOptions};
use mirrorscope_core::report::*;
use mirrorscope_core::rollout::Desired;
use mirrorscope_core::time::format_secs as format_rfc3339;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn idms(n: usize) -> String {
    let mut s = String::from("apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata:\n  name: bench\nspec:\n  imageDigestMirrors:\n");
    for i in 0..n {
        s.push_str(&format!(
            "  - source: registry{i}.example.com/ns\n    mirrors:\n    - mirror.example.com/r{i}/ns\n"
        ));
    }
    s
}

fn now() -> String {
    format_rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    )
}

fn report(node: &str, seq: u64, conf: &str, sha: &str, pulls: Vec<PullRecord>) -> NodeReport {
    let t = now();
    NodeReport {
        version: NODE_REPORT_VERSION,
        node: node.into(),
        agent_version: "bench".into(),
        agent_instance: format!("bench-{node}"),
        seq,
        generated_at: t.clone(),
        registries: RegistriesState {
            files: vec![FileState {
                path: "/etc/containers/registries.conf".into(),
                role: FileRole::Main,
                exists: true,
                digest: Some(sha.into()),
                size: Some(conf.len() as u64),
                mtime: Some("2026-01-01T00:00:00Z".into()),
                error: None,
                contents: Some(conf.into()),
            }],
            valid: true,
            error: None,
            effective_digest: Some(sha.into()),
            effective_canonical: None,
            changed_at: Some("2026-01-01T00:00:00Z".into()),
        },
        machine_config: MachineConfigState {
            current_config: Some("rendered-worker-1".into()),
            registries_conf: Some(mirrorscope_core::machineconfig::FileMatch::Matches),
            signature_files: Vec::new(),
            force_file: false,
            error: None,
        },
        crio: CrioState {
            last_applied_at: Some(t),
            ..Default::default()
        },
        journal: JournalState {
            following: true,
            cursor: Some("s=1;i=2".into()),
            error: None,
        },
        pulls,
        pulls_dropped: 0,
        counters: PullCounters::default(),
    }
}

/// Built from JSON so fields added to the wire type later (all optional) do not break it.
fn pull(id: String, i: u64) -> PullRecord {
    let image = format!("registry{}.example.com/ns/app:{}", i % 20, i % 7);
    serde_json::from_value(serde_json::json!({
        "pull_id": id, "image": image, "started_at": now(), "finished_at": now(),
        "outcome": "pulled", "served_by": image, "via_mirror": false,
        "fallback": i.is_multiple_of(5), "pod": "ns/pod",
        "attempts": [{"reference": image, "mirror": false, "outcome": "served", "tries": 1}],
    }))
    .expect("pull record")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: &str) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

async fn post(sender: &mut Sender, addr: &str, body: Vec<u8>) -> u16 {
    let req = hyper::Request::post("/v1/reports")
        .header("host", addr)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = sender.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

async fn get(addr: &str, path: &str) -> (u16, usize) {
    let mut s = connect(addr).await;
    let req = hyper::Request::get(path)
        .header("host", addr)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = s.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, body.len())
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: skip the long run then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("load: run with `cargo bench -p mirrorscope-collector --bench load`");
        return;
    }
    let nodes = env("MIRRORSCOPE_BENCH_NODES", 5000) as usize;
    let secs = env("MIRRORSCOPE_BENCH_SECS", 60);
    let heartbeat = env("MIRRORSCOPE_BENCH_HEARTBEAT_SECS", 10).max(1);
    let conns = env("MIRRORSCOPE_BENCH_CONNS", 64).max(1) as usize;

    let dir = std::env::temp_dir().join(format!("mirrorscope-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tempdir");
    let idms_text = idms(20);
    let desired_path = dir.join("idms.yaml");
    std::fs::write(&desired_path, &idms_text).expect("write idms");
    let rendering = render(
        &parse_str(&idms_text, "idms.yaml", &ParseOptions::default()).input,
        &RenderOptions::default(),
    )
    .expect("render");
    let new_conf = rendering.registries_conf().expect("conf").to_string();
    let new_sha = Desired::from_rendering(&rendering, "bench")
        .expect("desired")
        .sha256;
    let old_sha = {
        let f = mirrorscope_core::registries::parse_config_str(
            TEMPLATE_REGISTRIES_CONF,
            "/etc/containers/registries.conf",
            mirrorscope_core::registries::FileKind::Main,
            Default::default(),
        )
        .expect("template");
        mirrorscope_core::registries::EffectiveConfig::from_main_file(f).canonical_sha256()
    };

    let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorscope-collector"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--stale-after",
            "5m",
            "--desired",
        ])
        .arg(&desired_path)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("collector");
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = loop {
        let Some(Ok(l)) = lines.next() else {
            panic!("collector exited before listening")
        };
        if let Some(i) = l.find("http://") {
            break l[i..].trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let addr = url.trim_start_matches("http://").to_string();
    println!("load: {nodes} nodes, heartbeat {heartbeat}s, {secs}s, {conns} connections -> {url}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let peak_rss = Arc::new(Mutex::new(0u64));
    let errors = Arc::new(Mutex::new(0u64));
    let rollout_lat: Arc<Mutex<Vec<f64>>> = Arc::default();
    rt.block_on(async {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for c in 0..conns {
            let (addr, latencies, errors) = (addr.clone(), latencies.clone(), errors.clone());
            let (new_conf, new_sha) = (new_conf.clone(), new_sha.clone());
            tasks.push(tokio::spawn(async move {
                let mut sender = connect(&addr).await;
                // This connection's nodes, each pushing once per heartbeat at its own offset.
                let mine: Vec<usize> = (c..nodes).step_by(conns).collect();
                let mut seq = 0u64;
                let mut round = 0u64;
                while Instant::now() < deadline {
                    for &i in &mine {
                        let due = start
                            + Duration::from_secs(round * heartbeat)
                            + Duration::from_secs_f64(heartbeat as f64 * i as f64 / nodes as f64);
                        if due > deadline {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                        seq += 1;
                        let pulls = (0..2)
                            .map(|k| pull(format!("{i}-{round}-{k}"), seq + k))
                            .collect();
                        let r = report(&format!("node-{i:05}"), seq, &new_conf, &new_sha, pulls);
                        let body = serde_json::to_vec(&r).expect("json");
                        let t = Instant::now();
                        let status = post(&mut sender, &addr, body).await;
                        let ms = t.elapsed().as_secs_f64() * 1000.0;
                        if status == 200 {
                            latencies.lock().expect("lock").push(ms);
                        } else {
                            *errors.lock().expect("lock") += 1;
                        }
                    }
                    round += 1;
                }
            }));
        }
        // A `mirrorscope wait` polling the rollout during the load, as it would in real life.
        let (addr2, rollout_ms) = (addr.clone(), rollout_lat.clone());
        let poller = tokio::spawn(async move {
            loop {
                let t = Instant::now();
                let (status, _) = get(&addr2, "/v1/rollout").await;
                if status == 200 {
                    rollout_ms
                        .lock()
                        .expect("lock")
                        .push(t.elapsed().as_secs_f64() * 1000.0);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        let peak = peak_rss.clone();
        let sampler = tokio::spawn(async move {
            loop {
                let r = rss_kib(pid);
                {
                    let mut p = peak.lock().expect("lock");
                    *p = (*p).max(r);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        for t in tasks {
            let _ = t.await;
        }
        sampler.abort();
        poller.abort();
    });
    let mut l = latencies.lock().expect("lock").clone();
    l.sort_by(|a, b| a.total_cmp(b));
    println!(
        "ingest: {} reports, {} errors, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        l.len(),
        errors.lock().expect("lock"),
        pct(&l, 0.5),
        pct(&l, 0.99),
        l.last().copied().unwrap_or(0.0)
    );
    let mut r = rollout_lat.lock().expect("lock").clone();
    r.sort_by(|a, b| a.total_cmp(b));
    println!(
        "GET /v1/rollout during the load (every 250 ms): {} polls, p50 {:.1} ms, p99 {:.1} ms",
        r.len(),
        pct(&r, 0.5),
        pct(&r, 0.99)
    );
    println!(
        "collector RSS: peak {:.1} MiB, now {:.1} MiB",
        *peak_rss.lock().expect("lock") as f64 / 1024.0,
        rss_kib(pid) as f64 / 1024.0
    );

    // `status` = /v1/rollout + /v1/registries; also the HTML page and /v1/nodes.
    rt.block_on(async {
        for (name, paths) in [
            (
                "status (rollout+registries)",
                vec!["/v1/rollout", "/v1/registries"],
            ),
            ("GET /v1/nodes", vec!["/v1/nodes"]),
            ("GET / (status page)", vec!["/"]),
            ("GET /metrics", vec!["/metrics"]),
        ] {
            let mut ts = Vec::new();
            let mut size = 0;
            for _ in 0..10 {
                let t = Instant::now();
                for p in &paths {
                    let (s, n) = get(&addr, p).await;
                    assert_eq!(s, 200, "{p}");
                    size += n;
                }
                ts.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            ts.sort_by(|a, b| a.total_cmp(b));
            println!(
                "{name}: p50 {:.1} ms, max {:.1} ms ({} KiB)",
                pct(&ts, 0.5),
                ts.last().copied().unwrap_or(0.0),
                size / 10 / 1024
            );
        }
    });

    // `mirrorscope status` as a user runs it: process start, two requests, table output.
    let mut ts = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let out = Command::new(cli_bin())
            .args(["status", "--collector", &url])
            .output()
            .expect("status");
        assert!(out.status.success(), "status failed");
        ts.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ts.sort_by(|a, b| a.total_cmp(b));
    println!(
        "`mirrorscope status` (whole command): p50 {:.1} ms, max {:.1} ms",
        pct(&ts, 0.5),
        ts.last().copied().unwrap_or(0.0)
    );

    // Time from the last node landing to `mirrorscope wait` returning: one node goes back to the
    // old configuration, wait starts, then the node lands again.
    rt.block_on(async {
        let mut s = connect(&addr).await;
        let body = |sha: &str, conf: &str, seq| {
            serde_json::to_vec(&report("node-00000", seq, conf, sha, vec![])).expect("json")
        };
        post(
            &mut s,
            &addr,
            body(&old_sha, TEMPLATE_REGISTRIES_CONF, 1_000_000),
        )
        .await;
    });
    let mut wait = Command::new(cli_bin())
        .args(["wait", "--collector", &url, "--timeout", "60s", "--desired"])
        .arg(&desired_path)
        .stdout(Stdio::null())
        .spawn()
        .expect("wait");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        wait.try_wait().expect("wait").is_none(),
        "wait returned early"
    );
    let landed = Instant::now();
    rt.block_on(async {
        let mut s = connect(&addr).await;
        let b = serde_json::to_vec(&report(
            "node-00000",
            1_000_001,
            &new_conf,
            &new_sha,
            vec![],
        ))
        .expect("json");
        post(&mut s, &addr, b).await;
    });
    let status = wait.wait().expect("wait");
    println!(
        "last node landed -> wait returned: {:.0} ms (exit {:?})",
        landed.elapsed().as_secs_f64() * 1000.0,
        status.code()
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `mirrorscope` CLI of the same build (another crate's binary: `cargo bench` builds the
/// workspace, so it sits next to this benchmark's deps directory).
fn cli_bin() -> std::path::PathBuf {
    std::env::var_os("MIRRORSCOPE_BIN_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_default()
        .join("mirrorscope")
}
