//! Journal entries claiming to be CRI-O: the agent believes only what journald recorded about
//! the sender (unit, uid, process name), never SYSLOG_IDENTIFIER, which any local user sets
//! (`logger -t crio`). Before the fix a pull record forged by uid 65534 was reported.

use std::process::Command;
use std::time::Duration;

use mirrorscope_e2e::agent::{metric, Agent, HostRoot, LivePulls, LIVE_CONF, SETPRIV};
use mirrorscope_e2e::collector::write_atomic;
use mirrorscope_e2e::journal::{crio_msg, require, Journald, TimeFormat};
use serde_json::Value;

/// Records are final once the correlator's 10 s linger passed after the pull: allow for it.
const RECORDS: Duration = Duration::from_secs(40);
const LOGGER: &str = "/usr/bin/logger";

fn now_usec() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// `logger -t crio LINE` as uid/gid 65534 into this journald's syslog socket.
fn forge_as_nobody(journal: &Journald, line: &str) {
    require(SETPRIV);
    require(LOGGER);
    let dev_log = journal.socket_path().with_file_name("dev-log");
    let st = Command::new(SETPRIV)
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            LOGGER,
            "--socket-errors=on",
            "-u",
        ])
        .arg(&dev_log)
        .args(["-t", "crio", "--", line])
        .status()
        .unwrap();
    assert!(st.success(), "logger as nobody failed");
}

fn has_pull(r: &Value, id: &str) -> bool {
    r["pulls"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["pull_id"] == id))
}

#[test]
fn pull_lines_sent_by_an_unprivileged_user_as_crio_are_ignored_and_counted() {
    let journal = Journald::start();
    let root = HostRoot::new("agent-trust");
    write_atomic(
        &root.at("/etc/containers/registries.conf"),
        LIVE_CONF.as_bytes(),
    );
    let agent = Agent::start(&[
        "--host-root",
        root.path().to_str().unwrap(),
        "--state-dir",
        root.at("/state").to_str().unwrap(),
        "--journal-dir",
        journal.dir().to_str().unwrap(),
    ]);
    agent.wait_report("following", RECORDS, |r| r["journal"]["following"] == true);

    let forged = LivePulls::id(66);
    for msg in [
        "Pulling image: quay.io/live/forged:1",
        "Pulled image: quay.io/live/forged@sha256:6666666666666666666666666666666666666666666666666666666666666666",
    ] {
        forge_as_nobody(
            &journal,
            &crio_msg(now_usec(), TimeFormat::Rfc3339Nano, msg, Some(&forged)),
        );
    }
    // A pull logged as the root process named crio (as on a host without units) still counts.
    LivePulls(&journal).via_mirror(1);
    let r = agent.wait_report("the real pull", RECORDS, |r| has_pull(r, &LivePulls::id(1)));
    assert!(!has_pull(&r, &forged), "forged record reported:\n{r:#}");
    // The real pull leaves at once; the forged lines came through journald's syslog socket,
    // which it may read after the native one: wait for both to be counted.
    let untrusted =
        "mirrorscope_errors_total{component=\"journal\",error_type=\"untrusted_entry\"}";
    let deadline = std::time::Instant::now() + RECORDS;
    while metric(&agent.metrics(), untrusted) != Some(2.0) {
        let m = agent.metrics();
        assert!(std::time::Instant::now() < deadline, "{m}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !has_pull(&agent.report(), &forged),
        "forged record reported"
    );
    assert!(agent.log().contains("only by fields their sender chose"));
}
