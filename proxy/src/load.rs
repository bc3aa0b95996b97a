//! Per-endpoint load as the balancer reads it: requests in flight, and a peak-EWMA of
//! response latency (Finagle's and Linkerd's estimator, as in tower's `PeakEwma`): a
//! slower response raises the estimate at once, faster ones lower it over the decay
//! time, and with no responses it decays toward zero, so an idle endpoint is tried
//! again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Linkerd's default decay.
const DECAY: Duration = Duration::from_secs(10);
/// Costs use at least this latency, so a new endpoint with no estimate still counts
/// its requests in flight.
const MIN_RTT_NS: f64 = 50_000.0;

#[derive(Debug)]
pub struct Load {
    in_flight: AtomicU64,
    ewma: Mutex<Ewma>,
}

#[derive(Debug, Clone, Copy)]
struct Ewma {
    rtt_ns: f64,
    at: Instant,
}

impl Ewma {
    fn decayed(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_nanos() as f64;
        self.rtt_ns * (-elapsed / DECAY.as_nanos() as f64).exp()
    }
}

impl Default for Load {
    fn default() -> Self {
        Self {
            in_flight: AtomicU64::new(0),
            ewma: Mutex::new(Ewma {
                rtt_ns: 0.0,
                at: Instant::now(),
            }),
        }
    }
}

impl Load {
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A request (or connection) starts; the guard ends it.
    pub fn start(self: &std::sync::Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            load: self.clone(),
            started: Instant::now(),
        }
    }

    /// The peak-EWMA cost: estimated latency × (requests in flight + 1).
    pub fn cost(&self, now: Instant) -> f64 {
        let rtt = self
            .ewma
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .decayed(now)
            .max(MIN_RTT_NS);
        rtt * (self.in_flight() + 1) as f64
    }

    fn observe(&self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_nanos() as f64;
        let mut e = self.ewma.lock().unwrap_or_else(|p| p.into_inner());
        let current = e.decayed(now);
        e.rtt_ns = if rtt > current {
            rtt
        } else {
            let elapsed = now.saturating_duration_since(e.at).as_nanos() as f64;
            let decay = (-elapsed / DECAY.as_nanos() as f64).exp();
            e.rtt_ns * decay + rtt * (1.0 - decay)
        };
        e.at = now;
    }

    pub fn estimate(&self) -> Duration {
        let e = self.ewma.lock().unwrap_or_else(|p| p.into_inner());
        Duration::from_nanos(e.decayed(Instant::now()) as u64)
    }
}

/// One request or connection in flight; dropping it without [`InFlight::responded`]
/// only ends it.
pub struct InFlight {
    load: std::sync::Arc<Load>,
    started: Instant,
}

impl InFlight {
    /// The response (headers) arrived: its latency feeds the estimate.
    pub fn responded(&self) {
        let now = Instant::now();
        self.load.observe(now - self.started, now);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.load.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn in_flight_counts_and_raises_the_cost() {
        let load = Arc::new(Load::default());
        let now = Instant::now();
        let idle = load.cost(now);
        let a = load.start();
        let b = load.start();
        assert_eq!(load.in_flight(), 2);
        assert!(load.cost(now) > idle * 2.5);
        drop((a, b));
        assert_eq!(load.in_flight(), 0);
    }

    #[test]
    fn peaks_at_once_and_decays_slowly() {
        let load = Load::default();
        let t0 = Instant::now();
        load.observe(Duration::from_millis(100), t0);
        assert_eq!(load.ewma.lock().unwrap().rtt_ns, 100e6);
        // A fast response right after barely moves a peak.
        load.observe(Duration::from_millis(1), t0 + Duration::from_millis(10));
        assert!(load.ewma.lock().unwrap().rtt_ns > 90e6);
        // With nothing for a long time the estimate decays toward zero.
        assert!(load.cost(t0 + Duration::from_secs(100)) < 1e6);
    }
}
