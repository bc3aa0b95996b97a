//! Sockets and serving: binds one TCP listener and N UDP sockets sharing a port with
//! SO_REUSEPORT, runs the TCP listener on hickory's `Server` and one fast-path loop
//! thread per UDP socket (`udp.rs`), until cancelled.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::catalog::CatalogView;
use crate::config::{ConfigError, DnsConfig, Zone};
use crate::handler::Handler;
use crate::stats::DnsStats;
use crate::udp;

/// A TCP connection that sends no query for this long is closed, so idle clients cannot
/// hold connections (and their tasks) forever.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection before the handler waits for the client.
const TCP_RESPONSE_BUFFER: usize = 32;
/// Pending-connection backlog of the TCP listener.
const TCP_BACKLOG: i32 = 1024;
/// Port-0 binds retried this often when the UDP port the kernel picked for TCP is taken.
const EPHEMERAL_BIND_ATTEMPTS: usize = 16;

/// Why the DNS server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("binding DNS listeners on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("registering DNS sockets with the tokio runtime")]
    Runtime(#[source] io::Error),
    #[error("DNS server stopped unexpectedly: {0}")]
    Stopped(String),
}

/// The bound sockets `serve` runs on: one TCP listener and one or more UDP sockets, all
/// on the same address and port. Bound before `serve` so callers (and tests, with port
/// 0) learn the port first and binding errors surface before anything starts.
#[derive(Debug)]
pub struct DnsListeners {
    udp: Vec<std::net::UdpSocket>,
    tcp: std::net::TcpListener,
}

impl DnsListeners {
    /// Binds `addr` for TCP and `udp_sockets` (at least one) UDP sockets; pass
    /// `DnsConfig::udp_socket_count()`. With port 0 the kernel picks a port that is
    /// free for both. The TCP listener is exclusive (no SO_REUSEPORT), so a second
    /// server on the same port fails here instead of silently sharing its UDP traffic.
    pub fn bind(addr: SocketAddr, udp_sockets: usize) -> Result<Self, DnsError> {
        let attempts = if addr.port() == 0 {
            EPHEMERAL_BIND_ATTEMPTS
        } else {
            1
        };
        let mut attempt = 1;
        loop {
            match Self::try_bind(addr, udp_sockets.max(1)) {
                Ok(listeners) => return Ok(listeners),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < attempts => {
                    attempt += 1;
                }
                Err(source) => return Err(DnsError::Bind { addr, source }),
            }
        }
    }

    fn try_bind(addr: SocketAddr, udp_sockets: usize) -> io::Result<Self> {
        let tcp = tcp_listener(addr)?;
        // With port 0, the UDP sockets take the port the kernel gave the TCP listener.
        let addr = tcp.local_addr()?;
        let udp = (0..udp_sockets)
            .map(|_| udp_socket(addr, udp_sockets > 1))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self { udp, tcp })
    }

    /// The address served (TCP and UDP share it).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// How many UDP sockets were bound.
    pub fn udp_socket_count(&self) -> usize {
        self.udp.len()
    }
}

fn tcp_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Lets a restarted server rebind while old connections sit in TIME_WAIT; on Unix
    // it does not let two listeners share the port.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(TCP_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn udp_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Linux spreads datagrams over the sockets of a SO_REUSEPORT group by flow hash;
    // each socket has its own receive task, so queries are served on several cores.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = reuse_port;
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Serves DNS for `view` on `listeners` until `shutdown` is cancelled, then stops
/// accepting, drops in-flight work and returns. Validates `config` first. Counts what
/// it answers in `stats`. Must run on a multi-thread tokio runtime to use more than one
/// core.
pub async fn serve(
    config: DnsConfig,
    listeners: DnsListeners,
    view: Arc<dyn CatalogView>,
    stats: Arc<DnsStats>,
    shutdown: CancellationToken,
) -> Result<(), DnsError> {
    let zone = Zone::new(&config)?;
    let addr = listeners.local_addr().map_err(DnsError::Runtime)?;
    let udp_sockets = listeners.udp.len();
    // UDP: our own loops (answer cache, batched socket I/O), each falling back to the
    // same handler for everything the cache does not serve.
    let udp_handler = Arc::new(Handler::new(zone.clone(), view.clone()));
    // The loops are threads, which dropping this future cannot abort: they stop when
    // `shutdown` is cancelled or when this future is dropped without it (a task
    // aborted, a runtime shut down), else a runtime's shutdown would wait for them
    // for ever.
    let loops_stop = shutdown.child_token();
    let _stop_loops_on_drop = loops_stop.clone().drop_guard();
    let mut udp_loops = JoinSet::new();
    for socket in listeners.udp {
        let (handler, stats, shutdown) = (udp_handler.clone(), stats.clone(), loops_stop.clone());
        // A thread of the blocking pool for as long as the server runs.
        udp_loops.spawn_blocking(move || udp::serve(socket, handler, stats, shutdown));
    }
    // TCP: hickory's server as it comes.
    let mut server = Server::new(Handler::new(zone, view));
    let tcp = tokio::net::TcpListener::from_std(listeners.tcp).map_err(DnsError::Runtime)?;
    server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    info!(%addr, udp_sockets, domain = %config.domain, "dns: serving");

    // `block_until_done` only returns once every listener task has ended, and a UDP
    // loop only ends on shutdown, so without a shutdown either means a socket failed.
    let failed = tokio::select! {
        result = server.block_until_done() => Some(match result {
            Ok(()) => "the TCP listener ended".to_string(),
            Err(e) => e.to_string(),
        }),
        Some(ended) = udp_loops.join_next() => Some(match ended {
            Ok(Ok(())) => "a UDP socket loop ended".to_string(),
            Ok(Err(e)) => format!("UDP socket: {e}"),
            Err(e) => format!("UDP socket loop: {e}"),
        }),
        () = shutdown.cancelled() => None,
    };
    if let Some(reason) = failed {
        return Err(DnsError::Stopped(reason));
    }
    server
        .shutdown_gracefully()
        .await
        .map_err(|e| DnsError::Stopped(e.to_string()))?;
    while udp_loops.join_next().await.is_some() {}
    info!(%addr, "dns: stopped");
    Ok(())
}
