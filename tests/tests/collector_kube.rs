//! The collector's Kubernetes paths against a mocked API server serving real object shapes:
//! TokenReview (accepted, rejected, another node's token, another ServiceAccount), Nodes with
//! MCO annotations, MachineConfigPools, IDMS/ITMS, Image, ClusterVersion; and the CLI through
//! the API server's service proxy with a kubeconfig.

use std::process::Command;
use std::time::{Duration, Instant};

use mirrorscope_core::openshift::TEMPLATE_REGISTRIES_CONF;
use mirrorscope_core::openshift::{parse_str, render, ParseOptions, RenderOptions};
use mirrorscope_e2e::collector::*;
use serde_json::json;

const AGENT_SA: &str = "system:serviceaccount:mirrorscope:mirrorscope-agent";

fn idms_object() -> serde_json::Value {
    json!({
        "apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet",
        "metadata": {"name": "quay-mirror", "uid": "6f1c", "resourceVersion": "4711", "generation": 1,
                     "creationTimestamp": "2026-11-20T10:00:00Z"},
        "spec": {"imageDigestMirrors": [{"source": "quay.io/ns", "mirrors": ["mirror.example.com/ns"], "mirrorSourcePolicy": "AllowContactingSource"}]},
        "status": {}
    })
}

fn rendered() -> String {
    let text = serde_json::to_string(&idms_object()).unwrap();
    let set = parse_str(&text, "api", &ParseOptions::default());
    let opts = RenderOptions {
        ocp_version: "4.19".parse().unwrap(),
        release_image: Some("quay.io/openshift-release-dev/ocp-release@sha256:1111111111111111111111111111111111111111111111111111111111111111".into()),
    };
    render(&set.input, &opts)
        .unwrap()
        .registries_conf()
        .unwrap()
        .to_string()
}

fn review(node: &str, user: &str) -> serde_json::Value {
    json!({
        "authenticated": true,
        "user": {"username": user, "uid": "9d2e", "groups": ["system:serviceaccounts", "system:serviceaccounts:mirrorscope", "system:authenticated"],
                 "extra": {"authentication.kubernetes.io/node-name": [node], "authentication.kubernetes.io/node-uid": ["a1b2"],
                           "authentication.kubernetes.io/pod-name": [format!("mirrorscope-agent-{node}")], "authentication.kubernetes.io/pod-uid": ["c3d4"]}},
        "audiences": ["https://kubernetes.default.svc"]
    })
}

fn cluster() -> MockApi {
    let api = MockApi::start();
    api.set(
        "/apis/machineconfiguration.openshift.io/v1/machineconfigpools",
        list(
            "MachineConfigPool",
            "machineconfiguration.openshift.io/v1",
            vec![
                pool_object("master", "rendered-master-1"),
                pool_object("worker", "rendered-worker-new"),
            ],
        ),
    );
    api.set(
        "/api/v1/nodes",
        list(
            "Node",
            "v1",
            vec![
                node_object(
                    "m1",
                    "master",
                    "rendered-master-1",
                    "rendered-master-1",
                    "Done",
                ),
                node_object(
                    "w1",
                    "worker",
                    "rendered-worker-new",
                    "rendered-worker-new",
                    "Done",
                ),
                node_object(
                    "w2",
                    "worker",
                    "rendered-worker-old",
                    "rendered-worker-new",
                    "Working",
                ),
            ],
        ),
    );
    api.set("/apis/config.openshift.io/v1/clusterversions/version", json!({
        "apiVersion": "config.openshift.io/v1", "kind": "ClusterVersion", "metadata": {"name": "version"},
        "spec": {"channel": "stable-4.19", "clusterID": "0000"},
        "status": {"desired": {"image": "quay.io/openshift-release-dev/ocp-release@sha256:1111111111111111111111111111111111111111111111111111111111111111", "version": "4.19.3"}}
    }));
    api.set("/apis/config.openshift.io/v1/images/cluster", json!({
        "apiVersion": "config.openshift.io/v1", "kind": "Image", "metadata": {"name": "cluster"},
        "spec": {}, "status": {"internalRegistryHostname": "image-registry.openshift-image-registry.svc:5000"}
    }));
    api.set(
        "/apis/config.openshift.io/v1/imagedigestmirrorsets",
        list(
            "ImageDigestMirrorSet",
            "config.openshift.io/v1",
            vec![idms_object()],
        ),
    );
    api.set(
        "/apis/config.openshift.io/v1/imagetagmirrorsets",
        list("ImageTagMirrorSet", "config.openshift.io/v1", vec![]),
    );
    api.set(
        "/apis/machineconfiguration.openshift.io/v1/machineconfigs/rendered-worker-new",
        machine_config_object("rendered-worker-new", &rendered()),
    );
    api.set(
        "/apis/machineconfiguration.openshift.io/v1/machineconfigs/rendered-master-1",
        machine_config_object("rendered-master-1", TEMPLATE_REGISTRIES_CONF),
    );
    // No ICSP endpoint: a cluster that no longer serves the kind answers 404.
    {
        let mut s = api.state.lock().unwrap();
        s.reviews.insert("tok-w1".into(), review("w1", AGENT_SA));
        s.reviews.insert("tok-w2".into(), review("w2", AGENT_SA));
        s.reviews.insert(
            "tok-other-sa".into(),
            review("w1", "system:serviceaccount:default:builder"),
        );
    }
    api
}

/// [`wait_for`], showing the collector's log when it times out.
fn wait_for_or_log(c: &Collector, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; collector log:\n{}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn node_on(name: &str, conf: &str, mc: &str, token: &str) -> FakeNode {
    let mut n = FakeNode::new(name);
    n.write_registries(conf);
    n.write_machine_config(mc, conf);
    n.token = Some(token.into());
    n
}

#[test]
fn token_review_pools_annotations_and_desired_from_the_api() {
    let api = cluster();
    let c = Collector::start(&["--in-cluster", "--kube-api", &api.url]);
    wait_for("the desired state from the cluster", || {
        c.get_json("/v1/nodes")["target"]["origin"]
            .as_str()
            .is_some_and(|o| o.contains("cluster's"))
    });
    let conf = rendered();
    let mut w1 = node_on("w1", &conf, "rendered-worker-new", "tok-w1");
    // w2 is still on the old configuration; its MCD is working on the new one.
    let mut w2 = node_on(
        "w2",
        TEMPLATE_REGISTRIES_CONF,
        "rendered-worker-old",
        "tok-w2",
    );

    // Rejected token, another node's token, another ServiceAccount's token, no token.
    let (status, body) = push(&c.url, Some("forged"), &w1.report());
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("token rejected by the API server: invalid bearer token"),
        "{body}"
    );
    let (status, body) = push(&c.url, Some("tok-w1"), &w2.report());
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("only report for node \\\"w1\\\", not \\\"w2\\\""),
        "{body}"
    );
    let (status, body) = push(&c.url, Some("tok-other-sa"), &w1.report());
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("system:serviceaccount:default:builder"),
        "{body}"
    );
    let (status, _) = push(&c.url, None, &w1.report());
    assert_eq!(status, 401);
    w1.push_to(&c.url);
    w2.push_to(&c.url);
    let reviews = api
        .state
        .lock()
        .unwrap()
        .seen
        .iter()
        .filter(|s| s.ends_with("/tokenreviews"))
        .count();
    assert!(reviews >= 4, "TokenReviews sent: {reviews}");

    let nodes = c.get_json("/v1/nodes");
    let row = |n: &str| {
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["node"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(row("w1")["pool"], "worker");
    assert_eq!(row("w1")["landed"], true, "{}", row("w1"));
    assert_eq!(row("m1")["pool"], "master");
    assert_eq!(
        row("m1")["reasons"][0],
        "reporting: no report from the agent on this node"
    );
    let w2r = row("w2");
    assert_eq!(w2r["landed"], false);
    let reasons = w2r["reasons"].to_string();
    assert!(reasons.contains("desired: effective configuration") && reasons.contains("the pool's target MachineConfig rendered-worker-new carries it: the node has not applied it yet"), "{w2r}");
    assert!(reasons.contains("machine-config-daemon Working: currentConfig rendered-worker-old -> desiredConfig rendered-worker-new"), "{w2r}");

    let out = cli(&c.url, &["wait", "--pool", "worker", "--timeout", "500ms"]);
    assert_eq!(out.status.code(), Some(1));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("of 2 nodes landed") && s.contains("machine-config-daemon Working"),
        "{s}"
    );
    assert!(
        !s.contains("  m1\n"),
        "--pool worker selects workers only: {s}"
    );
    // The MCD finishes on w2: the next listing shows Done.
    api.set(
        "/api/v1/nodes",
        list(
            "Node",
            "v1",
            vec![
                node_object(
                    "m1",
                    "master",
                    "rendered-master-1",
                    "rendered-master-1",
                    "Done",
                ),
                node_object(
                    "w1",
                    "worker",
                    "rendered-worker-new",
                    "rendered-worker-new",
                    "Done",
                ),
                node_object(
                    "w2",
                    "worker",
                    "rendered-worker-new",
                    "rendered-worker-new",
                    "Done",
                ),
            ],
        ),
    );
    w2.write_registries(&conf);
    w2.write_machine_config("rendered-worker-new", &conf);
    w2.push_to(&c.url);
    let out = cli(&c.url, &["wait", "--pool", "worker", "--timeout", "20s"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = cli(
        &c.url,
        &[
            "wait",
            "--selector",
            "node-role.kubernetes.io/worker=",
            "--timeout",
            "5s",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let metrics = c.get("/metrics").1;
    assert!(
        metrics.contains("mirrorscope_nodes{pool=\"worker\",state=\"landed\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mirrorscope_nodes{pool=\"master\",state=\"lagging\"} 1"),
        "{metrics}"
    );
}

#[test]
fn projected_tokens_are_reviewed_for_the_collectors_audience() {
    let api = cluster();
    let conf = rendered();
    let mut w1 = node_on("w1", &conf, "rendered-worker-new", "tok-w1");
    // Default audience: the agent's projected token is accepted.
    let c = Collector::start(&["--in-cluster", "--kube-api", &api.url]);
    let (status, body) = push(&c.url, Some("tok-w1"), &w1.report());
    assert_eq!(status, 200, "{body}");
    // Reviewing for the API server's own audience, as a TokenReview without audiences does,
    // rejects the same token.
    let c = Collector::start(&[
        "--in-cluster",
        "--kube-api",
        &api.url,
        "--token-audience",
        "",
    ]);
    let (status, body) = push(&c.url, Some("tok-w1"), &w1.report());
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("is invalid for the target audiences"),
        "{body}"
    );
}

#[test]
fn api_server_unreachable_is_reported_not_fatal() {
    let c = Collector::start(&[
        "--in-cluster",
        "--kube-api",
        "http://127.0.0.1:9",
        "--proxy-listen",
        "127.0.0.1:0",
    ]);
    wait_for_or_log(&c, "the API error in the log", || {
        c.log()
            .contains("watching nodes: failed to perform initial object list")
    });
    let mut n = FakeNode::new("w1");
    n.write_registries("unqualified-search-registries = ['docker.io']\n");
    let (status, body) = push(&c.url, Some("tok"), &n.report());
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("TokenReview failed"), "{body}");
    // No reader can be authorized on the main door meanwhile: 503, with the reason.
    let (status, body) = c.get("/");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("TokenReview failed"), "{body}");
    // Through the service-proxy door the status page says why (the assembler publishes within
    // a few milliseconds).
    let door = c.proxy_url.clone().unwrap();
    wait_for("the API error on the page", || {
        http(&door, "GET", "/", &[], b"")
            .1
            .contains("API server: watching nodes: failed to perform initial object list")
    });
    assert!(c.log().contains("Connection refused"), "{}", c.log());
}

#[test]
fn cli_reaches_the_collector_through_the_service_proxy() {
    let api = MockApi::start();
    let c = Collector::start(&[]);
    let mut n = FakeNode::new("w1");
    n.write_registries("unqualified-search-registries = ['docker.io']\n");
    n.push_to(&c.url);
    {
        let mut s = api.state.lock().unwrap();
        s.proxies.insert(
            "/api/v1/namespaces/mirrorscope/services/https:mirrorscope-collector:proxy/proxy"
                .into(),
            c.url.clone(),
        );
        s.require_token = Some("user-token".into());
    }
    let dir = TempDir::new("kubeconfig");
    let kc = dir.path().join("config");
    std::fs::write(&kc, format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: admin\nclusters:\n- name: c\n  cluster:\n    server: {}\ncontexts:\n- name: admin\n  context:\n    cluster: c\n    user: admin\n    namespace: default\nusers:\n- name: admin\n  user:\n    token: user-token\n",
        api.url
    )).unwrap();
    let out = Command::new(bin("mirrorscope"))
        .args(["nodes", "-o", "json"])
        .env("KUBECONFIG", &kc)
        .env_remove("MIRRORSCOPE_COLLECTOR")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["nodes"][0]["node"], "w1");
    // Installed as a kubectl/oc plugin, the same binary answers the same way.
    let plugin = dir.path().join("kubectl-mirrorscope");
    std::fs::copy(bin("mirrorscope"), &plugin).unwrap();
    let out = Command::new(&plugin)
        .args(["nodes"])
        .env("KUBECONFIG", &kc)
        .env_remove("MIRRORSCOPE_COLLECTOR")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("w1 ")));
    let seen = api.state.lock().unwrap().seen.clone();
    assert!(seen.iter().any(|s| s == "GET /api/v1/namespaces/mirrorscope/services/https:mirrorscope-collector:proxy/proxy/v1/nodes"), "{seen:?}");
    // The user's credentials are what the API server sees: a wrong token is refused there.
    std::fs::write(
        &kc,
        std::fs::read_to_string(&kc)
            .unwrap()
            .replace("user-token", "stolen"),
    )
    .unwrap();
    let out = Command::new(bin("mirrorscope"))
        .args(["status"])
        .env("KUBECONFIG", &kc)
        .env_remove("MIRRORSCOPE_COLLECTOR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn api_server_over_tls_with_the_serviceaccount_ca_and_a_kubeconfig() {
    let dir = TempDir::new("tls");
    let (ca, cert, key) = test_certificates(dir.path());
    let api = MockApi::start_tls(&cert, &key);
    api.set(
        "/apis/machineconfiguration.openshift.io/v1/machineconfigpools",
        list(
            "MachineConfigPool",
            "machineconfiguration.openshift.io/v1",
            vec![pool_object("worker", "rendered-worker-new")],
        ),
    );
    api.set(
        "/api/v1/nodes",
        list(
            "Node",
            "v1",
            vec![node_object(
                "w1",
                "worker",
                "rendered-worker-new",
                "rendered-worker-new",
                "Done",
            )],
        ),
    );
    api.set(
        "/apis/config.openshift.io/v1/imagedigestmirrorsets",
        list(
            "ImageDigestMirrorSet",
            "config.openshift.io/v1",
            vec![idms_object()],
        ),
    );
    {
        let mut s = api.state.lock().unwrap();
        s.require_token = Some("sa-token".into());
        s.reviews.insert("tok-w1".into(), review("w1", AGENT_SA));
    }
    // As the kubelet writes projected tokens: no newline. One with a newline is refused at once.
    std::fs::write(dir.path().join("token"), "sa-token\n").unwrap();
    let refused = Collector::try_start(&[
        "--in-cluster",
        "--kube-api",
        &api.url,
        "--kube-token-file",
        dir.path().join("token").to_str().unwrap(),
    ]);
    assert!(
        refused
            .as_ref()
            .err()
            .is_some_and(|e| e.contains("contains white space")),
        "{:?}",
        refused.err()
    );
    std::fs::write(dir.path().join("token"), "sa-token").unwrap();
    let ca_file = dir.path().join("ca.pem");
    let token_file = dir.path().join("token");
    let c = Collector::start(&[
        "--in-cluster",
        "--kube-api",
        &api.url,
        "--kube-ca-file",
        ca_file.to_str().unwrap(),
        "--kube-token-file",
        token_file.to_str().unwrap(),
    ]);
    wait_for_or_log(&c, "the desired state over TLS", || {
        c.get_json("/v1/nodes")["target"]["origin"]
            .as_str()
            .is_some_and(|o| o.contains("cluster's"))
    });
    let conf = rendered();
    let mut w1 = node_on("w1", &conf, "rendered-worker-new", "tok-w1");
    w1.push_to(&c.url);
    let nodes = c.get_json("/v1/nodes");
    assert_eq!(nodes["nodes"][0]["pool"], "worker");

    // A collector that trusts another CA cannot talk to this API server.
    let other = TempDir::new("tls-other");
    let (other_ca, _, _) = test_certificates(other.path());
    let other_ca_file = other.path().join("ca.pem");
    std::fs::write(&other_ca_file, &other_ca).unwrap();
    let bad = Collector::start(&[
        "--in-cluster",
        "--kube-api",
        &api.url,
        "--kube-ca-file",
        other_ca_file.to_str().unwrap(),
    ]);
    wait_for_or_log(&bad, "the TLS failure in the log", || {
        bad.log().contains("invalid peer certificate")
    });

    // The CLI through the service proxy, with a kubeconfig carrying the CA as data.
    let coll = Collector::start(&[]);
    let mut n = FakeNode::new("w9");
    n.write_registries("unqualified-search-registries = ['docker.io']\n");
    n.push_to(&coll.url);
    api.state.lock().unwrap().proxies.insert(
        "/api/v1/namespaces/mirrorscope/services/https:mirrorscope-collector:proxy/proxy".into(),
        coll.url.clone(),
    );
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\ncontexts:\n- name: a\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: sa-token\n",
            api.url,
            base64(&ca)
        ),
    )
    .unwrap();
    let out = Command::new(bin("mirrorscope"))
        .args(["nodes"])
        .env("KUBECONFIG", &kc)
        .env_remove("MIRRORSCOPE_COLLECTOR")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("w9 ")));
    // Without the CA the certificate is refused; insecure-skip-tls-verify accepts it.
    let text = std::fs::read_to_string(&kc).unwrap();
    let no_ca: String = text
        .lines()
        .filter(|l| !l.contains("certificate-authority-data"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&kc, &no_ca).unwrap();
    let out = Command::new(bin("mirrorscope"))
        .args(["nodes"])
        .env("KUBECONFIG", &kc)
        .env_remove("MIRRORSCOPE_COLLECTOR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A kubeconfig without a CA (an API with a publicly trusted certificate) verifies against
    // the system trust store: here a store that holds the test CA.
    let out = Command::new(bin("mirrorscope"))
        .args(["nodes"])
        .env("KUBECONFIG", &kc)
        .env("SSL_CERT_FILE", &ca_file)
        .env_remove("MIRRORSCOPE_COLLECTOR")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        &kc,
        no_ca.replace(
            "    server:",
            "    insecure-skip-tls-verify: true\n    server:",
        ),
    )
    .unwrap();
    let out = Command::new(bin("mirrorscope"))
        .args(["nodes"])
        .env("KUBECONFIG", &kc)
        .env_remove("MIRRORSCOPE_COLLECTOR")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn node_changes_arrive_by_watch() {
    let api = cluster();
    let c = Collector::start(&["--in-cluster", "--kube-api", &api.url]);
    wait_for("the node watch", || api.watchers() > 0);
    let conf = rendered();
    let mut w2 = node_on("w2", &conf, "rendered-worker-new", "tok-w2");
    w2.push_to(&c.url);
    wait_for("w2 reported as Working", || {
        c.get_json("/v1/nodes/w2")["reasons"]
            .to_string()
            .contains("machine-config-daemon Working")
    });
    let out = cli(&c.url, &["wait", "--nodes", "w2", "--timeout", "300ms"]);
    assert_eq!(out.status.code(), Some(1));
    api.set(
        "/api/v1/nodes/w2",
        node_object(
            "w2",
            "worker",
            "rendered-worker-new",
            "rendered-worker-new",
            "Done",
        ),
    );
    let t = Instant::now();
    let out = cli(&c.url, &["wait", "--nodes", "w2", "--timeout", "20s"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // A node deleted from the cluster leaves the API view (its agent's report stays).
    api.delete("/api/v1/nodes/m1");
    wait_for("m1 gone", || c.get("/v1/nodes/m1").0 == 404);
    let seen = api.state.lock().unwrap().seen.clone();
    assert_eq!(
        seen.iter().filter(|s| *s == "GET /api/v1/nodes").count(),
        1,
        "one listing, then the watch: {seen:?}"
    );
}

/// The desired hash the collector measures nodes against.
fn desired_sha(c: &Collector) -> Option<String> {
    c.get_json("/v1/nodes")["target"]["digest"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn a_watched_idms_change_moves_the_desired_state() {
    let api = cluster();
    let c = Collector::start(&["--in-cluster", "--kube-api", &api.url]);
    wait_for("the desired state from the cluster", || {
        desired_sha(&c).is_some()
    });
    let before = desired_sha(&c);
    wait_for("the IDMS watch", || {
        api.seen_count("WATCH /apis/config.openshift.io/v1/imagedigestmirrorsets") > 0
    });
    let mut idms = idms_object();
    idms["spec"]["imageDigestMirrors"][0]["mirrors"] = json!(["mirror.example.com/other"]);
    api.set(
        "/apis/config.openshift.io/v1/imagedigestmirrorsets/quay-mirror",
        idms,
    );
    wait_for("the new desired state", || desired_sha(&c) != before);
    // It came through the open watch: the collection was listed once.
    assert_eq!(
        api.seen_count("GET /apis/config.openshift.io/v1/imagedigestmirrorsets"),
        1
    );
    // Deleting the object renders the cluster without it.
    let changed = desired_sha(&c);
    api.delete("/apis/config.openshift.io/v1/imagedigestmirrorsets/quay-mirror");
    wait_for("the rendering without mirrors", || {
        let now = desired_sha(&c);
        now.is_some() && now != changed && now != before
    });
}

#[test]
fn a_410_gone_relists_and_loses_nothing() {
    let api = cluster();
    let c = Collector::start(&["--in-cluster", "--kube-api", &api.url]);
    let conf = rendered();
    let mut w2 = node_on("w2", &conf, "rendered-worker-new", "tok-w2");
    w2.push_to(&c.url);
    wait_for("w2 reported as Working", || {
        c.get_json("/v1/nodes/w2")["reasons"]
            .to_string()
            .contains("machine-config-daemon Working")
    });
    wait_for("the node watch", || {
        api.seen_count("WATCH /api/v1/nodes") > 0
    });
    // The history is compacted and the watch ends; the change happens before the client is back.
    api.compact_and_close_watches();
    api.set(
        "/api/v1/nodes/w2",
        node_object(
            "w2",
            "worker",
            "rendered-worker-new",
            "rendered-worker-new",
            "Done",
        ),
    );
    wait_for("w2's MCD done after the relist", || {
        c.get_json("/v1/nodes/w2")["landed"] == true
    });
    assert!(
        api.seen_count("GET /api/v1/nodes") >= 2,
        "a relist after 410"
    );
    // Bookmarks keep a watch's version fresh and change nothing.
    api.bookmark();
    api.set(
        "/api/v1/nodes/w9",
        node_object("w9", "worker", "a", "a", "Done"),
    );
    wait_for("w9 by watch after the bookmark", || {
        c.get_json("/v1/nodes")["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["node"] == "w9"))
    });
}

/// An API server behind the mock's service proxy for a collector with one reporting node.
fn proxied_collector(api: &MockApi) -> Collector {
    let c = Collector::start(&[]);
    let mut n = FakeNode::new("w1");
    n.write_registries("unqualified-search-registries = ['docker.io']\n");
    n.push_to(&c.url);
    api.state.lock().unwrap().proxies.insert(
        "/api/v1/namespaces/mirrorscope/services/https:mirrorscope-collector:proxy/proxy".into(),
        c.url.clone(),
    );
    c
}

#[test]
fn cli_authenticates_with_an_exec_plugin_from_two_merged_kubeconfig_files() {
    let api = MockApi::start();
    let _c = proxied_collector(&api);
    api.state.lock().unwrap().require_token = Some("exec-token".into());
    let dir = TempDir::new("kubeconfig-exec");
    let plugin = dir.path().join("credential-plugin");
    std::fs::write(
        &plugin,
        "#!/bin/sh\nprintf '%s' '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"exec-token\"}}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // Clusters and contexts in one file, the user in another, as `oc login` and a plugin's
    // installer leave them; the first file names the current context.
    let a = dir.path().join("clusters");
    let b = dir.path().join("users");
    std::fs::write(&a, format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: wrong\nclusters:\n- name: c\n  cluster:\n    server: {}\n- name: nowhere\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: admin\n  context:\n    cluster: c\n    user: exec-user\n- name: wrong\n  context:\n    cluster: nowhere\n    user: exec-user\n",
        api.url
    )).unwrap();
    std::fs::write(&b, format!(
        "apiVersion: v1\nkind: Config\nusers:\n- name: exec-user\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
        plugin.display()
    )).unwrap();
    let kubeconfig = format!("{}:{}", a.display(), b.display());
    let run = |args: &[&str]| {
        Command::new(bin("mirrorscope"))
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("MIRRORSCOPE_COLLECTOR")
            .output()
            .unwrap()
    };
    // The current context points nowhere: --context picks the right one, before or after the
    // subcommand.
    for args in [
        &["--context", "admin", "nodes", "-o", "json"][..],
        &["nodes", "--context", "admin", "-o", "json"][..],
    ] {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: mirrorscope_core::api::NodesView = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v.nodes[0].node, "w1");
    }
    let out = run(&["nodes"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the current context's server is closed"
    );
    // --kubeconfig names one file; the user is then unknown.
    let out = Command::new(bin("mirrorscope"))
        .args([
            "--kubeconfig",
            a.to_str().unwrap(),
            "--context",
            "admin",
            "nodes",
        ])
        .env_remove("KUBECONFIG")
        .env_remove("MIRRORSCOPE_COLLECTOR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn connection_flags_are_global_and_request_timeout_takes_durations() {
    let c = Collector::start(&[]);
    let mut n = FakeNode::new("w1");
    n.write_registries("unqualified-search-registries = ['docker.io']\n");
    n.push_to(&c.url);
    for args in [
        vec![
            "--collector",
            c.url.as_str(),
            "--request-timeout",
            "5s",
            "nodes",
            "--no-headers",
        ],
        vec![
            "nodes",
            "--collector",
            c.url.as_str(),
            "--no-headers",
            "--request-timeout",
            "5",
        ],
        vec!["--no-headers", "nodes", "--collector", c.url.as_str()],
    ] {
        let out = Command::new(bin("mirrorscope"))
            .args(&args)
            .env_remove("MIRRORSCOPE_COLLECTOR")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.lines().any(|l| l.starts_with("w1 ")),
            "{args:?}: {text}"
        );
        assert!(!text.contains("NODE"), "--no-headers: {text}");
    }
    let out = Command::new(bin("mirrorscope"))
        .args(["completion", "bash"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--collector"));
}

#[test]
fn wait_fails_at_once_on_a_degraded_node_and_never_lands_an_unknown_one() {
    let api = cluster();
    let c = Collector::start(&["--in-cluster", "--kube-api", &api.url]);
    let conf = rendered();
    let mut w2 = node_on("w2", &conf, "rendered-worker-new", "tok-w2");
    w2.push_to(&c.url);
    let mut degraded = node_object(
        "w2",
        "worker",
        "rendered-worker-old",
        "rendered-worker-new",
        "Degraded",
    );
    degraded["metadata"]["annotations"]["machineconfiguration.openshift.io/reason"] =
        json!("unexpected on-disk state validating against rendered-worker-new");
    api.set("/api/v1/nodes/w2", degraded);
    wait_for("w2 Degraded", || {
        c.get_json("/v1/nodes/w2")["reasons"]
            .to_string()
            .contains("state Degraded")
    });
    let t = Instant::now();
    let out = cli(&c.url, &["wait", "--nodes", "w2", "--timeout", "120s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("node w2 will not land by itself: machine-config-daemon state Degraded: unexpected on-disk state"),
        "{stderr}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "it did not wait out the timeout"
    );

    // A node named in --nodes that never reported holds the wait back; a count needs that many.
    let mut w1 = node_on("w1", &conf, "rendered-worker-new", "tok-w1");
    w1.push_to(&c.url);
    let out = cli(
        &c.url,
        &["wait", "--nodes", "w1,worker-9", "--timeout", "1s"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("worker-9"), "{stdout}");
    assert!(
        stdout.contains("no report from the agent on this node"),
        "{stdout}"
    );
    api.set(
        "/api/v1/nodes/w2",
        node_object(
            "w2",
            "worker",
            "rendered-worker-new",
            "rendered-worker-new",
            "Done",
        ),
    );
    wait_for("w2 no longer Degraded", || {
        !c.get_json("/v1/nodes/w2")["reasons"]
            .to_string()
            .contains("state Degraded")
    });
    let out = cli(&c.url, &["wait", "--nodes", "7", "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(7 expected)"));

    // A selection that matches nothing is a usage error at once, naming what exists.
    let out = cli(&c.url, &["wait", "--pool", "gpu", "--timeout", "120s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no node matches the selection (--pool gpu)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("known pools:") && stderr.contains("worker"),
        "{stderr}"
    );
    let out = cli(
        &c.url,
        &["wait", "--pool", "gpu", "--allow-empty", "--timeout", "1s"],
    );
    assert_eq!(out.status.code(), Some(0), "--allow-empty accepts it");
}

#[test]
fn wait_exits_2_when_the_collector_goes_away() {
    let mut c = Collector::start(&[]);
    let mut n = FakeNode::new("w1");
    n.write_registries("unqualified-search-registries = ['docker.io']\n");
    n.push_to(&c.url);
    let url = c.url.clone();
    let waiter = std::thread::spawn(move || {
        cli(
            &url,
            &[
                "wait",
                "--nodes",
                "w1,w2",
                "--timeout",
                "10m",
                "--request-timeout",
                "1s",
            ],
        )
    });
    std::thread::sleep(Duration::from_secs(2));
    c.kill();
    let out = waiter.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the collector has not answered for"),
        "{stderr}"
    );
}

/// A MachineConfigNode in the API's shape (`v1` from 4.19, `v1alpha1` in 4.16-4.18).
fn mcn_object(
    api_version: &str,
    node: &str,
    current: &str,
    desired: &str,
    conditions: serde_json::Value,
) -> serde_json::Value {
    json!({
        "apiVersion": api_version, "kind": "MachineConfigNode",
        "metadata": {"name": node, "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": "a1b2"}]},
        "spec": {"node": {"name": node}, "pool": {"name": "worker"}, "configVersion": {"desired": desired}},
        "status": {"observedGeneration": 3, "configVersion": {"current": current, "desired": desired}, "conditions": conditions}
    })
}

#[test]
fn machine_config_nodes_hold_wait_back_and_fail_it_fast() {
    for api_version in [
        "machineconfiguration.openshift.io/v1",
        "machineconfiguration.openshift.io/v1alpha1",
    ] {
        let api = cluster();
        let path = format!("/apis/{api_version}/machineconfignodes");
        // The annotations say w1 is Done on rendered-worker-new; its MCN is still draining.
        api.set(
            &path,
            list(
                "MachineConfigNode",
                api_version,
                vec![mcn_object(api_version, "w1", "rendered-worker-old", "rendered-worker-new", json!([
                    {"type": "Updated", "status": "False", "reason": "", "message": ""},
                    {"type": "UpdatePrepared", "status": "True", "message": "Update Compatible. Post Cfg Actions [] Drain Required: true"},
                    {"type": "Drained", "status": "Unknown", "message": "Draining node."}]))],
            ),
        );
        let c = Collector::start(&["--in-cluster", "--kube-api", &api.url]);
        let conf = rendered();
        let mut w1 = node_on("w1", &conf, "rendered-worker-new", "tok-w1");
        w1.push_to(&c.url);
        wait_for_or_log(&c, "w1 draining by its MCN", || {
            c.get_json("/v1/nodes/w1")["mcn_phase"] == "draining"
        });
        let page = c.get("/").1;
        assert!(page.contains("lagging (draining)"), "{page}");
        let wide =
            String::from_utf8_lossy(&cli(&c.url, &["nodes", "-o", "wide"]).stdout).into_owned();
        assert!(
            wide.lines()
                .any(|l| l.starts_with("w1 ") && l.contains("draining")),
            "{wide}"
        );
        let out = cli(&c.url, &["wait", "--nodes", "w1", "--timeout", "1s"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{api_version}: {stdout}");
        assert!(stdout.contains("MachineConfigNode draining"), "{stdout}");

        // Degraded: wait fails at once, naming the node and the MCN's message.
        api.set(
            &format!("{path}/w1"),
            mcn_object(api_version, "w1", "rendered-worker-old", "rendered-worker-new", json!([
                {"type": "Updated", "status": "False"},
                {"type": "NodeDegraded", "status": "True", "reason": "UpdateFailed", "message": "failed to drain node: cannot evict pod as it would violate the pod's disruption budget"}])),
        );
        wait_for("the degraded MCN", || {
            c.get_json("/v1/nodes/w1")["mcn_phase"]
                .as_str()
                .is_some_and(|p| p.starts_with("degraded: failed to drain node"))
        });
        let t = Instant::now();
        let out = cli(&c.url, &["wait", "--nodes", "w1", "--timeout", "120s"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("node w1 will not land by itself: MachineConfigNode NodeDegraded: failed to drain node"),
            "{stderr}"
        );
        assert!(t.elapsed() < Duration::from_secs(60));

        // Updated on the desired config: w1 lands.
        api.set(
            &format!("{path}/w1"),
            mcn_object(
                api_version,
                "w1",
                "rendered-worker-new",
                "rendered-worker-new",
                json!([
                {"type": "Updated", "status": "True", "message": "Node w1 Updated"},
                {"type": "NodeDegraded", "status": "False"}]),
            ),
        );
        // A Degraded MCN fails wait at once: let the watch deliver the update first.
        wait_for_or_log(&c, "w1's MCN no longer degraded", || {
            c.get_json("/v1/nodes/w1")["mcn_phase"]
                .as_str()
                .is_none_or(|p| !p.starts_with("degraded"))
        });
        let out = cli(&c.url, &["wait", "--nodes", "w1", "--timeout", "20s"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{api_version}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_degraded_pool_fails_wait_at_once() {
    let api = cluster();
    let mut pool = pool_object("worker", "rendered-worker-new");
    pool["status"]["conditions"] = json!([
        {"type": "Updated", "status": "False"},
        {"type": "Degraded", "status": "True", "reason": "", "message": "Node w2 is reporting: \"unexpected on-disk state validating against rendered-worker-new\""}
    ]);
    api.set(
        "/apis/machineconfiguration.openshift.io/v1/machineconfigpools/worker",
        pool,
    );
    let c = Collector::start(&["--in-cluster", "--kube-api", &api.url]);
    let conf = rendered();
    let mut w2 = node_on("w2", &conf, "rendered-worker-new", "tok-w2");
    w2.push_to(&c.url);
    wait_for("w2 in pool worker", || {
        c.get_json("/v1/nodes/w2")["pool"] == "worker"
    });
    let out = cli(&c.url, &["wait", "--pool", "worker", "--timeout", "120s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("will not land by itself: pool worker is Degraded: Node w2 is reporting"),
        "{stderr}"
    );
}
