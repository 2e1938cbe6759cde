//! The journal source over real journal files built by systemd-journal-remote: which entries
//! `scan` reads, from where it starts, and how it resumes.

use mirrorscope_e2e::journal::{scan, scan_jsonl, scratch, write_journal, Entry};
use serde_json::Value;

const T0: u64 = 1_795_246_000_000_000;

fn messages(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

/// CRI-O and kubelet by unit, the kubelet identifiers where no unit was recorded, and noise
/// that must be left out (other units, conmon, a crio-named line from another unit is kept
/// because the identifier matches).
fn mixed() -> Vec<Entry> {
    vec![
        Entry::crio(T0, "crio by unit"),
        Entry::stdout(T0 + 1, Some("sshd.service"), "sshd", 7, "noise sshd"),
        Entry::kubelet(T0 + 2, "kubelet by unit"),
        Entry::stdout(T0 + 3, None, "crio", 9, "crio by identifier"),
        Entry::stdout(T0 + 4, None, "hyperkube", 10, "hyperkube by identifier"),
        Entry::stdout(T0 + 5, None, "kubelet", 11, "kubelet by identifier"),
        Entry::stdout(
            T0 + 6,
            None,
            "kubenswrapper",
            12,
            "kubenswrapper by identifier",
        ),
        Entry::stdout(
            T0 + 7,
            Some("crio-conmon-abc.scope"),
            "conmon",
            13,
            "noise conmon",
        ),
        Entry::stdout(
            T0 + 8,
            Some("crio.service"),
            "other-ident",
            14,
            "crio unit, other identifier",
        ),
        Entry::stdout(T0 + 9, None, "systemd", 1, "noise systemd"),
    ]
}

#[test]
fn selects_crio_and_kubelet_entries_with_their_fields() {
    let d = scratch("select");
    let f = write_journal(&d, "mixed", &mixed());
    let got = scan_jsonl(&["--journal-file", f.to_str().unwrap(), "--entries"]);
    assert_eq!(
        messages(&got),
        [
            "crio by unit",
            "kubelet by unit",
            "crio by identifier",
            "hyperkube by identifier",
            "kubelet by identifier",
            "kubenswrapper by identifier",
            "crio unit, other identifier"
        ]
    );
    let first = &got[0];
    assert_eq!(first["realtime_usec"], T0);
    assert_eq!(first["systemd_unit"], "crio.service");
    assert_eq!(first["syslog_identifier"], "crio");
    assert_eq!(first["hostname"], "worker-1.example.com");
    assert_eq!(first["pid"], 1484);
    assert!(first["cursor"].as_str().unwrap().starts_with("s="));
    assert_eq!(got[2]["systemd_unit"], Value::Null);
}

#[test]
fn since_starts_at_the_first_entry_received_at_or_after_the_time() {
    let d = scratch("since");
    let entries: Vec<Entry> = (0..6)
        .map(|i| Entry::crio(T0 + i * 60_000_000, &format!("minute {i}")))
        .collect();
    let f = write_journal(&d, "since", &entries);
    let f = f.to_str().unwrap();
    // T0 = 2026-11-21T07:26:40Z; minute 3 is at 07:29:40.
    let got = scan_jsonl(&[
        "--journal-file",
        f,
        "--entries",
        "--since",
        "2026-11-21T07:29:40Z",
    ]);
    assert_eq!(messages(&got), ["minute 3", "minute 4", "minute 5"]);
    let got = scan_jsonl(&[
        "--journal-file",
        f,
        "--entries",
        "--since",
        "2026-11-21 07:29:39.5",
    ]);
    assert_eq!(messages(&got), ["minute 3", "minute 4", "minute 5"]);
    let got = scan_jsonl(&["--journal-file", f, "--entries", "--since", "@1795246000"]);
    assert_eq!(got.len(), 6);

    let bad = scan(&["--journal-file", f, "--entries", "--since", "last tuesday"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--since \"last tuesday\""), "{err}");
}

#[test]
fn checkpoint_resumes_after_the_saved_entry() {
    let d = scratch("ckpt");
    let entries: Vec<Entry> = (0..5)
        .map(|i| Entry::crio(T0 + i, &format!("entry {i}")))
        .collect();
    let f = write_journal(&d, "ckpt", &entries);
    let f = f.to_str().unwrap();
    let cp = d.join("state/cursor.json");
    std::fs::create_dir_all(cp.parent().unwrap()).unwrap();
    let cps = cp.to_str().unwrap();

    let all = scan_jsonl(&["--journal-file", f, "--entries", "--checkpoint", cps]);
    assert_eq!(all.len(), 5);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&cp).unwrap()).unwrap();
    assert_eq!(saved["cursor"], all[4]["cursor"]);

    // Nothing new: nothing printed, and the checkpoint stays.
    assert!(scan_jsonl(&["--journal-file", f, "--entries", "--checkpoint", cps]).is_empty());

    // Back to entry 1: the run resumes at entry 2, never repeating the saved entry.
    let back = serde_json::json!({ "cursor": all[1]["cursor"], "emitted": [] });
    std::fs::write(&cp, back.to_string()).unwrap();
    let rest = scan_jsonl(&["--journal-file", f, "--entries", "--checkpoint", cps]);
    assert_eq!(messages(&rest), ["entry 2", "entry 3", "entry 4"]);
    // The checkpoint wins over --since.
    std::fs::write(&cp, back.to_string()).unwrap();
    let rest = scan_jsonl(&[
        "--journal-file",
        f,
        "--entries",
        "--checkpoint",
        cps,
        "--since",
        "@1",
    ]);
    assert_eq!(rest.len(), 3);

    std::fs::write(&cp, "{not json").unwrap();
    let bad = scan(&["--journal-file", f, "--entries", "--checkpoint", cps]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("cursor.json") && err.contains("checkpoint"),
        "{err}"
    );
}

#[test]
fn several_files_and_directories_are_read_as_one_time_ordered_stream() {
    let d = scratch("multi");
    let (a, b) = (d.join("a"), d.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let odd: Vec<Entry> = (0..4)
        .map(|i| Entry::crio(T0 + 2 * i + 1, &format!("n{}", 2 * i + 1)))
        .collect();
    let even: Vec<Entry> = (0..4)
        .map(|i| Entry::kubelet(T0 + 2 * i, &format!("n{}", 2 * i)))
        .collect();
    let fa = write_journal(&a, "odd", &odd);
    let fb = write_journal(&b, "even", &even);
    let want: Vec<String> = (0..8).map(|i| format!("n{i}")).collect();

    let by_dir = scan_jsonl(&[
        "--journal-dir",
        a.to_str().unwrap(),
        "--journal-dir",
        b.to_str().unwrap(),
        "--entries",
    ]);
    assert_eq!(messages(&by_dir), want);
    let by_file = scan_jsonl(&[
        "--journal-file",
        fa.to_str().unwrap(),
        fb.to_str().unwrap(),
        "--entries",
    ]);
    assert_eq!(messages(&by_file), want);
}

#[test]
fn unreadable_inputs_are_clear_errors() {
    let d = scratch("errors");
    let missing = d.join("nope.journal");
    let out = scan(&["--journal-file", missing.to_str().unwrap(), "--entries"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.journal"), "{err}");

    let out = scan(&[
        "--journal-dir",
        d.join("nodir").to_str().unwrap(),
        "--entries",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nodir"));

    // Following prints records as pulls finish: only as JSON lines.
    let f = write_journal(&d, "one", &mixed());
    let out = scan(&[
        "--journal-file",
        f.to_str().unwrap(),
        "--follow",
        "-o",
        "table",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--follow"));

    // Neither source given: a usage error.
    let out = scan(&["--entries"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--journal-file"));
}
