//! Real-process clusters: `waymark server` binaries on loopback ports with RocksDB data
//! dirs in a temp dir, SIGKILLed and restarted on the same dirs; logs dumped on failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use waymark_proto::pb;

use super::{cluster_client, wait_for};

/// A loopback port free for both TCP and UDP (the DNS listener uses both), chosen
/// below the kernel's ephemeral range (32768 and up). Ports from `bind(":0")` come
/// from that range, so between picking one and the server binding it, any outgoing
/// connection (a Raft peer dialling another) or UDP socket could take it; that once
/// made a node fail with "Address already in use".
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // A pid-dependent start keeps two test processes on different ports.
    let base = 20_000 + (std::process::id() % 500) as u16 * 20;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(port < 32_768, "no free port below the ephemeral range");
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
}

/// One `waymark server` process: its arguments (so it restarts on the same data dir
/// and addresses), its log file, and the child while it runs.
pub struct Proc {
    pub id: u64,
    pub api: String,
    pub raft: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_waymark"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn waymark server");
        self.child = Some(child);
    }

    /// Sends SIGKILL (`Child::kill` on Unix) without waiting for the process to go.
    pub fn signal_kill(&mut self) {
        self.child
            .as_mut()
            .expect("running")
            .kill()
            .expect("SIGKILL");
    }

    /// Reaps a process after `signal_kill`.
    pub fn reap(&mut self) {
        self.child.take().expect("running").wait().expect("wait");
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, ...) to the running server.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().expect("running").id();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).expect("kill(2)");
    }

    pub fn kill9(&mut self) {
        self.signal_kill();
        self.reap();
    }
}

/// The processes of one cluster. Dropping it kills them, and prints their logs if the
/// test failed.
pub struct Procs(pub Vec<Proc>);

impl Procs {
    /// Starts `n` voters (ids 1..=n) with data dirs and logs under `dir`. `extra` is
    /// appended to every node's arguments.
    pub fn start(dir: &Path, n: u64, extra: &[&str]) -> Self {
        let ports: Vec<(u16, u16, u16, u16)> = (0..n)
            .map(|_| (free_port(), free_port(), free_port(), free_port()))
            .collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (api, raft, _, _))| format!("{}=127.0.0.1:{raft}/127.0.0.1:{api}", i + 1))
            .collect();
        let mut procs = Procs(
            ports
                .iter()
                .enumerate()
                .map(|(i, (api, raft, admin, dns))| {
                    let id = i as u64 + 1;
                    let mut args: Vec<String> = vec![
                        "server".into(),
                        "--node-id".into(),
                        id.to_string(),
                        "--data-dir".into(),
                        dir.join(format!("node-{id}")).display().to_string(),
                        "--api-addr".into(),
                        format!("127.0.0.1:{api}"),
                        "--raft-addr".into(),
                        format!("127.0.0.1:{raft}"),
                        "--admin-addr".into(),
                        format!("127.0.0.1:{admin}"),
                        "--dns-addr".into(),
                        format!("127.0.0.1:{dns}"),
                        "--initial-cluster".into(),
                        initial.join(","),
                    ];
                    args.extend(extra.iter().map(|a| a.to_string()));
                    Proc {
                        id,
                        api: format!("127.0.0.1:{api}"),
                        raft: format!("127.0.0.1:{raft}"),
                        args,
                        log: dir.join(format!("node-{id}.log")),
                        child: None,
                    }
                })
                .collect(),
        );
        for p in &mut procs.0 {
            p.spawn();
        }
        procs
    }

    pub fn apis(&self) -> Vec<String> {
        self.0.iter().map(|p| p.api.clone()).collect()
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for p in &mut self.0 {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            if std::thread::panicking() {
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                eprintln!("===== node {} log ({}) =====\n{log}", p.id, p.log.display());
            }
        }
    }
}

/// A node's `Status`, or `None` if it does not answer.
pub async fn status(api: &str) -> Option<pb::StatusResponse> {
    let mut c = cluster_client(api).await;
    c.status(pb::StatusRequest {})
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// Waits until every node in `apis` answers and names the same leader; returns it.
pub async fn wait_for_agreed_leader(apis: &[String]) -> u64 {
    wait_for("a leader known to every node", || async move {
        let mut leaders = Vec::new();
        for a in apis {
            leaders.push(status(a).await?.leader_id?);
        }
        leaders
            .windows(2)
            .all(|w| w[0] == w[1])
            .then_some(leaders[0])
    })
    .await
}
