//! The request-rate limit as a tower layer in front of every client API service: a
//! call over its caller's rate is answered RESOURCE_EXHAUSTED (retry here, after a
//! backoff; nothing applied) before any handler runs. gRPC health checks are exempt:
//! load balancers poll them and must see the node, not a limit.

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::auth::secret_in;
use super::errors::{status, ApiError};
use crate::limits::Caller;
use crate::node::Node;

/// Adds the limit to a service (or, `off`, adds nothing: the Raft port, whose
/// callers are the cluster's own nodes, has the same router type unlimited).
#[derive(Clone)]
pub struct RateLimitLayer {
    node: Option<Arc<Node>>,
}

impl RateLimitLayer {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node: Some(node) }
    }

    pub fn off() -> Self {
        Self { node: None }
    }
}

impl<S> tower_layer::Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            node: self.node.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    node: Option<Arc<Node>>,
}

/// The peer's address, from the connection info tonic puts on each request.
fn peer_ip(req: &http::Request<Body>) -> Option<IpAddr> {
    let ext = req.extensions();
    ext.get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
        .map(|a| a.ip())
}

impl<S> tower_service::Service<http::Request<Body>> for RateLimit<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // Without a rate there is nothing to count: no secret is hashed per call.
        let limited = self.node.as_ref().filter(|node| {
            node.limits.rate_limited() && !req.uri().path().starts_with("/grpc.health.v1.")
        });
        if let Some(node) = limited {
            // An unreadable token header counts by address; the handler refuses it.
            let secret = secret_in(req.headers()).ok().flatten();
            let caller = Caller::of(secret.as_deref(), peer_ip(&req));
            if let Err(limited) = node.limits.admit(caller, Instant::now()) {
                node.metrics.record_limited("rate");
                let refusal = status(node, ApiError::Limited(limited.to_string()));
                return Box::pin(async move { Ok(refusal.into_http()) });
            }
        }
        Box::pin(self.inner.call(req))
    }
}
