//! The JSON views, computed from the store on each request (5,000 nodes evaluate in well under a
//! millisecond, so nothing is cached).

use std::collections::BTreeMap;

use mirrorscope_core::explain::{explain, Explanation};
use std::sync::Arc;

use mirrorscope_core::journal::{PullOutcome, PullRecord};
use mirrorscope_core::registries::EffectiveConfig;
use mirrorscope_core::rollout::{
    count, evaluate, summarize, Desired, NodeInput, NodeRollout, Policy, Target,
};

use super::state::{is_blocked, registry_of, Store};
use mirrorscope_core::api::{
    NodeDetail, NodeView, NodesView, PoolRollout, PullsView, RegistriesView, RolloutView,
    TargetView,
};

/// Which nodes a rollout question is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub pool: Option<String>,
    /// `key=value` pairs every node label must match.
    pub selector: Vec<(String, String)>,
    /// Exact node names (empty: all).
    pub names: Vec<String>,
    /// The selection is incomplete until at least this many nodes are in it.
    pub min_nodes: usize,
}

impl Selection {
    fn selects(&self, store: &Store, node: &str, pool: &str) -> bool {
        if self.pool.as_deref().is_some_and(|p| p != pool) {
            return false;
        }
        if !self.names.is_empty() && !self.names.iter().any(|n| n == node) {
            return false;
        }
        if !self.selector.is_empty() {
            let Some(k) = store.kube.nodes.get(node) else {
                return false;
            };
            return self
                .selector
                .iter()
                .all(|(key, v)| k.labels.get(key) == Some(v));
        }
        true
    }
}

/// Evaluates every selected node against `target`: (pool, rollout) in node-name order.
pub fn evaluate_nodes(
    store: &Store,
    target: &Target,
    policy: &Policy,
    now_unix: f64,
    sel: &Selection,
) -> Vec<(String, NodeRollout)> {
    let mut out = Vec::with_capacity(store.nodes.len());
    for name in store.node_names() {
        let kube = store.kube.nodes.get(&name);
        let pool = kube.map(|k| k.pool.as_str()).unwrap_or_default();
        if !sel.selects(store, &name, pool) {
            continue;
        }
        let entry = store.nodes.get(&name);
        let input = NodeInput {
            node: &name,
            report: entry.map(|e| &*e.report),
            report_age_secs: entry
                .map(|e| (now_unix - e.received_unix).max(0.0) as u64)
                .unwrap_or(0),
            mco: kube.map(|k| &k.mco),
        };
        out.push((pool.to_string(), evaluate(&input, target, policy)));
    }
    // A node named in the selection that nothing knows of has not landed: it never reported.
    for name in &sel.names {
        if !store.nodes.contains_key(name) && !store.kube.nodes.contains_key(name) {
            let input = NodeInput {
                node: name,
                report: None,
                report_age_secs: 0,
                mco: None,
            };
            out.push((String::new(), evaluate(&input, target, policy)));
        }
    }
    out
}

fn view(store: &Store, pool: String, r: NodeRollout, now_unix: f64) -> NodeView {
    let entry = store.nodes.get(&r.node);
    NodeView {
        pool,
        landed: r.landed,
        stale: r.stale,
        effective_digest: r.effective_digest,
        last_report_at: entry.map(|e| mirrorscope_core::time::format_secs(e.received_unix)),
        report_age_secs: entry.map(|e| (now_unix - e.received_unix).max(0.0) as u64),
        agent_version: entry.map(|e| e.report.agent_version.clone()),
        current_config: entry.and_then(|e| e.report.machine_config.current_config.clone()),
        mcn_phase: store
            .kube
            .nodes
            .get(&r.node)
            .and_then(|k| Some(k.mco.mcn.as_ref()?.phase.clone())),
        checks: r.checks,
        reasons: r.reasons,
        node: r.node,
    }
}

pub fn nodes(store: &Store, policy: &Policy, now: f64) -> NodesView {
    let target = &store.desired.target;
    let pairs = evaluate_nodes(store, target, policy, now, &Selection::default());
    let (pools, mut rollouts): (Vec<String>, Vec<NodeRollout>) = pairs.into_iter().unzip();
    summarize(&mut rollouts, target);
    NodesView {
        target: TargetView::from(target),
        nodes: pools
            .into_iter()
            .zip(rollouts)
            .map(|(pool, r)| view(store, pool, r, now))
            .collect(),
    }
}

pub fn node(store: &Store, policy: &Policy, now: f64, name: &str) -> Option<NodeDetail> {
    let view = nodes(store, policy, now)
        .nodes
        .into_iter()
        .find(|n| n.node == name)?;
    let report = store.nodes.get(name).map(|e| (*e.report).clone());
    Some(NodeDetail { view, report })
}

/// `GET /v1/rollout`: `desired` overrides the collector's own desired state (`none` = agreement).
pub fn rollout(
    store: &Store,
    policy: &Policy,
    now: f64,
    sel: &Selection,
    desired: Option<&str>,
) -> RolloutView {
    let target = match desired {
        None => store.desired.target.clone(),
        Some("none") => Target::Agreement,
        Some(sha) => Target::Desired(Desired::from_sha256(sha, "given by the client")),
    };
    let pairs = evaluate_nodes(store, &target, policy, now, sel);
    let (pool_names, mut all): (Vec<String>, Vec<NodeRollout>) = pairs.into_iter().unzip();
    let mut overall = summarize(&mut all, &target);
    if overall.total < sel.min_nodes {
        overall.complete = false;
    }
    let mut by_pool: BTreeMap<String, Vec<NodeRollout>> = BTreeMap::new();
    // Pools reuse the overall evaluation so agreement is judged across the whole selection.
    for (pool, r) in pool_names.into_iter().zip(all) {
        by_pool.entry(pool).or_default().push(r);
    }
    let pools = by_pool
        .into_iter()
        .map(|(pool, nodes)| {
            let mut s = count(&nodes);
            s.majority_digest = overall.majority_digest.clone();
            PoolRollout { pool, summary: s }
        })
        .collect();
    RolloutView {
        target: TargetView::from(&target),
        complete: overall.complete,
        overall,
        pools,
    }
}

/// Filters of `GET /v1/pulls`.
#[derive(Debug, Clone, Default)]
pub struct PullFilter {
    pub registry: Option<String>,
    pub node: Option<String>,
    /// `pulled`, `failed`, `in_progress`, `abandoned`.
    pub outcome: Option<String>,
    pub fallback: Option<bool>,
    pub limit: usize,
}

pub fn pulls(window: &[Arc<PullRecord>], f: &PullFilter) -> PullsView {
    let mut matching = 0;
    let mut out = Vec::new();
    for p in window.iter().rev() {
        if f.node
            .as_deref()
            .is_some_and(|n| p.node.as_deref() != Some(n))
        {
            continue;
        }
        if f.fallback.is_some_and(|fb| fb != p.fallback) {
            continue;
        }
        if let Some(o) = f.outcome.as_deref() {
            let name = match p.outcome {
                PullOutcome::Pulled => "pulled",
                PullOutcome::Failed => "failed",
                PullOutcome::InProgress => "in_progress",
                PullOutcome::Abandoned => "abandoned",
            };
            if o != name {
                continue;
            }
        }
        if f.registry
            .as_deref()
            .is_some_and(|r| registry_of(&p.image) != r)
        {
            continue;
        }
        matching += 1;
        if out.len() < f.limit {
            out.push((**p).clone());
        }
    }
    PullsView {
        matching,
        pulls: out,
    }
}

pub fn registries(store: &Store) -> RegistriesView {
    let config = store.desired.config.clone().or_else(|| {
        store
            .nodes
            .values()
            .find_map(|e| node_config(&e.report).ok())
            .map(std::sync::Arc::new)
    });
    let mut registries: Vec<_> = store.registries.values().cloned().collect();
    for r in &mut registries {
        r.mirror_rule = config.as_deref().map(|c| has_mirror_rule(c, &r.registry));
    }
    registries.sort_by(|a, b| {
        (b.fallbacks + b.blocked + b.failed)
            .cmp(&(a.fallbacks + a.blocked + a.failed))
            .then(b.pulls.cmp(&a.pulls))
            .then(a.registry.cmp(&b.registry))
    });
    let without_mirror_rule = registries
        .iter()
        .filter(|r| r.mirror_rule == Some(false))
        .map(|r| r.registry.clone())
        .collect();
    RegistriesView {
        registries,
        without_mirror_rule,
    }
}

/// Whether any `[[registry]]` entry with mirrors applies to images of `registry`, or to a
/// repository under it.
fn has_mirror_rule(c: &EffectiveConfig, registry: &str) -> bool {
    c.registries.iter().any(|r| {
        if r.mirrors.is_empty() {
            return false;
        }
        let p = r.prefix.as_str();
        if let Some(suffix) = p.strip_prefix('*') {
            return registry.ends_with(suffix);
        }
        let host = p.split('/').next().unwrap_or(p);
        host == registry
    })
}

/// A node's effective configuration rebuilt from the file contents it reported.
pub fn node_config(
    report: &mirrorscope_core::report::NodeReport,
) -> Result<EffectiveConfig, String> {
    mirrorscope_core::report::reported_config(&report.registries.files).unwrap_or_else(|| {
        Err(format!(
            "node {} reported no registries file contents",
            report.node
        ))
    })
}

/// `GET /v1/configurations`: nodes grouped by the registries files they reported.
pub fn configurations(
    store: &Store,
    node: Option<&str>,
) -> Result<Vec<mirrorscope_core::api::ReportedConfiguration>, String> {
    use mirrorscope_core::report::FileRole;
    if let Some(n) = node {
        if !store.nodes.contains_key(n) {
            return Err(format!("no report from node {n:?}"));
        }
    }
    let mut groups: BTreeMap<String, mirrorscope_core::api::ReportedConfiguration> =
        BTreeMap::new();
    for (name, entry) in &store.nodes {
        if node.is_some_and(|n| n != name) {
            continue;
        }
        let files: Vec<_> = entry
            .report
            .registries
            .files
            .iter()
            .filter(|f| f.role != FileRole::Policy && f.contents.is_some())
            .cloned()
            .collect();
        if files.is_empty() {
            continue;
        }
        let key: Vec<_> = files
            .iter()
            .map(|f| (&f.path, f.role, &f.contents))
            .collect();
        let id = mirrorscope_core::hash::sha256_hex(
            serde_json::to_string(&key).unwrap_or_default().as_bytes(),
        );
        groups
            .entry(id.clone())
            .or_insert_with(|| mirrorscope_core::api::ReportedConfiguration {
                id,
                nodes: Vec::new(),
                files,
            })
            .nodes
            .push(name.clone());
    }
    Ok(groups.into_values().collect())
}

/// `GET /v1/explain`: against a node's reported files, or the desired configuration.
pub fn explain_image(
    store: &Store,
    image: &str,
    node: Option<&str>,
) -> Result<Explanation, String> {
    let config = match node {
        Some(n) => {
            let e = store
                .nodes
                .get(n)
                .ok_or_else(|| format!("no report from node {n:?}"))?;
            std::sync::Arc::new(node_config(&e.report)?)
        }
        None => store.desired.config.clone().ok_or_else(|| {
            "the collector has no desired configuration; name a node (node=)".to_string()
        })?,
    };
    if image.is_empty() {
        return Err("image= is required".into());
    }
    // A reference that does not parse is an answer (it will not pull), as `explain` says locally.
    Ok(explain(&config, image))
}

/// Pulls that fell back or failed, newest first (status page).
pub fn troubled_pulls(window: &[Arc<PullRecord>], limit: usize) -> Vec<Arc<PullRecord>> {
    window
        .iter()
        .rev()
        .filter(|p| p.fallback || p.outcome == PullOutcome::Failed || is_blocked(p))
        .take(limit)
        .cloned()
        .collect()
}
