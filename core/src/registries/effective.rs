//! The effective configuration: the main file with every drop-in applied in order
//! (`updateWithConfigurationFrom`), indexed for fast prefix lookup.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use super::model::{AliasValue, ConfigFile, Registry, ShortNameMode};

/// The credential helper containers/image uses when the configuration names none.
pub const AUTHENTICATION_FILE_HELPER: &str = "containers-auth.json";

/// What containers/image would use after reading all files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveConfig {
    /// Sorted by prefix (byte order), one entry per prefix.
    pub registries: Vec<Registry>,
    pub unqualified_search_registries: Vec<String>,
    /// The file that last set `unqualified-search-registries` (named in short-name errors).
    pub unqualified_search_registries_origin: String,
    pub credential_helpers: Vec<String>,
    pub short_name_mode: ShortNameMode,
    pub additional_layer_store_auth_helper: String,
    /// Alias name -> target, tombstones removed.
    pub aliases: BTreeMap<String, AliasValue>,
    /// Files read, in order (the main file first when it exists).
    pub files: Vec<String>,
    /// `ConfigPath` and `ConfigDirPath` as the "is blocked in %s or %s" message names them.
    pub blocked_message_paths: (String, String),
    index: PrefixIndex,
}

/// FNV-1a: prefixes are short and trusted (they come from the node's own files), so a simple
/// hash beats SipHash on the lookup path that runs for every source of every pull.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvMap<V> = HashMap<String, V, BuildHasherDefault<Fnv>>;

/// Exact prefixes and `*.` wildcard suffixes, so a lookup costs a few hash probes instead of a
/// scan over every entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct PrefixIndex {
    pub(crate) exact: FnvMap<usize>,
    /// Keyed by the prefix without its leading `*` (i.e. `.example.com`).
    pub(crate) wildcard: FnvMap<usize>,
    /// Which key lengths exist, so most candidate slices are rejected without hashing.
    pub(crate) exact_lengths: LengthSet,
    pub(crate) wildcard_lengths: LengthSet,
}

/// A set of string lengths; lengths past the bitmap always count as present.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LengthSet([u64; 4]);

impl LengthSet {
    fn insert(&mut self, len: usize) {
        if let Some(word) = self.0.get_mut(len / 64) {
            *word |= 1 << (len % 64);
        }
    }

    pub(crate) fn may_contain(&self, len: usize) -> bool {
        self.0
            .get(len / 64)
            .is_none_or(|w| w & (1 << (len % 64)) != 0)
    }
}

impl EffectiveConfig {
    /// An empty configuration (no main file), as containers/image uses when the default main file
    /// is missing.
    pub fn empty(blocked_message_paths: (String, String)) -> Self {
        let mut c = Self {
            registries: Vec::new(),
            unqualified_search_registries: Vec::new(),
            unqualified_search_registries_origin: String::new(),
            credential_helpers: Vec::new(),
            short_name_mode: ShortNameMode::default(),
            additional_layer_store_auth_helper: String::new(),
            aliases: BTreeMap::new(),
            files: Vec::new(),
            blocked_message_paths,
            index: PrefixIndex::default(),
        };
        c.finish(None);
        c
    }

    /// Merges the main file (if any) and the drop-ins, in the order given.
    pub fn from_files(
        main: Option<ConfigFile>,
        drop_ins: impl IntoIterator<Item = ConfigFile>,
        blocked_message_paths: (String, String),
    ) -> Self {
        let mut c = Self::empty(blocked_message_paths);
        let mut mode = None;
        if let Some(m) = main {
            mode = m.short_name_mode;
            c.files.push(m.path.clone());
            c.unqualified_search_registries = m.unqualified_search_registries.unwrap_or_default();
            c.unqualified_search_registries_origin = m.path;
            c.credential_helpers = m.credential_helpers.unwrap_or_default();
            c.additional_layer_store_auth_helper =
                m.additional_layer_store_auth_helper.unwrap_or_default();
            c.registries = m.registries;
            c.aliases = m.aliases;
        }
        for d in drop_ins {
            c.apply_drop_in(d, &mut mode);
        }
        c.finish(mode);
        c
    }

    /// Convenience for a single main file (e.g. a rendering) with no drop-ins.
    pub fn from_main_file(main: ConfigFile) -> Self {
        let paths = (main.path.clone(), String::new());
        Self::from_files(Some(main), [], paths)
    }

    fn apply_drop_in(&mut self, d: ConfigFile, mode: &mut Option<ShortNameMode>) {
        self.files.push(d.path.clone());
        // Whole entries are replaced by prefix; no field-level merge.
        let mut by_prefix: BTreeMap<Vec<u8>, Registry> = std::mem::take(&mut self.registries)
            .into_iter()
            .map(|r| (r.prefix.as_bytes().to_vec(), r))
            .collect();
        for r in d.registries {
            by_prefix.insert(r.prefix.as_bytes().to_vec(), r);
        }
        self.registries = by_prefix.into_values().collect();
        if let Some(usr) = d.unqualified_search_registries {
            self.unqualified_search_registries = usr;
            self.unqualified_search_registries_origin = d.path.clone();
        }
        if let Some(h) = d.credential_helpers {
            self.credential_helpers = h;
        }
        if d.short_name_mode.is_some() {
            *mode = d.short_name_mode;
        }
        if let Some(h) = d.additional_layer_store_auth_helper {
            self.additional_layer_store_auth_helper = h;
        }
        self.aliases.extend(d.aliases);
    }

    fn finish(&mut self, mode: Option<ShortNameMode>) {
        self.short_name_mode = mode.unwrap_or_default();
        if self.credential_helpers.is_empty() {
            self.credential_helpers = vec![AUTHENTICATION_FILE_HELPER.to_string()];
        }
        self.aliases.retain(|_, v| v.target.is_some());
        self.registries
            .sort_by(|a, b| a.prefix.as_bytes().cmp(b.prefix.as_bytes()));
        self.index = PrefixIndex::default();
        for (i, r) in self.registries.iter().enumerate() {
            match r.prefix.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') => {
                    self.index.wildcard_lengths.insert(suffix.len());
                    self.index.wildcard.insert(suffix.to_string(), i);
                }
                _ => {
                    self.index.exact_lengths.insert(r.prefix.len());
                    self.index.exact.insert(r.prefix.clone(), i);
                }
            }
        }
    }

    pub(crate) fn index(&self) -> &PrefixIndex {
        &self.index
    }
}
