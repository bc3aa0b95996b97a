//! `waymark-jepsen test`: runs R test runs (seed S, S+1, ...), shows progress, and
//! ends with one table row per run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use waymark_jepsen::control_gate::{self, ExpectedAnomaly};
use waymark_jepsen::report::Summary;
use waymark_jepsen::run::{self, RunOptions};
use waymark_jepsen::{nemesis, workload};

use crate::{EXIT_ANOMALY, EXIT_OK, EXIT_UNKNOWN};

#[derive(Args)]
pub struct TestArgs {
    /// Comma-separated workloads: register, set, watch, stale, lease.
    #[arg(long, default_value = "register,set,watch,stale,lease")]
    workload: String,
    /// Comma-separated faults: kill, restart, pause, partition, partition-leader, loss (or none).
    #[arg(long, default_value = "kill,pause,partition")]
    nemesis: String,
    /// Seconds of workload per run (then heal, settle, final reads, checks).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    time_limit: u64,
    /// Cluster size (3 or 5 are the usual choices).
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// Seed of the first run; run k uses seed + k - 1. Random when not given.
    #[arg(long)]
    seed: Option<u64>,
    /// Number of runs.
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// Seconds of quiet between faults, and of each fault.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    interval: f64,
    /// Client processes per workload.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Milliseconds before a client gives up on an operation (it becomes indeterminate).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    op_timeout_ms: u64,
    /// Seconds a linearizability search may take before its verdict is "unknown".
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    check_time_limit: u64,
    /// First three octets of the private /24 for the node namespaces.
    #[arg(long, default_value = "10.213.0")]
    subnet: String,
    /// The `waymark` binary [default: next to this program].
    #[arg(long)]
    waymark_bin: Option<PathBuf>,
    /// Where run folders go.
    #[arg(long, default_value = "jepsen-results")]
    results: PathBuf,
    /// Run the servers with a deliberately unsafe behaviour (a positive control):
    /// stale-reads, early-ack or watch-skip. See jepsen/README.md.
    #[arg(long)]
    control: Option<String>,
    /// How the positive controls are run: succeed only if every run's CHECKER reports
    /// an anomaly of KIND (e.g. register:not-linearizable) and the harness itself found
    /// nothing (no crashed server, the cluster settled).
    #[arg(long, value_name = "CHECKER:KIND")]
    expect_anomaly: Option<ExpectedAnomaly>,
    /// Run the cluster secured: ACLs on with default deny, TLS on the client API and
    /// mutual TLS on the Raft port (a CA and certificates made with `waymark tls`);
    /// the harness bootstraps ACLs and its clients use the management token.
    #[arg(long)]
    secure: bool,
}

pub fn run(args: &TestArgs) -> anyhow::Result<u8> {
    let workloads = workload::parse_kinds(&args.workload)?;
    let nemeses = nemesis::parse_kinds(&args.nemesis)?;
    if args.runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    if !(args.interval > 0.0 && args.interval.is_finite()) {
        anyhow::bail!("--interval must be a positive number of seconds");
    }
    let waymark_bin = match &args.waymark_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locating this program")?
            .with_file_name("waymark"),
    };
    // Before any run folder is made: a run that cannot start should leave nothing.
    waymark_jepsen::cluster::require_waymark_bin(&waymark_bin)?;
    // Before anything is created: without root nothing below can work.
    waymark_jepsen::cluster::netns::require_root()?;
    if workloads.contains(&workload::WorkloadKind::Stale) {
        workload::dns::require_dig()?;
    }
    // A random seed is short, so it is easy to copy from the output to rerun a run.
    let seed = args
        .seed
        .unwrap_or_else(|| u64::from(rand::random::<u32>()));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;

    let mut summaries: Vec<Summary> = Vec::new();
    for k in 1..=args.runs {
        let run_seed = seed.wrapping_add(u64::from(k) - 1);
        let dir = args.results.join(format!("{stamp}-seed{run_seed}-run{k}"));
        eprintln!(
            "run {k}/{}: seed {run_seed}, {} nodes{}, workloads {}, nemesis {}{}, {}s -> {}",
            args.runs,
            args.nodes,
            if args.secure { " (ACLs + TLS)" } else { "" },
            args.workload,
            args.nemesis,
            args.control
                .as_deref()
                .map(|c| format!(", UNSAFE CONTROL {c}"))
                .unwrap_or_default(),
            args.time_limit,
            dir.display()
        );
        let options = RunOptions {
            workloads: workloads.clone(),
            nemeses: nemeses.clone(),
            time_limit: Duration::from_secs(args.time_limit),
            nodes: args.nodes,
            seed: run_seed,
            interval: Duration::from_secs_f64(args.interval),
            subnet: args.subnet.clone(),
            waymark_bin: waymark_bin.clone(),
            dir: dir.clone(),
            control: args.control.clone(),
            op_timeout: Duration::from_millis(args.op_timeout_ms),
            clients: args.clients,
            check_time_limit: Duration::from_secs(args.check_time_limit),
            progress_every: Duration::from_secs(5),
            secure: args.secure,
        };
        let summary = runtime
            .block_on(run::run(&options, k))
            .with_context(|| format!("run {k} (seed {run_seed}) failed; see {}", dir.display()))?;
        for c in &summary.checkers {
            eprintln!(
                "  {:<9} {:<8} {} anomalies",
                c.checker,
                c.verdict.to_string(),
                c.anomalies.len()
            );
            for a in c.anomalies.iter().take(3) {
                eprintln!("    {}: {}", a.kind, a.description);
            }
        }
        eprintln!("  report: {}", dir.join("report.html").display());
        summaries.push(summary);
    }
    print_table(&summaries);

    let found = summaries.iter().filter(|s| !s.valid).count();
    let undecided = summaries.iter().filter(|s| s.valid && s.unknown).count();
    Ok(if let Some(expected) = &args.expect_anomaly {
        let outcomes: Vec<_> = summaries
            .iter()
            .map(|s| control_gate::judge(s, expected))
            .collect();
        for (s, outcome) in summaries.iter().zip(&outcomes) {
            println!(
                "run {} (seed {}): {expected} {outcome}",
                s.meta.run, s.meta.seed
            );
        }
        let caught = outcomes.iter().filter(|o| o.caught()).count();
        println!(
            "control {}: {expected} caught in {caught} of {} runs",
            args.control.as_deref().unwrap_or("(none)"),
            summaries.len()
        );
        if caught == summaries.len() {
            EXIT_OK
        } else {
            EXIT_ANOMALY
        }
    } else if found > 0 {
        EXIT_ANOMALY
    } else if undecided > 0 {
        EXIT_UNKNOWN
    } else {
        EXIT_OK
    })
}

fn print_table(summaries: &[Summary]) {
    println!(
        "{:>4} {:>12} {:>7} {:>7} {:>6} {:>6} {:>7}  verdicts",
        "run", "seed", "secs", "ops", "info", "faults", "anomal."
    );
    for s in summaries {
        let info: u64 = s.ops.values().filter_map(|o| o.get("info")).sum();
        let faults: u64 = s.faults.values().sum();
        let verdicts: Vec<String> = s
            .checkers
            .iter()
            .map(|c| format!("{}={}", c.checker, c.verdict))
            .collect();
        println!(
            "{:>4} {:>12} {:>7.1} {:>7} {:>6} {:>6} {:>7}  {}",
            s.meta.run,
            s.meta.seed,
            s.meta.duration_ns as f64 / 1e9,
            s.total_ops,
            info,
            faults,
            s.anomalies,
            verdicts.join(" ")
        );
    }
}
