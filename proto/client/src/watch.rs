//! Following a Watch across failures: a stream that breaks is resumed on the next node
//! from the highest index delivered, so the caller sees every change once, in index
//! order, and never an index below one it has seen. [`WatchCursor`] is the decision
//! (pure, message in, messages out); [`WatchFollower`] drives it over the network.

use std::collections::VecDeque;
use std::time::Duration;

use tonic::codec::Streaming;
use waymark_proto::pb;
use waymark_proto::pb::watch_response::Event;

use crate::backoff::Backoff;
use crate::client::{catalog, Client};
use crate::endpoints::display_addr;
use crate::error::{chain_text, ClientError};

/// The server's progress interval when the request asks for none.
const SERVER_DEFAULT_PROGRESS: Duration = Duration::from_secs(2);
/// Reconnect attempts in a row (without a message in between) before giving up.
const MAX_RECONNECTS: u32 = 10;

/// How far a watch has been delivered, and what to deliver of each new message.
///
/// Rules: Changes are delivered only above the highest index delivered (a resumed
/// stream may repeat what the last one sent); Snapshot and Progress never below it;
/// a Reset is held back until the Snapshot that always follows it, and the two are
/// delivered together, so a stream cut between them leaves the caller consistent with
/// the position (the resumed stream sends its own Reset if it needs one).
///
/// A snapshot sent in parts (`WatchSnapshot.more`) is held until its last part and
/// delivered as one; a stream cut in the middle drops the parts.
#[derive(Debug, Clone, Default)]
pub struct WatchCursor {
    seen: u64,
    reset: Option<pb::WatchResponse>,
    /// Parts of a snapshot at this index whose last part has not come yet.
    parts: Option<(u64, Vec<pb::WatchSnapshot>)>,
}

impl WatchCursor {
    /// `from_index`: everything up to it was already seen (0: nothing yet).
    pub fn new(from_index: u64) -> Self {
        Self {
            seen: from_index,
            reset: None,
            parts: None,
        }
    }

    /// The highest index delivered (or given to `new`): where a resumed stream starts.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Takes one message from the stream and returns what to deliver now, in order.
    pub fn accept(&mut self, msg: pb::WatchResponse) -> Vec<pb::WatchResponse> {
        let Some(msg) = self.join_parts(msg) else {
            return Vec::new();
        };
        match &msg.event {
            Some(Event::Reset(_)) => {
                self.reset = Some(msg);
                return Vec::new();
            }
            Some(Event::Changes(_)) if msg.index <= self.seen => return Vec::new(),
            Some(Event::Snapshot(_) | Event::Progress(_)) if msg.index < self.seen => {
                // Behind what was delivered: a correct node never sends it (it waits
                // to catch up before serving from_index); drop it with its Reset.
                self.reset = None;
                return Vec::new();
            }
            // An event this version does not know: nothing to deliver, not a position.
            None => return Vec::new(),
            Some(Event::Snapshot(_) | Event::Changes(_) | Event::Progress(_)) => {}
        }
        if !matches!(msg.event, Some(Event::Snapshot(_))) {
            // A Reset is only ever followed by its Snapshot; anything else means the
            // pairing broke, and a lone Reset would wipe the caller's state.
            self.reset = None;
        }
        self.seen = msg.index;
        let mut out: Vec<_> = self.reset.take().into_iter().collect();
        out.push(msg);
        out
    }

    /// The stream ended: a Reset still waiting for its Snapshot, and the parts of an
    /// unfinished snapshot, are dropped.
    pub fn stream_ended(&mut self) {
        self.reset = None;
        self.parts = None;
    }

    /// Holds the parts of a snapshot until the last, then returns them joined as one
    /// snapshot message; passes every other message through.
    fn join_parts(&mut self, msg: pb::WatchResponse) -> Option<pb::WatchResponse> {
        let more = match &msg.event {
            Some(Event::Snapshot(part)) => part.more,
            _ => {
                // Anything else amid a snapshot's parts means the stream broke its
                // shape (a correct node never does this): drop the parts and the
                // Reset they answer rather than deliver half a snapshot.
                if self.parts.take().is_some() {
                    self.reset = None;
                }
                return Some(msg);
            }
        };
        if !more && self.parts.is_none() {
            return Some(msg);
        }
        let index = msg.index;
        let Some(Event::Snapshot(part)) = msg.event else {
            unreachable!("matched a snapshot above");
        };
        match &mut self.parts {
            Some((at, parts)) if *at == index => parts.push(part),
            // A new snapshot's first part (an unfinished one before it is dropped).
            _ => self.parts = Some((index, vec![part])),
        }
        if more {
            return None;
        }
        let (index, parts) = self.parts.take()?;
        Some(pb::WatchResponse {
            index,
            event: Some(Event::Snapshot(waymark_proto::parts::join_snapshot(parts))),
        })
    }
}

/// What `WatchFollower::next` yields.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// A message to act on (already deduplicated).
    Message(pb::WatchResponse),
    /// The stream broke; the follower waits `delay`, then resumes on `addr` after
    /// `from_index`. For logging; no action needed.
    Reconnecting {
        reason: String,
        addr: String,
        delay: Duration,
        from_index: u64,
    },
}

/// Follows one Watch request over a cluster's nodes until a final error.
pub struct WatchFollower {
    client: Client,
    request: pb::WatchRequest,
    cursor: WatchCursor,
    node: usize,
    stream: Option<Streaming<pb::WatchResponse>>,
    ready: VecDeque<pb::WatchResponse>,
    backoff: Backoff,
    /// Failures in a row without a message in between.
    failures: u32,
    ever_received: bool,
    received_this_stream: bool,
    /// Nodes that failed before any stream ever delivered anything.
    first_failures: usize,
    pending_wait: Option<Duration>,
}

impl WatchFollower {
    /// Starts at `request.from_index` on the client's preferred node.
    pub fn new(client: Client, request: pb::WatchRequest) -> Self {
        let node = client.preferred();
        Self {
            cursor: WatchCursor::new(request.from_index),
            client,
            request,
            node,
            stream: None,
            ready: VecDeque::new(),
            backoff: Backoff::default(),
            failures: 0,
            ever_received: false,
            received_this_stream: false,
            first_failures: 0,
            pending_wait: None,
        }
    }

    /// The highest index delivered.
    pub fn position(&self) -> u64 {
        self.cursor.seen()
    }

    /// The next message, or a note that the stream is being resumed. Errors are final:
    /// a request the server refuses, every node failing before anything was delivered,
    /// or `MAX_RECONNECTS` failures in a row.
    pub async fn next(&mut self) -> Result<WatchItem, ClientError> {
        loop {
            if let Some(msg) = self.ready.pop_front() {
                return Ok(WatchItem::Message(msg));
            }
            if let Some(delay) = self.pending_wait.take() {
                tokio::time::sleep(delay).await;
            }
            let reason = match self.pull().await {
                Ok(()) => continue,
                Err(Lost::Fatal(e)) => return Err(e),
                Err(Lost::Retry(reason)) => reason,
            };
            self.stream = None;
            self.cursor.stream_ended();
            if self.received_this_stream {
                self.failures = 0;
                self.backoff.reset();
            }
            self.ever_received |= self.received_this_stream;
            self.received_this_stream = false;
            // A first stream that never worked anywhere is a plain error (wrong address…).
            if !self.ever_received {
                self.first_failures += 1;
                if self.first_failures >= self.client.endpoints().len() {
                    return Err(ClientError::GaveUp(reason));
                }
            }
            self.failures += 1;
            if self.failures > MAX_RECONNECTS {
                return Err(ClientError::GaveUp(format!(
                    "{reason} (gave up after {MAX_RECONNECTS} attempts to reconnect)"
                )));
            }
            self.node = (self.node + 1) % self.client.endpoints().len();
            let delay = self.backoff.next_delay();
            self.pending_wait = Some(delay);
            return Ok(WatchItem::Reconnecting {
                reason,
                addr: display_addr(self.client.endpoints().get(self.node)).to_string(),
                delay,
                from_index: self.cursor.seen(),
            });
        }
    }

    /// The same as a `Stream`; it ends after the first (final) error.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<WatchItem, ClientError>> {
        futures::stream::unfold(Some(self), |state| async move {
            let mut follower = state?;
            match follower.next().await {
                Ok(item) => Some((Ok(item), Some(follower))),
                Err(e) => Some((Err(e), None)),
            }
        })
    }

    /// Opens a stream if none is open, then reads one message into `ready`.
    async fn pull(&mut self) -> Result<(), Lost> {
        let uri = self.client.endpoints().get(self.node).to_string();
        if self.stream.is_none() {
            let channel = self
                .client
                .channel(self.node)
                .await
                .map_err(|e| Lost::Retry(chain_text(&e)))?;
            let request = pb::WatchRequest {
                from_index: self.cursor.seen(),
                ..self.request.clone()
            };
            let stream = catalog(channel)
                .watch(request)
                .await
                .map_err(|s| lost(&uri, s))?
                .into_inner();
            self.stream = Some(stream);
        }
        let idle = self.idle_limit();
        let Some(stream) = self.stream.as_mut() else {
            return Err(Lost::Retry("no stream".into()));
        };
        let msg = match tokio::time::timeout(idle, stream.message()).await {
            Err(_) => {
                return Err(Lost::Retry(format!(
                    "no message from {} for {} s (progress is due every {} ms)",
                    display_addr(&uri),
                    idle.as_secs(),
                    self.progress_every().as_millis()
                )))
            }
            Ok(Err(status)) => return Err(lost(&uri, status)),
            Ok(Ok(None)) => {
                return Err(Lost::Retry(format!(
                    "{} ended the watch stream",
                    display_addr(&uri)
                )))
            }
            Ok(Ok(Some(msg))) => msg,
        };
        self.received_this_stream = true;
        self.client.prefer(self.node);
        self.ready.extend(self.cursor.accept(msg));
        Ok(())
    }

    fn progress_every(&self) -> Duration {
        match self.request.progress_interval_ms {
            0 => SERVER_DEFAULT_PROGRESS,
            ms => Duration::from_millis(ms),
        }
    }

    /// Silence longer than this means the stream is dead even if the connection looks
    /// open: an idle node sends progress every interval.
    fn idle_limit(&self) -> Duration {
        idle_limit(self.progress_every())
    }
}

fn idle_limit(progress_every: Duration) -> Duration {
    progress_every * 3 + Duration::from_secs(5)
}

enum Lost {
    Retry(String),
    Fatal(ClientError),
}

fn lost(uri: &str, status: tonic::Status) -> Lost {
    let e = ClientError::rpc(uri, status);
    match e.failure() {
        Some(f) if f.is_retryable() => Lost::Retry(e.to_string()),
        _ => Lost::Fatal(e),
    }
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

    fn part(index: u64, ids: &[&str], more: bool) -> pb::WatchResponse {
        msg(
            index,
            Event::Snapshot(pb::WatchSnapshot {
                instances: ids
                    .iter()
                    .map(|id| pb::Instance {
                        service: "web".into(),
                        id: id.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                more,
                ..Default::default()
            }),
        )
    }

    fn ids(m: &pb::WatchResponse) -> Vec<String> {
        let Some(Event::Snapshot(s)) = &m.event else {
            panic!("not a snapshot: {m:?}");
        };
        assert!(!s.more, "a delivered snapshot is whole");
        s.instances.iter().map(|i| i.id.clone()).collect()
    }

    #[test]
    fn a_snapshot_in_parts_is_delivered_once_whole_after_its_reset() {
        let mut c = WatchCursor::new(40);
        assert!(c.accept(reset(50)).is_empty());
        assert!(c.accept(part(50, &["a", "b"], true)).is_empty());
        assert!(c.accept(part(50, &["c"], true)).is_empty());
        assert_eq!(c.seen(), 40, "nothing delivered until the last part");
        let out = c.accept(part(50, &["d"], false));
        assert_eq!(indexes(&out), [50, 50]);
        assert!(matches!(out[0].event, Some(Event::Reset(_))));
        assert_eq!(ids(&out[1]), ["a", "b", "c", "d"]);
        assert_eq!(c.seen(), 50);
        assert_eq!(indexes(&c.accept(changes(51))), [51]);
    }

    #[test]
    fn an_unfinished_snapshot_is_never_delivered() {
        // Cut mid-snapshot: the parts (and their Reset) are dropped.
        let mut c = WatchCursor::new(40);
        assert!(c.accept(reset(50)).is_empty());
        assert!(c.accept(part(50, &["a"], true)).is_empty());
        c.stream_ended();
        let out = c.accept(part(52, &["x"], false));
        assert_eq!(
            indexes(&out),
            [52],
            "no Reset left over from the cut stream"
        );
        assert_eq!(ids(&out[0]), ["x"]);
        // A message other than the next part breaks the snapshot: its parts are dropped.
        assert!(c.accept(part(60, &["y"], true)).is_empty());
        assert_eq!(indexes(&c.accept(changes(61))), [61]);
        assert!(c.accept(part(70, &["z"], true)).is_empty());
        // A first part at another index starts that snapshot over.
        assert!(c.accept(part(71, &["p"], true)).is_empty());
        assert_eq!(ids(&c.accept(part(71, &["q"], false))[0]), ["p", "q"]);
    }

    #[test]
    fn follows_snapshot_changes_and_progress() {
        let mut c = WatchCursor::default();
        assert_eq!(indexes(&c.accept(snapshot(42))), [42]);
        assert_eq!(c.seen(), 42);
        assert_eq!(indexes(&c.accept(changes(43))), [43]);
        assert_eq!(indexes(&c.accept(progress(45))), [45]);
        assert_eq!(
            indexes(&c.accept(progress(45))),
            [45],
            "idle progress repeats"
        );
        assert_eq!(c.seen(), 45);
    }

    #[test]
    fn changes_at_or_below_the_position_are_dropped() {
        let mut c = WatchCursor::new(45);
        assert!(c.accept(changes(45)).is_empty());
        assert!(c.accept(changes(44)).is_empty());
        assert_eq!(indexes(&c.accept(changes(46))), [46]);
    }

    #[test]
    fn nothing_goes_back_in_index() {
        let mut c = WatchCursor::new(50);
        assert!(c.accept(progress(49)).is_empty());
        assert!(c.accept(snapshot(40)).is_empty());
        assert!(c.accept(reset(40)).is_empty());
        assert!(
            c.accept(snapshot(40)).is_empty(),
            "a stale reset+snapshot is dropped whole"
        );
        assert_eq!(c.seen(), 50);
        // A sequence as a resumed stream on a lagging-then-caught-up node would send it.
        let mut delivered = Vec::new();
        for m in [
            changes(48),
            changes(50),
            progress(50),
            changes(51),
            changes(51),
            changes(53),
        ] {
            delivered.extend(indexes(&c.accept(m)));
        }
        assert_eq!(delivered, [50, 51, 53]);
        assert!(delivered.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn reset_waits_for_its_snapshot() {
        let mut c = WatchCursor::new(45);
        assert!(c.accept(reset(50)).is_empty());
        // Cut here: a reopened stream resumes after 45, not 50.
        assert_eq!(c.seen(), 45);
        let out = c.accept(snapshot(50));
        assert_eq!(indexes(&out), [50, 50]);
        assert!(matches!(out[0].event, Some(Event::Reset(_))));
        assert!(matches!(out[1].event, Some(Event::Snapshot(_))));
        assert_eq!(c.seen(), 50);
    }

    #[test]
    fn a_reset_cut_off_from_its_snapshot_is_not_delivered_later() {
        let mut c = WatchCursor::new(45);
        assert!(c.accept(reset(50)).is_empty());
        c.stream_ended();
        // The resumed stream had the history: plain changes, no reset in front.
        let out = c.accept(changes(46));
        assert_eq!(indexes(&out), [46]);
        assert!(matches!(out[0].event, Some(Event::Changes(_))));
    }

    #[test]
    fn unknown_events_do_not_move_the_position() {
        let mut c = WatchCursor::new(45);
        assert!(c
            .accept(pb::WatchResponse {
                index: 99,
                event: None
            })
            .is_empty());
        assert_eq!(c.seen(), 45);
    }

    #[test]
    fn idle_limit_allows_missed_progress() {
        assert_eq!(idle_limit(SERVER_DEFAULT_PROGRESS), Duration::from_secs(11));
        assert_eq!(
            idle_limit(Duration::from_millis(500)),
            Duration::from_millis(6500)
        );
    }
}
