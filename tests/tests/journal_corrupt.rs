//! `mirrorscope-agent scan` over journal files sd-journal cannot use: before the fix they were
//! skipped without a word and the scan exited 0.

use mirrorscope_e2e::journal::{at, crio_msg, scan, scratch, write_journal, Entry, TimeFormat};

fn one_pull() -> Vec<Entry> {
    let id = "00000001-1111-4222-8333-444455556666";
    [
        (0, "Pulling image: quay.io/acme/app:1".to_owned(), Some(id)),
        (
            1000,
            "Pulled image: quay.io/acme/app@sha256:00".to_owned(),
            Some(id),
        ),
    ]
    .into_iter()
    .map(|(dt, msg, id)| {
        let t = at("10:00:00") + dt;
        Entry::crio(t, &crio_msg(t, TimeFormat::Rfc3339Nano, &msg, id))
    })
    .collect()
}

#[test]
fn unreadable_journal_files_are_named_on_stderr_and_fail_the_scan() {
    let dir = scratch("corrupt");
    let good = write_journal(&dir, "good", &one_pull());
    // Not a journal at all, and a real one cut short.
    std::fs::write(dir.join("garbage.journal"), vec![0x5au8; 8192]).unwrap();
    let cut = dir.join("cut.journal");
    std::fs::copy(&good, &cut).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(64 * 1024)
        .unwrap();
    let conf = dir.join("registries.conf");
    std::fs::write(&conf, "").unwrap();
    let out = scan(&[
        "--journal-dir",
        dir.to_str().unwrap(),
        "--registries-conf",
        conf.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("garbage.journal: not a journal file"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cut.journal: journal file truncated"),
        "{stderr}"
    );
    // The readable file is still read.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("00000001-1111-4222-8333-444455556666"),
        "{stdout}"
    );

    // Only readable files: success.
    std::fs::remove_file(dir.join("garbage.journal")).unwrap();
    std::fs::remove_file(&cut).unwrap();
    let out = scan(&[
        "--journal-dir",
        dir.to_str().unwrap(),
        "--registries-conf",
        conf.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
