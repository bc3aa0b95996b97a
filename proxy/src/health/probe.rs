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

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use http_body_util::Full;
    use tonic_health::ServingStatus as Serving;

    /// An HTTP server on loopback answering every request with `status`.
    async fn http_server(status: u16) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| async move {
                        let mut r = http::Response::new(Full::new(bytes::Bytes::from("x")));
                        *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(r)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    }

    /// A port with nothing listening (bound, then closed).
    fn closed_port() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    fn is_pass(o: &Outcome) -> bool {
        matches!(o, Outcome::Pass(_))
    }

    #[tokio::test]
    async fn tcp_passes_on_connect_and_fails_on_refusal() {
        let open = http_server(200).await;
        let t = Duration::from_secs(2);
        assert!(is_pass(
            &probe(
                &CheckTarget::Tcp {
                    addr: open.to_string()
                },
                t
            )
            .await
        ));
        let refused = probe(
            &CheckTarget::Tcp {
                addr: closed_port().to_string(),
            },
            t,
        )
        .await;
        assert!(
            matches!(refused, Outcome::Fail(ref out) if out.contains("TCP connect")),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn http_passes_on_2xx_warns_on_429_and_fails_otherwise() {
        let t = Duration::from_secs(2);
        let url = |addr: SocketAddr| CheckTarget::Http {
            url: format!("http://{addr}/health").parse().unwrap(),
        };
        assert!(is_pass(&probe(&url(http_server(204).await), t).await));
        assert!(matches!(
            probe(&url(http_server(429).await), t).await,
            Outcome::Warn(_)
        ));
        let failed = probe(&url(http_server(503).await), t).await;
        assert!(
            matches!(failed, Outcome::Fail(ref out) if out.contains("503")),
            "{failed:?}"
        );
        assert!(matches!(
            probe(&url(closed_port()), t).await,
            Outcome::Fail(_)
        ));
    }

    #[tokio::test]
    async fn grpc_follows_the_serving_status() {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter.set_service_status("api", Serving::Serving).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream_listener(listener)),
        );
        let target = |s: &str| CheckTarget::Grpc {
            addr: addr.to_string(),
            service: s.into(),
        };
        let t = Duration::from_secs(5);
        assert!(is_pass(&probe(&target("api"), t).await));
        reporter
            .set_service_status("api", Serving::NotServing)
            .await;
        let out = probe(&target("api"), t).await;
        assert!(
            matches!(out, Outcome::Fail(ref o) if o.contains("NOT_SERVING")),
            "{out:?}"
        );
        // An unknown service is NOT_FOUND from the server: a failure naming it.
        let out = probe(&target("nope"), t).await;
        assert!(
            matches!(out, Outcome::Fail(ref o) if o.contains("nope")),
            "{out:?}"
        );
    }

    fn tokio_stream_listener(
        listener: tokio::net::TcpListener,
    ) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
        futures::stream::unfold(listener, |l| async move {
            let r = l.accept().await.map(|(s, _)| s);
            Some((r, l))
        })
    }

    #[tokio::test]
    async fn a_probe_past_its_timeout_fails() {
        // Accepts, never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                held.push(listener.accept().await.unwrap());
            }
        });
        let out = probe(
            &CheckTarget::Http {
                url: format!("http://{addr}/").parse().unwrap(),
            },
            Duration::from_millis(200),
        )
        .await;
        assert!(
            matches!(out, Outcome::Fail(ref o) if o.contains("no answer within 200 ms")),
            "{out:?}"
        );
    }
}
