//! `waymark-bench`: load generator for a Waymark cluster, modelled on etcd's `benchmark`.
//!
//! Global flags (`--endpoints`, `--clients`, `--conns`, `--target-leader`, timeouts,
//! `--json`) may be given before or after the workload name; each workload adds its own
//! (`register --total --val-size --rate ...`). `table` renders saved `--json` results
//! as a markdown table for `benches/results/`.

mod conn;
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
use crate::workload::register::RegisterArgs;

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

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Command::Register(args) => {
            let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
            let summary = rt.block_on(workload::register::run(&cli.client, &args))?;
            if cli.json {
                println!("{}", summary.to_json());
            } else {
                print!("{}", summary.render_human());
            }
            Ok(())
        }
        Command::Table { files } => {
            let mut rows = Vec::new();
            for path in &files {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                rows.extend(
                    report::parse_json_lines(&text)
                        .with_context(|| format!("parsing {}", path.display()))?,
                );
            }
            print!("{}", report::markdown_table(&rows)?);
            Ok(())
        }
    }
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
    }

    #[test]
    fn val_size_above_the_meta_limit_is_rejected_by_the_parser() {
        let err = Cli::try_parse_from(["waymark-bench", "register", "--val-size", "513"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("512"), "{err}");
    }
}
