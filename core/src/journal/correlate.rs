//! Pull correlation: turns the journal's CRI-O and kubelet lines, in journal order, into
//! [`PullRecord`]s.
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
//!   CRI-O ≥1.35.2 logs an image ID there, which is not a digest: it is kept as `image_id`, and
//!   `digest` is the one the pull asked for (null for a tag pull: nothing says which manifest).
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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};

use super::blob_trail::BlobTrail;
use super::cimage_error::{is_aggregated, split_error, strip_wrappers, AttemptError};
use super::crio::{self, pulled_value, CrioEvent, PulledValue};
use super::klog::{self, Fed, KlogReassembler};
use super::kubelet::{self, strip_rpc_prefix, KubeletEvent};
use super::line_break::LineJoiner;
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
    /// Emit each finished record at once, before `linger_usec`, and again (revision + 1) at the
    /// end of the linger only if late lines amended it. For a live consumer that must show a
    /// pull within a second; off for `scan`, whose output should hold each pull once.
    pub emit_early: bool,
}

impl Default for CorrelatorConfig {
    fn default() -> Self {
        Self {
            abandon_after_usec: 30 * 60 * 1_000_000,
            linger_usec: 10 * 1_000_000,
            pod_hint_usec: 60 * 1_000_000,
            emit_early: false,
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
    /// Lines journald had cut at its LineMax, joined again (read from the joiner by `stats()`).
    pub split_lines_joined: u64,
    /// Pieces of such lines given up (past the joined-line or the stream bound).
    pub split_pieces_dropped: u64,
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
    /// Where its layers came from, as far as debug lines tell.
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
    /// With `emit_early`: the pod the record had when it was emitted early.
    sent_pod: Option<Option<String>>,
}

impl Finished {
    /// The record to emit when it leaves the held-back set: none when it was emitted early and
    /// nothing changed since, else the amendment.
    fn into_final(self) -> Option<PullRecord> {
        let mut record = self.record;
        match self.sent_pod {
            None => Some(record),
            Some(sent) if sent == record.pod => None,
            Some(_) => {
                record.revision += 1;
                Some(record)
            }
        }
    }
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
    open: OpenPulls,
    finished: HeldBack,
    hints: Hints,
    orphans: Vec<Orphan>,
    /// `_HOSTNAME` of the latest entry that had one: kubelet lines reach the handlers without
    /// their entry.
    hostname: Option<String>,
    klog: KlogReassembler,
    lines: LineJoiner,
    next_seq: u64,
    /// Earliest journal time at which something may expire or be released.
    next_deadline: u64,
    /// Latest journal time seen, for lines completed at the end of input.
    last_usec: u64,
    stats: CorrelatorStats,
    /// Records emitted early (`emit_early`), waiting to be appended to the caller's output.
    early: Vec<PullRecord>,
    /// Journal time of CRI-O's latest debug line: a pull open since then could have logged its
    /// blob fallback, so its record can name its layers' source.
    last_debug_usec: Option<u64>,
    /// Open pulls that entered a blob fallback, so whose blobs may no longer come from their
    /// manifest's source (some may have closed since: checked on use, pruned on insert).
    blob_trails: BTreeSet<u64>,
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
            open: OpenPulls::default(),
            finished: HeldBack::default(),
            hints: Hints::default(),
            orphans: Vec::new(),
            hostname: None,
            klog: KlogReassembler::new(),
            next_seq: 0,
            next_deadline: u64::MAX,
            last_usec: 0,
            stats: CorrelatorStats::default(),
            lines: LineJoiner::default(),
            early: Vec::new(),
            last_debug_usec: None,
            blob_trails: BTreeSet::new(),
        }
    }

    /// Replaces the registries configuration used for pulls opened from now on.
    pub fn set_resolver(&mut self, resolver: Box<dyn SourceResolver + Send>) {
        self.resolver = resolver;
    }

    pub fn stats(&self) -> CorrelatorStats {
        CorrelatorStats {
            split_lines_joined: self.lines.joined,
            split_pieces_dropped: self.lines.dropped,
            ..self.stats
        }
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
        let notice = match self.lines.push(entry) {
            Some(whole) => self.dispatch(&whole),
            None => None,
        };
        if now >= self.next_deadline {
            self.sweep(now, out);
        }
        out.append(&mut self.early);
        notice
    }

    /// Moves the correlator's clock to `now_usec` without an entry (an idle followed journal):
    /// expires pulls and releases held-back records that became due, appending them to `out`.
    pub fn advance(&mut self, now_usec: u64, out: &mut Vec<PullRecord>) {
        self.last_usec = self.last_usec.max(now_usec);
        if now_usec >= self.next_deadline {
            self.sweep(now_usec, out);
        }
        out.append(&mut self.early);
    }

    /// End of input: every held-back record, then every open pull as `in_progress`, in start
    /// order.
    pub fn finish(&mut self) -> Vec<PullRecord> {
        for cut in self.lines.drain() {
            self.dispatch(&cut);
        }
        for text in self.klog.drain() {
            self.handle_klog_text(&close_incomplete(text), self.last_usec, "");
        }
        let mut rest: Vec<(u64, PullRecord)> = std::mem::take(&mut self.early)
            .into_iter()
            .map(|r| (0, r))
            .collect();
        rest.extend(
            self.finished
                .drain()
                .filter_map(|f| Some(f.seq).zip(f.into_final())),
        );
        for p in self.open.drain() {
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
            Some(b'{') if kubelet::is_json(msg) => {
                if kubelet::json_may_be_relevant(msg) {
                    self.handle_klog_text(msg, entry.realtime_usec, &entry.cursor);
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
        match ev {
            CrioEvent::BlobFetchFailed {
                digest,
                location,
                error,
            } => {
                // The oldest open pull fetching its blobs from that location: one that tried it
                // last (its manifest's source), or one whose blobs moved there.
                let open = &self.open.pulls;
                let fetching_from = |seq: &u64| {
                    open.get(seq).is_some_and(|p| {
                        p.blob.source(last_tried_ref(p)) == Some(location.as_str())
                    })
                };
                let by_manifest = self
                    .open
                    .index
                    .by_last_tried
                    .get(location.as_str())
                    .and_then(|s| s.iter().copied().find(fetching_from));
                let moved = self.blob_trails.iter().copied().find(fetching_from);
                let seq = by_manifest.into_iter().chain(moved).min()?;
                self.open.modify(seq, |p| {
                    p.blob.fetch_failed(digest, location, error);
                    p.last_usec = now;
                });
                let open = &self.open.pulls;
                self.blob_trails.retain(|s| open.contains_key(s));
                self.blob_trails.insert(seq);
            }
            CrioEvent::BlobSourceSwitched { location } => {
                let seq = self.blob_fallback_trying(&location)?;
                self.open.modify(seq, |p| {
                    p.blob.switched(location);
                    p.last_usec = now;
                });
            }
            CrioEvent::PullingImage { image, request_id } => {
                self.open_pull(image, request_id, entry);
            }
            CrioEvent::TryingToAccess { location, debug } => {
                // Blob fallbacks log their `Trying` lines at debug level only.
                let in_fallback = if debug {
                    self.blob_fallback_for(&location)
                } else {
                    None
                };
                match in_fallback {
                    Some(seq) => {
                        self.open.modify(seq, |p| {
                            p.blob.trying(location);
                            p.last_usec = now;
                        });
                    }
                    None => self.attach_try(location, debug, now),
                }
            }
            CrioEvent::AccessFailed { location, error } => {
                if let Some(seq) = self.blob_fallback_trying(&location) {
                    self.open.modify(seq, |p| {
                        p.blob.access_failed(error);
                        p.last_usec = now;
                    });
                    return None;
                }
                let class = super::cimage_error::classify_error(&error);
                // The first open pull that tried the location last gets the error; none of them
                // expects an echo any more.
                if let Some(seq) = keyed_first(&self.open.index.by_last_tried, &location) {
                    self.open.modify(seq, |p| {
                        if let Some(a) = p.last_tried.and_then(|i| p.attempts.get_mut(i)) {
                            a.error = Some(error);
                            a.class = Some(class);
                        }
                    });
                }
                let echoing: Vec<u64> = self
                    .open
                    .index
                    .echo_expected
                    .get(location.as_str())
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                for seq in echoing {
                    self.open.modify(seq, |p| p.echo_expected = false);
                }
            }
            CrioEvent::PulledImage {
                reference,
                request_id,
            } => {
                let Some(mut p) = self
                    .open
                    .by_request(request_id.as_deref())
                    .and_then(|seq| self.open.remove(seq))
                else {
                    self.close_partial_pulled(reference, request_id, entry);
                    return None;
                };
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
                let seq = self.open.by_request(request_id.as_deref())?;
                self.open.modify(seq, |p| {
                    p.artifact_failed = true;
                    p.last_usec = now;
                    apply_errors(p, &error);
                });
            }
            CrioEvent::UsingAuthFile {
                namespace,
                auth_file,
                request_id,
            } => {
                let seq = self.open.by_request(request_id.as_deref())?;
                self.open.modify(seq, |p| {
                    p.namespaced_auth = Some(NamespacedAuth {
                        namespace,
                        auth_file,
                    });
                    p.last_usec = now;
                });
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
                let all: Vec<OpenPull> = self.open.drain().collect();
                for p in all {
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
    fn borrow_twin_attempts(&mut self, p: &mut OpenPull) {
        if let Some(twin) = keyed_first(&self.open.index.with_attempts, &p.image)
            .and_then(|seq| self.open.pulls.get(&seq))
        {
            self.open.visits += 1;
            p.attempts = twin.attempts.clone();
            p.last_tried = twin.last_tried;
            return;
        }
        let Some(twin) = self
            .finished
            .served_by_image
            .get(p.image.as_str())
            .and_then(|s| s.last())
            .and_then(|id| self.finished.items.get(id))
        else {
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

    fn open_pull(&mut self, image: String, request_id: Option<String>, entry: &JournalEntry) {
        if self.open.by_request(request_id.as_deref()).is_some() {
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
        self.open.insert(OpenPull {
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
        self.hints.expire(now, self.config.pod_hint_usec);
        self.hints.take(image).map(|h| h.pod)
    }

    /// The oldest open pull in a blob fallback that may try `location` next: one of its
    /// sources (any, without a source list).
    fn blob_fallback_for(&mut self, location: &str) -> Option<u64> {
        if self.blob_trails.is_empty() {
            return None;
        }
        let open = &self.open.pulls;
        self.blob_trails.retain(|seq| open.contains_key(seq));
        self.blob_trails.iter().copied().find(|seq| {
            open.get(seq).is_some_and(|p| {
                p.blob.in_fallback()
                    && p.sources
                        .as_ref()
                        .is_none_or(|s| s.iter().any(|x| x == location))
            })
        })
    }

    /// The oldest open pull whose blob fallback is trying `location` now.
    fn blob_fallback_trying(&self, location: &str) -> Option<u64> {
        self.blob_trails.iter().copied().find(|seq| {
            self.open
                .pulls
                .get(seq)
                .is_some_and(|p| p.blob.in_fallback() && p.blob.is_trying(location))
        })
    }

    fn attach_try(&mut self, location: String, debug: bool, now: u64) {
        if debug && self.take_echo(&location, now) {
            return;
        }
        let best = self.open.index.best_for(&location);
        // The definition, checked on every line while that is cheap (the load tests open
        // thousands of pulls).
        #[cfg(test)]
        if self.open.len() <= 512 {
            assert_eq!(
                best,
                self.best_by_scan(&location),
                "indexed choice for {location}"
            );
        }
        let Some(seq) = best else {
            self.stats.unattached += 1;
            self.remember_orphan(location, debug, now);
            return;
        };
        self.open
            .modify(seq, |p| Self::count_try(p, location, debug, now));
        self.next_deadline = self
            .next_deadline
            .min(now.saturating_add(self.config.abandon_after_usec));
    }

    /// What [`OpenIndex::best_for`] answers, by scanning every open pull.
    #[cfg(test)]
    fn best_by_scan(&self, location: &str) -> Option<u64> {
        self.open
            .pulls
            .values()
            .filter_map(|p| match_tier(p, location).map(|t| (t, p.total_tries, p.seq)))
            .min()
            .map(|(_, _, seq)| seq)
    }

    /// `p` tried `location`.
    fn count_try(p: &mut OpenPull, location: String, debug: bool, now: u64) {
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
    }

    /// A debug `Trying to access "L"` right after an info one for L (of an open pull, else of
    /// the orphans) is containers/image 5.10–5.13 logging the same attempt twice: consumes the
    /// expectation and says so. A real retry always has another line in between (`Accessing …
    /// failed` at debug level, or another location's `Trying`), so it is still counted.
    fn take_echo(&mut self, location: &str, now: u64) -> bool {
        if let Some(seq) = keyed_first(&self.open.index.echo_expected, location) {
            self.open.modify(seq, |p| {
                p.echo_expected = false;
                p.last_usec = now;
            });
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
                let Some(mut p) = keyed_first(&self.open.index.artifact_failed, &image)
                    .or_else(|| keyed_first(&self.open.index.by_image, &image))
                    .and_then(|seq| self.open.remove(seq))
                else {
                    self.close_partial_failed(image, &error, now, cursor);
                    return;
                };
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
                if let Some(id) = keyed_first(&self.finished.podless_by_key, key) {
                    self.finished.set_pod(id, pod);
                }
            }
            KubeletEvent::PodEvent {
                pod: Some(pod),
                reason,
                image: Some(image),
                ..
            } => match reason.as_str() {
                "Pulling" => {
                    if let Some(seq) = keyed_first(&self.open.index.without_pod, &image) {
                        self.open.modify(seq, |p| p.pod = Some(pod));
                    } else {
                        self.hints.push(PodHint {
                            image,
                            pod,
                            at_usec: now,
                        });
                    }
                }
                "Pulled" | "Failed" => {
                    if let Some(seq) = keyed_first(&self.open.index.without_pod, &image) {
                        self.open.modify(seq, |p| p.pod = Some(pod));
                    } else if let Some(id) = keyed_first(&self.finished.podless_by_image, &image) {
                        self.finished.set_pod(id, pod);
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
            .abandoned_by_image
            .contains_key(image.as_str())
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
        let sent_pod = self.config.emit_early.then(|| {
            self.early.push(record.clone());
            record.pod.clone()
        });
        self.finished.push(Finished {
            seq,
            release_usec: release,
            image: record.image.clone(),
            failure_key,
            record,
            sent_pod,
        });
        self.next_deadline = self.next_deadline.min(release);
    }

    fn sweep(&mut self, now: u64, out: &mut Vec<PullRecord>) {
        let abandon = self.config.abandon_after_usec;
        for seq in self.open.expired(now, abandon) {
            let Some(p) = self.open.remove(seq) else {
                continue;
            };
            let outcome = if p.artifact_failed {
                PullOutcome::Failed
            } else {
                PullOutcome::Abandoned
            };
            let record = build_record(p, outcome, None, None);
            self.hold(seq, record, None, now);
        }
        self.finished.release(now, out);
        self.hints.expire(now, self.config.pod_hint_usec);
        self.next_deadline = self
            .open
            .earliest_expiry(abandon)
            .into_iter()
            .chain(self.finished.earliest_release())
            .min()
            .unwrap_or(u64::MAX);
    }
}

/// A multi-line klog value cut short (lost entries, end of input): close it so what arrived
/// still parses.
pub(super) fn close_incomplete(mut text: String) -> String {
    if !text.ends_with("\n >") {
        text.push_str("\n >");
    }
    text
}

/// What the kubelet's failure lines of one pull have in common once each consumer's wrappers
/// (`rpc error: …`, `RegistryUnavailable: `, `image pull failed for … because …: `) are removed.
pub(super) fn failure_key(error: &str) -> &str {
    strip_wrappers(error)
}

/// Smaller is a better match; `None` when `location` cannot belong to `p`. The definition the
/// indexes ([`OpenIndex::best_for`]) implement; tests check them against it on every line.
#[cfg(test)]
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
    let (a, b) = (name_tail(image), name_tail(location));
    // The kubelet appends `:latest` to untagged names; a location always has a tag or digest.
    a == b || (!a.contains([':', '@']) && b == format!("{a}:latest"))
}

/// Last path element, tag and digest included.
fn name_tail(s: &str) -> &str {
    let name_end = s.find('@').unwrap_or(s.len());
    let start = s[..name_end].rfind('/').map_or(0, |i| i + 1);
    &s[start..]
}

/// Last path element without tag or digest: `quay.io/a/b:1` and `m.example/x/b@sha256:…` both
/// give `b`.
pub(super) fn repository_tail(reference: &str) -> &str {
    let name_end = reference.find('@').unwrap_or(reference.len());
    let name = &reference[..name_end];
    let start = name.rfind('/').map_or(0, |i| i + 1);
    let last = &name[start..];
    last.split(':').next().unwrap_or(last)
}

/// Registry host of a reference the way containers/image normalises it.
pub(super) fn host_of(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => {
            if first == "index.docker.io" || first == "registry-1.docker.io" {
                "docker.io"
            } else {
                first
            }
        }
        _ => "docker.io",
    }
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
    let blob = std::mem::take(&mut p.blob);
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

/// A UUID-shaped id from the opening entry, for `Pulling image` lines without `id=`.
pub(super) fn derived_id(cursor: &str, usec: u64, message: &str) -> String {
    let mut h = Sha256::new();
    if cursor.is_empty() {
        h.update(usec.to_le_bytes());
        h.update(message.as_bytes());
    } else {
        h.update(cursor.as_bytes());
    }
    let d = h.finalize();
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
#[path = "correlate_tests.rs"]
mod tests;

// ---------------------------------------------------------------------------------------------
// Indexes. Every lookup the rules above make ("the first open pull, in start order, whose …")
// is answered from an ordered set keyed by what the line names, so the work per line does not
// grow with the number of open pulls, held-back records or waiting pod hints: a few hash
// look-ups and O(log n) ordered-set operations. Open pulls are keyed by `seq` (their start
// order, the order the rules break ties with), held-back records by the order they were held.
// ---------------------------------------------------------------------------------------------

/// Sets of ids per string key, in id order; empty sets are dropped so memory follows the
/// live entries.
type Keyed<K> = HashMap<String, BTreeSet<K>>;

fn keyed_edit<K: Ord>(map: &mut Keyed<K>, key: &str, value: K, add: bool) {
    if add {
        if let Some(set) = map.get_mut(key) {
            set.insert(value);
        } else {
            map.insert(key.to_owned(), BTreeSet::from([value]));
        }
    } else if let Some(set) = map.get_mut(key) {
        set.remove(&value);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

fn keyed_first<K: Ord + Copy>(map: &Keyed<K>, key: &str) -> Option<K> {
    map.get(key).and_then(|s| s.first().copied())
}

/// The location a pull tried last.
fn last_tried_ref(p: &OpenPull) -> Option<&str> {
    p.last_tried
        .and_then(|i| p.attempts.get(i))
        .map(|a| a.reference.as_str())
}

/// Tier (see `match_tier`) of the location at `pos` (its first position) in `p`'s sources.
fn source_tier(p: &OpenPull, pos: usize) -> u8 {
    let next = p.round_pos.map_or(0, |r| r + 1);
    if pos == next {
        0
    } else if pos == 0 {
        1
    } else {
        2
    }
}

/// The secondary indexes of the open pulls; every entry is derived from the pull's state, so
/// a pull is taken out ([`OpenIndex::apply`] with `add == false`) before it changes and put back
/// after.
#[derive(Debug, Default)]
struct OpenIndex {
    /// Request ids are unique among open pulls (a repeated `Pulling image` is ignored).
    by_request: HashMap<String, u64>,
    by_image: Keyed<u64>,
    artifact_failed: Keyed<u64>,
    without_pod: Keyed<u64>,
    with_attempts: Keyed<u64>,
    /// By the location tried last.
    by_last_tried: Keyed<u64>,
    /// By the location tried last, pulls whose next debug `Trying` line for it is an echo.
    echo_expected: Keyed<u64>,
    /// `(last_usec, seq)`: expiry order.
    expiry: BTreeSet<(u64, u64)>,
    /// Pulls with a source list, by each distinct location in it: `(tier, total_tries, seq)`.
    by_source: Keyed<(u8, u32, u64)>,
    /// Pulls with a source list, by their image's last path element: `(total_tries, seq)`.
    resolved_by_tail: Keyed<(u32, u64)>,
    /// Pulls without a source list, by their image's last path element:
    /// `(tier, total_tries, seq)`.
    unresolved_by_tail: Keyed<(u8, u32, u64)>,
}

impl OpenIndex {
    fn apply(&mut self, p: &OpenPull, add: bool) {
        let seq = p.seq;
        let image = p.image.as_str();
        if let Some(id) = &p.request_id {
            if add {
                self.by_request.insert(id.clone(), seq);
            } else if self.by_request.get(id) == Some(&seq) {
                self.by_request.remove(id);
            }
        }
        keyed_edit(&mut self.by_image, image, seq, add);
        if p.artifact_failed {
            keyed_edit(&mut self.artifact_failed, image, seq, add);
        }
        if p.pod.is_none() {
            keyed_edit(&mut self.without_pod, image, seq, add);
        }
        if !p.attempts.is_empty() {
            keyed_edit(&mut self.with_attempts, image, seq, add);
        }
        if let Some(last) = last_tried_ref(p) {
            keyed_edit(&mut self.by_last_tried, last, seq, add);
            if p.echo_expected {
                keyed_edit(&mut self.echo_expected, last, seq, add);
            }
        }
        if add {
            self.expiry.insert((p.last_usec, seq));
        } else {
            self.expiry.remove(&(p.last_usec, seq));
        }
        let tail = name_tail(image);
        match &p.sources {
            Some(sources) => {
                for (pos, s) in sources.iter().enumerate() {
                    if sources.iter().position(|x| x == s) != Some(pos) {
                        continue;
                    }
                    let key = (source_tier(p, pos), p.total_tries, seq);
                    keyed_edit(&mut self.by_source, s, key, add);
                }
                keyed_edit(&mut self.resolved_by_tail, tail, (p.total_tries, seq), add);
            }
            None => {
                let key = (u8::from(!p.attempts.is_empty()), p.total_tries, seq);
                keyed_edit(&mut self.unresolved_by_tail, tail, key, add);
            }
        }
    }

    /// The pull `match_tier` and the tie-breaks choose for a `Trying to access "location"`
    /// line: the smallest `(tier, total_tries, seq)` among the pulls listing the location and
    /// those whose image has its last path element.
    fn best_for(&self, location: &str) -> Option<u64> {
        let mut best: Option<(u8, u32, u64)> = None;
        let mut consider = |k: (u8, u32, u64)| {
            if best.is_none_or(|b| k < b) {
                best = Some(k);
            }
        };
        let listed = keyed_first(&self.by_source, location);
        if let Some(k) = listed {
            consider(k);
        }
        let tail = name_tail(location);
        // `same_tail`: equal, or the image is untagged and the location is its `:latest`.
        let untagged = tail
            .strip_suffix(":latest")
            .filter(|a| !a.contains([':', '@']));
        for key in std::iter::once(tail).chain(untagged) {
            // Tier 3 (a pull with a source list that does not list the location) can only win
            // when no pull lists it: those are all tier ≤ 2.
            if listed.is_none() {
                if let Some((tries, seq)) = keyed_first(&self.resolved_by_tail, key) {
                    consider((3, tries, seq));
                }
            }
            if let Some(k) = keyed_first(&self.unresolved_by_tail, key) {
                consider(k);
            }
        }
        best.map(|(_, _, seq)| seq)
    }
}

/// The open pulls, in start order, with their indexes.
#[derive(Debug, Default)]
struct OpenPulls {
    pulls: BTreeMap<u64, OpenPull>,
    index: OpenIndex,
    /// Pulls read, changed, added or removed: the work the correlator did on open pulls (tests
    /// assert it stays proportional to the lines, whatever the number of open pulls).
    visits: u64,
}

impl OpenPulls {
    fn len(&self) -> usize {
        self.pulls.len()
    }

    fn insert(&mut self, p: OpenPull) {
        self.visits += 1;
        self.index.apply(&p, true);
        self.pulls.insert(p.seq, p);
    }

    fn remove(&mut self, seq: u64) -> Option<OpenPull> {
        self.visits += 1;
        let p = self.pulls.remove(&seq)?;
        self.index.apply(&p, false);
        Some(p)
    }

    /// Changes one pull, keeping the indexes in step.
    fn modify<R>(&mut self, seq: u64, f: impl FnOnce(&mut OpenPull) -> R) -> Option<R> {
        self.visits += 1;
        let p = self.pulls.get_mut(&seq)?;
        self.index.apply(p, false);
        let r = f(p);
        self.index.apply(p, true);
        Some(r)
    }

    fn by_request(&self, id: Option<&str>) -> Option<u64> {
        self.index.by_request.get(id?).copied()
    }

    /// Every pull, in start order; the indexes are emptied.
    fn drain(&mut self) -> impl Iterator<Item = OpenPull> {
        self.index = OpenIndex::default();
        let pulls = std::mem::take(&mut self.pulls);
        self.visits += pulls.len() as u64;
        pulls.into_values()
    }

    /// Pulls with no line for `abandon` at `now`, in start order.
    fn expired(&self, now: u64, abandon: u64) -> Vec<u64> {
        let mut seqs: Vec<u64> = self
            .index
            .expiry
            .iter()
            .take_while(|(last, _)| last.saturating_add(abandon) <= now)
            .map(|&(_, seq)| seq)
            .collect();
        seqs.sort_unstable();
        seqs
    }

    fn earliest_expiry(&self, abandon: u64) -> Option<u64> {
        self.index
            .expiry
            .first()
            .map(|(last, _)| last.saturating_add(abandon))
    }
}

/// Finished records held back for late pod lines, in the order they were held, with indexes.
#[derive(Debug, Default)]
struct HeldBack {
    items: BTreeMap<u64, Finished>,
    next: u64,
    by_release: BTreeSet<(u64, u64)>,
    /// Without a pod, by failure key.
    podless_by_key: Keyed<u64>,
    /// Without a pod, by image.
    podless_by_image: Keyed<u64>,
    abandoned_by_image: Keyed<u64>,
    /// Pulled and served, by image.
    served_by_image: Keyed<u64>,
}

impl HeldBack {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn apply(&mut self, id: u64, f: &Finished, add: bool) {
        if f.record.pod.is_none() {
            if let Some(key) = &f.failure_key {
                keyed_edit(&mut self.podless_by_key, key, id, add);
            }
            keyed_edit(&mut self.podless_by_image, &f.image, id, add);
        }
        if f.record.outcome == PullOutcome::Abandoned {
            keyed_edit(&mut self.abandoned_by_image, &f.image, id, add);
        }
        if f.record.outcome == PullOutcome::Pulled && f.record.served_by.is_some() {
            keyed_edit(&mut self.served_by_image, &f.image, id, add);
        }
        if add {
            self.by_release.insert((f.release_usec, id));
        } else {
            self.by_release.remove(&(f.release_usec, id));
        }
    }

    fn push(&mut self, f: Finished) {
        let id = self.next;
        self.next += 1;
        self.apply(id, &f, true);
        self.items.insert(id, f);
    }

    fn remove(&mut self, id: u64) -> Option<Finished> {
        let f = self.items.remove(&id)?;
        self.apply(id, &f, false);
        Some(f)
    }

    fn set_pod(&mut self, id: u64, pod: String) {
        let Some(f) = self.items.remove(&id) else {
            return;
        };
        self.apply(id, &f, false);
        let mut f = f;
        f.record.pod = Some(pod);
        self.apply(id, &f, true);
        self.items.insert(id, f);
    }

    /// The records due at `now`, in the order they were held.
    fn release(&mut self, now: u64, out: &mut Vec<PullRecord>) {
        let mut due: Vec<u64> = self
            .by_release
            .iter()
            .take_while(|(release, _)| *release <= now)
            .map(|&(_, id)| id)
            .collect();
        due.sort_unstable();
        for id in due {
            if let Some(r) = self.remove(id).and_then(Finished::into_final) {
                out.push(r);
            }
        }
    }

    fn earliest_release(&self) -> Option<u64> {
        self.by_release.first().map(|(release, _)| *release)
    }

    /// Every record, in the order held; the indexes are emptied.
    fn drain(&mut self) -> impl Iterator<Item = Finished> {
        let items = std::mem::take(&mut self.items);
        *self = Self {
            next: self.next,
            ..Self::default()
        };
        items.into_values()
    }
}

/// Kubelet `Pulling` events waiting for their pull, in arrival order, with indexes.
#[derive(Debug, Default)]
struct Hints {
    items: BTreeMap<u64, PodHint>,
    next: u64,
    by_time: BTreeSet<(u64, u64)>,
    by_image: Keyed<u64>,
}

impl Hints {
    fn push(&mut self, h: PodHint) {
        let id = self.next;
        self.next += 1;
        self.by_time.insert((h.at_usec, id));
        keyed_edit(&mut self.by_image, &h.image, id, true);
        self.items.insert(id, h);
    }

    fn remove(&mut self, id: u64) -> Option<PodHint> {
        let h = self.items.remove(&id)?;
        self.by_time.remove(&(h.at_usec, id));
        keyed_edit(&mut self.by_image, &h.image, id, false);
        Some(h)
    }

    /// Drops the hints older than `window` at `now`.
    fn expire(&mut self, now: u64, window: u64) {
        let old: Vec<u64> = self
            .by_time
            .iter()
            .take_while(|(at, _)| at.saturating_add(window) < now)
            .map(|&(_, id)| id)
            .collect();
        for id in old {
            self.remove(id);
        }
    }

    /// The oldest hint for `image`.
    fn take(&mut self, image: &str) -> Option<PodHint> {
        let id = keyed_first(&self.by_image, image)?;
        self.remove(id)
    }
}
