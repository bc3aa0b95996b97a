//! The `Catalog` gRPC service: validates requests, proposes writes through Raft, and
//! serves reads in the requested consistency mode with the index they reflect.

use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use waymark_proto::{check_health_update, check_instance_key, pb, Registration};

use super::convert;
use super::errors::node_error_status;
use crate::catalog::{Catalog, Health, NewInstance};
use crate::node::{Node, RaftView};
use crate::raft_types::{Command, CommandResult};
use crate::watch::stream::{self as watch_stream, WatchFilter, DEFAULT_PROGRESS_INTERVAL};

pub struct CatalogService {
    node: Arc<Node>,
    /// Ends watch streams at shutdown.
    shutdown: CancellationToken,
}

impl CatalogService {
    pub fn new(node: Arc<Node>, shutdown: CancellationToken) -> Self {
        Self { node, shutdown }
    }

    /// Makes the local replica fit to answer in the requested mode, then runs `read`
    /// on it. The returned index is the one the answer reflects.
    async fn read<T>(
        &self,
        options: Option<pb::ReadOptions>,
        read: impl FnOnce(&Catalog) -> T,
    ) -> Result<(T, pb::ResponseMeta), Status> {
        let options = options.unwrap_or_default();
        let consistency = match pb::Consistency::try_from(options.consistency) {
            Ok(pb::Consistency::Stale) => pb::Consistency::Stale,
            Ok(_) => pb::Consistency::Consistent,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "invalid read.consistency: unknown mode {} (use CONSISTENT or STALE)",
                    options.consistency
                )))
            }
        };
        let view: RaftView;
        match consistency {
            pb::Consistency::Stale => {
                view = self.node.view();
                self.node
                    .check_staleness(&view, options.max_stale_ms)
                    .map_err(node_error_status)?;
            }
            _ => {
                if options.max_stale_ms != 0 {
                    return Err(Status::invalid_argument(
                        "invalid read.max_stale_ms: only applies to STALE reads",
                    ));
                }
                self.node.read_barrier().await.map_err(node_error_status)?;
                view = self.node.view();
            }
        }
        let (value, index) = {
            let catalog = self.node.catalog.read().expect("catalog lock poisoned");
            (read(&catalog), catalog.applied_index())
        };
        Ok((
            value,
            convert::response_meta(&self.node, &view, index, consistency),
        ))
    }
}

/// Why a compare-and-set registration (`expected_modify_index`) did not commit, e.g.
/// `instance web/web-1 has modify index 42, expected 40`.
fn cas_mismatch_message(key: &str, current: Option<u64>, expected: u64) -> String {
    match current {
        None => format!("instance {key} does not exist, expected {expected}"),
        Some(current) if expected == 0 => format!(
            "instance {key} already exists with modify index {current}, expected 0 (absent)"
        ),
        Some(current) => {
            format!("instance {key} has modify index {current}, expected {expected}")
        }
    }
}

#[tonic::async_trait]
impl pb::catalog_server::Catalog for CatalogService {
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let result = async {
            let registration = Registration::try_from(req.into_inner())?;
            let key = format!("{}/{}", registration.service, registration.id);
            let cmd = Command::Register(NewInstance::from(registration));
            let (index, result) = self.node.write(cmd).await.map_err(node_error_status)?;
            match result {
                CommandResult::Registered(record) => Ok(pb::RegisterResponse {
                    instance: Some(convert::instance(&record)),
                    index,
                }),
                CommandResult::LeaseNotFound(lease) => Err(Status::not_found(format!(
                    "invalid lease_id: lease {lease} does not exist (expired or revoked?)"
                ))),
                CommandResult::PreconditionFailed { current, expected } => Err(
                    Status::failed_precondition(cas_mismatch_message(&key, current, expected)),
                ),
                other => Err(Status::internal(format!(
                    "register applied with unexpected result {other:?}"
                ))),
            }
        }
        .await;
        self.node.metrics.observe("Register", result)
    }

    async fn deregister(
        &self,
        req: Request<pb::DeregisterRequest>,
    ) -> Result<Response<pb::DeregisterResponse>, Status> {
        let result = async {
            let req = req.into_inner();
            check_instance_key(&req.service, &req.id)?;
            let cmd = Command::Deregister {
                service: req.service,
                id: req.id,
            };
            let (index, result) = self.node.write(cmd).await.map_err(node_error_status)?;
            match result {
                CommandResult::Deregistered { removed } => {
                    Ok(pb::DeregisterResponse { removed, index })
                }
                other => Err(Status::internal(format!(
                    "deregister applied with unexpected result {other:?}"
                ))),
            }
        }
        .await;
        self.node.metrics.observe("Deregister", result)
    }

    async fn get_instance(
        &self,
        req: Request<pb::GetInstanceRequest>,
    ) -> Result<Response<pb::GetInstanceResponse>, Status> {
        let result = async {
            let req = req.into_inner();
            check_instance_key(&req.service, &req.id)?;
            let (found, meta) = self
                .read(req.read, |c| {
                    c.get(&req.service, &req.id).map(convert::instance)
                })
                .await?;
            match found {
                Some(instance) => Ok(pb::GetInstanceResponse {
                    instance: Some(instance),
                    meta: Some(meta),
                }),
                None => Err(Status::not_found(format!(
                    "instance {:?} of service {:?} not found (at index {})",
                    req.id, req.service, meta.index
                ))),
            }
        }
        .await;
        self.node.metrics.observe("GetInstance", result)
    }

    async fn list_services(
        &self,
        req: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let result = async {
            let (services, meta) = self.read(req.into_inner().read, |c| c.services()).await?;
            Ok(pb::ListServicesResponse {
                services: services.into_iter().map(convert::service_summary).collect(),
                meta: Some(meta),
            })
        }
        .await;
        self.node.metrics.observe("ListServices", result)
    }

    async fn list_instances(
        &self,
        req: Request<pb::ListInstancesRequest>,
    ) -> Result<Response<pb::ListInstancesResponse>, Status> {
        let result = async {
            let req = req.into_inner();
            waymark_proto::validate::check_dns_label("service", &req.service)?;
            let (instances, meta) = self
                .read(req.read, |c| {
                    c.instances(&req.service)
                        .iter()
                        .filter(|r| !req.passing_only || r.is_passing())
                        .map(convert::instance)
                        .collect()
                })
                .await?;
            Ok(pb::ListInstancesResponse {
                instances,
                meta: Some(meta),
            })
        }
        .await;
        self.node.metrics.observe("ListInstances", result)
    }

    async fn update_health(
        &self,
        req: Request<pb::UpdateHealthRequest>,
    ) -> Result<Response<pb::UpdateHealthResponse>, Status> {
        let result = async {
            let req = req.into_inner();
            let health = match check_health_update(&req)? {
                pb::HealthStatus::Warning => Health::Warning,
                pb::HealthStatus::Critical => Health::Critical,
                _ => Health::Passing,
            };
            let cmd = Command::UpdateHealth {
                service: req.service.clone(),
                id: req.id.clone(),
                health,
                output: req.output,
            };
            let (index, result) = self.node.write(cmd).await.map_err(node_error_status)?;
            match result {
                CommandResult::HealthUpdated(record) => Ok(pb::UpdateHealthResponse {
                    instance: Some(convert::instance(&record)),
                    index,
                }),
                CommandResult::InstanceNotFound => Err(Status::not_found(format!(
                    "instance {:?} of service {:?} not found (at index {index})",
                    req.id, req.service
                ))),
                other => Err(Status::internal(format!(
                    "health update applied with unexpected result {other:?}"
                ))),
            }
        }
        .await;
        self.node.metrics.observe("UpdateHealth", result)
    }

    type WatchStream = ReceiverStream<Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let result = async {
            let req = req.into_inner();
            let filter = WatchFilter::from_request(&req)?;
            let interval = match req.progress_interval_ms {
                0 => DEFAULT_PROGRESS_INTERVAL,
                ms if ms < 100 => {
                    return Err(Status::invalid_argument(format!(
                    "invalid progress_interval_ms: must be 0 (default) or at least 100 (got {ms})"
                )))
                }
                ms => std::time::Duration::from_millis(ms),
            };
            // Never serve "from N" from a state older than N.
            watch_stream::wait_for_index(&self.node, req.from_index).await?;
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            tokio::spawn(watch_stream::run(
                self.node.clone(),
                filter,
                req.from_index,
                interval,
                tx,
                self.shutdown.clone(),
            ));
            Ok(ReceiverStream::new(rx))
        }
        .await;
        self.node.metrics.observe("Watch", result)
    }
}

#[cfg(test)]
mod tests {
    use super::cas_mismatch_message;

    #[test]
    fn cas_mismatch_names_the_instance_and_both_indexes() {
        assert_eq!(
            cas_mismatch_message("jepsen/k1", Some(42), 40),
            "instance jepsen/k1 has modify index 42, expected 40"
        );
        assert_eq!(
            cas_mismatch_message("jepsen/k1", None, 40),
            "instance jepsen/k1 does not exist, expected 40"
        );
        assert_eq!(
            cas_mismatch_message("jepsen/k1", Some(42), 0),
            "instance jepsen/k1 already exists with modify index 42, expected 0 (absent)"
        );
    }
}
