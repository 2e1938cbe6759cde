//! The collector's status page in a real headless Chromium: nodes are rendered, strings that
//! come from the journal stay text even when they look like markup, and the empty, lagging and
//! failing states read as they should (screenshots in `target/screenshots/`, the README's
//! pictures in `docs/screenshots/` are copies of them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mirrorscope_core::openshift::TEMPLATE_REGISTRIES_CONF;
use mirrorscope_core::openshift::{parse_str, render, ParseOptions, RenderOptions};
use mirrorscope_e2e::collector::*;

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(args: &[&str]) -> Output {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (tests/deps.txt)"
    );
    let profile = TempDir::new("chromium");
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-proxy-server",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .unwrap()
}

fn dump_dom(url: &str) -> String {
    let out = chromium(&["--dump-dom", url]);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed: {}\n{dom}",
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

#[test]
fn status_page_renders_nodes_and_keeps_journal_strings_as_text() {
    let c = Collector::start(&["--stale-after", "1h"]);
    let evil =
        "<script>document.title='pwned';document.body.setAttribute('data-pwned','1')</script>";
    for i in 1..=3 {
        let mut n = FakeNode::new(&format!("worker-{i}"));
        n.write_registries("unqualified-search-registries = ['docker.io']\n");
        if i == 2 {
            let mut p = pull_record("evil", "quay.io/ns/app:1", "quay.io/ns/app:1", false, true);
            p.attempts[0].error = Some(format!("manifest unknown {evil}"));
            p.image = format!("quay.io/ns/app:1{evil}");
            n.pulls = vec![p];
        }
        n.push_to(&c.url);
    }
    let dom = dump_dom(&c.url);
    for i in 1..=3 {
        assert!(
            dom.contains(&format!("data-node=\"worker-{i}\"")),
            "worker-{i} missing:\n{dom}"
        );
    }
    assert!(dom.contains("<title>mirrorscope</title>"), "{dom}");
    assert!(
        !dom.contains("data-pwned=\"1\""),
        "the journal string ran as a script:\n{dom}"
    );
    assert!(
        !dom.to_ascii_lowercase().contains("<script"),
        "a script element was created:\n{dom}"
    );
    assert!(
        dom.contains("manifest unknown &lt;script&gt;document.title='pwned'"),
        "the journal string is not shown as text:\n{dom}"
    );
    assert!(dom.contains("id=\"pools\""), "{dom}");
    assert!(dom.contains("id=\"registries\""), "{dom}");
}

/// Takes a full-width screenshot of the page into `target/screenshots/<name>.png` and checks that
/// Chromium wrote a PNG of the window's size with something drawn on it.
fn screenshot(url: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let out = chromium(&[
        &format!("--screenshot={}", png.display()),
        "--window-size=1280,1200",
        "--hide-scrollbars",
        url,
    ]);
    let bytes = std::fs::read(&png).unwrap_or_else(|e| {
        panic!(
            "no screenshot {} ({e}): {}",
            png.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        png.display()
    );
    let dim = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!((dim(16), dim(20)), (1280, 1200), "{}", png.display());
    // A blank 1280x1200 page compresses to a few KiB; text and tables take far more.
    assert!(
        bytes.len() > 20_000,
        "{} looks blank ({} bytes)",
        png.display(),
        bytes.len()
    );
    png
}

const IDMS: &str = "apiVersion: config.openshift.io/v1
kind: ImageDigestMirrorSet
metadata:
  name: docker-mirror
spec:
  imageDigestMirrors:
  - source: docker.io
    mirrors:
    - mirror.example.com:5000
";

/// A collector whose desired state is [`IDMS`], with the registries.conf the MCO renders for it.
fn collector_with_desired() -> (TempDir, Collector, String) {
    let (dir, idms, conf) = desired();
    let c = Collector::start(&["--desired", &idms, "--stale-after", "1h"]);
    (dir, c, conf)
}

/// A node that has landed `conf`: on disk and in its MachineConfig.
fn landed_node(name: &str, conf: &str) -> FakeNode {
    let n = FakeNode::new(name);
    n.write_registries(conf);
    n.write_machine_config("rendered-worker-new", conf);
    n
}

fn desired() -> (TempDir, String, String) {
    let dir = TempDir::new("desired");
    let p = dir.path().join("idms.yaml");
    std::fs::write(&p, IDMS).unwrap();
    let set = parse_str(IDMS, "idms.yaml", &ParseOptions::default());
    let conf = render(&set.input, &RenderOptions::default())
        .unwrap()
        .registries_conf()
        .unwrap()
        .to_string();
    let path = p.display().to_string();
    (dir, path, conf)
}

/// Items of the `<ul>` that follows `marker` in `dom`, as text.
fn list_after<'a>(dom: &'a str, marker: &str) -> Vec<&'a str> {
    let Some(at) = dom.find(marker) else {
        return Vec::new();
    };
    let ul = &dom[at..];
    let end = ul.find("</ul>").unwrap_or(ul.len());
    ul[..end]
        .split("<li>")
        .skip(1)
        .map(|li| li.trim_end_matches("</li>"))
        .collect()
}

#[test]
fn empty_state_says_no_agent_reported_and_what_to_check() {
    let c = Collector::start(&["--stale-after", "1h"]);
    let dom = dump_dom(&c.url);
    assert!(dom.contains("id=\"empty\""), "{dom}");
    assert!(
        dom.contains("No agent has reported to this collector yet"),
        "{dom}"
    );
    assert!(
        dom.contains("oc -n mirrorscope get ds mirrorscope-agent"),
        "{dom}"
    );
    assert!(
        dom.contains("oc -n mirrorscope logs ds/mirrorscope-agent"),
        "{dom}"
    );
    // No table of bare headers: the node, pool and pull tables wait for the first report.
    for id in ["id=\"pools\"", "id=\"nodes\"", "id=\"pulls\""] {
        assert!(!dom.contains(id), "{id} on the empty page:\n{dom}");
    }
    screenshot(&c.url, "status-empty");
}

#[test]
fn lagging_state_lists_each_reason_and_keeps_notes_below_the_state() {
    let (_d, c, conf) = collector_with_desired();
    landed_node("worker-landed-0", &conf).push_to(&c.url);
    let mut lagging = FakeNode::new("worker-lagging-1");
    lagging.write_registries(TEMPLATE_REGISTRIES_CONF);
    // The MachineConfig already names the new rendering but the file is the old one: the node
    // lags for two reasons.
    lagging.write_machine_config("rendered-worker-new", &conf);
    lagging.push_to(&c.url);

    let dom = dump_dom(&c.url);
    assert!(!dom.contains("id=\"empty\""), "{dom}");
    let row_at = dom
        .find("data-node=\"worker-lagging-1\"")
        .expect("lagging row");
    let reasons = list_after(&dom[row_at..], "<ul class=\"reasons\">");
    assert!(
        reasons.len() >= 2,
        "the reasons are not a list: {reasons:?}\n{dom}"
    );
    assert!(reasons.iter().all(|r| !r.contains("<br>")), "{reasons:?}");
    // Nodes without a pool are named the way the CLI names them.
    assert!(dom.contains("<td class=\"nw\">&lt;none&gt;</td>"), "{dom}");
    assert!(!dom.contains("(no pool)"), "{dom}");
    // Node names and timestamps never wrap mid-word.
    assert!(
        dom.contains("<td class=\"nw\">worker-lagging-1</td>"),
        "{dom}"
    );
    let state_at = dom.find("id=\"pools\"").unwrap();
    let notes_at = dom.find("id=\"notes\"").expect("the desired state's notes");
    assert!(notes_at > state_at, "notes come before the state:\n{dom}");
    screenshot(&c.url, "status-lagging");
}

#[test]
fn failing_state_shows_outcome_fallback_and_the_mirrors_error_before_the_block() {
    let (_d, c, conf) = collector_with_desired();
    let mut n = landed_node("worker-0", &conf);
    let mut blocked = pull_record(
        "blocked",
        "docker.io/curlimages/curl:8.11.0",
        "docker.io/curlimages/curl:8.11.0",
        false,
        false,
    );
    blocked.outcome = mirrorscope_core::journal::PullOutcome::Failed;
    blocked.served_by = None;
    blocked.attempts = serde_json::from_value(serde_json::json!([
        {"reference": "mirror.example.com:5000/curlimages/curl:8.11.0", "mirror": true, "outcome": "failed",
         "error_class": "manifest_unknown", "error": "reading manifest 8.11.0 in mirror.example.com:5000/curlimages/curl: manifest unknown", "tries": 1},
        {"reference": "docker.io/curlimages/curl:8.11.0", "mirror": false, "outcome": "failed",
         "error_class": "blocked", "error": "registry docker.io is blocked in /etc/containers/registries.conf or /etc/containers/registries.conf.d", "tries": 1},
    ]))
    .unwrap();
    let fallback = pull_record(
        "fallback",
        "ghcr.io/kubeflow/notebook-controller:v1.9.0",
        "ghcr.io/kubeflow/notebook-controller:v1.9.0",
        false,
        true,
    );
    n.pulls = vec![blocked, fallback];
    n.push_to(&c.url);

    let dom = dump_dom(&c.url);
    let table = &dom[dom.find("id=\"pulls\"").expect("pulls table")..];
    for h in [
        "<th>outcome</th>",
        "<th>fallback</th>",
        "<th>errors, cause first</th>",
    ] {
        assert!(table.contains(h), "{h} missing:\n{table}");
    }
    let row = &table[table.find("data-pull=\"blocked\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains(">failed</td>"), "{row}");
    let errors = list_after(row, "<ul>");
    assert_eq!(errors.len(), 2, "{row}");
    assert!(
        errors[0].contains("manifest_unknown") && errors[0].contains("manifest unknown"),
        "{errors:?}"
    );
    assert!(errors[1].contains("blocked"), "{errors:?}");
    let fb = &table[table.find("data-pull=\"fallback\"").unwrap()..];
    let fb = &fb[..fb.find("</tr>").unwrap()];
    assert!(
        fb.contains(">pulled</td>") && fb.contains(">yes</span>"),
        "{fb}"
    );
    screenshot(&c.url, "status-failing");
}
