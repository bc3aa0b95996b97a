//! Server side of the Raft transport: decodes peers' messages, hands them to the local
//! Raft, and serves the leader-only helpers followers use (ReadIndex, ForwardWrites,
//! ForwardKeepAlive) and the stopping leader's TimeoutNow.

use std::sync::Arc;

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use waymark_proto::pb;

use super::{decode, encode, forwarded_writes, SnapshotChunk};
use crate::api::errors::status;
use crate::node::Node;
use crate::raft_types::{NodeId, TypeConfig};

/// Answer messages queued per forwarding stream before its task waits for HTTP/2.
const RESULT_MESSAGES_QUEUED: usize = 16;

pub struct RaftService {
    node: Arc<Node>,
    /// Cancelled when the server stops: forwarding streams then end.
    stop: CancellationToken,
}

impl RaftService {
    pub fn new(node: Arc<Node>, stop: CancellationToken) -> Self {
        Self { node, stop }
    }
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<pb::RaftPayload>, Status> {
    Ok(Response::new(pb::RaftPayload {
        data: encode(value)?,
    }))
}

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        req: Request<pb::RaftPayload>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&req.into_inner().data)?;
        let result = self.node.raft.append_entries(rpc).await;
        // Any answer but "your term is old" means a current leader reached us.
        if let Ok(resp) = &result {
            if !matches!(resp, AppendEntriesResponse::HigherVote(_)) {
                self.node.record_leader_contact();
            }
        }
        reply(&result)
    }

    async fn vote(
        &self,
        req: Request<pb::RaftPayload>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let rpc: VoteRequest<NodeId> = decode(&req.into_inner().data)?;
        reply(&self.node.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<pb::RaftPayload>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> =
            decode::<SnapshotChunk>(&req.into_inner().data)?.into();
        self.node.metrics.snapshot_chunks_received.inc();
        let result = self.node.raft.install_snapshot(rpc).await;
        if result.is_ok() {
            self.node.record_leader_contact();
        }
        reply(&result)
    }

    async fn read_index(
        &self,
        _req: Request<pb::ReadIndexRequest>,
    ) -> Result<Response<pb::ReadIndexResponse>, Status> {
        let read_index = self
            .node
            .read_index_as_leader()
            .await
            .map_err(|e| status(&self.node, e))?;
        Ok(Response::new(pb::ReadIndexResponse {
            read_index,
            leader_id: self.node.id,
        }))
    }

    async fn forward_keep_alive(
        &self,
        req: Request<pb::KeepAliveRequest>,
    ) -> Result<Response<pb::KeepAliveResponse>, Status> {
        let lease_id = req.into_inner().lease_id;
        let ttl_ms = self
            .node
            .keep_alive_as_leader(lease_id)
            .await
            .map_err(|e| status(&self.node, e))?;
        Ok(Response::new(pb::KeepAliveResponse { lease_id, ttl_ms }))
    }

    async fn timeout_now(
        &self,
        req: Request<pb::TimeoutNowRequest>,
    ) -> Result<Response<pb::TimeoutNowResponse>, Status> {
        let req = req.into_inner();
        let answer =
            crate::leader_handoff::start_election(&self.node, req.leader_id, req.term).await;
        Ok(Response::new(pb::TimeoutNowResponse {
            started: answer.is_ok(),
            reason: answer.err().unwrap_or_default(),
        }))
    }

    type ForwardWritesStream = ReceiverStream<Result<pb::ForwardedResults, Status>>;

    async fn forward_writes(
        &self,
        req: Request<Streaming<pb::ForwardedWrites>>,
    ) -> Result<Response<Self::ForwardWritesStream>, Status> {
        let (results, stream) = mpsc::channel(RESULT_MESSAGES_QUEUED);
        tokio::spawn(forwarded_writes::serve(
            self.node.clone(),
            req.into_inner(),
            results,
            self.stop.clone(),
        ));
        Ok(Response::new(ReceiverStream::new(stream)))
    }
}
