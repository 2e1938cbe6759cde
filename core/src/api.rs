//! The collector's JSON views: served by `mirrorscope-collector`, read by the `mirrorscope` CLI.

use std::collections::BTreeMap;

use crate::journal::PullRecord;
use crate::report::NodeReport;
use crate::rollout::{Check, Summary, Target};
use serde::{Deserialize, Serialize};

/// How a node without a pool is shown, in the CLI's tables and on the status page alike (`oc get`
/// shows an empty column the same way).
pub const NO_POOL: &str = "<none>";

/// A pool's name for display: [`NO_POOL`] for the empty one.
pub fn pool_label(pool: &str) -> &str {
    if pool.is_empty() {
        NO_POOL
    } else {
        pool
    }
}

/// What to run when no agent has reported to a collector: the DaemonSet, then an agent's log.
pub const NO_AGENT_CHECKS: [&str; 2] = [
    "oc -n mirrorscope get ds mirrorscope-agent",
    "oc -n mirrorscope logs ds/mirrorscope-agent",
];

/// What nodes are measured against, in a form a table can print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetView {
    /// `desired`, `agreement` or `refused`.
    pub kind: String,
    pub digest: Option<String>,
    pub origin: Option<String>,
    /// MCO's refusal, when it would refuse.
    pub reason: Option<String>,
}

impl From<&Target> for TargetView {
    fn from(t: &Target) -> Self {
        match t {
            Target::Agreement => TargetView {
                kind: "agreement".into(),
                digest: None,
                origin: None,
                reason: None,
            },
            Target::Desired(d) => TargetView {
                kind: "desired".into(),
                digest: Some(d.sha256.clone()),
                origin: Some(d.origin.clone()),
                reason: None,
            },
            Target::Refused { reason, .. } => TargetView {
                kind: "refused".into(),
                digest: None,
                origin: None,
                reason: Some(format!(
                    "MCO will not render this; nodes keep the old config: {reason}"
                )),
            },
        }
    }
}

/// One node's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub node: String,
    /// MachineConfigPool, when the API is watched; empty otherwise.
    pub pool: String,
    pub landed: bool,
    pub stale: bool,
    pub effective_digest: Option<String>,
    /// When the collector received the latest report (RFC 3339).
    pub last_report_at: Option<String>,
    pub report_age_secs: Option<u64>,
    pub agent_version: Option<String>,
    pub current_config: Option<String>,
    /// The MachineConfigNode's phase (`updated`, `draining`, `rebooting`, `reloading crio`,
    /// `degraded: ...`), where the cluster has MachineConfigNodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcn_phase: Option<String>,
    pub checks: Vec<Check>,
    pub reasons: Vec<String>,
}

/// `GET /v1/nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodesView {
    pub target: TargetView,
    pub nodes: Vec<NodeView>,
}

/// `GET /v1/nodes/{name}`: the row plus the node's latest report (without its pulls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDetail {
    #[serde(flatten)]
    pub view: NodeView,
    pub report: Option<NodeReport>,
}

/// One pool's rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRollout {
    pub pool: String,
    #[serde(flatten)]
    pub summary: Summary,
}

/// `GET /v1/rollout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutView {
    pub target: TargetView,
    /// Every selected node landed (and at least `min_nodes` were selected).
    pub complete: bool,
    /// The whole selection.
    pub overall: Summary,
    pub pools: Vec<PoolRollout>,
}

/// `GET /v1/pulls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullsView {
    /// Records matching the filter among those kept (the newest are returned first).
    pub matching: usize,
    pub pulls: Vec<PullRecord>,
}

/// Pulls of one source registry, as seen by the collector since it started (plus its snapshot).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryStats {
    pub registry: String,
    pub pulls: u64,
    pub by_mirror: u64,
    pub by_source: u64,
    /// Served by the source after a mirror was tried.
    pub fallbacks: u64,
    /// Failed because the source is blocked and no mirror served it.
    pub blocked: u64,
    pub failed: u64,
    /// Failed attempts by error class (mirrors and source alike).
    pub failures_by_class: BTreeMap<String, u64>,
    /// Whether the desired configuration (or, without one, any node's) has a mirror rule for
    /// this registry; `None` when no configuration is known.
    pub mirror_rule: Option<bool>,
}

/// `GET /v1/registries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistriesView {
    pub registries: Vec<RegistryStats>,
    /// Registries pulled from with no mirror rule at all.
    pub without_mirror_rule: Vec<String>,
}

/// Error body of every 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `GET /v1/configurations[?node=N]`: the distinct registries files the nodes run, each with the
/// nodes that run it, so a client can resolve under exactly what those nodes load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedConfiguration {
    /// SHA-256 over the files' paths, roles and texts: equal files, equal id.
    pub id: String,
    pub nodes: Vec<String>,
    /// Registries files with their text (policy.json is left out).
    pub files: Vec<crate::report::FileState>,
}

/// `GET /v1/audit`: the collector's last audit of every image the cluster uses, under each
/// configuration its nodes run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    /// Whether the collector audits at all (`--audit-interval` not 0).
    pub enabled: bool,
    pub running: bool,
    /// The last audit that finished, if any.
    pub last: Option<AuditRun>,
    /// Why the last attempt failed, when it did.
    pub last_error: Option<String>,
}

/// One finished audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRun {
    /// RFC 3339 UTC.
    pub finished_at: String,
    pub duration_ms: u64,
    pub probed: bool,
    /// Per distinct image, its worst verdict under any configuration.
    pub summary: crate::audit::Summary,
    pub configurations: Vec<ConfigurationAudit>,
}

/// The audit under one configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigurationAudit {
    /// The nodes that run it (none for a desired configuration no node runs yet).
    pub nodes: Vec<String>,
    /// The desired configuration (the cluster's IDMS/ITMS/ICSP rendering, or `--desired`):
    /// what every node will run once the rollout lands.
    pub desired: bool,
    /// What their manifests must offer (the nodes' `kubernetes.io/arch`).
    pub architectures: Vec<String>,
    pub summary: crate::audit::Summary,
    pub images: Vec<crate::audit::AuditEntry>,
}

/// `GET /v1/inventory`: every image the cluster uses, with who uses it.
pub type InventoryView = BTreeMap<String, Vec<String>>;
