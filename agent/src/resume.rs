//! Where a restart must resume so that every pull record comes out exactly once.
//!
//! A record is final only after its pull closed (and lingered), so the journal position of the
//! last entry read is not a safe checkpoint: pulls still open would lose their start. The resume
//! point is therefore the entry just before the opening line of the oldest pull not yet
//! reported, and the records already reported after that point are remembered (by the cursor of
//! their opening entry, which is stable across re-reads) and suppressed on replay.

use std::collections::HashSet;

use mirrorscope_core::journal::crio::{parse_crio_line, CrioEvent};
use mirrorscope_core::journal::{JournalEntry, PullRecord};

use crate::journal::cursor::Checkpoint;

/// A pull is dropped from tracking after this much journal time even if no record came out
/// (the correlator abandons pulls after 30 min and lingers 10 s): the checkpoint must not stay
/// pinned by a pull the correlator ignored.
pub const GIVE_UP_USEC: u64 = 40 * 60 * 1_000_000;

#[derive(Debug)]
struct Pending {
    cursor: String,
    request_id: Option<String>,
    /// Cursor of the entry read before the opening one (`None`: the start of this run).
    before: Option<String>,
    at_usec: u64,
    seq: u64,
}

/// `Some(request id)` when `entry` is a CRI-O `Pulling image` line, which opens a pull in the
/// correlator (the same parser decides).
pub fn opens_pull(entry: &JournalEntry) -> Option<Option<String>> {
    if !entry.message.contains("Pulling image: ") {
        return None;
    }
    match parse_crio_line(&entry.message) {
        Ok(Some(CrioEvent::PullingImage { request_id, .. })) => Some(request_id),
        _ => None,
    }
}

/// Tracks opened and reported pulls between checkpoints.
#[derive(Debug)]
pub struct ResumeTracker {
    /// Where this run started: the resume point when nothing was read yet.
    start: Option<String>,
    last: Option<String>,
    pending: Vec<Pending>,
    /// Opening (sequence, cursor) of records reported while an older pull was still pending.
    reported: Vec<(u64, String)>,
    seq: u64,
    /// Records to suppress: reported by the previous run after its resume point.
    suppress: HashSet<String>,
    /// Without a checkpoint file there is nothing to track.
    active: bool,
    /// The previous run's last entry while this run is re-reading up to it.
    replay_until: Option<String>,
    /// Entries re-read up to `replay_until`: a partial record closing at one of them is a pull
    /// the previous run saw from its start, so it was already reported.
    replayed: HashSet<String>,
}

impl ResumeTracker {
    pub fn new(saved: Option<&Checkpoint>) -> Self {
        ResumeTracker {
            start: saved.and_then(|c| c.cursor.clone()),
            last: saved.and_then(|c| c.cursor.clone()),
            pending: Vec::new(),
            reported: Vec::new(),
            seq: 0,
            suppress: saved
                .map(|c| c.emitted.iter().cloned().collect())
                .unwrap_or_default(),
            active: true,
            replay_until: saved.and_then(|c| c.read_to.clone()),
            replayed: HashSet::new(),
        }
    }

    /// A tracker that tracks nothing (no checkpoint file): every record is reported.
    pub fn inactive() -> Self {
        ResumeTracker {
            active: false,
            ..ResumeTracker::new(None)
        }
    }

    /// Notes an entry before the correlator sees it.
    pub fn observe(&mut self, entry: &JournalEntry) {
        if !self.active {
            return;
        }
        if let Some(until) = &self.replay_until {
            if entry.cursor == *until {
                self.replay_until = None;
            }
            self.replayed.insert(entry.cursor.clone());
        }
        if entry.message.contains("Pulling image: ") {
            if let Ok(Some(CrioEvent::PullingImage { request_id, .. })) =
                parse_crio_line(&entry.message)
            {
                // The correlator ignores a second `Pulling image` for a request id still open.
                let dup =
                    request_id.is_some() && self.pending.iter().any(|p| p.request_id == request_id);
                if !dup {
                    self.pending.push(Pending {
                        cursor: entry.cursor.clone(),
                        request_id,
                        before: self.last.clone(),
                        at_usec: entry.realtime_usec,
                        seq: self.seq,
                    });
                }
            }
        }
        self.seq += 1;
        self.last = Some(entry.cursor.clone());
        let horizon = entry.realtime_usec.saturating_sub(GIVE_UP_USEC);
        self.pending.retain(|p| p.at_usec >= horizon);
    }

    /// Whether `record` should be printed: false when the previous run already reported it.
    pub fn report(&mut self, record: &PullRecord) -> bool {
        if !self.active {
            return true;
        }
        let Some(cursor) = record.cursor.as_deref() else {
            return true;
        };
        if record.partial && self.replayed.contains(cursor) {
            return false;
        }
        let seq = match self.pending.iter().position(|p| p.cursor == cursor) {
            Some(i) => self.pending.remove(i).seq,
            None => self.seq,
        };
        if self.suppress.remove(cursor) {
            return false;
        }
        self.reported.push((seq, cursor.to_owned()));
        true
    }

    /// Whether the previous run already reported this pull (without marking it reported).
    pub fn is_suppressed(&self, record: &PullRecord) -> bool {
        record.cursor.as_deref().is_some_and(|c| {
            self.suppress.contains(c) || (record.partial && self.replayed.contains(c))
        })
    }

    /// The checkpoint to save now.
    pub fn checkpoint(&mut self) -> Checkpoint {
        match self.pending.first() {
            // Everything read so far is reported; records of the previous run not yet replayed
            // open later in the journal and stay suppressed.
            None => {
                self.reported.clear();
                self.start = self.last.clone();
                Checkpoint {
                    cursor: self.last.clone(),
                    emitted: self.suppress.iter().cloned().collect(),
                    read_to: None,
                }
            }
            Some(oldest) => {
                // Records that opened before the resume point are never read again.
                let from = oldest.seq;
                self.reported.retain(|(seq, _)| *seq > from);
                let emitted = self
                    .reported
                    .iter()
                    .map(|(_, c)| c.clone())
                    .chain(self.suppress.iter().cloned())
                    .collect();
                Checkpoint {
                    cursor: oldest.before.clone().or_else(|| self.start.clone()),
                    emitted,
                    read_to: self.last.clone(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirrorscope_core::journal::PullOutcome;

    fn entry(cursor: &str, usec: u64, msg: &str) -> JournalEntry {
        JournalEntry {
            cursor: cursor.into(),
            realtime_usec: usec,
            message: msg.into(),
            ..JournalEntry::default()
        }
    }

    fn pulling(cursor: &str, usec: u64, id: &str) -> JournalEntry {
        entry(
            cursor,
            usec,
            &format!("time=\"2026-11-21T07:00:00Z\" level=info msg=\"Pulling image: quay.io/a/b:1\" id={id} name=/runtime.v1.ImageService/PullImage"),
        )
    }

    fn record(cursor: &str) -> PullRecord {
        PullRecord {
            outcome: PullOutcome::Pulled,
            cursor: Some(cursor.into()),
            ..PullRecord::started(cursor, "quay.io/a/b:1", "2026-11-21T07:00:00.000000Z")
        }
    }

    #[test]
    fn resume_point_stays_before_the_oldest_unreported_pull() {
        let mut t = ResumeTracker::new(None);
        t.observe(&entry("c0", 1, "noise"));
        t.observe(&pulling("c1", 2, "a"));
        t.observe(&pulling("c2", 3, "b"));
        t.observe(&entry("c3", 4, "noise"));
        assert_eq!(t.checkpoint().cursor.as_deref(), Some("c0"));
        // b finishes first: reported, remembered, the resume point stays before a.
        assert!(t.report(&record("c2")));
        let cp = t.checkpoint();
        assert_eq!(
            (cp.cursor.as_deref(), cp.emitted.clone()),
            (Some("c0"), vec!["c2".to_owned()])
        );
        assert!(t.report(&record("c1")));
        assert_eq!(
            t.checkpoint(),
            Checkpoint {
                cursor: Some("c3".into()),
                emitted: vec![],
                read_to: None,
            }
        );

        // A restart from the middle checkpoint replays a and b, and prints only a.
        let mut r = ResumeTracker::new(Some(&cp));
        r.observe(&pulling("c1", 2, "a"));
        r.observe(&pulling("c2", 3, "b"));
        assert!(!r.report(&record("c2")));
        assert!(r.report(&record("c1")));
        assert_eq!(r.checkpoint().cursor.as_deref(), Some("c2"));
    }

    #[test]
    fn a_replayed_end_of_a_pull_reported_whole_is_not_reported_again_as_partial() {
        let mut t = ResumeTracker::new(None);
        t.observe(&pulling("c1", 1, "a"));
        t.observe(&pulling("c2", 2, "b"));
        t.observe(&entry("c3", 3, "Pulled image: a"));
        assert!(t.report(&record("c1")));
        let cp = t.checkpoint();
        assert_eq!(cp.cursor.as_deref(), Some("c1"));
        assert_eq!(cp.read_to.as_deref(), Some("c3"));
        // The restart re-reads from before b: a's end comes without its start.
        let mut r = ResumeTracker::new(Some(&cp));
        r.observe(&pulling("c2", 2, "b"));
        r.observe(&entry("c3", 3, "Pulled image: a"));
        let mut partial = record("c3");
        partial.partial = true;
        assert!(r.is_suppressed(&partial));
        assert!(!r.report(&partial));
        // A partial record closing after the previous run's last entry is new.
        r.observe(&entry("c4", 4, "Pulled image: z"));
        let mut fresh = record("c4");
        fresh.partial = true;
        assert!(r.report(&fresh));
    }

    #[test]
    fn duplicate_request_ids_and_silent_pulls_do_not_pin_the_checkpoint() {
        let mut t = ResumeTracker::new(None);
        t.observe(&pulling("c1", 1, "a"));
        t.observe(&pulling("c2", 2, "a"));
        assert!(t.report(&record("c1")));
        t.observe(&entry("c3", 3, "noise"));
        assert_eq!(t.checkpoint().cursor.as_deref(), Some("c3"));
        t.observe(&pulling("c4", 4, "z"));
        t.observe(&entry("c5", 4 + GIVE_UP_USEC + 1, "much later"));
        assert_eq!(t.checkpoint().cursor.as_deref(), Some("c5"));
    }
}
