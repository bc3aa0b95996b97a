//! The health checks of the local app: one task per check probes on its interval
//! (plus jitter) and keeps its [`Thresholds`]; the instance's status is the worst
//! check's, published on a watch channel only when it changes, for the registration
//! to report.

mod probe;
mod thresholds;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use thresholds::{Outcome, Status, Thresholds};

use crate::config::CheckConfig;
use crate::metrics::CheckMetrics;

/// Longest status output the registry accepts.
const MAX_OUTPUT: usize = 4096;

/// The instance's health as the checks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub status: Status,
    /// One line per check: `name: output`.
    pub output: String,
}

impl Health {
    fn of(checks: &[(String, Thresholds)]) -> Self {
        if checks.is_empty() {
            return Health {
                status: Status::Passing,
                output: "no checks configured".into(),
            };
        }
        let status = checks
            .iter()
            .map(|(_, t)| t.status())
            .max()
            .unwrap_or(Status::Passing);
        let mut output = checks
            .iter()
            .map(|(name, t)| format!("{name}: {}", t.output()))
            .collect::<Vec<_>>()
            .join("\n");
        if output.len() > MAX_OUTPUT {
            let mut cut = MAX_OUTPUT;
            while !output.is_char_boundary(cut) {
                cut -= 1;
            }
            output.truncate(cut);
        }
        Health { status, output }
    }
}

/// Starts one task per check; the receiver sees the status each time it changes.
pub fn start(
    checks: Vec<CheckConfig>,
    metrics: Vec<Arc<CheckMetrics>>,
    shutdown: CancellationToken,
) -> watch::Receiver<Health> {
    let states: Vec<(String, Thresholds)> = checks
        .iter()
        .map(|c| (c.name.clone(), Thresholds::new(c)))
        .collect();
    let (tx, rx) = watch::channel(Health::of(&states));
    let states = Arc::new(Mutex::new(states));
    let tx = Arc::new(tx);
    for (i, (check, metrics)) in checks.into_iter().zip(metrics).enumerate() {
        let (states, tx, shutdown) = (states.clone(), tx.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let wait = if first {
                    Duration::ZERO
                } else {
                    check.interval + jitter(check.jitter)
                };
                first = false;
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                let outcome = probe::probe(&check.target, check.timeout).await;
                metrics.record(&outcome);
                let mut states = states.lock().unwrap_or_else(|p| p.into_inner());
                let changed = states[i].1.record(outcome);
                metrics.set_status(states[i].1.status());
                if changed {
                    tracing::info!(
                        check = %check.name,
                        status = states[i].1.status().name(),
                        output = %states[i].1.output(),
                        "check status changed"
                    );
                }
                let health = Health::of(&states);
                // Only a change of the instance's status is worth a write.
                tx.send_if_modified(|current| {
                    if current.status == health.status {
                        return false;
                    }
                    *current = health;
                    true
                });
            }
        });
    }
    rx
}

fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    rand::thread_rng().gen_range(Duration::ZERO..=max)
}
