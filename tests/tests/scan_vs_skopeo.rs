//! End to end with real parts: real docker-registry instances on 127.0.0.1 as mirrors and
//! sources, real `skopeo --debug` pulls through a real registries.conf, and the containers/image
//! lines skopeo logged written into a real (standalone) journald the way the CRI-O and kubelet
//! units write them: stdout streams, `Pulling image` / `Pulled image` around the `Trying to
//! access` lines, the failure as the kubelet's `PullImage from image service failed` line.
//! `scan` must report exactly what skopeo did.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mirrorscope_e2e::journal::{crio_msg, klog_text, scan_jsonl, Journald, TimeFormat};
use mirrorscope_e2e::oci;
use mirrorscope_e2e::registry::{closed_port, Registry};
use mirrorscope_e2e::skopeo::{inspect_raw, Inspect, InspectResult, SkopeoHome};
use serde_json::Value;

fn now_usec() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// What one pull looked like to skopeo, and what the journal must make of it.
struct Pull {
    image: String,
    id: String,
    run: Inspect,
}

#[test]
fn scan_reports_exactly_what_skopeo_did() {
    let src = Registry::plain();
    let mir = Registry::plain();
    let auth = Registry::basic_auth("puller", "secret");
    let (s, m, a) = (src.host(), mir.host(), auth.host());
    let dead = format!("127.0.0.1:{}", closed_port());
    let d1 = oci::seed(&src, "library/tiny", "1", "tiny-1");
    assert_eq!(oci::seed(&mir, "library/tiny", "1", "tiny-1"), d1);
    oci::seed(&src, "library/tiny", "2", "tiny-2");
    oci::seed(&src, "private/app", "1", "app-1");
    oci::seed(&auth, "private/app", "1", "app-1");

    let home = SkopeoHome::new();
    let conf_text = format!(
        r#"
[[registry]]
location = "{s}/library"
insecure = true
[[registry.mirror]]
location = "{m}/library"
insecure = true

[[registry]]
location = "{s}/locked"
insecure = true
blocked = true
[[registry.mirror]]
location = "{m}/locked"
insecure = true
[[registry.mirror]]
location = "{dead}/locked"
insecure = true

[[registry]]
location = "{s}/private"
insecure = true
[[registry.mirror]]
location = "{a}/private"
insecure = true
"#
    );
    let conf = home.write("registries.conf", &conf_text);

    let images = [
        format!("{s}/library/tiny:1"),    // mirror hit
        format!("{s}/library/tiny:2"),    // mirror miss, the source serves
        format!("{s}/locked/app:7"),      // both mirrors fail, the source is blocked
        format!("{s}/private/app:1"),     // the mirror wants credentials, the source serves
        format!("{s}/library/tiny@{d1}"), // digest pull, mirror hit
    ];
    let pulls: Vec<Pull> = images
        .iter()
        .enumerate()
        .map(|(i, image)| Pull {
            image: image.clone(),
            id: format!("e2e00000-0000-4000-8000-{i:012}"),
            run: inspect_raw(&home, &conf, image),
        })
        .collect();
    // The oracle did what each case is about.
    assert_eq!(pulls[0].run.tries.len(), 1, "{}", pulls[0].run.stderr);
    assert_eq!(pulls[1].run.tries.len(), 2, "{}", pulls[1].run.stderr);
    assert!(
        matches!(pulls[2].run.result, InspectResult::Failed { .. }),
        "{}",
        pulls[2].run.stderr
    );
    assert_eq!(pulls[3].run.tries.len(), 2, "{}", pulls[3].run.stderr);

    // The node's journal, as CRI-O (1.32: one round, `initializing source` wrapper) and the
    // kubelet write it through their stdout streams.
    let j = Journald::start();
    let mut crio = j.stdout_stream("crio", "crio.service");
    let mut kubelet = j.stdout_stream("kubenswrapper", "kubelet.service");
    let tf = TimeFormat::Rfc3339Nano;
    let mut lines = 0;
    for p in &pulls {
        let mut say = |msg: &str, id: Option<&str>| {
            writeln!(crio, "{}", crio_msg(now_usec(), tf, msg, id)).unwrap();
            lines += 1;
        };
        say(&format!("Pulling image: {}", p.image), Some(&p.id));
        for t in &p.run.tries {
            say(&format!("Trying to access \"{t}\""), None);
        }
        match &p.run.result {
            InspectResult::Ok { digest } => {
                let name = p.image.split('@').next().unwrap();
                let name = match name.rfind(':') {
                    Some(i) if !name[i..].contains('/') => &name[..i],
                    _ => name,
                };
                say(&format!("Pulled image: {name}@{digest}"), Some(&p.id));
            }
            InspectResult::Failed { error, .. } => {
                crio.flush().unwrap();
                // journald orders by arrival; let the CRI-O lines land first.
                std::thread::sleep(Duration::from_millis(200));
                let err = format!(
                    "rpc error: code = Unknown desc = initializing source docker://{}: {error}",
                    p.image
                );
                let text = klog_text(
                    now_usec(),
                    'E',
                    "log.go:32",
                    "PullImage from image service failed",
                    &[("err", &err), ("image", &p.image)],
                );
                lines += text.split('\n').count();
                writeln!(kubelet, "{text}").unwrap();
                kubelet.flush().unwrap();
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    crio.flush().unwrap();
    kubelet.flush().unwrap();

    // Wait until journald has stored every line.
    let dir = j.dir().to_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = scan_jsonl(&["--journal-dir", &dir, "--entries"]).len();
        if n >= lines {
            assert_eq!(n, lines);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "journald stored {n} of {lines} lines"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut args = vec![
        "--journal-dir".to_owned(),
        dir,
        "--registries-conf".to_owned(),
    ];
    args.push(conf.display().to_string());
    for d in home.dropin_dirs() {
        args.push("--registries-conf-d".into());
        args.push(d.display().to_string());
    }
    args.extend(["--containers-image-version".into(), "5.23".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let records = scan_jsonl(&args);
    assert_eq!(records.len(), pulls.len(), "{records:#?}");

    for (p, r) in pulls.iter().zip(&records) {
        let ctx = format!(
            "{}\n--- record ---\n{r:#}\n--- skopeo ---\n{}",
            p.image, p.run.stderr
        );
        assert_eq!(r["pull_id"], p.id, "{ctx}");
        assert_eq!(r["image"], p.image, "{ctx}");
        // Each location once, in the order skopeo tried them.
        let refs: Vec<&str> = r["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["reference"].as_str().unwrap())
            .collect();
        assert_eq!(refs, p.run.tries, "{ctx}");
        let source_ref = p.image.as_str();
        for a in r["attempts"].as_array().unwrap() {
            assert_eq!(a["mirror"], a["reference"] != source_ref, "{ctx}");
            assert_eq!(a["tries"], 1, "{ctx}");
        }
        match &p.run.result {
            InspectResult::Ok { digest } => {
                let last = p.run.tries.last().unwrap();
                assert_eq!(r["outcome"], "pulled", "{ctx}");
                assert_eq!(r["served_by"], last.as_str(), "{ctx}");
                assert_eq!(r["digest"], digest.as_str(), "{ctx}");
                assert_eq!(r["via_mirror"], last != source_ref, "{ctx}");
                assert_eq!(
                    r["fallback"],
                    last == source_ref && p.run.tries.len() > 1,
                    "{ctx}"
                );
                for a in r["attempts"].as_array().unwrap() {
                    let served = a["reference"] == last.as_str();
                    assert_eq!(
                        a["outcome"],
                        if served { "served" } else { "failed" },
                        "{ctx}"
                    );
                    // CRI-O logs why a location failed only at debug level.
                    assert_eq!(a["error_class"], Value::Null, "{ctx}");
                }
            }
            InspectResult::Failed { .. } => {
                assert_eq!(r["outcome"], "failed", "{ctx}");
                assert_eq!(r["served_by"], Value::Null, "{ctx}");
                assert_eq!(r["digest"], Value::Null, "{ctx}");
                for a in r["attempts"].as_array().unwrap() {
                    let reference = a["reference"].as_str().unwrap();
                    assert_eq!(a["outcome"], "failed", "{ctx}");
                    // Exactly skopeo's own per-location error (its debug `Accessing … failed`).
                    assert_eq!(
                        a["error"].as_str(),
                        p.run.failure_of(reference),
                        "{reference}\n{ctx}"
                    );
                }
            }
        }
    }
    // The failure's classes, location by location.
    let classes: Vec<&str> = records[2]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["error_class"].as_str().unwrap_or("null"))
        .collect();
    assert_eq!(
        classes,
        ["manifest_unknown", "connection_refused", "blocked"]
    );
    assert_eq!(records[3]["fallback"], true);
    assert_eq!(records[0]["via_mirror"], true);
}
