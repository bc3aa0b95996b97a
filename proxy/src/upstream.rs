//! One configured upstream: its endpoint pool (fed by discovery), its balancer, its
//! metrics, and how a request's outcome updates the endpoint's outlier record.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::balance::Balancer;
use crate::config::UpstreamConfig;
use crate::endpoints::{Endpoint, Pool};
use crate::forward::dial;
use crate::mesh::stream::MeshStream;
use crate::mesh::Mesh;
use crate::metrics::UpstreamMetrics;

pub struct Upstream {
    pub config: UpstreamConfig,
    pub pool: Pool,
    pub balancer: Balancer,
    pub metrics: UpstreamMetrics,
    /// With mTLS on: how meshed endpoints are dialled.
    pub mesh: Option<Arc<Mesh>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("service", &self.config.service)
            .field("mtls", &self.mesh.is_some())
            .finish()
    }
}

impl Upstream {
    pub fn new(config: UpstreamConfig, mesh: Option<Arc<Mesh>>) -> Arc<Self> {
        Arc::new(Self {
            mesh,
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

    /// A connection to `endpoint`: mutual TLS verified to be this upstream's service
    /// when mTLS is on and the endpoint is a peer proxy, plain TCP otherwise (an
    /// instance registered without a proxy cannot speak mTLS).
    pub async fn connect(&self, endpoint: &Endpoint) -> Result<MeshStream, String> {
        let tcp = dial(&endpoint.addr).await?;
        match &self.mesh {
            Some(mesh) if endpoint.meshed => mesh.dial(tcp, self.name()).await,
            _ => Ok(MeshStream::Plain(tcp)),
        }
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
