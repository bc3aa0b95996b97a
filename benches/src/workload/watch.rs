//! `watch` and `watch-latency`: `--watchers` watch streams on one service, then a putter
//! makes `--total` changes to it and every watcher times each change from when its put
//! was sent to when the watcher received the event (etcd `benchmark watch` /
//! `watch-latency`).
//!
//! - Waymark: each watcher is one Catalog.Watch stream, `services = [--service]`,
//!   `from_index = 0`; it is established once its first message (the snapshot) arrives,
//!   and after that every upsert of an instance `i-<n>` in a Changes message is an event.
//!   The putter registers instances `i-<offset+seq>` (as `register` does).
//! - etcd: each watcher is one Watch stream (one watch on it) over the prefix
//!   `/<service>/`; it is established once etcd confirms the creation, and every put
//!   event of a key `/<service>/i-<n>` is an event. The putter puts those keys.
//!
//! Watchers share `--conns` connections (watcher k uses connection k mod conns); the
//! putter has a connection of its own and `--clients` tasks, paced by `--rate` (0 for
//! `watch` = as fast as they go, 100/s by default for `watch-latency`). Puts start once
//! every watcher is established; after the last put the run waits until every watcher
//! has seen every successful put, or `--settle` has passed.
//!
//! Reported: ops/s = events delivered (distinct, over all watchers) per second from the
//! first put to the last event; latency = put sent → event received over all delivered
//! events; plus missed events (a successful put a watcher never saw), duplicates, watch
//! streams that failed, resets (Waymark), and the time to establish the watchers.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use etcd_client::{EventType, WatchOptions};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tonic::Status;
use waymark_proto::pb;

use crate::conn::{Backend, ClientOpts, Pool};
use crate::etcd::{self, EtcdPool, MAX_MESSAGE_BYTES};
use crate::report::{round, LatencyMs, Summary};
use crate::runner::{self, Outcome, RunConfig};
use crate::workload::register::{instance_number, parse_val_size, Plan};
use waymark_client::parse_duration;

/// Watch streams being opened at once during setup.
pub const SETUP_CONCURRENCY: usize = 256;

/// Most watcher events one run may track (watchers × total): bounds the memory the
/// per-watcher bookkeeping takes (about 4.1 bytes per event).
pub const MAX_TRACKED_EVENTS: u64 = 100_000_000;

#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Watch streams, each on the whole service.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub watchers: u32,

    /// Puts (Register calls, etcd puts) to make once every watcher is established.
    #[arg(long, default_value_t = 1000)]
    pub total: u64,

    /// Puts per second over all putter clients; 0 = unlimited. Default: 0 for `watch`,
    /// 100 for `watch-latency`.
    #[arg(long)]
    pub rate: Option<u64>,

    /// Size in bytes of the value each put carries (Waymark: one meta value).
    #[arg(long, default_value_t = 256, value_parser = parse_val_size)]
    pub val_size: usize,

    /// Service watched and written (etcd: the keys under /<service>/). Use one with few
    /// instances: every Waymark watcher starts with a snapshot of it.
    #[arg(long, default_value = "bench")]
    pub service: String,

    /// Put ids run from i-<offset> to i-<offset+total-1>.
    #[arg(long, default_value_t = 0)]
    pub id_offset: u64,

    /// After the last put, how long to wait for the watchers to see every event.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub settle: Duration,

    /// How long establishing all the watchers may take.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub setup_timeout: Duration,
}

/// Which of the two workloads: they differ in name and default rate only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Watch,
    WatchLatency,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Watch => "watch",
            Mode::WatchLatency => "watch-latency",
        }
    }

    pub fn default_rate(self) -> u64 {
        match self {
            Mode::Watch => 0,
            Mode::WatchLatency => 100,
        }
    }
}

/// What the putter did, shared with the watchers: when each put was sent, which
/// succeeded, and how many events the watchers have received so far.
pub struct Tracker {
    start: Instant,
    offset: u64,
    /// Nanoseconds from `start` to when put `seq` was sent, plus one; 0 = not sent.
    sent_ns: Vec<AtomicU64>,
    ok: Vec<AtomicBool>,
    delivered: AtomicU64,
}

impl Tracker {
    pub fn new(offset: u64, total: u64) -> Self {
        let n = usize::try_from(total).expect("total fits in memory");
        Self {
            start: Instant::now(),
            offset,
            sent_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
            ok: (0..n).map(|_| AtomicBool::new(false)).collect(),
            delivered: AtomicU64::new(0),
        }
    }

    pub fn total(&self) -> u64 {
        self.sent_ns.len() as u64
    }

    pub fn mark_sent(&self, seq: u64, at: Instant) {
        let ns = at.saturating_duration_since(self.start).as_nanos();
        let ns = u64::try_from(ns).unwrap_or(u64::MAX - 1) + 1;
        self.sent_ns[seq as usize].store(ns, Ordering::Release);
    }

    pub fn mark_ok(&self, seq: u64) {
        self.ok[seq as usize].store(true, Ordering::Release);
    }

    pub fn is_ok(&self, seq: u64) -> bool {
        self.ok[seq as usize].load(Ordering::Acquire)
    }

    /// When put `seq` was sent, if it was.
    pub fn sent_at(&self, seq: u64) -> Option<Instant> {
        match self.sent_ns.get(seq as usize)?.load(Ordering::Acquire) {
            0 => None,
            ns => Some(self.start + Duration::from_nanos(ns - 1)),
        }
    }

    /// The put that wrote instance number `n`, if it is one of this run's.
    pub fn seq_of(&self, n: u64) -> Option<u64> {
        let seq = n.wrapping_sub(self.offset);
        (seq < self.total()).then_some(seq)
    }

    /// Distinct events received so far, over all watchers.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
}

/// One watcher's account of the run.
#[derive(Debug)]
pub struct WatcherStats {
    /// Bit `seq` set once the event of put `seq` arrived.
    seen: Vec<u64>,
    pub distinct: u64,
    pub duplicates: u64,
    /// Events for instances this run did not put (or had not sent yet).
    pub foreign: u64,
    pub resets: u64,
    /// Put sent → event received, per distinct event, in microseconds.
    pub latencies_us: Vec<u32>,
    pub last_event: Option<Instant>,
    /// Why the stream ended early, if it did.
    pub error: Option<Status>,
}

impl WatcherStats {
    pub fn new(total: u64) -> Self {
        Self {
            seen: vec![0; total.div_ceil(64) as usize],
            distinct: 0,
            duplicates: 0,
            foreign: 0,
            resets: 0,
            latencies_us: Vec::new(),
            last_event: None,
            error: None,
        }
    }

    /// An upsert/put of instance `id`, received at `at`.
    pub fn on_event(&mut self, tracker: &Tracker, id: &str, at: Instant) {
        let sent = instance_number(id)
            .and_then(|n| tracker.seq_of(n))
            .and_then(|seq| Some((seq, tracker.sent_at(seq)?)));
        let Some((seq, sent)) = sent else {
            self.foreign += 1;
            return;
        };
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= bit;
        self.distinct += 1;
        let us = at.saturating_duration_since(sent).as_micros();
        self.latencies_us
            .push(u32::try_from(us).unwrap_or(u32::MAX));
        self.last_event = Some(self.last_event.map_or(at, |l| l.max(at)));
        tracker.delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub fn has_seen(&self, seq: u64) -> bool {
        self.seen
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    /// Successful puts this watcher never saw.
    pub fn missed(&self, tracker: &Tracker) -> u64 {
        (0..tracker.total())
            .filter(|&seq| tracker.is_ok(seq) && !self.has_seen(seq))
            .count() as u64
    }
}

/// What every watcher task shares.
#[derive(Clone)]
struct Ctx {
    tracker: Arc<Tracker>,
    setup: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<Result<Duration, Status>>,
    stop: watch::Receiver<bool>,
    alive: Arc<AtomicUsize>,
}

impl Ctx {
    /// Reports the outcome of establishing a watcher; on failure the stats carry it.
    fn started<T>(
        &self,
        result: Result<T, Status>,
        t0: Instant,
        stats: &mut WatcherStats,
    ) -> Option<T> {
        match result {
            Ok(v) => {
                let _ = self.ready.send(Ok(t0.elapsed()));
                Some(v)
            }
            Err(e) => {
                let _ = self.ready.send(Err(e.clone()));
                stats.error = Some(e);
                self.alive.fetch_sub(1, Ordering::Relaxed);
                None
            }
        }
    }
}

fn describe(event: &Option<pb::watch_response::Event>) -> &'static str {
    use pb::watch_response::Event;
    match event {
        None => "empty",
        Some(Event::Snapshot(_)) => "snapshot",
        Some(Event::Changes(_)) => "changes",
        Some(Event::Progress(_)) => "progress",
        Some(Event::Reset(_)) => "reset",
    }
}

/// Applies one Waymark watch message to the stats.
pub fn on_waymark_message(
    stats: &mut WatcherStats,
    tracker: &Tracker,
    service: &str,
    msg: pb::WatchResponse,
    at: Instant,
) {
    use pb::record_change::Change;
    use pb::watch_response::Event;
    match msg.event {
        Some(Event::Changes(c)) => {
            for change in c.changes {
                match change.change {
                    Some(Change::Upsert(i)) if i.service == service => {
                        stats.on_event(tracker, &i.id, at)
                    }
                    _ => stats.foreign += 1,
                }
            }
        }
        Some(Event::Reset(_)) => stats.resets += 1,
        // A snapshot after a reset replaces the state: its instances are not events.
        Some(Event::Snapshot(_)) | Some(Event::Progress(_)) | None => {}
    }
}

async fn waymark_watcher(
    channel: waymark_client::Channel,
    service: String,
    ctx: Ctx,
) -> WatcherStats {
    let mut stats = WatcherStats::new(ctx.tracker.total());
    let permit = ctx.setup.acquire().await;
    let t0 = Instant::now();
    let mut client = pb::catalog_client::CatalogClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let request = pb::WatchRequest {
        services: vec![service.clone()],
        from_index: 0,
        ..Default::default()
    };
    let opened = async {
        let mut stream = client.watch(request).await?.into_inner();
        match stream.message().await? {
            Some(pb::WatchResponse {
                event: Some(pb::watch_response::Event::Snapshot(_)),
                ..
            }) => Ok(stream),
            Some(other) => Err(Status::internal(format!(
                "the first watch message is a {} message, not a snapshot",
                describe(&other.event)
            ))),
            None => Err(Status::unavailable(
                "watch stream ended before its snapshot",
            )),
        }
    }
    .await;
    drop(permit);
    let Some(mut stream) = ctx.started(opened, t0, &mut stats) else {
        return stats;
    };
    let mut stop = ctx.stop.clone();
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            msg = stream.message() => match msg {
                Ok(Some(msg)) => {
                    let at = Instant::now();
                    on_waymark_message(&mut stats, &ctx.tracker, &service, msg, at);
                }
                Ok(None) => {
                    stats.error = Some(Status::unavailable("watch stream ended"));
                    break;
                }
                Err(s) => {
                    stats.error = Some(s);
                    break;
                }
            }
        }
    }
    ctx.alive.fetch_sub(1, Ordering::Relaxed);
    stats
}

async fn etcd_watcher(client: etcd_client::Client, service: String, ctx: Ctx) -> WatcherStats {
    let mut stats = WatcherStats::new(ctx.tracker.total());
    let prefix = etcd::prefix(&service);
    let permit = ctx.setup.acquire().await;
    let t0 = Instant::now();
    let mut wc = client
        .watch_client()
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let opened = async {
        let mut ws = wc
            .watch(prefix.clone(), Some(WatchOptions::new().with_prefix()))
            .await
            .map_err(etcd::to_status)?;
        match ws.message().await.map_err(etcd::to_status)? {
            Some(r) if r.created() && !r.canceled() => Ok(ws),
            Some(r) if r.canceled() => Err(Status::aborted(format!(
                "etcd canceled the watch: {}",
                r.cancel_reason()
            ))),
            Some(_) => Err(Status::internal(
                "the first etcd watch message is not the creation",
            )),
            None => Err(Status::unavailable("watch stream ended before creation")),
        }
    }
    .await;
    drop(permit);
    let Some(mut ws) = ctx.started(opened, t0, &mut stats) else {
        return stats;
    };
    let mut stop = ctx.stop.clone();
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            msg = ws.message() => match msg {
                Ok(Some(r)) => {
                    let at = Instant::now();
                    if r.canceled() {
                        stats.error = Some(Status::aborted(format!(
                            "etcd canceled the watch: {}", r.cancel_reason()
                        )));
                        break;
                    }
                    for ev in r.events() {
                        let id = ev.kv().and_then(|kv| etcd::id_of_key(&prefix, kv.key()));
                        match (ev.event_type(), id) {
                            (EventType::Put, Some(id)) => stats.on_event(&ctx.tracker, id, at),
                            _ => stats.foreign += 1,
                        }
                    }
                }
                Ok(None) => {
                    stats.error = Some(Status::unavailable("watch stream ended"));
                    break;
                }
                Err(e) => {
                    stats.error = Some(etcd::to_status(e));
                    break;
                }
            }
        }
    }
    ctx.alive.fetch_sub(1, Ordering::Relaxed);
    stats
}

/// Everything a run measured, before it is summarized.
struct Measured {
    setup_elapsed: Duration,
    setup_us: Histogram<u64>,
    put_elapsed: Duration,
    put_start: Instant,
    puts: Outcome,
    watchers: Vec<WatcherStats>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Waits for the watchers to be established, runs the puts, waits for the events, stops
/// the watchers and collects their stats.
#[allow(clippy::too_many_arguments)]
async fn measure<F, Fut>(
    args: &WatchArgs,
    put_cfg: RunConfig,
    tracker: &Tracker,
    setup_start: Instant,
    mut tasks: JoinSet<WatcherStats>,
    mut ready: mpsc::UnboundedReceiver<Result<Duration, Status>>,
    stop: watch::Sender<bool>,
    alive: &AtomicUsize,
    put: F,
) -> anyhow::Result<Measured>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
{
    let watchers = args.watchers as usize;
    let deadline = tokio::time::Instant::from_std(setup_start + args.setup_timeout);
    let mut setup_us = histogram();
    let mut established = 0;
    while established < watchers {
        let problem = match tokio::time::timeout_at(deadline, ready.recv()).await {
            Ok(Some(Ok(took))) => {
                established += 1;
                setup_us.saturating_record(micros(took));
                continue;
            }
            Ok(Some(Err(status))) => format!(
                "a watcher failed to start ({established} of {watchers} had): {} {}",
                waymark_client::code_name(status.code()),
                status.message()
            ),
            Ok(None) => "the watcher tasks ended before starting".to_string(),
            Err(_) => format!(
                "only {established} of {watchers} watchers started within {:?}",
                args.setup_timeout
            ),
        };
        let _ = stop.send(true);
        tasks.abort_all();
        bail!("{problem}");
    }
    let setup_elapsed = setup_start.elapsed();

    let put_start = Instant::now();
    let puts = runner::run(put_cfg, put).await?;
    let put_elapsed = put_start.elapsed();

    let expected = watchers as u64 * puts.ok;
    let settle_end = Instant::now() + args.settle;
    while tracker.delivered() < expected
        && alive.load(Ordering::Relaxed) > 0
        && Instant::now() < settle_end
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop.send(true);

    let mut stats = Vec::with_capacity(watchers);
    while let Some(joined) = tasks.join_next().await {
        stats.push(joined.context("watcher task panicked")?);
    }
    Ok(Measured {
        setup_elapsed,
        setup_us,
        put_elapsed,
        put_start,
        puts,
        watchers: stats,
    })
}

pub async fn run(opts: &ClientOpts, args: &WatchArgs, mode: Mode) -> anyhow::Result<Summary> {
    let rate = args.rate.unwrap_or(mode.default_rate());
    let watchers = args.watchers as usize;
    if u64::from(args.watchers).saturating_mul(args.total) > MAX_TRACKED_EVENTS {
        bail!(
            "--watchers × --total is {} events; at most {MAX_TRACKED_EVENTS} can be tracked",
            u64::from(args.watchers).saturating_mul(args.total)
        );
    }
    let tracker = Arc::new(Tracker::new(args.id_offset, args.total));
    let plan = Arc::new(Plan::with(&args.service, args.id_offset, args.val_size));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = mpsc::unbounded_channel();
    let alive = Arc::new(AtomicUsize::new(watchers));
    let ctx = Ctx {
        tracker: Arc::clone(&tracker),
        setup: Arc::new(Semaphore::new(SETUP_CONCURRENCY)),
        ready: ready_tx,
        stop: stop_rx,
        alive: Arc::clone(&alive),
    };
    let put_cfg = RunConfig {
        clients: opts.clients as usize,
        total: args.total,
        rate,
    };
    let mut tasks = JoinSet::new();

    let (endpoints, measured) = match opts.backend {
        Backend::Waymark => {
            let pool = Pool::connect(opts).await?;
            let putter = Pool::connect_n(opts, 1).await?.channel_for(0);
            let setup_start = Instant::now();
            for w in 0..watchers {
                tasks.spawn(waymark_watcher(
                    pool.channel_for(w),
                    args.service.clone(),
                    ctx.clone(),
                ));
            }
            drop(ctx);
            let t = Arc::clone(&tracker);
            let put = move |_client: usize, seq: u64| {
                let mut catalog = pb::catalog_client::CatalogClient::new(putter.clone());
                let request = plan.request(seq);
                let t = Arc::clone(&t);
                t.mark_sent(seq, Instant::now());
                async move {
                    catalog.register(request).await?;
                    t.mark_ok(seq);
                    Ok(())
                }
            };
            let m = measure(
                args,
                put_cfg,
                &tracker,
                setup_start,
                tasks,
                ready_rx,
                stop_tx,
                &alive,
                put,
            )
            .await?;
            (pool.endpoints(), m)
        }
        Backend::Etcd => {
            let pool = EtcdPool::connect(opts).await?;
            let putter = EtcdPool::connect_n(opts, 1)
                .await?
                .client_for(0)
                .kv_client();
            let setup_start = Instant::now();
            for w in 0..watchers {
                tasks.spawn(etcd_watcher(
                    pool.client_for(w).clone(),
                    args.service.clone(),
                    ctx.clone(),
                ));
            }
            drop(ctx);
            let t = Arc::clone(&tracker);
            let put = move |_client: usize, seq: u64| {
                let mut kv = putter.clone();
                let (key, value) = plan.etcd_put(seq);
                let t = Arc::clone(&t);
                t.mark_sent(seq, Instant::now());
                async move {
                    kv.put(key, value, None).await.map_err(etcd::to_status)?;
                    t.mark_ok(seq);
                    Ok(())
                }
            };
            let m = measure(
                args,
                put_cfg,
                &tracker,
                setup_start,
                tasks,
                ready_rx,
                stop_tx,
                &alive,
                put,
            )
            .await?;
            (pool.endpoints(), m)
        }
    };
    Ok(summarize(
        opts, args, mode, rate, endpoints, &tracker, measured,
    ))
}

fn summarize(
    opts: &ClientOpts,
    args: &WatchArgs,
    mode: Mode,
    rate: u64,
    endpoints: Vec<String>,
    tracker: &Tracker,
    m: Measured,
) -> Summary {
    let mut events = Outcome::empty();
    events.errors = m.puts.errors.clone();
    let put_errors: u64 = m.puts.errors.values().map(|s| s.count).sum();
    let (mut watch_errors, mut missed, mut duplicates, mut foreign, mut resets) = (0, 0, 0, 0, 0);
    let mut last_event: Option<Instant> = None;
    for w in &m.watchers {
        if let Some(e) = &w.error {
            watch_errors += 1;
            events.record(Duration::ZERO, Err(e.clone()));
        }
        events.ok += w.distinct;
        for &us in &w.latencies_us {
            events.latency_us.saturating_record(u64::from(us).max(1));
        }
        missed += w.missed(tracker);
        duplicates += w.duplicates;
        foreign += w.foreign;
        resets += w.resets;
        last_event = match (last_event, w.last_event) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    let until_last_event =
        last_event.map_or(Duration::ZERO, |l| l.saturating_duration_since(m.put_start));
    events.elapsed = m.put_elapsed.max(until_last_event);

    let watchers = m.watchers.len() as u64;
    let params = vec![
        ("backend", json!(opts.backend.as_str())),
        ("endpoints", json!(endpoints)),
        ("target_leader", json!(opts.target_leader)),
        ("clients", json!(opts.clients)),
        ("conns", json!(opts.conns)),
        ("watchers", json!(args.watchers)),
        ("total", json!(args.total)),
        ("rate", json!(rate)),
        ("val_size", json!(args.val_size)),
        ("service", json!(args.service)),
        ("id_offset", json!(args.id_offset)),
        ("settle_s", json!(args.settle.as_secs_f64())),
    ];
    let put_secs = m.put_elapsed.as_secs_f64();
    let extra = vec![
        ("puts_ok", json!(m.puts.ok)),
        ("put_errors", json!(put_errors)),
        ("watch_errors", json!(watch_errors)),
        ("events_expected", json!(watchers * m.puts.ok)),
        ("events_delivered", json!(events.ok)),
        ("missed", json!(missed)),
        ("duplicates", json!(duplicates)),
        ("foreign_events", json!(foreign)),
        ("resets", json!(resets)),
        ("setup_s", json!(round(m.setup_elapsed.as_secs_f64(), 3))),
        (
            "setup_latency_ms",
            LatencyMs::from_histogram(&m.setup_us).to_json(),
        ),
        ("put_elapsed_s", json!(round(put_secs, 3))),
        (
            "put_rate",
            json!(round(
                if put_secs > 0.0 {
                    m.puts.ok as f64 / put_secs
                } else {
                    0.0
                },
                1
            )),
        ),
        (
            "put_latency_ms",
            LatencyMs::from_histogram(&m.puts.latency_us).to_json(),
        ),
    ];
    Summary::new(mode.name(), params, &events)
        .with_extra("put sent to event received, all watchers", extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{opts, FakeNode};
    use crate::workload::register::instance_id;

    fn args(watchers: u32, total: u64) -> WatchArgs {
        WatchArgs {
            watchers,
            total,
            rate: None,
            val_size: 16,
            service: "bench".into(),
            id_offset: 0,
            settle: Duration::from_secs(5),
            setup_timeout: Duration::from_secs(20),
        }
    }

    #[test]
    fn tracker_maps_instance_numbers_to_puts() {
        let t = Tracker::new(100, 10);
        assert_eq!(t.seq_of(100), Some(0));
        assert_eq!(t.seq_of(109), Some(9));
        assert_eq!(t.seq_of(110), None);
        assert_eq!(t.seq_of(99), None);
        // Ids wrap like instance_id does.
        let t = Tracker::new(u64::MAX, 3);
        assert_eq!(t.seq_of(u64::MAX), Some(0));
        assert_eq!(t.seq_of(1), Some(2));
        assert_eq!(t.seq_of(2), None);
    }

    #[test]
    fn tracker_remembers_send_times_and_successes() {
        let t = Tracker::new(0, 4);
        assert_eq!(t.sent_at(1), None);
        assert_eq!(t.sent_at(99), None);
        let at = t.start + Duration::from_millis(7);
        t.mark_sent(1, at);
        assert_eq!(t.sent_at(1), Some(at));
        assert!(!t.is_ok(1));
        t.mark_ok(1);
        assert!(t.is_ok(1));
    }

    #[test]
    fn events_are_timed_deduplicated_and_missed_ones_counted() {
        let t = Tracker::new(10, 130);
        let sent = Instant::now();
        for seq in 0..130 {
            t.mark_sent(seq, sent);
            if seq != 129 {
                t.mark_ok(seq);
            }
        }
        let mut w = WatcherStats::new(t.total());
        let at = sent + Duration::from_millis(3);
        w.on_event(&t, "i-10", at);
        w.on_event(&t, "i-10", at + Duration::from_millis(1));
        w.on_event(&t, "i-75", at + Duration::from_millis(9));
        w.on_event(&t, "i-139", at); // put 129: sent, not (yet) acknowledged
        w.on_event(&t, "i-9", at); // before the offset
        w.on_event(&t, "other", at);
        assert_eq!(w.distinct, 3);
        assert_eq!(w.duplicates, 1);
        assert_eq!(w.foreign, 2);
        assert_eq!(w.latencies_us, [3000, 12000, 3000]);
        assert_eq!(w.last_event, Some(at + Duration::from_millis(9)));
        assert_eq!(t.delivered(), 3);
        // Successful puts 0..129 minus the two seen; 129 failed, so it is not missed.
        assert_eq!(w.missed(&t), 127);
        assert!(w.has_seen(65) && !w.has_seen(64) && !w.has_seen(1000));
    }

    #[test]
    fn events_of_puts_not_sent_yet_are_foreign() {
        let t = Tracker::new(0, 5);
        let mut w = WatcherStats::new(5);
        w.on_event(&t, "i-2", Instant::now());
        assert_eq!((w.distinct, w.foreign), (0, 1));
    }

    #[test]
    fn waymark_messages_count_upserts_of_the_service_only() {
        use pb::record_change::Change;
        use pb::watch_response::Event;
        let t = Tracker::new(0, 3);
        let now = Instant::now();
        (0..3).for_each(|s| t.mark_sent(s, now));
        let upsert = |service: &str, id: &str| pb::RecordChange {
            change: Some(Change::Upsert(pb::Instance {
                service: service.into(),
                id: id.into(),
                ..Default::default()
            })),
        };
        let mut w = WatcherStats::new(3);
        let msg = |event| pb::WatchResponse {
            index: 5,
            event: Some(event),
        };
        on_waymark_message(
            &mut w,
            &t,
            "bench",
            msg(Event::Changes(pb::WatchChanges {
                changes: vec![
                    upsert("bench", "i-0"),
                    upsert("bench", "i-2"),
                    upsert("other", "i-1"),
                    pb::RecordChange {
                        change: Some(Change::Remove(pb::InstanceKey {
                            service: "bench".into(),
                            id: "i-1".into(),
                        })),
                    },
                ],
            })),
            now,
        );
        on_waymark_message(
            &mut w,
            &t,
            "bench",
            msg(Event::Reset(pb::WatchReset::default())),
            now,
        );
        on_waymark_message(
            &mut w,
            &t,
            "bench",
            msg(Event::Snapshot(pb::WatchSnapshot {
                instances: vec![pb::Instance::default()],
                ..Default::default()
            })),
            now,
        );
        on_waymark_message(
            &mut w,
            &t,
            "bench",
            msg(Event::Progress(pb::WatchProgress::default())),
            now,
        );
        assert_eq!((w.distinct, w.foreign, w.resets), (2, 2, 1));
    }

    #[tokio::test]
    async fn every_watcher_sees_every_successful_put() {
        let node = FakeNode::start(None).await;
        // Instances already there arrive in the snapshot, not as events.
        node.put("bench", "i-5");
        node.put("other", "i-1");
        let a = WatchArgs {
            rate: Some(2000),
            id_offset: 100,
            ..args(20, 30)
        };
        let s = run(&opts(vec![node.addr()], 2, 3), &a, Mode::WatchLatency)
            .await
            .unwrap();
        let j = s.to_json();
        // The fake fails ids ending in 3: i-103, i-113, i-123.
        assert_eq!(j["puts_ok"], 27, "{j}");
        assert_eq!(j["put_errors"], 3, "{j}");
        assert_eq!(s.errors["UNAVAILABLE"].count, 3);
        assert_eq!(s.ok, 20 * 27);
        assert_eq!(j["events_expected"], 20 * 27);
        assert_eq!(j["events_delivered"], 20 * 27);
        assert_eq!(j["missed"], 0);
        assert_eq!(j["duplicates"], 0);
        assert_eq!(j["watch_errors"], 0);
        assert_eq!(j["workload"], "watch-latency");
        assert_eq!(j["rate"], 2000);
        assert_eq!(j["watchers"], 20);
        assert!(s.latency.p99 > 0.0 && s.latency.max < 5000.0, "{j}");
        assert!(j["setup_latency_ms"]["max"].as_f64().unwrap() > 0.0, "{j}");
        let ids = node.registered();
        assert_eq!(ids.len(), 30);
        assert!(ids.contains(&instance_id(100, 29)));
    }

    #[tokio::test]
    async fn duplicates_are_counted_and_watch_defaults_to_unlimited_rate() {
        let node = FakeNode::start_with(None, true).await;
        let s = run(&opts(vec![node.addr()], 1, 1), &args(3, 10), Mode::Watch)
            .await
            .unwrap();
        let j = s.to_json();
        assert_eq!(j["workload"], "watch");
        assert_eq!(j["rate"], 0);
        // Puts 3 fails; the other 9 arrive twice at each of the 3 watchers.
        assert_eq!(j["events_delivered"], 27, "{j}");
        assert_eq!(j["duplicates"], 27, "{j}");
        assert_eq!(j["missed"], 0, "{j}");
    }

    #[tokio::test]
    async fn a_watcher_that_cannot_start_fails_the_run() {
        let node = FakeNode::start(None).await;
        let a = WatchArgs {
            service: crate::fake::UNWATCHABLE.into(),
            ..args(4, 1)
        };
        let err = run(&opts(vec![node.addr()], 1, 1), &a, Mode::Watch)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("failed to start"), "{err}");
        assert!(err.contains("FAILED_PRECONDITION"), "{err}");
        // Nothing was written.
        assert!(node.registered().is_empty());
    }

    #[tokio::test]
    async fn too_many_events_to_track_is_refused() {
        let err = run(
            &opts(vec!["127.0.0.1:1".into()], 1, 1),
            &args(100_000, 10_000),
            Mode::Watch,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }
}
