//! `runtime.scheduling`: every thread of a running proxy is `SCHED_BATCH` by default
//! and `SCHED_OTHER` with `scheduling = "normal"` (read from `/proc/PID/task/*/stat`).

mod common;

use common::*;

/// Linux's policy numbers (sched.h).
const SCHED_OTHER: u32 = 0;
const SCHED_BATCH: u32 = 3;

/// The scheduling policy of each thread of process `pid`.
fn thread_policies(pid: i32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
            // Fields after the parenthesised name start at field 3; the policy is field 41.
            let after_name = &stat[stat.rfind(')')? + 1..];
            after_name.split_whitespace().nth(41 - 3)?.parse().ok()
        })
        .collect()
}

#[tokio::test]
async fn proxy_threads_run_sched_batch_unless_configured_normal() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path()).await;
    let batch = Instance::start(&registry, "api", "api-batch", dir.path(), "");
    let (app_port, inbound, admin) = (free_port(), free_port(), free_port());
    let _app = sample_app("api-normal", app_port, dir.path());
    let config = server_proxy_config(&registry, "api", "api-normal", app_port, inbound, admin, "")
        + "\n[runtime]\nscheduling = \"normal\"\n";
    let normal = proxy("api-normal", &config, dir.path());
    wait_ready(batch.admin).await;
    wait_ready(admin).await;

    let batch_policies = thread_policies(batch.proxy.pid());
    assert!(!batch_policies.is_empty());
    assert!(
        batch_policies.iter().all(|p| *p == SCHED_BATCH),
        "default proxy threads' policies: {batch_policies:?}"
    );
    let normal_policies = thread_policies(normal.pid());
    assert!(!normal_policies.is_empty());
    assert!(
        normal_policies.iter().all(|p| *p == SCHED_OTHER),
        "scheduling = \"normal\" proxy threads' policies: {normal_policies:?}"
    );
}
