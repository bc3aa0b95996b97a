//! The `register` workload: per-key reads, writes and compare-and-sets on one
//! instance's `value` meta, checked for linearizability by [`crate::checks::register`].
//!
//! Keys are instances of [`REGISTER_SERVICE`]. A few keys are live at a time and are
//! replaced every [`KEY_LIFETIME`], so each key's history stays small enough for the
//! linearizability search (which is exponential in concurrency, not in length, but
//! indeterminate operations stay concurrent with everything after them).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Code;
use waymark_proto::pb::{Consistency, GetInstanceRequest, ReadOptions, RegisterRequest};

use super::{call, pace, read_call, record, ClientEnv, Process, Reply};
use crate::checks::{REGISTER_SERVICE, VALUE_META};
use crate::history::{Op, Outcome};

/// How long a key is written before new keys take over.
const KEY_LIFETIME: Duration = Duration::from_secs(10);
/// Keys live at the same time.
const LIVE_KEYS: u64 = 3;

/// Runs `clients` register clients until the stop token fires.
pub async fn run(env: ClientEnv, clients: usize, seed: u64) {
    let values = Arc::new(AtomicI64::new(1));
    let tasks: Vec<_> = (0..clients)
        .map(|slot| {
            let env = env.clone();
            let values = values.clone();
            tokio::spawn(async move { client(env, slot, seed, values).await })
        })
        .collect();
    futures::future::join_all(tasks).await;
}

async fn client(env: ClientEnv, slot: usize, seed: u64, values: Arc<AtomicI64>) {
    let mut rng = StdRng::seed_from_u64(seed ^ (slot as u64).wrapping_mul(0x9E37_79B9));
    let Ok(mut process) = Process::new(&env, slot) else {
        return;
    };
    // The last value and modify index this client read per key: the CAS token.
    let mut seen: HashMap<String, (i64, u64)> = HashMap::new();
    while !env.stop.is_cancelled() {
        let epoch = env.recorder.now() / KEY_LIFETIME.as_nanos() as u64;
        let key = format!("k{}", epoch * LIVE_KEYS + rng.gen_range(0..LIVE_KEYS));
        let roll: f64 = rng.gen();
        let outcome = match seen.get(&key).copied() {
            Some((from, token)) if roll < 0.3 => {
                let to = values.fetch_add(1, Ordering::Relaxed);
                let outcome = cas(&env, &mut process, &key, from, to, token).await;
                seen.remove(&key);
                outcome
            }
            _ if roll < 0.6 => {
                let value = values.fetch_add(1, Ordering::Relaxed);
                write(&env, &mut process, &key, value).await
            }
            _ => read(&env, &mut process, &key, &mut seen).await,
        };
        if outcome == Outcome::Info {
            match Process::new(&env, slot) {
                Ok(p) => process = p,
                Err(_) => return,
            }
            seen.clear();
        }
        pace(&env, outcome).await;
    }
}

fn registration(key: &str, value: i64, expected_modify_index: Option<u64>) -> RegisterRequest {
    RegisterRequest {
        service: REGISTER_SERVICE.into(),
        id: key.into(),
        address: "192.0.2.1".into(),
        port: 1,
        meta: BTreeMap::from([(VALUE_META.to_string(), value.to_string())])
            .into_iter()
            .collect(),
        expected_modify_index,
        ..Default::default()
    }
}

async fn read(
    env: &ClientEnv,
    process: &mut Process,
    key: &str,
    seen: &mut HashMap<String, (i64, u64)>,
) -> Outcome {
    let start = env.recorder.now();
    let request = GetInstanceRequest {
        service: REGISTER_SERVICE.into(),
        id: key.into(),
        read: Some(ReadOptions {
            consistency: Consistency::Consistent as i32,
            max_stale_ms: 0,
        }),
    };
    // NOT_FOUND is an answer: the key does not exist (yet).
    let found = match read_call(env, process.client.get_instance(request)).await {
        Ok(r) => Ok(Some(r)),
        Err((Some(Code::NotFound), _)) => Ok(None),
        Err((_, e)) => Err(e),
    };
    let (value, modify_index, index) = match &found {
        Ok(Some(r)) => {
            let instance = r.instance.clone().unwrap_or_default();
            let value = instance.meta.get(VALUE_META).and_then(|v| v.parse().ok());
            if let Some(v) = value {
                seen.insert(key.to_string(), (v, instance.modify_index));
            }
            (
                value,
                Some(instance.modify_index),
                r.meta.as_ref().map(|m| m.index),
            )
        }
        _ => (None, None, None),
    };
    let op = Op::Read {
        key: key.into(),
        value,
        modify_index,
        index,
    };
    let (outcome, error) = match found {
        Ok(_) => (Outcome::Ok, None),
        Err(e) => (Outcome::Fail, Some(e)),
    };
    record(env, process, op, start, outcome, error);
    outcome
}

async fn write(env: &ClientEnv, process: &mut Process, key: &str, value: i64) -> Outcome {
    let start = env.recorder.now();
    let reply = call(env, process.client.register(registration(key, value, None))).await;
    let op = |index| Op::Write {
        key: key.into(),
        value,
        index,
    };
    finish(env, process, start, reply, op)
}

async fn cas(
    env: &ClientEnv,
    process: &mut Process,
    key: &str,
    from: i64,
    to: i64,
    expected_index: u64,
) -> Outcome {
    let start = env.recorder.now();
    let reply = call(
        env,
        process
            .client
            .register(registration(key, to, Some(expected_index))),
    )
    .await;
    let op = |index| Op::Cas {
        key: key.into(),
        from,
        to,
        expected_index,
        index,
    };
    finish(env, process, start, reply, op)
}

fn finish(
    env: &ClientEnv,
    process: &Process,
    start: u64,
    reply: Reply<waymark_proto::pb::RegisterResponse>,
    op: impl Fn(Option<u64>) -> Op,
) -> Outcome {
    let (op, outcome, error) = match reply {
        Reply::Ok(r) => (op(Some(r.index)), Outcome::Ok, None),
        Reply::Fail(e) => (op(None), Outcome::Fail, Some(e)),
        Reply::Info(e) => (op(None), Outcome::Info, Some(e)),
    };
    record(env, process, op, start, outcome, error);
    outcome
}
