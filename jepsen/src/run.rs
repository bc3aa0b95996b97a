//! One test run, start to verdict: build the cluster, start the watchers, clients and
//! nemesis, stop them at the time limit, heal, wait for the cluster to settle, do the
//! final reads, let the watchers catch up, then check the history and write the report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::checks::{self, Anomaly, CheckContext, CheckerReport};
use crate::cluster::{self, ApiTargets, Cluster, ClusterSpec};
use crate::history::{self, Recorder};
use crate::nemesis::{self, NemesisKind, Planner};
use crate::report::{self, RunMeta, Summary};
use crate::workload::{self, ClientEnv, WorkloadKind};

/// Everything that defines a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub workloads: Vec<WorkloadKind>,
    pub nemeses: Vec<NemesisKind>,
    pub time_limit: Duration,
    pub nodes: u32,
    pub seed: u64,
    /// Quiet time between faults, and how long each fault lasts.
    pub interval: Duration,
    pub subnet: String,
    pub waymark_bin: PathBuf,
    /// This run's folder: history, report, node logs and data.
    pub dir: PathBuf,
    pub control: Option<String>,
    /// Client operations give up (indeterminate) after this long.
    pub op_timeout: Duration,
    /// Client processes per workload (register, set).
    pub clients: usize,
    /// Give up on a linearizability search after this long (verdict unknown).
    pub check_time_limit: Duration,
    /// Print a progress line this often.
    pub progress_every: Duration,
    /// ACLs (default deny) and TLS on both ports; clients use the management token.
    pub secure: bool,
}

/// How long the cluster may take to elect a leader, or to settle after healing.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// Runs one test; the returned summary holds the verdicts. Errors are failures of the
/// harness itself (no root, cluster never came up), not anomalies.
pub async fn run(opts: &RunOptions, run_number: u32) -> anyhow::Result<Summary> {
    std::fs::create_dir_all(&opts.dir)
        .with_context(|| format!("creating {}", opts.dir.display()))?;
    let started_at = wall_clock();
    let recorder = Recorder::create(&opts.dir.join("history.jsonl"))?;
    let spec = ClusterSpec {
        nodes: opts.nodes,
        subnet: opts.subnet.clone(),
        waymark_bin: opts.waymark_bin.clone(),
        run_dir: opts.dir.join("nodes"),
        unsafe_control: opts.control.clone(),
        secure: opts.secure,
    };
    let cluster = Arc::new(Mutex::new(Cluster::start(&spec)?));
    let targets = nemesis::lock(&cluster).api_targets()?;
    let outcome = tokio::select! {
        r = drive(opts, &cluster, targets, &recorder) => r,
        _ = interrupted() => Err(anyhow::anyhow!("interrupted; the cluster and network were removed")),
    };
    // Whatever happened, the servers and namespaces go now (and free the CPU for the
    // checkers).
    nemesis::lock(&cluster).destroy();
    // The history is flushed even when the run failed: it is what shows why.
    let events = recorder.finish();
    let cluster_report = outcome?;
    let events = events?;
    let ctx = CheckContext {
        linearizability_time_limit: opts.check_time_limit,
    };
    let mut reports = check_history(&opts.workloads, &ctx, &events);
    reports.push(cluster_report);
    let meta = RunMeta {
        run: run_number,
        seed: opts.seed,
        nodes: opts.nodes,
        workloads: opts
            .workloads
            .iter()
            .map(|w| w.name().to_string())
            .collect(),
        nemeses: opts.nemeses.iter().map(|n| n.name().to_string()).collect(),
        time_limit_s: opts.time_limit.as_secs(),
        control: opts.control.clone(),
        secure: opts.secure,
        started_at,
        duration_ns: recorder.now(),
    };
    let summary = report::summarize(meta, &events, reports);
    report::write_report(&opts.dir, &summary, &events)?;
    Ok(summary)
}

/// The live part of the run; returns the cluster-level findings (crashes, divergence).
async fn drive(
    opts: &RunOptions,
    cluster: &Arc<Mutex<Cluster>>,
    mut targets: ApiTargets,
    recorder: &Recorder,
) -> anyhow::Result<CheckerReport> {
    if opts.secure {
        let token =
            cluster::secure::bootstrap_acl(&targets.nodes, &targets.connect, SETTLE_LIMIT).await?;
        for (_, addr) in &targets.nodes {
            cluster::secure::check_enforced(addr, &targets.connect).await?;
        }
        targets.connect.token = Some(token);
    }
    let targets = &targets;
    wait_for_leader(targets).await?;
    let clients_stop = CancellationToken::new();
    let watchers_stop = CancellationToken::new();
    let nemesis_stop = CancellationToken::new();
    // Whatever way this returns (an error, or Ctrl-C dropping it), every task stops.
    let _stop_all = [&clients_stop, &watchers_stop, &nemesis_stop].map(|t| t.clone().drop_guard());
    let env = ClientEnv::new(
        recorder.clone(),
        targets.clone(),
        clients_stop.clone(),
        opts.op_timeout,
    );
    let watch_env = env.with_stop(watchers_stop.clone());
    let (writers, watched) = companions(&opts.workloads);

    let watchers = watched.then(|| workload::watch::start(watch_env.clone(), targets.nodes.len()));
    let mut clients = Vec::new();
    if writers {
        clients.push(tokio::spawn(workload::set::run(env.clone(), 2, opts.seed)));
    }
    for kind in &opts.workloads {
        let env = env.clone();
        let (n, seed) = (opts.clients, opts.seed);
        clients.push(match kind {
            WorkloadKind::Register => tokio::spawn(workload::register::run(env, n, seed)),
            WorkloadKind::Set => tokio::spawn(workload::set::run(env, n, seed)),
            WorkloadKind::Lease => tokio::spawn(workload::lease::run(env, n, seed)),
            WorkloadKind::Stale => {
                let dns = tokio::spawn(workload::dns::run(env.clone(), dns_ips(cluster)));
                let stale = tokio::spawn(workload::stale::run(env));
                tokio::spawn(async move {
                    let (dns, stale) = tokio::join!(dns, stale);
                    // Passed on, so a panic in either fails the run (below).
                    if let Err(e) = dns.and(stale) {
                        panic!("a stale or DNS reader task failed: {e}");
                    }
                })
            }
            WorkloadKind::Watch => continue,
        });
    }
    let nemesis_task = tokio::spawn(nemesis::run(
        cluster.clone(),
        targets.clone(),
        recorder.clone(),
        Planner::new(&opts.nemeses, opts.nodes, opts.seed),
        opts.interval,
        nemesis_stop.clone(),
    ));

    let began = Instant::now();
    while began.elapsed() < opts.time_limit {
        let left = opts.time_limit.saturating_sub(began.elapsed());
        tokio::time::sleep(left.min(opts.progress_every)).await;
        progress(recorder, began.elapsed(), "running");
    }

    clients_stop.cancel();
    nemesis_stop.cancel();
    // A workload task that panicked stopped recording: the history would be judged on
    // what it left, so the run fails as a harness failure instead.
    for ended in futures::future::join_all(clients).await {
        ended.context("a workload task panicked; the history is incomplete")?;
    }
    let injected = nemesis_task
        .await
        .context("the nemesis task panicked")?
        .context("the nemesis failed")?;
    nemesis::heal_all(&mut nemesis::lock(cluster)).context("healing the cluster")?;
    progress(recorder, began.elapsed(), "healed; settling");

    let mut anomalies = Vec::new();
    let mut stats = BTreeMap::from([("faults_injected".to_string(), injected)]);
    let settled = settle(targets).await;
    if let Err(e) = &settled {
        anomalies.push(Anomaly {
            kind: "not-settled".into(),
            description: format!("after healing, the cluster did not settle: {e:#}"),
            window: None,
            evidence: Vec::new(),
        });
    }
    let final_index = workload::final_reads::run(&env_for_final(&env)).await;
    stats.insert("final_index".into(), final_index);
    if let Some((positions, task)) = watchers {
        let deadline = Instant::now() + SETTLE_LIMIT;
        while positions.min() < final_index && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        watchers_stop.cancel();
        task.await
            .context("a watcher task panicked; the history is incomplete")?;
    }
    if opts.workloads.contains(&WorkloadKind::Lease) {
        // Every lease is abandoned now: watch them all end, in quiet.
        workload::lease::drain(&env_for_final(&env), workload::lease::DRAIN_LIMIT).await;
    }
    // The replicas must hold the same state: compare digests taken at the same index.
    stats.insert("digests_compared".into(), 0);
    if let Ok(statuses) = &settled {
        let digests: std::collections::BTreeSet<_> = statuses
            .iter()
            .map(|s| (s.digest_index, s.state_digest.clone()))
            .collect();
        let indexes: std::collections::BTreeSet<_> =
            statuses.iter().map(|s| s.digest_index).collect();
        if indexes.len() == 1 {
            stats.insert("digests_compared".into(), statuses.len() as u64);
        }
        if indexes.len() == 1 && digests.len() > 1 {
            anomalies.push(Anomaly {
                kind: "replicas-diverged".into(),
                description: format!(
                    "nodes hold different states at the same index: {}",
                    statuses
                        .iter()
                        .map(|s| format!("n{}={}@{}", s.node, s.state_digest, s.digest_index))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                window: None,
                evidence: Vec::new(),
            });
        }
    }
    let mut c = nemesis::lock(cluster);
    c.collect_crashes();
    for (node, how) in c.crashes() {
        anomalies.push(Anomaly {
            kind: "server-crashed".into(),
            description: format!("n{node} died without being killed: {how}"),
            window: None,
            evidence: Vec::new(),
        });
    }
    Ok(CheckerReport::from_findings("cluster", anomalies, stats))
}

/// (node, IP) of every node, for the DNS readers.
fn dns_ips(cluster: &Arc<Mutex<Cluster>>) -> Vec<(u32, String)> {
    let c = nemesis::lock(cluster);
    (1..=c.nodes())
        .map(|n| (n, c.node_ip(n).to_string()))
        .collect()
}

/// Final reads get a longer timeout: the cluster has settled and they must answer.
fn env_for_final(env: &ClientEnv) -> ClientEnv {
    env.with_stop(CancellationToken::new())
        .with_op_timeout(env.op_timeout.max(Duration::from_secs(10)))
}

/// What the asked-for workloads need besides themselves: set writers (when no set
/// workload runs, the watch and stale workloads still need changes to observe) and
/// watchers (the stale checker compares answers with the watched states).
fn companions(workloads: &[WorkloadKind]) -> (bool, bool) {
    let has = |k| workloads.contains(&k);
    let needs_changes = has(WorkloadKind::Watch) || has(WorkloadKind::Stale);
    (needs_changes && !has(WorkloadKind::Set), needs_changes)
}

/// Runs every checker the workloads call for over a history. A checker that saw too
/// little of its workload says `unknown`, never `valid` ([`checks::activity`]).
pub fn check_history(
    workloads: &[WorkloadKind],
    ctx: &CheckContext,
    events: &[history::Event],
) -> Vec<CheckerReport> {
    let mut reports = Vec::new();
    let has = |k| workloads.contains(&k);
    let (writers, watched) = companions(workloads);
    if has(WorkloadKind::Register) {
        reports.push(checks::register::check(events, ctx));
    }
    if has(WorkloadKind::Set) || writers {
        reports.push(checks::set::check(events, ctx));
    }
    if watched {
        reports.push(checks::watch::check(events, ctx));
    }
    if has(WorkloadKind::Stale) {
        reports.push(checks::stale::check(events, ctx));
        reports.push(checks::dns::check(events));
    }
    if has(WorkloadKind::Lease) {
        reports.push(checks::lease::check(events, ctx));
    }
    for report in &mut reports {
        checks::activity::require_activity(report);
    }
    reports
}

async fn wait_for_leader(targets: &ApiTargets) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    loop {
        let all = cluster::statuses(targets, Duration::from_millis(500)).await;
        if all.len() == targets.nodes.len() && all.iter().all(|s| s.leader.is_some()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the cluster elected no leader within {SETTLE_LIMIT:?} ({} of {} nodes answered); \
                 see the node logs",
                all.len(),
                targets.nodes.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every node answers, agrees on the leader and term, and has applied
/// everything committed, at the same index. Returns the statuses.
async fn settle(targets: &ApiTargets) -> anyhow::Result<Vec<cluster::NodeStatus>> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    loop {
        let all = cluster::statuses(targets, Duration::from_millis(1000)).await;
        let leaders: std::collections::BTreeSet<_> = all.iter().map(|s| s.leader).collect();
        let applied: std::collections::BTreeSet<_> = all.iter().map(|s| s.applied_index).collect();
        let caught_up = all.iter().all(|s| s.applied_index >= s.commit_index);
        if all.len() == targets.nodes.len()
            && leaders.len() == 1
            && !leaders.contains(&None)
            && applied.len() == 1
            && caught_up
        {
            return Ok(all);
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "{} of {} nodes answered; leaders {leaders:?}; applied {applied:?}",
                all.len(),
                targets.nodes.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn progress(recorder: &Recorder, elapsed: Duration, phase: &str) {
    let c = recorder.counts();
    eprintln!(
        "  {:>5.1}s {phase}: {} ok, {} fail, {} info, {} faults, {} watch events",
        elapsed.as_secs_f64(),
        c.ok,
        c.fail,
        c.info,
        c.faults,
        c.watch_events
    );
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Seconds since the epoch in UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
fn wall_clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), to avoid a date dependency.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
