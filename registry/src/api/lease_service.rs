//! The `Leases` gRPC service: create, keep alive (a bidirectional stream) and revoke.
//! Expiry itself is the leader's job (`leases.rs`).

use std::sync::Arc;

use futures::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use waymark_proto::{check_lease_ttl, pb};

use super::errors::node_error_status;
use crate::node::Node;
use crate::raft_types::{Command, CommandResult};

pub struct LeaseService {
    node: Arc<Node>,
}

impl LeaseService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl pb::leases_server::Leases for LeaseService {
    async fn create_lease(
        &self,
        req: Request<pb::CreateLeaseRequest>,
    ) -> Result<Response<pb::CreateLeaseResponse>, Status> {
        let result = async {
            let ttl_ms = req.into_inner().ttl_ms;
            check_lease_ttl(ttl_ms)?;
            let (index, result) = self
                .node
                .write(Command::CreateLease { ttl_ms })
                .await
                .map_err(node_error_status)?;
            match result {
                CommandResult::LeaseCreated(lease) => Ok(pb::CreateLeaseResponse {
                    lease_id: lease.id,
                    ttl_ms: lease.ttl_ms,
                    index,
                }),
                other => Err(Status::internal(format!(
                    "create lease applied with unexpected result {other:?}"
                ))),
            }
        }
        .await;
        self.node.metrics.observe("CreateLease", result)
    }

    type KeepAliveStream = ReceiverStream<Result<pb::KeepAliveResponse, Status>>;

    async fn keep_alive(
        &self,
        req: Request<Streaming<pb::KeepAliveRequest>>,
    ) -> Result<Response<Self::KeepAliveStream>, Status> {
        let mut requests = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let node = self.node.clone();
        tokio::spawn(async move {
            while let Some(req) = requests.next().await {
                let reply = match req {
                    Ok(r) => node
                        .keep_alive(r.lease_id)
                        .await
                        .map(|ttl_ms| pb::KeepAliveResponse {
                            lease_id: r.lease_id,
                            ttl_ms,
                        })
                        .map_err(node_error_status),
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
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn revoke_lease(
        &self,
        req: Request<pb::RevokeLeaseRequest>,
    ) -> Result<Response<pb::RevokeLeaseResponse>, Status> {
        let result = async {
            let lease_id = req.into_inner().lease_id;
            if lease_id == 0 {
                return Err(Status::invalid_argument(
                    "invalid lease_id: must be a positive lease id",
                ));
            }
            let cmd = Command::EndLease {
                lease_id,
                reason: "revoked".into(),
            };
            let (index, result) = self.node.write(cmd).await.map_err(node_error_status)?;
            match result {
                CommandResult::LeaseEnded { existed } => Ok(pb::RevokeLeaseResponse {
                    revoked: existed,
                    index,
                }),
                other => Err(Status::internal(format!(
                    "revoke applied with unexpected result {other:?}"
                ))),
            }
        }
        .await;
        self.node.metrics.observe("RevokeLease", result)
    }
}
