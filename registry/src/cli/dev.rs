//! `waymark dev`: runs a local N-node cluster as child processes of this binary, waits
//! for a leader, prints how to use it, and stops the nodes on SIGINT/SIGTERM/SIGHUP.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tonic::transport::Endpoint;
use waymark_proto::pb;
use waymark_proto::pb::cluster_client::ClusterClient;

use super::output::Table;
use super::DevArgs;
use crate::config::LogFormat;

/// Node K listens on BASE + K - 1. Admin is not on 8501 (the single-node default)
/// because that is node 2's gRPC port here.
const API_BASE: u16 = 8500;
const RAFT_BASE: u16 = 8300;
const ADMIN_BASE: u16 = 8510;
/// How long the nodes get to elect a leader before we give up and show their logs.
const LEADER_DEADLINE: Duration = Duration::from_secs(30);
/// How long the nodes get to shut down cleanly before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Log lines shown per node when something goes wrong.
const TAIL_LINES: usize = 20;

/// What one node is told on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeSpec {
    id: u64,
    api_addr: String,
    raft_addr: String,
    admin_addr: String,
    data_dir: PathBuf,
    log_path: PathBuf,
}

fn node_specs(count: u16, dir: &Path) -> Vec<NodeSpec> {
    (1..=count)
        .map(|k| NodeSpec {
            id: u64::from(k),
            api_addr: format!("127.0.0.1:{}", API_BASE + k - 1),
            raft_addr: format!("127.0.0.1:{}", RAFT_BASE + k - 1),
            admin_addr: format!("127.0.0.1:{}", ADMIN_BASE + k - 1),
            data_dir: dir.join(format!("node-{k}")),
            log_path: dir.join(format!("node-{k}.log")),
        })
        .collect()
}

/// The `--initial-cluster` value: `1=RAFT/API,2=RAFT/API,…`.
fn initial_cluster(specs: &[NodeSpec]) -> String {
    specs
        .iter()
        .map(|s| format!("{}={}/{}", s.id, s.raft_addr, s.api_addr))
        .collect::<Vec<_>>()
        .join(",")
}

/// OS strings, so a data directory that is not valid UTF-8 still reaches the node intact.
fn server_args(spec: &NodeSpec, cluster: &str, log_format: LogFormat) -> Vec<OsString> {
    let format = match log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    vec![
        "server".into(),
        "--node-id".into(),
        spec.id.to_string().into(),
        "--data-dir".into(),
        spec.data_dir.clone().into(),
        "--api-addr".into(),
        spec.api_addr.clone().into(),
        "--raft-addr".into(),
        spec.raft_addr.clone().into(),
        "--admin-addr".into(),
        spec.admin_addr.clone().into(),
        "--initial-cluster".into(),
        cluster.into(),
        "--log-format".into(),
        format.into(),
    ]
}

/// The last `n` lines of `text`.
fn tail_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// How to invoke this binary in the printed commands: `waymark` when it was found on
/// PATH, otherwise the path it was started with (e.g. `target/debug/waymark`).
fn program_name(argv0: Option<&str>) -> String {
    match argv0 {
        Some(p) if p.contains('/') && !p.contains(char::is_whitespace) => p.to_string(),
        Some(p) if p.contains('/') => format!("'{}'", p.replace('\'', r"'\''")),
        _ => "waymark".into(),
    }
}

/// The directory holding every node's data and log; a temporary one is removed at
/// exit, after the nodes have stopped.
struct DataDir {
    path: PathBuf,
    temporary: bool,
}

impl DataDir {
    fn create(given: Option<PathBuf>) -> anyhow::Result<Self> {
        if let Some(dir) = given {
            fs::create_dir_all(&dir)
                .with_context(|| format!("creating the data directory {}", dir.display()))?;
            // Absolute, so the printed log paths work from any directory.
            let path = std::path::absolute(&dir)
                .with_context(|| format!("resolving the data directory {}", dir.display()))?;
            return Ok(Self {
                path,
                temporary: false,
            });
        }
        let base = std::env::temp_dir();
        // `create_dir` fails if the name is taken, so two dev clusters never share one.
        for attempt in 0..100 {
            let path = base.join(format!("waymark-dev-{}-{attempt}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => {
                    return Ok(Self {
                        path,
                        temporary: true,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("creating a temporary directory in {}", base.display())
                    })
                }
            }
        }
        anyhow::bail!(
            "creating a temporary directory in {}: every name tried is taken",
            base.display()
        )
    }

    fn finish(self) {
        if !self.temporary {
            println!("data and logs kept in {}", self.path.display());
            return;
        }
        match fs::remove_dir_all(&self.path) {
            Ok(()) => println!("removed {}", self.path.display()),
            Err(e) => eprintln!("warning: could not remove {}: {e}", self.path.display()),
        }
    }
}

/// Fails early, with the port's purpose, instead of letting a node die on bind.
fn check_ports_free(specs: &[NodeSpec]) -> anyhow::Result<()> {
    for s in specs {
        for (what, addr) in [
            ("gRPC", &s.api_addr),
            ("Raft", &s.raft_addr),
            ("admin", &s.admin_addr),
        ] {
            std::net::TcpListener::bind(addr.as_str()).with_context(|| {
                format!(
                    "node {}'s {what} address {addr} is not free (is another waymark running?)",
                    s.id
                )
            })?;
        }
    }
    Ok(())
}

struct Node {
    spec: NodeSpec,
    child: Child,
    /// Set once the child has been reaped; its pid must not be signalled after that.
    exited: Option<ExitStatus>,
}

impl Node {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: Signal) {
        if self.exited.is_some() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.pid()) {
            // ESRCH only means it is already gone; the next reap will notice.
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }
}

/// The running children. Dropping it kills and reaps whatever is still running, so an
/// early return or a panic never leaves nodes behind holding the ports.
struct Nodes(Vec<Node>);

impl Nodes {
    fn spawn(exe: &Path, specs: &[NodeSpec], log_format: LogFormat) -> anyhow::Result<Self> {
        let cluster = initial_cluster(specs);
        let mut nodes = Nodes(Vec::with_capacity(specs.len()));
        for spec in specs {
            let log = open_log(&spec.log_path)?;
            let log_err = log
                .try_clone()
                .with_context(|| format!("opening {}", spec.log_path.display()))?;
            let mut cmd = Command::new(exe);
            cmd.args(server_args(spec, &cluster, log_format))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err);
            isolate(&mut cmd);
            let child = cmd
                .spawn()
                .with_context(|| format!("starting node {} ({})", spec.id, exe.display()))?;
            nodes.0.push(Node {
                spec: spec.clone(),
                child,
                exited: None,
            });
        }
        Ok(nodes)
    }

    /// Reaps children that have exited since the last call and returns their indices;
    /// each child is reported exactly once.
    fn reap(&mut self) -> Vec<usize> {
        let mut newly = Vec::new();
        for (i, node) in self.0.iter_mut().enumerate() {
            if node.exited.is_some() {
                continue;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                node.exited = Some(status);
                newly.push(i);
            }
        }
        newly
    }

    fn running(&self) -> usize {
        self.0.iter().filter(|n| n.exited.is_none()).count()
    }

    /// SIGTERM to every running node, up to `STOP_DEADLINE` for them to exit, then
    /// SIGKILL for the rest.
    async fn stop(&mut self) {
        self.reap();
        let running = self.running();
        if running == 0 {
            return;
        }
        println!("stopping {running} node(s)…");
        for node in &self.0 {
            node.signal(Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        while self.running() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.reap();
        }
        for node in self.0.iter_mut().filter(|n| n.exited.is_none()) {
            println!(
                "node {} (pid {}) did not stop within {}s; killing it",
                node.spec.id,
                node.pid(),
                STOP_DEADLINE.as_secs()
            );
            node.signal(Signal::SIGKILL);
            node.exited = node.child.wait().ok();
        }
        println!("all nodes stopped");
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for node in self.0.iter_mut().filter(|n| n.exited.is_none()) {
            let _ = node.child.kill();
            node.exited = node.child.wait().ok();
        }
    }
}

fn open_log(path: &Path) -> anyhow::Result<File> {
    // Append: with --data-dir the previous runs' logs stay readable.
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the node log {}", path.display()))?;
    writeln!(f, "---- waymark dev: starting node ----")
        .with_context(|| format!("writing to {}", path.display()))?;
    Ok(f)
}

/// Puts the child in its own process group, so a terminal Ctrl-C reaches only this
/// supervisor (which then stops the nodes in order), and on Linux asks the kernel to
/// SIGTERM it if the supervisor dies without cleaning up (e.g. `kill -9`).
fn isolate(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    // SAFETY: the closure runs between fork and exec and only makes the prctl syscall,
    // which is async-signal-safe and does not allocate. The death signal follows the
    // forking *thread*; nodes are spawned from the thread running `block_on`, which
    // lives until the supervisor exits.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
}

/// SIGINT, SIGTERM and SIGHUP (terminal closed) all mean "stop the cluster".
struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        let install = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("installing the {name} handler"))
        };
        Ok(Self {
            int: install(SignalKind::interrupt(), "SIGINT")?,
            term: install(SignalKind::terminate(), "SIGTERM")?,
            hup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

/// One node's status, or None while it is not answering yet.
async fn node_status(api_addr: &str) -> Option<pb::StatusResponse> {
    let channel = Endpoint::from_shared(format!("http://{api_addr}"))
        .ok()?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(1))
        .connect()
        .await
        .ok()?;
    let resp = ClusterClient::new(channel)
        .status(pb::StatusRequest {})
        .await
        .ok()?;
    Some(resp.into_inner())
}

/// A node that says it is the leader, or whose leader is known.
async fn find_leader(specs: &[NodeSpec]) -> Option<pb::StatusResponse> {
    let statuses = futures::future::join_all(specs.iter().map(|s| node_status(&s.api_addr))).await;
    let mut statuses: Vec<_> = statuses.into_iter().flatten().collect();
    if let Some(i) = statuses.iter().position(|s| s.role == "leader") {
        return Some(statuses.swap_remove(i));
    }
    statuses.into_iter().find(|s| s.leader_id.is_some())
}

enum Startup {
    Leader(pb::StatusResponse),
    NodeExited(usize),
    TimedOut,
    Stopped(&'static str),
}

async fn wait_for_leader(
    nodes: &mut Nodes,
    specs: &[NodeSpec],
    signals: &mut StopSignals,
) -> Startup {
    let deadline = Instant::now() + LEADER_DEADLINE;
    loop {
        if let Some(&i) = nodes.reap().first() {
            return Startup::NodeExited(i);
        }
        tokio::select! {
            found = find_leader(specs) => {
                if let Some(status) = found {
                    return Startup::Leader(status);
                }
            }
            sig = signals.recv() => return Startup::Stopped(sig),
        }
        if Instant::now() >= deadline {
            return Startup::TimedOut;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
            sig = signals.recv() => return Startup::Stopped(sig),
        }
    }
}

fn print_log_tail(spec: &NodeSpec) {
    match fs::read(&spec.log_path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            eprintln!("---- last lines of {} ----", spec.log_path.display());
            for line in tail_lines(&text, TAIL_LINES) {
                eprintln!("{line}");
            }
        }
        Err(e) => eprintln!("(could not read {}: {e})", spec.log_path.display()),
    }
}

fn print_nodes(nodes: &Nodes, dir: &DataDir) {
    let kept = if dir.temporary {
        "a temporary directory, removed at exit"
    } else {
        "kept after exit"
    };
    println!(
        "waymark dev: {} node(s), data in {} ({kept})",
        nodes.0.len(),
        dir.path.display()
    );
    println!("each node's stdout and stderr go to its log file:\n");
    let mut t = Table::new(&["NODE", "PID", "GRPC", "RAFT", "ADMIN", "LOG"]);
    for n in &nodes.0 {
        t.row(vec![
            n.spec.id.to_string(),
            n.pid().to_string(),
            n.spec.api_addr.clone(),
            n.spec.raft_addr.clone(),
            n.spec.admin_addr.clone(),
            n.spec.log_path.display().to_string(),
        ]);
    }
    print!("{}", t.render());
}

fn print_try_this(nodes: &Nodes) {
    let prog = program_name(std::env::args().next().as_deref());
    let stale_addr = nodes.0.get(1).unwrap_or(&nodes.0[0]).spec.api_addr.clone();
    println!("\ntry:");
    println!("  {prog} register --service web --id web-1 --address 127.0.0.1 --port 8080 --tag v1");
    println!("  {prog} instances web --consistency stale --addr {stale_addr}");
    println!("  {prog} status");
    println!("  curl {}/metrics", nodes.0[0].spec.admin_addr);
    // With fewer than three nodes, losing one loses the quorum: nothing to show.
    if let Some(n2) = nodes.0.get(1).filter(|_| nodes.0.len() >= 3) {
        println!(
            "  kill -9 {}    # stop node 2 and see the cluster carry on",
            n2.pid()
        );
    }
    println!("\npress Ctrl-C to stop the cluster");
}

/// `exit code 1` or `killed by signal 9 (SIGKILL)`.
fn describe_exit(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => "with an unknown status".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("with exit code {code}"),
            (None, Some(sig)) => match Signal::try_from(sig) {
                Ok(name) => format!("killed by signal {sig} ({name})"),
                Err(_) => format!("killed by signal {sig}"),
            },
            (None, None) => format!("({s})"),
        },
    }
}

fn report_exit(node: &Node) {
    println!(
        "node {} (pid {}) exited {}; log: {}",
        node.spec.id,
        node.pid(),
        describe_exit(node.exited),
        node.spec.log_path.display()
    );
}

/// Runs until a stop signal, or until every node has exited.
async fn supervise(nodes: &mut Nodes, specs: &[NodeSpec], signals: &mut StopSignals) -> ExitCode {
    println!(
        "\nwaiting for a leader (up to {}s)…",
        LEADER_DEADLINE.as_secs()
    );
    match wait_for_leader(nodes, specs, signals).await {
        Startup::Leader(status) => {
            let leader = status.leader_id.unwrap_or(status.node_id);
            println!(
                "cluster ready: node {leader} is the leader (term {})",
                status.term
            );
        }
        Startup::NodeExited(i) => {
            eprintln!("a node exited while the cluster was starting:");
            report_exit(&nodes.0[i]);
            print_log_tail(&nodes.0[i].spec);
            return ExitCode::FAILURE;
        }
        Startup::TimedOut => {
            eprintln!(
                "no leader after {}s; the nodes' logs end with:",
                LEADER_DEADLINE.as_secs()
            );
            for spec in specs {
                print_log_tail(spec);
            }
            return ExitCode::FAILURE;
        }
        Startup::Stopped(sig) => {
            println!("{sig} received");
            return ExitCode::SUCCESS;
        }
    }
    print_try_this(nodes);

    let mut tick = tokio::time::interval(POLL_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // Nodes killed on purpose are part of the walk-through: say so, carry on.
                for i in nodes.reap() {
                    report_exit(&nodes.0[i]);
                    if nodes.running() > 0 {
                        println!("the other {} node(s) keep running", nodes.running());
                    }
                }
                if nodes.running() == 0 {
                    eprintln!("every node has exited; stopping");
                    return ExitCode::FAILURE;
                }
            }
            sig = signals.recv() => {
                println!("{sig} received");
                return ExitCode::SUCCESS;
            }
        }
    }
}

pub(super) fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    // Single-threaded on purpose: children are spawned from this thread, which is what
    // their parent-death signal is tied to.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(run_cluster(args))
}

async fn run_cluster(args: DevArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding this binary to start the nodes with")?;
    let dir = DataDir::create(args.data_dir)?;
    let specs = node_specs(args.nodes, &dir.path);
    let outcome = async {
        check_ports_free(&specs)?;
        // Before spawning, so a Ctrl-C at any point goes through the orderly stop.
        let mut signals = StopSignals::install()?;
        let mut nodes = Nodes::spawn(&exe, &specs, args.log_format)?;
        print_nodes(&nodes, &dir);
        let code = supervise(&mut nodes, &specs, &mut signals).await;
        nodes.stop().await;
        anyhow::Ok(code)
    }
    .await;
    // Only after every node is gone (the `Nodes` guard has dropped by now).
    dir.finish();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_paths_follow_the_node_number() {
        let specs = node_specs(3, Path::new("/d"));
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[1].api_addr, "127.0.0.1:8501");
        assert_eq!(specs[1].raft_addr, "127.0.0.1:8301");
        assert_eq!(specs[1].admin_addr, "127.0.0.1:8511");
        assert_eq!(specs[2].data_dir, Path::new("/d/node-3"));
        assert_eq!(specs[2].log_path, Path::new("/d/node-3.log"));
    }

    #[test]
    fn initial_cluster_lists_every_node() {
        let specs = node_specs(2, Path::new("/d"));
        assert_eq!(
            initial_cluster(&specs),
            "1=127.0.0.1:8300/127.0.0.1:8500,2=127.0.0.1:8301/127.0.0.1:8501"
        );
        // The server must accept what we generate.
        for entry in initial_cluster(&specs).split(',') {
            assert!(crate::config::PeerConfig::parse(entry).is_ok(), "{entry}");
        }
    }

    #[test]
    fn server_args_parse_into_a_valid_config() {
        use clap::Parser;
        let specs = node_specs(3, Path::new("/tmp/wm"));
        let args = server_args(&specs[2], &initial_cluster(&specs), LogFormat::Json);
        let cli = super::super::Cli::try_parse_from(
            std::iter::once(OsString::from("waymark")).chain(args),
        )
        .map_err(|e| e.to_string());
        let Ok(super::super::Cli {
            command: super::super::Command::Server(server),
        }) = cli
        else {
            panic!("unexpected parse: {cli:?}");
        };
        let cfg = server.into_config().map_err(|e| format!("{e:#}"));
        let cfg = cfg.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.node_id, 3);
        assert_eq!(cfg.admin_addr, "127.0.0.1:8512");
        assert_eq!(cfg.initial_cluster.len(), 3);
        assert_eq!(cfg.log_format, LogFormat::Json);
    }

    #[test]
    fn exit_descriptions() {
        use std::os::unix::process::ExitStatusExt;
        // Raw wait statuses: exit code in the high byte, signal number in the low bits.
        assert_eq!(
            describe_exit(Some(ExitStatus::from_raw(1 << 8))),
            "with exit code 1"
        );
        assert_eq!(
            describe_exit(Some(ExitStatus::from_raw(9))),
            "killed by signal 9 (SIGKILL)"
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), ["b", "c"]);
        assert_eq!(tail_lines("a", 5), ["a"]);
        assert!(tail_lines("", 3).is_empty());
    }

    #[test]
    fn program_name_for_pasting() {
        assert_eq!(program_name(Some("waymark")), "waymark");
        assert_eq!(program_name(None), "waymark");
        assert_eq!(
            program_name(Some("target/debug/waymark")),
            "target/debug/waymark"
        );
        assert_eq!(program_name(Some("/my dir/waymark")), "'/my dir/waymark'");
    }
}
