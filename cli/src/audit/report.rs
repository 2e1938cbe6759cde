//! How an audit is shown: a table and each finding with its fix, or one JSON/YAML document.

use std::fmt::Write as _;

use mirrorscope_core::audit::{AuditEntry, Summary};
use serde::Serialize;

use super::{Args, Audit};
use crate::output::{escape_controls, table_fit, terminal_width, Format};

/// One element of the `-o json|yaml` array: an image under one configuration.
#[derive(Serialize)]
struct Element<'a> {
    #[serde(flatten)]
    entry: &'a AuditEntry,
    /// When the collector's configurations are audited: the nodes that share this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    nodes: Option<&'a [String]>,
}

pub fn print(args: &Args, audits: &[Audit]) -> anyhow::Result<()> {
    let doc: Vec<Element> = audits
        .iter()
        .flat_map(|a| {
            let nodes = a.configuration.about.nodes();
            a.entries.iter().map(move |entry| Element { entry, nodes })
        })
        .collect();
    if args.output.print_data(&doc)? {
        return Ok(());
    }
    let mut s = String::new();
    for (i, a) in audits.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(&text(a, args.output, args.probe));
    }
    crate::out!("{s}")?;
    Ok(())
}

fn text(a: &Audit, format: Format, probed: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Under {}:",
        escape_controls(&a.configuration.about.to_string())
    );
    let wide = format == Format::Wide;
    let mut header = vec!["IMAGE", "VERDICT", "SERVED BY", "FINDING"];
    if wide {
        header.extend(["USED BY", "SOURCES"]);
    }
    let rows: Vec<Vec<String>> = a
        .entries
        .iter()
        .map(|e| {
            let mut row = vec![
                e.image.clone(),
                e.verdict.as_str().to_string(),
                e.served_by.clone().unwrap_or_else(|| "-".into()),
                match e.findings.as_slice() {
                    [] => "-".into(),
                    [f] => f.code.as_str().to_string(),
                    [f, rest @ ..] => format!("{} (+{})", f.code.as_str(), rest.len()),
                },
            ];
            if wide {
                row.push(e.users_in_short().unwrap_or_else(|| "-".into()));
                row.push(sources(e));
            }
            row
        })
        .collect();
    let width = if wide { None } else { terminal_width() };
    s.push_str(&table_fit(&header, &rows, width));
    for e in a.entries.iter().filter(|e| !e.findings.is_empty()) {
        let _ = writeln!(
            s,
            "\n{}  (used by {})",
            e.image,
            e.users_in_short().unwrap_or_else(|| "-".into())
        );
        for f in &e.findings {
            let _ = writeln!(s, "  {}: {}", f.code.as_str(), f.message);
            let _ = writeln!(s, "    fix: {}", f.fix);
        }
    }
    let summary = Summary::of(&a.entries);
    let _ = writeln!(s, "\n{summary}");
    if !probed && summary.unknown > 0 {
        let _ = writeln!(
            s,
            "(without --probe only the configuration is judged: {} mirrored image{} stay unknown until the registries are asked)",
            summary.unknown,
            if summary.unknown == 1 { "" } else { "s" }
        );
    }
    // Inventory and registry answers are not ours: no terminal escape gets through.
    escape_controls(&s)
}

fn sources(e: &AuditEntry) -> String {
    e.sources
        .iter()
        .map(|s| {
            let state = if s.blocked {
                "blocked"
            } else {
                s.probe.as_ref().map_or("not probed", |p| p.status.as_str())
            };
            format!("{} ({state})", s.reference)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
