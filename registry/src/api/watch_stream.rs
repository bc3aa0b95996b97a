//! One watch stream: starts from a snapshot or a resume index, then turns hub events
//! into Changes messages (filtered by the stream's topics, one per index), Progress
//! messages when idle, and Reset + Snapshot when history is gone or the watcher fell
//! behind. Every topic's changes share the hub's one index order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::Status;
use waymark_proto::{pb, InstanceSelection, WatchSelection};

use super::errors::{status, ApiError};
use super::{auth, convert};
use crate::acl::{Authorizer, Resolved};
use crate::model::{key_in_prefix, Change, ConfigEntry, InstanceRecord, RecordChange};
use crate::node::Node;
use crate::unsafe_control::UnsafeControl;
use crate::watch::hub::{Compacted, HubEvent, IndexChanges, Subscription};

/// Default interval between Progress messages on an idle stream.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(2);
/// A node that has not heard from a leader for longer says so on its streams.
pub const LEADER_LOST_AFTER_MS: u64 = 5_000;

/// One message (or the final error) for the client. Boxed: a channel allocates its
/// slots 32 at a time, and unboxed each slot is the size of a `Status` (hundreds of
/// bytes), which made the channel a large part of an idle watcher's memory.
pub type WatchItem = Box<Result<pb::WatchResponse, Status>>;
type Tx = mpsc::Sender<WatchItem>;

/// What a watcher follows: the union of its topics.
#[derive(Debug, Clone)]
pub struct WatchFilter {
    selection: WatchSelection,
    /// What the watcher's token may read: records it may not are never selected.
    authz: Authorizer,
}

/// How an instance appears to a watcher.
enum Visibility {
    /// Not selected by any topic.
    Unselected,
    /// Selected, shown as it is.
    Shown,
    /// Selected only by passing-only topics and not passing: shown as removed.
    HiddenNotPassing,
}

impl WatchFilter {
    pub fn new(selection: WatchSelection, authz: Authorizer) -> Self {
        Self { selection, authz }
    }

    /// The instance topics that select `service` (no allocation: this runs for every
    /// change on every stream).
    fn selecting<'a>(
        &'a self,
        service: &'a str,
    ) -> impl Iterator<Item = &'a InstanceSelection> + 'a {
        let readable = self.authz.may_read_service(service);
        self.selection
            .instances
            .iter()
            .filter(move |t| readable && t.services.as_ref().is_none_or(|s| s.contains(service)))
    }

    fn visibility(&self, r: &InstanceRecord) -> Visibility {
        let mut selected = false;
        for topic in self.selecting(&r.service) {
            selected = true;
            if !topic.passing_only || r.is_passing() {
                return Visibility::Shown;
            }
        }
        if selected {
            Visibility::HiddenNotPassing
        } else {
            Visibility::Unselected
        }
    }

    fn wants_config(&self, key: &str) -> bool {
        self.selection
            .config_prefixes
            .iter()
            .any(|p| key_in_prefix(key, p))
            && self.authz.may_read_config(key)
    }

    fn wants_intention(&self, destination: &str) -> bool {
        self.selection.wants_intention(destination) && self.authz.may_read_intentions()
    }

    /// The change as this watcher sees it, or `None` if it does not match.
    pub fn map(&self, change: &Change) -> Option<pb::RecordChange> {
        use pb::record_change::Change as Wire;
        let wire = match change {
            Change::Instance(RecordChange::Put(r)) => match self.visibility(r) {
                Visibility::Unselected => return None,
                Visibility::Shown => Wire::Upsert(convert::instance(r)),
                // Passing-only watchers see an instance that stops passing as removed.
                Visibility::HiddenNotPassing => Wire::Remove(pb::InstanceKey {
                    service: r.service.clone(),
                    id: r.id.clone(),
                }),
            },
            Change::Instance(RecordChange::Delete((service, id))) => {
                self.selecting(service).next()?;
                Wire::Remove(pb::InstanceKey {
                    service: service.clone(),
                    id: id.clone(),
                })
            }
            Change::Config(RecordChange::Put(e)) if self.wants_config(&e.key) => {
                Wire::ConfigUpsert(convert::config_entry(e))
            }
            Change::Config(RecordChange::Delete(key)) if self.wants_config(key) => {
                Wire::ConfigRemove(key.clone())
            }
            Change::CaRoot(RecordChange::Put(r)) if self.selection.ca_roots => {
                Wire::CaRootUpsert(convert::ca_root(r))
            }
            Change::CaRoot(RecordChange::Delete(id)) if self.selection.ca_roots => {
                Wire::CaRootRemove(id.clone())
            }
            Change::Intention(RecordChange::Put(i)) if self.wants_intention(&i.destination) => {
                Wire::IntentionUpsert(convert::intention(i))
            }
            Change::Intention(RecordChange::Delete((destination, source)))
                if self.wants_intention(destination) =>
            {
                Wire::IntentionRemove(pb::IntentionKey {
                    source: source.clone(),
                    destination: destination.clone(),
                })
            }
            Change::Config(_)
            | Change::CaRoot(_)
            | Change::Intention(_)
            | Change::Lease(_)
            | Change::AclToken(_)
            | Change::AclPolicy(_)
            | Change::AclBootstrap(_)
            | Change::AclAuthMethod(_)
            | Change::AclBindingRule(_) => return None,
        };
        Some(pb::RecordChange { change: Some(wire) })
    }

    fn changes_message(&self, entry: &IndexChanges) -> Option<pb::WatchResponse> {
        let changes: Vec<_> = entry.changes.iter().filter_map(|c| self.map(c)).collect();
        if changes.is_empty() {
            return None;
        }
        Some(pb::WatchResponse {
            index: entry.index,
            event: Some(pb::watch_response::Event::Changes(pb::WatchChanges {
                changes,
            })),
        })
    }
}

/// Takes a snapshot of the matching set and subscribes to the changes after it, as
/// one atomic step (under the catalog read lock, which apply holds for writing while
/// it publishes).
fn snapshot_and_subscribe(node: &Node, filter: &WatchFilter) -> (pb::WatchResponse, Subscription) {
    let catalog = node.catalog.read().expect("catalog lock poisoned");
    let index = catalog.applied_index();
    // Only what the topics select is walked: this runs under the read lock that apply
    // needs, so its cost must follow what the watcher asked for, not the catalog size.
    let topics = &filter.selection.instances;
    let instances: Vec<pb::Instance> = if topics.iter().any(|t| t.services.is_none()) {
        catalog
            .records()
            .filter(|r| matches!(filter.visibility(r), Visibility::Shown))
            .map(convert::instance)
            .collect()
    } else {
        let services: BTreeSet<&String> = topics
            .iter()
            .flat_map(|t| t.services.iter().flatten())
            .collect();
        services
            .into_iter()
            .flat_map(|s| catalog.service_records(s))
            .filter(|r| matches!(filter.visibility(r), Visibility::Shown))
            .map(convert::instance)
            .collect()
    };
    // Overlapping prefixes select an entry once.
    let config: BTreeMap<&str, &ConfigEntry> = filter
        .selection
        .config_prefixes
        .iter()
        .flat_map(|p| catalog.config_entries(p))
        .filter(|e| filter.authz.may_read_config(&e.key))
        .map(|e| (e.key.as_str(), e))
        .collect();
    let config_entries = config.into_values().map(convert::config_entry).collect();
    let ca_roots = if filter.selection.ca_roots {
        catalog.ca_roots().map(convert::ca_root).collect()
    } else {
        Vec::new()
    };
    let intentions = if filter.selection.intention_destinations.is_empty() {
        Vec::new()
    } else {
        catalog
            .intentions(None)
            .filter(|i| filter.wants_intention(&i.destination))
            .map(convert::intention)
            .collect()
    };
    let sub = node
        .hub
        .subscribe(index)
        .expect("the hub never compacts past the applied index");
    drop(catalog);
    let msg = pb::WatchResponse {
        index,
        event: Some(pb::watch_response::Event::Snapshot(pb::WatchSnapshot {
            instances,
            config_entries,
            ca_roots,
            intentions,
        })),
    };
    (msg, sub)
}

fn reset_message(index: u64, reason: pb::ResetReason) -> pb::WatchResponse {
    pb::WatchResponse {
        index,
        event: Some(pb::watch_response::Event::Reset(pb::WatchReset {
            reason: reason as i32,
        })),
    }
}

/// The state of one stream.
struct Stream {
    node: Arc<Node>,
    filter: WatchFilter,
    tx: Tx,
    /// Highest index the client has been told about; never goes down.
    last_index: u64,
    sent_since_tick: bool,
    /// UNSAFE CONTROL (`watch-skip`): drop the next Changes message unsent.
    skip_next_changes: bool,
    /// The secret the watch was opened with, to resolve its rights again when tokens
    /// or policies change.
    secret: Option<String>,
}

/// Why the stream ended.
enum End {
    ClientGone,
    /// The watcher's token was deleted or expired (the client gets PERMISSION_DENIED).
    TokenGone(String),
}

impl Stream {
    async fn send(&mut self, msg: pb::WatchResponse) -> Result<(), End> {
        debug_assert!(msg.index >= self.last_index);
        self.last_index = self.last_index.max(msg.index);
        self.sent_since_tick = true;
        self.tx
            .send(Box::new(Ok(msg)))
            .await
            .map_err(|_| End::ClientGone)
    }

    /// Sends the matching changes of one index, if any.
    async fn send_changes(&mut self, entry: &IndexChanges) -> Result<(), End> {
        let Some(msg) = self.filter.changes_message(entry) else {
            return Ok(());
        };
        if std::mem::take(&mut self.skip_next_changes) {
            // UNSAFE CONTROL (`watch-skip`): a silent gap in the resumed stream.
            return Ok(());
        }
        self.send(msg).await
    }

    /// When an index changes tokens or policies, resolves the watcher's rights again
    /// (in log order, before that index's own changes are filtered): a deleted or
    /// expired token ends the stream, a changed policy applies from that index on.
    fn recheck_token(&mut self, entry: &IndexChanges) -> Result<(), End> {
        let Some(accessor) = self.filter.authz.accessor.clone() else {
            return Ok(());
        };
        let touches_acl = entry
            .changes
            .iter()
            .any(|c| matches!(c, Change::AclToken(_) | Change::AclPolicy(_)));
        if !touches_acl {
            return Ok(());
        }
        match auth::resolve_here(&self.node, self.secret.as_deref()) {
            Ok(Resolved::Known(authz)) => {
                self.filter.authz = authz;
                Ok(())
            }
            Ok(Resolved::Unknown) => Err(End::TokenGone(format!(
                "the watch's ACL token {accessor} was deleted at index {}",
                entry.index
            ))),
            Err(e) => Err(End::TokenGone(e.to_string())),
        }
    }

    async fn restart(&mut self, reason: pb::ResetReason) -> Result<Subscription, End> {
        self.skip_next_changes = false;
        let (snapshot, sub) = snapshot_and_subscribe(&self.node, &self.filter);
        self.send(reset_message(snapshot.index, reason)).await?;
        self.send(snapshot).await?;
        Ok(sub)
    }

    /// Handles one hub event; returns a replacement subscription after a reset.
    async fn on_event(
        &mut self,
        event: Result<HubEvent, broadcast::error::RecvError>,
    ) -> Result<Option<Subscription>, End> {
        match event {
            Ok(HubEvent::Changes(entry)) => {
                self.recheck_token(&entry)?;
                if entry.index > self.last_index {
                    self.send_changes(&entry).await?;
                }
                Ok(None)
            }
            Ok(HubEvent::SnapshotInstalled(_)) => self
                .restart(pb::ResetReason::SnapshotInstalled)
                .await
                .map(Some),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                self.node.metrics.watch_resets.inc();
                self.restart(pb::ResetReason::SlowConsumer).await.map(Some)
            }
            Err(broadcast::error::RecvError::Closed) => Err(End::ClientGone),
        }
    }

    /// Idle tick: catch up with everything published so far, then report progress.
    async fn on_tick(&mut self, sub: &mut Subscription) -> Result<(), End> {
        if std::mem::take(&mut self.sent_since_tick) {
            return Ok(());
        }
        // Read the applied index first: every change up to it is already queued.
        let applied = self.node.hub.applied_index();
        loop {
            match sub.live.try_recv() {
                Ok(ev) => {
                    if let Some(new) = self.on_event(Ok(ev)).await? {
                        *sub = new;
                    }
                }
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    if let Some(new) = self
                        .on_event(Err(broadcast::error::RecvError::Lagged(n)))
                        .await?
                    {
                        *sub = new;
                    }
                }
                Err(broadcast::error::TryRecvError::Closed) => return Err(End::ClientGone),
            }
        }
        let view = self.node.view();
        let last_contact_ms = self.node.last_contact_ms(&view);
        let msg = pb::WatchResponse {
            index: self.last_index.max(applied),
            event: Some(pb::watch_response::Event::Progress(pb::WatchProgress {
                last_contact_ms,
                leader_lost: last_contact_ms.is_none_or(|ms| ms > LEADER_LOST_AFTER_MS),
            })),
        };
        self.send(msg).await?;
        self.sent_since_tick = false;
        Ok(())
    }
}

/// Runs one watch stream until the client goes away or `shutdown`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    node: Arc<Node>,
    filter: WatchFilter,
    secret: Option<String>,
    from_index: u64,
    progress_interval: Duration,
    tx: Tx,
    shutdown: CancellationToken,
) {
    let mut stream = Stream {
        node: node.clone(),
        filter,
        tx,
        last_index: from_index,
        sent_since_tick: false,
        skip_next_changes: false,
        secret,
    };
    let result = async {
        let mut sub = if from_index == 0 {
            let (snapshot, sub) = snapshot_and_subscribe(&node, &stream.filter);
            stream.send(snapshot).await?;
            sub
        } else {
            match node.hub.subscribe(from_index) {
                Ok(sub) => {
                    // UNSAFE CONTROL (`watch-skip`): only resumes inside the window.
                    stream.skip_next_changes =
                        node.unsafe_control == Some(UnsafeControl::WatchSkip);
                    for entry in &sub.backlog {
                        stream.send_changes(entry).await?;
                    }
                    sub
                }
                Err(Compacted { .. }) => stream.restart(pb::ResetReason::Compacted).await?,
            }
        };
        let mut tick = tokio::time::interval(progress_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = stream.tx.closed() => return Err(End::ClientGone),
                ev = sub.live.recv() => {
                    if let Some(new) = stream.on_event(ev).await? {
                        sub = new;
                    }
                }
                _ = tick.tick() => stream.on_tick(&mut sub).await?,
            }
        }
    }
    .await;
    match result {
        Err(End::ClientGone) => tracing::debug!("watch client went away"),
        Err(End::TokenGone(why)) => {
            tracing::info!(%why, "watch ended: its token is gone");
            let _ = stream
                .tx
                .send(Box::new(Err(status(&node, ApiError::TokenRevoked(why)))))
                .await;
        }
        Ok(()) => {}
    }
}
