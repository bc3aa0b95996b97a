//! `waymark-proxy --config proxy.toml`: parses and validates the configuration (flags
//! override the file), then runs the proxy until SIGTERM or SIGINT drains it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use waymark_proxy::config::{Config, LogFormat, Overrides};

/// mimalloc instead of glibc's malloc: a proxy allocates and frees small blocks for
/// every request and stream (hyper, h2, tokio tasks), and glibc's bins and
/// consolidation were a tenth of the forwarding CPU in profiles. (Transparent huge
/// pages are turned off in `main`: with them mimalloc's arenas grow RSS in 2 MiB
/// steps, 17 MB instead of 11 MB per proxy under load.)
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "waymark-proxy", version, about = "Waymark sidecar proxy")]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, env = "WAYMARK_PROXY_CONFIG", value_name = "FILE")]
    config: PathBuf,
    /// Registry nodes, overriding registry.addrs (HOST:PORT[,HOST:PORT...]).
    #[arg(long, value_delimiter = ',', value_name = "ADDRS")]
    registry: Option<Vec<String>>,
    /// Overrides service.id.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Overrides inbound.listen.
    #[arg(long, value_name = "ADDR")]
    inbound_listen: Option<String>,
    /// Overrides admin.listen.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
    /// Overrides log.format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormatArg>,
    /// Validate the configuration, print it as understood, and exit.
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

fn main() -> ExitCode {
    // Best effort: a kernel without THP, or one refusing the flag, changes only RSS.
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
    let args = Args::parse();
    let overrides = Overrides {
        registry_addrs: args.registry.clone(),
        service_id: args.id.clone(),
        inbound_listen: args.inbound_listen.clone(),
        admin_listen: args.admin_listen.clone(),
        log_format: args.log_format.map(|f| match f {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }),
    };
    let text = match std::fs::read_to_string(&args.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("waymark-proxy: cannot read {}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    let config = match Config::parse(&text, &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("waymark-proxy: {}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("{}: ok", args.config.display());
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    init_logging(config.log);
    if let Err(e) = config.scheduling.apply_to_this_thread() {
        // Not fatal: the proxy works under any policy (a seccomp profile or a
        // container runtime may forbid changing it).
        tracing::warn!(policy = ?config.scheduling, error = %e, "cannot set the scheduling policy; running under the inherited one");
    }
    let runtime = match runtime(config.worker_threads) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("waymark-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(waymark_proxy::run::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "waymark-proxy failed");
            eprintln!("waymark-proxy: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One thread: a current-thread runtime (no work stealing, no cross-thread wakeups:
/// the cheapest per request, and what a sidecar beside one app needs). More: a
/// multi-thread runtime with that many workers (0: one per CPU).
fn runtime(worker_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    match worker_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
}

/// Logs to stderr, text or JSON (as the server); `RUST_LOG` overrides `info`.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
