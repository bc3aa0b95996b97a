//! The replicated state machine: applies committed entries to the in-memory catalog
//! (which serves reads) and mirrors every change into RocksDB in the same step, builds
//! and installs snapshots, and restores itself from disk on start.
//!
//! A snapshot is built from a RocksDB point-in-time view of the mirror, on a blocking
//! thread: the mirror's rows and its applied index are written in one atomic batch,
//! so the view is exactly the state at that index, read without the catalog lock and
//! copied into the image without re-encoding a record.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use futures::StreamExt;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use openraft_legacy::network_v1::SnapshotReceiverFactory;
use rocksdb::{WriteBatch, DB};
use serde::Serialize;

use super::snapshot_file::{self, ImageWriter, SnapshotDir};
use super::{blocking, cf, CF_SM_META};
use crate::catalog::Catalog;
use crate::codec;
use crate::metrics::Metrics;
use crate::model::{CommandResult, Kind, Tables};
use crate::raft_types::{
    LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig,
};
use crate::watch::hub::WatchHub;

const KEY_APPLIED: &[u8] = b"applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";

/// The catalog as readers see it: always a state that was reached by applying a
/// prefix of the committed log.
pub type SharedCatalog = Arc<RwLock<Catalog>>;

/// Deletes every row of a column family in `batch`.
fn clear_cf(db: &DB, batch: &mut WriteBatch, cf_name: &str) -> io::Result<()> {
    let handle = cf(db, cf_name);
    let last = db
        .iterator_cf(handle, rocksdb::IteratorMode::End)
        .next()
        .transpose()
        .map_err(sm_write_err)?;
    if let Some((last, _)) = last {
        // The range end is exclusive: delete the last row by itself.
        batch.delete_range_cf(handle, &[] as &[u8], &last);
        batch.delete_cf(handle, &last);
    }
    Ok(())
}

fn sm_write_err<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(format!("writing the state machine: {e}"))
}

/// What went wrong with which snapshot (`doing`: "reading", "writing").
fn snap_err(meta: Option<&SnapshotMeta>, doing: &str, e: impl std::fmt::Display) -> io::Error {
    match meta.and_then(|m| m.last_log_id) {
        Some(at) => io::Error::other(format!("{doing} the snapshot at {at}: {e}")),
        None => io::Error::other(format!("{doing} a snapshot: {e}")),
    }
}

/// State machine handle given to openraft. Cheap to clone.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<DB>,
    snapshots: SnapshotDir,
    catalog: SharedCatalog,
    last_applied: Arc<RwLock<(Option<LogId>, StoredMembership)>>,
    snapshot_seq: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    hub: Arc<WatchHub>,
    /// UNSAFE CONTROL (`replica-diverge`): this replica corrupts what it applies.
    diverge: bool,
}

impl StateMachineStore {
    /// Restores the state machine from disk: the mirrored records, or the stored
    /// snapshot if that is newer (the mirror is written without fsync; the snapshot is).
    pub fn open(
        db: Arc<DB>,
        snapshots: SnapshotDir,
        metrics: Arc<Metrics>,
        watch_history: usize,
        watch_queue: usize,
    ) -> anyhow::Result<Self> {
        let applied: Option<LogId> = get_value(&db, CF_SM_META, KEY_APPLIED)?;
        let membership: StoredMembership =
            get_value(&db, CF_SM_META, KEY_MEMBERSHIP)?.unwrap_or_default();
        let mut tables = Tables::default();
        for (kind, table) in tables.each_mut() {
            for item in db.iterator_cf(cf(&db, kind.store()), rocksdb::IteratorMode::Start) {
                let (key, value) = item?;
                table.load_row(&value).map_err(|e| {
                    anyhow::anyhow!(
                        "decoding the stored {} record {}: {e}",
                        kind.name(),
                        String::from_utf8_lossy(&key)
                    )
                })?;
            }
        }
        let applied_index = applied.map(|l| l.index).unwrap_or(0);
        let store = Self {
            catalog: Arc::new(RwLock::new(Catalog::from_tables(tables, applied_index))),
            hub: Arc::new(WatchHub::new(applied_index, watch_history, watch_queue)),
            last_applied: Arc::new(RwLock::new((applied, membership))),
            db,
            snapshots,
            snapshot_seq: Arc::new(AtomicU64::new(0)),
            metrics,
            diverge: false,
        };
        // A snapshot being received when the node stopped is incomplete: the leader
        // sends it again.
        store.snapshots.remove_received()?;
        if let Some(image) = store.snapshots.load()? {
            // After a purge the snapshot is the only copy of the purged prefix: a
            // damaged one stops the node rather than starting it with state missing.
            let (meta, tables) = snapshot_file::decode(&image)
                .map_err(|e| anyhow::anyhow!("reading this node's stored snapshot: {e}"))?;
            if meta.last_log_id > applied {
                store
                    .replace_state(&meta, tables)
                    .map_err(|e| anyhow::anyhow!("restoring state from snapshot: {e}"))?;
            }
        }
        Ok(store)
    }

    /// UNSAFE CONTROL (`replica-diverge`): from now on this replica applies some
    /// registrations differently (`unsafe_control::diverged`).
    pub fn diverging(mut self) -> Self {
        self.diverge = true;
        self
    }

    /// The read view of the catalog.
    pub fn catalog(&self) -> SharedCatalog {
        self.catalog.clone()
    }

    /// Where applied changes are published for watchers.
    pub fn hub(&self) -> Arc<WatchHub> {
        self.hub.clone()
    }

    /// Replaces the whole state with a snapshot's contents, on disk and in memory.
    fn replace_state(&self, meta: &SnapshotMeta, tables: Tables) -> io::Result<()> {
        let applied_index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        let mut batch = WriteBatch::default();
        for (kind, table) in tables.each() {
            // Every row goes, so no stale row outlives the install and returns on restart.
            clear_cf(&self.db, &mut batch, kind.store())?;
            let handle = cf(&self.db, kind.store());
            for row in table.rows() {
                let (key, value) = row.map_err(sm_write_err)?;
                batch.put_cf(handle, key, value);
            }
        }
        let meta_cf = cf(&self.db, CF_SM_META);
        batch.put_cf(meta_cf, KEY_APPLIED, to_stored(&meta.last_log_id)?);
        batch.put_cf(meta_cf, KEY_MEMBERSHIP, to_stored(&meta.last_membership)?);
        blocking(|| self.db.write(batch)).map_err(sm_write_err)?;
        let catalog = Catalog::from_tables(tables, applied_index);
        let mut current = self.catalog.write().expect("catalog lock poisoned");
        *current = catalog;
        // Still under the write lock: watchers see the reset exactly at this state.
        self.hub.snapshot_installed(applied_index);
        drop(current);
        *self.last_applied.write().expect("applied lock poisoned") =
            (meta.last_log_id, meta.last_membership.clone());
        Ok(())
    }

    /// Where backups are read from. It does not keep the database open: a stopped
    /// node's data dir must be free for the next process (or test) to open.
    pub fn backup_source(&self) -> BackupSource {
        BackupSource {
            db: Arc::downgrade(&self.db),
        }
    }

    /// Keeps `image` as this node's current snapshot, durably (synced file).
    fn save_snapshot(&self, meta: &SnapshotMeta, image: &[u8]) -> io::Result<()> {
        let snapshots = self.snapshots.clone();
        blocking(|| snapshots.store(image).map(drop))
            .map_err(|e| snap_err(Some(meta), "writing", e))
    }
}

/// Builds backup images of a running node's state (`StateMachineStore::backup_source`).
#[derive(Clone)]
pub struct BackupSource {
    db: std::sync::Weak<DB>,
}

impl BackupSource {
    /// A snapshot image of the state as now persisted, for a backup. Independent of
    /// Raft's own snapshots (nothing is stored or purged). `None`: the node stopped.
    pub async fn image(&self) -> Option<io::Result<(SnapshotMeta, Vec<u8>)>> {
        let db = self.db.upgrade()?;
        let built = tokio::task::spawn_blocking(move || build_image(&db)).await;
        Some(built.unwrap_or_else(|e| Err(snap_err(None, "building", e))))
    }
}

/// Builds a snapshot image of the mirror as of one atomic point in time.
fn build_image(db: &DB) -> io::Result<(SnapshotMeta, Vec<u8>)> {
    let view = db.snapshot();
    let read = |e: rocksdb::Error| snap_err(None, "reading the state for", e);
    let meta_value = |key: &[u8]| -> io::Result<Option<Vec<u8>>> {
        view.get_cf(cf(db, CF_SM_META), key).map_err(read)
    };
    let decode_meta = |e: codec::CodecError| snap_err(None, "reading the state for", e);
    let last_log_id: Option<LogId> = match meta_value(KEY_APPLIED)? {
        Some(b) => codec::from_slice(&b).map_err(decode_meta)?,
        None => None,
    };
    let last_membership: StoredMembership = match meta_value(KEY_MEMBERSHIP)? {
        Some(b) => codec::from_slice(&b).map_err(decode_meta)?,
        None => StoredMembership::default(),
    };
    let meta = SnapshotMeta {
        last_log_id,
        last_membership,
    };
    let mut image = ImageWriter::new(&meta);
    for kind in Kind::ALL {
        let rows = view
            .iterator_cf(cf(db, kind.store()), rocksdb::IteratorMode::Start)
            .map(|item| item.map(|(_, value)| value))
            .collect::<Result<Vec<_>, _>>()
            .map_err(read)?;
        image.section(kind.snapshot_field(), rows.iter().map(|r| &r[..]));
    }
    Ok((meta, image.finish()))
}

fn get_value<T: serde::de::DeserializeOwned>(
    db: &DB,
    cf_name: &str,
    key: &[u8],
) -> anyhow::Result<Option<T>> {
    match db.get_cf(cf(db, cf_name), key)? {
        Some(b) => Ok(Some(codec::from_slice(&b)?)),
        None => Ok(None),
    }
}

fn to_stored<T: Serialize>(v: &T) -> io::Result<Vec<u8>> {
    codec::to_vec(v).map_err(sm_write_err)
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let started = Instant::now();
        let (db, snapshots) = (self.db.clone(), self.snapshots.clone());
        // All O(catalog) work runs on a blocking thread, never on an async worker.
        let (meta, file, bytes) = tokio::task::spawn_blocking(move || {
            let (meta, image) = build_image(&db)?;
            let file = snapshots
                .store(&image)
                .map_err(|e| snap_err(Some(&meta), "writing", e))?;
            Ok::<_, io::Error>((meta, file, image.len()))
        })
        .await
        .map_err(|e| snap_err(None, "building", e))??;
        self.metrics.snapshots_built.inc();
        tracing::info!(
            last_log_id = ?meta.last_log_id,
            bytes,
            took_ms = started.elapsed().as_millis() as u64,
            "built snapshot"
        );
        Ok(Snapshot {
            meta,
            snapshot: tokio::fs::File::from_std(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok(self
            .last_applied
            .read()
            .expect("applied lock poisoned")
            .clone())
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: futures::Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        // Everything openraft has ready comes as one batch: one catalog lock, one
        // mirror write. (It is ready at once: the entries were read before the call.)
        let mut ready = Vec::new();
        while let Some(item) = entries.next().await {
            ready.push(item?);
        }
        let started = Instant::now();
        let mut results = Vec::new();
        let mut responders = Vec::with_capacity(ready.len());
        let mut batch = WriteBatch::default();
        let mut last_log_id = None;
        let mut membership = None;
        // What the entries changed, encoded into the mirror batch once the catalog lock
        // is released: readers and watchers wait on that lock, the encoding need not.
        let mut applied_changes = Vec::new();
        {
            // Readers see either the state before this batch or after it, never a
            // half-applied entry.
            let mut catalog = self.catalog.write().expect("catalog lock poisoned");
            for (entry, responder) in ready {
                responders.push(responder);
                last_log_id = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => {
                        catalog.advance_to(entry.log_id.index);
                        self.hub.publish(entry.log_id.index, Vec::new());
                        results.push(CommandResult::None);
                    }
                    EntryPayload::Membership(m) => {
                        catalog.advance_to(entry.log_id.index);
                        self.hub.publish(entry.log_id.index, Vec::new());
                        membership = Some(StoredMembership::new(Some(entry.log_id), m));
                        results.push(CommandResult::None);
                    }
                    EntryPayload::Normal(cmd) => {
                        let index = entry.log_id.index;
                        // UNSAFE CONTROL (`replica-diverge`).
                        let corrupted = self
                            .diverge
                            .then(|| crate::unsafe_control::diverged(&cmd, index))
                            .flatten();
                        let effects = catalog.apply(index, corrupted.as_ref().unwrap_or(&cmd));
                        // Published under the catalog write lock, in index order.
                        applied_changes.extend(self.hub.publish(index, effects.changes));
                        results.push(effects.result);
                    }
                }
            }
            let mut applied = self.last_applied.write().expect("applied lock poisoned");
            applied.0 = last_log_id.or(applied.0);
            if let Some(m) = &membership {
                applied.1 = m.clone();
            }
        }
        for change in applied_changes.iter().flat_map(|c| &c.changes) {
            let handle = cf(&self.db, change.kind().store());
            match change.row().map_err(sm_write_err)? {
                (key, Some(value)) => batch.put_cf(handle, key, value),
                (key, None) => batch.delete_cf(handle, key),
            }
        }
        let meta_cf = cf(&self.db, CF_SM_META);
        if last_log_id.is_some() {
            batch.put_cf(meta_cf, KEY_APPLIED, to_stored(&last_log_id)?);
        }
        // Only when it changed: the stored membership stays valid until the next one.
        if let Some(m) = &membership {
            batch.put_cf(meta_cf, KEY_MEMBERSHIP, to_stored(m)?);
        }
        // Not synced: the log is, and on restart entries after the persisted applied
        // index are applied again (apply is deterministic, so the result is the same).
        // Inline: a memtable and WAL write, shorter than a hand-off (see `blocking`).
        self.db.write(batch).map_err(sm_write_err)?;
        if !results.is_empty() {
            self.metrics
                .apply_latency
                .observe(started.elapsed().as_secs_f64() / results.len() as f64);
        }
        // Answered once the mirror holds them, as before: a caller's write is applied
        // on disk too when it hears back.
        for (responder, result) in responders.into_iter().zip(results) {
            if let Some(responder) = responder {
                responder.send(result);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> io::Result<()> {
        let mut received = snapshot.into_std().await;
        let image = blocking(|| {
            use std::io::{Read, Seek};
            received.rewind()?;
            let mut image = Vec::new();
            received.read_to_end(&mut image)?;
            Ok::<_, std::io::Error>(image)
        })
        .map_err(|e| snap_err(Some(meta), "reading", e))?;
        let (_, tables) =
            snapshot_file::decode(&image).map_err(|e| snap_err(Some(meta), "reading", e))?;
        // Durable first: once the state is replaced the log before it may be purged.
        self.save_snapshot(meta, &image)?;
        drop(image);
        let snapshots = self.snapshots.clone();
        blocking(|| snapshots.remove_received()).map_err(|e| snap_err(Some(meta), "writing", e))?;
        self.replace_state(meta, tables)?;
        self.metrics.snapshots_installed.inc();
        tracing::info!(last_log_id = ?meta.last_log_id, "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let snapshots = self.snapshots.clone();
        let Some((file, image)) =
            blocking(|| snapshots.open()).map_err(|e| snap_err(None, "reading", e))?
        else {
            return Ok(None);
        };
        let meta = snapshot_file::read_meta(&image).map_err(|e| snap_err(None, "reading", e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: tokio::fs::File::from_std(file),
        }))
    }
}

impl SnapshotReceiverFactory<TypeConfig> for StateMachineStore {
    type SnapshotReceiver = SnapshotData;

    async fn begin_receiving_snapshot(&mut self) -> io::Result<SnapshotData> {
        let seq = self.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshots = self.snapshots.clone();
        let file =
            blocking(|| snapshots.receiving(seq)).map_err(|e| snap_err(None, "receiving", e))?;
        Ok(tokio::fs::File::from_std(file))
    }
}
