//! A live journal: a standalone systemd-journald, entries written while `scan --follow` reads,
//! a rotation and a vacuum in the middle, a kill and a restart from the checkpoint. Every
//! selected entry must come out exactly once, in order.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use mirrorscope_e2e::journal::{agent_bin, scratch, Journald};
use serde_json::Value;

struct Follower {
    child: Child,
    lines: Receiver<Value>,
}

impl Follower {
    fn start(dir: &Path, checkpoint: &Path) -> Self {
        let mut child = Command::new(agent_bin())
            .args(["scan", "--follow", "--entries", "--journal-dir"])
            .arg(dir)
            .arg("--checkpoint")
            .arg(checkpoint)
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
        let deadline = Instant::now() + Duration::from_secs(30);
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
        if let Ok(v) = self.lines.recv_timeout(Duration::from_millis(1500)) {
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

fn wait_checkpoint(cp: &Path, cursor: &Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let saved = std::fs::read_to_string(cp)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        if saved.as_ref().map(|s| &s["cursor"]) == Some(cursor) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "checkpoint never reached {cursor}"
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
    wait_checkpoint(&cp, &got.last().unwrap()["cursor"]);
    f.kill();
    want.extend(write(&j, 70, 90));
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
