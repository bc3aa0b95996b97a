//! A connection to one node that presents the client's ACL token on every call
//! (`authorization: Bearer <secret>`), so no caller has to remember to add it.

use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::transport::channel::ResponseFuture;

/// A tonic channel plus the token it sends. Cheap to clone, like tonic's.
#[derive(Clone, Debug)]
pub struct Channel {
    inner: tonic::transport::Channel,
    authorization: Option<http::HeaderValue>,
}

impl Channel {
    pub(crate) fn new(
        inner: tonic::transport::Channel,
        authorization: Option<http::HeaderValue>,
    ) -> Self {
        Self {
            inner,
            authorization,
        }
    }
}

/// The header value for `token`; an error names what is wrong (a secret with a
/// character headers cannot carry).
pub(crate) fn bearer(token: &str) -> Result<http::HeaderValue, String> {
    let mut value: http::HeaderValue = format!("Bearer {}", token.trim())
        .parse()
        .map_err(|_| "the token contains characters an HTTP header cannot carry".to_string())?;
    // Kept out of debug output and HPACK's dynamic table.
    value.set_sensitive(true);
    Ok(value)
}

impl tower_service::Service<http::Request<Body>> for Channel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        if let Some(value) = &self.authorization {
            request
                .headers_mut()
                .entry(http::header::AUTHORIZATION)
                .or_insert_with(|| value.clone());
        }
        self.inner.call(request)
    }
}
