//! Records and tables: what every replicated record kind provides (`Record`), the
//! ordered map that holds one kind (`Table`), and the kind-agnostic view of a table
//! (`AnyTable`) that the digest, snapshots, the storage mirror and restore walk.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec;

/// A replicated record kind.
pub trait Record:
    Serialize + DeserializeOwned + Clone + PartialEq + Eq + Debug + Send + Sync + 'static
{
    type Key: Ord + Clone + Debug + Send + Sync;
    /// The kind's name in digests, errors and logs.
    const KIND: &'static str;
    /// The RocksDB column family its rows are mirrored in.
    const STORE: &'static str;
    /// Its field in the snapshot document.
    const SNAPSHOT_FIELD: &'static str;

    fn key(&self) -> Self::Key;
    /// The storage key of a row; orders like `Self::Key`.
    fn key_bytes(key: &Self::Key) -> Vec<u8>;
}

/// One change to one record of kind `R`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordChange<R: Record> {
    /// Written: the record as it is now.
    Put(R),
    /// Removed.
    Delete(R::Key),
}

impl<R: Record> RecordChange<R> {
    pub fn key_bytes(&self) -> Vec<u8> {
        match self {
            RecordChange::Put(r) => R::key_bytes(&r.key()),
            RecordChange::Delete(k) => R::key_bytes(k),
        }
    }

    /// The row value a put writes (`None` for a delete).
    pub fn encoded(&self) -> codec::Result<Option<Vec<u8>>> {
        match self {
            RecordChange::Put(r) => codec::to_vec(r).map(Some),
            RecordChange::Delete(_) => Ok(None),
        }
    }
}

/// The records of one kind, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table<R: Record> {
    rows: BTreeMap<R::Key, R>,
}

impl<R: Record> Default for Table<R> {
    fn default() -> Self {
        Self {
            rows: BTreeMap::new(),
        }
    }
}

impl<R: Record> Table<R> {
    pub fn get(&self, key: &R::Key) -> Option<&R> {
        self.rows.get(key)
    }

    pub fn get_mut(&mut self, key: &R::Key) -> Option<&mut R> {
        self.rows.get_mut(key)
    }

    pub fn contains(&self, key: &R::Key) -> bool {
        self.rows.contains_key(key)
    }

    /// Inserts or replaces the record under its own key.
    pub fn put(&mut self, record: R) -> Option<R> {
        self.rows.insert(record.key(), record)
    }

    pub fn remove(&mut self, key: &R::Key) -> Option<R> {
        self.rows.remove(key)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every record, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &R> {
        self.rows.values()
    }

    /// Records whose keys fall in `range`, in key order.
    pub fn range(&self, range: impl RangeBounds<R::Key>) -> impl Iterator<Item = (&R::Key, &R)> {
        self.rows.range(range)
    }
}

/// Rows as a table hands them out: (storage key, encoded record), in key order.
pub type Rows<'a> = Box<dyn Iterator<Item = codec::Result<(Vec<u8>, Vec<u8>)>> + 'a>;

/// A table seen without its record type: what every kind must support for the
/// catalog's kind-agnostic walks. Encodings are serde JSON of the record (canonical:
/// fixed field order, sorted maps).
pub trait AnyTable: Send + Sync {
    fn kind(&self) -> &'static str;
    fn store(&self) -> &'static str;
    fn snapshot_field(&self) -> &'static str;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn clear(&mut self);
    /// Each row as (storage key, encoded record), in key order.
    fn rows(&self) -> Rows<'_>;
    /// Adds one encoded record (from the storage mirror or a snapshot image).
    fn load_row(&mut self, value: &[u8]) -> codec::Result<()>;
}

impl<R: Record> AnyTable for Table<R> {
    fn kind(&self) -> &'static str {
        R::KIND
    }

    fn store(&self) -> &'static str {
        R::STORE
    }

    fn snapshot_field(&self) -> &'static str {
        R::SNAPSHOT_FIELD
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn clear(&mut self) {
        self.rows.clear();
    }

    fn rows(&self) -> Rows<'_> {
        Box::new(
            self.rows
                .iter()
                .map(|(k, r)| Ok((R::key_bytes(k), codec::to_vec(r)?))),
        )
    }

    fn load_row(&mut self, value: &[u8]) -> codec::Result<()> {
        self.put(codec::from_slice::<R>(value)?);
        Ok(())
    }
}
