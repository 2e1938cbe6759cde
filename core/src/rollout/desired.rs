//! What nodes are measured against: a desired rendering, agreement, or MCO's refusal.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::openshift::node_config::{node_config, LoadError};
use crate::openshift::{render, InputSet, Refusal, RenderOptions, Rendering};
use crate::registries::EffectiveConfig;

/// The configuration nodes should end up with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// `sha256:<hex>` of the canonical effective configuration.
    pub sha256: String,
    pub canonical_json: String,
    /// Where it came from (files, the cluster's objects, a hash given on the command line).
    pub origin: String,
}

impl Desired {
    /// What a node runs once this rendering lands ([`node_config`]).
    pub fn from_rendering(r: &Rendering, origin: &str) -> Result<Desired, LoadError> {
        Ok(Desired::from_config(&node_config(r)?, origin))
    }

    pub fn from_config(cfg: &EffectiveConfig, origin: &str) -> Desired {
        Desired {
            sha256: cfg.canonical_sha256(),
            canonical_json: cfg.canonical_json(),
            origin: origin.to_string(),
        }
    }

    /// A desired state known only by its hash (e.g. `wait --desired` evaluated by the collector).
    pub fn from_sha256(sha256: &str, origin: &str) -> Desired {
        Desired {
            sha256: sha256.to_string(),
            canonical_json: String::new(),
            origin: origin.to_string(),
        }
    }
}

/// What the nodes are measured against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// No desired state: nodes must agree with each other (see [`summarize`]).
    Agreement,
    Desired(Desired),
    /// MCO would refuse the desired objects: nodes keep the old configuration.
    Refused {
        reason: String,
        log: String,
    },
}

impl Target {
    pub fn from_render(result: &Result<Rendering, Refusal>, origin: &str) -> Target {
        match result {
            Ok(r) => match Desired::from_rendering(r, origin) {
                Ok(d) => Target::Desired(d),
                Err(e) => Target::Refused {
                    reason: e.to_string(),
                    log: String::new(),
                },
            },
            Err(refusal) => Target::Refused {
                reason: refusal.reason.clone(),
                log: refusal.log.clone(),
            },
        }
    }
}

/// The desired state and the effective configuration it stands for (for "mirror rule?" and
/// explain), with what the rendering noted.
#[derive(Debug, Clone)]
pub struct DesiredState {
    pub target: Target,
    pub config: Option<Arc<EffectiveConfig>>,
    /// Render notes and input errors, shown on the status page.
    pub notes: Vec<String>,
}

impl Default for DesiredState {
    fn default() -> Self {
        DesiredState {
            target: Target::Agreement,
            config: None,
            notes: Vec::new(),
        }
    }
}

impl DesiredState {
    /// Renders `set` as MCO will and keeps what a node runs once it lands; objects the API
    /// server would reject are noted (the caller decides whether they are fatal).
    pub fn from_inputs(set: &InputSet, options: &RenderOptions, origin: &str) -> DesiredState {
        let result = render(&set.input, options);
        let mut notes: Vec<String> = set.notes.iter().map(ToString::to_string).collect();
        notes.extend(set.errors.iter().map(|e| format!("input error: {e}")));
        let (target, config) = match &result {
            Ok(r) => {
                notes.extend(r.notes.iter().map(ToString::to_string));
                match node_config(r) {
                    Ok(cfg) => (
                        Target::Desired(Desired::from_config(&cfg, origin)),
                        Some(Arc::new(cfg)),
                    ),
                    Err(e) => (
                        Target::Refused {
                            reason: e.to_string(),
                            log: String::new(),
                        },
                        None,
                    ),
                }
            }
            Err(refusal) => {
                notes.extend(refusal.notes.iter().map(ToString::to_string));
                (Target::from_render(&result, origin), None)
            }
        };
        DesiredState {
            target,
            config,
            notes,
        }
    }

    /// The desired hash, or why there is none (MCO's refusal, or no desired state at all).
    pub fn sha256(&self) -> Result<&str, String> {
        match &self.target {
            Target::Desired(d) => Ok(&d.sha256),
            Target::Refused { reason, .. } => Err(format!(
                "MCO will not render this; nodes keep the old config: {reason}"
            )),
            Target::Agreement => Err("no desired state".into()),
        }
    }

    /// One line for logs: what nodes are measured against.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Desired(x) => format!("{} from {}", x.sha256, x.origin),
            Target::Refused { reason, .. } => {
                format!("MCO will not render this; nodes keep the old config: {reason}")
            }
            Target::Agreement => "none (nodes must agree)".into(),
        }
    }
}
