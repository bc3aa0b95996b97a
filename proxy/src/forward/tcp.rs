//! TCP forwarding: each connection from the local app goes to one endpoint chosen by
//! the upstream's policy (a failed connect is retried on another; with none, the
//! connection is closed at once). Bytes are copied both ways until either side
//! closes.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::copy_bidirectional;
use tokio::net::TcpStream;

use super::{connect_any, used, NoConnection};
use crate::upstream::Upstream;

/// One connection from the local app to the upstream.
pub async fn upstream_connection(mut client: TcpStream, upstream: Arc<Upstream>) {
    let m = &upstream.metrics;
    m.requests.inc();
    m.open_connections.inc();
    let started = Instant::now();
    let up = &upstream;
    match connect_any(up, |e| async move { up.connect(&e).await }).await {
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
