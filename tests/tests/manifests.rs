//! The cluster install as shipped: both kustomize builds render with the machine's `kubectl
//! kustomize`, every document passes the Kubernetes 1.32 schemas (kubernetes-validate, strict)
//! or, for the OpenShift and prometheus-operator kinds, the minimal schemas in
//! tests/manifests/schemas; the alert rules pass `promtool check rules` and the unit tests in
//! tests/manifests/alerts_test.yaml; each alert has a runbook paragraph; the Containerfile has
//! the stages, binaries, user and labels the manifests rely on.
//!
//! The validator's venv (target/manifest-venv, kubernetes-validate pinned) is made by tests/run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mirrorscope_e2e::collector::TempDir;
use serde::Deserialize;
use serde_norway::Value;

const KUBECTL: &str = "/usr/bin/kubectl";
const PROMTOOL: &str = "/usr/bin/promtool";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kustomize(dir: &str) -> String {
    assert!(
        Path::new(KUBECTL).exists(),
        "{KUBECTL} is missing: these tests need kubectl 1.32 (with kustomize v5) on the machine"
    );
    let out = Command::new(KUBECTL)
        .arg("kustomize")
        .arg(repo().join(dir))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in the rendering"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn validator() -> PathBuf {
    let py = repo().join("target/manifest-venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: tests/run creates it (python3 -m venv + pip install kubernetes-validate)",
        py.display()
    );
    py
}

/// Runs tests/manifests/validate.py on `yaml`: (success, its output).
fn validate(yaml: &str) -> (bool, String) {
    let mut child = Command::new(validator())
        .arg(repo().join("tests/manifests/validate.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn base_renders_the_agent_daemonset_as_the_cluster_needs_it() {
    let docs = documents(&kustomize("manifests/base"));
    for d in &docs {
        let ns_scoped = !matches!(
            d["kind"].as_str(),
            Some("Namespace" | "ClusterRole" | "ClusterRoleBinding")
        );
        if ns_scoped {
            assert_eq!(d["metadata"]["namespace"], "mirrorscope", "{d:?}");
        }
    }
    let ds = find(&docs, "DaemonSet", "mirrorscope-agent");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(pod["serviceAccountName"], "mirrorscope-agent");
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    let tolerations = pod["tolerations"].as_sequence().unwrap();
    assert!(tolerations
        .iter()
        .any(|t| t["key"] == "nvidia.com/gpu" && t["effect"] == "NoSchedule"));
    assert!(
        tolerations
            .iter()
            .any(|t| t.get("key").is_none() && t["operator"] == "Exists"),
        "no catch-all toleration for other NoSchedule taints"
    );
    let c = &pod["containers"][0];
    assert_eq!(
        c["image"].as_str().unwrap(),
        "quay.io/mirrorscope/mirrorscope:0.1.0"
    );
    let args = strs(&c["args"]);
    for a in [
        "run",
        "--host-root=/host",
        "--listen=0.0.0.0:9401",
        "--token-file=/var/run/secrets/mirrorscope/token",
        "--tls-cert-file=/etc/mirrorscope/tls/tls.crt",
        "--tls-key-file=/etc/mirrorscope/tls/tls.key",
        "--authorize",
        "--collector-ca-file=/etc/mirrorscope/collector-ca/ca.crt",
    ] {
        assert!(args.contains(&a.to_owned()), "{a} not in {args:?}");
    }
    let node_name = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "NODE_NAME")
        .unwrap();
    assert_eq!(
        node_name["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    // No plain HTTP anywhere, and no flag that would allow it.
    assert!(!args.iter().any(|a| a.contains("insecure")), "{args:?}");
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());

    // Every host directory read-only, the state dir writable; all mounted under --host-root.
    let volumes = pod["volumes"].as_sequence().unwrap();
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    let mount_of = |vol: &str| mounts.iter().find(|m| m["name"] == vol).unwrap();
    for host in [
        "/etc/containers",
        "/etc/machine-config-daemon",
        "/var/log/journal",
        "/run/log/journal",
    ] {
        let v = volumes
            .iter()
            .find(|v| v["hostPath"]["path"] == host)
            .unwrap_or_else(|| panic!("no hostPath {host}"));
        let m = mount_of(v["name"].as_str().unwrap());
        assert_eq!(m["readOnly"], true, "{host} is not read-only");
        assert_eq!(m["mountPath"].as_str().unwrap(), format!("/host{host}"));
    }
    let state = volumes
        .iter()
        .find(|v| v["hostPath"]["path"] == "/var/lib/mirrorscope-agent")
        .unwrap();
    let m = mount_of(state["name"].as_str().unwrap());
    assert!(m.get("readOnly").is_none() || m["readOnly"] == false);
    assert!(args.contains(&format!("--state-dir={}", m["mountPath"].as_str().unwrap())));
    // The collector's audience, not the API server's.
    let token = volumes
        .iter()
        .filter_map(|v| v["projected"]["sources"].as_sequence())
        .flatten()
        .find(|x| x.get("serviceAccountToken").is_some())
        .unwrap();
    assert_eq!(
        token["serviceAccountToken"]["audience"],
        "mirrorscope-collector"
    );
    // Its own ServiceAccount token asks the API server who reads its endpoints.
    assert_eq!(pod["automountServiceAccountToken"], true);
    // The serving certificate and the collector's CA come from what base's cert-manager makes.
    let projected_secret = |vol: &str| {
        volumes.iter().find(|v| v["name"] == vol).unwrap()["projected"]["sources"][0]["secret"]
            ["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(projected_secret("tls"), "mirrorscope-agent-tls");
    assert_eq!(projected_secret("collector-ca"), "mirrorscope-ca");
    assert_eq!(mount_of("tls")["mountPath"], "/etc/mirrorscope/tls");
    for cert in [
        "mirrorscope-agent-tls",
        "mirrorscope-collector-tls",
        "mirrorscope-ca",
    ] {
        let c = find(&docs, "Certificate", cert);
        assert_eq!(c["spec"]["secretName"], cert);
    }
    assert!(
        strs(&find(&docs, "Certificate", "mirrorscope-collector-tls")["spec"]["dnsNames"])
            .contains(&"mirrorscope-collector.mirrorscope.svc".to_owned())
    );

    let dep = find(&docs, "Deployment", "mirrorscope-collector");
    let cc = &dep["spec"]["template"]["spec"]["containers"][0];
    assert!(strs(&cc["args"]).contains(&"--in-cluster".to_owned()));
    assert_eq!(
        dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    let svc = find(&docs, "Service", "mirrorscope-collector");
    assert_eq!(svc["spec"]["ports"][0]["name"], "https");
    // The agents push to the Service on the port the collector listens on, over TLS.
    let port = svc["spec"]["ports"][0]["port"].as_u64().unwrap();
    assert!(args.contains(&format!(
        "--collector=https://mirrorscope-collector.mirrorscope.svc:{port}"
    )));
    let cargs = strs(&cc["args"]);
    assert!(cargs.contains(&format!("--listen=0.0.0.0:{port}")));
    assert!(cargs.contains(&"--tls-cert-file=/etc/mirrorscope/tls/tls.crt".to_owned()));
    // The CLI's default service-proxy port is the read-only listener.
    assert_eq!(svc["spec"]["ports"][1]["name"], "proxy");
    let proxy_port = svc["spec"]["ports"][1]["port"].as_u64().unwrap();
    assert!(cargs.contains(&format!("--proxy-listen=0.0.0.0:{proxy_port}")));
    assert!(!cargs.iter().any(|a| a.contains("insecure")), "{cargs:?}");
    let viewer = find(&docs, "ClusterRole", "mirrorscope-viewer");
    assert_eq!(
        strs(&viewer["rules"][0]["resourceNames"]),
        ["mirrorscope-collector", "https:mirrorscope-collector:proxy"]
    );

    // RBAC: the collector reads exactly what it lists and reviews tokens; the agent has no role.
    let role = find(&docs, "ClusterRole", "mirrorscope-collector");
    let rules = role["rules"].as_sequence().unwrap();
    let allowed = |group: &str, resource: &str, verb: &str| {
        rules.iter().any(|r| {
            strs(&r["apiGroups"]).contains(&group.to_owned())
                && strs(&r["resources"]).contains(&resource.to_owned())
                && strs(&r["verbs"]).contains(&verb.to_owned())
        })
    };
    for (g, r) in [
        ("config.openshift.io", "imagedigestmirrorsets"),
        ("config.openshift.io", "imagetagmirrorsets"),
        ("config.openshift.io", "images"),
        ("config.openshift.io", "clusterversions"),
        ("operator.openshift.io", "imagecontentsourcepolicies"),
        ("machineconfiguration.openshift.io", "machineconfigpools"),
        ("machineconfiguration.openshift.io", "machineconfigs"),
        ("", "nodes"),
    ] {
        assert!(allowed(g, r, "list"), "collector may not list {g}/{r}");
    }
    assert!(allowed("authentication.k8s.io", "tokenreviews", "create"));
    // The agent's only binding: system:auth-delegator (TokenReview and SubjectAccessReview).
    let agent_roles: Vec<String> = docs
        .iter()
        .filter(|d| {
            d["kind"].as_str().unwrap_or("").ends_with("Binding")
                && d["subjects"]
                    .as_sequence()
                    .is_some_and(|s| s.iter().any(|x| x["name"] == "mirrorscope-agent"))
        })
        .map(|d| d["roleRef"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(agent_roles, ["system:auth-delegator"]);

    let np = find(&docs, "NetworkPolicy", "mirrorscope-collector");
    assert!(serde_norway::to_string(&np["spec"]["ingress"])
        .unwrap()
        .contains("app.kubernetes.io/name: mirrorscope-agent"));
    for sm in ["mirrorscope-agent", "mirrorscope-collector"] {
        let ep = &find(&docs, "ServiceMonitor", sm)["spec"]["endpoints"][0];
        assert_eq!(ep["scheme"], "https", "{sm}");
        assert_eq!(
            ep["tlsConfig"]["ca"]["secret"]["name"], "mirrorscope-ca",
            "{sm}"
        );
        assert!(ep["bearerTokenFile"].is_string(), "{sm}");
    }
    find(&docs, "PrometheusRule", "mirrorscope");
}

/// The flags the manifests pass exist, with values the binaries accept: clap validates every
/// argument before it acts on a trailing `--help`.
#[test]
fn manifest_arguments_are_accepted_by_the_binaries() {
    let docs = documents(&kustomize("manifests/base"));
    for (kind, name) in [
        ("DaemonSet", "mirrorscope-agent"),
        ("Deployment", "mirrorscope-collector"),
    ] {
        let c = &find(&docs, kind, name)["spec"]["template"]["spec"]["containers"][0];
        let command = c["command"][0].as_str().unwrap();
        let binary = mirrorscope_e2e::collector::bin(command.rsplit('/').next().unwrap());
        let mut args = strs(&c["args"]);
        args.push("--help".into());
        let out = Command::new(&binary).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{command} {args:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The check can fail: a flag the binary does not know.
        let mut bad = strs(&c["args"]);
        bad.push("--no-such-flag".into());
        bad.push("--help".into());
        let out = Command::new(&binary).args(&bad).output().unwrap();
        assert!(!out.status.success());
    }
}

#[test]
fn openshift_overlay_adds_the_agent_scc_and_binds_it() {
    let docs = documents(&kustomize("manifests/overlays/openshift"));
    let scc = find(&docs, "SecurityContextConstraints", "mirrorscope-agent");
    assert_eq!(scc["allowPrivilegedContainer"], false);
    assert_eq!(scc["allowPrivilegeEscalation"], false);
    assert_eq!(scc["allowHostDirVolumePlugin"], true);
    assert_eq!(scc["allowHostNetwork"], false);
    assert_eq!(scc["allowHostPID"], false);
    assert_eq!(strs(&scc["requiredDropCapabilities"]), ["ALL"]);
    // The pod's SELinux type is the one the SCC forces.
    let se = &scc["seLinuxContext"]["seLinuxOptions"]["type"];
    let ds = find(&docs, "DaemonSet", "mirrorscope-agent");
    assert_eq!(
        &ds["spec"]["template"]["spec"]["securityContext"]["seLinuxOptions"]["type"],
        se
    );
    // The SCC admits the agent pod as written, and no more: each hostPath volume under an
    // allowed prefix, read-only unless that prefix is writable; only the volume types it uses.
    let pod = &ds["spec"]["template"]["spec"];
    let allowed = scc["allowedHostPaths"].as_sequence().unwrap();
    let mounts = pod["containers"][0]["volumeMounts"].as_sequence().unwrap();
    let kinds = strs(&scc["volumes"]);
    for v in pod["volumes"].as_sequence().unwrap() {
        let kind = ["hostPath", "projected", "emptyDir", "configMap", "secret"]
            .into_iter()
            .find(|k| v.get(*k).is_some())
            .unwrap();
        assert!(
            kinds.contains(&kind.to_owned()),
            "SCC lacks volume type {kind}"
        );
        let Some(path) = v["hostPath"]["path"].as_str() else {
            continue;
        };
        let rule = allowed
            .iter()
            .find(|a| path.starts_with(a["pathPrefix"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("SCC does not allow hostPath {path}"));
        let mount = mounts.iter().find(|m| m["name"] == v["name"]).unwrap();
        if rule["readOnly"] == true {
            assert_eq!(mount["readOnly"], true, "{path} must be mounted read-only");
        }
    }
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    let writable: Vec<&str> = allowed
        .iter()
        .filter(|a| a["readOnly"] != true)
        .map(|a| a["pathPrefix"].as_str().unwrap())
        .collect();
    assert_eq!(writable, ["/var/lib/mirrorscope-agent"]);
    // Bound to the agent's ServiceAccount through a role granting `use` on this SCC only.
    let binding = docs
        .iter()
        .find(|d| {
            d["kind"] == "RoleBinding"
                && d["subjects"][0]["name"] == "mirrorscope-agent"
                && d["subjects"][0]["namespace"] == "mirrorscope"
        })
        .expect("no binding for the agent's ServiceAccount");
    let role = find(
        &docs,
        "ClusterRole",
        binding["roleRef"]["name"].as_str().unwrap(),
    );
    assert_eq!(role["rules"][0]["verbs"][0], "use");
    assert_eq!(
        strs(&role["rules"][0]["resourceNames"]),
        ["mirrorscope-agent"]
    );
    let ns = find(&docs, "Namespace", "mirrorscope");
    assert_eq!(
        ns["metadata"]["labels"]["openshift.io/cluster-monitoring"],
        "true"
    );
    // Serving certificates from the service CA instead of cert-manager.
    assert!(!docs.iter().any(|d| d["apiVersion"] == "cert-manager.io/v1"));
    for (svc, secret) in [
        ("mirrorscope-collector", "mirrorscope-collector-tls"),
        ("mirrorscope-agent", "mirrorscope-agent-tls"),
    ] {
        assert_eq!(
            find(&docs, "Service", svc)["metadata"]["annotations"]
                ["service.beta.openshift.io/serving-cert-secret-name"],
            secret
        );
    }
    let bundle = find(&docs, "ConfigMap", "mirrorscope-service-ca");
    assert_eq!(
        bundle["metadata"]["annotations"]["service.beta.openshift.io/inject-cabundle"],
        "true"
    );
    let ca_vol = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "collector-ca")
        .unwrap();
    assert_eq!(
        ca_vol["projected"]["sources"][0]["configMap"]["name"],
        "mirrorscope-service-ca"
    );
    for sm in ["mirrorscope-agent", "mirrorscope-collector"] {
        let ep = &find(&docs, "ServiceMonitor", sm)["spec"]["endpoints"][0];
        assert_eq!(ep["scheme"], "https");
        assert_eq!(
            ep["tlsConfig"]["caFile"],
            "/etc/prometheus/configmaps/serving-certs-ca-bundle/service-ca.crt"
        );
    }
    // The read-only port is open to the host network (the API server) only.
    let np =
        serde_norway::to_string(&find(&docs, "NetworkPolicy", "mirrorscope-collector")["spec"])
            .unwrap();
    assert!(
        np.contains("port: proxy") && np.contains("host-network"),
        "{np}"
    );
    // The base is all there too.
    find(&docs, "DaemonSet", "mirrorscope-agent");
    find(&docs, "PrometheusRule", "mirrorscope");
}

#[test]
fn every_document_passes_the_kubernetes_or_its_own_schema() {
    for dir in ["manifests/base", "manifests/overlays/openshift"] {
        let yaml = kustomize(dir);
        let n = documents(&yaml).len();
        let (ok, out) = validate(&yaml);
        print!("{dir}:\n{out}");
        assert!(ok, "{dir} does not validate:\n{out}");
        assert_eq!(out.lines().filter(|l| l.starts_with("ok ")).count(), n);
    }
}

#[test]
fn validation_catches_a_misspelled_field_and_an_unknown_kind() {
    let yaml = kustomize("manifests/overlays/openshift");
    let typo = yaml.replacen("priorityClassName:", "priorityClassNam:", 1);
    let (ok, out) = validate(&typo);
    assert!(!ok && out.contains("priorityClassNam"), "{out}");
    let scc_typo = yaml.replacen("allowHostPID:", "allowHostPid:", 1);
    let (ok, out) = validate(&scc_typo);
    assert!(!ok && out.contains("allowHostPid"), "{out}");
    let rule_typo = yaml.replacen("      for: 30m", "      fro: 30m", 1);
    let (ok, out) = validate(&rule_typo);
    assert!(!ok && out.contains("PrometheusRule"), "{out}");
    let unknown =
        format!("{yaml}---\napiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: x\n");
    let (ok, out) = validate(&unknown);
    assert!(
        !ok && out.contains("no schema for example.com/v1 Gadget"),
        "{out}"
    );
}

/// The PrometheusRule's groups as a Prometheus rule file, next to a copy of alerts_test.yaml.
fn rules_dir() -> (TempDir, Vec<String>) {
    let docs = documents(&kustomize("manifests/base"));
    let rule = find(&docs, "PrometheusRule", "mirrorscope");
    let dir = TempDir::new("promtool");
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_norway::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        repo().join("tests/manifests/alerts_test.yaml"),
        dir.path().join("alerts_test.yaml"),
    )
    .unwrap();
    let alerts = rule["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect();
    (dir, alerts)
}

fn promtool(dir: &Path, args: &[&str]) -> (bool, String) {
    assert!(
        Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing: install Debian's prometheus (tests/deps.txt)"
    );
    let out = Command::new(PROMTOOL)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let (dir, alerts) = rules_dir();
    let (ok, out) = promtool(dir.path(), &["check", "rules", "rules.yaml"]);
    assert!(ok, "promtool check rules:\n{out}");
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{out}"
    );
    let (ok, out) = promtool(dir.path(), &["test", "rules", "alerts_test.yaml"]);
    assert!(ok, "promtool test rules:\n{out}");
    // Every alert is exercised: it fires somewhere in the unit tests.
    let tests = std::fs::read_to_string(dir.path().join("alerts_test.yaml")).unwrap();
    for a in &alerts {
        let fires = tests
            .split(&format!("alertname: {a}\n"))
            .skip(1)
            .any(|rest| rest.trim_start().starts_with("exp_alerts:\n"));
        assert!(fires, "no unit test expects {a} to fire");
    }
    // The unit tests can fail: the same file against rules with one threshold changed.
    let rules = std::fs::read_to_string(dir.path().join("rules.yaml")).unwrap();
    let changed = rules.replacen(") >= 5\n", ") >= 500\n", 1);
    assert_ne!(rules, changed);
    std::fs::write(dir.path().join("rules.yaml"), changed).unwrap();
    let (ok, out) = promtool(dir.path(), &["test", "rules", "alerts_test.yaml"]);
    assert!(
        !ok && out.contains("MirrorscopeMirrorFailing"),
        "promtool test rules passed with a broken rule:\n{out}"
    );
}

#[test]
fn every_alert_has_a_runbook_paragraph() {
    let (_dir, alerts) = rules_dir();
    assert!(alerts.len() >= 6, "{alerts:?}");
    let runbooks = std::fs::read_to_string(repo().join("docs/runbooks.md")).unwrap();
    let rule_text =
        std::fs::read_to_string(repo().join("manifests/base/prometheusrule.yaml")).unwrap();
    for a in &alerts {
        let heading = format!("\n## {a}\n");
        let at = runbooks
            .find(&heading)
            .unwrap_or_else(|| panic!("docs/runbooks.md has no section {heading:?}"));
        let body = runbooks[at + heading.len()..]
            .split("\n## ")
            .next()
            .unwrap();
        assert!(body.trim().len() > 200, "{a}: runbook paragraph too short");
        assert!(
            rule_text.contains(&format!("runbook: docs/runbooks.md#{}", a.to_lowercase())),
            "{a}: no runbook annotation"
        );
    }
}

#[test]
fn containerfile_builds_three_binaries_onto_ubi9_minimal() {
    let text = std::fs::read_to_string(repo().join("Containerfile")).unwrap();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(
        froms[0].starts_with("FROM registry.access.redhat.com/ubi9/ubi:9.")
            && froms[0].ends_with(" AS builder"),
        "{}",
        froms[0]
    );
    assert!(
        froms[1].starts_with("FROM registry.access.redhat.com/ubi9/ubi-minimal:9."),
        "{}",
        froms[1]
    );
    for f in &froms {
        assert!(!f.contains(":latest"), "unpinned base: {f}");
    }
    let builder = &text[..text.find(froms[1]).unwrap()];
    let runtime = &text[text.find(froms[1]).unwrap()..];
    assert!(builder.contains("systemd-devel"));
    assert!(builder.contains("cargo build --release --locked"));
    // The toolchain the workspace asks for.
    let cargo_toml = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let rust_version = cargo_toml
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap();
    assert!(
        builder.contains(&format!("--default-toolchain {rust_version}")),
        "builder toolchain is not rust-version {rust_version}"
    );
    assert!(runtime.contains("microdnf install") && runtime.contains("systemd-libs"));
    assert!(!runtime.contains("systemd-devel"));
    for bin in ["mirrorscope-agent", "mirrorscope-collector", "mirrorscope"] {
        assert!(
            runtime.contains(&format!(
                "COPY --from=builder /src/target/release/{bin} /usr/bin/{bin}\n"
            )),
            "{bin} not copied"
        );
    }
    let user = runtime
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap();
    assert_eq!(user.trim(), "1001");
    for label in [
        "name=",
        "version=",
        "summary=",
        "io.k8s.display-name=",
        "org.opencontainers.image.version=",
    ] {
        assert!(runtime.contains(label), "label {label} missing");
    }
    // The commands the manifests run exist in the image.
    let docs = documents(&kustomize("manifests/base"));
    for (kind, name) in [
        ("DaemonSet", "mirrorscope-agent"),
        ("Deployment", "mirrorscope-collector"),
    ] {
        let cmd =
            &find(&docs, kind, name)["spec"]["template"]["spec"]["containers"][0]["command"][0];
        let path = cmd.as_str().unwrap();
        assert!(
            runtime.contains(&format!(" {path}\n")),
            "{path} is not in the image"
        );
    }
}
