//! The admin listener: `/metrics` (Prometheus text), `/ready` (registered, and a first
//! endpoint set for every upstream; says when an upstream is failing static) and
//! `/endpoints` (JSON: per upstream its endpoints, their state and the catalog index;
//! with mTLS, the root its leaf is from and when the leaf expires).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::mesh::Mesh;
use crate::metrics::ProxyMetrics;
use crate::upstream::Upstream;

/// What the admin endpoints read.
pub struct AdminState {
    pub service: String,
    pub id: String,
    pub upstreams: Vec<Arc<Upstream>>,
    pub metrics: Arc<ProxyMetrics>,
    pub draining: AtomicBool,
    /// With mTLS on: ready only once it holds a leaf.
    pub mesh: Option<Arc<Mesh>>,
}

pub async fn serve(listener: TcpListener, state: Arc<AdminState>, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/ready", get(ready))
        .route("/endpoints", get(endpoints))
        .with_state(state);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "admin listener failed");
    }
}

async fn metrics(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(&s.upstreams),
    )
}

async fn ready(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    if s.draining.load(Ordering::Relaxed) {
        problems.push("draining".to_string());
    }
    if s.metrics.registration.registered.get() != 1 {
        problems.push(format!("instance {}/{} is not registered", s.service, s.id));
    }
    if s.mesh.as_ref().is_some_and(|m| !m.ready()) {
        problems.push("no leaf certificate from the registry's CA yet (mTLS)".to_string());
    }
    for u in &s.upstreams {
        let state = u.pool.state();
        if !state.received {
            problems.push(format!("upstream {}: no endpoint set yet", u.name()));
        } else if state.fail_static {
            notes.push(format!(
                "upstream {}: failing static on the set at index {} ({})",
                u.name(),
                u.pool.current().index,
                state.problem.unwrap_or_default()
            ));
        }
    }
    let (code, mut body) = if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
    };
    for n in notes {
        body.push_str(&n);
        body.push('\n');
    }
    (code, body)
}

async fn endpoints(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    let now = Instant::now();
    let upstreams: Vec<_> = s
        .upstreams
        .iter()
        .map(|u| {
            let set = u.pool.current();
            let state = u.pool.state();
            let endpoints: Vec<_> = set
                .endpoints
                .iter()
                .map(|e| {
                    let outlier = e.outlier.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let health = if outlier.is_ejected(now) {
                        "ejected"
                    } else if outlier.on_probation(now) {
                        "probation"
                    } else {
                        "ready"
                    };
                    json!({
                        "id": e.id,
                        "addr": e.addr,
                        "meshed": e.meshed,
                        "weight": e.weight(),
                        "state": health,
                        "in_flight": e.load.in_flight(),
                        "requests": e.requests.load(Ordering::Relaxed),
                        "failures": e.failures.load(Ordering::Relaxed),
                        "latency_estimate_ms": e.load.estimate().as_secs_f64() * 1000.0,
                    })
                })
                .collect();
            json!({
                "service": u.name(),
                "listen": u.config.listen.to_string(),
                "protocol": format!("{:?}", u.config.protocol).to_lowercase(),
                "policy": u.balancer.policy().name(),
                "index": set.index,
                "received": state.received,
                "fail_static": state.fail_static,
                "problem": state.problem,
                "endpoints": endpoints,
            })
        })
        .collect();
    let mesh = s.metrics.mesh.as_ref().map(|m| {
        json!({
            "mtls": true,
            "leaf_root": m.leaf_root.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            "leaf_not_after_ms": m.leaf_not_after_ms.get(),
            "trusted_roots": m.trusted_roots.get(),
            "state_index": m.state_index.get(),
        })
    });
    let body = json!({
        "service": s.service,
        "id": s.id,
        "registered": s.metrics.registration.registered.get() == 1,
        "lease_id": s.metrics.registration.lease_id.get(),
        "mesh": mesh,
        "upstreams": upstreams,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body:#}\n"),
    )
}
