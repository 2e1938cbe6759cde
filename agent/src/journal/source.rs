//! The reader thread: owns the sd-journal handle (it is not `Send`), reads in batches, blocks in
//! sd_journal_wait when following, and feeds the consumer through a bounded channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use mirrorscope_core::journal::JournalEntry;

use super::{JournalError, JournalReader};

/// Entries per channel message: large enough that channel costs vanish next to sd-journal's.
const BATCH: usize = 1024;
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
        let stop_t = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("journal-reader".into())
            .spawn(move || run(open, follow, &tx, &stop_t))
            .map_err(|_| JournalError::ThreadGone)?;
        Ok(JournalSource { rx, stop })
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

fn run<F>(open: F, follow: bool, tx: &SyncSender<SourceEvent>, stop: &AtomicBool)
where
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
    let mut reported_damage = 0;
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match reader.next_entry() {
            Ok(Some(entry)) => {
                batch.push(entry);
                if batch.len() >= BATCH
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
