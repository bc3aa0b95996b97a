//! h2 from the local app, relayed stream by stream on the `h2` crate: each request
//! stream is balanced on its own and opened on the chosen endpoint's one multiplexed
//! h2 connection; headers, data (under both sides' flow control), trailers and resets
//! pass through. The streams of one app connection run inside that connection's
//! task. Why not hyper here: per request its h2 server spawns a task, and its h2
//! client adds a channel hop, another spawned task and a oneshot — together about a
//! fifth of the proxy's CPU per h2 request (benches/results/proxy-compare.md).
//! The answers, retries, timeouts and outlier accounting are the HTTP/1.1 path's
//! (`http`): 503 with no endpoint, 502 when connecting fails, 504 without response
//! headers within the request timeout.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use h2::server::SendResponse;
use h2::{client, server, Reason, RecvStream, SendStream};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::http::{is_failure, prepare, strip_hop_by_hop, MAX_UNSENT_RETRIES};
use super::{connect_any, used, NoConnection};
use crate::endpoints::Endpoint;
use crate::upstream::Upstream;

/// The h2 client connection preface: how an app connection is told to be h2.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Windows and limits toward the app: hyper's server defaults, which this path
/// replaced (1 MiB windows, 200 streams, 16 KiB of headers, 400 KiB send buffer).
fn server_builder() -> server::Builder {
    let mut b = server::Builder::new();
    b.initial_window_size(1 << 20)
        .initial_connection_window_size(1 << 20)
        .max_concurrent_streams(200)
        .max_header_list_size(16 << 10)
        .max_send_buffer_size(400 << 10)
        .max_local_error_reset_streams(Some(1024));
    b
}

/// Toward endpoints: hyper's client defaults (2 MiB stream, 5 MiB connection window,
/// 1 MiB send buffer, 16 KiB of headers).
fn client_builder() -> client::Builder {
    let mut b = client::Builder::new();
    b.initial_window_size(2 << 20)
        .initial_connection_window_size(5 << 20)
        .max_send_buffer_size(1 << 20)
        .max_header_list_size(16 << 10);
    b
}

/// An endpoint's h2 connection, shared by every h2 request to it.
#[derive(Default)]
pub struct H2Conn {
    open: Mutex<Option<Shared>>,
    /// Held across a connect so concurrent requests share one new connection.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Shared {
    sender: client::SendRequest<Bytes>,
    /// Set by the connection's task when it ends.
    closed: Arc<AtomicBool>,
}

impl std::fmt::Debug for H2Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Conn")
            .field("open", &self.current().is_some())
            .finish()
    }
}

impl H2Conn {
    fn current(&self) -> Option<Shared> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.as_ref()
            .filter(|s| !s.closed.load(Ordering::Acquire))
            .cloned()
    }

    /// A handle on the open connection, or on a new one over what `dial` connects.
    async fn sender<D, Fut, S>(&self, dial: D) -> Result<client::SendRequest<Bytes>, String>
    where
        D: FnOnce() -> Fut,
        Fut: Future<Output = Result<S, String>>,
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        if let Some(s) = self.current() {
            return Ok(s.sender);
        }
        // Boxed: rare, and large next to the per-request future that would carry it.
        Box::pin(self.connect(dial)).await
    }

    async fn connect<D, Fut, S>(&self, dial: D) -> Result<client::SendRequest<Bytes>, String>
    where
        D: FnOnce() -> Fut,
        Fut: Future<Output = Result<S, String>>,
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let _connecting = self.connecting.lock().await;
        if let Some(s) = self.current() {
            return Ok(s.sender);
        }
        let stream = dial().await?;
        let (sender, conn) = client_builder()
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
        let closed = Arc::new(AtomicBool::new(false));
        let done = closed.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "h2 connection to an endpoint ended with an error");
            }
            done.store(true, Ordering::Release);
        });
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = Some(Shared {
            sender: sender.clone(),
            closed,
        });
        Ok(sender)
    }

    /// Forgets the open connection (it went away): the next request connects anew.
    fn forget(&self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        *open = None;
    }
}

/// Serves one h2 app connection until it ends (or, once `closing` fires, until its
/// streams are done: GOAWAY first).
pub async fn serve<S>(io: S, upstream: Arc<Upstream>, closing: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = match server_builder().handshake::<_, Bytes>(io).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "h2 handshake with the app failed");
            return;
        }
    };
    let mut streams = FuturesUnordered::new();
    let mut closing = std::pin::pin!(closing.cancelled());
    let mut draining = false;
    // One pass per wake-up: every stream that can move moves, then the connection is
    // polled once more, which reads what came in and writes what the streams queued,
    // all in one write (hyper got the same batching from scheduling each stream as a
    // task of its own; here it costs no task).
    let ended = poll_fn(|cx| loop {
        if !draining && closing.as_mut().poll(cx).is_ready() {
            draining = true;
            conn.graceful_shutdown();
        }
        while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
        let mut accepted = false;
        loop {
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((req, respond)))) => {
                    streams.push(relay(req, respond, &upstream));
                    accepted = true;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => break,
            }
        }
        if !accepted {
            return Poll::Pending;
        }
    })
    .await;
    if let Err(e) = ended {
        tracing::debug!(error = %e, "h2 app connection ended with an error");
    }
    // The connection is gone; what is left cannot send anything: end it at once.
    drop(streams);
}

/// What answers a request stream.
enum Answer {
    Relayed(Response<RecvStream>),
    Local(StatusCode, String),
    /// The app reset its stream first: nothing to answer.
    Cancelled,
}

/// Relays one request stream and its response; always answers.
fn relay<'a>(
    req: Request<RecvStream>,
    respond: SendResponse<Bytes>,
    upstream: &'a Upstream,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    // Boxed: the set of streams holds each by pointer.
    Box::pin(relay_stream(req, respond, upstream))
}

async fn relay_stream(
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    upstream: &Upstream,
) {
    let started = Instant::now();
    let m = &upstream.metrics;
    m.requests.inc();
    let (parts, body) = req.into_parts();
    if parts.method == Method::CONNECT {
        let answer = Answer::Local(
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT over h2 is not relayed".into(),
        );
        finish(answer, &mut respond, upstream, started).await;
        return;
    }
    let head = prepare(Request::from_parts(parts, ()), Version::HTTP_2);
    let eos = body.is_end_stream();
    let (endpoint, opened) = match open_stream(head, eos, upstream).await {
        Ok(o) => o,
        Err(answer) => {
            finish(answer, &mut respond, upstream, started).await;
            return;
        }
    };
    let (response, request_sink) = opened;
    let in_flight = endpoint.load.start();
    let exchange = async {
        let answer = await_response(response, &mut respond, upstream, &endpoint).await;
        if matches!(answer, Answer::Relayed(_)) {
            in_flight.responded();
        }
        finish(answer, &mut respond, upstream, started).await;
    };
    match request_sink {
        None => exchange.await,
        Some(sink) => {
            let request_body = pipe(body, sink);
            tokio::pin!(request_body, exchange);
            // The response may end before the request body (an early answer): then
            // the rest of the request body is not wanted and is dropped (reset).
            tokio::select! {
                () = &mut request_body => exchange.await,
                () = &mut exchange => {}
            }
        }
    }
}

type Opened = (client::ResponseFuture, Option<SendStream<Bytes>>);

/// Opens the request's stream on an endpoint picked by the policy. A connection that
/// turns out closed before the stream opened is replaced (nothing was sent).
async fn open_stream(
    head: Request<()>,
    eos: bool,
    upstream: &Upstream,
) -> Result<(Arc<Endpoint>, Opened), Answer> {
    let mut unsent = 0;
    loop {
        let connected = connect_any(upstream, |e: Arc<Endpoint>| async move {
            e.h2.sender(|| upstream.connect(&e)).await
        })
        .await;
        let (endpoint, sender) = match connected {
            Ok(c) => c,
            Err(NoConnection::NoEndpoint(why)) => {
                return Err(Answer::Local(StatusCode::SERVICE_UNAVAILABLE, why))
            }
            Err(e) => return Err(Answer::Local(StatusCode::BAD_GATEWAY, e.to_string())),
        };
        let mut sender = match sender.ready().await {
            Ok(s) => s,
            Err(e) if unsent == MAX_UNSENT_RETRIES => {
                return Err(Answer::Local(
                    StatusCode::BAD_GATEWAY,
                    format!("{MAX_UNSENT_RETRIES} connections closed before the request could be sent (last: {e})"),
                ))
            }
            Err(_) => {
                // The pooled connection went away (GOAWAY, closed): nothing went out.
                endpoint.h2.forget();
                upstream.metrics.retries.inc();
                unsent += 1;
                continue;
            }
        };
        used(&endpoint);
        return match sender.send_request(head, eos) {
            Ok((response, sink)) => Ok((endpoint, (response, (!eos).then_some(sink)))),
            Err(e) => {
                upstream.failed(&endpoint, &e.to_string());
                Err(Answer::Local(
                    StatusCode::BAD_GATEWAY,
                    format!("{} ({}) failed: {e}", endpoint.id, endpoint.addr),
                ))
            }
        };
    }
}

/// Waits for the endpoint's response headers, within the request timeout, unless
/// the app resets its stream first. Counts the outcome for outlier detection.
async fn await_response(
    response: client::ResponseFuture,
    respond: &mut SendResponse<Bytes>,
    upstream: &Upstream,
    endpoint: &Endpoint,
) -> Answer {
    let app_reset = poll_fn(|cx| respond.poll_reset(cx));
    let answered = async {
        // The app's reset first: when it cancelled, the reset this proxy then sent
        // upstream also fails the response, and that is not the endpoint's failure.
        tokio::select! {
            biased;
            _ = app_reset => None,
            r = response => Some(r),
        }
    };
    let outcome = match upstream.config.request_timeout {
        Some(t) => tokio::time::timeout(t, answered).await.ok(),
        None => Some(answered.await),
    };
    match outcome {
        None => {
            upstream.metrics.timeouts.inc();
            upstream.failed(endpoint, "request timeout");
            Answer::Local(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "{} ({}) sent no response within {} ms",
                    endpoint.id,
                    endpoint.addr,
                    upstream.config.request_timeout.map_or(0, |t| t.as_millis())
                ),
            )
        }
        // The app gave up on the request: dropping the response cancels it upstream.
        Some(None) => Answer::Cancelled,
        Some(Some(Ok(resp))) => {
            if is_failure(resp.status(), resp.headers()) {
                upstream.failed(endpoint, &format!("answered {}", resp.status()));
            } else {
                upstream.succeeded(endpoint);
            }
            Answer::Relayed(resp)
        }
        Some(Some(Err(e))) => {
            upstream.failed(endpoint, &e.to_string());
            Answer::Local(
                StatusCode::BAD_GATEWAY,
                format!("{} ({}) failed: {e}", endpoint.id, endpoint.addr),
            )
        }
    }
}

/// Sends the answer's headers to the app (with the metrics every answer gets), then
/// its body: the endpoint's, relayed, or the proxy's own text.
async fn finish(
    answer: Answer,
    respond: &mut SendResponse<Bytes>,
    upstream: &Upstream,
    started: Instant,
) {
    let m = &upstream.metrics;
    let (status, head, body) = match answer {
        Answer::Relayed(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            (parts.status, Response::from_parts(parts, ()), Ok(body))
        }
        Answer::Local(status, why) => {
            let mut head = Response::new(());
            *head.status_mut() = status;
            head.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            (
                status,
                head,
                Err(Bytes::from(format!("waymark-proxy: {why}\n"))),
            )
        }
        Answer::Cancelled => return,
    };
    m.response(status);
    m.latency.observe(started.elapsed().as_secs_f64());
    let eos = body.as_ref().is_ok_and(RecvStream::is_end_stream);
    let sink = match respond.send_response(head, eos) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "the app's stream closed before the response");
            return;
        }
    };
    match body {
        Ok(_) if eos => {}
        Ok(from) => pipe(from, sink).await,
        Err(text) => {
            let mut sink = sink;
            let _ = sink.send_data(text, true);
        }
    }
}

/// Copies a stream's data and trailers to another stream. More data is taken only
/// when the receiving side has room (its window, bounded by the send buffer), and the
/// sender's window is given back as data is handed on: a slow reader slows the
/// writer, and memory per stream stays bounded. A reset on either side ends the copy
/// and, as `from` is dropped unfinished, cancels the other side.
async fn pipe(mut from: RecvStream, mut to: SendStream<Bytes>) {
    loop {
        to.reserve_capacity(1);
        if to.capacity() == 0 {
            match poll_fn(|cx| to.poll_capacity(cx)).await {
                Some(Ok(_)) => {}
                _ => return,
            }
        }
        let next = tokio::select! {
            biased;
            next = from.data() => next,
            _ = poll_fn(|cx| to.poll_reset(cx)) => return,
        };
        match next {
            Some(Ok(chunk)) => {
                let n = chunk.len();
                let last = from.is_end_stream();
                if to.send_data(chunk, last).is_err() {
                    return;
                }
                let _ = from.flow_control().release_capacity(n);
                if last {
                    return;
                }
            }
            Some(Err(e)) => {
                to.send_reset(e.reason().unwrap_or(Reason::INTERNAL_ERROR));
                return;
            }
            None => break,
        }
    }
    match from.trailers().await {
        Ok(Some(mut trailers)) => {
            strip_hop_by_hop(&mut trailers);
            let _ = to.send_trailers(trailers);
        }
        Ok(None) => {
            let _ = to.send_data(Bytes::new(), true);
        }
        Err(e) => to.send_reset(e.reason().unwrap_or(Reason::INTERNAL_ERROR)),
    }
}
