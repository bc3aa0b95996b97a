//! HTTP/1.1 from the local app, relayed message by message without hyper: one task
//! per app connection reads a request head (`h1_codec`), balances the request on its
//! own, writes it to a pooled connection of the chosen endpoint, and passes the
//! response back as it was framed, its body bytes unchanged. Why not hyper here: its
//! server dispatcher and its client connection task cost two tasks, a channel hop and
//! a oneshot per request, most of the proxy's user CPU per HTTP/1.1 request
//! (benches/results/proxy-compare.md). What the relay does not carry (HTTP/1.0,
//! CONNECT, Expect, Upgrade, chunked or long request bodies, malformed heads) is
//! handed to hyper's path (`http::serve_h1`) for the rest of that connection. The
//! answers are that path's: 503 with no endpoint, 502 when connecting or the endpoint
//! fails, 504 without a response head within the request timeout; 5xx and gRPC
//! UNAVAILABLE count as endpoint failures.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Buf, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::h1_codec::{
    check_request, end_head, local_response, parse_response, ChunkedEnd, Framing, RequestCheck,
    RequestHead, ResponseHead,
};
use super::http::{serve_h1, MAX_UNSENT_RETRIES};
use super::prefixed::Prefixed;
use super::{connect_any, used, Connections, NoConnection};
use crate::endpoints::Endpoint;
use crate::mesh::stream::MeshStream;
use crate::upstream::Upstream;

/// Idle connections kept per endpoint.
const MAX_IDLE: usize = 256;
/// Read size on both sides.
const READ_CHUNK: usize = 16 << 10;

/// An endpoint's idle HTTP/1.1 connections, each between two exchanges.
#[derive(Default)]
pub struct H1Idle {
    idle: Mutex<Vec<MeshStream>>,
}

impl std::fmt::Debug for H1Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.lock().map(|v| v.len()).unwrap_or(0);
        f.debug_struct("H1Idle").field("idle", &idle).finish()
    }
}

impl H1Idle {
    /// The most recently used idle connection that is still open, if any. The
    /// oldest one is looked at too, and dropped when the endpoint closed it: under
    /// light traffic the bottom of the stack is never taken, and would otherwise keep
    /// its closed socket until pushed out.
    fn take(&self) -> Option<MeshStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.first_mut().is_some_and(|oldest| !still_open(oldest)) {
            idle.remove(0);
        }
        while let Some(mut conn) = idle.pop() {
            if still_open(&mut conn) {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, conn: MeshStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push(conn);
    }
}

/// Whether an idle connection can take a request: nothing arrived on it since its
/// last response (an endpoint that closed it sent FIN; anything else is out of
/// place). Free in the usual case: the runtime knows the socket is not readable.
fn still_open(conn: &mut MeshStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let mut probe = [0u8; 1];
    let mut buf = ReadBuf::new(&mut probe);
    matches!(
        std::pin::Pin::new(conn).poll_read(&mut cx, &mut buf),
        Poll::Pending
    )
}

/// One app connection and the buffers it reuses for every exchange.
struct AppConn {
    app: TcpStream,
    upstream: Arc<Upstream>,
    connections: Connections,
    /// Bytes from the app not yet relayed.
    from_app: BytesMut,
    /// Bytes from the endpoint not yet relayed.
    from_endpoint: BytesMut,
    /// What is written next to the app.
    out: Vec<u8>,
}

/// Serves the HTTP/1.1 requests of one app connection, `read` being its first bytes.
pub async fn serve(
    app: TcpStream,
    read: Vec<u8>,
    upstream: Arc<Upstream>,
    connections: Connections,
) {
    let mut from_app = BytesMut::with_capacity(READ_CHUNK.max(read.len()));
    from_app.extend_from_slice(&read);
    let mut conn = AppConn {
        app,
        upstream,
        connections,
        from_app,
        from_endpoint: BytesMut::with_capacity(READ_CHUNK),
        out: Vec::with_capacity(READ_CHUNK),
    };
    loop {
        let head = loop {
            match check_request(&conn.from_app) {
                RequestCheck::Relay(head) => break head,
                RequestCheck::Partial => {}
                RequestCheck::Hyper(why) => {
                    tracing::trace!(why, "HTTP/1.1 connection handed to hyper");
                    let io = Prefixed::new(conn.from_app.to_vec(), conn.app);
                    return serve_h1(io, conn.upstream, conn.connections).await;
                }
            }
            // Reclaims the space of requests already relayed (and keeps reads large).
            conn.from_app.reserve(READ_CHUNK);
            // Between requests a draining proxy closes the connection.
            let read = if conn.from_app.is_empty() {
                tokio::select! {
                    () = conn.connections.closing.cancelled() => return,
                    r = conn.app.read_buf(&mut conn.from_app) => r,
                }
            } else {
                conn.app.read_buf(&mut conn.from_app).await
            };
            if !matches!(read, Ok(n) if n > 0) {
                return;
            }
        };
        let request_len = head.head_len + head.body_len;
        while conn.from_app.len() < request_len {
            conn.from_app.reserve(request_len - conn.from_app.len());
            if !matches!(conn.app.read_buf(&mut conn.from_app).await, Ok(n) if n > 0) {
                return;
            }
        }
        let request = conn.from_app.split_to(request_len);
        let keep_open = conn.exchange(&request, &head).await;
        if !keep_open {
            let _ = conn.app.shutdown().await;
            return;
        }
    }
}

/// Why the endpoint gave no response.
enum NoResponse {
    /// It closed before answering anything: on a reused connection it may have closed
    /// it as idle just as the request went out.
    Closed(String),
    Failed(String),
    /// Writing an interim response to the app failed: nobody is left to answer.
    AppGone,
}

impl AppConn {
    /// Relays one request and its response. Returns whether the app connection stays
    /// open for the next request.
    async fn exchange(&mut self, request: &[u8], head: &RequestHead) -> bool {
        let started = Instant::now();
        let upstream = self.upstream.clone();
        let m = &upstream.metrics;
        m.requests.inc();
        let mut retries = 0;
        let (endpoint, mut to_endpoint, response) = loop {
            let connected = connect_any(&upstream, |e: Arc<Endpoint>| {
                let upstream = &upstream;
                async move {
                    match e.h1.take() {
                        Some(conn) => Ok((conn, true)),
                        None => Box::pin(upstream.connect(&e)).await.map(|c| (c, false)),
                    }
                }
            })
            .await;
            let (endpoint, (mut to_endpoint, reused)) = match connected {
                Ok(c) => c,
                Err(NoConnection::NoEndpoint(why)) => {
                    return self
                        .answer_locally(StatusCode::SERVICE_UNAVAILABLE, &why, head, started)
                        .await
                }
                Err(e) => {
                    return self
                        .answer_locally(StatusCode::BAD_GATEWAY, &e.to_string(), head, started)
                        .await
                }
            };
            used(&endpoint);
            let in_flight = endpoint.load.start();
            self.from_endpoint.clear();
            let answered = async {
                send_request(&mut to_endpoint, request, head).await?;
                self.read_response_head(&mut to_endpoint, head).await
            };
            let outcome = match upstream.config.request_timeout {
                Some(t) => tokio::time::timeout(t, answered).await.ok(),
                None => Some(answered.await),
            };
            let (status, why) = match outcome {
                Some(Ok(response)) => {
                    in_flight.responded();
                    break (endpoint, to_endpoint, response);
                }
                None => {
                    m.timeouts.inc();
                    upstream.failed(&endpoint, "request timeout");
                    let why = format!(
                        "{} ({}) sent no response within {} ms",
                        endpoint.id,
                        endpoint.addr,
                        upstream.config.request_timeout.map_or(0, |t| t.as_millis())
                    );
                    (StatusCode::GATEWAY_TIMEOUT, why)
                }
                Some(Err(NoResponse::Closed(_)))
                    if reused && head.replayable && retries < MAX_UNSENT_RETRIES =>
                {
                    // An idle connection the endpoint closed under the request: it was
                    // not processed there, and sending it again is safe.
                    m.retries.inc();
                    retries += 1;
                    continue;
                }
                // Not the endpoint's failure; the app connection closes.
                Some(Err(NoResponse::AppGone)) => return false,
                Some(Err(NoResponse::Closed(e) | NoResponse::Failed(e))) => {
                    upstream.failed(&endpoint, &e);
                    (
                        StatusCode::BAD_GATEWAY,
                        format!("{} ({}) failed: {e}", endpoint.id, endpoint.addr),
                    )
                }
            };
            return self.answer_locally(status, &why, head, started).await;
        };
        if response.status >= 500 || response.grpc_unavailable {
            upstream.failed(&endpoint, &format!("answered {}", response.status));
        } else {
            upstream.succeeded(&endpoint);
        }
        m.response(StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY));
        m.latency.observe(started.elapsed().as_secs_f64());
        let close_app = !head.keep_alive
            || self.connections.closing.is_cancelled()
            || response.framing == Framing::UntilClose;
        let relayed = self
            .relay_response(&mut to_endpoint, &response, close_app)
            .await;
        let reusable = relayed.is_ok()
            && !response.endpoint_closes
            && response.framing != Framing::UntilClose
            && self.from_endpoint.is_empty();
        if reusable {
            endpoint.h1.put(to_endpoint);
        }
        relayed.is_ok() && !close_app
    }

    /// Reads the final response head off `from_endpoint` (the head to send to the app
    /// is left in `out`, unfinished), passing interim (1xx) responses on to the app.
    async fn read_response_head(
        &mut self,
        to_endpoint: &mut MeshStream,
        head: &RequestHead,
    ) -> Result<ResponseHead, NoResponse> {
        let mut interim_sent = false;
        loop {
            self.out.clear();
            match parse_response(&self.from_endpoint, head.is_head, &mut self.out) {
                Ok(Some(response)) if response.status == 101 => {
                    return Err(NoResponse::Failed(
                        "answered 101 Switching Protocols to a request without Upgrade".into(),
                    ))
                }
                Ok(Some(response)) if response.is_interim() => {
                    end_head(&mut self.out, false);
                    self.from_endpoint.advance(response.head_len);
                    self.app
                        .write_all(&self.out)
                        .await
                        .map_err(|_| NoResponse::AppGone)?;
                    interim_sent = true;
                    continue;
                }
                Ok(Some(response)) => {
                    self.from_endpoint.advance(response.head_len);
                    return Ok(response);
                }
                Ok(None) => {}
                Err(e) => return Err(NoResponse::Failed(e)),
            }
            self.from_endpoint.reserve(READ_CHUNK);
            let nothing_yet = self.from_endpoint.is_empty() && !interim_sent;
            match to_endpoint.read_buf(&mut self.from_endpoint).await {
                Ok(0) if nothing_yet => {
                    return Err(NoResponse::Closed(
                        "closed the connection without a response".into(),
                    ))
                }
                Ok(0) => {
                    return Err(NoResponse::Failed(
                        "closed the connection mid-response".into(),
                    ))
                }
                Ok(_) => {}
                Err(e) if nothing_yet => {
                    return Err(NoResponse::Closed(format!("reading the response: {e}")))
                }
                Err(e) => return Err(NoResponse::Failed(format!("reading the response: {e}"))),
            }
        }
    }

    /// Sends the response head (in `out`, from `read_response_head`) and body to the
    /// app, the body framed as it came. An error means either side broke off
    /// mid-body: the app connection must close.
    async fn relay_response(
        &mut self,
        to_endpoint: &mut MeshStream,
        response: &ResponseHead,
        close_app: bool,
    ) -> std::io::Result<()> {
        end_head(&mut self.out, close_app);
        let mut body = BodyEnd::new(response.framing);
        // The head goes out with the first body bytes, in one write.
        let mut done = body.take(&mut self.from_endpoint, &mut self.out)?;
        self.app.write_all(&self.out).await?;
        while !done {
            self.from_endpoint.reserve(READ_CHUNK);
            if to_endpoint.read_buf(&mut self.from_endpoint).await? == 0 {
                if body.framing == Framing::UntilClose {
                    return Ok(());
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the endpoint closed mid-body",
                ));
            }
            self.out.clear();
            done = body.take(&mut self.from_endpoint, &mut self.out)?;
            self.app.write_all(&self.out).await?;
        }
        Ok(())
    }

    /// Answers the app with the proxy's own response (its metrics included).
    /// Returns whether the app connection stays open.
    async fn answer_locally(
        &mut self,
        status: StatusCode,
        why: &str,
        head: &RequestHead,
        started: Instant,
    ) -> bool {
        let m = &self.upstream.metrics;
        m.response(status);
        m.latency.observe(started.elapsed().as_secs_f64());
        let close = !head.keep_alive || self.connections.closing.is_cancelled();
        self.out.clear();
        local_response(status, why, close, &mut self.out);
        self.app.write_all(&self.out).await.is_ok() && !close
    }
}

/// Writes the request (head, rewritten when it had to be, and body) in one go.
async fn send_request(
    conn: &mut MeshStream,
    request: &[u8],
    head: &RequestHead,
) -> Result<(), NoResponse> {
    let written = match &head.rewritten {
        None => conn.write_all(request).await,
        Some(rewritten) => {
            let mut whole = Vec::with_capacity(rewritten.len() + head.body_len);
            whole.extend_from_slice(rewritten);
            whole.extend_from_slice(&request[head.head_len..]);
            conn.write_all(&whole).await
        }
    };
    written.map_err(|e| NoResponse::Closed(format!("sending the request: {e}")))
}

/// Tracks how much of a response body is still to come.
struct BodyEnd {
    framing: Framing,
    remaining: u64,
    chunked: ChunkedEnd,
}

impl BodyEnd {
    fn new(framing: Framing) -> Self {
        let remaining = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Self {
            framing,
            remaining,
            chunked: ChunkedEnd::default(),
        }
    }

    /// Moves the body bytes at the front of `from` to `to`; returns whether the
    /// body is complete. Bytes after its end stay in `from`.
    fn take(&mut self, from: &mut BytesMut, to: &mut Vec<u8>) -> std::io::Result<bool> {
        let (n, done) = match self.framing {
            Framing::Empty => (0, true),
            Framing::Length(_) => {
                let n = from
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= n as u64;
                (n, self.remaining == 0)
            }
            Framing::Chunked => match self.chunked.scan(from) {
                Ok(Some(end)) => (end, true),
                Ok(None) => (from.len(), false),
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            },
            Framing::UntilClose => (from.len(), false),
        };
        to.extend_from_slice(&from[..n]);
        from.advance(n);
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair: (the proxy's side, as pooled; the endpoint's side).
    async fn pair(listener: &TcpListener) -> (MeshStream, TcpStream) {
        let ours = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (theirs, _) = listener.accept().await.unwrap();
        (MeshStream::Plain(ours), theirs)
    }

    fn idle_count(pool: &H1Idle) -> usize {
        pool.idle.lock().unwrap().len()
    }

    #[tokio::test]
    async fn idle_connections_the_endpoint_closed_are_dropped_not_taken() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = H1Idle::default();
        let (closing, endpoint_side) = pair(&listener).await;
        let (open, endpoint_open) = pair(&listener).await;
        pool.put(closing);
        pool.put(open);
        drop(endpoint_side);
        // The newest (open) one is taken; once the runtime has seen the FIN on the
        // oldest, taking also drops it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let taken = pool.take().expect("the open connection is taken");
            let left = idle_count(&pool);
            pool.put(taken);
            if left == 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the closed connection stayed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(idle_count(&pool), 1);
        // And a closed connection at the top is skipped, not handed out.
        drop(endpoint_open);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while let Some(conn) = pool.take() {
            pool.put(conn);
            assert!(
                tokio::time::Instant::now() < deadline,
                "a closed connection was taken"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(idle_count(&pool), 0);
    }
}
