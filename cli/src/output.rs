//! `-o table|wide|json|yaml` and a plain-text table printer.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

static NO_HEADERS: AtomicBool = AtomicBool::new(false);

/// `--no-headers`: tables print their rows only.
pub fn set_no_headers(on: bool) {
    NO_HEADERS.store(on, Ordering::Relaxed);
}

/// Writes to stdout. A closed pipe (`... | head`) comes back as an error that [`is_broken_pipe`]
/// recognises, so the CLI ends quietly instead of panicking as `println!` does.
pub fn write_out(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// `println!` that fails instead of panicking on a closed stdout.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_out(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that fails instead of panicking on a closed stdout.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_out(&format!($($arg)*))
    };
}

/// Whether an error is stdout's reader going away.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Control characters (ANSI escapes, newlines, carriage returns) from reports shown as `\u{..}`
/// escapes, so a node name or an error text cannot move the cursor or forge table rows.
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(|c| c.is_control() && c != '\n') {
        return s.to_string();
    }
    s.chars()
        .map(|c| match c {
            '\n' => "\n".to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A single-line cell: every control character, newlines included, escaped.
pub fn cell(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

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
            Format::Json => crate::outln!("{}", serde_json::to_string_pretty(v)?)?,
            Format::Yaml => crate::out!("{}", serde_norway::to_string(v)?)?,
            Format::Table | Format::Wide => return Ok(false),
        }
        Ok(true)
    }
}

/// The terminal's width when stdout is one (tables are fitted to it), else `None`.
pub fn terminal_width() -> Option<usize> {
    let (terminal_size::Width(w), _) = terminal_size::terminal_size_of(std::io::stdout())?;
    Some(usize::from(w))
}

/// `repo@sha256:<64 hex>` shown as `repo@sha256:<12 hex>…` (every digest in the text).
pub fn short_digests(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("sha256:") {
        let (head, tail) = rest.split_at(i + "sha256:".len());
        out.push_str(head);
        let hex = tail.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex == 64 {
            out.push_str(&tail[..12]);
            out.push('…');
        } else {
            out.push_str(&tail[..hex]);
        }
        rest = &tail[hex..];
    }
    out.push_str(rest);
    out
}

/// [`table`] that fits `width` columns: the widest column is elided (`…`) until the table fits
/// or every column is down to its header's width, as `oc get` keeps to the terminal.
pub fn table_fit(header: &[&str], rows: &[Vec<String>], width: Option<usize>) -> String {
    let Some(width) = width else {
        return table(header, rows);
    };
    let mut rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    let n = header.len();
    let col_width = |rows: &[Vec<String>], i: usize| {
        rows.iter()
            .filter_map(|r| r.get(i))
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0)
            .max(header[i].chars().count())
    };
    loop {
        let widths: Vec<usize> = (0..n).map(|i| col_width(&rows, i)).collect();
        let total: usize = widths.iter().sum::<usize>() + 2 * n.saturating_sub(1);
        if total <= width {
            break;
        }
        let Some((widest, w)) = widths
            .iter()
            .enumerate()
            .filter(|(i, w)| **w > header[*i].chars().count().max(8))
            .max_by_key(|(_, w)| **w)
            .map(|(i, w)| (i, *w))
        else {
            break;
        };
        let target = w
            .saturating_sub(total - width)
            .max(header[widest].chars().count().max(8));
        for r in &mut rows {
            if let Some(c) = r.get_mut(widest) {
                if c.chars().count() > target {
                    let kept: String = c.chars().take(target.saturating_sub(1)).collect();
                    *c = format!("{kept}…");
                }
            }
        }
    }
    table(header, &rows)
}

/// Left-aligned columns separated by two spaces (the last column is not padded); cells are
/// made single-line with their control characters escaped.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    let rows = &rows;
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
    if !NO_HEADERS.load(Ordering::Relaxed) {
        line(header.to_vec());
    }
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
    mirrorscope_core::api::pool_label(p).to_string()
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

    #[test]
    fn digests_shorten_and_tables_fit() {
        let d = format!("quay.io/ns/app@sha256:{}", "ab".repeat(32));
        assert_eq!(
            super::short_digests(&d),
            "quay.io/ns/app@sha256:abababababab…"
        );
        assert_eq!(super::short_digests("sha256:xyz"), "sha256:xyz");
        let rows = vec![vec!["a".repeat(100), "b".into()]];
        let t = super::table_fit(&["IMAGE", "NODE"], &rows, Some(40));
        assert!(t.lines().all(|l| l.chars().count() <= 40), "{t}");
        assert!(t.contains('…'));
    }

    #[test]
    fn cells_cannot_forge_rows_or_move_the_cursor() {
        let t = super::table(&["N"], &[vec!["a\nb\u{1b}[2J".into()]]);
        assert_eq!(t, "N\na\\nb\\u{1b}[2J\n");
        assert_eq!(super::escape_controls("x\u{1b}[31my"), "x\\u{1b}[31my");
    }
}
