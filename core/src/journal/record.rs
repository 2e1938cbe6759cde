//! Pull records: the wire type the agent reports and `mirrorscope-agent scan` prints.

use serde::{Deserialize, Serialize};

/// How a pull ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullOutcome {
    Pulled,
    Failed,
    InProgress,
    Abandoned,
}

/// How one location's attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Served,
    Failed,
    /// Tried last by a pull that has not ended (in progress or abandoned): it may still serve.
    Pending,
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    ManifestUnknown,
    Blocked,
    Unauthorized,
    Denied,
    Tls,
    ConnectionRefused,
    Timeout,
    Dns,
    Http,
    Other,
}

/// One location tried during a pull (each location once, in the order first tried).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullAttempt {
    pub reference: String,
    pub mirror: bool,
    pub outcome: AttemptOutcome,
    pub error_class: Option<ErrorClass>,
    pub error: Option<String>,
    /// How many rounds tried this location.
    pub tries: u32,
}

/// One image pull as the node's journal tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRecord {
    pub pull_id: String,
    pub image: String,
    pub node: Option<String>,
    /// RFC 3339 UTC timestamps. `started_at` is null for a partial record.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub outcome: PullOutcome,
    pub attempts: Vec<PullAttempt>,
    pub served_by: Option<String>,
    pub via_mirror: bool,
    /// True when the source served the pull after at least one mirror was tried.
    pub fallback: bool,
    pub digest: Option<String>,
    /// `namespace/name` of the pod, from kubelet lines.
    pub pod: Option<String>,
    /// Journal cursor of the entry that opened the pull: with `pull_id`, makes records idempotent.
    pub cursor: Option<String>,
    /// Why a failed pull failed, as the journal gave it (the kubelet's error without its
    /// `rpc error: code = … desc = ` prefix), even when no location can be blamed for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The pull's start is not in the journal that was read (before `--since`, in a rotated-away
    /// file, before the first cursor): the record was rebuilt from its end alone, so attempts and
    /// pod may be incomplete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

impl PullRecord {
    /// A pull of `image` that started at `started_at` and has no line since: in progress, no
    /// attempts. The one constructor the correlator's builders and the tests start from.
    pub fn started(pull_id: &str, image: &str, started_at: &str) -> PullRecord {
        PullRecord {
            pull_id: pull_id.to_string(),
            image: image.to_string(),
            node: None,
            started_at: Some(started_at.to_string()),
            finished_at: None,
            outcome: PullOutcome::InProgress,
            attempts: Vec::new(),
            served_by: None,
            via_mirror: false,
            fallback: false,
            digest: None,
            pod: None,
            cursor: None,
            error: None,
            partial: false,
        }
    }
}
