//! `scripts/run-local`, the README's first command, as a newcomer runs it: the collector and the
//! agent come up on 127.0.0.1 watching the bundled example node, the status page and the CLI
//! show its rollout and its four pulls (mirror hit, blocked, fallback, digest mirror), and
//! Ctrl-C (SIGINT) stops both cleanly. Also: the example node's files are exactly what the MCO
//! renders from examples/host-root/mirror-sets.yaml, and its currentconfig carries them.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mirrorscope_core::machineconfig::{parse_current_config, FileMatch};
use mirrorscope_e2e::child::ChildGuard;
use mirrorscope_e2e::collector::{bin, cli, http, TempDir};
use mirrorscope_e2e::journal::signal;
use mirrorscope_e2e::readme;
use mirrorscope_e2e::registry::free_port;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const EXAMPLE_FILES: [&str; 3] = [
    "etc/containers/registries.conf",
    "etc/containers/registries.conf.d/01-image-searchRegistries.conf",
    "etc/containers/policy.json",
];

#[test]
fn example_host_root_is_what_mco_renders_and_its_currentconfig_carries() {
    let example = repo().join("examples/host-root");
    let out = TempDir::new("example-render");
    let o = Command::new(bin("mirrorscope"))
        .args(["render", "--ocp-version", "4.19", "-f"])
        .arg(example.join("mirror-sets.yaml"))
        .arg("--output-dir")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mc = parse_current_config(
        &std::fs::read(example.join("etc/machine-config-daemon/currentconfig")).unwrap(),
    )
    .unwrap();
    assert!(mc.name.starts_with("rendered-worker-"), "{}", mc.name);
    for f in EXAMPLE_FILES {
        let on_disk = std::fs::read(example.join(f)).unwrap();
        let rendered = std::fs::read(out.path().join(f)).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&on_disk),
            String::from_utf8_lossy(&rendered),
            "{f} is not what render writes"
        );
        assert_eq!(
            mc.compare(&format!("/{f}"), Some(&on_disk)),
            FileMatch::Matches,
            "{f}"
        );
    }
}

/// Every `$ mirrorscope ...` of the README's `<!-- run-local -->` blocks, run as written against
/// run-local's collector: stdout is what the README shows (times and ages aside), and a command
/// chained with `&&` or piped on succeeds.
fn readme_examples_print_what_the_readme_shows(url: &str) {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let examples = readme::examples(&readme);
    assert!(
        examples.len() >= 5,
        "the README's run-local examples are not marked {}: {examples:?}",
        readme::MARKER
    );
    for ex in &examples {
        let args: Vec<&str> = ex.args.iter().map(String::as_str).collect();
        let out = cli(url, &args);
        // run-local names the example's files by absolute path; the README, from the clone's root.
        let root = format!("{}/", repo().canonicalize().unwrap().display());
        let stdout = String::from_utf8_lossy(&out.stdout).replace(&root, "");
        let context = format!(
            "mirrorscope {}:\n{stdout}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut shown: Vec<String> = stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(readme::normalized)
            .collect();
        match ex.then.as_deref() {
            None => {}
            Some(then) => {
                assert!(out.status.success(), "{context}");
                match then.strip_prefix("echo ") {
                    Some(word) => shown.push(word.to_string()),
                    // Piped on: the README shows no output of its own for it.
                    None => continue,
                }
            }
        }
        let want: Vec<String> = ex.output.iter().map(|l| readme::normalized(l)).collect();
        assert_eq!(shown, want, "{context}");
    }
}

fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn run_local_serves_the_example_node_and_stops_on_ctrl_c() {
    let (cport, aport) = (free_port(), free_port());
    let work = TempDir::new("run-local");
    let bin_dir = bin("mirrorscope").parent().unwrap().to_path_buf();
    let log = work.path().join("stderr");
    // SIGINT restored to its default: started in the background (`./tests/run > log &`, CI
    // runners), this test inherits SIGINT ignored, and a shell cannot trap a signal ignored on
    // entry.
    let mut child = ChildGuard::new(
        Command::new("/usr/bin/env")
            .arg("--default-signal=INT")
            .arg(repo().join("scripts/run-local"))
            .arg("--example")
            .env("MIRRORSCOPE_BIN_DIR", &bin_dir)
            .env("MIRRORSCOPE_RUN_DIR", work.path().join("run"))
            .env("MIRRORSCOPE_COLLECTOR_PORT", cport.to_string())
            .env("MIRRORSCOPE_AGENT_PORT", aport.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{cport}");
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();

    // The example's four pulls reach the collector through the agent.
    let deadline = Instant::now() + Duration::from_secs(90);
    let pulls = loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "run-local exited:\n{}",
            stderr()
        );
        let out = cli(&url, &["pulls", "-o", "json"]);
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            if v["pulls"].as_array().map(Vec::len) == Some(4) {
                break v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the example pulls never reached the collector:\n{}",
            stderr()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let by_image = |image: &str| {
        pulls["pulls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["image"] == image)
            .unwrap_or_else(|| panic!("no pull of {image}: {pulls:#}"))
            .clone()
    };
    let nginx = by_image("docker.io/library/nginx:1.25.3");
    assert_eq!(
        nginx["served_by"],
        "registry.example.com:5000/library/nginx:1.25.3"
    );
    assert_eq!(nginx["via_mirror"], true);
    assert_eq!(nginx["node"], "example-node");
    let curl = by_image("docker.io/curlimages/curl:latest");
    assert_eq!(curl["outcome"], "failed");
    let classes: Vec<&str> = curl["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["error_class"].as_str().unwrap_or("null"))
        .collect();
    assert_eq!(classes, ["manifest_unknown", "blocked"], "{curl:#}");
    let kubeflow = by_image("ghcr.io/kubeflow/notebook-controller:v1.9.0");
    assert_eq!(kubeflow["fallback"], true);
    let digest = "sha256:9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let gpu = by_image(&format!("nvcr.io/nvidia/gpu-operator@{digest}"));
    assert_eq!(
        gpu["served_by"],
        format!("registry.example.com/mirror/nvidia/gpu-operator@{digest}")
    );

    // The example node has landed the example mirror sets; the status page shows it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cli(&url, &["status"]);
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("Rollout: 1 of 1 nodes landed") {
            break;
        }
        assert!(Instant::now() < deadline, "{text}\n{}", stderr());
        std::thread::sleep(Duration::from_millis(250));
    }
    readme_examples_print_what_the_readme_shows(&url);
    let (code, page) = http(&url, "GET", "/", &[], b"");
    assert_eq!(code, 200);
    assert!(page.contains("example-node"), "{page}");
    let (code, metrics) = http(
        &format!("http://127.0.0.1:{aport}"),
        "GET",
        "/metrics",
        &[],
        b"",
    );
    assert_eq!(code, 200);
    assert!(
        metrics.contains("mirrorscope_registries_config_valid 1"),
        "{metrics}"
    );

    // A second run on the same ports refuses to start instead of pushing to this one.
    let second = Command::new(repo().join("scripts/run-local"))
        .arg("--example")
        .env("MIRRORSCOPE_BIN_DIR", &bin_dir)
        .env("MIRRORSCOPE_RUN_DIR", work.path().join("run2"))
        .env("MIRRORSCOPE_COLLECTOR_PORT", cport.to_string())
        .env("MIRRORSCOPE_AGENT_PORT", aport.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("is already in use"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    // --reload logs CRI-O's reload to the example journal: the agent sees a newer apply time.
    let applied = |url: &str| -> String {
        let (_, body) = http(url, "GET", "/v1/report", &[], b"");
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        v["crio"]["last_applied_at"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let agent_url = format!("http://127.0.0.1:{aport}");
    let before = applied(&agent_url);
    let reload = Command::new(repo().join("scripts/run-local"))
        .arg("--reload")
        .env("MIRRORSCOPE_RUN_DIR", work.path().join("run"))
        .output()
        .unwrap();
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while applied(&agent_url) <= before {
        assert!(
            Instant::now() < deadline,
            "no new CRI-O apply time: {}",
            stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Ctrl-C, twice: both processes stop, the script exits 0.
    signal(child.id(), "INT");
    std::thread::sleep(Duration::from_millis(50));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "run-local ignored SIGINT:\n{}",
            stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "{status}\n{}", stderr());
    assert!(
        stdout.contains(&format!("status page   {url}/")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("mirrorscope status --collector {url}")),
        "{stdout}"
    );
    let err = stderr();
    assert!(
        err.contains("[agent]") && err.contains("[collector]"),
        "{err}"
    );
    assert!(err.contains("== stopped"), "{err}");
    // The agent stopped first, so its last push reached the collector.
    assert!(!err.contains("last push failed"), "{err}");
    assert!(
        !port_open(cport) && !port_open(aport),
        "a process is still listening"
    );
}
