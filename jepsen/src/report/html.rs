//! `report.html`: one self-contained page per run (inline CSS and SVG, no scripts,
//! nothing fetched) that shows what the clients did against the faults, and what the
//! checkers found.

use std::fmt::{self, Write};

use super::escape::Esc;
use super::plots::{self, Scene, MAX_ANOMALY_MARKS, MAX_MARKS};
use super::summary::{ordered_fs, Summary, OUTCOME_NAMES};
use super::svg::node_list;
use super::{list_or_none, secs, window_text};
use crate::checks::{Anomaly, CheckerReport, Verdict};
use crate::history::Event;

/// Anomalies shown per checker; the rest are in `summary.json`.
const MAX_ANOMALIES_SHOWN: usize = 200;
/// Evidence lines shown per anomaly; the rest are in `summary.json`.
const MAX_EVIDENCE_SHOWN: usize = 50;

const CSS: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fff}
main{padding:16px 24px 48px;max-width:1140px}
h1{font-size:22px;margin:4px 0 10px}
h2{font-size:18px;margin:30px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:16px;margin:20px 0 6px}
table{border-collapse:collapse;margin:6px 0}
th,td{padding:2px 12px 2px 0;text-align:left;vertical-align:top;border-bottom:1px solid #eee}
th{font-weight:600}
.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-weight:600;font-size:13px;color:#fff;vertical-align:middle}
.v-valid{background:#2b8a3e}.v-invalid{background:#d62728}.v-unknown{background:#b26a00}
.unsafe{color:#d62728;font-weight:600}
.note{color:#555;font-style:italic;margin:4px 0}
.legend{display:flex;flex-wrap:wrap;gap:2px 16px;font-size:12px;margin:4px 0 0 84px}
.sw{display:inline-block;width:14px;height:10px;margin-right:5px;vertical-align:middle}
svg{display:block;font-size:11px}
svg text{fill:#444}
svg text.lane{font-size:10px}
svg .grid{stroke:#e4e4e4;stroke-width:1}
.anomaly{border-left:3px solid #d62728;padding:2px 0 2px 10px;margin:12px 0}
.anomaly p{margin:2px 0}
pre{background:#f6f6f6;padding:6px 8px;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0}
"#;

/// The text of `report.html`.
pub fn render_html(summary: &Summary, events: &[Event]) -> String {
    let mut out = String::with_capacity(1 << 20);
    // Writing into a String cannot fail; fmt::Result is only the trait's signature.
    let _ = page(&mut out, summary, events);
    out
}

fn page(out: &mut String, s: &Summary, events: &[Event]) -> fmt::Result {
    let scene = Scene::new(s, events);
    let verdict = s.verdict();
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"
    )?;
    writeln!(
        out,
        "<title>Waymark Jepsen run {} (seed {}): {verdict}</title>",
        s.meta.run, s.meta.seed
    )?;
    out.push_str("<style>");
    out.push_str(CSS);
    plots::style(out)?;
    out.push_str("</style>\n</head>\n<body>\n<main>\n");

    header(out, s)?;
    operations(out, s)?;
    plot_sections(out, &scene)?;
    faults(out, &scene)?;
    checkers(out, s)?;
    out.push_str("</main>\n</body>\n</html>\n");
    Ok(())
}

fn badge(out: &mut String, verdict: Verdict) -> fmt::Result {
    let class = match verdict {
        Verdict::Valid => "v-valid",
        Verdict::Invalid => "v-invalid",
        Verdict::Unknown => "v-unknown",
    };
    write!(out, r#"<span class="badge {class}">{verdict}</span>"#)
}

fn header(out: &mut String, s: &Summary) -> fmt::Result {
    let m = &s.meta;
    write!(out, "<header>\n<h1>Waymark Jepsen run {} ", m.run)?;
    badge(out, s.verdict())?;
    writeln!(out, "</h1>\n<table>")?;
    let rows = [
        ("seed", m.seed.to_string()),
        ("started", m.started_at.clone()),
        (
            "duration",
            format!("{:.1} s (limit {} s)", secs(m.duration_ns), m.time_limit_s),
        ),
        ("nodes", m.nodes.to_string()),
        ("workloads", list_or_none(&m.workloads)),
        ("nemeses", list_or_none(&m.nemeses)),
        ("security", super::security(m.secure).to_string()),
    ];
    for (name, value) in rows {
        writeln!(out, "<tr><th>{name}</th><td>{}</td></tr>", Esc(&value))?;
    }
    match &m.control {
        Some(control) => writeln!(
            out,
            r#"<tr><th>control</th><td class="unsafe">{} (unsafe server control: anomalies are expected)</td></tr>"#,
            Esc(control)
        )?,
        None => writeln!(out, "<tr><th>control</th><td>none</td></tr>")?,
    }
    write!(out, "<tr><th>checkers</th><td>")?;
    if s.checkers.is_empty() {
        out.push_str("none ran");
    }
    for c in &s.checkers {
        write!(out, "{} ", Esc(&c.checker))?;
        badge(out, c.verdict)?;
        write!(out, " &nbsp; ")?;
    }
    writeln!(out, "</td></tr>")?;
    writeln!(out, "<tr><th>anomalies</th><td>{}</td></tr>", s.anomalies)?;
    writeln!(out, "</table>\n</header>")
}

/// Counts of operations by `f` and outcome, of faults by kind, of watch events.
fn operations(out: &mut String, s: &Summary) -> fmt::Result {
    writeln!(out, "<section id=\"operations\">\n<h2>Operations</h2>")?;
    out.push_str("<table>\n<tr><th>f</th>");
    for outcome in OUTCOME_NAMES {
        write!(out, r#"<th class="n">{outcome}</th>"#)?;
    }
    out.push_str("<th class=\"n\">total</th></tr>\n");
    let mut totals = [0u64; 3];
    for f in ordered_fs(&s.ops) {
        write!(out, "<tr><td>{}</td>", Esc(f))?;
        let counts = s.ops.get(f);
        let mut total = 0;
        for (i, outcome) in OUTCOME_NAMES.iter().enumerate() {
            let n = counts.and_then(|c| c.get(*outcome)).copied().unwrap_or(0);
            total += n;
            totals[i] += n;
            write!(out, r#"<td class="n">{n}</td>"#)?;
        }
        writeln!(out, r#"<td class="n">{total}</td></tr>"#)?;
    }
    out.push_str("<tr><th>all</th>");
    for n in totals {
        write!(out, r#"<th class="n">{n}</th>"#)?;
    }
    writeln!(out, "<th class=\"n\">{}</th></tr>\n</table>", s.total_ops)?;

    out.push_str("<p>Faults: ");
    if s.faults.is_empty() {
        out.push_str("none");
    }
    let faults: Vec<String> = s.faults.iter().map(|(k, n)| format!("{k} × {n}")).collect();
    write!(out, "{}", Esc(&faults.join(", ")))?;
    writeln!(out, ". Watch events: {}.</p>\n</section>", s.watch_events)
}

fn plot_sections(out: &mut String, scene: &Scene<'_>) -> fmt::Result {
    let sampled = scene.sample.len() < scene.ops.len();
    let sample_note = format!(
        "Showing {} of {} operations (at most {MAX_MARKS}): every operation that did not \
         end ok is kept, ok ones are picked evenly over the run. summary.json and the \
         history have them all.",
        scene.sample.len(),
        scene.ops.len()
    );

    writeln!(out, "<section id=\"timeline\">\n<h2>Timeline</h2>")?;
    if scene.ops.is_empty() {
        writeln!(out, "<p class=\"note\">No operations were recorded.</p>")?;
    } else {
        let mut svg = String::new();
        let by_node = plots::timeline(&mut svg, scene)?;
        let lanes = if by_node {
            "one lane per node (too many client processes for one lane each; a \
             node's clients are spread over four rows by process id)"
        } else {
            "one lane per client process"
        };
        writeln!(
            out,
            "<p>Every operation from its start to its end, {lanes}. Hover a bar for \
             the operation, a shaded band for the fault.</p>"
        )?;
        if sampled {
            writeln!(out, "<p class=\"note\">{}</p>", Esc(&sample_note))?;
        }
        anomaly_note(out, scene)?;
        out.push_str(&svg);
    }
    writeln!(out, "</section>")?;

    writeln!(out, "<section id=\"latency\">\n<h2>Latency</h2>")?;
    if !scene.ops.is_empty() {
        writeln!(
            out,
            "<p>Each operation's latency at its start time, log scale.</p>"
        )?;
        if sampled {
            writeln!(out, "<p class=\"note\">{}</p>", Esc(&sample_note))?;
        }
        plots::latency(out, scene)?;
    } else {
        writeln!(out, "<p class=\"note\">No operations were recorded.</p>")?;
    }
    writeln!(out, "</section>")?;

    writeln!(out, "<section id=\"throughput\">\n<h2>Throughput</h2>")?;
    if !scene.ops.is_empty() {
        let mut svg = String::new();
        let bucket = plots::throughput(&mut svg, scene)?;
        writeln!(
            out,
            "<p>Operations completed per second, by outcome{}.</p>",
            bucket_note(bucket)
        )?;
        out.push_str(&svg);
    } else {
        writeln!(out, "<p class=\"note\">No operations were recorded.</p>")?;
    }
    writeln!(out, "</section>")?;

    writeln!(out, "<section id=\"watches\">\n<h2>Watches</h2>")?;
    if !scene.watches.is_empty() {
        let mut svg = String::new();
        let bucket = plots::watch_rate(&mut svg, scene)?;
        writeln!(
            out,
            "<p>Watch events received per second over all watchers: stream \
             messages, connects and disconnects{}.</p>",
            bucket_note(bucket)
        )?;
        out.push_str(&svg);
    } else {
        writeln!(out, "<p class=\"note\">No watch events were recorded.</p>")?;
    }
    writeln!(out, "</section>")
}

fn bucket_note(bucket_s: u64) -> String {
    if bucket_s > 1 {
        format!(" (averaged over {bucket_s} s buckets)")
    } else {
        String::new()
    }
}

fn anomaly_note(out: &mut String, scene: &Scene<'_>) -> fmt::Result {
    if scene.anomaly_windows > scene.anomalies.len() {
        writeln!(
            out,
            "<p class=\"note\">Marking the first {MAX_ANOMALY_MARKS} of {} anomaly windows.</p>",
            scene.anomaly_windows
        )?;
    }
    Ok(())
}

/// (e) Every fault, in start order.
fn faults(out: &mut String, scene: &Scene<'_>) -> fmt::Result {
    writeln!(out, "<section id=\"faults\">\n<h2>Faults</h2>")?;
    if scene.faults.is_empty() {
        return writeln!(
            out,
            "<p class=\"note\">No faults were injected.</p>\n</section>"
        );
    }
    writeln!(
        out,
        "<table>\n<tr><th>kind</th><th>detail</th><th>nodes</th><th class=\"n\">start (s)</th><th class=\"n\">end (s)</th><th class=\"n\">length (s)</th></tr>"
    )?;
    for f in &scene.faults {
        writeln!(
            out,
            r#"<tr><td><span class="sw" style="background:{};opacity:0.45"></span>{}</td><td>{}</td><td>{}</td><td class="n">{:.3}</td><td class="n">{:.3}</td><td class="n">{:.3}</td></tr>"#,
            scene.palette.colour(&f.fault),
            Esc(&f.fault),
            Esc(&f.detail),
            Esc(&node_list(&f.nodes)),
            secs(f.start),
            secs(f.end),
            secs(f.end.saturating_sub(f.start))
        )?;
    }
    writeln!(out, "</table>\n</section>")
}

/// (f) Each checker's verdict, stats and anomalies with their evidence.
fn checkers(out: &mut String, s: &Summary) -> fmt::Result {
    writeln!(out, "<section id=\"checkers\">\n<h2>Checkers</h2>")?;
    if s.checkers.is_empty() {
        writeln!(out, "<p class=\"note\">No checker ran.</p>")?;
    }
    for c in &s.checkers {
        checker(out, c)?;
    }
    writeln!(out, "</section>")
}

fn checker(out: &mut String, c: &CheckerReport) -> fmt::Result {
    write!(out, "<h3 id=\"checker-{0}\">{0} ", Esc(&c.checker))?;
    badge(out, c.verdict)?;
    writeln!(out, "</h3>")?;
    if !c.stats.is_empty() {
        out.push_str("<table>\n");
        for (name, value) in &c.stats {
            writeln!(
                out,
                r#"<tr><td>{}</td><td class="n">{value}</td></tr>"#,
                Esc(name)
            )?;
        }
        out.push_str("</table>\n");
    }
    match c.anomalies.len() {
        0 => writeln!(out, "<p>No anomalies.</p>")?,
        1 => writeln!(out, "<p>1 anomaly:</p>")?,
        n => writeln!(out, "<p>{n} anomalies:</p>")?,
    }
    for a in c.anomalies.iter().take(MAX_ANOMALIES_SHOWN) {
        anomaly(out, a)?;
    }
    if c.anomalies.len() > MAX_ANOMALIES_SHOWN {
        writeln!(
            out,
            "<p class=\"note\">{} more anomalies are in summary.json.</p>",
            c.anomalies.len() - MAX_ANOMALIES_SHOWN
        )?;
    }
    Ok(())
}

fn anomaly(out: &mut String, a: &Anomaly) -> fmt::Result {
    writeln!(
        out,
        "<div class=\"anomaly\">\n<p><strong>{}</strong>: {}</p>",
        Esc(&a.kind),
        Esc(&a.description)
    )?;
    match a.window {
        Some(window) => writeln!(out, "<p>window: {}</p>", window_text(window))?,
        None => writeln!(out, "<p>window: none</p>")?,
    }
    if !a.evidence.is_empty() {
        out.push_str("<pre>");
        for line in a.evidence.iter().take(MAX_EVIDENCE_SHOWN) {
            writeln!(out, "{}", Esc(line))?;
        }
        if a.evidence.len() > MAX_EVIDENCE_SHOWN {
            writeln!(
                out,
                "… {} more lines in summary.json",
                a.evidence.len() - MAX_EVIDENCE_SHOWN
            )?;
        }
        out.push_str("</pre>\n");
    }
    writeln!(out, "</div>")
}
