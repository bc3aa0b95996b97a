//! The Raft log and vote in RocksDB. An append is written at once (readable, so the
//! leader replicates it while it syncs) and synced by the log's flusher thread
//! (`log_flusher.rs`), which tells openraft it is durable only after the fsync; the
//! vote is written with `sync = true`. So a kill -9 or power loss cannot lose an
//! acknowledged write or a cast vote.

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};

use super::log_flusher::LogFlusher;
use super::recent_entries::RecentEntries;
use super::{blocking, cf, CF_LOGS, CF_RAFT_META};
use crate::codec;
use crate::metrics::Metrics;
use crate::raft_types::{Entry, LogId, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// Stored bytes of the newest entries kept decoded (`RecentEntries`): at 256
/// concurrent writers an entry is about 30 KB, so this holds a few hundred entries,
/// far more than are between appended and applied or replicated.
const RECENT_ENTRIES_BYTES: usize = 8 << 20;

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

fn io_err<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(e.to_string())
}

/// Log storage handle; cheap to clone (openraft takes one as its log reader).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    /// Highest committed index this node has heard of, for status and readiness.
    committed: Arc<AtomicU64>,
    recent: Arc<RecentEntries>,
    flusher: Arc<LogFlusher>,
    metrics: Arc<Metrics>,
}

impl LogStore {
    pub fn new(db: Arc<DB>, metrics: Arc<Metrics>) -> Self {
        let store = Self {
            committed: Arc::new(AtomicU64::new(0)),
            recent: Arc::new(RecentEntries::new(RECENT_ENTRIES_BYTES)),
            flusher: Arc::new(LogFlusher::start(&db, metrics.clone())),
            db,
            metrics,
        };
        if let Ok(Some(c)) = store.get_meta::<LogId>(KEY_COMMITTED) {
            store.committed.store(c.index, Ordering::Relaxed);
        }
        store
    }

    /// Makes an empty log start right after `last`, as if every entry up to it had
    /// been committed and purged behind a snapshot (a restored backup), with `vote`
    /// as the node's vote. Synced.
    pub fn seed_restored(&self, last: LogId, vote: &Vote) -> io::Result<()> {
        self.put_meta(KEY_LAST_PURGED, &last, true)?;
        self.put_meta(KEY_COMMITTED, &Some(last), true)?;
        self.put_meta(KEY_VOTE, vote, true)
    }

    /// Shared view of the committed index (updated whenever openraft saves it).
    pub fn committed_index(&self) -> Arc<AtomicU64> {
        self.committed.clone()
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> io::Result<Option<T>> {
        let bytes = self
            .db
            .get_cf(cf(&self.db, CF_RAFT_META), key)
            .map_err(io_err)?;
        bytes
            .map(|b| codec::from_slice(&b).map_err(io_err))
            .transpose()
    }

    fn put_meta<T: serde::Serialize>(&self, key: &[u8], value: &T, sync: bool) -> io::Result<()> {
        let bytes = codec::to_vec(value).map_err(io_err)?;
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        // Inline: the commit index is saved on every commit (see `blocking`).
        self.db
            .put_cf_opt(cf(&self.db, CF_RAFT_META), key, bytes, &opts)
            .map_err(io_err)
    }

    fn last_entry_log_id(&self) -> io::Result<Option<LogId>> {
        let mut iter = self
            .db
            .iterator_cf(cf(&self.db, CF_LOGS), IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (_, value) = item.map_err(io_err)?;
                let entry: Entry = codec::from_slice(&value).map_err(io_err)?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        if let Some(entries) = self.recent.get(&range) {
            return Ok(entries);
        }
        let start = match range.start_bound() {
            std::ops::Bound::Included(x) => *x,
            std::ops::Bound::Excluded(x) => *x + 1,
            std::ops::Bound::Unbounded => 0,
        };
        let mut entries = Vec::new();
        let iter = self.db.iterator_cf(
            cf(&self.db, CF_LOGS),
            IteratorMode::From(&index_key(start), Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(io_err)?;
            let index = key_index(&key).ok_or_else(|| io_err("malformed log key"))?;
            if !range.contains(&index) {
                break;
            }
            let entry: Entry = codec::from_slice(&value).map_err(io_err)?;
            entries.push(entry);
        }
        Ok(entries)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.get_meta(KEY_VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged: Option<LogId> = self.get_meta(KEY_LAST_PURGED)?;
        let last = self.last_entry_log_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        // Synced: this also syncs every append written before it.
        self.put_meta(KEY_VOTE, vote, true)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        if let Some(c) = committed {
            self.committed.fetch_max(c.index, Ordering::Relaxed);
        }
        // Not synced: committed is a hint that lets a restarted node apply sooner; losing
        // it is safe because the leader re-establishes it.
        self.put_meta(KEY_COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        self.get_meta(KEY_COMMITTED)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let logs = cf(&self.db, CF_LOGS);
        let mut written = Vec::new();
        for entry in entries {
            let bytes = codec::to_vec(&entry).map_err(io_err)?;
            let size = bytes.len();
            batch.put_cf(logs, index_key(entry.log_id.index), bytes);
            written.push((size, entry));
        }
        let appended = written.len() as u64;
        // Not synced here: written to the WAL (so readable, and replicated while it
        // syncs), then synced by the flusher, which completes `callback` after.
        if let Err(e) = self.db.write(batch) {
            callback.io_completed(Err(io_err(&e)));
            return Err(io_err(e));
        }
        for (size, entry) in written {
            self.recent.appended(entry, size);
        }
        self.metrics.log_entries_appended.add(appended);
        self.flusher.sync_then(callback);
        Ok(())
    }

    async fn truncate_after(&mut self, last: Option<LogId>) -> io::Result<()> {
        // Removes the conflicting suffix after `last`, from the cache first so it never
        // serves an entry the log no longer has.
        let from = last.map_or(0, |l| l.index + 1);
        self.recent.truncated(from);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(&self.db, CF_LOGS), index_key(from), index_key(u64::MAX));
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        blocking(|| self.db.write_opt(batch, &opts)).map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        // Record the purge point first: a crash between the two writes leaves extra
        // entries, never a hole the log state does not account for.
        self.put_meta(KEY_LAST_PURGED, &log_id, true)?;
        self.recent.purged(log_id.index);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            cf(&self.db, CF_LOGS),
            index_key(0),
            index_key(log_id.index + 1),
        );
        blocking(|| self.db.write(batch)).map_err(io_err)
    }
}
