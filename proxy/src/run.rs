//! Running the proxy: every listener bound first (an error names the key), then the
//! tasks started — discovery and a listener per upstream, the inbound port, checks,
//! registration, admin — and on SIGTERM or SIGINT the drain: the instance marked
//! critical and committed, listeners kept open for the grace period so peers stop
//! routing here, then closed, open connections given the drain timeout, the lease
//! revoked.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use waymark_client::{Client, ConnectOptions};

use crate::admin::{self, AdminState};
use crate::config::{Config, Protocol};
use crate::forward::inbound::Inbound;
use crate::forward::inbound_http::LocalApp;
use crate::forward::{self, Connections};
use crate::mesh::Mesh;
use crate::metrics::{MeshMetrics, ProxyMetrics};
use crate::registration::Registration;
use crate::upstream::Upstream;
use crate::{discovery, health};

struct Bound {
    admin: TcpListener,
    inbound: TcpListener,
    upstreams: Vec<TcpListener>,
}

async fn bind(config: &Config) -> anyhow::Result<Bound> {
    async fn one(key: &str, addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("{key}: cannot listen on {addr}"))
    }
    let mut upstreams = Vec::new();
    for (i, u) in config.upstreams.iter().enumerate() {
        upstreams.push(one(&format!("upstreams[{i}].listen"), u.listen).await?);
    }
    Ok(Bound {
        admin: one("admin.listen", config.admin.listen).await?,
        inbound: one("inbound.listen", config.inbound.listen).await?,
        upstreams,
    })
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let bound = bind(&config).await?;
    let mut signals = StopSignals::install()?;
    let client = Client::new(
        config.registry.addrs.clone(),
        ConnectOptions {
            connect_timeout: config.registry.connect_timeout,
            request_timeout: Some(config.registry.request_timeout),
            token: config.registry.token.clone(),
            tls: config.registry.tls.clone(),
        },
    );
    let check_names: Vec<String> = config
        .service
        .checks
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let mut metrics = ProxyMetrics::new(&check_names);
    let background = CancellationToken::new();
    let connections = Connections::default();
    let mesh = config.mesh.mtls.then(|| {
        let mesh_metrics = Arc::new(MeshMetrics::default());
        metrics.mesh = Some(mesh_metrics.clone());
        Mesh::start(
            client.clone(),
            config.service.name.clone(),
            config.mesh.default_intention,
            mesh_metrics,
            background.clone(),
        )
    });
    let metrics = Arc::new(metrics);

    let upstreams: Vec<Arc<Upstream>> = config
        .upstreams
        .iter()
        .cloned()
        .map(|u| Upstream::new(u, mesh.clone()))
        .collect();
    for (upstream, listener) in upstreams.iter().zip(bound.upstreams) {
        tokio::spawn(discovery::follow(
            client.clone(),
            upstream.clone(),
            background.clone(),
        ));
        let (u, c) = (upstream.clone(), connections.clone());
        tracing::info!(
            upstream = %u.name(),
            listen = %listener.local_addr()?,
            protocol = ?u.config.protocol,
            policy = u.config.policy.name(),
            "upstream listening"
        );
        match u.config.protocol {
            Protocol::Tcp => tokio::spawn(forward::accept_loop(listener, c, move |s| {
                forward::tcp::upstream_connection(s, u.clone())
            })),
            Protocol::Http => {
                let conns = c.clone();
                tokio::spawn(forward::accept_loop(listener, c, move |s| {
                    forward::http::upstream_connection(s, u.clone(), conns.clone())
                }))
            }
        };
    }

    let app: Arc<str> = config.service.app.clone().into();
    let inbound = Inbound {
        app: app.clone(),
        connect_timeout: config.inbound.connect_timeout,
        metrics: metrics.clone(),
        mesh: mesh.clone(),
        http: (config.inbound.protocol == Protocol::Http)
            .then(|| Arc::new(LocalApp::new(app, config.inbound.connect_timeout))),
    };
    tracing::info!(listen = %bound.inbound.local_addr()?, app = %inbound.app, protocol = ?config.inbound.protocol, mtls = config.mesh.mtls, "inbound listening");
    tokio::spawn(forward::accept_loop(
        bound.inbound,
        connections.clone(),
        move |s| inbound.clone().connection(s),
    ));

    let health = health::start(
        config.service.checks.clone(),
        metrics.checks.clone(),
        background.clone(),
    );
    // With mTLS, routable only once it can complete a handshake.
    let health = match &mesh {
        Some(mesh) => mesh.gate(health, background.clone()),
        None => health,
    };
    let registration = Registration::start(
        client.clone(),
        config.registration(),
        config.service.lease_ttl,
        health,
        metrics.clone(),
    );

    let admin_state = Arc::new(AdminState {
        service: config.service.name.clone(),
        id: config.service.id.clone(),
        upstreams: upstreams.clone(),
        metrics: metrics.clone(),
        draining: Default::default(),
        mesh,
    });
    tracing::info!(listen = %bound.admin.local_addr()?, "admin listening");
    let admin_task = tokio::spawn(admin::serve(
        bound.admin,
        admin_state.clone(),
        background.clone(),
    ));

    let why = signals.recv().await;
    tracing::info!(
        signal = why,
        grace_ms = config.drain.grace.as_millis() as u64,
        "draining"
    );
    admin_state.draining.store(true, Ordering::Relaxed);
    match tokio::time::timeout(config.drain.timeout, registration.drain()).await {
        Ok(Ok(index)) => tracing::info!(index, "the instance is marked critical (committed)"),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not mark the instance critical"),
        Err(_) => tracing::warn!("marking the instance critical timed out"),
    }
    // Peers' watches deliver the change within moments; until the grace period ends,
    // anything still routed here is served.
    tokio::select! {
        () = tokio::time::sleep(config.drain.grace) => {}
        again = signals.recv() => tracing::warn!(signal = again, "second signal: skipping the grace period"),
    }
    let left = connections.close(config.drain.timeout).await;
    if left > 0 {
        tracing::warn!(open = left, "drain timeout: closing connections still open");
    }
    registration.finish().await;
    background.cancel();
    let _ = admin_task.await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM and SIGINT both start the drain.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
