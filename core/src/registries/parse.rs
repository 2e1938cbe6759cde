//! Decoding and validating one registries.conf file, in containers/image's order of checks and
//! with its messages (`loadConfigFile`, `postProcessRegistries`, `ConvertToV2`).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::aliases::validate_aliases;
use super::model::{ConfigFile, Mirror, PullFromMirror, Registry, ShortNameMode};
use crate::cimage_version::CImageVersion;
use crate::go::quote;
use crate::reference::is_domain;

/// Whether the file is the main registries.conf (v1 allowed) or a drop-in (v2 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Main,
    DropIn,
}

/// Why one file was rejected; `Display` gives containers/image's text (without the
/// `loading registries configuration "PATH": ` wrapper, see [`super::ConfigError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// TOML syntax or type error. containers/image uses BurntSushi/toml, whose wording differs
    /// from ours after the line number.
    #[error("toml: {}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Syntax {
        line: Option<usize>,
        message: String,
    },
    /// The file could not be read, in Go's `open PATH: reason` form.
    #[error("{0}")]
    Io(String),
    /// A validation rule failed (`InvalidRegistries` and the plain errors beside it).
    #[error("{0}")]
    Invalid(String),
}

#[derive(Deserialize, Default)]
struct RawFile {
    registry: Option<Vec<RawRegistry>>,
    #[serde(rename = "unqualified-search-registries")]
    unqualified_search_registries: Option<Vec<String>>,
    #[serde(rename = "credential-helpers")]
    credential_helpers: Option<Vec<String>>,
    #[serde(rename = "short-name-mode")]
    short_name_mode: Option<String>,
    #[serde(rename = "additional-layer-store-auth-helper")]
    additional_layer_store_auth_helper: Option<String>,
    aliases: Option<BTreeMap<String, String>>,
    registries: Option<RawV1>,
}

#[derive(Deserialize, Default)]
struct RawV1 {
    search: Option<RawV1List>,
    insecure: Option<RawV1List>,
    block: Option<RawV1List>,
}

#[derive(Deserialize, Default)]
struct RawV1List {
    registries: Option<Vec<String>>,
}

#[derive(Deserialize, Default, Clone)]
struct RawRegistry {
    prefix: Option<String>,
    location: Option<String>,
    insecure: Option<bool>,
    #[serde(rename = "pull-from-mirror")]
    pull_from_mirror: Option<String>,
    mirror: Option<Vec<RawMirror>>,
    blocked: Option<bool>,
    #[serde(rename = "mirror-by-digest-only")]
    mirror_by_digest_only: Option<bool>,
}

#[derive(Deserialize, Default, Clone)]
struct RawMirror {
    location: Option<String>,
    insecure: Option<bool>,
    #[serde(rename = "pull-from-mirror")]
    pull_from_mirror: Option<String>,
}

/// Parses and validates one file's text. `path` is used for messages and recorded origins.
pub fn parse_config_str(
    text: &str,
    path: &str,
    kind: FileKind,
    version: CImageVersion,
) -> Result<ConfigFile, FileError> {
    let raw = decode(text, version)?;
    let is_v1 = v1_present(&raw, version);
    let (registries, usr) = if is_v1 {
        if kind == FileKind::DropIn {
            return Err(invalid("registry must be in v2 format but is in v1"));
        }
        if v2_present(&raw, version) {
            // >= 5.24 appends a Go-syntax dump of the decoded file, which we do not reproduce.
            return Err(invalid("mixing sysregistry v1/v2 is not supported"));
        }
        convert_v1(raw.registries.unwrap_or_default())?
    } else {
        (
            raw.registry.clone().unwrap_or_default(),
            raw.unqualified_search_registries.clone(),
        )
    };
    let (registries, usr) = post_process(registries, usr, path, version)?;

    let short_name_mode = match raw.short_name_mode.as_deref() {
        None | Some("") => None,
        Some(m) => Some(parse_short_name_mode(m)?),
    };
    if let Some(r) = registries
        .iter()
        .find(|r| r.prefix.starts_with("*.") && r.prefix.contains(['/', '@', ':']))
    {
        return Err(invalid(format!(
            "Wildcarded prefix should be in the format: *.example.com. Current prefix {} is incorrectly formatted",
            quote(&r.prefix)
        )));
    }
    let aliases = match &raw.aliases {
        None => BTreeMap::new(),
        Some(a) => validate_aliases(a, path, version)
            .map_err(|e| invalid(format!("validating short-name aliases: {e}")))?,
    };
    Ok(ConfigFile {
        path: path.to_string(),
        registries,
        unqualified_search_registries: usr,
        credential_helpers: if is_v1 { None } else { raw.credential_helpers },
        short_name_mode,
        additional_layer_store_auth_helper: raw
            .additional_layer_store_auth_helper
            .filter(|s| !s.is_empty()),
        aliases,
    })
}

fn invalid(msg: impl Into<String>) -> FileError {
    FileError::Invalid(msg.into())
}

/// BurntSushi/toml (containers/image's parser, TOML 1.0) matches struct keys exactly first and
/// then case-insensitively, so `Location` or `[[Registry]]` work there; map keys (aliases) are
/// never folded. serde matches exactly, so keys are folded onto the schema before decoding.
const TOP_KEYS: &[&str] = &[
    "registry",
    "unqualified-search-registries",
    "credential-helpers",
    "short-name-mode",
    "additional-layer-store-auth-helper",
    "aliases",
    "registries",
];
const REGISTRY_KEYS: &[&str] = &[
    "prefix",
    "location",
    "insecure",
    "pull-from-mirror",
    "mirror",
    "blocked",
    "mirror-by-digest-only",
];
const MIRROR_KEYS: &[&str] = &["location", "insecure", "pull-from-mirror"];
const V1_KEYS: &[&str] = &["search", "insecure", "block"];
const V1_LIST_KEYS: &[&str] = &["registries"];

fn decode(text: &str, version: CImageVersion) -> Result<RawFile, FileError> {
    // BurntSushi/toml learnt to skip a byte-order mark in v1.3 (containers/image 5.26).
    if text.starts_with('\u{feff}') && !version.at_least(CImageVersion::V5_26) {
        return Err(FileError::Syntax {
            line: Some(1),
            message: "bare keys cannot contain '\\ufeff'".to_string(),
        });
    }
    let mut table: toml::Table = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
    if !fold_file_keys(&mut table) {
        // Decode from the text again so type errors keep their line numbers.
        return toml::from_str(text).map_err(|e| syntax_error(text, &e));
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| FileError::Syntax {
            line: None,
            message: e.message().trim().to_string(),
        })
}

/// Renames keys of the known tables to their schema spelling; true when anything changed.
fn fold_file_keys(top: &mut toml::Table) -> bool {
    let mut changed = fold_keys(top, TOP_KEYS);
    if let Some(toml::Value::Array(regs)) = top.get_mut("registry") {
        for r in regs.iter_mut().filter_map(toml::Value::as_table_mut) {
            changed |= fold_keys(r, REGISTRY_KEYS);
            if let Some(toml::Value::Array(ms)) = r.get_mut("mirror") {
                for m in ms.iter_mut().filter_map(toml::Value::as_table_mut) {
                    changed |= fold_keys(m, MIRROR_KEYS);
                }
            }
        }
    }
    if let Some(toml::Value::Table(v1)) = top.get_mut("registries") {
        changed |= fold_keys(v1, V1_KEYS);
        for k in V1_KEYS {
            if let Some(toml::Value::Table(list)) = v1.get_mut(*k) {
                changed |= fold_keys(list, V1_LIST_KEYS);
            }
        }
    }
    changed
}

fn fold_keys(table: &mut toml::Table, fields: &[&str]) -> bool {
    let renames: Vec<(String, &str)> = table
        .keys()
        .filter(|k| !fields.contains(&k.as_str()))
        .filter_map(|k| {
            fields
                .iter()
                .find(|f| go_equal_fold(k, f))
                .map(|f| (k.clone(), *f))
        })
        .collect();
    for (from, to) in &renames {
        if let Some(v) = table.remove(from) {
            table.insert((*to).to_string(), v);
        }
    }
    !renames.is_empty()
}

/// Go's `strings.EqualFold` for our ASCII field names (the Kelvin sign and the long s fold onto
/// `k` and `s` under Unicode simple folding).
fn go_equal_fold(key: &str, field: &str) -> bool {
    let fold = |c: char| match c {
        '\u{212a}' => 'k',
        '\u{17f}' => 's',
        c => c.to_ascii_lowercase(),
    };
    key.chars().map(fold).eq(field.chars().map(fold))
}

fn syntax_error(text: &str, e: &toml::de::Error) -> FileError {
    let line = e.span().map(|s| {
        let bytes = text.as_bytes();
        let before = bytes.iter().take(s.start).filter(|&&b| b == b'\n').count() + 1;
        // BurntSushi's lexer has already counted a newline when it reports an error found there:
        // an unterminated string, or a table header whose closing bracket is missing.
        let header_cut_by_newline =
            e.message().starts_with("invalid table header") && bytes.get(s.end) == Some(&b'\n');
        if bytes.get(s.start) == Some(&b'\n') || header_cut_by_newline {
            before + 1
        } else {
            before
        }
    });
    FileError::Syntax {
        line,
        message: e.message().trim().to_string(),
    }
}

/// A v1 file: any `[registries.*] registries` array present (>= 5.24) or non-empty (5.23).
fn v1_present(raw: &RawFile, version: CImageVersion) -> bool {
    let Some(v1) = &raw.registries else {
        return false;
    };
    [&v1.search, &v1.insecure, &v1.block]
        .into_iter()
        .filter_map(|l| l.as_ref().and_then(|l| l.registries.as_ref()))
        .any(|r| version.at_least(CImageVersion::V5_24) || !r.is_empty())
}

/// Whether any v2 key is set, with the same presence-versus-emptiness rule as [`v1_present`].
fn v2_present(raw: &RawFile, version: CImageVersion) -> bool {
    let strict = version.at_least(CImageVersion::V5_24);
    let list_set = |l: Option<usize>| l.is_some_and(|n| strict || n > 0);
    list_set(raw.registry.as_ref().map(Vec::len))
        || list_set(raw.unqualified_search_registries.as_ref().map(Vec::len))
        || list_set(raw.credential_helpers.as_ref().map(Vec::len))
        || list_set(raw.aliases.as_ref().map(BTreeMap::len))
        || raw
            .short_name_mode
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        || raw
            .additional_layer_store_auth_helper
            .as_deref()
            .is_some_and(|s| !s.is_empty())
}

/// `parseLocation`: trailing slashes trimmed, URI schemes rejected (naming the untrimmed input).
fn parse_location(input: &str) -> Result<String, FileError> {
    let trimmed = input.trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Err(invalid(format!(
            "invalid location '{input}': URI schemes are not supported"
        )));
    }
    Ok(trimmed.to_string())
}

type V2Parts = (Vec<RawRegistry>, Option<Vec<String>>);

/// `ConvertToV2`: one entry per distinct location, blocked ones first, then insecure ones.
fn convert_v1(v1: RawV1) -> Result<V2Parts, FileError> {
    let list = |l: Option<RawV1List>| l.and_then(|l| l.registries).unwrap_or_default();
    let mut order: Vec<RawRegistry> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut entry = |loc: &str, order: &mut Vec<RawRegistry>| -> Result<usize, FileError> {
        let loc = parse_location(loc)?;
        Ok(*index.entry(loc.clone()).or_insert_with(|| {
            order.push(RawRegistry {
                prefix: Some(loc.clone()),
                location: Some(loc),
                ..RawRegistry::default()
            });
            order.len() - 1
        }))
    };
    for b in list(v1.block) {
        let i = entry(&b, &mut order)?;
        order[i].blocked = Some(true);
    }
    for b in list(v1.insecure) {
        let i = entry(&b, &mut order)?;
        order[i].insecure = Some(true);
    }
    Ok((order, v1.search.and_then(|s| s.registries)))
}

fn parse_pull_from_mirror(value: &str) -> Option<PullFromMirror> {
    match value {
        "" | "all" => Some(PullFromMirror::All),
        "digest-only" => Some(PullFromMirror::DigestOnly),
        "tag-only" => Some(PullFromMirror::TagOnly),
        _ => None,
    }
}

/// `postProcessRegistries`: per-entry checks in file order, then the conflict checks, then the
/// search registries; finally later duplicates of a prefix are dropped and entries sorted.
fn post_process(
    raw: Vec<RawRegistry>,
    usr: Option<Vec<String>>,
    path: &str,
    version: CImageVersion,
) -> Result<(Vec<Registry>, Option<Vec<String>>), FileError> {
    let mut regs = Vec::with_capacity(raw.len());
    for r in raw {
        let location = parse_location(r.location.as_deref().unwrap_or(""))?;
        let prefix = match r.prefix.as_deref().unwrap_or("") {
            "" if location.is_empty() => {
                return Err(invalid(
                    "invalid condition: both location and prefix are unset",
                ))
            }
            "" => location.clone(),
            p => {
                let p = parse_location(p)?;
                if !p.starts_with("*.") && location.is_empty() {
                    return Err(invalid(
                        "invalid condition: location is unset and prefix is not in the format: *.example.com",
                    ));
                }
                p
            }
        };
        if r.pull_from_mirror.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(invalid(format!(
                "pull-from-mirror must not be set for a non-mirror registry {}",
                quote(&prefix)
            )));
        }
        let mirror_by_digest_only = r.mirror_by_digest_only.unwrap_or(false);
        let mut mirrors = Vec::new();
        for m in r.mirror.unwrap_or_default() {
            let raw_location = m.location.unwrap_or_default();
            let trimmed = parse_location(&raw_location)?;
            if trimmed.is_empty() {
                return Err(invalid("invalid condition: mirror location is unset"));
            }
            let pfm = m.pull_from_mirror.unwrap_or_default();
            if mirror_by_digest_only && !pfm.is_empty() {
                return Err(invalid(format!(
                    "cannot set mirror usage mirror-by-digest-only for the registry ({}) and pull-from-mirror for per-mirror ({}) at the same time",
                    quote(&prefix),
                    quote(&trimmed)
                )));
            }
            let Some(usage) = parse_pull_from_mirror(&pfm) else {
                return Err(invalid(format!(
                    "unsupported pull-from-mirror value {} for mirror {}",
                    quote(&pfm),
                    quote(&trimmed)
                )));
            };
            // Before 5.35 the trimmed value was checked on a loop copy and then lost.
            let location = if version.at_least(CImageVersion::V5_35) {
                trimmed
            } else {
                raw_location
            };
            mirrors.push(Mirror {
                location,
                insecure: m.insecure.unwrap_or(false),
                pull_from_mirror: (!pfm.is_empty()).then_some(usage),
            });
        }
        regs.push(Registry {
            prefix,
            location,
            insecure: r.insecure.unwrap_or(false),
            blocked: r.blocked.unwrap_or(false),
            mirror_by_digest_only,
            mirrors,
            file: path.to_string(),
        });
    }
    check_conflicts(&regs)?;

    let usr = match usr {
        None => None,
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for entry in list {
                let reg = parse_location(&entry)?;
                if !is_domain(&reg) {
                    return Err(invalid(format!(
                        "Invalid unqualified-search-registries entry {}",
                        quote(&reg)
                    )));
                }
                out.push(reg);
            }
            Some(out)
        }
    };

    let mut seen = std::collections::HashSet::new();
    let mut unique: Vec<Registry> = regs
        .into_iter()
        .filter(|r| seen.insert(r.prefix.clone()))
        .collect();
    unique.sort_by(|a, b| a.prefix.as_bytes().cmp(b.prefix.as_bytes()));
    Ok((unique, usr))
}

/// Entries of one file sharing a location (or prefix, when location is empty) must agree on
/// `insecure` and `blocked`; the first disagreeing pair in file order is reported.
fn check_conflicts(regs: &[Registry]) -> Result<(), FileError> {
    let key = |r: &Registry| {
        if r.location.is_empty() {
            r.prefix.clone()
        } else {
            r.location.clone()
        }
    };
    let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, r) in regs.iter().enumerate() {
        groups.entry(key(r)).or_default().push(i);
    }
    for r in regs {
        for &o in groups.get(&key(r)).map(Vec::as_slice).unwrap_or(&[]) {
            let other = &regs[o];
            if r.insecure != other.insecure {
                return Err(invalid(format!(
                    "registry '{}' is defined multiple times with conflicting 'insecure' setting",
                    r.location
                )));
            }
            if r.blocked != other.blocked {
                return Err(invalid(format!(
                    "registry '{}' is defined multiple times with conflicting 'blocked' setting",
                    r.location
                )));
            }
        }
    }
    Ok(())
}

fn parse_short_name_mode(mode: &str) -> Result<ShortNameMode, FileError> {
    match mode {
        "disabled" => Ok(ShortNameMode::Disabled),
        "enforcing" => Ok(ShortNameMode::Enforcing),
        "permissive" => Ok(ShortNameMode::Permissive),
        _ => Err(invalid(format!("invalid short-name mode: {}", quote(mode)))),
    }
}
