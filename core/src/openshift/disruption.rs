//! What the Machine Config Daemon does to a node when the files MCO writes change: nothing, a
//! CRI-O reload, a drain and a CRI-O reload, or a drain and a reboot. Follows the MCD's rules
//! (machine-config-operator `pkg/daemon/drain.go` `isDrainRequired` and
//! `isSafeContainerRegistryConfChanges`, and the default node-disruption policy of
//! `pkg/apihelpers`: registries.conf is "Special", policy.json a reload, any other path a reboot).
//! A `MachineConfiguration` `spec.nodeDisruptionPolicy` that overrides these is not read.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{POLICY_JSON, REGISTRIES_CONF};
use crate::cimage_version::CImageVersion;
use crate::registries::{parse_config_str, ConfigFile, FileKind, PullFromMirror, Registry};

/// What the MCD does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    None,
    ReloadCrio,
    DrainAndReloadCrio,
    Reboot,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::ReloadCrio => "reload-crio",
            Action::DrainAndReloadCrio => "drain-and-reload-crio",
            Action::Reboot => "reboot",
        }
    }
}

/// The disruption a change causes, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disruption {
    pub action: Action,
    pub drain: bool,
    pub reasons: Vec<String>,
}

/// Compares the files MCO writes before and after a change (path → contents; a path missing
/// on one side was added or removed).
pub fn disruption(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Disruption {
    let mut changed: Vec<&str> = old
        .keys()
        .chain(new.keys())
        .map(String::as_str)
        .filter(|p| old.get(*p) != new.get(*p))
        .collect();
    changed.sort_unstable();
    changed.dedup();
    let mut action = Action::None;
    let mut reasons = Vec::new();
    for path in changed {
        let (a, why) = match path {
            REGISTRIES_CONF => {
                let old_text = old.get(path).map(String::as_str).unwrap_or_default();
                let new_text = new.get(path).map(String::as_str).unwrap_or_default();
                match unsafe_registries_change(old_text, new_text) {
                    None => (
                        Action::ReloadCrio,
                        format!("{path} changed safely (only added digest-only mirrors or registries, or appended search registries): CRI-O is reloaded without a drain"),
                    ),
                    Some(why) => (
                        Action::DrainAndReloadCrio,
                        format!("{path}: {why}: the node is drained, then CRI-O is reloaded"),
                    ),
                }
            }
            POLICY_JSON => (
                Action::ReloadCrio,
                format!("{path} changed: CRI-O is reloaded without a drain"),
            ),
            _ => (
                Action::Reboot,
                format!("{path} changed: no node-disruption policy covers it, so the node is drained and rebooted"),
            ),
        };
        action = action.max(a);
        reasons.push(why);
    }
    Disruption {
        action,
        drain: matches!(action, Action::DrainAndReloadCrio | Action::Reboot),
        reasons,
    }
}

/// Why the MCD drains for this registries.conf change, or `None` when it does not (it drains
/// when a file does not decode, too).
pub fn unsafe_registries_change(old: &str, new: &str) -> Option<String> {
    let parse =
        |t: &str| parse_config_str(t, REGISTRIES_CONF, FileKind::Main, CImageVersion::default());
    let (old, new) = match (parse(old), parse(new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => return Some(format!("the file does not decode ({e})")),
    };
    let search = |c: &ConfigFile| c.unqualified_search_registries.clone().unwrap_or_default();
    let (old_search, new_search) = (search(&old), search(&new));
    if old_search.len() > new_search.len() {
        return Some("unqualified-search-registries lost entries".into());
    }
    if old_search.iter().zip(&new_search).any(|(a, b)| a != b) {
        return Some(
            "unqualified-search-registries were reordered or replaced (lookup order matters)"
                .into(),
        );
    }
    let by_scope = |c: &ConfigFile| -> BTreeMap<String, Registry> {
        c.registries
            .iter()
            .map(|r| (scope(r).to_string(), r.clone()))
            .collect()
    };
    let (old_regs, new_regs) = (by_scope(&old), by_scope(&new));
    if let Some(gone) = old_regs.keys().find(|k| !new_regs.contains_key(*k)) {
        return Some(format!("registry {gone} was removed"));
    }
    for (s, n) in &new_regs {
        let Some(o) = old_regs.get(s) else {
            if !all_digest_only(n) {
                return Some(format!(
                    "registry {s} was added with a mirror that is not pull-from-mirror = \"digest-only\""
                ));
            }
            continue;
        };
        if o.prefix != n.prefix {
            return Some(format!("the prefix of registry {s} changed"));
        }
        if o.location != n.location {
            return Some(format!(
                "the location of registry {s} changed from {} to {}",
                o.location, n.location
            ));
        }
        if o.blocked != n.blocked {
            return Some(format!("blocked of registry {s} changed to {}", n.blocked));
        }
        if o.insecure != n.insecure {
            return Some(format!(
                "insecure of registry {s} changed to {}",
                n.insecure
            ));
        }
        for m in &o.mirrors {
            if !n.mirrors.iter().any(|x| x.location == m.location) {
                return Some(format!("mirror {} of registry {s} was removed", m.location));
            }
        }
        for m in &n.mirrors {
            match o.mirrors.iter().find(|x| x.location == m.location) {
                Some(before) => {
                    if m.pull_from_mirror != before.pull_from_mirror
                        && m.pull_from_mirror != Some(PullFromMirror::DigestOnly)
                    {
                        return Some(format!(
                            "pull-from-mirror of mirror {} changed to something other than digest-only",
                            m.location
                        ));
                    }
                }
                None => {
                    if m.pull_from_mirror != Some(PullFromMirror::DigestOnly)
                        && !n.mirror_by_digest_only
                    {
                        return Some(format!(
                            "mirror {} was added to registry {s} without pull-from-mirror = \"digest-only\"",
                            m.location
                        ));
                    }
                }
            }
        }
    }
    None
}

/// The MCD keys entries by `prefix`, else `location` (after containers/image's defaulting the
/// prefix is the location when unset, which is the same key).
fn scope(r: &Registry) -> &str {
    if r.prefix.is_empty() {
        &r.location
    } else {
        &r.prefix
    }
}

/// A new entry is safe only when every mirror is digest-only (with no mirrors, when the entry is
/// `mirror-by-digest-only`).
fn all_digest_only(r: &Registry) -> bool {
    if r.mirrors.is_empty() {
        return r.mirror_by_digest_only;
    }
    r.mirrors
        .iter()
        .all(|m| m.pull_from_mirror == Some(PullFromMirror::DigestOnly))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "unqualified-search-registries = [\"registry.access.redhat.com\", \"docker.io\"]\nshort-name-mode = \"\"\n\n[[registry]]\n  prefix = \"\"\n  location = \"quay.io/ns\"\n\n  [[registry.mirror]]\n    location = \"mirror.example.com/ns\"\n    pull-from-mirror = \"digest-only\"\n";

    fn files(conf: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(REGISTRIES_CONF.to_string(), conf.to_string())])
    }

    fn action(old: &str, new: &str) -> Action {
        disruption(&files(old), &files(new)).action
    }

    fn with_entry(extra: &str) -> String {
        format!("{BASE}{extra}")
    }

    #[test]
    fn the_mcds_cases() {
        use Action::*;
        let digest_mirror = "\n[[registry]]\n  prefix = \"\"\n  location = \"nvcr.io/nvidia\"\n\n  [[registry.mirror]]\n    location = \"mirror.example.com/nvidia\"\n    pull-from-mirror = \"digest-only\"\n";
        let tag_mirror = "\n[[registry]]\n  prefix = \"\"\n  location = \"docker.io\"\n\n  [[registry.mirror]]\n    location = \"mirror.example.com/docker\"\n    pull-from-mirror = \"tag-only\"\n";
        let cases: Vec<(&str, String, String, Action)> = vec![
            ("nothing changes", BASE.into(), BASE.into(), None),
            ("an IDMS on a new source (digest-only mirror)", BASE.into(), with_entry(digest_mirror), ReloadCrio),
            ("an ITMS (tag-only mirror)", BASE.into(), with_entry(tag_mirror), DrainAndReloadCrio),
            ("a new NeverContactSource IDMS: blocked is not compared for new entries", BASE.into(), with_entry(&digest_mirror.replace("location = \"nvcr.io/nvidia\"\n", "location = \"nvcr.io/nvidia\"\n  blocked = true\n")), ReloadCrio),
            ("a registry removed", with_entry(digest_mirror), BASE.into(), DrainAndReloadCrio),
            ("a digest-only mirror added to an existing source", BASE.into(), BASE.replace("    pull-from-mirror = \"digest-only\"\n", "    pull-from-mirror = \"digest-only\"\n\n  [[registry.mirror]]\n    location = \"second.example.com/ns\"\n    pull-from-mirror = \"digest-only\"\n"), ReloadCrio),
            ("a mirror removed", BASE.replace("    pull-from-mirror = \"digest-only\"\n", "    pull-from-mirror = \"digest-only\"\n\n  [[registry.mirror]]\n    location = \"second.example.com/ns\"\n    pull-from-mirror = \"digest-only\"\n"), BASE.into(), DrainAndReloadCrio),
            ("an existing source switched to NeverContactSource", BASE.into(), BASE.replace("location = \"quay.io/ns\"\n", "location = \"quay.io/ns\"\n  blocked = true\n"), DrainAndReloadCrio),
            ("insecure changed", BASE.into(), BASE.replace("location = \"quay.io/ns\"\n", "location = \"quay.io/ns\"\n  insecure = true\n"), DrainAndReloadCrio),
            ("a mirror's pull-from-mirror widened to all", BASE.into(), BASE.replace("    pull-from-mirror = \"digest-only\"\n", ""), DrainAndReloadCrio),
            ("a search registry appended", BASE.into(), BASE.replace("\"docker.io\"]", "\"docker.io\", \"quay.io\"]"), ReloadCrio),
            ("search registries reordered", BASE.into(), BASE.replace("[\"registry.access.redhat.com\", \"docker.io\"]", "[\"docker.io\", \"registry.access.redhat.com\"]"), DrainAndReloadCrio),
            ("a search registry removed", BASE.into(), BASE.replace(", \"docker.io\"]", "]"), DrainAndReloadCrio),
            ("a blocked registry without mirrors added (blockedRegistries)", BASE.into(), with_entry("\n[[registry]]\n  prefix = \"\"\n  location = \"untrusted.example.com\"\n  blocked = true\n"), DrainAndReloadCrio),
            ("mirrors reordered (the MCD finds each by location)", BASE.replace("    pull-from-mirror = \"digest-only\"\n", "    pull-from-mirror = \"digest-only\"\n\n  [[registry.mirror]]\n    location = \"second.example.com/ns\"\n    pull-from-mirror = \"digest-only\"\n"), BASE.replace("location = \"mirror.example.com/ns\"", "location = \"second.example.com/ns\"").replace("    pull-from-mirror = \"digest-only\"\n", "    pull-from-mirror = \"digest-only\"\n\n  [[registry.mirror]]\n    location = \"mirror.example.com/ns\"\n    pull-from-mirror = \"digest-only\"\n"), ReloadCrio),
        ];
        for (what, old, new, want) in cases {
            assert_eq!(action(&old, &new), want, "{what}");
        }
    }

    #[test]
    fn other_files() {
        let mut old = files(BASE);
        let mut new = files(BASE);
        new.insert(POLICY_JSON.into(), "{}".into());
        let d = disruption(&old, &new);
        assert_eq!((d.action, d.drain), (Action::ReloadCrio, false));
        // The search-registries drop-in matches no default policy: the MCD reboots for it.
        old.insert(super::super::SEARCH_DROP_IN.into(), "a".into());
        let d = disruption(&old, &new);
        assert_eq!((d.action, d.drain), (Action::Reboot, true));
        assert_eq!(d.reasons.len(), 2, "{:?}", d.reasons);
        let d = disruption(&files(BASE), &files("not toml ["));
        assert_eq!(d.action, Action::DrainAndReloadCrio);
    }
}
