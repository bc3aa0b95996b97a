//! One watch stream: starts from a snapshot or a resume index, then turns hub events
//! into Changes messages (filtered by the stream's topics, one per index), Progress
//! messages when idle, and Reset + Snapshot when history is gone or the watcher fell
//! behind. Every topic's changes share the hub's one index order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast;
use tonic::Status;
use waymark_proto::{parts, pb, watch_frame, InstanceSelection, WatchFrame, WatchSelection};

use super::errors::{status, ApiError};
use super::{auth, convert};
use crate::acl::{Authorizer, Resolved};
use crate::metrics::Metrics;
use crate::model::{key_in_prefix, Change, ConfigEntry, InstanceRecord, RecordChange};
use crate::node::Node;
use crate::unsafe_control::UnsafeControl;
use crate::watch::encoded::{Assembly, EncodedChanges, Form};
use crate::watch::hub::{Compacted, HubEvent, IndexChanges, Interest, Subscription};

/// Default interval between Progress messages on an idle stream.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(2);
/// A node that has not heard from a leader for longer says so on its streams.
pub const LEADER_LOST_AFTER_MS: u64 = 5_000;

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

    /// How a change appears to this watcher.
    pub fn form(&self, change: &Change) -> Form {
        let selected = match change {
            Change::Instance(RecordChange::Put(r)) => {
                return match self.visibility(r) {
                    Visibility::Unselected => Form::Skipped,
                    Visibility::Shown => Form::Shown,
                    // Passing-only watchers see an instance that stops passing as removed.
                    Visibility::HiddenNotPassing => Form::AsRemoved,
                };
            }
            Change::Instance(RecordChange::Delete((service, _))) => {
                self.selecting(service).next().is_some()
            }
            Change::Config(RecordChange::Put(e)) => self.wants_config(&e.key),
            Change::Config(RecordChange::Delete(key)) => self.wants_config(key),
            Change::CaRoot(_) => self.selection.ca_roots,
            Change::Intention(RecordChange::Put(i)) => self.wants_intention(&i.destination),
            Change::Intention(RecordChange::Delete((destination, _))) => {
                self.wants_intention(destination)
            }
            Change::Lease(_)
            | Change::AclToken(_)
            | Change::AclPolicy(_)
            | Change::AclBootstrap(_)
            | Change::AclAuthMethod(_)
            | Change::AclBindingRule(_) => false,
        };
        if selected {
            Form::Shown
        } else {
            Form::Skipped
        }
    }

    /// This watcher's Changes message for one index (the bytes shared with every
    /// watcher that selects the same), or `None` if none of its changes match.
    /// `forms` is scratch space the caller keeps between calls.
    pub fn changes_frame(
        &self,
        entry: &IndexChanges,
        forms: &mut Vec<Form>,
        metrics: &Metrics,
    ) -> Option<WatchFrame> {
        forms.clear();
        forms.extend(entry.changes.iter().map(|c| self.form(c)));
        if forms.iter().all(|f| *f == Form::Skipped) {
            return None;
        }
        let encoded = entry.encoded(|changes| {
            metrics.watch_change_encodings.add(changes.len() as u64);
            encode_changes(changes)
        });
        let (bytes, assembly) = encoded.message(entry.index, forms)?;
        match assembly {
            Assembly::Assembled => metrics.watch_messages_assembled.inc(),
            Assembly::Shared => metrics.watch_messages_shared.inc(),
        }
        Some(WatchFrame::Encoded(bytes))
    }
}

/// A change as watchers see it when it is shown as it is (`None`: a kind watchers
/// never receive).
fn shown_change(change: &Change) -> Option<pb::RecordChange> {
    use pb::record_change::Change as Wire;
    let wire = match change {
        Change::Instance(RecordChange::Put(r)) => Wire::Upsert(convert::instance(r)),
        Change::Instance(RecordChange::Delete((service, id))) => instance_removal(service, id),
        Change::Config(RecordChange::Put(e)) => Wire::ConfigUpsert(convert::config_entry(e)),
        Change::Config(RecordChange::Delete(key)) => Wire::ConfigRemove(key.clone()),
        Change::CaRoot(RecordChange::Put(r)) => Wire::CaRootUpsert(convert::ca_root(r)),
        Change::CaRoot(RecordChange::Delete(id)) => Wire::CaRootRemove(id.clone()),
        Change::Intention(RecordChange::Put(i)) => Wire::IntentionUpsert(convert::intention(i)),
        Change::Intention(RecordChange::Delete((destination, source))) => {
            Wire::IntentionRemove(pb::IntentionKey {
                source: source.clone(),
                destination: destination.clone(),
            })
        }
        Change::Lease(_)
        | Change::AclToken(_)
        | Change::AclPolicy(_)
        | Change::AclBootstrap(_)
        | Change::AclAuthMethod(_)
        | Change::AclBindingRule(_) => return None,
    };
    Some(pb::RecordChange { change: Some(wire) })
}

fn instance_removal(service: &str, id: &str) -> pb::record_change::Change {
    pb::record_change::Change::Remove(pb::InstanceKey {
        service: service.to_string(),
        id: id.to_string(),
    })
}

/// Encodes one index's changes for every watcher to share: each as it is, and each
/// instance upsert that is not passing also as its removal.
fn encode_changes(changes: &[Change]) -> EncodedChanges {
    let shown = changes
        .iter()
        .map(|c| shown_change(c).map(|w| watch_frame::change_element(&w)))
        .collect();
    let as_removed = changes
        .iter()
        .map(|c| match c {
            Change::Instance(RecordChange::Put(r)) if !r.is_passing() => {
                Some(watch_frame::change_element(&pb::RecordChange {
                    change: Some(instance_removal(&r.service, &r.id)),
                }))
            }
            _ => None,
        })
        .collect();
    EncodedChanges::new(shown, as_removed)
}

/// Takes a snapshot of the matching set and subscribes to the changes after it, as
/// one atomic step (under the catalog read lock, which apply holds for writing while
/// it publishes).
fn snapshot_and_subscribe(
    node: &Node,
    filter: &WatchFilter,
) -> (u64, pb::WatchSnapshot, Subscription) {
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
        .subscribe(index, Interest::of(&filter.selection))
        .expect("the hub never compacts past the applied index");
    drop(catalog);
    let snapshot = pb::WatchSnapshot {
        instances,
        config_entries,
        ca_roots,
        intentions,
        more: false,
    };
    (index, snapshot, sub)
}

fn reset_message(index: u64, reason: pb::ResetReason) -> pb::WatchResponse {
    pb::WatchResponse {
        index,
        event: Some(pb::watch_response::Event::Reset(pb::WatchReset {
            reason: reason as i32,
        })),
    }
}

/// The messages of one watch stream as tonic sends them. The stream is polled by the
/// connection's own task whenever the client can take more, so a watcher costs no
/// task and no channel of its own: one wake-up per event, not two, and a few hundred
/// bytes less per idle watcher.
pub type WatchResponses = Pin<Box<dyn Stream<Item = Result<WatchFrame, Status>> + Send>>;

/// Where a new stream starts and how it runs.
pub struct WatchStart {
    pub filter: WatchFilter,
    /// The secret the watch was opened with, to resolve its rights again when tokens
    /// or policies change.
    pub secret: Option<String>,
    /// 0 starts with a snapshot; otherwise the changes after this index.
    pub from_index: u64,
    pub progress_interval: Duration,
    /// Whatever must live exactly as long as the stream (its limit permit, the
    /// server's drain token).
    pub held: Box<dyn Send>,
}

/// The state of one stream.
struct Watch {
    node: Arc<Node>,
    filter: WatchFilter,
    secret: Option<String>,
    /// Set until the first step: where to start.
    start: Option<u64>,
    sub: Option<Subscription>,
    /// Retained changes a resumed stream still has to turn into messages (one per
    /// step, so a long backlog is never built into messages all at once).
    backlog: VecDeque<Arc<IndexChanges>>,
    /// Messages ready for the client, in order.
    outbox: VecDeque<WatchFrame>,
    /// Highest index the client has been told about; never goes down.
    last_index: u64,
    sent_since_tick: bool,
    /// UNSAFE CONTROL (`watch-skip`): drop the next Changes message unsent.
    skip_next_changes: bool,
    tick: tokio::time::Interval,
    /// Scratch for each index's change forms (no allocation per event).
    forms: Vec<Form>,
    /// The stream said its last word (an error) and ends after the outbox.
    ended: bool,
    _held: Box<dyn Send>,
}

/// Why the stream ended.
enum End {
    /// The server is stopping.
    Shutdown,
    /// The watcher's token was deleted or expired (the client gets PERMISSION_DENIED).
    TokenGone(String),
}

/// What woke a live stream.
enum Wake {
    Event(Result<HubEvent, broadcast::error::RecvError>),
    Tick,
}

impl Watch {
    fn queue(&mut self, msg: pb::WatchResponse) {
        let index = msg.index;
        self.queue_frame(index, msg.into());
    }

    fn queue_frame(&mut self, index: u64, frame: WatchFrame) {
        debug_assert!(index >= self.last_index);
        self.last_index = self.last_index.max(index);
        self.sent_since_tick = true;
        self.outbox.push_back(frame);
    }

    /// Queues the matching changes of one index, if any.
    fn queue_changes(&mut self, entry: &IndexChanges) {
        self.node.metrics.watch_entries_examined.inc();
        let Some(frame) = self
            .filter
            .changes_frame(entry, &mut self.forms, &self.node.metrics)
        else {
            return;
        };
        if std::mem::take(&mut self.skip_next_changes) {
            // UNSAFE CONTROL (`watch-skip`): a silent gap in the resumed stream.
            return;
        }
        self.queue_frame(entry.index, frame);
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

    /// Queues a snapshot, in parts when it is large (`waymark_proto::parts`).
    fn queue_snapshot(&mut self, index: u64, snapshot: pb::WatchSnapshot) {
        for part in parts::snapshot_parts(snapshot, parts::PART_BYTES) {
            self.queue(pb::WatchResponse {
                index,
                event: Some(pb::watch_response::Event::Snapshot(part)),
            });
        }
    }

    /// Starts over from a snapshot after a Reset saying why.
    fn restart(&mut self, reason: pb::ResetReason) {
        self.skip_next_changes = false;
        self.backlog.clear();
        let (index, snapshot, sub) = snapshot_and_subscribe(&self.node, &self.filter);
        self.queue(reset_message(index, reason));
        self.queue_snapshot(index, snapshot);
        self.sub = Some(sub);
    }

    fn begin(&mut self, from_index: u64) {
        if from_index == 0 {
            let (index, snapshot, sub) = snapshot_and_subscribe(&self.node, &self.filter);
            self.queue_snapshot(index, snapshot);
            self.sub = Some(sub);
            return;
        }
        match self
            .node
            .hub
            .subscribe(from_index, Interest::of(&self.filter.selection))
        {
            Ok(mut sub) => {
                // UNSAFE CONTROL (`watch-skip`): only resumes inside the window.
                self.skip_next_changes = self.node.unsafe_control == Some(UnsafeControl::WatchSkip);
                self.backlog = std::mem::take(&mut sub.backlog).into();
                self.sub = Some(sub);
            }
            Err(Compacted { .. }) => self.restart(pb::ResetReason::Compacted),
        }
    }

    fn on_event(
        &mut self,
        event: Result<HubEvent, broadcast::error::RecvError>,
    ) -> Result<(), End> {
        match event {
            Ok(HubEvent::Changes(entry)) => {
                self.recheck_token(&entry)?;
                if entry.index > self.last_index {
                    self.queue_changes(&entry);
                }
            }
            Ok(HubEvent::SnapshotInstalled(_)) => self.restart(pb::ResetReason::SnapshotInstalled),
            Ok(HubEvent::Stopping) => return Err(End::Shutdown),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                self.node.metrics.watch_resets.inc();
                self.restart(pb::ResetReason::SlowConsumer);
            }
            // The hub lives as long as the node: only a stopping node closes it.
            Err(broadcast::error::RecvError::Closed) => return Err(End::Shutdown),
        }
        Ok(())
    }

    /// Idle tick: catch up with everything published so far, then report progress.
    fn on_tick(&mut self) -> Result<(), End> {
        if std::mem::take(&mut self.sent_since_tick) {
            return Ok(());
        }
        // Read the applied index first: every change up to it is already queued.
        let applied = self.node.hub.applied_index();
        while let Some(sub) = self.sub.as_mut() {
            let event = match sub.live.try_recv() {
                Ok(ev) => Ok(ev),
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    Err(broadcast::error::RecvError::Lagged(n))
                }
                Err(broadcast::error::TryRecvError::Closed) => return Err(End::Shutdown),
            };
            self.on_event(event)?;
        }
        let view = self.node.view();
        let last_contact_ms = self.node.last_contact_ms(&view);
        self.queue(pb::WatchResponse {
            index: self.last_index.max(applied),
            event: Some(pb::watch_response::Event::Progress(pb::WatchProgress {
                last_contact_ms,
                leader_lost: last_contact_ms.is_none_or(|ms| ms > LEADER_LOST_AFTER_MS),
            })),
        });
        self.sent_since_tick = false;
        Ok(())
    }

    /// Does one thing: starts, turns one backlog entry into a message, or waits for
    /// the next hub event, tick or shutdown and handles it.
    async fn step(&mut self) -> Result<(), End> {
        if let Some(from_index) = self.start.take() {
            self.begin(from_index);
            return Ok(());
        }
        if let Some(entry) = self.backlog.pop_front() {
            self.queue_changes(&entry);
            return Ok(());
        }
        let Some(sub) = self.sub.as_mut() else {
            return Err(End::Shutdown);
        };
        if self.node.hub.is_stopping() {
            return Err(End::Shutdown);
        }
        // Events first: a stream woken by one handles it without polling its timer.
        let wake = tokio::select! {
            biased;
            ev = sub.live.recv() => Wake::Event(ev),
            _ = self.tick.tick() => Wake::Tick,
        };
        match wake {
            Wake::Event(ev) => self.on_event(ev),
            Wake::Tick => self.on_tick(),
        }
    }

    /// The next message, or `None` when the stream is over.
    async fn next(&mut self) -> Option<Result<WatchFrame, Status>> {
        loop {
            if let Some(msg) = self.outbox.pop_front() {
                return Some(Ok(msg));
            }
            if self.ended {
                return None;
            }
            match self.step().await {
                Ok(()) => {}
                Err(End::Shutdown) => return None,
                Err(End::TokenGone(why)) => {
                    tracing::info!(%why, "watch ended: its token is gone");
                    self.ended = true;
                    return Some(Err(status(&self.node, ApiError::TokenRevoked(why))));
                }
            }
        }
    }
}

/// The stream of one watch, from its snapshot or resume index until the client goes
/// away, its token goes, or the server stops.
pub fn responses(node: Arc<Node>, start: WatchStart) -> WatchResponses {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + start.progress_interval,
        start.progress_interval,
    );
    // A tick missed while the client was slow is not made up in a burst.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watch = Watch {
        node,
        filter: start.filter,
        secret: start.secret,
        start: Some(start.from_index),
        sub: None,
        backlog: VecDeque::new(),
        outbox: VecDeque::new(),
        last_index: start.from_index,
        sent_since_tick: false,
        skip_next_changes: false,
        tick,
        forms: Vec::new(),
        ended: false,
        _held: start.held,
    };
    Box::pin(futures::stream::unfold(watch, |mut watch| async move {
        let item = watch.next().await?;
        Some((item, watch))
    }))
}
