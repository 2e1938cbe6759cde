//! `mirrorscope-agent run` following a live journal (a standalone systemd-journald): pull
//! records, CRI-O reloads, metrics checked by promtool, pushes to a collector that goes down,
//! token rotation, SIGTERM, and a kill -9 in the middle of a flood.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mirrorscope_e2e::agent::{metric, Agent, FakeCollector, HostRoot, LivePulls, LIVE_CONF};
use mirrorscope_e2e::child::ChildGuard;
use mirrorscope_e2e::collector::write_atomic;
use mirrorscope_e2e::journal::{require, Journald};
use serde_json::Value;

/// Records are final once the correlator's 10 s linger passed after the pull: allow for it.
const RECORDS: Duration = Duration::from_secs(40);
const PROMTOOL: &str = "/usr/bin/promtool";

fn node(root: &HostRoot, journal: &Journald, extra: &[&str]) -> Vec<String> {
    write_atomic(
        &root.at("/etc/containers/registries.conf"),
        LIVE_CONF.as_bytes(),
    );
    let mut args = vec![
        "--host-root".to_owned(),
        root.path().display().to_string(),
        "--state-dir".to_owned(),
        root.at("/state").display().to_string(),
        "--journal-dir".to_owned(),
        journal.dir().display().to_string(),
        "--node-name".to_owned(),
        "worker-1".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn start(args: &[String]) -> Agent {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    Agent::start(&a)
}

fn pull_ids(r: &Value) -> HashSet<String> {
    r["pulls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pull_id"].as_str().unwrap().to_owned())
        .collect()
}

fn promtool_check(metrics: &str) {
    require(PROMTOOL);
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn agent_reports_pulls_crio_reloads_and_metrics_that_pass_promtool() {
    let j = Journald::start();
    let root = HostRoot::new("agent-journal");
    let agent = start(&node(&root, &j, &[]));
    let p = LivePulls(&j);
    p.via_mirror(1);
    p.fallback(2);
    p.registries_applied();
    p.reload_failed("/etc/containers/registries.conf: toml: line 3: expected '='");

    let r = agent.wait_report("CRI-O's reload lines", RECORDS, |r| {
        r["crio"]["last_applied_at"].is_string() && r["crio"]["last_reload_failure"].is_string()
    });
    assert!(r["crio"]["last_reload_failure"]
        .as_str()
        .unwrap()
        .contains("expected '='"));
    let r = agent.wait_report("both pulls", RECORDS, |r| {
        pull_ids(r) == HashSet::from([LivePulls::id(1), LivePulls::id(2)])
    });
    assert_eq!(r["journal"]["following"], true);
    assert!(r["journal"]["cursor"].is_string());
    let pulls = r["pulls"].as_array().unwrap();
    let by_id = |n: u32| {
        pulls
            .iter()
            .find(|p| p["pull_id"] == LivePulls::id(n))
            .unwrap()
    };
    assert_eq!(by_id(1)["via_mirror"], true);
    assert_eq!(
        by_id(1)["served_by"],
        "mirror.live.example.net/live/app-1:1"
    );
    assert_eq!(by_id(2)["fallback"], true);
    assert_eq!(by_id(2)["served_by"], "quay.io/live/app-2:1");
    let counters = r["counters"]["pulls"].as_array().unwrap();
    assert!(
        counters.iter().any(|c| c["registry"] == "quay.io"
            && c["served_by_kind"] == "mirror"
            && c["outcome"] == "pulled"
            && c["count"] == 1),
        "{counters:?}"
    );

    let m = agent.metrics();
    assert_eq!(
        metric(
            &m,
            "mirrorscope_pulls_total{registry=\"quay.io\",served_by_kind=\"mirror\",outcome=\"pulled\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "mirrorscope_pulls_total{registry=\"quay.io\",served_by_kind=\"source\",outcome=\"pulled\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "mirrorscope_pull_attempts_total{location=\"mirror.live.example.net\",error_class=\"unknown\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "mirrorscope_journal_following"), Some(1.0));
    assert!(metric(&m, "mirrorscope_crio_registries_applied_timestamp_seconds").unwrap() > 1.7e9);
    assert!(!m.contains("app-1"), "no image labels: {m}");
    promtool_check(&m);

    // Prometheus itself asks for OpenMetrics.
    let (status, om) = mirrorscope_e2e::collector::http(
        &agent.url,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
        b"",
    );
    assert_eq!(status, 200);
    assert!(
        om.contains("# TYPE mirrorscope_pulls counter") && om.ends_with("# EOF\n"),
        "{om}"
    );
}

#[test]
fn agent_outbox_survives_a_collector_outage_and_token_rotation() {
    let j = Journald::start();
    let root = HostRoot::new("agent-outage");
    let collector = FakeCollector::start(Some("token-1"));
    let token = root.at("/token");
    std::fs::write(&token, "token-1\n").unwrap();
    let args = node(
        &root,
        &j,
        &[
            "--collector",
            &collector.url(),
            "--token-file",
            token.to_str().unwrap(),
            "--outbox-size",
            "20",
        ],
    );
    let agent = start(&args);
    let p = LivePulls(&j);
    for n in 0..5 {
        p.via_mirror(n);
    }
    collector.wait("the first five pulls", RECORDS, |r| r.ids.len() == 5);
    let seen = collector.report_count();
    assert!(seen >= 1);
    let last = collector.last_report().unwrap();
    assert_eq!(last.node, "worker-1");
    assert!(last.registries.valid);

    collector.set_up(false);
    for n in 100..130 {
        p.via_mirror(n);
    }
    // 30 records for an outbox of 20: the 10 oldest go.
    agent.wait_report("the outbox overflow", RECORDS, |r| r["pulls_dropped"] == 10);
    // …and the agent tried to deliver them while the collector was away.
    let deadline = Instant::now() + RECORDS;
    while metric(&agent.metrics(), "mirrorscope_push_failures_total") < Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "no failed push:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The token rotates while the collector is away.
    collector.set_token("token-2");
    write_atomic(&token, b"token-2\n");
    collector.set_up(true);

    let want: HashSet<String> = (0..5).chain(110..130).map(LivePulls::id).collect();
    // Backoff is capped at 30 s.
    collector.wait(
        "the records that fit the outbox",
        Duration::from_secs(60),
        |r| want.is_subset(&r.ids),
    );
    let ids = collector.ids();
    assert_eq!(ids, want, "dropped records must not arrive");
    let last = collector.last_report().unwrap();
    assert_eq!(last.pulls_dropped, 10);
    let m = agent.metrics();
    assert_eq!(metric(&m, "mirrorscope_outbox_dropped_total"), Some(10.0));
    assert!(
        agent
            .log()
            .contains("failed (1 in a row; 20 records waiting)"),
        "{}",
        agent.log()
    );

    // Heartbeats and changes keep flowing; SIGTERM: saved cursor, a last push, exit within 5 s.
    let before = collector.report_count();
    let (status, took) = agent.terminate();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(collector.report_count() > before, "no final push");
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(root.at("/state/agent-state.json")).unwrap())
            .unwrap();
    assert!(saved["checkpoint"]["cursor"].is_string(), "{saved}");
    assert_eq!(
        saved["outbox"].as_array().unwrap().len(),
        0,
        "everything was acknowledged"
    );
}

#[test]
fn agent_killed_during_a_journal_flood_loses_no_pull_record() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
    let j = Journald::start();
    let root = HostRoot::new("agent-kill9");
    let collector = FakeCollector::start(None);
    let args = node(&root, &j, &["--collector", &collector.url()]);
    let agent = start(&args);

    let stop = AtomicBool::new(false);
    let written = AtomicU32::new(0);
    std::thread::scope(|s| {
        // ~60 pulls (180 entries) per second until told to stop.
        let flood = s.spawn(|| {
            let p = LivePulls(&j);
            let t0 = Instant::now();
            let mut n = 0;
            while !stop.load(SeqCst) {
                p.via_mirror(n);
                n += 1;
                written.store(n, SeqCst);
                let due = t0 + Duration::from_micros(u64::from(n) * 1_000_000 / 60);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        });

        collector.wait("records before the kill", Duration::from_secs(90), |r| {
            r.ids.len() >= 150
        });
        agent.kill9();
        let before: HashSet<String> = collector.ids();
        let dup_before = collector.received.lock().unwrap().duplicates;
        let at_kill = written.load(SeqCst);
        eprintln!(
            "killed after {} records delivered, {at_kill} pulls written",
            before.len()
        );
        let agent = start(&args);
        // The flood goes on across the restart, then stops.
        while written.load(SeqCst) < at_kill + 300 {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, SeqCst);
        flood.join().unwrap();
        let total = written.load(SeqCst);
        assert!(
            (before.len() as u32) < at_kill,
            "the kill must come while pulls were still being written"
        );

        let want: HashSet<String> = (0..total).map(LivePulls::id).collect();
        collector.wait(
            "every pull after the restart",
            Duration::from_secs(120),
            |r| want.is_subset(&r.ids),
        );
        assert_eq!(collector.ids(), want);
        let received = collector.received.lock().unwrap();
        let dups = received.duplicates - dup_before;
        // Only records delivered before the kill can come again, and only those reported after
        // the last saved checkpoint (about a second of them), never the whole history.
        let mut seen = HashSet::new();
        for r in received.reports.iter() {
            for p in &r.pulls {
                if !seen.insert(p.pull_id.clone()) && !before.contains(&p.pull_id) {
                    panic!(
                        "{} arrived twice but was not delivered before the kill",
                        p.pull_id
                    );
                }
            }
        }
        eprintln!(
            "{total} pulls; duplicates after the restart: {dups} (of {} delivered before the kill)",
            before.len()
        );
        assert!(
            dups < before.len() as u64,
            "{dups} duplicates: the restart replayed everything"
        );
        drop(received);
        drop(agent);
    });
}

#[test]
fn agent_pushes_to_the_real_collector() {
    let j = Journald::start();
    let root = HostRoot::new("agent-real-collector");
    let dir = mirrorscope_e2e::collector::TempDir::new("agent-real-collector-tokens");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "tok-w1 worker-1\n").unwrap();
    let c =
        mirrorscope_e2e::collector::Collector::start(&["--tokens-file", tokens.to_str().unwrap()]);
    let token = root.at("/token");
    // Wrong first: the collector refuses, the agent counts failures and keeps trying with
    // whatever the file holds at each attempt.
    std::fs::write(&token, "tok-wrong\n").unwrap();
    let agent = start(&node(
        &root,
        &j,
        &[
            "--collector",
            &c.url,
            "--token-file",
            token.to_str().unwrap(),
        ],
    ));
    let deadline = Instant::now() + RECORDS;
    while metric(&agent.metrics(), "mirrorscope_push_failures_total") < Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "no refused push:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        agent.log().contains("collector answered 401"),
        "{}",
        agent.log()
    );
    write_atomic(&token, b"tok-w1\n");
    LivePulls(&j).fallback(7);

    let sha = agent.report()["registries"]["effective_digest"].clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = c.get("/v1/nodes/worker-1");
        let detail: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let pulls = c.get_json("/v1/pulls?fallback=true");
        if status == 200
            && detail["report"]["registries"]["effective_digest"] == sha
            && pulls.to_string().contains(&LivePulls::id(7))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the collector never showed worker-1's report and pull: {status} {body}\n{pulls}\nagent log:\n{}\ncollector log:\n{}",
            agent.log(),
            c.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `--log-target journald` as on a plain host: the agent's log lines land in the journal (here
/// a standalone journald, bound to `/run/systemd/journal/socket` in a private mount namespace).
#[test]
fn agent_logs_to_journald_as_a_host_service() {
    const UNSHARE: &str = "/usr/bin/unshare";
    require(UNSHARE);
    let j = Journald::start();
    let root = HostRoot::new("agent-journald-log");
    let ns_dir = j.socket_path().parent().unwrap().to_path_buf();
    let bound = root.at("/nsbind");
    std::fs::create_dir_all(&bound).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = node(&root, &j, &["--log-target", "journald"]);
    args.extend(["--listen".to_owned(), format!("127.0.0.1:{port}")]);
    let script = format!(
        "mount --bind {ns} {b} && mount -t tmpfs none /run/systemd && mkdir /run/systemd/journal \
         && touch /run/systemd/journal/socket && mount --bind {b}/socket /run/systemd/journal/socket \
         && exec \"$0\" \"$@\"",
        ns = ns_dir.display(),
        b = bound.display()
    );
    let mut child = ChildGuard::new(
        Command::new(UNSHARE)
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .arg(mirrorscope_e2e::collector::bin("mirrorscope-agent"))
            .arg("run")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while mirrorscope_e2e::agent::try_get(&url, "/healthz").is_none() {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("agent exited ({st}): {err}");
        }
        assert!(Instant::now() < deadline, "agent did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let want = format!("listening on http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("journalctl")
            .arg("--directory")
            .arg(j.dir())
            .args([
                "SYSLOG_IDENTIFIER=mirrorscope-agent",
                "-o",
                "cat",
                "--no-pager",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains(&want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no agent log in the journal: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    mirrorscope_e2e::journal::signal(child.id(), "TERM");
    let st = child.wait().unwrap();
    assert!(st.success(), "{st}");
}

/// After CRI-O's `Applied new registry configuration`, pulls are matched with the configuration
/// then on disk: a mirror that renames the repository (no path element in common with the image)
/// is only known from the new file.
#[test]
fn agent_resolves_pulls_with_the_configuration_crio_applied() {
    let j = Journald::start();
    let root = HostRoot::new("agent-applied");
    let agent = start(&node(&root, &j, &[]));
    let before = agent.report()["registries"]["effective_digest"].clone();
    let renamed = format!(
        "{LIVE_CONF}\n[[registry]]\nprefix = \"quay.io/other/app\"\nlocation = \"quay.io/other/app\"\n\n[[registry.mirror]]\nlocation = \"mirror.example.net/app-mirror\"\n"
    );
    write_atomic(
        &root.at("/etc/containers/registries.conf"),
        renamed.as_bytes(),
    );
    agent.wait_report("the new file", Duration::from_secs(2), |r| {
        r["registries"]["effective_digest"] != before
    });
    let p = LivePulls(&j);
    p.registries_applied();
    agent.wait_report("CRI-O's reload", RECORDS, |r| {
        r["crio"]["last_applied_at"].is_string()
    });
    let id = "abcdef01-1111-4222-8333-444455556666";
    p.crio("Pulling image: quay.io/other/app:1", Some(id));
    p.crio("Trying to access \"mirror.example.net/app-mirror:1\"", None);
    p.crio(
        &format!("Pulled image: quay.io/other/app@sha256:{:064x}", 7),
        Some(id),
    );
    let r = agent.wait_report("the pull", RECORDS, |r| {
        r["pulls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pull_id"] == id)
    });
    let rec = r["pulls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pull_id"] == id)
        .unwrap();
    assert_eq!(
        rec["served_by"], "mirror.example.net/app-mirror:1",
        "{rec:#}"
    );
    assert_eq!(rec["via_mirror"], true, "{rec:#}");
}

/// Reports reach an https collector verified against `--collector-ca-file`; a collector whose
/// certificate another CA signed gets nothing, and the failure is counted as a push error.
#[test]
fn agent_pushes_over_tls_verified_against_the_collector_ca() {
    let j = Journald::start();
    let certs = mirrorscope_e2e::collector::TempDir::new("agent-tls");
    let (ca, cert, key) = mirrorscope_e2e::collector::test_certificates(certs.path());
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let collector = FakeCollector::start_tls(Some("tls-token"), &cert, &key);
    assert!(collector.url().starts_with("https://"));
    let root = HostRoot::new("agent-tls");
    let token = root.at("/token");
    std::fs::write(&token, "tls-token").unwrap();
    let agent = start(&node(
        &root,
        &j,
        &[
            "--collector",
            &collector.url(),
            "--collector-ca-file",
            ca_file.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
        ],
    ));
    LivePulls(&j).via_mirror(1);
    collector.wait("a pull record over TLS", Duration::from_secs(60), |r| {
        !r.ids.is_empty()
    });
    drop(agent);

    // The system trust store does not hold the test CA: the push fails, loudly and counted.
    let other = HostRoot::new("agent-tls-untrusted");
    let agent = start(&node(&other, &j, &["--collector", &collector.url()]));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = agent.metrics();
        if metric(&m, "mirrorscope_push_failures_total").is_some_and(|v| v >= 1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "no push failure counted: {m}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(agent.log().contains("certificate"), "{}", agent.log());
}

/// The real collector is down for two minutes while the node keeps pulling (one pull every 2 s):
/// the agent keeps the records in its outbox (within its bound, nothing is dropped), keeps
/// trying, and once the collector is back on its address every pull is there, once.
#[test]
fn a_collector_down_for_two_minutes_loses_no_pull_within_the_outbox_bound() {
    use mirrorscope_e2e::collector::{Collector, TempDir};
    let j = Journald::start();
    let root = HostRoot::new("agent-two-minutes");
    let dir = TempDir::new("two-minutes");
    let state = dir.path().join("state.json");
    let collector_args = ["--state-file", state.to_str().unwrap()];
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut collector = Collector::start_at(&listen, &collector_args);
    let url = collector.url.clone();
    let args = node(&root, &j, &["--collector", &url]);
    let agent = start(&args);
    let p = LivePulls(&j);
    let collector_ids =
        |c: &Collector| -> HashSet<String> { pull_ids(&c.get_json("/v1/pulls?limit=10000")) };
    for n in 0..3 {
        p.via_mirror(n);
    }
    let deadline = Instant::now() + RECORDS;
    while collector_ids(&collector).len() < 3 {
        assert!(Instant::now() < deadline, "no pulls before the outage");
        std::thread::sleep(Duration::from_millis(100));
    }

    collector.kill();
    let down = Instant::now();
    let mut n = 100;
    while down.elapsed() < Duration::from_secs(120) {
        p.via_mirror(n);
        n += 1;
        std::thread::sleep(Duration::from_secs(2));
    }
    let failures = metric(&agent.metrics(), "mirrorscope_push_failures_total");
    assert!(failures >= Some(1.0), "no failed push in 2 minutes");
    let collector = Collector::start_at(&listen, &collector_args);
    assert_eq!(collector.url, url);

    let want: HashSet<String> = (0..3).chain(100..n).map(LivePulls::id).collect();
    assert!(want.len() >= 60, "{} pulls", want.len());
    // The agent's backoff is capped at 30 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = collector_ids(&collector);
        if want.is_subset(&got) {
            assert_eq!(got, want, "only the node's pulls, each once");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} pulls after the collector came back; missing {:?}\nagent log:\n{}",
            want.intersection(&got).count(),
            want.len(),
            want.difference(&got).take(5).collect::<Vec<_>>(),
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = agent.metrics();
    assert_eq!(metric(&m, "mirrorscope_outbox_dropped_total"), Some(0.0));
    let pulls = collector.get_json("/v1/pulls?limit=1");
    assert_eq!(pulls["matching"].as_u64(), Some(want.len() as u64));
}
