//! Journal grammar and pull correlation: turns CRI-O and kubelet journal entries into pull records.
//!
//! The agent's journal source (libsystemd) produces [`JournalEntry`] values; everything after that
//! is pure and lives here so it can be tested and fuzzed without a journal.
//!
//! # Public API (stable; the agent builds on it)
//!
//! - [`Correlator`]: `Correlator::new(Box<dyn SourceResolver + Send>, CorrelatorConfig)`, then
//!   `push(&JournalEntry, &mut Vec<PullRecord>) -> Option<Notice>` for every entry in journal
//!   order (finished records are appended to the vector in the order they become final, i.e.
//!   once `CorrelatorConfig::linger_usec` of journal time has passed after the pull ended; sort
//!   by `started_at` for start order), `advance(now_usec, &mut Vec<PullRecord>)` to move the
//!   clock of an idle followed journal, `set_resolver` when a
//!   [`Notice::RegistriesApplied`] says CRI-O reloaded its registries configuration, and
//!   `finish() -> Vec<PullRecord>` at the end of input (held-back and `in_progress` records, in
//!   start order). The correlation rules are documented in [`correlate`].
//! - [`SourceResolver`]: ordered pull sources for an image; [`StaticResolver`] is a fixed table
//!   (tests, or a node without a readable configuration).
//! - Grammar, usable on its own: [`logrus::parse_logrus`], [`klog::parse_klog`] with
//!   [`klog::KlogReassembler`], [`crio::parse_crio_line`] → [`crio::CrioEvent`],
//!   [`kubelet::parse_kubelet_line`] → [`kubelet::KubeletEvent`],
//!   [`cimage_error::split_error`] / [`cimage_error::classify_error`],
//!   [`timefmt::parse_logrus_time`], [`gostr::unquote`].
//!   Malformed input gives a [`GrammarError`], never a panic.
//!
//! The per-entry cost for lines that are not about pulls is a few prefix checks and one bounded
//! substring search, without allocation.

mod blob_trail;
pub mod cimage_error;
pub mod correlate;
#[cfg(test)]
mod correlate_naive;
pub mod crio;
pub mod gostr;
pub mod klog;
pub mod kubelet;
pub mod line_break;
pub mod logrus;
pub mod record;
pub mod timefmt;

pub use correlate::{Correlator, CorrelatorConfig, CorrelatorStats, Notice};
pub use record::{
    AttemptOutcome, BlobFailure, ErrorClass, NamespacedAuth, PullAttempt, PullOutcome, PullRecord,
    BLOB_SOURCE_UNKNOWN,
};

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
    /// `_LINE_BREAK=line-max`: journald cut the line at its LineMax, and the rest of it is in
    /// the process's next entry ([`line_break::LineJoiner`] joins them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub line_continues: bool,
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

/// A [`SourceResolver`] from a fixed table: image (exactly as CRI-O logs it) → ordered sources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticResolver {
    table: std::collections::HashMap<String, Vec<String>>,
}

impl StaticResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the ordered sources of `image`.
    pub fn with(mut self, image: &str, sources: &[&str]) -> Self {
        self.insert(image, sources.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    pub fn insert(&mut self, image: &str, sources: Vec<String>) {
        self.table.insert(image.to_owned(), sources);
    }
}

impl SourceResolver for StaticResolver {
    fn pull_sources(&self, image: &str) -> Option<Vec<String>> {
        self.table.get(image).cloned()
    }
}
