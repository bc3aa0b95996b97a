//! The watch hub: the ordered record of catalog changes that watch streams are served
//! from. The state machine publishes each applied entry's changes here while it still
//! holds the catalog write lock, so a watcher that subscribes under the catalog read
//! lock sees exactly the changes after the state it snapshotted — no gap, no repeat.
//!
//! Memory is bounded twice: the retained history keeps the newest indexes holding at
//! most `history_limit` changes in all (whole indexes, the newest always; older ones
//! are compacted and resuming from before them gets a Reset), and each live watcher
//! has a bounded queue (a watcher that falls behind it gets a Reset). The history
//! counts changes, not indexes, because a group-commit index holds up to 128 writes.
//!
//! Live events go out on `SHARDS + 1` channels, so a watcher is woken only by entries
//! that can matter to it: a watcher of services that all hash to one shard listens on
//! that shard's channel, which carries the entries changing an instance of a service
//! of that shard (plus ACL changes and the hub's own events); every other watcher
//! listens on the channel that carries everything. At 10,000 watchers of 10,000
//! services, a change wakes about 1/64 of them instead of all.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use waymark_proto::WatchSelection;

use super::encoded::EncodedChanges;
use crate::model::{Change, RecordChange};

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

/// Default number of changes kept for resuming watches (tens of MB of records).
pub const DEFAULT_HISTORY_LIMIT: usize = 50_000;
/// Default number of events a live watcher may fall behind before it is reset.
pub const DEFAULT_WATCHER_QUEUE: usize = 1_024;

/// Channels for instance changes by service (`shard_of`).
pub const SHARDS: usize = 64;

/// The shard of a service's instance changes (FNV-1a: stable across runs and nodes).
pub fn shard_of(service: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in service.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

/// Which live events a watcher needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Every entry.
    Everything,
    /// Entries changing instances of this shard's services (and ACL changes).
    Shard(usize),
}

impl Interest {
    /// The narrowest interest that still carries every change a selection can match:
    /// one shard when it selects only instances of named services that share a shard.
    pub fn of(selection: &WatchSelection) -> Self {
        if !selection.config_prefixes.is_empty()
            || selection.ca_roots
            || !selection.intention_destinations.is_empty()
        {
            return Interest::Everything;
        }
        let mut shard = None;
        for topic in &selection.instances {
            let Some(services) = &topic.services else {
                return Interest::Everything;
            };
            for s in services {
                match shard {
                    None => shard = Some(shard_of(s)),
                    Some(first) if first == shard_of(s) => {}
                    Some(_) => return Interest::Everything,
                }
            }
        }
        shard.map_or(Interest::Everything, Interest::Shard)
    }
}

struct History {
    entries: VecDeque<Arc<IndexChanges>>,
    /// Changes at or below this index are no longer retained.
    compacted_through: u64,
    /// Changes in `entries`, all indexes together.
    changes: usize,
}

pub struct WatchHub {
    history: Mutex<History>,
    history_limit: usize,
    /// Every event.
    everything: broadcast::Sender<HubEvent>,
    /// Per shard: the entries changing its services' instances, ACL changes, and the
    /// hub's own events.
    shards: Vec<broadcast::Sender<HubEvent>>,
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
        let queue = watcher_queue.max(1);
        let (everything, _) = broadcast::channel(queue);
        let shards = (0..SHARDS).map(|_| broadcast::channel(queue).0).collect();
        let (applied, _) = watch::channel(applied_index);
        Self {
            history: Mutex::new(History {
                entries: VecDeque::new(),
                // Nothing before the state we started from is in the history.
                compacted_through: applied_index,
                changes: 0,
            }),
            history_limit: history_limit.max(1),
            everything,
            shards,
            applied,
            stopping: AtomicBool::new(false),
        }
    }

    /// Records an applied entry. Must be called in index order, under the catalog
    /// write lock. Entries without changes only advance the applied index.
    ///
    /// Returns the shared entry (`None` when there were no changes), so the caller can
    /// still read the changes after handing them over (the storage mirror encodes
    /// them after the catalog lock is released).
    pub fn publish(&self, index: u64, changes: Vec<Change>) -> Option<Arc<IndexChanges>> {
        let mut published = None;
        if !changes.is_empty() {
            let entry = Arc::new(IndexChanges::new(index, changes));
            published = Some(entry.clone());
            let mut h = self.history.lock().expect("hub lock poisoned");
            h.changes += entry.changes.len();
            h.entries.push_back(entry.clone());
            if let Some(old) = h.entries.len().checked_sub(ENCODED_KEPT + 1) {
                h.entries[old].drop_encoded();
            }
            while h.changes > self.history_limit && h.entries.len() > 1 {
                if let Some(old) = h.entries.pop_front() {
                    h.changes -= old.changes.len();
                    h.compacted_through = old.index;
                }
            }
            // Sent while the history lock is held, so subscribe() never sees an entry
            // both in the backlog and live.
            let touched = touched_shards(&entry.changes);
            for (shard, tx) in self.shards.iter().enumerate() {
                if touched & (1 << shard) != 0 {
                    let _ = tx.send(HubEvent::Changes(entry.clone()));
                }
            }
            let _ = self.everything.send(HubEvent::Changes(entry));
        }
        // After the broadcast: a watcher that reads `applied` and then drains its
        // queue has every change up to that index.
        self.applied.send_replace(index);
        published
    }

    /// The replica was replaced by a snapshot: drop history, tell live watchers.
    pub fn snapshot_installed(&self, index: u64) {
        let mut h = self.history.lock().expect("hub lock poisoned");
        h.entries.clear();
        h.changes = 0;
        h.compacted_through = index;
        self.send_to_all(HubEvent::SnapshotInstalled(index));
        drop(h);
        self.applied.send_replace(index);
    }

    /// Ends every watch stream: live ones get `Stopping`; one that subscribes later
    /// finds `is_stopping`. Streams watch this instead of a cancellation token each, so
    /// waiting for the next event registers one waker, not two.
    pub fn stop_watches(&self) {
        let _h = self.history.lock().expect("hub lock poisoned");
        self.stopping.store(true, Ordering::SeqCst);
        self.send_to_all(HubEvent::Stopping);
    }

    fn send_to_all(&self, event: HubEvent) {
        for tx in &self.shards {
            let _ = tx.send(event.clone());
        }
        let _ = self.everything.send(event);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Subscribes to the changes after `from_index`. Call under the catalog read lock
    /// when pairing with a snapshot.
    pub fn subscribe(
        &self,
        from_index: u64,
        interest: Interest,
    ) -> Result<Subscription, Compacted> {
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
        let live = match interest {
            Interest::Everything => self.everything.subscribe(),
            Interest::Shard(shard) => self.shards[shard % SHARDS].subscribe(),
        };
        Ok(Subscription { backlog, live })
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
        self.everything.receiver_count()
            + self
                .shards
                .iter()
                .map(|s| s.receiver_count())
                .sum::<usize>()
    }
}

/// The shards an entry's events go to, as a bit set: those of the services whose
/// instances it changes, and all of them when it changes tokens or policies (a
/// watcher re-resolves its rights on those, in log order).
fn touched_shards(changes: &[Change]) -> u64 {
    const _: () = assert!(SHARDS <= 64, "the shard set is one u64");
    let mut set = 0u64;
    for c in changes {
        match c {
            Change::Instance(RecordChange::Put(r)) => set |= 1 << shard_of(&r.service),
            Change::Instance(RecordChange::Delete((service, _))) => set |= 1 << shard_of(service),
            Change::AclToken(_) | Change::AclPolicy(_) => return u64::MAX,
            _ => {}
        }
    }
    set
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
        let mut sub = hub.subscribe(1, Interest::Everything).unwrap();
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
            hub.subscribe(2, Interest::Everything).unwrap_err(),
            Compacted {
                compacted_through: 3
            }
        );
        let sub = hub.subscribe(3, Interest::Everything).unwrap();
        assert_eq!(
            sub.backlog.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![4, 5]
        );
    }

    #[test]
    fn history_counts_changes_and_keeps_whole_indexes() {
        let hub = WatchHub::new(0, 5, 16);
        hub.publish(1, vec![remove("a"), remove("b"), remove("c")]);
        hub.publish(2, vec![remove("d"), remove("e")]);
        // 5 changes: both indexes kept.
        assert_eq!(
            hub.subscribe(0, Interest::Everything)
                .unwrap()
                .backlog
                .len(),
            2
        );
        // A sixth change drops index 1 whole.
        hub.publish(3, vec![remove("f")]);
        assert_eq!(
            hub.subscribe(0, Interest::Everything).unwrap_err(),
            Compacted {
                compacted_through: 1
            }
        );
        // One index over the limit on its own is still kept (the newest always is).
        hub.publish(4, (0..9).map(|i| remove(&format!("x{i}"))).collect());
        let sub = hub.subscribe(3, Interest::Everything).unwrap();
        assert_eq!(
            sub.backlog.iter().map(|e| e.index).collect::<Vec<_>>(),
            vec![4]
        );
    }

    #[test]
    fn a_slow_live_watcher_lags_instead_of_growing() {
        let hub = WatchHub::new(0, 100, 2);
        let mut sub = hub.subscribe(0, Interest::Everything).unwrap();
        for i in 1..=5 {
            hub.publish(i, vec![remove("x")]);
        }
        assert!(matches!(
            sub.live.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }

    fn put(service: &str) -> Change {
        Change::Instance(crate::model::RecordChange::Put(
            crate::model::InstanceRecord {
                service: service.into(),
                id: "i".into(),
                address: "10.0.0.1".into(),
                port: 80,
                tags: Vec::new(),
                meta: Default::default(),
                weight_passing: 1,
                weight_warning: 1,
                health: crate::model::Health::Passing,
                health_output: String::new(),
                create_index: 1,
                modify_index: 1,
                lease_id: None,
                on_lease_expiry: Default::default(),
                deregister_critical_after_ms: 0,
            },
        ))
    }

    /// A service of another shard than `service`'s.
    fn elsewhere(service: &str) -> String {
        (0..)
            .map(|i| format!("other-{i}"))
            .find(|s| shard_of(s) != shard_of(service))
            .unwrap()
    }

    #[test]
    fn a_shard_watcher_gets_only_its_shards_changes_and_everything_else_all() {
        let hub = WatchHub::new(0, 100, 16);
        let web = Interest::Shard(shard_of("web"));
        let mut narrow = hub.subscribe(0, web).unwrap();
        let mut broad = hub.subscribe(0, Interest::Everything).unwrap();
        assert_eq!(hub.live_watchers(), 2);
        hub.publish(1, vec![put(&elsewhere("web"))]);
        hub.publish(2, vec![remove("b")]); // a delete of web/b
        hub.publish(3, vec![put(&elsewhere("web")), put("web")]);
        hub.publish(
            4,
            vec![Change::AclPolicy(crate::model::RecordChange::Delete(
                "p".into(),
            ))],
        );
        hub.snapshot_installed(9);
        let seen = |sub: &mut Subscription| {
            std::iter::from_fn(|| sub.live.try_recv().ok())
                .map(|ev| match ev {
                    HubEvent::Changes(c) => c.index,
                    HubEvent::SnapshotInstalled(i) => i,
                    HubEvent::Stopping => 0,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(seen(&mut narrow), [2, 3, 4, 9]);
        assert_eq!(seen(&mut broad), [1, 2, 3, 4, 9]);
        hub.stop_watches();
        assert_eq!(seen(&mut narrow), [0]);
    }

    #[test]
    fn interest_is_one_shard_only_for_named_services_sharing_it() {
        use std::collections::BTreeSet;
        use waymark_proto::InstanceSelection;
        let services = |names: &[&str]| WatchSelection {
            instances: vec![InstanceSelection {
                services: Some(names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()),
                passing_only: false,
            }],
            ..WatchSelection::default()
        };
        assert_eq!(
            Interest::of(&services(&["web"])),
            Interest::Shard(shard_of("web"))
        );
        let other = elsewhere("web");
        assert_eq!(
            Interest::of(&services(&["web", &other])),
            Interest::Everything
        );
        let mut all = services(&[]);
        all.instances[0].services = None;
        assert_eq!(Interest::of(&all), Interest::Everything);
        let mut with_config = services(&["web"]);
        with_config.config_prefixes.push("app".into());
        assert_eq!(Interest::of(&with_config), Interest::Everything);
    }

    #[test]
    fn snapshot_install_resets_history() {
        let hub = WatchHub::new(0, 100, 16);
        hub.publish(1, vec![remove("a")]);
        let mut sub = hub.subscribe(1, Interest::Everything).unwrap();
        hub.snapshot_installed(50);
        assert!(matches!(
            sub.live.try_recv().unwrap(),
            HubEvent::SnapshotInstalled(50)
        ));
        assert!(hub.subscribe(10, Interest::Everything).is_err());
        assert!(hub
            .subscribe(50, Interest::Everything)
            .unwrap()
            .backlog
            .is_empty());
    }
}
