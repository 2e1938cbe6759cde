#![allow(dead_code)]
//! The correlator as it was before its indexes (every line scanned every open pull): the
//! oracle the indexed one is compared with in its tests.

//!
//! # Rules (deterministic, so a replay of the same journal gives the same records)
//!
//! - **Open** on CRI-O `Pulling image: X` with `id=U`; `pull_id` is `U` (the gRPC request id),
//!   or, if the line has no id, a UUID-shaped hash of the entry's cursor. The ordered source list
//!   for X is asked from the [`SourceResolver`] in force at that moment; later resolver swaps do
//!   not change pulls already open.
//! - **Attach** each `Trying to access "L"` (no id) to one open pull whose source list contains
//!   L (without a source list: whose image has the same last path element and tag/digest as L).
//!   When several match (two pods pulling the same image), the pull is chosen by, in order:
//!   1. L is the *next* location of that pull's current round (the first location if it has
//!      tried nothing yet, else the one right after the last it tried);
//!   2. L starts a new round of that pull (L is its first location);
//!   3. any other match in the source list;
//!   4. L is not in the source list, but its last path element and tag/digest equal the image's
//!      (the registries configuration in force may differ from the one resolved with);
//!
//!   then the fewest `Trying` lines so far, then the pull opened first.
//! - **Rounds**: a location at or before the previous one in the source list starts a new round;
//!   `tries` counts the attempts of each location. containers/image 5.10–5.13 (CRI-O 1.20–1.22)
//!   at debug level log each attempt twice, an info `Trying` line then a debug one: a debug
//!   `Trying to access "L"` right after the info line for L of the same pull (no `Accessing "L"
//!   failed` in between) is that echo and is not counted. Later releases log only the info line
//!   when CRI-O asks for it, so every other `Trying` line counts.
//! - **Pending**: in the record of a pull that has not ended (`in_progress`, `abandoned`), the
//!   location tried last is `pending` unless its error is known; the others `failed`.
//! - **Close as pulled** on `Pulled image:` with the same id: the last location tried served it,
//!   every other location failed (`error_class` null unless the error is known, e.g. from debug
//!   `Accessing "L" failed:` lines). `digest` is the `@sha256:…` part of the logged reference;
//!   CRI-O ≥1.35.2 logs an image ID there, which is not a digest, so it stays null.
//! - **Close as failed** on the kubelet's `"PullImage from image service failed" … image="X"`:
//!   the open pull whose image is exactly X (the kubelet sends CRI-O the same string): one that
//!   CRI-O already reported failing, else the oldest. An aggregated error is split per location
//!   with [`split_error`], anchored on the pull's source list, then on the locations tried; a
//!   location it names but no `Trying` line showed is added with `tries: 0`. An unaggregated
//!   error belongs to the last location tried. The whole text (rpc prefix removed) is the
//!   record's `error`. CRI-O 1.35.1+ `Falling back to pull … as an OCI artifact: E` (with the
//!   request id) records E early and marks the pull failing; the kubelet line still closes it.
//! - **Partial records**: a `Pulled image:` whose request is not open (its `Pulling image` came
//!   before the input: `--since`, a rotated-away file) gives a record with `partial: true` and
//!   `started_at` null. Its locations are the `Trying` lines no pull claimed (kept for
//!   `abandon_after_usec`), of the same repository as the logged reference (with a bare image ID:
//!   the last such line), the last one served; `cursor` is the `Pulled` entry's. Likewise a
//!   kubelet `PullImage from image service failed` for an image with no open pull (unless a pull
//!   of it was just abandoned by a CRI-O restart) gives a partial `failed` record, its error
//!   split as below.
//! - **Events** that change nothing: `Checking image status`, `Image … not found`, `Pulling OCI
//!   artifact` are skipped before parsing.
//! - **Pods**: v≥3 `Event occurred … reason="Pulling"` for X gives its pod to the oldest open pull
//!   of X without a pod, or waits (`pod_hint_usec`) for that pull to open; `Pulled`/`Failed`
//!   events and v=2 failure lines (`Unhandled Error … in pod name_ns(uid)`, `Error syncing pod`
//!   with `pod=`) give it to a just-finished pull: finished records are held back for
//!   `linger_usec` of journal time for that reason. Failure lines are matched (oldest record
//!   first) on their error text, which equals the closing line's once each consumer's wrappers
//!   (`rpc error: …`, `RegistryUnavailable: `, the kubelet's `image pull failed for … because
//!   …: `) are removed.
//! - **Expire**: a pull with no line for `abandon_after_usec` of journal time is emitted as
//!   `abandoned` (`failed` if CRI-O already logged its artifact fallback). A CRI-O restart
//!   (`Starting CRI-O`) abandons every open pull. [`Correlator::finish`] returns the held-back
//!   records and the open pulls as `in_progress`. `finished_at` is null for both.
//! - **Multi-entry kubelet values** are re-joined per `_PID` ([`KlogReassembler`]); one cut
//!   short (a new line of that process, or the end of input) is closed and parsed as it is.
//! - Two identical requests de-duplicated by CRI-O log two `Pulling`/`Pulled` pairs but one round
//!   of `Trying`: a pull that ends `pulled` without any location seen takes the locations of a
//!   twin (an open pull of the same image with locations, else the latest such finished pull
//!   still held back); with no twin, `attempts` is empty and `served_by` null.

use super::blob_trail::BlobTrail;
use super::cimage_error::{is_aggregated, split_error, AttemptError};
use super::correlate::{close_incomplete, derived_id, failure_key, host_of, repository_tail};
use super::crio::{self, pulled_value, CrioEvent, PulledValue};
use super::klog::{self, Fed, KlogReassembler};
use super::kubelet::{self, strip_rpc_prefix, KubeletEvent};
use super::record::{
    AttemptOutcome, ErrorClass, NamespacedAuth, PullAttempt, PullOutcome, PullRecord,
};
use super::{JournalEntry, SourceResolver};
use crate::time::format_usec;

/// Time windows of the correlator, all in journal time (microseconds of `__REALTIME_TIMESTAMP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorrelatorConfig {
    /// A pull with no new line for this long is reported `abandoned`. Generous: a big image can
    /// take many minutes, and each unreachable location costs a 30 s dial timeout per round.
    pub abandon_after_usec: u64,
    /// How long a finished record is held back for kubelet lines naming its pod.
    pub linger_usec: u64,
    /// How long a kubelet `Pulling` event waits for CRI-O's `Pulling image` line.
    pub pod_hint_usec: u64,
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        Self {
            abandon_after_usec: 30 * 60 * 1_000_000,
            linger_usec: 10 * 1_000_000,
            pod_hint_usec: 60 * 1_000_000,
        }
    }
}

/// Something the caller should know besides pull records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// CRI-O applied a new registries configuration: swap the resolver
    /// ([`Correlator::set_resolver`]) to the configuration now on disk.
    RegistriesApplied { at_usec: u64 },
    /// CRI-O failed to reload its registries configuration and keeps the previous one.
    RegistriesReloadFailed { at_usec: u64, error: String },
    /// CRI-O (re)started; open pulls were abandoned.
    CrioStarted { at_usec: u64, version: String },
}

/// Counters for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CorrelatorStats {
    pub entries: u64,
    /// Pull-related lines that were parsed.
    pub relevant: u64,
    /// Relevant-looking lines that did not parse (skipped).
    pub malformed: u64,
    /// `Trying to access` lines no open pull claimed.
    pub unattached: u64,
}

#[derive(Debug, Clone)]
struct AttemptState {
    reference: String,
    tries: u32,
    error: Option<String>,
    class: Option<ErrorClass>,
}

#[derive(Debug)]
struct OpenPull {
    seq: u64,
    pull_id: String,
    request_id: Option<String>,
    image: String,
    node: Option<String>,
    cursor: String,
    started_usec: u64,
    last_usec: u64,
    sources: Option<Vec<String>>,
    attempts: Vec<AttemptState>,
    last_tried: Option<usize>,
    /// Position in `sources` of the last location tried in the current round.
    round_pos: Option<usize>,
    total_tries: u32,
    pod: Option<String>,
    artifact_failed: bool,
    namespaced_auth: Option<NamespacedAuth>,
    /// The failure text (rpc prefix removed), as the kubelet or CRI-O logged it.
    error: Option<String>,
    /// The last `Trying` line was an info one: a debug line for the same location right after it
    /// is its containers/image 5.10–5.13 echo, not another attempt.
    echo_expected: bool,
    /// Rebuilt from its end: its start was not in the input.
    partial: bool,
    blob: BlobTrail,
}

/// A `Trying to access` line no open pull claimed: the pull's start may lie before the input, and
/// its end may still name it.
#[derive(Debug)]
struct Orphan {
    location: String,
    at_usec: u64,
    /// Info line whose debug echo may follow (see [`OpenPull::echo_expected`]).
    echo_expected: bool,
}

/// Bound on remembered orphan `Trying` lines: enough for a few pulls' worth of locations.
const MAX_ORPHANS: usize = 256;

#[derive(Debug)]
struct Finished {
    seq: u64,
    release_usec: u64,
    image: String,
    /// The CRI-O error text of a failed pull, without rpc prefix: matches kubelet failure lines.
    failure_key: Option<String>,
    record: PullRecord,
}

#[derive(Debug)]
struct PodHint {
    image: String,
    pod: String,
    at_usec: u64,
}

/// Feeds on [`JournalEntry`] values in journal order and emits finished [`PullRecord`]s.
pub struct Correlator {
    resolver: Box<dyn SourceResolver + Send>,
    config: CorrelatorConfig,
    open: Vec<OpenPull>,
    finished: Vec<Finished>,
    hints: Vec<PodHint>,
    orphans: Vec<Orphan>,
    /// `_HOSTNAME` of the latest entry that had one: kubelet lines reach the handlers without
    /// their entry.
    hostname: Option<String>,
    klog: KlogReassembler,
    next_seq: u64,
    /// Earliest journal time at which something may expire or be released.
    next_deadline: u64,
    /// Latest journal time seen, for lines completed at the end of input.
    last_usec: u64,
    stats: CorrelatorStats,
    last_debug_usec: Option<u64>,
}

impl std::fmt::Debug for Correlator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Correlator")
            .field("config", &self.config)
            .field("open", &self.open.len())
            .field("held_back", &self.finished.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Correlator {
    pub fn new(resolver: Box<dyn SourceResolver + Send>, config: CorrelatorConfig) -> Self {
        Self {
            resolver,
            config,
            open: Vec::new(),
            finished: Vec::new(),
            hints: Vec::new(),
            orphans: Vec::new(),
            hostname: None,
            klog: KlogReassembler::new(),
            next_seq: 0,
            next_deadline: u64::MAX,
            last_usec: 0,
            stats: CorrelatorStats::default(),
            last_debug_usec: None,
        }
    }

    /// Replaces the registries configuration used for pulls opened from now on.
    pub fn set_resolver(&mut self, resolver: Box<dyn SourceResolver + Send>) {
        self.resolver = resolver;
    }

    pub fn stats(&self) -> CorrelatorStats {
        self.stats
    }

    /// Pulls currently open (started, not finished).
    pub fn open_pulls(&self) -> usize {
        self.open.len()
    }

    /// Processes one entry; records that became final are appended to `out`.
    pub fn push(&mut self, entry: &JournalEntry, out: &mut Vec<PullRecord>) -> Option<Notice> {
        self.stats.entries += 1;
        let now = entry.realtime_usec;
        self.last_usec = self.last_usec.max(now);
        if entry.hostname.is_some() && self.hostname != entry.hostname {
            self.hostname.clone_from(&entry.hostname);
        }
        let notice = self.dispatch(entry);
        if now >= self.next_deadline {
            self.sweep(now, out);
        }
        notice
    }

    /// Moves the correlator's clock to `now_usec` without an entry (an idle followed journal):
    /// expires pulls and releases held-back records that became due, appending them to `out`.
    pub fn advance(&mut self, now_usec: u64, out: &mut Vec<PullRecord>) {
        self.last_usec = self.last_usec.max(now_usec);
        if now_usec >= self.next_deadline {
            self.sweep(now_usec, out);
        }
    }

    /// End of input: every held-back record, then every open pull as `in_progress`, in start
    /// order.
    pub fn finish(&mut self) -> Vec<PullRecord> {
        for text in self.klog.drain() {
            self.handle_klog_text(&close_incomplete(text), self.last_usec, "");
        }
        let mut rest: Vec<(u64, PullRecord)> =
            self.finished.drain(..).map(|f| (f.seq, f.record)).collect();
        for p in std::mem::take(&mut self.open) {
            let seq = p.seq;
            rest.push((seq, build_record(p, PullOutcome::InProgress, None, None)));
        }
        rest.sort_by_key(|(s, _)| *s);
        self.next_deadline = u64::MAX;
        rest.into_iter().map(|(_, r)| r).collect()
    }

    fn dispatch(&mut self, entry: &JournalEntry) -> Option<Notice> {
        let msg = entry.message.as_str();
        let first = msg.as_bytes().first().copied();
        match first {
            Some(b'\t' | b' ') if klog::is_continuation(msg) => {
                if let Fed::Complete(text) = self.klog.feed(entry.pid, msg) {
                    self.handle_klog_text(&text, entry.realtime_usec, &entry.cursor);
                }
                None
            }
            Some(b't' | b'{') => {
                if !crio::line_matters_for_pulls(msg) {
                    if crio::line_is_debug(msg) {
                        self.last_debug_usec = Some(entry.realtime_usec);
                    }
                    return None;
                }
                self.stats.relevant += 1;
                match crio::parse_crio_line(msg) {
                    Ok(Some(ev)) => self.handle_crio(ev, entry),
                    Ok(None) => None,
                    Err(_) => {
                        self.stats.malformed += 1;
                        None
                    }
                }
            }
            Some(b'I' | b'W' | b'E' | b'F') => {
                if self.klog.is_pending(entry.pid) {
                    // A new line of that process: the pending one will never complete.
                    if let Some(stale) = self.klog.take(entry.pid) {
                        self.handle_klog_text(&close_incomplete(stale), entry.realtime_usec, "");
                    }
                }
                if !kubelet::may_be_relevant(msg) {
                    return None;
                }
                if klog::opens_multiline(msg) {
                    self.klog.start(entry.pid, msg);
                } else {
                    self.handle_klog_text(msg, entry.realtime_usec, &entry.cursor);
                }
                None
            }
            _ => None,
        }
    }

    fn handle_klog_text(&mut self, text: &str, now: u64, cursor: &str) {
        self.stats.relevant += 1;
        match kubelet::parse_kubelet_line(text) {
            Ok(Some(ev)) => self.handle_kubelet(ev, now, cursor),
            Ok(None) => {}
            Err(_) => self.stats.malformed += 1,
        }
    }

    fn handle_crio(&mut self, ev: CrioEvent, entry: &JournalEntry) -> Option<Notice> {
        let now = entry.realtime_usec;
        if ev.is_debug() {
            self.last_debug_usec = Some(now);
        }
        let trying =
            |p: &OpenPull, location: &str| p.blob.in_fallback() && p.blob.is_trying(location);
        match ev {
            CrioEvent::PullingImage { image, request_id } => {
                self.open_pull(image, request_id, entry);
            }
            CrioEvent::BlobFetchFailed {
                digest,
                location,
                error,
            } => {
                let p = self.open.iter_mut().find(|p| {
                    let last = p
                        .last_tried
                        .and_then(|i| p.attempts.get(i))
                        .map(|a| a.reference.as_str());
                    p.blob.source(last) == Some(location.as_str())
                })?;
                p.blob.fetch_failed(digest, location, error);
                p.last_usec = now;
            }
            CrioEvent::BlobSourceSwitched { location } => {
                let p = self.open.iter_mut().find(|p| trying(p, &location))?;
                p.blob.switched(location);
                p.last_usec = now;
            }
            CrioEvent::TryingToAccess { location, debug } => {
                let in_fallback = self.open.iter_mut().find(|p| {
                    debug
                        && p.blob.in_fallback()
                        && p.sources.as_ref().is_none_or(|s| s.contains(&location))
                });
                match in_fallback {
                    Some(p) => {
                        p.blob.trying(location);
                        p.last_usec = now;
                    }
                    None => self.attach_try(location, debug, now),
                }
            }
            CrioEvent::AccessFailed { location, error } => {
                if let Some(p) = self.open.iter_mut().find(|p| trying(p, &location)) {
                    p.blob.access_failed(error);
                    p.last_usec = now;
                    return None;
                }
                let class = super::cimage_error::classify_error(&error);
                if let Some(a) = self.open.iter_mut().find_map(|p| {
                    p.last_tried
                        .and_then(|i| p.attempts.get_mut(i))
                        .filter(|a| a.reference == location)
                }) {
                    a.error = Some(error);
                    a.class = Some(class);
                }
                for p in self.open.iter_mut() {
                    let last = p.last_tried.and_then(|i| p.attempts.get(i));
                    if last.is_some_and(|a| a.reference == location) {
                        p.echo_expected = false;
                    }
                }
            }
            CrioEvent::PulledImage {
                reference,
                request_id,
            } => {
                let Some(i) = self.find_by_id(request_id.as_deref()) else {
                    self.close_partial_pulled(reference, request_id, entry);
                    return None;
                };
                let mut p = self.open.remove(i);
                if p.attempts.is_empty() {
                    self.borrow_twin_attempts(&mut p);
                }
                p.blob.debug_seen |= self.last_debug_usec >= Some(p.started_usec);
                let id = crio::pulled_identity(&reference, Some(&p.image));
                let seq = p.seq;
                let mut record = build_record(p, PullOutcome::Pulled, Some(now), id.digest);
                record.image_id = id.image_id;
                self.hold(seq, record, None, now);
            }
            CrioEvent::FallingBackToArtifact {
                error, request_id, ..
            } => {
                let i = self.find_by_id(request_id.as_deref())?;
                let p = self.open.get_mut(i)?;
                p.artifact_failed = true;
                p.last_usec = now;
                apply_errors(p, &error);
            }
            CrioEvent::UsingAuthFile {
                namespace,
                auth_file,
                request_id,
            } => {
                let i = self.find_by_id(request_id.as_deref())?;
                let p = self.open.get_mut(i)?;
                p.namespaced_auth = Some(NamespacedAuth {
                    namespace,
                    auth_file,
                });
                p.last_usec = now;
            }
            CrioEvent::RegistriesApplied { .. } => {
                return Some(Notice::RegistriesApplied { at_usec: now });
            }
            CrioEvent::RegistriesReloadFailed { error } => {
                return Some(Notice::RegistriesReloadFailed {
                    at_usec: now,
                    error,
                });
            }
            CrioEvent::Starting { version } => {
                for p in std::mem::take(&mut self.open) {
                    let seq = p.seq;
                    let record = build_record(p, PullOutcome::Abandoned, None, None);
                    self.hold(seq, record, None, now);
                }
                return Some(Notice::CrioStarted {
                    at_usec: now,
                    version,
                });
            }
            CrioEvent::CheckingImageStatus { .. }
            | CrioEvent::ImageNotFound { .. }
            | CrioEvent::PullingOciArtifact { .. } => {}
        }
        None
    }

    /// CRI-O serves identical concurrent requests (same image, pod, credentials) with one pull:
    /// both request ids log `Pulling`/`Pulled`, but only one round of `Trying` lines appears.
    /// A pull that succeeds without having seen any location takes the locations of such a
    /// twin: an open pull of the same image, else the latest pulled record of it still held back.
    fn borrow_twin_attempts(&self, p: &mut OpenPull) {
        if let Some(twin) = self
            .open
            .iter()
            .find(|o| o.image == p.image && !o.attempts.is_empty())
        {
            p.attempts = twin.attempts.clone();
            p.last_tried = twin.last_tried;
            return;
        }
        let Some(twin) = self.finished.iter().rev().find(|f| {
            f.image == p.image
                && f.record.outcome == PullOutcome::Pulled
                && f.record.served_by.is_some()
        }) else {
            return;
        };
        p.attempts = twin
            .record
            .attempts
            .iter()
            .map(|a| AttemptState {
                reference: a.reference.clone(),
                tries: a.tries,
                error: a.error.clone(),
                class: a.error_class,
            })
            .collect();
        p.last_tried = twin
            .record
            .attempts
            .iter()
            .position(|a| a.outcome == AttemptOutcome::Served);
    }

    fn find_by_id(&self, id: Option<&str>) -> Option<usize> {
        let id = id?;
        self.open
            .iter()
            .position(|p| p.request_id.as_deref() == Some(id))
    }

    fn open_pull(&mut self, image: String, request_id: Option<String>, entry: &JournalEntry) {
        if request_id.is_some() && self.find_by_id(request_id.as_deref()).is_some() {
            return;
        }
        let now = entry.realtime_usec;
        let pull_id = request_id
            .clone()
            .unwrap_or_else(|| derived_id(&entry.cursor, now, &entry.message));
        let sources = self.resolver.pull_sources(&image);
        let pod = self.take_hint(&image, now);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.open.push(OpenPull {
            seq,
            pull_id,
            request_id,
            image,
            node: entry.hostname.clone(),
            cursor: entry.cursor.clone(),
            started_usec: now,
            last_usec: now,
            sources,
            attempts: Vec::new(),
            last_tried: None,
            round_pos: None,
            total_tries: 0,
            pod,
            artifact_failed: false,
            namespaced_auth: None,
            error: None,
            echo_expected: false,
            partial: false,
            blob: BlobTrail::default(),
        });
        self.next_deadline = self
            .next_deadline
            .min(now.saturating_add(self.config.abandon_after_usec));
    }

    fn take_hint(&mut self, image: &str, now: u64) -> Option<String> {
        let window = self.config.pod_hint_usec;
        self.hints
            .retain(|h| h.at_usec.saturating_add(window) >= now);
        let i = self.hints.iter().position(|h| h.image == image)?;
        Some(self.hints.remove(i).pod)
    }

    fn attach_try(&mut self, location: String, debug: bool, now: u64) {
        if debug && self.take_echo(&location, now) {
            return;
        }
        let mut best: Option<((u8, u32, u64), usize)> = None;
        for (i, p) in self.open.iter().enumerate() {
            let Some(tier) = match_tier(p, &location) else {
                continue;
            };
            let key = (tier, p.total_tries, p.seq);
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, i));
            }
        }
        let Some((_, i)) = best else {
            self.stats.unattached += 1;
            self.remember_orphan(location, debug, now);
            return;
        };
        let Some(p) = self.open.get_mut(i) else {
            return;
        };
        if let Some(pos) = p
            .sources
            .as_ref()
            .and_then(|s| s.iter().position(|x| *x == location))
        {
            p.round_pos = Some(pos);
        }
        let idx = match p.attempts.iter().position(|a| a.reference == location) {
            Some(idx) => idx,
            None => {
                p.attempts.push(AttemptState {
                    reference: location,
                    tries: 0,
                    error: None,
                    class: None,
                });
                p.attempts.len() - 1
            }
        };
        if let Some(a) = p.attempts.get_mut(idx) {
            a.tries += 1;
        }
        p.last_tried = Some(idx);
        p.total_tries += 1;
        p.last_usec = now;
        p.echo_expected = !debug;
        self.next_deadline = self
            .next_deadline
            .min(now.saturating_add(self.config.abandon_after_usec));
    }

    /// A debug `Trying to access "L"` right after an info one for L (of an open pull, else of
    /// the orphans) is containers/image 5.10–5.13 logging the same attempt twice: consumes the
    /// expectation and says so. A real retry always has another line in between (`Accessing …
    /// failed` at debug level, or another location's `Trying`), so it is still counted.
    fn take_echo(&mut self, location: &str, now: u64) -> bool {
        if let Some(p) = self.open.iter_mut().find(|p| {
            p.echo_expected
                && p.last_tried
                    .and_then(|i| p.attempts.get(i))
                    .is_some_and(|a| a.reference == location)
        }) {
            p.echo_expected = false;
            p.last_usec = now;
            return true;
        }
        if let Some(o) = self
            .orphans
            .last_mut()
            .filter(|o| o.echo_expected && o.location == location)
        {
            o.echo_expected = false;
            return true;
        }
        false
    }

    fn remember_orphan(&mut self, location: String, debug: bool, now: u64) {
        let window = self.config.abandon_after_usec;
        self.orphans
            .retain(|o| o.at_usec.saturating_add(window) >= now);
        if self.orphans.len() >= MAX_ORPHANS {
            self.orphans.remove(0);
        }
        self.orphans.push(Orphan {
            location,
            at_usec: now,
            echo_expected: !debug,
        });
    }

    /// Takes the orphan `Trying` lines that `keep` accepts, oldest first, as attempts (one per
    /// location, with its count); the last one is the location tried last.
    fn take_orphans(
        &mut self,
        now: u64,
        keep: impl Fn(&str) -> bool,
    ) -> (Vec<AttemptState>, Option<usize>) {
        let window = self.config.abandon_after_usec;
        let mut attempts: Vec<AttemptState> = Vec::new();
        let mut last = None;
        let mut rest = Vec::with_capacity(self.orphans.len());
        for o in self.orphans.drain(..) {
            if o.at_usec.saturating_add(window) < now {
                continue;
            }
            if !keep(&o.location) {
                rest.push(o);
                continue;
            }
            let idx = match attempts.iter().position(|a| a.reference == o.location) {
                Some(i) => i,
                None => {
                    attempts.push(AttemptState {
                        reference: o.location,
                        tries: 0,
                        error: None,
                        class: None,
                    });
                    attempts.len() - 1
                }
            };
            if let Some(a) = attempts.get_mut(idx) {
                a.tries += 1;
            }
            last = Some(idx);
        }
        self.orphans = rest;
        (attempts, last)
    }

    /// A pull that is not open (its start came before the input) ended.
    #[allow(clippy::too_many_arguments)]
    fn partial_pull(
        &mut self,
        pull_id: String,
        request_id: Option<String>,
        image: String,
        cursor: String,
        now: u64,
        sources: Option<Vec<String>>,
        attempts: (Vec<AttemptState>, Option<usize>),
    ) -> OpenPull {
        let seq = self.next_seq;
        self.next_seq += 1;
        let total_tries = attempts.0.iter().map(|a| a.tries).sum();
        OpenPull {
            seq,
            pull_id,
            request_id,
            image,
            node: self.hostname.clone(),
            cursor,
            started_usec: now,
            last_usec: now,
            sources,
            attempts: attempts.0,
            last_tried: attempts.1,
            round_pos: None,
            total_tries,
            pod: None,
            artifact_failed: false,
            namespaced_auth: None,
            error: None,
            echo_expected: false,
            partial: true,
            blob: BlobTrail::default(),
        }
    }

    /// `Pulled image: R` for a request that is not open. The locations are the orphan `Trying`
    /// lines of R's repository (of any, when R is a bare image ID); the last one served.
    fn close_partial_pulled(
        &mut self,
        reference: String,
        request_id: Option<String>,
        entry: &JournalEntry,
    ) {
        let now = entry.realtime_usec;
        let image_id = crio::pulled_identity(&reference, None).image_id;
        let (digest, name) = match pulled_value(&reference) {
            PulledValue::Digest(d) => {
                let name = reference.get(..reference.len() - d.len() - 1);
                (Some(d.to_owned()), name.map(str::to_owned))
            }
            PulledValue::ImageId(_) => (None, None),
            PulledValue::Other => (None, Some(reference.clone())),
        };
        let attempts = match &name {
            Some(n) => {
                let repo = repository_tail(n).to_owned();
                self.take_orphans(now, |l| repository_tail(l) == repo)
            }
            None => {
                // A bare image ID names nothing to match on: only the location tried last by
                // anyone can be credited.
                let last = self.orphans.last().map(|o| o.location.clone());
                self.take_orphans(now, |l| last.as_deref() == Some(l))
            }
        };
        let pull_id = request_id
            .clone()
            .unwrap_or_else(|| derived_id(&entry.cursor, now, &entry.message));
        let mut p = self.partial_pull(
            pull_id,
            request_id,
            reference,
            entry.cursor.clone(),
            now,
            None,
            attempts,
        );
        p.node = entry.hostname.clone().or(p.node);
        let seq = p.seq;
        let mut record = build_record(p, PullOutcome::Pulled, Some(now), digest);
        record.image_id = image_id;
        self.hold(seq, record, None, now);
    }

    fn handle_kubelet(&mut self, ev: KubeletEvent, now: u64, cursor: &str) {
        match ev {
            KubeletEvent::PullFailed { image, error } => {
                // A pull CRI-O already reported as failing (1.35.1+ artifact fallback line, which
                // has the request id) first; otherwise the oldest.
                let Some(i) = self
                    .open
                    .iter()
                    .position(|p| p.image == image && p.artifact_failed)
                    .or_else(|| self.open.iter().position(|p| p.image == image))
                else {
                    self.close_partial_failed(image, &error, now, cursor);
                    return;
                };
                let mut p = self.open.remove(i);
                apply_errors(&mut p, &error);
                let key = failure_key(&error).to_owned();
                let seq = p.seq;
                let record = build_record(p, PullOutcome::Failed, Some(now), None);
                self.hold(seq, record, Some(key), now);
            }
            KubeletEvent::FailedToPull { .. } => {}
            KubeletEvent::StartFailed { pod, error, .. }
            | KubeletEvent::SyncFailed { pod, error, .. } => {
                let (Some(pod), key) = (pod, failure_key(&error)) else {
                    return;
                };
                // Oldest first: when two pods' pulls fail before either's follow-up lines, each
                // pod's lines come in the order of its failure.
                if let Some(f) = self
                    .finished
                    .iter_mut()
                    .find(|f| f.record.pod.is_none() && f.failure_key.as_deref() == Some(key))
                {
                    f.record.pod = Some(pod);
                }
            }
            KubeletEvent::PodEvent {
                pod: Some(pod),
                reason,
                image: Some(image),
                ..
            } => match reason.as_str() {
                "Pulling" => {
                    if let Some(p) = self
                        .open
                        .iter_mut()
                        .find(|p| p.image == image && p.pod.is_none())
                    {
                        p.pod = Some(pod);
                    } else {
                        self.hints.push(PodHint {
                            image,
                            pod,
                            at_usec: now,
                        });
                    }
                }
                "Pulled" | "Failed" => {
                    if let Some(p) = self
                        .open
                        .iter_mut()
                        .find(|p| p.image == image && p.pod.is_none())
                    {
                        p.pod = Some(pod);
                    } else if let Some(f) = self
                        .finished
                        .iter_mut()
                        .find(|f| f.image == image && f.record.pod.is_none())
                    {
                        f.record.pod = Some(pod);
                    }
                }
                _ => {}
            },
            KubeletEvent::PodEvent { .. } => {}
        }
    }

    /// The kubelet's failure line for an image with no open pull: CRI-O's lines of it came
    /// before the input. Not when a pull of that image was just abandoned by a CRI-O restart:
    /// the kubelet is reporting that same pull's end.
    fn close_partial_failed(&mut self, image: String, error: &str, now: u64, cursor: &str) {
        if self
            .finished
            .iter()
            .any(|f| f.image == image && f.record.outcome == PullOutcome::Abandoned)
        {
            return;
        }
        let sources = self.resolver.pull_sources(&image);
        let attempts = self.take_orphans(now, |l| match &sources {
            Some(s) => s.iter().any(|x| x == l),
            None => same_tail(&image, l),
        });
        let pull_id = derived_id(cursor, now, error);
        let mut p = self.partial_pull(
            pull_id,
            None,
            image,
            cursor.to_owned(),
            now,
            sources,
            attempts,
        );
        apply_errors(&mut p, error);
        let key = failure_key(error).to_owned();
        let seq = p.seq;
        let record = build_record(p, PullOutcome::Failed, Some(now), None);
        self.hold(seq, record, Some(key), now);
    }

    /// Holds a finished record back for late pod lines; `seq` is the pull's start order.
    fn hold(&mut self, seq: u64, record: PullRecord, failure_key: Option<String>, now: u64) {
        let release = now.saturating_add(self.config.linger_usec);
        self.finished.push(Finished {
            seq,
            release_usec: release,
            image: record.image.clone(),
            failure_key,
            record,
        });
        self.next_deadline = self.next_deadline.min(release);
    }

    fn sweep(&mut self, now: u64, out: &mut Vec<PullRecord>) {
        let abandon = self.config.abandon_after_usec;
        let mut i = 0;
        while i < self.open.len() {
            let expired = self
                .open
                .get(i)
                .is_some_and(|p| p.last_usec.saturating_add(abandon) <= now);
            if expired {
                let p = self.open.remove(i);
                let outcome = if p.artifact_failed {
                    PullOutcome::Failed
                } else {
                    PullOutcome::Abandoned
                };
                let seq = p.seq;
                let record = build_record(p, outcome, None, None);
                self.hold(seq, record, None, now);
            } else {
                i += 1;
            }
        }
        let mut keep = Vec::with_capacity(self.finished.len());
        for f in self.finished.drain(..) {
            if f.release_usec <= now {
                out.push(f.record);
            } else {
                keep.push(f);
            }
        }
        self.finished = keep;
        let window = self.config.pod_hint_usec;
        self.hints
            .retain(|h| h.at_usec.saturating_add(window) >= now);
        self.next_deadline = self
            .open
            .iter()
            .map(|p| p.last_usec.saturating_add(abandon))
            .chain(self.finished.iter().map(|f| f.release_usec))
            .min()
            .unwrap_or(u64::MAX);
    }
}

/// Smaller is a better match; `None` when `location` cannot belong to `p`.
fn match_tier(p: &OpenPull, location: &str) -> Option<u8> {
    match &p.sources {
        Some(sources) => {
            let Some(pos) = sources.iter().position(|s| s == location) else {
                // The configuration we resolved with may differ from CRI-O's (a reload we have
                // not caught up with): fall back to the name, as a last resort.
                return same_tail(&p.image, location).then_some(3);
            };
            let next = p.round_pos.map_or(0, |r| r + 1);
            Some(if pos == next {
                0
            } else if pos == 0 {
                1
            } else {
                2
            })
        }
        None => {
            if !same_tail(&p.image, location) {
                return None;
            }
            Some(if p.attempts.is_empty() { 0 } else { 1 })
        }
    }
}

/// Same last path element, tag and digest included (`…/ledger@sha256:…`).
fn same_tail(image: &str, location: &str) -> bool {
    let tail = |s: &str| {
        let name_end = s.find('@').unwrap_or(s.len());
        let start = s[..name_end].rfind('/').map_or(0, |i| i + 1);
        s[start..].to_owned()
    };
    let (a, b) = (tail(image), tail(location));
    // The kubelet appends `:latest` to untagged names; a location always has a tag or digest.
    a == b || (!a.contains([':', '@']) && b == format!("{a}:latest"))
}

fn apply_errors(p: &mut OpenPull, error: &str) {
    p.error = Some(strip_rpc_prefix(error).trim().to_owned());
    let tried: Vec<&str> = p.attempts.iter().map(|a| a.reference.as_str()).collect();
    let split = if is_aggregated(error) {
        let from_sources: Option<Vec<&str>> = p
            .sources
            .as_ref()
            .map(|s| s.iter().map(String::as_str).collect());
        let mut split = from_sources
            .as_deref()
            .map(|anchors| split_error(error, anchors))
            .unwrap_or_default();
        let unanchored = |v: &[AttemptError]| {
            v.iter()
                .any(|a| a.reference.as_deref().is_none_or(|r| !tried.contains(&r)))
        };
        if split.is_empty() || (!tried.is_empty() && unanchored(&split)) {
            let alt = split_error(error, &tried);
            if split.is_empty() || !unanchored(&alt) {
                split = alt;
            }
        }
        split
    } else {
        // One location's error (or one raised outside the location loop, like a failed blob
        // write): it belongs to the last location tried, or to the only possible one.
        let only = match p.sources.as_deref() {
            Some([one]) => Some(one.as_str()),
            _ => None,
        };
        match p.last_tried.and_then(|i| p.attempts.get(i)) {
            Some(a) => split_error(error, &[a.reference.as_str()]),
            None => only.map_or_else(Vec::new, |o| split_error(error, &[o])),
        }
    };
    for e in split {
        let reference = match e.reference {
            Some(r) => r,
            None => match p.last_tried.and_then(|i| p.attempts.get(i)) {
                Some(a) => a.reference.clone(),
                None => continue,
            },
        };
        match p.attempts.iter_mut().find(|a| a.reference == reference) {
            Some(a) => {
                a.error = Some(e.error);
                a.class = Some(e.class);
            }
            None => p.attempts.push(AttemptState {
                reference,
                tries: 0,
                error: Some(e.error),
                class: Some(e.class),
            }),
        }
    }
}

fn build_record(
    mut p: OpenPull,
    outcome: PullOutcome,
    finished_usec: Option<u64>,
    digest: Option<String>,
) -> PullRecord {
    let served_idx = if outcome == PullOutcome::Pulled {
        p.last_tried
    } else {
        None
    };
    // A pull that has not ended may still be served by the location it is trying.
    let pending_idx = match outcome {
        PullOutcome::InProgress | PullOutcome::Abandoned => p
            .last_tried
            .filter(|&i| p.attempts.get(i).is_some_and(|a| a.error.is_none())),
        PullOutcome::Pulled | PullOutcome::Failed => None,
    };
    let is_mirror = |r: &str| match &p.sources {
        Some(s) if !s.is_empty() => s.last().map(String::as_str) != Some(r),
        _ => host_of(r) != host_of(&p.image),
    };
    let attempts: Vec<PullAttempt> = p
        .attempts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let served = Some(i) == served_idx;
            PullAttempt {
                reference: a.reference.clone(),
                mirror: is_mirror(&a.reference),
                outcome: if served {
                    AttemptOutcome::Served
                } else if Some(i) == pending_idx {
                    AttemptOutcome::Pending
                } else {
                    AttemptOutcome::Failed
                },
                error_class: if served { None } else { a.class },
                error: if served { None } else { a.error.clone() },
                tries: a.tries,
            }
        })
        .collect();
    let served = served_idx.and_then(|i| attempts.get(i));
    let served_by = served.map(|a| a.reference.clone());
    let via_mirror = served.is_some_and(|a| a.mirror);
    let fallback =
        served.is_some_and(|s| !s.mirror) && attempts.iter().any(|a| a.mirror && a.tries > 0);
    let blob = std::mem::take(&mut p.blob);
    let (blob_source, blob_failures) =
        blob.into_record_fields(outcome == PullOutcome::Pulled, served_by.as_deref());
    PullRecord {
        pull_id: p.pull_id,
        image: p.image,
        node: p.node,
        started_at: (!p.partial).then(|| format_usec(p.started_usec)),
        finished_at: finished_usec.map(format_usec),
        outcome,
        attempts,
        served_by,
        via_mirror,
        fallback,
        digest,
        image_id: None,
        namespaced_auth: p.namespaced_auth,
        pod: p.pod,
        cursor: Some(p.cursor).filter(|c| !c.is_empty()),
        error: p.error,
        partial: p.partial,
        revision: 0,
        blob_source,
        blob_failures,
    }
}
