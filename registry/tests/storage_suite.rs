//! openraft's own storage test suite (`openraft::testing::Suite`) run against the
//! RocksDB log store and state machine, each case on a fresh data dir.

use std::sync::Arc;

use openraft::testing::log::{StoreBuilder, Suite};
use waymark_registry::metrics::Metrics;
use waymark_registry::raft_types::{StorageError, TypeConfig};
use waymark_registry::store::snapshot_file::SnapshotDir;
use waymark_registry::store::{open_db, snapshot_dir, LogStore, StateMachineStore};

/// Opens the stores exactly as `server::run` does, on a new temp dir that lives as
/// long as the suite's case (the guard).
struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        // A failure to set up the dir is the test's environment, not the store under
        // test: it is reported as a panic with the reason rather than as a StorageError.
        let dir = tempfile::tempdir().expect("creating a temp data dir");
        let db = open_db(dir.path()).expect("opening RocksDB in the temp dir");
        let metrics = Arc::new(Metrics::default());
        let log = LogStore::new(db.clone(), metrics.clone());
        let sm = StateMachineStore::open(
            db,
            SnapshotDir::new(snapshot_dir(dir.path())),
            metrics,
            1_000,
            1_000,
        )
        .expect("opening the state machine");
        Ok((dir, log, sm))
    }
}

// Multi-threaded: the stores hand long RocksDB calls off with `block_in_place`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes_on_the_rocksdb_stores() {
    Suite::test_all(RocksBuilder)
        .await
        .expect("openraft storage suite");
}
