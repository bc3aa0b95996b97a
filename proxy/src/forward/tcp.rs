//! TCP forwarding: each connection from the local app goes to one endpoint chosen by
//! the upstream's policy (a failed connect is retried on another; with none, the
//! connection is closed at once), and each connection on the inbound port goes to the
//! local app. Bytes are copied both ways until either side closes.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::copy_bidirectional;
use tokio::net::TcpStream;

use super::{connect_any, dial, used, NoConnection};
use crate::metrics::{InboundMetrics, ProxyMetrics};
use crate::upstream::Upstream;

/// One connection from the local app to the upstream.
pub async fn upstream_connection(mut client: TcpStream, upstream: Arc<Upstream>) {
    let m = &upstream.metrics;
    m.requests.inc();
    m.open_connections.inc();
    let started = Instant::now();
    match connect_any(&upstream, |e| async move { dial(&e.addr).await }).await {
        Ok((endpoint, mut server)) => {
            used(&endpoint);
            let in_flight = endpoint.load.start();
            // The connect time is the latency sample for peak-EWMA over TCP.
            in_flight.responded();
            upstream.succeeded(&endpoint);
            match copy_bidirectional(&mut client, &mut server).await {
                Ok((sent, received)) => {
                    m.bytes_sent.add(sent);
                    m.bytes_received.add(received);
                }
                Err(e) => {
                    tracing::debug!(upstream = %upstream.name(), endpoint = %endpoint.id, error = %e, "connection ended with an error");
                }
            }
            drop(in_flight);
        }
        Err(NoConnection::NoEndpoint(why)) => {
            tracing::warn!(upstream = %upstream.name(), reason = %why, "no endpoint: connection closed");
        }
        Err(e @ NoConnection::Failed { .. }) => {
            tracing::warn!(upstream = %upstream.name(), error = %e, "connection closed");
        }
    }
    m.latency.observe(started.elapsed().as_secs_f64());
    m.open_connections.dec();
}

/// One connection from a peer on the inbound port, carried to the local app.
pub async fn inbound_connection(
    mut peer: TcpStream,
    app: Arc<str>,
    connect_timeout: std::time::Duration,
    metrics: Arc<ProxyMetrics>,
) {
    let m: &InboundMetrics = &metrics.inbound;
    m.connections.inc();
    m.open_connections.inc();
    match tokio::time::timeout(connect_timeout, dial(&app)).await {
        Ok(Ok(mut app_stream)) => match copy_bidirectional(&mut peer, &mut app_stream).await {
            Ok((from_peer, to_peer)) => {
                m.bytes_in.add(from_peer);
                m.bytes_out.add(to_peer);
            }
            Err(e) => tracing::debug!(error = %e, "inbound connection ended with an error"),
        },
        Ok(Err(e)) => {
            m.connect_errors.inc();
            tracing::warn!(app = %app, error = %e, "cannot reach the local app");
        }
        Err(_) => {
            m.connect_errors.inc();
            tracing::warn!(app = %app, "connecting to the local app timed out");
        }
    }
    m.open_connections.dec();
}
