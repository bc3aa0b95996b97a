//! `waymark-bench`: load generator for a Waymark cluster, modelled on etcd's `benchmark`.
//!
//! Global flags (`--endpoints`, `--clients`, `--conns`, `--target-leader`, timeouts,
//! `--json`) may be given before or after the workload name; each workload adds its own
//! (`register --total --val-size --rate ...`). `--backend etcd` runs the same workload
//! against an etcd v3 cluster for comparison. `table` renders saved `--json` results as
//! a markdown table for `benches/results/`, `compare` puts Waymark and etcd results side
//! by side.

mod compare;
mod conn;
mod etcd;
mod report;
mod runner;
mod workload;

#[cfg(test)]
mod fake;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::conn::ClientOpts;
use crate::workload::list::ListArgs;
use crate::workload::register::RegisterArgs;
use crate::workload::watch::{Mode, WatchArgs};
use crate::workload::write_gaps::WriteGapsArgs;

#[derive(Debug, Parser)]
#[command(
    name = "waymark-bench",
    version,
    about = "Benchmark a Waymark cluster over its gRPC API (modelled on etcd's benchmark tool)"
)]
struct Cli {
    #[command(flatten)]
    client: ClientOpts,

    /// Print the result as one JSON object instead of a table.
    #[arg(long, global = true, help_heading = "Output options")]
    json: bool,

    #[command(subcommand)]
    cmd: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register `--total` distinct instances (service `bench`, ids `i-<n>`), one
    /// Register call each, and report throughput and latency.
    Register(RegisterArgs),
    /// Make `--total` ListInstances calls for one service (etcd: ranges over its
    /// prefix), linearizable or stale.
    List(ListArgs),
    /// Open `--watchers` watch streams on one service, put `--total` instances into it as
    /// fast as `--clients` putters go, and report event throughput, put-to-event latency
    /// and missed events.
    Watch(WatchArgs),
    /// Like `watch`, with puts paced by `--rate` (default 100/s): put-to-event latency
    /// over every watcher.
    WatchLatency(WatchArgs),
    /// Write at `--rate` for `--duration`, retrying each write until acknowledged, and
    /// report the longest stretch with no write acknowledged (for rolling restarts).
    WriteGaps(WriteGapsArgs),
    /// Render Waymark and etcd results saved with `--json` (any order, any number of
    /// files) as one markdown table with both columns and their ratio, plus the goals.
    Compare {
        /// Files holding `waymark-bench ... --json` output of both backends.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Render results saved with `--json` (one object per line, any number of files)
    /// as a markdown table.
    Table {
        /// Files holding `waymark-bench ... --json` output.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("waymark-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn read_results(files: &[PathBuf]) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut rows = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        rows.extend(
            report::parse_json_lines(&text)
                .with_context(|| format!("parsing {}", path.display()))?,
        );
    }
    Ok(rows)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let workload = match cli.cmd {
        Command::Table { files } => {
            print!("{}", report::markdown_table(&read_results(&files)?)?);
            return Ok(());
        }
        Command::Compare { files } => {
            let rows = read_results(&files)?;
            print!("{}\n{}", compare::table(&rows)?, compare::goals(&rows)?);
            return Ok(());
        }
        other => other,
    };
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let cpu_before = report::process_cpu_secs();
    let mut summary = rt.block_on(async {
        match workload {
            Command::Register(args) => workload::register::run(&cli.client, &args).await,
            Command::List(args) => workload::list::run(&cli.client, &args).await,
            Command::Watch(args) => workload::watch::run(&cli.client, &args, Mode::Watch).await,
            Command::WatchLatency(args) => {
                workload::watch::run(&cli.client, &args, Mode::WatchLatency).await
            }
            Command::WriteGaps(args) => workload::write_gaps::run(&cli.client, &args).await,
            Command::Table { .. } | Command::Compare { .. } => unreachable!("handled above"),
        }
    })?;
    if let (Some(before), Some(after)) = (cpu_before, report::process_cpu_secs()) {
        // CPU this client process used (setup included): on a small machine that also
        // runs the servers, it shows how much of the CPU the load generator took.
        summary.extra.push((
            "client_cpu_s",
            serde_json::json!(report::round(after - before, 2)),
        ));
    }
    if cli.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.render_human());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_before_and_after_the_workload() {
        let after = Cli::try_parse_from([
            "waymark-bench",
            "register",
            "--endpoints",
            "127.0.0.1:8500,127.0.0.1:8501",
            "--clients",
            "16",
            "--conns",
            "4",
            "--total",
            "100",
            "--json",
        ])
        .unwrap();
        assert_eq!(after.client.endpoints, ["127.0.0.1:8500", "127.0.0.1:8501"]);
        assert_eq!((after.client.clients, after.client.conns), (16, 4));
        assert!(after.json);
        let Command::Register(args) = after.cmd else {
            panic!("expected register")
        };
        assert_eq!(args.total, 100);
        assert_eq!(args.val_size, 256);
        assert_eq!(args.rate, 0);

        let before = Cli::try_parse_from([
            "waymark-bench",
            "--clients",
            "2",
            "--target-leader",
            "register",
            "--rate",
            "50",
        ])
        .unwrap();
        assert_eq!(before.client.clients, 2);
        assert!(before.client.target_leader);
        assert!(!before.json);
        assert_eq!(before.client.backend, conn::Backend::Waymark);
    }

    #[test]
    fn workloads_and_backend_parse() {
        let cli = Cli::try_parse_from([
            "waymark-bench",
            "--backend",
            "etcd",
            "list",
            "--consistency",
            "stale",
            "--clients",
            "16",
        ])
        .unwrap();
        assert_eq!(cli.client.backend, conn::Backend::Etcd);
        let Command::List(args) = cli.cmd else {
            panic!("expected list")
        };
        assert_eq!(args.consistency, workload::list::Consistency::Stale);

        let cli = Cli::try_parse_from([
            "waymark-bench",
            "watch-latency",
            "--watchers",
            "10000",
            "--conns",
            "16",
            "--rate",
            "5",
            "--settle",
            "30s",
        ])
        .unwrap();
        let Command::WatchLatency(args) = cli.cmd else {
            panic!("expected watch-latency")
        };
        assert_eq!((args.watchers, args.rate), (10000, Some(5)));
        assert_eq!(args.settle, std::time::Duration::from_secs(30));
        assert_eq!(cli.client.conns, 16);

        assert!(Cli::try_parse_from(["waymark-bench", "--backend", "zk", "register"]).is_err());
        assert!(Cli::try_parse_from(["waymark-bench", "watch", "--watchers", "0"]).is_err());
    }

    #[test]
    fn val_size_above_the_meta_limit_is_rejected_by_the_parser() {
        let err = Cli::try_parse_from(["waymark-bench", "register", "--val-size", "513"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("512"), "{err}");
    }
}
