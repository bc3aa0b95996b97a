//! Choosing an endpoint for one connection (TCP) or one request (HTTP) by the
//! upstream's policy. Ejected endpoints and ones already tried for this request are
//! skipped, unless fewer than the panic threshold's share are healthy: then ejection
//! is ignored, so it never empties a pool. Slow start scales a new endpoint's weight
//! (weighted) or cost (least_request, peak_ewma) while it ramps up.
//!
//! tower's `p2c::Balance` owns its services and does only P2C; here five policies share
//! one endpoint table with outlier state, panic mode and weights, for TCP and HTTP,
//! so the choice is ours and the P2C/peak-EWMA math follows tower's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::config::Policy;
use crate::endpoints::{Endpoint, EndpointSet};

#[derive(Debug)]
pub struct Balancer {
    policy: Policy,
    slow_start: Duration,
    panic_threshold_percent: u32,
    next: AtomicUsize,
}

impl Balancer {
    pub fn new(policy: Policy, slow_start: Duration, panic_threshold_percent: u32) -> Self {
        Self {
            policy,
            slow_start,
            panic_threshold_percent,
            next: AtomicUsize::new(0),
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// An endpoint not in `tried`, or `None` when there is none to try.
    pub fn pick(&self, set: &EndpointSet, tried: &[Arc<Endpoint>]) -> Option<Arc<Endpoint>> {
        let now = Instant::now();
        let ejected: Vec<bool> = set.endpoints.iter().map(|e| e.is_ejected(now)).collect();
        let healthy = ejected.iter().filter(|ejected| !**ejected).count();
        let panic = (healthy as u64) * 100
            < (set.endpoints.len() as u64) * u64::from(self.panic_threshold_percent);
        let candidates: Vec<&Arc<Endpoint>> = set
            .endpoints
            .iter()
            .zip(&ejected)
            .filter(|(e, ejected)| {
                (panic || !**ejected) && !tried.iter().any(|t| Arc::ptr_eq(t, e))
            })
            .map(|(e, _)| e)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let chosen = match self.policy {
            Policy::RoundRobin => {
                candidates[self.next.fetch_add(1, Ordering::Relaxed) % candidates.len()]
            }
            Policy::Random => candidates[rand::thread_rng().gen_range(0..candidates.len())],
            Policy::Weighted => self.weighted(&candidates, now),
            Policy::LeastRequest => self.p2c(&candidates, |e| {
                (e.load.in_flight() + 1) as f64 / self.effective_weight(e, now)
            }),
            Policy::PeakEwma => self.p2c(&candidates, |e| {
                e.load.cost(now) / e.ramp(self.slow_start, now)
            }),
        };
        Some(chosen.clone())
    }

    fn effective_weight(&self, e: &Endpoint, now: Instant) -> f64 {
        f64::from(e.weight().max(1)) * e.ramp(self.slow_start, now)
    }

    /// Weighted random; endpoints of weight 0 are used only if all are 0.
    fn weighted<'a>(&self, candidates: &[&'a Arc<Endpoint>], now: Instant) -> &'a Arc<Endpoint> {
        let weights: Vec<f64> = candidates
            .iter()
            .map(|e| f64::from(e.weight()) * e.ramp(self.slow_start, now))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut rng = rand::thread_rng();
        if total <= 0.0 {
            return candidates[rng.gen_range(0..candidates.len())];
        }
        let mut point = rng.gen_range(0.0..total);
        for (e, w) in candidates.iter().zip(&weights) {
            if point < *w {
                return e;
            }
            point -= w;
        }
        candidates[candidates.len() - 1]
    }

    /// Power of two choices: two distinct random candidates, the lower cost wins.
    fn p2c<'a>(
        &self,
        candidates: &[&'a Arc<Endpoint>],
        cost: impl Fn(&Endpoint) -> f64,
    ) -> &'a Arc<Endpoint> {
        let n = candidates.len();
        if n == 1 {
            return candidates[0];
        }
        let mut rng = rand::thread_rng();
        let a = rng.gen_range(0..n);
        let b = (a + rng.gen_range(1..n)) % n;
        let (ea, eb) = (candidates[a], candidates[b]);
        if cost(eb) < cost(ea) {
            eb
        } else {
            ea
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OutlierConfig;
    use crate::endpoints::{EndpointSpec, Pool};
    use std::collections::HashMap;

    fn pool(weights: &[u32]) -> Pool {
        let pool = Pool::default();
        let specs: Vec<EndpointSpec> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| EndpointSpec {
                id: format!("e{i}"),
                addr: format!("127.0.0.1:{}", 1000 + i),
                meshed: true,
                weight: *w,
            })
            .collect();
        pool.update(1, &specs).unwrap();
        pool
    }

    fn counts(b: &Balancer, set: &EndpointSet, n: usize) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for _ in 0..n {
            let e = b.pick(set, &[]).unwrap();
            *counts.entry(e.id.clone()).or_default() += 1;
        }
        counts
    }

    fn eject(e: &Endpoint) {
        let config = OutlierConfig {
            consecutive_failures: 1,
            base_ejection: Duration::from_secs(60),
            max_ejection: Duration::from_secs(60),
            panic_threshold_percent: 50,
        };
        e.outlier.lock().unwrap().failure(&config, Instant::now());
    }

    #[test]
    fn round_robin_is_exact() {
        let p = pool(&[1, 1, 1]);
        let b = Balancer::new(Policy::RoundRobin, Duration::ZERO, 50);
        let c = counts(&b, &p.current(), 300);
        assert!(c.values().all(|n| *n == 100), "{c:?}");
    }

    #[test]
    fn every_policy_uses_every_endpoint() {
        let p = pool(&[1, 1, 1]);
        for policy in [
            Policy::Random,
            Policy::Weighted,
            Policy::LeastRequest,
            Policy::PeakEwma,
        ] {
            let b = Balancer::new(policy, Duration::ZERO, 50);
            let c = counts(&b, &p.current(), 3000);
            assert_eq!(c.len(), 3, "{policy:?}: {c:?}");
            // Idle endpoints tie, so P2C is uniform here as well: 1000 ± 20 %.
            assert!(
                c.values().all(|n| (800..=1200).contains(n)),
                "{policy:?}: {c:?}"
            );
        }
    }

    #[test]
    fn weighted_follows_the_weights() {
        let p = pool(&[1, 3]);
        let b = Balancer::new(Policy::Weighted, Duration::ZERO, 50);
        let c = counts(&b, &p.current(), 4000);
        let heavy = c["e1"] as f64 / 4000.0;
        assert!((0.70..=0.80).contains(&heavy), "{c:?}");
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        let p = pool(&[1, 1]);
        let set = p.current();
        let _busy: Vec<_> = (0..5).map(|_| set.endpoints[0].load.start()).collect();
        let b = Balancer::new(Policy::LeastRequest, Duration::ZERO, 50);
        let c = counts(&b, &set, 100);
        assert_eq!(c.get("e0"), None, "{c:?}");
    }

    #[test]
    fn ejected_endpoints_are_skipped_until_too_few_are_left() {
        let p = pool(&[1, 1, 1, 1]);
        let set = p.current();
        let b = Balancer::new(Policy::RoundRobin, Duration::ZERO, 50);
        eject(&set.endpoints[0]);
        let c = counts(&b, &set, 300);
        assert_eq!(c.get("e0"), None, "{c:?}");
        // Two of four ejected is still 50 % healthy: no panic.
        eject(&set.endpoints[1]);
        assert_eq!(counts(&b, &set, 100).len(), 2);
        // Three of four: below the threshold, every endpoint is used again.
        eject(&set.endpoints[2]);
        assert_eq!(counts(&b, &set, 100).len(), 4);
    }

    #[test]
    fn tried_endpoints_are_not_picked_again() {
        let p = pool(&[1, 1]);
        let set = p.current();
        let b = Balancer::new(Policy::Random, Duration::ZERO, 50);
        let first = b.pick(&set, &[]).unwrap();
        let second = b.pick(&set, std::slice::from_ref(&first)).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(b.pick(&set, &[first, second]).is_none());
        assert!(b.pick(&EndpointSet::default(), &[]).is_none());
    }

    #[test]
    fn slow_start_gives_a_new_endpoint_a_small_share() {
        let p = pool(&[1, 1]);
        let b = Balancer::new(Policy::Weighted, Duration::from_secs(3600), 50);
        let c = counts(&b, &p.current(), 2000);
        // Both are new: both at 10 %, so still even.
        assert!(c.values().all(|n| (800..=1200).contains(n)), "{c:?}");
        let set = p.current();
        assert!(set.endpoints[0].ramp(Duration::from_secs(3600), Instant::now()) < 0.11);
        assert_eq!(set.endpoints[0].ramp(Duration::ZERO, Instant::now()), 1.0);
    }
}
