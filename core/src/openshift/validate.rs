//! MCO's render-time validation (`validateRegistriesConfScopes`), per release: any error refuses
//! the whole sync.

use super::model::{MirrorSet, MirrorSourcePolicy};
use super::patterns::{
    is_valid_registries_conf_scope, matches_mirror_pattern, matches_source_pattern,
};
use super::version::OcpVersion;
use crate::go::quote;
use std::collections::HashMap;

/// Checks the insecure, blocked and allowed scopes (same in every release).
pub(crate) fn validate_scope_lists(
    insecure: &[String],
    blocked: &[String],
    allowed: &[String],
) -> Result<(), String> {
    for (what, list) in [
        ("insecure", insecure),
        ("blocked", blocked),
        ("allowed", allowed),
    ] {
        if let Some(s) = list.iter().find(|s| !is_valid_registries_conf_scope(s)) {
            return Err(format!("invalid entry for {what} registries {}", quote(s)));
        }
    }
    Ok(())
}

/// `validateRegistriesConfScopes(insecure, blocked, [], icsp, idms, itms)` of the given release.
pub(crate) fn validate_registries(
    version: OcpVersion,
    insecure: &[String],
    blocked: &[String],
    idms: &[MirrorSet],
    itms: &[MirrorSet],
    icsp: &[MirrorSet],
) -> Result<(), String> {
    validate_scope_lists(insecure, blocked, &[])?;
    if !version.at_least(13) {
        // MCO release-4.12: ICSP only, empty strings and wildcards rejected.
        for e in icsp.iter().flat_map(|s| s.entries.iter()) {
            if e.source.is_empty() {
                return Err("invalid empty entry for source configuration".into());
            }
            if e.source.contains('*') {
                return Err(format!(
                    "wildcard entries are not supported with mirror configuration {}",
                    quote(&e.source)
                ));
            }
            for m in &e.mirrors {
                if m.is_empty() {
                    return Err("invalid empty entry for mirror configuration".into());
                }
                if m.contains('*') {
                    return Err(format!(
                        "wildcard entries are not supported with mirror configuration {}",
                        quote(m)
                    ));
                }
            }
        }
        return Ok(());
    }
    let regex = version.at_least(16);
    let conflict_tail = if version.at_least(15) {
        "in imagedigestmirrorsets, imagetagmirrorsets, or imagecontentsourcepolicies"
    } else {
        "in imagedigestmirrorsets and/or imagetagmirrorsets"
    };
    let mut policies: HashMap<&str, MirrorSourcePolicy> = HashMap::new();
    let entries = idms
        .iter()
        .chain(icsp.iter())
        .chain(itms.iter())
        .flat_map(|s| s.entries.iter());
    for e in entries {
        let source = e.source.as_str();
        if regex {
            if !matches_source_pattern(source) {
                return Err(format!("invalid format for source {}", quote(source)));
            }
        } else {
            if source.is_empty() {
                return Err("invalid empty entry for source configuration".into());
            }
            if source.contains('*') {
                return Err(format!(
                    "wildcard entries are not supported with mirror configuration {}",
                    quote(source)
                ));
            }
        }
        let policy = e.policy.effective();
        match policies.get(source) {
            Some(p) if *p != policy => {
                return Err(format!(
                    "conflicting mirrorSourcePolicy is set for the same source {} {conflict_tail}",
                    quote(source)
                ));
            }
            Some(_) => {}
            None => {
                policies.insert(source, policy);
            }
        }
        for m in &e.mirrors {
            if regex {
                if !matches_mirror_pattern(m) {
                    return Err(format!("invalid format for mirror {}", quote(m)));
                }
            } else {
                if m.is_empty() {
                    return Err("invalid empty entry for mirror configuration".into());
                }
                if m.contains('*') {
                    return Err(format!(
                        "wildcard entries are not supported with mirror configuration {}",
                        quote(m)
                    ));
                }
            }
            if policy == MirrorSourcePolicy::NeverContactSource && m == source {
                return Err(format!(
                    "cannot set mirrorSourcePolicy: NeverContactSource if the source {} is one of the mirrors",
                    quote(source)
                ));
            }
        }
    }
    Ok(())
}
