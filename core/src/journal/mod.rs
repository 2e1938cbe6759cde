//! Journal grammar and pull correlation: turns CRI-O and kubelet journal entries into pull records.
//!
//! The agent's journal source (libsystemd) produces [`JournalEntry`] values; everything after that
//! is pure and lives here so it can be tested and fuzzed without a journal.

pub mod cimage_error;
pub mod crio;
pub mod gostr;
pub mod klog;
pub mod kubelet;
pub mod logrus;
pub mod record;
pub mod timefmt;

pub use record::{AttemptOutcome, ErrorClass, PullAttempt, PullOutcome, PullRecord};

/// A line that looked relevant but does not follow the grammar it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed journal line: {reason}")]
pub struct GrammarError {
    reason: &'static str,
}

impl GrammarError {
    pub(crate) fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// What was wrong, e.g. `unterminated quoted value`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// One journal entry, reduced to the fields mirrorscope reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct JournalEntry {
    /// `__CURSOR`: opaque position, used for checkpoints and idempotent records.
    pub cursor: String,
    /// `__REALTIME_TIMESTAMP`: microseconds since the Unix epoch.
    pub realtime_usec: u64,
    /// `_SYSTEMD_UNIT` (e.g. `crio.service`), when journald recorded one.
    pub systemd_unit: Option<String>,
    /// `SYSLOG_IDENTIFIER` (e.g. `crio`, `kubenswrapper`).
    pub syslog_identifier: Option<String>,
    /// `_HOSTNAME`.
    pub hostname: Option<String>,
    /// `_PID`.
    pub pid: Option<u32>,
    /// `MESSAGE`, lossily decoded as UTF-8.
    pub message: String,
}

/// Where the ordered pull sources for an image come from: the registries configuration in force.
///
/// The correlator asks this for the image named by `Pulling image: X` to learn which
/// `Trying to access "LOCATION"` lines (which carry no request id) belong to that pull.
pub trait SourceResolver {
    /// Ordered source references (`host/repo:tag` or `host/repo@digest`, as containers/image
    /// prints them) for the image `image` as CRI-O logged it; `None` when the image reference or
    /// the configuration cannot be resolved.
    fn pull_sources(&self, image: &str) -> Option<Vec<String>>;
}
