//! The reader thread: owns the sd-journal handle (it is not `Send`), reads in batches, blocks in
//! sd_journal_wait when following, and feeds the consumer through a bounded channel.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use mirrorscope_core::journal::JournalEntry;

use super::{JournalError, JournalReader};

/// Entries per channel message: large enough that channel costs vanish next to sd-journal's.
const BATCH: usize = 1024;
/// Message bytes per channel message: with long lines a batch is sent early, so that the
/// batches in flight stay small however long the lines are.
const BATCH_BYTES: usize = 1024 * 1024;
/// Batches in flight: bounds memory when the consumer is slower than the journal.
const IN_FLIGHT: usize = 4;
/// Longest block in sd_journal_wait, so a stop request is seen within this time.
const WAIT: Duration = Duration::from_millis(500);

/// What the reader thread sends.
#[derive(Debug)]
pub enum SourceEvent {
    /// Selected entries, in journal order.
    Entries(Vec<JournalEntry>),
    /// Everything currently in the journal has been sent.
    CaughtUp,
    /// Reading stopped on this error.
    Failed(JournalError),
}

/// A running reader thread. Dropping it stops the thread.
pub struct JournalSource {
    rx: Receiver<SourceEvent>,
    stop: Arc<AtomicBool>,
    stats: Arc<SourceStats>,
}

/// What the reader skipped so far, updated as it reads.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Entries with unreadable fields.
    pub damaged: AtomicU64,
    /// Entries whose CRI-O or kubelet identity came only from fields the sender chose.
    pub untrusted: AtomicU64,
}

impl SourceStats {
    /// (damaged, untrusted) entries skipped so far.
    pub fn skipped(&self) -> (u64, u64) {
        (
            self.damaged.load(Ordering::Relaxed),
            self.untrusted.load(Ordering::Relaxed),
        )
    }
}

impl JournalSource {
    /// Starts the thread; `open` runs on it. With `follow`, the thread waits for new entries
    /// after catching up; otherwise it ends after the first [`SourceEvent::CaughtUp`].
    pub fn spawn<F>(open: F, follow: bool) -> Result<Self, JournalError>
    where
        F: FnOnce() -> Result<Box<dyn JournalReader>, JournalError> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(IN_FLIGHT);
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SourceStats::default());
        let (stop_t, stats_t) = (Arc::clone(&stop), Arc::clone(&stats));
        std::thread::Builder::new()
            .name("journal-reader".into())
            .spawn(move || run(open, follow, &tx, &stop_t, &stats_t))
            .map_err(|_| JournalError::ThreadGone)?;
        Ok(JournalSource { rx, stop, stats })
    }

    /// The skip counters, for reading while the source runs.
    pub fn stats(&self) -> Arc<SourceStats> {
        Arc::clone(&self.stats)
    }

    /// The next event; `None` once the thread has finished.
    pub fn recv(&self) -> Option<SourceEvent> {
        self.rx.recv().ok()
    }

    /// Like [`JournalSource::recv`], but `Ok(None)` after `timeout` without an event.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<SourceEvent>, ()> {
        match self.rx.recv_timeout(timeout) {
            Ok(e) => Ok(Some(e)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
        }
    }
}

impl Drop for JournalSource {
    fn drop(&mut self) {
        // The thread exits at its next send (the receiver is gone) or within WAIT when idle;
        // it holds nothing worth joining for.
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run<F>(
    open: F,
    follow: bool,
    tx: &SyncSender<SourceEvent>,
    stop: &AtomicBool,
    stats: &SourceStats,
) where
    F: FnOnce() -> Result<Box<dyn JournalReader>, JournalError>,
{
    let mut reader = match open() {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(SourceEvent::Failed(e));
            return;
        }
    };
    let mut batch = Vec::with_capacity(BATCH);
    let mut batch_bytes = 0usize;
    let mut reported_damage = 0;
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match reader.next_entry() {
            Ok(Some(entry)) => {
                batch_bytes = batch_bytes.saturating_add(entry.message.len());
                batch.push(entry);
                let full = batch.len() >= BATCH || batch_bytes >= BATCH_BYTES;
                if full {
                    batch_bytes = 0;
                    stats.damaged.store(reader.damaged(), Ordering::Relaxed);
                    stats.untrusted.store(reader.untrusted(), Ordering::Relaxed);
                }
                if full
                    && tx
                        .send(SourceEvent::Entries(std::mem::replace(
                            &mut batch,
                            Vec::with_capacity(BATCH),
                        )))
                        .is_err()
                {
                    return;
                }
            }
            Ok(None) => {
                batch_bytes = 0;
                stats.damaged.store(reader.damaged(), Ordering::Relaxed);
                stats.untrusted.store(reader.untrusted(), Ordering::Relaxed);
                if !batch.is_empty()
                    && tx
                        .send(SourceEvent::Entries(std::mem::take(&mut batch)))
                        .is_err()
                {
                    return;
                }
                let damaged = reader.damaged();
                if damaged > reported_damage {
                    eprintln!("warning: {damaged} journal entries had unreadable fields; read what was readable");
                    reported_damage = damaged;
                }
                if tx.send(SourceEvent::CaughtUp).is_err() || !follow {
                    return;
                }
                if let Err(e) = wait_for_more(reader.as_mut(), stop) {
                    let _ = tx.send(SourceEvent::Failed(e));
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(SourceEvent::Failed(e));
                return;
            }
        }
    }
}

/// Blocks (in sd_journal_wait, not spinning) until the journal changed or a stop is requested.
fn wait_for_more(reader: &mut dyn JournalReader, stop: &AtomicBool) -> Result<(), JournalError> {
    while !stop.load(Ordering::Relaxed) {
        match reader.wait(WAIT)? {
            super::WaitOutcome::Timeout => continue,
            // On rotation or vacuum sd-journal has re-scanned its files; reading simply goes on
            // from the current position.
            super::WaitOutcome::Appended | super::WaitOutcome::Invalidated => return Ok(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::os::fd::RawFd;
    use std::sync::Mutex;

    use super::super::WaitOutcome;
    use super::*;

    /// Entries appear in `pending` batches: one more batch each time the reader waits.
    struct Fake {
        ready: VecDeque<JournalEntry>,
        pending: Arc<Mutex<VecDeque<Vec<JournalEntry>>>>,
        waits: Arc<Mutex<u32>>,
    }

    impl JournalReader for Fake {
        fn next_entry(&mut self) -> Result<Option<JournalEntry>, JournalError> {
            Ok(self.ready.pop_front())
        }
        fn wait(&mut self, _timeout: Duration) -> Result<WaitOutcome, JournalError> {
            *self.waits.lock().unwrap() += 1;
            match self.pending.lock().unwrap().pop_front() {
                Some(more) => {
                    self.ready.extend(more);
                    Ok(WaitOutcome::Appended)
                }
                None => {
                    std::thread::sleep(Duration::from_millis(5));
                    Ok(WaitOutcome::Timeout)
                }
            }
        }
        fn wait_fd(&mut self) -> Result<RawFd, JournalError> {
            Ok(-1)
        }
        fn process(&mut self) -> Result<WaitOutcome, JournalError> {
            Ok(WaitOutcome::Timeout)
        }
    }

    fn entries(from: usize, to: usize) -> Vec<JournalEntry> {
        (from..to)
            .map(|i| JournalEntry {
                cursor: format!("c{i}"),
                realtime_usec: i as u64,
                ..JournalEntry::default()
            })
            .collect()
    }

    fn fake(first: usize, later: Vec<Vec<JournalEntry>>) -> (Fake, Arc<Mutex<u32>>) {
        let waits = Arc::new(Mutex::new(0));
        let f = Fake {
            ready: entries(0, first).into(),
            pending: Arc::new(Mutex::new(later.into())),
            waits: Arc::clone(&waits),
        };
        (f, waits)
    }

    fn cursors(events: &[SourceEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                SourceEvent::Entries(v) => Some(v.iter().map(|e| e.cursor.clone())),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn reads_everything_in_batches_then_catches_up_and_ends() {
        let (f, waits) = fake(2500, vec![]);
        let src =
            JournalSource::spawn(move || Ok(Box::new(f) as Box<dyn JournalReader>), false).unwrap();
        let events: Vec<SourceEvent> = std::iter::from_fn(|| src.recv()).collect();
        let sizes: Vec<usize> = events
            .iter()
            .map(|e| match e {
                SourceEvent::Entries(v) => v.len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, [1024, 1024, 452, 0]);
        assert!(matches!(events.last(), Some(SourceEvent::CaughtUp)));
        assert_eq!(
            cursors(&events),
            (0..2500).map(|i| format!("c{i}")).collect::<Vec<_>>()
        );
        assert_eq!(*waits.lock().unwrap(), 0, "no waiting without --follow");
    }

    #[test]
    fn following_waits_for_new_entries_and_stops_when_dropped() {
        let (f, waits) = fake(3, vec![entries(3, 5), entries(5, 6)]);
        let src =
            JournalSource::spawn(move || Ok(Box::new(f) as Box<dyn JournalReader>), true).unwrap();
        let mut got = Vec::new();
        while cursors(&got).len() < 6 {
            got.push(src.recv_timeout(Duration::from_secs(5)).unwrap().unwrap());
        }
        assert_eq!(cursors(&got), ["c0", "c1", "c2", "c3", "c4", "c5"]);
        got.push(src.recv_timeout(Duration::from_secs(5)).unwrap().unwrap());
        // Caught up after each burst.
        let caught = got
            .iter()
            .filter(|e| matches!(e, SourceEvent::CaughtUp))
            .count();
        assert_eq!(caught, 3);
        // Idle: it keeps waiting (in the reader's wait, not by spinning on next_entry).
        assert!(src
            .recv_timeout(Duration::from_millis(100))
            .unwrap()
            .is_none());
        let before = *waits.lock().unwrap();
        assert!(before >= 3);
        drop(src);
        std::thread::sleep(Duration::from_millis(1000));
        let after = *waits.lock().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            *waits.lock().unwrap(),
            after,
            "the thread stopped after the drop"
        );
    }

    #[test]
    fn open_errors_reach_the_consumer() {
        let src = JournalSource::spawn(
            || {
                Err(JournalError::Open {
                    what: "/nowhere".into(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                })
            },
            true,
        )
        .unwrap();
        match src.recv() {
            Some(SourceEvent::Failed(e)) => assert!(e.to_string().contains("/nowhere")),
            other => panic!("{other:?}"),
        }
        assert!(src.recv().is_none());
    }
}
