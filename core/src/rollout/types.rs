//! The rollout's vocabulary: the MCD's view of a node, checks and their outcomes, the policy.

use serde::{Deserialize, Serialize};

use crate::report::NodeReport;

/// The Machine Config Daemon's view of a node, from its annotations (API server), when known.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct McoNodeState {
    pub current_config: Option<String>,
    pub desired_config: Option<String>,
    /// The `machineconfiguration.openshift.io/state` annotation.
    pub state: Option<McdState>,
    pub reason: Option<String>,
    /// The pool's `spec.configuration.name`, when the pool is known.
    pub pool_target: Option<String>,
    /// Canonical hash of the registries configuration that target MachineConfig carries
    /// ("targeted": MCO has rendered the change), when it could be read.
    #[serde(default)]
    pub pool_target_digest: Option<String>,
    /// The pool's `spec.paused`: the MCO does not roll anything out to it.
    #[serde(default)]
    pub pool_paused: bool,
    /// The pool is Degraded (MCO's `Degraded` condition), with its message: no node of it
    /// lands until an admin acts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_degraded: Option<String>,
    /// The node's MachineConfigNode (OpenShift 4.16 and later): when present, the authority on
    /// whether the MCD has finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcn: Option<super::McnState>,
}

impl McoNodeState {
    /// Why a change may never come, appended to "pending" reasons.
    pub(super) fn paused_note(&self) -> &'static str {
        if self.pool_paused {
            "; the pool is paused (spec.paused: true): the MCO will not update its nodes until it is unpaused"
        } else {
            ""
        }
    }
}

/// The machine-config-daemon's `state` annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum McdState {
    Done,
    Working,
    Degraded,
    Unreconcilable,
    Rebooting,
    /// A value this release does not know; shown as given.
    Other(String),
}

impl McdState {
    pub fn as_str(&self) -> &str {
        match self {
            McdState::Done => "Done",
            McdState::Working => "Working",
            McdState::Degraded => "Degraded",
            McdState::Unreconcilable => "Unreconcilable",
            McdState::Rebooting => "Rebooting",
            McdState::Other(s) => s,
        }
    }

    /// The MCD gave up on this node: nothing lands until an admin acts.
    pub fn is_failed(&self) -> bool {
        matches!(self, McdState::Degraded | McdState::Unreconcilable)
    }
}

impl From<String> for McdState {
    fn from(s: String) -> Self {
        match s.as_str() {
            "Done" => McdState::Done,
            "Working" => McdState::Working,
            "Degraded" => McdState::Degraded,
            "Unreconcilable" => McdState::Unreconcilable,
            "Rebooting" => McdState::Rebooting,
            _ => McdState::Other(s),
        }
    }
}

impl From<&str> for McdState {
    fn from(s: &str) -> Self {
        McdState::from(s.to_string())
    }
}

impl From<McdState> for String {
    fn from(s: McdState) -> Self {
        s.as_str().to_string()
    }
}

impl std::fmt::Display for McdState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
    pub(super) fn blocks(self, policy: &Policy) -> bool {
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
    pub effective_digest: Option<String>,
    pub checks: Vec<Check>,
    /// The details of the checks that keep the node from landing, in check order.
    pub reasons: Vec<String>,
    /// The MCD gave up on this node (Degraded, Unreconcilable): it will not land by itself, so
    /// a rollout gate fails at once instead of waiting out its timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
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
