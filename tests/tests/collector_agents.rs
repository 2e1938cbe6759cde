//! The rollout end to end with real parts: one `mirrorscope-collector`, three `mirrorscope-agent
//! run` processes with their own host roots and their own systemd-journald (three "nodes"),
//! registries.conf replaced by atomic rename on each node at different times, CRI-O's reload
//! lines in each node's journal, and `mirrorscope wait`.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirrorscope_core::openshift::TEMPLATE_REGISTRIES_CONF;
use mirrorscope_core::openshift::{parse_str, render, ParseOptions, RenderOptions};
use mirrorscope_e2e::agent::{Agent, HostRoot, LivePulls};
use mirrorscope_e2e::child::ChildGuard;
use mirrorscope_e2e::collector::*;
use mirrorscope_e2e::journal::Journald;

const IDMS: &str = "apiVersion: config.openshift.io/v1
kind: ImageDigestMirrorSet
metadata:
  name: quay-mirror
spec:
  imageDigestMirrors:
  - source: quay.io/ns
    mirrors:
    - mirror.example.com/ns
";

fn rendered() -> String {
    let set = parse_str(IDMS, "idms.yaml", &ParseOptions::default());
    let r = render(&set.input, &RenderOptions::default()).unwrap();
    r.registries_conf().unwrap().to_string()
}

/// One simulated node: its host root, its journal, its agent.
struct Node {
    name: String,
    root: HostRoot,
    journal: Journald,
    agent: Option<Agent>,
}

impl Node {
    /// A node on the old configuration, in step with its MachineConfig, CRI-O reloaded.
    fn start(name: &str, collector: &str, token: Option<&str>) -> Node {
        let root = HostRoot::new(&format!("agents-{name}"));
        let journal = Journald::start();
        let mut node = Node {
            name: name.to_string(),
            root,
            journal,
            agent: None,
        };
        node.apply(
            TEMPLATE_REGISTRIES_CONF,
            "rendered-worker-old",
            TEMPLATE_REGISTRIES_CONF,
        );
        let mut args = vec![
            "--host-root".to_string(),
            node.root.path().display().to_string(),
            "--state-dir".to_string(),
            node.root.at("/state").display().to_string(),
            "--journal-dir".to_string(),
            node.journal.dir().display().to_string(),
            "--node-name".to_string(),
            name.to_string(),
            "--collector".to_string(),
            collector.to_string(),
        ];
        if let Some(t) = token {
            let f = node.root.at("/token");
            std::fs::write(&f, format!("{t}\n")).unwrap();
            args.push("--token-file".into());
            args.push(f.display().to_string());
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        node.agent = Some(Agent::start(&a));
        node
    }

    /// What the MCD does for a registries-only change: the file by atomic rename, then its
    /// currentconfig, then CRI-O's reload (its journal line).
    fn apply(&self, conf: &str, mc_name: &str, mc_conf: &str) {
        write_atomic(
            &self.root.at("/etc/containers/registries.conf"),
            conf.as_bytes(),
        );
        write_atomic(
            &self.root.at("/etc/machine-config-daemon/currentconfig"),
            machine_config_object(mc_name, mc_conf)
                .to_string()
                .as_bytes(),
        );
        LivePulls(&self.journal).registries_applied();
    }

    fn log(&self) -> String {
        self.agent.as_ref().map(Agent::log).unwrap_or_default()
    }
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool, logs: impl Fn() -> String) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn node_row(c: &Collector, name: &str) -> serde_json::Value {
    c.get_json("/v1/nodes")["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == name)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn wait_returns_only_after_the_third_agent_lands() {
    let dir = TempDir::new("agents-wait");
    let idms = dir.path().join("idms.yaml");
    std::fs::write(&idms, IDMS).unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "tok-1 worker-1\ntok-2 worker-2\ntok-3 worker-3\n").unwrap();
    let c = Collector::start(&[
        "--desired",
        idms.to_str().unwrap(),
        "--tokens-file",
        tokens.to_str().unwrap(),
    ]);
    let nodes: Vec<Node> = (1..=3)
        .map(|i| Node::start(&format!("worker-{i}"), &c.url, Some(&format!("tok-{i}"))))
        .collect();
    let logs = || {
        let mut s = format!("collector:\n{}", c.log());
        for n in &nodes {
            s.push_str(&format!("\n{}:\n{}", n.name, n.log()));
        }
        s
    };
    wait_for(
        "three nodes on the old configuration",
        Duration::from_secs(40),
        || {
            let v = c.get_json("/v1/nodes");
            let rows = v["nodes"].as_array().unwrap();
            rows.len() == 3
                && rows.iter().all(|n| {
                    n["reasons"]
                        .to_string()
                        .contains("differs from the desired rendering")
                })
        },
        logs,
    );

    let mut wait = ChildGuard::new(
        Command::new(bin("mirrorscope"))
            .args([
                "wait",
                "--desired",
                idms.to_str().unwrap(),
                "--nodes",
                "3",
                "--timeout",
                "120s",
            ])
            .env("MIRRORSCOPE_COLLECTOR", &c.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let new = rendered();
    for n in &nodes[..2] {
        n.apply(&new, "rendered-worker-new", &new);
        wait_for(
            &format!("{} to land", n.name),
            Duration::from_secs(30),
            || node_row(&c, &n.name)["landed"] == true,
            logs,
        );
        assert!(
            wait.try_wait().unwrap().is_none(),
            "wait returned with {} of 3 nodes landed",
            n.name
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        wait.try_wait().unwrap().is_none(),
        "wait returned before the third node changed"
    );
    nodes[2].apply(&new, "rendered-worker-new", &new);
    let changed = Instant::now();
    let out = wait.into_inner().wait_with_output().unwrap();
    let returned = changed.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    assert!(stdout.contains("landed: 3 of 3 nodes"), "{stdout}");
    // Progress on stderr as nodes land, in order.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = |p: &str| {
        stderr
            .find(p)
            .unwrap_or_else(|| panic!("{p:?} missing: {stderr}"))
    };
    assert!(
        at("0 of 3 nodes landed") < at("1 of 3 nodes landed"),
        "{stderr}"
    );
    assert!(
        at("1 of 3 nodes landed") < at("2 of 3 nodes landed"),
        "{stderr}"
    );
    // Promptly: the agent pushes within a second of the change and wait polls every 250 ms; the
    // goal (≤ 1 s) is measured by the bench, this bound only catches a wait that sleeps on.
    assert!(
        returned < Duration::from_secs(10),
        "wait returned {returned:?} after the last change"
    );
    eprintln!("third node changed -> wait returned: {returned:?}");
    let rollout = c.get_json("/v1/rollout");
    assert_eq!(rollout["complete"], true, "{rollout}");
}

#[test]
fn invalid_file_drift_and_stale_agent_are_reported_with_their_reason() {
    let dir = TempDir::new("agents-reasons");
    let idms = dir.path().join("idms.yaml");
    std::fs::write(&idms, IDMS).unwrap();
    let c = Collector::start(&["--desired", idms.to_str().unwrap(), "--stale-after", "5s"]);
    let new = rendered();
    let invalid = Node::start("invalid", &c.url, None);
    let drift = Node::start("drift", &c.url, None);
    let mut stale = Node::start("stale", &c.url, None);
    let logs = || {
        let mut s = format!("collector:\n{}", c.log());
        for n in [&invalid, &drift] {
            s.push_str(&format!("\n{}:\n{}", n.name, n.log()));
        }
        s
    };
    // Every agent has read its node and pushed once before anything changes.
    wait_for(
        "three nodes on the old configuration",
        Duration::from_secs(40),
        || c.get_json("/v1/nodes")["nodes"].as_array().unwrap().len() == 3,
        logs,
    );
    invalid.apply(&new, "rendered-worker-new", &new);
    stale.apply(&new, "rendered-worker-new", &new);
    // A file that does not match the node's MachineConfig (a hand edit, or an MCD that has not
    // caught up): the content is the desired one, the MachineConfig still carries the old file.
    drift.apply(&new, "rendered-worker-old", TEMPLATE_REGISTRIES_CONF);
    for n in ["invalid", "stale"] {
        wait_for(
            &format!("{n} to land"),
            Duration::from_secs(30),
            || node_row(&c, n)["landed"] == true,
            logs,
        );
    }
    // Then a broken file on one node: CRI-O's reload fails and it keeps the previous config.
    write_atomic(
        &invalid.root.at("/etc/containers/registries.conf"),
        b"[[registry]\nlocation = 'quay.io/ns'\n",
    );
    LivePulls(&invalid.journal)
        .reload_failed("/etc/containers/registries.conf: toml: line 1: expected ']]'");
    // The stale node's agent dies.
    if let Some(a) = stale.agent.take() {
        a.kill9();
    }
    // The two live agents keep reporting (a policy.json change is a report change).
    let stop = Arc::new(AtomicBool::new(false));
    let keepalive = {
        let stop = stop.clone();
        let paths = [
            invalid.root.at("/etc/containers/policy.json"),
            drift.root.at("/etc/containers/policy.json"),
        ];
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                for p in &paths {
                    let body = format!(
                        "{{\"default\":[{{\"type\":\"insecureAcceptAnything\"}}],\"_n\":{n}}}\n"
                    );
                    write_atomic(p, body.as_bytes());
                }
                std::thread::sleep(Duration::from_millis(700));
            }
        })
    };
    wait_for(
        "the stale node",
        Duration::from_secs(30),
        || node_row(&c, "stale")["stale"] == true,
        logs,
    );
    wait_for(
        "the invalid file to be reported",
        Duration::from_secs(30),
        || {
            node_row(&c, "invalid")["reasons"]
                .to_string()
                .contains("CRI-O failed to reload")
        },
        logs,
    );
    let out = cli(
        &c.url,
        &[
            "wait",
            "--desired",
            idms.to_str().unwrap(),
            "--timeout",
            "1s",
        ],
    );
    stop.store(true, Ordering::SeqCst);
    keepalive.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("timed out after 1s: 0 of 3 nodes landed"),
        "{stdout}"
    );
    let section = |node: &str| -> String {
        let head = format!("  {node}");
        let mut lines = stdout.lines().skip_while(|l| *l != head);
        assert!(lines.next().is_some(), "{node} missing: {stdout}");
        lines
            .take_while(|l| l.starts_with("    - ") || l.starts_with("      "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let inv = section("invalid");
    assert!(
        inv.contains("valid: invalid registries configuration (CRI-O keeps the last valid one)")
            && inv.contains("/etc/containers/registries.conf"),
        "{inv}"
    );
    assert!(
        inv.contains("crio_reloaded: CRI-O failed to reload"),
        "{inv}"
    );
    assert!(
        !inv.contains("desired:"),
        "CRI-O still runs the desired configuration: {inv}"
    );
    assert!(!inv.contains("stale"), "{inv}");
    let dr = section("drift");
    assert!(
        dr.contains(
            "machine_config: registries.conf does not match MachineConfig rendered-worker-old"
        ),
        "{dr}"
    );
    assert!(!dr.contains("desired:") && !dr.contains("stale"), "{dr}");
    let st = section("stale");
    assert!(
        st.starts_with("    - reporting: stale: last report"),
        "{st}"
    );
    // The stale node's last state was landed: only its silence holds it back.
    assert_eq!(st.lines().count(), 1, "{st}");
}
