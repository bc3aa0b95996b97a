//! The watch hub: the ordered record of catalog changes that watch streams are served
//! from. The state machine publishes each applied entry's changes here while it still
//! holds the catalog write lock, so a watcher that subscribes under the catalog read
//! lock sees exactly the changes after the state it snapshotted — no gap, no repeat.
//!
//! Memory is bounded twice: the retained history keeps at most `history_limit`
//! indexes (older ones are compacted; resuming from before them gets a Reset), and
//! each live watcher has a bounded queue (a watcher that falls behind it gets a Reset).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use super::encoded::EncodedChanges;
use crate::model::Change;

/// Every change made by the log entry at `index`.
#[derive(Debug)]
pub struct IndexChanges {
    pub index: u64,
    pub changes: Vec<Change>,
    /// The changes in wire form, made by the first watcher that sends one of them and
    /// shared by the rest; dropped once the index is `ENCODED_KEPT` indexes behind the
    /// newest (only a watcher resuming or catching up from that far back encodes
    /// them again), so the history does not hold every change twice.
    encoded: Mutex<Option<Arc<EncodedChanges>>>,
}

impl IndexChanges {
    pub fn new(index: u64, changes: Vec<Change>) -> Self {
        Self {
            index,
            changes,
            encoded: Mutex::new(None),
        }
    }

    /// The shared wire form, built with `encode` by the first caller.
    pub fn encoded(&self, encode: impl FnOnce(&[Change]) -> EncodedChanges) -> Arc<EncodedChanges> {
        let mut slot = self.encoded.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert_with(|| Arc::new(encode(&self.changes)))
            .clone()
    }

    fn drop_encoded(&self) {
        *self.encoded.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Indexes (with changes) behind the newest whose wire form is kept: live watchers
/// are within a few of the newest.
const ENCODED_KEPT: usize = 64;

/// What live watchers receive.
#[derive(Debug, Clone)]
pub enum HubEvent {
    Changes(Arc<IndexChanges>),
    /// The replica was replaced by a snapshot at this index: history before it is gone.
    SnapshotInstalled(u64),
    /// The node is stopping: every watch stream ends.
    Stopping,
}

/// Default number of indexes (with changes) kept for resuming watches.
pub const DEFAULT_HISTORY_LIMIT: usize = 10_000;
/// Default number of events a live watcher may fall behind before it is reset.
pub const DEFAULT_WATCHER_QUEUE: usize = 1_024;

struct History {
    entries: VecDeque<Arc<IndexChanges>>,
    /// Changes at or below this index are no longer retained.
    compacted_through: u64,
}

pub struct WatchHub {
    history: Mutex<History>,
    history_limit: usize,
    live: broadcast::Sender<HubEvent>,
    applied: watch::Sender<u64>,
    /// Set (before `Stopping` is sent) when the node stops.
    stopping: AtomicBool,
}

/// A watcher's starting point: the retained changes after its index, then live events.
#[derive(Debug)]
pub struct Subscription {
    pub backlog: Vec<Arc<IndexChanges>>,
    pub live: broadcast::Receiver<HubEvent>,
}

/// `from_index` is older than the retained history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub compacted_through: u64,
}

impl WatchHub {
    pub fn new(applied_index: u64, history_limit: usize, watcher_queue: usize) -> Self {
        let (live, _) = broadcast::channel(watcher_queue.max(1));
        let (applied, _) = watch::channel(applied_index);
        Self {
            history: Mutex::new(History {
                entries: VecDeque::new(),
                // Nothing before the state we started from is in the history.
                compacted_through: applied_index,
            }),
            history_limit: history_limit.max(1),
            live,
            applied,
            stopping: AtomicBool::new(false),
        }
    }

    /// Records an applied entry. Must be called in index order, under the catalog
    /// write lock. Entries without changes only advance the applied index.
    pub fn publish(&self, index: u64, changes: Vec<Change>) {
        if !changes.is_empty() {
            let entry = Arc::new(IndexChanges::new(index, changes));
            let mut h = self.history.lock().expect("hub lock poisoned");
            h.entries.push_back(entry.clone());
            if let Some(old) = h.entries.len().checked_sub(ENCODED_KEPT + 1) {
                h.entries[old].drop_encoded();
            }
            while h.entries.len() > self.history_limit {
                if let Some(old) = h.entries.pop_front() {
                    h.compacted_through = old.index;
                }
            }
            // Sent while the history lock is held, so subscribe() never sees an entry
            // both in the backlog and live.
            let _ = self.live.send(HubEvent::Changes(entry));
        }
        // After the broadcast: a watcher that reads `applied` and then drains its
        // queue has every change up to that index.
        self.applied.send_replace(index);
    }

    /// The replica was replaced by a snapshot: drop history, tell live watchers.
    pub fn snapshot_installed(&self, index: u64) {
        let mut h = self.history.lock().expect("hub lock poisoned");
        h.entries.clear();
        h.compacted_through = index;
        let _ = self.live.send(HubEvent::SnapshotInstalled(index));
        drop(h);
        self.applied.send_replace(index);
    }

    /// Ends every watch stream: live ones get `Stopping`; one that subscribes later
    /// finds `is_stopping`. Streams watch this instead of a cancellation token each, so
    /// waiting for the next event registers one waker, not two.
    pub fn stop_watches(&self) {
        let _h = self.history.lock().expect("hub lock poisoned");
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.live.send(HubEvent::Stopping);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Subscribes to the changes after `from_index`. Call under the catalog read lock
    /// when pairing with a snapshot.
    pub fn subscribe(&self, from_index: u64) -> Result<Subscription, Compacted> {
        let h = self.history.lock().expect("hub lock poisoned");
        if from_index < h.compacted_through {
            return Err(Compacted {
                compacted_through: h.compacted_through,
            });
        }
        let backlog = h
            .entries
            .iter()
            .filter(|e| e.index > from_index)
            .cloned()
            .collect();
        Ok(Subscription {
            backlog,
            live: self.live.subscribe(),
        })
    }

    /// The last applied index published.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// A receiver to wait on the applied index.
    pub fn applied_watch(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    pub fn live_watchers(&self) -> usize {
        self.live.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remove(id: &str) -> Change {
        Change::Instance(crate::model::RecordChange::Delete((
            "web".into(),
            id.into(),
        )))
    }

    #[test]
    fn subscribe_returns_backlog_after_index_then_live_without_overlap() {
        let hub = WatchHub::new(0, 100, 16);
        hub.publish(1, vec![remove("a")]);
        hub.publish(2, vec![]);
        hub.publish(3, vec![remove("b")]);
        let mut sub = hub.subscribe(1).unwrap();
        assert_eq!(
            sub.backlog.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![3]
        );
        hub.publish(4, vec![remove("c")]);
        match sub.live.try_recv().unwrap() {
            HubEvent::Changes(c) => assert_eq!(c.index, 4),
            other => panic!("unexpected {other:?}"),
        }
        assert!(sub.live.try_recv().is_err());
        assert_eq!(hub.applied_index(), 4);
    }

    #[test]
    fn history_is_bounded_and_old_indexes_are_compacted() {
        let hub = WatchHub::new(0, 2, 16);
        for i in 1..=5 {
            hub.publish(i, vec![remove("x")]);
        }
        assert_eq!(
            hub.subscribe(2).unwrap_err(),
            Compacted {
                compacted_through: 3
            }
        );
        let sub = hub.subscribe(3).unwrap();
        assert_eq!(
            sub.backlog.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![4, 5]
        );
    }

    #[test]
    fn a_slow_live_watcher_lags_instead_of_growing() {
        let hub = WatchHub::new(0, 100, 2);
        let mut sub = hub.subscribe(0).unwrap();
        for i in 1..=5 {
            hub.publish(i, vec![remove("x")]);
        }
        assert!(matches!(
            sub.live.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }

    #[test]
    fn snapshot_install_resets_history() {
        let hub = WatchHub::new(0, 100, 16);
        hub.publish(1, vec![remove("a")]);
        let mut sub = hub.subscribe(1).unwrap();
        hub.snapshot_installed(50);
        assert!(matches!(
            sub.live.try_recv().unwrap(),
            HubEvent::SnapshotInstalled(50)
        ));
        assert!(hub.subscribe(10).is_err());
        assert!(hub.subscribe(50).unwrap().backlog.is_empty());
    }
}
