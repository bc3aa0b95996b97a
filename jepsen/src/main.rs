//! `waymark-jepsen`: the chaos harness's command line. `test` runs clusters under
//! faults and checks what the clients saw; `analyze` checks a recorded run again;
//! `check` runs the linearizability checker over Jepsen histories.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use waymark_jepsen::checker::models::{KvModel, RegisterModel};
use waymark_jepsen::checker::parse::{self, ParseError};
use waymark_jepsen::checker::{self, CheckOptions, CheckResult, Model, Operation};

mod analyze_cmd;
mod test_cmd;

// Exit statuses, shared by every subcommand.

/// Every history linearizable; no run found an anomaly.
const EXIT_OK: u8 = 0;
/// A history not linearizable; a run found an anomaly.
const EXIT_ANOMALY: u8 = 1;
/// Nothing wrong found, but something undecided (a search out of time).
const EXIT_UNKNOWN: u8 = 2;
/// Bad input or a harness failure (clap's own usage errors exit with 2).
const EXIT_FAILURE: u8 = 4;

#[derive(Parser)]
#[command(
    name = "waymark-jepsen",
    version,
    about = "Waymark's Jepsen-style chaos harness"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check recorded histories for linearizability.
    ///
    /// Prints `FILE: linearizable|not linearizable|unknown` per file, then the counts.
    #[command(
        after_help = "Exit status: 0 if every history is linearizable, 1 if any is \
                            not linearizable, 2 if none is but some are unknown (time limit \
                            reached), 4 on unreadable input."
    )]
    Check(CheckArgs),
    /// Run clusters under faults, record what clients see, and check it.
    ///
    /// Needs root (network namespaces and nftables). Each run gets a folder under
    /// --results with the history, summary, HTML report and node logs.
    #[command(
        after_help = "Exit status: 0 if no run found an anomaly (with --expect-anomaly: if \
                            every run found one), 1 otherwise, 2 if a checker could not decide \
                            and none found an anomaly, 4 if the harness itself failed."
    )]
    Test(test_cmd::TestArgs),
    /// Check recorded runs again from their history and rewrite their reports.
    #[command(
        after_help = "Exit status: 0 if every run is valid, 1 if any has an anomaly, 2 if a \
                            checker could not decide and none has one, 4 on unreadable input."
    )]
    Analyze(analyze_cmd::AnalyzeArgs),
}

#[derive(Args)]
struct CheckArgs {
    /// The object the histories ran against.
    #[arg(long, value_enum)]
    model: ModelKind,
    /// The history file format [default: jepsen-log for register, kv-edn for kv].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Seconds to spend on each history before calling it unknown; 0 for no limit.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    time_limit: u64,
    /// Check each history whole instead of splitting it by key first (same verdict,
    /// slower; for comparison).
    #[arg(long)]
    no_split: bool,
    /// History files, one history each.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModelKind {
    /// One register with read, write and cas (etcd).
    Register,
    /// A key-value store with get, put and append.
    Kv,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Jepsen's log lines: `INFO  jepsen.util - <process> <type> <f> <value>`.
    JepsenLog,
    /// One EDN event map a line: `{:process 1, :type :ok, :f :get, :key "k", :value "v"}`.
    KvEdn,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check(&args),
        Command::Test(args) => test_cmd::run(&args).map(ExitCode::from),
        Command::Analyze(args) => analyze_cmd::run(&args).map(ExitCode::from),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let options = CheckOptions {
        split: !args.no_split,
        time_limit: (args.time_limit > 0).then(|| Duration::from_secs(args.time_limit)),
    };
    // Each format records one kind of object, so the pair must agree.
    match (args.model, args.format) {
        (ModelKind::Register, None | Some(Format::JepsenLog)) => check_files(
            &RegisterModel,
            parse::read_jepsen_log,
            &args.files,
            &options,
        ),
        (ModelKind::Kv, None | Some(Format::KvEdn)) => {
            check_files(&KvModel, parse::read_kv_edn, &args.files, &options)
        }
        (ModelKind::Register, Some(Format::KvEdn)) => {
            bail!("the kv-edn format holds kv histories; use --model kv")
        }
        (ModelKind::Kv, Some(Format::JepsenLog)) => {
            bail!("the jepsen-log format holds register histories; use --model register")
        }
    }
}

type Reader<M> =
    fn(&Path) -> Result<Vec<Operation<<M as Model>::Input, <M as Model>::Output>>, ParseError>;

fn check_files<M: Model>(
    model: &M,
    read: Reader<M>,
    files: &[PathBuf],
    options: &CheckOptions,
) -> anyhow::Result<ExitCode> {
    // Read everything first, so that a bad file stops the run before any verdict is
    // printed rather than leaving a partial report that looks complete.
    let histories = files
        .iter()
        .map(|path| read(path))
        .collect::<Result<Vec<_>, _>>()?;

    let mut stdout = std::io::stdout().lock();
    let (mut ok, mut illegal, mut unknown) = (0, 0, 0);
    for (path, history) in files.iter().zip(&histories) {
        let verdict = checker::check(model, history, options);
        match verdict {
            CheckResult::Ok => ok += 1,
            CheckResult::Illegal => illegal += 1,
            CheckResult::Unknown => unknown += 1,
        }
        writeln!(stdout, "{}: {verdict}", path.display()).context("writing the report")?;
    }
    writeln!(
        stdout,
        "{ok} linearizable, {illegal} not linearizable, {unknown} unknown"
    )
    .context("writing the report")?;

    let code = if illegal > 0 {
        EXIT_ANOMALY
    } else if unknown > 0 {
        eprintln!(
            "{unknown} undecided: the time limit of {}s per history ran out \
             (raise it with --time-limit; 0 for none)",
            options.time_limit.map_or(0, |limit| limit.as_secs())
        );
        EXIT_UNKNOWN
    } else {
        EXIT_OK
    };
    Ok(ExitCode::from(code))
}
