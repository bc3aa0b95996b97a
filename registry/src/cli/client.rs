//! The client commands: build the request from flags, call the node at `--addr`, and
//! hand the response to `output`. gRPC failures become `CODE: message` errors.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tonic::transport::{Channel, Endpoint};
use waymark_proto::pb;
use waymark_proto::pb::catalog_client::CatalogClient;
use waymark_proto::pb::cluster_client::ClusterClient;
use waymark_proto::pb::leases_client::LeasesClient;

use super::output::{self, emit};
use super::parse::duration_to_ms;
use super::{health, lease, register, watch};
use super::{ClientCommand, ClientOpts, ReadArgs, ReadMode, UsageError};

/// Long enough for a loaded node, short enough that a wrong address fails fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

pub(super) fn run(cmd: ClientCommand) -> anyhow::Result<()> {
    // One request per process: a single-threaded runtime is all it needs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(dispatch(cmd))
}

async fn dispatch(cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Register(a) => register::run(a).await?,
        ClientCommand::Watch(a) => watch::run(a).await?,
        ClientCommand::Lease(c) => lease::run(c).await?,
        ClientCommand::Health(c) => health::run(c).await?,
        ClientCommand::Deregister(a) => {
            let request = pb::DeregisterRequest {
                service: a.service.clone(),
                id: a.id.clone(),
            };
            let resp = catalog(&a.client)
                .await?
                .deregister(request)
                .await
                .map_err(|s| rpc_error(&a.client, s))?
                .into_inner();
            emit(
                a.client.json,
                || json!({ "removed": resp.removed, "index": resp.index }),
                || {
                    if resp.removed {
                        format!("deregistered {}/{} (index {})", a.service, a.id, resp.index)
                    } else {
                        format!(
                            "{}/{} was not registered; nothing removed (index {})",
                            a.service, a.id, resp.index
                        )
                    }
                },
            );
        }
        ClientCommand::Get(a) => {
            let request = pb::GetInstanceRequest {
                service: a.service,
                id: a.id,
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = catalog(&a.client)
                .await?
                .get_instance(request)
                .await
                .map_err(|s| rpc_error(&a.client, s))?
                .into_inner();
            emit(
                a.client.json,
                || {
                    json!({
                        "instance": resp.instance.as_ref().map(output::instance_json),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || {
                    let body = resp.instance.as_ref().map_or_else(
                        || "(the server sent no instance)\n".to_string(),
                        output::instance_text,
                    );
                    format!("{body}\n{}\n", output::footer(resp.meta.as_ref()))
                },
            );
        }
        ClientCommand::Services(a) => {
            let request = pb::ListServicesRequest {
                read: Some(read_options(&a.read).map_err(UsageError)?),
            };
            let resp = catalog(&a.client)
                .await?
                .list_services(request)
                .await
                .map_err(|s| rpc_error(&a.client, s))?
                .into_inner();
            emit(
                a.client.json,
                || {
                    json!({
                        "services": resp.services.iter().map(output::service_json).collect::<Vec<_>>(),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || output::services_text(&resp.services, resp.meta.as_ref()),
            );
        }
        ClientCommand::Instances(a) => {
            let request = pb::ListInstancesRequest {
                service: a.service.clone(),
                read: Some(read_options(&a.read).map_err(UsageError)?),
                passing_only: a.passing_only,
            };
            let resp = catalog(&a.client)
                .await?
                .list_instances(request)
                .await
                .map_err(|s| rpc_error(&a.client, s))?
                .into_inner();
            emit(
                a.client.json,
                || {
                    json!({
                        "instances": resp.instances.iter().map(output::instance_json).collect::<Vec<_>>(),
                        "meta": output::meta_json(resp.meta.as_ref()),
                    })
                },
                || output::instances_text(&a.service, &resp.instances, resp.meta.as_ref()),
            );
        }
        ClientCommand::Members(a) => {
            let resp = cluster(&a.client)
                .await?
                .members(pb::MembersRequest {})
                .await
                .map_err(|s| rpc_error(&a.client, s))?
                .into_inner();
            emit(
                a.client.json,
                || {
                    json!({
                        "members": output::members_json(&resp.members),
                        "leader_id": resp.leader_id,
                        "index": resp.index,
                    })
                },
                || {
                    let leader = resp.leader_id.map_or_else(
                        || "no known leader".to_string(),
                        |id| format!("leader {id}"),
                    );
                    format!(
                        "{}{leader} · membership index {}\n",
                        output::members_table(&resp.members, resp.leader_id),
                        resp.index
                    )
                },
            );
        }
        ClientCommand::Status(a) => {
            let resp = cluster(&a.client)
                .await?
                .status(pb::StatusRequest {})
                .await
                .map_err(|s| rpc_error(&a.client, s))?
                .into_inner();
            emit(
                a.client.json,
                || output::status_json(&resp),
                || output::status_text(&resp),
            );
        }
        ClientCommand::AddMember(a) => {
            let request = pb::AddMemberRequest {
                node_id: a.id,
                api_addr: a.api_addr,
                raft_addr: a.raft_addr,
            };
            let resp = cluster(&a.client)
                .await?
                .add_member(request)
                .await
                .map_err(|s| rpc_error(&a.client, s))?
                .into_inner();
            emit(
                a.client.json,
                || json!({ "members": output::members_json(&resp.members), "index": resp.index }),
                || {
                    format!(
                        "added node {} (index {})\n\n{}",
                        a.id,
                        resp.index,
                        output::members_table(&resp.members, None)
                    )
                },
            );
        }
        ClientCommand::RemoveMember(a) => {
            let resp = cluster(&a.client)
                .await?
                .remove_member(pb::RemoveMemberRequest { node_id: a.id })
                .await
                .map_err(|s| rpc_error(&a.client, s))?
                .into_inner();
            emit(
                a.client.json,
                || json!({ "members": output::members_json(&resp.members), "index": resp.index }),
                || {
                    format!(
                        "removed node {} (index {})\n\n{}",
                        a.id,
                        resp.index,
                        output::members_table(&resp.members, None)
                    )
                },
            );
        }
    }
    Ok(())
}

/// Maps `--consistency`/`--max-stale` to the wire options. `--max-stale` alone means
/// a bounded stale read; with `--consistency consistent` it is a contradiction (the
/// server would reject it too, but less clearly).
fn read_options(read: &ReadArgs) -> Result<pb::ReadOptions, String> {
    let mode = match (read.consistency, read.max_stale) {
        (Some(ReadMode::Consistent), Some(_)) => {
            return Err("--max-stale only applies to --consistency stale".into())
        }
        (Some(mode), _) => mode,
        (None, Some(_)) => ReadMode::Stale,
        (None, None) => ReadMode::Consistent,
    };
    let consistency = match mode {
        ReadMode::Consistent => pb::Consistency::Consistent,
        ReadMode::Stale => pb::Consistency::Stale,
    };
    Ok(pb::ReadOptions {
        consistency: consistency as i32,
        max_stale_ms: read.max_stale.map_or(0, duration_to_ms),
    })
}

/// Connects eagerly, so an unreachable node is reported as such (with its address)
/// rather than as an `UNAVAILABLE` from the first call.
pub(super) async fn connect(opts: &ClientOpts) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(opts.addr.clone())
        .with_context(|| format!("invalid --addr {}", display_addr(&opts.addr)))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(opts.timeout);
    endpoint.connect().await.with_context(|| {
        format!(
            "could not reach a waymark node at {}",
            display_addr(&opts.addr)
        )
    })
}

/// Largest response the CLI accepts. tonic's 4 MiB default is too small for listing or
/// watching a large service (a snapshot carries every instance).
pub(super) const MAX_RESPONSE_BYTES: usize = 256 << 20;

pub(super) async fn catalog(opts: &ClientOpts) -> anyhow::Result<CatalogClient<Channel>> {
    Ok(CatalogClient::new(connect(opts).await?).max_decoding_message_size(MAX_RESPONSE_BYTES))
}

pub(super) async fn leases(opts: &ClientOpts) -> anyhow::Result<LeasesClient<Channel>> {
    Ok(LeasesClient::new(connect(opts).await?))
}

async fn cluster(opts: &ClientOpts) -> anyhow::Result<ClusterClient<Channel>> {
    Ok(ClusterClient::new(connect(opts).await?))
}

/// The address as the user typed it, without the `http://` we add for tonic.
pub(super) fn display_addr(uri: &str) -> &str {
    uri.strip_prefix("http://").unwrap_or(uri)
}

/// `CODE: message` for answers from the server. A status made on this side (it has a
/// source error: connection lost, timeout) also says which node was being talked to.
pub(super) fn rpc_error(opts: &ClientOpts, status: tonic::Status) -> anyhow::Error {
    let mut text = code_name(status.code()).to_string();
    if !status.message().is_empty() {
        text.push_str(": ");
        text.push_str(status.message());
    }
    if let Some(source) = std::error::Error::source(&status) {
        let mut cause = format!("request to {} failed: {text}", display_addr(&opts.addr));
        let mut last = String::new();
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(source);
        while let Some(e) = next {
            // Transport errors nest the same text more than once; show it once.
            let part = e.to_string();
            if part != last {
                cause.push_str(": ");
                cause.push_str(&part);
            }
            last = part;
            next = e.source();
        }
        return anyhow::anyhow!(cause);
    }
    anyhow::anyhow!(text)
}

/// Whether a long-running stream should be reopened after this error: the node is
/// unavailable (no leader, shutting down), the connection dropped, or the call was cut
/// short. Answers about the request itself (bad argument, unknown lease) are final.
pub(super) fn is_retryable(status: &tonic::Status) -> bool {
    use tonic::Code as C;
    // A status made on this side wraps the transport error that caused it.
    std::error::Error::source(status).is_some()
        || matches!(
            status.code(),
            C::Unavailable | C::Unknown | C::Cancelled | C::DeadlineExceeded | C::Aborted
        )
}

/// A failed stream call: `Ok(explanation)` when the stream is worth reopening,
/// `Err` when the failure is final.
pub(super) fn retry_reason(opts: &ClientOpts, status: tonic::Status) -> anyhow::Result<String> {
    let retry = is_retryable(&status);
    let e = rpc_error(opts, status);
    if retry {
        Ok(super::error_chain(&e))
    } else {
        Err(e)
    }
}

/// The canonical gRPC code names, as in the API docs (tonic's `Display` gives prose).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(consistency: Option<ReadMode>, max_stale: Option<Duration>) -> ReadArgs {
        ReadArgs {
            consistency,
            max_stale,
        }
    }

    #[test]
    fn read_modes() {
        let o = read_options(&read(None, None)).unwrap();
        assert_eq!(o.consistency, pb::Consistency::Consistent as i32);
        assert_eq!(o.max_stale_ms, 0);

        let o = read_options(&read(None, Some(Duration::from_secs(5)))).unwrap();
        assert_eq!(o.consistency, pb::Consistency::Stale as i32);
        assert_eq!(o.max_stale_ms, 5000);

        let o = read_options(&read(Some(ReadMode::Stale), None)).unwrap();
        assert_eq!(o.consistency, pb::Consistency::Stale as i32);

        let err = read_options(&read(
            Some(ReadMode::Consistent),
            Some(Duration::from_secs(1)),
        ));
        assert!(err.is_err());
    }

    #[test]
    fn server_errors_show_the_code() {
        let opts = ClientOpts {
            addr: "http://127.0.0.1:8500".into(),
            json: false,
            timeout: Duration::from_secs(1),
        };
        let e = rpc_error(&opts, tonic::Status::not_found("no instance web/web-1"));
        assert_eq!(e.to_string(), "NOT_FOUND: no instance web/web-1");
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(is_retryable(&tonic::Status::unavailable("no leader")));
        assert!(is_retryable(&tonic::Status::cancelled("stream reset")));
        assert!(!is_retryable(&tonic::Status::invalid_argument("bad")));
        assert!(!is_retryable(&tonic::Status::not_found("no lease")));
    }
}
