//! The collector's status page in a real headless Chromium: nodes are rendered, and strings that
//! come from the journal stay text even when they look like markup.

use std::process::Command;

use mirrorscope_e2e::collector::*;

const CHROMIUM: &str = "/usr/bin/chromium";

fn dump_dom(url: &str) -> String {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (tests/deps.txt)"
    );
    let profile = TempDir::new("chromium");
    let out = Command::new(CHROMIUM)
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
        .args(["--dump-dom", url])
        .output()
        .unwrap();
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
