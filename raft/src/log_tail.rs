//! The newest Raft log entries, kept in memory so that the readers that want exactly those —
//! the leader's replication to each follower, and every node's state machine applying what was
//! just committed — do not go back to RocksDB for entries this node appended a moment ago.
//!
//! Why: every such read opened a RocksDB iterator and sought it in the log's memtable. Profiled
//! under single-message submits, that seek was a fifth of the leader's CPU and a tenth of each
//! follower's, for bytes the node still had in hand.
//!
//! It is a cache, never the record: the log store writes every entry to RocksDB first and only
//! then adds it here, removes entries here before truncating or purging them there, and a read
//! that the tail does not cover whole goes to RocksDB. The tail is always a contiguous run of
//! indices ending at the last entry this process appended, and bounded in entries and bytes.

use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};

use openraft::entry::RaftEntry;
use openraft::EntryPayload;

use crate::types::Entry;

/// Most entries kept.
const MAX_ENTRIES: usize = 8192;
/// Most payload bytes kept (entries carry batches of events; the largest are a few hundred KB).
const MAX_BYTES: usize = 32 << 20;

/// A contiguous run of the newest log entries.
#[derive(Default)]
pub(crate) struct LogTail {
    entries: VecDeque<Entry>,
    bytes: usize,
}

impl LogTail {
    /// Adds entries just written to the log. An entry that does not follow the last one kept
    /// (the first append after a start, or after a gap) starts the run over from it.
    pub(crate) fn push(&mut self, entries: impl IntoIterator<Item = Entry>) {
        for entry in entries {
            let follows = self
                .last_index()
                .is_some_and(|last| last.checked_add(1) == Some(entry.index()));
            if !follows {
                self.entries.clear();
                self.bytes = 0;
            }
            self.bytes += payload_len(&entry);
            self.entries.push_back(entry);
        }
        while self.entries.len() > MAX_ENTRIES || self.bytes > MAX_BYTES {
            self.pop_front();
        }
    }

    /// Forgets the entries after `last` (all of them for `None`): they are being truncated.
    pub(crate) fn truncate_after(&mut self, last: Option<u64>) {
        while let Some(entry) = self.entries.back() {
            if last.is_some_and(|last| entry.index() <= last) {
                break;
            }
            self.bytes -= payload_len(entry);
            self.entries.pop_back();
        }
    }

    /// Forgets the entries up to and including `upto`: they are being purged.
    pub(crate) fn purge_upto(&mut self, upto: u64) {
        while self.entries.front().is_some_and(|e| e.index() <= upto) {
            self.pop_front();
        }
    }

    /// The entries in `range` if the tail holds every one of them, else `None` (read the disk).
    /// An open-ended range is covered when it starts within the tail, since the tail ends at the
    /// last entry appended.
    pub(crate) fn get(&self, range: &impl RangeBounds<u64>) -> Option<Vec<Entry>> {
        let first = self.entries.front()?.index();
        let last = self.last_index()?;
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.checked_add(1)?,
            Bound::Unbounded => 0,
        };
        // Inclusive end, clamped to the last entry: nothing exists past it.
        let end = match range.end_bound() {
            Bound::Included(&i) => i.min(last),
            Bound::Excluded(&0) => return Some(Vec::new()),
            Bound::Excluded(&i) => (i - 1).min(last),
            Bound::Unbounded => last,
        };
        if start > end {
            return Some(Vec::new());
        }
        if start < first {
            return None;
        }
        let from = usize::try_from(start - first).ok()?;
        let to = usize::try_from(end - first).ok()?;
        Some(self.entries.range(from..=to).cloned().collect())
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|e| e.index())
    }

    fn pop_front(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            self.bytes -= payload_len(&entry);
        }
    }
}

fn payload_len(entry: &Entry) -> usize {
    match &entry.payload {
        EntryPayload::Normal(data) => data.0.len(),
        // Blank and membership entries are small; count them as a little so the byte bound
        // still moves.
        _ => 64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EventsPayload, TypeConfig};

    fn entry(term: u64, index: u64, bytes: usize) -> Entry {
        let log_id = openraft::testing::log_id::<TypeConfig>(term, 1, index);
        Entry::new_normal(log_id, EventsPayload(vec![index as u8; bytes]))
    }

    fn indices(entries: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        entries.map(|es| es.iter().map(|e| e.index()).collect())
    }

    fn tail_of(range: std::ops::RangeInclusive<u64>) -> LogTail {
        let mut tail = LogTail::default();
        tail.push(range.map(|i| entry(1, i, 10)));
        tail
    }

    #[test]
    fn a_range_inside_the_tail_is_served_and_one_reaching_before_it_is_not() {
        let tail = tail_of(10..=20);
        assert_eq!(indices(tail.get(&(12..15))), Some(vec![12, 13, 14]));
        assert_eq!(indices(tail.get(&(18..=20))), Some(vec![18, 19, 20]));
        assert_eq!(indices(tail.get(&(19..))), Some(vec![19, 20]));
        // Past the end: only what exists, as a read of the disk would give.
        assert_eq!(indices(tail.get(&(19..40))), Some(vec![19, 20]));
        assert_eq!(indices(tail.get(&(25..40))), Some(vec![]));
        assert_eq!(indices(tail.get(&(9..12))), None);
        assert_eq!(indices(tail.get(&(..12))), None);
        assert_eq!(indices(LogTail::default().get(&(0..5))), None);
    }

    #[test]
    fn empty_and_edge_ranges_need_no_disk() {
        let tail = tail_of(10..=20);
        assert_eq!(indices(tail.get(&(15..15))), Some(vec![]));
        assert_eq!(indices(tail.get(&(0..0))), Some(vec![]));
        assert_eq!(
            indices(tail.get(&(Bound::Excluded(u64::MAX), Bound::Unbounded))),
            None
        );
    }

    #[test]
    fn truncation_and_purge_remove_entries_and_a_gap_starts_over() {
        let mut tail = tail_of(1..=10);
        tail.truncate_after(Some(6));
        assert_eq!(indices(tail.get(&(1..))), Some(vec![1, 2, 3, 4, 5, 6]));
        // The replacement entries follow on.
        tail.push([entry(2, 7, 10), entry(2, 8, 10)]);
        let got = tail.get(&(6..=8)).unwrap();
        assert_eq!(
            got[1].log_id(),
            openraft::testing::log_id::<TypeConfig>(2, 1, 7)
        );
        tail.purge_upto(3);
        assert_eq!(indices(tail.get(&(3..5))), None);
        assert_eq!(indices(tail.get(&(4..5))), Some(vec![4]));
        tail.truncate_after(None);
        assert_eq!(indices(tail.get(&(4..5))), None);
        // An entry that does not follow the last one kept starts the run over.
        let mut tail = tail_of(1..=5);
        tail.push([entry(1, 9, 10)]);
        assert_eq!(indices(tail.get(&(5..))), None);
        assert_eq!(indices(tail.get(&(9..))), Some(vec![9]));
    }

    #[test]
    fn the_tail_is_bounded_in_entries_and_bytes() {
        let mut tail = LogTail::default();
        tail.push((1..=(MAX_ENTRIES as u64 + 100)).map(|i| entry(1, i, 1)));
        assert_eq!(tail.entries.len(), MAX_ENTRIES);
        assert_eq!(indices(tail.get(&(1..2))), None);
        let mut tail = LogTail::default();
        let big = MAX_BYTES / 4 + 1;
        tail.push((1..=8).map(|i| entry(1, i, big)));
        assert!(tail.bytes <= MAX_BYTES);
        assert_eq!(indices(tail.get(&(8..))), Some(vec![8]));
        assert_eq!(indices(tail.get(&(1..))), None);
        tail.purge_upto(100);
        assert_eq!(tail.bytes, 0);
    }
}
