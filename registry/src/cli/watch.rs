//! `waymark watch`: follows a Watch stream from the node at `--addr` until Ctrl-C,
//! printing every message as it arrives. A stream lost to a transient failure is
//! reopened on the same node from the last index printed, so the output continues
//! exactly after it (no gap, no repeat).

use std::time::Duration;

use clap::{ArgGroup, Args};
use waymark_proto::pb;
use waymark_proto::pb::watch_response::Event;

use super::client::{catalog, display_addr, retry_reason};
use super::output::print_line;
use super::parse::{duration_to_ms, parse_duration};
use super::signals::StopSignals;
use super::{error_chain, watch_fmt, ClientOpts};

/// The server's progress interval when none is asked for.
const SERVER_DEFAULT_PROGRESS: Duration = Duration::from_secs(2);
/// Reconnect attempts in a row (without a message in between) before giving up.
const MAX_RECONNECTS: u32 = 10;
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selection").required(true).args(["services", "all"])))]
pub(super) struct WatchArgs {
    /// Services to watch.
    #[arg(value_name = "SERVICE")]
    services: Vec<String>,
    /// Watch every service instead.
    #[arg(long, conflicts_with = "services")]
    all: bool,
    /// Everything up to this catalog index was already seen: print only the changes
    /// after it (a reset and a snapshot if the node no longer has them).
    /// Default: start with a snapshot of the current instances.
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    from_index: u64,
    /// Only passing instances: one that stops passing shows as removed.
    #[arg(long)]
    passing_only: bool,
    /// How often the node reports progress while nothing changes (at least 100ms)
    /// [default: the server's, 2s].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    progress_interval: Option<Duration>,
    #[command(flatten)]
    client: ClientOpts,
}

/// Runs until Ctrl-C/SIGTERM (success) or until the stream fails for good.
pub(super) async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let mut stop = StopSignals::install()?;
    tokio::select! {
        result = follow(&args) => result,
        _ = stop.recv() => Ok(()),
    }
}

/// How far the output has got.
#[derive(Debug, Default)]
struct Position {
    /// Everything up to this index has been printed (or was given as `--from-index`);
    /// a reopened stream asks for what comes after it.
    seen: u64,
    /// A Reset waiting for the Snapshot that always follows it. The two are printed
    /// together, so a stream cut between them leaves the output consistent with
    /// `seen` (the reopened stream sends its own reset if it needs one).
    reset: Option<pb::WatchResponse>,
}

impl Position {
    /// Takes one message from the stream and returns what to print now, in order.
    fn accept(&mut self, msg: pb::WatchResponse) -> Vec<pb::WatchResponse> {
        match &msg.event {
            Some(Event::Reset(_)) => {
                self.reset = Some(msg);
                return Vec::new();
            }
            // Already printed; a correct server never repeats an index.
            Some(Event::Changes(_)) if msg.index <= self.seen => return Vec::new(),
            // An event this version does not know: nothing to print, not a position.
            None => return Vec::new(),
            Some(Event::Snapshot(_) | Event::Changes(_) | Event::Progress(_)) => {}
        }
        self.seen = self.seen.max(msg.index);
        let mut out: Vec<_> = self.reset.take().into_iter().collect();
        out.push(msg);
        out
    }
}

/// How one stream ended.
enum End {
    /// Transient: worth reopening (with this explanation).
    Lost(String),
    /// Final: exit with this error.
    Fatal(anyhow::Error),
    /// Whoever reads stdout went away (e.g. `| head`): stop quietly.
    OutputClosed,
}

async fn follow(args: &WatchArgs) -> anyhow::Result<()> {
    let mut pos = Position {
        seen: args.from_index,
        reset: None,
    };
    let mut ever_received = false;
    let mut failures = 0;
    let mut backoff = BACKOFF_START;
    loop {
        let mut received = false;
        match session(args, &mut pos, &mut received).await {
            End::OutputClosed => return Ok(()),
            End::Fatal(e) => return Err(e),
            End::Lost(reason) => {
                ever_received |= received;
                // A first stream that never worked is a plain error (wrong address…).
                if !ever_received {
                    anyhow::bail!(reason);
                }
                if received {
                    failures = 0;
                    backoff = BACKOFF_START;
                }
                failures += 1;
                if failures > MAX_RECONNECTS {
                    anyhow::bail!(
                        "{reason} (gave up after {MAX_RECONNECTS} attempts to reconnect)"
                    );
                }
                eprintln!(
                    "note: {reason}; reconnecting to {} in {} ms, resuming after index {}",
                    display_addr(&args.client.addr),
                    backoff.as_millis(),
                    pos.seen
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Opens one stream from `pos.seen` and prints it until it ends.
async fn session(args: &WatchArgs, pos: &mut Position, received: &mut bool) -> End {
    let opts = &args.client;
    let mut client = match catalog(opts).await {
        Ok(c) => c,
        Err(e) => return End::Lost(error_chain(&e)),
    };
    let request = pb::WatchRequest {
        services: args.services.clone(),
        all: args.all,
        from_index: pos.seen,
        passing_only: args.passing_only,
        progress_interval_ms: args.progress_interval.map_or(0, duration_to_ms),
        ..Default::default()
    };
    let mut stream = match client.watch(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => return status_end(opts, status),
    };
    let idle = idle_limit(args.progress_interval);
    loop {
        let msg = match tokio::time::timeout(idle, stream.message()).await {
            Err(_) => {
                return End::Lost(format!(
                    "no message from {} for {} s (progress is due every {} ms)",
                    display_addr(&opts.addr),
                    idle.as_secs(),
                    progress_every(args.progress_interval).as_millis()
                ))
            }
            Ok(Err(status)) => return status_end(opts, status),
            Ok(Ok(None)) => {
                return End::Lost(format!(
                    "{} ended the watch stream",
                    display_addr(&opts.addr)
                ))
            }
            Ok(Ok(Some(msg))) => msg,
        };
        *received = true;
        for out in pos.accept(msg) {
            let Some(text) = watch_fmt::render(&out, opts.json) else {
                continue;
            };
            if let Err(e) = print_line(&text) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return End::OutputClosed;
                }
                return End::Fatal(anyhow::Error::new(e).context("writing to stdout"));
            }
        }
    }
}

fn status_end(opts: &ClientOpts, status: tonic::Status) -> End {
    retry_reason(opts, status).map_or_else(End::Fatal, End::Lost)
}

fn progress_every(asked: Option<Duration>) -> Duration {
    asked.unwrap_or(SERVER_DEFAULT_PROGRESS)
}

/// Silence longer than this means the stream is dead even if the connection looks
/// open: an idle node sends progress every interval.
fn idle_limit(asked: Option<Duration>) -> Duration {
    progress_every(asked) * 3 + Duration::from_secs(5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(index: u64, event: Event) -> pb::WatchResponse {
        pb::WatchResponse {
            index,
            event: Some(event),
        }
    }

    fn snapshot(index: u64) -> pb::WatchResponse {
        msg(index, Event::Snapshot(pb::WatchSnapshot::default()))
    }

    fn changes(index: u64) -> pb::WatchResponse {
        msg(index, Event::Changes(pb::WatchChanges::default()))
    }

    fn progress(index: u64) -> pb::WatchResponse {
        msg(index, Event::Progress(pb::WatchProgress::default()))
    }

    fn reset(index: u64) -> pb::WatchResponse {
        msg(
            index,
            Event::Reset(pb::WatchReset {
                reason: pb::ResetReason::SlowConsumer as i32,
            }),
        )
    }

    fn indexes(v: &[pb::WatchResponse]) -> Vec<u64> {
        v.iter().map(|m| m.index).collect()
    }

    #[test]
    fn position_follows_snapshot_changes_and_progress() {
        let mut pos = Position::default();
        assert_eq!(indexes(&pos.accept(snapshot(42))), [42]);
        assert_eq!(pos.seen, 42);
        assert_eq!(indexes(&pos.accept(changes(43))), [43]);
        assert_eq!(indexes(&pos.accept(progress(45))), [45]);
        assert_eq!(pos.seen, 45);
    }

    #[test]
    fn repeated_changes_are_not_printed_twice() {
        let mut pos = Position {
            seen: 45,
            reset: None,
        };
        assert!(pos.accept(changes(45)).is_empty());
        assert!(pos.accept(changes(44)).is_empty());
        assert_eq!(indexes(&pos.accept(changes(46))), [46]);
    }

    #[test]
    fn reset_waits_for_its_snapshot() {
        let mut pos = Position {
            seen: 45,
            reset: None,
        };
        assert!(pos.accept(reset(50)).is_empty());
        // Cut here: a reopened stream resumes after 45, not 50.
        assert_eq!(pos.seen, 45);
        let out = pos.accept(snapshot(50));
        assert_eq!(indexes(&out), [50, 50]);
        assert!(matches!(out[0].event, Some(Event::Reset(_))));
        assert!(matches!(out[1].event, Some(Event::Snapshot(_))));
        assert_eq!(pos.seen, 50);
        assert!(pos.reset.is_none());
    }

    #[test]
    fn unknown_events_do_not_move_the_position() {
        let mut pos = Position {
            seen: 45,
            reset: None,
        };
        assert!(pos
            .accept(pb::WatchResponse {
                index: 99,
                event: None
            })
            .is_empty());
        assert_eq!(pos.seen, 45);
    }

    #[test]
    fn idle_limit_allows_missed_progress() {
        assert_eq!(idle_limit(None), Duration::from_secs(11));
        assert_eq!(
            idle_limit(Some(Duration::from_millis(500))),
            Duration::from_millis(6500)
        );
    }
}
