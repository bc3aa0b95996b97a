//! The proxy's metrics and their Prometheus text: per upstream (requests, responses by
//! status class, latency, connections, bytes, connect errors, retries, endpoints ready
//! and ejected, the catalog index of the endpoint set, fail-static), per check, the
//! inbound side and the registration.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use waymark_metrics::{escape_label, family, sample, Counter, Gauge, Histogram, LATENCY_BUCKETS};

use crate::health::{Outcome, Status};
use crate::upstream::Upstream;

#[derive(Debug)]
pub struct UpstreamMetrics {
    /// HTTP requests, or TCP connections, accepted from the local app.
    pub requests: Counter,
    /// Responses by status class 1xx..5xx (index 0..4), including the proxy's own.
    pub responses: [Counter; 5],
    /// Time to the response's headers (HTTP) or the connection's length (TCP).
    pub latency: Histogram,
    pub open_connections: Gauge,
    pub bytes_sent: Counter,
    pub bytes_received: Counter,
    pub connect_errors: Counter,
    pub retries: Counter,
    pub no_endpoint: Counter,
    pub timeouts: Counter,
    pub ejections: Counter,
}

impl Default for UpstreamMetrics {
    fn default() -> Self {
        Self {
            requests: Counter::default(),
            responses: Default::default(),
            latency: Histogram::new(LATENCY_BUCKETS),
            open_connections: Gauge::default(),
            bytes_sent: Counter::default(),
            bytes_received: Counter::default(),
            connect_errors: Counter::default(),
            retries: Counter::default(),
            no_endpoint: Counter::default(),
            timeouts: Counter::default(),
            ejections: Counter::default(),
        }
    }
}

impl UpstreamMetrics {
    pub fn response(&self, status: http::StatusCode) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.responses[class].inc();
    }
}

/// One health check's results.
#[derive(Debug)]
pub struct CheckMetrics {
    pub name: String,
    /// Probes by outcome: pass, warn, fail.
    probes: [Counter; 3],
    status: AtomicU64,
}

impl CheckMetrics {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            probes: Default::default(),
            status: AtomicU64::new(Status::Critical as u64),
        }
    }

    pub fn record(&self, outcome: &Outcome) {
        let i = match outcome {
            Outcome::Pass(_) => 0,
            Outcome::Warn(_) => 1,
            Outcome::Fail(_) => 2,
        };
        self.probes[i].inc();
    }

    pub fn set_status(&self, status: Status) {
        self.status.store(status as u64, Ordering::Relaxed);
    }
}

/// Connections from peers to the local app through the inbound port.
#[derive(Debug, Default)]
pub struct InboundMetrics {
    pub connections: Counter,
    pub open_connections: Gauge,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub connect_errors: Counter,
}

/// Mesh identity and policy: the leaf, handshakes refused, intention decisions.
#[derive(Debug, Default)]
pub struct MeshMetrics {
    pub renewals: Counter,
    pub renewal_failures: Counter,
    /// The current leaf's expiry (unix ms; 0 before the first).
    pub leaf_not_after_ms: Gauge,
    pub trusted_roots: Gauge,
    /// The catalog index of the roots and intentions in force.
    pub state_index: Gauge,
    /// The root that signed the current leaf.
    pub leaf_root: Mutex<String>,
    /// Inbound connections closed because an intention now denies their caller.
    pub closed_by_intention: Counter,
    /// Handshakes refused by (side, reason).
    handshake_failures: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Inbound connections by (source service, allowed).
    decisions: Mutex<BTreeMap<(String, bool), u64>>,
    /// Inbound requests (HTTP inbound) by (source service, allowed).
    request_decisions: Mutex<BTreeMap<(String, bool), u64>>,
}

impl MeshMetrics {
    pub fn handshake_failure(&self, side: &'static str, reason: &'static str) {
        *self
            .handshake_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((side, reason))
            .or_default() += 1;
    }

    /// An inbound connection decided by intention.
    pub fn decision(&self, source: &str, action: waymark_proto::intention::Action) {
        count_decision(&self.decisions, source, action);
    }

    /// An inbound request decided by intention (`inbound.protocol = "http"`).
    pub fn request_decision(&self, source: &str, action: waymark_proto::intention::Action) {
        count_decision(&self.request_decisions, source, action);
    }

    fn render(&self, out: &mut String) {
        let name = "waymark_proxy_mesh_handshake_failures_total";
        family(
            out,
            name,
            "Mutual TLS handshakes refused, by side (inbound: a caller refused here; outbound: a peer this proxy dialled) and reason.",
            "counter",
        );
        for ((side, reason), n) in self
            .handshake_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            sample(
                out,
                name,
                &format!("side=\"{side}\",reason=\"{reason}\""),
                n,
            );
        }
        render_decisions(
            out,
            "waymark_proxy_mesh_inbound_connections_total",
            "Inbound mesh connections by the caller's verified service and the intention decision.",
            &self.decisions,
        );
        render_decisions(
            out,
            "waymark_proxy_mesh_inbound_requests_total",
            "Inbound mesh requests (inbound.protocol = \"http\") by the caller's verified service and the intention decision.",
            &self.request_decisions,
        );
        for (name, help, value) in [
            (
                "waymark_proxy_mesh_closed_by_intention_total",
                "Open inbound connections closed because an intention now denies their caller.",
                self.closed_by_intention.get(),
            ),
            (
                "waymark_proxy_mesh_leaf_renewals_total",
                "Leaf certificates issued to this proxy (the first one and every renewal).",
                self.renewals.get(),
            ),
            (
                "waymark_proxy_mesh_leaf_renewal_failures_total",
                "Failed attempts to get a leaf certificate.",
                self.renewal_failures.get(),
            ),
        ] {
            family(out, name, help, "counter");
            sample(out, name, "", value);
        }
        let name = "waymark_proxy_mesh_leaf_expiry_timestamp_seconds";
        family(
            out,
            name,
            "When the current leaf certificate expires (unix seconds; 0 before the first).",
            "gauge",
        );
        sample(out, name, "", self.leaf_not_after_ms.get() as f64 / 1000.0);
        let name = "waymark_proxy_mesh_trusted_roots";
        family(out, name, "CA roots this proxy trusts now.", "gauge");
        sample(out, name, "", self.trusted_roots.get());
        let name = "waymark_proxy_mesh_state_index";
        family(
            out,
            name,
            "Catalog index of the CA roots and intentions this proxy enforces.",
            "gauge",
        );
        sample(out, name, "", self.state_index.get());
        let name = "waymark_proxy_mesh_leaf_info";
        family(
            out,
            name,
            "The root that signed the current leaf (1 per proxy).",
            "gauge",
        );
        let root = self.leaf_root.lock().unwrap_or_else(|p| p.into_inner());
        if !root.is_empty() {
            sample(out, name, &format!("root=\"{}\"", escape_label(&root)), 1);
        }
    }
}

/// The instance's registration and lease.
#[derive(Debug, Default)]
pub struct RegistrationMetrics {
    pub registered: Gauge,
    pub lease_id: Gauge,
    pub registrations: Counter,
    pub lease_renewals: Counter,
    pub leases_lost: Counter,
    pub health_reports: Counter,
    /// The status last committed in the registry (Status as a number).
    pub reported_status: Gauge,
    /// Index of the last write the registry acknowledged.
    pub index: Gauge,
}

#[derive(Debug)]
pub struct ProxyMetrics {
    pub started: Instant,
    /// Rendered only when mTLS is on.
    pub mesh: Option<Arc<MeshMetrics>>,
    pub checks: Vec<Arc<CheckMetrics>>,
    pub inbound: InboundMetrics,
    pub registration: RegistrationMetrics,
}

impl ProxyMetrics {
    pub fn new(check_names: &[String]) -> Self {
        Self {
            started: Instant::now(),
            mesh: None,
            checks: check_names
                .iter()
                .map(|n| Arc::new(CheckMetrics::new(n)))
                .collect(),
            inbound: InboundMetrics::default(),
            registration: RegistrationMetrics {
                reported_status: {
                    let g = Gauge::default();
                    g.set(-1);
                    g
                },
                ..Default::default()
            },
        }
    }

    /// Everything, in the text exposition format.
    pub fn render(&self, upstreams: &[Arc<Upstream>]) -> String {
        let mut out = String::new();
        render_upstreams(&mut out, upstreams);
        self.render_checks(&mut out);
        self.render_inbound(&mut out);
        self.render_registration(&mut out);
        if let Some(mesh) = &self.mesh {
            mesh.render(&mut out);
        }
        family(
            &mut out,
            "waymark_proxy_uptime_seconds",
            "Seconds since the proxy started.",
            "gauge",
        );
        sample(
            &mut out,
            "waymark_proxy_uptime_seconds",
            "",
            self.started.elapsed().as_secs_f64(),
        );
        out
    }

    fn render_checks(&self, out: &mut String) {
        let name = "waymark_proxy_check_probes_total";
        family(
            out,
            name,
            "Health check probes of the local app by outcome.",
            "counter",
        );
        for c in &self.checks {
            for (i, outcome) in ["pass", "warn", "fail"].iter().enumerate() {
                let labels = format!("check=\"{}\",outcome=\"{outcome}\"", escape_label(&c.name));
                sample(out, name, &labels, c.probes[i].get());
            }
        }
        let name = "waymark_proxy_check_status";
        family(out, name, "1 for the status each check is in now.", "gauge");
        for c in &self.checks {
            let current = c.status.load(Ordering::Relaxed);
            for status in [Status::Passing, Status::Warning, Status::Critical] {
                let labels = format!(
                    "check=\"{}\",status=\"{}\"",
                    escape_label(&c.name),
                    status.name()
                );
                sample(out, name, &labels, u64::from(current == status as u64));
            }
        }
    }

    fn render_inbound(&self, out: &mut String) {
        let m = &self.inbound;
        for (name, help, value) in [
            (
                "waymark_proxy_inbound_connections_total",
                "Connections accepted on the inbound (mesh) port.",
                m.connections.get(),
            ),
            (
                "waymark_proxy_inbound_bytes_received_total",
                "Bytes received from peers on the inbound port.",
                m.bytes_in.get(),
            ),
            (
                "waymark_proxy_inbound_bytes_sent_total",
                "Bytes sent to peers on the inbound port.",
                m.bytes_out.get(),
            ),
            (
                "waymark_proxy_inbound_app_connect_errors_total",
                "Failed connects to the local app.",
                m.connect_errors.get(),
            ),
        ] {
            family(out, name, help, "counter");
            sample(out, name, "", value);
        }
        let name = "waymark_proxy_inbound_open_connections";
        family(out, name, "Inbound connections open now.", "gauge");
        sample(out, name, "", m.open_connections.get());
    }

    fn render_registration(&self, out: &mut String) {
        let m = &self.registration;
        for (name, help, value) in [
            (
                "waymark_proxy_registered",
                "1 while the instance is registered under a live lease.",
                m.registered.get(),
            ),
            (
                "waymark_proxy_lease_id",
                "The lease the instance is registered under (0: none).",
                m.lease_id.get(),
            ),
            (
                "waymark_proxy_registry_index",
                "Catalog index of the last write the registry acknowledged.",
                m.index.get(),
            ),
        ] {
            family(out, name, help, "gauge");
            sample(out, name, "", value);
        }
        for (name, help, value) in [
            (
                "waymark_proxy_registrations_total",
                "Registrations of the instance (a lost lease re-registers).",
                m.registrations.get(),
            ),
            (
                "waymark_proxy_lease_renewals_total",
                "Lease renewals granted.",
                m.lease_renewals.get(),
            ),
            (
                "waymark_proxy_leases_lost_total",
                "Leases that expired or could not be renewed.",
                m.leases_lost.get(),
            ),
            (
                "waymark_proxy_health_reports_total",
                "Health status changes written to the registry.",
                m.health_reports.get(),
            ),
        ] {
            family(out, name, help, "counter");
            sample(out, name, "", value);
        }
        let name = "waymark_proxy_instance_status";
        family(
            out,
            name,
            "1 for the status the registry holds for this instance.",
            "gauge",
        );
        let current = m.reported_status.get();
        for status in [Status::Passing, Status::Warning, Status::Critical] {
            let labels = format!("status=\"{}\"", status.name());
            sample(out, name, &labels, u64::from(current == status as i64));
        }
    }
}

fn render_upstreams(out: &mut String, upstreams: &[Arc<Upstream>]) {
    // The listen address tells apart two upstreams of one service.
    let label = |u: &Upstream| {
        format!(
            "upstream=\"{}\",listen=\"{}\"",
            escape_label(u.name()),
            u.config.listen
        )
    };
    type Get = fn(&Upstream) -> u64;
    let counters: [(&str, &str, Get); 9] = [
        (
            "waymark_proxy_upstream_requests_total",
            "HTTP requests (or TCP connections) from the local app.",
            |u| u.metrics.requests.get(),
        ),
        (
            "waymark_proxy_upstream_bytes_sent_total",
            "Bytes sent to the upstream's endpoints.",
            |u| u.metrics.bytes_sent.get(),
        ),
        (
            "waymark_proxy_upstream_bytes_received_total",
            "Bytes received from the upstream's endpoints.",
            |u| u.metrics.bytes_received.get(),
        ),
        (
            "waymark_proxy_upstream_connect_errors_total",
            "Failed connects to endpoints.",
            |u| u.metrics.connect_errors.get(),
        ),
        (
            "waymark_proxy_upstream_retries_total",
            "Connects retried on another endpoint after a failed connect.",
            |u| u.metrics.retries.get(),
        ),
        (
            "waymark_proxy_upstream_no_endpoint_total",
            "Requests or connections refused because no endpoint was available.",
            |u| u.metrics.no_endpoint.get(),
        ),
        (
            "waymark_proxy_upstream_timeouts_total",
            "HTTP requests that ran past the request timeout.",
            |u| u.metrics.timeouts.get(),
        ),
        (
            "waymark_proxy_upstream_ejections_total",
            "Endpoints ejected by outlier detection.",
            |u| u.metrics.ejections.get(),
        ),
        (
            "waymark_proxy_upstream_stale_updates_refused_total",
            "Endpoint sets refused because they were older than the one applied.",
            |u| u.pool.stale_refused.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, get) in counters {
        family(out, name, help, "counter");
        for u in upstreams {
            sample(out, name, &label(u), get(u));
        }
    }
    let name = "waymark_proxy_upstream_responses_total";
    family(
        out,
        name,
        "HTTP responses by status class, the proxy's own (502, 503, 504) included.",
        "counter",
    );
    for u in upstreams {
        for (i, c) in u.metrics.responses.iter().enumerate() {
            sample(
                out,
                name,
                &format!("{},class=\"{}xx\"", label(u), i + 1),
                c.get(),
            );
        }
    }
    let name = "waymark_proxy_upstream_latency_seconds";
    family(
        out,
        name,
        "Time to the response headers (HTTP) or connection length (TCP).",
        "histogram",
    );
    for u in upstreams {
        u.metrics.latency.render_samples(out, name, &label(u));
    }
    let name = "waymark_proxy_upstream_open_connections";
    family(
        out,
        name,
        "Connections from the local app open now.",
        "gauge",
    );
    for u in upstreams {
        sample(out, name, &label(u), u.metrics.open_connections.get());
    }
    let now = Instant::now();
    let name = "waymark_proxy_upstream_endpoints";
    family(
        out,
        name,
        "Endpoints by state: ready or ejected by outlier detection.",
        "gauge",
    );
    for u in upstreams {
        let set = u.pool.current();
        let ejected = set.endpoints.iter().filter(|e| e.is_ejected(now)).count();
        let ready = set.endpoints.len() - ejected;
        sample(out, name, &format!("{},state=\"ready\"", label(u)), ready);
        sample(
            out,
            name,
            &format!("{},state=\"ejected\"", label(u)),
            ejected,
        );
    }
    let name = "waymark_proxy_upstream_catalog_index";
    family(
        out,
        name,
        "Catalog index the upstream's endpoint set reflects.",
        "gauge",
    );
    for u in upstreams {
        sample(out, name, &label(u), u.pool.current().index);
    }
    let name = "waymark_proxy_upstream_fail_static";
    family(
        out,
        name,
        "1 while no registry node answers and the last endpoint set is used.",
        "gauge",
    );
    for u in upstreams {
        sample(out, name, &label(u), u8::from(u.pool.state().fail_static));
    }
}

fn count_decision(
    counts: &Mutex<BTreeMap<(String, bool), u64>>,
    source: &str,
    action: waymark_proto::intention::Action,
) {
    let allowed = action == waymark_proto::intention::Action::Allow;
    *counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry((source.to_string(), allowed))
        .or_default() += 1;
}

/// A counter family of intention decisions, by source and decision.
fn render_decisions(
    out: &mut String,
    name: &str,
    help: &str,
    counts: &Mutex<BTreeMap<(String, bool), u64>>,
) {
    family(out, name, help, "counter");
    for ((source, allowed), n) in counts.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let decision = if *allowed { "allow" } else { "deny" };
        sample(
            out,
            name,
            &format!(
                "source=\"{}\",decision=\"{decision}\"",
                escape_label(source)
            ),
            n,
        );
    }
}
