//! What the proxy knows of the mesh from the registry: the CA roots and the
//! intentions to its own service, followed over one watch stream (both topics in the
//! catalog's one index order; resumed on another node from the last index, never
//! going back) and published as one value per delivered index.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use waymark_client::{Backoff, Client, WatchFollower, WatchItem};
use waymark_proto::intention::{self, Action};
use waymark_proto::pb;
use waymark_proto::pb::record_change::Change;
use waymark_proto::pb::watch_response::Event;

use crate::metrics::MeshMetrics;

/// The mesh as of one catalog index.
#[derive(Debug, Clone, Default)]
pub struct MeshState {
    /// 0 until the first snapshot arrives.
    pub index: u64,
    pub roots: BTreeMap<String, pb::CaRoot>,
    /// By (source, destination).
    pub intentions: BTreeMap<(String, String), pb::Intention>,
}

impl MeshState {
    /// Applies one delivered message; returns whether anything changed.
    pub fn apply(&mut self, index: u64, event: &Event) -> bool {
        match event {
            Event::Snapshot(s) => {
                self.roots = s
                    .ca_roots
                    .iter()
                    .map(|r| (r.id.clone(), r.clone()))
                    .collect();
                self.intentions = s
                    .intentions
                    .iter()
                    .map(|i| ((i.source.clone(), i.destination.clone()), i.clone()))
                    .collect();
            }
            Event::Changes(c) => {
                for change in &c.changes {
                    match &change.change {
                        Some(Change::CaRootUpsert(r)) => {
                            self.roots.insert(r.id.clone(), r.clone());
                        }
                        Some(Change::CaRootRemove(id)) => {
                            self.roots.remove(id);
                        }
                        Some(Change::IntentionUpsert(i)) => {
                            self.intentions
                                .insert((i.source.clone(), i.destination.clone()), i.clone());
                        }
                        Some(Change::IntentionRemove(k)) => {
                            self.intentions
                                .remove(&(k.source.clone(), k.destination.clone()));
                        }
                        _ => {}
                    }
                }
            }
            Event::Reset(_) | Event::Progress(_) => return false,
        }
        self.index = index;
        true
    }

    /// The active root (the one leaves are signed by now).
    pub fn active_root(&self) -> Option<&pb::CaRoot> {
        self.roots.values().find(|r| r.active)
    }

    /// Whether `source` may call `destination`: the deciding intention's action, or
    /// `default` when none matches. Returns the verdict and what decided it.
    pub fn decide(&self, source: &str, destination: &str, default: Action) -> (Action, String) {
        let rules = self.intentions.values().filter_map(|i| {
            let action = Action::from_wire("action", i.action).ok()?;
            Some((i.source.as_str(), i.destination.as_str(), action, i))
        });
        match intention::decide(rules, source, destination) {
            Some((action, i)) => (
                action,
                format!("intention {} -> {}", i.source, i.destination),
            ),
            None => (default, "default".to_string()),
        }
    }
}

/// Keeps `tx` current with the roots and the intentions to `service` until
/// `shutdown`. A follower that gives up (every node failed) is restarted from the
/// last index after a backoff: the last state stays in force meanwhile.
pub async fn follow(
    client: Client,
    service: String,
    tx: watch::Sender<Arc<MeshState>>,
    metrics: Arc<MeshMetrics>,
    shutdown: CancellationToken,
) {
    let mut state = MeshState::default();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let request = pb::WatchRequest {
            topics: vec![
                pb::WatchTopic {
                    topic: Some(pb::watch_topic::Topic::CaRoots(pb::CaRootsTopic {})),
                },
                pb::WatchTopic {
                    topic: Some(pb::watch_topic::Topic::Intentions(pb::IntentionsTopic {
                        destination: service.clone(),
                    })),
                },
            ],
            from_index: state.index,
            progress_interval_ms: 1000,
            ..Default::default()
        };
        let mut follower = WatchFollower::new(client.clone(), request);
        loop {
            let item = tokio::select! {
                () = shutdown.cancelled() => return,
                item = follower.next() => item,
            };
            match item {
                Ok(WatchItem::Message(msg)) => {
                    backoff.reset();
                    let Some(event) = msg.event else { continue };
                    if msg.index < state.index {
                        tracing::error!(
                            index = msg.index,
                            position = state.index,
                            "mesh watch went back in index; ignored"
                        );
                        continue;
                    }
                    if state.apply(msg.index, &event) {
                        metrics.state_index.set(state.index as i64);
                        tx.send_replace(Arc::new(state.clone()));
                    }
                }
                Ok(WatchItem::Reconnecting { reason, addr, .. }) => {
                    tracing::warn!(%reason, next = %addr, "mesh watch lost; resuming");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no registry node answers; keeping the last roots and intentions");
                    break;
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = backoff.wait() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intention(source: &str, destination: &str, action: Action) -> pb::Intention {
        pb::Intention {
            source: source.into(),
            destination: destination.into(),
            action: action.to_wire() as i32,
            ..Default::default()
        }
    }

    fn changes(changes: Vec<Change>) -> Event {
        Event::Changes(pb::WatchChanges {
            changes: changes
                .into_iter()
                .map(|c| pb::RecordChange { change: Some(c) })
                .collect(),
        })
    }

    #[test]
    fn snapshot_then_changes_decide_by_precedence_then_default() {
        let mut s = MeshState::default();
        assert!(s.apply(
            5,
            &Event::Snapshot(pb::WatchSnapshot {
                intentions: vec![intention("*", "api", Action::Deny)],
                ca_roots: vec![pb::CaRoot {
                    id: "r1".into(),
                    active: true,
                    ..Default::default()
                }],
                ..Default::default()
            })
        ));
        assert_eq!(s.index, 5);
        assert_eq!(s.active_root().unwrap().id, "r1");
        assert_eq!(s.decide("web", "api", Action::Allow).0, Action::Deny);

        s.apply(
            7,
            &changes(vec![Change::IntentionUpsert(intention(
                "web",
                "api",
                Action::Allow,
            ))]),
        );
        let (verdict, why) = s.decide("web", "api", Action::Deny);
        assert_eq!(
            (verdict, why.as_str()),
            (Action::Allow, "intention web -> api")
        );
        assert_eq!(s.decide("db", "api", Action::Allow).0, Action::Deny);

        s.apply(
            9,
            &changes(vec![
                Change::IntentionRemove(pb::IntentionKey {
                    source: "*".into(),
                    destination: "api".into(),
                }),
                Change::CaRootUpsert(pb::CaRoot {
                    id: "r2".into(),
                    active: true,
                    ..Default::default()
                }),
                Change::CaRootUpsert(pb::CaRoot {
                    id: "r1".into(),
                    active: false,
                    ..Default::default()
                }),
            ]),
        );
        assert_eq!(
            s.decide("db", "api", Action::Deny),
            (Action::Deny, "default".into())
        );
        assert_eq!(s.active_root().unwrap().id, "r2");
        assert_eq!(s.roots.len(), 2);
        assert!(!s.apply(10, &Event::Progress(pb::WatchProgress::default())));
        assert_eq!(s.index, 9, "progress changes nothing");
    }
}
