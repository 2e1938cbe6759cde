//! The collector's periodic audit with real registries: the inventory it keeps (pulls its agents
//! reported; pods, workloads and the pull secret from a mocked API server serving real object
//! shapes), audited under every configuration the nodes run and under the desired one, served at
//! `/v1/audit`, `/metrics` and on the status page, and used by `mirrorscope audit` without
//! `--images-from`.

use std::process::Command;
use std::time::{Duration, Instant};

use mirrorscope_e2e::collector::*;
use mirrorscope_e2e::kubeapi::MockApi;
use mirrorscope_e2e::oci;
use mirrorscope_e2e::registry::Registry;
use serde_json::{json, Value};

fn wait_audit(c: &Collector, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = c.get_json("/v1/audit");
        if v["last"].is_object() && ok(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no audit as expected: {v:#}\ncollector log:\n{}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn under<'a>(audit: &'a Value, nodes: &[&str]) -> &'a Value {
    audit["last"]["configurations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["nodes"] == json!(nodes))
        .unwrap_or_else(|| panic!("no configuration of {nodes:?}: {audit:#}"))
}

fn image<'a>(conf: &'a Value, image: &str) -> &'a Value {
    conf["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["image"] == image)
        .unwrap_or_else(|| panic!("{image} not audited: {conf:#}"))
}

#[test]
fn pulled_images_are_audited_under_each_reported_configuration() {
    let m = Registry::plain();
    oci::seed(&m, "library/nginx", "1.25.3", "nginx");
    oci::seed(&m, "library/nginx", "1.24.0", "nginx-old");
    let mirrored = format!(
        "[[registry]]\nprefix = \"docker.io/library\"\nlocation = \"docker.io/library\"\nblocked = true\n[[registry.mirror]]\nlocation = \"{}/library\"\ninsecure = true\n",
        m.host()
    );
    let c = Collector::start(&["--audit-interval", "1s"]);
    assert_eq!(c.get_json("/v1/audit")["enabled"], true);
    let mut w1 = FakeNode::new("w1");
    w1.write_registries(&mirrored);
    w1.pulls = vec![
        pull_record("p1", "docker.io/library/nginx:1.25.3", "x", true, false),
        pull_record("p2", "docker.io/library/nginx:1.26.0", "x", true, false),
    ];
    w1.push_to(&c.url);
    let mut w2 = FakeNode::new("w2");
    w2.write_registries(&mirrored);
    w2.push_to(&c.url);
    let mut w3 = FakeNode::new("w3");
    w3.write_registries("");
    w3.push_to(&c.url);

    let inventory = c.get_json("/v1/inventory");
    assert_eq!(
        inventory["docker.io/library/nginx:1.25.3"],
        json!(["default/Pod/app"]),
        "{inventory:#}"
    );

    let audit = wait_audit(&c, |v| {
        v["last"]["configurations"].as_array().unwrap().len() == 2
            && v["last"]["summary"]["images"] == 2
    });
    let mirrored = under(&audit, &["w1", "w2"]);
    assert_eq!(mirrored["desired"], false);
    let e = image(mirrored, "docker.io/library/nginx:1.25.3");
    assert_eq!(e["verdict"], "mirror", "{e:#}");
    assert_eq!(e["used_by"], json!(["default/Pod/app"]));
    let e = image(mirrored, "docker.io/library/nginx:1.26.0");
    assert_eq!(e["verdict"], "fail", "{e:#}");
    assert_eq!(e["findings"][0]["code"], "stale-tag");
    // w3 has no mirror: docker.io (unreachable from here) is all it has.
    let plain = under(&audit, &["w3"]);
    assert_eq!(
        image(plain, "docker.io/library/nginx:1.25.3")["verdict"],
        "source"
    );
    // Each image once, at its worst: 1.25.3 is "source" on w3, 1.26.0 fails on w1 and w2.
    let s = &audit["last"]["summary"];
    assert_eq!(
        (s["source"].as_u64(), s["fail"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );

    let (_, metrics) = c.get("/metrics");
    assert!(
        metrics.contains("mirrorscope_audit_images{verdict=\"fail\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mirrorscope_audit_images{verdict=\"source\"} 1"),
        "{metrics}"
    );
    let last = metric(&metrics, "mirrorscope_audit_last_success_timestamp_seconds");
    assert!(last > now_unix() - 120.0, "{metrics}");

    let (_, page) = c.get("/");
    assert!(
        page.contains("<h2>Images that will not pull</h2>"),
        "{page}"
    );
    assert!(page.contains("docker.io/library/nginx:1.26.0"), "{page}");
    assert!(page.contains("stale-tag"), "{page}");

    // The CLI without --images-from audits the collector's inventory under every configuration.
    let out = Command::new(bin("mirrorscope"))
        .args(["audit", "--probe", "-o", "json"])
        .env("MIRRORSCOPE_COLLECTOR", &c.url)
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc.as_array().unwrap().len(),
        4,
        "2 images under 2 configurations: {doc:#}"
    );
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn in_cluster_the_pods_workloads_pull_secret_and_trusted_ca_feed_the_audit_of_the_desired_configuration(
) {
    let t = Registry::tls_basic_auth("cluster", "pull-pass");
    oci::seed(&t, "shop/api", "2", "api");
    let ca = t.ca_path().unwrap();

    let api = MockApi::start();
    api.set(
        "/apis/machineconfiguration.openshift.io/v1/machineconfigpools",
        list(
            "MachineConfigPool",
            "machineconfiguration.openshift.io/v1",
            vec![],
        ),
    );
    let mut node = node_object(
        "w1",
        "worker",
        "rendered-worker-1",
        "rendered-worker-1",
        "Done",
    );
    node["metadata"]["labels"]["kubernetes.io/arch"] = json!("amd64");
    api.set("/api/v1/nodes", list("Node", "v1", vec![node]));
    api.set("/apis/config.openshift.io/v1/clusterversions/version", json!({
        "apiVersion": "config.openshift.io/v1", "kind": "ClusterVersion", "metadata": {"name": "version"},
        "spec": {"clusterID": "0000"},
        "status": {"desired": {"image": "quay.io/openshift-release-dev/ocp-release@sha256:1111111111111111111111111111111111111111111111111111111111111111", "version": "4.19.3"}}
    }));
    // The mirror's CA as nodes get it: the Image config's additionalTrustedCA ConfigMap.
    api.set("/apis/config.openshift.io/v1/images/cluster", json!({
        "apiVersion": "config.openshift.io/v1", "kind": "Image", "metadata": {"name": "cluster"},
        "spec": {"additionalTrustedCA": {"name": "registry-cas"}}
    }));
    let ca_pem = std::fs::read_to_string(&ca).unwrap();
    api.set("/api/v1/namespaces/openshift-config/configmaps/registry-cas", json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "registry-cas", "namespace": "openshift-config"},
        "data": {t.host().replace(':', ".."): ca_pem}
    }));
    api.set(
        "/apis/config.openshift.io/v1/imagedigestmirrorsets",
        list("ImageDigestMirrorSet", "config.openshift.io/v1", vec![]),
    );
    api.set("/apis/config.openshift.io/v1/imagetagmirrorsets", list("ImageTagMirrorSet", "config.openshift.io/v1", vec![json!({
        "apiVersion": "config.openshift.io/v1", "kind": "ImageTagMirrorSet", "metadata": {"name": "shop"},
        "spec": {"imageTagMirrors": [{"source": "quay.io/shop", "mirrors": [format!("{}/shop", t.host())], "mirrorSourcePolicy": "NeverContactSource"}]}
    })]));
    api.set("/api/v1/pods", list("Pod", "v1", vec![json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api-7d9c", "namespace": "shop"},
        "spec": {"containers": [{"name": "api", "image": "quay.io/shop/api:2"}]}
    })]));
    api.set("/apis/apps/v1/deployments", list("Deployment", "apps/v1", vec![json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cart", "namespace": "shop"},
        "spec": {"template": {"spec": {"containers": [{"name": "cart", "image": "quay.io/shop/cart:1"}]}}}
    })]));
    let pull_secret = t.auth_file_json();
    api.set("/api/v1/namespaces/openshift-config/secrets/pull-secret", json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull-secret", "namespace": "openshift-config"},
        "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": base64(pull_secret.as_bytes())}
    }));

    let c = Collector::start(&[
        "--in-cluster",
        "--kube-api",
        &api.url,
        "--audit-interval",
        "1s",
    ]);
    let audit = wait_audit(&c, |v| v["last"]["summary"]["images"] == 2);
    let desired = under(&audit, &[]);
    assert_eq!(desired["desired"], true, "{audit:#}");
    assert_eq!(desired["architectures"], json!(["amd64"]));
    let e = image(desired, "quay.io/shop/api:2");
    assert_eq!(
        e["verdict"], "mirror",
        "the pull secret's credentials are used: {e:#}"
    );
    assert_eq!(e["used_by"], json!(["shop/Pod/api-7d9c"]));
    assert_eq!(e["sources"][0]["probe"]["architectures"], json!(["amd64"]));
    let e = image(desired, "quay.io/shop/cart:1");
    assert_eq!(e["verdict"], "fail", "{e:#}");
    assert_eq!(e["used_by"], json!(["shop/Deployment/cart"]));
    assert_eq!(e["findings"][0]["code"], "missing-repository");
    // Nodes trust a bundle for the registry its key names only: filed under another host, the
    // mirror's certificate is not trusted, and the audit cannot ask the mirror.
    api.set("/api/v1/namespaces/openshift-config/configmaps/registry-cas", json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "registry-cas", "namespace": "openshift-config"},
        "data": {"other.example..5000": std::fs::read_to_string(&ca).unwrap()}
    }));
    let audit = wait_audit(&c, |v| {
        v["last"]["configurations"].as_array().is_some_and(|cs| {
            cs.iter()
                .flat_map(|c| c["images"].as_array().into_iter().flatten())
                .any(|e| e["image"] == "quay.io/shop/api:2" && e["verdict"] == "unknown")
        })
    });
    let e = image(under(&audit, &[]), "quay.io/shop/api:2");
    assert_eq!(e["sources"][0]["probe"]["status"], "tls-error", "{e:#}");
    let seen = api.state.lock().unwrap().seen.clone();
    assert!(
        seen.iter()
            .any(|s| s == "GET /api/v1/namespaces/openshift-config/secrets/pull-secret"),
        "{seen:?}"
    );
}
