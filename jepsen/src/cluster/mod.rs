//! A Waymark cluster under test: N real `waymark server` processes, each in its own
//! network namespace, reachable from the host over a bridge. Faults act on it through
//! [`Cluster`]'s methods; clients reach it through [`ApiTargets`].

pub mod netns;
pub mod process;
pub mod secure;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use waymark_client::{Client, ConnectOptions};
use waymark_proto::pb::StatusRequest;

use netns::Network;
use process::{ServerCommand, ServerProcess};
use secure::SecureFiles;

pub const API_PORT: u16 = 8500;
pub const RAFT_PORT: u16 = 8300;
pub const ADMIN_PORT: u16 = 8510;
pub const DNS_PORT: u16 = 8600;
/// The servers' DNS staleness guard (`--dns-max-stale-ms`), below the default 5 s so
/// that faults as short as the smoke's outlast it and the DNS checker can see it act.
pub const DNS_MAX_STALE_MS: u64 = 1000;

/// What cluster to build.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub nodes: u32,
    /// First three octets of the private /24 the namespaces live in.
    pub subnet: String,
    /// The `waymark` binary.
    pub waymark_bin: PathBuf,
    /// Logs and data directories go under `<run_dir>/n<i>/`.
    pub run_dir: PathBuf,
    /// A deliberately unsafe server behaviour, for the harness's positive controls.
    pub unsafe_control: Option<String>,
    /// ACLs on (default deny) and TLS on both ports; see [`secure`].
    pub secure: bool,
}

/// Fails with a clear error when the `waymark` binary is not at `path`.
pub fn require_waymark_bin(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        anyhow::bail!(
            "waymark binary not found at {} (build it with `cargo build -p waymark-registry`, \
             or pass --waymark-bin)",
            path.display()
        );
    }
    Ok(())
}

/// The running cluster. Dropping it kills the servers and removes the network.
pub struct Cluster {
    // Field order matters for drop: servers die before their namespaces go.
    servers: Vec<ServerProcess>,
    network: Network,
    /// Servers found dead that nobody killed: (node, how it exited).
    crashes: Vec<(u32, String)>,
    /// The CA and certificates, in secure mode.
    secure: Option<SecureFiles>,
}

impl Cluster {
    pub fn start(spec: &ClusterSpec) -> anyhow::Result<Self> {
        netns::require_root()?;
        require_waymark_bin(&spec.waymark_bin)?;
        let network = Network::create(&spec.subnet, spec.nodes)?;
        let initial_cluster: Vec<String> = (1..=spec.nodes)
            .map(|n| {
                let ip = network.node_ip(n);
                format!("{n}={ip}:{RAFT_PORT}/{ip}:{API_PORT}")
            })
            .collect();
        let secure = spec
            .secure
            .then(|| SecureFiles::create(&spec.waymark_bin, &spec.run_dir, &network))
            .transpose()?;
        let mut servers = Vec::new();
        for node in 1..=spec.nodes {
            let dir = spec.run_dir.join(format!("n{node}"));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut command = server_command(spec, &network, node, &dir, &initial_cluster);
            if let Some(files) = &secure {
                let data_dir = dir.join("data");
                command.args.push(files.node_config(node, &dir, &data_dir)?);
            }
            servers.push(ServerProcess::start(command)?);
        }
        Ok(Self {
            servers,
            network,
            crashes: Vec::new(),
            secure,
        })
    }

    /// Every node's API address, and how clients connect to it before any ACL token
    /// is known (in secure mode: TLS verified with the cluster's CA).
    pub fn api_targets(&self) -> anyhow::Result<ApiTargets> {
        let tls = self
            .secure
            .as_ref()
            .map(SecureFiles::client_tls)
            .transpose()?;
        Ok(ApiTargets {
            nodes: (1..=self.nodes()).map(|n| (n, self.api_addr(n))).collect(),
            connect: ConnectOptions { tls, ..CONNECT },
        })
    }

    pub fn nodes(&self) -> u32 {
        self.network.nodes()
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Where clients reach `node`'s gRPC API.
    pub fn api_addr(&self, node: u32) -> String {
        format!("{}:{API_PORT}", self.network.node_ip(node))
    }

    pub fn node_ip(&self, node: u32) -> std::net::Ipv4Addr {
        self.network.node_ip(node)
    }

    pub fn server(&mut self, node: u32) -> &mut ServerProcess {
        &mut self.servers[(node - 1) as usize]
    }

    /// Notes every server that died on its own since the last look (a crash, which
    /// the run reports), so that healing can restart it.
    pub fn collect_crashes(&mut self) {
        for (i, s) in self.servers.iter_mut().enumerate() {
            if let Some(status) = s.exited_on_its_own() {
                let log = s.log_path().display().to_string();
                self.crashes
                    .push((i as u32 + 1, format!("exited with {status}; see {log}")));
            }
        }
    }

    /// Waits for servers sent SIGTERM to exit (up to `within` each); one that exits
    /// with an error, or not in time (it is then killed), is noted as a crash.
    pub fn finish_stops(&mut self, within: std::time::Duration) {
        for (i, s) in self.servers.iter_mut().enumerate() {
            if let Some(what) = s.wait_stopped(within) {
                let log = s.log_path().display().to_string();
                self.crashes
                    .push((i as u32 + 1, format!("{what}; see {log}")));
            }
        }
    }

    /// Every crash noted so far.
    pub fn crashes(&self) -> &[(u32, String)] {
        &self.crashes
    }

    /// Kills every server and removes the network. Idempotent; also done on drop.
    pub fn destroy(&mut self) {
        for s in &mut self.servers {
            s.kill();
        }
        self.network.destroy();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.destroy();
    }
}

fn server_command(
    spec: &ClusterSpec,
    network: &Network,
    node: u32,
    dir: &Path,
    initial_cluster: &[String],
) -> ServerCommand {
    let ip = network.node_ip(node);
    let mut args: Vec<String> = vec![
        "server".into(),
        format!("--node-id={node}"),
        format!("--data-dir={}", dir.join("data").display()),
        format!("--api-addr={ip}:{API_PORT}"),
        format!("--raft-addr={ip}:{RAFT_PORT}"),
        format!("--admin-addr={ip}:{ADMIN_PORT}"),
        format!("--dns-addr={ip}:{DNS_PORT}"),
        format!("--dns-max-stale-ms={DNS_MAX_STALE_MS}"),
        format!("--initial-cluster={}", initial_cluster.join(",")),
        // Small snapshots, so runs exercise compaction, InstallSnapshot and the watch
        // resets that come with them rather than only the happy log path.
        "--snapshot-threshold=500".into(),
        "--logs-to-keep=100".into(),
    ];
    let mut env = Vec::new();
    if let Some(control) = &spec.unsafe_control {
        args.push(format!("--unsafe-control={control}"));
        env.push(("WAYMARK_ALLOW_UNSAFE_CONTROLS".into(), "1".into()));
    }
    ServerCommand {
        namespace: network.namespace(node),
        program: spec.waymark_bin.clone(),
        args,
        env,
        log_path: dir.join("server.log"),
    }
}

/// How the harness's clients connect: lazily (`Client::lazy_channel`), with a short
/// connect timeout, so a dead or partitioned node costs a client a timeout rather than
/// a hang. Operations carry their own timeout, so channels have none. Secure runs add
/// the CA and the management token ([`ApiTargets::connect`]).
const CONNECT: ConnectOptions = ConnectOptions {
    connect_timeout: Duration::from_millis(500),
    request_timeout: None,
    token: None,
    tls: None,
};

/// How clients reach the cluster: (node, gRPC address) of every node, and the options
/// every client connects with.
#[derive(Clone, Debug)]
pub struct ApiTargets {
    pub nodes: Vec<(u32, String)>,
    pub connect: ConnectOptions,
}

/// What one node says about the cluster.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    pub node: u32,
    pub term: u64,
    pub leader: Option<u32>,
    pub applied_index: u64,
    pub commit_index: u64,
    pub state_digest: String,
    pub digest_index: u64,
}

/// Asks one node for its Raft status, giving up after `timeout`.
pub async fn status(
    addr: &str,
    node: u32,
    connect: &ConnectOptions,
    timeout: Duration,
) -> Option<NodeStatus> {
    let mut client = waymark_client::cluster(Client::lazy_channel(addr, connect).ok()?);
    let reply = tokio::time::timeout(timeout, client.status(StatusRequest {}))
        .await
        .ok()?
        .ok()?
        .into_inner();
    Some(NodeStatus {
        node,
        term: reply.term,
        leader: reply.leader_id.map(|l| l as u32),
        applied_index: reply.applied_index,
        commit_index: reply.commit_index,
        state_digest: reply.state_digest,
        digest_index: reply.digest_index,
    })
}

/// Statuses of every node that answers.
pub async fn statuses(targets: &ApiTargets, timeout: Duration) -> Vec<NodeStatus> {
    let asks = targets
        .nodes
        .iter()
        .map(|(n, a)| status(a, *n, &targets.connect, timeout));
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The leader as the node with the highest term that answers sees it, if any.
pub async fn leader(targets: &ApiTargets) -> Option<u32> {
    let all = statuses(targets, Duration::from_millis(500)).await;
    all.iter().max_by_key(|s| s.term).and_then(|s| s.leader)
}
