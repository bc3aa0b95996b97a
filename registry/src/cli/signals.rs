//! SIGINT (Ctrl-C) and SIGTERM for the long-running client commands (`watch`,
//! `register --ttl`, `lease keep-alive`): either one means "stop cleanly".
//!
//! SIGHUP is left alone on purpose: handling it would undo `nohup`.

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};

pub(super) struct StopSignals {
    int: Signal,
    term: Signal,
}

impl StopSignals {
    /// Installs the handlers; from now on these signals are queued for `recv` instead
    /// of killing the process.
    pub(super) fn install() -> anyhow::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Waits for the next stop signal and names it.
    pub(super) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}
