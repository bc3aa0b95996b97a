//! Counters, gauges and histograms kept in atomics and rendered in the Prometheus text
//! exposition format: the one implementation the registry and the proxy both use.
//! A family (`# HELP`, `# TYPE`) is written once, then one sample line per label set.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (open connections).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A histogram with fixed buckets (upper bounds in seconds, or counts).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    inner: Mutex<HistogramState>,
}

#[derive(Debug, Default)]
struct HistogramState {
    /// Non-cumulative count per bucket; the last slot is +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// Buckets from 10 µs to 2.5 s, suited to apply and request latencies.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            inner: Mutex::new(HistogramState {
                counts: vec![0; bounds.len() + 1],
                ..Default::default()
            }),
        }
    }

    pub fn observe(&self, value: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.counts[slot] += 1;
        s.sum += value;
        s.count += 1;
    }

    /// The whole family, without labels.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        family(out, name, help, "histogram");
        self.render_samples(out, name, "");
    }

    /// The sample lines only (after [`family`]), with `labels` such as
    /// `upstream="api"` (empty for none).
    pub fn render_samples(&self, out: &mut String, name: &str, labels: &str) {
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let sep = if labels.is_empty() { "" } else { "," };
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&s.counts) {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += s.counts[self.bounds.len()];
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), s.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), s.count);
    }
}

/// The `# HELP` and `# TYPE` lines of a family (`kind`: counter, gauge, histogram).
pub fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line: `name{labels} value` (no braces when `labels` is empty).
pub fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// A label value escaped as the text format requires (`\`, `"` and newlines).
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render_counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, help, "counter");
    sample(out, name, "", value);
}

/// A counter family with one sample per value of one label (values need no escaping).
pub fn render_labelled_counter(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    samples: &[(&str, u64)],
) {
    family(out, name, help, "counter");
    for (value, count) in samples {
        sample(out, name, &format!("{label}=\"{value}\""), count);
    }
}

pub fn render_gauge(out: &mut String, name: &str, help: &str, value: f64) {
    family(out, name, help, "gauge");
    sample(out, name, "", value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.1\"} 1\n"));
        assert!(out.contains("x_bucket{le=\"1\"} 2\n"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_count 3\n"));
    }

    #[test]
    fn labelled_samples() {
        let h = Histogram::new(&[1.0]);
        h.observe(0.5);
        let mut out = String::new();
        h.render_samples(&mut out, "x", "upstream=\"api\"");
        assert!(
            out.contains("x_bucket{upstream=\"api\",le=\"1\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("x_count{upstream=\"api\"} 1\n"), "{out}");
        let mut out = String::new();
        sample(&mut out, "y_total", "a=\"b\"", 3);
        assert_eq!(out, "y_total{a=\"b\"} 3\n");
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
