//! Keeping a lease alive: a renewal over the KeepAlive stream every TTL/3 (the TTL the
//! node last granted), each answered before the next is due; a stream lost to a
//! transient failure is reopened on the next node. It stops when the lease is gone (a
//! granted TTL of 0) or nothing was granted for two TTLs. [`LeaseKeeper`] runs that
//! in a task and revokes the lease when it is dropped or shut down.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use waymark_proto::pb;

use crate::backoff::Backoff;
use crate::client::{catalog, leases, CallPolicy, Client};
use crate::duration::duration_to_ms;
use crate::endpoints::display_addr;
use crate::error::{chain_text, ClientError};

/// Before the node has said the TTL: how long an answer may take, and how long without
/// any grant before giving up.
const FIRST_ANSWER_WAIT: Duration = Duration::from_secs(5);
const UNKNOWN_TTL_GIVE_UP: Duration = Duration::from_secs(10);
/// An answer may always take at least this long, however short the TTL.
const MIN_ANSWER_WAIT: Duration = Duration::from_secs(1);
/// A revoke on shutdown is best effort: it must not hold the shutdown up for long.
const REVOKE_WAIT: Duration = Duration::from_secs(5);

/// Why keeping a lease alive stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeepAliveError {
    #[error("lease {lease_id} no longer exists (it expired or was revoked)")]
    Gone { lease_id: u64 },
    #[error("could not renew lease {lease_id} for {for_ms} ms, giving up: {reason}")]
    GaveUp {
        lease_id: u64,
        for_ms: u128,
        reason: String,
    },
    /// The server refused the keep-alive itself (not a transient failure).
    #[error("{0}")]
    Refused(String),
    /// The keeper's task ended without saying why (it panicked or was cancelled).
    #[error("the keep-alive task of lease {lease_id} ended")]
    Stopped { lease_id: u64 },
}

/// What the keeper reports while it works, for logging.
#[derive(Debug, Clone)]
pub enum KeepAliveEvent {
    /// The node granted this TTL from now; `first` on the first grant.
    Granted { ttl: Duration, first: bool },
    /// The stream broke; reopening on `addr` after `delay`.
    Reconnecting {
        reason: String,
        addr: String,
        delay: Duration,
    },
}

/// What is known about the lease.
#[derive(Debug, Clone, Copy)]
struct Renewals {
    /// The TTL last granted, if any yet.
    ttl: Option<Duration>,
    /// When it was granted (or when keeping started).
    last_grant: Instant,
}

impl Renewals {
    /// Time between renewals.
    fn interval(&self) -> Duration {
        self.ttl.map_or(FIRST_ANSWER_WAIT, |ttl| ttl / 3)
    }

    /// How long an answer may take before the stream counts as stuck.
    fn answer_wait(&self) -> Duration {
        self.interval().max(MIN_ANSWER_WAIT)
    }

    /// Past this, the lease has most likely expired: stop trying.
    fn give_up_at(&self) -> Instant {
        self.last_grant + self.ttl.map_or(UNKNOWN_TTL_GIVE_UP, |ttl| ttl * 2)
    }
}

/// How one stream ended.
enum End {
    Gone,
    Lost(String),
    Fatal(String),
}

/// Renews `lease_id` until it cannot; only ever returns the reason it stopped. `ttl`
/// is the TTL already known (from CreateLease), if any.
pub async fn keep_alive(
    client: &Client,
    lease_id: u64,
    ttl: Option<Duration>,
    mut on_event: impl FnMut(KeepAliveEvent),
) -> KeepAliveError {
    let mut renewals = Renewals {
        ttl,
        last_grant: Instant::now(),
    };
    let mut granted_any = false;
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(2));
    let mut node = client.preferred();
    loop {
        let granted_before = renewals.last_grant;
        let reason = match session(client, node, lease_id, &mut renewals, &mut |ttl| {
            on_event(KeepAliveEvent::Granted {
                ttl,
                first: !granted_any,
            });
            granted_any = true;
        })
        .await
        {
            End::Gone => return KeepAliveError::Gone { lease_id },
            End::Fatal(reason) => return KeepAliveError::Refused(reason),
            End::Lost(reason) => reason,
        };
        if renewals.last_grant != granted_before {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        if Instant::now() + delay >= renewals.give_up_at() {
            return KeepAliveError::GaveUp {
                lease_id,
                for_ms: renewals.last_grant.elapsed().as_millis(),
                reason,
            };
        }
        node = (node + 1) % client.endpoints().len();
        on_event(KeepAliveEvent::Reconnecting {
            reason,
            addr: display_addr(client.endpoints().get(node)).to_string(),
            delay,
        });
        tokio::time::sleep(delay).await;
    }
}

/// One KeepAlive stream on `node`: a renewal at once, then one every interval.
async fn session(
    client: &Client,
    node: usize,
    lease_id: u64,
    renewals: &mut Renewals,
    on_grant: &mut impl FnMut(Duration),
) -> End {
    let uri = client.endpoints().get(node).to_string();
    let channel = match client.channel(node).await {
        Ok(c) => c,
        Err(e) => return End::Lost(chain_text(&e)),
    };
    let request = pb::KeepAliveRequest { lease_id };
    let (tx, rx) = mpsc::channel(2);
    if tx.try_send(request).is_err() {
        return End::Lost("the request stream closed".into());
    }
    let mut sent_at = Instant::now();
    let mut awaiting = true;
    let mut responses = match leases(channel).keep_alive(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(status) => return status_end(&uri, status),
    };
    loop {
        let deadline = if awaiting {
            sent_at + renewals.answer_wait()
        } else {
            sent_at + renewals.interval()
        };
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                if awaiting {
                    return End::Lost(format!(
                        "no answer to a renewal within {} ms",
                        renewals.answer_wait().as_millis()
                    ));
                }
                if tx.send(request).await.is_err() {
                    return End::Lost("the request stream closed".into());
                }
                sent_at = Instant::now();
                awaiting = true;
            }
            answer = responses.message() => match answer {
                Ok(Some(r)) if r.ttl_ms == 0 => return End::Gone,
                Ok(Some(r)) => {
                    let ttl = Duration::from_millis(r.ttl_ms);
                    renewals.ttl = Some(ttl);
                    renewals.last_grant = Instant::now();
                    awaiting = false;
                    client.prefer(node);
                    on_grant(ttl);
                }
                Ok(None) => return End::Lost("the node ended the stream".into()),
                Err(status) => return status_end(&uri, status),
            },
        }
    }
}

fn status_end(uri: &str, status: tonic::Status) -> End {
    let e = ClientError::rpc(uri, status);
    match e.failure() {
        Some(f) if f.is_retryable() => End::Lost(e.to_string()),
        _ => End::Fatal(e.to_string()),
    }
}

/// A lease kept alive in a background task. Dropping it stops the renewals and revokes
/// the lease (best effort, in the background, if a runtime is still running); call
/// [`LeaseKeeper::revoke`] to revoke and wait for the answer, or
/// [`LeaseKeeper::abandon`] to stop renewing and leave the lease to expire.
pub struct LeaseKeeper {
    client: Client,
    lease_id: u64,
    ttl: Duration,
    task: Option<JoinHandle<KeepAliveError>>,
    revoke_on_drop: bool,
}

impl LeaseKeeper {
    /// Creates a lease with `ttl` and starts keeping it alive.
    pub async fn create(
        client: &Client,
        ttl: Duration,
        on_event: impl FnMut(KeepAliveEvent) + Send + 'static,
    ) -> Result<Self, ClientError> {
        let request = pb::CreateLeaseRequest {
            ttl_ms: duration_to_ms(ttl),
        };
        let created = client
            .call(
                CallPolicy::write(client.endpoints().len()),
                |ch| async move { leases(ch).create_lease(request).await },
            )
            .await?;
        let granted = Duration::from_millis(created.ttl_ms);
        let mut keeper = Self::start(client, created.lease_id, Some(granted), on_event);
        keeper.ttl = granted;
        Ok(keeper)
    }

    /// Keeps an existing lease alive. With `ttl` unknown the first answer tells it.
    pub fn start(
        client: &Client,
        lease_id: u64,
        ttl: Option<Duration>,
        on_event: impl FnMut(KeepAliveEvent) + Send + 'static,
    ) -> Self {
        let task_client = client.clone();
        let task =
            tokio::spawn(async move { keep_alive(&task_client, lease_id, ttl, on_event).await });
        Self {
            client: client.clone(),
            lease_id,
            ttl: ttl.unwrap_or_default(),
            task: Some(task),
            revoke_on_drop: true,
        }
    }

    pub fn lease_id(&self) -> u64 {
        self.lease_id
    }

    /// The TTL CreateLease granted (zero for a lease started by id).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Resolves when keeping the lease alive has failed for good, with the reason.
    /// Cancel-safe: waiting again after a cancelled wait is fine.
    pub async fn lost(&mut self) -> KeepAliveError {
        let lease_id = self.lease_id;
        match self.task.as_mut() {
            None => KeepAliveError::Stopped { lease_id },
            Some(task) => {
                let result = task.await;
                self.task = None;
                result.unwrap_or(KeepAliveError::Stopped { lease_id })
            }
        }
    }

    /// Registers `request` under this lease (its `lease_id` is set here).
    pub async fn register(
        &self,
        mut request: pb::RegisterRequest,
    ) -> Result<pb::RegisterResponse, ClientError> {
        request.lease_id = self.lease_id;
        self.client
            .call(CallPolicy::write(self.client.endpoints().len()), |ch| {
                let request = request.clone();
                async move { catalog(ch).register(request).await }
            })
            .await
    }

    /// Stops renewing and revokes the lease, waiting (bounded) for the answer.
    pub async fn revoke(mut self) -> Result<pb::RevokeLeaseResponse, ClientError> {
        self.stop_renewing();
        self.revoke_on_drop = false;
        revoke(&self.client, self.lease_id).await
    }

    /// Stops renewing without revoking: the lease expires after its TTL.
    pub fn abandon(mut self) {
        self.stop_renewing();
        self.revoke_on_drop = false;
    }

    fn stop_renewing(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.stop_renewing();
        if !self.revoke_on_drop {
            return;
        }
        // Best effort: without a runtime there is nothing to send with, and the lease
        // expires after its TTL anyway.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (client, lease_id) = (self.client.clone(), self.lease_id);
            handle.spawn(async move {
                if let Err(e) = revoke(&client, lease_id).await {
                    tracing::debug!(lease_id, error = %e, "revoking a dropped lease failed");
                }
            });
        }
    }
}

async fn revoke(client: &Client, lease_id: u64) -> Result<pb::RevokeLeaseResponse, ClientError> {
    let call = client.call(
        CallPolicy::read(client.endpoints().len()),
        |ch| async move {
            // Revoking twice is harmless (the second says it was gone), so it may be resent.
            leases(ch)
                .revoke_lease(pb::RevokeLeaseRequest { lease_id })
                .await
        },
    );
    tokio::time::timeout(REVOKE_WAIT, call)
        .await
        .unwrap_or_else(|_| {
            Err(ClientError::GaveUp(format!(
                "no answer to revoking lease {lease_id} within {} s",
                REVOKE_WAIT.as_secs()
            )))
        })
}

/// Creates a lease with `ttl`, registers `request` under it and keeps it alive. If the
/// registration fails, the unused lease is revoked (by dropping its keeper).
pub async fn register_with_lease(
    client: &Client,
    request: pb::RegisterRequest,
    ttl: Duration,
    on_event: impl FnMut(KeepAliveEvent) + Send + 'static,
) -> Result<(pb::RegisterResponse, LeaseKeeper), ClientError> {
    let keeper = LeaseKeeper::create(client, ttl, on_event).await?;
    let registered = keeper.register(request).await?;
    Ok((registered, keeper))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_schedule() {
        let start = Instant::now();
        let known = Renewals {
            ttl: Some(Duration::from_secs(9)),
            last_grant: start,
        };
        assert_eq!(known.interval(), Duration::from_secs(3));
        assert_eq!(known.answer_wait(), Duration::from_secs(3));
        assert_eq!(known.give_up_at(), start + Duration::from_secs(18));

        let short = Renewals {
            ttl: Some(Duration::from_secs(2)),
            last_grant: start,
        };
        assert_eq!(short.interval(), Duration::from_secs(2) / 3);
        assert_eq!(short.answer_wait(), MIN_ANSWER_WAIT);

        let unknown = Renewals {
            ttl: None,
            last_grant: start,
        };
        assert_eq!(unknown.answer_wait(), FIRST_ANSWER_WAIT);
        assert_eq!(unknown.give_up_at(), start + UNKNOWN_TTL_GIVE_UP);
    }
}
