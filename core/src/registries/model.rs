//! The validated registries.conf data model (one file, or the merged result).

use serde::Serialize;

/// Which references a mirror serves (`pull-from-mirror`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullFromMirror {
    /// Unset or `all`: every reference.
    #[default]
    All,
    DigestOnly,
    TagOnly,
}

impl PullFromMirror {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::DigestOnly => "digest-only",
            Self::TagOnly => "tag-only",
        }
    }
}

/// A `[[registry.mirror]]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Mirror {
    pub location: String,
    pub insecure: bool,
    /// `None` when the key was absent (it matters for the `mirror-by-digest-only` conflict check,
    /// which rejects even an explicit `all`).
    pub pull_from_mirror: Option<PullFromMirror>,
}

impl Mirror {
    pub fn usage(&self) -> PullFromMirror {
        self.pull_from_mirror.unwrap_or_default()
    }
}

/// A `[[registry]]` entry after validation and normalisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Registry {
    pub prefix: String,
    /// Empty only for `*.` wildcard prefixes: the reference is then used unchanged.
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    pub mirror_by_digest_only: bool,
    pub mirrors: Vec<Mirror>,
    /// The file this entry came from (drop-ins replace whole entries, so there is exactly one).
    pub file: String,
}

/// `short-name-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShortNameMode {
    Disabled,
    #[default]
    Permissive,
    Enforcing,
}

impl ShortNameMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Permissive => "permissive",
            Self::Enforcing => "enforcing",
        }
    }
}

/// One `[aliases]` value of a file: a normalised target, or a tombstone (`""`) that removes an
/// alias set by an earlier file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AliasValue {
    pub target: Option<String>,
    pub file: String,
}

/// One parsed and validated registries.conf file, with "was this key present" preserved, since
/// drop-in merging depends on presence rather than value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigFile {
    pub path: String,
    /// Sorted by prefix; later duplicates of a prefix dropped.
    pub registries: Vec<Registry>,
    pub unqualified_search_registries: Option<Vec<String>>,
    pub credential_helpers: Option<Vec<String>>,
    pub short_name_mode: Option<ShortNameMode>,
    pub additional_layer_store_auth_helper: Option<String>,
    pub aliases: std::collections::BTreeMap<String, AliasValue>,
}
