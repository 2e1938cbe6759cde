//! Has a registries configuration "landed" on a node? The pure evaluation behind the collector's
//! rollout views and `mirrorscope wait` (mco-rendering spec §3.6).
//!
//! A node has landed when every check holds: its agent reports recently, the files load, the
//! effective configuration equals the desired one semantically (canonical hash, so encoder
//! differences between OCP releases do not count), registries.conf matches the node's current
//! MachineConfig (and, when the API is known, the MCD says it is done), and CRI-O has applied
//! the configuration since the files last changed. Each check says why it does not hold.

use serde::{Deserialize, Serialize};

use crate::cimage_version::CImageVersion;
use crate::machineconfig::FileMatch;
use crate::openshift::{Refusal, Rendering, REGISTRIES_CONF, SEARCH_DROP_IN};
use crate::registries::{parse_config_str, EffectiveConfig, FileError, FileKind};
use crate::report::{FileRole, NodeReport};

/// The registries.conf the `01-<role>-container-runtime` template leaves on a node when MCO
/// writes none (empty Image spec and no mirror sets).
pub const TEMPLATE_REGISTRIES_CONF: &str =
    "unqualified-search-registries = ['registry.access.redhat.com', 'docker.io']\n";

/// Why a desired configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesiredError {
    #[error("rendered {path} does not load in containers/image: {error}")]
    Load { path: String, error: FileError },
}

/// The configuration nodes should end up with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// `sha256:<hex>` of the canonical effective configuration.
    pub sha256: String,
    pub canonical_json: String,
    /// Where it came from (files, the cluster's objects, a hash given on the command line).
    pub origin: String,
}

impl Desired {
    /// The effective configuration a node gets from MCO's files for this rendering: the
    /// rendered registries.conf (or the template when MCO writes none) plus the search drop-in.
    pub fn from_rendering(r: &Rendering, origin: &str) -> Result<Desired, DesiredError> {
        let main_text = r.registries_conf().unwrap_or(TEMPLATE_REGISTRIES_CONF);
        let main = load(main_text, REGISTRIES_CONF, FileKind::Main)?;
        let drop_ins = match r.file(SEARCH_DROP_IN) {
            Some(t) => vec![load(t, SEARCH_DROP_IN, FileKind::DropIn)?],
            None => Vec::new(),
        };
        let cfg = EffectiveConfig::from_files(
            Some(main),
            drop_ins,
            (REGISTRIES_CONF.to_string(), String::new()),
        );
        Ok(Desired {
            sha256: cfg.canonical_sha256(),
            canonical_json: cfg.canonical_json(),
            origin: origin.to_string(),
        })
    }

    /// A desired state known only by its hash (e.g. `wait --desired` evaluated by the collector).
    pub fn from_sha256(sha256: &str, origin: &str) -> Desired {
        Desired {
            sha256: sha256.to_string(),
            canonical_json: String::new(),
            origin: origin.to_string(),
        }
    }
}

fn load(
    text: &str,
    path: &str,
    kind: FileKind,
) -> Result<crate::registries::ConfigFile, DesiredError> {
    parse_config_str(text, path, kind, CImageVersion::default()).map_err(|error| {
        DesiredError::Load {
            path: path.to_string(),
            error,
        }
    })
}

/// What the nodes are measured against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// No desired state: nodes must agree with each other (see [`summarize`]).
    Agreement,
    Desired(Desired),
    /// MCO would refuse the desired objects: nodes keep the old configuration.
    Refused {
        reason: String,
        log: String,
    },
}

impl Target {
    pub fn from_render(result: &Result<Rendering, Refusal>, origin: &str) -> Target {
        match result {
            Ok(r) => match Desired::from_rendering(r, origin) {
                Ok(d) => Target::Desired(d),
                Err(e) => Target::Refused {
                    reason: e.to_string(),
                    log: String::new(),
                },
            },
            Err(refusal) => Target::Refused {
                reason: refusal.reason.clone(),
                log: refusal.log.clone(),
            },
        }
    }
}

/// The Machine Config Daemon's view of a node, from its annotations (API server), when known.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct McoNodeState {
    pub current_config: Option<String>,
    pub desired_config: Option<String>,
    /// `Done`, `Working`, `Degraded`, `Unreconcilable`, `Rebooting`.
    pub state: Option<String>,
    pub reason: Option<String>,
    /// The pool's `spec.configuration.name`, when the pool is known.
    pub pool_target: Option<String>,
    /// Canonical hash of the registries configuration that target MachineConfig carries
    /// (§3.6 "targeted"), when it could be read.
    #[serde(default)]
    pub pool_target_sha256: Option<String>,
    /// The pool's `spec.paused`: the MCO does not roll anything out to it.
    #[serde(default)]
    pub pool_paused: bool,
}

impl McoNodeState {
    /// Why a change may never come, appended to "pending" reasons.
    fn paused_note(&self) -> &'static str {
        if self.pool_paused {
            "; the pool is paused (spec.paused: true): the MCO will not update its nodes until it is unpaused"
        } else {
            ""
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    Pass,
    /// Not landed, and it will not land by itself (invalid file, drift, refusal, stale agent).
    Fail,
    /// On its way (MCD working, CRI-O not reloaded yet).
    Pending,
    /// Cannot tell (no journal, no timestamps).
    Unknown,
    /// Does not apply on this node (no MachineConfig: not an MCO-managed node).
    NotApplicable,
}

impl CheckState {
    fn blocks(self, policy: &Policy) -> bool {
        match self {
            CheckState::Pass | CheckState::NotApplicable => false,
            CheckState::Unknown => policy.unknown_blocks,
            CheckState::Fail | CheckState::Pending => true,
        }
    }
}

/// Which check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// The agent reported within `stale_after`.
    Reporting,
    /// The files on disk load without error.
    Valid,
    /// The effective configuration equals the desired one.
    Desired,
    /// registries.conf matches the node's current MachineConfig (and the MCD is done).
    MachineConfig,
    /// CRI-O applied the configuration after the files last changed.
    CrioReloaded,
}

impl CheckName {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Reporting => "reporting",
            CheckName::Valid => "valid",
            CheckName::Desired => "desired",
            CheckName::MachineConfig => "machine_config",
            CheckName::CrioReloaded => "crio_reloaded",
        }
    }
}

/// One check's result, with the reason in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: CheckName,
    pub state: CheckState,
    pub detail: String,
}

/// How strict the evaluation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Seconds without a report after which a node is stale.
    pub stale_after_secs: u64,
    /// Whether a check that cannot tell (e.g. no CRI-O journal) keeps a node from landing.
    pub unknown_blocks: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            stale_after_secs: 120,
            unknown_blocks: true,
        }
    }
}

/// One node's rollout state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRollout {
    pub node: String,
    pub landed: bool,
    pub stale: bool,
    pub effective_sha256: Option<String>,
    pub checks: Vec<Check>,
    /// The details of the checks that keep the node from landing, in check order.
    pub reasons: Vec<String>,
}

/// A node as the collector knows it.
#[derive(Debug, Clone, Copy)]
pub struct NodeInput<'a> {
    pub node: &'a str,
    /// The latest report, if the agent ever reported.
    pub report: Option<&'a NodeReport>,
    /// Seconds since that report was received (collector clock, so agent clock skew does not count).
    pub report_age_secs: u64,
    pub mco: Option<&'a McoNodeState>,
}

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
    let sha = report.registries.effective_sha256.clone();
    finish(input.node, sha, stale, checks, policy)
}

fn finish(
    node: &str,
    effective_sha256: Option<String>,
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
        effective_sha256,
        checks,
        reasons,
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
    let sha = report.registries.effective_sha256.as_deref();
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
                let targeted = match mco.and_then(|m| Some((m.pool_target.as_deref()?, m.pool_target_sha256.as_deref()?))) {
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
                        "effective configuration {} differs from the desired rendering {} ({}){targeted}",
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
            if state == "Degraded" || state == "Unreconcilable" {
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
        (Some(_), Some(FileMatch::Matches)) => check(
            CheckName::MachineConfig,
            CheckState::Pass,
            format!("registries.conf matches MachineConfig {name}"),
        ),
        (Some(_), Some(FileMatch::Differs { expected_sha256, actual_sha256 })) => check(
            CheckName::MachineConfig,
            CheckState::Fail,
            format!(
                "registries.conf does not match MachineConfig {name} (on disk {}, MachineConfig {}): drift, the MCD will mark the node Degraded",
                short(actual_sha256),
                short(expected_sha256)
            ),
        ),
        (Some(_), Some(FileMatch::Missing { .. })) => check(
            CheckName::MachineConfig,
            CheckState::Fail,
            format!("registries.conf is missing but MachineConfig {name} carries it"),
        ),
        (Some(_), Some(FileMatch::NotInMachineConfig)) => check(
            CheckName::MachineConfig,
            CheckState::NotApplicable,
            format!("MachineConfig {name} does not manage registries.conf"),
        ),
        (Some(_), Some(FileMatch::Undecodable(e))) => check(
            CheckName::MachineConfig,
            CheckState::Unknown,
            format!("MachineConfig {name}: cannot decode registries.conf: {e}"),
        ),
    };
    if file_state.state != CheckState::Pass {
        return file_state;
    }
    let Some(m) = mco else { return file_state };
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
    if cur != des || m.state.as_deref().is_some_and(|s| s != "Done") {
        return check(
            CheckName::MachineConfig,
            CheckState::Pending,
            format!(
                "machine-config-daemon {}: currentConfig {} -> desiredConfig {}",
                m.state.as_deref().unwrap_or("state unknown"),
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
        .and_then(|t| parse_rfc3339(t).map(|v| (t, v)));
    let failed = report
        .crio
        .last_reload_failure_at
        .as_deref()
        .and_then(|t| parse_rfc3339(t).map(|v| (t, v)));
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
        .filter_map(|t| parse_rfc3339(t).map(|v| (t, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    newest.or_else(|| {
        let t = report.registries.changed_at.as_deref()?;
        parse_rfc3339(t).map(|v| (t, v))
    })
}

fn short(sha: &str) -> &str {
    let hex = sha.strip_prefix("sha256:").unwrap_or(sha);
    hex.get(..12).unwrap_or(hex)
}

/// Counts over a set of nodes, and the nodes that hold the set back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub total: usize,
    pub landed: usize,
    pub lagging: usize,
    pub stale: usize,
    /// Every node landed (and, without a desired state, they all agree).
    pub complete: bool,
    /// Without a desired state: the configuration most nodes run.
    pub majority_sha256: Option<String>,
    pub laggards: Vec<Laggard>,
}

/// A node that has not landed, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Laggard {
    pub node: String,
    pub reasons: Vec<String>,
}

/// Summarises evaluated nodes. Under [`Target::Agreement`], a node whose effective configuration
/// differs from the one most nodes run counts as lagging too. An empty set is never complete.
pub fn summarize(nodes: &mut [NodeRollout], target: &Target) -> Summary {
    let mut majority = None;
    if matches!(target, Target::Agreement) {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for n in nodes.iter() {
            if let Some(s) = n.effective_sha256.as_deref() {
                *counts.entry(s).or_default() += 1;
            }
        }
        // Ties go to the smallest hash so the answer does not depend on report order.
        majority = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(s, _)| s.to_string());
        if let Some(m) = majority.as_deref() {
            let total = nodes.len();
            let agreeing = counts.get(m).copied().unwrap_or(0);
            for n in nodes.iter_mut() {
                if let Some(s) = n.effective_sha256.as_deref() {
                    if s != m {
                        let reason = format!(
                            "desired: effective configuration {} differs from {} run by {agreeing} of {total} nodes",
                            short(s),
                            short(m)
                        );
                        n.reasons.push(reason);
                        n.landed = false;
                    }
                }
            }
        }
    }
    let mut s = count(nodes);
    s.majority_sha256 = majority;
    s
}

/// Counts evaluated nodes (a subset of a [`summarize`]d set, e.g. one pool) without judging them
/// again. An empty set is never complete.
pub fn count(nodes: &[NodeRollout]) -> Summary {
    let landed = nodes.iter().filter(|n| n.landed).count();
    let stale = nodes.iter().filter(|n| n.stale).count();
    let laggards: Vec<Laggard> = nodes
        .iter()
        .filter(|n| !n.landed)
        .map(|n| Laggard {
            node: n.node.clone(),
            reasons: n.reasons.clone(),
        })
        .collect();
    Summary {
        total: nodes.len(),
        landed,
        lagging: nodes.len() - landed,
        stale,
        complete: !nodes.is_empty() && landed == nodes.len(),
        majority_sha256: None,
        laggards,
    }
}

/// Seconds since the Unix epoch of an RFC 3339 timestamp (`Z` or `±hh:mm`, optional fraction).
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = b.get(from..to)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac = 0.0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let mut scale = 0.1;
        for d in b.get(start..i)?.iter().take(9) {
            frac += f64::from(d - b'0') * scale;
            scale /= 10.0;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(c @ (b'+' | b'-')) if i + 6 == b.len() && sep(i + 3, b":") => {
            let v = num(i + 1, i + 3)? * 3600 + num(i + 4, i + 6)? * 60;
            if *c == b'+' {
                v
            } else {
                -v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(secs as f64 + frac)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats seconds since the epoch as RFC 3339 UTC with millisecond precision.
pub fn format_rfc3339(secs: f64) -> String {
    let ms_total = (secs * 1000.0).round() as i64;
    let (s, ms) = (ms_total.div_euclid(1000), ms_total.rem_euclid(1000));
    let (days, rem) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openshift::{parse_str, render, ParseOptions, RenderOptions};
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
                effective_sha256: sha,
                effective_canonical: None,
                changed_at: Some("2026-11-21T08:00:00Z".into()),
            },
            machine_config: MachineConfigState {
                current_config: Some("rendered-worker-1".into()),
                registries_conf: Some(FileMatch::Matches),
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
            sha256: None,
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
            pool_target_sha256: Some("sha256:0123456789abcdef".into()),
            pool_paused: false,
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
        assert_eq!(s.majority_sha256.as_deref(), Some(a.as_str()));
    }

    #[test]
    fn times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1.0));
        assert_eq!(
            parse_rfc3339("2026-11-21T08:00:00+01:00"),
            parse_rfc3339("2026-11-21T07:00:00Z")
        );
        assert_eq!(
            format_rfc3339(parse_rfc3339("2026-02-28T23:59:59.250Z").unwrap()),
            "2026-02-28T23:59:59.250Z"
        );
        for bad in [
            "",
            "2026-11-21",
            "2026-13-01T00:00:00Z",
            "2026-11-21T00:00:00",
            "2026-11-21T00:00:00.Z",
            "２０２６-11-21T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
