//! Keeps one lease alive over the `KeepAlive` stream: a renewal every TTL/3 (the TTL
//! the node last granted), each of which must be answered before the next is due.
//! A stream lost to a transient failure is reopened; the keeper gives up when the
//! lease is gone (a granted TTL of 0) or when nothing was granted for two TTLs.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use waymark_proto::pb;

use super::client::{display_addr, leases, retry_reason};
use super::{error_chain, ClientOpts};

/// Before the node has said the TTL (`lease keep-alive ID`): how long an answer may
/// take, and how long without any grant before giving up.
const FIRST_ANSWER_WAIT: Duration = Duration::from_secs(5);
const UNKNOWN_TTL_GIVE_UP: Duration = Duration::from_secs(10);
/// An answer may always take at least this long, however short the TTL.
const MIN_ANSWER_WAIT: Duration = Duration::from_secs(1);
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

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
    /// The node says the lease no longer exists.
    Gone,
    /// Transient: reopen the stream (with this explanation).
    Lost(String),
    Fatal(anyhow::Error),
}

/// Renews `lease_id` until it cannot; only ever returns the reason it stopped.
/// `ttl` is the TTL already known (from CreateLease), and `on_first_grant` is called
/// with the first TTL the node grants.
pub(super) async fn keep_alive(
    opts: &ClientOpts,
    lease_id: u64,
    ttl: Option<Duration>,
    on_first_grant: impl FnOnce(Duration),
) -> anyhow::Error {
    let mut renewals = Renewals {
        ttl,
        last_grant: Instant::now(),
    };
    let mut on_first_grant = Some(on_first_grant);
    let mut backoff = BACKOFF_START;
    loop {
        let granted_before = renewals.last_grant;
        let reason = match session(opts, lease_id, &mut renewals, &mut on_first_grant).await {
            End::Gone => {
                return anyhow::anyhow!(
                    "lease {lease_id} no longer exists (it expired or was revoked)"
                )
            }
            End::Fatal(e) => return e,
            End::Lost(reason) => reason,
        };
        if renewals.last_grant != granted_before {
            backoff = BACKOFF_START;
        }
        if Instant::now() + backoff >= renewals.give_up_at() {
            return anyhow::anyhow!(
                "could not renew lease {lease_id} for {} ms, giving up: {reason}",
                renewals.last_grant.elapsed().as_millis()
            );
        }
        eprintln!(
            "note: keeping lease {lease_id} alive: {reason}; reconnecting to {} in {} ms",
            display_addr(&opts.addr),
            backoff.as_millis()
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One KeepAlive stream: a renewal at once, then one every interval.
async fn session(
    opts: &ClientOpts,
    lease_id: u64,
    renewals: &mut Renewals,
    on_first_grant: &mut Option<impl FnOnce(Duration)>,
) -> End {
    let mut client = match leases(opts).await {
        Ok(c) => c,
        Err(e) => return End::Lost(error_chain(&e)),
    };
    let request = pb::KeepAliveRequest { lease_id };
    let (tx, rx) = mpsc::channel(2);
    if tx.try_send(request).is_err() {
        return End::Lost("the request stream closed".into());
    }
    let mut sent_at = Instant::now();
    let mut awaiting = true;
    let mut responses = match client.keep_alive(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(status) => return status_end(opts, status),
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
                    if let Some(f) = on_first_grant.take() {
                        f(ttl);
                    }
                }
                Ok(None) => return End::Lost("the node ended the stream".into()),
                Err(status) => return status_end(opts, status),
            },
        }
    }
}

fn status_end(opts: &ClientOpts, status: tonic::Status) -> End {
    retry_reason(opts, status).map_or_else(End::Fatal, End::Lost)
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
