//! `write-gaps`: writes paced at `--rate` for `--duration`, each retried (through the
//! failing-over client) until it is acknowledged, noting when each acknowledgement
//! came. Reports the longest stretch of the run with no write acknowledged, and every
//! stretch longer than `--report-gap`: what a rolling restart or a leader change costs
//! writers (`benches/rolling-restart.sh`). With `--backend etcd`: puts, retried alike.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;
use waymark_client::{parse_duration, CallPolicy, Client, Endpoints};

use crate::conn::{clean_endpoints, connect_options, Backend, ClientOpts};
use crate::etcd;
use crate::report::{round, Summary};
use crate::runner::{Outcome, Pacer};
use crate::workload::register::Plan;

#[derive(Debug, Clone, clap::Args)]
pub struct WriteGapsArgs {
    /// How long to keep writing.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Writes started per second over all clients.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: u64,

    /// List every stretch without an acknowledged write at least this long.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub report_gap: Duration,

    /// Size in bytes of the one meta value each instance carries.
    #[arg(long, default_value_t = 256, value_parser = crate::workload::register::parse_val_size)]
    pub val_size: usize,
}

/// One client's writes: how each went, and when (since the start) each was acknowledged.
struct ClientLog {
    outcome: Outcome,
    acked_at: Vec<Duration>,
}

/// A stretch of the run with no acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    /// When it began (the acknowledgement before it), since the start of the run.
    pub at: Duration,
    pub length: Duration,
}

/// The stretches between consecutive acknowledgements (in any order) at least
/// `min` long, in time order.
pub fn gaps(acked_at: &mut [Duration], min: Duration) -> Vec<Gap> {
    acked_at.sort_unstable();
    acked_at
        .windows(2)
        .map(|w| Gap {
            at: w[0],
            length: w[1] - w[0],
        })
        .filter(|g| g.length >= min)
        .collect()
}

pub async fn run(opts: &ClientOpts, args: &WriteGapsArgs) -> anyhow::Result<Summary> {
    let endpoints = clean_endpoints(&opts.endpoints)?;
    let plan = Arc::new(Plan::with("gaps", 0, args.val_size));
    let start = Instant::now();
    let pacer = Pacer::new(args.rate);
    let total = args.rate * args.duration.as_secs().max(1);
    let clients = opts.clients as u64;
    let mut tasks = JoinSet::new();
    for k in 0..clients {
        let writer = Writer::new(opts, &endpoints).await?;
        let plan = plan.clone();
        tasks.spawn(async move {
            let mut log = ClientLog {
                outcome: Outcome::empty(),
                acked_at: Vec::new(),
            };
            // Client k makes writes k, k + clients, ...: one global, evenly paced schedule.
            for seq in (k..total).step_by(clients as usize) {
                if let Some(due) = pacer.offset(seq) {
                    tokio::time::sleep_until(start + due).await;
                }
                let sent = Instant::now();
                loop {
                    match writer.write(&plan, seq).await {
                        Ok(()) => {
                            log.outcome.record(sent.elapsed(), Ok(()));
                            log.acked_at.push(start.elapsed());
                            break;
                        }
                        // Counted, then sent again: a write is done only when acknowledged.
                        Err(status) => {
                            log.outcome.record(sent.elapsed(), Err(status));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            }
            log
        });
    }
    let mut outcome = Outcome::empty();
    let mut acked_at = Vec::new();
    while let Some(log) = tasks.join_next().await {
        let log = log?;
        outcome.merge(log.outcome)?;
        acked_at.extend(log.acked_at);
    }
    outcome.elapsed = start.elapsed();
    let listed = gaps(&mut acked_at, args.report_gap);
    let longest = gaps(&mut acked_at, Duration::ZERO)
        .into_iter()
        .max_by_key(|g| g.length);
    let params = vec![
        ("backend", json!(opts.backend.as_str())),
        ("endpoints", json!(endpoints)),
        ("clients", json!(opts.clients)),
        ("rate", json!(args.rate)),
        ("duration_s", json!(args.duration.as_secs_f64())),
        ("val_size", json!(args.val_size)),
    ];
    let mut summary = Summary::new("write-gaps", params, &outcome);
    summary.latency_of = "writes, first attempt to acknowledgement";
    let ms = |d: Duration| round(d.as_secs_f64() * 1000.0, 1);
    summary.extra.push((
        "longest_gap_ms",
        json!(longest.map_or(0.0, |g| ms(g.length))),
    ));
    summary.extra.push((
        "longest_gap_at_s",
        json!(longest.map_or(0.0, |g| round(g.at.as_secs_f64(), 2))),
    ));
    summary.extra.push((
        "gaps",
        json!(listed
            .iter()
            .map(|g| json!({"at_s": round(g.at.as_secs_f64(), 2), "ms": ms(g.length)}))
            .collect::<Vec<_>>()),
    ));
    Ok(summary)
}

/// One client's connection to the cluster under test.
enum Writer {
    /// Fails over between the nodes as each error allows (`waymark_client`).
    Waymark(Client),
    /// etcd's own client over every endpoint.
    Etcd(Box<etcd_client::Client>),
}

impl Writer {
    async fn new(opts: &ClientOpts, endpoints: &[String]) -> anyhow::Result<Self> {
        Ok(match opts.backend {
            Backend::Waymark => Writer::Waymark(Client::new(
                Endpoints::new(endpoints)?,
                connect_options(opts),
            )),
            Backend::Etcd => Writer::Etcd(Box::new(etcd::dial_all(endpoints, opts).await?)),
        })
    }

    async fn write(&self, plan: &Plan, seq: u64) -> Result<(), tonic::Status> {
        match self {
            Writer::Waymark(client) => {
                let nodes = client.endpoints().len();
                // A Register of the same instance twice leaves the same record: safe
                // to send again whatever the failure.
                let policy = CallPolicy {
                    attempts: 2 * nodes as u32,
                    idempotent: true,
                };
                let request = plan.request(seq);
                client
                    .call(policy, |ch| {
                        let request = request.clone();
                        async move { waymark_client::catalog(ch).register(request).await }
                    })
                    .await
                    .map(|_| ())
                    .map_err(|e| match e.status() {
                        Some(status) => status.clone(),
                        None => tonic::Status::unavailable(e.to_string()),
                    })
            }
            Writer::Etcd(client) => {
                let (key, value) = plan.etcd_put(seq);
                client
                    .kv_client()
                    .put(key, value, None)
                    .await
                    .map(|_| ())
                    .map_err(etcd::to_status)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_between_consecutive_acknowledgements_in_time_order() {
        let ms = Duration::from_millis;
        let mut acked = vec![ms(30), ms(0), ms(10), ms(500), ms(520), ms(20)];
        assert_eq!(
            gaps(&mut acked, ms(100)),
            [Gap {
                at: ms(30),
                length: ms(470)
            }]
        );
        let all = gaps(&mut acked, Duration::ZERO);
        assert_eq!(all.len(), 5);
        assert_eq!(all.iter().map(|g| g.length).max(), Some(ms(470)));
        assert!(gaps(&mut [ms(5)], Duration::ZERO).is_empty());
    }
}
