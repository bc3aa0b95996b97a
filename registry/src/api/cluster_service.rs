//! The `Cluster` gRPC service: membership listing and changes, node status
//! (including the state digest used to compare replicas), and backups.

use std::pin::Pin;
use std::sync::Arc;

use tonic::{Request, Response, Status};
use waymark_proto::{check_host_port, check_node_id, pb};

use super::errors::{respond, ApiError};
use super::{auth, convert};
use crate::acl::Need;
use crate::model::{AclAccess, AclResource};
use crate::node::Node;
use crate::raft_types::Member;

/// Bytes per `SnapshotChunk`: well under gRPC's default 4 MiB message limit.
const SNAPSHOT_CHUNK: usize = 1 << 20;

type ChunkStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::SnapshotChunk, Status>> + Send>>;

pub struct ClusterService {
    node: Arc<Node>,
}

impl ClusterService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    fn members_now(&self) -> (Vec<pb::Member>, u64) {
        let view = self.node.view();
        (convert::members(&view), view.membership_index)
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterService {
    type SaveSnapshotStream = ChunkStream;

    async fn save_snapshot(
        &self,
        req: Request<pb::SaveSnapshotRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let result = async {
            auth::caller(&self.node, req.metadata())
                .await?
                .require(Need::global(AclResource::Operator, AclAccess::Read))?;
            let options = req.into_inner().read.unwrap_or_default();
            let consistent = match waymark_proto::validate::read_consistency(&options)? {
                pb::Consistency::Stale => {
                    self.node
                        .check_staleness(&self.node.view(), options.max_stale_ms)?;
                    false
                }
                _ => true,
            };
            let (index, image) = self.node.backup(consistent).await?;
            let total_bytes = image.len() as u64;
            let chunks: Vec<Result<pb::SnapshotChunk, Status>> = image
                .chunks(SNAPSHOT_CHUNK)
                .map(|data| {
                    Ok(pb::SnapshotChunk {
                        data: data.to_vec(),
                        index,
                        total_bytes,
                    })
                })
                .collect();
            Ok(Box::pin(tokio_stream::iter(chunks)) as ChunkStream)
        }
        .await;
        respond(&self.node, "SaveSnapshot", result)
    }

    async fn members(
        &self,
        req: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersResponse>, Status> {
        let result = async {
            auth::caller(&self.node, req.metadata())
                .await?
                .require(Need::global(AclResource::Node, AclAccess::Read))?;
            let view = self.node.view();
            Ok(pb::MembersResponse {
                members: convert::members(&view),
                leader_id: view.leader.map(|(id, _)| id),
                index: view.membership_index,
            })
        }
        .await;
        respond(&self.node, "Members", result)
    }

    async fn add_member(
        &self,
        req: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::AddMemberResponse>, Status> {
        let audit = self.node.audit.begin("AddMember", req.remote_addr());
        let result = async {
            auth::writer(&self.node, req.metadata(), &audit)
                .await?
                .require(Need::global(AclResource::Operator, AclAccess::Write))?;
            let token = auth::presented(req.metadata())?;
            let req = req.into_inner();
            check_node_id(req.node_id)?;
            check_host_port("api_addr", &req.api_addr)?;
            check_host_port("raft_addr", &req.raft_addr)?;
            let member = Member {
                api_addr: req.api_addr,
                raft_addr: req.raft_addr,
            };
            let index = self
                .node
                .add_member(req.node_id, member, token.as_deref())
                .await?;
            let (members, _) = self.members_now();
            Ok(pb::AddMemberResponse { members, index })
        }
        .await;
        audit.finish(respond(&self.node, "AddMember", result), |r| r.index)
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let audit = self.node.audit.begin("RemoveMember", req.remote_addr());
        let result = async {
            auth::writer(&self.node, req.metadata(), &audit)
                .await?
                .require(Need::global(AclResource::Operator, AclAccess::Write))?;
            let token = auth::presented(req.metadata())?;
            let req = req.into_inner();
            check_node_id(req.node_id)?;
            let index = self
                .node
                .remove_member(req.node_id, token.as_deref())
                .await?;
            let (members, _) = self.members_now();
            Ok(pb::RemoveMemberResponse { members, index })
        }
        .await;
        audit.finish(respond(&self.node, "RemoveMember", result), |r| r.index)
    }

    async fn status(
        &self,
        req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        if let Err(e) = async {
            auth::caller(&self.node, req.metadata())
                .await?
                .require(Need::global(AclResource::Node, AclAccess::Read))
                .map_err(ApiError::from)
        }
        .await
        {
            return respond(&self.node, "Status", Err(e));
        }
        let view = self.node.view();
        let (state_digest, digest_index) = {
            let catalog = self.node.catalog.read().expect("catalog lock poisoned");
            (catalog.digest(), catalog.applied_index())
        };
        let result = Ok(pb::StatusResponse {
            node_id: self.node.id,
            role: role_name(&view).to_string(),
            term: view.term,
            leader_id: view.leader.as_ref().map(|(id, _)| *id),
            leader_api_addr: view.leader_api_addr(),
            commit_index: self.node.commit_index(&view),
            applied_index: view.applied_index,
            last_log_index: view.last_log_index,
            snapshot_index: view.snapshot_index,
            purged_index: view.purged_index,
            last_contact_ms: self.node.last_contact_ms(&view),
            members: convert::members(&view),
            state_digest,
            digest_index,
        });
        self.node.metrics.observe("Status", result)
    }
}

/// The role as users name it.
pub fn role_name(view: &crate::node::RaftView) -> &'static str {
    use openraft::ServerState::*;
    match view.state {
        Leader => "leader",
        Follower => "follower",
        Candidate => "candidate",
        Learner => "learner",
        Shutdown => "shutdown",
    }
}
