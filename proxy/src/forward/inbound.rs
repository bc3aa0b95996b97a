//! The inbound (mesh) port: each connection from a peer is carried to the local app,
//! as bytes (`inbound.protocol = "tcp"`) or request by request (`"http"`,
//! `inbound_http`). With mTLS on, the peer must complete a mutual TLS handshake with
//! a certificate of this mesh. Over TCP its service (from the certificate) must be
//! allowed by intention, and an open connection whose caller an intention later
//! denies is closed as soon as the proxy's watch delivers that intention; over HTTP
//! each request is decided instead.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{copy_bidirectional, AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use waymark_proto::intention::Action;

use super::dial;
use super::inbound_http::{self, LocalApp};
use crate::mesh::Mesh;
use crate::metrics::ProxyMetrics;

/// Where inbound connections go and how long connecting there may take.
#[derive(Clone)]
pub struct Inbound {
    pub app: Arc<str>,
    pub connect_timeout: Duration,
    pub metrics: Arc<ProxyMetrics>,
    /// With mTLS on: who may call, and the handshake.
    pub mesh: Option<Arc<Mesh>>,
    /// With `inbound.protocol = "http"`: the app's pooled HTTP connections.
    pub http: Option<Arc<LocalApp>>,
}

impl Inbound {
    /// One connection from a peer on the inbound port.
    pub async fn connection(self, peer: TcpStream) {
        let m = &self.metrics.inbound;
        m.connections.inc();
        m.open_connections.inc();
        match self.mesh.clone() {
            None => self.carry(peer, None).await,
            Some(mesh) => {
                if let Some(admitted) = mesh.accept(peer, self.http.is_none()).await {
                    self.carry(admitted.stream, Some((&mesh, admitted.source)))
                        .await
                }
            }
        }
        self.metrics.inbound.open_connections.dec();
    }

    /// Serves `peer`'s requests (HTTP inbound), or copies bytes between `peer` and
    /// the local app; with a caller, until an intention denies it.
    async fn carry<S>(&self, mut peer: S, caller: Option<(&Arc<Mesh>, String)>)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        if let Some(app) = &self.http {
            let caller = caller.map(|(mesh, source)| (mesh.clone(), source));
            return inbound_http::serve(peer, app.clone(), caller).await;
        }
        let m = &self.metrics.inbound;
        let mut app = match tokio::time::timeout(self.connect_timeout, dial(&self.app)).await {
            Ok(Ok(app)) => app,
            Ok(Err(e)) => {
                m.connect_errors.inc();
                tracing::warn!(app = %self.app, error = %e, "cannot reach the local app");
                return;
            }
            Err(_) => {
                m.connect_errors.inc();
                tracing::warn!(app = %self.app, "connecting to the local app timed out");
                return;
            }
        };
        let copied = match caller {
            None => copy_bidirectional(&mut peer, &mut app).await,
            Some((mesh, source)) => {
                let denied = denied_later(mesh, &source);
                tokio::select! {
                    copied = copy_bidirectional(&mut peer, &mut app) => copied,
                    why = denied => {
                        mesh.metrics.closed_by_intention.inc();
                        tracing::info!(source = %source, decided_by = %why, "closing an inbound connection an intention now denies");
                        return;
                    }
                }
            }
        };
        match copied {
            Ok((from_peer, to_peer)) => {
                m.bytes_in.add(from_peer);
                m.bytes_out.add(to_peer);
            }
            Err(e) => tracing::debug!(error = %e, "inbound connection ended with an error"),
        }
    }
}

/// Resolves (with what decided) once the intentions in force deny `source`; pending
/// forever if the watch ends.
async fn denied_later(mesh: &Mesh, source: &str) -> String {
    let mut changes = mesh.changes();
    loop {
        if changes.changed().await.is_err() {
            return std::future::pending().await;
        }
        let (action, why) = mesh.decide(source);
        if action == Action::Deny {
            return why;
        }
    }
}
