//! `waymark-jepsen analyze RUN_DIR...`: checks a recorded run again (after a checker
//! change, or to study a failure) from its `history.jsonl`, and rewrites its report.
//! The run's settings and cluster-level findings come from its `summary.json`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use waymark_jepsen::checks::CheckContext;
use waymark_jepsen::report::{self, Summary};
use waymark_jepsen::{history, run, workload};

use crate::{EXIT_ANOMALY, EXIT_OK, EXIT_UNKNOWN};

#[derive(Args)]
pub struct AnalyzeArgs {
    /// Seconds a linearizability search may take before its verdict is "unknown".
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    check_time_limit: u64,
    /// Run folders made by `waymark-jepsen test`.
    #[arg(required = true, value_name = "RUN_DIR")]
    runs: Vec<PathBuf>,
}

/// Returns the exit code: 0 all valid, 1 any anomaly, 2 any undecided.
pub fn run(args: &AnalyzeArgs) -> anyhow::Result<u8> {
    let ctx = CheckContext {
        linearizability_time_limit: Duration::from_secs(args.check_time_limit),
    };
    let (mut invalid, mut unknown) = (0, 0);
    for dir in &args.runs {
        let summary_path = dir.join("summary.json");
        let old: Summary = serde_json::from_str(
            &std::fs::read_to_string(&summary_path)
                .with_context(|| format!("reading {}", summary_path.display()))?,
        )
        .with_context(|| format!("{} is not a run summary", summary_path.display()))?;
        let events = history::read_history(&dir.join("history.jsonl"))?;
        let workloads = workload::parse_kinds(&old.meta.workloads.join(","))?;
        let mut reports = run::check_history(&workloads, &ctx, &events);
        // What the cluster did (crashes, divergence) is not in the history.
        reports.extend(old.checkers.into_iter().filter(|c| c.checker == "cluster"));
        let summary = report::summarize(old.meta, &events, reports);
        report::write_report(dir, &summary, &events)?;
        println!("{}: {}", dir.display(), verdicts(&summary));
        invalid += usize::from(!summary.valid);
        unknown += usize::from(summary.valid && summary.unknown);
    }
    Ok(if invalid > 0 {
        EXIT_ANOMALY
    } else if unknown > 0 {
        EXIT_UNKNOWN
    } else {
        EXIT_OK
    })
}

fn verdicts(summary: &Summary) -> String {
    summary
        .checkers
        .iter()
        .map(|c| {
            format!(
                "{}={} ({} anomalies)",
                c.checker,
                c.verdict,
                c.anomalies.len()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
