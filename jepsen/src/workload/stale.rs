//! The `stale` workload: clients pinned to each node read [`SET_SERVICE`] with STALE
//! consistency and a staleness bound; [`crate::checks::stale`] checks that each node's
//! answers never go back in index and respect the bound they were asked for.

use waymark_proto::pb::{Consistency, ListInstancesRequest, ReadOptions};

use std::time::Duration;

use super::{read_call, record, ClientEnv, Process};
use crate::checks::SET_SERVICE;
use crate::history::{Op, Outcome};

/// The bound stale reads ask for: a node that has not heard from a leader for longer
/// must refuse rather than answer.
pub const MAX_STALE_MS: u64 = 2000;

/// Runs one stale reader per node until the stop token fires.
pub async fn run(env: ClientEnv) {
    let tasks: Vec<_> = (0..env.nodes.len())
        .map(|slot| {
            let env = env.clone();
            tokio::spawn(async move { client(env, slot).await })
        })
        .collect();
    futures::future::join_all(tasks).await;
}

async fn client(env: ClientEnv, slot: usize) {
    let Ok(mut process) = Process::new(&env, slot) else {
        return;
    };
    while !env.stop.is_cancelled() {
        let start = env.recorder.now();
        let request = ListInstancesRequest {
            service: SET_SERVICE.into(),
            read: Some(ReadOptions {
                consistency: Consistency::Stale as i32,
                max_stale_ms: MAX_STALE_MS,
            }),
            passing_only: false,
        };
        let (ids, index, last_contact_ms, outcome, error) =
            match read_call(&env, process.client.list_instances(request)).await {
                Ok(r) => {
                    let mut list: Vec<String> = r.instances.into_iter().map(|i| i.id).collect();
                    list.sort();
                    let meta = r.meta.unwrap_or_default();
                    (
                        Some(list),
                        Some(meta.index),
                        meta.last_contact_ms,
                        Outcome::Ok,
                        None,
                    )
                }
                // The process goes on: a failed read had no effect.
                Err((_, e)) => (None, None, None, Outcome::Fail, Some(e)),
            };
        let op = Op::StaleRead {
            service: SET_SERVICE.into(),
            max_stale_ms: MAX_STALE_MS,
            ids,
            index,
            last_contact_ms,
        };
        record(&env, &process, op, start, outcome, error);
        // Reads are cheap; slower pacing keeps them from swamping the history.
        tokio::select! {
            _ = env.stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}
