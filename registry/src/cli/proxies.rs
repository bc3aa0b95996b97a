//! `waymark proxies [SERVICE]`: the instances registered by `waymark-proxy` (those
//! carrying the `waymark-mesh-port` meta), their health, and — asked from each proxy's
//! admin listener (`/endpoints`) — the root its mTLS leaf is from, and the endpoint
//! count, catalog index and fail-static state of every upstream the proxy routes to.

use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use waymark_client::catalog;
use waymark_proto::mesh::{MESH_PORT_META, PROXY_ADMIN_META};
use waymark_proto::pb;

use super::client::{read, read_options};
use super::output::{emit, health_name, Table};
use super::{ClientOpts, ReadArgs, UsageError};

/// How long one proxy's admin listener gets to answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest `/endpoints` answer read.
const MAX_ADMIN_BODY: u64 = 4 << 20;

#[derive(Debug, Args)]
pub(super) struct ProxiesArgs {
    /// Only the proxies of this service (default: every service).
    service: Option<String>,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    client: ClientOpts,
}

/// One proxied instance and what its admin listener said.
struct Proxy {
    instance: pb::Instance,
    admin: Option<String>,
    endpoints: Result<Value, String>,
}

pub(super) async fn run(a: ProxiesArgs) -> anyhow::Result<()> {
    let read_opts = read_options(&a.read).map_err(UsageError)?;
    let services = match &a.service {
        Some(s) => vec![s.clone()],
        None => {
            let request = pb::ListServicesRequest {
                read: Some(read_opts),
            };
            read(&a.client, |ch| async move {
                catalog(ch).list_services(request).await
            })
            .await?
            .services
            .into_iter()
            .map(|s| s.name)
            .collect()
        }
    };
    let mut proxies = Vec::new();
    for service in services {
        let request = pb::ListInstancesRequest {
            service,
            read: Some(read_opts),
            passing_only: false,
        };
        let instances = read(&a.client, |ch| {
            let request = request.clone();
            async move { catalog(ch).list_instances(request).await }
        })
        .await?
        .instances;
        for instance in instances {
            if !instance.meta.contains_key(MESH_PORT_META) {
                continue;
            }
            let admin = instance.meta.get(PROXY_ADMIN_META).cloned();
            let endpoints = match &admin {
                Some(addr) => fetch_endpoints(addr).await,
                None => Err("no admin address registered".into()),
            };
            proxies.push(Proxy {
                instance,
                admin,
                endpoints,
            });
        }
    }
    emit(
        a.client.json,
        || json!({ "proxies": proxies.iter().map(proxy_json).collect::<Vec<_>>() }),
        || proxies_text(&proxies),
    );
    Ok(())
}

/// GET `/endpoints` from a proxy's admin listener: plain HTTP/1.0, one request.
async fn fetch_endpoints(addr: &str) -> Result<Value, String> {
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let request = format!("GET /endpoints HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        stream
            .take(MAX_ADMIN_BODY)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| "not an HTTP answer".to_string())?;
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            return Err(head.lines().next().unwrap_or_default().to_string());
        }
        serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))
    };
    tokio::time::timeout(ADMIN_TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", ADMIN_TIMEOUT.as_secs())))
}

fn proxy_json(p: &Proxy) -> Value {
    json!({
        "service": p.instance.service,
        "id": p.instance.id,
        "address": p.instance.address,
        "port": p.instance.port,
        "mesh_port": p.instance.meta.get(MESH_PORT_META),
        "status": health_name(p.instance.status),
        "admin": p.admin,
        "mesh": p.endpoints.as_ref().ok().map(|e| e["mesh"].clone()),
        "upstreams": p.endpoints.as_ref().ok().map(|e| e["upstreams"].clone()),
        "error": p.endpoints.as_ref().err(),
    })
}

/// `api: 3 endpoints at index 42` per upstream, or why the proxy did not say.
fn upstreams_text(endpoints: &Result<Value, String>) -> String {
    let json = match endpoints {
        Err(e) => return format!("(admin unreachable: {e})"),
        Ok(j) => j,
    };
    let Some(upstreams) = json["upstreams"].as_array() else {
        return "(no upstreams in the answer)".into();
    };
    if upstreams.is_empty() {
        return "-".into();
    }
    upstreams
        .iter()
        .map(|u| {
            let count = u["endpoints"].as_array().map_or(0, Vec::len);
            let mut text = format!(
                "{}: {count} endpoint{} at index {}",
                u["service"].as_str().unwrap_or("?"),
                if count == 1 { "" } else { "s" },
                u["index"]
            );
            if u["fail_static"] == true {
                text.push_str(" (fail static)");
            }
            text
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The root the proxy's mTLS leaf is from (`-`: mTLS off, `?`: unknown).
fn leaf_root_text(endpoints: &Result<Value, String>) -> String {
    match endpoints {
        Err(_) => "?".into(),
        Ok(j) if j["mesh"].is_null() => "-".into(),
        Ok(j) => match j["mesh"]["leaf_root"].as_str() {
            Some("") | None => "(no leaf yet)".into(),
            Some(root) => root.to_string(),
        },
    }
}

fn proxies_text(proxies: &[Proxy]) -> String {
    if proxies.is_empty() {
        return "no instances registered by waymark-proxy\n".into();
    }
    let mut table = Table::new(&[
        "INSTANCE",
        "ADDRESS",
        "MESH PORT",
        "HEALTH",
        "LEAF ROOT",
        "UPSTREAMS",
    ]);
    for p in proxies {
        table.row(vec![
            format!("{}/{}", p.instance.service, p.instance.id),
            format!("{}:{}", p.instance.address, p.instance.port),
            p.instance
                .meta
                .get(MESH_PORT_META)
                .cloned()
                .unwrap_or_default(),
            health_name(p.instance.status),
            leaf_root_text(&p.endpoints),
            upstreams_text(&p.endpoints),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_summarised_with_their_index_and_fail_static() {
        let answer = json!({"upstreams": [
            {"service": "api", "index": 42, "fail_static": false, "endpoints": [{}, {}, {}]},
            {"service": "db", "index": 40, "fail_static": true, "endpoints": [{}]},
        ]});
        assert_eq!(
            upstreams_text(&Ok(answer)),
            "api: 3 endpoints at index 42, db: 1 endpoint at index 40 (fail static)"
        );
        assert_eq!(
            upstreams_text(&Err("connection refused".into())),
            "(admin unreachable: connection refused)"
        );
    }

    #[test]
    fn the_leaf_root_column_says_whether_mtls_is_on() {
        assert_eq!(leaf_root_text(&Ok(json!({"mesh": null}))), "-");
        assert_eq!(
            leaf_root_text(&Ok(json!({"mesh": {"leaf_root": "3f2a9c1d5e6f7a8b"}}))),
            "3f2a9c1d5e6f7a8b"
        );
        assert_eq!(
            leaf_root_text(&Ok(json!({"mesh": {"leaf_root": ""}}))),
            "(no leaf yet)"
        );
        assert_eq!(leaf_root_text(&Err("refused".into())), "?");
    }
}
