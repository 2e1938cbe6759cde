//! [`JournalReader`] over libsystemd's sd-journal (the `systemd` crate).

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mirrorscope_core::journal::JournalEntry;
use systemd::journal::{Journal, JournalWaitResult, OpenDirectoryOptions, OpenFilesOptions};

use super::{JournalError, JournalReader, Selection, Sender, StartAt, WaitOutcome};

/// One sd-journal handle with the CRI-O/kubelet matches applied.
pub struct SdJournal {
    journal: Journal,
    what: String,
    selection: Selection,
    /// Cursor whose entry was already processed: skipped if it is the first entry read.
    skip_first: Option<String>,
    damaged: u64,
    untrusted: u64,
    /// Entries read since the mapped journal pages were last released.
    since_release: u32,
    /// Processes (`_PID`) whose last entry passed on was cut at journald's LineMax: their next
    /// entry is the rest of that line, whatever it starts with, so the pull-line filter keeps it.
    cut_streams: Vec<Option<u32>>,
}

/// Bound on [`SdJournal::cut_streams`]; the core's joiner has the same kind of bound.
const MAX_CUT_STREAMS: usize = 16;

/// Entries between two checks of the resident journal pages.
const RELEASE_EVERY: u32 = 2 * 1024;

impl SdJournal {
    /// Reads exactly these journal files (no new files are picked up).
    pub fn open_files(
        files: &[PathBuf],
        selection: &Selection,
        start: &StartAt,
    ) -> Result<Self, JournalError> {
        let what = files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        for f in files {
            // sd_journal_open_files silently ignores some unreadable files; say which one instead.
            if let Err(source) = std::fs::File::open(f) {
                return Err(JournalError::Open {
                    what: f.display().to_string(),
                    source,
                });
            }
        }
        let paths = files
            .iter()
            .map(|f| path_str(f))
            .collect::<Result<Vec<_>, _>>()?;
        let journal = OpenFilesOptions::default()
            .open_files(paths.iter().map(String::as_str))
            .map_err(|e| JournalError::Open {
                what: what.clone(),
                source: e.into(),
            })?;
        Self::prepare(journal, what, selection, start)
    }

    /// Reads every journal file in `dir` (and its machine-id subdirectories), following new
    /// files as journald rotates them.
    pub fn open_directory(
        dir: &Path,
        selection: &Selection,
        start: &StartAt,
    ) -> Result<Self, JournalError> {
        let what = dir.display().to_string();
        if let Err(source) = std::fs::read_dir(dir) {
            return Err(JournalError::Open { what, source });
        }
        let journal = OpenDirectoryOptions::default()
            .open_directory(path_str(dir)?.as_str())
            .map_err(|e| JournalError::Open {
                what: what.clone(),
                source: e.into(),
            })?;
        Self::prepare(journal, what, selection, start)
    }

    fn prepare(
        mut journal: Journal,
        what: String,
        selection: &Selection,
        start: &StartAt,
    ) -> Result<Self, JournalError> {
        let err = |op: &'static str| {
            let what = what.clone();
            move |e: systemd::Error| JournalError::Read {
                what,
                op,
                source: e.into(),
            }
        };
        // Matches on the same field are ORed; the disjunction ORs the two groups.
        for unit in &selection.units {
            journal
                .match_add("_SYSTEMD_UNIT", unit.as_bytes())
                .map_err(err("adding match"))?;
        }
        if !selection.units.is_empty() && !selection.identifiers.is_empty() {
            journal.match_or().map_err(err("adding match"))?;
        }
        for ident in &selection.identifiers {
            journal
                .match_add("SYSLOG_IDENTIFIER", ident.as_bytes())
                .map_err(err("adding match"))?;
        }
        if !selection.commands.is_empty() {
            journal.match_or().map_err(err("adding match"))?;
        }
        for comm in &selection.commands {
            journal
                .match_add("_COMM", comm.as_bytes())
                .map_err(err("adding match"))?;
        }
        let mut skip_first = None;
        match start {
            StartAt::Head => journal.seek_head().map_err(err("seeking to head"))?,
            StartAt::Realtime(usec) => journal
                .seek_realtime_usec(*usec)
                .map_err(err("seeking to time"))?,
            StartAt::AfterCursor(cursor) => {
                journal
                    .seek_cursor(cursor.as_str())
                    .map_err(err("seeking to cursor"))?;
                skip_first = Some(cursor.clone());
            }
        }
        Ok(SdJournal {
            journal,
            what,
            selection: selection.clone(),
            skip_first,
            damaged: 0,
            untrusted: 0,
            since_release: 0,
            cut_streams: Vec::new(),
        })
    }

    fn read_err(&self, op: &'static str) -> impl FnOnce(systemd::Error) -> JournalError {
        let what = self.what.clone();
        move |e: systemd::Error| JournalError::Read {
            what,
            op,
            source: e.into(),
        }
    }

    /// Whether the entry at the current position is the rest of a line cut at LineMax.
    fn continues_a_cut_line(&mut self) -> bool {
        if self.cut_streams.is_empty() {
            return false;
        }
        let pid = match self.journal.get_data("_PID") {
            Ok(Some(f)) => f
                .value()
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse().ok()),
            _ => None,
        };
        self.cut_streams.contains(&pid)
    }

    fn note_cut(&mut self, entry: &JournalEntry) {
        self.cut_streams.retain(|p| *p != entry.pid);
        if entry.line_continues {
            if self.cut_streams.len() >= MAX_CUT_STREAMS {
                self.cut_streams.remove(0);
            }
            self.cut_streams.push(entry.pid);
        }
    }

    /// Builds the entry at the current position from one pass over its fields.
    fn current(&mut self) -> Result<(JournalEntry, Sender), JournalError> {
        let mut sender = Sender::default();
        let mut entry = JournalEntry {
            realtime_usec: self
                .journal
                .timestamp_usec()
                .map_err(self.read_err("reading timestamp"))?,
            cursor: self
                .journal
                .cursor()
                .map_err(self.read_err("reading cursor"))?,
            ..JournalEntry::default()
        };
        self.journal.restart_data();
        loop {
            let field = match self.journal.enumerate_data() {
                Ok(Some(field)) => field,
                Ok(None) => break,
                // A damaged data object: keep what was readable rather than stop the scan.
                Err(_) => {
                    self.damaged += 1;
                    break;
                }
            };
            let data = field.data();
            let Some(eq) = data.iter().position(|b| *b == b'=') else {
                continue;
            };
            let (name, value) = (&data[..eq], &data[eq + 1..]);
            match name {
                b"MESSAGE" => {
                    entry.message = match self.selection.max_message {
                        Some(max) => lossy(&super::shorten_message(value, max)),
                        None => lossy(value),
                    }
                }
                b"_SYSTEMD_UNIT" => entry.systemd_unit = Some(lossy(value)),
                b"SYSLOG_IDENTIFIER" => entry.syslog_identifier = Some(lossy(value)),
                b"_HOSTNAME" => entry.hostname = Some(lossy(value)),
                b"_PID" => entry.pid = std::str::from_utf8(value).ok().and_then(|p| p.parse().ok()),
                b"_UID" => {
                    sender.uid = std::str::from_utf8(value).ok().and_then(|u| u.parse().ok())
                }
                b"_COMM" => sender.comm = Some(lossy(value)),
                // journald's own field (clients cannot set `_` fields): the line goes on in the
                // process's next entry.
                b"_LINE_BREAK" => entry.line_continues = value == b"line-max",
                _ => {}
            }
        }
        Ok((entry, sender))
    }
}

impl JournalReader for SdJournal {
    fn next_entry(&mut self) -> Result<Option<JournalEntry>, JournalError> {
        loop {
            if self.journal.next().map_err(self.read_err("advancing"))? == 0 {
                return Ok(None);
            }
            self.since_release += 1;
            if self.since_release >= RELEASE_EVERY {
                self.since_release = 0;
                super::pages::release_if_large();
            }
            if let Some(cursor) = self.skip_first.take() {
                if self
                    .journal
                    .test_cursor(cursor.as_str())
                    .map_err(self.read_err("testing cursor"))?
                {
                    continue;
                }
            }
            if self.selection.pull_lines_only {
                let keep = match self.journal.get_data("MESSAGE") {
                    Ok(Some(field)) => field.value().is_some_and(super::may_matter_for_pulls),
                    Ok(None) => false,
                    // Unreadable here: let the full read below count it as damaged.
                    Err(_) => true,
                };
                if !keep && !self.continues_a_cut_line() {
                    continue;
                }
            }
            let (entry, sender) = self.current()?;
            if self.selection.trusts(&entry, &sender) {
                self.note_cut(&entry);
                return Ok(Some(entry));
            }
            if self.selection.accepts(&entry) {
                // Claims to be CRI-O or the kubelet only by fields the sender chose.
                self.untrusted += 1;
            }
        }
    }

    fn wait(&mut self, timeout: Duration) -> Result<WaitOutcome, JournalError> {
        let r = self
            .journal
            .wait(Some(timeout))
            .map_err(self.read_err("waiting"))?;
        Ok(outcome(r))
    }

    fn wait_fd(&mut self) -> Result<RawFd, JournalError> {
        self.journal.fd().map_err(self.read_err("getting fd"))
    }

    fn process(&mut self) -> Result<WaitOutcome, JournalError> {
        let r = self
            .journal
            .process()
            .map_err(self.read_err("processing change"))?;
        Ok(outcome(r))
    }

    fn damaged(&self) -> u64 {
        self.damaged
    }

    fn untrusted(&self) -> u64 {
        self.untrusted
    }
}

fn outcome(r: JournalWaitResult) -> WaitOutcome {
    match r {
        JournalWaitResult::Nop => WaitOutcome::Timeout,
        JournalWaitResult::Append => WaitOutcome::Appended,
        JournalWaitResult::Invalidate => WaitOutcome::Invalidated,
    }
}

/// UTF-8 validation first: it is much faster than the lossy path, which only invalid data needs.
fn lossy(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(v).into_owned(),
    }
}

fn path_str(p: &Path) -> Result<String, JournalError> {
    p.to_str()
        .map(str::to_owned)
        .ok_or_else(|| JournalError::Open {
            what: p.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not UTF-8"),
        })
}
