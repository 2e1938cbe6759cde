//! The correlator with the real registries.conf engine as its source resolver.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod journal_support;

use journal_support::{load, parse};
use mirrorscope_core::cimage_version::CImageVersion;
use mirrorscope_core::journal::{
    AttemptOutcome, Correlator, CorrelatorConfig, ErrorClass, Notice, PullOutcome, SourceResolver,
};
use mirrorscope_core::registries::{parse_config_str, EffectiveConfig, FileKind};

fn config(text: &str) -> EffectiveConfig {
    let file = parse_config_str(
        text,
        "/etc/containers/registries.conf",
        FileKind::Main,
        CImageVersion::default(),
    )
    .unwrap();
    EffectiveConfig::from_main_file(file)
}

const BLOCKED_WITH_MIRRORS: &str = r#"
[[registry]]
prefix = "quay.io/acme"
location = "quay.io/acme"
blocked = true

[[registry.mirror]]
location = "mirror-a.example.net/acme"

[[registry.mirror]]
location = "127.0.0.1:5999/acme"
insecure = true
"#;

#[test]
fn blocked_source_scenario_with_the_engine() {
    let f = load("blocked_source_failing_mirrors_v134.txt");
    let mut c = Correlator::new(
        Box::new(config(BLOCKED_WITH_MIRRORS)),
        CorrelatorConfig::default(),
    );
    let mut out = Vec::new();
    for e in &f.entries {
        c.push(e, &mut out);
    }
    out.extend(c.finish());
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!(r.outcome, PullOutcome::Failed);
    let got: Vec<_> = r
        .attempts
        .iter()
        .map(|a| (a.reference.as_str(), a.mirror, a.error_class, a.tries))
        .collect();
    assert_eq!(
        got,
        [
            (
                "mirror-a.example.net/acme/ledger:7",
                true,
                Some(ErrorClass::ManifestUnknown),
                2
            ),
            (
                "127.0.0.1:5999/acme/ledger:7",
                true,
                Some(ErrorClass::ConnectionRefused),
                2
            ),
            ("quay.io/acme/ledger:7", false, Some(ErrorClass::Blocked), 2),
        ]
    );
}

const DIGEST_ONLY: &str = r#"
[[registry]]
prefix = "quay.io/openshift"
location = "quay.io/openshift"
mirror-by-digest-only = true

[[registry.mirror]]
location = "mirror.corp.example.com:8443/openshift"
"#;

#[test]
fn digest_only_mirrors_are_not_expected_for_a_tag_pull() {
    let cfg = config(DIGEST_ONLY);
    assert_eq!(
        SourceResolver::pull_sources(&cfg, "quay.io/openshift/tools:v4.16"),
        Some(vec!["quay.io/openshift/tools:v4.16".to_owned()])
    );
    let f = load("digest_only_tag_pull_v129.txt");
    let mut c = Correlator::new(Box::new(cfg), CorrelatorConfig::default());
    let mut out = Vec::new();
    for e in &f.entries {
        c.push(e, &mut out);
    }
    out.extend(c.finish());
    assert_eq!(out.len(), 2);
    assert!(!out[0].via_mirror);
    assert_eq!(out[0].attempts[0].outcome, AttemptOutcome::Served);
    assert!(out[1].via_mirror && !out[1].fallback);
}

#[test]
fn docker_hub_short_name_and_resolver_swap_on_reload() {
    // The kubelet sends `nginx:1.25.3`; containers/image logs the normalised locations.
    let before = config(
        r#"
[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "mirror.corp.example.com/hub"
"#,
    );
    let after = config(
        r#"
[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "mirror-2.corp.example.com/hub"
"#,
    );
    let f = parse(
        r#"
@node w
08:00:00.000001 crio[1]: time="2026-11-21T08:00:00.000001Z" level=info msg="Pulling image: nginx:1.25.3" id=11111111-0000-4000-8000-000000000001 name=/runtime.v1.ImageService/PullImage
08:00:00.000002 crio[1]: time="2026-11-21T08:00:00.000002Z" level=info msg="Trying to access \"mirror.corp.example.com/hub/library/nginx:1.25.3\""
08:00:01.000000 crio[1]: time="2026-11-21T08:00:01Z" level=info msg="Pulled image: docker.io/library/nginx@sha256:7777777777777777777777777777777777777777777777777777777777777777" id=11111111-0000-4000-8000-000000000001 name=/runtime.v1.ImageService/PullImage
08:10:00.000000 crio[1]: time="2026-11-21T08:10:00Z" level=info msg="Applied new registry configuration: &{...}"
08:11:00.000001 crio[1]: time="2026-11-21T08:11:00.000001Z" level=info msg="Pulling image: nginx:1.25.3" id=11111111-0000-4000-8000-000000000002 name=/runtime.v1.ImageService/PullImage
08:11:00.000002 crio[1]: time="2026-11-21T08:11:00.000002Z" level=info msg="Trying to access \"mirror-2.corp.example.com/hub/library/nginx:1.25.3\""
08:11:00.000003 crio[1]: time="2026-11-21T08:11:00.000003Z" level=info msg="Trying to access \"docker.io/library/nginx:1.25.3\""
08:11:01.000000 crio[1]: time="2026-11-21T08:11:01Z" level=info msg="Pulled image: docker.io/library/nginx@sha256:7777777777777777777777777777777777777777777777777777777777777777" id=11111111-0000-4000-8000-000000000002 name=/runtime.v1.ImageService/PullImage
"#,
    );
    let mut c = Correlator::new(Box::new(before), CorrelatorConfig::default());
    let mut after = Some(after);
    let mut out = Vec::new();
    for e in &f.entries {
        if let Some(Notice::RegistriesApplied { .. }) = c.push(e, &mut out) {
            if let Some(a) = after.take() {
                c.set_resolver(Box::new(a));
            }
        }
    }
    out.extend(c.finish());
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0].served_by.as_deref(),
        Some("mirror.corp.example.com/hub/library/nginx:1.25.3")
    );
    assert!(out[0].via_mirror);
    assert_eq!(out[1].attempts.len(), 2);
    assert!(out[1].attempts[0].mirror);
    assert_eq!(
        out[1].served_by.as_deref(),
        Some("docker.io/library/nginx:1.25.3")
    );
    assert!(out[1].fallback);
}
