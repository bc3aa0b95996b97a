//! The `waymark` command line: clap definitions for `server`, `dev` and the client
//! commands, and the dispatch that turns every failure into `error: …` and an exit code.
//! The `watch`, `lease` and `health` commands define their flags in their own modules.

mod acl;
mod acl_rule;
mod ca;
mod client;
mod config;
mod dev;
mod health;
mod instances;
mod intention;
mod lease;
mod output;
mod parse;
mod proxies;
mod register;
mod signals;
mod snapshot;
mod tls;
mod watch;
mod watch_fmt;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use waymark_client::{parse_duration, Client, ClientTls, ConnectOptions, Endpoints};

use crate::config::{LogFormat, ServerArgs};

#[derive(Debug, Parser)]
#[command(
    name = "waymark",
    version,
    about = "Waymark service registry: run a node, a local dev cluster, or talk to a cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one registry node until SIGINT or SIGTERM.
    Server(ServerArgs),
    /// Run a local cluster of N nodes (child processes) for trying Waymark out.
    Dev(DevArgs),
    /// Back up the replicated state, inspect a backup, or restore one into a new
    /// cluster.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Create a local CA and node certificates for the `[tls]` table (for clusters
    /// without a PKI of their own).
    #[command(subcommand)]
    Tls(tls::TlsCommand),
    #[command(flatten)]
    Client(ClientCommand),
}

#[derive(Debug, Args)]
struct DevArgs {
    /// Keep node data and logs here (node-K/ and node-K.log), so a restart resumes the
    /// same cluster. Default: a fresh temporary directory, removed at exit.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Number of nodes. Node K uses gRPC 850K-1, Raft 830K-1, admin 851K-1.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    nodes: u16,
    /// Log format of the nodes' log files.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Secure transport: generate a throwaway CA and node certificates (in the data
    /// directory's tls/), serve the client API over TLS and Raft over mutual TLS.
    #[arg(long)]
    tls: bool,
}

/// Flags every client command takes.
#[derive(Debug, Clone, Args)]
struct ClientOpts {
    /// Nodes to talk to: HOST:PORT (or http:// / https:// HOST:PORT), comma-separated.
    /// Any node will do; with several, a node that cannot answer is skipped for the next.
    #[arg(long, env = "WAYMARK_ADDR", default_value = "127.0.0.1:8500",
          value_parser = parse_endpoints, value_name = "HOST:PORT[,HOST:PORT...]")]
    addr: Endpoints,
    /// Print JSON with every field instead of a table: one document, or for `watch`
    /// one object per line.
    #[arg(long)]
    json: bool,
    /// Give up on the request after this long (e.g. 30s, 500ms).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,
    /// ACL token secret sent with every call (see `waymark acl`). Prefer the
    /// environment variable: a flag shows in `ps`.
    #[arg(
        long,
        env = "WAYMARK_TOKEN",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    token: Option<String>,
    /// PEM CA that signed the nodes' certificates (the servers' `[tls] ca_file`):
    /// talk TLS to every node and verify it with this CA.
    #[arg(long, env = "WAYMARK_CACERT", value_name = "FILE", value_parser = parse_ca_file)]
    ca_file: Option<ClientTls>,
}

/// Long enough for a loaded node, short enough that a wrong address fails fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

impl ClientOpts {
    /// A client for the `--addr` nodes. Each command makes one call (or one stream),
    /// so nothing is gained by sharing it.
    fn client(&self) -> Client {
        Client::new(
            self.addr.clone(),
            ConnectOptions {
                connect_timeout: CONNECT_TIMEOUT,
                request_timeout: Some(self.timeout),
                token: self.token.clone(),
                tls: self.ca_file.clone(),
            },
        )
    }
}

/// `--ca-file`: read and checked now, so a wrong file is named before any call.
fn parse_ca_file(s: &str) -> Result<ClientTls, String> {
    ClientTls::from_ca_file(std::path::Path::new(s)).map_err(|e| e.to_string())
}

/// `--addr`: the list, each address checked (the error names the bad one).
fn parse_endpoints(s: &str) -> Result<Endpoints, String> {
    Endpoints::parse(s).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReadMode {
    /// Linearizable: confirmed with the leader (ReadIndex).
    Consistent,
    /// From the serving node's replica, no round trip; may lag the leader.
    Stale,
}

/// Flags of the read commands.
#[derive(Debug, Clone, Args)]
struct ReadArgs {
    /// How the read is served [default: consistent, or stale with --max-stale].
    #[arg(long, value_enum)]
    consistency: Option<ReadMode>,
    /// Stale reads only: fail rather than answer if the node last heard from a leader
    /// longer ago than this (e.g. 5s, 500ms). Implies --consistency stale.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    max_stale: Option<Duration>,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register a service instance (an existing id is replaced).
    Register(RegisterArgs),
    /// Remove a service instance (idempotent).
    Deregister(InstanceKey),
    /// Show one instance.
    Get(GetArgs),
    /// List services with their instance counts and tags.
    Services(ServicesArgs),
    /// List the instances of a service.
    Instances(InstancesArgs),
    /// List the instances run by waymark-proxy, with what each proxy routes to.
    Proxies(proxies::ProxiesArgs),
    /// Stream the instances of services and every change to them until Ctrl-C.
    Watch(watch::WatchArgs),
    /// Create, keep alive or revoke leases.
    #[command(subcommand)]
    Lease(lease::LeaseCommand),
    /// Set the health status of instances.
    #[command(subcommand)]
    Health(health::HealthCommand),
    /// Put, get, list or delete replicated config entries.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// List the cluster members.
    Members(PlainArgs),
    /// Show the Raft status of the node at --addr.
    Status(PlainArgs),
    /// Add a node: it joins as a learner, catches up, then becomes a voter.
    AddMember(AddMemberArgs),
    /// Remove a node from the cluster.
    RemoveMember(RemoveMemberArgs),
    /// Access control: bootstrap, tokens, policies, who the caller is, and JWT login
    /// (auth methods, binding rules).
    #[command(subcommand)]
    Acl(acl::AclCommand),
    /// The mesh CA: list its roots, rotate to a new one, retire an old one.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// Intentions: which service may call which (create, delete, list, check).
    #[command(subcommand)]
    Intention(intention::IntentionCommand),
}

#[derive(Debug, Args)]
struct RegisterArgs {
    /// Service name (DNS label: lowercase letters, digits, '-').
    #[arg(long)]
    service: String,
    /// Instance id, unique within the service (same rule as the name).
    #[arg(long)]
    id: String,
    /// IP address or hostname clients should connect to.
    #[arg(long)]
    address: String,
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// A tag; repeat for more.
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Metadata entry KEY=VALUE; repeat for more.
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse::parse_meta_entry)]
    meta: Vec<(String, String)>,
    /// Load-balancing weight while passing (the warning weight stays 1) [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65535))]
    weight: Option<u32>,
    /// Register under a new lease with this time to live (at least 2s) and keep it
    /// alive until Ctrl-C or SIGTERM, which revoke it. Without it the instance stays
    /// until deregistered.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    ttl: Option<Duration>,
    /// With --ttl: what happens to the instance when the lease ends [default: remove].
    #[arg(long, value_enum, requires = "ttl", value_name = "ACTION")]
    on_lease_expiry: Option<LeaseExpiry>,
    /// Deregister the instance once it has been critical this long (at least 1s).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    deregister_critical_after: Option<Duration>,
    /// Compare-and-set: register only if the instance's current modify index is INDEX;
    /// 0 = only if the instance does not exist yet. A mismatch changes nothing.
    #[arg(long, value_name = "INDEX")]
    cas: Option<u64>,
    /// The status the instance starts with [default: passing].
    #[arg(long, value_enum, value_name = "STATUS")]
    initial_status: Option<health::Status>,
    #[command(flatten)]
    client: ClientOpts,
}

/// `--on-lease-expiry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LeaseExpiry {
    /// Deregister the instance.
    Remove,
    /// Keep it, marked critical (hidden from passing-only reads and watches).
    MarkCritical,
}

#[derive(Debug, Args)]
struct InstanceKey {
    #[arg(long)]
    service: String,
    #[arg(long)]
    id: String,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
struct GetArgs {
    #[arg(long)]
    service: String,
    #[arg(long)]
    id: String,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
struct ServicesArgs {
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
struct InstancesArgs {
    /// Service name.
    service: String,
    /// Only instances whose status is passing.
    #[arg(long)]
    passing_only: bool,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
struct PlainArgs {
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
struct AddMemberArgs {
    /// Node id of the new member (as passed to its --node-id).
    #[arg(long)]
    id: u64,
    /// Its client gRPC address, as other nodes and clients should reach it.
    #[arg(long)]
    api_addr: String,
    /// Its Raft transport address, as the other nodes should dial it.
    #[arg(long)]
    raft_addr: String,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
struct RemoveMemberArgs {
    /// Node id to remove.
    #[arg(long)]
    id: u64,
    #[command(flatten)]
    client: ClientOpts,
}

/// A bad combination of flags that clap cannot express; reported like clap's own
/// usage errors (exit code 2) rather than as a failed request.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Entry point of the `waymark` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => run_server(args).map(|()| ExitCode::SUCCESS),
        Command::Dev(args) => dev::run(args),
        Command::Snapshot(cmd) => snapshot::run(cmd).map(|()| ExitCode::SUCCESS),
        Command::Tls(cmd) => tls::run(cmd).map(|()| ExitCode::SUCCESS),
        Command::Client(cmd) => client::run(cmd).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(usage) = e.downcast_ref::<UsageError>() {
                eprintln!("error: {usage}\n\nFor more information, try '--help'.");
                return ExitCode::from(2);
            }
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// `outer: inner: root`, like anyhow's `{:#}`, but a cause that repeats the one
/// before it is left out (hyper/tonic nest "tcp connect error" twice).
fn error_chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    // Config errors are reported before a runtime or logger exists, so they show up
    // as a plain `error:` line, not a log record.
    let config = args.into_config()?;
    crate::server::init_logging(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("waymark")
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(crate::server::serve(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_register_with_repeated_flags() {
        let cli = Cli::try_parse_from([
            "waymark",
            "register",
            "--service",
            "web",
            "--id",
            "web-1",
            "--address",
            "10.0.0.1",
            "--port",
            "8080",
            "--tag",
            "a",
            "--tag",
            "b",
            "--meta",
            "v=1",
            "--weight",
            "5",
            "--cas",
            "42",
            "--addr",
            "http://127.0.0.1:8501",
        ])
        .map_err(|e| e.to_string());
        let Ok(Cli {
            command: Command::Client(ClientCommand::Register(r)),
        }) = cli
        else {
            panic!("unexpected parse: {cli:?}");
        };
        assert_eq!(r.tags, ["a", "b"]);
        assert_eq!(r.meta, [("v".to_string(), "1".to_string())]);
        assert_eq!(r.weight, Some(5));
        assert_eq!(r.cas, Some(42));
        assert_eq!(r.client.addr.uris(), ["http://127.0.0.1:8501"]);
    }

    #[test]
    fn parses_register_with_a_lease() {
        let cli = Cli::try_parse_from([
            "waymark",
            "register",
            "--service",
            "web",
            "--id",
            "web-1",
            "--address",
            "10.0.0.1",
            "--port",
            "8080",
            "--ttl",
            "10s",
            "--on-lease-expiry",
            "mark-critical",
            "--deregister-critical-after",
            "1m",
        ])
        .map_err(|e| e.to_string());
        let Ok(Cli {
            command: Command::Client(ClientCommand::Register(r)),
        }) = cli
        else {
            panic!("unexpected parse: {cli:?}");
        };
        assert_eq!(r.ttl, Some(Duration::from_secs(10)));
        assert_eq!(r.on_lease_expiry, Some(LeaseExpiry::MarkCritical));
        assert_eq!(r.deregister_critical_after, Some(Duration::from_secs(60)));
    }

    #[test]
    fn on_lease_expiry_needs_a_ttl() {
        let cli = Cli::try_parse_from([
            "waymark",
            "register",
            "--service",
            "w",
            "--id",
            "i",
            "--address",
            "a",
            "--port",
            "1",
            "--on-lease-expiry",
            "remove",
        ]);
        assert!(cli.is_err_and(|e| e.to_string().contains("--ttl")));
    }

    #[test]
    fn parses_the_new_command_groups() {
        for argv in [
            &["waymark", "watch", "web", "api", "--passing-only", "--json"][..],
            &["waymark", "watch", "--all", "--from-index", "42"],
            &["waymark", "watch", "web", "--progress-interval", "500ms"],
            &["waymark", "lease", "create", "--ttl", "10s"],
            &["waymark", "lease", "revoke", "7"],
            &[
                "waymark",
                "lease",
                "keep-alive",
                "7",
                "--addr",
                "127.0.0.1:8501",
            ],
            &["waymark", "instances", "web", "--passing-only"],
            &[
                "waymark",
                "health",
                "set",
                "--service",
                "web",
                "--id",
                "web-1",
                "--status",
                "critical",
                "--output",
                "timeout",
            ],
        ] {
            assert!(Cli::try_parse_from(argv).is_ok(), "{argv:?} should parse");
        }
        for argv in [
            &["waymark", "watch"][..],
            &["waymark", "watch", "web", "--all"],
            &["waymark", "lease", "revoke", "0"],
            &["waymark", "lease", "create"],
            &[
                "waymark",
                "health",
                "set",
                "--service",
                "w",
                "--id",
                "i",
                "--status",
                "ok",
            ],
        ] {
            assert!(
                Cli::try_parse_from(argv).is_err(),
                "{argv:?} should be rejected"
            );
        }
    }

    #[test]
    fn addr_takes_a_list_of_nodes() {
        let parse = |addr: &str| {
            Cli::try_parse_from(["waymark", "members", "--addr", addr]).map(|cli| {
                match cli.command {
                    Command::Client(ClientCommand::Members(a)) => a.client.addr,
                    other => panic!("unexpected parse: {other:?}"),
                }
            })
        };
        assert_eq!(
            parse("127.0.0.1:8500").unwrap().uris(),
            ["http://127.0.0.1:8500"]
        );
        assert_eq!(
            parse("10.0.0.1:8500,http://10.0.0.2:8500").unwrap().uris(),
            ["http://10.0.0.1:8500", "http://10.0.0.2:8500"]
        );
        assert_eq!(
            parse("https://10.0.0.2:8500").unwrap().uris(),
            ["https://10.0.0.2:8500"]
        );
        let err = parse("10.0.0.1:8500,ftp://10.0.0.2:8500")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ftp://10.0.0.2:8500") && err.contains("not supported"),
            "{err}"
        );
        assert!(parse("10.0.0.1:8500,").is_err());
    }

    #[test]
    fn server_takes_a_hidden_unsafe_control() {
        use crate::unsafe_control::UnsafeControl;
        for (name, control) in [
            ("stale-reads", UnsafeControl::StaleReads),
            ("early-ack", UnsafeControl::EarlyAck),
            ("watch-skip", UnsafeControl::WatchSkip),
            ("stale-bound", UnsafeControl::StaleBound),
            ("dns-guard-off", UnsafeControl::DnsGuardOff),
            ("lease-early", UnsafeControl::LeaseEarly),
            ("replica-diverge", UnsafeControl::ReplicaDiverge),
        ] {
            let cli = Cli::try_parse_from(["waymark", "server", "--unsafe-control", name]);
            let Ok(Cli {
                command: Command::Server(args),
            }) = cli
            else {
                panic!("unexpected parse of {name}: {cli:?}");
            };
            assert_eq!(args.unsafe_control, Some(control));
        }
        let err = Cli::try_parse_from(["waymark", "server", "--unsafe-control", "fast-reads"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("fast-reads"), "{err}");
        assert!(err.contains("stale-reads, early-ack, watch-skip"), "{err}");
        let mut server = Cli::command();
        let help = server
            .find_subcommand_mut("server")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!help.contains("unsafe"), "{help}");
    }

    #[test]
    fn error_chain_drops_repeats() {
        let e = anyhow::anyhow!("connection refused")
            .context("tcp connect error")
            .context("tcp connect error")
            .context("could not reach a waymark node at 127.0.0.1:8500");
        assert_eq!(
            error_chain(&e),
            "could not reach a waymark node at 127.0.0.1:8500: tcp connect error: connection refused"
        );
    }

    #[test]
    fn rejects_bad_meta_and_node_count() {
        let bad_meta = Cli::try_parse_from([
            "waymark",
            "register",
            "--service",
            "w",
            "--id",
            "i",
            "--address",
            "a",
            "--port",
            "1",
            "--meta",
            "novalue",
        ]);
        assert!(bad_meta.is_err_and(|e| e.to_string().contains("KEY=VALUE")));
        assert!(Cli::try_parse_from(["waymark", "dev", "--nodes", "10"]).is_err());
        assert!(Cli::try_parse_from(["waymark", "dev", "--nodes", "0"]).is_err());
    }
}
