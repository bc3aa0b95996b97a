//! Server configuration in stages: a TOML file and/or flags (`ServerArgs`) merge into
//! a serde `ServerConfig` that rejects unknown fields, then `validate()` checks every
//! value before any port is bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::raft_types::{Member, NodeId};
use crate::unsafe_control::{self, UnsafeControl};

/// One voter of the initial cluster, as given by `--initial-cluster` or the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub node_id: u64,
    /// Raft transport address the other nodes dial.
    pub raft_addr: String,
    /// Client gRPC API address (reported to clients as the leader's address).
    pub api_addr: String,
}

impl PeerConfig {
    /// Parses `ID=RAFT_ADDR/API_ADDR`, e.g. `1=127.0.0.1:8300/127.0.0.1:8500`.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let err = || {
            format!("invalid --initial-cluster entry {s:?}: expected ID=RAFT_ADDR/API_ADDR, e.g. 1=127.0.0.1:8300/127.0.0.1:8500")
        };
        let (id, addrs) = s.split_once('=').with_context(err)?;
        let (raft, api) = addrs.split_once('/').with_context(err)?;
        let node_id = id.trim().parse().with_context(err)?;
        Ok(Self {
            node_id,
            raft_addr: raft.trim().to_string(),
            api_addr: api.trim().to_string(),
        })
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn default_api_addr() -> String {
    "127.0.0.1:8500".into()
}
fn default_raft_addr() -> String {
    "127.0.0.1:8300".into()
}
fn default_admin_addr() -> String {
    "127.0.0.1:8501".into()
}
fn default_dns_addr() -> String {
    "127.0.0.1:8600".into()
}
fn default_heartbeat_ms() -> u64 {
    100
}
fn default_election_timeout_min_ms() -> u64 {
    300
}
fn default_election_timeout_max_ms() -> u64 {
    600
}
fn default_leader_handoff_ms() -> u64 {
    3_000
}
fn default_snapshot_threshold() -> u64 {
    10_000
}
fn default_logs_to_keep() -> u64 {
    10_000
}
fn default_read_timeout_ms() -> u64 {
    5_000
}
fn default_install_snapshot_timeout_ms() -> u64 {
    10_000
}
fn default_snapshot_chunk_bytes() -> u64 {
    3 << 20
}
/// The smallest InstallSnapshot chunk accepted: smaller ones only add round trips.
const MIN_SNAPSHOT_CHUNK_BYTES: u64 = 1024;
fn default_watch_history() -> usize {
    crate::watch::hub::DEFAULT_HISTORY_LIMIT
}
fn default_watch_queue() -> usize {
    crate::watch::hub::DEFAULT_WATCHER_QUEUE
}

/// Everything a `waymark server` needs. Field names are the TOML keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Unique, non-zero id of this node.
    pub node_id: u64,
    /// Where RocksDB keeps the Raft log, vote, state machine and snapshots.
    pub data_dir: PathBuf,
    /// Client gRPC API listen address (default 127.0.0.1:8500).
    #[serde(default = "default_api_addr")]
    pub api_addr: String,
    /// Raft transport listen address (default 127.0.0.1:8300).
    #[serde(default = "default_raft_addr")]
    pub raft_addr: String,
    /// Admin HTTP listen address: /metrics, /healthz, /readyz (default 127.0.0.1:8501).
    #[serde(default = "default_admin_addr")]
    pub admin_addr: String,
    /// DNS listen address, UDP and TCP (default 127.0.0.1:8600).
    #[serde(default = "default_dns_addr")]
    pub dns_addr: String,
    /// DNS settings (`[dns]` table): domain, TTLs, max_stale_ms, admit_warning, udp_sockets.
    #[serde(default)]
    pub dns: waymark_dns::DnsConfig,
    /// Access control (`[acl]` table): enabled, default_policy, dns_token, and the
    /// JWKS fetch timings (`jwks_refresh_interval_ms` and its kin).
    #[serde(default)]
    pub acl: crate::acl::AclConfig,
    /// Audit trail of writes (`[audit]` table): path.
    #[serde(default)]
    pub audit: crate::audit::AuditConfig,
    /// TLS (`[tls]` table): ca_file, cert_file, key_file. Present: TLS on the client
    /// API and mutual TLS on the Raft port. Absent: both plaintext.
    #[serde(default)]
    pub tls: Option<crate::tls::TlsConfig>,
    /// Per-caller limits on the client API (`[limits]` table).
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
    /// Mesh identity (`[mesh]` table): trust_domain, leaf_ttl_ms, sign limits.
    #[serde(default)]
    pub mesh: crate::identity::MeshConfig,
    /// API address other nodes and clients should use; defaults to `api_addr`.
    #[serde(default)]
    pub advertise_api_addr: Option<String>,
    /// Raft address other nodes should dial; defaults to `raft_addr`.
    #[serde(default)]
    pub advertise_raft_addr: Option<String>,
    /// Voters of a new cluster. Empty: this node waits to be added with AddMember.
    /// Ignored once the node's data dir holds Raft state.
    #[serde(default)]
    pub initial_cluster: Vec<PeerConfig>,
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_interval_ms: u64,
    #[serde(default = "default_election_timeout_min_ms")]
    pub election_timeout_min_ms: u64,
    #[serde(default = "default_election_timeout_max_ms")]
    pub election_timeout_max_ms: u64,
    /// How long a leader asked to stop may spend handing leadership to an up-to-date
    /// follower first (so a planned restart costs no election timeout); 0: stop
    /// without handing off.
    #[serde(default = "default_leader_handoff_ms")]
    pub leader_handoff_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    #[serde(default = "default_snapshot_threshold")]
    pub snapshot_threshold: u64,
    /// Log entries kept behind the latest snapshot before purging (lets slightly
    /// lagging followers catch up from the log instead of a snapshot).
    #[serde(default = "default_logs_to_keep")]
    pub logs_to_keep: u64,
    /// Upper bound on how long a consistent read or a write may wait.
    #[serde(default = "default_read_timeout_ms")]
    pub request_timeout_ms: u64,
    /// How long the leader waits for a follower to receive and install a snapshot.
    /// It covers the whole install (decode, write, rebuild), which grows with the
    /// catalog: openraft's 200 ms default made a lagging follower retry forever.
    #[serde(default = "default_install_snapshot_timeout_ms")]
    pub install_snapshot_timeout_ms: u64,
    /// Bytes of a snapshot sent per InstallSnapshot message. The receiver writes each
    /// chunk to a file as it arrives, so this (not the snapshot) bounds the memory a
    /// transfer holds.
    #[serde(default = "default_snapshot_chunk_bytes")]
    pub snapshot_chunk_bytes: u64,
    #[serde(default)]
    pub log_format: LogFormat,
    /// Changes kept for resuming watches (in whole indexes); older resumes get a Reset.
    #[serde(default = "default_watch_history")]
    pub watch_history: usize,
    /// Events a watcher may fall behind before it gets a Reset + Snapshot.
    #[serde(default = "default_watch_queue")]
    pub watch_queue: usize,
    /// A deliberately unsafe behaviour for the Jepsen harness's positive controls
    /// (`stale-reads`, `early-ack`, `watch-skip`, `stale-bound`, `dns-guard-off`,
    /// `lease-early`, `replica-diverge`; see `unsafe_control.rs`). Refused
    /// unless WAYMARK_ALLOW_UNSAFE_CONTROLS=1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsafe_control: Option<UnsafeControl>,
}

impl ServerConfig {
    /// `initial_cluster` as Raft membership: node id → where to reach it.
    pub fn initial_members(&self) -> std::collections::BTreeMap<NodeId, Member> {
        self.initial_cluster
            .iter()
            .map(|p| {
                (
                    p.node_id,
                    Member {
                        api_addr: p.api_addr.clone(),
                        raft_addr: p.raft_addr.clone(),
                    },
                )
            })
            .collect()
    }

    /// A config with every default, for tests and `waymark dev`.
    pub fn new(node_id: u64, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            node_id,
            data_dir: data_dir.into(),
            api_addr: default_api_addr(),
            raft_addr: default_raft_addr(),
            admin_addr: default_admin_addr(),
            dns_addr: default_dns_addr(),
            dns: waymark_dns::DnsConfig::default(),
            acl: crate::acl::AclConfig::default(),
            audit: crate::audit::AuditConfig::default(),
            tls: None,
            limits: crate::limits::LimitsConfig::default(),
            mesh: crate::identity::MeshConfig::default(),
            advertise_api_addr: None,
            advertise_raft_addr: None,
            initial_cluster: Vec::new(),
            heartbeat_interval_ms: default_heartbeat_ms(),
            election_timeout_min_ms: default_election_timeout_min_ms(),
            election_timeout_max_ms: default_election_timeout_max_ms(),
            leader_handoff_ms: default_leader_handoff_ms(),
            snapshot_threshold: default_snapshot_threshold(),
            logs_to_keep: default_logs_to_keep(),
            request_timeout_ms: default_read_timeout_ms(),
            install_snapshot_timeout_ms: default_install_snapshot_timeout_ms(),
            snapshot_chunk_bytes: default_snapshot_chunk_bytes(),
            log_format: LogFormat::Text,
            watch_history: default_watch_history(),
            watch_queue: default_watch_queue(),
            unsafe_control: None,
        }
    }

    /// Reads a TOML file; unknown keys are rejected with their name.
    pub fn from_toml_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::from_toml_str(&text)
            .with_context(|| format!("parsing config file {}", path.display()))
    }

    pub fn from_toml_str(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// The API address peers and clients are told to use.
    pub fn advertised_api_addr(&self) -> &str {
        self.advertise_api_addr.as_deref().unwrap_or(&self.api_addr)
    }

    /// The Raft address peers are told to dial.
    pub fn advertised_raft_addr(&self) -> &str {
        self.advertise_raft_addr
            .as_deref()
            .unwrap_or(&self.raft_addr)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The time a stopping leader may spend handing off leadership; `None`: off.
    pub fn leader_handoff(&self) -> Option<Duration> {
        (self.leader_handoff_ms > 0).then(|| Duration::from_millis(self.leader_handoff_ms))
    }

    /// Checks every value; errors name the field and the rule.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.node_id == 0 {
            bail!("invalid node_id: must be a positive integer (got 0)");
        }
        if self.data_dir.as_os_str().is_empty() {
            bail!("invalid data_dir: must not be empty");
        }
        for (field, value) in [
            ("api_addr", &self.api_addr),
            ("raft_addr", &self.raft_addr),
            ("admin_addr", &self.admin_addr),
            ("dns_addr", &self.dns_addr),
        ] {
            value
                .parse::<SocketAddr>()
                .map_err(|_| anyhow::anyhow!("invalid {field}: must be IP:PORT (got {value:?})"))?;
        }
        for (field, value) in [
            ("advertise_api_addr", &self.advertise_api_addr),
            ("advertise_raft_addr", &self.advertise_raft_addr),
        ] {
            if let Some(v) = value {
                check_host_port(field, v)?;
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.initial_cluster {
            if p.node_id == 0 {
                bail!("invalid initial_cluster: node ids must be positive (got 0)");
            }
            if !seen.insert(p.node_id) {
                bail!("invalid initial_cluster: node {} listed twice", p.node_id);
            }
            check_host_port("initial_cluster.raft_addr", &p.raft_addr)?;
            check_host_port("initial_cluster.api_addr", &p.api_addr)?;
        }
        if !self.initial_cluster.is_empty() && !seen.contains(&self.node_id) {
            bail!(
                "invalid initial_cluster: must include this node (node_id {})",
                self.node_id
            );
        }
        self.acl.validate().map_err(anyhow::Error::msg)?;
        if self.heartbeat_interval_ms == 0 {
            bail!("invalid heartbeat_interval_ms: must be positive");
        }
        if self.election_timeout_min_ms <= self.heartbeat_interval_ms {
            bail!(
                "invalid election_timeout_min_ms: must exceed heartbeat_interval_ms ({} <= {})",
                self.election_timeout_min_ms,
                self.heartbeat_interval_ms
            );
        }
        if self.install_snapshot_timeout_ms < self.heartbeat_interval_ms {
            bail!(
                "invalid install_snapshot_timeout_ms: must be at least heartbeat_interval_ms \
                 ({} < {})",
                self.install_snapshot_timeout_ms,
                self.heartbeat_interval_ms
            );
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            bail!(
                "invalid election_timeout_max_ms: must exceed election_timeout_min_ms ({} <= {})",
                self.election_timeout_max_ms,
                self.election_timeout_min_ms
            );
        }
        if self.leader_handoff_ms != 0 && self.leader_handoff_ms <= self.election_timeout_max_ms {
            bail!(
                "invalid leader_handoff_ms: must be 0 (off) or exceed election_timeout_max_ms, \
                 which a new leader waits out before it can hand off ({} <= {})",
                self.leader_handoff_ms,
                self.election_timeout_max_ms
            );
        }
        if self.snapshot_threshold == 0 {
            bail!("invalid snapshot_threshold: must be positive");
        }
        if self.snapshot_chunk_bytes < MIN_SNAPSHOT_CHUNK_BYTES {
            bail!(
                "invalid snapshot_chunk_bytes: must be at least {MIN_SNAPSHOT_CHUNK_BYTES} ({})",
                self.snapshot_chunk_bytes
            );
        }
        if self.request_timeout_ms == 0 {
            bail!("invalid request_timeout_ms: must be positive");
        }
        self.dns.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        if self.watch_history == 0 {
            bail!("invalid watch_history: must be positive");
        }
        if self.watch_queue == 0 {
            bail!("invalid watch_queue: must be positive");
        }
        self.limits.validate()?;
        self.mesh.validate()?;
        if let Some(tls) = &self.tls {
            crate::tls::NodeTls::load(tls)?;
        }
        unsafe_control::check_allowed(
            self.unsafe_control,
            std::env::var_os(unsafe_control::ALLOW_ENV).as_deref(),
        )?;
        Ok(())
    }
}

fn check_host_port(field: &str, value: &str) -> anyhow::Result<()> {
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(())
        }
        _ => bail!("invalid {field}: must be HOST:PORT (got {value:?})"),
    }
}

/// `waymark server` flags. Each overrides the same key of the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// TOML config file; flags override its values.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Unique positive id of this node.
    #[arg(long)]
    pub node_id: Option<u64>,
    /// Directory for the RocksDB data (log, vote, state machine, snapshot).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Client gRPC listen address [default: 127.0.0.1:8500].
    #[arg(long)]
    pub api_addr: Option<String>,
    /// Raft transport listen address [default: 127.0.0.1:8300].
    #[arg(long)]
    pub raft_addr: Option<String>,
    /// Admin HTTP listen address [default: 127.0.0.1:8501].
    #[arg(long)]
    pub admin_addr: Option<String>,
    /// DNS listen address, UDP and TCP [default: 127.0.0.1:8600].
    #[arg(long)]
    pub dns_addr: Option<String>,
    /// DNS domain served [default: waymark.].
    #[arg(long)]
    pub dns_domain: Option<String>,
    /// DNS answers SERVFAIL when this node last heard from a leader longer ago, in ms
    /// [default: 5000].
    #[arg(long)]
    pub dns_max_stale_ms: Option<u64>,
    /// API address peers and clients are told to use [default: --api-addr].
    #[arg(long)]
    pub advertise_api_addr: Option<String>,
    /// Raft address peers are told to dial [default: --raft-addr].
    #[arg(long)]
    pub advertise_raft_addr: Option<String>,
    /// Initial voters, comma-separated ID=RAFT_ADDR/API_ADDR entries.
    #[arg(long, value_delimiter = ',')]
    pub initial_cluster: Vec<String>,
    /// Build a snapshot after this many log entries [default: 10000].
    #[arg(long)]
    pub snapshot_threshold: Option<u64>,
    /// Log entries kept behind a snapshot [default: 10000].
    #[arg(long)]
    pub logs_to_keep: Option<u64>,
    /// Log output on stderr [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// PEM CA that signs every node's certificate (`[tls] ca_file`); with the next
    /// two, TLS on the client API and mutual TLS on the Raft port.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert_file", "tls_key_file"])]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM certificate of this node (`[tls] cert_file`).
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca_file", "tls_key_file"])]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate (`[tls] key_file`).
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca_file", "tls_cert_file"])]
    pub tls_key_file: Option<PathBuf>,
    /// Deliberately unsafe behaviour for the Jepsen harness's positive controls only;
    /// hidden from --help, documented in ARCHITECTURE.md, and refused unless
    /// WAYMARK_ALLOW_UNSAFE_CONTROLS=1.
    #[arg(long, value_enum, hide = true, value_name = "NAME")]
    pub unsafe_control: Option<UnsafeControl>,
}

impl ServerArgs {
    /// Merges the config file (if any) with the flags, then validates.
    pub fn into_config(self) -> anyhow::Result<ServerConfig> {
        let mut cfg = match &self.config {
            Some(path) => ServerConfig::from_toml_file(path)?,
            None => {
                let node_id = self
                    .node_id
                    .context("missing --node-id (or a --config file that sets node_id)")?;
                let data_dir = self
                    .data_dir
                    .clone()
                    .context("missing --data-dir (or a --config file that sets data_dir)")?;
                ServerConfig::new(node_id, data_dir)
            }
        };
        if let Some(v) = self.node_id {
            cfg.node_id = v;
        }
        if let Some(v) = self.data_dir {
            cfg.data_dir = v;
        }
        if let Some(v) = self.api_addr {
            cfg.api_addr = v;
        }
        if let Some(v) = self.raft_addr {
            cfg.raft_addr = v;
        }
        if let Some(v) = self.admin_addr {
            cfg.admin_addr = v;
        }
        if let Some(v) = self.dns_addr {
            cfg.dns_addr = v;
        }
        if let Some(v) = self.dns_domain {
            cfg.dns.domain = v;
        }
        if let Some(v) = self.dns_max_stale_ms {
            cfg.dns.max_stale_ms = v;
        }
        if let Some(v) = self.advertise_api_addr {
            cfg.advertise_api_addr = Some(v);
        }
        if let Some(v) = self.advertise_raft_addr {
            cfg.advertise_raft_addr = Some(v);
        }
        if !self.initial_cluster.is_empty() {
            cfg.initial_cluster = self
                .initial_cluster
                .iter()
                .map(|s| PeerConfig::parse(s))
                .collect::<anyhow::Result<_>>()?;
        }
        if let Some(v) = self.snapshot_threshold {
            cfg.snapshot_threshold = v;
        }
        if let Some(v) = self.logs_to_keep {
            cfg.logs_to_keep = v;
        }
        if let Some(v) = self.log_format {
            cfg.log_format = v;
        }
        if let Some(v) = self.unsafe_control {
            cfg.unsafe_control = Some(v);
        }
        if let (Some(ca_file), Some(cert_file), Some(key_file)) =
            (self.tls_ca_file, self.tls_cert_file, self.tls_key_file)
        {
            cfg.tls = Some(crate::tls::TlsConfig {
                ca_file,
                cert_file,
                key_file,
            });
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_named() {
        let err =
            ServerConfig::from_toml_str("node_id = 1\ndata_dir = \"/tmp/x\"\nbogus_key = 3\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("bogus_key"), "{err}");
    }

    #[test]
    fn toml_with_initial_cluster_parses_and_validates() {
        let cfg = ServerConfig::from_toml_str(
            r#"
            node_id = 2
            data_dir = "/var/lib/waymark"
            [[initial_cluster]]
            node_id = 1
            raft_addr = "10.0.0.1:8300"
            api_addr = "10.0.0.1:8500"
            [[initial_cluster]]
            node_id = 2
            raft_addr = "10.0.0.2:8300"
            api_addr = "10.0.0.2:8500"
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.initial_cluster.len(), 2);
        assert_eq!(cfg.api_addr, "127.0.0.1:8500");
    }

    #[test]
    fn validation_names_the_bad_value() {
        let mut cfg = ServerConfig::new(1, "/tmp/x");
        cfg.api_addr = "nope".into();
        assert!(cfg.validate().unwrap_err().to_string().contains("api_addr"));
        let mut cfg = ServerConfig::new(0, "/tmp/x");
        assert!(cfg.validate().unwrap_err().to_string().contains("node_id"));
        cfg.node_id = 1;
        cfg.initial_cluster = vec![PeerConfig::parse("2=h:1/h:2").unwrap()];
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("must include this node"));
    }

    #[test]
    fn leader_handoff_is_on_by_default_and_must_outlast_the_lease() {
        let mut cfg = ServerConfig::from_toml_str("node_id = 1\ndata_dir = \"/tmp/x\"\n").unwrap();
        assert_eq!(cfg.leader_handoff(), Some(Duration::from_secs(3)));
        cfg.leader_handoff_ms = 600;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("leader_handoff_ms") && err.contains("600 <= 600"),
            "{err}"
        );
        cfg.leader_handoff_ms = 0;
        cfg.validate().unwrap();
        assert_eq!(cfg.leader_handoff(), None);
    }

    #[test]
    fn install_snapshot_timeout_defaults_long_and_is_checked() {
        let mut cfg = ServerConfig::from_toml_str("node_id = 1\ndata_dir = \"/tmp/x\"\n").unwrap();
        assert_eq!(cfg.install_snapshot_timeout_ms, 10_000);
        cfg.install_snapshot_timeout_ms = 50;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("install_snapshot_timeout_ms"), "{err}");
    }

    #[test]
    fn snapshot_chunks_default_to_3_mib_and_are_checked() {
        let mut cfg = ServerConfig::from_toml_str("node_id = 1\ndata_dir = \"/tmp/x\"\n").unwrap();
        assert_eq!(cfg.snapshot_chunk_bytes, 3 << 20);
        cfg.snapshot_chunk_bytes = 100;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("snapshot_chunk_bytes") && err.contains("1024"),
            "{err}"
        );
    }

    #[test]
    fn peer_parse() {
        let p = PeerConfig::parse("3=127.0.0.1:8302/127.0.0.1:8502").unwrap();
        assert_eq!(p.node_id, 3);
        assert_eq!(p.raft_addr, "127.0.0.1:8302");
        assert_eq!(p.api_addr, "127.0.0.1:8502");
        assert!(PeerConfig::parse("x=1/2").is_err());
        assert!(PeerConfig::parse("1=a").is_err());
    }

    /// Whether this test process was started with unsafe controls allowed (then the
    /// refusal cannot be observed here).
    fn unsafe_controls_allowed() -> bool {
        std::env::var_os(unsafe_control::ALLOW_ENV).is_some_and(|v| v == "1")
    }

    #[test]
    fn unsafe_control_is_refused_without_the_environment_opt_in() {
        if unsafe_controls_allowed() {
            return;
        }
        let args = ServerArgs {
            node_id: Some(1),
            data_dir: Some("/tmp/x".into()),
            unsafe_control: Some(UnsafeControl::StaleReads),
            ..Default::default()
        };
        let err = args.into_config().unwrap_err().to_string();
        assert!(err.contains("invalid unsafe_control"), "{err}");
        assert!(err.contains("\"stale-reads\""), "{err}");
        assert!(err.contains("WAYMARK_ALLOW_UNSAFE_CONTROLS=1"), "{err}");
        let mut cfg = ServerConfig::new(1, "/tmp/x");
        cfg.validate().unwrap();
        cfg.unsafe_control = Some(UnsafeControl::WatchSkip);
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn unsafe_control_names_parse_from_toml_and_unknown_ones_are_named() {
        for (name, control) in [
            ("stale-reads", UnsafeControl::StaleReads),
            ("early-ack", UnsafeControl::EarlyAck),
            ("watch-skip", UnsafeControl::WatchSkip),
        ] {
            let cfg = ServerConfig::from_toml_str(&format!(
                "node_id = 1\ndata_dir = \"/tmp/x\"\nunsafe_control = \"{name}\"\n"
            ))
            .unwrap();
            assert_eq!(cfg.unsafe_control, Some(control), "{name}");
            assert_eq!(control.name(), name);
        }
        let err = ServerConfig::from_toml_str(
            "node_id = 1\ndata_dir = \"/tmp/x\"\nunsafe_control = \"fast-reads\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unsafe_control"), "{err}");
        assert!(err.contains("fast-reads"), "{err}");
        assert!(err.contains("stale-reads"), "{err}");
    }
}
