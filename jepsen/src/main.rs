//! `waymark-jepsen`: the chaos harness's command line. `test` runs clusters under
//! faults and checks what the clients saw; `analyze` checks a recorded run again;
//! `check` runs the linearizability checker over Jepsen histories.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use waymark_jepsen::checker::generate::{self, Spec, Violation};
use waymark_jepsen::checker::models::{KvModel, RegisterModel};
use waymark_jepsen::checker::parse::{self, ParseError};
use waymark_jepsen::checker::{self, CheckOptions, CheckResult, Failure, Model, Operation};

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
                            every run's checker reported that kind and the harness found \
                            nothing wrong with itself), 1 otherwise, 2 if a checker could not decide \
                            and none found an anomaly, 4 if the harness itself failed."
    )]
    Test(Box<test_cmd::TestArgs>),
    /// Check recorded runs again from their history and rewrite their reports.
    #[command(
        after_help = "Exit status: 0 if every run is valid, 1 if any has an anomaly, 2 if a \
                            checker could not decide and none has one, 4 on unreadable input."
    )]
    Analyze(analyze_cmd::AnalyzeArgs),
    /// Write a kv history (EDN, as `check --model kv` reads it) from a simulated
    /// linearizable store, optionally with one violation whose verdict is known.
    Generate(GenerateArgs),
}

#[derive(Args)]
struct GenerateArgs {
    /// Clients running operations concurrently.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Operations in all.
    #[arg(long, default_value_t = 2000)]
    ops: usize,
    /// Keys the operations spread over.
    #[arg(long, default_value_t = 10)]
    keys: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Inject this violation (the history is then not linearizable).
    #[arg(long, value_enum)]
    violation: Option<ViolationKind>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ViolationKind {
    /// A get returns the value from before a write that finished before it began.
    StaleRead,
    /// An acknowledged write never takes effect, and a later get shows it.
    LostWrite,
    /// A get sees a write that was invoked only after the get returned.
    ReadFromFuture,
}

#[derive(Args)]
struct CheckArgs {
    /// The object the histories ran against.
    #[arg(long, value_enum)]
    model: ModelKind,
    /// The history file format [default: jepsen-log for register, kv-edn for kv].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Seconds to spend on each history (all its parts together, and narrowing an
    /// illegal one to where it fails) before calling it unknown; 0 for no limit.
    #[arg(long, value_name = "SECONDS", default_value_t = checker::DEFAULT_TIME_LIMIT.as_secs())]
    time_limit: u64,
    /// Check each history whole instead of splitting it by key first (same verdict,
    /// slower; for comparison).
    #[arg(long)]
    no_split: bool,
    /// Also print how long each history took to decide (after reading it).
    #[arg(long)]
    timing: bool,
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
        Command::Generate(args) => generate(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn generate(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let spec = Spec {
        clients: args.clients,
        ops: args.ops,
        keys: args.keys,
        seed: args.seed,
        violation: args.violation.map(|v| match v {
            ViolationKind::StaleRead => Violation::StaleRead,
            ViolationKind::LostWrite => Violation::LostWrite,
            ViolationKind::ReadFromFuture => Violation::ReadFromFuture,
        }),
    };
    let generated = generate::generate(&spec).context("generating the history")?;
    std::io::stdout()
        .lock()
        .write_all(generated.edn.as_bytes())
        .context("writing the history")?;
    Ok(ExitCode::from(EXIT_OK))
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let options = CheckOptions {
        split: !args.no_split,
        time_limit: (args.time_limit > 0).then(|| Duration::from_secs(args.time_limit)),
    };
    // Each format records one kind of object, so the pair must agree.
    match (args.model, args.format) {
        (ModelKind::Register, None | Some(Format::JepsenLog)) => {
            check_files(&RegisterModel, parse::read_jepsen_log, args, &options)
        }
        (ModelKind::Kv, None | Some(Format::KvEdn)) => {
            check_files(&KvModel, parse::read_kv_edn, args, &options)
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
    args: &CheckArgs,
    options: &CheckOptions,
) -> anyhow::Result<ExitCode>
where
    M::Input: std::fmt::Debug,
    M::Output: std::fmt::Debug,
{
    let files = &args.files;
    // Read everything first, so that a bad file stops the run before any verdict is
    // printed rather than leaving a partial report that looks complete.
    let histories = files
        .iter()
        .map(|path| read(path))
        .collect::<Result<Vec<_>, _>>()?;

    let mut stdout = std::io::stdout().lock();
    let (mut ok, mut illegal, mut unknown) = (0, 0, 0);
    for (path, history) in files.iter().zip(&histories) {
        let started = Instant::now();
        let report = checker::explain(model, history, options);
        let elapsed = started.elapsed();
        let verdict = report.result;
        match verdict {
            CheckResult::Ok => ok += 1,
            CheckResult::Illegal => illegal += 1,
            CheckResult::Unknown => unknown += 1,
        }
        let timing = if args.timing {
            format!(" in {:.3} s", elapsed.as_secs_f64())
        } else {
            String::new()
        };
        writeln!(stdout, "{}: {verdict}{timing}", path.display()).context("writing the report")?;
        if let Some(failure) = &report.failure {
            writeln!(stdout, "  {}", describe_failure(model, history, failure))
                .context("writing the report")?;
        }
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

/// Where an illegal history fails, in the file's line numbers (the times both
/// readers give events).
fn describe_failure<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    failure: &Failure,
) -> String
where
    M::Input: std::fmt::Debug,
    M::Output: std::fmt::Debug,
{
    let culprit = &history[failure.culprit];
    let part = model
        .part_name(&culprit.input)
        .unwrap_or_else(|| "the history".to_owned());
    let called = failure
        .part
        .iter()
        .filter(|&&i| history[i].call_time <= failure.end)
        .count();
    let shortest = if failure.shortest {
        "the shortest such prefix"
    } else {
        "the shortest found before the time limit"
    };
    let output = culprit
        .output
        .as_ref()
        .map_or_else(|| "?".to_owned(), |o| format!("{o:?}"));
    format!(
        "{part} ({} operations): the {called} called by line {} already cannot be \
         linearized ({shortest}); the operation that cannot be placed: {:?} -> {output} \
         by process {}, lines {}-{}",
        failure.part.len(),
        failure.end,
        culprit.input,
        culprit.client_id,
        culprit.call_time,
        culprit.return_time
    )
}
