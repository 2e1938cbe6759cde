//! Printing pull records: JSON lines, one JSON array, or a table for people.

use std::io::{self, Write};

use mirrorscope_core::journal::{AttemptOutcome, PullOutcome, PullRecord};

pub fn jsonl(out: &mut impl Write, r: &PullRecord) -> io::Result<()> {
    serde_json::to_writer(&mut *out, r)?;
    writeln!(out)
}

pub fn json(out: &mut impl Write, records: &[PullRecord]) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, records)?;
    writeln!(out)
}

fn outcome(o: PullOutcome) -> &'static str {
    match o {
        PullOutcome::Pulled => "pulled",
        PullOutcome::Failed => "failed",
        PullOutcome::InProgress => "in_progress",
        PullOutcome::Abandoned => "abandoned",
    }
}

/// How the pull was served: `mirror`, `source`, `fallback` (source after a mirror failed), or
/// `-` when nothing served it.
fn via(r: &PullRecord) -> &'static str {
    match (&r.served_by, r.via_mirror, r.fallback) {
        (None, _, _) => "-",
        (Some(_), true, _) => "mirror",
        (Some(_), false, true) => "fallback",
        (Some(_), false, false) => "source",
    }
}

/// Each location tried, in order: `ref ✓` when it served, `ref ✗class×tries` when it failed.
fn attempts(r: &PullRecord) -> String {
    r.attempts
        .iter()
        .map(|a| {
            let mark = match a.outcome {
                AttemptOutcome::Served => "served".to_owned(),
                AttemptOutcome::Pending => "pending".to_owned(),
                AttemptOutcome::Failed => match a.error_class {
                    Some(c) => format!(
                        "failed:{}",
                        serde_json::to_value(c)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default()
                    ),
                    None => "failed".to_owned(),
                },
            };
            if a.tries > 1 {
                format!("{} ({mark}, {} tries)", a.reference, a.tries)
            } else {
                format!("{} ({mark})", a.reference)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn table(out: &mut impl Write, records: &[PullRecord]) -> io::Result<()> {
    let header = [
        "STARTED",
        "OUTCOME",
        "VIA",
        "IMAGE",
        "SERVED BY",
        "POD",
        "ATTEMPTS",
    ];
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|r| {
            [
                r.started_at.clone().unwrap_or_else(|| "-".into()),
                outcome(r.outcome).to_owned(),
                via(r).to_owned(),
                r.image.clone(),
                r.served_by.clone().unwrap_or_else(|| "-".into()),
                r.pod.clone().unwrap_or_else(|| "-".into()),
                attempts(r),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[&str]| -> io::Result<()> {
        let last = cells.len().saturating_sub(1);
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == last {
                writeln!(out, "{cell}")?;
            } else {
                write!(out, "{cell:<w$}  ")?;
            }
        }
        Ok(())
    };
    line(out, &header)?;
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(out, &cells)?;
    }
    Ok(())
}
