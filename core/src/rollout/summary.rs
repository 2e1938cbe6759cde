//! Counts over a set of evaluated nodes and the nodes that hold it back.

use serde::{Deserialize, Serialize};

use super::checks::short;
use super::types::NodeRollout;
use super::Target;

/// Counts over a set of nodes, and the nodes that hold the set back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub total: usize,
    pub landed: usize,
    pub lagging: usize,
    pub stale: usize,
    /// Every node landed (and, without a desired state, they all agree).
    pub complete: bool,
    /// Without a desired state: the configuration most nodes run.
    pub majority_digest: Option<String>,
    pub laggards: Vec<Laggard>,
}

/// A node that has not landed, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Laggard {
    pub node: String,
    pub reasons: Vec<String>,
    /// Why the node will not land by itself (the MCD is Degraded), when that is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
}

/// Summarises evaluated nodes. Under [`Target::Agreement`], a node whose effective configuration
/// differs from the one most nodes run counts as lagging too. An empty set is never complete.
pub fn summarize(nodes: &mut [NodeRollout], target: &Target) -> Summary {
    let mut majority = None;
    if matches!(target, Target::Agreement) {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for n in nodes.iter() {
            if let Some(s) = n.effective_digest.as_deref() {
                *counts.entry(s).or_default() += 1;
            }
        }
        // Ties go to the smallest hash so the answer does not depend on report order.
        majority = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(s, _)| s.to_string());
        if let Some(m) = majority.as_deref() {
            let total = nodes.len();
            let agreeing = counts.get(m).copied().unwrap_or(0);
            for n in nodes.iter_mut() {
                if let Some(s) = n.effective_digest.as_deref() {
                    if s != m {
                        let reason = format!(
                            "desired: effective configuration {} differs from {} run by {agreeing} of {total} nodes",
                            short(s),
                            short(m)
                        );
                        n.reasons.push(reason);
                        n.landed = false;
                    }
                }
            }
        }
    }
    let mut s = count(nodes);
    s.majority_digest = majority;
    s
}

/// Counts evaluated nodes (a subset of a [`summarize`]d set, e.g. one pool) without judging them
/// again. An empty set is never complete.
pub fn count(nodes: &[NodeRollout]) -> Summary {
    let landed = nodes.iter().filter(|n| n.landed).count();
    let stale = nodes.iter().filter(|n| n.stale).count();
    let laggards: Vec<Laggard> = nodes
        .iter()
        .filter(|n| !n.landed)
        .map(|n| Laggard {
            node: n.node.clone(),
            reasons: n.reasons.clone(),
            degraded: n.degraded.clone(),
        })
        .collect();
    Summary {
        total: nodes.len(),
        landed,
        lagging: nodes.len() - landed,
        stale,
        complete: !nodes.is_empty() && landed == nodes.len(),
        majority_digest: None,
        laggards,
    }
}
