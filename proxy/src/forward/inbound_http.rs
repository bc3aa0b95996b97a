//! The inbound port in HTTP mode (`inbound.protocol = "http"`): each request from a
//! peer is decided by intention for the caller's verified service, then carried to
//! the local app over pooled connections in the version it came in. A denied request
//! is answered 403 (gRPC: status PERMISSION_DENIED) saying which intention decided,
//! and every decision is counted by source. Intentions then apply per request, so a
//! connection of a caller later denied stays open and gets 403s.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use waymark_proto::intention::Action;

use super::http::{
    local, outgoing_version, prepare, send, strip_hop_by_hop, Conns, ProxyBody, SendError,
    MAX_UNSENT_RETRIES,
};
use crate::mesh::Mesh;

/// gRPC's PERMISSION_DENIED.
const GRPC_PERMISSION_DENIED: &str = "7";

/// The local app, reached over HTTP.
#[derive(Debug)]
pub struct LocalApp {
    pub addr: Arc<str>,
    pub connect_timeout: Duration,
    conns: Conns,
}

impl LocalApp {
    pub fn new(addr: Arc<str>, connect_timeout: Duration) -> Self {
        Self {
            addr,
            connect_timeout,
            conns: Conns::default(),
        }
    }
}

/// The caller of an mTLS connection: the mesh that decides it, and its service.
pub type Caller = (Arc<Mesh>, String);

/// Serves the HTTP/1.1 or h2 requests on one inbound connection until it ends.
pub async fn serve<S>(stream: S, app: Arc<LocalApp>, caller: Option<Caller>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let caller = caller.map(Arc::new);
    let service = hyper::service::service_fn(move |req| {
        let (app, caller) = (app.clone(), caller.clone());
        // Boxed for the same reason as the outbound side's service future.
        let answered: Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>> =
            Box::pin(async move { answer(req, &app, caller.as_deref()).await });
        async move { Ok::<_, Infallible>(answered.await) }
    });
    let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "inbound HTTP connection ended with an error");
    }
}

/// Decides one request and, when allowed, forwards it to the app.
async fn answer(
    req: Request<Incoming>,
    app: &LocalApp,
    caller: Option<&Caller>,
) -> Response<ProxyBody> {
    if let Some((mesh, source)) = caller {
        let (action, why) = mesh.decide(source);
        mesh.metrics.request_decision(source, action);
        if action == Action::Deny {
            tracing::debug!(source = %source, decided_by = %why, "inbound request denied by intention");
            return denied(&req, &format!("{source} is denied by intention ({why})"));
        }
    }
    let version = outgoing_version(&req);
    let mut req = prepare(req, version);
    for _ in 0..=MAX_UNSENT_RETRIES {
        let connecting = app.conns.get(version, || super::dial(&app.addr));
        let sender = match tokio::time::timeout(app.connect_timeout, connecting).await {
            Ok(Ok(sender)) => sender,
            Ok(Err(e)) => {
                return local(
                    StatusCode::BAD_GATEWAY,
                    &format!("cannot reach the local app at {}: {e}", app.addr),
                )
            }
            Err(_) => {
                return local(
                    StatusCode::BAD_GATEWAY,
                    &format!("connecting to the local app at {} timed out", app.addr),
                )
            }
        };
        match send(&app.conns, sender, req).await {
            Ok(resp) => {
                let mut resp = resp.map(Either::Left);
                strip_hop_by_hop(resp.headers_mut());
                return resp;
            }
            // A pooled connection closed under us: nothing went out, go again.
            Err(SendError::NotSent(unsent)) => req = *unsent,
            Err(SendError::Failed(e)) => {
                return local(
                    StatusCode::BAD_GATEWAY,
                    &format!("the local app at {} failed: {e}", app.addr),
                )
            }
        }
    }
    local(
        StatusCode::BAD_GATEWAY,
        &format!("{MAX_UNSENT_RETRIES} connections closed before the request could be sent"),
    )
}

/// 403 with the reason, or for a gRPC call a trailers-only PERMISSION_DENIED (what a
/// gRPC client reports as a status rather than a transport error).
fn denied<B>(req: &Request<B>, why: &str) -> Response<ProxyBody> {
    let grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !grpc {
        return local(StatusCode::FORBIDDEN, why);
    }
    let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(
        "grpc-status",
        HeaderValue::from_static(GRPC_PERMISSION_DENIED),
    );
    if let Ok(message) = HeaderValue::from_str(&grpc_message(why)) {
        headers.insert("grpc-message", message);
    }
    resp
}

/// gRPC's percent-encoding of `grpc-message`: printable ASCII other than `%` as is,
/// every other byte as `%XX`.
fn grpc_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_encoded_outside_printable_ascii() {
        assert_eq!(grpc_message("web → api 100%"), "web %E2%86%92 api 100%25");
    }

    #[test]
    fn a_denied_grpc_call_gets_permission_denied_and_anything_else_403() {
        let grpc = Request::post("/pkg.Svc/Call")
            .header("content-type", "application/grpc+proto")
            .body(())
            .unwrap();
        let r = denied(&grpc, "web is denied");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "7");
        assert_eq!(r.headers()["grpc-message"], "web is denied");
        let plain = Request::get("/").body(()).unwrap();
        assert_eq!(
            denied(&plain, "web is denied").status(),
            StatusCode::FORBIDDEN
        );
    }
}
