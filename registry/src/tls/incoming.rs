//! The accepted connections of a TLS listener, as the stream tonic serves: TCP
//! accepted with TCP_NODELAY, the TLS handshake run alongside other handshakes (at
//! most `MAX_HANDSHAKES` at once, each within `HANDSHAKE_TIMEOUT`), and a refused
//! handshake logged with the peer's address and counted, never handed to tonic.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::metrics::Metrics;

/// Handshakes in progress at once; past it, new connections wait in the backlog.
const MAX_HANDSHAKES: usize = 256;
/// A peer that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which listener, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Api,
    Raft,
}

impl Port {
    pub fn name(self) -> &'static str {
        match self {
            Port::Api => "api",
            Port::Raft => "raft",
        }
    }
}

type Handshake = BoxFuture<'static, Option<TlsStream<TcpStream>>>;

/// A stream of established TLS connections on `listener`.
pub struct TlsIncoming {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    port: Port,
    metrics: Arc<Metrics>,
    handshakes: FuturesUnordered<Handshake>,
}

impl TlsIncoming {
    pub fn new(
        listener: TcpListener,
        acceptor: TlsAcceptor,
        port: Port,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            listener,
            acceptor,
            port,
            metrics,
            handshakes: FuturesUnordered::new(),
        }
    }

    fn handshake(&self, tcp: TcpStream, peer: SocketAddr) -> Handshake {
        let accept = self.acceptor.accept(tcp);
        let port = self.port;
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let error = match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
                Ok(Ok(stream)) => return Some(stream),
                Ok(Err(e)) => describe(&e),
                Err(_) => format!("no handshake within {HANDSHAKE_TIMEOUT:?}"),
            };
            metrics.tls_refused(port);
            tracing::warn!(port = port.name(), %peer, %error, "refused a TLS connection");
            None
        })
    }
}

/// The handshake failure as an operator needs it: plaintext on a TLS port is the
/// common mistake, and rustls calls it a corrupt message.
fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    if text.contains("InvalidContentType") || text.contains("corrupt message") {
        format!("{text} (the peer is not speaking TLS: a plaintext client on a TLS port?)")
    } else {
        text
    }
}

impl Stream for TlsIncoming {
    type Item = io::Result<TlsStream<TcpStream>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // Take every waiting connection into a handshake, up to the cap. When at the
        // cap the listener is not polled; a finishing handshake wakes us.
        while this.handshakes.len() < MAX_HANDSHAKES {
            match this.listener.poll_accept(cx) {
                Poll::Ready(Ok((tcp, peer))) => {
                    // Small gRPC frames (heartbeats, acks) must not wait for Nagle.
                    let _ = tcp.set_nodelay(true);
                    let handshake = this.handshake(tcp, peer);
                    this.handshakes.push(handshake);
                }
                // tonic logs the error and polls again.
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Pending => break,
            }
        }
        loop {
            match this.handshakes.poll_next_unpin(cx) {
                Poll::Ready(Some(Some(stream))) => return Poll::Ready(Some(Ok(stream))),
                Poll::Ready(Some(None)) => continue,
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}
