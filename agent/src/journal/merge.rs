//! Several sd-journal handles (one per directory) read as one stream, oldest entry first.

use std::os::fd::RawFd;
use std::time::Duration;

use mirrorscope_core::journal::JournalEntry;

use super::{JournalError, JournalReader, WaitOutcome};

pub struct Merged<R> {
    readers: Vec<R>,
    peeked: Vec<Option<JournalEntry>>,
}

impl<R: JournalReader> Merged<R> {
    pub fn new(readers: Vec<R>) -> Self {
        let peeked = readers.iter().map(|_| None).collect();
        Merged { readers, peeked }
    }
}

impl<R: JournalReader> JournalReader for Merged<R> {
    fn next_entry(&mut self) -> Result<Option<JournalEntry>, JournalError> {
        for (reader, slot) in self.readers.iter_mut().zip(self.peeked.iter_mut()) {
            if slot.is_none() {
                *slot = reader.next_entry()?;
            }
        }
        let oldest = self
            .peeked
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (e.realtime_usec, i)))
            .min()
            .map(|(_, i)| i);
        Ok(oldest.and_then(|i| self.peeked.get_mut(i).and_then(Option::take)))
    }

    fn wait(&mut self, timeout: Duration) -> Result<WaitOutcome, JournalError> {
        let mut raw = Vec::with_capacity(self.readers.len());
        for r in &mut self.readers {
            raw.push(r.wait_fd()?);
        }
        let borrowed: Vec<std::os::fd::BorrowedFd<'_>> = raw
            .iter()
            // SAFETY: sd-journal owns these descriptors and keeps them open while its reader
            // lives; the readers are borrowed for this whole call, which outlives `borrowed`.
            .map(|fd| unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) })
            .collect();
        let mut fds: Vec<rustix::event::PollFd<'_>> = borrowed
            .iter()
            .map(|fd| rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN))
            .collect();
        let timeout = rustix::event::Timespec::try_from(timeout).ok();
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                return Err(JournalError::Read {
                    what: "merged directories".into(),
                    op: "polling",
                    source: e.into(),
                })
            }
        }
        let mut seen = WaitOutcome::Timeout;
        // sd-journal wants process() after its fd fired; calling it on all is harmless.
        for r in &mut self.readers {
            match r.process()? {
                WaitOutcome::Invalidated => seen = WaitOutcome::Invalidated,
                WaitOutcome::Appended if seen == WaitOutcome::Timeout => {
                    seen = WaitOutcome::Appended
                }
                _ => {}
            }
        }
        Ok(seen)
    }

    fn wait_fd(&mut self) -> Result<RawFd, JournalError> {
        match self.readers.first_mut() {
            Some(r) => r.wait_fd(),
            None => Err(JournalError::ThreadGone),
        }
    }

    fn process(&mut self) -> Result<WaitOutcome, JournalError> {
        let mut seen = WaitOutcome::Timeout;
        for r in &mut self.readers {
            if r.process()? != WaitOutcome::Timeout {
                seen = WaitOutcome::Appended;
            }
        }
        Ok(seen)
    }

    fn damaged(&self) -> u64 {
        self.readers.iter().map(JournalReader::damaged).sum()
    }

    fn untrusted(&self) -> u64 {
        self.readers.iter().map(JournalReader::untrusted).sum()
    }
}
