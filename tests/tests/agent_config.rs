//! `mirrorscope-agent run` against a temporary host root: every way MCO, an admin or an editor
//! changes the registries files shows in `GET /v1/report` (and `/metrics`) within 2 s.

use std::time::Duration;

use mirrorscope_core::registries::{parse_config_str, EffectiveConfig, FileKind};
use mirrorscope_e2e::agent::{metric, Agent, HostRoot};
use mirrorscope_e2e::collector::{machine_config_object, sha256, write_atomic};
use serde_json::Value;

const WITHIN: Duration = Duration::from_secs(2);

const MIRRORED: &str = r#"unqualified-search-registries = ["registry.access.redhat.com"]

[[registry]]
prefix = "quay.io/acme"
location = "quay.io/acme"

[[registry.mirror]]
location = "mirror.corp.example.com:8443/acme"
pull-from-mirror = "digest-only"
"#;

const MIRRORED_TWICE: &str = r#"unqualified-search-registries = ["registry.access.redhat.com"]

[[registry]]
prefix = "quay.io/acme"
location = "quay.io/acme"

[[registry.mirror]]
location = "mirror.corp.example.com:8443/acme"
pull-from-mirror = "digest-only"

[[registry.mirror]]
location = "mirror-b.corp.example.com/acme"
pull-from-mirror = "digest-only"
"#;

const DROP_IN: &str = r#"[[registry]]
prefix = "docker.io/library"
location = "docker.io/library"
blocked = true
"#;

/// The canonical hash the engine gives these files (main, then drop-ins), computed here
/// independently of the agent.
fn effective(main: Option<&str>, drop_ins: &[&str]) -> String {
    let v = Default::default();
    let main = main.map(|t| parse_config_str(t, "/m", FileKind::Main, v).unwrap());
    let d = drop_ins
        .iter()
        .map(|t| parse_config_str(t, "/d", FileKind::DropIn, v).unwrap());
    EffectiveConfig::from_files(main, d, (String::new(), String::new())).canonical_sha256()
}

fn file<'a>(r: &'a Value, path: &str) -> Option<&'a Value> {
    r["registries"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
}

fn effective_is(r: &Value, sha: &str) -> bool {
    r["registries"]["effective_digest"] == sha
}

#[test]
fn agent_report_follows_renames_deletes_bad_toml_drop_ins_and_machineconfig() {
    let root = HostRoot::new("agent-config");
    let main = root.at("/etc/containers/registries.conf");
    write_atomic(&main, MIRRORED.as_bytes());
    std::fs::write(
        root.at("/etc/containers/policy.json"),
        b"{\"default\":[{\"type\":\"insecureAcceptAnything\"}]}",
    )
    .unwrap();
    let args = root.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Agent::start(&[&args[..], &["--node-name", "worker-0"]].concat());

    let first = effective(Some(MIRRORED), &[]);
    let r = agent.wait_report("the initial configuration", WITHIN, |r| {
        effective_is(r, &first) && r["registries"]["valid"] == true
    });
    assert_eq!(r["node"], "worker-0");
    assert_eq!(r["version"], 1);
    let f = file(&r, "/etc/containers/registries.conf").expect("main file reported");
    assert_eq!(f["digest"], sha256(MIRRORED.as_bytes()));
    assert_eq!(f["contents"], MIRRORED);
    assert_eq!(f["role"], "main");
    let policy = file(&r, "/etc/containers/policy.json").expect("policy reported");
    assert_eq!(policy["role"], "policy");
    assert_eq!(
        policy["digest"],
        sha256(b"{\"default\":[{\"type\":\"insecureAcceptAnything\"}]}")
    );
    assert!(
        !r.to_string().contains(&root.path().display().to_string()),
        "the host root leaked into the report: {r}"
    );
    let m = agent.metrics();
    assert_eq!(metric(&m, "mirrorscope_registries_config_valid"), Some(1.0));
    assert_eq!(
        metric(
            &m,
            &format!("mirrorscope_registries_config_info{{effective_digest=\"{first}\"}}")
        ),
        Some(1.0),
        "{m}"
    );

    // 1. MCO's way: write a temp file, rename it over registries.conf.
    write_atomic(&main, MIRRORED_TWICE.as_bytes());
    let second = effective(Some(MIRRORED_TWICE), &[]);
    let r = agent.wait_report("the renamed-over file", WITHIN, |r| {
        effective_is(r, &second)
    });
    assert_eq!(
        file(&r, "/etc/containers/registries.conf").unwrap()["digest"],
        sha256(MIRRORED_TWICE.as_bytes())
    );
    assert!(r["registries"]["changed_at"].is_string());

    // 2. Deleted: no main file is a valid (empty) configuration for containers/image.
    std::fs::remove_file(&main).unwrap();
    let empty = effective(None, &[]);
    let r = agent.wait_report("the deleted file", WITHIN, |r| effective_is(r, &empty));
    assert_eq!(
        file(&r, "/etc/containers/registries.conf").unwrap()["exists"],
        false
    );
    assert_eq!(r["registries"]["valid"], true);

    // 3. Re-created in place.
    std::fs::write(&main, MIRRORED_TWICE).unwrap();
    agent.wait_report("the re-created file", WITHIN, |r| effective_is(r, &second));

    // 4. Invalid TOML: reported with the file named, the last valid configuration kept.
    write_atomic(&main, b"[[registry]\nprefix = \"quay.io\"\n");
    let r = agent.wait_report("the invalid file", WITHIN, |r| {
        r["registries"]["valid"] == false
    });
    let err = r["registries"]["error"].as_str().unwrap();
    assert!(
        err.starts_with(
            "loading registries configuration \"/etc/containers/registries.conf\": toml: line"
        ),
        "{err}"
    );
    assert!(effective_is(&r, &second), "last valid hash kept: {r:#}");
    assert!(file(&r, "/etc/containers/registries.conf").unwrap()["error"].is_string());
    assert_eq!(
        metric(&agent.metrics(), "mirrorscope_registries_config_valid"),
        Some(0.0)
    );

    // 5. Fixed.
    write_atomic(&main, MIRRORED.as_bytes());
    let r = agent.wait_report("the fixed file", WITHIN, |r| {
        r["registries"]["valid"] == true && effective_is(r, &first)
    });
    assert!(r["registries"]["error"].is_null());

    // 6. A drop-in added, then removed.
    let drop_in = root.at("/etc/containers/registries.conf.d/50-block.conf");
    write_atomic(&drop_in, DROP_IN.as_bytes());
    let with_drop_in = effective(Some(MIRRORED), &[DROP_IN]);
    let r = agent.wait_report("the drop-in", WITHIN, |r| effective_is(r, &with_drop_in));
    let d = file(&r, "/etc/containers/registries.conf.d/50-block.conf").unwrap();
    assert_eq!(d["role"], "drop_in");
    assert_eq!(d["digest"], sha256(DROP_IN.as_bytes()));
    std::fs::remove_file(&drop_in).unwrap();
    let r = agent.wait_report("the drop-in removed", WITHIN, |r| effective_is(r, &first));
    assert!(file(&r, "/etc/containers/registries.conf.d/50-block.conf").is_none());

    // 7. The drop-in directory removed, then re-created with a file in it.
    std::fs::remove_dir(root.at("/etc/containers/registries.conf.d")).unwrap();
    std::fs::create_dir(root.at("/etc/containers/registries.conf.d")).unwrap();
    std::fs::write(&drop_in, DROP_IN).unwrap();
    agent.wait_report("a drop-in in the re-created directory", WITHIN, |r| {
        effective_is(r, &with_drop_in)
    });
    std::fs::remove_file(&drop_in).unwrap();
    agent.wait_report("the drop-in removed again", WITHIN, |r| {
        effective_is(r, &first)
    });

    // 8. The MCD's currentconfig carries these bytes: matches; a hand edit drifts.
    let mc = machine_config_object("rendered-worker-0123", MIRRORED);
    write_atomic(
        &root.at("/etc/machine-config-daemon/currentconfig"),
        serde_json::to_string(&mc).unwrap().as_bytes(),
    );
    let r = agent.wait_report("the matching currentconfig", WITHIN, |r| {
        r["machine_config"]["current_config"] == "rendered-worker-0123"
            && r["machine_config"]["registries_conf"]["state"] == "matches"
    });
    assert_eq!(r["machine_config"]["force_file"], false);
    std::fs::create_dir_all(root.at("/run")).unwrap();
    std::fs::write(root.at("/run/machine-config-daemon-force"), b"").unwrap();
    agent.wait_report("the force file", WITHIN, |r| {
        r["machine_config"]["force_file"] == true
    });
    std::fs::remove_file(root.at("/run/machine-config-daemon-force")).unwrap();
    agent.wait_report("the force file removed", WITHIN, |r| {
        r["machine_config"]["force_file"] == false
    });
    assert_eq!(
        metric(
            &agent.metrics(),
            "mirrorscope_registries_config_matches_machineconfig"
        ),
        Some(1.0)
    );
    let edited = format!("{MIRRORED}\n# hand edit\n");
    std::fs::write(&main, &edited).unwrap();
    let r = agent.wait_report("the drift", WITHIN, |r| {
        r["machine_config"]["registries_conf"]["state"] == "differs"
    });
    assert_eq!(
        r["machine_config"]["registries_conf"]["actual_sha256"],
        sha256(edited.as_bytes())
    );
    assert_eq!(
        r["machine_config"]["registries_conf"]["expected_sha256"],
        sha256(MIRRORED.as_bytes())
    );
    // A comment changes the bytes, not the meaning.
    assert!(effective_is(&r, &first));
    assert_eq!(
        metric(
            &agent.metrics(),
            "mirrorscope_registries_config_matches_machineconfig"
        ),
        Some(0.0)
    );
}

#[test]
fn agent_picks_up_directories_created_after_start_and_refuses_huge_files() {
    let root = mirrorscope_e2e::collector::TempDir::new("agent-late-dirs");
    std::fs::create_dir_all(root.path().join("state")).unwrap();
    std::fs::create_dir_all(root.path().join("journal")).unwrap();
    let r = root.path().display().to_string();
    let state = format!("{r}/state");
    let journal = format!("{r}/journal");
    let agent = Agent::start(&[
        "--host-root",
        &r,
        "--state-dir",
        &state,
        "--journal-dir",
        &journal,
    ]);
    let empty = effective(None, &[]);
    agent.wait_report("an empty node", WITHIN, |r| {
        effective_is(r, &empty) && r["registries"]["valid"] == true
    });

    // Neither etc/ nor etc/containers existed at start.
    let drop_in_dir = root.path().join("etc/containers/registries.conf.d");
    std::fs::create_dir_all(&drop_in_dir).unwrap();
    std::fs::write(drop_in_dir.join("10-block.conf"), DROP_IN).unwrap();
    let with_drop_in = effective(None, &[DROP_IN]);
    agent.wait_report(
        "a drop-in in directories created after start",
        WITHIN,
        |r| effective_is(r, &with_drop_in),
    );

    // A runaway file is not read into memory; the error names it and the old config stays.
    let main = root.path().join("etc/containers/registries.conf");
    let f = std::fs::File::create(&main).unwrap();
    f.set_len(64 * 1024 * 1024).unwrap();
    drop(f);
    let r = agent.wait_report("the huge file refused", WITHIN, |r| {
        r["registries"]["valid"] == false
    });
    let err = r["registries"]["error"].as_str().unwrap();
    assert!(
        err.contains("\"/etc/containers/registries.conf\"") && err.contains("larger than"),
        "{err}"
    );
    assert!(effective_is(&r, &with_drop_in));

    // Garbage bytes: an error naming the file, no crash. BurntSushi/toml skips the UTF-16
    // byte-order mark, then refuses the NUL byte.
    std::fs::write(&main, [0xff, 0xfe, 0x00, 0x80, b'\n', 0xc3]).unwrap();
    let r = agent.wait_report("garbage reported", WITHIN, |r| {
        r["registries"]["error"].as_str().is_some_and(|e| {
            e.contains("toml: line 1: files cannot contain NULL bytes; probably using UTF-16")
        })
    });
    assert!(r["registries"]["error"]
        .as_str()
        .unwrap()
        .contains("\"/etc/containers/registries.conf\""));
    assert_eq!(agent.get("/healthz").0, 200);
    assert_eq!(agent.get("/readyz").0, 200);
}

#[test]
fn agent_logs_json_lines_and_stops_on_sigint() {
    let root = HostRoot::new("agent-json-log");
    write_atomic(
        &root.at("/etc/containers/registries.conf"),
        b"[[registry]\n",
    );
    let args = root.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Agent::start(&[&args[..], &["--log-format", "json"]].concat());
    agent.wait_report("the invalid file", WITHIN, |r| {
        r["registries"]["valid"] == false
    });
    let pid = agent.child.id();
    let log = agent.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "warn"
            && l["msg"]
                .as_str()
                .unwrap()
                .contains("\"/etc/containers/registries.conf\"")),
        "{log}"
    );
    assert!(lines.iter().all(|l| l["time"].is_string()), "{log}");
    mirrorscope_e2e::journal::signal(pid, "INT");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut agent = agent;
    loop {
        if let Some(st) = agent.child.try_wait().unwrap() {
            assert!(st.success(), "{st}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "SIGINT ignored");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn agent_reports_permission_errors_like_containers_image() {
    use std::os::unix::fs::PermissionsExt;
    const NOBODY: u32 = 65534;
    let root = HostRoot::new("agent-permissions");
    let main = root.at("/etc/containers/registries.conf");
    write_atomic(&main, MIRRORED.as_bytes());
    let set_mode = |p: &std::path::Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set_mode(root.path(), 0o755);
    set_mode(&root.at("/state"), 0o777);
    set_mode(&main, 0o600);
    let args = root.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Agent::start_as(Some(NOBODY), &args);

    let r = agent.wait_report("the unreadable file", WITHIN, |r| {
        r["registries"]["valid"] == false
    });
    assert_eq!(
        r["registries"]["error"],
        "loading registries configuration \"/etc/containers/registries.conf\": open /etc/containers/registries.conf: permission denied"
    );
    assert_eq!(
        file(&r, "/etc/containers/registries.conf").unwrap()["exists"],
        true
    );
    // chmod is an inotify event too.
    set_mode(&main, 0o644);
    let first = effective(Some(MIRRORED), &[]);
    agent.wait_report("the readable file", WITHIN, |r| {
        r["registries"]["valid"] == true && effective_is(r, &first)
    });

    // A drop-in directory the agent cannot list.
    let dir = root.at("/etc/containers/registries.conf.d");
    std::fs::write(dir.join("50-block.conf"), DROP_IN).unwrap();
    set_mode(&dir, 0o700);
    let r = agent.wait_report("the unlistable directory", WITHIN, |r| {
        r["registries"]["valid"] == false
    });
    assert_eq!(
        r["registries"]["error"],
        "reading registries.conf.d: open /etc/containers/registries.conf.d: permission denied"
    );
    assert!(
        effective_is(&r, &first),
        "the last valid configuration stays"
    );
    set_mode(&dir, 0o755);
    let with_drop_in = effective(Some(MIRRORED), &[DROP_IN]);
    agent.wait_report("the listable directory", WITHIN, |r| {
        effective_is(r, &with_drop_in) && r["registries"]["valid"] == true
    });
    // Watched again once readable: a new drop-in shows up.
    std::fs::remove_file(dir.join("50-block.conf")).unwrap();
    agent.wait_report("the drop-in removed", WITHIN, |r| effective_is(r, &first));
}

#[test]
fn agent_pushes_heartbeats_while_nothing_changes() {
    let root = HostRoot::new("agent-heartbeat");
    write_atomic(
        &root.at("/etc/containers/registries.conf"),
        MIRRORED.as_bytes(),
    );
    let collector = mirrorscope_e2e::agent::FakeCollector::start(None);
    let args = root.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let url = collector.url();
    let _agent = Agent::start(
        &[
            &args[..],
            &["--collector", &url, "--heartbeat-seconds", "1"],
        ]
        .concat(),
    );
    collector.wait("five heartbeats", Duration::from_secs(20), |r| {
        r.reports.len() >= 5
    });
    let r = collector.received.lock().unwrap();
    let seqs: Vec<u64> = r.reports.iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let instances: std::collections::HashSet<&str> = r
        .reports
        .iter()
        .map(|r| r.agent_instance.as_str())
        .collect();
    assert_eq!(instances.len(), 1);
    assert!(r
        .reports
        .iter()
        .all(|x| x.registries.effective_digest.as_deref()
            == Some(effective(Some(MIRRORED), &[]).as_str())));
}

const POLICY_JSON: &str = r#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker":{"quay.io/acme":[{"type":"sigstoreSigned","keyPath":"/etc/pki/acme.pub","signedIdentity":{"type":"matchRepoDigestOrExact"}}]}}}
"#;
const SIGSTORE_YAML: &str = "docker:\n  quay.io/acme:\n    use-sigstore-attachments: true\n  mirror.corp.example.com:8443/acme:\n    use-sigstore-attachments: true\n";

/// A ClusterImagePolicy rollout: the MachineConfig carries policy.json and the sigstore
/// attachments file besides registries.conf. The report compares each with the node's file,
/// and a sigstore file that is missing or edited (a mirror without attachments lookups) shows
/// at once, as registries.conf drift does.
#[test]
fn signature_policy_files_are_compared_with_the_machineconfig() {
    let root = HostRoot::new("agent-signature");
    let sigstore = root.at("/etc/containers/registries.d/sigstore-registries.yaml");
    write_atomic(
        &root.at("/etc/containers/registries.conf"),
        MIRRORED.as_bytes(),
    );
    write_atomic(
        &root.at("/etc/containers/policy.json"),
        POLICY_JSON.as_bytes(),
    );
    let mc = mirrorscope_e2e::collector::machine_config_with_files(
        "rendered-worker-sig",
        &[
            ("/etc/containers/registries.conf", MIRRORED),
            ("/etc/containers/policy.json", POLICY_JSON),
            (
                "/etc/containers/registries.d/sigstore-registries.yaml",
                SIGSTORE_YAML,
            ),
        ],
    );
    write_atomic(
        &root.at("/etc/machine-config-daemon/currentconfig"),
        serde_json::to_string(&mc).unwrap().as_bytes(),
    );
    let args = root.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Agent::start(&[&args[..], &["--node-name", "worker-0"]].concat());
    let states = |r: &Value| -> Vec<(String, String)> {
        r["machine_config"]["signature_files"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| {
                        (
                            f["path"].as_str().unwrap_or("").to_owned(),
                            f["match"]["state"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let want = |sig: &str| {
        vec![
            (
                "/etc/containers/policy.json".to_owned(),
                "matches".to_owned(),
            ),
            (
                "/etc/containers/registries.d/sigstore-registries.yaml".to_owned(),
                sig.to_owned(),
            ),
        ]
    };
    // The registries.d directory does not exist yet: the file is missing.
    let r = agent.wait_report("the sigstore file missing", WITHIN, |r| {
        states(r) == want("missing")
    });
    assert_eq!(r["machine_config"]["registries_conf"]["state"], "matches");
    // The MCD writes it (the directory created first): it matches.
    write_atomic(&sigstore, SIGSTORE_YAML.as_bytes());
    agent.wait_report("the sigstore file written", WITHIN, |r| {
        states(r) == want("matches")
    });
    // A hand edit drops the mirror's attachments lookups: drift, with both hashes.
    let edited = "docker:\n  quay.io/acme:\n    use-sigstore-attachments: true\n";
    write_atomic(&sigstore, edited.as_bytes());
    let r = agent.wait_report("the sigstore file edited", WITHIN, |r| {
        states(r) == want("differs")
    });
    let m = &r["machine_config"]["signature_files"][1]["match"];
    assert_eq!(m["actual_sha256"], sha256(edited.as_bytes()));
    assert_eq!(m["expected_sha256"], sha256(SIGSTORE_YAML.as_bytes()));
    // A FIFO in its place is never opened: named as the error, left out of the comparison (so
    // the node cannot pass on it), and the agent keeps reporting.
    std::fs::remove_file(&sigstore).unwrap();
    let st = std::process::Command::new("mkfifo")
        .arg(&sigstore)
        .status()
        .unwrap();
    assert!(st.success());
    let r = agent.wait_report("the sigstore file a FIFO", WITHIN, |r| {
        states(r) == want("matches")[..1]
    });
    assert_eq!(
        r["machine_config"]["error"],
        "open /etc/containers/registries.d/sigstore-registries.yaml: not a regular file (fifo); not read"
    );
    assert_eq!(r["machine_config"]["registries_conf"]["state"], "matches");
}
