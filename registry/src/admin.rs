//! The admin HTTP endpoint on its own port: `/metrics` (Prometheus text format),
//! `/healthz` (the process is up) and `/readyz` (knows a leader and has applied
//! everything it knows to be committed).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::api::cluster_service::role_name;
use crate::metrics::render_gauge;
use crate::node::Node;

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(node)
}

async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render_metrics(&node),
    )
}

/// All series of this node: Raft gauges read now, then the stored counters.
pub fn render_metrics(node: &Node) -> String {
    let view = node.view();
    let mut out = String::new();
    let gauges: [(&str, &str, f64); 8] = [
        ("waymark_raft_term", "Current Raft term.", view.term as f64),
        (
            "waymark_raft_is_leader",
            "1 if this node is the Raft leader, else 0.",
            (role_name(&view) == "leader") as u8 as f64,
        ),
        (
            "waymark_raft_commit_index",
            "Highest log index this node knows to be committed.",
            node.commit_index(&view) as f64,
        ),
        (
            "waymark_raft_applied_index",
            "Index of the last log entry applied to the state machine.",
            view.applied_index as f64,
        ),
        (
            "waymark_raft_last_log_index",
            "Index of the last entry in this node's log.",
            view.last_log_index as f64,
        ),
        (
            "waymark_raft_snapshot_index",
            "Last log index covered by this node's snapshot (0 if none).",
            view.snapshot_index as f64,
        ),
        (
            "waymark_raft_purged_index",
            "Last log index purged from this node's log (0 if none).",
            view.purged_index as f64,
        ),
        (
            "waymark_catalog_instances",
            "Instances in this node's replica of the catalog.",
            node.catalog
                .read()
                .expect("catalog lock poisoned")
                .instance_count() as f64,
        ),
    ];
    render_gauge(
        &mut out,
        "waymark_watchers",
        "Live watch streams on this node.",
        node.hub.live_watchers() as f64,
    );
    for (name, help, value) in gauges {
        render_gauge(&mut out, name, help, value);
    }
    // Absent until this node has heard from a leader: an invented 0 would read as fresh.
    if let Some(ms) = node.last_contact_ms(&view) {
        render_gauge(
            &mut out,
            "waymark_raft_last_contact_seconds",
            "Seconds since this node last heard from a leader (leader: since a quorum acknowledged it).",
            ms as f64 / 1000.0,
        );
    }
    // Only present when a positive-control behaviour is on, so a scrape shows it.
    if let Some(control) = node.unsafe_control {
        let _ = writeln!(
            out,
            "# HELP waymark_unsafe_control 1 for the deliberately unsafe behaviour this node runs with (Jepsen positive controls only).\n\
             # TYPE waymark_unsafe_control gauge\n\
             waymark_unsafe_control{{name=\"{}\"}} 1",
            control.name()
        );
    }
    node.metrics.render(&mut out);
    out
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(node): State<Arc<Node>>) -> (StatusCode, String) {
    match readiness(&node) {
        Ok(why) => (StatusCode::OK, format!("ready: {why}\n")),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// Whether the node is ready to serve (knows a leader and has applied everything it
/// knows to be committed), and why. `/readyz` and gRPC health both answer from this.
pub fn readiness(node: &Node) -> Result<String, String> {
    let view = node.view();
    let commit = node.commit_index(&view);
    match view.leader {
        None => Err("no known leader".into()),
        Some(_) if view.applied_index < commit => Err(format!(
            "applied index {} is behind commit index {commit}",
            view.applied_index
        )),
        Some((leader, _)) => Ok(format!(
            "leader {leader}, applied index {}",
            view.applied_index
        )),
    }
}
