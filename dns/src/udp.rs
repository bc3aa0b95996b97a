//! The UDP serving loop, one per socket: receives a batch of datagrams, answers each
//! (a plain query from the answer cache when it holds one for this catalog index, else
//! through the full hickory path, whose answer then fills the cache), and sends the
//! answers as a batch. Nothing is spawned per query and nothing is shared between
//! sockets, so one socket's loop is one core's worth of work.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_server::net::xfer::Protocol;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::batch_io::{self, RecvBatch, BATCH};
use crate::cache::{AnswerCache, Lookup};
use crate::handler::Handler;
use crate::stats::DnsStats;
use crate::wire::{self, Cacheable};

/// Serves `socket` until `shutdown` is cancelled (`Ok`) or the socket fails for good.
pub(crate) async fn serve(
    socket: UdpSocket,
    handler: Arc<Handler>,
    stats: Arc<DnsStats>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut batch = RecvBatch::new();
    let mut cache = AnswerCache::new(rand::random());
    let mut out: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            ready = socket.readable() => ready?,
            () = shutdown.cancelled() => return Ok(()),
        }
        match batch.recv(&socket) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if is_unrecoverable(&e) => return Err(e),
            Err(error) => {
                // ICMP errors from earlier sends surface here (ECONNREFUSED); the
                // socket itself is fine.
                debug!(%error, "dns: receiving on a UDP socket failed");
                continue;
            }
        }
        for (packet, peer) in batch.iter() {
            let Some(peer) = peer.filter(answerable) else {
                continue;
            };
            if let Some(response) = answer(&handler, &mut cache, &stats, packet).await {
                out.push((response, peer));
            }
        }
        send_all(&socket, &mut out).await;
    }
}

/// The answer to one datagram, or `None` when nothing is sent.
async fn answer(
    handler: &Handler,
    cache: &mut AnswerCache,
    stats: &DnsStats,
    packet: &[u8],
) -> Option<Vec<u8>> {
    // A node past its staleness bound answers SERVFAIL to everything: the full path
    // says so, and the cache is not consulted.
    let Some(plain) = wire::plain_query(packet).filter(|_| handler.fresh()) else {
        stats.udp_full_path.inc();
        return handler.answer_datagram(packet, Protocol::Udp).await;
    };
    // Synced before the full path runs, so a stored answer is never older than the
    // index the cache holds (the catalog only moves forward).
    cache.sync(handler.index());
    if let Lookup::Hit(stored) = cache.lookup(plain.key.as_bytes()) {
        let mut response = Vec::with_capacity(stored.len());
        wire::patch(stored, packet, plain.name_len, &mut response);
        stats.udp_cached.inc();
        return Some(response);
    }
    stats.udp_full_path.inc();
    let response = handler.answer_datagram(packet, Protocol::Udp).await?;
    let how = wire::cacheable(packet, &response, plain.name_len);
    if how != Cacheable::No {
        cache.store(
            plain.key.as_bytes(),
            wire::normalise(&response, plain.name_len),
            how,
        );
    }
    Some(response)
}

/// Sends every answer in `out` (waiting while the socket is full) and empties it. An
/// answer the kernel refuses is dropped, as hickory does: the client asks again.
async fn send_all(socket: &UdpSocket, out: &mut Vec<(Vec<u8>, SocketAddr)>) {
    let mut sent = 0;
    while sent < out.len() {
        match batch_io::send(socket, &out[sent..]) {
            Ok(n) => sent += n.max(1),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if socket.writable().await.is_err() {
                    break;
                }
            }
            Err(error) => {
                debug!(%error, peer = %out[sent].1, "dns: sending an answer failed");
                sent += 1;
            }
        }
    }
    out.clear();
}

/// Whether a datagram's sender can be answered (hickory's rule): not port 0, not the
/// unspecified or broadcast address.
fn answerable(peer: &SocketAddr) -> bool {
    let ip_ok = match peer.ip() {
        IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_broadcast(),
        IpAddr::V6(v6) => !v6.is_unspecified(),
    };
    if !ip_ok || peer.port() == 0 {
        // Not a warning: spoofed sources would turn it into a log flood.
        debug!(%peer, "dns: cannot answer this source address");
        return false;
    }
    true
}

/// Socket errors after which the loop stops (hickory's rule).
fn is_unrecoverable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotConnected | io::ErrorKind::ConnectionAborted
    )
}
