//! HTTP/1.1 heads and body framing for the relay (`h1_relay`): parses a request or a
//! response head (httparse), decides whether the relay carries a request as it is or
//! leaves the connection to hyper, writes the head that goes on (hop-by-hop headers
//! removed, RFC 9110 7.6.1), and finds where a body ends (Content-Length, chunked, or
//! the connection's close) without re-encoding it: body bytes pass through unchanged.

/// The longest head read; a longer request is hyper's to refuse (431), a longer
/// response is a 502.
pub const MAX_HEAD: usize = 64 << 10;
/// Headers parsed per message (hyper's server allows 100 as well).
const MAX_HEADERS: usize = 100;
/// Request bodies the relay reads whole before sending; a longer one, or a chunked
/// one, goes through hyper, which streams both directions at once.
pub const MAX_RELAYED_BODY: usize = 64 << 10;

/// What to do with the request at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestCheck {
    /// More bytes are needed to see the whole head.
    Partial,
    Relay(RequestHead),
    /// The relay does not carry this one (HTTP/1.0, CONNECT, Expect, Upgrade, a
    /// chunked or long body, a malformed head...): hyper serves the connection from
    /// this request on. The reason is for the debug log.
    Hyper(&'static str),
}

/// A request the relay carries.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes of the head, blank line included.
    pub head_len: usize,
    /// Bytes of the body after it.
    pub body_len: usize,
    /// The app did not ask to close after this request.
    pub keep_alive: bool,
    /// HEAD: the response has no body whatever its headers say.
    pub is_head: bool,
    /// Safe to send again when a reused connection closes with no answer (a method
    /// without side effects, or an `Idempotency-Key`), as Go's `net/http` decides.
    pub replayable: bool,
    /// The head to send on when it is not the received one (hop-by-hop headers were
    /// removed).
    pub rewritten: Option<Vec<u8>>,
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Read until the endpoint closes (no length, or a transfer coding other than a
    /// final `chunked`).
    UntilClose,
}

/// A parsed response head.
#[derive(Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub head_len: usize,
    pub status: u16,
    pub framing: Framing,
    /// The endpoint closes this connection after the response (`Connection: close`,
    /// or HTTP/1.0 without keep-alive).
    pub endpoint_closes: bool,
    /// `grpc-status: 14` (UNAVAILABLE) among the headers.
    pub grpc_unavailable: bool,
}

impl ResponseHead {
    /// 1xx other than 101: interim, the final response follows on the connection.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// How a header is treated on the way through.
#[derive(Debug, PartialEq, Eq)]
enum HeaderRole {
    Kept,
    /// Describes one connection, not the message: removed.
    HopByHop,
    /// `te`: only `trailers` is kept.
    Te,
    Connection,
    ContentLength,
    TransferEncoding,
    Host,
    /// Makes the request one the relay leaves to hyper.
    NotRelayed,
}

fn role(name: &str) -> HeaderRole {
    // Most names are none of these; compare lengths first, cheaply.
    match name.len() {
        2 if name.eq_ignore_ascii_case("te") => HeaderRole::Te,
        4 if name.eq_ignore_ascii_case("host") => HeaderRole::Host,
        6 if name.eq_ignore_ascii_case("expect") => HeaderRole::NotRelayed,
        7 if name.eq_ignore_ascii_case("upgrade") => HeaderRole::NotRelayed,
        10 if name.eq_ignore_ascii_case("connection") => HeaderRole::Connection,
        10 if name.eq_ignore_ascii_case("keep-alive") => HeaderRole::HopByHop,
        14 if name.eq_ignore_ascii_case("content-length") => HeaderRole::ContentLength,
        16 if name.eq_ignore_ascii_case("proxy-connection") => HeaderRole::HopByHop,
        17 if name.eq_ignore_ascii_case("transfer-encoding") => HeaderRole::TransferEncoding,
        18 if name.eq_ignore_ascii_case("proxy-authenticate") => HeaderRole::HopByHop,
        19 if name.eq_ignore_ascii_case("proxy-authorization") => HeaderRole::HopByHop,
        _ => HeaderRole::Kept,
    }
}

fn tokens(value: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(value)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn has_token(value: &[u8], token: &str) -> bool {
    tokens(value).any(|t| t.eq_ignore_ascii_case(token))
}

/// A Content-Length value: digits only (RFC 9110 8.6; no sign, no list).
fn content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Checks the request at the start of `buf`.
pub fn check_request(buf: &[u8]) -> RequestCheck {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return RequestCheck::Partial,
        Ok(httparse::Status::Partial) => return RequestCheck::Hyper("head too large"),
        Err(_) => return RequestCheck::Hyper("malformed head"),
    };
    if req.version != Some(1) {
        return RequestCheck::Hyper("not HTTP/1.1");
    }
    let method = req.method.unwrap_or("");
    if method == "CONNECT" {
        return RequestCheck::Hyper("CONNECT");
    }
    if !req.path.is_some_and(|p| p.starts_with('/')) {
        return RequestCheck::Hyper("not origin-form");
    }
    let mut hosts = 0;
    let mut body_len = None;
    let mut keep_alive = true;
    let mut strip = false;
    let mut idempotency_key = false;
    for h in req.headers.iter() {
        match role(h.name) {
            HeaderRole::Kept => {
                idempotency_key |= h.name.eq_ignore_ascii_case("idempotency-key");
            }
            HeaderRole::Host => hosts += 1,
            HeaderRole::NotRelayed | HeaderRole::TransferEncoding => {
                return RequestCheck::Hyper("Expect, Upgrade or Transfer-Encoding")
            }
            HeaderRole::ContentLength => match (content_length(h.value), body_len) {
                (Some(n), None) => body_len = Some(n),
                _ => return RequestCheck::Hyper("several or invalid Content-Length"),
            },
            HeaderRole::Connection => {
                for t in tokens(h.value) {
                    if t.eq_ignore_ascii_case("close") {
                        keep_alive = false;
                    } else if !t.eq_ignore_ascii_case("keep-alive") {
                        // Names further hop-by-hop headers: hyper's path removes them.
                        return RequestCheck::Hyper("Connection names other headers");
                    }
                }
                strip = true;
            }
            HeaderRole::Te => strip |= h.value != b"trailers",
            HeaderRole::HopByHop => strip = true,
        }
    }
    if hosts != 1 {
        return RequestCheck::Hyper("no Host, or several");
    }
    let body_len = body_len.unwrap_or(0);
    if body_len > MAX_RELAYED_BODY as u64 {
        return RequestCheck::Hyper("body longer than the relay buffers");
    }
    let rewritten = strip.then(|| {
        let line_end = buf.windows(2).position(|w| w == b"\r\n").unwrap_or(0) + 2;
        let mut out = Vec::with_capacity(head_len);
        out.extend_from_slice(&buf[..line_end]);
        for h in req.headers.iter() {
            match role(h.name) {
                HeaderRole::Te if has_token(h.value, "trailers") => {
                    push_header(&mut out, h.name.as_bytes(), b"trailers")
                }
                HeaderRole::Te | HeaderRole::HopByHop | HeaderRole::Connection => {}
                _ => push_header(&mut out, h.name.as_bytes(), h.value),
            }
        }
        out.extend_from_slice(b"\r\n");
        out
    });
    RequestCheck::Relay(RequestHead {
        head_len,
        body_len: body_len as usize,
        keep_alive,
        is_head: method == "HEAD",
        replayable: matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE") || idempotency_key,
        rewritten,
    })
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Parses the response head at the start of `buf` (`Ok(None)` while it is partial)
/// and appends to `out` the head to send to the app, all but its blank line
/// (`end_head` adds it): HTTP/1.1, the endpoint's status and reason, its headers
/// without the hop-by-hop ones. Transfer-Encoding stays (the body passes through as
/// it was framed), and Content-Length goes when Transfer-Encoding is there too.
pub fn parse_response(
    buf: &[u8],
    request_is_head: bool,
    out: &mut Vec<u8>,
) -> Result<Option<ResponseHead>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) => {
            return Err(format!("response head longer than {MAX_HEAD} bytes"))
        }
        Err(e) => return Err(format!("malformed response head: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let mut length = None;
    let mut chunked_last = None;
    let mut close = resp.version == Some(0);
    let mut grpc_unavailable = false;
    for h in resp.headers.iter() {
        match role(h.name) {
            HeaderRole::ContentLength => match (content_length(h.value), length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return Err("several or invalid Content-Length in the response".into()),
            },
            HeaderRole::TransferEncoding => {
                chunked_last = Some(
                    tokens(h.value)
                        .last()
                        .is_some_and(|t| t.eq_ignore_ascii_case("chunked")),
                );
            }
            HeaderRole::Connection => {
                if has_token(h.value, "close") {
                    close = true;
                } else if resp.version == Some(0) && has_token(h.value, "keep-alive") {
                    close = false;
                }
            }
            HeaderRole::Kept => {
                grpc_unavailable |= h.name.eq_ignore_ascii_case("grpc-status") && h.value == b"14"
            }
            _ => {}
        }
    }
    out.extend_from_slice(b"HTTP/1.1 ");
    // httparse accepts only three-digit status codes.
    out.extend_from_slice(&[
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in resp.headers.iter() {
        let keep = match role(h.name) {
            HeaderRole::HopByHop | HeaderRole::Connection | HeaderRole::Te => false,
            HeaderRole::ContentLength => chunked_last.is_none(),
            _ => true,
        };
        if keep {
            push_header(out, h.name.as_bytes(), h.value);
        }
    }
    let framing =
        if request_is_head || (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::Empty
        } else {
            match (chunked_last, length) {
                (Some(true), _) => Framing::Chunked,
                (Some(false), _) | (None, None) => Framing::UntilClose,
                (None, Some(n)) => Framing::Length(n),
            }
        };
    Ok(Some(ResponseHead {
        head_len,
        status,
        framing,
        endpoint_closes: close,
        grpc_unavailable,
    }))
}

/// Ends a head `parse_response` wrote, with `connection: close` when this proxy
/// closes the app's connection after the response.
pub fn end_head(out: &mut Vec<u8>, close: bool) {
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The proxy's own response, with a body saying why.
pub fn local_response(status: http::StatusCode, why: &str, close: bool, out: &mut Vec<u8>) {
    let body = format!("waymark-proxy: {why}\n");
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len(),
            if close { "connection: close\r\n" } else { "" },
        )
        .as_bytes(),
    );
    out.extend_from_slice(body.as_bytes());
}

/// Finds where a chunked body ends as its bytes arrive, without changing them.
#[derive(Debug, Default)]
pub struct ChunkedEnd {
    state: ChunkState,
    size: u64,
    digits: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    EndLf,
    Done,
}

impl ChunkedEnd {
    /// Scans the next bytes of the body: `Ok(Some(n))` when the body ends after the
    /// first `n` of them, `Ok(None)` when all of them belong to it.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<Option<usize>, &'static str> {
        use ChunkState::*;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self.state {
                Size => match (b as char).to_digit(16) {
                    Some(d) if self.digits < 16 => {
                        self.size = self.size * 16 + u64::from(d);
                        self.digits += 1;
                    }
                    Some(_) => return Err("chunk size too large"),
                    None if self.digits == 0 => return Err("chunk size missing"),
                    None if b == b'\r' => self.state = SizeLf,
                    None if b == b';' || b == b' ' || b == b'\t' => self.state = Extension,
                    None => return Err("invalid chunk size"),
                },
                Extension if b == b'\r' => self.state = SizeLf,
                Extension if b == b'\n' => return Err("bare LF in a chunk extension"),
                Extension => {}
                SizeLf if b == b'\n' => {
                    self.state = if self.size == 0 { TrailerStart } else { Data };
                }
                SizeLf => return Err("expected LF after the chunk size"),
                Data => {
                    let take =
                        (bytes.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                DataCr if b == b'\r' => self.state = DataLf,
                DataCr => return Err("expected CRLF after chunk data"),
                DataLf if b == b'\n' => {
                    self.state = Size;
                    self.digits = 0;
                }
                DataLf => return Err("expected CRLF after chunk data"),
                TrailerStart if b == b'\r' => self.state = EndLf,
                TrailerStart | TrailerLine if b == b'\n' => {
                    if self.state == TrailerStart {
                        return Err("bare LF in the trailers");
                    }
                    self.state = TrailerStart;
                }
                TrailerStart | TrailerLine => self.state = TrailerLine,
                EndLf if b == b'\n' => {
                    self.state = Done;
                    return Ok(Some(i + 1));
                }
                EndLf => return Err("expected LF after the last chunk"),
                Done => return Ok(Some(i)),
            }
            i += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(raw: &str) -> RequestHead {
        match check_request(raw.as_bytes()) {
            RequestCheck::Relay(h) => h,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    #[test]
    fn plain_requests_are_relayed_as_they_are() {
        let raw = "GET /a?b=1 HTTP/1.1\r\nHost: api\r\nAccept: */*\r\n\r\nNEXT";
        let h = relay(raw);
        assert_eq!(h.head_len, raw.len() - 4);
        assert_eq!((h.body_len, h.keep_alive, h.replayable), (0, true, true));
        assert_eq!(h.rewritten, None);
        let post = relay("POST /p HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!((post.body_len, post.replayable), (5, false));
        let keyed = relay("POST /p HTTP/1.1\r\nHost: a\r\nIdempotency-Key: k\r\n\r\n");
        assert!(keyed.replayable);
    }

    #[test]
    fn hop_by_hop_headers_are_removed_and_close_is_noted() {
        let h = relay(
            "GET / HTTP/1.1\r\nHost: api\r\nConnection: close\r\nKeep-Alive: timeout=5\r\n\
             TE: trailers, deflate\r\nProxy-Authorization: x\r\nX-Kept: 1\r\n\r\n",
        );
        assert!(!h.keep_alive);
        assert_eq!(
            String::from_utf8(h.rewritten.unwrap()).unwrap(),
            "GET / HTTP/1.1\r\nHost: api\r\nTE: trailers\r\nX-Kept: 1\r\n\r\n"
        );
    }

    #[test]
    fn what_the_relay_does_not_carry_goes_to_hyper() {
        for raw in [
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: x-private\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999\r\n\r\n",
            "GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
        ] {
            assert!(
                matches!(check_request(raw.as_bytes()), RequestCheck::Hyper(_)),
                "{raw:?}"
            );
        }
        assert_eq!(
            check_request(b"GET / HTTP/1.1\r\nHost:"),
            RequestCheck::Partial
        );
        let huge = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(matches!(
            check_request(huge.as_bytes()),
            RequestCheck::Hyper(_)
        ));
    }

    fn response(raw: &str, head: bool) -> ResponseHead {
        parse_response(raw.as_bytes(), head, &mut Vec::new())
            .unwrap()
            .unwrap()
    }

    fn rewritten(raw: &str, close: bool) -> String {
        let mut out = Vec::new();
        parse_response(raw.as_bytes(), false, &mut out)
            .unwrap()
            .unwrap();
        end_head(&mut out, close);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let r = response("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", false);
        assert_eq!((r.framing, r.endpoint_closes), (Framing::Length(3), false));
        let r = response("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true);
        assert_eq!(r.framing, Framing::Empty);
        let r = response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            false,
        );
        assert_eq!(r.framing, Framing::Chunked);
        let r = response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false);
        assert_eq!(r.framing, Framing::UntilClose);
        let r = response("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false);
        assert_eq!((r.framing, r.endpoint_closes), (Framing::UntilClose, true));
        let r = response("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false);
        assert!(r.endpoint_closes);
        let r = response(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert!(!r.endpoint_closes);
        for status in ["204 No Content", "304 Not Modified", "103 Early Hints"] {
            let r = response(&format!("HTTP/1.1 {status}\r\n\r\n"), false);
            assert_eq!(r.framing, Framing::Empty, "{status}");
        }
        assert!(response("HTTP/1.1 103 Early Hints\r\n\r\n", false).is_interim());
        assert!(!response("HTTP/1.1 101 Switching\r\n\r\n", false).is_interim());
        let r = response("HTTP/1.1 200 OK\r\ngrpc-status: 14\r\n\r\n", false);
        assert!(r.grpc_unavailable);
        let out = &mut Vec::new();
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n", false, out), Ok(None));
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false,
            out
        )
        .is_err());
        assert!(parse_response(b"HTTP/1.1 2x0 OK\r\n\r\n", false, out).is_err());
    }

    #[test]
    fn response_heads_go_on_without_hop_by_hop_headers() {
        let raw = "HTTP/1.0 200 Fine\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
                   Content-Length: 2\r\nX-A: b\r\n\r\n";
        assert_eq!(
            rewritten(raw, false),
            "HTTP/1.1 200 Fine\r\nContent-Length: 2\r\nX-A: b\r\n\r\n"
        );
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n";
        assert_eq!(
            rewritten(raw, true),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nconnection: close\r\n\r\n"
        );
    }

    #[test]
    fn local_responses_say_why_and_have_a_length() {
        let mut out = Vec::new();
        local_response(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "none",
            true,
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(
            text.contains("content-length: 20\r\nconnection: close\r\n\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\nwaymark-proxy: none\n"), "{text}");
    }

    #[test]
    fn the_end_of_a_chunked_body_is_found_in_any_split() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..body.len() {
            let mut scan = ChunkedEnd::default();
            let first = scan.scan(&body[..split]).unwrap();
            let found = match first {
                Some(n) => n,
                None => split + scan.scan(&body[split..]).unwrap().unwrap(),
            };
            assert_eq!(found, end, "split at {split}");
        }
        let mut scan = ChunkedEnd::default();
        assert_eq!(scan.scan(b"0\r\n\r\n"), Ok(Some(5)));
        for bad in [
            &b"x\r\n"[..],
            b"5\r\nhelloXX",
            b"\r\n",
            b"11111111111111111\r\n",
        ] {
            assert!(ChunkedEnd::default().scan(bad).is_err(), "{bad:?}");
        }
    }
}
