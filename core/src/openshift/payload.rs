//! MCO's payload protection for `blockedRegistries` (`getValidBlockedAndAllowedRegistries` and
//! `payloadRepoHasUnblockedMirror`). The temporary registries.conf MCO writes and reads back
//! through containers/image is loaded and resolved with [`crate::registries`].

use super::edit::{Editor, MirrorSets};
use super::encode::registries_toml;
use super::model::MirrorSourcePolicy;
use super::patterns::scope_is_nested_inside_scope;
use super::version::{Family, OcpVersion};
use crate::go;
use crate::reference::ImageReference;
use crate::registries::{parse_config_str, EffectiveConfig, FileKind};

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
/// digest).
pub(crate) fn valid_blocked_and_allowed(
    release_image: &str,
    insecure: &[String],
    blocked: &[String],
    allowed_spec: &[String],
    digest_entries: &[(&str, MirrorSourcePolicy, &[String])],
    version: OcpVersion,
) -> Result<(ValidLists, Vec<PayloadEvent>), &'static str> {
    let payload =
        ImageReference::parse_canonical(release_image).map_err(|_| ERR_PARSING_REFERENCE)?;
    let payload_repo = payload.name().to_string();
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
                version,
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
/// whole insecure and blocked lists), loads it with the registries engine as containers/image
/// would, resolves the payload, and asks whether one pull source is outside every blocked scope.
fn payload_repo_has_unblocked_mirror(
    payload: &ImageReference,
    insecure: &[String],
    blocked: &[String],
    digest_entries: &[(&str, MirrorSourcePolicy, &[String])],
    version: OcpVersion,
) -> Result<bool, String> {
    let mut sets = MirrorSets::default();
    for (source, policy, mirrors) in digest_entries {
        sets.add(
            source,
            *policy == MirrorSourcePolicy::NeverContactSource,
            mirrors,
        );
    }
    let legacy = version.family() == Family::Legacy;
    let mut editor = Editor::new();
    editor.edit(insecure, blocked, &sets.merged(), &[], legacy)?;
    let text = registries_toml(None, &editor.regs, version.family() == Family::Current);
    let file = parse_config_str(&text, TEMP_FILE, FileKind::Main, version.containers_image())
        .map_err(|e| e.to_string())?;
    let config = EffectiveConfig::from_main_file(file);
    if config.find_registry(payload.name()).is_none() {
        // MCO would dereference a nil registry here; no input reaches this point (the blocked
        // scope covering the payload always has an entry), but stay total.
        return Err("no registry entry matches the payload repository".into());
    }
    let sources = config.pull_sources(payload).map_err(|e| e.to_string())?;
    Ok(sources.iter().any(|s| {
        !blocked
            .iter()
            .any(|b| scope_is_nested_inside_scope(s.reference.name(), b))
    }))
}

/// Where MCO writes its temporary file (only used in messages).
const TEMP_FILE: &str = "/tmp/regtemp";

#[cfg(test)]
mod tests {
    use super::*;

    const V: OcpVersion = OcpVersion::DEFAULT;

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
            V,
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
            valid_blocked_and_allowed(&payload(), &[], &["quay.io".into()], &[], &entries, V)
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
            V,
        )
        .unwrap();
        assert_eq!(lists.registries_blocked, None);
    }

    #[test]
    fn unparseable_release_image() {
        assert_eq!(
            valid_blocked_and_allowed("ocp-release", &[], &[], &[], &[], V),
            Err(ERR_PARSING_REFERENCE)
        );
    }
}
