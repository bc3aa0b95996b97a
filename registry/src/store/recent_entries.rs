//! The newest log entries, decoded, beside the log in RocksDB. openraft reads
//! every entry back from the log store after appending it: once to apply it and, on
//! the leader, once per follower to replicate it. Without this each of those reads
//! decodes the entry again from its stored bytes.
//!
//! It mirrors the tail of the log exactly: an append puts, a truncate removes the
//! suffix, a purge the prefix. A read is served from here only when every entry it
//! asks for is here, so a miss falls back to RocksDB and a hit is what RocksDB holds.

use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};
use std::sync::Mutex;

use crate::raft_types::Entry;

/// The newest entries, contiguous, at most `max_bytes` of them by stored size.
pub struct RecentEntries {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

#[derive(Default)]
struct Inner {
    /// Contiguous by index, oldest first, each with its stored size.
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl Inner {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    fn pop_front(&mut self) {
        if let Some((_, size)) = self.entries.pop_front() {
            self.bytes -= size;
        }
    }

    fn pop_back(&mut self) {
        if let Some((_, size)) = self.entries.pop_back() {
            self.bytes -= size;
        }
    }
}

impl RecentEntries {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_bytes,
        }
    }

    /// Called after `entry` (of `size` stored bytes) was written to the log. An entry
    /// that does not follow the newest one starts the cache over (the log was
    /// truncated and rewritten, or this is the first append after a restart).
    pub fn appended(&self, entry: Entry, size: usize) {
        let mut inner = self.inner.lock().expect("recent entries lock poisoned");
        let index = entry.log_id.index;
        // An overwrite of entries already here (a follower's log rewritten by a
        // new leader): drop them and everything after.
        while inner
            .entries
            .back()
            .is_some_and(|(e, _)| e.log_id.index >= index)
        {
            inner.pop_back();
        }
        let follows = inner
            .entries
            .back()
            .is_none_or(|(e, _)| e.log_id.index + 1 == index);
        if !follows {
            inner.entries.clear();
            inner.bytes = 0;
        }
        inner.entries.push_back((entry, size));
        inner.bytes += size;
        while inner.bytes > self.max_bytes && inner.entries.len() > 1 {
            inner.pop_front();
        }
    }

    /// The log was truncated from `index` on.
    pub fn truncated(&self, index: u64) {
        let mut inner = self.inner.lock().expect("recent entries lock poisoned");
        while inner
            .entries
            .back()
            .is_some_and(|(e, _)| e.log_id.index >= index)
        {
            inner.pop_back();
        }
    }

    /// The log was purged up to and including `index`.
    pub fn purged(&self, index: u64) {
        let mut inner = self.inner.lock().expect("recent entries lock poisoned");
        while inner.first_index().is_some_and(|first| first <= index) {
            inner.pop_front();
        }
    }

    /// Every entry of `range` if all of them are here (an unbounded end means up to
    /// the newest). `None`: read the log.
    pub fn get(&self, range: &impl RangeBounds<u64>) -> Option<Vec<Entry>> {
        let inner = self.inner.lock().expect("recent entries lock poisoned");
        let first = inner.first_index()?;
        let start = match range.start_bound() {
            Bound::Included(&x) => x,
            Bound::Excluded(&x) => x.checked_add(1)?,
            Bound::Unbounded => return None,
        };
        if start < first {
            return None;
        }
        let last = first + inner.entries.len() as u64 - 1;
        let end_inclusive = match range.end_bound() {
            Bound::Included(&x) => x,
            Bound::Excluded(&x) => x.checked_sub(1)?,
            Bound::Unbounded => last,
        };
        if end_inclusive > last {
            return None;
        }
        if end_inclusive < start {
            return Some(Vec::new());
        }
        let from = (start - first) as usize;
        let to = (end_inclusive - first) as usize;
        Some(
            inner
                .entries
                .range(from..=to)
                .map(|(e, _)| e.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;

    use super::*;
    use crate::raft_types::log_id;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: log_id(term, 1, index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(entries: Option<Vec<Entry>>) -> Option<Vec<(u64, u64)>> {
        entries.map(|es| {
            es.iter()
                .map(|e| (e.log_id.leader_id.term, e.log_id.index))
                .collect()
        })
    }

    #[test]
    fn serves_only_ranges_it_holds_whole() {
        let cache = RecentEntries::new(1000);
        assert_eq!(indexes(cache.get(&(1..3))), None);
        for i in 5..=9 {
            cache.appended(entry(1, i), 10);
        }
        assert_eq!(indexes(cache.get(&(6..8))), Some(vec![(1, 6), (1, 7)]));
        assert_eq!(indexes(cache.get(&(5..=9))).map(|v| v.len()), Some(5));
        assert_eq!(indexes(cache.get(&(7..))).map(|v| v.len()), Some(3));
        assert_eq!(indexes(cache.get(&(4..8))), None, "starts before the cache");
        assert_eq!(indexes(cache.get(&(8..11))), None, "ends after the newest");
        assert_eq!(indexes(cache.get(&(..8))), None);
        assert_eq!(indexes(cache.get(&(8..8))), Some(vec![]));
    }

    #[test]
    fn follows_truncate_purge_and_rewrites_like_the_log() {
        let cache = RecentEntries::new(1000);
        for i in 1..=6 {
            cache.appended(entry(1, i), 10);
        }
        cache.truncated(5);
        assert_eq!(indexes(cache.get(&(4..=5))), None);
        // A new leader's entry 5 replaces the old one; and rewriting from 3 drops 4..
        cache.appended(entry(2, 5), 10);
        assert_eq!(indexes(cache.get(&(4..=5))), Some(vec![(1, 4), (2, 5)]));
        cache.appended(entry(3, 3), 10);
        assert_eq!(
            indexes(cache.get(&(1..=3))),
            Some(vec![(1, 1), (1, 2), (3, 3)])
        );
        assert_eq!(indexes(cache.get(&(4..=4))), None);
        cache.purged(2);
        assert_eq!(indexes(cache.get(&(2..=3))), None);
        assert_eq!(indexes(cache.get(&(3..=3))), Some(vec![(3, 3)]));
        // A gap (an append after a restart, or after a snapshot install) starts over.
        cache.appended(entry(3, 10), 10);
        assert_eq!(indexes(cache.get(&(3..=3))), None);
        assert_eq!(indexes(cache.get(&(10..=10))), Some(vec![(3, 10)]));
    }

    #[test]
    fn keeps_at_most_its_byte_budget_of_the_newest() {
        let cache = RecentEntries::new(100);
        for i in 1..=20 {
            cache.appended(entry(1, i), 30);
        }
        assert_eq!(indexes(cache.get(&(18..=20))).map(|v| v.len()), Some(3));
        assert_eq!(indexes(cache.get(&(17..=20))), None);
        // One entry over the budget is still kept (the newest is always here).
        cache.appended(entry(1, 21), 500);
        assert_eq!(indexes(cache.get(&(21..=21))).map(|v| v.len()), Some(1));
        assert_eq!(indexes(cache.get(&(20..=21))), None);
    }
}
