//! The admin endpoint: /metrics is valid Prometheus text (checked with promtool),
//! /healthz answers, /readyz reports readiness.

mod common;

use std::io::Write;
use std::process::Command;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal HTTP/1.0 GET: returns (status code, body).
async fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_are_valid_prometheus_text_and_probes_answer() {
    let cluster = TestCluster::start(3, |_| {}).await;
    let leader = cluster.wait_for_leader().await;
    let mut c = cluster.catalog(leader).await;
    c.register(registration("web", "w1", 80)).await.unwrap();
    c.register(registration("Bad", "w1", 80)).await.unwrap_err();

    let admin = cluster.node(leader).config.admin_addr.clone();
    let (status, body) = http_get(&admin, "/metrics").await;
    assert_eq!(status, 200);
    for series in [
        "waymark_raft_term ",
        "waymark_raft_is_leader 1",
        "waymark_raft_commit_index ",
        "waymark_raft_applied_index ",
        "waymark_raft_last_contact_seconds ",
        "waymark_apply_latency_seconds_bucket{le=\"+Inf\"} ",
        "waymark_grpc_requests_total{method=\"Register\",code=\"OK\"} 1",
        "waymark_grpc_requests_total{method=\"Register\",code=\"InvalidArgument\"} 1",
    ] {
        assert!(body.contains(series), "missing {series:?} in:\n{body}");
    }

    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(body.as_bytes()).unwrap();
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(file.path()).unwrap())
        .output()
        .expect(
            "promtool is needed (Debian package `prometheus`; the README test command installs it)",
        );
    assert!(
        out.status.success(),
        "promtool rejected /metrics:\n{}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(http_get(&admin, "/healthz").await.0, 200);
    for id in cluster.running_ids() {
        let admin = cluster.node(id).config.admin_addr.clone();
        let (status, body) = wait_for("every node to be ready", || {
            let admin = admin.clone();
            async move {
                let (s, b) = http_get(&admin, "/readyz").await;
                (s == 200).then_some((s, b))
            }
        })
        .await;
        assert_eq!(status, 200);
        assert!(body.starts_with("ready"), "{body}");
    }
    cluster.shutdown().await;
}
