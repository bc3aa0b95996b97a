//! Connecting to a cluster: one channel per node (TCP_NODELAY, connect and request
//! timeouts, the message-size limit), and unary calls that fail over between nodes as
//! the failure's classification allows.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::Endpoint;
use waymark_proto::errors::Retry;
use waymark_proto::pb::acl_client::AclClient;
use waymark_proto::pb::catalog_client::CatalogClient;
use waymark_proto::pb::cluster_client::ClusterClient;
use waymark_proto::pb::config_client::ConfigClient;
use waymark_proto::pb::identity_client::IdentityClient;
use waymark_proto::pb::intentions_client::IntentionsClient;
use waymark_proto::pb::leases_client::LeasesClient;

use crate::backoff::Backoff;
use crate::channel::{bearer, Channel};
use crate::endpoints::Endpoints;
use crate::error::ClientError;
use crate::tls::ClientTls;

/// Largest message accepted or sent. tonic's 4 MiB default is too small for listing or
/// watching a large service (a snapshot carries every instance).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// How channels are opened.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Long enough for a loaded node, short enough that a dead one fails fast.
    pub connect_timeout: Duration,
    /// Deadline of each unary call; `None` for none (streams should use none).
    pub request_timeout: Option<Duration>,
    /// The ACL token's secret, sent on every call (`WAYMARK_TOKEN` in the CLI).
    pub token: Option<String>,
    /// TLS to the nodes, verified with this CA (`WAYMARK_CACERT` in the CLI); `None`
    /// for plaintext.
    pub tls: Option<ClientTls>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Some(Duration::from_secs(30)),
            token: None,
            tls: None,
        }
    }
}

impl ConnectOptions {
    /// Opens a new connection (one HTTP/2 channel) to `uri` now. `Client` keeps one per
    /// node; this is for callers that want several (load generators).
    pub async fn connect(&self, uri: &str) -> Result<Channel, ClientError> {
        let uri = crate::endpoint_uri(uri)?;
        let authorization = self.authorization()?;
        let channel = self
            .endpoint(&uri)?
            .connect()
            .await
            .map_err(|source| ClientError::Connect { addr: uri, source })?;
        Ok(Channel::new(channel, authorization))
    }

    fn authorization(&self) -> Result<Option<http::HeaderValue>, ClientError> {
        self.token
            .as_deref()
            .filter(|t| !t.trim().is_empty())
            .map(bearer)
            .transpose()
            .map_err(ClientError::Token)
    }

    fn endpoint(&self, uri: &str) -> Result<Endpoint, ClientError> {
        // With a CA every node is dialled over TLS, however its address was written
        // (leader hints come as HOST:PORT); an https address without one is refused
        // rather than dialled in plaintext.
        let uri = match (&self.tls, uri.strip_prefix("http://")) {
            (Some(_), Some(rest)) => format!("https://{rest}"),
            (None, None) if uri.starts_with("https://") => {
                return Err(ClientError::Tls(format!(
                    "{uri} needs the CA that signed the node's certificate (--ca-file or WAYMARK_CACERT)"
                )))
            }
            _ => uri.to_string(),
        };
        let mut endpoint = Endpoint::from_shared(uri.clone()).map_err(|_| crate::AddrError {
            addr: uri.clone(),
            reason: "not a valid URI".into(),
        })?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.config())
                .map_err(|e| ClientError::Tls(format!("configuring TLS for {uri}: {e}")))?;
        }
        let endpoint = endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true);
        Ok(match self.request_timeout {
            Some(t) => endpoint.timeout(t),
            None => endpoint,
        })
    }
}

/// How hard `Client::call` tries.
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    /// Attempts in all, over every node; 1 = no retry.
    pub attempts: u32,
    /// Sending the call twice is harmless (reads, or writes the caller knows to be
    /// idempotent). Without it, a failure that may have been applied is final.
    pub idempotent: bool,
}

impl CallPolicy {
    /// A read: retried on every node in turn.
    pub fn read(nodes: usize) -> Self {
        Self {
            attempts: nodes.max(1) as u32,
            idempotent: true,
        }
    }

    /// A write: tried on every node in turn, resent only if it certainly did not apply.
    pub fn write(nodes: usize) -> Self {
        Self {
            attempts: nodes.max(1) as u32,
            idempotent: false,
        }
    }
}

/// A handle on a cluster: its nodes, a channel to each (opened on first use), and the
/// node that last answered (tried first next time). Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Endpoints,
    options: ConnectOptions,
    channels: Mutex<Vec<Option<Channel>>>,
    preferred: AtomicUsize,
}

impl Client {
    pub fn new(endpoints: Endpoints, options: ConnectOptions) -> Self {
        let n = endpoints.len();
        Self {
            inner: Arc::new(Inner {
                endpoints,
                options,
                channels: Mutex::new(vec![None; n]),
                preferred: AtomicUsize::new(0),
            }),
        }
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.inner.options
    }

    /// The node tried first: the last one that answered.
    pub fn preferred(&self) -> usize {
        self.inner.preferred.load(Ordering::Relaxed) % self.inner.endpoints.len()
    }

    pub(crate) fn prefer(&self, i: usize) {
        self.inner
            .preferred
            .store(i % self.inner.endpoints.len(), Ordering::Relaxed);
    }

    /// A channel to node `i` (counting round the list), connected eagerly the first
    /// time so an unreachable node is reported as such, with its address. tonic
    /// reconnects an opened channel by itself.
    pub async fn channel(&self, i: usize) -> Result<Channel, ClientError> {
        let i = i % self.inner.endpoints.len();
        if let Some(ch) = self.lock()[i].clone() {
            return Ok(ch);
        }
        let channel = self
            .inner
            .options
            .connect(self.inner.endpoints.get(i))
            .await?;
        self.lock()[i] = Some(channel.clone());
        Ok(channel)
    }

    /// A channel to `uri` that connects on first use, for callers that want a
    /// dead node to cost a call rather than a connect (one sequential process per node).
    pub fn lazy_channel(uri: &str, options: &ConnectOptions) -> Result<Channel, ClientError> {
        let uri = crate::endpoint_uri(uri)?;
        Ok(Channel::new(
            options.endpoint(&uri)?.connect_lazy(),
            options.authorization()?,
        ))
    }

    /// Forgets node `i`'s channel (after a failure that suggests it is wedged).
    pub fn forget(&self, i: usize) {
        let i = i % self.inner.endpoints.len();
        self.lock()[i] = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Channel>>> {
        // A panic while holding this lock cannot leave the cache inconsistent.
        self.inner
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one unary call, failing over between nodes as its failure allows: another
    /// node for `OtherNode` (and for a node that cannot be reached), the named leader
    /// for `Leader` (any node when it is not in the list), the same node after a backoff
    /// for `Here`, and never for `Never` or a maybe-applied failure of a call that is
    /// not idempotent. A full round of failures is followed by a backoff.
    pub async fn call<T, F, Fut>(&self, policy: CallPolicy, mut rpc: F) -> Result<T, ClientError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let n = self.inner.endpoints.len();
        let mut i = self.preferred();
        let mut backoff = Backoff::default();
        let mut since_backoff = 0usize;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= policy.attempts;
            let uri = self.inner.endpoints.get(i).to_string();
            let result = match self.channel(i).await {
                Ok(ch) => rpc(ch).await.map_err(|s| ClientError::rpc(&uri, s)),
                Err(e) => Err(e),
            };
            let error = match result {
                Ok(reply) => {
                    self.prefer(i);
                    return Ok(reply.into_inner());
                }
                Err(e) => e,
            };
            let Some(failure) = error.failure() else {
                return Err(error);
            };
            if last || !failure.may_resend(policy.idempotent) {
                return Err(error);
            }
            since_backoff += 1;
            match failure.retry {
                Retry::Never => return Err(error),
                Retry::Here => {
                    backoff.wait().await;
                    since_backoff = 0;
                    continue;
                }
                Retry::Leader => {
                    if let Some(l) = failure
                        .leader_api_addr
                        .as_deref()
                        .and_then(|a| self.inner.endpoints.position(a))
                        .filter(|&l| l != i)
                    {
                        i = l;
                        continue;
                    }
                    i = (i + 1) % n;
                }
                Retry::OtherNode => i = (i + 1) % n,
            }
            if since_backoff >= n {
                backoff.wait().await;
                since_backoff = 0;
            }
        }
    }
}

/// The Catalog client on `channel`, with the message-size limit.
pub fn catalog(channel: Channel) -> CatalogClient<Channel> {
    CatalogClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// The Config client on `channel`, with the message-size limit.
pub fn config(channel: Channel) -> ConfigClient<Channel> {
    ConfigClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// The Acl client on `channel`.
pub fn acl(channel: Channel) -> AclClient<Channel> {
    AclClient::new(channel)
}

/// The Identity (mesh CA) client on `channel`.
pub fn identity(channel: Channel) -> IdentityClient<Channel> {
    IdentityClient::new(channel)
}

/// The Intentions client on `channel`.
pub fn intentions(channel: Channel) -> IntentionsClient<Channel> {
    IntentionsClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES)
}

/// The Leases client on `channel`.
pub fn leases(channel: Channel) -> LeasesClient<Channel> {
    LeasesClient::new(channel)
}

/// The Cluster client on `channel`, with the message-size limit (a large membership
/// or status is still small, but one rule is simpler).
pub fn cluster(channel: Channel) -> ClusterClient<Channel> {
    ClusterClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES)
}
