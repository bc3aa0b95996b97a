//! Real processes: three `waymark server` binaries; the leader is killed with SIGKILL
//! in the middle of a stream of registrations and restarted. Every acknowledged
//! registration must be on all three nodes, which must converge to the same applied
//! index and state digest.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use common::*;
use waymark_proto::pb;

/// A loopback port free for both TCP and UDP (the DNS listener uses both), chosen
/// below the kernel's ephemeral range (32768 and up). Ports from `bind(":0")` come
/// from that range, so between picking one and the server binding it, any outgoing
/// connection (a Raft peer dialling another) or UDP socket could take it; that once
/// made a node fail with "Address already in use".
fn free_port() -> u16 {
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

struct Proc {
    id: u64,
    api: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn spawn(&mut self) {
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

    fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
    }
}

/// Kills the processes at the end, and prints their logs if the test failed.
struct Procs(Vec<Proc>);

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

async fn status(api: &str) -> Option<pb::StatusResponse> {
    let mut c = cluster_client(api).await;
    c.status(pb::StatusRequest {})
        .await
        .ok()
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_leader_loses_no_acknowledged_registration() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16, u16, u16)> = (0..3)
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
                let args = vec![
                    "server".into(),
                    "--node-id".into(),
                    id.to_string(),
                    "--data-dir".into(),
                    dir.path().join(format!("node-{id}")).display().to_string(),
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
                    "--snapshot-threshold".into(),
                    "100".into(),
                ];
                Proc {
                    id,
                    api: format!("127.0.0.1:{api}"),
                    args,
                    log: dir.path().join(format!("node-{id}.log")),
                    child: None,
                }
            })
            .collect(),
    );
    for p in &mut procs.0 {
        p.spawn();
    }
    let apis: Vec<String> = procs.0.iter().map(|p| p.api.clone()).collect();
    wait_for("a leader known to every node", || {
        let apis = apis.clone();
        async move {
            let mut leaders = Vec::new();
            for a in &apis {
                leaders.push(status(a).await?.leader_id?);
            }
            leaders.windows(2).all(|w| w[0] == w[1]).then_some(())
        }
    })
    .await;

    // A client registers a stream of instances, round-robin over the nodes, moving on
    // to the next node when one fails. Only acknowledged ids are recorded.
    const TOTAL: usize = 300;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let acked = acked.clone();
        let apis = apis.clone();
        tokio::spawn(async move {
            let mut clients = Vec::new();
            for a in &apis {
                clients.push(catalog_client(a).await);
            }
            let mut target = 0;
            for i in 0..TOTAL {
                let id = format!("k-{i:04}");
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    assert!(attempts < 2_000, "registration {id} never succeeded");
                    match clients[target]
                        .register(registration("kv", &id, 6000))
                        .await
                    {
                        Ok(_) => {
                            acked.lock().unwrap().push(id);
                            break;
                        }
                        Err(_) => {
                            target = (target + 1) % clients.len();
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                    }
                }
                target = (target + 1) % clients.len();
            }
        })
    };
    let acked_count = || acked.lock().unwrap().len();
    wait_for("50 acknowledged registrations", || {
        let n = acked_count();
        async move { (n >= 50).then_some(()) }
    })
    .await;
    let leader = wait_for("the leader's id", || {
        let api = apis[0].clone();
        async move { status(&api).await?.leader_id }
    })
    .await;
    procs.0[leader as usize - 1].kill9();
    let killed_at = acked_count();
    wait_for("registrations to continue without the old leader", || {
        let n = acked_count();
        async move { (n >= killed_at + 50).then_some(()) }
    })
    .await;
    procs.0[leader as usize - 1].spawn();
    writer.await.expect("writer finished");

    // All three converge: same applied index, same digest.
    let statuses = wait_for("all nodes to converge on one state", || {
        let apis = apis.clone();
        async move {
            let mut all = Vec::new();
            for a in &apis {
                all.push(status(a).await?);
            }
            let same = all.windows(2).all(|w| {
                w[0].applied_index == w[1].applied_index
                    && w[0].digest_index == w[1].digest_index
                    && w[0].state_digest == w[1].state_digest
            });
            same.then_some(all)
        }
    })
    .await;
    assert!(statuses[0].applied_index > 0);

    let mut expected = acked.lock().unwrap().clone();
    expected.sort();
    assert_eq!(expected.len(), TOTAL);
    for a in &apis {
        let mut c = catalog_client(a).await;
        let (ids, _) = list_ids(&mut c, "kv", consistent()).await.unwrap();
        assert_eq!(ids, expected, "node at {a}");
    }
}
