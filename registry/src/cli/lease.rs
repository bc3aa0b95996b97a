//! `waymark lease create|revoke|keep-alive`: leases by hand, for scripts that register
//! instances under a lease (`register --ttl` does all three for one instance).

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use waymark_proto::pb;

use super::client::{leases, rpc_error};
use super::keepalive::keep_alive;
use super::output::{emit, ms_text, print_line};
use super::parse::{duration_to_ms, parse_duration};
use super::signals::StopSignals;
use super::ClientOpts;

#[derive(Debug, Subcommand)]
pub(super) enum LeaseCommand {
    /// Create a lease; it expires after its TTL unless kept alive.
    Create(CreateArgs),
    /// Revoke a lease: the instances registered under it leave (or turn critical) now.
    Revoke(LeaseIdArgs),
    /// Renew a lease every TTL/3 until Ctrl-C or SIGTERM (which leave it to expire).
    KeepAlive(LeaseIdArgs),
}

#[derive(Debug, Args)]
pub(super) struct CreateArgs {
    /// Time to live, at least 2s (e.g. 10s, 1m).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    ttl: Duration,
    #[command(flatten)]
    client: ClientOpts,
}

#[derive(Debug, Args)]
pub(super) struct LeaseIdArgs {
    /// Lease id, as printed by `lease create`.
    #[arg(value_name = "ID", value_parser = clap::value_parser!(u64).range(1..))]
    id: u64,
    #[command(flatten)]
    client: ClientOpts,
}

pub(super) async fn run(cmd: LeaseCommand) -> anyhow::Result<()> {
    match cmd {
        LeaseCommand::Create(a) => {
            let resp = leases(&a.client)
                .await?
                .create_lease(pb::CreateLeaseRequest {
                    ttl_ms: duration_to_ms(a.ttl),
                })
                .await
                .map_err(|s| rpc_error(&a.client, s))?
                .into_inner();
            emit(
                a.client.json,
                || json!({ "lease_id": resp.lease_id, "ttl_ms": resp.ttl_ms, "index": resp.index }),
                || {
                    format!(
                        "created lease {} with ttl {} (index {})",
                        resp.lease_id,
                        ms_text(resp.ttl_ms),
                        resp.index
                    )
                },
            );
        }
        LeaseCommand::Revoke(a) => {
            let resp = leases(&a.client)
                .await?
                .revoke_lease(pb::RevokeLeaseRequest { lease_id: a.id })
                .await
                .map_err(|s| rpc_error(&a.client, s))?
                .into_inner();
            emit(
                a.client.json,
                || json!({ "revoked": resp.revoked, "index": resp.index }),
                || {
                    if resp.revoked {
                        format!("revoked lease {} (index {})", a.id, resp.index)
                    } else {
                        format!(
                            "lease {} did not exist; nothing revoked (index {})",
                            a.id, resp.index
                        )
                    }
                },
            );
        }
        LeaseCommand::KeepAlive(a) => {
            let mut stop = StopSignals::install()?;
            let (id, as_json) = (a.id, a.client.json);
            let first_grant = move |ttl: Duration| {
                let ttl_ms = duration_to_ms(ttl);
                let line = if as_json {
                    json!({ "lease_id": id, "ttl_ms": ttl_ms }).to_string()
                } else {
                    format!(
                        "keeping lease {id} alive (ttl {}) until Ctrl-C",
                        ms_text(ttl_ms)
                    )
                };
                // Nobody reading stdout is no reason to stop renewing.
                let _ = print_line(&line);
            };
            tokio::select! {
                e = keep_alive(&a.client, id, None, first_grant) => return Err(e),
                _ = stop.recv() => {
                    eprintln!("stopped renewing lease {id}; it expires after its TTL");
                }
            }
        }
    }
    Ok(())
}
