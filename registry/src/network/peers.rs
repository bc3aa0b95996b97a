//! A cache of gRPC channels to peers' Raft listeners, keyed by address. Channels are
//! lazy and reconnect on their own, so one per peer address is kept for the node's life.
//! With `[tls]`, every channel is mutual TLS: the peer's certificate must chain to the
//! cluster CA and name the address dialled, and this node presents its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Handle;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use waymark_proto::pb::raft_client::RaftClient;

#[derive(Clone, Default)]
pub struct PeerChannels {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    tls: Option<ClientTlsConfig>,
    /// Where each channel's connection tasks run (the Raft runtime), whoever asks
    /// first; the current runtime when `None`.
    runtime: Option<Handle>,
}

impl PeerChannels {
    /// Plaintext when `tls` is `None`.
    pub fn new(tls: Option<ClientTlsConfig>, runtime: Option<Handle>) -> Self {
        Self {
            channels: Arc::default(),
            tls,
            runtime,
        }
    }

    /// A channel to `addr` (HOST:PORT), created on first use.
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::Status> {
        let mut map = self.channels.lock().expect("peer channel lock poisoned");
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let bad_addr = |e: tonic::transport::Error| {
            tonic::Status::invalid_argument(format!("bad peer address {addr:?}: {e}"))
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}")).map_err(bad_addr)?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.clone()).map_err(bad_addr)?;
        }
        let endpoint = endpoint
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5));
        let _on = self.runtime.as_ref().map(Handle::enter);
        let channel = endpoint.connect_lazy();
        map.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    pub fn raft_client(&self, addr: &str) -> Result<RaftClient<Channel>, tonic::Status> {
        Ok(RaftClient::new(self.channel(addr)?)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }
}
