//! The standard gRPC services on the client API port: `grpc.health.v1.Health`
//! (SERVING exactly while `/readyz` would say ready, for the whole server "" and for
//! each Waymark service) and server reflection (`v1` and `v1alpha`).

use openraft::async_runtime::WatchReceiver;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use waymark_proto::pb;

use crate::admin::readiness;
use crate::node::Node;

/// How often readiness is re-checked when Raft reports no change of role or leader.
const RECHECK: Duration = Duration::from_millis(500);
/// The same while not ready, so a node that has caught up says so soon.
const RECHECK_NOT_READY: Duration = Duration::from_millis(50);

/// The service names health answers for besides "" (the whole server).
fn service_names() -> [&'static str; 4] {
    [
        <pb::catalog_server::CatalogServer<()> as NamedService>::NAME,
        <pb::config_server::ConfigServer<()> as NamedService>::NAME,
        <pb::leases_server::LeasesServer<()> as NamedService>::NAME,
        <pb::cluster_server::ClusterServer<()> as NamedService>::NAME,
    ]
}

async fn report(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in service_names() {
        reporter.set_service_status(name, status).await;
    }
}

/// Keeps `reporter` in step with the node's readiness until `shutdown`; then reports
/// NOT_SERVING, so health watchers see the node go before its port closes.
pub async fn follow_readiness(
    node: Arc<Node>,
    reporter: HealthReporter,
    shutdown: CancellationToken,
) {
    // Server metrics change with role, leader and membership, not with every write as
    // the full metrics do; how far apply has come is caught by the re-check.
    let mut metrics = node.raft.server_metrics();
    let mut last = None;
    loop {
        let now = if readiness(&node).is_ok() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(now) {
            report(&reporter, now).await;
            last = Some(now);
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = metrics.changed() => if changed.is_err() {
                // Raft stopped: the node is stopping (`server::supervise_raft_core`).
                report(&reporter, ServingStatus::NotServing).await;
                shutdown.cancelled().await;
                break;
            },
            _ = tokio::time::sleep(if now == ServingStatus::Serving {
                RECHECK
            } else {
                RECHECK_NOT_READY
            }) => {}
        }
    }
    report(&reporter, ServingStatus::NotServing).await;
}

/// A health reporter that starts NOT_SERVING (tonic-health starts "" as SERVING).
pub async fn health() -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let (reporter, server) = tonic_health::server::health_reporter();
    report(&reporter, ServingStatus::NotServing).await;
    (reporter, server)
}

/// Reflection over every Waymark service and the health service, in both versions.
pub fn reflection() -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}
