//! A canonical, order-preserving form of the effective configuration and its SHA-256, so two
//! nodes (or a node and a rendering) can be compared by meaning rather than by bytes.
//!
//! Normalised away: file origins, comments and key order, `pull-from-mirror = "all"` versus
//! unset, and `mirror-by-digest-only = true` versus `pull-from-mirror = "digest-only"` on every
//! mirror (they resolve identically). Kept: everything that changes what a pull does, including
//! entry order where it matters (mirrors, search registries, credential helpers).

use serde::Serialize;

use super::effective::EffectiveConfig;
use super::model::{PullFromMirror, Registry};
use crate::hash::Sha256Writer;

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

/// The registries, each made canonical as it is written: a 100,000-entry configuration is
/// never held twice.
struct CanonicalRegistries<'a>(&'a [Registry]);

impl Serialize for CanonicalRegistries<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(canonical_registry))
    }
}

fn canonical_registry(r: &Registry) -> CanonicalRegistry<'_> {
    CanonicalRegistry {
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
    }
}

#[derive(Serialize)]
struct CanonicalConfig<'a> {
    version: u32,
    registries: CanonicalRegistries<'a>,
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
        let mut out = Vec::new();
        self.write_canonical(&mut out);
        // serde_json writes UTF-8 only.
        String::from_utf8(out).unwrap_or_default()
    }

    /// `sha256:<hex>` of [`Self::canonical_json`].
    pub fn canonical_sha256(&self) -> String {
        self.canonical_sha256_and_json(0).0
    }

    /// [`Self::canonical_sha256`], and [`Self::canonical_json`] too when it is at most
    /// `max_json` bytes: rendered once, and never held whole when it is bigger.
    pub fn canonical_sha256_and_json(&self, max_json: usize) -> (String, Option<String>) {
        let mut w = HashAndKeep {
            hash: Sha256Writer::default(),
            kept: Some(Vec::new()),
            max: max_json,
        };
        self.write_canonical(&mut w);
        let json = w.kept.and_then(|k| String::from_utf8(k).ok());
        (w.hash.finish(), json)
    }

    fn write_canonical(&self, w: impl std::io::Write) {
        let c = CanonicalConfig {
            version: 1,
            registries: CanonicalRegistries(&self.registries),
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
        // Plain strings, bools and vectors into writers that never fail: nothing to report.
        let _ = serde_json::to_writer(w, &c);
    }
}

/// Hashes everything and keeps the bytes while they fit in `max`.
struct HashAndKeep {
    hash: Sha256Writer,
    kept: Option<Vec<u8>>,
    max: usize,
}

impl std::io::Write for HashAndKeep {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hash.write_all(buf)?;
        if let Some(k) = &mut self.kept {
            if k.len() + buf.len() > self.max {
                self.kept = None;
            } else {
                k.extend_from_slice(buf);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::cimage_version::CImageVersion;
    use crate::hash::sha256_hex;
    use crate::registries::{parse_config_str, EffectiveConfig, FileKind};

    fn config() -> EffectiveConfig {
        let text = "unqualified-search-registries = [\"quay.io\"]\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"mirror.local/docker\"\n";
        let f = parse_config_str(
            text,
            "registries.conf",
            FileKind::Main,
            CImageVersion::LATEST,
        )
        .unwrap();
        EffectiveConfig::from_main_file(f)
    }

    #[test]
    fn the_streamed_hash_is_the_hash_of_the_text_and_the_text_is_kept_only_when_it_fits() {
        let c = config();
        let json = c.canonical_json();
        assert!(
            json.contains(r#""pull-from-mirror":"digest-only""#),
            "{json}"
        );
        assert_eq!(c.canonical_sha256(), sha256_hex(json.as_bytes()));
        let (sha, kept) = c.canonical_sha256_and_json(json.len());
        assert_eq!(
            (sha.as_str(), kept.as_deref()),
            (c.canonical_sha256().as_str(), Some(json.as_str()))
        );
        let (sha, kept) = c.canonical_sha256_and_json(json.len() - 1);
        assert_eq!((sha, kept), (c.canonical_sha256(), None));
    }
}
