//! Real processes: every node of a three-node cluster is SIGKILLed while several
//! clients stream registrations, then restarted on the same data dirs. No quorum
//! survives in memory, so every acknowledged registration must come back from disk
//! (found by consistent reads on every node), and writes must work again.
//!
//! What this cannot show: a missing fsync. A process kill leaves the kernel's page
//! cache intact, so data written but never flushed survives it (see README,
//! "Durability").

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{wait_for_agreed_leader, Procs};
use common::*;

const SERVICE: &str = "durable";
const WRITERS: usize = 4;

/// Acknowledged registration ids, per writer.
type Acked = Arc<Mutex<Vec<Vec<String>>>>;

fn acked_total(acked: &Acked) -> usize {
    acked.lock().unwrap().iter().map(Vec::len).sum()
}

/// One client registering `w{writer}-{seq}` until `stop`, round-robin over the nodes,
/// retrying a failed registration (same id) on the next node. Records only
/// acknowledged ids. Fails if one registration cannot be placed within `DEADLINE`.
fn writer(
    writer: usize,
    apis: Vec<String>,
    acked: Acked,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut clients = Vec::new();
        for a in &apis {
            clients.push(catalog_client(a).await);
        }
        let mut target = writer % clients.len();
        for seq in 0.. {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let id = format!("w{writer}-{seq:05}");
            let give_up = Instant::now() + DEADLINE;
            loop {
                let reply = clients[target]
                    .register(registration(SERVICE, &id, 6000))
                    .await;
                target = (target + 1) % clients.len();
                if reply.is_ok() {
                    acked.lock().unwrap()[writer].push(id);
                    break;
                }
                assert!(
                    Instant::now() < give_up,
                    "registration {id} never succeeded"
                );
                // A short pause between retries: while every node is down, each
                // attempt fails at once.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_every_node_loses_no_acknowledged_registration() {
    let dir = tempfile::tempdir().unwrap();
    // A low snapshot threshold: the restart also goes through snapshot + purged log.
    let mut procs = Procs::start(dir.path(), 3, &["--snapshot-threshold", "100"]);
    let apis = procs.apis();
    wait_for_agreed_leader(&apis).await;

    let acked: Acked = Arc::new(Mutex::new(vec![Vec::new(); WRITERS]));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| writer(w, apis.clone(), acked.clone(), stop.clone()))
        .collect();
    wait_for("every writer to have 30 acknowledged registrations", || {
        let busy = acked.lock().unwrap().iter().all(|a| a.len() >= 30);
        async move { busy.then_some(()) }
    })
    .await;

    // Mid-stream: signal all three before reaping any, so no quorum outlives the kill.
    for p in &mut procs.0 {
        p.signal_kill();
    }
    for p in &mut procs.0 {
        p.reap();
    }
    let before_kill = acked_total(&acked);
    eprintln!("acknowledged before the kill: {before_kill}");
    for p in &mut procs.0 {
        p.spawn();
    }
    wait_for_agreed_leader(&apis).await;
    wait_for(
        "100 more acknowledged registrations after the restart",
        || {
            let n = acked_total(&acked);
            async move { (n >= before_kill + 100).then_some(()) }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer failed");
    }

    let expected: BTreeSet<String> = acked.lock().unwrap().iter().flatten().cloned().collect();
    let mut seen = Vec::new();
    for a in &apis {
        let c = catalog_client(a).await;
        let (ids, _) = wait_for("a consistent read", || {
            let mut c = c.clone();
            async move { list_ids(&mut c, SERVICE, consistent()).await.ok() }
        })
        .await;
        let ids: BTreeSet<String> = ids.into_iter().collect();
        let missing: Vec<_> = expected.difference(&ids).collect();
        assert!(
            missing.is_empty(),
            "node at {a} lost {} of {} acknowledged registrations, first: {:?}",
            missing.len(),
            expected.len(),
            &missing[..missing.len().min(10)]
        );
        seen.push(ids);
    }
    // Unacknowledged attempts may or may not have applied, but all nodes agree.
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "nodes disagree");
}
