//! `mirrorscope-agent run` against hostile or broken nodes, on loopback: special files where
//! configuration files should be, a wrong host root, slow HTTP clients, reports larger than the
//! collector takes, a journal directory removed while followed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mirrorscope_e2e::agent::{metric, Agent, FakeCollector, HostRoot};
use mirrorscope_e2e::collector::{bin, rss_kib, write_atomic};
use mirrorscope_e2e::journal::{at, crio_msg, klog_entries, write_journal, Entry, TimeFormat};
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(20);

const CONF: &str = r#"[[registry]]
prefix = "quay.io/acme"
location = "quay.io/acme"

[[registry.mirror]]
location = "mirror.corp.example.com/acme"
"#;

fn mkfifo(p: &Path) {
    let st = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(st.success(), "mkfifo {}", p.display());
}

fn file<'a>(r: &'a Value, path: &str) -> Option<&'a Value> {
    r["registries"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
}

fn file_error(r: &Value, path: &str) -> String {
    file(r, path)
        .and_then(|f| f["error"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn args_of(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Resident memory of a process (VmRSS and its peak VmHWM), in KiB.
/// A FIFO has no writer: opening it for reading blocks forever. Before the fix the agent never
/// got to listen (start-up read), or its report went stale and SIGTERM did not end it.
#[test]
fn special_files_in_place_of_configuration_files_are_reported_and_never_block() {
    let root = HostRoot::new("agent-fifo");
    let main = root.at("/etc/containers/registries.conf");
    mkfifo(&main);
    let args = root.args();
    let agent = Agent::start(&args_of(&args));
    let r = agent.wait_report("the FIFO reported", WITHIN, |r| {
        file_error(r, "/etc/containers/registries.conf").contains("not a regular file")
    });
    assert_eq!(r["registries"]["valid"], false);
    let err = r["registries"]["error"].as_str().unwrap();
    assert!(
        err.contains("/etc/containers/registries.conf") && err.contains("not a regular file"),
        "{err}"
    );
    let m = agent.metrics();
    assert_eq!(
        metric(
            &m,
            "mirrorscope_errors_total{component=\"config\",error_type=\"not_regular_file\"}"
        ),
        Some(1.0),
        "{m}"
    );

    // A valid main file, then special files everywhere else the agent reads.
    std::fs::remove_file(&main).unwrap();
    write_atomic(&main, CONF.as_bytes());
    agent.wait_report("the valid main file", WITHIN, |r| {
        r["registries"]["valid"] == true
    });
    mkfifo(&root.at("/etc/containers/registries.conf.d/50-fifo.conf"));
    let _sock =
        std::os::unix::net::UnixListener::bind(root.at("/etc/containers/policy.json")).unwrap();
    std::fs::create_dir_all(root.at("/etc/machine-config-daemon")).unwrap();
    mkfifo(&root.at("/etc/machine-config-daemon/currentconfig"));
    let r = agent.wait_report(
        "the drop-in, policy and currentconfig reported",
        WITHIN,
        |r| {
            file_error(r, "/etc/containers/registries.conf.d/50-fifo.conf")
                .contains("not a regular file")
                && file_error(r, "/etc/containers/policy.json")
                    .contains("not a regular file (socket)")
                && r["machine_config"]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("currentconfig: not a regular file"))
        },
    );
    assert_eq!(r["registries"]["valid"], false);
    // Still reading: the drop-in replaced by a file is picked up.
    std::fs::remove_file(root.at("/etc/containers/registries.conf.d/50-fifo.conf")).unwrap();
    agent.wait_report("the FIFO drop-in gone", WITHIN, |r| {
        r["registries"]["valid"] == true
    });
    assert_eq!(agent.get("/readyz").0, 200);
    let (status, _) = agent.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_host_root_without_node_files_or_journal_is_a_start_up_error() {
    let missing = std::env::temp_dir().join(format!("ms-no-such-root-{}", std::process::id()));
    let mut child = Command::new(bin("mirrorscope-agent"))
        .args(["run", "--listen", "127.0.0.1:0", "--host-root"])
        .arg(&missing)
        .arg("--state-dir")
        .arg(std::env::temp_dir().join(format!("ms-no-root-state-{}", std::process::id())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Before the fix it ran on as if healthy: give it time to exit, then stop it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}/etc/containers", missing.display())),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_journal_makes_readyz_fail_with_the_reason() {
    let root = HostRoot::new("agent-nojournal");
    write_atomic(&root.at("/etc/containers/registries.conf"), CONF.as_bytes());
    let agent = Agent::start(&[
        "--host-root",
        root.path().to_str().unwrap(),
        "--state-dir",
        root.at("/state").to_str().unwrap(),
        "--journal-dir",
        root.at("/no-journal-here").to_str().unwrap(),
    ]);
    agent.wait_report("the journal error", WITHIN, |r| {
        r["journal"]["error"].as_str().is_some()
    });
    let (status, body) = agent.get("/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("journal") && body.contains("no-journal-here"),
        "{body}"
    );
}

/// Before the fix every half-sent request kept a connection (and a file descriptor) forever.
#[test]
fn half_sent_requests_neither_exhaust_descriptors_nor_block_healthz() {
    let root = HostRoot::new("agent-slowloris");
    let args = root.args();
    let agent = Agent::start(&args_of(&args));
    let authority = agent.url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(&authority).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        held.push(s);
    }
    // Served after the 300 were accepted (one listen queue): the probe still gets through.
    assert_eq!(agent.get("/healthz").0, 200);
    let fds = std::fs::read_dir(format!("/proc/{}/fd", agent.child.id()))
        .unwrap()
        .count();
    assert!(
        fds < 150,
        "{fds} descriptors open with 300 half-sent requests"
    );
    // Refused or timed out, the held connections are closed by the agent.
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert_eq!(agent.get("/healthz").0, 200);
    // A request body is never read into memory.
    let (status, _) = mirrorscope_e2e::collector::http_head_only(
        &agent.url,
        "GET",
        "/healthz",
        100 * 1024 * 1024,
    );
    assert_eq!(status, 413);
    let m = agent.metrics();
    assert!(
        metric(
            &m,
            "mirrorscope_errors_total{component=\"http\",error_type=\"too_many_connections\"}"
        )
        .is_some_and(|n| n > 0.0),
        "{m}"
    );
}

/// A pull whose kubelet error is `error_bytes` long.
fn failed_pull(n: u32, t0: u64, error_bytes: usize) -> Vec<Entry> {
    let id = format!("{n:08}-1111-4222-8333-444455556666");
    let image = format!("quay.io/acme/app-{n}:1");
    let mut v = vec![Entry::crio(
        t0,
        &crio_msg(
            t0,
            TimeFormat::Rfc3339Nano,
            &format!("Pulling image: {image}"),
            Some(&id),
        ),
    )];
    let t1 = t0 + 1000;
    v.push(Entry::crio(
        t1,
        &crio_msg(
            t1,
            TimeFormat::Rfc3339Nano,
            &format!("Trying to access \"mirror.corp.example.com/acme/app-{n}:1\""),
            None,
        ),
    ));
    let err = format!(
        "rpc error: code = Unknown desc = reading manifest 1 in mirror.corp.example.com/acme/app-{n}: {}",
        "x".repeat(error_bytes)
    );
    v.extend(klog_entries(
        t0 + 2000,
        'E',
        "log.go:32",
        "PullImage from image service failed",
        &[("err", &err), ("image", &image)],
    ));
    v
}

/// Before the fix 30 records of 1 MB made one 30 MB push, refused with 413 forever.
#[test]
fn megabyte_error_texts_reach_a_collector_with_a_body_limit_truncated() {
    let root = HostRoot::new("agent-bigpulls");
    write_atomic(&root.at("/etc/containers/registries.conf"), CONF.as_bytes());
    let mut entries = Vec::new();
    for n in 0..30 {
        entries.extend(failed_pull(
            n,
            at("10:00:00") + u64::from(n) * 10_000,
            1_000_000,
        ));
    }
    write_journal(&root.at("/journal"), "big", &entries);
    let collector = FakeCollector::start(None);
    collector.set_max_body(8 * 1024 * 1024);
    let mut args = root.args();
    args.extend([
        "--collector".to_owned(),
        collector.url(),
        "--since".to_owned(),
        format!("@{}", at("09:00:00") / 1_000_000),
    ]);
    let agent = Agent::start(&args_of(&args));
    collector.wait("the 30 records", Duration::from_secs(60), |r| {
        r.ids.len() == 30
    });
    let received = collector.received.lock().unwrap();
    for p in received.reports.iter().flat_map(|r| &r.pulls) {
        let e = p.error.as_deref().unwrap_or_default();
        assert!(e.len() < 64 * 1024, "{} bytes", e.len());
        assert!(e.contains("[truncated by mirrorscope-agent"), "{e}");
    }
    drop(received);
    let (rss, peak) = rss_kib(agent.child.id());
    eprintln!("MEASURE agent with 30 pulls of 1 MB errors: VmRSS {rss} KiB, VmHWM {peak} KiB");
    let m = agent.metrics();
    assert_eq!(
        metric(
            &m,
            "mirrorscope_errors_total{component=\"pipeline\",error_type=\"record_truncated\"}"
        ),
        Some(30.0),
        "{m}"
    );
}

/// Before the fix the canonical configuration of a 100,000-entry registries.conf made every
/// report larger than the collector's limit: 413 forever, no report ever landed.
#[test]
fn a_huge_registries_conf_still_gets_reports_through() {
    let root = HostRoot::new("agent-bigconf");
    let mut conf = String::with_capacity(3_500_000);
    for i in 0..100_000 {
        conf.push_str(&format!("[[registry]]\nlocation=\"r{i}.ex\"\n"));
    }
    write_atomic(&root.at("/etc/containers/registries.conf"), conf.as_bytes());
    let collector = FakeCollector::start(None);
    collector.set_max_body(8 * 1024 * 1024);
    let mut args = root.args();
    args.extend(["--collector".to_owned(), collector.url()]);
    let agent = Agent::start(&args_of(&args));
    collector.wait("a report", Duration::from_secs(120), |r| {
        r.reports
            .iter()
            .any(|r| r.registries.valid && r.registries.effective_digest.is_some())
    });
    let (rss, peak) = rss_kib(agent.child.id());
    eprintln!(
        "MEASURE agent with a 100,000-entry registries.conf: VmRSS {rss} KiB, VmHWM {peak} KiB"
    );
    let m = agent.metrics();
    assert_eq!(
        metric(
            &m,
            "mirrorscope_errors_total{component=\"config\",error_type=\"canonical_too_large\"}"
        ),
        Some(1.0),
        "{m}"
    );
    let last = collector.last_report().unwrap();
    assert_eq!(last.registries.effective_canonical, None);
    assert_eq!(collector.received.lock().unwrap().too_large, 0);
}

/// A pull the mirror served.
fn served_pull(n: u32, t0: u64) -> Vec<Entry> {
    let id = format!("{n:08}-1111-4222-8333-444455556666");
    [
        (
            0,
            format!("Pulling image: quay.io/acme/app-{n}:1"),
            Some(&id),
        ),
        (
            1000,
            format!("Trying to access \"mirror.corp.example.com/acme/app-{n}:1\""),
            None,
        ),
        (
            2000,
            format!("Pulled image: quay.io/acme/app-{n}@sha256:{n:064x}"),
            Some(&id),
        ),
    ]
    .into_iter()
    .map(|(dt, msg, id)| {
        let t = t0 + dt;
        Entry::crio(
            t,
            &crio_msg(t, TimeFormat::Rfc3339Nano, &msg, id.map(|s| s.as_str())),
        )
    })
    .collect()
}

fn has_pull(r: &Value, n: u32) -> bool {
    let id = format!("{n:08}-1111-4222-8333-444455556666");
    r["pulls"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["pull_id"] == id.as_str()))
}

/// Before the fix the agent went on saying `following: true` over the deleted files and never
/// read the directory created in its place.
#[test]
fn a_removed_journal_directory_is_reported_and_reopened_when_it_comes_back() {
    let root = HostRoot::new("agent-rmjournal");
    write_atomic(&root.at("/etc/containers/registries.conf"), CONF.as_bytes());
    let dir = root.at("/journal");
    write_journal(&dir, "one", &served_pull(1, at("10:00:00")));
    let mut args = root.args();
    args.extend([
        "--since".to_owned(),
        format!("@{}", at("09:00:00") / 1_000_000),
    ]);
    let agent = Agent::start(&args_of(&args));
    agent.wait_report("pull 1 while following", WITHIN, |r| {
        has_pull(r, 1) && r["journal"]["following"] == true
    });
    std::fs::remove_dir_all(&dir).unwrap();
    let dir_text = dir.display().to_string();
    let r = agent.wait_report("the directory reported missing", WITHIN, |r| {
        r["journal"]["following"] == false
            && r["journal"]["error"]
                .as_str()
                .is_some_and(|e| e.contains(&dir_text))
    });
    let (status, body) = agent.get("/readyz");
    assert_eq!(status, 503, "{body}\n{r:#}");
    assert!(body.contains(&dir_text), "{body}");
    std::fs::create_dir_all(&dir).unwrap();
    write_journal(&dir, "two", &served_pull(2, at("11:00:00")));
    agent.wait_report("pull 2 from the new directory", WITHIN, |r| {
        has_pull(r, 2) && r["journal"]["following"] == true && r["journal"]["error"].is_null()
    });
    assert_eq!(agent.get("/readyz").0, 200);
    let m = agent.metrics();
    assert!(
        metric(
            &m,
            "mirrorscope_errors_total{component=\"journal\",error_type=\"directory_vanished\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{m}"
    );
}

/// Before the fix reading the state file blocked start-up for good when it was a FIFO.
#[test]
fn a_fifo_as_the_state_file_is_an_error_not_a_hang() {
    let root = HostRoot::new("agent-statefifo");
    write_atomic(&root.at("/etc/containers/registries.conf"), CONF.as_bytes());
    mkfifo(&root.at("/state/agent-state.json"));
    let args = root.args();
    let agent = Agent::start(&args_of(&args));
    agent.wait_report("the configuration", WITHIN, |r| {
        r["registries"]["valid"] == true
    });
    assert!(
        agent.log().contains("agent-state.json: not loaded: open "),
        "{}",
        agent.log()
    );
    let (status, _) = agent.terminate();
    assert!(status.success());
}

/// A collector with a smaller body limit than the agent's budget: 413s make the pushes
/// smaller until they pass. Before the fix the same body was retried forever.
#[test]
fn pushes_refused_as_too_large_shrink_until_they_pass() {
    let root = HostRoot::new("agent-413");
    write_atomic(&root.at("/etc/containers/registries.conf"), CONF.as_bytes());
    let mut entries = Vec::new();
    for n in 0..30 {
        entries.extend(failed_pull(
            n,
            at("10:00:00") + u64::from(n) * 10_000,
            100_000,
        ));
    }
    write_journal(&root.at("/journal"), "big", &entries);
    let collector = FakeCollector::start(None);
    collector.set_max_body(200 * 1024);
    let mut args = root.args();
    args.extend([
        "--collector".to_owned(),
        collector.url(),
        "--since".to_owned(),
        format!("@{}", at("09:00:00") / 1_000_000),
    ]);
    let agent = Agent::start(&args_of(&args));
    collector.wait("the 30 records", Duration::from_secs(120), |r| {
        r.ids.len() == 30
    });
    assert!(collector.received.lock().unwrap().too_large > 0);
    let m = agent.metrics();
    assert!(
        metric(
            &m,
            "mirrorscope_errors_total{component=\"push\",error_type=\"too_large\"}"
        )
        .is_some_and(|n| n > 0.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "mirrorscope_outbox_dropped_total"),
        Some(0.0),
        "{m}"
    );
}

fn saved_outbox_len(root: &HostRoot) -> Option<usize> {
    let text = std::fs::read(root.at("/state/agent-state.json")).ok()?;
    let v: Value = serde_json::from_slice(&text).ok()?;
    v["outbox"].as_array().map(Vec::len)
}

/// Records acknowledged after the state file was written used to stay in the saved outbox
/// until something else changed, so a restart sent them all again.
#[test]
fn acknowledged_records_leave_the_saved_outbox_too() {
    let root = HostRoot::new("agent-ackdurable");
    write_atomic(&root.at("/etc/containers/registries.conf"), CONF.as_bytes());
    let mut entries = Vec::new();
    for n in 0..3 {
        entries.extend(served_pull(n, at("10:00:00") + u64::from(n) * 10_000));
    }
    write_journal(&root.at("/journal"), "three", &entries);
    let collector = FakeCollector::start(None);
    collector.set_up(false);
    let mut args = root.args();
    args.extend([
        "--collector".to_owned(),
        collector.url(),
        "--since".to_owned(),
        format!("@{}", at("09:00:00") / 1_000_000),
    ]);
    let agent = Agent::start(&args_of(&args));
    let deadline = std::time::Instant::now() + WITHIN;
    while saved_outbox_len(&root) != Some(3) {
        assert!(std::time::Instant::now() < deadline, "{}", agent.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    collector.set_up(true);
    collector.wait("the 3 records", Duration::from_secs(60), |r| {
        r.ids.len() == 3
    });
    let deadline = std::time::Instant::now() + WITHIN;
    while saved_outbox_len(&root) != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "saved outbox still holds {:?} records",
            saved_outbox_len(&root)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.kill9();
    let again = Agent::start(&args_of(&args));
    let before = collector.report_count();
    collector.wait("a report of the restarted agent", WITHIN, |r| {
        r.reports.len() > before
    });
    assert_eq!(collector.received.lock().unwrap().duplicates, 0);
    drop(again);
}
