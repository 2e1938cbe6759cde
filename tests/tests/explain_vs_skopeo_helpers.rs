//! Checks the shared real-part helpers (registry, OCI layout, skopeo oracle) and the oracle's
//! behaviour on the reference cases of containers/image's `pkg/sysregistriesv2` tests, with skopeo alone.

use mirrorscope_e2e::oci;
use mirrorscope_e2e::registry::{closed_port, Registry};
use mirrorscope_e2e::skopeo::{inspect_raw, InspectResult, SkopeoHome};

fn conf_r(src: &str, mirror: &str, extra: &str) -> String {
    format!(
        "[[registry]]\nlocation = \"{src}\"\ninsecure = true\n{extra}\n\
         [[registry.mirror]]\nlocation = \"{mirror}\"\ninsecure = true\n"
    )
}

#[test]
fn seeded_digests_are_read_back_and_content_addressed() {
    let a = Registry::plain();
    let b = Registry::plain();
    let d1a = oci::seed(&a, "library/tiny", "1", "tiny-1");
    let d1b = oci::seed(&b, "library/tiny", "1", "tiny-1");
    let d2a = oci::seed(&a, "library/tiny", "2", "tiny-2");
    assert!(d1a.starts_with("sha256:") && d1a.len() == 71, "{d1a}");
    assert_eq!(
        d1a, d1b,
        "same content must give the same digest in two registries"
    );
    assert_ne!(d1a, d2a, "different content must give different digests");
    // A digest reference resolves to the same manifest.
    assert_eq!(
        oci::manifest_digest(&a, &format!("library/tiny@{d1a}")),
        d1a
    );
}

#[test]
fn mirror_hit_miss_blocked_and_digest_only_match_the_spec() {
    let src = Registry::plain();
    let mir = Registry::plain();
    let d1 = oci::seed(&src, "library/tiny", "1", "tiny-1");
    let d2 = oci::seed(&src, "library/tiny", "2", "tiny-2");
    assert_eq!(oci::seed(&mir, "library/tiny", "1", "tiny-1"), d1);
    let (s, m) = (src.host(), mir.host());
    let home = SkopeoHome::new();

    // A1: mirror hit, one attempt.
    let conf = home.write("a.conf", &conf_r(&s, &m, ""));
    let run = inspect_raw(&home, &conf, &format!("{s}/library/tiny:1"));
    assert_eq!(
        run.tries,
        vec![format!("{m}/library/tiny:1")],
        "{}",
        run.stderr
    );
    assert_eq!(run.result, InspectResult::Ok { digest: d1.clone() });

    // A2: mirror miss, then the source.
    let run = inspect_raw(&home, &conf, &format!("{s}/library/tiny:2"));
    assert_eq!(
        run.tries,
        vec![format!("{m}/library/tiny:2"), format!("{s}/library/tiny:2")]
    );
    assert_eq!(
        run.failure_of(&format!("{m}/library/tiny:2")),
        Some(
            format!("reading manifest 2 in {m}/library/tiny: manifest unknown: manifest unknown")
                .as_str()
        )
    );
    assert_eq!(run.result, InspectResult::Ok { digest: d2 });

    // B1: blocked source, missing mirror: aggregated error naming main file and user drop-in dir.
    let conf = home.write("b.conf", &conf_r(&s, &m, "blocked = true"));
    let run = inspect_raw(&home, &conf, &format!("{s}/library/tiny:2"));
    let blocked = format!(
        "registry {s} is blocked in {} or {}",
        conf.display(),
        home.user_dropin_dir().display()
    );
    assert_eq!(
        run.failure_of(&format!("{s}/library/tiny:2")),
        Some(blocked.as_str())
    );
    let want = format!(
        "(Mirrors also failed: [{m}/library/tiny:2: reading manifest 2 in {m}/library/tiny: manifest unknown: manifest unknown]): {s}/library/tiny:2: {blocked}"
    );
    assert!(
        matches!(&run.result, InspectResult::Failed { error, .. } if *error == want),
        "{:?}",
        run.result
    );

    // C1/C3: digest-only mirrors are skipped for tags; a lone blocked attempt is not aggregated.
    let conf = home.write(
        "c.conf",
        &conf_r(&s, &m, "mirror-by-digest-only = true\nblocked = true"),
    );
    let run = inspect_raw(&home, &conf, &format!("{s}/library/tiny:1"));
    assert_eq!(run.tries, vec![format!("{s}/library/tiny:1")]);
    let blocked = format!(
        "registry {s} is blocked in {} or {}",
        conf.display(),
        home.user_dropin_dir().display()
    );
    assert!(
        matches!(&run.result, InspectResult::Failed { error, .. } if *error == blocked),
        "{:?}",
        run.result
    );
    // C4: the digest reference uses the mirror.
    let run = inspect_raw(&home, &conf, &format!("{s}/library/tiny@{d1}"));
    assert_eq!(run.tries, vec![format!("{m}/library/tiny@{d1}")]);
    assert_eq!(run.result, InspectResult::Ok { digest: d1 });
}

#[test]
fn auth_tls_and_closed_port_errors() {
    let src = Registry::plain();
    let auth = Registry::basic_auth("u", "pw");
    let tls = Registry::tls();
    let d1 = oci::seed(&src, "library/tiny", "1", "tiny-1");
    assert_eq!(oci::seed(&auth, "library/tiny", "1", "tiny-1"), d1);
    assert_eq!(oci::seed(&tls, "library/tiny", "1", "tiny-1"), d1);
    let s = src.host();
    let closed = format!("127.0.0.1:{}", closed_port());
    let home = SkopeoHome::new();
    let conf = home.write(
        "e.conf",
        &format!(
            "[[registry]]\nlocation = \"{s}\"\ninsecure = true\n\
             [[registry.mirror]]\nlocation = \"{closed}\"\ninsecure = true\n\
             [[registry.mirror]]\nlocation = \"{a}\"\ninsecure = true\n\
             [[registry.mirror]]\nlocation = \"{t}\"\n",
            a = auth.host(),
            t = tls.host()
        ),
    );
    let run = inspect_raw(&home, &conf, &format!("{s}/library/tiny:1"));
    let refs: Vec<String> = [&closed, &auth.host(), &tls.host(), &s]
        .iter()
        .map(|h| format!("{h}/library/tiny:1"))
        .collect();
    assert_eq!(run.tries, refs, "{}", run.stderr);
    let port = closed.trim_start_matches("127.0.0.1:");
    assert_eq!(
        run.failure_of(&refs[0]).unwrap(),
        format!("pinging container registry {closed}: Get \"http://{closed}/v2/\": dial tcp 127.0.0.1:{port}: connect: connection refused")
    );
    assert_eq!(
        run.failure_of(&refs[1]).unwrap(),
        format!(
            "reading manifest 1 in {}/library/tiny: unauthorized: authentication required",
            auth.host()
        )
    );
    assert!(run
        .failure_of(&refs[2])
        .unwrap()
        .contains("x509: certificate signed by unknown authority"));
    assert_eq!(run.result, InspectResult::Ok { digest: d1.clone() });

    // The same TLS mirror marked insecure serves the image.
    let conf = home.write(
        "e4.conf",
        &format!("[[registry]]\nlocation = \"{s}\"\n[[registry.mirror]]\nlocation = \"{}\"\ninsecure = true\n", tls.host()),
    );
    let run = inspect_raw(&home, &conf, &format!("{s}/library/tiny:1"));
    assert_eq!(run.tries, vec![format!("{}/library/tiny:1", tls.host())]);
    assert_eq!(run.result, InspectResult::Ok { digest: d1 });
}
