//! `waymark-sample-app`: a small service to put behind the proxy in demos, tests and
//! benchmarks. HTTP/1.1 and h2 on one port: `/` answers with the instance name (also
//! in the `x-served-by` header), `/health` passes or fails as toggled by `POST /fail`
//! and `POST /recover`, `/slow?ms=N` answers after N ms, `POST /errors/on` makes
//! every other request answer 500 (the health check still passes) until
//! `POST /errors/off`; gRPC requests are served by grpc.health.v1 (SERVING or
//! NOT_SERVING with the health toggle).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tower_service_shim::call_grpc;

#[derive(Debug, Parser)]
#[command(
    name = "waymark-sample-app",
    about = "A sample service for Waymark demos and tests"
)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// The name it answers with.
    #[arg(long, default_value = "sample")]
    name: String,
}

struct App {
    name: HeaderValue,
    failing: AtomicBool,
    erroring: AtomicBool,
    reporter: HealthReporter,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let app = Arc::new(App {
        name: HeaderValue::from_str(&args.name)?,
        failing: AtomicBool::new(false),
        erroring: AtomicBool::new(false),
        reporter,
    });
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!(
        "waymark-sample-app {} listening on {}",
        args.name,
        listener.local_addr()?
    );
    let grpc = tonic::service::Routes::new(health_service);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (app, grpc) = (app.clone(), grpc.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (app, grpc) = (app.clone(), grpc.clone());
                async move { Ok::<_, Infallible>(handle(req, &app, grpc).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    app: &App,
    grpc: tonic::service::Routes,
) -> Response<tonic::body::Body> {
    let is_grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let mut resp = if is_grpc {
        call_grpc(grpc, req).await
    } else {
        plain(req, app).await
    };
    resp.headers_mut().insert("x-served-by", app.name.clone());
    resp
}

async fn plain(req: Request<Incoming>, app: &App) -> Response<tonic::body::Body> {
    let text = |status: StatusCode, body: String| {
        let mut r = Response::new(tonic::body::Body::new(Full::new(Bytes::from(body))));
        *r.status_mut() = status;
        r
    };
    let name = app.name.to_str().unwrap_or("sample").to_string();
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") if app.failing.load(Ordering::Relaxed) => {
            text(StatusCode::SERVICE_UNAVAILABLE, format!("{name} failing\n"))
        }
        (&Method::GET, "/health") => text(StatusCode::OK, format!("{name} ok\n")),
        (&Method::POST, "/fail") => {
            app.failing.store(true, Ordering::Relaxed);
            app.reporter
                .set_service_status("", ServingStatus::NotServing)
                .await;
            text(
                StatusCode::OK,
                format!("{name} now failing its health check\n"),
            )
        }
        (&Method::POST, "/recover") => {
            app.failing.store(false, Ordering::Relaxed);
            app.reporter
                .set_service_status("", ServingStatus::Serving)
                .await;
            text(
                StatusCode::OK,
                format!("{name} now passing its health check\n"),
            )
        }
        (&Method::POST, "/errors/on") => {
            app.erroring.store(true, Ordering::Relaxed);
            text(StatusCode::OK, format!("{name} now answers 500\n"))
        }
        (&Method::POST, "/errors/off") => {
            app.erroring.store(false, Ordering::Relaxed);
            text(StatusCode::OK, format!("{name} answers normally again\n"))
        }
        _ if app.erroring.load(Ordering::Relaxed) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{name} erroring\n"),
        ),
        (_, "/slow") => {
            let ms = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("ms="))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            text(StatusCode::OK, format!("{name}\n"))
        }
        _ => text(StatusCode::OK, format!("{name}\n")),
    }
}

/// Calling tonic's router as a tower service with hyper's request body.
mod tower_service_shim {
    use hyper::body::Incoming;
    use tower_service::Service;

    pub async fn call_grpc(
        mut routes: tonic::service::Routes,
        req: http::Request<Incoming>,
    ) -> http::Response<tonic::body::Body> {
        match routes.call(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    }
}
