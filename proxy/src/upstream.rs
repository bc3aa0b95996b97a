//! One configured upstream: its endpoint pool (fed by discovery), its balancer, its
//! metrics, and how a request's outcome updates the endpoint's outlier record.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::balance::Balancer;
use crate::config::UpstreamConfig;
use crate::endpoints::{Endpoint, Pool};
use crate::metrics::UpstreamMetrics;

#[derive(Debug)]
pub struct Upstream {
    pub config: UpstreamConfig,
    pub pool: Pool,
    pub balancer: Balancer,
    pub metrics: UpstreamMetrics,
}

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Arc<Self> {
        Arc::new(Self {
            balancer: Balancer::new(
                config.policy,
                config.slow_start,
                config.outlier.panic_threshold_percent,
            ),
            pool: Pool::default(),
            metrics: UpstreamMetrics::default(),
            config,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.service
    }

    /// The endpoint answered well.
    pub fn succeeded(&self, endpoint: &Endpoint) {
        endpoint
            .outlier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .success();
    }

    /// The endpoint failed (connect error, 5xx, gRPC UNAVAILABLE): counts toward
    /// ejecting it.
    pub fn failed(&self, endpoint: &Endpoint, why: &str) {
        endpoint.failures.fetch_add(1, Ordering::Relaxed);
        let ejected = endpoint
            .outlier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failure(&self.config.outlier, Instant::now());
        if ejected {
            self.metrics.ejections.inc();
            tracing::warn!(
                upstream = %self.config.service,
                endpoint = %endpoint.id,
                addr = %endpoint.addr,
                reason = why,
                "endpoint ejected"
            );
        }
    }
}
