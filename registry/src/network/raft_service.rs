//! Server side of the Raft transport: decodes peers' messages, hands them to the local
//! Raft, and serves the leader-only helpers followers use (ReadIndex, ForwardWrites,
//! ForwardKeepAlive) and the stopping leader's TimeoutNow.

use std::sync::Arc;

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest};
use openraft_legacy::network_v1::{ChunkedSnapshotReceiver, InstallSnapshotRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use waymark_proto::pb;

use super::{decode, encode, forwarded_writes, SnapshotChunk};
use crate::api::errors::status;
use crate::node::Node;
use crate::raft_types::TypeConfig;

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

/// Hands one AppendEntries to the local Raft and encodes its answer.
async fn append_entries(node: &Node, req: &pb::RaftPayload) -> Result<pb::RaftPayload, Status> {
    let rpc: AppendEntriesRequest<TypeConfig> = decode(&req.data)?;
    let result = node.raft.append_entries(rpc).await;
    // Any answer but "your term is old" means a current leader reached us.
    if let Ok(resp) = &result {
        if !matches!(resp, AppendEntriesResponse::HigherVote(_)) {
            node.record_leader_contact();
        }
    }
    Ok(pb::RaftPayload {
        data: encode(&result)?,
    })
}

/// Serves one `AppendEntriesStream`: each request in turn, its answer sent before the
/// next is read, until the leader closes its side, the stream breaks, or this server
/// stops (`stop`: the request in hand is answered first, so an idle stream never holds
/// the server's shutdown drain).
async fn serve_append_entries(
    node: Arc<Node>,
    mut requests: Streaming<pb::RaftPayload>,
    answers: mpsc::Sender<Result<pb::RaftPayload, Status>>,
    stop: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            request = requests.message() => request,
            _ = stop.cancelled() => return,
        };
        let request = match request {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "an AppendEntries stream broke");
                return;
            }
        };
        // A request that does not decode ends the stream with its status: the leader
        // opens a new one for its next call.
        let answer = append_entries(&node, &request).await;
        let failed = answer.is_err();
        if answers.send(answer).await.is_err() || failed {
            return;
        }
    }
}

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        req: Request<pb::RaftPayload>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let answer = append_entries(&self.node, &req.into_inner()).await?;
        Ok(Response::new(answer))
    }

    type AppendEntriesStreamStream = ReceiverStream<Result<pb::RaftPayload, Status>>;

    async fn append_entries_stream(
        &self,
        req: Request<Streaming<pb::RaftPayload>>,
    ) -> Result<Response<Self::AppendEntriesStreamStream>, Status> {
        // One answer queued at most: the leader sends the next request only after it
        // has the answer to this one.
        let (answers, stream) = mpsc::channel(1);
        tokio::spawn(serve_append_entries(
            self.node.clone(),
            req.into_inner(),
            answers,
            self.stop.clone(),
        ));
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    async fn vote(
        &self,
        req: Request<pb::RaftPayload>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let rpc: VoteRequest<TypeConfig> = decode(&req.into_inner().data)?;
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
