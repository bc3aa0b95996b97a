//! `--backend etcd`: connections to an etcd v3 cluster with the `etcd-client` crate, and
//! the mapping of Waymark's data model onto etcd keys (instance `<id>` of service `<s>`
//! is the key `/<s>/<id>`).

use std::time::Duration;

use anyhow::{bail, Context};
use etcd_client::{Client, ConnectOptions};

use crate::conn::{clean_endpoints, conn_targets, distinct, ClientOpts};

/// Largest response the clients accept (a range over a big prefix, a watch batch).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// The key prefix of a service: `/<service>/`.
pub fn prefix(service: &str) -> String {
    format!("/{service}/")
}

/// The key of instance `id` of `service`.
pub fn key(service: &str, id: &str) -> String {
    format!("/{service}/{id}")
}

/// The instance id in a key under `prefix`, if the key is under it.
pub fn id_of_key<'k>(prefix: &str, key: &'k [u8]) -> Option<&'k str> {
    let rest = key.strip_prefix(prefix.as_bytes())?;
    std::str::from_utf8(rest).ok()
}

/// An etcd-client error as a gRPC status, so the runner counts it by code.
pub fn to_status(e: etcd_client::Error) -> tonic::Status {
    match e {
        etcd_client::Error::GRpcStatus(s) => s,
        etcd_client::Error::TransportError(t) => tonic::Status::unavailable(t.to_string()),
        other => tonic::Status::unknown(other.to_string()),
    }
}

/// A client URL as etcd-client wants it (`http://` added when there is no scheme).
/// Not `waymark_client::endpoint_uri`: etcd endpoints may well be `https://`.
pub fn client_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

/// The `HOST:PORT` of a client URL (`http://127.0.0.1:2379` -> `127.0.0.1:2379`).
pub fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.trim_end_matches('/')
}

fn options(opts: &ClientOpts) -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(opts.dial_timeout)
        .with_timeout(opts.request_timeout)
}

/// One client over every endpoint (etcd-client balances over them and skips one that
/// is down), without checking any answers: for runs that restart nodes.
pub async fn dial_all(endpoints: &[String], opts: &ClientOpts) -> anyhow::Result<Client> {
    let urls: Vec<String> = endpoints.iter().map(|e| client_url(e)).collect();
    Client::connect(urls, Some(options(opts)))
        .await
        .context("connecting to etcd")
}

/// Opens one client (one HTTP/2 connection) to `endpoint` and checks it answers.
pub async fn dial(endpoint: &str, opts: &ClientOpts) -> anyhow::Result<Client> {
    let mut client = Client::connect([client_url(endpoint)], Some(options(opts)))
        .await
        .with_context(|| format!("connecting to etcd at {endpoint}"))?;
    // The channel connects lazily: one cheap call, so a dead endpoint fails here and
    // not in the middle of the run.
    tokio::time::timeout(opts.dial_timeout, client.status())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "etcd at {endpoint}: no answer within {:?}",
                opts.dial_timeout
            )
        })?
        .with_context(|| format!("etcd Maintenance.Status on {endpoint}"))?;
    Ok(client)
}

/// Asks the endpoints in turn for the leader's client URL until one names it or
/// `dial_timeout` ends.
pub async fn find_leader(endpoints: &[String], opts: &ClientOpts) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + opts.dial_timeout;
    let mut last_problem = String::from("no endpoint answered");
    loop {
        for ep in endpoints {
            match leader_of(ep, opts).await {
                Ok(Some(addr)) => return Ok(addr),
                Ok(None) => last_problem = format!("{ep} knows no leader"),
                Err(e) => last_problem = format!("{e:#}"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "--target-leader: no etcd leader found within {:?}: {last_problem}",
                opts.dial_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn leader_of(endpoint: &str, opts: &ClientOpts) -> anyhow::Result<Option<String>> {
    let mut client = dial(endpoint, opts).await?;
    let leader = client.status().await?.leader();
    if leader == 0 {
        return Ok(None);
    }
    let members = client.member_list().await?;
    Ok(members
        .members()
        .iter()
        .find(|m| m.id() == leader)
        .and_then(|m| m.client_urls().first())
        .map(|url| host_port(url).to_string()))
}

/// The clients a run uses (one connection each), and the endpoint of each.
pub struct EtcdPool {
    clients: Vec<Client>,
    targets: Vec<String>,
}

impl EtcdPool {
    /// Dials `conns` connections: round-robin over the endpoints, or all to the leader
    /// with `--target-leader` (as etcd's benchmark does).
    pub async fn connect_n(opts: &ClientOpts, conns: usize) -> anyhow::Result<Self> {
        let endpoints = clean_endpoints(&opts.endpoints)?;
        let endpoints = if opts.target_leader {
            vec![find_leader(&endpoints, opts).await?]
        } else {
            endpoints
        };
        let targets = conn_targets(&endpoints, conns.max(1));
        let mut clients = Vec::with_capacity(targets.len());
        for t in &targets {
            clients.push(dial(t, opts).await?);
        }
        Ok(Self { clients, targets })
    }

    /// `--conns` connections.
    pub async fn connect(opts: &ClientOpts) -> anyhow::Result<Self> {
        Self::connect_n(opts, opts.conns as usize).await
    }

    /// The client that client task `client` uses.
    pub fn client_for(&self, client: usize) -> &Client {
        &self.clients[client % self.clients.len()]
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
    fn keys_live_under_the_service_prefix() {
        assert_eq!(prefix("bench"), "/bench/");
        assert_eq!(key("bench", "i-7"), "/bench/i-7");
        assert!(key("bench", "i-7").starts_with(&prefix("bench")));
        // A service whose name extends another's is not under its prefix.
        assert!(!key("bench2", "i-7").starts_with(&prefix("bench")));
    }

    #[test]
    fn ids_come_back_out_of_keys() {
        assert_eq!(id_of_key("/bench/", b"/bench/i-42"), Some("i-42"));
        assert_eq!(id_of_key("/bench/", b"/other/i-42"), None);
        assert_eq!(id_of_key("/bench/", b"/bench/\xff"), None);
    }

    #[test]
    fn urls_and_host_ports() {
        assert_eq!(client_url("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(client_url("http://h:1"), "http://h:1");
        assert_eq!(host_port("http://127.0.0.1:2379"), "127.0.0.1:2379");
        assert_eq!(host_port("https://h:1/"), "h:1");
        assert_eq!(host_port("h:1"), "h:1");
    }

    #[test]
    fn errors_keep_their_grpc_code() {
        let s = to_status(etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
            "no leader",
        )));
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert_eq!(s.message(), "no leader");
        let s = to_status(etcd_client::Error::WatchError("closed".into()));
        assert_eq!(s.code(), tonic::Code::Unknown);
        assert!(s.message().contains("closed"));
    }
}
