//! The harness's secure mode (`--secure`): ACLs on with default deny, TLS on the client
//! API and mutual TLS on the Raft port, set up as an operator would: a CA and one
//! certificate per node made with `waymark tls`, each node's `[acl]` and `[tls]` in its
//! config file, then `Acl.Bootstrap` for the management token every harness client
//! sends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use tonic::Code;
use waymark_client::{Client, ClientTls, ConnectOptions};
use waymark_proto::pb::{BootstrapAclRequest, StatusRequest};

use super::netns::Network;

/// The files of a secure cluster, under the run's `tls/` folder.
#[derive(Clone, Debug)]
pub struct SecureFiles {
    pub ca_file: PathBuf,
    dir: PathBuf,
}

impl SecureFiles {
    /// Makes a new CA and a certificate for every node, naming the node's IP (what
    /// clients and peers dial), with the `waymark` binary under test.
    pub fn create(waymark_bin: &Path, run_dir: &Path, network: &Network) -> anyhow::Result<Self> {
        let dir = run_dir.join("tls");
        let dir_arg = dir.display().to_string();
        waymark(
            waymark_bin,
            &["tls", "ca", "create", "--dir", &dir_arg, "--days", "2"],
        )?;
        let ca = dir.join("ca.pem").display().to_string();
        let ca_key = dir.join("ca-key.pem").display().to_string();
        for node in 1..=network.nodes() {
            let name = format!("n{node}");
            let ip = network.node_ip(node).to_string();
            waymark(
                waymark_bin,
                &[
                    "tls", "cert", "create", "--ca", &ca, "--ca-key", &ca_key, "--dir", &dir_arg,
                    "--name", &name, "--san", &ip, "--days", "2",
                ],
            )?;
        }
        Ok(Self {
            ca_file: dir.join("ca.pem"),
            dir,
        })
    }

    /// Writes `node`'s config file (ACLs on, default deny; its `[tls]` files) into
    /// `node_dir`; the `waymark server` argument that loads it. Other settings stay
    /// flags, which override the file.
    pub fn node_config(
        &self,
        node: u32,
        node_dir: &Path,
        data_dir: &Path,
    ) -> anyhow::Result<String> {
        let file = |suffix: &str| self.dir.join(format!("n{node}{suffix}"));
        let toml = format!(
            "node_id = {node}\n\
             data_dir = {data:?}\n\
             \n\
             [acl]\n\
             enabled = true\n\
             default_policy = \"deny\"\n\
             \n\
             [tls]\n\
             ca_file = {ca:?}\n\
             cert_file = {cert:?}\n\
             key_file = {key:?}\n",
            data = data_dir.display().to_string(),
            ca = self.ca_file.display().to_string(),
            cert = file(".pem").display().to_string(),
            key = file("-key.pem").display().to_string(),
        );
        let path = node_dir.join("waymark.toml");
        std::fs::write(&path, toml).with_context(|| format!("writing {}", path.display()))?;
        Ok(format!("--config={}", path.display()))
    }

    /// TLS verified with this cluster's CA.
    pub fn client_tls(&self) -> anyhow::Result<ClientTls> {
        ClientTls::from_ca_file(&self.ca_file).map_err(anyhow::Error::from)
    }
}

/// Runs `waymark ARGS`, failing with its output when it fails.
fn waymark(bin: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(bin)
        .args(args)
        .output()
        .with_context(|| format!("running {} {}", bin.display(), args.join(" ")))?;
    anyhow::ensure!(
        out.status.success(),
        "`waymark {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Bootstraps the cluster's ACLs through any node and returns the management token's
/// secret. Retries while no node can take it (no leader yet: UNAVAILABLE, or the
/// connection refused); any other refusal, or no success within `limit`, fails the
/// run. A retry after a lost reply would be refused as already bootstrapped, and the
/// error says so.
pub async fn bootstrap_acl(
    nodes: &[(u32, String)],
    connect: &ConnectOptions,
    limit: Duration,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no node answered");
    for attempt in 0.. {
        let (_, addr) = &nodes[attempt % nodes.len()];
        let mut acl = waymark_client::acl(Client::lazy_channel(addr, connect)?);
        let call = tokio::time::timeout(
            Duration::from_secs(5),
            acl.bootstrap(BootstrapAclRequest {}),
        );
        match call.await {
            Ok(Ok(reply)) => return Ok(reply.into_inner().secret),
            Ok(Err(status)) if status.code() == Code::Unavailable => {
                last = format!("{addr}: {}", status.message());
            }
            Ok(Err(status)) => anyhow::bail!(
                "ACL bootstrap through {addr} refused ({:?}: {}); if an earlier attempt's \
                 reply was lost, its token cannot be recovered: start the run again",
                status.code(),
                status.message()
            ),
            Err(_) => last = format!("{addr}: no answer within 5s"),
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("ACL bootstrap did not succeed within {limit:?}; last: {last}")
}

/// Fails the run unless `addr` really is secured: a call without a token over TLS must
/// be refused UNAUTHENTICATED, and the same call in plaintext must not be answered.
/// Without this a server that ignored its `[acl]` or `[tls]` would pass as secure.
pub async fn check_enforced(addr: &str, tls_without_token: &ConnectOptions) -> anyhow::Result<()> {
    let ask = |connect: ConnectOptions| async move {
        let mut client = waymark_client::cluster(Client::lazy_channel(addr, &connect)?);
        let reply = tokio::time::timeout(Duration::from_secs(5), client.status(StatusRequest {}))
            .await
            .map_err(|_| anyhow::anyhow!("{addr}: no answer to Status within 5s"))?;
        anyhow::Ok(reply)
    };
    let anonymous = ConnectOptions {
        token: None,
        ..tls_without_token.clone()
    };
    match ask(anonymous).await? {
        Err(status) if status.code() == Code::Unauthenticated => {}
        other => anyhow::bail!(
            "secure mode, but {addr} answered a Status call without a token with {:?}, not \
             UNAUTHENTICATED: ACLs are not enforced",
            other.map(|_| "OK").map_err(|s| s.code())
        ),
    }
    let plaintext = ConnectOptions {
        tls: None,
        token: None,
        ..tls_without_token.clone()
    };
    if let Ok(Ok(_)) = ask(plaintext).await.map_err(|_| ()) {
        anyhow::bail!("secure mode, but {addr} answered a plaintext Status call: TLS is not on");
    }
    Ok(())
}
