//! MCO's payload protection for `blockedRegistries` (`getValidBlockedAndAllowedRegistries` and
//! `payloadRepoHasUnblockedMirror`), including the small part of containers/image it relies on
//! (loading the temporary registries.conf, `FindRegistry`, `PullSourcesFromReference`).

use super::dockerref::{parse_named, NamedRef};
use super::edit::{Editor, MirrorSets, Registry, DIGEST_ONLY, TAG_ONLY};
use super::go;
use super::model::MirrorSourcePolicy;
use super::patterns::scope_is_nested_inside_scope;

/// Go nil-vs-empty aware list: `None` is a nil slice.
pub(crate) type GoList = Option<Vec<String>>;

fn append(list: &mut GoList, item: &str) {
    list.get_or_insert_with(Vec::new).push(item.to_string());
}

/// The three lists MCO derives from `blockedRegistries`/`allowedRegistries`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ValidLists {
    pub registries_blocked: GoList,
    pub policy_blocked: GoList,
    pub allowed: GoList,
}

/// What happened besides the lists (logged by MCO, surfaced by us as notes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PayloadEvent {
    /// Blocked scopes covering the payload without a usable mirror: dropped from both files.
    Dropped(Vec<String>),
    /// A blocked scope covering the payload kept because a mirror serves the payload.
    KeptWithMirror(String),
    /// The check itself failed: MCO logs the error and drops *all* blocked and allowed entries.
    CheckFailed(String),
}

/// The release image could not be parsed: MCO's sync fails with this text.
pub(crate) const ERR_PARSING_REFERENCE: &str = "error parsing reference of release image";

/// `getValidBlockedAndAllowedRegistries`. `digest_entries` are the IDMS entries followed by
/// the ICSP entries (as IDMS without policy); ITMS are not considered (payload pulls are by
/// digest). `legacy` selects the ICSP-only registries.conf generation (OCP ≤ 4.12).
pub(crate) fn valid_blocked_and_allowed(
    release_image: &str,
    insecure: &[String],
    blocked: &[String],
    allowed_spec: &[String],
    digest_entries: &[(&str, MirrorSourcePolicy, &[String])],
    legacy: bool,
) -> Result<(ValidLists, Vec<PayloadEvent>), &'static str> {
    let payload = parse_named(release_image).map_err(|_| ERR_PARSING_REFERENCE)?;
    let payload_repo = payload.name.clone();
    let mut out = ValidLists::default();
    let mut events = Vec::new();
    let mut block_err = Vec::new();
    for reg in blocked {
        if scope_is_nested_inside_scope(&payload_repo, reg) {
            match payload_repo_has_unblocked_mirror(
                &payload,
                insecure,
                blocked,
                digest_entries,
                legacy,
            ) {
                Err(e) => {
                    events.push(PayloadEvent::CheckFailed(e));
                    return Ok((ValidLists::default(), events));
                }
                Ok(false) => {
                    block_err.push(reg.clone());
                    continue;
                }
                Ok(true) => {}
            }
            events.push(PayloadEvent::KeptWithMirror(reg.clone()));
            append(&mut out.registries_blocked, reg);
            if &payload_repo != reg {
                append(&mut out.policy_blocked, reg);
            }
            append(&mut out.allowed, &payload_repo);
            continue;
        }
        append(&mut out.registries_blocked, reg);
        append(&mut out.policy_blocked, reg);
    }
    if !block_err.is_empty() {
        events.push(PayloadEvent::Dropped(block_err));
    }
    for a in allowed_spec {
        append(&mut out.allowed, a);
    }
    Ok((out, events))
}

/// The log line MCO writes (V(2)) when blocked scopes covering the payload are dropped.
pub(crate) fn dropped_log(scopes: &[String]) -> String {
    format!(
        "error adding {} to blocked registries, cannot block the repository being used by the payload, skipping....",
        go::quote_list(scopes)
    )
}

/// `payloadRepoHasUnblockedMirror`: builds the temporary registries.conf (IDMS + ICSP, the
/// whole insecure and blocked lists), loads it as containers/image would, resolves the payload,
/// and asks whether one pull source is outside every blocked scope.
fn payload_repo_has_unblocked_mirror(
    payload: &NamedRef,
    insecure: &[String],
    blocked: &[String],
    digest_entries: &[(&str, MirrorSourcePolicy, &[String])],
    legacy: bool,
) -> Result<bool, String> {
    let mut sets = MirrorSets::default();
    for (source, policy, mirrors) in digest_entries {
        sets.add(
            source,
            *policy == MirrorSourcePolicy::NeverContactSource,
            mirrors,
        );
    }
    let mut editor = Editor::new();
    editor.edit(insecure, blocked, &sets.merged(), &[], legacy)?;
    let regs = post_process(editor.regs)?;
    let Some(reg) = find_registry(&regs, &payload.name) else {
        // MCO would dereference a nil registry here; no such input reaches this point
        // (the blocked scope covering the payload always has an entry).
        return Err("no registry entry matches the payload repository".into());
    };
    for source in pull_sources(reg, payload)? {
        if !blocked
            .iter()
            .any(|b| scope_is_nested_inside_scope(&source.name, b))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// containers/image `parseLocation`.
fn parse_location(input: &str) -> Result<String, String> {
    let trimmed = input.trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Err(format!(
            "invalid location '{input}': URI schemes are not supported"
        ));
    }
    Ok(trimmed.to_string())
}

/// containers/image `postProcessRegistries` for the keys MCO writes: validation, prefix
/// defaulting, then dedup-by-prefix (first wins) and sort by prefix.
fn post_process(mut regs: Vec<Registry>) -> Result<Vec<Registry>, String> {
    for reg in &mut regs {
        reg.location = parse_location(&reg.location)?;
        if reg.prefix.is_empty() {
            if reg.location.is_empty() {
                return Err("invalid condition: both location and prefix are unset".into());
            }
            reg.prefix = reg.location.clone();
        } else {
            reg.prefix = parse_location(&reg.prefix)?;
            if !reg.prefix.starts_with("*.") && reg.location.is_empty() {
                return Err("invalid condition: location is unset and prefix is not in the format: *.example.com".into());
            }
        }
        for m in &mut reg.mirrors {
            m.location = parse_location(&m.location)?;
            if m.location.is_empty() {
                return Err("invalid condition: mirror location is unset".into());
            }
            if reg.mirror_by_digest_only && !m.pull_from_mirror.is_empty() {
                return Err(format!(
                    "cannot set mirror usage mirror-by-digest-only for the registry ({}) and pull-from-mirror for per-mirror ({}) at the same time",
                    go::quote(&reg.prefix),
                    go::quote(&m.location)
                ));
            }
        }
    }
    let key = |r: &Registry| {
        if r.location.is_empty() {
            r.prefix.clone()
        } else {
            r.location.clone()
        }
    };
    for a in &regs {
        for b in regs.iter().filter(|b| key(b) == key(a)) {
            if a.insecure != b.insecure {
                return Err(format!(
                    "registry '{}' is defined multiple times with conflicting 'insecure' setting",
                    a.location
                ));
            }
            if a.blocked != b.blocked {
                return Err(format!(
                    "registry '{}' is defined multiple times with conflicting 'blocked' setting",
                    a.location
                ));
            }
        }
    }
    let mut unique: Vec<Registry> = Vec::new();
    for r in regs {
        if !unique.iter().any(|u| u.prefix == r.prefix) {
            unique.push(r);
        }
    }
    unique.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    Ok(unique)
}

/// containers/image `refMatchingPrefix`.
fn ref_matching_prefix(r: &str, prefix: &str) -> Option<usize> {
    if let Some(suffix) = prefix.strip_prefix('*') {
        if prefix.starts_with("*.") {
            let index = r.find(suffix)?;
            if r[..index].contains('/') {
                return None;
            }
            let end = index + suffix.len();
            return match r.as_bytes().get(end) {
                None => Some(end),
                Some(b':' | b'/' | b'@') => Some(end),
                Some(_) => None,
            };
        }
    }
    if r.len() < prefix.len() || !r.starts_with(prefix) {
        return None;
    }
    match r.as_bytes().get(prefix.len()) {
        None => Some(prefix.len()),
        Some(b':' | b'/' | b'@') => Some(prefix.len()),
        Some(_) => None,
    }
}

/// `findRegistryWithParsedConfig`: the longest matching prefix; ties keep the first (sorted).
fn find_registry<'a>(regs: &'a [Registry], name: &str) -> Option<&'a Registry> {
    let mut best: Option<&Registry> = None;
    for r in regs {
        if ref_matching_prefix(name, &r.prefix).is_some()
            && best.is_none_or(|b| r.prefix.len() > b.prefix.len())
        {
            best = Some(r);
        }
    }
    best
}

/// `PullSourcesFromReference` (with `rewriteReference`), returning the rewritten references.
fn pull_sources(reg: &Registry, r: &NamedRef) -> Result<Vec<NamedRef>, String> {
    let digested = r.digest.is_some();
    let mut endpoints: Vec<&str> = Vec::new();
    if reg.mirror_by_digest_only {
        if digested {
            endpoints.extend(reg.mirrors.iter().map(|m| m.location.as_str()));
        }
    } else {
        for m in &reg.mirrors {
            match m.pull_from_mirror {
                DIGEST_ONLY if !digested => continue,
                TAG_ONLY if digested => continue,
                _ => endpoints.push(&m.location),
            }
        }
    }
    endpoints.push(&reg.location);
    let ref_string = r.string();
    let mut out = Vec::new();
    for location in endpoints {
        let Some(prefix_len) = ref_matching_prefix(&ref_string, &reg.prefix) else {
            return Err(format!(
                "invalid prefix '{}' for reference '{ref_string}'",
                reg.prefix
            ));
        };
        if location.is_empty() {
            if !reg.prefix.starts_with("*.") {
                return Err(format!("invalid prefix '{}' for empty location, should be in the format: *.example.com", reg.prefix));
            }
            out.push(r.clone());
            continue;
        }
        let rewritten = format!("{location}{}", &ref_string[prefix_len..]);
        out.push(parse_named(&rewritten).map_err(|e| format!("rewriting reference: {e}"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> String {
        format!(
            "quay.io/openshift-release-dev/ocp-release@sha256:{}",
            "0".repeat(64)
        )
    }

    #[test]
    fn drops_payload_block_without_mirror() {
        let (lists, events) = valid_blocked_and_allowed(
            &payload(),
            &[],
            &["quay.io".into(), "docker.io".into()],
            &[],
            &[],
            false,
        )
        .unwrap();
        assert_eq!(
            lists.registries_blocked,
            Some(vec!["docker.io".to_string()])
        );
        assert_eq!(lists.policy_blocked, Some(vec!["docker.io".to_string()]));
        assert_eq!(lists.allowed, None);
        assert_eq!(events, vec![PayloadEvent::Dropped(vec!["quay.io".into()])]);
        assert_eq!(
            dropped_log(&["quay.io".into()]),
            "error adding [\"quay.io\"] to blocked registries, cannot block the repository being used by the payload, skipping...."
        );
    }

    #[test]
    fn keeps_payload_block_with_mirror() {
        let mirrors = vec!["mirror.corp.example/ocp/release".to_string()];
        let entries = [(
            "quay.io/openshift-release-dev/ocp-release",
            MirrorSourcePolicy::Unset,
            mirrors.as_slice(),
        )];
        let (lists, _) =
            valid_blocked_and_allowed(&payload(), &[], &["quay.io".into()], &[], &entries, false)
                .unwrap();
        assert_eq!(lists.registries_blocked, Some(vec!["quay.io".to_string()]));
        assert_eq!(lists.policy_blocked, Some(vec!["quay.io".to_string()]));
        assert_eq!(
            lists.allowed,
            Some(vec!["quay.io/openshift-release-dev/ocp-release".to_string()])
        );
        // A tag release image cannot use digest-only mirrors.
        let (lists, _) = valid_blocked_and_allowed(
            "quay.io/openshift-release-dev/ocp-release:4.19.0",
            &[],
            &["quay.io".into()],
            &[],
            &entries,
            false,
        )
        .unwrap();
        assert_eq!(lists.registries_blocked, None);
    }

    #[test]
    fn unparseable_release_image() {
        assert_eq!(
            valid_blocked_and_allowed("ocp-release", &[], &[], &[], &[], false),
            Err(ERR_PARSING_REFERENCE)
        );
    }
}
