//! openraft's view of the network: sends AppendEntries, Vote and InstallSnapshot to
//! a peer's Raft listener and maps transport failures to the errors openraft expects
//! (unreachable → back off; remote Raft errors passed through).

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use waymark_proto::pb;

use super::peers::PeerChannels;
use super::{decode, encode};
use crate::raft_types::{Member, NodeId, TypeConfig};

/// Creates one `PeerConnection` per replication target.
#[derive(Clone)]
pub struct NetworkFactory {
    pub peers: PeerChannels,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Self::Network {
        PeerConnection {
            target,
            addr: node.raft_addr.clone(),
            peers: self.peers.clone(),
        }
    }
}

pub struct PeerConnection {
    target: NodeId,
    addr: String,
    peers: PeerChannels,
}

type RpcErr<E> = RPCError<NodeId, Member, RaftError<NodeId, E>>;

/// Why a transport call failed: the peer could not be reached, or the call broke.
fn transport_error<E: std::error::Error>(status: tonic::Status) -> RpcErr<E> {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::new(&status))
        }
        _ => RPCError::Network(NetworkError::new(&status)),
    }
}

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &self,
        method: &'static str,
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
                "append_entries" => client.append_entries(payload).await,
                "vote" => client.vote(payload).await,
                _ => client.install_snapshot(payload).await,
            }
        };
        let reply = match tokio::time::timeout(ttl, fut).await {
            Ok(Ok(reply)) => reply.into_inner(),
            Ok(Err(status)) => return Err(transport_error(status)),
            Err(_) => {
                return Err(RPCError::Unreachable(Unreachable::new(
                    &std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "{method} to node {} at {} timed out",
                            self.target, self.addr
                        ),
                    ),
                )))
            }
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
        self.call("append_entries", &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        self.call("install_snapshot", &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr<openraft::error::Infallible>> {
        self.call("vote", &rpc, option.hard_ttl()).await
    }
}
