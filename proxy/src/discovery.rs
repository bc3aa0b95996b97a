//! Following one upstream service's passing instances over a watch (waymark-client's
//! follower: snapshot, then changes, resumed on another node from the last index) and
//! turning each delivered state into the pool's endpoint set. Nothing older than the
//! applied index is ever applied. When every node fails the pool keeps its last set
//! (fail static) and the follower is restarted from the last index until one answers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use waymark_client::{Backoff, Client, WatchFollower, WatchItem};
use waymark_proto::pb;
use waymark_proto::pb::record_change::Change;
use waymark_proto::pb::watch_response::Event;

use crate::config::MESH_PORT_META;
use crate::endpoints::EndpointSpec;
use crate::upstream::Upstream;

/// Progress every second: a dead stream is noticed within a few seconds.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// The instances of one service as the watch has delivered them, by id.
#[derive(Debug, Default)]
pub struct Instances {
    by_id: BTreeMap<String, pb::Instance>,
}

impl Instances {
    /// Applies one delivered message; returns whether the set changed.
    pub fn apply(&mut self, event: &Event) -> bool {
        match event {
            Event::Snapshot(s) => {
                self.by_id = s
                    .instances
                    .iter()
                    .map(|i| (i.id.clone(), i.clone()))
                    .collect();
                true
            }
            Event::Changes(c) => {
                for change in &c.changes {
                    match &change.change {
                        Some(Change::Upsert(i)) => {
                            self.by_id.insert(i.id.clone(), i.clone());
                        }
                        Some(Change::Remove(k)) => {
                            self.by_id.remove(&k.id);
                        }
                        _ => {}
                    }
                }
                true
            }
            // A Reset is always followed by its Snapshot, which replaces everything.
            Event::Reset(_) | Event::Progress(_) => false,
        }
    }

    pub fn endpoints(&self) -> Vec<EndpointSpec> {
        self.by_id.values().filter_map(endpoint).collect()
    }
}

/// Where to reach an instance: its proxy's mesh port when it says it has one, its own
/// port otherwise. Warning instances (on a watch that delivers them) use their
/// warning weight.
pub fn endpoint(i: &pb::Instance) -> Option<EndpointSpec> {
    let weights = i.weights.unwrap_or(pb::Weights {
        passing: 1,
        warning: 1,
    });
    let weight = match pb::HealthStatus::try_from(i.status) {
        Ok(pb::HealthStatus::Passing) | Ok(pb::HealthStatus::Unspecified) => weights.passing,
        Ok(pb::HealthStatus::Warning) => weights.warning,
        _ => return None,
    };
    let host = if i.address.contains(':') && !i.address.starts_with('[') {
        format!("[{}]", i.address)
    } else {
        i.address.clone()
    };
    let mesh_port = i
        .meta
        .get(MESH_PORT_META)
        .and_then(|p| p.parse::<u16>().ok());
    let (port, meshed) = match mesh_port {
        Some(p) if p > 0 => (p, true),
        _ => (u16::try_from(i.port).ok()?, false),
    };
    Some(EndpointSpec {
        id: i.id.clone(),
        addr: format!("{host}:{port}"),
        meshed,
        weight,
    })
}

/// Keeps `upstream.pool` current until `shutdown`.
pub async fn follow(client: Client, upstream: Arc<Upstream>, shutdown: CancellationToken) {
    let name = upstream.name().to_string();
    let mut instances = Instances::default();
    let mut position = 0u64;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let request = pb::WatchRequest {
            services: vec![name.clone()],
            passing_only: true,
            from_index: position,
            progress_interval_ms: PROGRESS_INTERVAL.as_millis() as u64,
            ..Default::default()
        };
        let mut follower = WatchFollower::new(client.clone(), request);
        // Streams lost in a row: once every node has failed, the pool is failing static.
        let mut lost_in_a_row = 0usize;
        loop {
            let item = tokio::select! {
                () = shutdown.cancelled() => return,
                item = follower.next() => item,
            };
            match item {
                Ok(WatchItem::Message(msg)) => {
                    backoff.reset();
                    lost_in_a_row = 0;
                    let Some(event) = msg.event else { continue };
                    if msg.index < position {
                        // The follower never delivers this; refuse it all the same.
                        tracing::error!(upstream = %name, index = msg.index, position, "watch went back in index; ignored");
                        continue;
                    }
                    position = msg.index;
                    if matches!(event, Event::Reset(_)) {
                        continue;
                    }
                    if instances.apply(&event) {
                        if let Err(stale) = upstream.pool.update(msg.index, &instances.endpoints())
                        {
                            tracing::error!(upstream = %name, error = %stale, "endpoint update refused");
                        } else {
                            tracing::debug!(upstream = %name, index = msg.index, endpoints = upstream.pool.current().endpoints.len(), "endpoints updated");
                        }
                    } else {
                        upstream.pool.set_current();
                    }
                }
                Ok(WatchItem::Reconnecting {
                    reason,
                    addr,
                    from_index,
                    ..
                }) => {
                    tracing::warn!(upstream = %name, %reason, next = %addr, from_index, "watch lost; resuming");
                    lost_in_a_row += 1;
                    upstream
                        .pool
                        .set_problem(reason, lost_in_a_row >= client.endpoints().len());
                }
                Err(e) => {
                    // Every node failed: route on the last set and keep trying.
                    tracing::warn!(upstream = %name, error = %e, "no registry node answers; failing static on the last endpoint set");
                    upstream.pool.set_problem(e.to_string(), true);
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

    fn instance(id: &str, meta_port: Option<&str>, status: pb::HealthStatus) -> pb::Instance {
        pb::Instance {
            service: "api".into(),
            id: id.into(),
            address: "10.0.0.1".into(),
            port: 8080,
            meta: meta_port
                .map(|p| [(MESH_PORT_META.to_string(), p.to_string())].into())
                .unwrap_or_default(),
            weights: Some(pb::Weights {
                passing: 3,
                warning: 1,
            }),
            status: status as i32,
            ..Default::default()
        }
    }

    #[test]
    fn meshed_instances_are_reached_at_their_mesh_port() {
        let e = endpoint(&instance("a", Some("21000"), pb::HealthStatus::Passing)).unwrap();
        assert_eq!(
            (e.addr.as_str(), e.meshed, e.weight),
            ("10.0.0.1:21000", true, 3)
        );
        let e = endpoint(&instance("b", None, pb::HealthStatus::Warning)).unwrap();
        assert_eq!(
            (e.addr.as_str(), e.meshed, e.weight),
            ("10.0.0.1:8080", false, 1)
        );
        let e = endpoint(&instance("c", Some("junk"), pb::HealthStatus::Passing)).unwrap();
        assert_eq!(
            e.addr, "10.0.0.1:8080",
            "a bad mesh port falls back to direct"
        );
        assert!(endpoint(&instance("d", None, pb::HealthStatus::Critical)).is_none());
    }

    #[test]
    fn snapshot_then_changes() {
        let mut set = Instances::default();
        let snapshot = Event::Snapshot(pb::WatchSnapshot {
            instances: vec![
                instance("a", Some("1"), pb::HealthStatus::Passing),
                instance("b", Some("2"), pb::HealthStatus::Passing),
            ],
            ..Default::default()
        });
        assert!(set.apply(&snapshot));
        let changes = Event::Changes(pb::WatchChanges {
            changes: vec![
                pb::RecordChange {
                    change: Some(Change::Remove(pb::InstanceKey {
                        service: "api".into(),
                        id: "a".into(),
                    })),
                },
                pb::RecordChange {
                    change: Some(Change::Upsert(instance(
                        "c",
                        Some("3"),
                        pb::HealthStatus::Passing,
                    ))),
                },
            ],
        });
        assert!(set.apply(&changes));
        let ids: Vec<_> = set.endpoints().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["b", "c"]);
        assert!(!set.apply(&Event::Progress(pb::WatchProgress::default())));
    }
}
