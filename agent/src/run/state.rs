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
    AttemptCount, CrioState, JournalState, MachineConfigState, NodeReport, PullCount, PullCounters,
    RegistriesState, NODE_REPORT_VERSION,
};
use mirrorscope_core::time::format_usec;
use tokio::sync::watch;

use super::hostfiles::RegistriesRead;
use super::metrics::Metrics;

/// Records kept for `GET /v1/report`.
pub const RING: usize = 256;

/// Pull records not yet acknowledged by the collector, oldest first, one per pull id.
#[derive(Debug, Default)]
pub struct Outbox {
    records: VecDeque<PullRecord>,
    ids: HashSet<String>,
    capacity: usize,
    dropped: u64,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Outbox {
            capacity: capacity.max(1),
            ..Outbox::default()
        }
    }

    /// Adds a record (a replayed pull id replaces nothing: the first copy is kept); returns how
    /// many old records were dropped to make room.
    pub fn push(&mut self, r: PullRecord) -> u64 {
        if self.ids.contains(&r.pull_id) {
            return 0;
        }
        let mut dropped = 0;
        while self.records.len() >= self.capacity {
            if let Some(old) = self.records.pop_front() {
                self.ids.remove(&old.pull_id);
                dropped += 1;
            }
        }
        self.ids.insert(r.pull_id.clone());
        self.records.push_back(r);
        self.dropped += dropped;
        dropped
    }

    pub fn oldest(&self, max: usize) -> Vec<PullRecord> {
        self.records.iter().take(max).cloned().collect()
    }

    pub fn ack(&mut self, ids: &[String]) {
        let acked: HashSet<&str> = ids.iter().map(String::as_str).collect();
        self.records.retain(|r| !acked.contains(r.pull_id.as_str()));
        self.ids.retain(|id| !acked.contains(id.as_str()));
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
}

pub struct Shared {
    state: Mutex<AgentState>,
    changed: watch::Sender<u64>,
    pub metrics: Metrics,
}

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
                    effective_sha256: None,
                    effective_canonical: None,
                    changed_at: None,
                },
                last_valid: None,
                machine_config: MachineConfigState {
                    current_config: None,
                    registries_conf: None,
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
            }),
            changed,
            metrics: Metrics::new(),
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
    pub fn set_host_files(&self, read: RegistriesRead, mc: MachineConfigState) -> bool {
        let mut st = self.lock();
        let mut next = st.registries.clone();
        next.files = read.files;
        match read.effective {
            Ok(eff) => {
                let sha = eff.canonical_sha256();
                next.valid = true;
                next.error = None;
                if next.effective_sha256.as_deref() != Some(sha.as_str()) {
                    next.effective_canonical = Some(eff.canonical_json());
                    next.effective_sha256 = Some(sha);
                    next.changed_at = Some(now_rfc3339());
                }
                st.last_valid = Some(Arc::new(eff));
            }
            Err(e) => {
                next.valid = false;
                next.error = Some(e);
            }
        }
        let changed = next != st.registries || mc != st.machine_config || !st.config_read;
        self.metrics
            .set_config(next.valid, next.effective_sha256.as_deref());
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

    /// Final records from the journal: counted, kept in the ring, queued for the collector.
    pub fn add_records(&self, records: Vec<PullRecord>) {
        if records.is_empty() {
            return;
        }
        let mut dropped = 0;
        {
            let mut st = self.lock();
            for r in records {
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
        let kind = match (&r.served_by, r.via_mirror) {
            (None, _) => "none",
            (Some(_), true) => "mirror",
            (Some(_), false) => "source",
        };
        let registry = registry_host(&r.image);
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
            let host = registry_host(&a.reference);
            self.metrics.attempt(&host, &class);
            *st.attempts.entry((host, class)).or_default() += 1;
        }
    }

    /// Records persisted by a previous run and not yet acknowledged.
    pub fn restore_outbox(&self, records: Vec<PullRecord>) {
        let mut st = self.lock();
        for r in records {
            st.outbox.push(r);
        }
    }

    pub fn ack(&self, ids: &[String]) {
        self.lock().outbox.ack(ids);
    }

    pub fn outbox_len(&self) -> usize {
        self.lock().outbox.len()
    }

    /// The report: `pulls` is the outbox (at most `max` oldest) for a push, the recent ring
    /// for `GET /v1/report`.
    pub fn report(&self, push_max: Option<usize>) -> NodeReport {
        let mut st = self.lock();
        st.seq += 1;
        let pulls = match push_max {
            Some(max) => st.outbox.oldest(max),
            None => st.ring.iter().cloned().collect(),
        };
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
    use super::*;

    fn rec(id: &str) -> PullRecord {
        PullRecord {
            pull_id: id.into(),
            image: "quay.io/a/b:1".into(),
            node: None,
            started_at: None,
            partial: false,
            finished_at: None,
            outcome: PullOutcome::Pulled,
            attempts: Vec::new(),
            served_by: None,
            via_mirror: false,
            fallback: false,
            digest: None,
            pod: None,
            cursor: None,
            error: None,
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
