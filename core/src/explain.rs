//! `explain`: where containers/image will pull an image from, as data and in words.

use serde::{Deserialize, Serialize};

use crate::reference::{is_short_name, ImageReference};
use crate::registries::{EffectiveConfig, PullFromMirror, Registry};

/// The `[[registry]]` entry an image matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryMatch {
    pub prefix: String,
    pub location: String,
    pub file: String,
}

/// One location in the order containers/image tries them (all of them, not stopping at a hit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceExplanation {
    pub reference: String,
    pub mirror: bool,
    pub insecure: bool,
    pub blocked: bool,
    /// Prefix of the blocked entry that makes this attempt fail without network I/O.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    /// The location names a registry on the node itself (OpenShift 4.22's in-cluster release
    /// registry on `localhost:22625` / `api-int.<domain>:22625`): each control-plane node
    /// serves its own copy, so the same reference is a different registry on every node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub node_local: bool,
}

/// Whether `reference` (or a bare host) names OpenShift 4.22's node-local release registry.
pub fn is_node_local(reference: &str) -> bool {
    let host = reference.split('/').next().unwrap_or_default();
    host == "localhost:22625" || (host.starts_with("api-int.") && host.ends_with(":22625"))
}

/// The answer for one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub image: String,
    /// The reference after docker-transport normalisation.
    pub reference: Option<String>,
    pub registry: Option<RegistryMatch>,
    pub sources: Vec<SourceExplanation>,
    /// For short names: the candidates CRI-O's short-name resolution would try, in order.
    pub candidates: Vec<String>,
    /// containers/image's text when the pull fails before any attempt.
    pub error: Option<String>,
    /// What will happen, in words.
    pub summary: String,
}

impl Explanation {
    /// The pull will fail: before any attempt (a bad reference), or because every location it
    /// could use is blocked.
    pub fn will_not_pull(&self) -> bool {
        self.error.is_some() || (!self.sources.is_empty() && self.sources.iter().all(|s| s.blocked))
    }
}

/// Explains one image against an effective configuration.
pub fn explain(config: &EffectiveConfig, image: &str) -> Explanation {
    let mut out = Explanation {
        image: image.to_string(),
        reference: None,
        registry: None,
        sources: Vec::new(),
        candidates: Vec::new(),
        error: None,
        summary: String::new(),
    };
    if is_short_name(image) {
        out.candidates = match config.resolve_short_name(image) {
            Ok(res) => res
                .candidates()
                .into_iter()
                .map(ToString::to_string)
                .collect(),
            Err(_) => Vec::new(),
        };
    }
    let reference = match ImageReference::parse_docker(image) {
        Ok(r) => r,
        Err(e) => {
            out.error = Some(e.to_string());
            out.summary = format!("fails before any attempt: {e}");
            return out;
        }
    };
    out.reference = Some(reference.to_string());
    let registry = config.find_registry(reference.name());
    out.registry = registry.map(|r| RegistryMatch {
        prefix: r.prefix.clone(),
        location: r.location.clone(),
        file: r.file.clone(),
    });
    match config.pull_sources(&reference) {
        Ok(sources) => {
            out.sources = sources
                .into_iter()
                .map(|s| SourceExplanation {
                    blocked: s.blocked(),
                    node_local: is_node_local(&s.reference.to_string()),
                    reference: s.reference.to_string(),
                    mirror: s.mirror,
                    insecure: s.insecure,
                    blocked_by: s.blocked_by,
                })
                .collect();
            out.summary = summarize(&reference, registry, &out.sources);
        }
        Err(e) => {
            out.error = Some(e.to_string());
            out.summary = format!("fails before any attempt: {e}");
        }
    }
    out
}

fn summarize(
    reference: &ImageReference,
    registry: Option<&Registry>,
    sources: &[SourceExplanation],
) -> String {
    let Some(reg) = registry else {
        return "no registries.conf entry: pulled directly from the source".to_string();
    };
    let mut parts = Vec::new();
    let digest = reference.digest().is_some();
    let skipped = reg.mirrors.len() + 1 - sources.len();
    if skipped > 0 {
        let kind = if reg.mirror_by_digest_only
            || reg
                .mirrors
                .iter()
                .any(|m| m.usage() == PullFromMirror::DigestOnly)
        {
            "digest-only"
        } else {
            "tag-only"
        };
        let pull = if digest { "digest pull" } else { "tag pull" };
        parts.push(format!(
            "{pull}: {skipped} {kind} mirror{} skipped",
            plural(skipped)
        ));
    }
    let usable_mirrors = sources.iter().filter(|s| s.mirror && !s.blocked).count();
    let blocked_mirrors = sources.iter().filter(|s| s.mirror && s.blocked).count();
    let source_blocked = sources.last().is_some_and(|s| s.blocked);
    let primary_rewritten = sources
        .last()
        .is_some_and(|s| s.reference != reference.as_str());
    parts.push(match (usable_mirrors, source_blocked) {
        (0, true) => "every location is blocked: the pull will fail".to_string(),
        (n, true) => format!("mirror only ({n} mirror{}); source blocked", plural(n)),
        (0, false) if primary_rewritten => {
            "no mirror used: pulled from the rewritten location".to_string()
        }
        (0, false) => "no mirror used: pulled directly from the source".to_string(),
        (n, false) => format!(
            "{n} mirror{} first, then the source (falls back to the source)",
            plural(n)
        ),
    });
    if blocked_mirrors > 0 {
        parts.push(format!(
            "{blocked_mirrors} mirror{} blocked by another entry",
            plural(blocked_mirrors)
        ));
    }
    parts.join("; ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod node_local_tests {
    #[test]
    fn the_in_cluster_release_registry_is_node_local() {
        assert!(super::is_node_local(
            "localhost:22625/openshift/release@sha256:aa"
        ));
        assert!(super::is_node_local(
            "api-int.c1.example.com:22625/openshift/release"
        ));
        assert!(!super::is_node_local("localhost:5000/x"));
        assert!(!super::is_node_local("api.c1.example.com:22625/x"));
    }
}
