//! `mirrorscope-agent scan`: pull records from journal files or directories.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use mirrorscope_core::journal::JournalEntry;

use crate::journal::cursor::{Checkpoint, CheckpointFile};
use crate::journal::source::{JournalSource, SourceEvent};
use crate::journal::{self as js, JournalLocation, Selection, StartAt};
use crate::since::parse_since;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// One JSON array.
    Json,
    /// Aligned columns, for people.
    Table,
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Journal files to read (as written by journald or systemd-journal-remote).
    #[arg(long = "journal-file", value_name = "FILE", num_args = 1.., required_unless_present = "journal_dir", conflicts_with = "journal_dir")]
    pub journal_file: Vec<PathBuf>,
    /// Journal directories to read, e.g. /var/log/journal and /run/log/journal.
    #[arg(long = "journal-dir", value_name = "DIR", num_args = 1..)]
    pub journal_dir: Vec<PathBuf>,
    /// registries.conf in force on the node.
    #[arg(long = "registries-conf", value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,
    /// registries.conf.d drop-in directories, in order.
    #[arg(long = "registries-conf-d", value_name = "DIR")]
    pub registries_conf_d: Vec<PathBuf>,
    /// Only entries received at or after TIME (RFC 3339, `YYYY-MM-DD HH:MM:SS` UTC, or @SECONDS).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "jsonl")]
    pub output: Format,
    /// Keep reading as new entries arrive (directories follow rotation); records are printed as
    /// pulls finish.
    #[arg(long)]
    pub follow: bool,
    /// Resume after the position saved in FILE, and save the position there as reading goes on.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Print the selected journal entries instead of pull records (to see what the agent reads).
    #[arg(long)]
    pub entries: bool,
}

pub fn run(args: ScanArgs) -> Result<()> {
    let location = if args.journal_dir.is_empty() {
        JournalLocation::Files(args.journal_file.clone())
    } else {
        JournalLocation::Directories(args.journal_dir.clone())
    };
    let checkpoint = args.checkpoint.as_ref().map(CheckpointFile::new);
    let saved = match &checkpoint {
        Some(c) => c.load()?,
        None => None,
    };
    let start = match (&saved, &args.since) {
        (
            Some(Checkpoint {
                cursor: Some(c), ..
            }),
            _,
        ) => StartAt::AfterCursor(c.clone()),
        (_, Some(since)) => StartAt::Realtime(parse_since(since)?),
        _ => StartAt::Head,
    };
    if !args.entries {
        bail!("pull records need the journal correlator, which is not merged yet; use --entries");
    }
    if args.output == Format::Table {
        bail!("-o table shows pull records; --entries prints jsonl or json");
    }
    let selection = Selection::default();
    let source =
        JournalSource::spawn(move || js::open(&location, &selection, &start), args.follow)?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut all = Vec::new();
    while let Some(event) = source.recv() {
        match event {
            SourceEvent::Entries(batch) => {
                let last = batch.last().map(|e| e.cursor.clone());
                if args.output == Format::Jsonl {
                    write_entries(&mut out, &batch)?;
                } else {
                    all.extend(batch);
                }
                if args.follow {
                    out.flush().context("writing output")?;
                }
                if let (Some(cp), Some(cursor)) = (&checkpoint, last) {
                    // Saved after the output is flushed: a crash in between repeats entries
                    // rather than losing them.
                    out.flush().context("writing output")?;
                    cp.save(&Checkpoint {
                        cursor: Some(cursor),
                        emitted: Vec::new(),
                    })?;
                }
            }
            SourceEvent::CaughtUp => out.flush().context("writing output")?,
            SourceEvent::Failed(e) => return Err(e.into()),
        }
    }
    if args.output == Format::Json {
        serde_json::to_writer_pretty(&mut out, &all).context("writing output")?;
        writeln!(out).context("writing output")?;
    }
    out.flush().context("writing output")?;
    Ok(())
}

fn write_entries(out: &mut impl Write, batch: &[JournalEntry]) -> Result<()> {
    for e in batch {
        serde_json::to_writer(&mut *out, e).context("writing output")?;
        writeln!(out).context("writing output")?;
    }
    Ok(())
}
