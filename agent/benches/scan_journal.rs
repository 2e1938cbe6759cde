//! `scan` on a 1M-entry journal versus `journalctl --directory … -o json > /dev/null`, same files,
//! same run; prints wall times, the ratio, and both peak RSS values.
//!
//! `cargo bench -p mirrorscope-agent --bench scan_journal`. The journal (10 % pull-related lines)
//! is built once by systemd-journal-remote and kept in target/ for later runs.
//! `MIRRORSCOPE_BENCH_ENTRIES` changes the size, `MIRRORSCOPE_BENCH_ARGS` adds scan arguments.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// wait4 for the child's rusage: the benchmark measures scan's own CPU and peak RSS.
#![allow(unsafe_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mirrorscope_e2e::journal::{crio_msg, export, klog_entries, Entry, TimeFormat, JOURNAL_REMOTE};

const T0: u64 = 1_795_246_000_000_000;
/// Bumped whenever the generated content changes, so a stale cached journal is rebuilt.
const GENERATION: u32 = 2;

fn main() {
    let total: usize = std::env::var("MIRRORSCOPE_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-journal");
    std::fs::create_dir_all(&dir).unwrap();
    // systemd-journal-remote rotates its output as the file's header fills up, so the journal
    // is a directory of files, as on a node.
    let jdir = dir.join(format!("g{GENERATION}-{total}"));
    let journal = jdir.join("bench.journal");
    let conf = dir.join("registries.conf");
    std::fs::write(
        &conf,
        "[[registry]]\nprefix = \"quay.io/acme\"\nlocation = \"quay.io/acme\"\n\
         [[registry.mirror]]\nlocation = \"mirror.corp.example.com:8443/acme\"\n\
         [[registry.mirror]]\nlocation = \"mirror2.corp.example.com/acme\"\n",
    )
    .unwrap();
    if !journal.exists() {
        let _ = std::fs::remove_dir_all(&jdir);
        std::fs::create_dir_all(&jdir).unwrap();
        let t = Instant::now();
        let pulls = build(&journal, total);
        eprintln!(
            "built {} ({total} entries, {pulls} pulls) in {:.1?}",
            journal.display(),
            t.elapsed()
        );
    }
    let files: Vec<PathBuf> = std::fs::read_dir(&jdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let size: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    println!(
        "journal: {} ({} files, {:.0} MiB, {total} entries, 10 % pull-related)",
        jdir.display(),
        files.len(),
        size as f64 / 1048576.0
    );

    let extra: Vec<String> = std::env::var("MIRRORSCOPE_BENCH_ARGS")
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let mut scan = Command::new(env!("CARGO_BIN_EXE_mirrorscope-agent"));
    scan.arg("scan")
        .arg("--journal-dir")
        .arg(&jdir)
        .arg("--registries-conf")
        .arg(&conf)
        .args(["-o", "jsonl"])
        .args(&extra);
    let mut jctl = Command::new("journalctl");
    jctl.arg("--directory")
        .arg(&jdir)
        .args(["-o", "json", "--no-pager"]);

    // Warm the page cache for both, then alternate runs.
    let (scan_times, scan_mem) = repeat(&mut scan, 3);
    let (jctl_times, jctl_mem) = repeat(&mut jctl, 3);
    let scan_t = median(scan_times);
    let jctl_t = median(jctl_times);
    for (name, t, m) in [
        ("scan -o jsonl", scan_t, scan_mem),
        ("journalctl -D -o json", jctl_t, jctl_mem),
    ] {
        println!(
            "{name:<24} median {:>7.3} s   CPU {:>6.2} s   peak RSS {:>6.1} MiB (anonymous {:>5.1} MiB, mapped journal files {:>5.1} MiB)",
            t.as_secs_f64(),
            m.cpu_s,
            m.max_rss_kib as f64 / 1024.0,
            m.anon_kib as f64 / 1024.0,
            m.file_kib as f64 / 1024.0,
        );
    }
    println!(
        "speed-up: {:.1}x wall, {:.1}x CPU (goal >= 10x); scan peak RSS goal <= 25 MiB",
        jctl_t.as_secs_f64() / scan_t.as_secs_f64(),
        jctl_mem.cpu_s / scan_mem.cpu_s
    );
}

/// Peak memory of a run, KiB: `ru_maxrss` from wait4, and the largest `RssAnon` / `RssFile`
/// seen in /proc while it ran (sd-journal maps the journal files, and the pages it touches count
/// in RSS although they are page cache, not memory the program allocated).
#[derive(Debug, Clone, Copy, Default)]
struct Mem {
    max_rss_kib: i64,
    anon_kib: i64,
    file_kib: i64,
    /// User + system CPU time of the run (max over runs), seconds: less sensitive than wall
    /// time to other work on a shared machine.
    cpu_s: f64,
}

/// Runs `cmd` once to warm caches and `n` times measured, stdout to /dev/null.
fn repeat(cmd: &mut Command, n: usize) -> (Vec<Duration>, Mem) {
    let mut times = Vec::new();
    let mut mem = Mem::default();
    for i in 0..=n {
        let (t, m) = run_measured(cmd);
        if i > 0 {
            times.push(t);
        }
        mem.max_rss_kib = mem.max_rss_kib.max(m.max_rss_kib);
        mem.anon_kib = mem.anon_kib.max(m.anon_kib);
        mem.file_kib = mem.file_kib.max(m.file_kib);
        mem.cpu_s = mem.cpu_s.max(m.cpu_s);
    }
    (times, mem)
}

fn proc_status_kib(pid: u32, key: &str) -> Option<i64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn run_measured(cmd: &mut Command) -> (Duration, Mem) {
    let t = Instant::now();
    // Reaped by wait4 below, which also gives the peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let child_pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = std::sync::Arc::clone(&done);
    let sampler = std::thread::spawn(move || {
        let (mut anon, mut file) = (0, 0);
        while !done2.load(std::sync::atomic::Ordering::Relaxed) {
            anon = anon.max(proc_status_kib(child_pid, "RssAnon:").unwrap_or(0));
            file = file.max(proc_status_kib(child_pid, "RssFile:").unwrap_or(0));
            std::thread::sleep(Duration::from_millis(5));
        }
        (anon, file)
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: plain syscall on the child we just spawned, with valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = t.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (anon_kib, file_kib) = sampler.join().unwrap();
    assert_eq!(r, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed with status {status}"
    );
    (
        elapsed,
        Mem {
            max_rss_kib: usage.ru_maxrss,
            anon_kib,
            file_kib,
            cpu_s: tv(usage.ru_utime) + tv(usage.ru_stime),
        },
    )
}

fn tv(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Streams the entries into systemd-journal-remote. One entry in ten belongs to a pull (mirror
/// hit, miss then source, or a failure with the multi-entry kubelet error); the rest are other
/// CRI-O and kubelet lines (selected, then ignored) and other units (never selected).
fn build(path: &Path, total: usize) -> usize {
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg(format!("--output={}", path.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = std::io::BufWriter::with_capacity(1 << 20, child.stdin.take().unwrap());
    let mut t = T0;
    let mut written = 0usize;
    let mut pull_entries = 0usize;
    let mut pulls = 0usize;
    let mut chunk = Vec::with_capacity(64);
    while written < total {
        chunk.clear();
        t += 997;
        let i = written;
        if pull_entries * 10 < written {
            pulls += 1;
            chunk.extend(pull(t, pulls));
            pull_entries += chunk.len();
        } else if i.is_multiple_of(2) {
            // CRI-O's other RPCs; one in four is an image status check (an image-related line
            // the correlator looks at, as on a node where every container start checks its image).
            let (text, rpc) = match (i / 4) % 4 {
                0 => (
                    format!(
                        "Checking image status: registry.example.com/app/img-{}:v1",
                        i % 97
                    ),
                    "ImageService/ImageStatus",
                ),
                1 => (
                    format!("Creating container: ns-{}/pod-{}/main", i % 13, i % 101),
                    "RuntimeService/CreateContainer",
                ),
                2 => (
                    format!(
                        "Started container {:012x}: ns-{}/pod-{}/main",
                        i,
                        i % 13,
                        i % 101
                    ),
                    "RuntimeService/StartContainer",
                ),
                _ => (
                    format!("Stopped pod sandbox: {:064x}", i),
                    "RuntimeService/StopPodSandbox",
                ),
            };
            let msg = format!(
                "{} name=/runtime.v1.{rpc}",
                crio_msg(
                    t,
                    TimeFormat::Rfc3339Nano,
                    &text,
                    Some(&format!("c0ffee00-0000-4000-8000-{i:012}")),
                )
                .replacen(" name=/runtime.v1.ImageService/PullImage", "", 1)
            );
            chunk.push(if i.is_multiple_of(4) {
                Entry::crio(t, &msg)
            } else {
                Entry::kubelet(t, &format!("I1121 07:00:00.000000    2213 kubelet.go:2470] \"SyncLoop (PLEG): event for pod\" pod=\"ns-{}/pod-{}\"", i % 13, i % 101))
            });
        } else {
            let unit = [
                "sshd.service",
                "NetworkManager.service",
                "ovs-vswitchd.service",
                "systemd-logind.service",
            ][i % 4];
            chunk.push(Entry::stdout(t, Some(unit), unit.trim_end_matches(".service"), 900 + (i % 4) as u32, &format!("unrelated message number {i} from {unit} with some typical length padding text")));
        }
        written += chunk.len();
        stdin.write_all(&export(&chunk)).unwrap();
    }
    drop(stdin);
    let st = child.wait().unwrap();
    assert!(st.success(), "systemd-journal-remote failed");
    pulls
}

fn pull(t: u64, n: usize) -> Vec<Entry> {
    let id = format!("5eed0000-0000-4000-8000-{n:012}");
    let (repo, tag) = (
        format!("quay.io/acme/app-{}", n % 50),
        format!("v{}", n % 7),
    );
    let image = format!("{repo}:{tag}");
    let m1 = repo.replacen("quay.io", "mirror.corp.example.com:8443", 1);
    let m2 = repo.replacen("quay.io", "mirror2.corp.example.com", 1);
    let tf = TimeFormat::Rfc3339Nano;
    let crio = |dt: u64, msg: String, id: Option<&str>| {
        Entry::crio(t + dt, &crio_msg(t + dt, tf, &msg, id))
    };
    let trying = |dt: u64, r: &str| crio(dt, format!("Trying to access \"{r}:{tag}\""), None);
    let pulled = |dt: u64| {
        crio(
            dt,
            format!("Pulled image: {repo}@sha256:{n:064x}"),
            Some(&id),
        )
    };
    let mut v = vec![
        crio(0, format!("Pulling image: {image}"), Some(&id)),
        trying(10, &m1),
    ];
    match n % 3 {
        // Mirror hit.
        0 => v.push(pulled(20)),
        // Miss on the first mirror, served by the second.
        1 => {
            v.push(trying(15, &m2));
            v.push(pulled(20));
        }
        // Everything fails: the kubelet error spans several entries.
        _ => {
            v.push(trying(15, &m2));
            v.push(trying(18, &repo));
            let miss = |r: &str| format!("reading manifest {tag} in {r}: manifest unknown");
            let err = format!(
                "rpc error: code = Unknown desc = initializing source docker://{image}: (Mirrors also failed: [{m1}:{tag}: {}]\n[{m2}:{tag}: {}]): {image}: {}",
                miss(&m1),
                miss(&m2),
                miss(&repo)
            );
            v.extend(klog_entries(
                t + 30,
                'E',
                "log.go:32",
                "PullImage from image service failed",
                &[("err", &err), ("image", &image)],
            ));
        }
    }
    v
}
