//! Short-name resolution (`pkg/shortnames.Resolve`): the candidate list CRI-O and podman try for
//! a name without a registry. skopeo does none of this (it simply normalises to docker.io).

use super::effective::EffectiveConfig;
use super::model::ShortNameMode;
use crate::go::quote;
use crate::reference::{ImageReference, ReferenceError};

/// How a (possibly short) name resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShortNameResolution {
    /// The name has a registry; it is used as is (normalised).
    Qualified(ImageReference),
    /// An `[aliases]` entry names the single candidate.
    Alias {
        candidate: ImageReference,
        origin: String,
    },
    /// One candidate per `unqualified-search-registries` entry, in order.
    Search {
        candidates: Vec<ImageReference>,
        origin: String,
        mode: ShortNameMode,
    },
}

impl ShortNameResolution {
    pub fn candidates(&self) -> Vec<&ImageReference> {
        match self {
            Self::Qualified(r) => vec![r],
            Self::Alias { candidate, .. } => vec![candidate],
            Self::Search { candidates, .. } => candidates.iter().collect(),
        }
    }
}

/// Why short-name resolution fails; texts as containers/image (and CRI-O) print them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShortNameError {
    #[error("cannot parse input: {}: {error}", quote(input))]
    Parse {
        input: String,
        error: ReferenceError,
    },
    #[error("cannot normalize input: {}: {error}", quote(input))]
    Normalize {
        input: String,
        error: ReferenceError,
    },
    #[error("short-name {} did not resolve to an alias and no unqualified-search registries are defined in {}", quote(name), quote(origin))]
    NoSearchRegistries { name: String, origin: String },
    #[error("short-name {} did not resolve to an alias and no containers-registries.conf(5) was found", quote(.0))]
    NoConfiguration(String),
    #[error(
        "creating reference with unqualified-search registry {}: {error}",
        quote(registry)
    )]
    SearchRegistry {
        registry: String,
        error: ReferenceError,
    },
    #[error("short name mode is enforcing, but image name {0} returns ambiguous list")]
    Ambiguous(String),
}

impl EffectiveConfig {
    /// Resolves `input` as CRI-O does (no TTY: `enforcing` with several candidates fails).
    pub fn resolve_short_name(&self, input: &str) -> Result<ShortNameResolution, ShortNameError> {
        let parsed =
            ImageReference::parse_unnormalized(input).map_err(|error| ShortNameError::Parse {
                input: input.to_string(),
                error,
            })?;
        let domain = parsed.domain();
        if domain.contains(['.', ':']) || domain == "localhost" {
            let r = ImageReference::parse_normalized(input).map_err(|error| {
                ShortNameError::Normalize {
                    input: input.to_string(),
                    error,
                }
            })?;
            return Ok(ShortNameResolution::Qualified(r.with_default_tag()));
        }
        if let Some(target) = self
            .aliases
            .get(parsed.name())
            .and_then(|a| a.target.as_ref().map(|t| (t, &a.file)))
        {
            let mut s = target.0.clone();
            if let Some(t) = parsed.tag() {
                s.push(':');
                s.push_str(t);
            }
            if let Some(d) = parsed.digest() {
                s.push('@');
                s.push_str(d);
            }
            let candidate = ImageReference::parse_normalized(&s)
                .map_err(|error| ShortNameError::Normalize {
                    input: s.clone(),
                    error,
                })?
                .with_default_tag();
            return Ok(ShortNameResolution::Alias {
                candidate,
                origin: target.1.clone(),
            });
        }
        if self.unqualified_search_registries.is_empty() {
            if self.unqualified_search_registries_origin.is_empty() {
                return Err(ShortNameError::NoConfiguration(input.to_string()));
            }
            return Err(ShortNameError::NoSearchRegistries {
                name: input.to_string(),
                origin: self.unqualified_search_registries_origin.clone(),
            });
        }
        let mut candidates = Vec::with_capacity(self.unqualified_search_registries.len());
        for reg in &self.unqualified_search_registries {
            let r =
                ImageReference::parse_normalized(&format!("{reg}/{input}")).map_err(|error| {
                    ShortNameError::SearchRegistry {
                        registry: reg.clone(),
                        error,
                    }
                })?;
            candidates.push(r.with_default_tag());
        }
        if self.short_name_mode == ShortNameMode::Enforcing && candidates.len() > 1 {
            return Err(ShortNameError::Ambiguous(input.to_string()));
        }
        Ok(ShortNameResolution::Search {
            candidates,
            origin: self.unqualified_search_registries_origin.clone(),
            mode: self.short_name_mode,
        })
    }
}
