//! HTTP/1.1 relayed message by message: a raw client (exact bytes on the wire), a
//! client proxy, and a raw HTTP/1.1 server of the test's own. Every response framing
//! (length, chunked with trailers, until close, none for HEAD) arrives intact, interim
//! 103 responses pass, hop-by-hop headers stop at the proxy both ways, pipelined and
//! kept-alive requests reuse one endpoint connection, a pooled connection the endpoint
//! closes under a request is retried only when the request is safe to send again, the
//! requests the relay leaves to hyper (HTTP/1.0, a chunked upload) still go through,
//! and SIGTERM closes idle connections while the request in flight completes.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A body longer than any buffer on the way.
const BIG_BYTES: usize = 3 << 20;

/// What the test's server saw.
#[derive(Default)]
struct Seen {
    /// Requests received, by method and path.
    requests: Mutex<HashMap<String, u64>>,
    /// Connections accepted.
    connections: AtomicU64,
    /// `/hold` requests that arrived.
    holding: AtomicU64,
    /// Tells `/hold` to answer.
    release: tokio::sync::Notify,
}

impl Seen {
    fn count(&self, request: &str) -> u64 {
        self.requests
            .lock()
            .unwrap()
            .get(request)
            .copied()
            .unwrap_or(0)
    }
}

/// One request as the server read it.
struct Received {
    method: String,
    path: String,
    header_names: Vec<String>,
    body: Vec<u8>,
}

/// Reads one request (Content-Length or chunked body); `None` at the end.
async fn read_request(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Received> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = req.parse(buf) {
            let names: Vec<String> = req
                .headers
                .iter()
                .map(|h| h.name.to_ascii_lowercase())
                .collect();
            let value = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).to_string())
            };
            let length = value("content-length").map(|v| v.parse::<usize>().unwrap());
            let chunked = value("transfer-encoding").is_some();
            let (method, path) = (
                req.method.unwrap().to_string(),
                req.path.unwrap().to_string(),
            );
            let mut rest = buf.split_off(head_len);
            let body = if chunked {
                while find(&rest, b"0\r\n\r\n").is_none() {
                    read_more(tcp, &mut rest).await?;
                }
                let end = find(&rest, b"0\r\n\r\n").unwrap() + 5;
                let body = dechunk(&rest[..end]);
                rest.drain(..end);
                body
            } else {
                let n = length.unwrap_or(0);
                while rest.len() < n {
                    read_more(tcp, &mut rest).await?;
                }
                rest.drain(..n).collect()
            };
            *buf = rest;
            return Some(Received {
                method,
                path,
                header_names: names,
                body,
            });
        }
        read_more(tcp, buf).await?;
    }
}

/// Reads more onto the end of `buf`; `None` at the end. (Into the heap: a 64 KiB
/// array would live in every future awaiting this one and overflow the test thread's
/// stack in a debug build.)
async fn read_more(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    buf.reserve(65536);
    match tcp.read_buf(buf).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(()),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A chunked body's data (no extensions, no trailers: what the test sends).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = find(raw, b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line]).unwrap(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[line + 2..line + 2 + size]);
        raw = &raw[line + 2 + size + 2..];
    }
}

/// The test's server: `/echo` answers the body back with the request's header names
/// and its connection's number; `/chunked` answers chunked in three writes with a
/// trailer; `/until-close` has no length and closes; `/hints` sends 103 first;
/// `/big` sends BIG_BYTES; `/head` (HEAD) announces a length and sends nothing;
/// `/one-shot` answers, and the next request on its connection is read and the
/// connection closed without an answer (an endpoint closing an idle connection just
/// as a request arrives); `/hold` answers when told.
async fn start_server(seen: Arc<Seen>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            let number = seen.connections.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut close_next = false;
                while let Some(req) = read_request(&mut tcp, &mut buf).await {
                    *seen
                        .requests
                        .lock()
                        .unwrap()
                        .entry(format!("{} {}", req.method, req.path))
                        .or_default() += 1;
                    if close_next {
                        return;
                    }
                    if !answer(&mut tcp, &req, number, &seen, &mut close_next).await {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Writes the answer to `req`; false when the connection is to close.
async fn answer(
    tcp: &mut TcpStream,
    req: &Received,
    number: u64,
    seen: &Seen,
    close_next: &mut bool,
) -> bool {
    match req.path.as_str() {
        "/echo" => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
                 x-headers: {}\r\nx-connection: {number}\r\nContent-Length: {}\r\n\r\n",
                req.header_names.join(","),
                req.body.len()
            );
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(&req.body);
            w(tcp, bytes).await
        }
        "/chunked" => {
            for part in [
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
                "6\r\n world\r\n",
                "0\r\nx-trailer: t\r\n\r\n",
            ] {
                if !w(tcp, part.into()).await {
                    return false;
                }
                tokio::task::yield_now().await;
            }
            true
        }
        "/until-close" => {
            let _ = w(tcp, b"HTTP/1.1 200 OK\r\n\r\nall of it, until close".to_vec()).await;
            false
        }
        "/hints" => {
            w(
                tcp,
                b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    .to_vec(),
            )
            .await
        }
        "/big" => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG_BYTES}\r\n\r\n");
            if !w(tcp, head.into_bytes()).await {
                return false;
            }
            for start in (0..BIG_BYTES).step_by(65536) {
                let part: Vec<u8> = (start..(start + 65536).min(BIG_BYTES))
                    .map(|i| (i % 251) as u8)
                    .collect();
                if !w(tcp, part).await {
                    return false;
                }
            }
            true
        }
        "/head" => w(tcp, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec()).await,
        "/one-shot" => {
            *close_next = true;
            w(tcp, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nshot".to_vec()).await
        }
        "/hold" => {
            seen.holding.fetch_add(1, Ordering::SeqCst);
            seen.release.notified().await;
            w(tcp, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheld".to_vec()).await
        }
        _ => w(tcp, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()).await,
    }
}

/// Writes `bytes`; false when the connection broke.
async fn w(tcp: &mut TcpStream, bytes: Vec<u8>) -> bool {
    tcp.write_all(&bytes).await.is_ok()
}

/// A response as the app received it.
#[derive(Debug)]
struct Got {
    status: u16,
    /// Lower-case names, values as sent.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The raw body bytes (chunk framing and trailers included).
    raw_body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response off `tcp` (what follows it stays in `buf`).
async fn read_response(tcp: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Got {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = resp.parse(buf) {
            let status = resp.code.unwrap();
            let headers: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).to_string(),
                    )
                })
                .collect();
            let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            let mut rest = buf.split_off(head_len);
            let (body, raw_body) = if head_request || status == 103 {
                (Vec::new(), Vec::new())
            } else if get("transfer-encoding").is_some() {
                // The last chunk ("0" at a line start), then the blank line after
                // the trailers.
                let ends = |rest: &[u8]| {
                    let last = if rest.starts_with(b"0\r\n") {
                        0
                    } else {
                        find(rest, b"\r\n0\r\n")? + 2
                    };
                    Some((last, last + find(&rest[last..], b"\r\n\r\n")? + 4))
                };
                while ends(&rest).is_none() {
                    assert!(read_more(tcp, &mut rest).await.is_some(), "closed mid-body");
                }
                let (last, end) = ends(&rest).unwrap();
                let raw: Vec<u8> = rest.drain(..end).collect();
                let mut data = raw.clone();
                data.truncate(last);
                data.extend_from_slice(b"0\r\n\r\n");
                (dechunk(&data), raw)
            } else if let Some(n) = get("content-length") {
                let n: usize = n.parse().unwrap();
                while rest.len() < n {
                    assert!(read_more(tcp, &mut rest).await.is_some(), "closed mid-body");
                }
                let body: Vec<u8> = rest.drain(..n).collect();
                (body.clone(), body)
            } else {
                while read_more(tcp, &mut rest).await.is_some() {}
                let body = std::mem::take(&mut rest);
                (body.clone(), body)
            };
            *buf = rest;
            return Got {
                status,
                headers,
                body,
                raw_body,
            };
        }
        assert!(
            read_more(tcp, buf).await.is_some(),
            "closed before a response"
        );
    }
}

/// Sends `request` and reads its response on a kept-alive connection.
async fn call(tcp: &mut TcpStream, buf: &mut Vec<u8>, request: &str) -> Got {
    tcp.write_all(request.as_bytes()).await.unwrap();
    read_response(tcp, buf, request.starts_with("HEAD ")).await
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: api\r\n\r\n")
}

/// A new app connection to the proxy, and its read buffer.
async fn connect(listen: &str) -> (TcpStream, Vec<u8>) {
    (TcpStream::connect(listen).await.unwrap(), Vec::new())
}

/// Whether the peer closed `tcp` (EOF, nothing more sent).
async fn closed(tcp: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(tcp.read(&mut byte).await, Ok(0) | Err(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_framings_headers_retries_fallbacks_and_drain_go_through_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path()).await;
    let seen = Arc::new(Seen::default());
    let port = start_server(seen.clone()).await;
    let (mut proxy, admin, listen) =
        client_proxy_to_own_server(&registry, dir.path(), "api-h1", port).await;
    let (mut app, mut buf) = connect(&listen).await;

    // A body both ways; hop-by-hop headers stop at the proxy in both directions.
    let got = call(
        &mut app,
        &mut buf,
        "POST /echo HTTP/1.1\r\nHost: api\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\n\
         Proxy-Authorization: secret\r\nX-Custom: y\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!((got.status, got.body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(
        got.header("x-headers"),
        Some("host,x-custom,content-length")
    );
    assert_eq!(got.header("connection"), None, "{got:?}");
    assert_eq!(got.header("keep-alive"), None, "{got:?}");
    let first_connection = got.header("x-connection").unwrap().to_string();

    // Kept alive: the next request (and two pipelined ones) reuse the same endpoint
    // connection.
    let got = call(&mut app, &mut buf, &get("/echo")).await;
    assert_eq!(got.header("x-connection"), Some(first_connection.as_str()));
    app.write_all(format!("{}{}", get("/echo"), get("/chunked")).as_bytes())
        .await
        .unwrap();
    let a = read_response(&mut app, &mut buf, false).await;
    let b = read_response(&mut app, &mut buf, false).await;
    assert_eq!(a.header("x-connection"), Some(first_connection.as_str()));
    assert_eq!(b.body, b"hello world");

    // Chunked: the framing and the trailer pass through unchanged.
    let got = call(&mut app, &mut buf, &get("/chunked")).await;
    assert_eq!(got.header("transfer-encoding"), Some("chunked"));
    assert_eq!(
        got.raw_body,
        b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"
    );

    // 103 Early Hints, then the response.
    let hints = call(&mut app, &mut buf, &get("/hints")).await;
    assert_eq!(
        (hints.status, hints.header("link")),
        (103, Some("</s.css>"))
    );
    let got = read_response(&mut app, &mut buf, false).await;
    assert_eq!((got.status, got.body.as_slice()), (200, &b"ok"[..]));

    // A long body, in order; HEAD has no body whatever its length says.
    let got = call(&mut app, &mut buf, &get("/big")).await;
    assert_eq!(got.body.len(), BIG_BYTES);
    assert!(got
        .body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (i % 251) as u8));
    let got = call(
        &mut app,
        &mut buf,
        "HEAD /head HTTP/1.1\r\nHost: api\r\n\r\n",
    )
    .await;
    assert_eq!(
        (got.status, got.header("content-length")),
        (200, Some("100"))
    );
    let got = call(&mut app, &mut buf, &get("/echo")).await;
    assert_eq!(
        got.status, 200,
        "the connection is still in step after HEAD"
    );

    // The endpoint closes a pooled connection as a request arrives on it: a GET is
    // sent again on a new connection; a POST is not (it may have been processed),
    // and the app is told why.
    let retries_series =
        format!("waymark_proxy_upstream_retries_total{{upstream=\"api\",listen=\"{listen}\"}}");
    let retries_before = metric(admin, &retries_series).await.unwrap();
    assert_eq!(
        call(&mut app, &mut buf, &get("/one-shot")).await.body,
        b"shot"
    );
    let got = call(&mut app, &mut buf, &get("/after-shot")).await;
    assert_eq!(got.status, 404, "{got:?}");
    assert_eq!(
        seen.count("GET /after-shot"),
        2,
        "sent twice: closed once, then answered"
    );
    let retries = metric(admin, &retries_series).await.unwrap();
    assert_eq!(retries, retries_before + 1.0);
    assert_eq!(
        call(&mut app, &mut buf, &get("/one-shot")).await.body,
        b"shot"
    );
    let got = call(
        &mut app,
        &mut buf,
        "POST /after-shot HTTP/1.1\r\nHost: api\r\nContent-Length: 1\r\n\r\nx",
    )
    .await;
    assert_eq!(got.status, 502, "{got:?}");
    let why = String::from_utf8_lossy(&got.body).to_string();
    assert!(
        why.contains("closed the connection without a response"),
        "{why}"
    );
    assert_eq!(
        seen.count("POST /after-shot"),
        1,
        "a POST is not sent twice"
    );

    // No length: the body runs until the endpoint closes, and the proxy closes the
    // app's connection after it (saying so).
    let got = call(&mut app, &mut buf, &get("/until-close")).await;
    assert_eq!(got.body, b"all of it, until close");
    assert_eq!(got.header("connection"), Some("close"));
    assert!(closed(&mut app).await);

    // `Connection: close` from the app: answered, then closed.
    let (mut app, mut buf) = connect(&listen).await;
    let got = call(
        &mut app,
        &mut buf,
        "GET /echo HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((got.status, got.header("connection")), (200, Some("close")));
    assert!(closed(&mut app).await);

    // What the relay leaves to hyper still goes through: HTTP/1.0, and a chunked
    // upload after a relayed request on the same connection.
    let (mut app, mut buf) = connect(&listen).await;
    let got = call(
        &mut app,
        &mut buf,
        "GET /echo HTTP/1.0\r\nHost: api\r\n\r\n",
    )
    .await;
    assert_eq!(got.status, 200);
    let (mut app, mut buf) = connect(&listen).await;
    assert_eq!(call(&mut app, &mut buf, &get("/echo")).await.status, 200);
    let got = call(
        &mut app,
        &mut buf,
        "POST /echo HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n7\r\n, hyper\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(
        (got.status, got.body.as_slice()),
        (200, &b"hello, hyper"[..])
    );

    // SIGTERM: once the grace period is over an idle connection is closed, the
    // request in flight still completes (told the connection closes), and the proxy
    // exits.
    let mut idle = TcpStream::connect(&listen).await.unwrap();
    let mut idle_buf = Vec::new();
    assert_eq!(
        call(&mut idle, &mut idle_buf, &get("/echo")).await.status,
        200
    );
    let mut busy = TcpStream::connect(&listen).await.unwrap();
    busy.write_all(get("/hold").as_bytes()).await.unwrap();
    wait_for("the held request to reach the server", || async {
        (seen.holding.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    proxy.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(closed(&mut idle).await, "the idle connection is closed");
    seen.release.notify_one();
    let mut busy_buf = Vec::new();
    let held = read_response(&mut busy, &mut busy_buf, false).await;
    assert_eq!((held.status, held.body.as_slice()), (200, &b"held"[..]));
    assert_eq!(held.header("connection"), Some("close"));
    let exit = proxy.wait_exit().await;
    assert!(exit.success(), "the proxy exited with {exit:?}");
}
