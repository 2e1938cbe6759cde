//! `-o table|wide|json|yaml` and a plain-text table printer.

use std::fmt::Write as _;

use serde::Serialize;

/// Output formats of the collector-backed subcommands.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Table,
    Wide,
    Json,
    Yaml,
}

impl Format {
    pub fn wide(self) -> bool {
        self == Format::Wide
    }

    /// Prints `v` as JSON or YAML; returns false for the table formats.
    pub fn print_data<T: Serialize>(self, v: &T) -> anyhow::Result<bool> {
        match self {
            Format::Json => println!("{}", serde_json::to_string_pretty(v)?),
            Format::Yaml => print!("{}", serde_yaml::to_string(v)?),
            Format::Table | Format::Wide => return Ok(false),
        }
        Ok(true)
    }
}

/// Left-aligned columns separated by two spaces (the last column is not padded).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let pad = width[i].saturating_sub(c.chars().count());
                let _ = write!(l, "{c}{}  ", " ".repeat(pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// The first 12 hex digits of a `sha256:` hash.
pub fn short_sha(s: Option<&str>) -> String {
    match s {
        None => "-".into(),
        Some(s) => {
            let hex = s.strip_prefix("sha256:").unwrap_or(s);
            hex.get(..12).unwrap_or(hex).to_string()
        }
    }
}

pub fn pool_name(p: &str) -> String {
    if p.is_empty() {
        "-".into()
    } else {
        p.to_string()
    }
}

/// Indents the continuation lines of a multi-line message (containers/image's TOML errors span
/// two lines) so it stays under its list bullet.
pub fn indent_continuation(s: &str) -> String {
    s.replace('\n', "\n      ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligned() {
        let t = super::table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }
}
