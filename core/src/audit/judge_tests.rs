use super::model::{FindingCode as C, Probe, ProbeStatus as S, Verdict as V};
use super::{judge, plan, AuditEntry};
use crate::registries::{parse_config_str, EffectiveConfig, FileKind};

fn config(text: &str) -> EffectiveConfig {
    let f = parse_config_str(
        text,
        "/etc/containers/registries.conf",
        FileKind::Main,
        Default::default(),
    )
    .unwrap();
    EffectiveConfig::from_main_file(f)
}

fn codes(e: &AuditEntry) -> Vec<C> {
    e.findings.iter().map(|f| f.code).collect()
}

/// Plans `image` and gives each source the next status in `statuses` (blocked ones get none), as
/// the prober does: sources after the first present one are not tried.
fn probed(cfg: &EffectiveConfig, image: &str, statuses: &[Probe]) -> AuditEntry {
    let mut p = plan(cfg, image);
    let mut it = statuses.iter();
    let mut served = false;
    for s in &mut p.sources {
        if s.blocked {
            continue;
        }
        if served {
            s.probe = Some(Probe::not_tried());
            continue;
        }
        let probe = it.next().cloned().unwrap_or_else(Probe::not_tried);
        served = probe.status == S::Present;
        s.probe = Some(probe);
    }
    judge(p, vec!["shop/Deployment/web".into()])
}

fn st(s: S) -> Probe {
    Probe::with_status(s, None)
}

const MIRRORED: &str = r#"
[[registry]]
prefix = "docker.io/library/nginx"
location = "docker.io/library/nginx"
blocked = true
[[registry.mirror]]
location = "mirror.example.com/library/nginx"
pull-from-mirror = "all"
"#;

#[test]
fn without_probes_the_configuration_alone_decides_what_it_can() {
    let cfg = config(MIRRORED);
    let e = judge(plan(&cfg, "nginx:1.25.3"), vec![]);
    assert_eq!(
        e.reference.as_deref(),
        Some("docker.io/library/nginx:1.25.3")
    );
    assert_eq!(e.verdict, V::Unknown);
    assert!(e.findings.is_empty());
    assert_eq!(e.sources.len(), 2);
    assert!(e.sources[1].blocked && !e.sources[0].blocked);

    let e = judge(plan(&cfg, "quay.io/ns/app:1"), vec![]);
    assert_eq!(e.verdict, V::Source);
    assert_eq!(codes(&e), [C::NoMirrorRule]);
    assert!(e.findings[0]
        .fix
        .contains("ImageDigestMirrorSet entry {source: quay.io/ns/app"));

    let e = judge(plan(&cfg, "Nginx:1"), vec![]);
    assert_eq!(e.verdict, V::Fail);
    assert_eq!(codes(&e), [C::InvalidReference]);
}

#[test]
fn a_blocked_source_without_a_mirror_fails() {
    let cfg =
        config("[[registry]]\nprefix = \"quay.io\"\nlocation = \"quay.io\"\nblocked = true\n");
    let e = judge(plan(&cfg, "quay.io/ns/app:1"), vec![]);
    assert_eq!(e.verdict, V::Fail);
    assert!(codes(&e).contains(&C::BlockedSource));
}

#[test]
fn a_tag_pull_with_digest_only_mirrors_goes_to_the_source() {
    let cfg = config(
        "[[registry]]\nprefix = \"quay.io/ns\"\nlocation = \"quay.io/ns\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.example/ns\"\n",
    );
    let e = judge(plan(&cfg, "quay.io/ns/app:1"), vec![]);
    assert_eq!(e.verdict, V::Source);
    assert_eq!(codes(&e), [C::DigestOnlyMirrorsForTag]);
    assert!(e.findings[0].fix.contains("ImageTagMirrorSet"));
    let e = judge(
        plan(&cfg, &format!("quay.io/ns/app@sha256:{}", "a".repeat(64))),
        vec![],
    );
    assert_eq!(e.verdict, V::Unknown);
    assert!(e.findings.is_empty());

    // The same with each mirror digest-only (what an IDMS renders), and with a tag-only one
    // beside it: only the former leaves a tag pull without a mirror.
    let per_mirror = "[[registry]]\nprefix = \"quay.io/ns\"\nlocation = \"quay.io/ns\"\n[[registry.mirror]]\nlocation = \"m.example/ns\"\npull-from-mirror = \"digest-only\"\n";
    let e = judge(plan(&config(per_mirror), "quay.io/ns/app:1"), vec![]);
    assert_eq!(codes(&e), [C::DigestOnlyMirrorsForTag]);
    let with_tag_mirror = format!("{per_mirror}[[registry.mirror]]\nlocation = \"t.example/ns\"\npull-from-mirror = \"tag-only\"\n");
    let e = judge(plan(&config(&with_tag_mirror), "quay.io/ns/app:1"), vec![]);
    assert!(e.findings.is_empty(), "{:?}", e.findings);
}

#[test]
fn another_mirrored_prefix_of_the_same_host_is_a_vendor_gap_with_a_suggested_mirror() {
    let cfg = config(
        "[[registry]]\nprefix = \"runai.jfrog.io/op-main\"\nlocation = \"runai.jfrog.io/op-main\"\n[[registry.mirror]]\nlocation = \"mirror.example.com/runai/op-main\"\n",
    );
    let e = judge(
        plan(&cfg, "runai.jfrog.io/op-containers/scheduler:2.19"),
        vec![],
    );
    assert_eq!(e.verdict, V::Source);
    assert_eq!(codes(&e), [C::VendorPrefixGap]);
    assert!(e.findings[0].message.contains("runai.jfrog.io/op-main"));
    assert!(e.findings[0]
        .fix
        .contains("mirrors: [mirror.example.com/runai/op-containers/scheduler]"));
    assert!(e.findings[0]
        .fix
        .contains("docker://mirror.example.com/runai/op-containers/scheduler:2.19"));
}

#[test]
fn registry_1_docker_io_rules_never_match_docker_io_references() {
    let cfg = config(
        "[[registry]]\nprefix = \"registry-1.docker.io/library/nginx\"\nlocation = \"registry-1.docker.io/library/nginx\"\n[[registry.mirror]]\nlocation = \"m.example/library/nginx\"\n",
    );
    let e = judge(plan(&cfg, "nginx:1"), vec![]);
    assert_eq!(e.verdict, V::Source);
    assert_eq!(codes(&e), [C::Registry1DockerIoAlias, C::NoMirrorRule]);
    let cfg = config(MIRRORED);
    let e = judge(plan(&cfg, "registry-1.docker.io/library/nginx:1"), vec![]);
    assert_eq!(codes(&e), [C::Registry1DockerIoAlias, C::NoMirrorRule]);
    let cfg = config("[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \"m.example\"\n");
    let e = judge(plan(&cfg, "registry-1.docker.io/library/nginx:1"), vec![]);
    assert_eq!(codes(&e), [C::Registry1DockerIoAlias, C::NoMirrorRule]);
}

#[test]
fn a_present_mirror_serves_and_later_sources_are_not_tried() {
    let cfg = config(MIRRORED);
    let mut present = st(S::Present);
    present.digest = Some("sha256:x".into());
    let e = probed(&cfg, "nginx:1.25.3", &[present]);
    assert_eq!(e.verdict, V::Mirror);
    assert_eq!(
        e.served_by.as_deref(),
        Some("mirror.example.com/library/nginx:1.25.3")
    );
    assert!(
        e.sources[1].probe.is_none(),
        "a blocked source is never contacted"
    );
    assert!(e.findings.is_empty());
}

#[test]
fn misses_at_every_mirror_with_a_blocked_source_fail_with_the_reason() {
    let cfg = config(MIRRORED);
    let e = probed(&cfg, "nginx:1.26", &[st(S::ManifestUnknown)]);
    assert_eq!(e.verdict, V::Fail);
    assert_eq!(codes(&e), [C::StaleTag]);
    assert!(e.findings[0].fix.contains("skopeo copy --all docker://docker.io/library/nginx:1.26 docker://mirror.example.com/library/nginx:1.26"));
    let digest = format!("nginx@sha256:{}", "b".repeat(64));
    let e = probed(&cfg, &digest, &[st(S::ManifestUnknown)]);
    assert_eq!(codes(&e), [C::MissingDigest]);
    let e = probed(&cfg, "nginx:1.26", &[st(S::NameUnknown)]);
    assert_eq!(codes(&e), [C::MissingRepository]);
    let mut lib = st(S::NameUnknown);
    lib.present_without_library = Some("mirror.example.com/nginx:1.26".into());
    let e = probed(&cfg, "nginx:1.26", &[lib]);
    assert_eq!(e.verdict, V::Fail);
    assert_eq!(codes(&e), [C::LibraryPath]);
}

#[test]
fn an_allowed_source_behind_missing_mirrors_is_a_fallback() {
    let cfg = config(&MIRRORED.replace("blocked = true", ""));
    let e = probed(
        &cfg,
        "nginx:1.26",
        &[st(S::ManifestUnknown), st(S::Present)],
    );
    assert_eq!(e.verdict, V::Source);
    assert_eq!(e.served_by.as_deref(), Some("docker.io/library/nginx:1.26"));
    assert_eq!(codes(&e), [C::StaleTag, C::FallbackToSource]);
}

#[test]
fn an_unreachable_mirror_before_a_working_one_still_serves_but_is_reported() {
    let cfg = config(
        "[[registry]]\nprefix = \"quay.io/ns\"\nlocation = \"quay.io/ns\"\nblocked = true\n[[registry.mirror]]\nlocation = \"dead.example/ns\"\n[[registry.mirror]]\nlocation = \"live.example/ns\"\n",
    );
    let e = probed(
        &cfg,
        "quay.io/ns/app:1",
        &[st(S::Unreachable), st(S::Present)],
    );
    assert_eq!(e.verdict, V::Mirror);
    assert_eq!(e.served_by.as_deref(), Some("live.example/ns/app:1"));
    assert_eq!(codes(&e), [C::MirrorUnreachable]);
    let e = probed(
        &cfg,
        "quay.io/ns/app:1",
        &[st(S::Unreachable), st(S::ManifestUnknown)],
    );
    assert_eq!(e.verdict, V::Unknown, "an unreachable mirror might have it");
    let e = probed(
        &cfg,
        "quay.io/ns/app:1",
        &[st(S::NameUnknown), st(S::ManifestUnknown)],
    );
    assert_eq!(e.verdict, V::Fail);
}

#[test]
fn a_list_without_a_wanted_architecture_fails_at_the_first_serving_source() {
    let cfg = config(MIRRORED);
    let mut p = st(S::Present);
    p.architectures = vec!["amd64".into()];
    p.missing_architectures = vec!["arm64".into()];
    let e = probed(&cfg, "nginx:1", &[p]);
    assert_eq!(e.verdict, V::Fail);
    assert_eq!(codes(&e), [C::MissingArchitecture]);
    assert!(e.findings[0].message.contains("not arm64"));
}

#[test]
fn verdict_thresholds_and_summary() {
    assert!(V::Fail.at_or_past(V::Fail));
    assert!(!V::Source.at_or_past(V::Fail));
    assert!(V::Source.at_or_past(V::Source));
    assert!(!V::Unknown.at_or_past(V::Source));
    let cfg = config(MIRRORED);
    let entries = vec![
        judge(plan(&cfg, "nginx:1"), vec![]),
        judge(plan(&cfg, "quay.io/a/b:1"), vec![]),
    ];
    assert_eq!(
        super::Summary::of(&entries).to_string(),
        "2 images: 0 mirror, 1 source, 0 fail, 1 unknown"
    );
    let json = serde_json::to_value(&entries[1]).unwrap();
    assert_eq!(json["verdict"], "source");
    assert_eq!(json["findings"][0]["code"], "no-mirror-rule");
    assert_eq!(json["sources"][0]["probe"], serde_json::Value::Null);
}

#[test]
fn an_unmirrored_image_stays_source_when_the_source_cannot_be_asked() {
    let cfg = config(MIRRORED);
    let e = probed(&cfg, "quay.io/ns/app:1", &[st(S::Unreachable)]);
    assert_eq!(e.verdict, V::Source);
    assert_eq!(codes(&e), [C::NoMirrorRule]);
    let e = probed(&cfg, "quay.io/ns/app:1", &[st(S::ManifestUnknown)]);
    assert_eq!(e.verdict, V::Fail);
}
