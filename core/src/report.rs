//! The NodeReport: what an agent knows about its node, served at `GET /v1/report` and pushed to
//! the collector (`POST /v1/reports`). Versioned JSON; unknown fields are rejected by the
//! collector, so a field is only ever added together with a version bump.

use serde::{Deserialize, Serialize};

use crate::journal::PullRecord;
use crate::machineconfig::FileMatch;

/// Wire version of [`NodeReport`].
pub const NODE_REPORT_VERSION: u32 = 1;

/// Everything one agent reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeReport {
    pub version: u32,
    pub node: String,
    pub agent_version: String,
    /// Random per agent process, so the collector can tell a restart from a replay.
    pub agent_instance: String,
    /// Increases with every report an agent instance builds.
    pub seq: u64,
    /// RFC 3339 UTC.
    pub generated_at: String,
    pub registries: RegistriesState,
    pub machine_config: MachineConfigState,
    pub crio: CrioState,
    pub journal: JournalState,
    /// Pull records not yet acknowledged by the collector (push), or the recent ones (GET).
    pub pulls: Vec<PullRecord>,
    /// Records dropped because the outbox was full (cumulative).
    pub pulls_dropped: u64,
    pub counters: PullCounters,
}

/// The node's registries configuration as CRI-O would load it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesState {
    /// Main file, drop-ins in reading order, then policy.json.
    pub files: Vec<FileState>,
    /// Whether the files on disk load without error right now.
    pub valid: bool,
    /// containers/image's message for the invalid file (names the file).
    pub error: Option<String>,
    /// Canonical hash of the last valid effective configuration (what CRI-O keeps using when a
    /// file turns invalid).
    #[serde(alias = "effective_sha256")]
    pub effective_digest: Option<String>,
    /// Canonical JSON of that configuration (see `EffectiveConfig::canonical_json`).
    pub effective_canonical: Option<String>,
    /// When the effective configuration last changed (RFC 3339), as seen by the agent.
    pub changed_at: Option<String>,
}

/// Which role a watched file plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    Main,
    DropIn,
    Policy,
}

/// One watched file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileState {
    /// Path on the node (without the agent's host-root prefix).
    pub path: String,
    pub role: FileRole,
    pub exists: bool,
    /// `sha256:<hex>` of the file's bytes (agents before this release sent it as `sha256`).
    #[serde(alias = "sha256")]
    pub digest: Option<String>,
    pub size: Option<u64>,
    /// Modification time, RFC 3339.
    pub mtime: Option<String>,
    /// Read or parse error for this file alone.
    pub error: Option<String>,
    /// The text, for registries files (small; lets the collector explain against this node).
    pub contents: Option<String>,
}

/// What the Machine Config Daemon says the node runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfigState {
    /// `metadata.name` of `/etc/machine-config-daemon/currentconfig`.
    pub current_config: Option<String>,
    /// registries.conf on disk versus the bytes the current MachineConfig carries.
    pub registries_conf: Option<FileMatch>,
    /// The signature policy files the current MachineConfig carries (policy.json, the
    /// `registries.d` sigstore attachments file, CRI-O's per-namespace policies), each on disk
    /// versus its bytes: a rollout of a ClusterImagePolicy has landed only when they match too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signature_files: Vec<PathMatch>,
    /// `/run/machine-config-daemon-force` exists.
    pub force_file: bool,
    pub error: Option<String>,
}

/// One node file compared with the MachineConfig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathMatch {
    pub path: String,
    #[serde(rename = "match")]
    pub result: FileMatch,
}

/// CRI-O's view, from its journal.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrioState {
    /// Last `Applied new registry configuration`, RFC 3339.
    pub last_applied_at: Option<String>,
    /// Last `system registries reload failed`, RFC 3339, and its message.
    pub last_reload_failure_at: Option<String>,
    pub last_reload_failure: Option<String>,
}

/// The agent's journal reader.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalState {
    pub following: bool,
    pub cursor: Option<String>,
    pub error: Option<String>,
}

/// Cumulative counters since the agent started (low cardinality: no image or pod).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullCounters {
    pub pulls: Vec<PullCount>,
    pub attempts: Vec<AttemptCount>,
}

/// `mirrorscope_pulls_total{registry, served_by_kind, outcome}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullCount {
    pub registry: String,
    /// `mirror`, `source` or `none`.
    pub served_by_kind: String,
    pub outcome: String,
    pub count: u64,
}

/// `mirrorscope_pull_attempts_total{location, error_class}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptCount {
    /// Registry host of the location tried.
    pub location: String,
    /// Error class, or `none` for a served attempt, `unknown` when the journal gave no reason.
    pub error_class: String,
    pub count: u64,
}

/// The collector's answer to a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushAck {
    /// Pull records newly stored.
    pub accepted: u64,
    /// Pull records already known (same pull id, no newer revision): dropped.
    pub duplicates: u64,
    /// Later revisions of known pulls, which replaced the earlier one (not counted again).
    #[serde(default)]
    pub amended: u64,
}

/// The effective configuration a node's reported registries files make (policy.json aside), as
/// containers/image loads them there; `None` when no file carried its text.
pub fn reported_config(
    files: &[FileState],
) -> Option<Result<crate::registries::EffectiveConfig, String>> {
    use crate::registries::{parse_config_str, EffectiveConfig, FileKind};
    let version = Default::default();
    let parse = |f: &FileState, text: &str, kind| {
        parse_config_str(text, &f.path, kind, version).map_err(|e| format!("{}: {e}", f.path))
    };
    let mut main = None;
    let mut drop_ins = Vec::new();
    for f in files {
        let Some(text) = &f.contents else { continue };
        match f.role {
            FileRole::Main => match parse(f, text, FileKind::Main) {
                Ok(c) => main = Some(c),
                Err(e) => return Some(Err(e)),
            },
            FileRole::DropIn => match parse(f, text, FileKind::DropIn) {
                Ok(c) => drop_ins.push(c),
                Err(e) => return Some(Err(e)),
            },
            FileRole::Policy => {}
        }
    }
    if main.is_none() && drop_ins.is_empty() {
        return None;
    }
    Some(Ok(EffectiveConfig::from_files(
        main,
        drop_ins,
        (
            "/etc/containers/registries.conf".into(),
            "/etc/containers/registries.conf.d".into(),
        ),
    )))
}

/// Length of `v` as JSON, without building the JSON (bounds on what a report or a window holds
/// are in JSON bytes).
pub fn json_len<T: Serialize>(v: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Plain data into a writer that never fails: an error cannot happen, and would weigh 0.
    match serde_json::to_writer(&mut c, v) {
        Ok(()) => c.0,
        Err(_) => 0,
    }
}
