//! The `stale` workload: clients pinned to each node read [`SET_SERVICE`] with STALE
//! consistency and a staleness bound; [`crate::checks::stale`] checks that each node's
//! answers never go back in index and respect the bound they were asked for.

use waymark_proto::pb::{Consistency, ListInstancesRequest, ReadOptions};

use std::time::Duration;

use super::{record, ClientEnv, Process};
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
        let mut op = Op::StaleRead {
            service: SET_SERVICE.into(),
            max_stale_ms: MAX_STALE_MS,
            ids: None,
            index: None,
            last_contact_ms: None,
        };
        // Reads have no effect, so any error is a plain failure, and the process goes on.
        let reply =
            tokio::time::timeout(env.op_timeout, process.client.list_instances(request)).await;
        let (outcome, error) = match reply {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                if let Op::StaleRead {
                    ids,
                    index,
                    last_contact_ms,
                    ..
                } = &mut op
                {
                    let mut list: Vec<String> = r.instances.into_iter().map(|i| i.id).collect();
                    list.sort();
                    *ids = Some(list);
                    *index = r.meta.as_ref().map(|m| m.index);
                    *last_contact_ms = r.meta.and_then(|m| m.last_contact_ms);
                }
                (Outcome::Ok, None)
            }
            Ok(Err(s)) => (
                Outcome::Fail,
                Some(format!("{:?}: {}", s.code(), s.message())),
            ),
            Err(_) => (
                Outcome::Fail,
                Some(format!("timed out after {:?}", env.op_timeout)),
            ),
        };
        record(&env, &process, op, start, outcome, error);
        // Reads are cheap; slower pacing keeps them from swamping the history.
        tokio::select! {
            _ = env.stop.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}
