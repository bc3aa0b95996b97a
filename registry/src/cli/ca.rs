//! `waymark ca roots|rotate|retire`: the mesh CA (the Identity service). Rotation adds a
//! new active root (generated, or imported from files) cross-signed by the previous
//! one; the previous one stays trusted until `retire`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use waymark_client::identity as identity_client;
use waymark_proto::pb;

use crate::identity::split_certificates;

use super::client::{read, read_options, write};
use super::output::{self, emit, Table};
use super::{ClientOpts, ReadArgs, UsageError};

#[derive(Debug, Subcommand)]
pub(super) enum CaCommand {
    /// List the CA roots the mesh trusts (the active one first).
    Roots(RootsArgs),
    /// Make a new root active: generated, or imported with --cert and --key. The
    /// previous root stays trusted until retired, so traffic keeps flowing while
    /// proxies renew their leaves from the new one.
    Rotate(RotateArgs),
    /// Stop trusting a root that is no longer active.
    Retire(RetireArgs),
    /// Get a leaf certificate for a service (a new P-256 key and CSR, signed by the
    /// active root; the token must be allowed service:NAME write) and write it, its key
    /// and the trusted roots to files: for workloads outside waymark-proxy.
    Sign(SignArgs),
}

#[derive(Debug, Args)]
pub(super) struct SignArgs {
    /// The service the certificate identifies (spiffe://<trust-domain>/svc/SERVICE).
    service: String,
    /// Where to write the certificate, followed by its chain (PEM).
    #[arg(long, value_name = "FILE")]
    cert_file: PathBuf,
    /// Where to write the private key (PEM, mode 0600).
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// Where to write every trusted root (PEM), for verifying peers.
    #[arg(long, value_name = "FILE")]
    roots_file: Option<PathBuf>,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct RootsArgs {
    /// Print each root's certificate (PEM) too.
    #[arg(long)]
    pem: bool,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct RotateArgs {
    /// Import this CA certificate (PEM) instead of generating a root: a root, or an
    /// intermediate (then give --trust-anchor).
    #[arg(long, requires = "key", value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "cert", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Certificates between an imported intermediate and its root (PEM).
    #[arg(long, requires = "cert", value_name = "FILE")]
    chain: Option<PathBuf>,
    /// The external root an imported intermediate chains to (PEM).
    #[arg(long, requires = "cert", value_name = "FILE")]
    trust_anchor: Option<PathBuf>,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct RetireArgs {
    /// The root's id (from `waymark ca roots`).
    id: String,
    #[command(flatten)]
    client: ClientOpts,
}

fn read_file(path: &Option<PathBuf>) -> anyhow::Result<String> {
    match path {
        None => Ok(String::new()),
        Some(p) => {
            std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))
        }
    }
}

pub(super) async fn run(cmd: CaCommand) -> anyhow::Result<()> {
    match cmd {
        CaCommand::Roots(a) => {
            let request = pb::ListRootsRequest {
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = read(&a.client, |ch| async move {
                identity_client(ch).list_roots(request).await
            })
            .await?;
            emit(
                a.client.json,
                || {
                    json!({
                        "trust_domain": resp.trust_domain,
                        "roots": resp.roots.iter().map(root_json).collect::<Vec<_>>(),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || roots_text(&resp, a.pem),
            );
        }
        CaCommand::Rotate(a) => {
            let request = pb::RotateRootRequest {
                cert_pem: read_file(&a.cert)?,
                key_pem: read_file(&a.key)?,
                chain_pem: split_certificates(&read_file(&a.chain)?),
                trust_anchor_pem: read_file(&a.trust_anchor)?,
            };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { identity_client(ch).rotate_root(request).await }
            })
            .await?;
            let id = resp.root.as_ref().map(|r| r.id.clone()).unwrap_or_default();
            emit(
                a.client.json,
                || {
                    json!({
                        "root": resp.root.as_ref().map(root_json),
                        "previous_id": resp.previous_id,
                        "index": resp.index,
                    })
                },
                || {
                    format!(
                        "root {id} is active (index {}); {} stays trusted until \
                         `waymark ca retire {}` (after proxies have renewed their leaves)",
                        resp.index, resp.previous_id, resp.previous_id
                    )
                },
            );
        }
        CaCommand::Sign(a) => sign(a).await?,
        CaCommand::Retire(a) => {
            let request = pb::RetireRootRequest { id: a.id.clone() };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { identity_client(ch).retire_root(request).await }
            })
            .await?;
            emit(
                a.client.json,
                || json!({ "removed": resp.removed, "index": resp.index }),
                || match resp.removed {
                    true => format!("retired root {} (index {})", a.id, resp.index),
                    false => format!("no root {}; nothing removed (index {})", a.id, resp.index),
                },
            );
        }
    }
    Ok(())
}

async fn sign(a: SignArgs) -> anyhow::Result<()> {
    let key = rcgen::KeyPair::generate()?;
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)?
        .pem()?;
    let request = pb::SignRequest {
        service: a.service.clone(),
        csr_pem: csr,
    };
    let resp = read(&a.client, |ch| {
        let request = request.clone();
        async move { identity_client(ch).sign(request).await }
    })
    .await?;
    let mut chain = resp.cert_pem.clone();
    for c in &resp.chain_pem {
        chain.push_str(c);
    }
    std::fs::write(&a.cert_file, chain)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", a.cert_file.display()))?;
    crate::tls::generate::write_file(&a.key_file, &key.serialize_pem(), 0o600)?;
    if let Some(path) = &a.roots_file {
        let roots: String = resp
            .roots
            .iter()
            .map(|r| r.trust_anchor_pem.as_str())
            .collect();
        std::fs::write(path, roots)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    emit(
        a.client.json,
        || {
            json!({
                "spiffe_id": resp.spiffe_id,
                "serial": resp.serial,
                "root_id": resp.root_id,
                "not_after_ms": resp.not_after_ms,
                "cert_file": a.cert_file,
                "key_file": a.key_file,
            })
        },
        || {
            format!(
                "{} (serial {}, root {}) expires {}\nwrote {} and {}",
                resp.spiffe_id,
                resp.serial,
                resp.root_id,
                output::expires_text(resp.not_after_ms),
                a.cert_file.display(),
                a.key_file.display()
            )
        },
    );
    Ok(())
}

fn root_json(r: &pb::CaRoot) -> Value {
    json!({
        "id": r.id,
        "active": r.active,
        "trust_domain": r.trust_domain,
        "imported": r.imported,
        "not_after_ms": r.not_after_ms,
        "signing_cert_pem": r.signing_cert_pem,
        "trust_anchor_pem": r.trust_anchor_pem,
        "chain_pem": r.chain_pem,
        "create_index": r.create_index,
        "modify_index": r.modify_index,
    })
}

fn roots_text(resp: &pb::ListRootsResponse, pem: bool) -> String {
    let mut text = if resp.roots.is_empty() {
        "no CA roots yet (the leader creates one when the cluster forms)\n".to_string()
    } else {
        let mut table = Table::new(&["ID", "ACTIVE", "SOURCE", "EXPIRES", "CREATE INDEX"]);
        for r in &resp.roots {
            table.row(vec![
                r.id.clone(),
                if r.active { "yes" } else { "no" }.to_string(),
                if r.imported { "imported" } else { "generated" }.to_string(),
                output::expires_text(r.not_after_ms),
                r.create_index.to_string(),
            ]);
        }
        format!("trust domain {}\n{}", resp.trust_domain, table.render())
    };
    if pem {
        for r in &resp.roots {
            text.push_str(&format!("\n# {}\n{}", r.id, r.trust_anchor_pem));
        }
    }
    text.push('\n');
    text.push_str(&output::footer(resp.meta.as_ref()));
    text.push('\n');
    text
}
