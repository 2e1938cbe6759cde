//! A canonical, order-preserving form of the effective configuration and its SHA-256, so two
//! nodes (or a node and a rendering) can be compared by meaning rather than by bytes.
//!
//! Normalised away: file origins, comments and key order, `pull-from-mirror = "all"` versus
//! unset, and `mirror-by-digest-only = true` versus `pull-from-mirror = "digest-only"` on every
//! mirror (they resolve identically). Kept: everything that changes what a pull does, including
//! entry order where it matters (mirrors, search registries, credential helpers).

use serde::Serialize;

use super::effective::EffectiveConfig;
use super::model::PullFromMirror;

#[derive(Serialize)]
struct CanonicalMirror<'a> {
    location: &'a str,
    insecure: bool,
    #[serde(rename = "pull-from-mirror")]
    pull_from_mirror: &'static str,
}

#[derive(Serialize)]
struct CanonicalRegistry<'a> {
    prefix: &'a str,
    location: &'a str,
    insecure: bool,
    blocked: bool,
    mirrors: Vec<CanonicalMirror<'a>>,
}

#[derive(Serialize)]
struct CanonicalConfig<'a> {
    version: u32,
    registries: Vec<CanonicalRegistry<'a>>,
    #[serde(rename = "unqualified-search-registries")]
    unqualified_search_registries: &'a [String],
    #[serde(rename = "credential-helpers")]
    credential_helpers: &'a [String],
    #[serde(rename = "short-name-mode")]
    short_name_mode: &'static str,
    #[serde(rename = "additional-layer-store-auth-helper")]
    additional_layer_store_auth_helper: &'a str,
    aliases: Vec<(&'a str, &'a str)>,
}

impl EffectiveConfig {
    /// Canonical JSON text (one line, stable across runs and platforms).
    pub fn canonical_json(&self) -> String {
        let registries = self
            .registries
            .iter()
            .map(|r| CanonicalRegistry {
                prefix: &r.prefix,
                location: &r.location,
                insecure: r.insecure,
                blocked: r.blocked,
                mirrors: r
                    .mirrors
                    .iter()
                    .map(|m| CanonicalMirror {
                        location: &m.location,
                        insecure: m.insecure,
                        pull_from_mirror: if r.mirror_by_digest_only {
                            PullFromMirror::DigestOnly.as_str()
                        } else {
                            m.usage().as_str()
                        },
                    })
                    .collect(),
            })
            .collect();
        let c = CanonicalConfig {
            version: 1,
            registries,
            unqualified_search_registries: &self.unqualified_search_registries,
            credential_helpers: &self.credential_helpers,
            short_name_mode: self.short_name_mode.as_str(),
            additional_layer_store_auth_helper: &self.additional_layer_store_auth_helper,
            aliases: self
                .aliases
                .iter()
                .filter_map(|(k, v)| v.target.as_deref().map(|t| (k.as_str(), t)))
                .collect(),
        };
        // Serialising plain strings, bools and vectors cannot fail.
        serde_json::to_string(&c).unwrap_or_default()
    }

    /// `sha256:<hex>` of [`Self::canonical_json`].
    pub fn canonical_sha256(&self) -> String {
        crate::hash::sha256_hex(self.canonical_json().as_bytes())
    }
}
