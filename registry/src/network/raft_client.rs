//! openraft's view of the network: sends AppendEntries, Vote and InstallSnapshot to
//! a peer's Raft listener and maps transport failures to the errors openraft expects.
//!
//! AppendEntries go on one long-lived stream per peer (`AppendEntriesStream`), one
//! request and its answer at a time, as openraft 0.9 sends them: a unary call costs a
//! new HTTP/2 stream and three writes (headers, data, end of stream) each way, which
//! on a leader at low load was most of its CPU per write. A peer too old to have the
//! stream gets unary calls.
//!
//! The mapping matters for liveness: openraft stops sending to a peer (heartbeats
//! included) for a whole backoff after `Unreachable`, but retries at once after
//! `Timeout`. So a slow answer is a timeout, only a refused or broken connection is
//! unreachable, and the backoff is short and bounded (`BACKOFF_*`): a follower busy
//! for 100 ms must not be cut off for half a second and then look dead.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use waymark_proto::pb;

use super::peers::PeerChannels;
use super::{decode, encode, SnapshotChunk};
use crate::raft_types::{Member, NodeId, TypeConfig};

/// First wait after a peer could not be reached; doubled per failure up to the cap.
const BACKOFF_FIRST: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(200);

/// Creates one `PeerConnection` per replication target.
#[derive(Clone)]
pub struct NetworkFactory {
    /// This node, named in timeout errors.
    pub node_id: NodeId,
    pub peers: PeerChannels,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Self::Network {
        PeerConnection::new(
            self.node_id,
            target,
            node.raft_addr.clone(),
            self.peers.clone(),
        )
    }
}

pub struct PeerConnection {
    from: NodeId,
    target: NodeId,
    addr: String,
    peers: PeerChannels,
    /// The open AppendEntries stream, between calls. A call takes it out and puts it
    /// back only once it has its answer, so a call that failed, timed out or was
    /// dropped half-way leaves no stream whose next answer would be the old one.
    stream: Option<EntriesStream>,
    /// The peer answered the stream with `Unimplemented` (an older build).
    unary_only: bool,
}

/// Our side of one `AppendEntriesStream`.
struct EntriesStream {
    requests: mpsc::Sender<pb::RaftPayload>,
    answers: Streaming<pb::RaftPayload>,
}

type RpcErr<E> = RPCError<NodeId, Member, RaftError<NodeId, E>>;

/// Why a transport call failed: the peer could not be reached, or the call broke.
/// (A slow call is a `Timeout`, made by `PeerConnection::timed_out`.)
fn transport_error<E: std::error::Error>(status: tonic::Status) -> RpcErr<E> {
    match status.code() {
        tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
        _ => RPCError::Network(NetworkError::new(&status)),
    }
}

/// A status that means the call ran out of time rather than the peer being away.
fn is_timeout(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
    )
}

/// Backoff after `Unreachable`: 20, 40, 80, 160, 200, 200, ... ms.
fn short_backoff() -> impl Iterator<Item = Duration> + Send + 'static {
    (0u32..).map(|n| {
        BACKOFF_FIRST
            .saturating_mul(1 << n.min(16))
            .min(BACKOFF_MAX)
    })
}

impl PeerConnection {
    fn new(from: NodeId, target: NodeId, addr: String, peers: PeerChannels) -> Self {
        Self {
            from,
            target,
            addr,
            peers,
            stream: None,
            unary_only: false,
        }
    }

    fn timed_out<E: std::error::Error>(&self, action: RPCTypes, ttl: Duration) -> RpcErr<E> {
        RPCError::Timeout(Timeout {
            action,
            id: self.from,
            target: self.target,
            timeout: ttl,
        })
    }

    async fn call<Req, Resp, E>(
        &self,
        method: RPCTypes,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RpcErr<E>>
    where
        Req: serde::Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = pb::RaftPayload {
            data: encode(req).map_err(transport_error)?,
        };
        let mut client = self
            .peers
            .raft_client(&self.addr)
            .map_err(transport_error)?;
        let fut = async {
            match method {
                RPCTypes::AppendEntries => client.append_entries(payload).await,
                RPCTypes::Vote => client.vote(payload).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(payload).await,
            }
        };
        let reply = match tokio::time::timeout(ttl, fut).await {
            Ok(Ok(reply)) => reply.into_inner(),
            Ok(Err(status)) if is_timeout(&status) => return Err(self.timed_out(method, ttl)),
            Ok(Err(status)) => return Err(transport_error(status)),
            Err(_) => return Err(self.timed_out(method, ttl)),
        };
        self.answer(&reply)
    }

    /// Decodes a peer's answer: its result, or the error its Raft returned.
    // openraft fixes the error type.
    #[allow(clippy::result_large_err)]
    fn answer<Resp, E>(&self, reply: &pb::RaftPayload) -> Result<Resp, RpcErr<E>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let result: Result<Resp, RaftError<NodeId, E>> =
            decode(&reply.data).map_err(transport_error)?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// One AppendEntries on the stream (opened first if there is none).
    async fn stream_call(
        &mut self,
        request: pb::RaftPayload,
    ) -> Result<pb::RaftPayload, tonic::Status> {
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => self.open_stream().await?,
        };
        let closed =
            || tonic::Status::unavailable(format!("{} closed the AppendEntries stream", self.addr));
        stream.requests.send(request).await.map_err(|_| closed())?;
        let answer = stream.answers.message().await?.ok_or_else(closed)?;
        self.stream = Some(stream);
        Ok(answer)
    }

    async fn open_stream(&self) -> Result<EntriesStream, tonic::Status> {
        let mut client = self.peers.raft_client(&self.addr)?;
        // One request at a time: the next is sent once this one is answered.
        let (requests, queued) = mpsc::channel(1);
        let answers = client
            .append_entries_stream(ReceiverStream::new(queued))
            .await?
            .into_inner();
        Ok(EntriesStream { requests, answers })
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        let ttl = option.hard_ttl();
        if self.unary_only {
            return self.call(RPCTypes::AppendEntries, &rpc, ttl).await;
        }
        let request = pb::RaftPayload {
            data: encode(&rpc).map_err(transport_error)?,
        };
        let reply = match tokio::time::timeout(ttl, self.stream_call(request)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
                tracing::info!(peer = %self.addr, "peer has no AppendEntries stream; using unary calls");
                self.unary_only = true;
                return self.call(RPCTypes::AppendEntries, &rpc, ttl).await;
            }
            Ok(Err(status)) if is_timeout(&status) => {
                return Err(self.timed_out(RPCTypes::AppendEntries, ttl))
            }
            Ok(Err(status)) => return Err(transport_error(status)),
            Err(_) => return Err(self.timed_out(RPCTypes::AppendEntries, ttl)),
        };
        self.answer(&reply)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        let chunk = SnapshotChunk::from(rpc);
        self.call(RPCTypes::InstallSnapshot, &chunk, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        self.call(RPCTypes::Vote, &rpc, option.hard_ttl()).await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(short_backoff())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_20ms_and_stays_at_200ms() {
        let waits: Vec<u64> = short_backoff()
            .take(7)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(waits, [20, 40, 80, 160, 200, 200, 200]);
        assert_eq!(short_backoff().nth(1000), Some(BACKOFF_MAX));
    }

    #[test]
    fn only_a_refused_connection_counts_as_unreachable() {
        type E = RpcErr<openraft::error::Infallible>;
        let refused: E = transport_error(tonic::Status::unavailable("connection refused"));
        assert!(matches!(refused, RPCError::Unreachable(_)));
        let broken: E = transport_error(tonic::Status::internal("bad frame"));
        assert!(matches!(broken, RPCError::Network(_)));
        let conn = PeerConnection::new(1, 2, "127.0.0.1:1".into(), PeerChannels::default());
        let slow: E = conn.timed_out(RPCTypes::AppendEntries, Duration::from_millis(100));
        assert!(matches!(slow, RPCError::Timeout(t) if t.target == 2 && t.id == 1));
    }
}
