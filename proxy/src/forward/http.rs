//! HTTP forwarding, balanced per request: the local app speaks HTTP/1.1 or h2 (gRPC
//! included) to the upstream's listener, told apart here by the h2 preface; h2 is
//! relayed by `h2_relay`, HTTP/1.1 by `h1_relay`, and this module is the hyper path
//! for the HTTP/1.1 the relay does not carry (HTTP/1.0, Expect, Upgrade, chunked or
//! long request bodies), with what both HTTP/1.1 paths and the inbound side share
//! (`prepare`, `strip_hop_by_hop`, `is_failure`, the `Conns` pool). Each request goes
//! to an endpoint chosen by the policy, over a pooled connection; a failed connect,
//! or a pooled connection that closed before the request went out, is retried on
//! another endpoint. With no endpoint the answer is 503 with a body saying why; all
//! connects failing is 502; no response headers within the request timeout is 504.
//! 5xx and gRPC UNAVAILABLE count as endpoint failures for outlier detection.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1 as client_http1, http2};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::prefixed::{sniff, Prefixed};
use super::{connect_any, h1_relay, h2_relay, used, Connections, NoConnection};
use crate::endpoints::Endpoint;
use crate::upstream::Upstream;

/// A response body: the endpoint's, streamed through, or the proxy's own.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Idle HTTP/1.1 connections kept per endpoint (or per local app, inbound).
const MAX_IDLE_H1: usize = 256;
/// Pooled connections that may close under one request before it gives up.
pub(super) const MAX_UNSENT_RETRIES: u32 = 3;

/// Pooled connections to one endpoint (HTTP/1.1) or to the local app (inbound, both
/// versions).
#[derive(Default)]
pub struct Conns {
    h1: std::sync::Mutex<Vec<client_http1::SendRequest<Incoming>>>,
    /// The h2 connection every h2 request shares: used inbound, to the local app
    /// (outbound h2 is relayed by `h2_relay` over `Endpoint::h2`).
    h2: std::sync::Mutex<Option<http2::SendRequest<Incoming>>>,
    /// Held across an h2 connect so concurrent requests share one new connection.
    h2_connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Conns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.h1.lock().map(|v| v.len()).unwrap_or(0);
        f.debug_struct("Conns").field("idle_h1", &idle).finish()
    }
}

/// A connection ready to take one request.
pub(super) enum Sender {
    H1(client_http1::SendRequest<Incoming>),
    H2(http2::SendRequest<Incoming>),
}

impl Conns {
    /// A pooled connection when there is one; otherwise a new one over what `dial`
    /// connects. The connect is boxed: its futures (dial, handshake) are large and
    /// rare, and every request's future would otherwise carry them (and be copied
    /// with them) on each move.
    pub(super) async fn get<D, Fut, S>(&self, version: Version, dial: D) -> Result<Sender, String>
    where
        D: FnOnce() -> Fut,
        Fut: Future<Output = Result<S, String>>,
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        if version == Version::HTTP_2 {
            if let Some(s) = self.open_h2() {
                return Ok(Sender::H2(s));
            }
            return Box::pin(self.connect_h2(dial)).await.map(Sender::H2);
        }
        if let Some(s) = self.take_idle_h1() {
            return Ok(Sender::H1(s));
        }
        Box::pin(connect_h1(dial)).await.map(Sender::H1)
    }

    fn open_h2(&self) -> Option<http2::SendRequest<Incoming>> {
        let h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        h2.as_ref().filter(|s| !s.is_closed()).cloned()
    }

    async fn connect_h2<D, Fut, S>(&self, dial: D) -> Result<http2::SendRequest<Incoming>, String>
    where
        D: FnOnce() -> Fut,
        Fut: Future<Output = Result<S, String>>,
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let _connecting = self.h2_connecting.lock().await;
        // Another request may have connected while this one waited.
        if let Some(s) = self.open_h2() {
            return Ok(s);
        }
        let stream = dial().await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        *self.h2.lock().unwrap_or_else(|p| p.into_inner()) = Some(sender.clone());
        Ok(sender)
    }

    fn take_idle_h1(&self) -> Option<client_http1::SendRequest<Incoming>> {
        let mut idle = self.h1.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|s| !s.is_closed());
        let ready = idle.iter().rposition(|s| s.is_ready())?;
        Some(idle.swap_remove(ready))
    }

    /// Back to the pool once the response headers are in; it is taken again only when
    /// ready (its previous body fully read).
    fn put_h1(&self, sender: client_http1::SendRequest<Incoming>) {
        let mut idle = self.h1.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_IDLE_H1 {
            idle.remove(0);
        }
        idle.push(sender);
    }
}

async fn connect_h1<D, Fut, S>(dial: D) -> Result<client_http1::SendRequest<Incoming>, String>
where
    D: FnOnce() -> Fut,
    Fut: Future<Output = Result<S, String>>,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let stream = dial().await?;
    let (sender, conn) = client_http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP/1.1 handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Serves HTTP/1.1 or h2 from the local app on one accepted connection: h2 (told by
/// its connection preface) is relayed stream by stream (`h2_relay`), HTTP/1.1
/// message by message (`h1_relay`, which hands what it does not carry to hyper here).
pub async fn upstream_connection(
    mut stream: TcpStream,
    upstream: Arc<Upstream>,
    connections: Connections,
) {
    upstream.metrics.open_connections.inc();
    let open = upstream.clone();
    let sniffed = tokio::select! {
        s = sniff(&mut stream, h2_relay::PREFACE) => s,
        // Draining before the app said anything: nothing is in flight.
        () = connections.closing.cancelled() => Ok((false, Vec::new())),
    };
    match sniffed {
        Ok((_, read)) if read.is_empty() => {}
        Ok((true, read)) => {
            let closing = connections.closing.clone();
            h2_relay::serve(Prefixed::new(read, stream), upstream, closing).await;
        }
        Ok((false, read)) => h1_relay::serve(stream, read, upstream, connections).await,
        Err(e) => tracing::debug!(error = %e, "reading from the app failed"),
    }
    open.metrics.open_connections.dec();
}

/// HTTP/1.1 requests from the app, each forwarded on its own through hyper: what the
/// relay (`h1_relay`) does not carry.
pub(super) async fn serve_h1(
    io: Prefixed<TcpStream>,
    upstream: Arc<Upstream>,
    connections: Connections,
) {
    let service = hyper::service::service_fn(move |req| {
        let upstream = upstream.clone();
        // Boxed: hyper moves the service future (into the dispatcher's slot); a
        // pointer moves for free, the ~1.4 KB forwarding state machine would be
        // copied at every step.
        let forwarded: Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>> =
            Box::pin(async move { forward(req, &upstream).await });
        async move { Ok::<_, Infallible>(forwarded.await) }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = connections.closing.cancelled() => {
            // Draining: finish the request in flight, then close (keep-alive off).
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "downstream HTTP connection ended with an error");
    }
}

/// Forwards one request; always answers (errors become 502/503/504 responses).
async fn forward(req: Request<Incoming>, upstream: &Upstream) -> Response<ProxyBody> {
    let started = Instant::now();
    let m = &upstream.metrics;
    m.requests.inc();
    let version = outgoing_version(&req);
    let mut req = prepare(req, version);
    let mut unsent_retries = 0;
    let mut response = loop {
        let connected = connect_any(upstream, |e: Arc<Endpoint>| async move {
            e.conns.get(version, || upstream.connect(&e)).await
        })
        .await;
        let (endpoint, sender) = match connected {
            Ok(c) => c,
            Err(NoConnection::NoEndpoint(why)) => {
                break local(StatusCode::SERVICE_UNAVAILABLE, &why)
            }
            Err(e) => break local(StatusCode::BAD_GATEWAY, &e.to_string()),
        };
        used(&endpoint);
        let in_flight = endpoint.load.start();
        let sent = send(&endpoint.conns, sender, req);
        let outcome = match upstream.config.request_timeout {
            Some(t) => tokio::time::timeout(t, sent).await.ok(),
            None => Some(sent.await),
        };
        match outcome {
            None => {
                m.timeouts.inc();
                upstream.failed(&endpoint, "request timeout");
                break local(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!(
                        "{} ({}) sent no response within {} ms",
                        endpoint.id,
                        endpoint.addr,
                        upstream.config.request_timeout.map_or(0, |t| t.as_millis())
                    ),
                );
            }
            Some(Ok(resp)) => {
                in_flight.responded();
                if is_failure(resp.status(), resp.headers()) {
                    upstream.failed(&endpoint, &format!("answered {}", resp.status()));
                } else {
                    upstream.succeeded(&endpoint);
                }
                break resp.map(Either::Left);
            }
            Some(Err(SendError::NotSent(_))) if unsent_retries == MAX_UNSENT_RETRIES => {
                break local(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "{MAX_UNSENT_RETRIES} connections closed before the request could be sent"
                    ),
                );
            }
            Some(Err(SendError::NotSent(unsent))) => {
                // A pooled connection closed under us: nothing went out, go again.
                m.retries.inc();
                unsent_retries += 1;
                req = *unsent;
            }
            Some(Err(SendError::Failed(e))) => {
                upstream.failed(&endpoint, &e);
                break local(
                    StatusCode::BAD_GATEWAY,
                    &format!("{} ({}) failed: {e}", endpoint.id, endpoint.addr),
                );
            }
        }
    };
    strip_hop_by_hop(response.headers_mut());
    m.response(response.status());
    m.latency.observe(started.elapsed().as_secs_f64());
    response
}

pub(super) enum SendError {
    /// The connection was not usable; the request comes back unsent.
    NotSent(Box<Request<Incoming>>),
    Failed(String),
}

/// Sends `req` on `sender`, a connection from `conns` (an HTTP/1.1 one goes back to
/// the pool once the response headers are in).
pub(super) async fn send(
    conns: &Conns,
    sender: Sender,
    req: Request<Incoming>,
) -> Result<Response<Incoming>, SendError> {
    let result = match sender {
        Sender::H2(mut s) => s.try_send_request(req).await,
        Sender::H1(mut s) => {
            let sent = s.try_send_request(req);
            let result = sent.await;
            if result.is_ok() {
                conns.put_h1(s);
            }
            result
        }
    };
    result.map_err(|mut e| match e.take_message() {
        Some(req) => SendError::NotSent(Box::new(req)),
        None => SendError::Failed(e.into_error().to_string()),
    })
}

/// 5xx, or a gRPC UNAVAILABLE in the headers (a trailers-only response).
pub(super) fn is_failure(status: StatusCode, headers: &HeaderMap) -> bool {
    status.is_server_error()
        || headers
            .get("grpc-status")
            .is_some_and(|v| v.as_bytes() == b"14")
}

/// The proxy's own answer, with a body saying why.
pub(super) fn local(status: StatusCode, why: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(format!(
        "waymark-proxy: {why}\n"
    )))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// h2 goes on as h2; HTTP/1.0 and 1.1 as HTTP/1.1.
pub(super) fn outgoing_version<B>(req: &Request<B>) -> Version {
    if req.version() == Version::HTTP_2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    }
}

/// Makes the app's request into the one sent on: hop-by-hop headers removed, the
/// URI in the form the outgoing version needs (origin-form for HTTP/1.1 with a Host
/// header; scheme and authority for h2). The usual requests (origin-form with a Host
/// over HTTP/1.1, absolute over h2) keep their URI as it is.
pub(super) fn prepare<B>(mut req: Request<B>, version: Version) -> Request<B> {
    strip_hop_by_hop(req.headers_mut());
    let uri = req.uri();
    if version == Version::HTTP_2 {
        if uri.scheme().is_none() || uri.authority().is_none() {
            let authority = host_header(&req).unwrap_or_else(|| "localhost".into());
            let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
            if let Ok(uri) = Uri::builder()
                .scheme("http")
                .authority(authority.as_str())
                .path_and_query(path.as_str())
                .build()
            {
                *req.uri_mut() = uri;
            }
        }
        req.headers_mut().remove(header::HOST);
        return req;
    }
    if let Some(authority) = uri.authority().map(|a| a.to_string()) {
        // Absolute-form: HTTP/1.1 sends origin-form with the authority as Host.
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        if let Ok(origin) = path.parse() {
            *req.uri_mut() = origin;
        }
        if !req.headers().contains_key(header::HOST) {
            if let Ok(v) = HeaderValue::from_str(&authority) {
                req.headers_mut().insert(header::HOST, v);
            }
        }
    }
    if !req.headers().contains_key(header::HOST) {
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_static("localhost"));
    }
    *req.version_mut() = Version::HTTP_11;
    req
}

fn host_header<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
}

/// Removes the headers that describe one connection, not the message (RFC 9110 7.6.1),
/// keeping `te: trailers` (gRPC needs it).
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them: one pass over the names, no removals.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
    let te_trailers = headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    headers.remove(header::TE);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::PROXY_AUTHENTICATE
        || *name == header::PROXY_AUTHORIZATION
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
        || *name == header::TE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed_but_te_trailers_kept() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers, deflate"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn requests_get_the_uri_form_their_outgoing_version_needs() {
        // HTTP/1.1 origin-form with a Host: unchanged.
        let r = prepare(
            Request::get("/a?b=1")
                .header("host", "api")
                .body(())
                .unwrap(),
            Version::HTTP_11,
        );
        assert_eq!(
            (r.uri().to_string(), r.headers()["host"].to_str().unwrap()),
            ("/a?b=1".to_string(), "api")
        );
        // Absolute-form (as to a forward proxy): origin-form, authority as Host.
        let r = prepare(
            Request::get("http://api:80/a").body(()).unwrap(),
            Version::HTTP_11,
        );
        assert_eq!(
            (r.uri().to_string(), r.headers()["host"].to_str().unwrap()),
            ("/a".to_string(), "api:80")
        );
        // HTTP/1.0 without a Host: one is supplied, and it goes out as HTTP/1.1.
        let r = prepare(
            Request::get("/")
                .version(Version::HTTP_10)
                .body(())
                .unwrap(),
            Version::HTTP_11,
        );
        assert_eq!(
            (r.version(), r.headers()["host"].to_str().unwrap()),
            (Version::HTTP_11, "localhost")
        );
        // h2 keeps its absolute URI and carries no Host header.
        let r = prepare(
            Request::get("http://api/x")
                .header("host", "api")
                .body(())
                .unwrap(),
            Version::HTTP_2,
        );
        assert_eq!(r.uri().to_string(), "http://api/x");
        assert!(!r.headers().contains_key("host"));
    }

    #[test]
    fn local_answers_say_why() {
        let r = local(StatusCode::SERVICE_UNAVAILABLE, "no passing instance");
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    }
}
