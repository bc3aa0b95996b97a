//! The search's memory: interned model states and the set of (linearized operations,
//! state) pairs already explored, each kept in a few flat arenas.
//!
//! Flat because a hard search meets millions of pairs before its time limit. With
//! one heap allocation per pair (a boxed bitset and an owned state) the memory grew
//! with them, and so did the time to free it all: a search stopped at its limit went
//! on for many seconds dropping its cache, past the limit it was meant to honour.
//! Here a pair is a run of words in one vector and a state number, and the states
//! themselves are stored once each however many pairs share them.

use std::hash::{Hash, Hasher};

/// An empty slot of an [`IndexTable`].
const EMPTY: u32 = u32::MAX;

/// The entries an arena may hold: indices are `u32` to halve the table, and
/// [`EMPTY`] is reserved.
const MAX_ENTRIES: usize = (u32::MAX - 1) as usize;

/// The arenas are full: the search cannot remember more and must give up.
#[derive(Debug)]
pub(super) struct Full;

/// An open-addressing hash table of indices into an arena that the caller owns, so
/// that the keys are stored once, in the arena, and the table is one flat vector.
struct IndexTable {
    slots: Vec<u32>,
    len: usize,
}

impl IndexTable {
    fn new() -> Self {
        Self {
            slots: vec![EMPTY; 1024],
            len: 0,
        }
    }

    /// The index whose entry `is_match` says is the one, else the free slot where an
    /// entry with this hash goes.
    fn find(&self, hash: u64, mut is_match: impl FnMut(usize) -> bool) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        loop {
            match self.slots[slot] {
                EMPTY => return Err(slot),
                index if is_match(index as usize) => return Ok(index as usize),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Puts `index` in the free `slot` that [`IndexTable::find`] returned, growing
    /// the table (with `hash_of` for the entries already in) past half full, which
    /// keeps probe runs short.
    fn insert(&mut self, slot: usize, index: usize, hash_of: impl Fn(usize) -> u64) {
        self.slots[slot] = index as u32;
        self.len += 1;
        if 2 * self.len > self.slots.len() {
            let mut slots = vec![EMPTY; 2 * self.slots.len()];
            let mask = slots.len() - 1;
            for &entry in self.slots.iter().filter(|&&e| e != EMPTY) {
                let mut slot = hash_of(entry as usize) as usize & mask;
                while slots[slot] != EMPTY {
                    slot = (slot + 1) & mask;
                }
                slots[slot] = entry;
            }
            self.slots = slots;
        }
    }
}

/// Every distinct model state the search has reached, numbered, each stored once.
pub(super) struct States<S> {
    states: Vec<S>,
    hashes: Vec<u64>,
    table: IndexTable,
}

impl<S: Eq + Hash> States<S> {
    pub(super) fn new() -> Self {
        Self {
            states: Vec::new(),
            hashes: Vec::new(),
            table: IndexTable::new(),
        }
    }

    /// The number of `state`, giving it one if it is new.
    pub(super) fn intern(&mut self, state: S) -> Result<u32, Full> {
        let mut hasher = FxHasher::default();
        state.hash(&mut hasher);
        let hash = finish(hasher.0);
        match self
            .table
            .find(hash, |i| self.hashes[i] == hash && self.states[i] == state)
        {
            Ok(index) => Ok(index as u32),
            Err(slot) => {
                let index = self.states.len();
                if index >= MAX_ENTRIES {
                    return Err(Full);
                }
                self.states.push(state);
                self.hashes.push(hash);
                let hashes = &self.hashes;
                self.table.insert(slot, index, |i| hashes[i]);
                Ok(index as u32)
            }
        }
    }

    pub(super) fn get(&self, id: u32) -> &S {
        &self.states[id as usize]
    }
}

/// The set of operations linearized so far, one bit per operation of the part, with
/// a hash kept up to date as bits change (Zobrist hashing: the XOR of a fixed random
/// key per set bit), so that looking a pair up costs no pass over the words.
pub(super) struct Linearized {
    words: Vec<u64>,
    hash: u64,
}

impl Linearized {
    pub(super) fn new(ops: usize) -> Self {
        Self {
            words: vec![0; ops.div_ceil(64)],
            hash: 0,
        }
    }

    /// Sets `op`'s bit if it is clear, clears it if it is set.
    pub(super) fn flip(&mut self, op: usize) {
        self.words[op / 64] ^= 1 << (op % 64);
        self.hash ^= zobrist_key(op);
    }
}

/// A fixed pseudo-random key per operation (SplitMix64 of its index).
fn zobrist_key(op: usize) -> u64 {
    finish(
        (op as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15),
    )
}

/// The (linearized operations, state number) pairs the search has been through.
pub(super) struct Seen {
    /// Words per pair: the length of every [`Linearized`] of this part.
    width: usize,
    words: Vec<u64>,
    states: Vec<u32>,
    hashes: Vec<u64>,
    table: IndexTable,
}

impl Seen {
    pub(super) fn new(ops: usize) -> Self {
        Self {
            width: ops.div_ceil(64),
            words: Vec::new(),
            states: Vec::new(),
            hashes: Vec::new(),
            table: IndexTable::new(),
        }
    }

    /// Records the pair unless it is there already; says whether it was new.
    pub(super) fn insert(&mut self, linearized: &Linearized, state: u32) -> Result<bool, Full> {
        let hash = finish(linearized.hash ^ u64::from(state).wrapping_mul(0xff51_afd7_ed55_8ccd));
        let width = self.width;
        let found = self.table.find(hash, |i| {
            self.hashes[i] == hash
                && self.states[i] == state
                && self.words[i * width..(i + 1) * width] == linearized.words[..]
        });
        let Err(slot) = found else {
            return Ok(false);
        };
        let index = self.states.len();
        if index >= MAX_ENTRIES {
            return Err(Full);
        }
        self.words.extend_from_slice(&linearized.words);
        self.states.push(state);
        self.hashes.push(hash);
        let hashes = &self.hashes;
        self.table.insert(slot, index, |i| hashes[i]);
        Ok(true)
    }
}

/// The 64-bit finalizer of MurmurHash3: every input bit affects every output bit,
/// which the table needs because it indexes by the low bits.
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The multiply-rotate hash of rustc (FxHash), for feeding a state's `Hash` into
/// [`finish`]: states are hashed on every step of the search, where SipHash's
/// flooding resistance buys nothing and costs a large share of the run time.
#[derive(Default)]
struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_numbered_once_each() {
        let mut states = States::new();
        let ids: Vec<u32> = (0..5000)
            .map(|i| states.intern(i % 1000).expect("room"))
            .collect();
        assert_eq!(ids[0], ids[1000]);
        assert_ne!(ids[0], ids[1]);
        assert_eq!(*states.get(ids[999]), 999);
        assert_eq!(states.states.len(), 1000);
    }

    #[test]
    fn seen_tells_pairs_apart_by_set_and_state() {
        let mut seen = Seen::new(130);
        let mut linearized = Linearized::new(130);
        assert!(seen.insert(&linearized, 0).expect("room"));
        assert!(!seen.insert(&linearized, 0).expect("room"));
        assert!(seen.insert(&linearized, 1).expect("room"));
        // Enough pairs to grow the table several times; each is new exactly once.
        for op in 0..130 {
            linearized.flip(op);
            assert!(seen.insert(&linearized, 7).expect("room"));
            assert!(!seen.insert(&linearized, 7).expect("room"));
        }
        for op in 0..130 {
            linearized.flip(op);
            assert!(seen.insert(&linearized, 3).expect("room"));
        }
        // Back to the empty set: flipping every bit twice restores set and hash.
        assert_eq!(linearized.hash, 0);
        assert!(!seen.insert(&linearized, 0).expect("room"));
        assert!(!seen.insert(&linearized, 3).expect("room"));
    }
}
