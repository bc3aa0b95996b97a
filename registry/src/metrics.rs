//! Process metrics kept by the node (counters and histograms from `waymark-metrics`)
//! and rendered in the Prometheus text exposition format. Gauges that mirror Raft
//! state are read at scrape time by the admin endpoint instead of being stored here.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

pub use waymark_metrics::{
    render_counter, render_gauge, render_labelled_counter, Counter, Histogram, LATENCY_BUCKETS,
};

/// Buckets for counts of commands per log entry (group commit).
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Counters and histograms of one node.
pub struct Metrics {
    /// Time to apply one log entry to the state machine (including its RocksDB write,
    /// averaged over the entries of a batch).
    pub apply_latency: Histogram,
    pub snapshots_built: Counter,
    pub snapshots_installed: Counter,
    /// Watch streams reset because they fell behind.
    pub watch_resets: Counter,
    /// Log entries examined by watch streams (each stream, each entry it was woken
    /// for): how much of the fan-out reaches streams that select nothing in it.
    pub watch_entries_examined: Counter,
    /// Changes turned into wire form for watchers (once per change, shared by all).
    pub watch_change_encodings: Counter,
    /// Changes messages sent to watchers: assembled for this stream, or the bytes one
    /// assembled for another stream that selected the same.
    pub watch_messages_assembled: Counter,
    pub watch_messages_shared: Counter,
    /// Commands per log entry this node proposed as leader (group commit).
    pub proposal_batch_size: Histogram,
    /// Synced (fsynced) writes of log entries, and the entries they carried.
    pub log_syncs: Counter,
    pub log_entries_appended: Counter,
    /// Client writes this node forwarded to the leader, and the stream messages that
    /// carried them (fewer under load: writes that wait together go together).
    pub forwarded_writes: Counter,
    pub forward_messages: Counter,
    /// InstallSnapshot messages (chunks) this node received.
    pub snapshot_chunks_received: Counter,
    /// Elections this node started because its stopping leader handed over (TimeoutNow).
    pub handoff_elections: Counter,
    /// TLS connections refused (failed or timed-out handshakes), per port.
    tls_refused_api: Counter,
    tls_refused_raft: Counter,
    /// Writes to gRPC connections (after `frame_coalescing`), per port.
    grpc_writes_api: Counter,
    grpc_writes_raft: Counter,
    /// Calls refused by `[limits]`, per limit.
    limited_rate: Counter,
    limited_watch_streams: Counter,
    /// gRPC requests served on the client API, by (method, status code).
    grpc_requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Failed fetches of auth methods' `jwks_url`s, by method.
    jwks_fetch_failures: Mutex<BTreeMap<String, u64>>,
    /// The DNS server's own counters (it updates them; rendered here).
    pub dns: Arc<waymark_dns::DnsStats>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            apply_latency: Histogram::new(LATENCY_BUCKETS),
            snapshots_built: Counter::default(),
            snapshots_installed: Counter::default(),
            watch_resets: Counter::default(),
            watch_entries_examined: Counter::default(),
            watch_change_encodings: Counter::default(),
            watch_messages_assembled: Counter::default(),
            watch_messages_shared: Counter::default(),
            proposal_batch_size: Histogram::new(BATCH_SIZE_BUCKETS),
            log_syncs: Counter::default(),
            log_entries_appended: Counter::default(),
            forwarded_writes: Counter::default(),
            forward_messages: Counter::default(),
            snapshot_chunks_received: Counter::default(),
            handoff_elections: Counter::default(),
            tls_refused_api: Counter::default(),
            tls_refused_raft: Counter::default(),
            grpc_writes_api: Counter::default(),
            grpc_writes_raft: Counter::default(),
            limited_rate: Counter::default(),
            limited_watch_streams: Counter::default(),
            grpc_requests: Mutex::new(BTreeMap::new()),
            jwks_fetch_failures: Mutex::new(BTreeMap::new()),
            dns: Arc::default(),
        }
    }
}

/// Name of a gRPC status code as Prometheus label value (e.g. `InvalidArgument`).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Cancelled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

impl Metrics {
    /// Counts a gRPC request by method and outcome, then passes the result on.
    pub fn observe<T>(
        &self,
        method: &'static str,
        result: Result<T, tonic::Status>,
    ) -> Result<tonic::Response<T>, tonic::Status> {
        let code = result
            .as_ref()
            .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        self.record_grpc(method, code);
        result.map(tonic::Response::new)
    }

    /// Counts a refused TLS handshake on `port`.
    pub fn tls_refused(&self, port: crate::tls::incoming::Port) {
        match port {
            crate::tls::incoming::Port::Api => self.tls_refused_api.inc(),
            crate::tls::incoming::Port::Raft => self.tls_refused_raft.inc(),
        }
    }

    /// Counts one write to a gRPC connection on `port`.
    pub fn grpc_write(&self, port: crate::tls::incoming::Port) {
        self.grpc_writes(port).inc();
    }

    /// Writes to gRPC connections on `port` so far.
    pub fn grpc_writes(&self, port: crate::tls::incoming::Port) -> &Counter {
        match port {
            crate::tls::incoming::Port::Api => &self.grpc_writes_api,
            crate::tls::incoming::Port::Raft => &self.grpc_writes_raft,
        }
    }

    /// Counts a call refused by a limit: `"rate"` or `"watch_streams"`.
    pub fn record_limited(&self, limit: &'static str) {
        match limit {
            "rate" => self.limited_rate.inc(),
            _ => self.limited_watch_streams.inc(),
        }
    }

    /// Counts a failed fetch of auth method `method`'s `jwks_url`.
    pub fn jwks_fetch_failed(&self, method: &str) {
        let mut m = self
            .jwks_fetch_failures
            .lock()
            .expect("metrics lock poisoned");
        *m.entry(method.to_string()).or_default() += 1;
    }

    pub fn record_grpc(&self, method: &'static str, code: tonic::Code) {
        let mut m = self.grpc_requests.lock().expect("metrics lock poisoned");
        *m.entry((method, code_name(code))).or_default() += 1;
    }

    /// Appends this registry's series to `out`.
    pub fn render(&self, out: &mut String) {
        self.apply_latency.render(
            out,
            "waymark_apply_latency_seconds",
            "Time to apply one committed log entry to the state machine.",
        );
        render_counter(
            out,
            "waymark_snapshots_built_total",
            "Snapshots built by this node.",
            self.snapshots_built.get(),
        );
        render_counter(
            out,
            "waymark_snapshots_installed_total",
            "Snapshots received from a leader and installed.",
            self.snapshots_installed.get(),
        );
        render_counter(
            out,
            "waymark_watch_resets_total",
            "Watch streams reset (Reset + Snapshot) because the watcher fell behind.",
            self.watch_resets.get(),
        );
        render_counter(
            out,
            "waymark_watch_entries_examined_total",
            "Log entries examined by watch streams (each stream counts each entry it was woken for).",
            self.watch_entries_examined.get(),
        );
        render_counter(
            out,
            "waymark_watch_change_encodings_total",
            "Changes put into wire form for watch streams (once per change, shared by every stream).",
            self.watch_change_encodings.get(),
        );
        render_labelled_counter(
            out,
            "waymark_watch_change_messages_total",
            "Changes messages sent on watch streams, by whether this stream assembled it or sent the bytes assembled for another stream with the same selection.",
            "source",
            &[("assembled", self.watch_messages_assembled.get()), ("shared", self.watch_messages_shared.get())],
        );
        self.proposal_batch_size.render(
            out,
            "waymark_proposal_batch_size",
            "Client writes per log entry proposed by this node as leader (group commit).",
        );
        render_counter(
            out,
            "waymark_log_syncs_total",
            "Synced writes of Raft log entries to disk (one fsync each).",
            self.log_syncs.get(),
        );
        render_counter(
            out,
            "waymark_log_entries_appended_total",
            "Raft log entries written to disk.",
            self.log_entries_appended.get(),
        );
        render_counter(
            out,
            "waymark_forwarded_writes_total",
            "Client writes this node forwarded to the leader.",
            self.forwarded_writes.get(),
        );
        render_counter(
            out,
            "waymark_forward_messages_total",
            "Messages on this node's forwarding stream to the leader (each carries the writes that waited together).",
            self.forward_messages.get(),
        );
        render_counter(
            out,
            "waymark_snapshot_chunks_received_total",
            "InstallSnapshot chunks received from a leader (each written to disk as it arrives).",
            self.snapshot_chunks_received.get(),
        );
        render_counter(
            out,
            "waymark_leader_handoff_elections_total",
            "Elections this node started because its leader, stopping, handed leadership to it (TimeoutNow).",
            self.handoff_elections.get(),
        );
        render_labelled_counter(
            out,
            "waymark_tls_handshakes_refused_total",
            "TLS connections refused (bad, missing or untrusted certificate, plaintext, timeout), by port.",
            "port",
            &[("api", self.tls_refused_api.get()), ("raft", self.tls_refused_raft.get())],
        );
        render_labelled_counter(
            out,
            "waymark_grpc_connection_writes_total",
            "Writes to gRPC connections (system calls, or TLS writes), by port; frames of many streams share one.",
            "port",
            &[("api", self.grpc_writes_api.get()), ("raft", self.grpc_writes_raft.get())],
        );
        render_labelled_counter(
            out,
            "waymark_requests_limited_total",
            "Client API calls refused RESOURCE_EXHAUSTED by a [limits] limit, by limit.",
            "limit",
            &[
                ("rate", self.limited_rate.get()),
                ("watch_streams", self.limited_watch_streams.get()),
            ],
        );
        let _ = writeln!(
            out,
            "# HELP waymark_jwks_fetch_failures_total Failed fetches of an auth method's jwks_url (the last good keys stay in use), by method."
        );
        let _ = writeln!(out, "# TYPE waymark_jwks_fetch_failures_total counter");
        for (method, n) in self
            .jwks_fetch_failures
            .lock()
            .expect("metrics lock poisoned")
            .iter()
        {
            // Method names are DNS labels: nothing to escape.
            let _ = writeln!(
                out,
                "waymark_jwks_fetch_failures_total{{method=\"{method}\"}} {n}"
            );
        }
        self.dns.render(out);
        let _ = writeln!(
            out,
            "# HELP waymark_grpc_requests_total Client API requests by method and status code."
        );
        let _ = writeln!(out, "# TYPE waymark_grpc_requests_total counter");
        for ((method, code), n) in self
            .grpc_requests
            .lock()
            .expect("metrics lock poisoned")
            .iter()
        {
            let _ = writeln!(
                out,
                "waymark_grpc_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_counter_by_method_and_code() {
        let m = Metrics::default();
        m.record_grpc("Register", tonic::Code::Ok);
        m.record_grpc("Register", tonic::Code::Ok);
        m.record_grpc("Register", tonic::Code::InvalidArgument);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("waymark_grpc_requests_total{method=\"Register\",code=\"OK\"} 2\n"));
        assert!(out.contains(
            "waymark_grpc_requests_total{method=\"Register\",code=\"InvalidArgument\"} 1\n"
        ));
    }
}
