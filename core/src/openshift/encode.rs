//! Byte-exact encodings: BurntSushi/toml of `sysregistriesv2.V2RegistriesConf` (as vendored by
//! each MCO release) and Go `encoding/json` of the containers-policy document.

use super::edit::Registry;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The search list of MCO's registries.conf template (never changed by MCO).
pub(crate) const TEMPLATE_SEARCH: [&str; 2] = ["registry.access.redhat.com", "docker.io"];

/// BurntSushi's `dblQuotedReplacer` + quotes.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Encodes a `V2RegistriesConf` holding `search` and `regs`. `als_helper` adds the
/// `additional-layer-store-auth-helper` key of c/image ≥ 5.32 (MCO ≥ 4.19).
/// `search == None` is a nil list, which BurntSushi omits.
pub(crate) fn registries_toml(
    search: Option<&[String]>,
    regs: &[Registry],
    als_helper: bool,
) -> String {
    let mut out = String::new();
    if let Some(search) = search {
        let list: Vec<String> = search.iter().map(|s| toml_str(s)).collect();
        let _ = writeln!(out, "unqualified-search-registries = [{}]", list.join(", "));
    }
    out.push_str("short-name-mode = \"\"\n");
    if als_helper {
        out.push_str("additional-layer-store-auth-helper = \"\"\n");
    }
    for reg in regs {
        out.push_str("\n[[registry]]\n");
        let _ = writeln!(out, "  prefix = {}", toml_str(&reg.prefix));
        if !reg.location.is_empty() {
            let _ = writeln!(out, "  location = {}", toml_str(&reg.location));
        }
        if reg.insecure {
            out.push_str("  insecure = true\n");
        }
        if reg.blocked {
            out.push_str("  blocked = true\n");
        }
        if reg.mirror_by_digest_only {
            out.push_str("  mirror-by-digest-only = true\n");
        }
        for m in &reg.mirrors {
            out.push_str("\n  [[registry.mirror]]\n");
            if !m.location.is_empty() {
                let _ = writeln!(out, "    location = {}", toml_str(&m.location));
            }
            if m.insecure {
                out.push_str("    insecure = true\n");
            }
            if !m.pull_from_mirror.is_empty() {
                let _ = writeln!(
                    out,
                    "    pull-from-mirror = {}",
                    toml_str(m.pull_from_mirror)
                );
            }
        }
    }
    out
}

/// A policy requirement MCO writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Requirement {
    InsecureAcceptAnything,
    Reject,
}

impl Requirement {
    fn type_name(self) -> &'static str {
        match self {
            Requirement::InsecureAcceptAnything => "insecureAcceptAnything",
            Requirement::Reject => "reject",
        }
    }
}

/// `signature.Policy`, with Go's sorted map keys.
pub(crate) struct Policy {
    pub default: Vec<Requirement>,
    pub transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

impl Policy {
    /// MCO's `/etc/containers/policy.json` template.
    pub(crate) fn template() -> Policy {
        let mut daemon = BTreeMap::new();
        daemon.insert(String::new(), vec![Requirement::InsecureAcceptAnything]);
        let mut transports = BTreeMap::new();
        transports.insert("docker-daemon".to_string(), daemon);
        Policy {
            default: vec![Requirement::InsecureAcceptAnything],
            transports,
        }
    }

    /// `json.Marshal` (`indent == false`) or `json.MarshalIndent(…, "", "  ")`.
    pub(crate) fn to_json(&self, indent: bool) -> String {
        let mut w = JsonWriter {
            out: String::new(),
            indent,
            depth: 0,
        };
        w.open('{');
        w.key("default", true);
        w.requirements(&self.default);
        w.key("transports", false);
        w.open('{');
        let mut first = true;
        for (transport, scopes) in &self.transports {
            w.key(transport, first);
            first = false;
            w.open('{');
            let mut first_scope = true;
            for (scope, reqs) in scopes {
                w.key(scope, first_scope);
                first_scope = false;
                w.requirements(reqs);
            }
            w.close('}', scopes.is_empty());
        }
        w.close('}', self.transports.is_empty());
        w.close('}', false);
        w.out
    }
}

struct JsonWriter {
    out: String,
    indent: bool,
    depth: usize,
}

impl JsonWriter {
    fn newline(&mut self) {
        if self.indent {
            self.out.push('\n');
            for _ in 0..self.depth {
                self.out.push_str("  ");
            }
        }
    }

    fn open(&mut self, c: char) {
        self.out.push(c);
        self.depth += 1;
    }

    fn close(&mut self, c: char, empty: bool) {
        self.depth -= 1;
        if !empty {
            self.newline();
        }
        self.out.push(c);
    }

    fn key(&mut self, k: &str, first: bool) {
        if !first {
            self.out.push(',');
        }
        self.newline();
        self.out.push_str(&go_json_str(k));
        self.out.push(':');
        if self.indent {
            self.out.push(' ');
        }
    }

    fn requirements(&mut self, reqs: &[Requirement]) {
        self.open('[');
        for (i, r) in reqs.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.newline();
            self.open('{');
            self.key("type", true);
            self.out.push_str(&go_json_str(r.type_name()));
            self.close('}', false);
        }
        self.close(']', reqs.is_empty());
    }
}

/// Go `encoding/json` string encoding (HTML-safe escaping on, as `json.Marshal` does).
fn go_json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_policy_round_trips_as_go_prints_it() {
        let p = Policy::template();
        assert_eq!(
            p.to_json(false),
            r#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker-daemon":{"":[{"type":"insecureAcceptAnything"}]}}}"#
        );
        assert_eq!(
            p.to_json(true),
            "{\n  \"default\": [\n    {\n      \"type\": \"insecureAcceptAnything\"\n    }\n  ],\n  \"transports\": {\n    \"docker-daemon\": {\n      \"\": [\n        {\n          \"type\": \"insecureAcceptAnything\"\n        }\n      ]\n    }\n  }\n}"
        );
    }

    #[test]
    fn empty_scope_map_is_braces() {
        let mut p = Policy::template();
        p.transports.insert("atomic".into(), BTreeMap::new());
        assert!(p.to_json(true).contains("\"atomic\": {},"));
        assert!(p.to_json(false).contains("\"atomic\":{},"));
    }

    #[test]
    fn toml_strings() {
        assert_eq!(
            toml_str("a\"b\\\u{1}\u{7f}é"),
            "\"a\\\"b\\\\\\u0001\\u007fé\""
        );
    }
}
