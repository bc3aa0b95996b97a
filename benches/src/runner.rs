//! Shared closed-loop runner: `clients` tasks draw sequence numbers 0..total from one
//! counter, optionally paced to a global `--rate`, time each operation, and merge their
//! latency histograms and error counts at the end.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Highest latency the histograms track exactly, in microseconds (1 hour); slower
/// operations are recorded as this value.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// How many operations to run and how.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    /// Concurrent tasks.
    pub clients: usize,
    /// Operations, over all tasks.
    pub total: u64,
    /// Operations per second over all tasks; 0 = as fast as the clients go.
    pub rate: u64,
}

/// Spreads operations evenly over time for `--rate`: operation `seq` may start no
/// earlier than `seq / rate` seconds after the run began. The schedule is global, so
/// a slow client does not hold back the others, and the rate holds however many
/// clients there are (as long as they can keep up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacer {
    rate: u64,
}

impl Pacer {
    pub fn new(rate: u64) -> Self {
        Self { rate }
    }

    /// When operation `seq` is due, relative to the start; `None` when unlimited.
    pub fn offset(&self, seq: u64) -> Option<Duration> {
        if self.rate == 0 {
            return None;
        }
        let nanos = u128::from(seq) * 1_000_000_000 / u128::from(self.rate);
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }
}

/// Failures with one status code: how many, and the first message seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorStat {
    pub count: u64,
    pub sample: String,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Operations that succeeded.
    pub ok: u64,
    /// Failed operations by gRPC code name.
    pub errors: BTreeMap<&'static str, ErrorStat>,
    /// From the start of the run to the end of the last operation.
    pub elapsed: Duration,
    /// Latency of the successful operations, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Outcome {
    pub fn empty() -> Self {
        Self {
            ok: 0,
            errors: BTreeMap::new(),
            elapsed: Duration::ZERO,
            latency_us: new_histogram(),
        }
    }

    /// Counts one finished operation.
    pub fn record(&mut self, latency: Duration, result: Result<(), tonic::Status>) {
        match result {
            Ok(()) => {
                self.ok += 1;
                let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency_us.saturating_record(us.max(1));
            }
            Err(status) => {
                let stat = self
                    .errors
                    .entry(waymark_client::code_name(status.code()))
                    .or_insert_with(|| ErrorStat {
                        count: 0,
                        sample: status.message().to_string(),
                    });
                stat.count += 1;
            }
        }
    }

    /// Adds another task's counts to these (elapsed is left alone).
    pub fn merge(&mut self, other: Outcome) -> anyhow::Result<()> {
        self.ok += other.ok;
        for (code, stat) in other.errors {
            self.errors
                .entry(code)
                .and_modify(|s| s.count += stat.count)
                .or_insert(stat);
        }
        self.latency_us
            .add(&other.latency_us)
            .context("merging latency histograms")
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Runs `op(client, seq)` for every seq in `0..cfg.total` on `cfg.clients` tasks.
/// Each task takes the next unclaimed seq, waits for its slot if rate-limited, and
/// times the call from when it is sent.
pub async fn run<F, Fut>(cfg: RunConfig, op: F) -> anyhow::Result<Outcome>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let pacer = Pacer::new(cfg.rate);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for client in 0..cfg.clients.max(1) {
        let op = Arc::clone(&op);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut outcome = Outcome::empty();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= cfg.total {
                    break;
                }
                if let Some(due) = pacer.offset(seq) {
                    tokio::time::sleep_until(start + due).await;
                }
                let sent = Instant::now();
                let result = op(client, seq).await;
                outcome.record(sent.elapsed(), result);
            }
            outcome
        });
    }
    let mut total = Outcome::empty();
    while let Some(joined) = tasks.join_next().await {
        total.merge(joined.context("client task panicked")?)?;
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Mutex;

    fn error_count(o: &Outcome) -> u64 {
        o.errors.values().map(|s| s.count).sum()
    }

    #[test]
    fn unlimited_rate_never_waits() {
        let p = Pacer::new(0);
        assert_eq!(p.offset(0), None);
        assert_eq!(p.offset(u64::MAX), None);
    }

    #[test]
    fn rate_spreads_operations_evenly() {
        let p = Pacer::new(1000);
        assert_eq!(p.offset(0), Some(Duration::ZERO));
        assert_eq!(p.offset(1), Some(Duration::from_millis(1)));
        assert_eq!(p.offset(1000), Some(Duration::from_secs(1)));
        assert_eq!(p.offset(2500), Some(Duration::from_millis(2500)));

        // Not a divisor of 1e9: truncated to the nanosecond, never drifting.
        let p = Pacer::new(3);
        assert_eq!(p.offset(1), Some(Duration::from_nanos(333_333_333)));
        assert_eq!(p.offset(3), Some(Duration::from_secs(1)));
        assert_eq!(p.offset(3_000_000), Some(Duration::from_secs(1_000_000)));

        // Huge sequence numbers do not overflow.
        let p = Pacer::new(1);
        assert_eq!(p.offset(u64::MAX), Some(Duration::from_nanos(u64::MAX)));
    }

    #[test]
    fn outcome_counts_and_merges() {
        let mut a = Outcome::empty();
        a.record(Duration::from_millis(2), Ok(()));
        a.record(Duration::ZERO, Ok(()));
        a.record(
            Duration::from_millis(1),
            Err(tonic::Status::unavailable("no leader")),
        );
        let mut b = Outcome::empty();
        b.record(Duration::from_millis(4), Ok(()));
        b.record(
            Duration::from_millis(1),
            Err(tonic::Status::unavailable("other")),
        );
        b.record(
            Duration::from_millis(1),
            Err(tonic::Status::internal("boom")),
        );
        a.merge(b).unwrap();

        assert_eq!(a.ok, 3);
        assert_eq!(error_count(&a), 3);
        assert_eq!(
            a.errors["UNAVAILABLE"],
            ErrorStat {
                count: 2,
                sample: "no leader".into()
            }
        );
        assert_eq!(a.errors["INTERNAL"].count, 1);
        assert_eq!(a.latency_us.len(), 3);
        assert_eq!(a.latency_us.min(), 1); // a zero latency is recorded as 1 us
        assert!(a.latency_us.equivalent(a.latency_us.max(), 4000));
    }

    #[tokio::test]
    async fn every_sequence_number_runs_exactly_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let clients_used = Arc::new(Mutex::new(HashSet::new()));
        let (s, c) = (Arc::clone(&seen), Arc::clone(&clients_used));
        let outcome = run(
            RunConfig {
                clients: 7,
                total: 500,
                rate: 0,
            },
            move |client, seq| {
                s.lock().unwrap().push(seq);
                c.lock().unwrap().insert(client);
                async move {
                    if seq % 10 == 0 {
                        Err(tonic::Status::resource_exhausted("full"))
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .await
        .unwrap();

        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..500).collect::<Vec<_>>());
        assert!(clients_used.lock().unwrap().iter().all(|&c| c < 7));
        assert_eq!(outcome.ok, 450);
        assert_eq!(outcome.errors["RESOURCE_EXHAUSTED"].count, 50);
        assert_eq!(outcome.latency_us.len(), 450);
    }

    #[tokio::test]
    async fn rate_limited_run_completes_every_operation() {
        let outcome = run(
            RunConfig {
                clients: 3,
                total: 30,
                rate: 1_000_000,
            },
            |_, _| async { Ok(()) },
        )
        .await
        .unwrap();
        assert_eq!(outcome.ok, 30);
        assert_eq!(error_count(&outcome), 0);
    }

    #[tokio::test]
    async fn zero_total_runs_nothing() {
        let outcome = run(
            RunConfig {
                clients: 4,
                total: 0,
                rate: 0,
            },
            |_, _| async { Ok(()) },
        )
        .await
        .unwrap();
        assert_eq!(outcome.ok, 0);
        assert_eq!(outcome.latency_us.len(), 0);
    }
}
