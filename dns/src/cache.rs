//! The answer cache behind the UDP fast path: full-path responses to plain queries,
//! stored in wire form per (name, type, size class) and valid for one catalog index.
//! Answers in weighted random order keep several orders, each refreshed now and then,
//! so the order still varies per query and follows the weights over time.

use std::collections::HashMap;

use crate::wire::Cacheable;

/// Orders kept per answer whose order is drawn per query.
pub(crate) const ORDERS: usize = 8;
/// One hit in this many on an ordered answer redraws the order it picked (the full
/// path runs again), so the orders served follow the weighted distribution over time
/// rather than being eight draws fixed for the index's lifetime.
pub(crate) const REDRAW_ONE_IN: u32 = 16;
/// Bounds per cache: names are attacker-chosen (random subdomains all answer
/// NXDOMAIN), so a full cache stops admitting until the next index clears it.
const MAX_ENTRIES: usize = 50_000;
const MAX_BYTES: usize = 16 << 20;

struct Entry {
    /// One response for a fixed answer; up to `ORDERS` for an ordered one.
    responses: Vec<Box<[u8]>>,
    ordered: bool,
}

/// What a lookup found.
pub(crate) enum Lookup<'a> {
    /// A stored response (normalised: patch it for the query).
    Hit(&'a [u8]),
    /// Run the full path and `store` what it answers.
    Miss,
}

/// One serving loop's cache (each UDP socket has its own, so none is shared or locked).
pub(crate) struct AnswerCache {
    index: u64,
    entries: HashMap<Box<[u8]>, Entry>,
    bytes: usize,
    /// xorshift32 state: picks an order and decides redraws; not for secrets.
    rng: u32,
}

impl AnswerCache {
    pub(crate) fn new(seed: u32) -> Self {
        Self {
            index: 0,
            entries: HashMap::new(),
            bytes: 0,
            rng: seed | 1,
        }
    }

    fn next_random(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }

    /// Empties the cache when the catalog has moved to another index: every answer
    /// (records, SOA serial) belongs to the index it was computed at.
    pub(crate) fn sync(&mut self, index: u64) {
        if index != self.index {
            self.entries.clear();
            self.bytes = 0;
            self.index = index;
        }
    }

    pub(crate) fn lookup(&mut self, key: &[u8]) -> Lookup<'_> {
        let (pick, redraw) = (self.next_random(), self.next_random());
        let Some(entry) = self.entries.get(key) else {
            return Lookup::Miss;
        };
        if !entry.ordered {
            return Lookup::Hit(&entry.responses[0]);
        }
        let slot = pick as usize % ORDERS;
        match entry.responses.get(slot) {
            Some(response) if redraw % REDRAW_ONE_IN != 0 => Lookup::Hit(response),
            _ => Lookup::Miss,
        }
    }

    /// Stores a normalised full-path response under `key`: a fixed answer once, an
    /// ordered one as a new order (or in place of a random one when all are kept).
    pub(crate) fn store(&mut self, key: &[u8], response: Box<[u8]>, how: Cacheable) {
        let ordered = match how {
            Cacheable::No => return,
            Cacheable::Fixed => false,
            Cacheable::Ordered => true,
        };
        let slot = self.next_random() as usize % ORDERS;
        let size = response.len();
        if let Some(entry) = self.entries.get_mut(key) {
            if !entry.ordered {
                return;
            }
            if entry.responses.len() < ORDERS {
                if self.bytes + size > MAX_BYTES {
                    return;
                }
                self.bytes += size;
                entry.responses.push(response);
            } else {
                let old = std::mem::replace(&mut entry.responses[slot], response);
                self.bytes = self.bytes + size - old.len();
            }
            return;
        }
        if self.entries.len() >= MAX_ENTRIES || self.bytes + size + key.len() > MAX_BYTES {
            return;
        }
        self.bytes += size + key.len();
        let entry = Entry {
            responses: vec![response],
            ordered,
        };
        self.entries.insert(key.into(), entry);
    }

    #[cfg(test)]
    fn responses(&self, key: &[u8]) -> usize {
        self.entries.get(key).map_or(0, |e| e.responses.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(byte: u8) -> Box<[u8]> {
        vec![byte; 40].into_boxed_slice()
    }

    #[test]
    fn a_fixed_answer_is_stored_once_and_always_hits() {
        let mut cache = AnswerCache::new(7);
        cache.sync(5);
        assert!(matches!(cache.lookup(b"k"), Lookup::Miss));
        cache.store(b"k", response(1), Cacheable::Fixed);
        for _ in 0..1_000 {
            match cache.lookup(b"k") {
                Lookup::Hit(r) => assert_eq!(r[0], 1),
                Lookup::Miss => panic!("a fixed answer never misses"),
            }
        }
        cache.store(b"k", response(2), Cacheable::Fixed);
        assert_eq!(cache.responses(b"k"), 1);
    }

    #[test]
    fn an_ordered_answer_fills_its_orders_and_is_redrawn_now_and_then() {
        let mut cache = AnswerCache::new(11);
        cache.sync(5);
        let mut misses = 0;
        let mut hits = 0;
        let mut next = 0u8;
        for _ in 0..10_000 {
            match cache.lookup(b"k") {
                Lookup::Hit(_) => hits += 1,
                Lookup::Miss => {
                    misses += 1;
                    next = next.wrapping_add(1);
                    cache.store(b"k", response(next), Cacheable::Ordered);
                }
            }
        }
        assert_eq!(cache.responses(b"k"), ORDERS);
        // After the orders fill, about one lookup in REDRAW_ONE_IN is a redraw.
        let expected = 10_000 / REDRAW_ONE_IN as usize;
        assert!(
            misses > expected / 2 && misses < expected * 2,
            "{misses} misses, {hits} hits"
        );
    }

    #[test]
    fn a_new_index_empties_it_and_uncacheable_answers_are_not_kept() {
        let mut cache = AnswerCache::new(3);
        cache.sync(5);
        cache.store(b"k", response(1), Cacheable::Fixed);
        cache.store(b"n", response(1), Cacheable::No);
        assert!(matches!(cache.lookup(b"n"), Lookup::Miss));
        cache.sync(5);
        assert!(matches!(cache.lookup(b"k"), Lookup::Hit(_)));
        cache.sync(6);
        assert!(matches!(cache.lookup(b"k"), Lookup::Miss));
    }

    #[test]
    fn it_stops_admitting_when_full() {
        let mut cache = AnswerCache::new(3);
        cache.sync(1);
        for k in 0..(MAX_ENTRIES + 10) {
            cache.store(k.to_string().as_bytes(), response(1), Cacheable::Fixed);
        }
        assert_eq!(cache.entries.len(), MAX_ENTRIES);
        assert!(cache.bytes <= MAX_BYTES);
    }
}
