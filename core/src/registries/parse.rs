//! Decoding and validating one registries.conf file, in containers/image's order of checks and
//! with its messages (`loadConfigFile`, `postProcessRegistries`, `ConvertToV2`).

use std::collections::{BTreeMap, HashMap};

use super::aliases::validate_aliases;
use super::model::{ConfigFile, Mirror, PullFromMirror, Registry, ShortNameMode};
use super::toml::{self, Node, Release, Table, TomlError};
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
    /// TOML syntax or type error, worded as BurntSushi/toml words it (see [`super::toml`]).
    #[error("{}", syntax_text(*line, last_key, message))]
    Syntax {
        line: Option<usize>,
        /// The key being read or decoded; empty when none.
        last_key: String,
        message: String,
    },
    /// The file could not be read, in Go's `open PATH: reason` form.
    #[error("{0}")]
    Io(String),
    /// A validation rule failed (`InvalidRegistries` and the plain errors beside it).
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Default)]
struct RawFile {
    registry: Option<Vec<RawRegistry>>,
    unqualified_search_registries: Option<Vec<String>>,
    credential_helpers: Option<Vec<String>>,
    short_name_mode: Option<String>,
    additional_layer_store_auth_helper: Option<String>,
    aliases: Option<BTreeMap<String, String>>,
    registries: Option<RawV1>,
}

#[derive(Debug, Default)]
struct RawV1 {
    search: Option<RawV1List>,
    insecure: Option<RawV1List>,
    block: Option<RawV1List>,
}

#[derive(Debug, Default)]
struct RawV1List {
    registries: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone)]
struct RawRegistry {
    prefix: Option<String>,
    location: Option<String>,
    insecure: Option<bool>,
    pull_from_mirror: Option<String>,
    mirror: Option<Vec<RawMirror>>,
    blocked: Option<bool>,
    mirror_by_digest_only: Option<bool>,
}

#[derive(Debug, Default, Clone)]
struct RawMirror {
    location: Option<String>,
    insecure: Option<bool>,
    pull_from_mirror: Option<String>,
}

fn syntax_text(line: Option<usize>, last_key: &str, message: &str) -> String {
    TomlError {
        line,
        last_key: last_key.to_owned(),
        message: message.to_owned(),
    }
    .to_string()
}

/// Parses and validates one file's text. `path` is used for messages and recorded origins.
pub fn parse_config_str(
    text: &str,
    path: &str,
    kind: FileKind,
    version: CImageVersion,
) -> Result<ConfigFile, FileError> {
    parse_config_bytes(text.as_bytes(), path, kind, version)
}

/// [`parse_config_str`] for a file's bytes, which need not be UTF-8: an invalid byte is the
/// TOML error BurntSushi/toml reports for it.
pub fn parse_config_bytes(
    text: &[u8],
    path: &str,
    kind: FileKind,
    version: CImageVersion,
) -> Result<ConfigFile, FileError> {
    let mut raw = decode(text, version)?;
    let is_v1 = v1_present(&raw, version);
    let (registries, usr) = if is_v1 {
        if kind == FileKind::DropIn {
            return Err(invalid("registry must be in v2 format but is in v1"));
        }
        if v2_present(&raw, version) {
            // >= 5.24 appends a Go-syntax dump of the decoded file, which we do not reproduce.
            return Err(invalid("mixing sysregistry v1/v2 is not supported"));
        }
        convert_v1(raw.registries.take().unwrap_or_default())?
    } else {
        // Taken, not cloned: a file may hold 100,000 entries.
        (
            raw.registry.take().unwrap_or_default(),
            raw.unqualified_search_registries.take(),
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

/// Decodes the text the way containers/image does: BurntSushi/toml parses it, then its
/// reflection-based decoder fills `tomlConfig`, matching struct keys exactly first and then
/// case-insensitively (`Location`, `[[Registry]]`); map keys (aliases) are never folded; unknown
/// keys are ignored.
fn decode(text: &[u8], version: CImageVersion) -> Result<RawFile, FileError> {
    // BurntSushi/toml learnt to skip a UTF-8 byte-order mark in v1.3 (containers/image 5.26).
    let text = match text.strip_prefix("\u{feff}".as_bytes()) {
        Some(rest) if version.at_least(CImageVersion::V5_26) => rest,
        _ => text,
    };
    let release = Release::of(version);
    let doc = toml::parse(text, release).map_err(syntax)?;
    let mut d = Decoder {
        lines: &doc.lines,
        context: Vec::new(),
        any: release >= Release::V1_4,
    };
    d.file(&doc.root, version).map_err(syntax)
}

fn syntax(e: TomlError) -> FileError {
    FileError::Syntax {
        line: e.line,
        last_key: e.last_key,
        message: e.message,
    }
}

/// The decoding half of BurntSushi/toml (`MetaData.unify`) for containers/image's schema.
struct Decoder<'a> {
    lines: &'a HashMap<String, usize>,
    context: Vec<String>,
    /// Go types are printed with `any` (BurntSushi ≥ 1.4).
    any: bool,
}

type Decoded<T> = Result<T, TomlError>;

/// How a struct's fields are found for a TOML key: exact name first, else the first field that
/// matches it case-insensitively (Go's `strings.EqualFold`).
fn field<'f>(key: &str, fields: &[&'f str]) -> Option<&'f str> {
    fields
        .iter()
        .find(|f| **f == key)
        .or_else(|| fields.iter().find(|f| go_equal_fold(key, f)))
        .copied()
}

impl Decoder<'_> {
    /// `md.e`: the message with the current key and the line recorded for it.
    fn e(&self, message: String) -> TomlError {
        if self.context.is_empty() {
            return TomlError {
                line: None,
                last_key: String::new(),
                message,
            };
        }
        let key = toml::key_string(&self.context);
        TomlError {
            line: self.lines.get(&key).copied().filter(|&l| l > 0),
            last_key: key,
            message,
        }
    }

    fn badtype(&self, dst: &str, data: &Node) -> TomlError {
        self.e(format!(
            "incompatible types: TOML value has type {}; destination has type {dst}",
            data.go_type(self.any)
        ))
    }

    fn table<'n>(&self, go_type: &str, data: &'n Node) -> Decoded<&'n Table> {
        match data {
            Node::Table(t) => Ok(t),
            other => Err(self.e(format!(
                "type mismatch for sysregistriesv2.{go_type}: expected table but found {}",
                other.go_type(self.any)
            ))),
        }
    }

    /// Decodes each key of `table` that names one of `fields` with `f`, the key in context.
    fn each_field(
        &mut self,
        table: &Table,
        fields: &[&str],
        mut f: impl FnMut(&mut Self, &str, &Node) -> Decoded<()>,
    ) -> Decoded<()> {
        for (key, datum) in table.iter() {
            let Some(name) = field(key, fields) else {
                continue;
            };
            self.context.push(key.to_owned());
            f(self, name, datum)?;
            self.context.pop();
        }
        Ok(())
    }

    fn string(&self, data: &Node) -> Decoded<String> {
        match data {
            Node::Str(s) => Ok(s.clone()),
            other => Err(self.badtype("string", other)),
        }
    }

    fn boolean(&self, data: &Node) -> Decoded<bool> {
        match data {
            Node::Bool(b) => Ok(*b),
            other => Err(self.badtype("boolean", other)),
        }
    }

    /// The elements of a TOML array or array of tables (both are Go slices).
    fn slice<'n>(&self, data: &'n Node) -> Decoded<Vec<ElementRef<'n>>> {
        match data {
            Node::Array(v) => Ok(v.iter().map(ElementRef::Node).collect()),
            Node::Tables(v) => Ok(v.iter().map(ElementRef::Table).collect()),
            other => Err(self.badtype("slice", other)),
        }
    }

    fn strings(&self, data: &Node) -> Decoded<Vec<String>> {
        self.slice(data)?
            .into_iter()
            .map(|e| match e {
                ElementRef::Node(n) => self.string(n),
                ElementRef::Table(_) => {
                    let table = Node::Table(Table::default());
                    Err(self.badtype("string", &table))
                }
            })
            .collect()
    }

    fn element_table<'n>(&self, go_type: &str, e: ElementRef<'n>) -> Decoded<&'n Table> {
        match e {
            ElementRef::Table(t) => Ok(t),
            ElementRef::Node(n) => self.table(go_type, n),
        }
    }

    fn file(&mut self, root: &Table, version: CImageVersion) -> Decoded<RawFile> {
        let mut fields = vec![
            "registry",
            "unqualified-search-registries",
            "credential-helpers",
            "short-name-mode",
            "aliases",
            "registries",
        ];
        // The field (and so its type check) exists from 5.32 on.
        if version.at_least(CImageVersion::new(5, 32)) {
            fields.push("additional-layer-store-auth-helper");
        }
        let mut raw = RawFile::default();
        self.each_field(root, &fields, |d, name, datum| {
            match name {
                "registry" => {
                    let mut regs = Vec::new();
                    for e in d.slice(datum)? {
                        let t = d.element_table("Registry", e)?;
                        regs.push(d.registry(t)?);
                    }
                    raw.registry = Some(regs);
                }
                "unqualified-search-registries" => {
                    raw.unqualified_search_registries = Some(d.strings(datum)?);
                }
                "credential-helpers" => raw.credential_helpers = Some(d.strings(datum)?),
                "short-name-mode" => raw.short_name_mode = Some(d.string(datum)?),
                "additional-layer-store-auth-helper" => {
                    raw.additional_layer_store_auth_helper = Some(d.string(datum)?);
                }
                "aliases" => {
                    // A non-table is silently left unset by BurntSushi's map decoding.
                    if let Node::Table(t) = datum {
                        let mut out = BTreeMap::new();
                        for (k, v) in t.iter() {
                            d.context.push(k.to_owned());
                            let s = d.string(v)?;
                            d.context.pop();
                            out.insert(k.to_owned(), s);
                        }
                        raw.aliases = Some(out);
                    }
                }
                _ => {
                    let t = d.table("V1TOMLConfig", datum)?;
                    raw.registries = Some(d.v1(t)?);
                }
            }
            Ok(())
        })?;
        Ok(raw)
    }

    fn registry(&mut self, t: &Table) -> Decoded<RawRegistry> {
        let mut r = RawRegistry::default();
        let fields = [
            "prefix",
            "location",
            "insecure",
            "pull-from-mirror",
            "mirror",
            "blocked",
            "mirror-by-digest-only",
        ];
        self.each_field(t, &fields, |d, name, datum| {
            match name {
                "prefix" => r.prefix = Some(d.string(datum)?),
                "location" => r.location = Some(d.string(datum)?),
                "insecure" => r.insecure = Some(d.boolean(datum)?),
                "pull-from-mirror" => r.pull_from_mirror = Some(d.string(datum)?),
                "blocked" => r.blocked = Some(d.boolean(datum)?),
                "mirror-by-digest-only" => r.mirror_by_digest_only = Some(d.boolean(datum)?),
                _ => {
                    let mut ms = Vec::new();
                    for e in d.slice(datum)? {
                        let t = d.element_table("Endpoint", e)?;
                        ms.push(d.mirror(t)?);
                    }
                    r.mirror = Some(ms);
                }
            }
            Ok(())
        })?;
        Ok(r)
    }

    fn mirror(&mut self, t: &Table) -> Decoded<RawMirror> {
        let mut m = RawMirror::default();
        self.each_field(
            t,
            &["location", "insecure", "pull-from-mirror"],
            |d, name, datum| {
                match name {
                    "location" => m.location = Some(d.string(datum)?),
                    "insecure" => m.insecure = Some(d.boolean(datum)?),
                    _ => m.pull_from_mirror = Some(d.string(datum)?),
                }
                Ok(())
            },
        )?;
        Ok(m)
    }

    fn v1(&mut self, t: &Table) -> Decoded<RawV1> {
        let mut v1 = RawV1::default();
        self.each_field(t, &["search", "insecure", "block"], |d, name, datum| {
            let list = d.table("V1TOMLregistries", datum)?;
            let mut out = RawV1List::default();
            d.each_field(list, &["registries"], |d, _, datum| {
                out.registries = Some(d.strings(datum)?);
                Ok(())
            })?;
            match name {
                "search" => v1.search = Some(out),
                "insecure" => v1.insecure = Some(out),
                _ => v1.block = Some(out),
            }
            Ok(())
        })?;
        Ok(v1)
    }
}

/// An element of a Go slice decoded from TOML.
#[derive(Clone, Copy)]
enum ElementRef<'n> {
    Node(&'n Node),
    Table(&'n Table),
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
