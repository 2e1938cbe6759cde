//! Has a registries configuration "landed" on a node? The pure evaluation behind the collector's
//! rollout views and `mirrorscope wait`.
//!
//! A node has landed when every check holds: its agent reports recently, the files load, the
//! effective configuration equals the desired one semantically (canonical hash, so encoder
//! differences between OCP releases do not count), registries.conf matches the node's current
//! MachineConfig (and, when the API is known, the MCD says it is done), and CRI-O has applied
//! the configuration since the files last changed. Each check says why it does not hold.

mod checks;
mod desired;
mod mcn;
mod summary;
mod types;

pub use checks::evaluate;
pub use desired::{Desired, DesiredState, Target};
pub use mcn::McnState;
pub use summary::{count, summarize, Laggard, Summary};
pub use types::{
    Check, CheckName, CheckState, McdState, McoNodeState, NodeInput, NodeRollout, Policy,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cimage_version::CImageVersion;
    use crate::machineconfig::FileMatch;
    use crate::openshift::{parse_str, render, ParseOptions, RenderOptions};
    use crate::registries::EffectiveConfig;
    use crate::registries::{parse_config_str, FileKind};
    use crate::report::*;

    const IDMS: &str = "apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata:\n  name: m\nspec:\n  imageDigestMirrors:\n  - source: quay.io/ns\n    mirrors: [mirror.example.com/ns]\n";

    fn sha_of(text: &str) -> String {
        let f = parse_config_str(text, "/x", FileKind::Main, CImageVersion::default()).unwrap();
        EffectiveConfig::from_main_file(f).canonical_sha256()
    }

    fn report(sha: Option<String>) -> NodeReport {
        NodeReport {
            version: NODE_REPORT_VERSION,
            node: "n1".into(),
            agent_version: "t".into(),
            agent_instance: "i".into(),
            seq: 1,
            generated_at: "2026-11-21T08:00:00Z".into(),
            registries: RegistriesState {
                files: vec![],
                valid: sha.is_some(),
                error: None,
                effective_digest: sha,
                effective_canonical: None,
                changed_at: Some("2026-11-21T08:00:00Z".into()),
            },
            machine_config: MachineConfigState {
                current_config: Some("rendered-worker-1".into()),
                registries_conf: Some(FileMatch::Matches),
                signature_files: Vec::new(),
                force_file: false,
                error: None,
            },
            crio: CrioState {
                last_applied_at: Some("2026-11-21T08:00:01.5Z".into()),
                ..Default::default()
            },
            journal: JournalState {
                following: true,
                ..Default::default()
            },
            pulls: vec![],
            pulls_dropped: 0,
            counters: PullCounters::default(),
        }
    }

    fn input(r: &NodeReport) -> NodeInput<'_> {
        NodeInput {
            node: &r.node,
            report: Some(r),
            report_age_secs: 1,
            mco: None,
        }
    }

    fn desired() -> Target {
        let set = parse_str(IDMS, "idms.yaml", &ParseOptions::default());
        Target::from_render(&render(&set.input, &RenderOptions::default()), "idms.yaml")
    }

    #[test]
    fn rendering_hash_ignores_encoding_and_lands() {
        let Target::Desired(d) = desired() else {
            panic!("expected a desired state")
        };
        // The same meaning written by hand: other quoting, key order, legacy digest-only flag.
        let by_hand = "unqualified-search-registries = [\"registry.access.redhat.com\", \"docker.io\"]\n[[registry]]\nlocation = 'quay.io/ns'\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = 'mirror.example.com/ns'\n";
        assert_eq!(sha_of(by_hand), d.sha256);
        let r = report(Some(sha_of(by_hand)));
        let n = evaluate(&input(&r), &desired(), &Policy::default());
        assert!(n.landed, "{:?}", n.reasons);
    }

    #[test]
    fn signature_policy_files_must_land_with_registries_conf() {
        use crate::report::PathMatch;
        let target = desired();
        let Target::Desired(d) = &target else {
            panic!()
        };
        let path = |p: &str, result: FileMatch| PathMatch {
            path: p.into(),
            result,
        };
        let mut r = report(Some(d.sha256.clone()));
        r.machine_config.signature_files = vec![
            path("/etc/containers/policy.json", FileMatch::Matches),
            path(
                "/etc/containers/registries.d/sigstore-registries.yaml",
                FileMatch::Matches,
            ),
        ];
        let n = evaluate(&input(&r), &target, &Policy::default());
        assert!(n.landed, "{:?}", n.reasons);
        r.machine_config.signature_files[1].result = FileMatch::Missing {
            expected_sha256: "sha256:aaaa".into(),
        };
        let n = evaluate(&input(&r), &target, &Policy::default());
        assert!(!n.landed);
        assert_eq!(
            n.reasons,
            ["machine_config: /etc/containers/registries.d/sigstore-registries.yaml is missing but MachineConfig rendered-worker-1 carries it"]
        );
        r.machine_config.signature_files[1].result = FileMatch::Differs {
            expected_sha256: "sha256:aaaa".into(),
            actual_sha256: "sha256:bbbb".into(),
        };
        let n = evaluate(&input(&r), &target, &Policy::default());
        assert!(!n.landed);
        assert!(
            n.reasons[0].contains("sigstore-registries.yaml does not match MachineConfig"),
            "{:?}",
            n.reasons
        );
        // One the agent could not read is left out of the list, and holds the node back.
        r.machine_config.signature_files.truncate(1);
        r.machine_config.error = Some(
            "open /etc/containers/registries.d/sigstore-registries.yaml: not a regular file (fifo); not read".into(),
        );
        let n = evaluate(&input(&r), &target, &Policy::default());
        assert!(!n.landed);
        assert!(
            n.reasons[0].contains("MachineConfig rendered-worker-1: open /etc/containers/registries.d/sigstore-registries.yaml: not a regular file"),
            "{:?}",
            n.reasons
        );
    }

    #[test]
    fn each_failure_has_its_reason() {
        let target = desired();
        let policy = Policy::default();
        let other = sha_of("unqualified-search-registries = ['docker.io']\n");
        let n = evaluate(&input(&report(Some(other))), &target, &policy);
        assert!(!n.landed);
        assert!(n.reasons[0].starts_with("desired: effective configuration"));

        let mut r = report(None);
        r.registries.error = Some("loading registries configuration \"/etc/containers/registries.conf\": toml: line 2: boom".into());
        let n = evaluate(&input(&r), &target, &policy);
        assert!(
            n.reasons
                .iter()
                .any(|x| x.contains("invalid registries configuration") && x.contains("line 2")),
            "{:?}",
            n.reasons
        );

        let Target::Desired(d) = &target else {
            panic!()
        };
        let mut r = report(Some(d.sha256.clone()));
        r.machine_config.registries_conf = Some(FileMatch::Differs {
            expected_sha256: "sha256:aaaa".into(),
            actual_sha256: "sha256:bbbb".into(),
        });
        let n = evaluate(&input(&r), &target, &policy);
        assert_eq!(n.reasons.len(), 1);
        assert!(n.reasons[0].contains("does not match MachineConfig rendered-worker-1"));

        let r = report(Some(d.sha256.clone()));
        let mut i = input(&r);
        i.report_age_secs = 500;
        let n = evaluate(&i, &target, &policy);
        assert!(n.stale && !n.landed);
        assert!(n.reasons[0].starts_with("reporting: stale"));

        let mut r = report(Some(d.sha256.clone()));
        r.crio.last_applied_at = Some("2026-11-21T07:59:59Z".into());
        let n = evaluate(&input(&r), &target, &policy);
        assert!(n.reasons[0].contains("has not applied"), "{:?}", n.reasons);
        r.crio.last_reload_failure_at = Some("2026-11-21T08:00:02Z".into());
        r.crio.last_reload_failure = Some("bad toml".into());
        let n = evaluate(&input(&r), &target, &policy);
        assert!(n.reasons[0].contains("failed to reload") && n.reasons[0].contains("bad toml"));
    }

    fn file(role: FileRole, mtime: &str) -> FileState {
        FileState {
            path: "/etc/containers/x".into(),
            role,
            exists: true,
            digest: None,
            size: None,
            mtime: Some(mtime.into()),
            error: None,
            contents: None,
        }
    }

    #[test]
    fn reload_is_judged_against_the_file_mtime_not_when_the_agent_noticed() {
        let Target::Desired(d) = desired() else {
            panic!()
        };
        let mut r = report(Some(d.sha256.clone()));
        // Written at :00.100, applied at :00.200, noticed by the agent only at :00.300.
        r.registries.files = vec![
            file(FileRole::Main, "2026-11-21T08:00:00.100Z"),
            file(FileRole::Policy, "2026-11-21T08:00:09Z"),
        ];
        r.registries.changed_at = Some("2026-11-21T08:00:00.300Z".into());
        r.crio.last_applied_at = Some("2026-11-21T08:00:00.200Z".into());
        let n = evaluate(&input(&r), &Target::Desired(d.clone()), &Policy::default());
        assert!(n.landed, "{:?}", n.reasons);
        // A drop-in written after the last apply is not applied yet.
        r.registries
            .files
            .push(file(FileRole::DropIn, "2026-11-21T08:00:05Z"));
        let n = evaluate(&input(&r), &Target::Desired(d), &Policy::default());
        assert!(
            n.reasons[0].contains("changed at 2026-11-21T08:00:05Z"),
            "{:?}",
            n.reasons
        );
    }

    #[test]
    fn refusal_is_reported() {
        let conflict = format!("{IDMS}---\napiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata:\n  name: n\nspec:\n  imageDigestMirrors:\n  - source: quay.io/ns\n    mirrors: [other.example.com/ns]\n    mirrorSourcePolicy: NeverContactSource\n");
        let set = parse_str(&conflict, "c.yaml", &ParseOptions::default());
        let target = Target::from_render(&render(&set.input, &RenderOptions::default()), "c.yaml");
        assert!(matches!(target, Target::Refused { .. }), "{target:?}");
        let n = evaluate(
            &input(&report(Some("sha256:x".into()))),
            &target,
            &Policy::default(),
        );
        assert!(n.reasons[0].contains("MCO will not render this; nodes keep the old config"));
        assert!(n.reasons[0].contains("conflicting mirrorSourcePolicy"));
    }

    #[test]
    fn mco_annotations_gate_landing() {
        let Target::Desired(d) = desired() else {
            panic!()
        };
        let r = report(Some(d.sha256.clone()));
        let mut mco = McoNodeState {
            current_config: Some("rendered-worker-1".into()),
            desired_config: Some("rendered-worker-2".into()),
            state: Some("Working".into()),
            reason: None,
            pool_target: Some("rendered-worker-2".into()),
            pool_target_digest: Some("sha256:0123456789abcdef".into()),
            pool_paused: false,
            pool_degraded: None,
            mcn: None,
        };
        let mut i = input(&r);
        i.mco = Some(&mco);
        let n = evaluate(&i, &Target::Desired(d.clone()), &Policy::default());
        assert!(n.reasons[0].contains("Working"), "{:?}", n.reasons);
        let other = report(Some("sha256:feed".into()));
        let mut j = input(&other);
        j.mco = Some(&mco);
        let n = evaluate(&j, &Target::Desired(d.clone()), &Policy::default());
        assert!(
            n.reasons[0]
                .contains("target MachineConfig rendered-worker-2 carries 0123456789ab instead"),
            "{:?}",
            n.reasons
        );
        // A paused pool: the node sits on its old MachineConfig and the reason says why.
        let mut paused = mco.clone();
        paused.state = Some("Done".into());
        paused.desired_config = paused.current_config.clone();
        paused.pool_paused = true;
        let mut k = input(&r);
        k.mco = Some(&paused);
        let n = evaluate(&k, &Target::Desired(d.clone()), &Policy::default());
        assert!(
            n.reasons[0].contains("node's desiredConfig is rendered-worker-1; the pool is paused"),
            "{:?}",
            n.reasons
        );
        mco.desired_config = mco.current_config.clone();
        mco.state = Some("Done".into());
        mco.pool_target = Some("rendered-worker-1".into());
        let mut i = input(&r);
        i.mco = Some(&mco);
        assert!(evaluate(&i, &Target::Desired(d), &Policy::default()).landed);
    }

    #[test]
    fn agreement_marks_the_minority() {
        let a = sha_of("unqualified-search-registries = ['docker.io']\n");
        let b = sha_of("unqualified-search-registries = ['quay.io']\n");
        let (r1, r2, mut r3) = (
            report(Some(a.clone())),
            report(Some(a.clone())),
            report(Some(b)),
        );
        r3.node = "n3".into();
        let mut nodes: Vec<NodeRollout> = [&r1, &r2, &r3]
            .iter()
            .map(|r| evaluate(&input(r), &Target::Agreement, &Policy::default()))
            .collect();
        let s = summarize(&mut nodes, &Target::Agreement);
        assert_eq!((s.total, s.landed, s.complete), (3, 2, false));
        assert_eq!(s.laggards[0].node, "n3");
        assert_eq!(s.majority_digest.as_deref(), Some(a.as_str()));
    }

    #[test]
    fn machine_config_node_decides_when_present() {
        let Target::Desired(d) = desired() else {
            panic!()
        };
        let r = report(Some(d.sha256.clone()));
        let target = Target::Desired(d);
        let mcn = |current: &str, updated: &str, degraded: Option<&str>| {
            let mut conditions = vec![serde_json::json!({"type": "Updated", "status": updated})];
            if let Some(m) = degraded {
                conditions.push(
                    serde_json::json!({"type": "NodeDegraded", "status": "True", "message": m}),
                );
            }
            McnState::from_object(&serde_json::json!({
                "kind": "MachineConfigNode", "metadata": {"name": "n1"},
                "spec": {"configVersion": {"desired": "rendered-worker-1"}},
                "status": {"configVersion": {"current": current}, "conditions": conditions}}))
        };
        // The annotations say Done, the MachineConfigNode is still on the old config: not landed.
        let mut mco = McoNodeState {
            current_config: Some("rendered-worker-1".into()),
            desired_config: Some("rendered-worker-1".into()),
            state: Some("Done".into()),
            mcn: mcn("rendered-worker-0", "False", None),
            ..Default::default()
        };
        let mut i = input(&r);
        i.mco = Some(&mco);
        let n = evaluate(&i, &target, &Policy::default());
        assert!(!n.landed);
        assert!(
            n.reasons[0].contains("MachineConfigNode update pending: current rendered-worker-0"),
            "{:?}",
            n.reasons
        );
        assert_eq!(n.degraded, None);
        mco.mcn = mcn("rendered-worker-1", "True", None);
        let mut i = input(&r);
        i.mco = Some(&mco);
        assert!(evaluate(&i, &target, &Policy::default()).landed);
        mco.mcn = mcn("rendered-worker-0", "False", Some("failed to drain: PDB"));
        let mut i = input(&r);
        i.mco = Some(&mco);
        let n = evaluate(&i, &target, &Policy::default());
        assert_eq!(
            n.degraded.as_deref(),
            Some("MachineConfigNode NodeDegraded: failed to drain: PDB")
        );
    }
}
