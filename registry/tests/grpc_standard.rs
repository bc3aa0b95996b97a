//! The standard gRPC services on the client API port, checked with real Python grpcio
//! clients (installed by `scripts/install-deps.sh test`): health is SERVING on a ready
//! node and NOT_SERVING on one with no leader, for Check and Watch; reflection v1 and
//! v1alpha list every service and serve the Waymark descriptors.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;
use waymark_registry::ServerConfig;

/// Runs the Python client against `addr` and returns what it printed.
fn ask(addr: &str) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/grpc_standard.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(addr)
        .output()
        .expect("running python3 (scripts/install-deps.sh test installs grpcio)");
    assert!(
        output.status.success(),
        "the grpcio client failed (are grpcio, grpcio-health-checking and grpcio-reflection installed? scripts/install-deps.sh test installs them):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the client prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_follows_readiness_and_reflection_lists_every_service() {
    let cluster = TestCluster::start(1, |_| {}).await;
    cluster.wait_for_leader().await;
    let addr = cluster.node(1).config.api_addr.clone();
    // Health is reported from readiness, which may trail the leader by one check.
    let got = wait_for("the node to report SERVING", || {
        let addr = addr.clone();
        async move {
            let got = tokio::task::spawn_blocking(move || ask(&addr))
                .await
                .unwrap();
            (got["check"][""] == "SERVING").then_some(got)
        }
    })
    .await;
    for (service, status) in got["check"].as_object().unwrap() {
        assert_eq!(status, "SERVING", "health of {service:?}");
    }
    assert_eq!(got["watch_first"], "SERVING");
    for version in ["v1", "v1alpha"] {
        let services: Vec<&str> = got[version]["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        for want in [
            "grpc.health.v1.Health",
            "waymark.v1.Catalog",
            "waymark.v1.Cluster",
            "waymark.v1.Config",
            "waymark.v1.Leases",
        ] {
            assert!(
                services.contains(&want),
                "{version} lists {services:?}, not {want}"
            );
        }
        let files = got[version]["files"].to_string();
        assert!(
            files.contains("waymark/v1/catalog.proto"),
            "{version}: {files}"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_without_a_leader_is_not_serving() {
    // One node of a three-node cluster whose peers never start: no leader, not ready.
    let dir = tempfile::tempdir().unwrap();
    let (listeners, api, raft, admin) = bind_listeners().await;
    let mut cfg = ServerConfig::new(1, dir.path().join("node-1"));
    cfg.dns_addr = listeners.dns.local_addr().unwrap().to_string();
    cfg.api_addr = api.clone();
    cfg.raft_addr = raft.clone();
    cfg.admin_addr = admin;
    cfg.initial_cluster = (1..=3)
        .map(|id| waymark_registry::config::PeerConfig {
            node_id: id,
            api_addr: if id == 1 {
                api.clone()
            } else {
                format!("127.0.0.1:{}", 1 + id)
            },
            raft_addr: if id == 1 {
                raft.clone()
            } else {
                format!("127.0.0.1:{}", 1 + id)
            },
        })
        .collect();
    let node = start_node(cfg, listeners).await;
    let got = tokio::task::spawn_blocking(move || ask(&api))
        .await
        .unwrap();
    for (service, status) in got["check"].as_object().unwrap() {
        assert_eq!(status, "NOT_SERVING", "health of {service:?}");
    }
    assert_eq!(got["watch_first"], "NOT_SERVING");
    node.stop().await;
}
