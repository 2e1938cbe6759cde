//! The collector's Kubernetes paths against a mocked API server serving real object shapes:
//! TokenReview (accepted, rejected, another node's token, another ServiceAccount), Nodes with
//! MCO annotations, MachineConfigPools, IDMS/ITMS, Image, ClusterVersion; and the CLI through
//! the API server's service proxy with a kubeconfig.

use std::process::Command;
use std::time::{Duration, Instant};

use mirrorscope_core::openshift::{parse_str, render, ParseOptions, RenderOptions};
use mirrorscope_core::rollout::TEMPLATE_REGISTRIES_CONF;
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
    let c = Collector::start(&["--in-cluster", "--kube-api", &api.url, "--kube-poll", "1"]);
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
    let c = Collector::start(&["--in-cluster", "--kube-api", &api.url, "--kube-poll", "300"]);
    let (status, body) = push(&c.url, Some("tok-w1"), &w1.report());
    assert_eq!(status, 200, "{body}");
    // Reviewing for the API server's own audience, as a TokenReview without audiences does,
    // rejects the same token.
    let c = Collector::start(&[
        "--in-cluster",
        "--kube-api",
        &api.url,
        "--kube-poll",
        "300",
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
        "--kube-poll",
        "1",
    ]);
    wait_for("the API error in the log", || {
        c.log().contains("API server: connecting to 127.0.0.1:9")
    });
    let mut n = FakeNode::new("w1");
    n.write_registries("unqualified-search-registries = ['docker.io']\n");
    let (status, body) = push(&c.url, Some("tok"), &n.report());
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("TokenReview failed"), "{body}");
    let page = c.get("/").1;
    assert!(
        page.contains("API server: connecting to 127.0.0.1:9"),
        "{page}"
    );
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
            "/api/v1/namespaces/mirrorscope/services/mirrorscope-collector:http/proxy".into(),
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
    assert!(seen.iter().any(|s| s == "GET /api/v1/namespaces/mirrorscope/services/mirrorscope-collector:http/proxy/v1/nodes"), "{seen:?}");
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
    std::fs::write(dir.path().join("token"), "sa-token\n").unwrap();
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
        "--kube-poll",
        "1",
    ]);
    wait_for("the desired state over TLS", || {
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
        "--kube-poll",
        "1",
    ]);
    wait_for("the TLS failure in the log", || {
        bad.log().contains("API server: TLS to 127.0.0.1")
    });

    // The CLI through the service proxy, with a kubeconfig carrying the CA as data.
    let coll = Collector::start(&[]);
    let mut n = FakeNode::new("w9");
    n.write_registries("unqualified-search-registries = ['docker.io']\n");
    n.push_to(&coll.url);
    api.state.lock().unwrap().proxies.insert(
        "/api/v1/namespaces/mirrorscope/services/mirrorscope-collector:http/proxy".into(),
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
        String::from_utf8_lossy(&out.stderr).contains("no CA certificate"),
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
fn node_changes_arrive_by_watch_between_listings() {
    let api = cluster();
    // Listings every 5 minutes: only the watch can bring w2's change in time.
    let c = Collector::start(&["--in-cluster", "--kube-api", &api.url, "--kube-poll", "300"]);
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
    api.watch_event(
        "MODIFIED",
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
    api.watch_event(
        "DELETED",
        node_object(
            "m1",
            "master",
            "rendered-master-1",
            "rendered-master-1",
            "Done",
        ),
    );
    wait_for("m1 gone", || c.get("/v1/nodes/m1").0 == 404);
    let seen = api.state.lock().unwrap().seen.clone();
    assert_eq!(
        seen.iter().filter(|s| *s == "GET /api/v1/nodes").count(),
        1,
        "one listing, then the watch: {seen:?}"
    );
}
