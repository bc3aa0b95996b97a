//! Running one probe against the local app: a TCP connect, an HTTP GET, or a
//! grpc.health.v1 Check, each within the check's timeout.

use std::time::Duration;

use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::thresholds::Outcome;
use crate::config::CheckTarget;

/// Probes `target` once; a probe that runs past `timeout` fails.
pub async fn probe(target: &CheckTarget, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, run(target)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Fail(format!(
            "{}: no answer within {} ms",
            describe(target),
            timeout.as_millis()
        )),
    }
}

fn describe(target: &CheckTarget) -> String {
    match target {
        CheckTarget::Http { url } => format!("HTTP GET {url}"),
        CheckTarget::Tcp { addr } => format!("TCP connect {addr}"),
        CheckTarget::Grpc { addr, service } => {
            format!("gRPC health check {addr} service {service:?}")
        }
    }
}

async fn run(target: &CheckTarget) -> Outcome {
    let what = describe(target);
    match target {
        CheckTarget::Tcp { addr } => match TcpStream::connect(addr.as_str()).await {
            Ok(_) => Outcome::Pass(format!("{what}: connected")),
            Err(e) => Outcome::Fail(format!("{what}: {e}")),
        },
        CheckTarget::Http { url } => match http_get(url).await {
            Ok(code) if code.is_success() => Outcome::Pass(format!("{what}: {code}")),
            Ok(code) if code == http::StatusCode::TOO_MANY_REQUESTS => {
                Outcome::Warn(format!("{what}: {code}"))
            }
            Ok(code) => Outcome::Fail(format!("{what}: {code}")),
            Err(e) => Outcome::Fail(format!("{what}: {e}")),
        },
        CheckTarget::Grpc { addr, service } => match grpc_check(addr, service).await {
            Ok(ServingStatus::Serving) => Outcome::Pass(format!("{what}: SERVING")),
            Ok(status) => Outcome::Fail(format!("{what}: {}", status.as_str_name())),
            Err(e) => Outcome::Fail(format!("{what}: {e}")),
        },
    }
}

async fn http_get(url: &http::Uri) -> anyhow::Result<http::StatusCode> {
    let authority = url
        .authority()
        .ok_or_else(|| anyhow::anyhow!("no host in the URL"))?
        .clone();
    let stream = TcpStream::connect(authority.as_str()).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let request = http::Request::get(path)
        .header(http::header::HOST, authority.as_str())
        .header(http::header::USER_AGENT, "waymark-proxy health check")
        .body(Empty::<bytes::Bytes>::new())?;
    Ok(sender.send_request(request).await?.status())
}

async fn grpc_check(addr: &str, service: &str) -> anyhow::Result<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}: {}", s.code(), s.message()))?;
    Ok(ServingStatus::try_from(response.into_inner().status).unwrap_or(ServingStatus::Unknown))
}
