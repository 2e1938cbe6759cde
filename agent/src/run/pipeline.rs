//! The journal pipeline, on its own thread: journal follower → correlator → resume bookkeeping
//! → shared state (ring, counters, outbox), with the checkpoint and outbox saved together.
//!
//! A thread rather than a task: the follower hands batches over a blocking channel and the
//! correlator is CPU work per entry; neither belongs on the single-threaded runtime.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirrorscope_core::journal::{
    CorrelatorStats, JournalEntry, Notice, PullOutcome, SourceResolver, StaticResolver,
};

use crate::flow::RecordFlow;
use mirrorscope_core::registries::EffectiveConfig;

use crate::journal::cursor::Checkpoint;
use crate::journal::source::{JournalSource, SourceEvent, SourceStats};
use crate::journal::{self as js, JournalLocation, Selection, StartAt};
use crate::resume::ResumeTracker;

use super::persist::{Saved, StateFile};
use super::state::Shared;

/// How often an idle journal moves the correlator's clock, and the longest a stop waits.
const IDLE_TICK: Duration = Duration::from_millis(250);
/// The state file is written at most this often while entries flow (and on stop).
const SAVE_EVERY: Duration = Duration::from_secs(1);
const REOPEN_AFTER: Duration = Duration::from_secs(5);
/// Journal messages are cut to this size before the correlator sees them (records cut their
/// fields to 16 KiB anyway).
const MAX_MESSAGE: usize = 64 * 1024;
/// How often the followed journal directories are checked for removal or replacement.
const CHECK_DIRS_EVERY: Duration = Duration::from_secs(1);

/// A directory's identity: device and inode.
type DirId = (u64, u64);

fn dir_id(dir: &std::path::Path) -> Option<DirId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

/// Why following must start over: a directory vanished or another one took its place.
fn changed_dir(dirs: &[PathBuf], opened: &[Option<DirId>]) -> Option<String> {
    dirs.iter()
        .zip(opened)
        .find_map(|(d, was)| match dir_id(d) {
            None => Some(format!("journal directory {} vanished", d.display())),
            now if now != *was => Some(format!("journal directory {} was replaced", d.display())),
            _ => None,
        })
}

/// Pull sources from the configuration CRI-O is believed to use.
struct ConfigResolver(Arc<EffectiveConfig>);

impl SourceResolver for ConfigResolver {
    fn pull_sources(&self, image: &str) -> Option<Vec<String>> {
        SourceResolver::pull_sources(self.0.as_ref(), image)
    }
}

fn resolver(shared: &Shared) -> Box<dyn SourceResolver + Send> {
    match shared.last_valid() {
        Some(c) => Box::new(ConfigResolver(c)),
        None => Box::new(StaticResolver::new()),
    }
}

pub struct Pipeline {
    pub dirs: Vec<PathBuf>,
    /// Where to start without a checkpoint (µs since the epoch).
    pub since_usec: u64,
    pub state_file: Option<StateFile>,
    pub saved: Option<Checkpoint>,
}

/// Runs until `stop`; the state file is saved before returning.
pub fn run(p: Pipeline, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    if p.dirs.is_empty() {
        tracing::error!("no journal directory to read; no pull records will be reported");
        shared.metrics.error("journal", "no_directory");
        shared.set_journal(false, None, Some("no journal directory to read".into()));
        // Stays up until the stop: a thread that ends early is taken for a crash.
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(IDLE_TICK);
        }
        return;
    }
    let mut saved = p.saved.clone();
    let mut last_error = None;
    let mut unreadable = std::collections::HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        report_unreadable_files(&p.dirs, &shared, &mut unreadable);
        let start = match saved.as_ref().and_then(|c| c.cursor.clone()) {
            Some(c) => StartAt::AfterCursor(c),
            None => StartAt::Realtime(p.since_usec),
        };
        let mut run = Run {
            flow: RecordFlow::new(resolver(&shared), ResumeTracker::new(saved.as_ref()), true),
            shared: Arc::clone(&shared),
            state_file: p.state_file.as_ref(),
            last_cursor: None,
            dirty: false,
            last_save: Instant::now(),
            counted: CorrelatorStats::default(),
            counted_untrusted: 0,
            counted_damaged: 0,
            skipped: None,
            save_failing: false,
        };
        let outcome = run.follow(&p.dirs, start, &stop);
        saved = Some(run.flow.checkpoint());
        match outcome {
            Ok(()) => return,
            Err(e) => {
                // Once per distinct error: a missing directory must not fill the log.
                shared.metrics.error("journal", error_kind(&e));
                if last_error.as_ref() != Some(&e) {
                    tracing::error!("journal: {e}; reopening every {}s", REOPEN_AFTER.as_secs());
                    last_error = Some(e.clone());
                }
                shared.set_journal(false, None, Some(e));
                let until = Instant::now() + REOPEN_AFTER;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(IDLE_TICK);
                }
            }
        }
    }
}

struct Run<'a> {
    flow: RecordFlow,
    shared: Arc<Shared>,
    state_file: Option<&'a StateFile>,
    last_cursor: Option<String>,
    dirty: bool,
    last_save: Instant,
    /// Correlator statistics already counted in the metrics.
    counted: CorrelatorStats,
    counted_untrusted: u64,
    counted_damaged: u64,
    /// The reader's skip counters (set once it runs).
    skipped: Option<Arc<SourceStats>>,
    /// The last save failed (logged once until one succeeds).
    save_failing: bool,
}

impl Run<'_> {
    /// Follows until `stop` (Ok, after a final save) or a journal error (Err).
    fn follow(
        &mut self,
        dirs: &[PathBuf],
        start: StartAt,
        stop: &AtomicBool,
    ) -> Result<(), String> {
        // sd-journal keeps reading the deleted files of a removed directory and never notices
        // a new one in its place: the directories are checked here.
        let identities: Vec<Option<DirId>> = dirs.iter().map(|d| dir_id(d)).collect();
        let mut last_check = Instant::now();
        let location = JournalLocation::Directories(dirs.to_vec());
        let selection = Selection {
            pull_lines_only: true,
            max_message: Some(MAX_MESSAGE),
            ..Selection::default()
        };
        let source = JournalSource::spawn(move || js::open(&location, &selection, &start), true)
            .map_err(|e| chain(&e))?;
        self.skipped = Some(source.stats());
        loop {
            if stop.load(Ordering::Relaxed) {
                self.save();
                return Ok(());
            }
            match source.recv_timeout(IDLE_TICK) {
                Ok(Some(SourceEvent::Entries(batch))) => {
                    for entry in &batch {
                        self.push(entry);
                    }
                    if let Some(last) = batch.last() {
                        self.last_cursor = Some(last.cursor.clone());
                    }
                    self.deliver();
                    self.dirty = true;
                }
                Ok(Some(SourceEvent::CaughtUp)) => {
                    self.shared
                        .set_journal(true, self.last_cursor.clone(), None);
                }
                Ok(Some(SourceEvent::Failed(e))) => {
                    self.save();
                    return Err(chain(&e));
                }
                Ok(None) => {
                    self.tick();
                    self.deliver();
                }
                Err(()) => {
                    self.save();
                    return Err("journal reader stopped".into());
                }
            }
            if self.last_save.elapsed() >= SAVE_EVERY && (self.dirty || self.shared.acked_unsaved())
            {
                self.save();
            }
            if last_check.elapsed() >= CHECK_DIRS_EVERY {
                last_check = Instant::now();
                if let Some(e) = changed_dir(dirs, &identities) {
                    self.save();
                    return Err(e);
                }
            }
        }
    }

    fn push(&mut self, entry: &JournalEntry) {
        match self.flow.push(entry) {
            Some(Notice::RegistriesApplied { at_usec }) => {
                // CRI-O re-read its configuration: pulls from now on resolve with what the agent
                // last read as valid (CRI-O refuses an invalid file the same way).
                self.flow.set_resolver(resolver(&self.shared));
                self.shared.crio_applied(at_usec);
            }
            Some(Notice::RegistriesReloadFailed { at_usec, error }) => {
                self.shared.crio_reload_failed(at_usec, error);
            }
            Some(Notice::CrioStarted { .. }) | None => {}
        }
    }

    fn tick(&mut self) {
        self.flow.tick();
    }

    fn deliver(&mut self) {
        let fresh = self.flow.take();
        if fresh.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(fresh.len());
        for r in fresh {
            // An amendment's pull was reported with its first revision.
            if r.outcome != PullOutcome::InProgress && (r.revision > 0 || self.flow.report(&r)) {
                out.push(r);
            }
        }
        if !out.is_empty() {
            self.dirty = true;
            self.shared.add_records(out);
        }
    }

    fn save(&mut self) {
        self.last_save = Instant::now();
        self.count_stats();
        let following = self.shared.lock().journal.following;
        self.shared
            .set_journal(following, self.last_cursor.clone(), None);
        let Some(file) = self.state_file else {
            return;
        };
        let checkpoint = self.flow.checkpoint();
        let outbox = self.shared.outbox_to_save();
        match file.save(&Saved { checkpoint, outbox }) {
            Ok(()) => {
                self.dirty = false;
                if std::mem::take(&mut self.save_failing) {
                    tracing::info!("state file saved again");
                }
            }
            Err(e) => {
                self.shared.metrics.error("journal", "state_save");
                if !self.save_failing {
                    tracing::error!("{e}; retrying every {}s", SAVE_EVERY.as_secs());
                    self.save_failing = true;
                }
            }
        }
    }

    /// Journal lines the correlator could not use, into the error counters (logged the first
    /// time each kind appears).
    fn count_stats(&mut self) {
        let now = self.flow.stats();
        let metrics = &self.shared.metrics;
        for (kind, was, is) in [
            ("malformed_line", self.counted.malformed, now.malformed),
            ("unattached_line", self.counted.unattached, now.unattached),
        ] {
            if is > was {
                if was == 0 {
                    tracing::warn!(
                        "journal: {} pull-related lines skipped ({kind}; counted in mirrorscope_errors_total)",
                        is - was
                    );
                }
                metrics.errors_by(is - was, "journal", kind);
            }
        }
        self.counted = now;
        if let Some(stats) = &self.skipped {
            let (damaged, untrusted) = stats.skipped();
            for (kind, was, is, what) in [
                (
                    "damaged_entry",
                    &mut self.counted_damaged,
                    damaged,
                    "entries had unreadable fields; read what was readable",
                ),
                (
                    "untrusted_entry",
                    &mut self.counted_untrusted,
                    untrusted,
                    "entries claimed to be CRI-O or the kubelet only by fields their sender chose (SYSLOG_IDENTIFIER), not by unit or root process; ignored",
                ),
            ] {
                if is > *was {
                    if *was == 0 {
                        tracing::warn!("journal: {} {what}", is - *was);
                    }
                    metrics.errors_by(is - *was, "journal", kind);
                    *was = is;
                }
            }
        }
    }
}

/// Journal files sd-journal would skip without a word: logged (once each) and counted.
fn report_unreadable_files(
    dirs: &[PathBuf],
    shared: &Shared,
    reported: &mut std::collections::HashSet<PathBuf>,
) {
    for f in dirs.iter().flat_map(|d| js::check::files_in(d)) {
        if reported.contains(&f) {
            continue;
        }
        if let Some(why) = js::check::check_file(&f) {
            tracing::error!("journal: {why}; its entries cannot be read");
            shared.metrics.error("journal", "unreadable_file");
            reported.insert(f);
        }
    }
}

fn error_kind(e: &str) -> &'static str {
    if e.contains(" vanished") {
        "directory_vanished"
    } else if e.contains(" was replaced") {
        "directory_replaced"
    } else if e.starts_with("opening journal") {
        "open"
    } else {
        "read"
    }
}

/// An error with its causes, `outer: inner: …`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
