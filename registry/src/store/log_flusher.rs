//! Syncs the log's appends on a thread of its own and only then tells openraft they
//! are durable. The log store writes each append to RocksDB's WAL unsynced and hands
//! its callback here, so Raft's core goes on (replicating the entries it just wrote,
//! handling acknowledgements) while the fsync runs; appends that arrive during one
//! fsync share the next (group commit on every node).
//!
//! Why a plain thread: an fsync blocks, and the Raft runtime has one worker. Why
//! sound: a callback is handed over after its append's write has returned, so the
//! sync that follows covers it; callbacks complete in the order they came, after
//! that sync succeeded, and an error fails them (openraft then stops: a log it cannot
//! make durable is fatal).

use std::sync::mpsc;
use std::sync::{Arc, Weak};

use openraft::storage::IOFlushed;
use rocksdb::DB;

use crate::metrics::Metrics;
use crate::raft_types::TypeConfig;

/// Hands appends' callbacks to the flusher thread; the thread ends when this is dropped.
pub struct LogFlusher {
    tx: mpsc::Sender<IOFlushed<TypeConfig>>,
}

impl LogFlusher {
    /// Starts the thread. It holds the database weakly, so it never keeps a closed
    /// node's database open.
    pub fn start(db: &Arc<DB>, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel();
        let db = Arc::downgrade(db);
        std::thread::Builder::new()
            .name("waymark-log-sync".into())
            .spawn(move || run(&db, &rx, &metrics))
            .expect("spawning the log flusher thread");
        Self { tx }
    }

    /// Completes `callback` once everything written to the log so far is on disk.
    pub fn sync_then(&self, callback: IOFlushed<TypeConfig>) {
        if let Err(mpsc::SendError(callback)) = self.tx.send(callback) {
            callback.io_completed(Err(std::io::Error::other("the log flusher has stopped")));
        }
    }
}

fn run(db: &Weak<DB>, rx: &mpsc::Receiver<IOFlushed<TypeConfig>>, metrics: &Metrics) {
    let mut waiting = Vec::new();
    while let Ok(first) = rx.recv() {
        waiting.push(first);
        waiting.extend(rx.try_iter());
        let synced = match db.upgrade() {
            Some(db) => db.flush_wal(true).map_err(|e| e.to_string()),
            None => Err("the database is closed".to_string()),
        };
        metrics.log_syncs.inc();
        for callback in waiting.drain(..) {
            callback.io_completed(
                synced
                    .clone()
                    .map_err(|e| std::io::Error::other(format!("syncing the Raft log: {e}"))),
            );
        }
    }
}
