//! Shared helpers for registry tests: an in-process cluster on ephemeral ports,
//! gRPC clients, and waiting on conditions with deadlines.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use waymark_proto::pb;
use waymark_proto::pb::catalog_client::CatalogClient;
use waymark_proto::pb::cluster_client::ClusterClient;
use waymark_registry::config::PeerConfig;
use waymark_registry::node::Node;
use waymark_registry::server::{run_with, Listeners, Stopped};
use waymark_registry::ServerConfig;

pub mod acl;
pub mod dig;
pub mod jwt;
pub mod process;
pub mod watch;

pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, failing the test with `what` at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct TestNode {
    pub id: u64,
    pub config: ServerConfig,
    pub node: Arc<Node>,
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<Stopped>>,
}

impl TestNode {
    pub async fn stop(self) -> Stopped {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap()
    }

    /// How the node's run ended, without asking it to stop (for nodes that stop on
    /// their own); fails the test if that takes longer than `within`.
    pub async fn exited(self, within: Duration) -> anyhow::Result<Stopped> {
        tokio::time::timeout(within, self.handle)
            .await
            .expect("the node did not stop")
            .expect("the node's task panicked")
    }
}

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Option<TestNode>>,
}

/// Binds every listener of a node on an ephemeral port: (listeners, api, raft, admin).
/// The DNS address is `listeners.dns.local_addr()`.
pub async fn bind_listeners() -> (Listeners, String, String, String) {
    let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raft = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dns = waymark_dns::DnsListeners::bind("127.0.0.1:0".parse().unwrap(), 2).unwrap();
    let (a, r, m) = (
        api.local_addr().unwrap().to_string(),
        raft.local_addr().unwrap().to_string(),
        admin.local_addr().unwrap().to_string(),
    );
    (
        Listeners {
            api,
            raft,
            admin,
            dns,
        },
        a,
        r,
        m,
    )
}

/// Binds a node's listeners on the addresses in its config (to restart it where its
/// peers know it), retrying while the old sockets are released.
pub async fn bind_listeners_at(config: &ServerConfig) -> Listeners {
    wait_for("the node's ports to be free again", || async {
        Listeners::bind(config).await.ok()
    })
    .await
}

pub async fn start_node(config: ServerConfig, listeners: Listeners) -> TestNode {
    let shutdown = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let id = config.node_id;
    let handle = tokio::spawn(run_with(config.clone(), listeners, shutdown.clone(), tx));
    let running = rx.await.expect("node failed to start");
    TestNode {
        id,
        config,
        node: running.node,
        shutdown,
        handle,
    }
}

impl TestCluster {
    /// Starts `n` voters on ephemeral ports; `tweak` adjusts each config.
    pub async fn start(n: u64, tweak: impl Fn(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut bound = Vec::new();
        for _ in 0..n {
            bound.push(bind_listeners().await);
        }
        let peers: Vec<PeerConfig> = bound
            .iter()
            .enumerate()
            .map(|(i, (_, api, raft, _))| PeerConfig {
                node_id: i as u64 + 1,
                raft_addr: raft.clone(),
                api_addr: api.clone(),
            })
            .collect();
        let mut nodes = Vec::new();
        for (i, (listeners, api, raft, admin)) in bound.into_iter().enumerate() {
            let id = i as u64 + 1;
            let mut cfg = ServerConfig::new(id, dir.path().join(format!("node-{id}")));
            cfg.dns_addr = listeners.dns.local_addr().unwrap().to_string();
            cfg.api_addr = api;
            cfg.raft_addr = raft;
            cfg.admin_addr = admin;
            cfg.initial_cluster = peers.clone();
            tweak(&mut cfg);
            nodes.push(Some(start_node(cfg, listeners).await));
        }
        TestCluster { dir, nodes }
    }

    pub fn node(&self, id: u64) -> &TestNode {
        self.nodes[id as usize - 1]
            .as_ref()
            .expect("node is stopped")
    }

    pub fn running_ids(&self) -> Vec<u64> {
        self.nodes.iter().flatten().map(|n| n.id).collect()
    }

    /// A running node other than `leader`.
    pub fn follower_of(&self, leader: u64) -> u64 {
        self.running_ids()
            .into_iter()
            .find(|id| *id != leader)
            .expect("a running follower")
    }

    /// Waits until every running node agrees on one leader, and that leader has
    /// applied the cluster's bootstrap entry (the mesh CA's first root, which a new
    /// leader proposes on its own: a test that compares indexes must start after it).
    /// Returns the leader.
    pub async fn wait_for_leader(&self) -> u64 {
        wait_for("an agreed leader with the CA root applied", || async {
            let leaders: Vec<Option<u64>> = self
                .nodes
                .iter()
                .flatten()
                .map(|n| n.node.view().leader.map(|(id, _)| id))
                .collect();
            let first = leaders.first().copied().flatten()?;
            let leader_running = self.running_ids().contains(&first);
            let agreed = leader_running && leaders.iter().all(|l| *l == Some(first));
            let bootstrapped = agreed
                && self
                    .node(first)
                    .node
                    .catalog
                    .read()
                    .expect("catalog lock")
                    .active_root()
                    .is_some();
            bootstrapped.then_some(first)
        })
        .await
    }

    /// Stops a node and returns how its shutdown went.
    pub async fn stop(&mut self, id: u64) -> Stopped {
        let n = self.nodes[id as usize - 1]
            .take()
            .expect("node already stopped");
        n.stop().await
    }

    /// Starts a stopped node again on its data dir and its addresses.
    pub async fn restart(&mut self, id: u64, config: ServerConfig) {
        let listeners = bind_listeners_at(&config).await;
        self.nodes[id as usize - 1] = Some(start_node(config, listeners).await);
    }

    pub async fn catalog(&self, id: u64) -> CatalogClient<Channel> {
        catalog_client(&self.node(id).config.api_addr).await
    }

    pub async fn cluster(&self, id: u64) -> ClusterClient<Channel> {
        cluster_client(&self.node(id).config.api_addr).await
    }

    pub async fn shutdown(mut self) {
        for id in self.running_ids() {
            self.stop(id).await;
        }
    }
}

pub async fn channel(addr: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy()
}

/// Sends one hand-made forwarded write to a node's Raft port as a follower would (on
/// a `ForwardWrites` stream; `command_json` is the command as JSON, sent in the log's
/// binary encoding) and returns the answer: the encoded (index, result), or the
/// status the write was refused with (the call's own status if the stream failed).
pub async fn forward_one(
    raft: &mut pb::raft_client::RaftClient<Channel>,
    command_json: &str,
) -> Result<Vec<u8>, tonic::Status> {
    use pb::forwarded_result::Outcome;
    let value: serde_json::Value = serde_json::from_str(command_json).expect("a JSON command");
    let command = waymark_registry::codec::to_vec(&value).unwrap();
    let writes = pb::ForwardedWrites {
        writes: vec![pb::ForwardedWrite { seq: 1, command }],
    };
    let mut answers = raft
        .forward_writes(tokio_stream::once(writes))
        .await?
        .into_inner();
    let results = answers
        .message()
        .await?
        .ok_or_else(|| tonic::Status::unavailable("the stream ended without an answer"))?;
    assert_eq!(results.results.len(), 1, "{results:?}");
    assert_eq!(results.results[0].seq, 1);
    match results.results[0].outcome.clone() {
        Some(Outcome::Written(bytes)) => Ok(bytes),
        Some(Outcome::Error(e)) => Err(tonic::Status::with_details(
            tonic::Code::from_i32(e.code),
            e.message,
            e.details.into(),
        )),
        None => panic!("an answer without an outcome"),
    }
}

pub async fn catalog_client(addr: &str) -> CatalogClient<Channel> {
    CatalogClient::new(channel(addr).await).max_decoding_message_size(64 << 20)
}

pub async fn cluster_client(addr: &str) -> ClusterClient<Channel> {
    ClusterClient::new(channel(addr).await)
}

pub fn registration(service: &str, id: &str, port: u32) -> pb::RegisterRequest {
    pb::RegisterRequest {
        service: service.into(),
        id: id.into(),
        address: "10.1.0.7".into(),
        port,
        tags: vec!["v1".into()],
        meta: [("zone".to_string(), "a".to_string())].into(),
        ..Default::default()
    }
}

/// `msg` carrying the ACL token `secret` as `authorization: Bearer`.
pub fn authed<T>(msg: T, secret: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {secret}").parse().unwrap());
    req
}

pub fn consistent() -> Option<pb::ReadOptions> {
    Some(pb::ReadOptions {
        consistency: pb::Consistency::Consistent as i32,
        max_stale_ms: 0,
    })
}

pub fn stale(max_stale_ms: u64) -> Option<pb::ReadOptions> {
    Some(pb::ReadOptions {
        consistency: pb::Consistency::Stale as i32,
        max_stale_ms,
    })
}

pub async fn list_ids(
    client: &mut CatalogClient<Channel>,
    service: &str,
    read: Option<pb::ReadOptions>,
) -> Result<(Vec<String>, pb::ResponseMeta), tonic::Status> {
    let resp = client
        .list_instances(pb::ListInstancesRequest {
            service: service.into(),
            read,
            passing_only: false,
        })
        .await?
        .into_inner();
    Ok((
        resp.instances.into_iter().map(|i| i.id).collect(),
        resp.meta.unwrap(),
    ))
}
