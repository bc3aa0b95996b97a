//! The `lease` workload: clients hold leases with keep-alives while the nemesis works.
//! Each holder creates a lease ([`TTL_MS`]), registers one instance of
//! [`LEASE_SERVICE`] under it, and renews it every TTL/3 (as `waymark_client`'s keeper
//! does) for a random 2–6 s; then it revokes the lease (1 in 4) or abandons it, and
//! starts the next. Every keep-alive is its own stream carrying one request, so each
//! has its own interval in the history. Observers, one per node, list the leased
//! instances with consistent reads every [`SCAN_EVERY`], so the moment a lease ends is
//! seen from every side of a partition, whatever its holder is stuck on.
//! [`crate::checks::lease`] holds this to the lease promises.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use waymark_proto::pb::{
    CreateLeaseRequest, KeepAliveRequest, RegisterRequest, RevokeLeaseRequest,
};

use super::{call, consistent_list, pace, read_call, record, ClientEnv, Process, Reply};
use crate::checks::LEASE_SERVICE;
use crate::history::{Op, Outcome};

/// The TTL every lease asks for: long enough that a lease renewed just before its
/// leader was cut off is still guaranteed when a new leader has been elected (so an
/// expiry at that moment shows as early), short enough that many expire in a run.
pub const TTL_MS: u64 = 5_000;
/// How long a holder keeps one lease alive before letting it go, in ms.
const HOLD_MS: std::ops::RangeInclusive<u64> = 2_000..=6_000;
/// How often each observer lists the leased instances.
pub const SCAN_EVERY: Duration = Duration::from_millis(100);
/// How long [`drain`] waits for the last leases to end: two TTLs (a lease renewed just
/// before the end, then extended by a new leader) and then some.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(20);

/// Runs `holders` lease holders and one observer per node until the stop token fires.
pub async fn run(env: ClientEnv, holders: usize, seed: u64) {
    let mut tasks: Vec<_> = (0..holders)
        .map(|slot| {
            let env = env.clone();
            tokio::spawn(async move {
                if let Ok(mut holder) = LeaseClient::new(env, slot, seed) {
                    holder.run().await;
                }
            })
        })
        .collect();
    for slot in 0..env.nodes.len() {
        tasks.push(tokio::spawn(observe(env.clone(), slot)));
    }
    for task in futures::future::join_all(tasks).await {
        if let Err(e) = task {
            // Passed on, so the run fails rather than judge a history cut short.
            panic!("a lease client task failed: {e}");
        }
    }
}

/// Lists the leased instances from one node until the run stops.
async fn observe(env: ClientEnv, slot: usize) {
    let Ok(process) = Process::new(&env, slot) else {
        return;
    };
    while !env.stop.is_cancelled() {
        let outcome = match scan(&env, &process).await {
            Some(_) => Outcome::Ok,
            None => Outcome::Fail,
        };
        if outcome == Outcome::Ok {
            tokio::select! {
                _ = env.stop.cancelled() => {}
                _ = tokio::time::sleep(SCAN_EVERY) => {}
            }
        } else {
            pace(&env, outcome).await;
        }
    }
}

/// After the run, with faults healed: every holder has stopped, so every lease left
/// is abandoned. Lists the leased instances from each node in turn until one answer
/// holds none, or `give_up` passes, so that every expiry is observed and one that
/// never comes is seen still there long after it was due.
pub async fn drain(env: &ClientEnv, give_up: Duration) {
    let deadline = tokio::time::Instant::now() + give_up;
    let processes: Vec<Process> = (0..env.nodes.len())
        .filter_map(|slot| Process::new(env, slot).ok())
        .collect();
    for process in processes.iter().cycle() {
        if tokio::time::Instant::now() >= deadline
            || scan(env, process).await.is_some_and(|ids| ids.is_empty())
        {
            return;
        }
        tokio::time::sleep(SCAN_EVERY).await;
    }
}

/// One consistent list of the leased instances, recorded; their ids if it answered.
async fn scan(env: &ClientEnv, process: &Process) -> Option<Vec<String>> {
    let start = env.recorder.now();
    let request = consistent_list(LEASE_SERVICE);
    let mut client = process.client.clone();
    let (ids, index, outcome, error) = match read_call(env, client.list_instances(request)).await {
        Ok(r) => {
            let mut ids: Vec<String> = r.instances.into_iter().map(|i| i.id).collect();
            ids.sort();
            (Some(ids), r.meta.map(|m| m.index), Outcome::Ok, None)
        }
        Err((_, e)) => (None, None, Outcome::Fail, Some(e)),
    };
    let op = Op::LeaseScan {
        ids: ids.clone(),
        index,
    };
    record(env, process, op, start, outcome, error);
    ids
}

/// One sequential lease client.
struct LeaseClient {
    env: ClientEnv,
    slot: usize,
    process: Process,
    rng: StdRng,
}

impl LeaseClient {
    fn new(env: ClientEnv, slot: usize, seed: u64) -> anyhow::Result<Self> {
        let rng = StdRng::seed_from_u64(seed ^ 0x1EA5E ^ (slot as u64).wrapping_mul(0x9E37_79B9));
        let process = Process::new(&env, slot)?;
        Ok(Self {
            env,
            slot,
            process,
            rng,
        })
    }

    async fn run(&mut self) {
        while !self.env.stop.is_cancelled() {
            self.one_lease().await;
        }
    }

    /// Create, attach, hold, then let go (revoke or abandon it).
    async fn one_lease(&mut self) {
        let Some((lease_id, ttl_ms)) = self.create().await else {
            return;
        };
        if !self.attach(lease_id, &format!("l{lease_id}")).await {
            // Without its instance there is nothing to observe; the lease expires alone.
            return;
        }
        let hold = Duration::from_millis(self.rng.gen_range(HOLD_MS));
        let hold_until = tokio::time::Instant::now() + hold;
        while tokio::time::Instant::now() < hold_until {
            if self.keep_alive(lease_id).await == Some(0) {
                // The server says it is gone (keep-alives failed for a TTL under a fault,
                // or it ended early: the checker tells which).
                return;
            }
            if !self.sleep(Duration::from_millis(ttl_ms / 3)).await {
                return;
            }
        }
        if self.rng.gen_ratio(1, 4) {
            self.revoke(lease_id).await;
        }
    }

    /// Sleeps `d` unless the run stops first; false if it did.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.env.stop.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    /// After an indeterminate operation the process retires (it may still have one in
    /// flight); after any failure the client pauses.
    async fn after(&mut self, outcome: Outcome) {
        if outcome == Outcome::Info {
            if let Ok(p) = Process::new(&self.env, self.slot) {
                self.process = p;
            }
        }
        if outcome != Outcome::Ok {
            pace(&self.env, outcome).await;
        }
    }

    /// (lease id, granted TTL) if the lease was created.
    async fn create(&mut self) -> Option<(u64, u64)> {
        let start = self.env.recorder.now();
        let mut leases = self.process.leases.clone();
        let request = CreateLeaseRequest { ttl_ms: TTL_MS };
        let (created, outcome, error) = match call(&self.env, leases.create_lease(request)).await {
            Reply::Ok(r) => (Some(r), Outcome::Ok, None),
            Reply::Fail(e) => (None, Outcome::Fail, Some(e)),
            Reply::Info(e) => (None, Outcome::Info, Some(e)),
        };
        let op = Op::LeaseCreate {
            ttl_ms: TTL_MS,
            lease_id: created.as_ref().map(|r| r.lease_id),
            granted_ms: created.as_ref().map(|r| r.ttl_ms),
            index: created.as_ref().map(|r| r.index),
        };
        record(&self.env, &self.process, op, start, outcome, error);
        self.after(outcome).await;
        created.map(|r| (r.lease_id, r.ttl_ms))
    }

    /// Registers instance `id` under the lease; true if acknowledged.
    async fn attach(&mut self, lease_id: u64, id: &str) -> bool {
        let start = self.env.recorder.now();
        let request = RegisterRequest {
            service: LEASE_SERVICE.into(),
            id: id.into(),
            address: "192.0.2.3".into(),
            port: 3,
            lease_id,
            ..Default::default()
        };
        let mut client = self.process.client.clone();
        let (index, outcome, error) = match call(&self.env, client.register(request)).await {
            Reply::Ok(r) => (Some(r.index), Outcome::Ok, None),
            Reply::Fail(e) => (None, Outcome::Fail, Some(e)),
            Reply::Info(e) => (None, Outcome::Info, Some(e)),
        };
        let op = Op::LeaseAttach {
            lease_id,
            id: id.into(),
            index,
        };
        record(&self.env, &self.process, op, start, outcome, error);
        self.after(outcome).await;
        outcome == Outcome::Ok
    }

    /// One renewal; the granted TTL (0: gone) if the server answered.
    async fn keep_alive(&mut self, lease_id: u64) -> Option<u64> {
        let start = self.env.recorder.now();
        let mut leases = self.process.leases.clone();
        let rpc = async move {
            let requests = futures::stream::iter([KeepAliveRequest { lease_id }]);
            let mut replies = leases.keep_alive(requests).await?.into_inner();
            match replies.message().await? {
                Some(reply) => Ok(tonic::Response::new(reply)),
                // No detail: the renewal may or may not have happened (`info`).
                None => Err(tonic::Status::unavailable(
                    "the keep-alive stream ended without an answer",
                )),
            }
        };
        let (granted_ms, outcome, error) = match call(&self.env, rpc).await {
            Reply::Ok(r) => (Some(r.ttl_ms), Outcome::Ok, None),
            Reply::Fail(e) => (None, Outcome::Fail, Some(e)),
            Reply::Info(e) => (None, Outcome::Info, Some(e)),
        };
        let op = Op::KeepAlive {
            lease_id,
            granted_ms,
        };
        record(&self.env, &self.process, op, start, outcome, error);
        self.after(outcome).await;
        granted_ms
    }

    async fn revoke(&mut self, lease_id: u64) {
        let start = self.env.recorder.now();
        let mut leases = self.process.leases.clone();
        let request = RevokeLeaseRequest { lease_id };
        let (reply, outcome, error) = match call(&self.env, leases.revoke_lease(request)).await {
            Reply::Ok(r) => (Some(r), Outcome::Ok, None),
            Reply::Fail(e) => (None, Outcome::Fail, Some(e)),
            Reply::Info(e) => (None, Outcome::Info, Some(e)),
        };
        let op = Op::LeaseRevoke {
            lease_id,
            revoked: reply.as_ref().map(|r| r.revoked),
            index: reply.as_ref().map(|r| r.index),
        };
        record(&self.env, &self.process, op, start, outcome, error);
        self.after(outcome).await;
    }
}
