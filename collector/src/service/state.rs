//! The collector's memory: the latest report per node, a bounded window of pull records
//! (deduplicated by pull id), cumulative per-registry counters, and what the API server says.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use mirrorscope_core::journal::{AttemptOutcome, ErrorClass, PullOutcome, PullRecord};
use mirrorscope_core::reference::ImageReference;
use mirrorscope_core::report::{json_len, NodeReport, PushAck};
pub use mirrorscope_core::rollout::DesiredState;
use mirrorscope_core::rollout::McoNodeState;
use serde::{Deserialize, Serialize};

use mirrorscope_core::api::RegistryStats;

/// A node's latest report and when it arrived (collector clock, seconds since the epoch).
/// Shared, so views copy the store cheaply and evaluate outside the lock.
#[derive(Debug, Clone)]
pub struct NodeEntry {
    /// The report without its pulls (those live in the pull window).
    pub report: Arc<NodeReport>,
    pub received_unix: f64,
    /// Agent instances this node reported from before the current one (newest last, at most
    /// [`RETIRED_INSTANCES`]): a process that was replaced never reports again, so a report of
    /// one of them is a replay.
    pub retired: Arc<Vec<String>>,
}

/// Retired agent instances remembered per node.
pub const RETIRED_INSTANCES: usize = 8;

/// [`NodeEntry`] as the state file stores it.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotNode {
    pub report: NodeReport,
    pub received_unix: f64,
    #[serde(default)]
    pub retired: Vec<String>,
}

/// A node as the API server describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeNode {
    pub labels: BTreeMap<String, String>,
    pub pool: String,
    pub mco: McoNodeState,
}

/// A MachineConfigPool, as far as the rollout needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolInfo {
    pub name: String,
    pub match_labels: BTreeMap<String, String>,
    /// `spec.configuration.name`.
    pub target: Option<String>,
    /// Canonical hash of the registries configuration the target MachineConfig carries.
    pub target_sha256: Option<String>,
    pub paused: bool,
    /// `status.conditions` `Degraded=True` (or `NodeDegraded=True`): its message.
    pub degraded: Option<String>,
}

/// What the API server says (empty without `--in-cluster`).
#[derive(Debug, Clone, Default)]
pub struct KubeView {
    pub nodes: BTreeMap<String, KubeNode>,
    pub pools: Arc<Vec<PoolInfo>>,
    /// The last error talking to the API server.
    pub error: Option<String>,
}

/// Everything the collector knows.
#[derive(Debug)]
pub struct Store {
    pub nodes: BTreeMap<String, NodeEntry>,
    pulls: VecDeque<Arc<PullRecord>>,
    /// (node, pull id): pull ids are each agent's own, so two nodes may share one.
    pull_ids: HashSet<PullKey>,
    max_pulls: usize,
    /// The JSON size of the kept pulls, bounded by `max_pull_bytes`.
    pull_bytes: usize,
    max_pull_bytes: usize,
    pub registries: BTreeMap<String, RegistryStats>,
    pub reports_total: u64,
    pub pulls_accepted_total: u64,
    pub pulls_duplicate_total: u64,
    /// Pulls counted under [`OTHER_REGISTRY`] because [`MAX_REGISTRIES`] were already kept.
    pub registries_folded_total: u64,
    /// Replaced whole at each change, so copies of the store share it.
    pub kube: Arc<KubeView>,
    pub desired: DesiredState,
}

/// Registries with statistics of their own; pulls from any further one count under
/// [`OTHER_REGISTRY`], so the views and `/metrics` label sets stay bounded whatever image names
/// agents send.
pub const MAX_REGISTRIES: usize = 500;
/// The pull window holds at most this many bytes of records (as JSON) besides its count bound:
/// records with long texts (an agent truncates its own; anything holding a token may send
/// anything within the body limit) must not take the collector past its memory limit.
pub const MAX_PULL_BYTES: usize = 128 * 1024 * 1024;

/// Where the pulls of registries past [`MAX_REGISTRIES`] are counted.
pub const OTHER_REGISTRY: &str = "other";

/// What [`Store::ingest_checked`] did with a report.
#[derive(Debug)]
pub struct Ingested {
    pub ack: PushAck,
    /// Why the report itself was ignored (its pulls are filed all the same).
    pub stale: Option<String>,
    /// Pulls counted under [`OTHER_REGISTRY`].
    pub folded: u64,
}

/// The on-disk snapshot (`--state-file`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub nodes: Vec<SnapshotNode>,
    pub pulls: Vec<PullRecord>,
    pub registries: Vec<RegistryStats>,
}

impl Store {
    pub fn new(max_pulls: usize) -> Store {
        Store {
            nodes: BTreeMap::new(),
            pulls: VecDeque::new(),
            pull_ids: HashSet::new(),
            max_pulls: max_pulls.max(1),
            pull_bytes: 0,
            max_pull_bytes: MAX_PULL_BYTES,
            registries: BTreeMap::new(),
            reports_total: 0,
            pulls_accepted_total: 0,
            pulls_duplicate_total: 0,
            registries_folded_total: 0,
            kube: Arc::default(),
            desired: DesiredState::default(),
        }
    }

    /// Stores a report: replaces the node's previous one, keeps its new pulls.
    pub fn ingest(&mut self, report: NodeReport, now_unix: f64) -> PushAck {
        self.ingest_checked(report, now_unix).ack
    }

    /// Why `report` is older than what the node already reported, if it is: the same agent
    /// instance with a seq at or below the last accepted one, or an instance the node has
    /// since restarted from.
    pub fn stale(&self, report: &NodeReport) -> Option<String> {
        let entry = self.nodes.get(&report.node)?;
        let last = &entry.report;
        if report.agent_instance == last.agent_instance {
            (report.seq <= last.seq).then(|| {
                format!(
                    "stale report (seq {} of agent instance {:?}, already at seq {}): ignored",
                    report.seq, report.agent_instance, last.seq
                )
            })
        } else {
            entry.retired.contains(&report.agent_instance).then(|| {
                format!(
                    "stale report (agent instance {:?} was replaced by {:?}): ignored",
                    report.agent_instance, last.agent_instance
                )
            })
        }
    }

    /// [`Store::ingest`], also telling why the report itself was ignored: a stale report
    /// leaves the node's state alone, but its pull records are still filed (deduplicated), so
    /// an agent that forgets acknowledged records loses none.
    pub fn ingest_checked(&mut self, mut report: NodeReport, now_unix: f64) -> Ingested {
        let stale = self.stale(&report);
        let folded_before = self.registries_folded_total;
        let pulls = std::mem::take(&mut report.pulls);
        let ack = self.file_pulls(&report.node, pulls);
        self.pulls_accepted_total += ack.accepted;
        self.pulls_duplicate_total += ack.duplicates;
        let folded = self.registries_folded_total - folded_before;
        if stale.is_some() {
            return Ingested { ack, stale, folded };
        }
        self.reports_total += 1;
        let retired = match self.nodes.get(&report.node) {
            None => Arc::default(),
            Some(e) if e.report.agent_instance == report.agent_instance => e.retired.clone(),
            Some(e) => {
                let mut r: Vec<String> = (*e.retired).clone();
                r.push(e.report.agent_instance.clone());
                let excess = r.len().saturating_sub(RETIRED_INSTANCES);
                r.drain(..excess);
                Arc::new(r)
            }
        };
        self.nodes.insert(
            report.node.clone(),
            NodeEntry {
                report: Arc::new(report),
                received_unix: now_unix,
                retired,
            },
        );
        Ingested {
            ack,
            stale: None,
            folded,
        }
    }

    /// Files `node`'s pull records (deduplicated per node), as a report or the write-ahead log
    /// at start brings them.
    pub fn file_pulls(&mut self, node: &str, pulls: Vec<PullRecord>) -> PushAck {
        let mut ack = PushAck {
            accepted: 0,
            duplicates: 0,
            amended: 0,
        };
        for mut p in pulls {
            // The node is the one the token authenticated, never what the journal's
            // _HOSTNAME says: hostnames need not be node names, and an agent must not be able
            // to file pulls under another node.
            p.node = Some(node.to_string());
            let key = (node.to_string(), p.pull_id.clone());
            if self.pull_ids.contains(&key) {
                if self.amend(p) {
                    ack.amended += 1;
                } else {
                    ack.duplicates += 1;
                }
                continue;
            }
            self.count(&p);
            self.pull_ids.insert(key);
            self.pull_bytes += json_len(&p);
            self.pulls.push_back(Arc::new(p));
            ack.accepted += 1;
            self.trim_pulls();
        }
        ack
    }

    /// Replaces the kept record of the same (node, pull id) with `p` when `p` is a later
    /// revision (the agent sent the pull at once and learned its pod afterwards); counted
    /// once, when first filed. Searched from the newest: amendments follow within seconds.
    fn amend(&mut self, p: PullRecord) -> bool {
        let node = p.node.as_deref();
        let Some(kept) = self
            .pulls
            .iter_mut()
            .rev()
            .find(|k| k.pull_id == p.pull_id && k.node.as_deref() == node)
        else {
            return false;
        };
        if p.revision <= kept.revision {
            return false;
        }
        let (old, new) = (json_len(&**kept), json_len(&p));
        *kept = Arc::new(p);
        self.pull_bytes = (self.pull_bytes + new).saturating_sub(old);
        self.trim_pulls();
        true
    }

    /// Drops the oldest pulls past the window (by count or by bytes; the newest always stays).
    fn trim_pulls(&mut self) {
        while self.pulls.len() > self.max_pulls
            || (self.pull_bytes > self.max_pull_bytes && self.pulls.len() > 1)
        {
            let Some(old) = self.pulls.pop_front() else {
                break;
            };
            self.pull_ids.remove(&key_of(&old));
            self.pull_bytes = self.pull_bytes.saturating_sub(json_len(&*old));
        }
    }

    fn count(&mut self, p: &PullRecord) {
        let mut registry = registry_of(&p.image);
        if !self.registries.contains_key(&registry) && self.registries_kept() >= MAX_REGISTRIES {
            registry = OTHER_REGISTRY.to_string();
            self.registries_folded_total += 1;
        }
        let s = self
            .registries
            .entry(registry.clone())
            .or_insert_with(|| RegistryStats {
                registry,
                ..Default::default()
            });
        s.pulls += 1;
        match p.outcome {
            PullOutcome::Pulled if p.via_mirror => s.by_mirror += 1,
            PullOutcome::Pulled => s.by_source += 1,
            PullOutcome::Failed => s.failed += 1,
            PullOutcome::InProgress | PullOutcome::Abandoned => {}
        }
        if p.fallback {
            s.fallbacks += 1;
        }
        if p.outcome == PullOutcome::Failed && is_blocked(p) {
            s.blocked += 1;
        }
        for a in &p.attempts {
            if a.outcome == AttemptOutcome::Failed {
                let class = a.error_class.map(ErrorClass::as_str).unwrap_or("unknown");
                *s.failures_by_class.entry(class.to_string()).or_default() += 1;
            }
        }
    }

    /// Registries with statistics of their own (`other` aside).
    fn registries_kept(&self) -> usize {
        self.registries.len() - usize::from(self.registries.contains_key(OTHER_REGISTRY))
    }

    /// Pull records kept, oldest first.
    pub fn pulls(&self) -> impl DoubleEndedIterator<Item = &Arc<PullRecord>> {
        self.pulls.iter()
    }

    /// Node names: reporting nodes and nodes the API server knows.
    pub fn node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.nodes.keys().cloned().collect();
        names.extend(
            self.kube
                .nodes
                .keys()
                .filter(|n| !self.nodes.contains_key(*n))
                .cloned(),
        );
        names.sort();
        names
    }

    /// Everything but the pull window, sharing the reports: cheap enough to take under the lock
    /// so the rollout is evaluated without holding it.
    pub fn light_copy(&self) -> Store {
        Store {
            nodes: self.nodes.clone(),
            pulls: VecDeque::new(),
            pull_ids: HashSet::new(),
            max_pulls: self.max_pulls,
            pull_bytes: 0,
            max_pull_bytes: self.max_pull_bytes,
            registries: self.registries.clone(),
            reports_total: self.reports_total,
            pulls_accepted_total: self.pulls_accepted_total,
            pulls_duplicate_total: self.pulls_duplicate_total,
            registries_folded_total: self.registries_folded_total,
            kube: self.kube.clone(),
            desired: self.desired.clone(),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            version: 1,
            nodes: self
                .nodes
                .values()
                .map(|n| SnapshotNode {
                    report: (*n.report).clone(),
                    received_unix: n.received_unix,
                    retired: (*n.retired).clone(),
                })
                .collect(),
            pulls: self.pulls.iter().map(|p| (**p).clone()).collect(),
            registries: self.registries.values().cloned().collect(),
        }
    }

    pub fn restore(&mut self, snap: Snapshot) {
        for n in snap.nodes {
            self.nodes.insert(
                n.report.node.clone(),
                NodeEntry {
                    report: Arc::new(n.report),
                    received_unix: n.received_unix,
                    retired: Arc::new(n.retired),
                },
            );
        }
        for p in snap.pulls {
            if self.pull_ids.insert(key_of(&p)) {
                self.pull_bytes += json_len(&p);
                self.pulls.push_back(Arc::new(p));
            }
        }
        self.trim_pulls();
        for r in snap.registries {
            if r.registry == OTHER_REGISTRY
                || self.registries.contains_key(&r.registry)
                || self.registries_kept() < MAX_REGISTRIES
            {
                self.registries.insert(r.registry.clone(), r);
            } else {
                // A state file from before the bound: fold the excess into `other`.
                self.registries_folded_total += 1;
                let o = self
                    .registries
                    .entry(OTHER_REGISTRY.to_string())
                    .or_insert_with(|| RegistryStats {
                        registry: OTHER_REGISTRY.to_string(),
                        ..Default::default()
                    });
                o.pulls += r.pulls;
                o.by_mirror += r.by_mirror;
                o.by_source += r.by_source;
                o.failed += r.failed;
                o.fallbacks += r.fallbacks;
                o.blocked += r.blocked;
                for (k, v) in r.failures_by_class {
                    *o.failures_by_class.entry(k).or_default() += v;
                }
            }
        }
    }
}

/// The deduplication key of a pull: (node, pull id).
type PullKey = (String, String);

fn key_of(p: &PullRecord) -> PullKey {
    (p.node.clone().unwrap_or_default(), p.pull_id.clone())
}

/// A pull that failed because its source is blocked (and no mirror served it).
pub fn is_blocked(p: &PullRecord) -> bool {
    p.attempts
        .iter()
        .any(|a| !a.mirror && a.error_class == Some(ErrorClass::Blocked))
}

/// The source registry of an image as a pod names it (`nginx` → `docker.io`).
pub fn registry_of(image: &str) -> String {
    match ImageReference::parse_docker(image) {
        Ok(r) => r.domain().to_string(),
        Err(_) => image.split('/').next().unwrap_or(image).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built from JSON so fields added to the wire type later (all optional) do not break it.
    fn pull(id: &str, image: &str, fallback: bool) -> PullRecord {
        serde_json::from_value(serde_json::json!({
            "pull_id": id, "image": image, "started_at": "2026-11-21T08:00:00Z",
            "outcome": "pulled", "via_mirror": false, "fallback": fallback,
            "attempts": [{"reference": image, "mirror": false, "outcome": "served", "tries": 1}],
        }))
        .unwrap()
    }

    /// testdata/report.json keeps the key names agents sent before `sha256` became `digest`: a
    /// collector upgraded before its agents still reads them.
    #[test]
    fn reports_with_the_old_digest_keys_still_load() {
        let r: NodeReport = serde_json::from_str(include_str!("testdata/report.json")).unwrap();
        assert_eq!(r.registries.files[0].digest.as_deref(), Some("sha256:00"));
        assert!(r.registries.effective_digest.is_some());
    }

    #[test]
    fn window_is_bounded_and_dedupes() {
        let mut s = Store::new(2);
        let mut r: NodeReport = serde_json::from_str(include_str!("testdata/report.json")).unwrap();
        r.pulls = vec![pull("a", "nginx", false), pull("b", "quay.io/x/y", true)];
        let ack = s.ingest(r.clone(), 1.0);
        assert_eq!((ack.accepted, ack.duplicates), (2, 0));
        r.pulls = vec![pull("b", "quay.io/x/y", true), pull("c", "nginx", false)];
        let ack = s.ingest(r, 2.0);
        assert_eq!((ack.accepted, ack.duplicates), (1, 1));
        let ids: Vec<&str> = s.pulls().map(|p| p.pull_id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(s.registries["docker.io"].pulls, 2);
        assert_eq!(s.registries["quay.io"].fallbacks, 1);
        assert!(s.nodes["node-a"].report.pulls.is_empty());
    }

    #[test]
    fn window_is_bounded_by_bytes_too() {
        let mut s = Store::new(100_000);
        s.max_pull_bytes = 128 * 1024;
        let big = "x".repeat(1024);
        for i in 0..200 {
            let mut p = pull(&i.to_string(), "nginx", false);
            p.error = Some(big.clone());
            s.file_pulls("node-a", vec![p]);
        }
        let kept: Vec<usize> = s.pulls().map(|p| p.pull_id.parse().unwrap()).collect();
        assert!((90..128).contains(&kept.len()), "{} kept", kept.len());
        // The oldest went, the newest stayed; their ids went with them.
        assert_eq!(kept.last(), Some(&199));
        assert_eq!(s.pull_ids.len(), kept.len());
        assert!(s.pull_bytes <= s.max_pull_bytes);
        let expected: usize = s.pulls().map(|p| json_len(&**p)).sum();
        assert_eq!(s.pull_bytes, expected);
        // Every pull is still counted.
        assert_eq!(s.registries["docker.io"].pulls, 200);
    }

    #[test]
    fn registries_are_bounded() {
        let mut s = Store::new(10);
        let mut r: NodeReport = serde_json::from_str(include_str!("testdata/report.json")).unwrap();
        r.pulls = (0..MAX_REGISTRIES + 10)
            .map(|i| pull(&i.to_string(), &format!("r{i}.example.com/a"), false))
            .collect();
        let done = s.ingest_checked(r, 1.0);
        assert_eq!(done.folded, 10);
        assert_eq!(s.registries.len(), MAX_REGISTRIES + 1);
        assert_eq!(s.registries[OTHER_REGISTRY].pulls, 10);
        let snap = serde_json::to_vec(&s.snapshot()).unwrap();
        let mut restored = Store::new(10);
        restored.restore(serde_json::from_slice(&snap).unwrap());
        assert_eq!(restored.registries.len(), MAX_REGISTRIES + 1);
    }

    #[test]
    fn pull_ids_are_per_node() {
        let mut s = Store::new(10);
        let mut a: NodeReport = serde_json::from_str(include_str!("testdata/report.json")).unwrap();
        let mut b = a.clone();
        b.node = "node-b".into();
        a.pulls = vec![pull("p1", "nginx", false)];
        b.pulls = vec![pull("p1", "nginx", false)];
        assert_eq!(s.ingest(a, 1.0).accepted, 1);
        assert_eq!(s.ingest(b, 1.0).accepted, 1);
        assert_eq!(s.pulls().count(), 2);
        let snap = serde_json::to_vec(&s.snapshot()).unwrap();
        let mut restored = Store::new(10);
        restored.restore(serde_json::from_slice(&snap).unwrap());
        assert_eq!(restored.pulls().count(), 2);
    }

    #[test]
    fn pulls_belong_to_the_reporting_node_not_the_journal_hostname() {
        let mut s = Store::new(10);
        let mut r: NodeReport = serde_json::from_str(include_str!("testdata/report.json")).unwrap();
        let mut p = pull("a", "nginx", false);
        p.node = Some("vm".into());
        r.pulls = vec![p];
        s.ingest(r, 1.0);
        let nodes: Vec<Option<&str>> = s.pulls().map(|p| p.node.as_deref()).collect();
        assert_eq!(nodes, [Some("node-a")]);
    }
}
