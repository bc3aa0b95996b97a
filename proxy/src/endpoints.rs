//! An upstream's endpoint set: the instances its watch last delivered, at the catalog
//! index they reflect. Updates never go back in index (an older set is refused and
//! counted), and an endpoint that stays keeps its load, outlier record and pooled
//! connections across updates.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::forward::h1_relay::H1Idle;
use crate::forward::h2_relay::H2Conn;
use crate::forward::http::Conns;
use crate::load::Load;
use crate::outlier::Outlier;

/// One instance of an upstream service, as routed to.
#[derive(Debug)]
pub struct Endpoint {
    /// The instance id.
    pub id: String,
    /// `host:port` dialled: the instance's proxy (mesh port), or the instance itself
    /// when it has no proxy.
    pub addr: String,
    /// Whether `addr` is a proxy's inbound port.
    pub meshed: bool,
    weight: AtomicU32,
    pub joined: Instant,
    pub load: Arc<Load>,
    pub outlier: Mutex<Outlier>,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    /// Idle HTTP/1.1 connections to `addr` the relay reuses.
    pub h1: H1Idle,
    /// Pooled hyper HTTP/1.1 connections to `addr`, for the requests the relay
    /// leaves to hyper.
    pub conns: Conns,
    /// The h2 connection to `addr` that relayed h2 streams share.
    pub h2: H2Conn,
}

impl Endpoint {
    pub fn new(spec: &EndpointSpec) -> Self {
        Self {
            id: spec.id.clone(),
            addr: spec.addr.clone(),
            meshed: spec.meshed,
            weight: AtomicU32::new(spec.weight),
            joined: Instant::now(),
            load: Arc::new(Load::default()),
            outlier: Mutex::new(Outlier::default()),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            h1: H1Idle::default(),
            conns: Conns::default(),
            h2: H2Conn::default(),
        }
    }

    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub fn is_ejected(&self, now: Instant) -> bool {
        self.outlier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_ejected(now)
    }

    /// Share of full weight while slow start ramps a new endpoint up: from 10 % to 1.
    pub fn ramp(&self, slow_start: Duration, now: Instant) -> f64 {
        if slow_start.is_zero() {
            return 1.0;
        }
        let age = now.saturating_duration_since(self.joined).as_secs_f64();
        (age / slow_start.as_secs_f64()).clamp(0.1, 1.0)
    }
}

/// What discovery says about one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub id: String,
    pub addr: String,
    pub meshed: bool,
    pub weight: u32,
}

/// The endpoints at one catalog index, sorted by id.
#[derive(Debug, Default)]
pub struct EndpointSet {
    pub index: u64,
    pub endpoints: Vec<Arc<Endpoint>>,
}

/// Why discovery is or is not current.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryState {
    /// A first endpoint set arrived.
    pub received: bool,
    /// No registry node answers: routing on the last set.
    pub fail_static: bool,
    /// What the watch last said went wrong, if anything.
    pub problem: Option<String>,
}

#[derive(Debug, Default)]
pub struct Pool {
    set: RwLock<Arc<EndpointSet>>,
    state: Mutex<DiscoveryState>,
    /// Updates refused because they were older than the set applied.
    pub stale_refused: AtomicU64,
}

/// An update older than the applied set.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("refused endpoints at index {offered}: index {applied} is already applied")]
pub struct Stale {
    pub offered: u64,
    pub applied: u64,
}

impl Pool {
    /// The current set (cheap: one Arc clone).
    pub fn current(&self) -> Arc<EndpointSet> {
        self.set.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn state(&self) -> DiscoveryState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the set with `specs` at `index`. Equal indexes are accepted (progress
    /// or a resumed stream repeating its position); a lower one is refused.
    pub fn update(&self, index: u64, specs: &[EndpointSpec]) -> Result<(), Stale> {
        let mut guard = self.set.write().unwrap_or_else(|p| p.into_inner());
        if index < guard.index {
            self.stale_refused.fetch_add(1, Ordering::Relaxed);
            return Err(Stale {
                offered: index,
                applied: guard.index,
            });
        }
        let mut endpoints: Vec<Arc<Endpoint>> = specs
            .iter()
            .map(|spec| {
                match guard
                    .endpoints
                    .iter()
                    .find(|e| e.id == spec.id && e.addr == spec.addr && e.meshed == spec.meshed)
                {
                    Some(kept) => {
                        kept.weight.store(spec.weight, Ordering::Relaxed);
                        kept.clone()
                    }
                    None => Arc::new(Endpoint::new(spec)),
                }
            })
            .collect();
        endpoints.sort_by(|a, b| a.id.cmp(&b.id));
        *guard = Arc::new(EndpointSet { index, endpoints });
        drop(guard);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.received = true;
        state.fail_static = false;
        state.problem = None;
        Ok(())
    }

    /// The watch is down (`fail_static`: every node failed) or recovering.
    pub fn set_problem(&self, problem: String, fail_static: bool) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.problem = Some(problem);
        state.fail_static |= fail_static;
    }

    /// The watch delivered again (a progress message): the set is current.
    pub fn set_current(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.problem = None;
        state.fail_static = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, port: u16) -> EndpointSpec {
        EndpointSpec {
            id: id.into(),
            addr: format!("127.0.0.1:{port}"),
            meshed: true,
            weight: 1,
        }
    }

    #[test]
    fn never_goes_back_in_index() {
        let pool = Pool::default();
        pool.update(10, &[spec("a", 1)]).unwrap();
        pool.update(10, &[spec("a", 1)]).unwrap();
        assert_eq!(
            pool.update(9, &[]),
            Err(Stale {
                offered: 9,
                applied: 10
            })
        );
        assert_eq!(pool.current().endpoints.len(), 1);
        assert_eq!(pool.stale_refused.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_kept_endpoint_keeps_its_state_and_a_moved_one_starts_fresh() {
        let pool = Pool::default();
        pool.update(1, &[spec("a", 1), spec("b", 2)]).unwrap();
        let a = pool.current().endpoints[0].clone();
        a.requests.fetch_add(5, Ordering::Relaxed);
        let mut heavier = spec("a", 1);
        heavier.weight = 7;
        pool.update(2, &[spec("b", 3), heavier]).unwrap();
        let set = pool.current();
        assert!(Arc::ptr_eq(&set.endpoints[0], &a));
        assert_eq!(set.endpoints[0].weight(), 7);
        assert_eq!(set.endpoints[1].addr, "127.0.0.1:3");
        assert_eq!(set.endpoints[1].requests.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn fail_static_clears_with_the_next_set() {
        let pool = Pool::default();
        pool.update(1, &[spec("a", 1)]).unwrap();
        pool.set_problem("no node answers".into(), true);
        assert!(pool.state().fail_static);
        assert_eq!(pool.current().endpoints.len(), 1, "the last set is kept");
        pool.update(2, &[spec("a", 1)]).unwrap();
        assert!(!pool.state().fail_static);
    }
}
