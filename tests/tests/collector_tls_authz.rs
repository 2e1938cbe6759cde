//! The collector at its edge: HTTPS with a certificate that rotates under it, no plain HTTP off
//! loopback, and readers authorized by the API server (TokenReview + SubjectAccessReview) on
//! the main listener while the service-proxy listener serves reads only.

use std::process::Command;
use std::time::{Duration, Instant};

use mirrorscope_e2e::collector::*;
use mirrorscope_e2e::kubeapi::MOCK_READER_TOKEN;
use serde_json::json;

fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Replaces `to` with `from`'s bytes in one rename, as the kubelet swaps a Secret's files.
fn swap_in(from: &[u8], to: &std::path::Path) {
    let tmp = to.with_extension("new");
    std::fs::write(&tmp, from).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

#[test]
fn collector_serves_https_and_follows_a_rotated_certificate() {
    let first = TempDir::new("tls-first");
    let (ca1, cert1, key1) = test_certificates(first.path());
    let second = TempDir::new("tls-second");
    let (ca2, cert2, key2) = test_certificates(second.path());
    let live = TempDir::new("tls-live");
    let (cert, key) = (live.path().join("tls.crt"), live.path().join("tls.key"));
    std::fs::write(&cert, &cert1).unwrap();
    std::fs::write(&key, &key1).unwrap();
    let c = Collector::start(&[
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
    ]);
    assert!(c.url.starts_with("https://127.0.0.1:"), "{}", c.url);
    let (status, body) = https_get(&c.url, "/healthz", &ca1, &[]).unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    // Plain HTTP to the TLS port gets no answer a client could take for one.
    let plain = c.url.replacen("https://", "http://", 1);
    assert_ne!(http(&plain, "GET", "/healthz", &[], b"").0, 200);
    // The CLI verifies the collector against the CA.
    let ca1_file = first.path().join("ca.pem");
    let out = Command::new(bin("mirrorscope"))
        .args(["nodes", "--collector", &c.url, "--collector-ca-file"])
        .arg(&ca1_file)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Rotation: the key first, then the certificate (a half-rotated pair must not be served).
    swap_in(&key2, &key);
    // Files are looked at on a handshake (at most once a second).
    wait_until("the mismatched pair to be refused", || {
        let _ = https_get(&c.url, "/healthz", &ca1, &[]);
        c.log().contains("still serving the previous certificate")
    });
    let log = c.log();
    assert!(log.contains("tls.crt") && log.contains("tls.key"), "{log}");
    assert_eq!(https_get(&c.url, "/healthz", &ca1, &[]).unwrap().0, 200);
    let (_, metrics) = https_get(&c.url, "/metrics", &ca1, &[]).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("error_type=\"certificate_reload_failed\"") && l.ends_with(" 1")),
        "{metrics}"
    );
    swap_in(&cert2, &cert);
    wait_until("the new certificate", || {
        https_get(&c.url, "/healthz", &ca2, &[]).is_ok_and(|(s, _)| s == 200)
    });
    let old = https_get(&c.url, "/healthz", &ca1, &[]);
    // Both test CAs share a name: the old one finds the new certificate's signature wrong.
    assert!(
        old.as_ref()
            .is_err_and(|e| e.contains("invalid peer certificate")),
        "{old:?}"
    );
    assert!(
        c.log().contains("serving certificate re-read"),
        "{}",
        c.log()
    );
}

#[test]
fn plain_http_off_loopback_and_half_tls_flags_are_refused() {
    let run = |args: &[&str]| {
        let out = Command::new(bin("mirrorscope-collector"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--listen", "0.0.0.0:0", "--tokens-file", "/dev/null"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("refusing to serve plain HTTP on 0.0.0.0:0"),
        "{err}"
    );
    let (code, err) = run(&["--listen", "127.0.0.1:0", "--proxy-listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("plain HTTP on 0.0.0.0:0"), "{err}");
    let (code, err) = run(&["--tls-cert-file", "/nonexistent.crt"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--tls-cert-file needs --tls-key-file"),
        "{err}"
    );
    let dir = TempDir::new("tls-bad");
    let fifo = dir.path().join("tls.crt");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (code, err) = run(&[
        "--tls-cert-file",
        fifo.to_str().unwrap(),
        "--tls-key-file",
        fifo.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tls.crt: not a regular file"), "{err}");
}

#[test]
fn readers_are_authorized_by_the_api_server_and_the_proxy_door_only_reads() {
    let api = MockApi::start();
    {
        let mut s = api.state.lock().unwrap();
        s.users.insert(
            "nobody-token".into(),
            json!({"username": "nobody", "groups": ["system:authenticated"]}),
        );
        s.users.insert(
            "prom-token".into(),
            json!({"username": "system:serviceaccount:openshift-monitoring:prometheus-k8s"}),
        );
        s.grants.insert(
            "system:serviceaccount:openshift-monitoring:prometheus-k8s".into(),
            vec!["get /metrics".into()],
        );
    }
    let c = Collector::start(&[
        "--in-cluster",
        "--kube-api",
        &api.url,
        "--proxy-listen",
        "127.0.0.1:0",
        "--namespace",
        "mirrorscope",
    ]);
    let get = |path: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        http(&c.url, "GET", path, &headers, b"")
    };
    assert_eq!(get("/healthz", None).0, 200);
    let (status, body) = get("/v1/nodes", None);
    assert_eq!(status, 401, "{body}");
    let (status, body) = get("/", Some("forged"));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("token rejected by the API server"), "{body}");
    let (status, body) = get("/v1/nodes", Some("nobody-token"));
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("\\\"nobody\\\" may not get services/proxy \\\"mirrorscope-collector\\\" in namespace \\\"mirrorscope\\\""),
        "{body}"
    );
    assert_eq!(get("/v1/nodes", Some(MOCK_READER_TOKEN)).0, 200);
    // Prometheus may scrape, and only that.
    let (status, body) = get("/metrics", Some("prom-token"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("mirrorscope_"), "{body}");
    assert_eq!(get("/v1/pulls", Some("prom-token")).0, 403);
    // The questions the API server was asked, in RBAC's words.
    let seen = api.state.lock().unwrap().seen.clone();
    assert!(
        seen.iter()
            .any(|s| s == "SAR nobody: get services/proxy mirrorscope/mirrorscope-collector"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|s| s.ends_with("prometheus-k8s: get /metrics")),
        "{seen:?}"
    );
    // A refused token asked again within the negative TTL costs nothing more.
    let reviews = |api: &MockApi| {
        api.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|s| s.contains("tokenreviews"))
            .count()
    };
    let before = reviews(&api);
    for _ in 0..5 {
        assert_eq!(get("/v1/nodes", Some("nobody-token")).0, 403);
    }
    assert_eq!(reviews(&api), before);

    // The proxy door: reads without credentials (the API server checked them), nothing else.
    let door = c.proxy_url.clone().unwrap();
    assert_eq!(http(&door, "GET", "/v1/nodes", &[], b"").0, 200);
    let mut n = FakeNode::new("w1");
    n.write_registries("unqualified-search-registries = ['docker.io']\n");
    let (status, body) = push(&door, None, &n.report());
    assert_eq!(status, 405, "{body}");

    // The CLI, direct, with and without a token.
    let cli_as = |token: Option<&str>| {
        let mut cmd = Command::new(bin("mirrorscope"));
        cmd.args(["nodes", "--collector", &c.url])
            .env_remove("KUBECONFIG");
        match token {
            Some(t) => cmd.env("MIRRORSCOPE_TOKEN", t),
            None => cmd.env_remove("MIRRORSCOPE_TOKEN"),
        };
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = cli_as(None);
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("401") && err.contains("MIRRORSCOPE_TOKEN=$(oc whoami -t)"),
        "{err}"
    );
    let (code, err) = cli_as(Some(MOCK_READER_TOKEN));
    assert_eq!(code, Some(0), "{err}");
}
