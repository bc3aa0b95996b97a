//! One GET of a JWKS URL, bounded: a deadline over everything (DNS, connect, TLS,
//! request, body) and a cap on the body's size. HTTP/1.1 on hyper's connection API
//! over a fresh TCP (or rustls) connection; redirects are not followed (the method
//! names the final URL). Every failure comes back as text naming what went wrong;
//! nothing the server sends can panic it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::source::Source;

/// The largest JWKS response read (an identity provider's set is a few KiB).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The body of a `200 OK` answer to `GET source`, within `timeout` and at most
/// `max_bytes`.
pub async fn get(source: &Source, timeout: Duration, max_bytes: usize) -> Result<Bytes, String> {
    match tokio::time::timeout(timeout, get_unbounded(source, max_bytes)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no complete answer within {} ms",
            timeout.as_millis()
        )),
    }
}

async fn get_unbounded(source: &Source, max_bytes: usize) -> Result<Bytes, String> {
    let tcp = TcpStream::connect((source.host.as_str(), source.port))
        .await
        .map_err(|e| format!("connecting to {}:{}: {e}", source.host, source.port))?;
    // Small requests: do not wait for more to fill a segment.
    let _ = tcp.set_nodelay(true);
    if !source.https {
        return request(tcp, source, max_bytes).await;
    }
    let roots = source.trust()?;
    let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS settings: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(source.host.clone()).map_err(|e| {
        format!(
            "{:?} cannot be checked against a certificate: {e}",
            source.host
        )
    })?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {}: {e}", source.authority))?;
    request(tls, source, max_bytes).await
}

/// Aborts the connection task when the fetch ends, however it ends.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn request<S>(stream: S, source: &Source, max_bytes: usize) -> Result<Bytes, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {}: {e}", source.authority))?;
    let _conn = AbortOnDrop(tokio::spawn(conn).abort_handle());
    let req = http::Request::get(source.path_and_query.as_str())
        .header(http::header::HOST, source.authority.as_str())
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("waymark/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("building the request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP request to {}: {e}", source.authority))?;
    let status = resp.status();
    if status.is_redirection() {
        let to = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        return Err(format!(
            "HTTP {status} (redirect to {:?}): redirects are not followed; set jwks_url to the final URL",
            to.chars().take(256).collect::<String>()
        ));
    }
    if status != http::StatusCode::OK {
        return Err(format!("HTTP {status} (expected 200 OK)"));
    }
    let declared = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > max_bytes as u64) {
        return Err(too_large(max_bytes, &format!("Content-Length {len}")));
    }
    body(resp.into_body(), max_bytes).await
}

async fn body(body: Incoming, max_bytes: usize) -> Result<Bytes, String> {
    match Limited::new(body, max_bytes).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(too_large(max_bytes, "the body"))
        }
        Err(e) => Err(format!("reading the response body: {e}")),
    }
}

fn too_large(max_bytes: usize, what: &str) -> String {
    format!("response too large: {what} exceeds the {max_bytes}-byte limit for a JWKS")
}
