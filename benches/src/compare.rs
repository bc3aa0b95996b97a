//! `waymark-bench compare`: results of the same workloads run against Waymark and
//! against etcd (saved with `--json`, in any order, any number of files) as one markdown
//! table with both columns and their ratio, followed by the project's goals checked
//! against those numbers.
//!
//! A run that failed is a line `{"backend": .., "workload": .., "clients": ..,
//! "failed": "why"}` (plus `consistency` / `watchers` where they apply), so the table
//! still shows it.

use std::fmt::Write as _;

use anyhow::{bail, Context};
use serde_json::Value;

/// Watch put→event p99 goal at 10k watchers, in milliseconds.
pub const WATCH_P99_GOAL_MS: f64 = 50.0;
/// Server memory goal per watcher at 10k watchers, in KB (1,000 bytes).
pub const WATCH_RSS_GOAL_KB: f64 = 5.0;
/// Registration throughput goal: this many times etcd's put throughput at 256 clients.
pub const REGISTER_RATIO_GOAL: f64 = 2.0;

/// What a result is a measurement of: rows of the two backends with the same key are
/// compared with each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    /// `register`, `list (consistent)`, `watch-latency`, ...
    pub workload: String,
    /// `256`, or `10000 watchers` for the watch workloads.
    pub clients: String,
    /// 0 for the first result with this key and backend, 1 for the second, ...
    pub occurrence: usize,
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn num_field(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// The workload and clients labels of one result.
pub fn labels(v: &Value) -> anyhow::Result<(String, String)> {
    let workload = str_field(v, "workload").context("missing \"workload\"")?;
    let workload = match str_field(v, "consistency") {
        Some(c) => format!("{workload} ({c})"),
        None => workload.to_string(),
    };
    let clients = match num_field(v, "watchers") {
        Some(w) => format!("{w:.0} watchers"),
        None => format!(
            "{:.0}",
            num_field(v, "clients").context("missing \"clients\"")?
        ),
    };
    Ok((workload, clients))
}

/// One line of the table: the Waymark and etcd results of one workload, either of which
/// may be missing.
#[derive(Debug)]
pub struct Pair<'a> {
    pub key: RowKey,
    pub waymark: Option<&'a Value>,
    pub etcd: Option<&'a Value>,
}

/// Pairs results by key, in the order the keys first appear.
pub fn pair(rows: &[Value]) -> anyhow::Result<Vec<Pair<'_>>> {
    let mut pairs: Vec<Pair<'_>> = Vec::new();
    let mut seen: Vec<(String, String, String)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let (workload, clients) = labels(row).with_context(|| format!("result {}", i + 1))?;
        let backend = str_field(row, "backend").unwrap_or("waymark").to_string();
        if backend != "waymark" && backend != "etcd" {
            bail!("result {}: unknown backend {backend:?}", i + 1);
        }
        let id = (backend.clone(), workload.clone(), clients.clone());
        let occurrence = seen.iter().filter(|s| **s == id).count();
        seen.push(id);
        let key = RowKey {
            workload,
            clients,
            occurrence,
        };
        let idx = match pairs.iter().position(|p| p.key == key) {
            Some(idx) => idx,
            None => {
                pairs.push(Pair {
                    key,
                    waymark: None,
                    etcd: None,
                });
                pairs.len() - 1
            }
        };
        if backend == "waymark" {
            pairs[idx].waymark = Some(row);
        } else {
            pairs[idx].etcd = Some(row);
        }
    }
    Ok(pairs)
}

fn failed(v: &Value) -> Option<String> {
    match v.get("failed") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

fn ops(v: Option<&Value>) -> Option<f64> {
    let v = v?;
    if failed(v).is_some() {
        return None;
    }
    num_field(v, "ops_per_sec")
}

fn p99(v: Option<&Value>) -> Option<f64> {
    let v = v?;
    if failed(v).is_some() {
        return None;
    }
    v.pointer("/latency_ms/p99").and_then(Value::as_f64)
}

fn ops_cell(v: Option<&Value>) -> String {
    match v {
        None => "–".into(),
        Some(r) if failed(r).is_some() => "failed".into(),
        Some(_) => ops(v).map_or("?".into(), |o| format!("{o:.0}")),
    }
}

fn ms_cell(v: Option<&Value>) -> String {
    match v {
        None => "–".into(),
        Some(r) if failed(r).is_some() => "failed".into(),
        Some(_) => p99(v).map_or("?".into(), |l| format!("{l:.2}")),
    }
}

/// A p99 for prose: `4.25 ms`, `failed` or `no result`.
fn ms_text(v: Option<&Value>) -> String {
    match (v, p99(v)) {
        (_, Some(l)) => format!("{l:.2} ms"),
        (Some(_), None) => "failed".into(),
        (None, None) => "no result".into(),
    }
}

/// Throughput for prose: `1234 ops/s`, `failed` or `no result`.
fn ops_text(v: Option<&Value>) -> String {
    match (v, ops(v)) {
        (_, Some(o)) => format!("{o:.0} ops/s"),
        (Some(_), None) => "failed".into(),
        (None, None) => "no result".into(),
    }
}

/// `a / b` as `1.23×`, when both are known and b is not zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

fn is_watch(v: &Value) -> bool {
    v.get("missed").is_some() || v.get("watchers").is_some()
}

/// What is worth knowing about one result beyond its numbers: errors, missed and
/// duplicate watch events, failure.
fn note(v: &Value) -> String {
    if let Some(why) = failed(v) {
        return format!("failed: {why}");
    }
    let mut parts = Vec::new();
    let errors = num_field(v, "errors").unwrap_or(0.0);
    if errors > 0.0 {
        let mut s = format!("{errors:.0} errors");
        if let Some(Value::Object(by_code)) = v.get("errors_by_code") {
            let codes: Vec<String> = by_code.iter().map(|(c, n)| format!("{c} {n}")).collect();
            if !codes.is_empty() {
                let _ = write!(s, " ({})", codes.join(", "));
            }
        }
        parts.push(s);
    }
    if is_watch(v) {
        parts.push(format!(
            "missed {:.0}, dup {:.0}",
            num_field(v, "missed").unwrap_or(0.0),
            num_field(v, "duplicates").unwrap_or(0.0)
        ));
    }
    if let Some(items) = num_field(v, "items_max") {
        parts.push(format!("{items:.0} items/list"));
    }
    parts.join(", ")
}

fn notes(p: &Pair<'_>) -> String {
    let mut parts = Vec::new();
    for (name, v) in [("waymark", p.waymark), ("etcd", p.etcd)] {
        if let Some(v) = v {
            let n = note(v);
            if !n.is_empty() {
                parts.push(format!("{name}: {n}"));
            }
        }
    }
    parts.join("; ")
}

/// The comparison table.
pub fn table(rows: &[Value]) -> anyhow::Result<String> {
    let mut out = String::from(
        "| workload | clients | waymark ops/s | etcd ops/s | ratio | waymark p99 (ms) | etcd p99 (ms) | notes |\n\
         |---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for p in pair(rows)? {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            p.key.workload,
            p.key.clients,
            ops_cell(p.waymark),
            ops_cell(p.etcd),
            ratio(ops(p.waymark), ops(p.etcd)),
            ms_cell(p.waymark),
            ms_cell(p.etcd),
            notes(&p),
        );
    }
    Ok(out)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "**met**"
    } else {
        "**not met**"
    }
}

/// The goals (a report, not a test) checked against the results, as markdown bullets.
pub fn goals(rows: &[Value]) -> anyhow::Result<String> {
    let pairs = pair(rows)?;
    let find = |workload: &str, clients: &str| {
        pairs
            .iter()
            .rfind(|p| p.key.workload == workload && p.key.clients == clients)
    };
    let mut out = String::new();

    match find("register", "256") {
        Some(p) => {
            let (w, e) = (ops(p.waymark), ops(p.etcd));
            let met =
                matches!((w, e), (Some(w), Some(e)) if e > 0.0 && w >= REGISTER_RATIO_GOAL * e);
            let _ = writeln!(
                out,
                "- Registration throughput at 256 clients ≥ {REGISTER_RATIO_GOAL}× etcd's put throughput: \
                 waymark {}, etcd {}, ratio {} — {}",
                ops_text(p.waymark),
                ops_text(p.etcd),
                ratio(w, e),
                verdict(met)
            );
            let (w, e) = (p99(p.waymark), p99(p.etcd));
            let met = matches!((w, e), (Some(w), Some(e)) if w <= e);
            let _ = writeln!(
                out,
                "- Registration p99 at 256 clients ≤ etcd's put p99: waymark {}, etcd {} — {}",
                ms_text(p.waymark),
                ms_text(p.etcd),
                verdict(met)
            );
        }
        None => {
            let _ = writeln!(out, "- Registration at 256 clients: no result");
        }
    }

    match find("watch-latency", "10000 watchers") {
        Some(p) => {
            let w = p99(p.waymark);
            let clean = p.waymark.is_some_and(|v| {
                num_field(v, "missed") == Some(0.0) && num_field(v, "errors") == Some(0.0)
            });
            let met = clean && w.is_some_and(|w| w <= WATCH_P99_GOAL_MS);
            let mut why = String::new();
            if w.is_some() && !clean {
                why = " (events missed or errors: see the table)".into();
            }
            let _ = writeln!(
                out,
                "- Watch put→event p99 at 10000 watchers ≤ {WATCH_P99_GOAL_MS} ms: waymark {} \
                 (etcd {}){why} — {}",
                ms_text(p.waymark),
                ms_text(p.etcd),
                verdict(met)
            );
        }
        None => {
            let _ = writeln!(out, "- Watch latency at 10000 watchers: no result");
        }
    }
    if let Some(p) = find("watch-latency", "10000 watchers") {
        let (w, e) = (setup_s(p.waymark), setup_s(p.etcd));
        let met = matches!((w, e), (Some(w), Some(e)) if w <= e);
        let _ = writeln!(
            out,
            "- Setting up 10000 watchers at least as fast as etcd: waymark {}, etcd {} — {}",
            seconds_text(w),
            seconds_text(e),
            verdict(met)
        );
        let (w, e) = (rss_per_watcher_kb(p.waymark), rss_per_watcher_kb(p.etcd));
        let met = w.is_some_and(|w| w <= WATCH_RSS_GOAL_KB);
        let _ = writeln!(
            out,
            "- Server memory per watcher at 10000 watchers ≤ {WATCH_RSS_GOAL_KB} KB (the \
             servers' summed peak RSS during the run minus before it, ÷ watchers): waymark \
             {}, etcd {} — {}",
            kb_text(w),
            kb_text(e),
            verdict(met)
        );
    }
    Ok(out)
}

fn setup_s(v: Option<&Value>) -> Option<f64> {
    num_field(v?, "setup_s")
}

/// Growth of the servers' resident memory during a watch run, per watcher, in KB.
fn rss_per_watcher_kb(v: Option<&Value>) -> Option<f64> {
    let v = v?;
    let before = num_field(v, "servers_rss_before_kb")?;
    let peak = num_field(v, "servers_rss_peak_kb")?;
    let watchers = num_field(v, "watchers").filter(|w| *w > 0.0)?;
    // VmRSS is in KiB; the goal is in KB.
    Some((peak - before).max(0.0) * 1.024 / watchers)
}

fn seconds_text(s: Option<f64>) -> String {
    s.map_or("no result".into(), |s| format!("{s:.3} s"))
}

fn kb_text(kb: Option<f64>) -> String {
    kb.map_or("not measured".into(), |kb| format!("{kb:.1} KB"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reg(backend: &str, clients: u32, ops: f64, p99: f64) -> Value {
        json!({"backend": backend, "workload": "register", "clients": clients,
               "ops_per_sec": ops, "errors": 0, "errors_by_code": {},
               "latency_ms": {"p50": 1.0, "p99": p99}})
    }

    fn watch(backend: &str, watchers: u32, p99: f64, missed: u64) -> Value {
        json!({"backend": backend, "workload": "watch-latency", "clients": 1,
               "watchers": watchers, "ops_per_sec": 1000.0, "errors": 0,
               "missed": missed, "duplicates": 0,
               "latency_ms": {"p50": 1.0, "p99": p99}})
    }

    #[test]
    fn watch_setup_and_memory_goals_are_judged_from_the_10k_run() {
        let mut w = watch("waymark", 10000, 40.0, 0);
        w["setup_s"] = json!(0.3);
        w["servers_rss_before_kb"] = json!(80_000);
        w["servers_rss_peak_kb"] = json!(120_000);
        let mut e = watch("etcd", 10000, 90.0, 0);
        e["setup_s"] = json!(0.9);
        e["servers_rss_before_kb"] = json!(80_000);
        e["servers_rss_peak_kb"] = json!(560_000);
        let text = goals(&[w.clone(), e.clone()]).unwrap();
        assert!(
            text.contains("waymark 0.300 s, etcd 0.900 s — **met**"),
            "{text}"
        );
        // (120,000 - 80,000) KiB × 1.024 / 10,000 = 4.1 KB.
        assert!(
            text.contains("waymark 4.1 KB, etcd 49.2 KB — **met**"),
            "{text}"
        );
        w["servers_rss_peak_kb"] = json!(140_000);
        w["setup_s"] = json!(1.2);
        let text = goals(&[w, e]).unwrap();
        assert!(text.contains("etcd 0.900 s — **not met**"), "{text}");
        assert!(
            text.contains("waymark 6.1 KB, etcd 49.2 KB — **not met**"),
            "{text}"
        );
    }

    #[test]
    fn labels_name_the_variant() {
        let list = json!({"workload": "list", "consistency": "stale", "clients": 16});
        assert_eq!(labels(&list).unwrap(), ("list (stale)".into(), "16".into()));
        let w = watch("etcd", 10000, 1.0, 0);
        assert_eq!(
            labels(&w).unwrap(),
            ("watch-latency".into(), "10000 watchers".into())
        );
        assert!(labels(&json!({"clients": 1})).is_err());
    }

    #[test]
    fn results_pair_up_by_key_in_first_seen_order() {
        let rows = vec![
            reg("waymark", 1, 100.0, 2.0),
            reg("waymark", 256, 9000.0, 30.0),
            reg("etcd", 256, 3000.0, 40.0),
            reg("etcd", 1, 200.0, 1.0),
            reg("etcd", 16, 1000.0, 5.0),
        ];
        let pairs = pair(&rows).unwrap();
        let keys: Vec<&str> = pairs.iter().map(|p| p.key.clients.as_str()).collect();
        assert_eq!(keys, ["1", "256", "16"]);
        assert!(pairs[2].waymark.is_none());
        assert_eq!(pairs[1].etcd.unwrap()["ops_per_sec"], 3000.0);

        // A repeated run pairs with the other backend's repeat, not the first one.
        let rows = vec![
            reg("waymark", 1, 1.0, 1.0),
            reg("waymark", 1, 2.0, 1.0),
            reg("etcd", 1, 3.0, 1.0),
            reg("etcd", 1, 4.0, 1.0),
        ];
        let pairs = pair(&rows).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[1].waymark.unwrap()["ops_per_sec"], 2.0);
        assert_eq!(pairs[1].etcd.unwrap()["ops_per_sec"], 4.0);

        assert!(pair(&[json!({"backend": "zk", "workload": "register", "clients": 1})]).is_err());
    }

    #[test]
    fn table_has_both_columns_the_ratio_and_notes() {
        let mut bad = reg("etcd", 16, 1500.0, 9.5);
        bad["errors"] = json!(3);
        bad["errors_by_code"] = json!({"UNAVAILABLE": 3});
        let rows = vec![
            reg("waymark", 16, 3000.0, 4.25),
            bad,
            watch("waymark", 1000, 12.0, 2),
            watch("etcd", 1000, 20.0, 0),
            json!({"backend": "waymark", "workload": "list", "consistency": "consistent",
                   "clients": 16, "failed": "exit 1"}),
        ];
        let t = table(&rows).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert_eq!(
            lines[2],
            "| register | 16 | 3000 | 1500 | 2.00× | 4.25 | 9.50 | etcd: 3 errors (UNAVAILABLE 3) |"
        );
        assert_eq!(
            lines[3],
            "| watch-latency | 1000 watchers | 1000 | 1000 | 1.00× | 12.00 | 20.00 | \
             waymark: missed 2, dup 0; etcd: missed 0, dup 0 |"
        );
        assert_eq!(
            lines[4],
            "| list (consistent) | 16 | failed | – | – | failed | – | waymark: failed: exit 1 |"
        );
    }

    #[test]
    fn goals_are_checked_against_the_numbers() {
        let rows = vec![
            reg("waymark", 256, 7000.0, 30.0),
            reg("etcd", 256, 3400.0, 40.0),
            watch("waymark", 10000, 45.0, 0),
            watch("etcd", 10000, 80.0, 0),
        ];
        let g = goals(&rows).unwrap();
        let lines: Vec<&str> = g.lines().collect();
        // Registration throughput and p99, watch p99, then setup and memory (without
        // their numbers in these rows: not met).
        assert_eq!(lines.len(), 5, "{g}");
        assert!(
            lines[3].contains("no result, etcd no result — **not met**"),
            "{g}"
        );
        assert!(
            lines[0].contains("waymark 7000 ops/s, etcd 3400 ops/s, ratio 2.06×"),
            "{g}"
        );
        assert!(lines[0].ends_with("**met**"), "{g}");
        assert!(lines[1].ends_with("**met**"), "{g}");
        assert!(lines[1].contains("waymark 30.00 ms, etcd 40.00 ms"), "{g}");
        assert!(lines[2].contains("waymark 45.00 ms (etcd 80.00 ms)"), "{g}");
        assert!(lines[2].ends_with("**met**"), "{g}");

        let rows = vec![
            reg("waymark", 256, 6000.0, 50.0),
            reg("etcd", 256, 3400.0, 40.0),
            watch("waymark", 10000, 45.0, 7),
        ];
        let g = goals(&rows).unwrap();
        assert_eq!(g.matches("**not met**").count(), 5, "{g}");
        assert!(g.contains("events missed"), "{g}");
        assert!(g.contains("(etcd no result)"), "{g}");

        let failed = json!({"backend": "waymark", "workload": "watch-latency", "clients": 1,
                            "watchers": 10000, "failed": "exit 1"});
        let g = goals(&[failed]).unwrap();
        assert!(
            g.contains("waymark failed (etcd no result) — **not met**"),
            "{g}"
        );

        let g = goals(&[]).unwrap();
        assert_eq!(g.matches("no result").count(), 2, "{g}");
    }
}
