//! What the Machine Config Daemon does to a node when the files MCO writes change: nothing, a
//! CRI-O reload, a drain and a CRI-O reload, or a drain and a reboot. Follows the MCD's rules
//! (machine-config-operator `pkg/daemon/drain.go` `isDrainRequired` and
//! `isSafeContainerRegistryConfChanges`, and the default node-disruption policy of
//! `pkg/apihelpers`: registries.conf is "Special", policy.json a reload, any other path a reboot).
//! A `MachineConfiguration` `spec.nodeDisruptionPolicy` (OCP 4.17+) overrides them per file, as
//! the MCD applies it: the exact path, else the closest parent directory.

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

/// One action of a `spec.nodeDisruptionPolicy.files[].actions[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyAction {
    None,
    /// `Reload` / `Restart` of a service, or `DaemonReload`.
    Service(String),
    Drain,
    Reboot,
    /// The MCD's built-in handling (for registries.conf: the drain check above).
    Special,
}

/// The user's node-disruption policy for files, from `MachineConfiguration/cluster`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisruptionPolicy {
    pub files: Vec<(String, Vec<PolicyAction>)>,
}

impl DisruptionPolicy {
    /// Reads `spec.nodeDisruptionPolicy.files` of a `MachineConfiguration` object (API shape);
    /// `None` for any other object.
    pub fn from_object(obj: &serde_json::Value) -> Option<DisruptionPolicy> {
        if obj["kind"] != "MachineConfiguration" {
            return None;
        }
        let files = obj["spec"]["nodeDisruptionPolicy"]["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                let path = f["path"].as_str()?.to_string();
                let actions = f["actions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| match a["type"].as_str().unwrap_or_default() {
                        "None" => PolicyAction::None,
                        "Drain" => PolicyAction::Drain,
                        "Reboot" => PolicyAction::Reboot,
                        "Special" => PolicyAction::Special,
                        "DaemonReload" => PolicyAction::Service("daemon-reload".into()),
                        t => {
                            let key = if t == "Restart" { "restart" } else { "reload" };
                            let svc = a[key]["serviceName"].as_str().unwrap_or("?");
                            PolicyAction::Service(format!("{} {svc}", t.to_ascii_lowercase()))
                        }
                    })
                    .collect();
                Some((path, actions))
            })
            .collect();
        Some(DisruptionPolicy { files })
    }

    /// The actions for `path`: its own entry, else the longest directory entry above it.
    fn actions_for(&self, path: &str) -> Option<&[PolicyAction]> {
        self.files
            .iter()
            .filter(|(p, _)| {
                p == path
                    || path
                        .strip_prefix(p.trim_end_matches('/'))
                        .is_some_and(|r| r.starts_with('/'))
            })
            .max_by_key(|(p, _)| p.len())
            .map(|(_, a)| a.as_slice())
    }
}

/// Compares the files MCO writes before and after a change (path → contents; a path missing
/// on one side was added or removed), with the cluster's node-disruption policy when known.
pub fn disruption(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    policy: Option<&DisruptionPolicy>,
) -> Disruption {
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
        let user = policy.and_then(|p| p.actions_for(path));
        if let Some(actions) = user.filter(|a| !a.contains(&PolicyAction::Special)) {
            let (a, why) = by_policy(path, actions);
            action = action.max(a);
            reasons.push(why);
            continue;
        }
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

/// What the MCD does for a changed file under the user's policy actions.
fn by_policy(path: &str, actions: &[PolicyAction]) -> (Action, String) {
    let drain = actions.contains(&PolicyAction::Drain);
    let services: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            PolicyAction::Service(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    let action = if actions.contains(&PolicyAction::Reboot) {
        Action::Reboot
    } else if drain {
        Action::DrainAndReloadCrio
    } else if !services.is_empty() {
        Action::ReloadCrio
    } else {
        Action::None
    };
    let what = match action {
        Action::Reboot => "the node is drained and rebooted".to_string(),
        Action::None => "nothing is done".to_string(),
        _ => format!(
            "{}{}",
            if drain {
                "the node is drained, then "
            } else {
                ""
            },
            if services.is_empty() {
                "nothing else".to_string()
            } else {
                services.join(", ")
            }
        ),
    };
    (
        action,
        format!("{path} changed: the MachineConfiguration's nodeDisruptionPolicy applies: {what}"),
    )
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
        disruption(&files(old), &files(new), None).action
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
        let d = disruption(&old, &new, None);
        assert_eq!((d.action, d.drain), (Action::ReloadCrio, false));
        // The search-registries drop-in matches no default policy: the MCD reboots for it.
        old.insert(super::super::SEARCH_DROP_IN.into(), "a".into());
        let d = disruption(&old, &new, None);
        assert_eq!((d.action, d.drain), (Action::Reboot, true));
        assert_eq!(d.reasons.len(), 2, "{:?}", d.reasons);
        let d = disruption(&files(BASE), &files("not toml ["), None);
        assert_eq!(d.action, Action::DrainAndReloadCrio);
    }

    #[test]
    fn the_users_node_disruption_policy_wins() {
        let mc = serde_json::json!({"apiVersion": "operator.openshift.io/v1", "kind": "MachineConfiguration",
        "metadata": {"name": "cluster"},
        "spec": {"nodeDisruptionPolicy": {"files": [
            {"path": "/etc/containers/registries.conf", "actions": [{"type": "Reload", "reload": {"serviceName": "crio.service"}}]},
            {"path": "/etc/containers/registries.conf.d", "actions": [{"type": "Restart", "restart": {"serviceName": "crio.service"}}]},
            {"path": "/etc/containers/policy.json", "actions": [{"type": "Drain"}, {"type": "Reload", "reload": {"serviceName": "crio.service"}}]}
        ]}}});
        let policy = DisruptionPolicy::from_object(&mc).unwrap();
        // A tag mirror would drain by default; the user's policy says reload only.
        let tag = format!("{BASE}\n[[registry]]\n  location = \"docker.io\"\n\n  [[registry.mirror]]\n    location = \"m.example.com/d\"\n    pull-from-mirror = \"tag-only\"\n");
        let d = disruption(&files(BASE), &files(&tag), Some(&policy));
        assert_eq!(
            (d.action, d.drain),
            (Action::ReloadCrio, false),
            "{:?}",
            d.reasons
        );
        assert!(
            d.reasons[0].contains("nodeDisruptionPolicy applies: reload crio.service"),
            "{:?}",
            d.reasons
        );
        // A directory entry covers the files below it; the search drop-in no longer reboots.
        let mut new = files(BASE);
        new.insert(super::super::SEARCH_DROP_IN.into(), "x".into());
        let d = disruption(&files(BASE), &new, Some(&policy));
        assert_eq!(d.action, Action::ReloadCrio, "{:?}", d.reasons);
        new.insert(POLICY_JSON.into(), "{}".into());
        let d = disruption(&files(BASE), &new, Some(&policy));
        assert_eq!(
            (d.action, d.drain),
            (Action::DrainAndReloadCrio, true),
            "{:?}",
            d.reasons
        );
        assert!(DisruptionPolicy::from_object(&serde_json::json!({"kind": "Image"})).is_none());
    }
}
