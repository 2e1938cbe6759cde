//! What the agent knows, shared by its tasks: the config watcher and the journal pipeline write
//! it, the HTTP server and the push task read it. A std mutex held for short, non-async
//! sections only; every change that matters to the collector bumps a watch channel.

use crate::clock::now_usec;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use mirrorscope_core::journal::{AttemptOutcome, PullOutcome, PullRecord};
use mirrorscope_core::machineconfig::FileMatch;
use mirrorscope_core::reference::ImageReference;
use mirrorscope_core::registries::EffectiveConfig;
use mirrorscope_core::report::{
    json_len, AttemptCount, CrioState, JournalState, MachineConfigState, NodeReport, PullCount,
    PullCounters, RegistriesState, NODE_REPORT_VERSION,
};
use mirrorscope_core::time::format_usec;
use tokio::sync::watch;

use super::hostfiles::RegistriesRead;
use super::labels::{self, BoundedLabel};
use super::metrics::Metrics;
use super::truncate::limit_record;
use crate::readfile::ReadError;

/// Records kept for `GET /v1/report`.
pub const RING: usize = 256;

/// Pull records not yet acknowledged by the collector, oldest first, one per pull id.
///
/// A record counts as dropped only when it is certain the collector never got it: a record
/// pushed out of a full outbox while a push carrying it is still unanswered is dropped only if
/// that push fails.
#[derive(Debug, Default)]
pub struct Outbox {
    records: VecDeque<PullRecord>,
    ids: HashSet<String>,
    capacity: usize,
    dropped: u64,
    /// Ids carried by the push in flight.
    in_flight: HashSet<String>,
    /// In-flight records evicted to make room: delivered if that push succeeds.
    evicted_in_flight: HashSet<String>,
    /// In-flight records replaced by a later revision: an ack of the push in flight (which
    /// carried the earlier one) must not remove them.
    amended_in_flight: HashSet<String>,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Outbox {
            capacity: capacity.max(1),
            ..Outbox::default()
        }
    }

    /// Adds a record (a replayed pull id replaces nothing: the first copy is kept); returns how
    /// many old records were dropped for good to make room.
    pub fn push(&mut self, r: PullRecord) -> u64 {
        if self.ids.contains(&r.pull_id) {
            return 0;
        }
        let mut dropped = 0;
        while self.records.len() >= self.capacity {
            let Some(old) = self.records.pop_front() else {
                break;
            };
            self.ids.remove(&old.pull_id);
            if self.in_flight.contains(&old.pull_id) {
                self.evicted_in_flight.insert(old.pull_id);
            } else {
                dropped += 1;
            }
        }
        self.ids.insert(r.pull_id.clone());
        self.records.push_back(r);
        self.dropped += dropped;
        dropped
    }

    /// A later revision of a record sent at once: replaces the queued copy, or is queued anew
    /// when that copy is already acknowledged; returns how many old records were dropped.
    pub fn amend(&mut self, r: PullRecord) -> u64 {
        match self.records.iter_mut().find(|q| q.pull_id == r.pull_id) {
            Some(queued) => {
                if self.in_flight.contains(&r.pull_id) {
                    self.amended_in_flight.insert(r.pull_id.clone());
                }
                *queued = r;
                0
            }
            None => self.push(r),
        }
    }

    pub fn oldest(&self, max: usize) -> Vec<PullRecord> {
        self.records.iter().take(max).cloned().collect()
    }

    /// Records for a push, oldest first: at most `max`, and (beyond the first) only while
    /// their JSON fits in `budget` bytes. They count as in flight until [`Outbox::ack`] or
    /// [`Outbox::failed`].
    pub fn take(&mut self, max: usize, budget: usize) -> Vec<PullRecord> {
        let mut out = Vec::new();
        let mut used = 0usize;
        for r in self.records.iter().take(max) {
            // The separating comma.
            let size = json_len(r) + 1;
            if !out.is_empty() && used.saturating_add(size) > budget {
                break;
            }
            used = used.saturating_add(size);
            out.push(r.clone());
        }
        self.in_flight = out.iter().map(|r| r.pull_id.clone()).collect();
        self.evicted_in_flight.clear();
        self.amended_in_flight.clear();
        out
    }

    /// The push carrying `ids` succeeded; returns how many records were dropped for good
    /// (evicted while in flight but not carried, which cannot happen with one push at a time).
    pub fn ack(&mut self, ids: &[String]) -> u64 {
        let acked: HashSet<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| !self.amended_in_flight.contains(*id))
            .collect();
        self.records.retain(|r| !acked.contains(r.pull_id.as_str()));
        self.ids.retain(|id| !acked.contains(id.as_str()));
        self.amended_in_flight.clear();
        let lost = self
            .evicted_in_flight
            .iter()
            .filter(|id| !acked.contains(id.as_str()))
            .count() as u64;
        self.dropped += lost;
        self.in_flight.clear();
        self.evicted_in_flight.clear();
        lost
    }

    /// The push in flight failed: records evicted meanwhile are lost; returns how many.
    pub fn failed(&mut self) -> u64 {
        let lost = self.evicted_in_flight.len() as u64;
        self.dropped += lost;
        self.in_flight.clear();
        self.evicted_in_flight.clear();
        self.amended_in_flight.clear();
        lost
    }

    /// Removes one record for good (the collector refuses it whatever its size); true when it
    /// was there.
    pub fn discard(&mut self, id: &str) -> bool {
        let before = self.records.len();
        self.records.retain(|r| r.pull_id != id);
        self.ids.remove(id);
        self.in_flight.remove(id);
        let gone = self.records.len() < before;
        if gone {
            self.dropped += 1;
        }
        gone
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn all(&self) -> Vec<PullRecord> {
        self.records.iter().cloned().collect()
    }
}

pub struct AgentState {
    pub node: String,
    instance: String,
    seq: u64,
    pub registries: RegistriesState,
    last_valid: Option<Arc<EffectiveConfig>>,
    pub machine_config: MachineConfigState,
    pub crio: CrioState,
    pub journal: JournalState,
    ring: VecDeque<PullRecord>,
    pub outbox: Outbox,
    pulls: BTreeMap<(String, String, String), u64>,
    attempts: BTreeMap<(String, String), u64>,
    /// The host files were read at least once.
    pub config_read: bool,
    /// Why the last read of the host files did not finish (a hung file system), if it did not.
    pub config_stalled: Option<String>,
    /// Read failures of the last read of the host files, to log and count each once.
    read_failures: HashSet<String>,
    registry_labels: BoundedLabel,
    location_labels: BoundedLabel,
}

pub struct Shared {
    state: Mutex<AgentState>,
    changed: watch::Sender<u64>,
    pub metrics: Metrics,
    /// The collector acknowledged records since the state file was last written: the saved
    /// outbox still carries them (a restart would send them all again).
    acked_unsaved: std::sync::atomic::AtomicBool,
}

/// The canonical configuration is kept (and reported) only up to this size: it is a
/// convenience for people reading the report, and every report carries a copy.
pub const MAX_CANONICAL_BYTES: usize = 1024 * 1024;

pub fn now_rfc3339() -> String {
    format_usec(now_usec())
}

/// The registry host of an image or location, for metrics labels (the requested image's
/// domain for pulls).
fn registry_host(reference: &str) -> String {
    ImageReference::parse_normalized(reference)
        .map(|r| r.domain().to_owned())
        .unwrap_or_else(|_| reference.split('/').next().unwrap_or("unknown").to_owned())
}

fn outcome_label(o: PullOutcome) -> &'static str {
    match o {
        PullOutcome::Pulled => "pulled",
        PullOutcome::Failed => "failed",
        PullOutcome::InProgress => "in_progress",
        PullOutcome::Abandoned => "abandoned",
    }
}

impl Shared {
    pub fn new(node: String, instance: String, outbox_capacity: usize) -> Arc<Self> {
        let (changed, _) = watch::channel(0);
        Arc::new(Shared {
            state: Mutex::new(AgentState {
                node,
                instance,
                seq: 0,
                registries: RegistriesState {
                    files: Vec::new(),
                    valid: false,
                    error: None,
                    effective_digest: None,
                    effective_canonical: None,
                    changed_at: None,
                },
                last_valid: None,
                machine_config: MachineConfigState {
                    current_config: None,
                    registries_conf: None,
                    signature_files: Vec::new(),
                    force_file: false,
                    error: None,
                },
                crio: CrioState::default(),
                journal: JournalState::default(),
                ring: VecDeque::with_capacity(RING),
                outbox: Outbox::new(outbox_capacity),
                pulls: BTreeMap::new(),
                attempts: BTreeMap::new(),
                config_read: false,
                config_stalled: None,
                read_failures: HashSet::new(),
                registry_labels: BoundedLabel::new(labels::MAX_VALUES),
                location_labels: BoundedLabel::new(labels::MAX_VALUES),
            }),
            changed,
            metrics: Metrics::new(),
            acked_unsaved: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The state; a panic elsewhere while holding the lock leaves data that is still usable.
    pub fn lock(&self) -> MutexGuard<'_, AgentState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|g| *g += 1);
    }

    /// The last valid effective configuration (what CRI-O keeps using when a file turns bad).
    pub fn last_valid(&self) -> Option<Arc<EffectiveConfig>> {
        self.lock().last_valid.clone()
    }

    /// Applies a fresh read of the host files; true when anything reported changed.
    pub fn set_host_files(
        &self,
        read: RegistriesRead,
        mc: MachineConfigState,
        mc_failure: Option<ReadError>,
    ) -> bool {
        let mut st = self.lock();
        st.config_stalled = None;
        let failures: HashSet<String> = read
            .read_failures
            .iter()
            .chain(mc_failure.as_ref())
            .map(|e| {
                let text = e.to_string();
                if !st.read_failures.contains(&text) {
                    tracing::warn!("node file: {text}");
                    self.metrics.error("config", e.kind());
                }
                text
            })
            .collect();
        st.read_failures = failures;
        let mut next = st.registries.clone();
        next.files = read.files;
        match read.effective {
            // The same configuration as last time (the read cache hit): nothing to render.
            Ok(eff) if st.last_valid.as_ref().is_some_and(|l| Arc::ptr_eq(l, &eff)) => {
                next.valid = true;
                next.error = None;
            }
            Ok(eff) => {
                let (sha, json) = eff.canonical_sha256_and_json(MAX_CANONICAL_BYTES);
                next.valid = true;
                next.error = None;
                if next.effective_digest.as_deref() != Some(sha.as_str()) {
                    if json.is_none() {
                        tracing::warn!(
                            "effective configuration {sha}: canonical form is over {MAX_CANONICAL_BYTES} bytes; left out of reports"
                        );
                        self.metrics.error("config", "canonical_too_large");
                    }
                    next.effective_canonical = json;
                    next.effective_digest = Some(sha);
                    next.changed_at = Some(now_rfc3339());
                }
                st.last_valid = Some(eff);
            }
            Err(e) => {
                next.valid = false;
                next.error = Some(e);
            }
        }
        let changed = next != st.registries || mc != st.machine_config || !st.config_read;
        self.metrics
            .set_config(next.valid, next.effective_digest.as_deref());
        self.metrics
            .set_matches_machineconfig(matches!(mc.registries_conf, Some(FileMatch::Matches)));
        st.registries = next;
        st.machine_config = mc;
        st.config_read = true;
        drop(st);
        if changed {
            self.bump();
        }
        changed
    }

    pub fn crio_applied(&self, at_usec: u64) {
        self.lock().crio.last_applied_at = Some(format_usec(at_usec));
        self.metrics.set_crio_applied(at_usec as f64 / 1e6);
        self.bump();
    }

    pub fn crio_reload_failed(&self, at_usec: u64, error: String) {
        {
            let mut st = self.lock();
            st.crio.last_reload_failure_at = Some(format_usec(at_usec));
            st.crio.last_reload_failure = Some(error);
        }
        self.bump();
    }

    /// Journal reader status; only a change of following/error is worth a push (the cursor moves
    /// all the time and rides along with the next report).
    pub fn set_journal(&self, following: bool, cursor: Option<String>, error: Option<String>) {
        let notify = {
            let mut st = self.lock();
            let notify = st.journal.following != following || st.journal.error != error;
            st.journal.following = following;
            if cursor.is_some() {
                st.journal.cursor = cursor;
            }
            st.journal.error = error;
            notify
        };
        self.metrics.set_following(following);
        if notify {
            self.bump();
        }
    }

    /// Records from the journal: counted (a pull once, at its first revision), kept in the ring
    /// and queued for the collector; a later revision replaces its first in both.
    pub fn add_records(&self, records: Vec<PullRecord>) {
        if records.is_empty() {
            return;
        }
        let mut dropped = 0;
        {
            let mut st = self.lock();
            for mut r in records {
                let cut = limit_record(&mut r);
                if cut > 0 {
                    tracing::warn!(
                        "pull {}: {cut} oversized fields truncated to {} bytes",
                        r.pull_id,
                        super::truncate::MAX_FIELD_BYTES
                    );
                    self.metrics.error("pipeline", "record_truncated");
                }
                if r.revision > 0 {
                    if let Some(kept) = st.ring.iter_mut().rev().find(|k| k.pull_id == r.pull_id) {
                        *kept = r.clone();
                    }
                    dropped += st.outbox.amend(r);
                    continue;
                }
                self.count(&mut st, &r);
                if st.ring.len() >= RING {
                    st.ring.pop_front();
                }
                st.ring.push_back(r.clone());
                dropped += st.outbox.push(r);
            }
        }
        if dropped > 0 {
            self.metrics.outbox_dropped(dropped);
        }
        self.bump();
    }

    fn count(&self, st: &mut AgentState, r: &PullRecord) {
        let (registry, folded) = st.registry_labels.admit(registry_host(&r.image));
        if folded {
            self.metrics.label_folded("registry");
        }
        let kind = match (&r.served_by, r.via_mirror) {
            (None, _) => "none",
            (Some(_), true) => "mirror",
            (Some(_), false) => "source",
        };
        let outcome = outcome_label(r.outcome);
        self.metrics.pull(&registry, kind, outcome);
        *st.pulls
            .entry((registry, kind.to_owned(), outcome.to_owned()))
            .or_default() += 1;
        for a in &r.attempts {
            let class = match (a.outcome, a.error_class) {
                (AttemptOutcome::Served, _) => "none".to_owned(),
                (AttemptOutcome::Pending, _) => "pending".to_owned(),
                (AttemptOutcome::Failed, None) => "unknown".to_owned(),
                (AttemptOutcome::Failed, Some(c)) => serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "other".into()),
            };
            let (host, folded) = st.location_labels.admit(registry_host(&a.reference));
            if folded {
                self.metrics.label_folded("location");
            }
            self.metrics.attempt(&host, &class);
            *st.attempts.entry((host, class)).or_default() += 1;
        }
    }

    /// Records persisted by a previous run and not yet acknowledged.
    pub fn restore_outbox(&self, records: Vec<PullRecord>) {
        let mut dropped = 0;
        {
            let mut st = self.lock();
            for mut r in records {
                limit_record(&mut r);
                dropped += st.outbox.push(r);
            }
        }
        if dropped > 0 {
            tracing::warn!("{dropped} saved pull records did not fit in the outbox; dropped");
            self.metrics.outbox_dropped(dropped);
        }
    }

    pub fn ack(&self, ids: &[String]) {
        if !ids.is_empty() {
            self.acked_unsaved
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let lost = self.lock().outbox.ack(ids);
        if lost > 0 {
            self.metrics.outbox_dropped(lost);
        }
    }

    /// Whether records were acknowledged since the state file was last written (it should be
    /// written again so that they leave the saved outbox too).
    pub fn acked_unsaved(&self) -> bool {
        self.acked_unsaved
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The outbox to save; acknowledgements up to now are covered by that save.
    pub fn outbox_to_save(&self) -> Vec<PullRecord> {
        self.acked_unsaved
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.lock().outbox.all()
    }

    /// The push in flight failed.
    pub fn push_failed(&self) {
        let lost = self.lock().outbox.failed();
        if lost > 0 {
            self.metrics.outbox_dropped(lost);
        }
    }

    /// Drops a record the collector refuses however small the push around it.
    pub fn discard(&self, id: &str) {
        if self.lock().outbox.discard(id) {
            self.metrics.outbox_dropped(1);
        }
    }

    /// The host files could not be read in time.
    pub fn config_stalled(&self, why: String) {
        self.lock().config_stalled = Some(why);
        self.bump();
    }

    /// Why `/readyz` fails, or `None` when the agent is ready: the node files were read, the
    /// last read finished, and the journal is readable.
    pub fn not_ready(&self) -> Option<String> {
        let st = self.lock();
        if !st.config_read {
            return Some("node files not read yet".into());
        }
        if let Some(why) = &st.config_stalled {
            return Some(why.clone());
        }
        st.journal.error.as_ref().map(|e| format!("journal: {e}"))
    }

    pub fn outbox_len(&self) -> usize {
        self.lock().outbox.len()
    }

    /// The report: `pulls` is the outbox (at most `max` oldest) for a push, the recent ring
    /// for `GET /v1/report`.
    pub fn report(&self, push_max: Option<usize>) -> NodeReport {
        let mut st = self.lock();
        let pulls = match push_max {
            Some(max) => st.outbox.oldest(max),
            None => st.ring.iter().cloned().collect(),
        };
        Self::report_of(&mut st, pulls)
    }

    /// The report for a push: at most `max` outbox records, and the whole JSON body within
    /// about `budget` bytes. When the report without records already takes more than half the
    /// budget, the embedded file contents and the canonical configuration (the largest parts,
    /// also available on the node) are left out; returns how many such fields were.
    pub fn push_report(&self, max: usize, budget: usize) -> (NodeReport, usize) {
        let mut st = self.lock();
        let mut report = Self::report_of(&mut st, Vec::new());
        let mut left_out = 0;
        if json_len(&report) > budget / 2 {
            for f in &mut report.registries.files {
                left_out += usize::from(f.contents.take().is_some());
            }
            left_out += usize::from(report.registries.effective_canonical.take().is_some());
        }
        let rest = budget.saturating_sub(json_len(&report));
        report.pulls = st.outbox.take(max, rest);
        (report, left_out)
    }

    fn report_of(st: &mut AgentState, pulls: Vec<PullRecord>) -> NodeReport {
        st.seq += 1;
        NodeReport {
            version: NODE_REPORT_VERSION,
            node: st.node.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            agent_instance: st.instance.clone(),
            seq: st.seq,
            generated_at: now_rfc3339(),
            registries: st.registries.clone(),
            machine_config: st.machine_config.clone(),
            crio: st.crio.clone(),
            journal: st.journal.clone(),
            pulls,
            pulls_dropped: st.outbox.dropped(),
            counters: PullCounters {
                pulls: st
                    .pulls
                    .iter()
                    .map(|((registry, kind, outcome), n)| PullCount {
                        registry: registry.clone(),
                        served_by_kind: kind.clone(),
                        outcome: outcome.clone(),
                        count: *n,
                    })
                    .collect(),
                attempts: st
                    .attempts
                    .iter()
                    .map(|((location, class), n)| AttemptCount {
                        location: location.clone(),
                        error_class: class.clone(),
                        count: *n,
                    })
                    .collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::metrics::to_prometheus_text;
    use super::*;

    fn rec(id: &str) -> PullRecord {
        PullRecord {
            outcome: PullOutcome::Pulled,
            ..PullRecord::started(id, "quay.io/a/b:1", "2026-11-21T07:00:00.000000Z")
        }
    }

    #[test]
    fn outbox_drops_oldest_past_its_bound_and_keeps_one_copy_per_pull() {
        let mut o = Outbox::new(2);
        assert_eq!(o.push(rec("a")), 0);
        assert_eq!(o.push(rec("a")), 0);
        assert_eq!(o.push(rec("b")), 0);
        assert_eq!(o.push(rec("c")), 1);
        let ids: Vec<_> = o.all().into_iter().map(|r| r.pull_id).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(o.dropped(), 1);
        o.ack(&["b".into()]);
        assert_eq!(o.len(), 1);
        // An acknowledged id may come back (replay after a crash): the collector dedups it.
        assert_eq!(o.push(rec("b")), 0);
        assert_eq!(o.len(), 2);
    }

    fn ids(v: &[PullRecord]) -> Vec<String> {
        v.iter().map(|r| r.pull_id.clone()).collect()
    }

    /// A flood evicts records a push is carrying; the collector acknowledging them means they
    /// were delivered, not dropped.
    #[test]
    fn records_evicted_while_their_push_is_in_flight_are_dropped_only_if_it_fails() {
        let mut o = Outbox::new(2);
        o.push(rec("a"));
        o.push(rec("b"));
        let batch = o.take(10, usize::MAX);
        assert_eq!(ids(&batch), ["a", "b"]);
        assert_eq!(o.push(rec("c")), 0);
        assert_eq!(o.push(rec("d")), 0);
        assert_eq!(o.ack(&ids(&batch)), 0);
        assert_eq!(o.dropped(), 0);
        assert_eq!(ids(&o.all()), ["c", "d"]);

        let batch = o.take(10, usize::MAX);
        o.push(rec("e"));
        o.push(rec("f"));
        assert_eq!(o.failed(), 2, "c and d are gone and were never delivered");
        assert_eq!(o.dropped(), 2);
        let _ = batch;
        // Not in flight: dropped at once.
        assert_eq!(o.push(rec("g")), 1);
        assert_eq!(o.dropped(), 3);
    }

    /// A pull sent at once and amended (its pod learned late): the amendment replaces a queued
    /// copy, survives the ack of a push that carried the first, and is queued anew once the
    /// first was acknowledged; the pull is counted once.
    #[test]
    fn amended_records_replace_their_first_revision_and_are_counted_once() {
        let amended = |id: &str| PullRecord {
            revision: 1,
            pod: Some("ns/web".into()),
            ..rec(id)
        };
        let mut o = Outbox::new(10);
        o.push(rec("a"));
        assert_eq!(o.amend(amended("a")), 0);
        assert_eq!(o.all().len(), 1);
        assert_eq!(o.all()[0].revision, 1);
        // In flight: the ack is for the first revision, the amendment stays queued.
        o.push(rec("b"));
        let batch = o.take(10, usize::MAX);
        o.amend(amended("b"));
        o.ack(&ids(&batch));
        assert_eq!(ids(&o.all()), ["b"]);
        assert_eq!(o.all()[0].pod.as_deref(), Some("ns/web"));
        let batch = o.take(10, usize::MAX);
        o.ack(&ids(&batch));
        assert!(o.all().is_empty());
        // Already acknowledged: queued again.
        o.amend(amended("b"));
        assert_eq!(ids(&o.all()), ["b"]);

        let shared = Shared::new("n".into(), "i".into(), 10);
        shared.add_records(vec![rec("p")]);
        shared.add_records(vec![amended("p")]);
        let report = shared.report(None);
        let ring: Vec<_> = report.pulls.iter().filter(|r| r.pull_id == "p").collect();
        assert_eq!(ring.len(), 1);
        assert_eq!(ring[0].revision, 1);
        let text = to_prometheus_text(&shared.metrics.encode());
        let pulls: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("mirrorscope_pulls_total{"))
            .collect();
        assert_eq!(pulls.len(), 1, "{pulls:?}");
        assert!(pulls[0].ends_with(" 1"), "{pulls:?}");
    }

    #[test]
    fn the_dropped_metric_counts_only_records_never_delivered() {
        let shared = Shared::new("n".into(), "i".into(), 3);
        shared.add_records((0..3).map(|i| rec(&format!("p{i}"))).collect());
        let (report, _) = shared.push_report(10, usize::MAX);
        shared.add_records((3..6).map(|i| rec(&format!("p{i}"))).collect());
        shared.ack(&ids(&report.pulls));
        let text = to_prometheus_text(&shared.metrics.encode());
        assert!(
            text.contains("mirrorscope_outbox_dropped_total 0\n"),
            "{text}"
        );
        assert_eq!(shared.report(Some(10)).pulls_dropped, 0);
    }

    #[test]
    fn pushes_stay_within_the_byte_budget_and_leave_out_huge_report_fields() {
        let shared = Shared::new("n".into(), "i".into(), 1000);
        let mut records = Vec::new();
        for i in 0..100 {
            let mut r = rec(&format!("p{i}"));
            r.error = Some("e".repeat(10_000));
            records.push(r);
        }
        shared.add_records(records);
        let budget = 100_000;
        let (report, left_out) = shared.push_report(1000, budget);
        assert_eq!(left_out, 0);
        let len = serde_json::to_vec(&report).unwrap().len();
        assert!(len <= budget, "{len}");
        assert!(report.pulls.len() >= 5, "{}", report.pulls.len());
        assert!(report.pulls.len() < 10, "{}", report.pulls.len());
        // At least one record goes, however small the budget.
        assert_eq!(shared.push_report(1000, 10).0.pulls.len(), 1);

        shared.lock().registries.effective_canonical = Some("c".repeat(200_000));
        let (report, left_out) = shared.push_report(1000, budget);
        assert_eq!(left_out, 1);
        assert_eq!(report.registries.effective_canonical, None);
        assert!(serde_json::to_vec(&report).unwrap().len() <= budget);
    }

    #[test]
    fn registry_and_location_labels_are_bounded_with_an_other_bucket() {
        let shared = Shared::new("n".into(), "i".into(), 10);
        let records = (0..(labels::MAX_VALUES + 100))
            .map(|i| {
                let mut r = rec(&format!("p{i}"));
                r.image = format!("r{i}.example.com/a:1");
                r
            })
            .collect();
        shared.add_records(records);
        let report = shared.report(None);
        let registries: HashSet<&str> = report
            .counters
            .pulls
            .iter()
            .map(|c| c.registry.as_str())
            .collect();
        assert_eq!(registries.len(), labels::MAX_VALUES + 1);
        let other = report
            .counters
            .pulls
            .iter()
            .find(|c| c.registry == labels::OTHER)
            .unwrap();
        assert_eq!(other.count, 100);
        let text = to_prometheus_text(&shared.metrics.encode());
        let series = text
            .lines()
            .filter(|l| l.starts_with("mirrorscope_pulls_total{"))
            .count();
        assert_eq!(series, labels::MAX_VALUES + 1);
        assert!(
            text.contains("mirrorscope_metric_labels_folded_total{label=\"registry\"} 100\n"),
            "{text}"
        );
    }

    #[test]
    fn registry_labels_are_hosts() {
        assert_eq!(registry_host("nginx:1"), "docker.io");
        assert_eq!(registry_host("quay.io/a/b@sha256:00"), "quay.io");
        assert_eq!(
            registry_host("mirror.example:5000/a/b:1"),
            "mirror.example:5000"
        );
    }
}
