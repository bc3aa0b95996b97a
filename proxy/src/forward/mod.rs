//! Carrying traffic: the accept loops (upstream listeners and the inbound port), the
//! connect-with-retry both protocols share, and the drain hooks. TCP is forwarded per
//! connection (`tcp`), HTTP per request over pooled connections: HTTP/1.1 by the
//! relay (`h1_relay`, falling back to hyper in `http`), h2 by `h2_relay`.

pub mod h1_codec;
pub mod h1_relay;
pub mod h2_relay;
pub mod http;
pub mod inbound;
pub mod inbound_http;
pub mod prefixed;
pub mod tcp;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::endpoints::Endpoint;
use crate::upstream::Upstream;

/// Every accepted connection's task, and the signal to stop accepting (and, for HTTP,
/// to finish in-flight requests and close).
#[derive(Debug, Clone, Default)]
pub struct Connections {
    pub closing: CancellationToken,
    pub tracker: TaskTracker,
}

impl Connections {
    /// Stops accepting and waits up to `timeout` for open connections to end.
    /// Returns how many were still open at the deadline.
    pub async fn close(&self, timeout: Duration) -> usize {
        self.closing.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(timeout, self.tracker.wait()).await;
        self.tracker.len()
    }
}

/// Accepts on `listener` until closing, running `handle` for each connection.
pub async fn accept_loop<F, Fut>(listener: TcpListener, connections: Connections, handle: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            () = connections.closing.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                connections.tracker.spawn(handle(stream));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Why no endpoint could be connected.
#[derive(Debug, thiserror::Error)]
pub enum NoConnection {
    #[error("{0}")]
    NoEndpoint(String),
    #[error("connecting failed on {attempts} endpoint(s), last: {last}")]
    Failed { attempts: u32, last: String },
}

/// Picks endpoints by the upstream's policy and runs `connect` on each (within the
/// connect timeout) until one succeeds, up to `connect_attempts` endpoints. Nothing
/// was sent on a failed connect, so trying another endpoint is always safe.
pub async fn connect_any<T, F, Fut>(
    upstream: &Upstream,
    mut connect: F,
) -> Result<(Arc<Endpoint>, T), NoConnection>
where
    F: FnMut(Arc<Endpoint>) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let set = upstream.pool.current();
    let mut tried: Vec<Arc<Endpoint>> = Vec::new();
    let mut last = String::new();
    for attempt in 0..upstream.config.connect_attempts {
        let Some(endpoint) = upstream.balancer.pick(&set, &tried) else {
            break;
        };
        if attempt > 0 {
            upstream.metrics.retries.inc();
        }
        let result =
            tokio::time::timeout(upstream.config.connect_timeout, connect(endpoint.clone())).await;
        let why = match result {
            Ok(Ok(conn)) => return Ok((endpoint, conn)),
            Ok(Err(e)) => e,
            Err(_) => format!(
                "connect timed out after {} ms",
                upstream.config.connect_timeout.as_millis()
            ),
        };
        upstream.metrics.connect_errors.inc();
        tracing::debug!(upstream = %upstream.name(), endpoint = %endpoint.id, addr = %endpoint.addr, error = %why, "connect failed");
        upstream.failed(&endpoint, &why);
        last = format!("{} ({}): {why}", endpoint.id, endpoint.addr);
        tried.push(endpoint);
    }
    if tried.is_empty() {
        upstream.metrics.no_endpoint.inc();
        return Err(NoConnection::NoEndpoint(no_endpoint_reason(upstream)));
    }
    Err(NoConnection::Failed {
        attempts: tried.len() as u32,
        last,
    })
}

fn no_endpoint_reason(upstream: &Upstream) -> String {
    let state = upstream.pool.state();
    let set = upstream.pool.current();
    if !state.received {
        return format!(
            "no endpoints of service {:?} yet: the registry has not answered{}",
            upstream.name(),
            state.problem.map(|p| format!(" ({p})")).unwrap_or_default()
        );
    }
    format!(
        "service {:?} has no passing instance (catalog index {})",
        upstream.name(),
        set.index
    )
}

/// A plain TCP connect, as `connect_any` wants it.
pub async fn dial(addr: &str) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Counts one endpoint use.
pub fn used(endpoint: &Endpoint) {
    endpoint.requests.fetch_add(1, Ordering::Relaxed);
}
