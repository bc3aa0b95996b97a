//! The dev cluster's processes: where each node listens and keeps its data, starting
//! the children, reaping them, and stopping them in order.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::LogFormat;
use crate::tls::generate::LocalCa;
use crate::tls::TlsConfig;

/// Node K listens on BASE + K - 1. Admin is not on 8501 (the single-node default)
/// because that is node 2's gRPC port here.
const API_BASE: u16 = 8500;
const RAFT_BASE: u16 = 8300;
const ADMIN_BASE: u16 = 8510;
const DNS_BASE: u16 = 8600;
/// How long the nodes get to shut down cleanly before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// What one node is told on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NodeSpec {
    pub(super) id: u64,
    pub(super) api_addr: String,
    pub(super) raft_addr: String,
    pub(super) admin_addr: String,
    pub(super) dns_addr: String,
    pub(super) data_dir: PathBuf,
    pub(super) log_path: PathBuf,
    /// The node's `[tls]` files (`waymark dev --tls`).
    pub(super) tls: Option<TlsConfig>,
}

/// gRPC, Raft, admin and DNS addresses of node `k`.
fn node_addrs(k: u16) -> [String; 4] {
    [API_BASE, RAFT_BASE, ADMIN_BASE, DNS_BASE].map(|base| format!("127.0.0.1:{}", base + k - 1))
}

pub(super) fn node_specs(count: u16, dir: &Path) -> Vec<NodeSpec> {
    (1..=count)
        .map(|k| {
            let [api_addr, raft_addr, admin_addr, dns_addr] = node_addrs(k);
            NodeSpec {
                id: u64::from(k),
                api_addr,
                raft_addr,
                admin_addr,
                dns_addr,
                data_dir: dir.join(format!("node-{k}")),
                log_path: dir.join(format!("node-{k}.log")),
                tls: None,
            }
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
    let mut args: Vec<OsString> = vec![
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
        "--dns-addr".into(),
        spec.dns_addr.clone().into(),
        "--initial-cluster".into(),
        cluster.into(),
        "--log-format".into(),
        format.into(),
    ];
    if let Some(tls) = &spec.tls {
        args.extend([
            "--tls-ca-file".into(),
            tls.ca_file.clone().into(),
            "--tls-cert-file".into(),
            tls.cert_file.clone().into(),
            "--tls-key-file".into(),
            tls.key_file.clone().into(),
        ]);
    }
    args
}

/// Gives every node a certificate from one new CA, under `dir`/tls; the CA file.
pub(super) fn issue_certificates(specs: &mut [NodeSpec], dir: &Path) -> anyhow::Result<PathBuf> {
    let ca = LocalCa::new("Waymark dev CA")?;
    let tls_dir = dir.join("tls");
    for spec in specs.iter_mut() {
        // Nodes dial each other, and clients dial them, at 127.0.0.1.
        spec.tls = Some(ca.write_node(
            &tls_dir,
            &format!("node-{}", spec.id),
            &["127.0.0.1", "localhost"],
        )?);
    }
    Ok(tls_dir.join("ca.pem"))
}
/// The directory holding every node's data and log; a temporary one is removed at
/// exit, after the nodes have stopped.
pub(super) struct DataDir {
    pub(super) path: PathBuf,
    pub(super) temporary: bool,
}

impl DataDir {
    pub(super) fn create(given: Option<PathBuf>) -> anyhow::Result<Self> {
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

    pub(super) fn finish(self) {
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
pub(super) fn check_ports_free(count: u16) -> anyhow::Result<()> {
    for k in 1..=count {
        for (what, addr) in ["gRPC", "Raft", "admin"].into_iter().zip(node_addrs(k)) {
            std::net::TcpListener::bind(addr.as_str()).with_context(|| {
                format!(
                    "node {k}'s {what} address {addr} is not free (is another waymark running?)"
                )
            })?;
        }
    }
    Ok(())
}

pub(super) struct Node {
    pub(super) spec: NodeSpec,
    pub(super) child: Child,
    /// Set once the child has been reaped; its pid must not be signalled after that.
    pub(super) exited: Option<ExitStatus>,
}

impl Node {
    pub(super) fn pid(&self) -> u32 {
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
pub(super) struct Nodes(pub(super) Vec<Node>);

impl Nodes {
    pub(super) fn spawn(
        exe: &Path,
        specs: &[NodeSpec],
        log_format: LogFormat,
    ) -> anyhow::Result<Self> {
        let cluster = initial_cluster(specs);
        let mut nodes = Nodes(Vec::with_capacity(specs.len()));
        for spec in specs {
            let log = open_log(&spec.log_path, log_format)?;
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
    pub(super) fn reap(&mut self) -> Vec<usize> {
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

    pub(super) fn running(&self) -> usize {
        self.0.iter().filter(|n| n.exited.is_none()).count()
    }

    /// SIGTERM to every running node, up to `STOP_DEADLINE` for them to exit, then
    /// SIGKILL for the rest.
    pub(super) async fn stop(&mut self) {
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

fn open_log(path: &Path, log_format: LogFormat) -> anyhow::Result<File> {
    // Append: with --data-dir the previous runs' logs stay readable.
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the node log {}", path.display()))?;
    // A marker between runs, except in JSON logs, which must stay one object per line.
    if log_format == LogFormat::Text {
        writeln!(f, "---- waymark dev: starting node ----")
            .with_context(|| format!("writing to {}", path.display()))?;
    }
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
/// `exited with exit code 1` or `was killed by signal 9 (SIGKILL)`.
pub(super) fn describe_exit(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => "exited with an unknown status".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with exit code {code}"),
            (None, Some(sig)) => match Signal::try_from(sig) {
                Ok(name) => format!("was killed by signal {sig} ({name})"),
                Err(_) => format!("was killed by signal {sig}"),
            },
            (None, None) => format!("exited ({s})"),
        },
    }
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
        let cli =
            crate::cli::Cli::try_parse_from(std::iter::once(OsString::from("waymark")).chain(args))
                .map_err(|e| e.to_string());
        let Ok(crate::cli::Cli {
            command: crate::cli::Command::Server(server),
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
    fn dev_tls_gives_every_node_a_loadable_certificate_on_its_command_line() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let mut specs = node_specs(3, dir.path());
        let ca_file = issue_certificates(&mut specs, dir.path()).unwrap();
        assert_eq!(ca_file, dir.path().join("tls/ca.pem"));
        let args = server_args(&specs[1], &initial_cluster(&specs), LogFormat::Text);
        let cli =
            crate::cli::Cli::try_parse_from(std::iter::once(OsString::from("waymark")).chain(args))
                .unwrap();
        let crate::cli::Command::Server(server) = cli.command else {
            panic!("not a server command");
        };
        // into_config validates, which loads the files.
        let cfg = server.into_config().unwrap();
        let tls = cfg.tls.expect("[tls] from the dev flags");
        assert_eq!(tls.ca_file, ca_file);
        assert_eq!(tls.cert_file, dir.path().join("tls/node-2.pem"));
    }

    #[test]
    fn exit_descriptions() {
        use std::os::unix::process::ExitStatusExt;
        // Raw wait statuses: exit code in the high byte, signal number in the low bits.
        assert_eq!(
            describe_exit(Some(ExitStatus::from_raw(1 << 8))),
            "exited with exit code 1"
        );
        assert_eq!(
            describe_exit(Some(ExitStatus::from_raw(9))),
            "was killed by signal 9 (SIGKILL)"
        );
    }
}
