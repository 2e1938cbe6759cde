//! `mirrorscope-agent run` as a process: steady RSS with a quiet journal, RSS and CPU while
//! following 1,000 entries/s, and the latency from a registries.conf rename to `/v1/report`
//! and to a collector (p50/p99).
//!
//! `cargo bench -p mirrorscope-agent --bench agent_run` (not part of `tests/run`). The journal is
//! written live by `systemd-journal-remote` (export format on its stdin: no journald rate limit),
//! the collector is the e2e fake collector. `MIRRORSCOPE_BENCH_SECONDS` sets the length of the
//! quiet and flood phases (default 30), `MIRRORSCOPE_BENCH_RENAMES` the latency samples (200).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mirrorscope_e2e::agent::{Agent, FakeCollector, LivePulls};
use mirrorscope_e2e::collector::{write_atomic, TempDir};
use mirrorscope_e2e::journal::{crio_msg, export, klog_entries, Entry, TimeFormat, JOURNAL_REMOTE};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Resident set of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of `pid` (all its threads).
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Duration::from_micros(ticks * 1_000_000 / hz)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct Sampler {
    pid: u32,
    rss: Vec<u64>,
    cpu0: Duration,
    t0: Instant,
}

impl Sampler {
    fn new(pid: u32) -> Self {
        Sampler {
            pid,
            rss: Vec::new(),
            cpu0: cpu(pid),
            t0: Instant::now(),
        }
    }

    fn sample(&mut self) {
        self.rss.push(rss_kib(self.pid));
    }

    fn report(&mut self, what: &str) {
        let wall = self.t0.elapsed();
        let used = cpu(self.pid) - self.cpu0;
        self.rss.sort_unstable();
        let median = self.rss[self.rss.len() / 2];
        let max = *self.rss.last().unwrap();
        println!(
            "{what}: RSS median {:.1} MiB, max {:.1} MiB; CPU {:.2} s over {:.1} s ({:.1} % of one core)",
            mib(median),
            mib(max),
            used.as_secs_f64(),
            wall.as_secs_f64(),
            100.0 * used.as_secs_f64() / wall.as_secs_f64()
        );
    }
}

/// A live journal file fed by systemd-journal-remote.
struct LiveJournal {
    child: Child,
}

impl LiveJournal {
    fn start(dir: &Path) -> Self {
        let child = Command::new(JOURNAL_REMOTE)
            .arg(format!("--output={}", dir.join("live.journal").display()))
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("systemd-journal-remote (Debian systemd-journal-remote)");
        LiveJournal { child }
    }

    fn write(&mut self, entries: &[Entry]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(&export(entries)).unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for LiveJournal {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

const CONF_A: &str = "[[registry]]\nprefix = \"quay.io/live\"\nlocation = \"quay.io/live\"\n[[registry.mirror]]\nlocation = \"mirror.live.example.net/live\"\n";
const CONF_B: &str = "[[registry]]\nprefix = \"quay.io/live\"\nlocation = \"quay.io/live\"\n[[registry.mirror]]\nlocation = \"mirror.live.example.net/live\"\n[[registry.mirror]]\nlocation = \"mirror-b.live.example.net/live\"\n";

/// One second of journal: 1,000 entries, 10 % of them pull lines (pulls `first..`), the rest
/// other CRI-O RPCs, kubelet sync lines and other units.
fn second_of_entries(first: u32, t: u64) -> (Vec<Entry>, u32) {
    let mut v = Vec::with_capacity(1000);
    let mut pulls = 0;
    let mut n = first;
    while v.len() < 100 - 2 {
        let id = LivePulls::id(n);
        let u = t + v.len() as u64;
        let tf = TimeFormat::Rfc3339Nano;
        v.push(Entry::crio(
            u,
            &crio_msg(
                u,
                tf,
                &format!("Pulling image: quay.io/live/app-{n}:1"),
                Some(&id),
            ),
        ));
        v.push(Entry::crio(
            u + 1,
            &crio_msg(
                u + 1,
                tf,
                &format!("Trying to access \"mirror.live.example.net/live/app-{n}:1\""),
                None,
            ),
        ));
        v.push(Entry::crio(
            u + 2,
            &crio_msg(
                u + 2,
                tf,
                &format!("Pulled image: quay.io/live/app-{n}@sha256:{n:064x}"),
                Some(&id),
            ),
        ));
        n += 1;
        pulls += 1;
    }
    let mut i = 0u64;
    while v.len() < 1000 {
        let u = t + 1000 + i;
        match i % 3 {
            0 => v.push(Entry::crio(
                u,
                &crio_msg(
                    u,
                    TimeFormat::Rfc3339Nano,
                    "Creating container: ns/pod/app",
                    Some("aaaaaaaa-1111-4222-8333-444455556666"),
                ),
            )),
            1 => v.extend(
                klog_entries(
                    u,
                    'I',
                    "kubelet.go:2470",
                    "SyncLoop (PLEG): event for pod",
                    &[("pod", "ns/p")],
                )
                .into_iter()
                .take(1),
            ),
            _ => v.push(Entry::stdout(
                u,
                Some("sshd.service"),
                "sshd",
                900,
                "Accepted publickey for core",
            )),
        }
        i += 1;
    }
    (v, pulls)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    // Agent::start runs the binary from MIRRORSCOPE_BIN_DIR: this bench's optimised build.
    let exe = Path::new(env!("CARGO_BIN_EXE_mirrorscope-agent"));
    std::env::set_var("MIRRORSCOPE_BIN_DIR", exe.parent().unwrap());
    let seconds = env_or("MIRRORSCOPE_BENCH_SECONDS", 30);
    let renames = env_or("MIRRORSCOPE_BENCH_RENAMES", 200);

    let root = TempDir::new("agent-bench");
    let main_conf = root.path().join("etc/containers/registries.conf");
    write_atomic(&main_conf, CONF_A.as_bytes());
    let jdir = root.path().join("journal");
    std::fs::create_dir_all(&jdir).unwrap();
    let mut journal = LiveJournal::start(&jdir);
    // The file exists before the agent opens the directory.
    let t = now_usec();
    journal.write(&[Entry::stdout(t, Some("sshd.service"), "sshd", 900, "boot")]);
    while !jdir.join("live.journal").exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let collector = FakeCollector::start(None);
    let r = root.path().display().to_string();
    let state = format!("{r}/state");
    let jd = jdir.display().to_string();
    let url = collector.url();
    let agent = Agent::start(&[
        "--host-root",
        &r,
        "--state-dir",
        &state,
        "--journal-dir",
        &jd,
        "--collector",
        &url,
        "--node-name",
        "bench",
    ]);
    let pid = agent.child.id();
    agent.wait_report("ready", Duration::from_secs(20), |r| {
        r["journal"]["following"] == true
    });

    // 1. Quiet journal.
    let mut s = Sampler::new(pid);
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        s.sample();
        std::thread::sleep(Duration::from_millis(500));
    }
    s.report("quiet journal");

    // 2. 1,000 entries/s, written in 10 slices per second.
    let mut s = Sampler::new(pid);
    let t0 = Instant::now();
    let mut next_pull = 0;
    for sec in 0..seconds {
        let (entries, pulls) = second_of_entries(next_pull, now_usec());
        next_pull += pulls;
        for (i, chunk) in entries.chunks(100).enumerate() {
            let due = t0 + Duration::from_millis(sec * 1000 + i as u64 * 100);
            if let Some(w) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
            journal.write(chunk);
        }
        s.sample();
    }
    s.report("following 1,000 entries/s");
    let total = next_pull;
    let t = Instant::now();
    collector.wait("every flood pull", Duration::from_secs(120), |r| {
        r.ids.len() as u32 >= total
    });
    println!(
        "flood: {total} pulls ({} entries) all at the collector {:.1} s after the last write",
        seconds * 1000,
        t.elapsed().as_secs_f64()
    );

    // 3. Rename → report, rename → collector.
    let mut to_report = Vec::new();
    let mut to_collector = Vec::new();
    for i in 0..renames {
        let conf = if i % 2 == 0 { CONF_B } else { CONF_A };
        let before = agent.report()["registries"]["effective_digest"].clone();
        let t = Instant::now();
        write_atomic(&main_conf, conf.as_bytes());
        let (mut at_report, mut at_collector) = (None, None);
        while at_report.is_none() || at_collector.is_none() {
            if at_report.is_none() && agent.report()["registries"]["effective_digest"] != before {
                at_report = Some(t.elapsed());
            }
            if at_collector.is_none() {
                let got = collector
                    .last_report()
                    .and_then(|r| r.registries.effective_digest);
                if got.is_some() && serde_json::Value::from(got) != before {
                    at_collector = Some(t.elapsed());
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "rename {i} never showed"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        to_report.extend(at_report);
        to_collector.extend(at_collector);
    }
    to_report.sort();
    to_collector.sort();
    println!(
        "rename → /v1/report: p50 {:.0} ms, p99 {:.0} ms; rename → collector: p50 {:.0} ms, p99 {:.0} ms ({renames} renames)",
        percentile(&to_report, 0.5).as_secs_f64() * 1e3,
        percentile(&to_report, 0.99).as_secs_f64() * 1e3,
        percentile(&to_collector, 0.5).as_secs_f64() * 1e3,
        percentile(&to_collector, 0.99).as_secs_f64() * 1e3,
    );
    let mut s = Sampler::new(pid);
    s.sample();
    s.report("after the bench");
}
