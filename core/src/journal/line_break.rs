//! Lines journald cut at its `LineMax` (48 KiB by default): every piece but the last carries
//! `_LINE_BREAK=line-max`, and the pieces follow each other in one process's stdout stream. They
//! are joined here, bounded, before any grammar sees them, so a pull whose error text is longer
//! than a journal line still reads as one message.

use std::borrow::Cow;

use super::JournalEntry;

/// A joined line stops growing past this; the rest of its pieces are dropped (and counted).
/// Five pieces at journald's default LineMax: a containers/image error listing every mirror of a
/// long mirror list fits, and at most [`MAX_STREAMS`] times this is ever held.
const MAX_JOINED: usize = 256 * 1024;
/// Processes with a line in pieces at once (CRI-O and the kubelet are a handful); past it the
/// oldest unfinished line is given up.
const MAX_STREAMS: usize = 16;

#[derive(Debug, Default)]
pub struct LineJoiner {
    /// One unfinished line per stream: its first piece, with the message so far.
    pending: Vec<JournalEntry>,
    /// Lines whose pieces were joined.
    pub joined: u64,
    /// Pieces dropped: past [`MAX_JOINED`], or of a line given up for [`MAX_STREAMS`].
    pub dropped: u64,
}

fn same_stream(a: &JournalEntry, b: &JournalEntry) -> bool {
    a.pid == b.pid && a.systemd_unit == b.systemd_unit
}

impl LineJoiner {
    /// Offers the next entry: `None` while it is a piece of an unfinished line, else the entry
    /// (joined with its earlier pieces: the first piece's time, the last piece's cursor).
    pub fn push<'a>(&mut self, entry: &'a JournalEntry) -> Option<Cow<'a, JournalEntry>> {
        if self.pending.is_empty() && !entry.line_continues {
            return Some(Cow::Borrowed(entry));
        }
        let at = self.pending.iter().position(|p| same_stream(p, entry));
        match (at, entry.line_continues) {
            (None, false) => Some(Cow::Borrowed(entry)),
            (None, true) => {
                if self.pending.len() >= MAX_STREAMS {
                    self.pending.remove(0);
                    self.dropped += 1;
                }
                self.pending.push(entry.clone());
                None
            }
            (Some(i), more) => {
                let head = &mut self.pending[i];
                if head.message.len() + entry.message.len() <= MAX_JOINED {
                    head.message.push_str(&entry.message);
                } else {
                    self.dropped += 1;
                }
                head.cursor.clone_from(&entry.cursor);
                if more {
                    return None;
                }
                let mut whole = self.pending.remove(i);
                whole.line_continues = false;
                self.joined += 1;
                Some(Cow::Owned(whole))
            }
        }
    }

    /// End of input: the lines whose last piece never came, as far as they got.
    pub fn drain(&mut self) -> Vec<JournalEntry> {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(cursor: &str, pid: u32, usec: u64, message: &str, continues: bool) -> JournalEntry {
        JournalEntry {
            cursor: cursor.into(),
            realtime_usec: usec,
            systemd_unit: Some("crio.service".into()),
            pid: Some(pid),
            message: message.into(),
            line_continues: continues,
            ..JournalEntry::default()
        }
    }

    #[test]
    fn pieces_of_one_stream_are_joined_around_other_streams() {
        let mut j = LineJoiner::default();
        assert!(j
            .push(&piece("c1", 7, 1, "time=x msg=\"Pulling ", true))
            .is_none());
        // Another process's line passes through while the first is unfinished.
        let other = piece("c2", 8, 2, "other", false);
        assert_eq!(j.push(&other).as_deref(), Some(&other));
        assert!(j.push(&piece("c3", 7, 3, "image: ", true)).is_none());
        let last = piece("c4", 7, 4, "a/b:1\"", false);
        let whole = j.push(&last).unwrap();
        assert_eq!(whole.message, "time=x msg=\"Pulling image: a/b:1\"");
        assert_eq!((whole.cursor.as_str(), whole.realtime_usec), ("c4", 1));
        assert!(!whole.line_continues);
        assert_eq!((j.joined, j.dropped), (1, 0));
        let plain = piece("c5", 7, 5, "plain", false);
        assert!(matches!(j.push(&plain), Some(Cow::Borrowed(_))));
    }

    #[test]
    fn a_line_is_bounded_and_streams_are_bounded() {
        let mut j = LineJoiner::default();
        let big = "x".repeat(MAX_JOINED / 2 + 1);
        for i in 0..4 {
            assert!(j.push(&piece(&format!("c{i}"), 1, i, &big, true)).is_none());
        }
        let end = piece("end", 1, 9, "!", false);
        let whole = j.push(&end).unwrap();
        assert!(whole.message.len() <= MAX_JOINED, "{}", whole.message.len());
        assert_eq!(j.dropped, 3);
        for pid in 0..(MAX_STREAMS as u32 + 3) {
            assert!(j.push(&piece("p", 100 + pid, 1, "piece", true)).is_none());
        }
        assert_eq!(j.drain().len(), MAX_STREAMS);
        assert_eq!(j.dropped, 3 + 3);
    }
}
