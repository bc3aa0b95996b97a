//! The UDP serving loop, one thread per socket: receives a batch of datagrams, answers
//! each (a plain query from the answer cache when it holds one for this catalog index,
//! else through the full hickory path, whose answer then fills the cache), and sends
//! the answers as a batch. A dedicated thread blocked in `recvmmsg` is woken by the
//! kernel itself, not through the async runtime's reactor and scheduler (as Knot's UDP
//! workers are); in `benches/dns-compare.sh` it served 10–20 % more queries per second
//! than the same loop as a tokio task. Nothing is spawned per query and nothing is
//! shared between sockets.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::xfer::Protocol;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::batch_io::{self, RecvBatch, BATCH};
use crate::cache::{AnswerCache, Lookup};
use crate::handler::Handler;
use crate::stats::DnsStats;
use crate::wire::{self, Cacheable};

/// How often a loop waiting for queries looks at the shutdown token.
const SHUTDOWN_CHECK: Duration = Duration::from_millis(100);

/// Serves `socket` on the calling thread (blocking) until `shutdown` is cancelled
/// (`Ok`) or the socket fails for good.
pub(crate) fn serve(
    socket: UdpSocket,
    handler: Arc<Handler>,
    stats: Arc<DnsStats>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(SHUTDOWN_CHECK))?;
    // The full path is async (hickory's handler trait) but never waits on I/O: a
    // current-thread runtime of our own runs it to completion in place.
    let full_path = tokio::runtime::Builder::new_current_thread().build()?;
    let mut batch = RecvBatch::new();
    let mut cache = AnswerCache::new(rand::random());
    let mut out: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(BATCH);
    while !shutdown.is_cancelled() {
        match batch.recv(&socket) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
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
            let response = full_path.block_on(answer(&handler, &mut cache, &stats, packet));
            if let Some(response) = response {
                out.push((response, peer));
            }
        }
        send_all(&socket, &mut out);
    }
    Ok(())
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

/// Sends every answer in `out` and empties it. An answer the kernel refuses is
/// dropped, as hickory does: the client asks again.
fn send_all(socket: &UdpSocket, out: &mut Vec<(Vec<u8>, SocketAddr)>) {
    let mut sent = 0;
    while sent < out.len() {
        match batch_io::send(socket, &out[sent..]) {
            Ok(n) => sent += n.max(1),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
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
