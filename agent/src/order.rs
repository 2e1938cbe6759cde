//! Start order with bounded memory: the correlator emits a record when its pull finishes; a
//! record is printed once every pull that started before it has been printed, so only records
//! waiting for an older, still-open pull are held.

use std::collections::VecDeque;

use mirrorscope_core::journal::{JournalEntry, PullRecord};

use crate::resume::{opens_pull, GIVE_UP_USEC};

#[derive(Debug)]
struct Slot {
    cursor: String,
    request_id: Option<String>,
    at_usec: u64,
    record: Option<PullRecord>,
}

#[derive(Debug, Default)]
pub struct StartOrder {
    slots: VecDeque<Slot>,
}

impl StartOrder {
    /// Notes an entry before the correlator sees it.
    pub fn observe(&mut self, entry: &JournalEntry) {
        if let Some(request_id) = opens_pull(entry) {
            // The correlator ignores a second `Pulling image` for a request id still open.
            let dup = request_id.is_some()
                && self
                    .slots
                    .iter()
                    .any(|s| s.record.is_none() && s.request_id == request_id);
            if !dup {
                self.slots.push_back(Slot {
                    cursor: entry.cursor.clone(),
                    request_id,
                    at_usec: entry.realtime_usec,
                    record: None,
                });
            }
        }
        // A pull the correlator never reported must not hold the rest back forever.
        let horizon = entry.realtime_usec.saturating_sub(GIVE_UP_USEC);
        while self
            .slots
            .front()
            .is_some_and(|s| s.record.is_none() && s.at_usec < horizon)
        {
            self.slots.pop_front();
        }
    }

    /// Places a finished record; records now in order are appended to `ready`.
    pub fn place(&mut self, record: PullRecord, ready: &mut Vec<PullRecord>) {
        let slot = record.cursor.as_deref().and_then(|c| {
            self.slots
                .iter_mut()
                .find(|s| s.record.is_none() && s.cursor == c)
        });
        match slot {
            Some(s) => s.record = Some(record),
            // Not opened by a line we saw (cannot happen with the same parser): print as is.
            None => ready.push(record),
        }
        while self.slots.front().is_some_and(|s| s.record.is_some()) {
            if let Some(r) = self.slots.pop_front().and_then(|s| s.record) {
                ready.push(r);
            }
        }
    }

    /// End of input: everything still held, in start order.
    pub fn finish(&mut self, ready: &mut Vec<PullRecord>) {
        ready.extend(self.slots.drain(..).filter_map(|s| s.record));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirrorscope_core::journal::PullOutcome;

    fn pulling(cursor: &str, id: &str) -> JournalEntry {
        JournalEntry {
            cursor: cursor.into(),
            realtime_usec: 1,
            message: format!("time=\"2026-11-21T07:00:00Z\" level=info msg=\"Pulling image: quay.io/a/b:1\" id={id} name=/runtime.v1.ImageService/PullImage"),
            ..JournalEntry::default()
        }
    }

    fn record(cursor: &str) -> PullRecord {
        PullRecord {
            outcome: PullOutcome::Pulled,
            cursor: Some(cursor.into()),
            ..PullRecord::started(cursor, "", "2026-11-21T07:00:00.000000Z")
        }
    }

    #[test]
    fn records_come_out_in_start_order_and_are_held_only_behind_open_pulls() {
        let mut o = StartOrder::default();
        let mut ready = Vec::new();
        for (c, id) in [("c1", "a"), ("c2", "b"), ("c3", "c")] {
            o.observe(&pulling(c, id));
        }
        o.place(record("c2"), &mut ready);
        o.place(record("c3"), &mut ready);
        assert!(ready.is_empty());
        o.place(record("c1"), &mut ready);
        let ids: Vec<_> = ready.iter().map(|r| r.pull_id.as_str()).collect();
        assert_eq!(ids, ["c1", "c2", "c3"]);
        o.place(record("elsewhere"), &mut ready);
        assert_eq!(ready.len(), 4);
    }
}
