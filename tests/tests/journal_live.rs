//! A live journal: a standalone systemd-journald, entries written while `scan --follow` reads,
//! a rotation and a vacuum in the middle, a kill and a restart from the checkpoint. Every
//! selected entry must come out exactly once, in order.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use std::time::{SystemTime, UNIX_EPOCH};

use mirrorscope_e2e::journal::{agent_bin, crio_msg, scratch, Journald, TimeFormat};
use serde_json::Value;

struct Follower {
    child: Child,
    lines: Receiver<Value>,
}

impl Follower {
    fn start(dir: &Path, checkpoint: &Path) -> Self {
        Self::start_with(dir, checkpoint, &["--entries"])
    }

    fn start_with(dir: &Path, checkpoint: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(agent_bin())
            .args(["scan", "--follow", "--journal-dir"])
            .arg(dir)
            .arg("--checkpoint")
            .arg(checkpoint)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                    return;
                }
            }
        });
        Follower { child, lines }
    }

    /// Collects entries until `n` arrived.
    fn take(&self, n: usize) -> Vec<Value> {
        // Records wait out the correlator's 10 s linger before they are final.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => got.push(v),
                Err(_) => panic!("follower gave {} of {n} entries: {got:?}", got.len()),
            }
        }
        got
    }

    /// Nothing more arrives for a while.
    fn assert_quiet(&self) {
        if let Ok(v) = self.lines.recv_timeout(Duration::from_millis(3000)) {
            panic!("unexpected extra entry {v}");
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(j: &Journald, from: usize, to: usize) -> Vec<String> {
    let mut msgs = Vec::new();
    for i in from..to {
        let ident = if i % 2 == 0 { "crio" } else { "kubenswrapper" };
        let msg = format!("live line {i}");
        j.send(&[("SYSLOG_IDENTIFIER", ident), ("MESSAGE", &msg)]);
        // Noise that must never come out.
        j.send(&[
            ("SYSLOG_IDENTIFIER", "sshd"),
            ("MESSAGE", &format!("noise {i}")),
        ]);
        msgs.push(msg);
    }
    msgs
}

fn messages(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

fn wait_checkpoint(cp: &Path, what: &str, ok: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let saved = std::fs::read_to_string(cp)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        if saved.as_ref().is_some_and(&ok) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "checkpoint never reached {what}: {saved:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn follows_through_rotation_vacuum_and_restart_with_every_entry_once() {
    let j = Journald::start();
    let d = scratch("live");
    let cp = d.join("cursor.json");
    let mut want = Vec::new();
    let mut got = Vec::new();

    // Entries already there when the reader starts.
    want.extend(write(&j, 0, 20));
    let f = Follower::start(j.dir(), &cp);
    got.extend(f.take(20));

    // Written while it follows, with a rotation in the middle.
    want.extend(write(&j, 20, 40));
    j.rotate();
    want.extend(write(&j, 40, 60));
    got.extend(f.take(40));

    // The archived file goes away (vacuum); reading goes on in the active file.
    assert!(j.vacuum() >= 1);
    want.extend(write(&j, 60, 70));
    got.extend(f.take(10));
    f.assert_quiet();

    // Stop it once its checkpoint has caught up, write while it is down, restart.
    let last = got.last().unwrap()["cursor"].clone();
    wait_checkpoint(&cp, "the last entry", |s| s["cursor"] == last);
    f.kill();
    // The checkpoint's own entry goes into an archived file, which is vacuumed before the
    // restart: reading must resume right after it all the same.
    j.rotate();
    want.extend(write(&j, 70, 90));
    assert!(j.vacuum() >= 1);
    j.rotate();
    want.extend(write(&j, 90, 100));
    let f = Follower::start(j.dir(), &cp);
    got.extend(f.take(30));
    want.extend(write(&j, 100, 110));
    got.extend(f.take(10));
    f.assert_quiet();

    assert_eq!(messages(&got), want);
    let cursors: std::collections::HashSet<&str> =
        got.iter().map(|e| e["cursor"].as_str().unwrap()).collect();
    assert_eq!(cursors.len(), got.len(), "a cursor came out twice");
    assert!(got.iter().all(|e| e["systemd_unit"].is_null()));
}

const LIVE_CONF: &str = r#"
[[registry]]
prefix = "quay.io/live"
location = "quay.io/live"

[[registry.mirror]]
location = "mirror.live.example.net/live"
"#;

/// CRI-O lines of pull `n` (request id derived from n), sent to journald now.
struct Pulls<'a>(&'a Journald);

impl Pulls<'_> {
    fn id(n: u32) -> String {
        format!("0000{n:04}-1111-4222-8333-444455556666")
    }

    fn crio(&self, msg: &str, id: Option<&str>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        let line = crio_msg(now, TimeFormat::Rfc3339Nano, msg, id);
        self.0
            .send(&[("SYSLOG_IDENTIFIER", "crio"), ("MESSAGE", &line)]);
        self.0.send(&[
            ("SYSLOG_IDENTIFIER", "sshd"),
            ("MESSAGE", "noise between pulls"),
        ]);
    }

    fn start(&self, n: u32) {
        let id = Self::id(n);
        self.crio(&format!("Pulling image: quay.io/live/app-{n}:1"), Some(&id));
        self.crio(
            &format!("Trying to access \"mirror.live.example.net/live/app-{n}:1\""),
            None,
        );
    }

    fn finish(&self, n: u32) {
        let id = Self::id(n);
        self.crio(
            &format!("Pulled image: quay.io/live/app-{n}@sha256:{:064x}", n),
            Some(&id),
        );
    }

    fn whole(&self, n: u32) {
        self.start(n);
        self.finish(n);
    }
}

fn ids(v: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = v
        .iter()
        .map(|r| r["pull_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn want_ids(ns: &[u32]) -> Vec<String> {
    let mut v: Vec<String> = ns.iter().map(|n| Pulls::id(*n)).collect();
    v.sort();
    v
}

#[test]
fn pull_records_come_out_exactly_once_across_rotation_vacuum_and_restart() {
    let j = Journald::start();
    let d = scratch("live-records");
    let cp = d.join("checkpoint.json");
    let conf = d.join("registries.conf");
    std::fs::write(&conf, LIVE_CONF).unwrap();
    let dropins = d.join("registries.conf.d");
    std::fs::create_dir_all(&dropins).unwrap();
    let args = [
        "--registries-conf",
        conf.to_str().unwrap(),
        "--registries-conf-d",
        dropins.to_str().unwrap(),
    ];
    let p = Pulls(&j);
    let mut got = Vec::new();

    // Before the agent starts: two whole pulls, and one still open.
    p.whole(0);
    p.whole(1);
    p.start(2);
    let f = Follower::start_with(j.dir(), &cp, &args);
    p.finish(2);
    p.whole(3);
    j.rotate();
    p.whole(4);
    // Pull 6 stays open across the restart; 7 finishes while 6 is open.
    p.start(6);
    p.whole(7);
    got.extend(f.take(6));
    assert_eq!(ids(&got), want_ids(&[0, 1, 2, 3, 4, 7]));
    assert!(j.vacuum() >= 1);
    // The checkpoint stays before pull 6 and remembers that 7 was reported.
    wait_checkpoint(&cp, "pull 7 reported", |s| {
        s["emitted"].as_array().is_some_and(|e| e.len() == 1)
    });
    f.kill();

    p.finish(6);
    p.whole(8);
    let f = Follower::start_with(j.dir(), &cp, &args);
    p.whole(9);
    got.extend(f.take(3));
    f.assert_quiet();

    assert_eq!(
        ids(&got),
        want_ids(&[0, 1, 2, 3, 4, 6, 7, 8, 9]),
        "{got:#?}"
    );
    for r in &got {
        assert_eq!(r["outcome"], "pulled", "{r}");
        let n = &r["image"].as_str().unwrap()["quay.io/live/app-".len()..];
        let n = n.trim_end_matches(":1");
        assert_eq!(
            r["served_by"],
            format!("mirror.live.example.net/live/app-{n}:1"),
            "{r}"
        );
        assert_eq!(r["attempts"].as_array().unwrap().len(), 1, "{r}");
    }
}

#[test]
fn follows_two_journal_directories_at_once() {
    let (a, b) = (Journald::start(), Journald::start());
    let d = scratch("live-two");
    let cp = d.join("cursor.json");
    let mut child = Command::new(agent_bin())
        .args(["scan", "--follow", "--entries", "--journal-dir"])
        .arg(a.dir())
        .arg("--journal-dir")
        .arg(b.dir())
        .arg("--checkpoint")
        .arg(&cp)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let f = Follower {
        child,
        lines: {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                        return;
                    }
                }
            });
            rx
        },
    };
    // Nothing there yet: both directories are waited on, each wakes the reader.
    std::thread::sleep(Duration::from_millis(500));
    a.send(&[("SYSLOG_IDENTIFIER", "crio"), ("MESSAGE", "from a")]);
    assert_eq!(messages(&f.take(1)), ["from a"]);
    b.send(&[("SYSLOG_IDENTIFIER", "kubelet"), ("MESSAGE", "from b")]);
    assert_eq!(messages(&f.take(1)), ["from b"]);
    a.send(&[("SYSLOG_IDENTIFIER", "crio"), ("MESSAGE", "a again")]);
    assert_eq!(messages(&f.take(1)), ["a again"]);
    f.assert_quiet();
}
