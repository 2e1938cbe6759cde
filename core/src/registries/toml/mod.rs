//! A TOML reader for registries.conf whose errors are BurntSushi/toml's (the parser
//! containers/image uses), byte for byte: the same checks in the same order, the same wording,
//! and the same line and "last key" in `toml: line N (last key "K"): …`.
//!
//! The model is BurntSushi/toml v1.2.0 (containers/image 5.22–5.25; Debian's skopeo, so the
//! differential test checks it), with the later releases' changes to errors as [`Release`] lists
//! them. Some of its behaviour looks accidental and is kept because CRI-O shows it: an
//! array-valued key may be assigned twice, a dotted key may reopen a table, and a type error names
//! the line of the *last* definition of that key path.

mod lex;
mod parse;
mod value;

pub(crate) use parse::parse;
pub(crate) use value::{Node, Table};

use crate::cimage_version::CImageVersion;
use crate::go::quote;

/// The BurntSushi/toml release whose error behaviour to reproduce. Releases before 1.2 (vendored
/// by containers/image before 5.22) are not modelled: they get 1.2's texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Release {
    /// 1.2.0 and 1.2.1 (containers/image 5.22–5.25).
    V1_2,
    /// 1.3.2 (5.26–5.31): a UTF-8 byte-order mark is skipped; a `\` ending a line of a `"""`
    /// string is no longer an error when only whitespace follows it.
    V1_3,
    /// 1.4.0 (5.32–5.34): Go types printed with `any`; a literal U+FFFD is text; bad datetimes
    /// say `invalid datetime: "…"`, and one missing a leading zero is bad.
    V1_4,
    /// 1.5.0 (5.35–5.39): a newline where a key separator or value was expected, and an end of
    /// input not after a newline, are reported on the line they end.
    V1_5,
}

impl Release {
    pub(crate) fn of(version: CImageVersion) -> Self {
        if version.at_least(CImageVersion::V5_35) {
            Release::V1_5
        } else if version.at_least(CImageVersion::new(5, 32)) {
            Release::V1_4
        } else if version.at_least(CImageVersion::V5_26) {
            Release::V1_3
        } else {
            Release::V1_2
        }
    }
}

/// A BurntSushi/toml error, as `Error()` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlError {
    /// `None` for a decoding error on a key with no recorded position.
    pub line: Option<usize>,
    /// The key being read or decoded (`registry.location`), empty when none.
    pub last_key: String,
    pub message: String,
}

impl std::fmt::Display for TomlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("toml: ")?;
        match (self.line, self.last_key.is_empty()) {
            (Some(l), true) => write!(f, "line {l}: ")?,
            (Some(l), false) => write!(f, "line {l} (last key {}): ", quote(&self.last_key))?,
            (None, false) => write!(f, "(last key {}): ", quote(&self.last_key))?,
            (None, true) => {}
        }
        f.write_str(&self.message)
    }
}

/// `Key.String()`: parts joined with dots, each quoted when it is not a bare key.
pub(crate) fn key_string(parts: &[String]) -> String {
    parts
        .iter()
        .map(|p| maybe_quoted(p))
        .collect::<Vec<_>>()
        .join(".")
}

fn maybe_quoted(part: &str) -> String {
    if part.is_empty() {
        return "\"\"".to_owned();
    }
    if part.chars().all(lex::is_bare_key_char) {
        return part.to_owned();
    }
    let mut out = String::with_capacity(part.len() + 2);
    out.push('"');
    for c in part.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c <= '\u{1f}' || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
