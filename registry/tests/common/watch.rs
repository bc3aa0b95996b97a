//! Test helpers for watch streams: read with deadlines, and a client-side model that
//! applies messages and checks the stream's ordering guarantees as it goes.
#![allow(dead_code)]

use std::collections::BTreeMap;

use tonic::Streaming;
use waymark_proto::pb;
use waymark_proto::pb::watch_response::Event;

use super::DEADLINE;

/// Next message, failing the test at the deadline or if the stream ends.
pub async fn next(stream: &mut Streaming<pb::WatchResponse>) -> pb::WatchResponse {
    match tokio::time::timeout(DEADLINE, stream.message()).await {
        Ok(Ok(Some(m))) => m,
        Ok(Ok(None)) => panic!("watch stream ended"),
        Ok(Err(s)) => panic!("watch stream failed: {s:?}"),
        Err(_) => panic!("no watch message within {DEADLINE:?}"),
    }
}

pub fn kind(m: &pb::WatchResponse) -> &'static str {
    match m.event {
        Some(Event::Snapshot(_)) => "snapshot",
        Some(Event::Changes(_)) => "changes",
        Some(Event::Progress(_)) => "progress",
        Some(Event::Reset(_)) => "reset",
        None => "none",
    }
}

pub fn watch_request(services: &[&str], from_index: u64) -> pb::WatchRequest {
    pb::WatchRequest {
        services: services.iter().map(|s| s.to_string()).collect(),
        all: false,
        from_index,
        passing_only: false,
        progress_interval_ms: 200,
        ..Default::default()
    }
}

/// What a client knows from a watch stream.
#[derive(Debug, Default, Clone)]
pub struct WatchModel {
    pub index: u64,
    pub last_change_index: u64,
    pub instances: BTreeMap<(String, String), pb::Instance>,
    pub config: BTreeMap<String, pb::ConfigEntry>,
    pub resets: Vec<i32>,
    /// A Reset was received; the next message must be its Snapshot.
    pub awaiting_snapshot: bool,
    /// (index, change) for every change applied, in order.
    pub log: Vec<(u64, pb::RecordChange)>,
    /// Parts of a snapshot still waiting for its last part (at this index).
    pub pending_parts: Option<(u64, Vec<pb::WatchSnapshot>)>,
}

impl WatchModel {
    /// Applies one message, asserting: index never decreases, Changes indexes strictly
    /// increase, and a Reset is followed (by the caller's next message) by a snapshot.
    pub fn apply(&mut self, m: &pb::WatchResponse) {
        let part = match &m.event {
            Some(Event::Snapshot(s)) if s.more || self.pending_parts.is_some() => s,
            _ => {
                assert!(
                    self.pending_parts.is_none(),
                    "a snapshot's parts must be consecutive, got {m:?}"
                );
                return self.apply_whole(m);
            }
        };
        // A snapshot in parts: applied as one when its last part is in.
        let (at, parts) = self
            .pending_parts
            .get_or_insert_with(|| (m.index, Vec::new()));
        assert_eq!(*at, m.index, "a snapshot's parts share its index");
        parts.push(part.clone());
        if part.more {
            return;
        }
        let (index, parts) = self.pending_parts.take().expect("parts");
        self.apply_whole(&pb::WatchResponse {
            index,
            event: Some(Event::Snapshot(waymark_proto::parts::join_snapshot(parts))),
        });
    }

    fn apply_whole(&mut self, m: &pb::WatchResponse) {
        assert!(
            m.index >= self.index,
            "index went back: {} after {}",
            m.index,
            self.index
        );
        if self.awaiting_snapshot {
            assert_eq!(
                kind(m),
                "snapshot",
                "a Reset must be followed by a Snapshot"
            );
            self.awaiting_snapshot = false;
        }
        match &m.event {
            Some(Event::Snapshot(s)) => {
                self.instances = s
                    .instances
                    .iter()
                    .map(|i| ((i.service.clone(), i.id.clone()), i.clone()))
                    .collect();
                self.config = s
                    .config_entries
                    .iter()
                    .map(|e| (e.key.clone(), e.clone()))
                    .collect();
                self.last_change_index = m.index;
            }
            Some(Event::Changes(c)) => {
                assert!(
                    m.index > self.last_change_index,
                    "changes at {} repeat or precede {}",
                    m.index,
                    self.last_change_index
                );
                assert!(
                    !c.changes.is_empty(),
                    "empty Changes message at {}",
                    m.index
                );
                for ch in &c.changes {
                    match ch.change.as_ref().expect("change") {
                        pb::record_change::Change::Upsert(i) => {
                            assert_eq!(i.modify_index, m.index, "upsert not tagged with its index");
                            self.instances
                                .insert((i.service.clone(), i.id.clone()), i.clone());
                        }
                        pb::record_change::Change::Remove(k) => {
                            self.instances.remove(&(k.service.clone(), k.id.clone()));
                        }
                        pb::record_change::Change::ConfigUpsert(e) => {
                            assert_eq!(
                                e.modify_index, m.index,
                                "config put not tagged with its index"
                            );
                            self.config.insert(e.key.clone(), e.clone());
                        }
                        pb::record_change::Change::ConfigRemove(key) => {
                            self.config.remove(key);
                        }
                        // Mesh records: kept only in the log (tests/identity.rs checks
                        // them message by message).
                        pb::record_change::Change::CaRootUpsert(_)
                        | pb::record_change::Change::CaRootRemove(_)
                        | pb::record_change::Change::IntentionUpsert(_)
                        | pb::record_change::Change::IntentionRemove(_) => {}
                    }
                    self.log.push((m.index, ch.clone()));
                }
                self.last_change_index = m.index;
            }
            Some(Event::Reset(r)) => {
                self.resets.push(r.reason);
                self.awaiting_snapshot = true;
            }
            Some(Event::Progress(_)) => {}
            None => panic!("message without event"),
        }
        self.index = m.index;
    }

    /// True once the model reflects a complete state at or after `index`.
    pub fn caught_up_to(&self, index: u64) -> bool {
        self.index >= index && !self.awaiting_snapshot && self.pending_parts.is_none()
    }

    pub fn ids(&self, service: &str) -> Vec<String> {
        self.instances
            .keys()
            .filter(|(s, _)| s == service)
            .map(|(_, id)| id.clone())
            .collect()
    }
}
