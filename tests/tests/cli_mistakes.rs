//! Mistakes a user makes and what the CLI answers: clear errors with the exit codes `--help`
//! promises, nothing that forges output, and quiet ends on closed pipes.

use std::io::Read as _;
use std::process::{Command, Stdio};

use mirrorscope_e2e::collector::*;

const BLOCKED: &str = "[[registry]]\nlocation = 'quay.io/ns'\nblocked = true\n";

#[test]
fn render_of_nothing_is_an_error_not_an_empty_rendering() {
    let dir = TempDir::new("render-empty");
    for args in [
        vec!["render", "-f", "-"],
        vec!["render", "-f", dir.path().to_str().unwrap()],
    ] {
        let mut child = Command::new(bin("mirrorscope"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("no objects found in"), "{stderr}");
    }
}

#[test]
fn explain_exits_1_for_any_image_that_will_not_pull_locally_and_on_a_node() {
    let dir = TempDir::new("explain-blocked");
    let conf = dir.path().join("registries.conf");
    std::fs::write(&conf, BLOCKED).unwrap();
    let digest = format!("quay.io/ns/app@sha256:{}", "a".repeat(64));
    let local = |image: &str| {
        Command::new(bin("mirrorscope"))
            .args(["explain", "--registries-conf", conf.to_str().unwrap()])
            .arg("--registries-conf-d")
            .arg(dir.path().join("none"))
            .arg(image)
            .output()
            .unwrap()
    };
    // Every location blocked, by digest as by tag: it will not pull.
    assert_eq!(local(&digest).status.code(), Some(1));
    assert_eq!(local("quay.io/ns/app:1").status.code(), Some(1));
    assert_eq!(local("quay.io/other/app:1").status.code(), Some(0));
    assert_eq!(local("UPPER/case:1").status.code(), Some(1));

    // On a node through the collector: the same answers, a bad reference included.
    let c = Collector::start(&[]);
    let mut n = FakeNode::new("w1");
    n.write_registries(BLOCKED);
    n.push_to(&c.url);
    for (image, code) in [
        (digest.as_str(), 1),
        ("UPPER/case:1", 1),
        ("quay.io/other/app:1", 0),
    ] {
        let out = cli(&c.url, &["explain", "--node", "w1", "-o", "json", image]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let e: Vec<mirrorscope_core::explain::Explanation> =
            serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(e[0].will_not_pull(), code == 1, "{image}");
    }
}

#[test]
fn tables_escape_control_characters_and_a_closed_pipe_ends_quietly() {
    let c = Collector::start(&[]);
    let mut n = FakeNode::new("evil\u{1b}[2J\nforged-row");
    n.write_registries("unqualified-search-registries = ['docker.io']\n");
    n.pulls = (0..400)
        .map(|i| {
            pull_record(
                &format!("p{i}"),
                "docker.io/library/nginx:1.25",
                "docker.io/library/nginx:1.25",
                false,
                false,
            )
        })
        .collect();
    n.push_to(&c.url);
    let out = cli(&c.url, &["nodes"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(
        !text.lines().any(|l| l.starts_with("forged-row")),
        "{text:?}"
    );
    assert!(text.contains("evil\\u{1b}[2J\\nforged-row"), "{text:?}");

    // `mirrorscope pulls --limit 400 | head -1`: the reader goes away; no panic, no backtrace.
    let mut child = Command::new(bin("mirrorscope"))
        .args(["pulls", "--limit", "400", "-o", "wide"])
        .env("MIRRORSCOPE_COLLECTOR", &c.url)
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn an_empty_collector_says_why_and_where_to_look() {
    let c = Collector::start(&[]);
    for cmd in ["status", "nodes"] {
        let out = cli(&c.url, &[cmd]);
        assert_eq!(out.status.code(), Some(0));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("No agent has reported")
                && stderr.contains("oc -n mirrorscope get ds mirrorscope-agent"),
            "{cmd}: {stderr}"
        );
    }
}
