//! Durable storage in a data dir: the Raft log and vote (`log_store`) and the state
//! machine's mirror (`state_machine`) in one RocksDB instance, the current snapshot as
//! a file beside it (`snapshot_file`), and the dir's format version (`format`).
//!
//! Column families:
//! - `logs`: log index (big-endian u64) → entry;
//! - `raft_meta`: vote, committed log id, last purged log id;
//! - `sm_meta`: last applied log id, last membership;
//! - one per record kind (`model::Kind::store`), mirrored on every apply:
//!   `sm_records` (`service/id` → instance), `sm_leases` (id, big-endian u64 → lease),
//!   `sm_config` (key → config entry).
//!
//! Encodings here are Waymark's own serde types in `codec` (MessagePack), never the
//! protobuf wire types.

pub mod format;
#[cfg(test)]
mod format_golden;
mod log_flusher;
pub mod log_store;
mod recent_entries;
pub mod restore;
pub mod snapshot_file;
pub mod state_machine;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rocksdb::{ColumnFamilyDescriptor, Options, DB};

use crate::model::Kind;

pub use log_store::LogStore;
pub use state_machine::StateMachineStore;

pub(crate) const CF_LOGS: &str = "logs";
pub(crate) const CF_RAFT_META: &str = "raft_meta";
pub(crate) const CF_SM_META: &str = "sm_meta";

/// Where the current snapshot image is kept, under the data dir.
pub fn snapshot_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("snapshots")
}

/// Opens (or creates) the node's database under `dir`, after checking that the dir
/// is in this build's storage format.
pub fn open_db(dir: &Path) -> anyhow::Result<Arc<DB>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    format::check_or_init(dir)?;
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // The busy `logs` column family would otherwise keep old WAL files alive for the
    // rarely written ones (vote, metadata): cap the WAL so RocksDB flushes those and
    // deletes old segments (without this, data dirs grew by GBs under load).
    opts.set_max_total_wal_size(128 << 20);
    let cfs = [CF_LOGS, CF_RAFT_META, CF_SM_META]
        .into_iter()
        .chain(Kind::ALL.iter().map(|k| k.store()))
        .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    let db = DB::open_cf_descriptors(&opts, dir.join("db"), cfs)
        .with_context(|| format!("opening RocksDB in {}", dir.display()))?;
    Ok(Arc::new(db))
}

/// Looks up a column family that `open_db` always creates.
pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} is created by open_db"))
}

/// Runs a long blocking call (snapshot files, a whole state replaced) without stalling
/// the async worker it is called on.
///
/// Not for the per-write path (log append, apply, commit index): `block_in_place`
/// hands the worker to another thread on every call, about 100 µs on a VM (apply took
/// 143 µs a write with it, 35 µs without), more than those writes take, and Raft's
/// core waits for each of them anyway. Those run inline on the Raft runtime's worker.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
