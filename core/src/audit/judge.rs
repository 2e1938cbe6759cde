//! From a configuration (and, with `--probe`, what each registry answered) to a verdict and
//! findings an admin can act on. Pure: the prober in the CLI fills in [`Probe`]s.

use crate::explain::{explain, Explanation};
use crate::reference::ImageReference;
use crate::registries::{EffectiveConfig, Registry};

use super::model::{AuditEntry, Finding, FindingCode, Probe, ProbeStatus, SourceAudit, Verdict};

/// What the configuration alone says about an image: the ordered sources, not yet probed.
#[derive(Debug, Clone)]
pub struct Planned {
    pub image: String,
    pub reference: Option<String>,
    pub is_digest: bool,
    pub sources: Vec<SourceAudit>,
    /// Findings the configuration alone gives (no mirror rule, digest-only mirrors, …).
    pub findings: Vec<Finding>,
    pub error: Option<String>,
}

/// Plans the audit of one image: the sources containers/image will try (as `explain` lists them),
/// and what is wrong with the configuration for it.
pub fn plan(config: &EffectiveConfig, image: &str) -> Planned {
    let e = explain(config, image);
    let is_digest = e.reference.as_deref().is_some_and(|r| r.contains('@'));
    let sources = e
        .sources
        .iter()
        .map(|s| SourceAudit {
            reference: s.reference.clone(),
            mirror: s.mirror,
            blocked: s.blocked,
            insecure: s.insecure,
            probe: None,
        })
        .collect();
    let findings = config_findings(config, &e, is_digest);
    Planned {
        image: image.to_string(),
        reference: e.reference.clone(),
        is_digest,
        sources,
        findings,
        error: e.error.clone(),
    }
}

fn config_findings(config: &EffectiveConfig, e: &Explanation, is_digest: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(reference) = &e.reference else {
        if let Some(err) = &e.error {
            out.push(Finding {
                code: FindingCode::InvalidReference,
                message: format!("the reference does not parse: {err}"),
                fix: "correct the image reference in the workload".into(),
            });
        }
        return out;
    };
    if let Some(err) = &e.error {
        out.push(Finding {
            code: FindingCode::InvalidReference,
            message: format!("containers/image fails before any attempt: {err}"),
            fix: "correct the registries.conf entry the reference matches".into(),
        });
        return out;
    }
    let Ok(parsed) = ImageReference::parse_docker(reference) else {
        return out;
    };
    let name = parsed.name();
    let host = parsed.domain();
    let any_mirror = e.sources.iter().any(|s| s.mirror);
    if !e.sources.is_empty() && e.sources.iter().all(|s| s.blocked) {
        out.push(Finding {
            code: FindingCode::BlockedSource,
            message: format!(
                "every location is blocked: {} will not pull anywhere",
                e.sources.iter().map(|s| s.reference.as_str()).collect::<Vec<_>>().join(", ")
            ),
            fix: format!(
                "add a mirror for {name} (an ImageDigestMirrorSet, and an ImageTagMirrorSet for tag pulls), or unblock the source"
            ),
        });
    }
    if any_mirror {
        return out;
    }
    let registry = config.find_registry(name);
    if let Some(reg) = registry.filter(|r| !r.mirrors.is_empty()) {
        // The entry has mirrors but the sources hold none: for a tag pull, resolution skipped
        // every one of them as digest-only.
        if !is_digest {
            out.push(Finding {
                code: FindingCode::DigestOnlyMirrorsForTag,
                message: format!(
                    "a tag pull, but every mirror of {} is digest-only (an ImageDigestMirrorSet without an ImageTagMirrorSet): the node pulls from {}",
                    reg.prefix,
                    e.sources.last().map_or(name, |s| s.reference.as_str())
                ),
                fix: format!(
                    "add an ImageTagMirrorSet: spec.imageTagMirrors: [{{source: {}, mirrors: [{}]}}], or pull by digest",
                    reg.prefix,
                    reg.mirrors.iter().map(|m| m.location.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
            return out;
        }
    }
    if let Some(alias) = docker_alias(config, host) {
        out.push(alias);
    }
    let siblings = mirrored_siblings(config, host, name);
    let suggestion = suggest_mirror(&siblings, name);
    let idms = format!(
        "add an ImageDigestMirrorSet entry {{source: {name}, mirrors: [{suggestion}]}} (and an ImageTagMirrorSet entry for tag pulls), then copy the image: oc-mirror, or skopeo copy --all docker://{reference} docker://{}",
        mirror_reference(&suggestion, reference, name)
    );
    if siblings.is_empty() {
        out.push(Finding {
            code: FindingCode::NoMirrorRule,
            message: format!("no mirror rule covers {name}: every node pulls it from {host}"),
            fix: idms,
        });
    } else {
        out.push(Finding {
            code: FindingCode::VendorPrefixGap,
            message: format!(
                "{host} is mirrored for {}, but not for {name}: this repository is pulled from {host}",
                siblings.iter().map(|r| r.prefix.as_str()).collect::<Vec<_>>().join(", ")
            ),
            fix: idms,
        });
    }
    out
}

/// Entries with mirrors for other repositories of the same registry host.
fn mirrored_siblings<'a>(config: &'a EffectiveConfig, host: &str, name: &str) -> Vec<&'a Registry> {
    config
        .registries
        .iter()
        .filter(|r| !r.mirrors.is_empty() && !r.prefix.starts_with('*'))
        .filter(|r| r.prefix.split('/').next() == Some(host) && r.prefix != name)
        .collect()
}

/// A mirror location for `name`, following the sibling entries' layout when their mirrors end with
/// their own repository path (`runai.jfrog.io/op` -> `mirror/runai/op` suggests `mirror/runai/<path>`).
fn suggest_mirror(siblings: &[&Registry], name: &str) -> String {
    let path = name.split_once('/').map_or(name, |(_, p)| p);
    for s in siblings {
        let sib_path = s.prefix.split_once('/').map_or("", |(_, p)| p);
        let Some(m) = s.mirrors.first() else { continue };
        if sib_path.is_empty() {
            continue;
        }
        if let Some(base) = m.location.strip_suffix(sib_path) {
            return format!("{base}{path}");
        }
    }
    format!("<mirror-registry>/{path}")
}

/// The reference a copy to `mirror` (a repository) writes: the tag or digest of `reference`.
fn mirror_reference(mirror: &str, reference: &str, name: &str) -> String {
    format!(
        "{mirror}{}",
        reference.strip_prefix(name).unwrap_or_default()
    )
}

/// containers/image normalises `index.docker.io` to `docker.io` but never `registry-1.docker.io`:
/// rules written for one spelling do not match references in the other.
fn docker_alias(config: &EffectiveConfig, host: &str) -> Option<Finding> {
    let other_spelling = |prefix: &str| {
        let h = prefix.split('/').next().unwrap_or(prefix);
        match host {
            "docker.io" => h == "registry-1.docker.io",
            "registry-1.docker.io" => h == "docker.io",
            _ => false,
        }
    };
    let rules: Vec<&str> = config
        .registries
        .iter()
        .filter(|r| !r.mirrors.is_empty() && other_spelling(&r.prefix))
        .map(|r| r.prefix.as_str())
        .collect();
    if rules.is_empty() {
        return None;
    }
    let (message, fix) = if host == "docker.io" {
        (
            format!(
                "mirror rules for {} never match: image references normalise to docker.io, not registry-1.docker.io",
                rules.join(", ")
            ),
            "write the mirror set's source as docker.io/… (docker.io/library/… for official images)".to_string(),
        )
    } else {
        (
            format!(
                "the image names registry-1.docker.io, which containers/image does not normalise: the docker.io rules ({}) do not apply",
                rules.join(", ")
            ),
            "reference the image as docker.io/… in the workload, or add a mirror rule for registry-1.docker.io".to_string(),
        )
    };
    Some(Finding {
        code: FindingCode::Registry1DockerIoAlias,
        message,
        fix,
    })
}

/// The verdict and findings once the sources carry their probes (`None` everywhere when not probed).
pub fn judge(planned: Planned, used_by: Vec<String>) -> AuditEntry {
    let Planned {
        image,
        reference,
        is_digest,
        sources,
        mut findings,
        error,
    } = planned;
    let probed = sources.iter().any(|s| s.probe.is_some());
    let primary = sources
        .last()
        .map(|s| s.reference.clone())
        .unwrap_or_default();
    // A bad reference and a source list with nothing pullable both fail before any probe.
    let mut verdict = if error.is_some() || sources.iter().all(|s| s.blocked) {
        Verdict::Fail
    } else if !sources.iter().any(|s| s.mirror && !s.blocked) {
        Verdict::Source
    } else {
        Verdict::Unknown
    };
    let mut served_by = None;
    if probed && error.is_none() {
        let mut undecided = false;
        let mut decided = false;
        for s in &sources {
            let Some(p) = &s.probe else { continue };
            match p.status {
                ProbeStatus::Present if !decided => {
                    decided = true;
                    served_by = Some(s.reference.clone());
                    if !p.missing_architectures.is_empty() {
                        verdict = Verdict::Fail;
                        findings.push(missing_architecture(s, p, &primary));
                    } else if s.mirror {
                        verdict = Verdict::Mirror;
                    } else {
                        verdict = Verdict::Source;
                        if sources.iter().any(|x| x.mirror && !x.blocked) {
                            findings.push(fallback(&sources, &s.reference));
                        }
                    }
                }
                ProbeStatus::ManifestUnknown | ProbeStatus::NameUnknown if s.mirror => {
                    findings.push(missing_at_mirror(s, p, &primary, is_digest));
                }
                ProbeStatus::Unreachable | ProbeStatus::TlsError | ProbeStatus::Error
                    if s.mirror && !decided =>
                {
                    undecided = true;
                    findings.push(Finding {
                        code: FindingCode::MirrorUnreachable,
                        message: format!(
                            "mirror {} could not be asked ({}{})",
                            s.reference,
                            p.status.as_str(),
                            p.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
                        ),
                        fix: "check the mirror's address, certificate (--ca-file, the Image config's additionalTrustedCA) and network path from the nodes".into(),
                    });
                }
                ProbeStatus::Unauthorized | ProbeStatus::Denied if s.mirror && !decided => {
                    undecided = true;
                    findings.push(Finding {
                        code: FindingCode::MirrorUnauthorized,
                        message: format!("mirror {} refused the credentials ({})", s.reference, p.status.as_str()),
                        fix: "add the mirror's credentials to the cluster pull secret (openshift-config/pull-secret) and to --authfile".into(),
                    });
                }
                ProbeStatus::Unreachable
                | ProbeStatus::TlsError
                | ProbeStatus::Error
                | ProbeStatus::Unauthorized
                | ProbeStatus::Denied
                    if !decided =>
                {
                    undecided = true;
                }
                _ => {}
            }
        }
        if !decided {
            // Without a mirror the configuration has already said "source"; a source that
            // cannot be asked from here does not make that any better.
            verdict = match (undecided, verdict) {
                (true, Verdict::Source) => Verdict::Source,
                (true, _) => Verdict::Unknown,
                (false, _) => Verdict::Fail,
            };
        }
    }
    AuditEntry {
        image,
        reference,
        used_by,
        verdict,
        served_by,
        sources,
        findings,
    }
}

fn missing_architecture(s: &SourceAudit, p: &Probe, primary: &str) -> Finding {
    Finding {
        code: FindingCode::MissingArchitecture,
        message: format!(
            "{} serves {} but not {}: nodes of that architecture fail the pull (they do not try the next source)",
            s.reference,
            if p.architectures.is_empty() { "no known architecture".to_string() } else { p.architectures.join(", ") },
            p.missing_architectures.join(", ")
        ),
        fix: format!(
            "copy every architecture: skopeo copy --all docker://{primary} docker://{} (oc-mirror copies all by default)",
            s.reference
        ),
    }
}

fn missing_at_mirror(s: &SourceAudit, p: &Probe, primary: &str, is_digest: bool) -> Finding {
    if let Some(alt) = &p.present_without_library {
        return Finding {
            code: FindingCode::LibraryPath,
            message: format!(
                "the mirror has {alt}, but nodes ask for {}: official Docker Hub images live under library/",
                s.reference
            ),
            fix: format!(
                "copy it to the library/ path: skopeo copy --all docker://{alt} docker://{}, or point the mirror rule at the path without library/",
                s.reference
            ),
        };
    }
    let copy = format!(
        "skopeo copy --all docker://{primary} docker://{}",
        s.reference
    );
    let repo = s.reference.split(['@']).next().unwrap_or(&s.reference);
    match (p.status, is_digest) {
        (ProbeStatus::ManifestUnknown, false) => Finding {
            code: FindingCode::StaleTag,
            message: format!(
                "the mirror has the repository but not this tag: {} (the tag was not re-mirrored)",
                s.reference
            ),
            fix: format!("re-mirror the tag: {copy}, or run oc-mirror again"),
        },
        (ProbeStatus::ManifestUnknown, true) => Finding {
            code: FindingCode::MissingDigest,
            message: format!("the mirror has the repository but not this digest: {}", s.reference),
            fix: format!(
                "mirror the digest: oc image mirror --keep-manifest-list {primary} {repo}, or oc-mirror with the image in the ImageSetConfiguration"
            ),
        },
        _ => Finding {
            code: FindingCode::MissingRepository,
            message: format!("the mirror does not have the repository {}", repo_name(&s.reference)),
            fix: if is_digest {
                format!("mirror it: oc image mirror --keep-manifest-list {primary} {repo}")
            } else {
                format!("mirror it: {copy}")
            },
        },
    }
}

fn repo_name(reference: &str) -> &str {
    let end = reference.find('@').unwrap_or(reference.len());
    let base = &reference[..end];
    match base.rfind(':') {
        Some(i) if !base[i..].contains('/') => &base[..i],
        _ => base,
    }
}

fn fallback(sources: &[SourceAudit], served: &str) -> Finding {
    let misses: Vec<String> = sources
        .iter()
        .filter(|s| s.mirror && !s.blocked)
        .map(|s| {
            let why = s.probe.as_ref().map_or("not probed", |p| p.status.as_str());
            format!("{} ({why})", s.reference)
        })
        .collect();
    Finding {
        code: FindingCode::FallbackToSource,
        message: format!(
            "every mirror misses ({}); only the source {served} serves it: this pull breaks in a disconnected cluster or under NeverContactSource",
            misses.join(", ")
        ),
        fix: format!(
            "mirror the image: skopeo copy --all docker://{served} docker://{}",
            sources.iter().find(|s| s.mirror && !s.blocked).map_or("<mirror>", |s| s.reference.as_str())
        ),
    }
}
