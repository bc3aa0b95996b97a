//! `waymark dev`: runs a local N-node cluster as child processes of this binary, waits
//! for a leader, prints how to use it, and stops the nodes on SIGINT/SIGTERM/SIGHUP.

mod nodes;

use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use waymark_client::{ClientTls, ConnectOptions};
use waymark_proto::pb;

use super::output::Table;
use super::DevArgs;
use nodes::{
    check_ports_free, describe_exit, issue_certificates, node_specs, DataDir, Node, NodeSpec, Nodes,
};

/// How long the nodes get to elect a leader before we give up and show their logs.
const LEADER_DEADLINE: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Log lines shown per node when something goes wrong.
const TAIL_LINES: usize = 20;

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
async fn node_status(api_addr: &str, tls: Option<&ClientTls>) -> Option<pb::StatusResponse> {
    let options = ConnectOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Some(Duration::from_secs(1)),
        token: None,
        tls: tls.cloned(),
    };
    let channel = options.connect(api_addr).await.ok()?;
    let resp = waymark_client::cluster(channel)
        .status(pb::StatusRequest {})
        .await
        .ok()?;
    Some(resp.into_inner())
}

/// A node that says it is the leader, or whose leader is known.
async fn find_leader(specs: &[NodeSpec], tls: Option<&ClientTls>) -> Option<pb::StatusResponse> {
    let statuses =
        futures::future::join_all(specs.iter().map(|s| node_status(&s.api_addr, tls))).await;
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
    tls: Option<&ClientTls>,
    signals: &mut StopSignals,
) -> Startup {
    let deadline = Instant::now() + LEADER_DEADLINE;
    loop {
        if let Some(&i) = nodes.reap().first() {
            return Startup::NodeExited(i);
        }
        tokio::select! {
            found = find_leader(specs, tls) => {
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
    let mut t = Table::new(&["NODE", "PID", "GRPC", "RAFT", "ADMIN", "DNS", "LOG"]);
    for n in &nodes.0 {
        t.row(vec![
            n.spec.id.to_string(),
            n.pid().to_string(),
            n.spec.api_addr.clone(),
            n.spec.raft_addr.clone(),
            n.spec.admin_addr.clone(),
            n.spec.dns_addr.clone(),
            n.spec.log_path.display().to_string(),
        ]);
    }
    print!("{}", t.render());
}

fn print_try_this(nodes: &Nodes, ca_file: Option<&Path>) {
    let prog = program_name(std::env::args().next().as_deref());
    let stale_addr = nodes.0.get(1).unwrap_or(&nodes.0[0]).spec.api_addr.clone();
    println!("\ntry:");
    if let Some(ca) = ca_file {
        println!(
            "  export WAYMARK_CACERT={}    # TLS: every command verifies the nodes with this CA",
            ca.display()
        );
    }
    println!("  {prog} register --service web --id web-1 --address 127.0.0.1 --port 8080 --tag v1");
    println!("  {prog} instances web --consistency stale --addr {stale_addr}");
    println!("  {prog} status");
    println!("  curl {}/metrics", nodes.0[0].spec.admin_addr);
    if let Some((host, port)) = nodes.0[0].spec.dns_addr.rsplit_once(':') {
        println!("  dig @{host} -p {port} web.service.waymark SRV");
    }
    // With fewer than three nodes, losing one loses the quorum: nothing to show.
    if let Some(n2) = nodes.0.get(1).filter(|_| nodes.0.len() >= 3) {
        println!(
            "  kill -9 {}    # stop node 2 and see the cluster carry on",
            n2.pid()
        );
    }
    println!("\npress Ctrl-C to stop the cluster");
}

fn exit_notice(node: &Node) -> String {
    format!(
        "node {} (pid {}) {}; log: {}",
        node.spec.id,
        node.pid(),
        describe_exit(node.exited),
        node.spec.log_path.display()
    )
}

/// Runs until a stop signal, or until every node has exited.
async fn supervise(
    nodes: &mut Nodes,
    specs: &[NodeSpec],
    ca_file: Option<&Path>,
    signals: &mut StopSignals,
) -> ExitCode {
    let tls = match ca_file.map(ClientTls::from_ca_file).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "\nwaiting for a leader (up to {}s)…",
        LEADER_DEADLINE.as_secs()
    );
    match wait_for_leader(nodes, specs, tls.as_ref(), signals).await {
        Startup::Leader(status) => {
            let leader = status.leader_id.unwrap_or(status.node_id);
            println!(
                "cluster ready: node {leader} is the leader (term {})",
                status.term
            );
        }
        Startup::NodeExited(i) => {
            eprintln!("the cluster did not start: {}", exit_notice(&nodes.0[i]));
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
    print_try_this(nodes, ca_file);

    let mut tick = tokio::time::interval(POLL_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // Nodes killed on purpose are part of the walk-through: say so, carry on.
                for i in nodes.reap() {
                    println!("{}", exit_notice(&nodes.0[i]));
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
    check_ports_free(args.nodes)?;
    let dir = DataDir::create(args.data_dir)?;
    let mut specs = node_specs(args.nodes, &dir.path);
    let outcome = async {
        let ca_file = if args.tls {
            Some(issue_certificates(&mut specs, &dir.path)?)
        } else {
            None
        };
        // Before spawning, so a Ctrl-C at any point goes through the orderly stop.
        let mut signals = StopSignals::install()?;
        let mut nodes = Nodes::spawn(&exe, &specs, args.log_format)?;
        print_nodes(&nodes, &dir);
        let code = supervise(&mut nodes, &specs, ca_file.as_deref(), &mut signals).await;
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
