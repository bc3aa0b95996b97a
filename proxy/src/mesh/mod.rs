//! Mesh identity in the proxy: its leaf from the registry's CA (`identity.rs`), the
//! roots and intentions it follows (`state.rs`), mutual TLS 1.3 with SPIFFE checks
//! (`tls.rs`), and `Mesh`, the handle the forwarding code dials, accepts and
//! authorizes through.

pub mod identity;
pub mod state;
pub mod stream;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream as ServerTlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;
use waymark_client::Client;
use waymark_proto::intention::Action;

use crate::health::{Health, Status};
use crate::metrics::MeshMetrics;
use state::MeshState;
use stream::MeshStream;
use tls::Credentials;

/// Longest an inbound handshake may take.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The proxy's mesh identity and policy, shared by every connection.
pub struct Mesh {
    service: String,
    default_intention: Action,
    credentials: watch::Receiver<Option<Arc<Credentials>>>,
    state: watch::Receiver<Arc<MeshState>>,
    pub metrics: Arc<MeshMetrics>,
}

/// A caller admitted on the inbound port.
pub struct Admitted {
    pub stream: ServerTlsStream<TcpStream>,
    pub source: String,
}

impl Mesh {
    /// Starts following the roots and intentions to `service` and keeping its leaf.
    pub fn start(
        client: Client,
        service: String,
        default_intention: Action,
        metrics: Arc<MeshMetrics>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let (state_tx, state) = watch::channel(Arc::new(MeshState::default()));
        let (cred_tx, credentials) = watch::channel(None);
        tokio::spawn(state::follow(
            client.clone(),
            service.clone(),
            state_tx,
            metrics.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(identity::run(
            client,
            service.clone(),
            state.clone(),
            cred_tx,
            metrics.clone(),
            shutdown,
        ));
        Arc::new(Self {
            service,
            default_intention,
            credentials,
            state,
            metrics,
        })
    }

    /// Whether the proxy holds a leaf (it cannot dial or accept mesh traffic before).
    pub fn ready(&self) -> bool {
        self.credentials.borrow().is_some()
    }

    fn current(&self) -> Result<Arc<Credentials>, String> {
        self.credentials
            .borrow()
            .clone()
            .ok_or_else(|| "no leaf certificate from the registry's CA yet".to_string())
    }

    /// Mutual TLS over `tcp` to a proxy of `service`, verified to be that service.
    pub async fn dial(&self, tcp: TcpStream, service: &str) -> Result<MeshStream, String> {
        let creds = self.current()?;
        let connector = TlsConnector::from(creds.client.clone());
        match connector.connect(tls::server_name(service), tcp).await {
            Ok(s) => Ok(MeshStream::Tls(Box::new(s))),
            Err(e) => {
                let reason = tls::failure_reason(&e);
                self.metrics.handshake_failure("outbound", reason);
                Err(format!("mTLS handshake with {service} ({reason}): {e}"))
            }
        }
    }

    /// Completes the inbound handshake (a client certificate of this mesh is
    /// required) and, if `decide_connection`, decides the caller by intention (an
    /// HTTP inbound decides each request instead). `None`: refused (counted).
    pub async fn accept(&self, tcp: TcpStream, decide_connection: bool) -> Option<Admitted> {
        let creds = match self.current() {
            Ok(c) => c,
            Err(why) => {
                self.metrics.handshake_failure("inbound", "no_leaf_yet");
                tracing::warn!(reason = %why, "inbound connection refused");
                return None;
            }
        };
        let peer = tcp.peer_addr().ok();
        let accepted = tokio::time::timeout(
            ACCEPT_TIMEOUT,
            TlsAcceptor::from(creds.server.clone()).accept(tcp),
        )
        .await;
        let stream = match accepted {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let reason = tls::failure_reason(&e);
                self.metrics.handshake_failure("inbound", reason);
                tracing::info!(?peer, reason, error = %e, "inbound handshake refused");
                return None;
            }
            Err(_) => {
                self.metrics.handshake_failure("inbound", "timeout");
                return None;
            }
        };
        let source = match tls::peer_service(stream.get_ref().1, &creds.trust_domain) {
            Ok(s) => s,
            Err(e) => {
                // The verifier already checked this; a leaf from another trust domain
                // would have failed there.
                self.metrics.handshake_failure("inbound", "bad_identity");
                tracing::warn!(?peer, error = %e, "inbound caller has no service identity");
                return None;
            }
        };
        if !decide_connection {
            return Some(Admitted { stream, source });
        }
        let (action, why) = self.decide(&source);
        self.metrics.decision(&source, action);
        if action == Action::Deny {
            tracing::info!(?peer, source = %source, decided_by = %why, "inbound connection denied by intention");
            return None;
        }
        Some(Admitted { stream, source })
    }

    /// `source` calling this proxy's service, by the intentions in force now.
    pub fn decide(&self, source: &str) -> (Action, String) {
        self.state
            .borrow()
            .decide(source, &self.service, self.default_intention)
    }

    /// The instance's health as peers should see it: never better than critical
    /// until the proxy holds a leaf, since until then every mesh connection to it
    /// would be refused. Published on the returned channel until `shutdown`.
    pub fn gate(
        &self,
        mut health: watch::Receiver<Health>,
        shutdown: CancellationToken,
    ) -> watch::Receiver<Health> {
        let mut credentials = self.credentials.clone();
        let gated = |h: &Health, ready: bool| {
            if ready {
                h.clone()
            } else {
                Health {
                    status: Status::Critical,
                    output: format!("{}\nmesh: no leaf certificate yet", h.output),
                }
            }
        };
        let (tx, rx) = watch::channel(gated(&health.borrow(), credentials.borrow().is_some()));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    changed = health.changed() => if changed.is_err() { return },
                    changed = credentials.changed() => if changed.is_err() { return },
                }
                let next = gated(
                    &health.borrow_and_update(),
                    credentials.borrow_and_update().is_some(),
                );
                tx.send_if_modified(|current| {
                    let differs = *current != next;
                    if differs {
                        *current = next;
                    }
                    differs
                });
            }
        });
        rx
    }

    /// Changes to the roots and intentions (an open connection re-checks its caller).
    pub fn changes(&self) -> watch::Receiver<Arc<MeshState>> {
        self.state.clone()
    }
}
