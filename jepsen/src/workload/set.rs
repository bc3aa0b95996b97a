//! The `set` workload: clients register new, unique instances of [`SET_SERVICE`] and
//! deregister some they saw acknowledged. The final reads (see
//! [`super::final_reads`]) must hold every acknowledged survivor and nothing that was
//! never written; [`crate::checks::set`] decides.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use waymark_proto::pb::{DeregisterRequest, RegisterRequest};

use super::{call, pace, record, ClientEnv, Process, Reply};
use crate::checks::SET_SERVICE;
use crate::history::{Op, Outcome};

/// Runs `clients` set clients until the stop token fires.
pub async fn run(env: ClientEnv, clients: usize, seed: u64) {
    let ids = Arc::new(AtomicU64::new(1));
    let tasks: Vec<_> = (0..clients)
        .map(|slot| {
            let env = env.clone();
            let ids = ids.clone();
            tokio::spawn(async move { client(env, slot, seed, ids).await })
        })
        .collect();
    futures::future::join_all(tasks).await;
}

async fn client(env: ClientEnv, slot: usize, seed: u64, ids: Arc<AtomicU64>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5E7 ^ (slot as u64).wrapping_mul(0x9E37_79B9));
    let Ok(mut process) = Process::new(&env, slot) else {
        return;
    };
    // Acknowledged adds of this client not yet removed: candidates for removal.
    let mut added: Vec<String> = Vec::new();
    while !env.stop.is_cancelled() {
        let outcome = if !added.is_empty() && rng.gen_ratio(1, 4) {
            let id = added.swap_remove(rng.gen_range(0..added.len()));
            remove(&env, &process, &id).await
        } else {
            let id = format!("e{}", ids.fetch_add(1, Ordering::Relaxed));
            let outcome = add(&env, &process, &id).await;
            if outcome == Outcome::Ok {
                added.push(id);
            }
            outcome
        };
        if outcome == Outcome::Info {
            match Process::new(&env, slot) {
                Ok(p) => process = p,
                Err(_) => return,
            }
        }
        pace(&env, outcome).await;
    }
}

async fn add(env: &ClientEnv, process: &Process, id: &str) -> Outcome {
    let start = env.recorder.now();
    let request = RegisterRequest {
        service: SET_SERVICE.into(),
        id: id.into(),
        address: "192.0.2.2".into(),
        port: 2,
        ..Default::default()
    };
    let mut client = process.client.clone();
    let (index, outcome, error) = match call(env, client.register(request)).await {
        Reply::Ok(r) => (Some(r.index), Outcome::Ok, None),
        Reply::Fail(e) => (None, Outcome::Fail, Some(e)),
        Reply::Info(e) => (None, Outcome::Info, Some(e)),
    };
    let op = Op::Add {
        id: id.into(),
        index,
    };
    record(env, process, op, start, outcome, error);
    outcome
}

async fn remove(env: &ClientEnv, process: &Process, id: &str) -> Outcome {
    let start = env.recorder.now();
    let request = DeregisterRequest {
        service: SET_SERVICE.into(),
        id: id.into(),
    };
    let mut client = process.client.clone();
    let (removed, index, outcome, error) = match call(env, client.deregister(request)).await {
        Reply::Ok(r) => (Some(r.removed), Some(r.index), Outcome::Ok, None),
        Reply::Fail(e) => (None, None, Outcome::Fail, Some(e)),
        Reply::Info(e) => (None, None, Outcome::Info, Some(e)),
    };
    let op = Op::Remove {
        id: id.into(),
        removed,
        index,
    };
    record(env, process, op, start, outcome, error);
    outcome
}
