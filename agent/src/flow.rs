//! The step `scan` and `run` share: journal entries → correlator, with the resume bookkeeping
//! that decides what a checkpoint covers. What happens to the records afterwards (printing in
//! start order, or the outbox) stays with each caller.

use mirrorscope_core::journal::{
    Correlator, CorrelatorConfig, CorrelatorStats, JournalEntry, Notice, PullRecord, SourceResolver,
};

use crate::journal::cursor::Checkpoint;
use crate::resume::ResumeTracker;

pub struct RecordFlow {
    correlator: Correlator,
    resume: ResumeTracker,
    /// Records that became final since the last [`RecordFlow::take`].
    fresh: Vec<PullRecord>,
}

impl RecordFlow {
    /// `emit_early`: records as soon as their pull ends, amended later (the agent, whose
    /// collector must see a pull within a second); `scan` prints each pull once.
    pub fn new(
        resolver: Box<dyn SourceResolver + Send>,
        resume: ResumeTracker,
        emit_early: bool,
    ) -> RecordFlow {
        let config = CorrelatorConfig {
            emit_early,
            ..CorrelatorConfig::default()
        };
        RecordFlow {
            correlator: Correlator::new(resolver, config),
            resume,
            fresh: Vec::new(),
        }
    }

    /// Feeds one entry; CRI-O's notice when the entry was one (the caller swaps the resolver
    /// for a registries reload, or records it).
    pub fn push(&mut self, entry: &JournalEntry) -> Option<Notice> {
        self.resume.observe(entry);
        self.correlator.push(entry, &mut self.fresh)
    }

    /// An idle journal does not move journal time: moves the correlator's clock to now so
    /// finished pulls come out (no line, no cursor, unseen by the resume bookkeeping).
    pub fn tick(&mut self) {
        self.correlator
            .advance(crate::clock::now_usec(), &mut self.fresh);
    }

    /// The end of the input: every pull still open comes out as it stands.
    pub fn finish(&mut self) {
        self.fresh.extend(self.correlator.finish());
    }

    pub fn set_resolver(&mut self, resolver: Box<dyn SourceResolver + Send>) {
        self.correlator.set_resolver(resolver);
    }

    /// The records that became final since the last call.
    pub fn take(&mut self) -> Vec<PullRecord> {
        std::mem::take(&mut self.fresh)
    }

    /// Marks `record` reported; false when a previous run already reported it.
    pub fn report(&mut self, record: &PullRecord) -> bool {
        self.resume.report(record)
    }

    pub fn is_suppressed(&self, record: &PullRecord) -> bool {
        self.resume.is_suppressed(record)
    }

    pub fn checkpoint(&mut self) -> Checkpoint {
        self.resume.checkpoint()
    }

    pub fn stats(&self) -> CorrelatorStats {
        self.correlator.stats()
    }
}
