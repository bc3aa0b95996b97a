//! openraft's view of the network: sends AppendEntries, Vote and InstallSnapshot to
//! a peer's Raft listener and maps transport failures to the errors openraft expects.
//! It speaks openraft's chunked InstallSnapshot (`openraft_legacy::network_v1`); the
//! legacy adapter turns the whole snapshots openraft 0.10 sends into those chunks.
//!
//! AppendEntries go on one long-lived stream per peer (`AppendEntriesStream`), one
//! request and its answer at a time, as the adapter sends them: a unary call costs a
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

use openraft::error::{NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use openraft_legacy::network_v1::{
    Adapter, InstallSnapshotError, InstallSnapshotRequest, InstallSnapshotResponse, RaftNetwork,
};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use waymark_proto::pb;

use super::peers::PeerChannels;
use super::{decode, encode, SnapshotChunk};
use crate::raft_types::{Member, NodeId, SnapshotData, TypeConfig};

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
    /// Our transport speaks openraft's chunked InstallSnapshot (`openraft_legacy`);
    /// the adapter turns a whole snapshot into those chunks.
    type Network = Adapter<TypeConfig, PeerConnection, SnapshotData>;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Self::Network {
        PeerConnection::new(
            self.node_id,
            target,
            node.raft_addr.clone(),
            self.peers.clone(),
        )
        .into_v2()
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

type RpcErr<E = openraft::error::Infallible> = RPCError<TypeConfig, RaftError<TypeConfig, E>>;

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
                // Not sent by us: leadership handoff has its own call (`leader_handoff`).
                RPCTypes::TransferLeader => Err(tonic::Status::unimplemented("TransferLeader")),
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
        let result: Result<Resp, RaftError<TypeConfig, E>> =
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
    ) -> Result<AppendEntriesResponse<TypeConfig>, RpcErr> {
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
    ) -> Result<InstallSnapshotResponse<TypeConfig>, RpcErr<InstallSnapshotError>> {
        let chunk = SnapshotChunk::from(rpc);
        self.call(RPCTypes::InstallSnapshot, &chunk, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RpcErr> {
        self.call(RPCTypes::Vote, &rpc, option.hard_ttl()).await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(short_backoff())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

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
        type E = RpcErr;
        let refused: E = transport_error(tonic::Status::unavailable("connection refused"));
        assert!(matches!(refused, RPCError::Unreachable(_)));
        let broken: E = transport_error(tonic::Status::internal("bad frame"));
        assert!(matches!(broken, RPCError::Network(_)));
        let conn = PeerConnection::new(1, 2, "127.0.0.1:1".into(), PeerChannels::default());
        let slow: E = conn.timed_out(RPCTypes::AppendEntries, Duration::from_millis(100));
        assert!(matches!(slow, RPCError::Timeout(t) if t.target == 2 && t.id == 1));
    }

    /// A peer whose Raft listener answers every AppendEntries with `HigherVote` of the
    /// request's own vote, so each answer names the request it belongs to.
    struct FakePeer {
        /// `false`: `AppendEntriesStream` is `Unimplemented` (an older build).
        streams: bool,
        /// How long the stream holds its first answer.
        first_answer_after: Duration,
        streams_opened: Arc<AtomicUsize>,
        unary_calls: Arc<AtomicUsize>,
    }

    fn echo(request: &pb::RaftPayload) -> Result<pb::RaftPayload, tonic::Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(&request.data)?;
        let answer: Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>> =
            Ok(AppendEntriesResponse::HigherVote(rpc.vote));
        Ok(pb::RaftPayload {
            data: encode(&answer)?,
        })
    }

    fn unimplemented<T>() -> Result<tonic::Response<T>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in this fake"))
    }

    #[tonic::async_trait]
    impl pb::raft_server::Raft for FakePeer {
        async fn append_entries(
            &self,
            req: tonic::Request<pb::RaftPayload>,
        ) -> Result<tonic::Response<pb::RaftPayload>, tonic::Status> {
            self.unary_calls.fetch_add(1, Ordering::SeqCst);
            Ok(tonic::Response::new(echo(req.get_ref())?))
        }

        type AppendEntriesStreamStream = ReceiverStream<Result<pb::RaftPayload, tonic::Status>>;

        async fn append_entries_stream(
            &self,
            req: tonic::Request<Streaming<pb::RaftPayload>>,
        ) -> Result<tonic::Response<Self::AppendEntriesStreamStream>, tonic::Status> {
            if !self.streams {
                return unimplemented();
            }
            self.streams_opened.fetch_add(1, Ordering::SeqCst);
            let first_answer_after = self.first_answer_after;
            let mut requests = req.into_inner();
            let (answers, stream) = mpsc::channel(1);
            tokio::spawn(async move {
                let mut first = true;
                while let Ok(Some(request)) = requests.message().await {
                    if std::mem::take(&mut first) {
                        tokio::time::sleep(first_answer_after).await;
                    }
                    if answers.send(echo(&request)).await.is_err() {
                        return;
                    }
                }
            });
            Ok(tonic::Response::new(ReceiverStream::new(stream)))
        }

        async fn vote(
            &self,
            _: tonic::Request<pb::RaftPayload>,
        ) -> Result<tonic::Response<pb::RaftPayload>, tonic::Status> {
            unimplemented()
        }

        async fn install_snapshot(
            &self,
            _: tonic::Request<pb::RaftPayload>,
        ) -> Result<tonic::Response<pb::RaftPayload>, tonic::Status> {
            unimplemented()
        }

        async fn read_index(
            &self,
            _: tonic::Request<pb::ReadIndexRequest>,
        ) -> Result<tonic::Response<pb::ReadIndexResponse>, tonic::Status> {
            unimplemented()
        }

        type ForwardWritesStream = ReceiverStream<Result<pb::ForwardedResults, tonic::Status>>;

        async fn forward_writes(
            &self,
            _: tonic::Request<Streaming<pb::ForwardedWrites>>,
        ) -> Result<tonic::Response<Self::ForwardWritesStream>, tonic::Status> {
            unimplemented()
        }

        async fn forward_keep_alive(
            &self,
            _: tonic::Request<pb::KeepAliveRequest>,
        ) -> Result<tonic::Response<pb::KeepAliveResponse>, tonic::Status> {
            unimplemented()
        }

        async fn timeout_now(
            &self,
            _: tonic::Request<pb::TimeoutNowRequest>,
        ) -> Result<tonic::Response<pb::TimeoutNowResponse>, tonic::Status> {
            unimplemented()
        }
    }

    /// Serves `peer` on a free loopback port; returns a connection to it.
    async fn connect_to(peer: FakePeer) -> PeerConnection {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(pb::raft_server::RaftServer::new(peer))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        PeerConnection::new(1, 2, addr.to_string(), PeerChannels::default())
    }

    fn entries_at_term(term: u64) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: crate::raft_types::Vote::new(term, 1),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        }
    }

    fn answered_term(answer: AppendEntriesResponse<TypeConfig>) -> u64 {
        match answer {
            AppendEntriesResponse::HigherVote(vote) => vote.leader_id().term,
            other => panic!("the fake peer answers HigherVote, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn append_entries_share_one_stream_and_a_timed_out_call_leaves_no_answer_behind() {
        let streams_opened = Arc::new(AtomicUsize::new(0));
        let unary_calls = Arc::new(AtomicUsize::new(0));
        let mut conn = connect_to(FakePeer {
            streams: true,
            first_answer_after: Duration::from_secs(1),
            streams_opened: streams_opened.clone(),
            unary_calls: unary_calls.clone(),
        })
        .await;
        // The first stream holds its first answer past the call's deadline.
        let short = RPCOption::new(Duration::from_millis(200));
        let slow = conn.append_entries(entries_at_term(1), short).await;
        assert!(matches!(slow, Err(RPCError::Timeout(_))), "{slow:?}");
        // The next call must not read the late answer to term 1: it gets its own, on a
        // new stream whose first answer is also held (1 s), so a longer deadline.
        let long = RPCOption::new(Duration::from_secs(10));
        let answer = conn.append_entries(entries_at_term(2), long.clone()).await;
        assert_eq!(answered_term(answer.unwrap()), 2);
        assert_eq!(streams_opened.load(Ordering::SeqCst), 2);
        // Later calls reuse that stream.
        for term in 3..6 {
            let answer = conn
                .append_entries(entries_at_term(term), long.clone())
                .await;
            assert_eq!(answered_term(answer.unwrap()), term);
        }
        assert_eq!(streams_opened.load(Ordering::SeqCst), 2);
        assert_eq!(unary_calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_peer_without_the_stream_gets_unary_calls() {
        let streams_opened = Arc::new(AtomicUsize::new(0));
        let unary_calls = Arc::new(AtomicUsize::new(0));
        let mut conn = connect_to(FakePeer {
            streams: false,
            first_answer_after: Duration::ZERO,
            streams_opened: streams_opened.clone(),
            unary_calls: unary_calls.clone(),
        })
        .await;
        let option = RPCOption::new(Duration::from_secs(10));
        for term in 1..4 {
            let answer = conn
                .append_entries(entries_at_term(term), option.clone())
                .await;
            assert_eq!(answered_term(answer.unwrap()), term);
        }
        assert_eq!(unary_calls.load(Ordering::SeqCst), 3);
        assert_eq!(streams_opened.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_peer_that_is_not_listening_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let mut conn = PeerConnection::new(1, 2, addr.to_string(), PeerChannels::default());
        let option = RPCOption::new(Duration::from_secs(5));
        let refused = conn.append_entries(entries_at_term(1), option).await;
        assert!(
            matches!(refused, Err(RPCError::Unreachable(_))),
            "{refused:?}"
        );
    }
}
