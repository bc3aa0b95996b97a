//! The `Catalog` gRPC service: validates requests, proposes writes through Raft, and
//! serves reads in the requested consistency mode with the index they reflect.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use waymark_proto::{
    check_health_update, check_instance_key, parts, pb, Registration, WatchSelection,
};

use super::errors::{respond, ApiError};
use super::watch_stream::{
    self, WatchFilter, WatchResponses, WatchStart, DEFAULT_PROGRESS_INTERVAL,
};
use super::{auth, convert, read, Tasks};
use crate::acl::Need;
use crate::limits::Caller;
use crate::model::{AclAccess, Command, Deregistered, Health, HealthOutcome, RegisterOutcome};
use crate::node::{self, Node};

/// The parts of a StreamInstances answer.
pub type InstanceParts = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<pb::ListInstancesResponse, Status>> + Send>,
>;

pub struct CatalogService {
    node: Arc<Node>,
    /// Tracks the watch streams, so a stopping server waits for them (the hub ends
    /// them: `WatchHub::stop_watches`).
    tasks: Tasks,
}

impl CatalogService {
    pub fn new(node: Arc<Node>, tasks: Tasks) -> Self {
        Self { node, tasks }
    }

    /// The answer of ListInstances and StreamInstances: the service's instances (the
    /// caller must be allowed to read it), read in the requested mode, with its meta.
    async fn instances(
        &self,
        req: Request<pb::ListInstancesRequest>,
    ) -> Result<(Vec<pb::Instance>, pb::ResponseMeta), ApiError> {
        let caller = auth::caller(&self.node, req.metadata()).await?;
        let req = req.into_inner();
        waymark_proto::validate::check_dns_label("service", &req.service)?;
        caller.require(Need::service(&req.service, AclAccess::Read))?;
        read(&self.node, req.read, |c| {
            c.service_records(&req.service)
                .filter(|r| !req.passing_only || r.is_passing())
                .map(convert::instance)
                .collect()
        })
        .await
    }
}

/// `instance S/ID`, as errors name it.
fn instance_name(service: &str, id: &str) -> String {
    format!("instance {service}/{id}")
}

#[tonic::async_trait]
impl pb::catalog_server::Catalog for CatalogService {
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let audit = self.node.audit.begin("Register", req.remote_addr());
        let result = async {
            let caller = auth::writer(&self.node, req.metadata(), &audit).await?;
            let registration = Registration::try_from(req.into_inner())?;
            caller.require(Need::service(&registration.service, AclAccess::Write))?;
            let name = instance_name(&registration.service, &registration.id);
            let cmd = Command::Register(convert::new_instance(registration));
            let written = self.node.propose::<RegisterOutcome>(cmd).await?;
            match written.outcome {
                RegisterOutcome::Registered(record) => Ok(pb::RegisterResponse {
                    instance: Some(convert::instance(&record)),
                    index: written.index,
                }),
                RegisterOutcome::LeaseNotFound(lease) => Err(ApiError::NotFound(format!(
                    "invalid lease_id: lease {lease} does not exist (expired or revoked?)"
                ))),
                RegisterOutcome::PreconditionFailed(m) => Err(ApiError::cas(name, m)),
            }
        }
        .await;
        audit.finish(respond(&self.node, "Register", result), |r| r.index)
    }

    async fn deregister(
        &self,
        req: Request<pb::DeregisterRequest>,
    ) -> Result<Response<pb::DeregisterResponse>, Status> {
        let audit = self.node.audit.begin("Deregister", req.remote_addr());
        let result = async {
            let caller = auth::writer(&self.node, req.metadata(), &audit).await?;
            let req = req.into_inner();
            check_instance_key(&req.service, &req.id)?;
            caller.require(Need::service(&req.service, AclAccess::Write))?;
            let cmd = Command::Deregister {
                service: req.service,
                id: req.id,
            };
            let written = self.node.propose::<Deregistered>(cmd).await?;
            Ok(pb::DeregisterResponse {
                removed: written.outcome.removed,
                index: written.index,
            })
        }
        .await;
        audit.finish(respond(&self.node, "Deregister", result), |r| r.index)
    }

    async fn get_instance(
        &self,
        req: Request<pb::GetInstanceRequest>,
    ) -> Result<Response<pb::GetInstanceResponse>, Status> {
        let result = async {
            let caller = auth::caller(&self.node, req.metadata()).await?;
            let req = req.into_inner();
            check_instance_key(&req.service, &req.id)?;
            caller.require(Need::service(&req.service, AclAccess::Read))?;
            let (found, meta) = read(&self.node, req.read, |c| {
                c.get(&req.service, &req.id).map(convert::instance)
            })
            .await?;
            match found {
                Some(instance) => Ok(pb::GetInstanceResponse {
                    instance: Some(instance),
                    meta: Some(meta),
                }),
                None => Err(ApiError::NotFound(format!(
                    "instance {:?} of service {:?} not found (at index {})",
                    req.id, req.service, meta.index
                ))),
            }
        }
        .await;
        respond(&self.node, "GetInstance", result)
    }

    async fn list_services(
        &self,
        req: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let result = async {
            let caller = auth::caller(&self.node, req.metadata()).await?;
            let (services, meta) =
                read(&self.node, req.into_inner().read, |c| c.services()).await?;
            Ok(pb::ListServicesResponse {
                // Like Consul, a list shows what the token may read and hides the rest.
                services: services
                    .into_iter()
                    .filter(|s| caller.may_read_service(&s.name))
                    .map(convert::service_summary)
                    .collect(),
                meta: Some(meta),
            })
        }
        .await;
        respond(&self.node, "ListServices", result)
    }

    async fn list_instances(
        &self,
        req: Request<pb::ListInstancesRequest>,
    ) -> Result<Response<pb::ListInstancesResponse>, Status> {
        let result = async {
            let (instances, meta) = self.instances(req).await?;
            Ok(pb::ListInstancesResponse {
                instances,
                meta: Some(meta),
                more: false,
            })
        }
        .await;
        respond(&self.node, "ListInstances", result)
    }

    type StreamInstancesStream = InstanceParts;

    async fn stream_instances(
        &self,
        req: Request<pb::ListInstancesRequest>,
    ) -> Result<Response<Self::StreamInstancesStream>, Status> {
        let result = async {
            let (instances, meta) = self.instances(req).await?;
            let runs = parts::split_by_size(instances, parts::PART_BYTES);
            let last = runs.len() - 1;
            let responses = runs.into_iter().enumerate().map(move |(i, instances)| {
                Ok(pb::ListInstancesResponse {
                    instances,
                    meta: Some(meta.clone()),
                    more: i < last,
                })
            });
            let stream: InstanceParts = Box::pin(futures::stream::iter(responses));
            Ok(stream)
        }
        .await;
        respond(&self.node, "StreamInstances", result)
    }

    async fn update_health(
        &self,
        req: Request<pb::UpdateHealthRequest>,
    ) -> Result<Response<pb::UpdateHealthResponse>, Status> {
        let audit = self.node.audit.begin("UpdateHealth", req.remote_addr());
        let result = async {
            let caller = auth::writer(&self.node, req.metadata(), &audit).await?;
            let req = req.into_inner();
            let health = match check_health_update(&req)? {
                pb::HealthStatus::Warning => Health::Warning,
                pb::HealthStatus::Critical => Health::Critical,
                _ => Health::Passing,
            };
            caller.require(Need::service(&req.service, AclAccess::Write))?;
            let cmd = Command::UpdateHealth {
                service: req.service.clone(),
                id: req.id.clone(),
                health,
                output: req.output,
            };
            let written = self.node.propose::<HealthOutcome>(cmd).await?;
            match written.outcome {
                HealthOutcome::Updated(record) => Ok(pb::UpdateHealthResponse {
                    instance: Some(convert::instance(&record)),
                    index: written.index,
                }),
                HealthOutcome::InstanceNotFound => Err(ApiError::NotFound(format!(
                    "instance {:?} of service {:?} not found (at index {})",
                    req.id, req.service, written.index
                ))),
            }
        }
        .await;
        audit.finish(respond(&self.node, "UpdateHealth", result), |r| r.index)
    }

    type WatchStream = WatchResponses;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let result = async {
            let caller = auth::caller(&self.node, req.metadata()).await?;
            let secret = auth::presented(req.metadata())?;
            let peer = req.remote_addr().map(|a| a.ip());
            let req = req.into_inner();
            let selection = WatchSelection::try_from(&req)?;
            // Named services must each be readable; watching everything (or a config
            // prefix) shows only what the token may read.
            for topic in &selection.instances {
                for service in topic.services.iter().flatten() {
                    caller.require(Need::service(service, AclAccess::Read))?;
                }
            }
            let filter = WatchFilter::new(selection, caller);
            let interval =
                waymark_proto::watch_selection::progress_interval(req.progress_interval_ms)?
                    .unwrap_or(DEFAULT_PROGRESS_INTERVAL);
            // Counted against the caller until the stream ends.
            let permit = self
                .node
                .limits
                .open_watch(Caller::of(secret.as_deref(), peer))
                .inspect_err(|_| self.node.metrics.record_limited("watch_streams"))
                .map_err(|limited| ApiError::Limited(limited.to_string()))?;
            // Never serve "from N" from a state older than N.
            node::wait_for_index(&self.node, req.from_index).await?;
            tracing::debug!(from_index = req.from_index, "watch opened");
            Ok(watch_stream::responses(
                self.node.clone(),
                WatchStart {
                    filter,
                    secret,
                    from_index: req.from_index,
                    progress_interval: interval,
                    // The drain token makes a stopping server wait for the stream.
                    held: Box::new((permit, self.tasks.tracker.token())),
                },
            ))
        }
        .await;
        respond(&self.node, "Watch", result)
    }
}
