//! openraft's view of the network: sends AppendEntries, Vote and InstallSnapshot to
//! a peer's Raft listener and maps transport failures to the errors openraft expects.
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
        PeerConnection {
            from: self.node_id,
            target,
            addr: node.raft_addr.clone(),
            peers: self.peers.clone(),
        }
    }
}

pub struct PeerConnection {
    from: NodeId,
    target: NodeId,
    addr: String,
    peers: PeerChannels,
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

/// Backoff after `Unreachable`: 20, 40, 80, 160, 200, 200, ... ms.
fn short_backoff() -> impl Iterator<Item = Duration> + Send + 'static {
    (0u32..).map(|n| {
        BACKOFF_FIRST
            .saturating_mul(1 << n.min(16))
            .min(BACKOFF_MAX)
    })
}

impl PeerConnection {
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
            Ok(Err(status))
                if matches!(
                    status.code(),
                    tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                ) =>
            {
                return Err(self.timed_out(method, ttl))
            }
            Ok(Err(status)) => return Err(transport_error(status)),
            Err(_) => return Err(self.timed_out(method, ttl)),
        };
        let result: Result<Resp, RaftError<NodeId, E>> =
            decode(&reply.data).map_err(transport_error)?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        self.call(RPCTypes::AppendEntries, &rpc, option.hard_ttl())
            .await
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
        let conn = PeerConnection {
            from: 1,
            target: 2,
            addr: "127.0.0.1:1".into(),
            peers: PeerChannels::default(),
        };
        let slow: E = conn.timed_out(RPCTypes::AppendEntries, Duration::from_millis(100));
        assert!(matches!(slow, RPCError::Timeout(t) if t.target == 2 && t.id == 1));
    }
}
