//! The `watch` workload: watchers on several nodes follow the workloads' services and
//! reconnect across faults, resuming from the last index they saw (to the next node
//! round the ring, so a resume usually lands on a different node). Every message is
//! recorded; [`crate::checks::watch`] checks the streams.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use waymark_proto::pb::{self, watch_response, WatchRequest};

use super::{status_text, ClientEnv};
use crate::checks::{REGISTER_SERVICE, SET_SERVICE, VALUE_META};
use crate::history::{Change, Event, InstanceState, WatchEvent, WatchRecord};

/// A stream that sends nothing (not even progress) for this long is given up on: its
/// node is probably paused or cut off.
const IDLE_LIMIT: Duration = Duration::from_secs(3);
/// Asked of the server: progress messages when nothing changes.
const PROGRESS_INTERVAL_MS: u64 = 500;
/// Watchers also hang up on their own after a random time up to this, and resume on
/// the next node: resumption is what most often goes wrong, so it should not wait for
/// a fault to happen.
const MAX_SESSION: Duration = Duration::from_secs(4);

/// The watchers' positions, so the run can wait for them to catch up at the end.
#[derive(Clone, Default)]
pub struct Positions(Arc<Vec<AtomicU64>>);

impl Positions {
    fn new(watchers: usize) -> Self {
        Self(Arc::new((0..watchers).map(|_| AtomicU64::new(0)).collect()))
    }

    /// The lowest index every watcher has reached.
    pub fn min(&self) -> u64 {
        self.0
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }
}

/// Starts `watchers` watchers; they run until the env's stop token fires.
pub fn start(env: ClientEnv, watchers: usize) -> (Positions, tokio::task::JoinHandle<()>) {
    let positions = Positions::new(watchers);
    let tasks: Vec<_> = (0..watchers)
        .map(|w| {
            let env = env.clone();
            let positions = positions.clone();
            tokio::spawn(async move { watcher(env, w, positions).await })
        })
        .collect();
    let all = tokio::spawn(async move {
        futures::future::join_all(tasks).await;
    });
    (positions, all)
}

async fn watcher(env: ClientEnv, w: usize, positions: Positions) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
    let mut last_index = 0u64;
    let mut session = 0u64;
    let mut slot = w;
    while !env.stop.is_cancelled() {
        let (node, addr) = env.node_for(slot);
        let record = |session: u64, event: WatchEvent| {
            env.recorder.record(Event::Watch(WatchRecord {
                watcher: w as u64,
                node,
                session,
                time: env.recorder.now(),
                event,
            }))
        };
        record(
            session,
            WatchEvent::Connected {
                from_index: last_index,
            },
        );
        let session_limit = MAX_SESSION.mul_f64(rng.gen_range(0.25..1.0));
        let error = follow(&env, &addr, session_limit, &mut last_index, |event| {
            if let Some(i) = index_of(&event) {
                positions.0[w].store(i, Ordering::Relaxed);
            }
            record(session, event);
        })
        .await;
        record(session, WatchEvent::Disconnected { error });
        session += 1;
        slot += 1;
        tokio::select! {
            _ = env.stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

fn index_of(event: &WatchEvent) -> Option<u64> {
    match event {
        WatchEvent::Snapshot { index, .. }
        | WatchEvent::Changes { index, .. }
        | WatchEvent::Progress { index } => Some(*index),
        _ => None,
    }
}

/// Follows one stream until it fails, goes idle, or the run stops; returns why it ended.
async fn follow(
    env: &ClientEnv,
    addr: &str,
    session_limit: Duration,
    last_index: &mut u64,
    mut on_event: impl FnMut(WatchEvent),
) -> String {
    let channel = match waymark_client::Client::lazy_channel(addr, &env.connect) {
        Ok(c) => c,
        Err(e) => return format!("{e:#}"),
    };
    let mut client = waymark_client::catalog(channel);
    let request = WatchRequest {
        services: vec![REGISTER_SERVICE.into(), SET_SERVICE.into()],
        all: false,
        from_index: *last_index,
        passing_only: false,
        progress_interval_ms: PROGRESS_INTERVAL_MS,
        ..Default::default()
    };
    let open = tokio::select! {
        _ = env.stop.cancelled() => return "run stopped".into(),
        r = tokio::time::timeout(IDLE_LIMIT, client.watch(request)) => r,
    };
    let mut stream = match open {
        Err(_) => return format!("no answer to Watch within {IDLE_LIMIT:?}"),
        Ok(Err(s)) => return status_text(&s),
        Ok(Ok(r)) => r.into_inner(),
    };
    let hang_up = tokio::time::sleep(session_limit);
    tokio::pin!(hang_up);
    // A snapshot in parts is recorded once, joined, when its last part is in (what a
    // client applies); a stream cut before that leaves nothing recorded of it.
    let mut parts: Vec<pb::WatchSnapshot> = Vec::new();
    loop {
        let next = tokio::select! {
            _ = env.stop.cancelled() => return "run stopped".into(),
            _ = &mut hang_up => return "hung up to resume elsewhere".into(),
            n = tokio::time::timeout(IDLE_LIMIT, stream.next()) => n,
        };
        let message = match next {
            Err(_) => return format!("idle for {IDLE_LIMIT:?}"),
            Ok(None) => return "stream ended".into(),
            Ok(Some(Err(s))) => return status_text(&s),
            Ok(Some(Ok(m))) => m,
        };
        let message = match message.event {
            Some(watch_response::Event::Snapshot(part)) if part.more => {
                parts.push(part);
                continue;
            }
            Some(watch_response::Event::Snapshot(last)) if !parts.is_empty() => {
                parts.push(last);
                let joined = waymark_proto::parts::join_snapshot(std::mem::take(&mut parts));
                pb::WatchResponse {
                    index: message.index,
                    event: Some(watch_response::Event::Snapshot(joined)),
                }
            }
            _ => message,
        };
        let Some(event) = convert(message) else {
            continue;
        };
        if let Some(i) = index_of(&event) {
            *last_index = i;
        }
        on_event(event);
    }
}

fn convert(message: pb::WatchResponse) -> Option<WatchEvent> {
    let index = message.index;
    Some(match message.event? {
        watch_response::Event::Snapshot(s) => WatchEvent::Snapshot {
            index,
            instances: s.instances.into_iter().map(instance_state).collect(),
        },
        watch_response::Event::Changes(c) => WatchEvent::Changes {
            index,
            changes: c
                .changes
                .into_iter()
                .filter_map(|c| match c.change? {
                    pb::record_change::Change::Upsert(i) => Some(Change::Upsert(instance_state(i))),
                    pb::record_change::Change::Remove(k) => Some(Change::Remove {
                        service: k.service,
                        id: k.id,
                    }),
                    // Not asked for: this workload watches instances only.
                    pb::record_change::Change::ConfigUpsert(_)
                    | pb::record_change::Change::ConfigRemove(_)
                    | pb::record_change::Change::CaRootUpsert(_)
                    | pb::record_change::Change::CaRootRemove(_)
                    | pb::record_change::Change::IntentionUpsert(_)
                    | pb::record_change::Change::IntentionRemove(_) => None,
                })
                .collect(),
        },
        watch_response::Event::Progress(_) => WatchEvent::Progress { index },
        watch_response::Event::Reset(r) => WatchEvent::Reset {
            index,
            reason: pb::ResetReason::try_from(r.reason)
                .map(|r| r.as_str_name().to_string())
                .unwrap_or_else(|_| format!("reason {}", r.reason)),
        },
    })
}

/// The parts of an instance the checkers compare.
pub fn instance_state(i: pb::Instance) -> InstanceState {
    InstanceState {
        value: i.meta.get(VALUE_META).cloned(),
        service: i.service,
        id: i.id,
        modify_index: i.modify_index,
    }
}
