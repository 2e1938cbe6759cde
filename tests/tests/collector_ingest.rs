//! The collector's push endpoint as agents see it: real collector process on loopback, reports
//! built from real registries.conf files.

use mirrorscope_e2e::collector::*;

const CONF: &str = "unqualified-search-registries = ['docker.io']\n[[registry]]\nlocation = 'quay.io/ns'\n[[registry.mirror]]\nlocation = 'mirror.example.com/ns'\n";

#[test]
fn open_loopback_ingest_dedupes_and_rejects_bad_reports() {
    let c = Collector::start(&[]);
    assert!(
        c.log().contains("WARN no --in-cluster or --tokens-file"),
        "{}",
        c.log()
    );
    let mut n = FakeNode::new("node-a");
    n.write_registries(CONF);
    n.pulls = vec![
        pull_record(
            "p1",
            "quay.io/ns/app:1",
            "mirror.example.com/ns/app:1",
            true,
            false,
        ),
        pull_record(
            "p2",
            "docker.io/library/nginx:1.25",
            "docker.io/library/nginx:1.25",
            false,
            false,
        ),
    ];
    let first = n.report();
    let (status, body) = push(&c.url, None, &first);
    assert_eq!(status, 200, "{body}");
    let ack: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (ack["accepted"].as_u64(), ack["duplicates"].as_u64()),
        (Some(2), Some(0))
    );
    // The agent did not get the answer and sends the same pulls again with its next report.
    let (status, body) = push(&c.url, None, &first);
    assert_eq!(status, 200);
    let ack: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (ack["accepted"].as_u64(), ack["duplicates"].as_u64()),
        (Some(0), Some(2))
    );
    let pulls = c.get_json("/v1/pulls");
    assert_eq!(pulls["matching"], 2);
    assert_eq!(
        pulls["pulls"][0]["node"], "node-a",
        "node filled in from the report"
    );

    let node = c.get_json("/v1/nodes/node-a");
    assert_eq!(
        node["report"]["registries"]["effective_digest"],
        serde_json::json!(first.registries.effective_digest)
    );
    assert_eq!(
        node["report"]["pulls"].as_array().unwrap().len(),
        0,
        "pulls are kept apart from the node"
    );

    // Version mismatch: a clear 400.
    let mut v2 = serde_json::to_value(&first).unwrap();
    v2["version"] = 2.into();
    v2["new_field"] = 1.into();
    let (status, body) = http(
        &c.url,
        "POST",
        "/v1/reports",
        &[],
        v2.to_string().as_bytes(),
    );
    assert_eq!(status, 400);
    assert!(
        body.contains("NodeReport version 2 is not supported")
            && body.contains("accepts version 1"),
        "{body}"
    );
    // Strict JSON: unknown fields are refused with the field named.
    let mut extra = serde_json::to_value(&first).unwrap();
    extra["registries"]["surprise"] = true.into();
    let (status, body) = http(
        &c.url,
        "POST",
        "/v1/reports",
        &[],
        extra.to_string().as_bytes(),
    );
    assert_eq!(status, 400);
    assert!(body.contains("unknown field `surprise`"), "{body}");
    let (status, body) = http(&c.url, "POST", "/v1/reports", &[], b"{not json");
    assert_eq!(status, 400, "{body}");
    // Body size limit: refused from the declared length, before the body is read.
    let (status, body) = http_head_only(&c.url, "POST", "/v1/reports", 9 * 1024 * 1024);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("report larger than 8388608 bytes"), "{body}");
    let (status, _) = http(&c.url, "GET", "/v1/reports", &[], b"");
    assert_eq!(status, 405);
    let (status, _) = c.get("/v1/nodes/nope");
    assert_eq!(status, 404);
}

#[test]
fn refuses_open_mode_on_a_non_loopback_address() {
    // Even with plain HTTP allowed, nobody checked is loopback only.
    let out = std::process::Command::new(bin("mirrorscope-collector"))
        .args(["--listen", "0.0.0.0:0", "--insecure-plain-http"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{err}"
    );
}

#[test]
fn tokens_file_maps_tokens_to_nodes_and_is_reread() {
    let dir = TempDir::new("tokens");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# token node\ntok-a node-a\n").unwrap();
    let c = Collector::start(&["--tokens-file", tokens.to_str().unwrap()]);
    let mut a = FakeNode::new("node-a");
    a.write_registries(CONF);
    let mut b = FakeNode::new("node-b");
    b.write_registries(CONF);

    let (status, body) = push(&c.url, None, &a.report());
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Authorization: Bearer"), "{body}");
    let (status, body) = push(&c.url, Some("wrong"), &a.report());
    assert_eq!(status, 401, "{body}");
    let (status, body) = push(&c.url, Some("tok-a"), &b.report());
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("may only report for node \\\"node-a\\\", not \\\"node-b\\\""),
        "{body}"
    );
    a.token = Some("tok-a".into());
    a.push_to(&c.url);

    // A new node's token is accepted once the file changes (checked at most once a second).
    std::fs::write(&tokens, "tok-a node-a\ntok-b node-b\n").unwrap();
    b.token = Some("tok-b".into());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, body) = push(&c.url, Some("tok-b"), &b.report());
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tokens file not re-read: {status} {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(c.log().contains("re-read (2 tokens)"), "{}", c.log());
    let nodes = c.get_json("/v1/nodes");
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 2);
}

#[test]
fn state_file_restores_the_last_known_state() {
    let dir = TempDir::new("state");
    let state = dir.path().join("state.json");
    let c = Collector::start(&["--state-file", state.to_str().unwrap()]);
    let mut a = FakeNode::new("node-a");
    a.write_registries(CONF);
    a.pulls = vec![pull_record(
        "p1",
        "quay.io/ns/app:1",
        "mirror.example.com/ns/app:1",
        true,
        false,
    )];
    a.push_to(&c.url);
    c.stop();
    assert!(state.exists(), "state file written on SIGTERM");
    let c = Collector::start(&["--state-file", state.to_str().unwrap()]);
    assert!(c.log().contains("restored 1 nodes"), "{}", c.log());
    let nodes = c.get_json("/v1/nodes");
    assert_eq!(nodes["nodes"][0]["node"], "node-a");
    assert_eq!(c.get_json("/v1/pulls")["matching"], 1);
    // The restored pull id is still known: a replay is a duplicate.
    let mut r = a.report();
    r.pulls = vec![pull_record(
        "p1",
        "quay.io/ns/app:1",
        "mirror.example.com/ns/app:1",
        true,
        false,
    )];
    let (_, body) = push(&c.url, None, &r);
    assert!(body.contains("\"duplicates\":1"), "{body}");
}

#[test]
fn bad_queries_and_bad_desired_files_are_clear_errors() {
    let c = Collector::start(&[]);
    for (path, want) in [
        (
            "/v1/rollout?selector=novalue",
            "selector \\\"novalue\\\": expected key=value",
        ),
        (
            "/v1/rollout?min_nodes=x",
            "min_nodes=\\\"x\\\": expected a number",
        ),
        (
            "/v1/pulls?fallback=maybe",
            "fallback=\\\"maybe\\\": expected true or false",
        ),
        (
            "/v1/pulls?outcome=won",
            "expected pulled, failed, in_progress or abandoned",
        ),
        (
            "/v1/explain?image=nginx",
            "the collector has no desired configuration",
        ),
    ] {
        let (status, body) = c.get(path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(want), "{path}: {body}");
    }
    let (status, _) = c.get("/nope");
    assert_eq!(status, 404);
    let (status, _) = http(&c.url, "DELETE", "/v1/nodes", &[], b"");
    assert_eq!(status, 405);

    // Objects the API server would reject can never be the cluster's state: refuse to start.
    let dir = TempDir::new("bad-desired");
    let p = dir.path().join("idms.yaml");
    std::fs::write(
        &p,
        "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata:\n  name: x\nspec:\n  imageDigestMirrors:\n  - source: quay.io/ns/Repo\n    mirrors: [m.example.com/ns]\n",
    )
    .unwrap();
    let log = Collector::try_start(&["--desired", p.to_str().unwrap()])
        .err()
        .expect("the collector must not start");
    assert!(
        log.contains("the API server would reject the desired objects"),
        "{log}"
    );
    assert!(log.contains("spec.imageDigestMirrors[0].source"), "{log}");
    let missing = dir.path().join("missing.yaml");
    let log = Collector::try_start(&["--desired", missing.to_str().unwrap()])
        .err()
        .expect("the collector must not start");
    assert!(log.contains("missing.yaml"), "{log}");
}
