//! `waymark health set`: sets an instance's health status and check output
//! (UpdateHealth), e.g. from an external health checker.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use waymark_proto::pb;

use waymark_client::catalog;

use super::client::write;
use super::output::{self, emit, health_name};
use super::ClientOpts;

#[derive(Debug, Subcommand)]
pub(super) enum HealthCommand {
    /// Set an instance's health status and check output.
    Set(SetArgs),
}

/// A health status as a flag value (`--status`, `register --initial-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Status {
    Passing,
    Warning,
    Critical,
}

impl Status {
    pub(super) fn wire(self) -> pb::HealthStatus {
        match self {
            Status::Passing => pb::HealthStatus::Passing,
            Status::Warning => pb::HealthStatus::Warning,
            Status::Critical => pb::HealthStatus::Critical,
        }
    }
}

#[derive(Debug, Args)]
pub(super) struct SetArgs {
    #[arg(long)]
    service: String,
    #[arg(long)]
    id: String,
    /// The new status.
    #[arg(long, value_enum)]
    status: Status,
    /// Check output shown with the status (at most 4096 bytes) [default: none].
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "",
        hide_default_value = true
    )]
    output: String,
    #[command(flatten)]
    client: ClientOpts,
}

pub(super) async fn run(cmd: HealthCommand) -> anyhow::Result<()> {
    let HealthCommand::Set(a) = cmd;
    let request = pb::UpdateHealthRequest {
        service: a.service.clone(),
        id: a.id.clone(),
        status: a.status.wire() as i32,
        output: a.output,
    };
    let resp = write(&a.client, |ch| {
        let request = request.clone();
        async move { catalog(ch).update_health(request).await }
    })
    .await?;
    emit(
        a.client.json,
        || json!({ "instance": resp.instance.as_ref().map(output::instance_json), "index": resp.index }),
        || {
            // What the node stored, which is what was asked unless it raced another write.
            let status = resp.instance.as_ref().map_or_else(
                || health_name(a.status.wire() as i32),
                |i| health_name(i.status),
            );
            format!(
                "{}/{} is now {status} (index {})",
                a.service, a.id, resp.index
            )
        },
    );
    Ok(())
}
