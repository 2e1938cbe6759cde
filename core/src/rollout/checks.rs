//! The checks that decide whether a node has landed, each with its reason in words.

use crate::machineconfig::FileMatch;
use crate::report::{FileRole, NodeReport, PathMatch};

use super::types::*;
use super::Target;

/// Evaluates one node against `target`.
pub fn evaluate(input: &NodeInput<'_>, target: &Target, policy: &Policy) -> NodeRollout {
    let mut checks = Vec::with_capacity(5);
    let mut stale = false;
    let Some(report) = input.report else {
        checks.push(check(
            CheckName::Reporting,
            CheckState::Fail,
            "no report from the agent on this node",
        ));
        return finish(input.node, None, false, checks, policy);
    };
    if input.report_age_secs > policy.stale_after_secs {
        stale = true;
        checks.push(check(
            CheckName::Reporting,
            CheckState::Fail,
            format!(
                "stale: last report {}s ago (stale after {}s); its state below may be out of date",
                input.report_age_secs, policy.stale_after_secs
            ),
        ));
    } else {
        checks.push(check(
            CheckName::Reporting,
            CheckState::Pass,
            format!("last report {}s ago", input.report_age_secs),
        ));
    }
    checks.push(valid_check(report));
    checks.push(desired_check(report, target, input.mco));
    checks.push(machine_config_check(report, input.mco));
    checks.push(crio_check(report));
    let sha = report.registries.effective_digest.clone();
    let mut r = finish(input.node, sha, stale, checks, policy);
    r.degraded = input.mco.and_then(|m| {
        if let Some(d) = m.mcn.as_ref().and_then(|n| n.degraded.as_deref()) {
            return Some(format!("MachineConfigNode NodeDegraded: {d}"));
        }
        if let Some(state) = m.state.as_ref().filter(|s| s.is_failed()) {
            return Some(format!(
                "machine-config-daemon state {state}: {}",
                m.reason.as_deref().unwrap_or("no reason given")
            ));
        }
        m.pool_degraded.clone()
    });
    r
}

fn finish(
    node: &str,
    effective_digest: Option<String>,
    stale: bool,
    checks: Vec<Check>,
    policy: &Policy,
) -> NodeRollout {
    let reasons: Vec<String> = checks
        .iter()
        .filter(|c| c.state.blocks(policy))
        .map(|c| format!("{}: {}", c.name.as_str(), c.detail))
        .collect();
    NodeRollout {
        node: node.to_string(),
        landed: reasons.is_empty(),
        stale,
        effective_digest,
        checks,
        reasons,
        degraded: None,
    }
}

fn check(name: CheckName, state: CheckState, detail: impl Into<String>) -> Check {
    Check {
        name,
        state,
        detail: detail.into(),
    }
}

fn valid_check(report: &NodeReport) -> Check {
    let r = &report.registries;
    if r.valid {
        return check(CheckName::Valid, CheckState::Pass, "files load");
    }
    let error = r
        .error
        .clone()
        .or_else(|| r.files.iter().find_map(|f| f.error.clone()))
        .unwrap_or_else(|| "the registries configuration does not load".to_string());
    check(
        CheckName::Valid,
        CheckState::Fail,
        format!("invalid registries configuration (CRI-O keeps the last valid one): {error}"),
    )
}

fn desired_check(report: &NodeReport, target: &Target, mco: Option<&McoNodeState>) -> Check {
    let sha = report.registries.effective_digest.as_deref();
    match target {
        Target::Agreement => check(
            CheckName::Desired,
            CheckState::NotApplicable,
            "no desired state: nodes are compared with each other",
        ),
        Target::Refused { reason, .. } => check(
            CheckName::Desired,
            CheckState::Fail,
            format!("MCO will not render this; nodes keep the old config: {reason}"),
        ),
        Target::Desired(d) => match sha {
            Some(s) if s == d.sha256 => check(
                CheckName::Desired,
                CheckState::Pass,
                "matches the desired rendering",
            ),
            Some(s) => {
                let targeted = match mco.and_then(|m| Some((m.pool_target.as_deref()?, m.pool_target_digest.as_deref()?))) {
                    Some((mc, t)) if t == d.sha256 => format!(
                        "; the pool's target MachineConfig {mc} carries it: the node has not applied it yet{}",
                        mco.map(McoNodeState::paused_note).unwrap_or_default()
                    ),
                    Some((mc, t)) => format!(
                        "; the pool's target MachineConfig {mc} carries {} instead: MCO has not rendered the desired objects (lag, refusal, or a user MachineConfig overriding registries.conf)",
                        short(t)
                    ),
                    None => String::new(),
                };
                check(
                    CheckName::Desired,
                    CheckState::Pending,
                    format!(
                        "effective configuration (canonical sha256 {}) differs from the desired rendering ({}, from {}){targeted}",
                        short(s),
                        short(&d.sha256),
                        d.origin
                    ),
                )
            }
            None => check(
                CheckName::Desired,
                CheckState::Fail,
                "no valid effective configuration reported",
            ),
        },
    }
}

fn machine_config_check(report: &NodeReport, mco: Option<&McoNodeState>) -> Check {
    let mc = &report.machine_config;
    let name = mc.current_config.as_deref().unwrap_or("?");
    if let Some(m) = mco {
        if let Some(state) = &m.state {
            if state.is_failed() {
                let reason = m.reason.as_deref().unwrap_or("no reason given");
                return check(
                    CheckName::MachineConfig,
                    CheckState::Fail,
                    format!("machine-config-daemon state {state}: {reason}"),
                );
            }
        }
    }
    let file_state = match (&mc.current_config, &mc.registries_conf) {
        (None, _) => match &mc.error {
            Some(e) => check(
                CheckName::MachineConfig,
                CheckState::Fail,
                format!("cannot read the node's current MachineConfig: {e}"),
            ),
            None => check(
                CheckName::MachineConfig,
                CheckState::NotApplicable,
                "no current MachineConfig on this node (not managed by the MCO)",
            ),
        },
        (Some(_), None) => check(
            CheckName::MachineConfig,
            CheckState::Unknown,
            format!("MachineConfig {name}: registries.conf not compared"),
        ),
        (Some(_), Some(m)) => file_check("registries.conf", m, name),
    };
    let file_state = match file_state.state {
        CheckState::Pass | CheckState::NotApplicable if mc.current_config.is_some() => {
            match &mc.error {
                // A file of the MachineConfig's the agent could not read is not compared: the
                // node cannot be said to have landed on it.
                Some(e) => check(
                    CheckName::MachineConfig,
                    CheckState::Unknown,
                    format!("MachineConfig {name}: {e}"),
                ),
                None => signature_files_check(&mc.signature_files, name, file_state),
            }
        }
        _ => file_state,
    };
    if file_state.state != CheckState::Pass {
        return file_state;
    }
    let Some(m) = mco else { return file_state };
    if let Some(n) = &m.mcn {
        if let Some(d) = &n.degraded {
            return check(
                CheckName::MachineConfig,
                CheckState::Fail,
                format!("MachineConfigNode NodeDegraded: {d}"),
            );
        }
        if !n.landed() {
            return check(
                CheckName::MachineConfig,
                CheckState::Pending,
                format!(
                    "MachineConfigNode {}: current {} -> desired {}{}",
                    n.phase,
                    n.current.as_deref().unwrap_or("?"),
                    n.desired.as_deref().unwrap_or("?"),
                    m.paused_note()
                ),
            );
        }
        // The MCD finished this desired config; the file must be the one it carries.
        if n.current.as_deref() != mc.current_config.as_deref() {
            return check(
                CheckName::MachineConfig,
                CheckState::Pending,
                format!(
                    "MachineConfigNode says {}, the node's currentconfig file says {name}",
                    n.current.as_deref().unwrap_or("?")
                ),
            );
        }
    }
    let (cur, des) = (m.current_config.as_deref(), m.desired_config.as_deref());
    if let Some(target) = m.pool_target.as_deref() {
        if des.is_some_and(|d| d != target) {
            return check(
                CheckName::MachineConfig,
                CheckState::Pending,
                format!(
                    "pool targets {target}, node's desiredConfig is {}{}",
                    des.unwrap_or("?"),
                    m.paused_note()
                ),
            );
        }
    }
    if cur != des || m.state.as_ref().is_some_and(|s| *s != McdState::Done) {
        return check(
            CheckName::MachineConfig,
            CheckState::Pending,
            format!(
                "machine-config-daemon {}: currentConfig {} -> desiredConfig {}",
                m.state.as_ref().map_or("state unknown", McdState::as_str),
                cur.unwrap_or("?"),
                des.unwrap_or("?")
            ),
        );
    }
    if cur.is_some() && cur != mc.current_config.as_deref() {
        return check(
            CheckName::MachineConfig,
            CheckState::Pending,
            format!(
                "node annotation says {}, the node's currentconfig file says {name}",
                cur.unwrap_or("?")
            ),
        );
    }
    file_state
}

fn crio_check(report: &NodeReport) -> Check {
    let changed = last_change(report);
    let applied = report
        .crio
        .last_applied_at
        .as_deref()
        .and_then(|t| crate::time::parse_rfc3339_secs(t).map(|v| (t, v)));
    let failed = report
        .crio
        .last_reload_failure_at
        .as_deref()
        .and_then(|t| crate::time::parse_rfc3339_secs(t).map(|v| (t, v)));
    if let Some((at, f)) = failed {
        let after_change = changed.is_none_or(|(_, c)| f >= c);
        let after_apply = applied.is_none_or(|(_, a)| f > a);
        if after_change && after_apply {
            let msg = report.crio.last_reload_failure.as_deref().unwrap_or("");
            return check(
                CheckName::CrioReloaded,
                CheckState::Fail,
                format!("CRI-O failed to reload the registries configuration at {at}: {msg}"),
            );
        }
    }
    match (changed, applied) {
        (Some((_, c)), Some((at, a))) if a >= c => check(
            CheckName::CrioReloaded,
            CheckState::Pass,
            format!("CRI-O applied it at {at}"),
        ),
        (None, Some((at, _))) => check(
            CheckName::CrioReloaded,
            CheckState::Pass,
            format!("CRI-O applied a configuration at {at} (file change time unknown)"),
        ),
        (Some((ct, _)), _) if report.journal.following => check(
            CheckName::CrioReloaded,
            CheckState::Pending,
            format!("CRI-O has not applied the configuration changed at {ct} yet"),
        ),
        _ => {
            let why = report
                .journal
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            check(
                CheckName::CrioReloaded,
                CheckState::Unknown,
                format!("cannot tell whether CRI-O applied it: the agent does not read CRI-O's journal{why}"),
            )
        }
    }
}

/// When the node's registries files last changed: the newest mtime of registries.conf and the
/// drop-ins (the MCD writes the file before CRI-O reloads, so an apply after it is an apply of
/// it, whenever the agent noticed), else the agent's `changed_at` (e.g. only a deletion left no
/// mtime). policy.json is left out: CRI-O reads it per pull, not on reload.
fn last_change(report: &NodeReport) -> Option<(&str, f64)> {
    let newest = report
        .registries
        .files
        .iter()
        .filter(|f| f.role != FileRole::Policy)
        .filter_map(|f| f.mtime.as_deref())
        .filter_map(|t| crate::time::parse_rfc3339_secs(t).map(|v| (t, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    newest.or_else(|| {
        let t = report.registries.changed_at.as_deref()?;
        crate::time::parse_rfc3339_secs(t).map(|v| (t, v))
    })
}

/// The signature policy files the MachineConfig carries (ClusterImagePolicy / ImagePolicy):
/// a node whose registries.conf landed but whose policy.json or sigstore attachments file did
/// not would fail or pass signature checks unlike the rest of the pool. `registries` is the
/// registries.conf check, passed on when every one matches.
fn signature_files_check(files: &[PathMatch], name: &str, registries: Check) -> Check {
    if let Some(failed) = files
        .iter()
        .map(|f| file_check(&f.path, &f.result, name))
        .find(|c| !matches!(c.state, CheckState::Pass | CheckState::NotApplicable))
    {
        return failed;
    }
    if files.is_empty() {
        return registries;
    }
    let n = files.len();
    let plural = if n == 1 { "" } else { "s" };
    let message = match registries.state {
        CheckState::Pass => format!(
            "registries.conf and {n} signature policy file{plural} match MachineConfig {name}"
        ),
        _ => format!("{n} signature policy file{plural} match MachineConfig {name}"),
    };
    check(CheckName::MachineConfig, CheckState::Pass, message)
}

/// One node file (`file` as messages name it) against MachineConfig `name`.
fn file_check(file: &str, m: &FileMatch, name: &str) -> Check {
    match m {
        FileMatch::Matches => check(
            CheckName::MachineConfig,
            CheckState::Pass,
            format!("{file} matches MachineConfig {name}"),
        ),
        FileMatch::Differs {
            expected_sha256,
            actual_sha256,
        } => check(
            CheckName::MachineConfig,
            CheckState::Fail,
            format!(
                "{file} does not match MachineConfig {name} (file bytes: sha256 {} on disk, {} in the MachineConfig): drift, the MCD will mark the node Degraded",
                short(actual_sha256),
                short(expected_sha256)
            ),
        ),
        FileMatch::Missing { .. } => check(
            CheckName::MachineConfig,
            CheckState::Fail,
            format!("{file} is missing but MachineConfig {name} carries it"),
        ),
        FileMatch::NotInMachineConfig => check(
            CheckName::MachineConfig,
            CheckState::NotApplicable,
            format!("MachineConfig {name} does not manage {file}"),
        ),
        FileMatch::Undecodable(e) => check(
            CheckName::MachineConfig,
            CheckState::Unknown,
            format!("MachineConfig {name}: cannot decode {file}: {e}"),
        ),
    }
}

pub(super) fn short(sha: &str) -> &str {
    let hex = sha.strip_prefix("sha256:").unwrap_or(sha);
    hex.get(..12).unwrap_or(hex)
}
