//! Client connections: the `--endpoints`/`--clients`/`--conns` flags, dialing `--conns`
//! gRPC channels round-robin over the endpoints, and finding the leader for
//! `--target-leader`.

use std::time::Duration;

use anyhow::{bail, Context};
use waymark_client::Channel;
use waymark_client::{parse_duration, Client, ClientTls, ConnectOptions, Endpoints};

/// Which system a workload runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// A Waymark cluster over its gRPC API.
    Waymark,
    /// An etcd v3 cluster (the same workload mapped onto keys under `/<service>/`).
    Etcd,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Waymark => "waymark",
            Backend::Etcd => "etcd",
        }
    }
}

/// Connection flags shared by every workload (etcd `benchmark` global flags).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Connection options")]
pub struct ClientOpts {
    /// System to benchmark: a Waymark cluster, or etcd for comparison.
    #[arg(long, global = true, value_enum, default_value_t = Backend::Waymark)]
    pub backend: Backend,

    /// Comma-separated gRPC API addresses (HOST:PORT or http://HOST:PORT): Waymark API
    /// addresses, or etcd client URLs with --backend etcd.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:8500"
    )]
    pub endpoints: Vec<String>,

    /// Concurrent client tasks issuing requests.
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub clients: u32,

    /// gRPC connections (HTTP/2 channels) the clients share; client k uses
    /// connection k mod conns, connection i goes to endpoint i mod (number of endpoints).
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub conns: u32,

    /// Send every request to the leader, found with Cluster.Status on the endpoints
    /// (etcd: Maintenance.Status and the member list).
    #[arg(long, global = true)]
    pub target_leader: bool,

    /// How long to wait for a connection (and, with --target-leader, for a leader).
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    pub dial_timeout: Duration,

    /// Deadline of each request; a request that misses it counts as an error.
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Waymark ACL token secret sent with every request.
    #[arg(long, global = true, env = "WAYMARK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// PEM CA of the Waymark nodes' certificates: talk TLS to them.
    #[arg(long, global = true, env = "WAYMARK_CACERT", value_parser = parse_ca_file)]
    pub ca_file: Option<ClientTls>,
}

/// `--ca-file`: read and checked before any connection.
fn parse_ca_file(s: &str) -> Result<ClientTls, String> {
    ClientTls::from_ca_file(std::path::Path::new(s)).map_err(|e| e.to_string())
}

/// Cleans the `--endpoints` list: trims entries and drops empty ones.
pub fn clean_endpoints(raw: &[String]) -> anyhow::Result<Vec<String>> {
    let eps: Vec<String> = raw
        .iter()
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .collect();
    if eps.is_empty() {
        bail!("--endpoints: need at least one HOST:PORT");
    }
    Ok(eps)
}

/// The endpoint each of `conns` connections goes to: round-robin over `endpoints`.
pub fn conn_targets(endpoints: &[String], conns: usize) -> Vec<String> {
    (0..conns)
        .map(|i| endpoints[i % endpoints.len()].clone())
        .collect()
}

/// The distinct entries of `items`, in first-seen order.
pub fn distinct(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in items {
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

/// Opens one HTTP/2 connection to `endpoint`.
pub async fn dial(endpoint: &str, opts: &ClientOpts) -> anyhow::Result<Channel> {
    Ok(connect_options(opts).connect(endpoint).await?)
}

pub fn connect_options(opts: &ClientOpts) -> ConnectOptions {
    ConnectOptions {
        connect_timeout: opts.dial_timeout,
        request_timeout: Some(opts.request_timeout),
        token: opts.token.clone(),
        tls: opts.ca_file.clone(),
    }
}

/// The leader's address, asking the endpoints in turn for up to `--dial-timeout`.
pub async fn find_leader(endpoints: &[String], opts: &ClientOpts) -> anyhow::Result<String> {
    let client = Client::new(Endpoints::new(endpoints)?, connect_options(opts));
    waymark_client::find_leader(&client, opts.dial_timeout)
        .await
        .context("--target-leader")
}

/// The channels a run uses, and the endpoint each one is connected to.
pub struct Pool {
    channels: Vec<Channel>,
    targets: Vec<String>,
}

impl Pool {
    /// Dials `--conns` connections: round-robin over the endpoints, or all to the
    /// leader with `--target-leader`.
    pub async fn connect(opts: &ClientOpts) -> anyhow::Result<Self> {
        Self::connect_n(opts, opts.conns as usize).await
    }

    /// Like `connect`, with `conns` connections instead of `--conns`.
    pub async fn connect_n(opts: &ClientOpts, conns: usize) -> anyhow::Result<Self> {
        let endpoints = clean_endpoints(&opts.endpoints)?;
        let endpoints = if opts.target_leader {
            vec![find_leader(&endpoints, opts).await?]
        } else {
            endpoints
        };
        let targets = conn_targets(&endpoints, conns.max(1));
        let mut channels = Vec::with_capacity(targets.len());
        for t in &targets {
            channels.push(dial(t, opts).await?);
        }
        Ok(Self { channels, targets })
    }

    /// The channel client task `client` uses.
    pub fn channel_for(&self, client: usize) -> Channel {
        self.channels[client % self.channels.len()].clone()
    }

    /// Distinct endpoints the connections go to, in first-use order.
    pub fn endpoints(&self) -> Vec<String> {
        distinct(&self.targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_trimmed_and_must_not_be_empty() {
        let raw = vec![" a:1".to_string(), String::new(), "b:2 ".to_string()];
        assert_eq!(clean_endpoints(&raw).unwrap(), ["a:1", "b:2"]);
        assert!(clean_endpoints(&[" ".to_string()]).is_err());
    }

    #[test]
    fn connections_go_round_robin_over_endpoints() {
        let eps = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(conn_targets(&eps, 1), ["a"]);
        assert_eq!(conn_targets(&eps, 4), ["a", "b", "c", "a"]);
        assert_eq!(conn_targets(&eps[..1], 3), ["a", "a", "a"]);
    }
}
