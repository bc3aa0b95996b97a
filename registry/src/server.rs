//! Server wiring (in progress).
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;

/// Pre-bound listeners, so tests can bind port 0 and learn the addresses first.
pub struct Listeners {
    pub api: TcpListener,
    pub raft: TcpListener,
    pub admin: TcpListener,
}

/// Binds the configured addresses and runs until SIGINT/SIGTERM.
pub async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let _ = config;
    todo!()
}

/// Runs a node on the given listeners until `shutdown` is cancelled.
pub async fn run(config: ServerConfig, listeners: Listeners, shutdown: CancellationToken) -> anyhow::Result<()> {
    let _ = (config, listeners, shutdown);
    todo!()
}

/// Installs the tracing subscriber for a binary (text or JSON).
pub fn init_logging(format: crate::config::LogFormat) {
    let _ = format;
}
