//! `summary.txt`: the run in a screenful of plain text, for a terminal or a CI log.

use std::fmt::{self, Write};

use super::summary::{ordered_fs, Summary, OUTCOME_NAMES};
use super::{list_or_none, window_text};

/// Evidence lines shown per anomaly; the rest are in `summary.json`.
const MAX_EVIDENCE_LINES: usize = 10;

/// The text of `summary.txt`.
pub fn summary_text(summary: &Summary) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; fmt::Result is only the trait's signature.
    let _ = render(&mut out, summary);
    out
}

fn render(out: &mut String, s: &Summary) -> fmt::Result {
    let m = &s.meta;
    writeln!(out, "Waymark Jepsen run {}, seed {}", m.run, m.seed)?;
    writeln!(
        out,
        "started {}, ran {:.1} s (limit {} s) on {} nodes",
        m.started_at,
        super::secs(m.duration_ns),
        m.time_limit_s,
        m.nodes
    )?;
    writeln!(out, "workloads: {}", list_or_none(&m.workloads))?;
    writeln!(out, "nemeses: {}", list_or_none(&m.nemeses))?;
    writeln!(out, "security: {}", super::security(m.secure))?;
    match &m.control {
        Some(control) => writeln!(out, "control: {control} (UNSAFE server control)")?,
        None => writeln!(out, "control: none")?,
    }
    let no_checkers = if s.checkers.is_empty() {
        ", no checker ran"
    } else {
        ""
    };
    writeln!(
        out,
        "verdict: {} ({}{no_checkers})",
        s.verdict(),
        anomalies(s.anomalies)
    )?;

    writeln!(out, "\noperations: {}", s.total_ops)?;
    let fs = ordered_fs(&s.ops);
    if !fs.is_empty() {
        let width = fs.iter().map(|f| f.len()).max().unwrap_or(0).max(2);
        write!(out, "  {:<width$}", "f")?;
        for outcome in OUTCOME_NAMES {
            write!(out, " {outcome:>8}")?;
        }
        writeln!(out, " {:>8}", "total")?;
        for f in fs {
            let counts = s.ops.get(f);
            write!(out, "  {f:<width$}")?;
            let mut total = 0;
            for outcome in OUTCOME_NAMES {
                let n = counts.and_then(|c| c.get(outcome)).copied().unwrap_or(0);
                total += n;
                write!(out, " {n:>8}")?;
            }
            writeln!(out, " {total:>8}")?;
        }
    }

    writeln!(out, "\nfaults: {}", s.faults.values().sum::<u64>())?;
    let width = s.faults.keys().map(String::len).max().unwrap_or(0);
    for (kind, n) in &s.faults {
        writeln!(out, "  {kind:<width$} {n:>6}")?;
    }
    writeln!(out, "\nwatch events: {}", s.watch_events)?;

    if !s.checkers.is_empty() {
        writeln!(out, "\ncheckers")?;
        let width = s
            .checkers
            .iter()
            .map(|c| c.checker.len())
            .max()
            .unwrap_or(0);
        for c in &s.checkers {
            writeln!(
                out,
                "  {:<width$} {:<8} {}",
                c.checker,
                c.verdict.to_string(),
                anomalies(c.anomalies.len() as u64)
            )?;
        }
    }

    if s.anomalies > 0 {
        writeln!(out, "\nanomalies")?;
        for c in &s.checkers {
            for a in &c.anomalies {
                writeln!(out, "  {}: {}", c.checker, a.kind)?;
                writeln!(out, "    {}", a.description)?;
                match a.window {
                    Some(window) => writeln!(out, "    window: {}", window_text(window))?,
                    None => writeln!(out, "    window: none")?,
                }
                if !a.evidence.is_empty() {
                    writeln!(out, "    evidence:")?;
                    for line in a.evidence.iter().take(MAX_EVIDENCE_LINES) {
                        writeln!(out, "      {line}")?;
                    }
                    let rest = a.evidence.len().saturating_sub(MAX_EVIDENCE_LINES);
                    if rest > 0 {
                        writeln!(out, "      ... and {rest} more lines in summary.json")?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// `1 anomaly`, `3 anomalies`.
fn anomalies(n: u64) -> String {
    if n == 1 {
        "1 anomaly".to_string()
    } else {
        format!("{n} anomalies")
    }
}
