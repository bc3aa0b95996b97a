//! `waymark lease create|revoke|keep-alive`: leases by hand, for scripts that register
//! instances under a lease (`register --ttl` does all three for one instance).

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use waymark_client::{duration_to_ms, keep_alive, leases, parse_duration, KeepAliveEvent};
use waymark_proto::pb;

use super::client::write;
use super::output::{emit, ms_text, print_line};
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
            let request = pb::CreateLeaseRequest {
                ttl_ms: duration_to_ms(a.ttl),
            };
            let resp = write(&a.client, |ch| async move {
                leases(ch).create_lease(request).await
            })
            .await?;
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
            let request = pb::RevokeLeaseRequest { lease_id: a.id };
            let resp = write(&a.client, |ch| async move {
                leases(ch).revoke_lease(request).await
            })
            .await?;
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
            let on_event = move |event: KeepAliveEvent| {
                let ttl = match event {
                    KeepAliveEvent::Granted { ttl, first: true } => ttl,
                    KeepAliveEvent::Granted { .. } => return,
                    KeepAliveEvent::Reconnecting {
                        reason,
                        addr,
                        delay,
                    } => {
                        eprintln!(
                            "note: keeping lease {id} alive: {reason}; reconnecting to {addr} in {} ms",
                            delay.as_millis()
                        );
                        return;
                    }
                };
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
            let client = a.client.client();
            tokio::select! {
                e = keep_alive(&client, id, None, on_event) => return Err(e.into()),
                _ = stop.recv() => {
                    eprintln!("stopped renewing lease {id}; it expires after its TTL");
                }
            }
        }
    }
    Ok(())
}
