//! Reading the input objects from YAML or JSON: single documents, multi-document streams and
//! `kind: List` (what `oc get … -o yaml|json` prints), with the API server's validation (CRD
//! schemas and rules) reported by field path.

use super::model::{
    ImageConfig, Kind, MirrorEntry, MirrorSet, MirrorSourcePolicy, ObjectRef, RegistrySources,
    RenderInput,
};
use super::notes::Note;
use super::patterns;
use super::version::OcpVersion;
use serde::{Deserialize, Serialize};
use serde_norway::Value;
use std::collections::BTreeSet;
use std::fmt;

/// How to read the objects: the version decides which kinds and rules the API server has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseOptions {
    pub version: OcpVersion,
}

/// An object the API server would reject, or a document that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputError {
    /// `file`, `file#document` or `file#document/items[i]`.
    pub origin: String,
    /// `Kind/name` when known.
    pub object: Option<String>,
    /// Field path (empty for document-level problems).
    pub field: String,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.origin.is_empty() {
            write!(f, "{}: ", self.origin)?;
        }
        if let Some(o) = &self.object {
            write!(f, "{o}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// A document that is not an input of the rendering (another kind, another name, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub origin: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match (self.kind.is_empty(), self.name.is_empty()) {
            (true, _) => "document".to_string(),
            (false, true) => self.kind.clone(),
            (false, false) => format!("{}/{}", self.kind, self.name),
        };
        write!(f, "{}: skipped {what}: {}", self.origin, self.reason)
    }
}

/// The objects read so far, plus everything that was rejected or skipped on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSet {
    pub input: RenderInput,
    pub errors: Vec<InputError>,
    pub skipped: Vec<Skipped>,
    pub notes: Vec<Note>,
}

/// Reads one file's text (YAML or JSON; one or many documents) into a fresh [`InputSet`].
pub fn parse_str(text: &str, origin: &str, opts: &ParseOptions) -> InputSet {
    let mut set = InputSet::default();
    set.add_text(text, origin, opts);
    set
}

const MAX_LIST_DEPTH: usize = 8;

/// `(origin, message)` of a document that could not be read.
pub(crate) type DocumentError = (String, String);

/// The documents of one file's text, each with the origin that names it in messages (`file` or
/// `file#N` in a multi-document stream), and the error that stopped reading, if any: a JSON
/// document or array, or a YAML stream.
pub(crate) fn read_documents(
    text: &str,
    origin: &str,
) -> (Vec<(String, Value)>, Option<DocumentError>) {
    let body = text.trim_start_matches('\u{feff}').trim_start();
    if body.starts_with('{') || body.starts_with('[') {
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(body) {
            return match serde_norway::to_value(json) {
                Ok(v) => (vec![(origin.to_string(), v)], None),
                Err(e) => (
                    Vec::new(),
                    Some((origin.to_string(), format!("cannot read JSON: {e}"))),
                ),
            };
        }
    }
    let mut docs = Vec::new();
    let mut error = None;
    for (i, de) in serde_norway::Deserializer::from_str(text).enumerate() {
        match Value::deserialize(de) {
            Ok(v) => docs.push(v),
            Err(e) => {
                error = Some((
                    format!("{origin}#{}", i + 1),
                    format!("cannot read YAML: {e}"),
                ));
                break;
            }
        }
    }
    let multi = docs.len() > 1;
    let docs = docs
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let o = if multi {
                format!("{origin}#{}", i + 1)
            } else {
                origin.to_string()
            };
            (o, v)
        })
        .collect();
    (docs, error)
}

impl InputSet {
    /// Adds the objects of one file's text; `origin` names the file in messages.
    pub fn add_text(&mut self, text: &str, origin: &str, opts: &ParseOptions) {
        let (docs, error) = read_documents(text, origin);
        if let Some((o, message)) = error {
            self.doc_error(&o, message);
        }
        for (o, v) in &docs {
            self.add_value(v, o, opts);
        }
    }

    /// Adds one decoded document (an object or a list of objects).
    pub fn add_value(&mut self, v: &Value, origin: &str, opts: &ParseOptions) {
        self.add_value_at(v, origin, opts, 0);
    }

    fn doc_error(&mut self, origin: &str, message: String) {
        self.errors.push(InputError {
            origin: origin.to_string(),
            object: None,
            field: String::new(),
            message,
        });
    }

    fn skip(&mut self, origin: &str, api_version: &str, kind: &str, name: &str, reason: String) {
        self.skipped.push(Skipped {
            origin: origin.to_string(),
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            reason,
        });
    }

    fn add_value_at(&mut self, v: &Value, origin: &str, opts: &ParseOptions, depth: usize) {
        let v = untag(v);
        let map = match v {
            Value::Null => return,
            Value::Mapping(m) => m,
            other => {
                let reason = format!(
                    "a YAML/JSON {} is not a Kubernetes object",
                    type_name(other)
                );
                self.skip(origin, "", "", "", reason);
                return;
            }
        };
        let text = |k: &str| match map.get(k).map(untag) {
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        };
        let kind = text("kind").unwrap_or("");
        let api_version = text("apiVersion").unwrap_or("");
        let name = match map.get("metadata").map(untag) {
            Some(Value::Mapping(m)) => match m.get("name").map(untag) {
                Some(Value::String(s)) => s.as_str(),
                _ => "",
            },
            _ => "",
        };
        if kind.is_empty() {
            self.skip(origin, api_version, "", name, "it has no kind".into());
            return;
        }
        let list_of = kind.strip_suffix("List");
        if kind == "List" || list_of.and_then(Kind::from_name).is_some() {
            if depth >= MAX_LIST_DEPTH {
                self.doc_error(origin, format!("lists nested deeper than {MAX_LIST_DEPTH}"));
                return;
            }
            match map.get("items").map(untag) {
                None | Some(Value::Null) => {}
                Some(Value::Sequence(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        self.add_value_at(item, &format!("{origin}/items[{i}]"), opts, depth + 1);
                    }
                }
                Some(other) => self.errors.push(InputError {
                    origin: origin.to_string(),
                    object: Some(kind.to_string()),
                    field: "items".into(),
                    message: type_error("array", other),
                }),
            }
            return;
        }
        let Some(k) = Kind::from_name(kind) else {
            let reason = if matches!(kind, "ClusterImagePolicy" | "ImagePolicy") {
                "sigstore image policies are not modelled: MCO also writes them into policy.json, /etc/containers/registries.d and /etc/crio/policies".to_string()
            } else {
                "not an input of `render` (only Image, ImageDigestMirrorSet, ImageTagMirrorSet and ImageContentSourcePolicy are)".to_string()
            };
            self.skip(origin, api_version, kind, name, reason);
            return;
        };
        if api_version.is_empty() {
            let msg = format!("no apiVersion; read as {}", k.api_version());
            self.notes
                .push(Note::info("no-api-version", msg).at(format!("{k}/{name}"), ""));
        } else if api_version != k.api_version() {
            let reason = format!(
                "apiVersion {api_version} does not serve {kind} (expected {})",
                k.api_version()
            );
            self.skip(origin, api_version, kind, name, reason);
            return;
        }
        if matches!(k, Kind::ImageDigestMirrorSet | Kind::ImageTagMirrorSet)
            && !opts.version.at_least(13)
        {
            let reason = format!(
                "{kind} is not served before OCP 4.13 (rendering for {})",
                opts.version
            );
            self.skip(origin, api_version, kind, name, reason);
            return;
        }
        let mut d = Decoder {
            errors: Vec::new(),
            notes: Vec::new(),
            object: format!("{k}/{name}"),
        };
        if name.is_empty() {
            d.error("metadata.name", "Required value".into());
        }
        d.known_fields(
            map,
            "",
            &["apiVersion", "kind", "metadata", "spec", "status"],
        );
        let object = ObjectRef {
            kind: k,
            name: name.to_string(),
            origin: origin.to_string(),
        };
        let spec = map.get("spec").map(untag);
        let decoded = match k {
            Kind::Image => d.image(spec, opts).map(Decoded::Image),
            _ => d.mirror_set(k, spec).map(Decoded::Set),
        };
        self.notes.append(&mut d.notes);
        if !d.errors.is_empty() {
            for (field, message) in d.errors {
                self.errors.push(InputError {
                    origin: origin.to_string(),
                    object: Some(object.to_string()),
                    field,
                    message,
                });
            }
            return;
        }
        match decoded {
            Some(Decoded::Image(registry_sources)) => {
                if name != "cluster" {
                    let reason = "MCO reads only the Image named \"cluster\"".to_string();
                    self.skip(origin, api_version, kind, name, reason);
                    return;
                }
                if let Some(old) = &self.input.image {
                    self.notes.push(replaced(&old.object, origin));
                }
                self.input.image = Some(ImageConfig {
                    object,
                    registry_sources,
                });
            }
            Some(Decoded::Set(entries)) => {
                let set = MirrorSet { object, entries };
                let list = match k {
                    Kind::ImageDigestMirrorSet => &mut self.input.idms,
                    Kind::ImageTagMirrorSet => &mut self.input.itms,
                    _ => &mut self.input.icsp,
                };
                if let Some(pos) = list.iter().position(|s| s.object.name == set.object.name) {
                    let old = list.remove(pos);
                    self.notes.push(replaced(&old.object, origin));
                }
                list.push(set);
            }
            None => {}
        }
    }
}

fn replaced(old: &ObjectRef, origin: &str) -> Note {
    let msg = format!(
        "defined more than once ({} and {origin}); the later definition is used, as `oc apply` would",
        if old.origin.is_empty() { "?" } else { &old.origin }
    );
    Note::warning("duplicate-object", msg).at(old, "")
}

enum Decoded {
    Image(RegistrySources),
    Set(Vec<MirrorEntry>),
}

pub(crate) fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => untag(&t.value),
        v => v,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Sequence(_) => "array",
        Value::Mapping(_) => "object",
        Value::Tagged(_) => "tagged value",
    }
}

fn type_error(want: &str, got: &Value) -> String {
    format!(
        "Invalid value: \"{}\": must be of type {want}",
        type_name(got)
    )
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

const SOURCE_RULE: &str = "should match the CRD pattern: host[:port][/path] (lower-case path, no tag, digest or scheme) or *.domain";
const MIRROR_RULE: &str =
    "should match the CRD pattern: host[:port][/path] (lower-case path, no tag, digest, scheme or wildcard)";
const REGISTRY_RULE: &str =
    "each registry must be a valid hostname[:port][/path] or wildcard *.hostname format without tags or digests";

struct Decoder {
    errors: Vec<(String, String)>,
    notes: Vec<Note>,
    object: String,
}

impl Decoder {
    fn error(&mut self, field: &str, message: String) {
        self.errors.push((field.to_string(), message));
    }

    fn known_fields(&mut self, map: &serde_norway::Mapping, path: &str, known: &[&str]) {
        for key in map.keys() {
            let name = match untag(key) {
                Value::String(s) => s.clone(),
                other => format!("<{} key>", type_name(other)),
            };
            if !known.contains(&name.as_str()) {
                let msg =
                    "unknown field: the API server drops it (kubectl --validate=strict refuses it)";
                self.notes
                    .push(Note::warning("unknown-field", msg).at(&self.object, join(path, &name)));
            }
        }
    }

    fn object<'v>(
        &mut self,
        v: Option<&'v Value>,
        path: &str,
        required: bool,
    ) -> Option<&'v serde_norway::Mapping> {
        match v.map(untag) {
            None | Some(Value::Null) => {
                if required {
                    self.error(path, "Required value".into());
                }
                None
            }
            Some(Value::Mapping(m)) => Some(m),
            Some(other) => {
                self.error(path, type_error("object", other));
                None
            }
        }
    }

    fn string(&mut self, v: Option<&Value>, path: &str, required: bool) -> Option<String> {
        match v.map(untag) {
            None | Some(Value::Null) => {
                if required {
                    self.error(path, "Required value".into());
                }
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.error(path, type_error("string", other));
                None
            }
        }
    }

    /// A list of strings; `None` when absent or null (Go's nil slice).
    fn string_list(&mut self, v: Option<&Value>, path: &str) -> Option<Vec<String>> {
        match v.map(untag) {
            None | Some(Value::Null) => None,
            Some(Value::Sequence(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match untag(item) {
                        Value::String(s) => out.push(s.clone()),
                        other => self.error(&format!("{path}[{i}]"), type_error("string", other)),
                    }
                }
                Some(out)
            }
            Some(other) => {
                self.error(path, type_error("array", other));
                None
            }
        }
    }

    fn no_duplicates(&mut self, items: &[String], path: &str) {
        let mut seen = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            if !seen.insert(item.as_str()) {
                self.error(
                    &format!("{path}[{i}]"),
                    format!("Duplicate value: {}", json_str(item)),
                );
            }
        }
    }

    fn image(&mut self, spec: Option<&Value>, opts: &ParseOptions) -> Option<RegistrySources> {
        let spec = self.object(spec, "spec", true)?;
        self.known_fields(
            spec,
            "spec",
            &[
                "allowedRegistriesForImport",
                "externalRegistryHostnames",
                "additionalTrustedCA",
                "registrySources",
                "imageStreamImportMode",
            ],
        );
        let Some(rs) = self.object(spec.get("registrySources"), "spec.registrySources", false)
        else {
            return Some(RegistrySources::default());
        };
        let p = "spec.registrySources";
        self.known_fields(
            rs,
            p,
            &[
                "insecureRegistries",
                "blockedRegistries",
                "allowedRegistries",
                "containerRuntimeSearchRegistries",
            ],
        );
        let mut out = RegistrySources {
            insecure_registries: self
                .string_list(rs.get("insecureRegistries"), &join(p, "insecureRegistries")),
            blocked_registries: self
                .string_list(rs.get("blockedRegistries"), &join(p, "blockedRegistries")),
            allowed_registries: self
                .string_list(rs.get("allowedRegistries"), &join(p, "allowedRegistries")),
            container_runtime_search_registries: self.string_list(
                rs.get("containerRuntimeSearchRegistries"),
                &join(p, "containerRuntimeSearchRegistries"),
            ),
        };
        if let Some(search) = &out.container_runtime_search_registries {
            let sp = join(p, "containerRuntimeSearchRegistries");
            if search.is_empty() {
                self.error(&sp, "Invalid value: 0: should have at least 1 items".into());
            }
            for (i, s) in search.iter().enumerate() {
                if !patterns::is_openapi_hostname(s) {
                    self.error(
                        &format!("{sp}[{i}]"),
                        format!("Invalid value: {}: must be of format hostname", json_str(s)),
                    );
                }
            }
            self.no_duplicates(search, &sp);
        }
        // openshift/api release-4.18: "has(self.blockedRegistries) ? !has(self.allowedRegistries) : true".
        if opts.version.at_least(18)
            && out.blocked_registries.is_some()
            && out.allowed_registries.is_some()
        {
            self.error(p, "Invalid value: \"object\": Only one of blockedRegistries or allowedRegistries may be set".into());
        }
        // openshift/api release-4.23: per-item CEL rules on the three scope lists.
        if opts.version.at_least(23) {
            for (field, list) in [
                ("insecureRegistries", &out.insecure_registries),
                ("blockedRegistries", &out.blocked_registries),
                ("allowedRegistries", &out.allowed_registries),
            ] {
                let Some(list) = list else { continue };
                let lp = join(p, field);
                if list.len() > 1024 {
                    self.error(
                        &lp,
                        format!("Too many: {}: must have at most 1024 items", list.len()),
                    );
                }
                for (i, s) in list.iter().enumerate() {
                    let ip = format!("{lp}[{i}]");
                    if s.is_empty() {
                        self.error(
                            &ip,
                            "Invalid value: \"\": should be at least 1 chars long".into(),
                        );
                    } else if s.len() > 256 {
                        self.error(&ip, "Too long: may not be more than 256 bytes".into());
                    } else if !patterns::matches_source_pattern(s) {
                        self.error(&ip, format!("Invalid value: \"string\": {REGISTRY_RULE}"));
                    }
                }
            }
        }
        if !self.errors.is_empty() {
            out = RegistrySources::default();
        }
        Some(out)
    }

    fn mirror_set(&mut self, kind: Kind, spec: Option<&Value>) -> Option<Vec<MirrorEntry>> {
        let spec = self.object(spec, "spec", true)?;
        let field = kind.entries_field();
        self.known_fields(spec, "spec", &[field]);
        let lp = join("spec", field);
        let items = match spec.get(field).map(untag) {
            None | Some(Value::Null) => return Some(Vec::new()),
            Some(Value::Sequence(items)) => items,
            Some(other) => {
                self.error(&lp, type_error("array", other));
                return None;
            }
        };
        let icsp = kind == Kind::ImageContentSourcePolicy;
        let mut entries = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let ip = format!("{lp}[{i}]");
            let Some(m) = self.object(Some(item), &ip, true) else {
                continue;
            };
            let known: &[&str] = if icsp {
                &["source", "mirrors"]
            } else {
                &["source", "mirrors", "mirrorSourcePolicy"]
            };
            self.known_fields(m, &ip, known);
            let source = self.string(m.get("source"), &join(&ip, "source"), true);
            let mirrors = self
                .string_list(m.get("mirrors"), &join(&ip, "mirrors"))
                .unwrap_or_default();
            let mut policy = MirrorSourcePolicy::Unset;
            if !icsp {
                let pp = join(&ip, "mirrorSourcePolicy");
                match self.string(m.get("mirrorSourcePolicy"), &pp, false).as_deref() {
                    None => {}
                    Some("NeverContactSource") => policy = MirrorSourcePolicy::NeverContactSource,
                    Some("AllowContactingSource") => policy = MirrorSourcePolicy::AllowContactingSource,
                    Some(other) => self.error(
                        &pp,
                        format!("Unsupported value: {}: supported values: \"NeverContactSource\", \"AllowContactingSource\"", json_str(other)),
                    ),
                }
                if let Some(s) = &source {
                    if !patterns::matches_source_pattern(s) {
                        self.error(
                            &join(&ip, "source"),
                            format!("Invalid value: {}: {SOURCE_RULE}", json_str(s)),
                        );
                    }
                }
                for (j, mirror) in mirrors.iter().enumerate() {
                    if !patterns::matches_mirror_pattern(mirror) {
                        let mp = format!("{ip}.mirrors[{j}]");
                        self.error(
                            &mp,
                            format!("Invalid value: {}: {MIRROR_RULE}", json_str(mirror)),
                        );
                    }
                }
                self.no_duplicates(&mirrors, &join(&ip, "mirrors"));
            }
            if let Some(source) = source {
                entries.push(MirrorEntry {
                    source,
                    mirrors,
                    policy,
                });
            }
        }
        Some(entries)
    }
}

/// A JSON string literal, as the API server quotes values in its messages.
fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}
