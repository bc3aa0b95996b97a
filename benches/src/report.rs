//! Results: the summary of one run (throughput, latency percentiles from the merged
//! hdrhistogram, errors by gRPC code) as a human table or one JSON object, and
//! saved JSON results rendered as a markdown table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::runner::{ErrorStat, Outcome};

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl LatencyMs {
    /// Reads percentiles off a histogram of microseconds; all zero when it is empty.
    pub fn from_histogram(us: &Histogram<u64>) -> Self {
        if us.is_empty() {
            return Self {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Self {
            p50: ms(us.value_at_quantile(0.50)),
            p90: ms(us.value_at_quantile(0.90)),
            p99: ms(us.value_at_quantile(0.99)),
            max: ms(us.max()),
            mean: us.mean() / 1000.0,
        }
    }
}

impl LatencyMs {
    /// `{"p50", "p90", "p99", "max", "mean"}`, in milliseconds to the microsecond.
    pub fn to_json(self) -> Value {
        json!({
            "p50": round(self.p50, 3),
            "p90": round(self.p90, 3),
            "p99": round(self.p99, 3),
            "max": round(self.max, 3),
            "mean": round(self.mean, 3),
        })
    }
}

/// Successful operations per second; 0 for an empty or instantaneous run.
pub fn ops_per_sec(ok: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        ok as f64 / secs
    } else {
        0.0
    }
}

/// Everything reported about one run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub workload: &'static str,
    /// The run's settings (clients, conns, total, ...), in display order.
    pub params: Vec<(&'static str, Value)>,
    pub ok: u64,
    pub errors: BTreeMap<&'static str, ErrorStat>,
    pub elapsed: Duration,
    pub latency: LatencyMs,
    /// What the latency percentiles measure (human output only).
    pub latency_of: &'static str,
    /// Workload-specific results (missed events, setup time, ...), in display order.
    pub extra: Vec<(&'static str, Value)>,
}

impl Summary {
    pub fn new(
        workload: &'static str,
        params: Vec<(&'static str, Value)>,
        outcome: &Outcome,
    ) -> Self {
        Self {
            workload,
            params,
            ok: outcome.ok,
            errors: outcome.errors.clone(),
            elapsed: outcome.elapsed,
            latency: LatencyMs::from_histogram(&outcome.latency_us),
            latency_of: "successful requests",
            extra: Vec::new(),
        }
    }

    /// Adds workload-specific results and says what the latencies measure.
    pub fn with_extra(
        mut self,
        latency_of: &'static str,
        extra: Vec<(&'static str, Value)>,
    ) -> Self {
        self.latency_of = latency_of;
        self.extra = extra;
        self
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|s| s.count).sum()
    }

    pub fn ops_per_sec(&self) -> f64 {
        ops_per_sec(self.ok, self.elapsed)
    }

    /// One JSON object: the parameters as top-level keys, then the results.
    pub fn to_json(&self) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("workload".into(), json!(self.workload));
        for (k, v) in &self.params {
            obj.insert((*k).into(), v.clone());
        }
        let by_code: serde_json::Map<String, Value> = self
            .errors
            .iter()
            .map(|(code, s)| ((*code).to_string(), json!(s.count)))
            .collect();
        let samples: serde_json::Map<String, Value> = self
            .errors
            .iter()
            .map(|(code, s)| ((*code).to_string(), json!(s.sample)))
            .collect();
        obj.insert("ok".into(), json!(self.ok));
        obj.insert("errors".into(), json!(self.error_count()));
        obj.insert("errors_by_code".into(), Value::Object(by_code));
        obj.insert("error_samples".into(), Value::Object(samples));
        obj.insert(
            "elapsed_s".into(),
            json!(round(self.elapsed.as_secs_f64(), 3)),
        );
        obj.insert("ops_per_sec".into(), json!(round(self.ops_per_sec(), 1)));
        obj.insert("latency_ms".into(), self.latency.to_json());
        for (k, v) in &self.extra {
            obj.insert((*k).into(), v.clone());
        }
        Value::Object(obj)
    }

    /// A small two-column table, etcd `benchmark` style.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", plain(v)))
            .collect();
        let l = self.latency;
        let _ = writeln!(out, "{}: {}", self.workload, params.join(" "));
        let _ = writeln!(out);
        let _ = writeln!(out, "Summary:");
        let _ = writeln!(
            out,
            "  {:<10} {:>12}",
            "Total",
            self.ok + self.error_count()
        );
        let _ = writeln!(out, "  {:<10} {:>12}", "OK", self.ok);
        let _ = writeln!(out, "  {:<10} {:>12}", "Errors", self.error_count());
        let _ = writeln!(
            out,
            "  {:<10} {:>12.3} s",
            "Elapsed",
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(out, "  {:<10} {:>12.1}", "Ops/s", self.ops_per_sec());
        let _ = writeln!(out);
        let _ = writeln!(out, "Latency (ms, {}):", self.latency_of);
        for (name, v) in [
            ("p50", l.p50),
            ("p90", l.p90),
            ("p99", l.p99),
            ("max", l.max),
            ("mean", l.mean),
        ] {
            let _ = writeln!(out, "  {name:<10} {v:>12.3}");
        }
        if !self.extra.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "Details:");
            for (k, v) in &self.extra {
                let _ = writeln!(out, "  {k:<20} {}", plain(v));
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "Errors by code:");
            for (code, s) in &self.errors {
                let _ = writeln!(out, "  {code:<20} {:>8}  first: {}", s.count, s.sample);
            }
        }
        out
    }
}

pub fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

/// A JSON value without quotes around strings, and lists joined with commas.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// User + system CPU seconds of a `/proc/<pid>/stat` line (fields 14 and 15, in clock
/// ticks of 1/100 s, the value on every Linux platform Rust supports).
pub fn cpu_secs_from_stat(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// CPU seconds this process has used so far (all threads), where /proc exists.
pub fn process_cpu_secs() -> Option<f64> {
    cpu_secs_from_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Parses `--json` output: one object per non-empty line.
pub fn parse_json_lines(text: &str) -> anyhow::Result<Vec<Value>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("line {}", i + 1)))
        .collect()
}

/// Renders saved results as a markdown table, one row per result.
pub fn markdown_table(rows: &[Value]) -> anyhow::Result<String> {
    let mut out = String::from(
        "| workload | clients | conns | total | elapsed (s) | ops/s | p50 (ms) | p99 (ms) | errors |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (i, row) in rows.iter().enumerate() {
        let num = |key: &str| -> anyhow::Result<f64> {
            row.get(key)
                .and_then(Value::as_f64)
                .with_context(|| format!("result {}: missing number {key:?}", i + 1))
        };
        let lat = |key: &str| -> anyhow::Result<f64> {
            row.pointer(&format!("/latency_ms/{key}"))
                .and_then(Value::as_f64)
                .with_context(|| format!("result {}: missing latency_ms.{key}", i + 1))
        };
        let Some(workload) = row.get("workload").and_then(Value::as_str) else {
            bail!("result {}: missing \"workload\"", i + 1);
        };
        let errors = num("errors")?;
        let mut errors_cell = format!("{errors:.0}");
        if let Some(Value::Object(by_code)) = row.get("errors_by_code") {
            if !by_code.is_empty() {
                let parts: Vec<String> = by_code
                    .iter()
                    .map(|(code, n)| format!("{code} {}", plain(n)))
                    .collect();
                let _ = write!(errors_cell, " ({})", parts.join(", "));
            }
        }
        let _ = writeln!(
            out,
            "| {workload} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {:.3} | {:.3} | {errors_cell} |",
            num("clients")?,
            num("conns")?,
            num("total")?,
            num("elapsed_s")?,
            num("ops_per_sec")?,
            lat("p50")?,
            lat("p99")?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> Outcome {
        let mut o = Outcome::empty();
        // 1..=100 ms, one each: p50 = 50 ms, p90 = 90 ms, p99 = 99 ms, max = 100 ms.
        for ms in 1..=100 {
            o.record(Duration::from_millis(ms), Ok(()));
        }
        o.record(Duration::ZERO, Err(tonic::Status::unavailable("no leader")));
        o.record(Duration::ZERO, Err(tonic::Status::unavailable("later")));
        o.elapsed = Duration::from_secs(4);
        o
    }

    fn summary() -> Summary {
        Summary::new(
            "register",
            vec![
                ("endpoints", json!(["a:1", "b:2"])),
                ("clients", json!(16)),
                ("conns", json!(4)),
                ("total", json!(102)),
            ],
            &outcome(),
        )
    }

    fn close(a: f64, b: f64) -> bool {
        // hdrhistogram with 3 significant digits: within 0.1%.
        (a - b).abs() <= b * 0.001
    }

    #[test]
    fn percentiles_come_from_the_histogram_in_ms() {
        let l = summary().latency;
        assert!(close(l.p50, 50.0), "{l:?}");
        assert!(close(l.p90, 90.0), "{l:?}");
        assert!(close(l.p99, 99.0), "{l:?}");
        assert!(close(l.max, 100.0), "{l:?}");
        assert!(close(l.mean, 50.5), "{l:?}");
    }

    #[test]
    fn cpu_time_comes_from_proc_stat() {
        let stat = "4242 (waymark bench) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0 3 0";
        assert_eq!(cpu_secs_from_stat(stat), Some(3.25));
        assert_eq!(cpu_secs_from_stat("4242 (x) S 1"), None);
        assert_eq!(cpu_secs_from_stat("garbage"), None);
        assert!(process_cpu_secs().is_some_and(|s| s >= 0.0));
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let l = LatencyMs::from_histogram(&Outcome::empty().latency_us);
        assert_eq!(l.p99, 0.0);
        assert_eq!(l.max, 0.0);
    }

    #[test]
    fn throughput_counts_successes_only() {
        assert_eq!(summary().ops_per_sec(), 25.0);
        assert_eq!(ops_per_sec(10, Duration::ZERO), 0.0);
        assert_eq!(ops_per_sec(3, Duration::from_millis(1500)), 2.0);
    }

    #[test]
    fn json_has_params_results_and_errors_by_code() {
        let v = summary().to_json();
        assert_eq!(v["workload"], "register");
        assert_eq!(v["clients"], 16);
        assert_eq!(v["endpoints"], json!(["a:1", "b:2"]));
        assert_eq!(v["ok"], 100);
        assert_eq!(v["errors"], 2);
        assert_eq!(v["errors_by_code"], json!({"UNAVAILABLE": 2}));
        assert_eq!(v["error_samples"], json!({"UNAVAILABLE": "no leader"}));
        assert_eq!(v["elapsed_s"], 4.0);
        assert_eq!(v["ops_per_sec"], 25.0);
        assert!(close(v["latency_ms"]["p99"].as_f64().unwrap(), 99.0));
        // One line, so results can be appended to a file and read back.
        assert!(!v.to_string().contains('\n'));
    }

    /// The whitespace-separated cells after `label` on the line that starts with it.
    fn row<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(label))
            .unwrap_or_else(|| panic!("no {label} row in\n{text}"));
        line.split_whitespace().skip(1).collect()
    }

    #[test]
    fn human_output_is_a_table() {
        let text = summary().render_human();
        assert_eq!(
            text.lines().next().unwrap(),
            "register: endpoints=a:1,b:2 clients=16 conns=4 total=102"
        );
        assert_eq!(row(&text, "Total"), ["102"]);
        assert_eq!(row(&text, "OK"), ["100"]);
        assert_eq!(row(&text, "Errors"), ["2"]);
        assert_eq!(row(&text, "Elapsed"), ["4.000", "s"]);
        assert_eq!(row(&text, "Ops/s"), ["25.0"]);
        let p99: f64 = row(&text, "p99")[0].parse().unwrap();
        assert!(close(p99, 99.0), "{text}");
        assert_eq!(row(&text, "UNAVAILABLE"), ["2", "first:", "no", "leader"]);
        // Values are right-aligned in one column.
        let ends: Vec<usize> = ["Total", "OK", "Errors", "Ops/s", "p50", "max"]
            .iter()
            .map(|label| {
                let line = text
                    .lines()
                    .find(|l| l.trim_start().starts_with(label))
                    .unwrap();
                line.len()
            })
            .collect();
        assert!(ends.iter().all(|&e| e == ends[0]), "{text}");
    }

    #[test]
    fn human_output_omits_the_error_section_without_errors() {
        let mut s = summary();
        s.errors.clear();
        assert!(!s.render_human().contains("Errors by code"));
    }

    #[test]
    fn markdown_table_from_json_lines() {
        let mut clean = summary();
        clean.errors.clear();
        let text = format!("{}\n\n{}\n", summary().to_json(), clean.to_json());
        let rows = parse_json_lines(&text).unwrap();
        assert_eq!(rows.len(), 2);
        let table = markdown_table(&rows).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0],
            "| workload | clients | conns | total | elapsed (s) | ops/s | p50 (ms) | p99 (ms) | errors |"
        );
        assert!(
            lines[2].starts_with("| register | 16 | 4 | 102 | 4.00 | 25 | "),
            "{table}"
        );
        assert!(lines[2].ends_with(" | 2 (UNAVAILABLE 2) |"), "{table}");
        assert!(lines[3].ends_with(" | 0 |"), "{table}");
    }

    #[test]
    fn markdown_table_names_what_is_missing() {
        let err = markdown_table(&[json!({"workload": "register"})]).unwrap_err();
        assert!(err.to_string().contains("errors"), "{err}");
        assert!(parse_json_lines("{not json}").is_err());
    }
}
