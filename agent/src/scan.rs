//! `mirrorscope-agent scan`: pull records from journal files or directories.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use mirrorscope_core::cimage_version::CImageVersion;
use mirrorscope_core::journal::{JournalEntry, Notice, PullOutcome, PullRecord};
use mirrorscope_core::registries::{load, ConfigLocation};

use crate::flow::RecordFlow;
use crate::journal::cursor::{Checkpoint, CheckpointFile};
use crate::journal::source::{JournalSource, SourceEvent};
use crate::journal::{self as js, JournalLocation, Selection, StartAt};
use crate::order::StartOrder;
use crate::output;
use crate::resume::ResumeTracker;
use mirrorscope_core::time::parse_since;

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
    /// registries.conf in force on the node (default: /etc/containers/registries.conf; must
    /// exist when given). It tells which `Trying to access` lines belong to which pull.
    #[arg(long = "registries-conf", value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,
    /// Drop-in directory, repeatable, read in the order given (default: what CRI-O reads,
    /// /etc/containers/registries.conf.d then /root/.config/containers/registries.conf.d).
    #[arg(long = "registries-conf-d", value_name = "DIR")]
    pub registries_conf_d: Vec<PathBuf>,
    /// Resolve pull sources with the rules of this containers/image release.
    #[arg(long, value_name = "VERSION", default_value = "latest")]
    pub containers_image_version: CImageVersion,
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

impl ScanArgs {
    fn registries(&self) -> ConfigLocation {
        ConfigLocation::system_with_overrides(
            self.registries_conf.as_deref(),
            &self.registries_conf_d,
        )
    }
}

pub fn run(args: ScanArgs) -> Result<()> {
    if args.follow && args.output != Format::Jsonl {
        bail!("--follow prints records as pulls finish: use -o jsonl");
    }
    if args.entries && args.output == Format::Table {
        bail!("-o table shows pull records; --entries prints jsonl or json");
    }
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
    let registries = args.registries();
    // Loaded before the journal is opened: a bad configuration is reported at once.
    let config = if args.entries {
        None
    } else {
        Some(
            load(&registries, args.containers_image_version)
                .context("invalid registries configuration")?,
        )
    };
    let selection = Selection {
        pull_lines_only: !args.entries,
        ..Selection::default()
    };
    let unreadable = check_journal_files(&location);
    let source =
        JournalSource::spawn(move || js::open(&location, &selection, &start), args.follow)?;
    let skipped = source.stats();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match config {
        None => dump_entries(&args, &source, checkpoint.as_ref(), &mut out),
        Some(config) => {
            let mut records = Records {
                flow: RecordFlow::new(
                    Box::new(config),
                    if checkpoint.is_some() {
                        ResumeTracker::new(saved.as_ref())
                    } else {
                        ResumeTracker::inactive()
                    },
                    false,
                ),
                registries,
                version: args.containers_image_version,
                follow: args.follow,
                format: args.output,
                order: StartOrder::default(),
                collected: Vec::new(),
            };
            records.run(&source, checkpoint.as_ref(), &mut out)
        }
    };
    result?;
    let (_, untrusted) = skipped.skipped();
    if untrusted > 0 {
        eprintln!(
            "warning: {untrusted} journal entries claimed to be CRI-O or the kubelet only by SYSLOG_IDENTIFIER (not by unit or root process) and were ignored"
        );
    }
    if unreadable > 0 {
        bail!("{unreadable} journal files could not be read (see above); the output lacks their entries");
    }
    Ok(())
}

/// Says on stderr which journal files sd-journal would skip without a word; returns how many.
fn check_journal_files(location: &JournalLocation) -> usize {
    let files: Vec<PathBuf> = match location {
        JournalLocation::Files(f) => f.clone(),
        JournalLocation::Directories(d) => d.iter().flat_map(|d| js::check::files_in(d)).collect(),
    };
    let mut unreadable = 0;
    for f in &files {
        if let Some(why) = js::check::check_file(f) {
            eprintln!("error: {why}; skipped");
            unreadable += 1;
        }
    }
    unreadable
}

/// How often an idle followed journal moves the correlator's clock.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// The records pipeline: entries → correlator → (resume bookkeeping) → output.
struct Records {
    flow: RecordFlow,
    registries: ConfigLocation,
    version: CImageVersion,
    follow: bool,
    format: Format,
    /// Puts records back into start order (not when following: there they print as pulls
    /// finish, since an old open pull would hold everything back).
    order: StartOrder,
    /// Records kept for `-o json` and `-o table`.
    collected: Vec<PullRecord>,
}

impl Records {
    fn run(
        &mut self,
        source: &JournalSource,
        checkpoint: Option<&CheckpointFile>,
        out: &mut impl Write,
    ) -> Result<()> {
        let mut caught_up = false;
        loop {
            let event = if self.follow && caught_up {
                match source.recv_timeout(IDLE_TICK) {
                    Ok(Some(e)) => e,
                    Ok(None) => {
                        self.tick();
                        let printed = self.flush_fresh(out)?;
                        if let (Some(cp), true) = (checkpoint, printed) {
                            out.flush().context("writing output")?;
                            cp.save(&self.flow.checkpoint())?;
                        }
                        continue;
                    }
                    Err(()) => break,
                }
            } else {
                match source.recv() {
                    Some(e) => e,
                    None => break,
                }
            };
            caught_up = matches!(event, SourceEvent::CaughtUp);
            match event {
                SourceEvent::Entries(batch) => {
                    for entry in &batch {
                        self.push(entry)?;
                    }
                    self.flush_fresh(out)?;
                    if let Some(cp) = checkpoint {
                        // After the output is flushed: a crash in between repeats records
                        // rather than losing them.
                        out.flush().context("writing output")?;
                        cp.save(&self.flow.checkpoint())?;
                    }
                }
                SourceEvent::CaughtUp => out.flush().context("writing output")?,
                SourceEvent::Failed(e) => return Err(e.into()),
            }
        }
        // End of the journal (not following): held-back and still-open pulls.
        self.flow.finish();
        self.flush_fresh(out)?;
        let mut rest = Vec::new();
        self.order.finish(&mut rest);
        self.print(rest, out)?;
        match self.format {
            Format::Jsonl => {}
            Format::Json => output::json(out, &self.collected).context("writing output")?,
            Format::Table => output::table(out, &self.collected).context("writing output")?,
        }
        if let Some(cp) = checkpoint {
            out.flush().context("writing output")?;
            // Pulls still open at the end were printed as in_progress but stay pending: a
            // later run resumes before them and reports them again once they finish.
            cp.save(&self.flow.checkpoint())?;
        }
        out.flush().context("writing output")?;
        let stats = self.flow.stats();
        if stats.malformed > 0 {
            eprintln!(
                "warning: {} pull-related journal lines did not parse and were skipped",
                stats.malformed
            );
        }
        Ok(())
    }

    fn push(&mut self, entry: &JournalEntry) -> Result<()> {
        if !self.follow {
            self.order.observe(entry);
        }
        if let Some(Notice::RegistriesApplied { .. }) = self.flow.push(entry) {
            // CRI-O re-read its configuration: pulls from now on use what is on disk now.
            // When scanning old journals this is the best available approximation.
            match load(&self.registries, self.version) {
                Ok(c) => self.flow.set_resolver(Box::new(c)),
                Err(e) => eprintln!("warning: reloading registries configuration: {e}"),
            }
        }
        Ok(())
    }

    /// While following an idle journal, journal time stands still and the correlator would
    /// hold finished records forever.
    fn tick(&mut self) {
        self.flow.tick();
    }

    /// Prints (or collects) the records that became final; true when something was printed.
    fn flush_fresh(&mut self, out: &mut impl Write) -> Result<bool> {
        let mut ready = Vec::new();
        for r in self.flow.take() {
            if self.follow {
                ready.push(r);
            } else {
                self.order.place(r, &mut ready);
            }
        }
        self.print(ready, out)
    }

    /// Outputs records in the order given, skipping those a previous run already reported.
    /// Records count as reported for the checkpoint only here, when they really are printed.
    fn print(&mut self, records: Vec<PullRecord>, out: &mut impl Write) -> Result<bool> {
        let mut printed = false;
        for r in records {
            // A pull still open at the end is shown, but stays pending for the checkpoint.
            let show = if r.outcome == PullOutcome::InProgress {
                !self.flow.is_suppressed(&r)
            } else {
                self.flow.report(&r)
            };
            if !show {
                continue;
            }
            printed = true;
            if self.format == Format::Jsonl {
                output::jsonl(out, &r).context("writing output")?;
            } else {
                self.collected.push(r);
            }
        }
        Ok(printed)
    }
}

fn dump_entries(
    args: &ScanArgs,
    source: &JournalSource,
    checkpoint: Option<&CheckpointFile>,
    out: &mut impl Write,
) -> Result<()> {
    let mut all = Vec::new();
    while let Some(event) = source.recv() {
        match event {
            SourceEvent::Entries(batch) => {
                let last = batch.last().map(|e| e.cursor.clone());
                if args.output == Format::Jsonl {
                    write_entries(out, &batch)?;
                } else {
                    all.extend(batch);
                }
                if let (Some(cp), Some(cursor)) = (checkpoint, last) {
                    out.flush().context("writing output")?;
                    cp.save(&Checkpoint {
                        cursor: Some(cursor),
                        emitted: Vec::new(),
                        read_to: None,
                    })?;
                }
            }
            SourceEvent::CaughtUp => out.flush().context("writing output")?,
            SourceEvent::Failed(e) => return Err(e.into()),
        }
    }
    if args.output == Format::Json {
        serde_json::to_writer_pretty(&mut *out, &all).context("writing output")?;
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
