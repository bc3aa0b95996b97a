//! Real processes: three `waymark server` binaries; the leader is killed with SIGKILL
//! in the middle of a stream of registrations and restarted. Every acknowledged
//! registration must be on all three nodes, which must converge to the same applied
//! index and state digest.

mod common;

use std::sync::{Arc, Mutex};

use common::process::{status, wait_for_agreed_leader, Procs};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_leader_loses_no_acknowledged_registration() {
    let dir = tempfile::tempdir().unwrap();
    let mut procs = Procs::start(dir.path(), 3, &["--snapshot-threshold", "100"]);
    let apis = procs.apis();
    wait_for_agreed_leader(&apis).await;

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
