//! Client connections: the `--endpoints`/`--clients`/`--conns` flags, dialing `--conns`
//! gRPC channels round-robin over the endpoints, and finding the leader for
//! `--target-leader`.

use std::time::Duration;

use anyhow::{bail, Context};
use tonic::transport::{Channel, Endpoint};
use waymark_proto::pb;

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
}

/// Parses `250ms`, `5s`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 5s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("invalid duration {s:?}: unit must be ms, s or m")),
    }
}

/// The URI tonic dials for an endpoint flag value.
pub fn endpoint_uri(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
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
    Endpoint::from_shared(endpoint_uri(endpoint))
        .with_context(|| format!("invalid endpoint {endpoint:?}"))?
        .connect_timeout(opts.dial_timeout)
        .timeout(opts.request_timeout)
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to {endpoint}"))
}

/// The leader's API address as a node reports it: `leader_api_addr`, or the address of
/// the member whose id is `leader_id`.
pub fn leader_addr(status: &pb::StatusResponse) -> Option<String> {
    if !status.leader_api_addr.is_empty() {
        return Some(status.leader_api_addr.clone());
    }
    let id = status.leader_id?;
    status
        .members
        .iter()
        .find(|m| m.node_id == id && !m.api_addr.is_empty())
        .map(|m| m.api_addr.clone())
}

/// Asks the endpoints in turn for the leader until one names it or `dial_timeout` ends.
pub async fn find_leader(endpoints: &[String], opts: &ClientOpts) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + opts.dial_timeout;
    let mut last_problem = String::from("no endpoint answered");
    loop {
        for ep in endpoints {
            match status_of(ep, opts).await {
                Ok(status) => match leader_addr(&status) {
                    Some(addr) => return Ok(addr),
                    None => {
                        last_problem = format!("{ep} (node {}) knows no leader", status.node_id)
                    }
                },
                Err(e) => last_problem = format!("{e:#}"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "--target-leader: no leader found within {:?}: {last_problem}",
                opts.dial_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn status_of(endpoint: &str, opts: &ClientOpts) -> anyhow::Result<pb::StatusResponse> {
    let channel = dial(endpoint, opts).await?;
    let status = pb::cluster_client::ClusterClient::new(channel)
        .status(pb::StatusRequest {})
        .await
        .with_context(|| format!("Cluster.Status on {endpoint}"))?;
    Ok(status.into_inner())
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
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn uris_get_a_scheme_only_when_missing() {
        assert_eq!(endpoint_uri("127.0.0.1:8500"), "http://127.0.0.1:8500");
        assert_eq!(endpoint_uri("http://h:1"), "http://h:1");
    }

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

    #[test]
    fn leader_address_comes_from_the_field_or_the_member_list() {
        let mut s = pb::StatusResponse {
            leader_api_addr: "x:1".into(),
            ..Default::default()
        };
        assert_eq!(leader_addr(&s).as_deref(), Some("x:1"));

        s.leader_api_addr.clear();
        assert_eq!(leader_addr(&s), None);

        s.leader_id = Some(2);
        s.members = vec![
            pb::Member {
                node_id: 1,
                api_addr: "a:1".into(),
                ..Default::default()
            },
            pb::Member {
                node_id: 2,
                api_addr: "b:2".into(),
                ..Default::default()
            },
        ];
        assert_eq!(leader_addr(&s).as_deref(), Some("b:2"));

        s.leader_id = Some(9);
        assert_eq!(leader_addr(&s), None);
    }
}
