//! `mirrorscope audit` against real registries (Debian's docker-registry): every image of an
//! inventory resolved as a node resolves it and probed at each source, with the verdicts and
//! findings an admin acts on. Names that are not on this machine (quay.io, docker.io) go to a
//! closed loopback proxy, so asking them fails here and never leaves the host.

use std::process::{Command, Output};

use mirrorscope_core::audit::{FindingCode, ProbeStatus, Verdict};
use mirrorscope_e2e::collector::{bin, Collector, FakeNode};
use mirrorscope_e2e::oci;
use mirrorscope_e2e::registry::{auth_file_json, closed_port, Registry, ScratchDir};
use serde_json::Value;

fn audit(dir: &ScratchDir, args: &[&str]) -> Output {
    Command::new(bin("mirrorscope"))
        .arg("audit")
        .args(args)
        .current_dir(dir.path())
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("https_proxy")
        .env_remove("http_proxy")
        .env_remove("no_proxy")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("KUBECONFIG")
        .env_remove("MIRRORSCOPE_COLLECTOR")
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn entry<'a>(doc: &'a Value, image: &str) -> &'a Value {
    doc.as_array()
        .unwrap()
        .iter()
        .find(|e| e["image"] == image)
        .unwrap_or_else(|| panic!("{image} not in {doc:#}"))
}

fn verdict(e: &Value) -> Verdict {
    serde_json::from_value(e["verdict"].clone()).unwrap()
}

fn codes(e: &Value) -> Vec<FindingCode> {
    e["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| serde_json::from_value(f["code"].clone()).unwrap())
        .collect()
}

fn statuses(e: &Value) -> Vec<Option<ProbeStatus>> {
    e["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| serde_json::from_value(s["probe"]["status"].clone()).ok())
        .collect()
}

/// One mirror registry for the whole configuration; every mirror entry is `insecure` because
/// the test registry speaks plain HTTP (as nodes would be told).
fn registries_conf(m: &str, dead: &str, secure: &str) -> String {
    format!(
        r#"
[[registry]]
prefix = "docker.io/library"
location = "docker.io/library"
[[registry.mirror]]
location = "{m}/library"
insecure = true
pull-from-mirror = "all"

[[registry]]
prefix = "quay.io/shop"
location = "quay.io/shop"
blocked = true
[[registry.mirror]]
location = "{dead}/shop"
insecure = true
[[registry.mirror]]
location = "{m}/shop"
insecure = true

[[registry]]
prefix = "quay.io/digest-only"
location = "quay.io/digest-only"
mirror-by-digest-only = true
[[registry.mirror]]
location = "{m}/digest-only"
insecure = true

[[registry]]
prefix = "quay.io/secure"
location = "quay.io/secure"
blocked = true
[[registry.mirror]]
location = "{secure}/secure"
insecure = true
"#
    )
}

#[test]
fn audit_probes_every_source_a_node_tries_and_names_what_to_fix() {
    let m = Registry::plain();
    let secure = Registry::basic_auth("puller", "s3cret");
    let dead = format!("127.0.0.1:{}", closed_port());
    let nginx = oci::seed(&m, "library/nginx", "1.25.3", "nginx-1.25.3");
    oci::seed(&m, "library/nginx", "1.24.0", "nginx-1.24.0");
    // Copied to M/busybox instead of M/library/busybox.
    oci::seed(&m, "busybox", "1.36", "busybox");
    oci::seed(&m, "shop/api", "2", "shop-api");
    oci::seed(&m, "digest-only/tool", "1", "tool");
    oci::seed(&secure, "secure/app", "1", "secure-app");

    let dir = ScratchDir::new("audit");
    dir.write(
        "registries.conf",
        &registries_conf(&m.host(), &dead, &secure.host()),
    );
    let pods = r#"{"apiVersion":"v1","kind":"List","items":[
      {"kind":"Pod","metadata":{"name":"web-1","namespace":"shop"},"spec":{
        "initContainers":[{"name":"init","image":"busybox:1.36"}],
        "containers":[{"name":"web","image":"nginx:1.25.3"},{"name":"api","image":"quay.io/shop/api:2"}]}},
      {"kind":"Pod","metadata":{"name":"web-2","namespace":"shop"},"spec":{
        "containers":[{"name":"web","image":"nginx:1.26.0"},{"name":"cart","image":"quay.io/shop/cart:1"}]}},
      {"kind":"Pod","metadata":{"name":"tools","namespace":"ops"},"spec":{
        "containers":[{"name":"t","image":"quay.io/digest-only/tool:1"},{"name":"o","image":"ghcr.io/other/app:3"},
                      {"name":"s","image":"quay.io/secure/app:1"},{"name":"m","image":"quay.io/secure/missing:1"}]}}]}"#;
    dir.write("pods.json", pods);
    dir.write("auth.json", &secure.auth_file_json());

    let base = [
        "--registries-conf",
        "registries.conf",
        "--registries-conf-d",
        "none.d",
        "--images-from",
        "pods.json",
    ];
    let with = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        audit(&dir, &args)
    };

    let out = with(&["--probe", "--authfile", "auth.json", "-o", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "an image fails: {stderr}");
    let doc = json(&out);
    assert_eq!(
        doc.as_array().unwrap().len(),
        9,
        "one element per distinct image"
    );
    assert!(doc[0].get("nodes").is_none());

    let e = entry(&doc, "nginx:1.25.3");
    assert_eq!(verdict(e), Verdict::Mirror);
    assert_eq!(e["served_by"], format!("{}/library/nginx:1.25.3", m.host()));
    assert_eq!(e["sources"][0]["probe"]["digest"], nginx.as_str());
    // The node stops at the mirror: the source is never asked.
    assert_eq!(
        statuses(e),
        [Some(ProbeStatus::Present), Some(ProbeStatus::NotTried)]
    );
    assert_eq!(e["used_by"], serde_json::json!(["shop/Pod/web-1"]));
    assert!(codes(e).is_empty());

    // A tag bumped upstream, never re-mirrored: the mirror misses it and only docker.io (here:
    // nothing, through the closed proxy) could serve it.
    let e = entry(&doc, "nginx:1.26.0");
    assert_eq!(
        statuses(e),
        [
            Some(ProbeStatus::ManifestUnknown),
            Some(ProbeStatus::Unreachable)
        ]
    );
    assert_eq!(verdict(e), Verdict::Unknown);
    assert_eq!(codes(e), [FindingCode::StaleTag]);

    let e = entry(&doc, "busybox:1.36");
    assert_eq!(codes(e), [FindingCode::LibraryPath]);
    let fix = e["findings"][0]["fix"].as_str().unwrap();
    assert!(
        fix.contains(&format!("docker://{}/busybox:1.36", m.host())),
        "{fix}"
    );

    // The first mirror is down, the second serves: nodes get it, a little later.
    let e = entry(&doc, "quay.io/shop/api:2");
    assert_eq!(verdict(e), Verdict::Mirror);
    assert_eq!(e["served_by"], format!("{}/shop/api:2", m.host()));
    assert_eq!(codes(e), [FindingCode::MirrorUnreachable]);

    // The reachable mirror lacks it and the source is blocked; whether the dead mirror has it
    // cannot be told from here.
    let e = entry(&doc, "quay.io/shop/cart:1");
    assert_eq!(verdict(e), Verdict::Unknown);
    assert_eq!(
        statuses(e),
        [
            Some(ProbeStatus::Unreachable),
            Some(ProbeStatus::NameUnknown),
            None
        ]
    );
    assert_eq!(
        codes(e),
        [
            FindingCode::MirrorUnreachable,
            FindingCode::MissingRepository
        ]
    );

    // The only mirror lacks it and the source is blocked: fails on every node.
    let e = entry(&doc, "quay.io/secure/missing:1");
    assert_eq!(verdict(e), Verdict::Fail);
    assert_eq!(statuses(e), [Some(ProbeStatus::NameUnknown), None]);
    assert_eq!(codes(e), [FindingCode::MissingRepository]);

    // IDMS without ITMS: a tag pull skips the digest-only mirror though it has the image.
    let e = entry(&doc, "quay.io/digest-only/tool:1");
    assert_eq!(verdict(e), Verdict::Source);
    assert!(
        codes(e).contains(&FindingCode::DigestOnlyMirrorsForTag),
        "{e:#}"
    );
    assert_eq!(statuses(e), [Some(ProbeStatus::Unreachable)]);

    let e = entry(&doc, "ghcr.io/other/app:3");
    assert_eq!(verdict(e), Verdict::Source);
    assert_eq!(codes(e), [FindingCode::NoMirrorRule]);

    // The mirror with basic auth serves with the auth file's credentials...
    let e = entry(&doc, "quay.io/secure/app:1");
    assert_eq!(verdict(e), Verdict::Mirror, "{e:#}");

    // ...and refuses without them: the pull secret is what decides.
    let out = with(&["--probe", "-o", "json", "quay.io/secure/app:1"]);
    let doc = json(&out);
    let e = entry(&doc, "quay.io/secure/app:1");
    assert_eq!(verdict(e), Verdict::Unknown);
    assert_eq!(statuses(e), [Some(ProbeStatus::Unauthorized), None]);
    assert_eq!(codes(e), [FindingCode::MirrorUnauthorized]);

    // A single-architecture (amd64) copy fails the arm64 nodes.
    let out = with(&["--probe", "--arch", "amd64,arm64", "-o", "json"]);
    let doc = json(&out);
    let e = entry(&doc, "nginx:1.25.3");
    assert_eq!(verdict(e), Verdict::Fail);
    assert_eq!(
        e["sources"][0]["probe"]["architectures"],
        serde_json::json!(["amd64"])
    );
    assert_eq!(
        e["sources"][0]["probe"]["missing_architectures"],
        serde_json::json!(["arm64"])
    );
    assert_eq!(codes(e), [FindingCode::MissingArchitecture]);
    let out = with(&["--probe", "--arch", "amd64", "-o", "json", "nginx:1.25.3"]);
    assert_eq!(verdict(entry(&json(&out), "nginx:1.25.3")), Verdict::Mirror);
    assert_eq!(out.status.code(), Some(0));

    // The table names each finding with its fix, and ends with the count.
    let out = with(&["--probe", "--authfile", "auth.json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("Under registries.conf, none.d:\nIMAGE"),
        "{text}"
    );
    assert!(
        text.contains("stale-tag: the mirror has the repository but not this tag"),
        "{text}"
    );
    assert!(
        text.contains(
            "    fix: re-mirror the tag: skopeo copy --all docker://docker.io/library/nginx:1.26.0"
        ),
        "{text}"
    );
    assert!(
        text.contains("quay.io/shop/cart:1  (used by shop/Pod/web-2)"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .ends_with("9 images: 3 mirror, 2 source, 1 fail, 3 unknown"),
        "{text}"
    );

    // --fail-on source also fails on images only their source serves.
    let out = with(&["ghcr.io/other/app:3", "--fail-on", "source"]);
    assert_eq!(out.status.code(), Some(1));
    let out = audit(
        &dir,
        &[
            "--registries-conf",
            "registries.conf",
            "--registries-conf-d",
            "none.d",
            "ghcr.io/other/app:3",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn desired_objects_are_audited_under_the_mco_rendering() {
    let m = Registry::plain();
    oci::seed(&m, "ubi9/ubi", "9.4", "ubi");
    let dir = ScratchDir::new("audit-desired");
    dir.write(
        "itms.yaml",
        &format!(
            "apiVersion: config.openshift.io/v1\nkind: ImageTagMirrorSet\nmetadata:\n  name: ubi\nspec:\n  imageTagMirrors:\n  - source: registry.access.redhat.com/ubi9\n    mirrors:\n    - {}/ubi9\n    mirrorSourcePolicy: NeverContactSource\n",
            m.host()
        ),
    );
    // The rendering does not mark a loopback mirror insecure: nodes (and the audit) speak HTTPS
    // to it, which a plain-HTTP registry cannot answer.
    let out = audit(
        &dir,
        &[
            "--desired",
            "itms.yaml",
            "--probe",
            "-o",
            "json",
            "registry.access.redhat.com/ubi9/ubi:9.4",
        ],
    );
    let doc = json(&out);
    let e = entry(&doc, "registry.access.redhat.com/ubi9/ubi:9.4");
    assert_eq!(e["sources"].as_array().unwrap().len(), 2);
    assert_eq!(
        e["sources"][1]["blocked"], true,
        "NeverContactSource blocks the source: {e:#}"
    );
    assert_eq!(statuses(e)[0], Some(ProbeStatus::TlsError), "{e:#}");
    assert_eq!(verdict(e), Verdict::Unknown);
    assert_eq!(codes(e), [FindingCode::MirrorUnreachable]);
}

#[test]
fn without_a_configuration_every_configuration_the_nodes_reported_is_audited() {
    let m = Registry::plain();
    oci::seed(&m, "library/nginx", "1.25.3", "nginx");
    let mirrored = format!(
        "[[registry]]\nprefix = \"docker.io/library/nginx\"\nlocation = \"docker.io/library/nginx\"\nblocked = true\n[[registry.mirror]]\nlocation = \"{}/library/nginx\"\ninsecure = true\n",
        m.host()
    );
    let c = Collector::start(&[]);
    let mut nodes = Vec::new();
    for (name, conf) in [
        ("w1", mirrored.as_str()),
        ("w2", mirrored.as_str()),
        ("w3", ""),
    ] {
        let mut n = FakeNode::new(name);
        n.write_registries(conf);
        n.push_to(&c.url);
        nodes.push(n);
    }
    let dir = ScratchDir::new("audit-nodes");
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(bin("mirrorscope"));
        cmd.arg("audit")
            .args(extra)
            .env("MIRRORSCOPE_COLLECTOR", &c.url)
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1")
            .current_dir(dir.path());
        cmd.output().unwrap()
    };
    let out = run(&["--probe", "-o", "json", "nginx:1.25.3"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json(&out);
    let elements = doc.as_array().unwrap();
    assert_eq!(elements.len(), 2, "one per configuration: {doc:#}");
    let by_nodes = |nodes: &[&str]| {
        elements
            .iter()
            .find(|e| e["nodes"] == serde_json::json!(nodes))
            .unwrap_or_else(|| panic!("no audit for {nodes:?}: {doc:#}"))
    };
    assert_eq!(by_nodes(&["w1", "w2"])["verdict"], "mirror");
    // w3 has no rule: docker.io itself, unreachable here, is all it has.
    assert_eq!(by_nodes(&["w3"])["verdict"], "source");

    let out = run(&["--node", "w1", "--probe", "nginx:1.25.3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.starts_with("Under the configuration of 1 node (w1):"),
        "{text}"
    );
    let out = run(&["--node", "nope", "nginx:1.25.3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no report from node \"nope\""));
}

#[test]
fn bad_inventories_name_the_file_and_the_place() {
    let dir = ScratchDir::new("audit-bad");
    dir.write("registries.conf", "");
    dir.write("pods.json", r#"{"kind":"Pod","metadata":{"name":"p","namespace":"n"},"spec":{"containers":[{"name":"c","image":["x"]}]}}"#);
    dir.write(
        "mapping.txt",
        "quay.io/a/b:1=m.example/a/b:1\nquay.io/c/d:1=\n",
    );
    let conf = [
        "--registries-conf",
        "registries.conf",
        "--registries-conf-d",
        "none.d",
    ];
    for (file, want) in [
        (
            "pods.json",
            "pods.json: n/Pod/p: spec.containers[0].image: expected a string",
        ),
        ("mapping.txt", "mapping.txt:2: expected source=destination"),
        ("missing.json", "--images-from missing.json"),
    ] {
        let args: Vec<&str> = conf
            .iter()
            .copied()
            .chain(["--images-from", file])
            .collect();
        let out = audit(&dir, &args);
        assert_eq!(out.status.code(), Some(2), "{file}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{file}: {err}");
    }
    let args: Vec<&str> = conf
        .iter()
        .copied()
        .chain(["--probe", "--ca-file", "mapping.txt", "quay.io/a/b:1"])
        .collect();
    let out = audit(&dir, &args);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--ca-file mapping.txt: no CERTIFICATE block"),
        "{err}"
    );
    let args: Vec<&str> = conf
        .iter()
        .copied()
        .chain(["--probe", "--authfile", "mapping.txt", "quay.io/a/b:1"])
        .collect();
    let out = audit(&dir, &args);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--authfile mapping.txt: not a containers auth file"),
        "{err}"
    );

    // Without an inventory the collector's is asked for; with no collector to ask, say so.
    let out = audit(&dir, &conf);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no --images-from or images given, so the inventory comes from the collector"),
        "{err}"
    );
    dir.write("empty.txt", "# nothing yet\n");
    let args: Vec<&str> = conf
        .iter()
        .copied()
        .chain(["--images-from", "empty.txt"])
        .collect();
    let out = audit(&dir, &args);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("empty.txt: no image references found"),
        "{err}"
    );
}

#[test]
fn over_tls_with_a_ca_and_basic_auth_every_architecture_of_an_index_is_checked() {
    let t = Registry::tls_basic_auth("mirror", "pa55");
    oci::OciLayout::build_index("cuda", "12", &["amd64", "arm64"]).push(&t, "library/cuda", "12");
    oci::seed(&t, "library/cuda", "12-amd64", "cuda-amd64");
    let dir = ScratchDir::new("audit-tls");
    dir.write(
        "registries.conf",
        &format!(
            "[[registry]]\nprefix = \"docker.io/library\"\nlocation = \"docker.io/library\"\nblocked = true\n[[registry.mirror]]\nlocation = \"{}/library\"\n",
            t.host()
        ),
    );
    dir.write("auth.json", &t.auth_file_json());
    let ca = t.ca_path().unwrap();
    let ca = ca.to_str().unwrap();
    let base = [
        "--registries-conf",
        "registries.conf",
        "--registries-conf-d",
        "none.d",
        "--probe",
        "--authfile",
        "auth.json",
    ];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        audit(&dir, &args)
    };

    let out = run(&[
        "--ca-file",
        ca,
        "--arch",
        "amd64,arm64",
        "-o",
        "json",
        "cuda:12",
        "cuda:12-amd64",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json(&out);
    let e = entry(&doc, "cuda:12");
    assert_eq!(verdict(e), Verdict::Mirror, "{e:#}");
    let p = &e["sources"][0]["probe"];
    assert_eq!(p["media_type"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(p["architectures"], serde_json::json!(["amd64", "arm64"]));
    assert_eq!(p["missing_architectures"], serde_json::json!([]));
    let e = entry(&doc, "cuda:12-amd64");
    assert_eq!(verdict(e), Verdict::Fail, "{e:#}");
    assert_eq!(codes(e), [FindingCode::MissingArchitecture]);
    let message = e["findings"][0]["message"].as_str().unwrap();
    assert!(message.contains("serves amd64 but not arm64"), "{message}");

    // Without the CA the certificate is not trusted, as on a node without additionalTrustedCA.
    let out = run(&["-o", "json", "cuda:12"]);
    let doc = json(&out);
    let e = entry(&doc, "cuda:12");
    assert_eq!(statuses(e)[0], Some(ProbeStatus::TlsError), "{e:#}");
    assert_eq!(codes(e), [FindingCode::MirrorUnreachable]);
    assert_eq!(verdict(e), Verdict::Unknown);

    // Wrong credentials: the registry refuses them.
    dir.write("bad.json", &auth_file_json(&t.host(), "mirror:wrong"));
    let out = audit(
        &dir,
        &[
            "--registries-conf",
            "registries.conf",
            "--registries-conf-d",
            "none.d",
            "--probe",
            "--authfile",
            "bad.json",
            "--ca-file",
            ca,
            "-o",
            "json",
            "cuda:12",
        ],
    );
    let e = entry(&json(&out), "cuda:12").clone();
    assert_eq!(statuses(&e)[0], Some(ProbeStatus::Unauthorized), "{e:#}");
}

#[test]
fn fallbacks_missing_digests_and_configuration_mistakes_are_named() {
    let m = Registry::plain();
    let s = Registry::plain();
    oci::seed(&s, "app/web", "1", "web");
    oci::seed(&m, "app/tool", "1", "tool-mirror-copy");
    let tool = oci::seed(&s, "app/tool", "1", "tool-upstream");
    let dir = ScratchDir::new("audit-findings");
    dir.write(
        "registries.conf",
        &format!(
            r#"
[[registry]]
prefix = "{s}/app"
location = "{s}/app"
insecure = true
[[registry.mirror]]
location = "{m}/app"
insecure = true

[[registry]]
prefix = "docker.io/library"
location = "docker.io/library"
[[registry.mirror]]
location = "{m}/library"
insecure = true

[[registry]]
prefix = "quay.io/gone"
location = "quay.io/gone"
blocked = true
"#,
            s = s.host(),
            m = m.host()
        ),
    );
    let tool_ref = format!("{}/app/tool@{tool}", s.host());
    let web = format!("{}/app/web:1", s.host());
    let other = format!("{}/other/x:1", s.host());
    let images = [
        web.as_str(),
        tool_ref.as_str(),
        other.as_str(),
        "registry-1.docker.io/library/nginx:1",
        "quay.io/gone/x:1",
        "Nginx:1",
    ];
    let mut args = vec![
        "--registries-conf",
        "registries.conf",
        "--registries-conf-d",
        "none.d",
        "--probe",
        "-o",
        "json",
    ];
    args.extend(images);
    let out = audit(&dir, &args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json(&out);

    // The mirror lacks the repository; the source, still allowed, serves: fine until the
    // cluster is disconnected.
    let e = entry(&doc, &web);
    assert_eq!(verdict(e), Verdict::Source);
    assert_eq!(e["served_by"], web.as_str());
    assert_eq!(
        statuses(e),
        [Some(ProbeStatus::NameUnknown), Some(ProbeStatus::Present)]
    );
    assert_eq!(
        codes(e),
        [
            FindingCode::MissingRepository,
            FindingCode::FallbackToSource
        ]
    );

    // The mirror has the repository, with another image under the tag: not this digest.
    let e = entry(&doc, &tool_ref);
    assert_eq!(
        statuses(e),
        [
            Some(ProbeStatus::ManifestUnknown),
            Some(ProbeStatus::Present)
        ]
    );
    assert_eq!(
        codes(e),
        [FindingCode::MissingDigest, FindingCode::FallbackToSource]
    );
    assert_eq!(e["sources"][1]["probe"]["digest"], tool.as_str());

    let e = entry(&doc, &other);
    assert_eq!(codes(e), [FindingCode::VendorPrefixGap]);
    assert!(
        e["findings"][0]["fix"]
            .as_str()
            .unwrap()
            .contains(&format!("{}/other/x", m.host())),
        "{e:#}"
    );

    let e = entry(&doc, "registry-1.docker.io/library/nginx:1");
    assert_eq!(
        codes(e),
        [
            FindingCode::Registry1DockerIoAlias,
            FindingCode::NoMirrorRule
        ]
    );

    let e = entry(&doc, "quay.io/gone/x:1");
    assert_eq!(verdict(e), Verdict::Fail);
    assert_eq!(
        codes(e),
        [FindingCode::BlockedSource, FindingCode::NoMirrorRule]
    );

    let e = entry(&doc, "Nginx:1");
    assert_eq!(verdict(e), Verdict::Fail);
    assert_eq!(codes(e), [FindingCode::InvalidReference]);
}

#[test]
fn a_release_payload_is_read_through_the_mirror_and_every_payload_image_audited() {
    let m = Registry::plain();
    let present = oci::seed(&m, "ocp/art-dev", "cli", "payload-cli");
    let missing = oci::sha256_digest(b"a payload image that was never mirrored");
    let refs = format!(
        r#"{{"kind":"ImageStream","apiVersion":"image.openshift.io/v1","metadata":{{"name":"4.19.3"}},
          "spec":{{"tags":[
            {{"name":"cli","from":{{"kind":"DockerImage","name":"quay.io/openshift-release-dev/ocp-v4.0-art-dev@{present}"}}}},
            {{"name":"machine-config-operator","from":{{"kind":"DockerImage","name":"quay.io/openshift-release-dev/ocp-v4.0-art-dev@{missing}"}}}}]}}}}"#
    );
    // The payload's manifests are in its top layer, above a base layer.
    let base: &[(&str, &[u8])] = &[("etc/os-release", b"ID=rhel\n")];
    let manifests: &[(&str, &[u8])] = &[
        (
            "release-manifests/0000_00_cluster-version-operator_00_namespace.yaml",
            b"kind: Namespace\n",
        ),
        ("release-manifests/image-references", refs.as_bytes()),
    ];
    let release = oci::OciLayout::build_layers("4.19.3-x86_64", &[base, manifests]).push(
        &m,
        "ocp/release",
        "4.19.3-x86_64",
    );

    let dir = ScratchDir::new("audit-release");
    dir.write(
        "registries.conf",
        &format!(
            r#"
[[registry]]
prefix = "quay.io/openshift-release-dev/ocp-release"
location = "quay.io/openshift-release-dev/ocp-release"
mirror-by-digest-only = true
blocked = true
[[registry.mirror]]
location = "{m}/ocp/release"
insecure = true

[[registry]]
prefix = "quay.io/openshift-release-dev/ocp-v4.0-art-dev"
location = "quay.io/openshift-release-dev/ocp-v4.0-art-dev"
mirror-by-digest-only = true
blocked = true
[[registry.mirror]]
location = "{m}/ocp/art-dev"
insecure = true
"#,
            m = m.host()
        ),
    );
    let release_ref = format!("quay.io/openshift-release-dev/ocp-release@{release}");
    let conf = [
        "--registries-conf",
        "registries.conf",
        "--registries-conf-d",
        "none.d",
        "--probe",
    ];
    let args: Vec<&str> = conf
        .iter()
        .copied()
        .chain(["--release", &release_ref, "-o", "json"])
        .collect();
    let out = audit(&dir, &args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json(&out);
    assert_eq!(doc.as_array().unwrap().len(), 3, "{doc:#}");
    let e = entry(&doc, &release_ref);
    assert_eq!(verdict(e), Verdict::Mirror);
    assert_eq!(e["used_by"], serde_json::json!(["release"]));
    let cli = format!("quay.io/openshift-release-dev/ocp-v4.0-art-dev@{present}");
    let e = entry(&doc, &cli);
    assert_eq!(verdict(e), Verdict::Mirror, "{e:#}");
    assert_eq!(e["used_by"], serde_json::json!(["release/cli"]));
    let mco = format!("quay.io/openshift-release-dev/ocp-v4.0-art-dev@{missing}");
    let e = entry(&doc, &mco);
    assert_eq!(verdict(e), Verdict::Fail);
    assert_eq!(
        e["used_by"],
        serde_json::json!(["release/machine-config-operator"])
    );
    assert_eq!(codes(e), [FindingCode::MissingDigest]);

    // A release image the mirror does not have: the error names it and what each source said.
    let gone = format!("quay.io/openshift-release-dev/ocp-release@{missing}");
    let args: Vec<&str> = conf.iter().copied().chain(["--release", &gone]).collect();
    let out = audit(&dir, &args);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("--release {gone}: no source serves {gone}")),
        "{err}"
    );
    assert!(
        err.contains("MANIFEST_UNKNOWN") || err.contains("HTTP 404"),
        "{err}"
    );
}

#[test]
fn a_bearer_token_service_is_asked_with_the_auth_file_credentials() {
    let t = Registry::token_auth("robot", "t0ken-pass");
    oci::seed(&t, "team/app", "1", "team-app");
    let dir = ScratchDir::new("audit-bearer");
    dir.write(
        "registries.conf",
        &format!(
            "[[registry]]\nprefix = \"quay.io/team\"\nlocation = \"quay.io/team\"\nblocked = true\n[[registry.mirror]]\nlocation = \"{}/team\"\ninsecure = true\n",
            t.host()
        ),
    );
    dir.write("auth.json", &t.auth_file_json());
    let conf = [
        "--registries-conf",
        "registries.conf",
        "--registries-conf-d",
        "none.d",
        "--probe",
        "-o",
        "json",
    ];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = conf.iter().chain(extra).copied().collect();
        json(&audit(&dir, &args))
    };
    let doc = run(&[
        "--authfile",
        "auth.json",
        "quay.io/team/app:1",
        "quay.io/team/app:2",
    ]);
    let e = entry(&doc, "quay.io/team/app:1");
    assert_eq!(verdict(e), Verdict::Mirror, "{e:#}");
    // The token's pull scope also lets the tag list tell a missing tag from a missing repository.
    let e = entry(&doc, "quay.io/team/app:2");
    assert_eq!(codes(e), [FindingCode::StaleTag], "{e:#}");

    // Without credentials the token service refuses: the pull secret is missing an entry.
    let doc = run(&["quay.io/team/app:1"]);
    let e = entry(&doc, "quay.io/team/app:1");
    assert_eq!(statuses(e)[0], Some(ProbeStatus::Unauthorized), "{e:#}");
    assert_eq!(codes(e), [FindingCode::MirrorUnauthorized]);
}
