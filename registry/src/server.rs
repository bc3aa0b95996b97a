//! Wires a node together and runs it: opens RocksDB, starts Raft, serves the Raft
//! transport, the client API and the admin endpoint on their own listeners, joins the
//! initial cluster, and shuts down in order (drain servers, stop Raft, flush RocksDB).

use openraft::async_runtime::WatchReceiver;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::{FutureExt, StreamExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_layer::{Identity, Stack};
use tracing::Instrument;
use waymark_proto::pb;

use crate::api::acl_service::AclService;
use crate::api::catalog_service::CatalogService;
use crate::api::cluster_service::ClusterService;
use crate::api::config_service::ConfigService;
use crate::api::identity_service::IdentityService;
use crate::api::intention_service::IntentionService;
use crate::api::lease_service::LeaseService;
use crate::api::rate_limit::RateLimitLayer;
use crate::api::{standard, Tasks};
use crate::audit::AuditLog;
use crate::config::{LogFormat, ServerConfig};
use crate::dns_view::DnsCatalogView;
use crate::frame_coalescing::CoalescingIo;
use crate::leader_handoff::{self, HandoffOutcome};
use crate::metrics::Metrics;
use crate::network::peers::PeerChannels;
use crate::network::raft_client::NetworkFactory;
use crate::network::raft_service::RaftService;
use crate::node::Node;
use crate::raft_runtime::RaftRuntime;
use crate::raft_types::Raft;
use crate::store::snapshot_file::SnapshotDir;
use crate::store::{open_db, snapshot_dir, LogStore, StateMachineStore};
use crate::tls::incoming::{Port, TlsIncoming};
use crate::tls::NodeTls;
use crate::unsafe_control::{self, UnsafeControl};

/// How long in-flight requests get to finish at shutdown.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// Pre-bound listeners, so tests can bind port 0 and learn the addresses first.
pub struct Listeners {
    pub api: TcpListener,
    pub raft: TcpListener,
    pub admin: TcpListener,
    pub dns: waymark_dns::DnsListeners,
}

impl Listeners {
    /// Binds the addresses in `config`.
    pub async fn bind(config: &ServerConfig) -> anyhow::Result<Self> {
        let bind = |addr: String, what: &'static str| async move {
            TcpListener::bind(&addr)
                .await
                .with_context(|| format!("binding the {what} listener on {addr}"))
        };
        Ok(Self {
            api: bind(config.api_addr.clone(), "gRPC API").await?,
            raft: bind(config.raft_addr.clone(), "Raft").await?,
            admin: bind(config.admin_addr.clone(), "admin HTTP").await?,
            dns: waymark_dns::DnsListeners::bind(
                config
                    .dns_addr
                    .parse()
                    .with_context(|| format!("parsing dns_addr {:?}", config.dns_addr))?,
                config.dns.udp_socket_count(),
            )
            .with_context(|| format!("binding the DNS listeners on {}", config.dns_addr))?,
        })
    }
}

/// Requests a peer may cancel before this node has accepted them, per connection,
/// before h2 closes the connection (GOAWAY `too_many_resets`). h2's default of 20
/// guards public servers against the "rapid reset" attack; on the Raft port it turned
/// a pause into an outage: a paused node's peers keep sending heartbeats that time out
/// and are cancelled, the resumed node reads them all at once, and closing the
/// connection then broke the peer's AppendEntries and forwarding streams too (seen in
/// the Jepsen campaign's logs; `tests/raft_port_resets.rs`). Peers are cluster
/// members (mutually authenticated under `[tls]`); the bound stays, far above what a
/// pause of several seconds piles up.
const RAFT_PENDING_ACCEPT_RESETS: usize = 10_000;

/// Serves `router` on `listener` until `stop`: over TLS when an acceptor is given,
/// else plaintext. Connections get TCP_NODELAY either way: small gRPC frames (Raft
/// heartbeats, acks, responses) must not wait for Nagle / delayed ACK (~40 ms per
/// round trip otherwise). Either way h2 packs small frames into shared writes
/// (`frame_coalescing`).
async fn serve_grpc(
    router: tonic::transport::server::Router<Stack<RateLimitLayer, Identity>>,
    listener: TcpListener,
    port: Port,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    match tls {
        Some(acceptor) => {
            let incoming = TlsIncoming::new(listener, acceptor, port, metrics.clone())
                .map(move |accepted| accepted.map(|c| CoalescingIo::new(c, metrics.clone(), port)));
            router
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
        }
        None => {
            let incoming = tonic::transport::server::TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .map(move |accepted| accepted.map(|c| CoalescingIo::new(c, metrics.clone(), port)));
            router
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
        }
    }
}

/// Validates the config, binds its addresses and runs until SIGINT or SIGTERM.
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    config.validate()?;
    let listeners = Listeners::bind(&config).await?;
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received");
        on_signal.cancel();
    });
    run(config, listeners, shutdown).await.map(|_| ())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            // Without signal handlers the process still stops on the default action.
            std::future::pending::<()>().await;
        }
    }
}

/// The configured snapshot threshold plus a per-node share of up to 18 % of it, so the
/// members of a cluster (which apply the same entries at about the same time) do not
/// all build a snapshot at once. `7 * id mod 10` differs for any ten consecutive ids.
fn snapshot_threshold(config: &ServerConfig) -> u64 {
    let base = config.snapshot_threshold;
    base + base / 50 * ((config.node_id * 7) % 10)
}

/// Log entries per AppendEntries (see `raft_config`).
const MAX_PAYLOAD_ENTRIES: u64 = 16;

fn raft_config(config: &ServerConfig) -> anyhow::Result<openraft::Config> {
    let raft_config = openraft::Config {
        cluster_name: "waymark".into(),
        heartbeat_interval: config.heartbeat_interval_ms,
        election_timeout_min: config.election_timeout_min_ms,
        election_timeout_max: config.election_timeout_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_threshold(config)),
        max_in_snapshot_log_to_keep: config.logs_to_keep,
        install_snapshot_timeout: config.install_snapshot_timeout_ms,
        snapshot_max_chunk_size: config.snapshot_chunk_bytes,
        // Entries may be group-commit batches of up to `proposer::MAX_BATCH` writes:
        // keep one AppendEntries near a megabyte so it finishes well within its
        // deadline (one heartbeat interval).
        max_payload_entries: MAX_PAYLOAD_ENTRIES,
        // `AddMember` promotes a learner once it is this close to the leader's log.
        // openraft's default, 5,000 entries, is up to 640,000 batched writes: an
        // empty node was made a voter before it had received anything.
        replication_lag_threshold: MAX_PAYLOAD_ENTRIES,
        ..Default::default()
    };
    raft_config
        .validate()
        .context("validating the Raft configuration")
}

/// A started node, as tests see it.
pub struct RunningNode {
    pub node: Arc<Node>,
}

/// How a node's shutdown went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// Servers and per-request tasks (watch and keep-alive streams, leader proposals)
    /// all finished before the drain deadline; false if some had to be aborted.
    pub drained: bool,
    /// Whether this node, leading when asked to stop, handed leadership on first
    /// (`None`: handoff off, or the node stopped on a failure).
    pub handoff: Option<HandoffOutcome>,
}

/// Runs a node on the given listeners until `shutdown` is cancelled.
pub async fn run(
    config: ServerConfig,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<Stopped> {
    let span = tracing::info_span!("node", node_id = config.node_id);
    run_inner(config, listeners, shutdown, None)
        .instrument(span)
        .await
}

/// Like [`run`], but hands the started node to `started` (for in-process tests).
pub async fn run_with(
    config: ServerConfig,
    listeners: Listeners,
    shutdown: CancellationToken,
    started: tokio::sync::oneshot::Sender<RunningNode>,
) -> anyhow::Result<Stopped> {
    let span = tracing::info_span!("node", node_id = config.node_id);
    run_inner(config, listeners, shutdown, Some(started))
        .instrument(span)
        .await
}

async fn run_inner(
    config: ServerConfig,
    listeners: Listeners,
    shutdown: CancellationToken,
    started: Option<tokio::sync::oneshot::Sender<RunningNode>>,
) -> anyhow::Result<Stopped> {
    config.validate()?;
    let raft_runtime = RaftRuntime::start()?;
    let on_raft = raft_runtime.handle().clone();
    let tls = config.tls.as_ref().map(NodeTls::load).transpose()?;
    let metrics = Arc::new(Metrics::default());
    let db = open_db(&config.data_dir)?;
    let log_store = LogStore::new(db.clone(), metrics.clone());
    let committed = log_store.committed_index();
    let state_machine = StateMachineStore::open(
        db.clone(),
        SnapshotDir::new(snapshot_dir(&config.data_dir)),
        metrics.clone(),
        config.watch_history,
        config.watch_queue,
    )
    .context("opening the state machine")?;
    let state_machine = if config.unsafe_control == Some(UnsafeControl::ReplicaDiverge)
        && config.node_id == unsafe_control::DIVERGING_NODE
    {
        state_machine.diverging()
    } else {
        state_machine
    };
    // A handle sharing the state machine's read views, kept after Raft takes the store.
    let views = state_machine.clone();
    let peers = PeerChannels::new(
        tls.as_ref().map(|t| t.peer_client.clone()),
        Some(on_raft.clone()),
    );
    let network = NetworkFactory {
        node_id: config.node_id,
        peers: peers.clone(),
    };
    // Before Raft starts, so a bad [audit] path fails the start cleanly.
    let audit = AuditLog::open(&config.audit, config.node_id)?;
    // Raft's core, replication and apply tasks are spawned by `Raft::new` where it
    // runs: on the Raft runtime.
    let raft = on_raft
        .spawn(Raft::new(
            config.node_id,
            Arc::new(raft_config(&config)?),
            network,
            log_store,
            state_machine,
        ))
        .await
        .context("starting Raft")?
        .context("starting Raft")?;
    // The node's write proposer is a task it starts: on the Raft runtime too.
    let node = {
        let _on_raft = on_raft.enter();
        Arc::new(
            Node::new(
                config.node_id,
                raft.clone(),
                &views,
                metrics,
                peers,
                committed,
                config.request_timeout(),
            )
            .with_unsafe_control(config.unsafe_control)
            .with_acl(config.acl.clone())
            .with_audit(audit)
            .with_limits(config.limits.clone())
            .with_mesh(config.mesh.clone()),
        )
    };
    if !config.acl.enabled {
        tracing::warn!(
            "ACLs are off: anyone who can reach the client API can change the catalog. \
             Set [acl] enabled = true (default_policy = \"deny\") in production."
        );
    }
    if let Some(control) = config.unsafe_control {
        tracing::warn!(
            unsafe_control = control.name(),
            "UNSAFE CONTROL ACTIVE: {}. This node deliberately breaks Waymark's guarantees \
             and exists only as a positive control for the Jepsen harness; never run it \
             with real data.",
            control.breaks()
        );
    }

    // Not a child of `shutdown`: the servers keep serving through a leadership handoff
    // after the stop is asked for, and are cancelled explicitly below.
    let servers = CancellationToken::new();
    // Subsystems (servers, loops) in a JoinSet; per-request tasks on the tracker.
    let mut tasks = JoinSet::new();
    let requests = Tasks {
        tracker: TaskTracker::new(),
        shutdown: servers.clone(),
    };
    let (health, health_service) = standard::health().await;
    let (reflection_v1, reflection_v1alpha) = standard::reflection()?;
    let raft_addr = listeners.raft.local_addr()?;
    let api_addr = listeners.api.local_addr()?;
    let admin_addr = listeners.admin.local_addr()?;
    let raft_router = tonic::transport::Server::builder()
        .http2_max_pending_accept_reset_streams(Some(RAFT_PENDING_ACCEPT_RESETS))
        .layer(RateLimitLayer::off())
        .add_service(
            pb::raft_server::RaftServer::new(RaftService::new(node.clone(), servers.clone()))
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        );
    let raft_transport = on_raft.spawn(
        serve_grpc(
            raft_router,
            listeners.raft,
            Port::Raft,
            tls.as_ref().map(|t| t.raft.clone()),
            node.metrics.clone(),
            servers.clone(),
        )
        .map(|r| r.context("serving the Raft transport"))
        .instrument(tracing::info_span!("raft_transport", %raft_addr)),
    );
    tasks.spawn(async move {
        raft_transport
            .await
            .context("the Raft transport task failed")?
    });
    // Every client API service decodes at most `[limits] max_request_bytes`.
    let max_request = config.limits.max_request_bytes;
    let api_router = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(config.limits.max_concurrent_streams))
        .layer(RateLimitLayer::new(node.clone()))
        .add_service(
            pb::catalog_server::CatalogServer::new(CatalogService::new(
                node.clone(),
                requests.clone(),
            ))
            .max_decoding_message_size(max_request),
        )
        .add_service(
            pb::config_server::ConfigServer::new(ConfigService::new(node.clone()))
                .max_decoding_message_size(max_request),
        )
        .add_service(
            pb::leases_server::LeasesServer::new(LeaseService::new(node.clone(), requests.clone()))
                .max_decoding_message_size(max_request),
        )
        .add_service(
            pb::cluster_server::ClusterServer::new(ClusterService::new(node.clone()))
                .max_decoding_message_size(max_request),
        )
        .add_service(
            pb::acl_server::AclServer::new(AclService::new(node.clone()))
                .max_decoding_message_size(max_request),
        )
        .add_service(
            pb::identity_server::IdentityServer::new(IdentityService::new(node.clone()))
                .max_decoding_message_size(max_request),
        )
        .add_service(
            pb::intentions_server::IntentionsServer::new(IntentionService::new(node.clone()))
                .max_decoding_message_size(max_request),
        )
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    tasks.spawn(
        serve_grpc(
            api_router,
            listeners.api,
            Port::Api,
            tls.as_ref().map(|t| t.api.clone()),
            node.metrics.clone(),
            servers.clone(),
        )
        .map(|r| r.context("serving the gRPC API"))
        .instrument(tracing::info_span!("grpc_api", %api_addr, tls = tls.is_some())),
    );
    let admin = crate::admin::router(node.clone());
    let admin_shutdown = servers.clone();
    tasks.spawn(
        async move {
            axum::serve(listeners.admin, admin)
                .with_graceful_shutdown(admin_shutdown.cancelled_owned())
                .await
                .context("serving the admin endpoint")
        }
        .instrument(tracing::info_span!("admin_http", %admin_addr)),
    );
    let dns_addr = listeners.dns.local_addr()?;
    let dns_view = Arc::new(DnsCatalogView::new(node.clone()));
    tasks.spawn(
        waymark_dns::serve(
            config.dns.clone(),
            listeners.dns,
            dns_view,
            node.metrics.dns.clone(),
            servers.clone(),
        )
        .map(|r| r.context("serving DNS"))
        .instrument(tracing::info_span!("dns", %dns_addr)),
    );
    tasks.spawn(
        crate::leader_loop::run(node.clone(), requests.tracker.clone(), servers.clone())
            .map(Ok)
            .instrument(tracing::info_span!("leader_timers")),
    );
    tasks.spawn(
        crate::acl::jwks::run(node.clone(), servers.clone())
            .map(Ok)
            .instrument(tracing::info_span!("jwks_refresh")),
    );
    tasks.spawn(
        supervise_raft_core(raft.clone(), servers.clone())
            .instrument(tracing::info_span!("raft_core")),
    );
    tasks.spawn(
        standard::follow_readiness(node.clone(), health, servers.clone())
            .map(Ok)
            .instrument(tracing::info_span!("grpc_health")),
    );
    tracing::info!(%api_addr, %raft_addr, %admin_addr, %dns_addr, data_dir = %config.data_dir.display(), "node started");

    if !config.initial_cluster.is_empty() && !raft.is_initialized().await? {
        let voters = config.initial_members();
        node.initialize(voters)
            .await
            .context("initializing the cluster")?;
        tracing::info!("initialized cluster membership");
    }
    if let Some(started) = started {
        let _ = started.send(RunningNode { node: node.clone() });
    }

    // Run until asked to stop, or until a server fails.
    let failure = tokio::select! {
        // Shutdown first: it also ends every task, which must not read as a failure.
        biased;
        _ = shutdown.cancelled() => None,
        Some(res) = tasks.join_next() => Some(res),
    };
    // A leader asked to stop hands over first, while it still serves: writes that
    // arrive meanwhile wait, then go to the new leader.
    let handoff = match (&failure, config.leader_handoff()) {
        (None, Some(limit)) => {
            let lease = Duration::from_millis(config.election_timeout_max_ms);
            let outcome = leader_handoff::hand_off(&node, limit, lease).await;
            match &outcome {
                HandoffOutcome::NotLeader | HandoffOutcome::OnlyVoter => {}
                HandoffOutcome::HandedOff { to, term } => {
                    tracing::info!(to, term, "handed leadership over before stopping")
                }
                HandoffOutcome::GaveUp { reason } => {
                    tracing::warn!(%reason, "could not hand leadership over; stopping anyway")
                }
            }
            Some(outcome)
        }
        _ => None,
    };
    servers.cancel();
    node.hub.stop_watches();
    requests.tracker.close();
    let drained = tokio::time::timeout(DRAIN_DEADLINE, async {
        while tasks.join_next().await.is_some() {}
        requests.tracker.wait().await;
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!(
            open_requests = requests.tracker.len(),
            "servers did not drain within {DRAIN_DEADLINE:?}; aborting them"
        );
        tasks.shutdown().await;
    }
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "stopping Raft");
    }
    drop(node);
    drop(raft_runtime);
    db.flush_wal(true).context("flushing the RocksDB WAL")?;
    tracing::info!(drained, "node stopped");
    match failure {
        Some(Ok(Err(e))) => Err(e).context("a server stopped unexpectedly"),
        Some(Err(e)) => Err(e).context("a server task panicked"),
        // Every subsystem runs until shutdown; one that returned before it is a bug,
        // and a process that carried on without it would only look healthy.
        Some(Ok(Ok(()))) if !shutdown.is_cancelled() => {
            anyhow::bail!("a server task ended before shutdown")
        }
        _ => Ok(Stopped { drained, handoff }),
    }
}

/// Runs until `shutdown`, or fails with openraft's own error if its core stops first.
/// A stopped core (a storage error, or an internal one: openraft 0.9 stopped a deposed
/// leader whose replication stream has already ended when it is asked to send that
/// follower a snapshot) cannot be restarted in-process; the node must exit non-zero
/// so its supervisor restarts it from disk, rather than serve on without Raft.
async fn supervise_raft_core(raft: Raft, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Server metrics: they close with the core like the full ones, but do not wake
    // this task on every write.
    let mut metrics = raft.server_metrics();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            changed = metrics.changed() => if changed.is_err() { break },
        }
    }
    // Any call now returns the error the core stopped with.
    let cause = match raft.is_initialized().await {
        Err(fatal) => fatal.to_string(),
        Ok(_) => "it reported no error".to_string(),
    };
    tracing::error!(%cause, "the Raft core stopped; stopping the node");
    anyhow::bail!("the Raft core stopped: {cause}")
}

/// Installs the tracing subscriber for a binary (text or JSON, to stderr).
/// `RUST_LOG` overrides the default `info` level.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,openraft=warn,hickory_server=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_snapshot_at_different_points() {
        let thresholds: std::collections::BTreeSet<u64> = (1..=5)
            .map(|id| snapshot_threshold(&ServerConfig::new(id, "/tmp/x")))
            .collect();
        assert_eq!(thresholds.len(), 5, "{thresholds:?}");
        for t in thresholds {
            assert!((10_000..=11_800).contains(&t), "{t}");
        }
    }

    #[test]
    fn raft_gets_the_configured_install_snapshot_timeout() {
        // openraft's own default (200 ms) is too short for a follower to install a
        // snapshot of a few thousand instances; lagging followers then retried forever.
        let mut config = ServerConfig::new(1, "/tmp/x");
        assert_eq!(
            raft_config(&config).unwrap().install_snapshot_timeout(),
            Duration::from_secs(10)
        );
        config.install_snapshot_timeout_ms = 30_000;
        assert_eq!(
            raft_config(&config).unwrap().install_snapshot_timeout(),
            Duration::from_secs(30)
        );
    }
}
