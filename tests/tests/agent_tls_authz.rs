//! The agent's endpoints as a scraper meets them: HTTPS with the agent's own certificate, the
//! report and metrics only for callers the API server authorizes (kube-rbac-proxy's questions),
//! the probes open; and no plain HTTP to a collector off loopback.

use std::process::Command;

use mirrorscope_e2e::agent::{Agent, HostRoot};
use mirrorscope_e2e::collector::{
    bin, https_get, test_certificates, write_atomic, MockApi, TempDir,
};
use mirrorscope_e2e::kubeapi::MOCK_READER_TOKEN;
use serde_json::json;

const CONF: &str = "unqualified-search-registries = ['docker.io']\n";

#[test]
fn report_and_metrics_over_tls_for_authorized_readers_only() {
    let api = MockApi::start();
    {
        let mut s = api.state.lock().unwrap();
        let prom = "system:serviceaccount:openshift-monitoring:prometheus-k8s";
        s.users
            .insert("prom-token".into(), json!({"username": prom}));
        s.grants.insert(prom.into(), vec!["get /metrics".into()]);
        s.users
            .insert("nobody-token".into(), json!({"username": "nobody"}));
    }
    let certs = TempDir::new("agent-tls");
    let (ca, _, _) = test_certificates(certs.path());
    let root = HostRoot::new("agent-tls-root");
    write_atomic(&root.at("/etc/containers/registries.conf"), CONF.as_bytes());
    let mut args = root.args();
    args.extend(
        [
            "--tls-cert-file",
            certs.path().join("srv.pem").to_str().unwrap(),
            "--tls-key-file",
            certs.path().join("srv.key").to_str().unwrap(),
            "--authorize",
            "--kube-api",
            &api.url,
        ]
        .map(String::from),
    );
    let agent = Agent::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(agent.url.starts_with("https://"), "{}", agent.url);
    // The start-up line reaches the log right after the URL was taken from it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !agent.log().contains("readers authorized by the API server") {
        assert!(std::time::Instant::now() < deadline, "{}", agent.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let get = |path: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        https_get(&agent.url, path, &ca, &headers).unwrap()
    };
    // The kubelet's probes need no token.
    assert_eq!(get("/healthz", None).0, 200);
    assert_ne!(get("/readyz", None).0, 401);
    // Everything else does, and RBAC decides.
    assert_eq!(get("/v1/report", None).0, 401);
    assert_eq!(get("/metrics", Some("stolen")).0, 401);
    let (status, body) = get("/v1/report", Some("nobody-token"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"nobody\" may not get /v1/report"), "{body}");
    let (status, body) = get("/metrics", Some("prom-token"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("mirrorscope_registries_config_valid"),
        "{body}"
    );
    assert_eq!(get("/v1/report", Some("prom-token")).0, 403);
    let (status, body) = get("/v1/report", Some(MOCK_READER_TOKEN));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("registries.conf"), "{body}");
    // Refusals are counted where Prometheus can see them.
    let (_, metrics) = get("/metrics", Some("prom-token"));
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("error_type=\"forbidden\"") && !l.ends_with(" 0")),
        "{metrics}"
    );
    let seen = api.state.lock().unwrap().seen.clone();
    assert!(
        seen.iter().any(|s| s == "SAR nobody: get /v1/report"),
        "{seen:?}"
    );
}

#[test]
fn plain_http_is_refused_off_loopback_for_serving_and_pushing() {
    let root = HostRoot::new("agent-plain");
    write_atomic(&root.at("/etc/containers/registries.conf"), CONF.as_bytes());
    let run = |extra: &[&str]| {
        let out = Command::new(bin("mirrorscope-agent"))
            .arg("run")
            .args(root.args())
            .args(extra)
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[
        "--listen",
        "127.0.0.1:0",
        "--collector",
        "http://10.0.0.1:8080",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("refusing to send to http://10.0.0.1:8080 over plain HTTP"),
        "{err}"
    );
    let (code, err) = run(&["--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("refusing to serve plain HTTP on 0.0.0.0:"),
        "{err}"
    );
    let (code, err) = run(&["--listen", "127.0.0.1:0", "--tls-key-file", "/x.key"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--tls-key-file needs --tls-cert-file"),
        "{err}"
    );
}
