//! `mirrorscope audit --probe` on 10,000 references (20 % missing at the mirror) against a real
//! loopback registry (Debian's docker-registry), and, on 200 of them, side by side with the loop
//! an admin writes today: `skopeo inspect --raw docker://REF` per image, one after the other.
//!
//! `cargo bench -p mirrorscope-cli --bench audit_probe` (not part of tests/run). Prints the
//! median wall time of three runs, and the CPU time of the audit.

// A benchmark harness, like a test: a failed set-up step ends it with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mirrorscope_e2e::collector::http;
use mirrorscope_e2e::oci;
use mirrorscope_e2e::registry::{Registry, ScratchDir};
use mirrorscope_e2e::skopeo;

const REPOS: usize = 20;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn main() {
    let total: usize = std::env::var("MIRRORSCOPE_BENCH_REFS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let m = Registry::plain();
    let base = format!("http://{}", m.host());
    let seeding = Instant::now();
    let mut manifests = Vec::new();
    for r in 0..REPOS {
        oci::seed(&m, &format!("bench/app-{r}"), "seed", &format!("app-{r}"));
        let (status, body) = http(
            &base,
            "GET",
            &format!("/v2/bench/app-{r}/manifests/seed"),
            &[("Accept", OCI_MANIFEST)],
            b"",
        );
        assert_eq!(status, 200, "{body}");
        manifests.push(body);
    }
    // Every fifth reference is never pushed: manifest unknown at the mirror.
    let present = |i: usize| !i.is_multiple_of(5);
    for i in (0..total).filter(|i| present(*i)) {
        let r = i % REPOS;
        let (status, body) = http(
            &base,
            "PUT",
            &format!("/v2/bench/app-{r}/manifests/v{i}"),
            &[("Content-Type", OCI_MANIFEST)],
            manifests[r].as_bytes(),
        );
        assert_eq!(status, 201, "PUT v{i}: {body}");
    }
    println!(
        "seeded {} tags in {REPOS} repositories of {} in {:.1?}",
        (0..total).filter(|i| present(*i)).count(),
        m.host(),
        seeding.elapsed()
    );

    let dir = ScratchDir::new("bench-audit");
    let conf = dir.write(
        "registries.conf",
        &format!(
            "[[registry]]\nprefix = \"quay.io/bench\"\nlocation = \"quay.io/bench\"\nblocked = true\n[[registry.mirror]]\nlocation = \"{}/bench\"\ninsecure = true\n",
            m.host()
        ),
    );
    let reference = |i: usize| format!("quay.io/bench/app-{}:v{i}", i % REPOS);
    let all: Vec<String> = (0..total).map(reference).collect();
    let list = dir.write("all.txt", &all.join("\n"));
    let small = dir.write("200.txt", &all[..200.min(total)].join("\n"));

    let audit = |list: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorscope"));
        cmd.arg("audit")
            .arg("--registries-conf")
            .arg(&conf)
            .arg("--registries-conf-d")
            .arg(dir.path().join("none.d"))
            .arg("--images-from")
            .arg(list)
            .args(["--probe", "-o", "json"])
            .env("HTTPS_PROXY", skopeo::CLOSED_PROXY)
            .env("NO_PROXY", "127.0.0.1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd
    };

    // Check the answer once: 80 % mirror, 20 % fail (missing, the source blocked).
    let out = audit(&list).output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = doc.as_array().unwrap();
    let fails = entries.iter().filter(|e| e["verdict"] == "fail").count();
    let mirrors = entries.iter().filter(|e| e["verdict"] == "mirror").count();
    assert_eq!((mirrors + fails, fails), (total, total / 5), "{}", &doc);

    let (full, cpu) = median_of(3, || run(&mut audit(&list)));
    println!(
        "audit --probe, {total} references: median {:.2} s wall, {:.2} s CPU (goal <= 20 s)",
        full.as_secs_f64(),
        cpu.as_secs_f64()
    );
    let (ours, _) = median_of(3, || run(&mut audit(&small)));
    let home = ScratchDir::new("bench-skopeo");
    let skopeo_loop = || {
        let t0 = Instant::now();
        let mut found = 0;
        let mut last_error = String::new();
        for r in &all[..200.min(total)] {
            let mut cmd = skopeo::command(home.path());
            cmd.arg("--registries-conf").arg(&conf).args([
                "inspect",
                "--raw",
                &format!("docker://{r}"),
            ]);
            let out = cmd.output().unwrap();
            if out.status.success() {
                found += 1;
            } else {
                last_error = String::from_utf8_lossy(&out.stderr).into_owned();
            }
        }
        // The loop must find what the audit finds, or it measures nothing.
        assert_eq!(
            found, 160,
            "skopeo found {found} of 200; last error: {last_error}"
        );
        (t0.elapsed(), Duration::ZERO)
    };
    let (theirs, _) = median_of(3, skopeo_loop);
    println!(
        "200 references: mirrorscope audit --probe {:.3} s, skopeo inspect --raw loop {:.2} s: {:.0}x faster (goal >= 20x)",
        ours.as_secs_f64(),
        theirs.as_secs_f64(),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );
}

/// Wall and CPU (user + system of the child) time of one run.
fn run(cmd: &mut Command) -> (Duration, Duration) {
    let before = children_cpu();
    let t0 = Instant::now();
    let out = cmd.output().unwrap();
    let wall = t0.elapsed();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{:?}",
        out.status
    );
    (wall, children_cpu().saturating_sub(before))
}

fn children_cpu() -> Duration {
    // The waited-for children's CPU: cutime + cstime of /proc/self/stat, in 100 Hz clock ticks.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    // Fields after the command name: state is [0]; cutime and cstime are [13] and [14].
    let ticks: u64 = [13, 14]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

fn median_of(n: usize, mut f: impl FnMut() -> (Duration, Duration)) -> (Duration, Duration) {
    let mut runs: Vec<(Duration, Duration)> = (0..n).map(|_| f()).collect();
    runs.sort();
    runs[n / 2]
}
