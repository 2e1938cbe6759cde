//! Configurations MCO renders without complaint but that do not do what they most likely mean.
//! Each finding names the object and field and carries a short fix.

use super::model::{Kind, MirrorEntry, MirrorSet, MirrorSourcePolicy, ObjectRef, RenderInput};
use super::notes::Note;
use super::patterns::scope_is_nested_inside_scope;
use super::payload::ValidLists;
use super::version::OcpVersion;
use crate::go::quote;
use crate::reference::ImageReference;
use crate::registries::EffectiveConfig;

fn has_real_mirror(e: &MirrorEntry) -> bool {
    e.mirrors.iter().any(|m| *m != e.source)
}

/// Findings about the mirror sets and `Image/cluster` (independent of a refusal).
pub(crate) fn traps(
    input: &RenderInput,
    idms: &[MirrorSet],
    itms: &[MirrorSet],
    version: OcpVersion,
    release_image: &str,
) -> Vec<Note> {
    let mut notes = Vec::new();
    let sets: Vec<&MirrorSet> = idms
        .iter()
        .chain(itms.iter())
        .chain(input.icsp.iter())
        .collect();
    for set in &sets {
        for (i, e) in set.entries.iter().enumerate() {
            entry_traps(&mut notes, set, i, e);
        }
    }
    // A source whose entries disagree on the policy is refused anyway: no trap to report.
    let conflicting = |sets: &[&MirrorSet], source: &str| {
        sets.iter()
            .flat_map(|s| s.entries.iter())
            .filter(|e| e.source == source)
            .any(|e| e.policy.effective() != MirrorSourcePolicy::NeverContactSource)
    };
    // NeverContactSource on only one of the two pools.
    let never = |sets: &[MirrorSet], source: &str| {
        sets.iter().flat_map(|s| s.entries.iter()).any(|e| {
            e.source == source
                && e.policy == MirrorSourcePolicy::NeverContactSource
                && has_real_mirror(e)
        })
    };
    for (pool, other, other_kind, blocked_pulls, fix_kind) in [
        (
            idms,
            itms,
            Kind::ImageTagMirrorSet,
            "tag",
            "ImageTagMirrorSet",
        ),
        (
            itms,
            idms,
            Kind::ImageDigestMirrorSet,
            "digest",
            "ImageDigestMirrorSet",
        ),
    ] {
        for set in pool {
            for (i, e) in set.entries.iter().enumerate() {
                if e.policy != MirrorSourcePolicy::NeverContactSource
                    || !has_real_mirror(e)
                    || never(other, &e.source)
                    || conflicting(&sets, &e.source)
                {
                    continue;
                }
                let mirrors_kind = if blocked_pulls == "tag" {
                    "digest-only"
                } else {
                    "tag-only"
                };
                notes.push(
                    Note::warning(
                        &format!("never-contact-{}-only", if other_kind == Kind::ImageTagMirrorSet { "idms" } else { "itms" }),
                        format!(
                            "NeverContactSource only on an {}: every {blocked_pulls} pull of {} will fail as blocked (its mirrors are {mirrors_kind} and the source is blocked)",
                            set.object.kind,
                            quote(&e.source)
                        ),
                    )
                    .at(&set.object, format!("{}.mirrorSourcePolicy", set.entry_path(i)))
                    .fix(format!(
                        "also add an {fix_kind} for this source with mirrorSourcePolicy: NeverContactSource, or pull only by {}",
                        if blocked_pulls == "tag" { "digest" } else { "tag" }
                    )),
                );
            }
        }
    }
    // ICSP next to IDMS for the same source.
    if version.at_least(13) {
        for icsp in &input.icsp {
            for (i, e) in icsp.entries.iter().enumerate() {
                let Some(other) = idms
                    .iter()
                    .find(|s| s.entries.iter().any(|d| d.source == e.source))
                else {
                    continue;
                };
                notes.push(
                    Note::warning(
                        "icsp-and-idms",
                        format!(
                            "{} also has source {}: MCO merges both mirror lists, and no NeverContactSource can be set for this source while the ICSP exists",
                            other.object,
                            quote(&e.source)
                        ),
                    )
                    .at(&icsp.object, format!("{}.source", icsp.entry_path(i)))
                    .fix("finish the migration: keep the ImageDigestMirrorSet (`oc adm migrate icsp` writes one) and delete this ImageContentSourcePolicy"),
                );
            }
        }
    }
    // allowedRegistries without the payload.
    if let Some(img) = &input.image {
        if let (Some(allowed), Ok(payload)) = (
            &img.registry_sources.allowed_registries,
            ImageReference::parse_canonical(release_image),
        ) {
            if !allowed.is_empty()
                && !allowed
                    .iter()
                    .any(|a| scope_is_nested_inside_scope(payload.name(), a))
            {
                notes.push(
                    Note::warning(
                        "allowed-without-payload",
                        format!(
                            "the release payload repository {} is not allowed: policy.json will reject OpenShift's own images (MCO does not add it for you)",
                            quote(payload.name())
                        ),
                    )
                    .at(&img.object, "spec.registrySources.allowedRegistries")
                    .fix(format!("add {} (and the other registries the cluster pulls from) to allowedRegistries", quote(payload.name()))),
                );
            }
        }
    }
    notes
}

fn entry_traps(notes: &mut Vec<Note>, set: &MirrorSet, i: usize, e: &MirrorEntry) {
    let obj: &ObjectRef = &set.object;
    let path = set.entry_path(i);
    let source = e.source.as_str();
    let host = source.split('/').next().unwrap_or("");
    let host_name = host.split(':').next().unwrap_or("");
    if matches!(host_name, "registry-1.docker.io" | "index.docker.io") {
        let rest = &source[host.len()..];
        let suggestion = if rest.matches('/').count() == 1 && !rest.is_empty() {
            format!(
                "docker.io/library{rest} for an official image, or docker.io{rest} for a namespace"
            )
        } else {
            format!("docker.io{rest}")
        };
        notes.push(
            Note::warning(
                "dead-source",
                format!(
                    "source {} can never match: image references are normalised to docker.io/… before matching",
                    quote(source)
                ),
            )
            .at(obj, format!("{path}.source"))
            .fix(format!("use source {suggestion}")),
        );
    }
    if host.contains('/') || source[host.len()..].contains([':', '@']) {
        let repo = source.split(['@']).next().unwrap_or(source);
        let repo = match repo.rfind(':') {
            Some(c) if c > host.len() => &repo[..c],
            _ => repo,
        };
        notes.push(
            Note::warning(
                "tag-in-source",
                format!(
                    "source {} contains a tag or digest and can never match: sources are compared with the repository name only",
                    quote(source)
                ),
            )
            .at(obj, format!("{path}.source"))
            .fix(format!("use source {}", quote(repo))),
        );
    }
    if host_name.chars().any(|c| c.is_ascii_uppercase()) {
        notes.push(
            Note::warning(
                "uppercase-source",
                format!("source {} has upper-case letters: it only matches pulls spelled exactly that way", quote(source)),
            )
            .at(obj, format!("{path}.source"))
            .fix(format!("use source {}", quote(&source.to_lowercase()))),
        );
    }
    if !has_real_mirror(e) {
        let never = e.policy == MirrorSourcePolicy::NeverContactSource;
        notes.push(
            Note::warning(
                "ignored-entry",
                if never {
                    format!("no mirror other than the source: MCO ignores this entry, so NeverContactSource is silently not applied to {}", quote(source))
                } else {
                    format!("no mirror other than the source: MCO ignores this entry for {}", quote(source))
                },
            )
            .at(obj, format!("{path}.mirrors"))
            .fix(if never {
                "add a mirror; to forbid the source outright use blockedRegistries in Image/cluster"
            } else {
                "add a mirror or delete the entry"
            }),
        );
    } else if let Some(j) = e.mirrors.iter().position(|m| m == source) {
        if e.policy != MirrorSourcePolicy::NeverContactSource {
            let last = j + 1 == e.mirrors.len();
            notes.push(
                Note::warning(
                    "source-in-mirrors",
                    if last {
                        format!("the mirror list contains the source {} itself; listed last it changes nothing (the source is always tried last)", quote(source))
                    } else {
                        format!("the mirror list contains the source {} itself before other mirrors: the source is contacted before them (and stays in registries.conf as a mirror of itself)", quote(source))
                    },
                )
                .at(obj, format!("{path}.mirrors[{j}]"))
                .fix("remove the source from its mirrors"),
            );
        }
    }
}

/// Findings about the policy.json MCO derives (after payload protection).
pub(crate) fn policy_traps(
    notes: &mut Vec<Note>,
    image: &ObjectRef,
    lists: &ValidLists,
    payload_repo: &str,
    user_allowed: &[String],
) {
    let blocked_empty = lists.policy_blocked.as_ref().is_none_or(|b| b.is_empty());
    if let Some(allowed) = &lists.allowed {
        if blocked_empty && user_allowed.is_empty() && !allowed.is_empty() {
            notes.push(
                Note::warning(
                    "payload-only-allowed",
                    format!(
                        "blocking exactly the payload repository {} (which has a mirror) makes MCO write a policy.json whose default is reject: every image outside it is refused",
                        quote(payload_repo)
                    ),
                )
                .at(image, "spec.registrySources.blockedRegistries")
                .fix("block a wider scope (e.g. the whole registry) instead, or use an ImageDigestMirrorSet with NeverContactSource"),
            );
        }
    }
}

/// Mirrors that land in a blocked `[[registry]]` of the rendered file: containers/image checks
/// `blocked` for every location it tries, so pulls through such a mirror always fail.
pub(crate) fn blocked_mirrors<'a>(
    notes: &mut Vec<Note>,
    config: &EffectiveConfig,
    sets: impl Iterator<Item = &'a MirrorSet>,
) {
    for set in sets {
        for (i, e) in set.entries.iter().enumerate() {
            if !has_real_mirror(e) {
                continue;
            }
            for (j, m) in e.mirrors.iter().enumerate() {
                if *m == e.source {
                    continue;
                }
                let physical = format!("{m}/mirrorscope-probe");
                let Some(reg) = config.find_registry(&physical).filter(|r| r.blocked) else {
                    continue;
                };
                notes.push(
                    Note::warning(
                        "mirror-blocked",
                        format!(
                            "mirror {} lies in the blocked registries.conf entry {}: containers/image refuses every pull through it",
                            quote(m),
                            quote(&reg.prefix)
                        ),
                    )
                    .at(&set.object, format!("{}.mirrors[{j}]", set.entry_path(i)))
                    .fix("use a mirror outside blockedRegistries and outside NeverContactSource sources, or unblock that scope"),
                );
            }
        }
    }
}
