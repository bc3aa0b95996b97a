//! Per-run reports: `summary.json` for machines, `summary.txt` for a terminal, and a
//! self-contained `report.html` that shows the history against the faults.
//!
//! - `summary`: [`RunMeta`], [`Summary`] and [`summarize`], the numbers of a run.
//! - `text`: [`summary_text`], the plain-text summary.
//! - `html`: [`render_html`], the page; `plots` draws its charts with the primitives
//!   in `svg`, and `escape` keeps history text from becoming markup.

mod escape;
mod html;
mod plots;
mod summary;
mod svg;
mod text;

use std::fs;
use std::path::Path;

use anyhow::Context;

use crate::history::{Event, Nanos};

pub use html::render_html;
pub use summary::{summarize, RunMeta, Summary};
pub use text::summary_text;

/// Writes `summary.json`, `summary.txt` and `report.html` into `dir`, creating it if
/// needed.
pub fn write_report(dir: &Path, summary: &Summary, events: &[Event]) -> anyhow::Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("creating the report directory {}", dir.display()))?;
    let mut json = serde_json::to_string_pretty(summary).context("serializing the summary")?;
    json.push('\n');
    write(dir, "summary.json", &json)?;
    write(dir, "summary.txt", &summary_text(summary))?;
    write(dir, "report.html", &render_html(summary, events))?;
    Ok(())
}

fn write(dir: &Path, name: &str, contents: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
}

/// Nanoseconds since the run's start, in seconds.
fn secs(ns: Nanos) -> f64 {
    ns as f64 / 1e9
}

/// A window of the run in seconds, e.g. `1.250–3.000 s`.
fn window_text((start, end): (Nanos, Nanos)) -> String {
    format!("{:.3}–{:.3} s", secs(start), secs(end))
}

/// What the run secured, as the reports say it.
fn security(secure: bool) -> &'static str {
    if secure {
        "ACLs (default deny) + TLS on the API + mutual TLS on Raft"
    } else {
        "none (plaintext, no ACLs)"
    }
}

/// `a, b`, or `none`.
fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::checks::{Anomaly, CheckerReport, Verdict};
    use crate::history::{FaultRecord, Op, OpRecord, Outcome, WatchEvent, WatchRecord};

    const S: u64 = 1_000_000_000;

    fn meta() -> RunMeta {
        RunMeta {
            run: 2,
            seed: 42,
            nodes: 3,
            workloads: vec!["register".into(), "set".into()],
            nemeses: vec!["partition".into()],
            time_limit_s: 10,
            control: None,
            secure: true,
            started_at: "2026-11-02T10:00:00Z".into(),
            duration_ns: 10 * S,
        }
    }

    fn op(process: u64, op: Op, outcome: Outcome, start: Nanos, end: Nanos) -> Event {
        Event::Op(OpRecord {
            process,
            node: 1 + (process % 3) as u32,
            op,
            start,
            end,
            outcome,
            error: (outcome != Outcome::Ok).then(|| "deadline exceeded".to_string()),
        })
    }

    fn history() -> Vec<Event> {
        vec![
            op(
                0,
                Op::Write {
                    key: "k1".into(),
                    value: 1,
                    index: Some(5),
                },
                Outcome::Ok,
                S,
                S + 3_000_000,
            ),
            op(
                1,
                Op::Read {
                    key: "k1".into(),
                    value: Some(1),
                    modify_index: Some(5),
                    index: Some(5),
                },
                Outcome::Ok,
                2 * S,
                2 * S + 1_000_000,
            ),
            op(
                1,
                Op::Read {
                    key: "k1".into(),
                    value: None,
                    modify_index: None,
                    index: None,
                },
                Outcome::Fail,
                3 * S,
                3 * S + 2_000_000,
            ),
            op(
                2,
                Op::Add {
                    id: "a1".into(),
                    index: None,
                },
                Outcome::Info,
                4 * S,
                6 * S,
            ),
            Event::Fault(FaultRecord {
                fault: "partition".into(),
                detail: "isolate n1".into(),
                nodes: vec![1],
                start: 3 * S,
                end: 5 * S,
                in_effect: None,
                alone: Vec::new(),
            }),
            Event::Fault(FaultRecord {
                fault: "kill".into(),
                detail: "kill -9 n2".into(),
                nodes: vec![2],
                start: 6 * S,
                end: 7 * S,
                in_effect: None,
                alone: Vec::new(),
            }),
            Event::Watch(WatchRecord {
                watcher: 0,
                node: 3,
                session: 0,
                time: S / 2,
                event: WatchEvent::Connected { from_index: 0 },
            }),
            Event::Watch(WatchRecord {
                watcher: 0,
                node: 3,
                session: 0,
                time: S,
                event: WatchEvent::Progress { index: 5 },
            }),
        ]
    }

    fn checkers() -> Vec<CheckerReport> {
        vec![
            CheckerReport::from_findings(
                "set",
                vec![Anomaly {
                    kind: "lost-write".into(),
                    description: "acknowledged add of <script>alert(1)</script> vanished".into(),
                    window: Some((4 * S, 6 * S)),
                    evidence: (0..12).map(|i| format!("{{\"line\":{i}}}")).collect(),
                }],
                BTreeMap::from([("acknowledged_adds".to_string(), 7)]),
            ),
            CheckerReport {
                checker: "register".into(),
                verdict: Verdict::Unknown,
                anomalies: vec![],
                stats: BTreeMap::new(),
            },
        ]
    }

    #[test]
    fn summarize_counts_the_history() {
        let s = summarize(meta(), &history(), checkers());
        assert_eq!(s.total_ops, 4);
        assert_eq!(s.ops["read"]["ok"], 1);
        assert_eq!(s.ops["read"]["fail"], 1);
        assert_eq!(s.ops["write"]["ok"], 1);
        assert_eq!(s.ops["add"]["info"], 1);
        assert!(!s.ops["write"].contains_key("fail"));
        assert_eq!(
            s.faults,
            BTreeMap::from([("kill".to_string(), 1), ("partition".to_string(), 1)])
        );
        assert_eq!(s.watch_events, 2);
        assert_eq!(s.anomalies, 1);
        assert!(!s.valid);
        assert!(s.unknown);
        assert_eq!(s.verdict(), Verdict::Invalid);

        let clean = summarize(meta(), &[], vec![]);
        assert_eq!(clean.total_ops, 0);
        assert!(clean.valid && !clean.unknown);
        assert_eq!(clean.verdict(), Verdict::Valid);
    }

    #[test]
    fn write_report_writes_the_three_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run-2");
        let events = history();
        let s = summarize(meta(), &events, checkers());
        write_report(&out, &s, &events).unwrap();

        let json = std::fs::read_to_string(out.join("summary.json")).unwrap();
        let back: Summary = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);

        let txt = std::fs::read_to_string(out.join("summary.txt")).unwrap();
        assert!(txt.contains("seed 42"), "{txt}");
        assert!(txt.contains("verdict: INVALID"), "{txt}");
        assert!(txt.contains("set: lost-write"), "{txt}");
        assert!(txt.contains("vanished"), "{txt}");
        assert!(txt.contains("window: 4.000–6.000 s"), "{txt}");
        assert!(txt.contains("{\"line\":9}"), "{txt}");
        assert!(!txt.contains("{\"line\":10}"), "{txt}");
        assert!(txt.contains("and 2 more lines"), "{txt}");

        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
        // Fault shading, with a legend entry per kind.
        assert!(html.contains(r#"<rect class="fault""#), "no fault shading");
        assert!(html.contains("fault: partition"));
        assert!(html.contains("fault: kill"));
        // The anomaly's window is outlined, its text escaped everywhere.
        assert!(html.contains(r#"class="anomaly-band""#));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script"), "unescaped markup in the page");
        // All four plots, and the checkers' stats.
        assert_eq!(html.matches("<svg ").count(), 4);
        assert!(html.contains("acknowledged_adds"));
        assert!(html.contains("isolate n1"));
    }

    #[test]
    fn an_empty_run_still_makes_a_page() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = meta();
        m.duration_ns = 0;
        m.control = Some("skip-read-index".into());
        let s = summarize(m, &[], vec![]);
        write_report(dir.path(), &s, &[]).unwrap();
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(html.contains("No operations were recorded"));
        assert!(html.contains("skip-read-index"));
        let txt = std::fs::read_to_string(dir.path().join("summary.txt")).unwrap();
        assert!(txt.contains("UNSAFE"), "{txt}");
    }

    #[test]
    fn a_big_run_is_downsampled_and_says_so() {
        let events: Vec<Event> = (0..50_000u64)
            .map(|i| {
                let outcome = if i % 1000 == 0 {
                    Outcome::Info
                } else {
                    Outcome::Ok
                };
                op(
                    i / 100,
                    Op::Add {
                        id: format!("a{i}"),
                        index: Some(i),
                    },
                    outcome,
                    i * 1_000_000,
                    i * 1_000_000 + 2_000_000,
                )
            })
            .collect();
        let s = summarize(meta(), &events, vec![]);
        let html = render_html(&s, &events);
        assert!(html.contains("Showing 20000 of 50000 operations"));
        assert_eq!(html.matches("<rect class=\"o-").count(), 20_000);
        assert!(html.len() < 8 << 20, "page is {} bytes", html.len());
    }
}
