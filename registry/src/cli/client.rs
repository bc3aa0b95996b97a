//! The client commands: build the request from flags, call the nodes at `--addr`
//! (through `waymark-client`, which fails over between them), and hand the response to
//! `output`. gRPC failures become `CODE: message` errors.

use std::future::Future;

use anyhow::Context;
use serde_json::json;
use waymark_client::Channel;
use waymark_client::{catalog, cluster, duration_to_ms, CallPolicy};
use waymark_proto::pb;

use super::output::{self, emit};
use super::{acl, ca, config, health, instances, intention, lease, proxies, register, watch};
use super::{ClientCommand, ClientOpts, ReadArgs, ReadMode, UsageError};

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
        ClientCommand::Config(c) => config::run(c).await?,
        ClientCommand::Ca(c) => ca::run(c).await?,
        ClientCommand::Intention(c) => intention::run(c).await?,
        ClientCommand::Acl(c) => acl::run(c).await?,
        ClientCommand::Proxies(a) => proxies::run(a).await?,
        ClientCommand::Deregister(a) => {
            let request = pb::DeregisterRequest {
                service: a.service.clone(),
                id: a.id.clone(),
            };
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { catalog(ch).deregister(request).await }
            })
            .await?;
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
            let resp = read(&a.client, |ch| {
                let request = request.clone();
                async move { catalog(ch).get_instance(request).await }
            })
            .await?;
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
            let resp = read(&a.client, |ch| async move {
                catalog(ch).list_services(request).await
            })
            .await?;
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
        ClientCommand::Instances(a) => instances::run(a).await?,
        ClientCommand::Members(a) => {
            let resp = read(&a.client, |ch| async move {
                cluster(ch).members(pb::MembersRequest {}).await
            })
            .await?;
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
            // The Raft status of one node: the first in --addr, never another.
            let resp = once(&a.client, |ch| async move {
                cluster(ch).status(pb::StatusRequest {}).await
            })
            .await?;
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
            let resp = write(&a.client, |ch| {
                let request = request.clone();
                async move { cluster(ch).add_member(request).await }
            })
            .await?;
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
            let request = pb::RemoveMemberRequest { node_id: a.id };
            let resp = write(&a.client, |ch| async move {
                cluster(ch).remove_member(request).await
            })
            .await?;
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
pub(super) fn read_options(read: &ReadArgs) -> Result<pb::ReadOptions, String> {
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

/// A read: tried on each node of `--addr` in turn until one answers.
pub(super) async fn read<T, F, Fut>(opts: &ClientOpts, rpc: F) -> anyhow::Result<T>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let client = opts.client();
    let policy = CallPolicy::read(client.endpoints().len());
    Ok(client.call(policy, rpc).await?)
}

/// A write: moved to another node of `--addr` only when it certainly did not apply.
pub(super) async fn write<T, F, Fut>(opts: &ClientOpts, rpc: F) -> anyhow::Result<T>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let client = opts.client();
    let policy = CallPolicy::write(client.endpoints().len());
    Ok(client.call(policy, rpc).await?)
}

/// A call to the first node of `--addr` only.
async fn once<T, F, Fut>(opts: &ClientOpts, rpc: F) -> anyhow::Result<T>
where
    F: FnMut(Channel) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let policy = CallPolicy {
        attempts: 1,
        idempotent: true,
    };
    Ok(opts.client().call(policy, rpc).await?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
}
