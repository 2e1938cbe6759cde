//! A real journald cuts a line longer than its LineMax (48 KiB by default) into several entries,
//! all but the last with `_LINE_BREAK=line-max`. The kubelet's failure line for a pull whose
//! mirror answered with a long error is such a line: `scan` joins the pieces again and files the
//! pull with every location's error class, as if journald had not cut it.

use std::io::Write;
use std::time::{Duration, Instant};

use mirrorscope_e2e::collector::{now_unix, TempDir};
use mirrorscope_e2e::journal::{crio_msg, klog_text, scan_jsonl, Journald, TimeFormat};

const LINE_MAX: usize = 48 * 1024;

fn now_usec() -> u64 {
    (now_unix() * 1e6) as u64
}

#[test]
fn a_failure_line_longer_than_line_max_is_one_pull_failure() {
    let j = Journald::start();
    let dir = TempDir::new("line-max");
    let conf = dir.join("registries.conf");
    std::fs::write(
        &conf,
        "[[registry]]\nlocation = \"quay.io/acme\"\n[[registry.mirror]]\nlocation = \"mirror.example.net/acme\"\n",
    )
    .unwrap();

    let (image, id) = (
        "quay.io/acme/long:1",
        "11111111-2222-4333-8444-555555555555",
    );
    let mut crio = j.stdout_stream("crio", "crio.service");
    let tf = TimeFormat::Rfc3339Nano;
    for (msg, id) in [
        (format!("Pulling image: {image}"), Some(id)),
        (
            "Trying to access \"mirror.example.net/acme/long:1\"".to_owned(),
            None,
        ),
        (format!("Trying to access \"{image}\""), None),
    ] {
        writeln!(crio, "{}", crio_msg(now_usec(), tf, &msg, id)).unwrap();
    }
    crio.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));

    // A mirror whose error page is long: the kubelet's line is about 2.5 times LineMax.
    let page = "x".repeat(2 * LINE_MAX + LINE_MAX / 2);
    let err = format!(
        "rpc error: code = Unknown desc = initializing source docker://{image}: (Mirrors also failed: [mirror.example.net/acme/long:1: reading manifest 1 in mirror.example.net/acme/long: manifest unknown: {page}]): {image}: pinging container registry quay.io: Get \"https://quay.io/v2/\": dial tcp 127.0.0.1:443: connect: connection refused"
    );
    let line = klog_text(
        now_usec(),
        'E',
        "log.go:32",
        "PullImage from image service failed",
        &[("err", &err), ("image", image)],
    );
    assert!(line.len() > 2 * LINE_MAX && !line.contains('\n'));
    let mut kubelet = j.stdout_stream("kubenswrapper", "kubelet.service");
    writeln!(kubelet, "{line}").unwrap();
    kubelet.flush().unwrap();

    // journald stored the kubelet's line as three entries: 3 + 3 in all.
    let journal = j.dir().to_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let entries = loop {
        let e = scan_jsonl(&["--journal-dir", &journal, "--entries"]);
        if e.len() >= 6 || Instant::now() > deadline {
            break e;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        entries.len(),
        6,
        "journald did not cut the line: {}",
        entries.len()
    );

    let records = scan_jsonl(&[
        "--journal-dir",
        &journal,
        "--registries-conf",
        conf.to_str().unwrap(),
    ]);
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r["pull_id"], id);
    assert_eq!(r["outcome"], "failed", "{r:#}");
    let classes: Vec<&str> = r["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["error_class"].as_str().unwrap_or("null"))
        .collect();
    assert_eq!(classes, ["manifest_unknown", "connection_refused"], "{r:#}");
}
