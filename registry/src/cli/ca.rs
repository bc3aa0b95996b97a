//! `waymark ca roots|rotate|retire`: the mesh CA (the Identity service). Rotation adds a
//! new active root (generated, or imported from files) cross-signed by the previous
//! one; the previous one stays trusted until `retire`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use waymark_client::identity as identity_client;
use waymark_proto::pb;

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

/// The certificates of a PEM file, each as its own PEM text.
fn split_pem(text: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    text.split_inclusive(END)
        .filter(|part| part.contains("-----BEGIN CERTIFICATE-----"))
        .map(|part| format!("{}\n", part.trim()))
        .collect()
}

pub(super) async fn run(cmd: CaCommand) -> anyhow::Result<()> {
    match cmd {
        CaCommand::Roots(a) => {
            let request = pb::ListRootsRequest {
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = read(&a.client, |ch| {
                let request = request.clone();
                async move { identity_client(ch).list_roots(request).await }
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
                chain_pem: split_pem(&read_file(&a.chain)?),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_file_splits_into_certificates() {
        let one = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----";
        let two = "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----";
        let parts = split_pem(&format!("{one}\n{two}\n"));
        assert_eq!(parts, [format!("{one}\n"), format!("{two}\n")]);
        assert!(split_pem("").is_empty());
    }
}
