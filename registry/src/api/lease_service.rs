//! The `Leases` gRPC service: create, keep alive (a bidirectional stream) and revoke.
//! Expiry itself is the leader's job (`leader_timers.rs`).

use std::sync::Arc;

use futures::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use waymark_proto::{check_lease_id, check_lease_ttl, pb};

use tracing::Instrument;

use super::errors::{respond, status, ApiError};
use super::{auth, Tasks};
use crate::model::{Command, LeaseEnded, LeaseRecord};
use crate::node::Node;

pub struct LeaseService {
    node: Arc<Node>,
    /// Owns the keep-alive streams; ends them at shutdown.
    tasks: Tasks,
}

impl LeaseService {
    pub fn new(node: Arc<Node>, tasks: Tasks) -> Self {
        Self { node, tasks }
    }
}

#[tonic::async_trait]
impl pb::leases_server::Leases for LeaseService {
    async fn create_lease(
        &self,
        req: Request<pb::CreateLeaseRequest>,
    ) -> Result<Response<pb::CreateLeaseResponse>, Status> {
        let audit = self.node.audit.begin("CreateLease", req.remote_addr());
        let result = async {
            auth::writer(&self.node, req.metadata(), &audit)
                .await?
                .require_known()?;
            let ttl_ms = req.into_inner().ttl_ms;
            check_lease_ttl(ttl_ms)?;
            let written = self
                .node
                .propose::<LeaseRecord>(Command::CreateLease { ttl_ms })
                .await?;
            Ok(pb::CreateLeaseResponse {
                lease_id: written.outcome.id,
                ttl_ms: written.outcome.ttl_ms,
                index: written.index,
            })
        }
        .await;
        audit.finish(respond(&self.node, "CreateLease", result), |r| r.index)
    }

    type KeepAliveStream = ReceiverStream<Result<pb::KeepAliveResponse, Status>>;

    async fn keep_alive(
        &self,
        req: Request<Streaming<pb::KeepAliveRequest>>,
    ) -> Result<Response<Self::KeepAliveStream>, Status> {
        let known = async {
            auth::caller(&self.node, req.metadata())
                .await?
                .require_known()
                .map_err(ApiError::from)
        }
        .await;
        if let Err(e) = known {
            return Err(status(&self.node, e));
        }
        let mut requests = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let node = self.node.clone();
        let shutdown = self.tasks.shutdown.clone();
        let stream = async move {
            loop {
                let req = tokio::select! {
                    // Shutdown ends the stream; the client keeps alive through another node.
                    _ = shutdown.cancelled() => break,
                    req = requests.next() => match req {
                        Some(req) => req,
                        None => break,
                    },
                };
                let reply = match req {
                    Ok(r) => node
                        .keep_alive(r.lease_id)
                        .await
                        .map(|ttl_ms| pb::KeepAliveResponse {
                            lease_id: r.lease_id,
                            ttl_ms,
                        })
                        .map_err(|e| status(&node, e)),
                    Err(status) => Err(status),
                };
                let failed = reply.is_err();
                let code = reply
                    .as_ref()
                    .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
                node.metrics.record_grpc("KeepAlive", code);
                if tx.send(reply).await.is_err() || failed {
                    // An error ends the stream: the client reconnects (perhaps elsewhere).
                    break;
                }
            }
        };
        self.tasks
            .tracker
            .spawn(stream.instrument(tracing::debug_span!("keep_alive_stream")));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn revoke_lease(
        &self,
        req: Request<pb::RevokeLeaseRequest>,
    ) -> Result<Response<pb::RevokeLeaseResponse>, Status> {
        let audit = self.node.audit.begin("RevokeLease", req.remote_addr());
        let result = async {
            auth::writer(&self.node, req.metadata(), &audit)
                .await?
                .require_known()?;
            let lease_id = req.into_inner().lease_id;
            check_lease_id(lease_id)?;
            let cmd = Command::EndLease {
                lease_id,
                reason: "revoked".into(),
            };
            let written = self.node.propose::<LeaseEnded>(cmd).await?;
            Ok(pb::RevokeLeaseResponse {
                revoked: written.outcome.existed,
                index: written.index,
            })
        }
        .await;
        audit.finish(respond(&self.node, "RevokeLease", result), |r| r.index)
    }
}
