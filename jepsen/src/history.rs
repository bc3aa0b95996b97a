//! The run history: every client operation with its real-time interval, every fault
//! with its window, every message a watcher received. Written as JSON lines while the
//! run goes on, read back by the workload checkers and the report.
//!
//! Times are nanoseconds since the start of the run, on the harness's monotonic clock,
//! so intervals from different clients can be compared: that is what linearizability
//! is about.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Nanoseconds since the start of the run.
pub type Nanos = u64;

/// One line of `history.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Op(OpRecord),
    Fault(FaultRecord),
    Watch(WatchRecord),
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The server acknowledged it: it took effect (writes) or its result is what the
    /// server answered (reads).
    Ok,
    /// The server definitely refused it: it had no effect.
    Fail,
    /// Unknown (a timeout, a dropped connection): it may or may not have taken effect,
    /// at any time after its start. The client process that ran it retires.
    Info,
}

/// One client operation, recorded when it completes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRecord {
    /// The client process. Each is sequential; a process whose operation ends `Info`
    /// retires and a fresh process id takes its place.
    pub process: u64,
    /// The node (1-based) the client sent the request to.
    pub node: u32,
    pub op: Op,
    pub start: Nanos,
    pub end: Nanos,
    pub outcome: Outcome,
    /// The error for `Fail` and `Info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an operation asked for and, when `Ok`, what it got. Fields that only an
/// answer can fill are `None` until then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Op {
    /// `register` workload: a consistent read of one key (an instance's `value` meta).
    Read {
        key: String,
        /// `None` when the key does not exist (or the read did not answer).
        value: Option<i64>,
        /// The instance's modify index, the CAS token for a later `Cas`.
        modify_index: Option<u64>,
        /// The index the read was served at (`ResponseMeta.index`).
        index: Option<u64>,
    },
    /// `register` workload: an unconditional write of `value` to `key`.
    Write {
        key: String,
        value: i64,
        /// The commit index of the write, from the acknowledgement.
        index: Option<u64>,
    },
    /// `register` workload: set `key` to `to` if it still holds `from`, expressed to
    /// the server as "if its modify index is still `expected_index`" (the index read
    /// together with `from`; every written value is unique, so the two agree).
    Cas {
        key: String,
        from: i64,
        to: i64,
        expected_index: u64,
        index: Option<u64>,
    },
    /// `set` workload: register a new, unique instance of the set's service.
    Add { id: String, index: Option<u64> },
    /// `set` workload: deregister an instance that was added before.
    Remove {
        id: String,
        /// Whether the server said it removed something.
        removed: Option<bool>,
        index: Option<u64>,
    },
    /// A consistent read of every instance of a service, made only by the end-of-run
    /// final reads (`workload::final_reads`), from every node.
    ListAll {
        service: String,
        instances: Option<Vec<InstanceState>>,
        index: Option<u64>,
    },
    /// `stale` workload: a stale read of the set's service from one node.
    StaleRead {
        service: String,
        /// The bound the client asked for (`ReadOptions.max_stale_ms`).
        max_stale_ms: u64,
        ids: Option<Vec<String>>,
        index: Option<u64>,
        last_contact_ms: Option<u64>,
    },
    /// `lease` workload: create a lease asking for `ttl_ms`.
    LeaseCreate {
        ttl_ms: u64,
        lease_id: Option<u64>,
        /// The TTL the server granted.
        granted_ms: Option<u64>,
        index: Option<u64>,
    },
    /// `lease` workload: register instance `id` of the lease service under `lease_id`.
    LeaseAttach {
        lease_id: u64,
        id: String,
        index: Option<u64>,
    },
    /// `lease` workload: one keep-alive (a stream carrying one request and its answer).
    KeepAlive {
        lease_id: u64,
        /// The TTL granted from the renewal; 0: the server says the lease is gone.
        granted_ms: Option<u64>,
    },
    /// `lease` workload: a consistent read of every instance of the lease service.
    LeaseScan {
        /// The instance ids (`None`: the read did not answer).
        ids: Option<Vec<String>>,
        index: Option<u64>,
    },
    /// `lease` workload: revoke `lease_id` (which removes its instance).
    LeaseRevoke {
        lease_id: u64,
        revoked: Option<bool>,
        index: Option<u64>,
    },
    /// `stale` workload: the zone's SOA asked of one node's DNS server with `dig`.
    /// The SOA serial is the catalog index the node's replica reflects (mod 2^32).
    DnsSoa {
        serial: Option<u64>,
        /// The DNS status (`NOERROR`, `SERVFAIL`, ...), when an answer came back.
        rcode: Option<String>,
    },
}

/// The part of an instance the checkers look at.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceState {
    pub service: String,
    pub id: String,
    /// The `value` meta entry, for the register workload's keys.
    pub value: Option<String>,
    pub modify_index: u64,
}

/// A fault the nemesis injected, recorded when it is healed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// `kill`, `pause`, `partition` or `loss`.
    pub fault: String,
    /// Human-readable detail: which nodes, which partition shape, what loss rate.
    pub detail: String,
    /// Nodes the fault acted on (1-based).
    pub nodes: Vec<u32>,
    /// From before the fault was injected to after it was healed: it may have been in
    /// effect anywhere in between.
    pub start: Nanos,
    pub end: Nanos,
    /// From when the injection had returned to just before healing began: the fault
    /// was certainly in effect throughout. Absent in histories recorded before this
    /// field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_effect: Option<(Nanos, Nanos)>,
    /// Nodes the fault cut off from every other node (a partition's singletons).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alone: Vec<u32>,
}

/// One thing a watcher saw on one of its streams.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRecord {
    /// The watcher (a logical subscriber that reconnects across faults).
    pub watcher: u64,
    /// The node this stream is connected to.
    pub node: u32,
    /// Counts the watcher's connections from 0; every reconnect starts a new session.
    pub session: u64,
    pub time: Nanos,
    pub event: WatchEvent,
}

/// A watch stream message (or the stream starting or ending), reduced to what the
/// checker needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WatchEvent {
    /// A stream was opened with this `from_index` (0 = start with a snapshot).
    Connected { from_index: u64 },
    /// The full state of the watched services at `index`.
    Snapshot {
        index: u64,
        instances: Vec<InstanceState>,
    },
    /// Everything that changed in the watched services at `index`.
    Changes { index: u64, changes: Vec<Change> },
    /// Nothing changed up to `index`.
    Progress { index: u64 },
    /// The server restarts the stream; a snapshot follows.
    Reset { index: u64, reason: String },
    /// The stream ended (error or end of stream).
    Disconnected { error: String },
}

/// One instance change inside a watch `Changes` message.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    Upsert(InstanceState),
    Remove { service: String, id: String },
}

/// Appends events to `history.jsonl` as they happen (so a crashed run still leaves
/// its history) and keeps them in memory for the checkers.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<RecorderInner>>,
    started: Instant,
}

struct RecorderInner {
    file: BufWriter<File>,
    events: Vec<Event>,
    write_error: Option<String>,
    counts: Counts,
}

/// How much a run has recorded so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub faults: u64,
    pub watch_events: u64,
}

impl Recorder {
    /// Creates `path`, truncating it; times are counted from now.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file =
            File::create(path).with_context(|| format!("creating history {}", path.display()))?;
        Ok(Self {
            inner: Arc::new(Mutex::new(RecorderInner {
                file: BufWriter::new(file),
                events: Vec::new(),
                write_error: None,
                counts: Counts::default(),
            })),
            started: Instant::now(),
        })
    }

    /// Nanoseconds since the run started.
    pub fn now(&self) -> Nanos {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn record(&self, event: Event) {
        // Serialised before taking the lock every client and watcher shares.
        let line = serde_json::to_string(&event);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match line {
            Ok(line) => {
                if let Err(e) = writeln!(inner.file, "{line}") {
                    inner.write_error.get_or_insert_with(|| e.to_string());
                }
            }
            Err(e) => {
                inner.write_error.get_or_insert_with(|| e.to_string());
            }
        }
        match &event {
            Event::Op(op) => match op.outcome {
                Outcome::Ok => inner.counts.ok += 1,
                Outcome::Fail => inner.counts.fail += 1,
                Outcome::Info => inner.counts.info += 1,
            },
            Event::Fault(_) => inner.counts.faults += 1,
            Event::Watch(_) => inner.counts.watch_events += 1,
        }
        inner.events.push(event);
    }

    /// Running totals, for progress lines.
    pub fn counts(&self) -> Counts {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).counts
    }

    /// Flushes the file and hands over every event recorded so far, in recording
    /// order (the recorder keeps none: this is the end of the run).
    pub fn finish(&self) -> anyhow::Result<Vec<Event>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.file.flush().context("flushing the history")?;
        if let Some(e) = &inner.write_error {
            anyhow::bail!("writing the history failed: {e}");
        }
        Ok(std::mem::take(&mut inner.events))
    }
}

/// Reads a `history.jsonl` back; an unparsable line is an error naming its number.
pub fn read_history(path: &Path) -> anyhow::Result<Vec<Event>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut events = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a history event", path.display(), n + 1))?;
        events.push(event);
    }
    Ok(events)
}

/// The operations of a history, in recording (completion) order.
pub fn ops(events: &[Event]) -> impl Iterator<Item = &OpRecord> {
    events.iter().filter_map(|e| match e {
        Event::Op(op) => Some(op),
        _ => None,
    })
}

/// The faults of a history.
pub fn faults(events: &[Event]) -> impl Iterator<Item = &FaultRecord> {
    events.iter().filter_map(|e| match e {
        Event::Fault(f) => Some(f),
        _ => None,
    })
}

/// The watch records of a history, in the order they were received.
pub fn watch_records(events: &[Event]) -> impl Iterator<Item = &WatchRecord> {
    events.iter().filter_map(|e| match e {
        Event::Watch(w) => Some(w),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let recorder = Recorder::create(&path).unwrap();
        let events = vec![
            Event::Op(OpRecord {
                process: 3,
                node: 2,
                op: Op::Cas {
                    key: "k1".into(),
                    from: 4,
                    to: 9,
                    expected_index: 17,
                    index: Some(21),
                },
                start: 10,
                end: 20,
                outcome: Outcome::Ok,
                error: None,
            }),
            Event::Fault(FaultRecord {
                fault: "partition".into(),
                detail: "isolate leader n1".into(),
                nodes: vec![1],
                start: 5,
                end: 50,
                in_effect: None,
                alone: Vec::new(),
            }),
            Event::Watch(WatchRecord {
                watcher: 1,
                node: 3,
                session: 0,
                time: 30,
                event: WatchEvent::Changes {
                    index: 21,
                    changes: vec![Change::Remove {
                        service: "s".into(),
                        id: "a".into(),
                    }],
                },
            }),
        ];
        for e in &events {
            recorder.record(e.clone());
        }
        assert_eq!(recorder.finish().unwrap(), events);
        assert_eq!(read_history(&path).unwrap(), events);
    }

    #[test]
    fn a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        std::fs::write(&path, "{\"type\":\"op\"}\n").unwrap();
        let err = format!("{:#}", read_history(&path).unwrap_err());
        assert!(err.contains("h.jsonl:1"), "{err}");
    }
}
