//! The report's plots, all against run time with the faults shaded and the anomaly
//! windows outlined: the per-client timeline, the latency scatter, throughput by
//! outcome, and watch messages per second.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write};

use super::escape::Esc;
use super::summary::{op_name, outcome_name, Summary, OP_NAMES};
use super::svg::{context_legend, legend, AnomalyMark, FaultPalette, Frame, Linear, Log, Swatch};
use super::window_text;
use crate::history::{
    self, Event, FaultRecord, Nanos, Op, OpRecord, Outcome, WatchEvent, WatchRecord,
};

/// Marks drawn per plot at most. A 50k-op run would otherwise make a page of tens of
/// megabytes that browsers struggle to show.
pub(super) const MAX_MARKS: usize = 20_000;
/// Anomaly bands drawn per plot at most: past a few hundred they only hide the data.
pub(super) const MAX_ANOMALY_MARKS: usize = 500;
/// Timeline lanes at most; past this clients are grouped by node.
const MAX_LANES: usize = 60;
/// Rate plots use at most this many time buckets (one second each when they fit).
const MAX_BUCKETS: u64 = 300;
const NS_PER_S: u64 = 1_000_000_000;

/// Outcome colours (`ok`, `fail`, `info`). Red stays free for anomalies.
pub(super) const OUTCOME_COLOURS: [(&str, &str); 3] =
    [("ok", "#2f9e44"), ("fail", "#f08c00"), ("info", "#845ef7")];

/// A colour per `f`, in [`OP_NAMES`] order.
const F_COLOURS: [&str; OP_NAMES.len()] = [
    "#1c4f8c", "#37b24d", "#e8590c", "#7048e8", "#5c3d2e", "#d6336c", "#0b7285", "#868e96",
    "#f08c00", "#1098ad", "#ae3ec9", "#74b816", "#c92a2a",
];

/// The CSS rules the plots' marks use (by class, so each mark stays short).
pub(super) fn style(out: &mut String) -> fmt::Result {
    for (outcome, colour) in OUTCOME_COLOURS {
        writeln!(out, ".o-{outcome}{{fill:{colour}}}")?;
    }
    for (f, colour) in OP_NAMES.iter().zip(F_COLOURS) {
        writeln!(out, ".f-{f}{{fill:{colour};stroke:{colour}}}")?;
    }
    // Hollow marks (operations that did not end `ok`); `circle.h` outranks `.f-*`.
    writeln!(out, "circle.h{{fill:none;stroke-width:1}}")
}

fn f_colour(f: &str) -> &'static str {
    OP_NAMES
        .iter()
        .zip(F_COLOURS)
        .find(|(name, _)| **name == f)
        .map(|(_, colour)| colour)
        .unwrap_or("#555")
}

/// What the plots draw, gathered once from the history and the checkers.
pub(super) struct Scene<'a> {
    pub ops: Vec<&'a OpRecord>,
    /// The operations drawn as marks: all of them, or [`MAX_MARKS`] when there are
    /// more (see [`sample`]).
    pub sample: Vec<&'a OpRecord>,
    /// By start time.
    pub faults: Vec<&'a FaultRecord>,
    pub watches: Vec<&'a WatchRecord>,
    /// The anomaly windows drawn, at most [`MAX_ANOMALY_MARKS`].
    pub anomalies: Vec<AnomalyMark<'a>>,
    /// Anomalies with a window, drawn or not.
    pub anomaly_windows: usize,
    pub palette: FaultPalette,
    /// The run's time span: its duration, or later if anything ended later.
    pub t_max: Nanos,
}

impl<'a> Scene<'a> {
    pub(super) fn new(summary: &'a Summary, events: &'a [Event]) -> Self {
        let ops: Vec<&OpRecord> = history::ops(events).collect();
        let mut faults: Vec<&FaultRecord> = history::faults(events).collect();
        faults.sort_by_key(|f| (f.start, f.end));
        let watches: Vec<&WatchRecord> = history::watch_records(events).collect();
        let mut anomalies: Vec<AnomalyMark<'a>> = summary
            .checkers
            .iter()
            .flat_map(|c| {
                c.anomalies.iter().filter_map(move |a| {
                    a.window.map(|(start, end)| AnomalyMark {
                        checker: &c.checker,
                        kind: &a.kind,
                        start,
                        end,
                    })
                })
            })
            .collect();
        let anomaly_windows = anomalies.len();
        anomalies.truncate(MAX_ANOMALY_MARKS);

        let t_max = [
            summary.meta.duration_ns,
            ops.iter().map(|o| o.end.max(o.start)).max().unwrap_or(0),
            faults.iter().map(|f| f.end.max(f.start)).max().unwrap_or(0),
            watches.iter().map(|w| w.time).max().unwrap_or(0),
            anomalies
                .iter()
                .map(|a| a.end.max(a.start))
                .max()
                .unwrap_or(0),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
        .max(1);

        Self {
            sample: sample(&ops, MAX_MARKS),
            palette: FaultPalette::new(faults.iter().map(|f| f.fault.as_str())),
            ops,
            faults,
            watches,
            anomalies,
            anomaly_windows,
            t_max,
        }
    }

    fn context_legend(&self) -> Vec<(String, &'static str, Swatch)> {
        context_legend(&self.palette, !self.anomalies.is_empty())
    }
}

/// At most `cap` of `ops`, for drawing. Every operation that did not end `ok` is
/// kept (those are the interesting ones) unless they alone exceed `cap`; `ok`
/// operations fill the rest, picked evenly over the run. `ok` ones come first so the
/// others are drawn on top.
pub(super) fn sample<'a>(ops: &[&'a OpRecord], cap: usize) -> Vec<&'a OpRecord> {
    if ops.len() <= cap {
        return ops.to_vec();
    }
    let (ok, other): (Vec<&OpRecord>, Vec<&OpRecord>) =
        ops.iter().partition(|o| o.outcome == Outcome::Ok);
    if other.len() >= cap {
        return evenly(&other, cap);
    }
    let mut picked = evenly(&ok, cap - other.len());
    picked.extend(other);
    picked
}

/// `n` of `items`, evenly spaced, in order.
fn evenly<T: Copy>(items: &[T], n: usize) -> Vec<T> {
    if items.len() <= n {
        return items.to_vec();
    }
    (0..n)
        .filter_map(|j| items.get(j * items.len() / n).copied())
        .collect()
}

/// Height of one row of bars in the timeline, in px.
const ROW_H: f64 = 10.0;
/// Rows per lane when lanes are nodes: a node's clients are spread over them (by
/// process id) so concurrent operations do not all draw over each other.
const NODE_ROWS: u64 = 4;

/// The timeline's lanes: one per client process, or one per node when there are too
/// many processes (every `info` outcome retires a process, so long faulty runs have
/// hundreds).
struct Lanes {
    by_node: bool,
    /// Process id (or node) → lane.
    index: BTreeMap<u64, usize>,
    /// Label and tooltip per lane.
    labels: Vec<(String, String)>,
    /// The lane for everything past the cap, when there is one.
    other: Option<usize>,
}

impl Lanes {
    fn new(ops: &[&OpRecord]) -> Self {
        let processes: BTreeSet<u64> = ops.iter().map(|o| o.process).collect();
        if processes.len() <= MAX_LANES {
            return Self {
                by_node: false,
                labels: processes
                    .iter()
                    .map(|p| (format!("p{p}"), format!("client process {p}")))
                    .collect(),
                index: processes
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (p, i))
                    .collect(),
                other: None,
            };
        }
        let mut per_node: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        for op in ops {
            per_node
                .entry(u64::from(op.node))
                .or_default()
                .insert(op.process);
        }
        let mut lanes = Self {
            by_node: true,
            index: BTreeMap::new(),
            labels: Vec::new(),
            other: None,
        };
        let fits = per_node.len() <= MAX_LANES;
        let mut rest = (0, BTreeSet::new());
        for (i, (node, procs)) in per_node.into_iter().enumerate() {
            if fits || i < MAX_LANES - 1 {
                lanes.index.insert(node, i);
                lanes.labels.push((
                    format!("n{node}"),
                    format!("node {node}: {} client processes", procs.len()),
                ));
            } else {
                rest.0 += 1;
                rest.1.extend(procs);
            }
        }
        if rest.0 > 0 {
            lanes.other = Some(lanes.labels.len());
            lanes.labels.push((
                "other".to_string(),
                format!("{} more nodes: {} client processes", rest.0, rest.1.len()),
            ));
        }
        lanes
    }

    fn rows(&self) -> u64 {
        if self.by_node {
            NODE_ROWS
        } else {
            1
        }
    }

    fn lane_height(&self) -> f64 {
        self.rows() as f64 * ROW_H + 2.0
    }

    fn height(&self) -> f64 {
        self.labels.len().max(1) as f64 * self.lane_height()
    }

    fn top(&self, lane: usize) -> f64 {
        Frame::top() + lane as f64 * self.lane_height()
    }

    /// The y of `op`'s bar.
    fn y(&self, op: &OpRecord) -> f64 {
        let key = if self.by_node {
            u64::from(op.node)
        } else {
            op.process
        };
        let lane = self.index.get(&key).copied().or(self.other).unwrap_or(0);
        let row = op.process % self.rows();
        self.top(lane) + 1.0 + row as f64 * ROW_H
    }

    /// Alternate lane backgrounds and the labels on the left.
    fn draw(&self, out: &mut String) -> fmt::Result {
        let h = self.lane_height();
        for (lane, (label, tooltip)) in self.labels.iter().enumerate() {
            let top = self.top(lane);
            if lane % 2 == 1 {
                writeln!(
                    out,
                    r##"<rect x="{}" y="{top:.1}" width="{:.1}" height="{h:.1}" fill="#f3f3f3"/>"##,
                    super::svg::LEFT,
                    super::svg::WIDTH - super::svg::LEFT - 16.0
                )?;
            }
            writeln!(
                out,
                r##"<text class="lane" x="{:.1}" y="{:.1}" text-anchor="end">{}<title>{}</title></text>"##,
                super::svg::LEFT - 4.0,
                top + h / 2.0 + 3.5,
                Esc(label),
                Esc(tooltip)
            )?;
        }
        Ok(())
    }
}

/// (a) One bar per operation from its start to its end, coloured by outcome, in its
/// client's lane. Returns whether lanes are nodes rather than clients.
pub(super) fn timeline(out: &mut String, scene: &Scene<'_>) -> Result<bool, fmt::Error> {
    let lanes = Lanes::new(&scene.ops);
    let frame = Frame::new(lanes.height(), scene.t_max);
    frame.open(
        out,
        "timeline: every operation per client, coloured by outcome",
    )?;
    lanes.draw(out)?;
    frame.time_axis(out)?;
    frame.shade_faults(out, &scene.faults, &scene.palette)?;
    for op in &scene.sample {
        let (x, w) = frame.span(op.start, op.end, 1.0);
        write!(
            out,
            r#"<rect class="o-{}" x="{x:.1}" y="{:.1}" width="{w:.1}" height="{}"><title>"#,
            outcome_name(op.outcome),
            lanes.y(op),
            ROW_H - 2.0
        )?;
        op_title(out, op)?;
        out.push_str("</title></rect>\n");
    }
    frame.mark_anomalies(out, &scene.anomalies)?;
    Frame::close(out)?;
    let mut items: Vec<(String, &str, Swatch)> = OUTCOME_COLOURS
        .iter()
        .map(|(outcome, colour)| (outcome.to_string(), *colour, Swatch::Solid))
        .collect();
    items.extend(scene.context_legend());
    legend(out, &items)?;
    Ok(lanes.by_node)
}

/// (b) Each operation's latency (log scale) at its start time, coloured by `f`;
/// operations that did not end `ok` are hollow.
pub(super) fn latency(out: &mut String, scene: &Scene<'_>) -> fmt::Result {
    let (min, max) = scene
        .ops
        .iter()
        .map(|op| latency_ms(op))
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), l| {
            (lo.min(l), hi.max(l))
        });
    // 10 µs at the bottom at most: a loopback round trip is slower than that.
    let axis = Log::covering(min, max, 0.01);
    let frame = Frame::new(260.0, scene.t_max);
    frame.open(out, "latency of every operation over time, log scale")?;
    frame.time_axis(out)?;
    frame.y_axis(out, &axis.ticks(), "latency (ms)")?;
    frame.shade_faults(out, &scene.faults, &scene.palette)?;
    for op in &scene.sample {
        let hollow = if op.outcome == Outcome::Ok { "" } else { " h" };
        writeln!(
            out,
            r#"<circle class="f-{}{hollow}" cx="{:.1}" cy="{:.1}" r="1.8"/>"#,
            op_name(&op.op),
            frame.x(op.start),
            frame.y(axis.fraction(latency_ms(op)))
        )?;
    }
    frame.mark_anomalies(out, &scene.anomalies)?;
    Frame::close(out)?;
    let present: BTreeSet<&str> = scene.sample.iter().map(|op| op_name(&op.op)).collect();
    let mut items: Vec<(String, &str, Swatch)> = OP_NAMES
        .iter()
        .filter(|f| present.contains(*f))
        .map(|f| (f.to_string(), f_colour(f), Swatch::Solid))
        .collect();
    if scene.sample.iter().any(|op| op.outcome != Outcome::Ok) {
        items.push(("fail or info (hollow)".to_string(), "#555", Swatch::Ring));
    }
    items.extend(scene.context_legend());
    legend(out, &items)
}

/// (c) Operations completed per second, one line per outcome. Returns the bucket
/// width in seconds.
pub(super) fn throughput(out: &mut String, scene: &Scene<'_>) -> Result<u64, fmt::Error> {
    let buckets = Buckets::new(scene.t_max);
    let mut counts = [
        vec![0u64; buckets.n],
        vec![0u64; buckets.n],
        vec![0u64; buckets.n],
    ];
    for op in &scene.ops {
        let series = match op.outcome {
            Outcome::Ok => 0,
            Outcome::Fail => 1,
            Outcome::Info => 2,
        };
        counts[series][buckets.index(op.end)] += 1;
    }
    let series: Vec<(&str, &str, Vec<u64>)> = OUTCOME_COLOURS
        .iter()
        .zip(counts)
        .map(|((label, colour), counts)| (*label, *colour, counts))
        .collect();
    rate_plot(
        out,
        scene,
        &buckets,
        &series,
        "operations completed per second, by outcome",
        "ops/s",
    )?;
    Ok(buckets.width / NS_PER_S)
}

/// (d) Watch records received per second: stream messages, connects, disconnects.
pub(super) fn watch_rate(out: &mut String, scene: &Scene<'_>) -> Result<u64, fmt::Error> {
    let buckets = Buckets::new(scene.t_max);
    let mut counts = [
        vec![0u64; buckets.n],
        vec![0u64; buckets.n],
        vec![0u64; buckets.n],
    ];
    for w in &scene.watches {
        let series = match w.event {
            WatchEvent::Connected { .. } => 1,
            WatchEvent::Disconnected { .. } => 2,
            _ => 0,
        };
        counts[series][buckets.index(w.time)] += 1;
    }
    let series: Vec<(&str, &str, Vec<u64>)> = [
        ("messages", "#1c4f8c"),
        ("connects", "#37b24d"),
        ("disconnects", "#f08c00"),
    ]
    .into_iter()
    .zip(counts)
    .map(|((label, colour), counts)| (label, colour, counts))
    .collect();
    rate_plot(
        out,
        scene,
        &buckets,
        &series,
        "watch events received per second",
        "events/s",
    )?;
    Ok(buckets.width / NS_PER_S)
}

/// Whole-second time buckets over the run, at most [`MAX_BUCKETS`] of them.
struct Buckets {
    width: Nanos,
    n: usize,
}

impl Buckets {
    fn new(t_max: Nanos) -> Self {
        let secs = t_max.div_ceil(NS_PER_S).max(1);
        let width = secs.div_ceil(MAX_BUCKETS).max(1) * NS_PER_S;
        Self {
            width,
            n: usize::try_from(t_max.div_ceil(width).max(1)).unwrap_or(1),
        }
    }

    fn index(&self, t: Nanos) -> usize {
        usize::try_from(t / self.width)
            .unwrap_or(usize::MAX)
            .min(self.n - 1)
    }

    fn start(&self, i: usize) -> Nanos {
        i as u64 * self.width
    }
}

/// A step line per series of per-bucket counts, as rates per second.
fn rate_plot(
    out: &mut String,
    scene: &Scene<'_>,
    buckets: &Buckets,
    series: &[(&str, &str, Vec<u64>)],
    label: &str,
    unit: &str,
) -> fmt::Result {
    let width_s = buckets.width as f64 / NS_PER_S as f64;
    let max = series
        .iter()
        .flat_map(|(_, _, counts)| counts.iter().copied())
        .max()
        .unwrap_or(0) as f64
        / width_s;
    let axis = Linear::covering(max);
    let frame = Frame::new(200.0, scene.t_max);
    frame.open(out, label)?;
    frame.time_axis(out)?;
    frame.y_axis(out, &axis.ticks(), unit)?;
    frame.shade_faults(out, &scene.faults, &scene.palette)?;
    for (name, colour, counts) in series {
        if counts.iter().all(|n| *n == 0) {
            continue;
        }
        write!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" stroke-linejoin="round" points=""#
        )?;
        for (i, n) in counts.iter().enumerate() {
            let y = frame.y(axis.fraction(*n as f64 / width_s));
            let x0 = frame.x(buckets.start(i));
            let x1 = frame.x(buckets.start(i) + buckets.width);
            write!(out, "{x0:.1},{y:.1} {x1:.1},{y:.1} ")?;
        }
        writeln!(out, r#""><title>{}</title></polyline>"#, Esc(name))?;
    }
    frame.mark_anomalies(out, &scene.anomalies)?;
    Frame::close(out)?;
    let mut items: Vec<(String, &str, Swatch)> = series
        .iter()
        .map(|(name, colour, _)| (name.to_string(), *colour, Swatch::Line))
        .collect();
    items.extend(scene.context_legend());
    legend(out, &items)
}

fn latency_ms(op: &OpRecord) -> f64 {
    op.end.saturating_sub(op.start) as f64 / 1e6
}

/// Longest error text in a tooltip: the full one is in the history.
const MAX_TOOLTIP_ERROR: usize = 160;

/// The timeline tooltip: who did what, how it ended, when.
fn op_title(out: &mut String, op: &OpRecord) -> fmt::Result {
    write!(
        out,
        "p{} → n{} · {} · {} · {} ({:.1} ms)",
        op.process,
        op.node,
        Esc(&describe(&op.op)),
        outcome_name(op.outcome),
        window_text((op.start, op.end)),
        latency_ms(op)
    )?;
    if let Some(error) = &op.error {
        let short: String = error.chars().take(MAX_TOOLTIP_ERROR).collect();
        let more = if short.len() < error.len() { "…" } else { "" };
        write!(out, " · {}{more}", Esc(&short))?;
    }
    Ok(())
}

/// An operation in a few words, with its answer when it has one.
fn describe(op: &Op) -> String {
    let (text, index) = match op {
        Op::Read {
            key, value, index, ..
        } => match value {
            Some(v) => (format!("read {key} → {v}"), index),
            None => (format!("read {key}"), index),
        },
        Op::Write { key, value, index } => (format!("write {key} := {value}"), index),
        Op::Cas {
            key,
            from,
            to,
            index,
            ..
        } => (format!("cas {key} {from}→{to}"), index),
        Op::Add { id, index } => (format!("add {id}"), index),
        Op::Remove { id, removed, index } => {
            let absent = if *removed == Some(false) {
                " (absent)"
            } else {
                ""
            };
            (format!("remove {id}{absent}"), index)
        }
        Op::ListAll {
            service,
            instances,
            index,
        } => match instances {
            Some(i) => (format!("list_all {service} → {} instances", i.len()), index),
            None => (format!("list_all {service}"), index),
        },
        Op::StaleRead {
            service,
            max_stale_ms,
            ids,
            index,
            ..
        } => match ids {
            Some(ids) => (
                format!(
                    "stale_read {service} ≤{max_stale_ms} ms → {} ids",
                    ids.len()
                ),
                index,
            ),
            None => (format!("stale_read {service} ≤{max_stale_ms} ms"), index),
        },
        Op::DnsSoa { serial, rcode } => (
            format!("dns SOA → {}", rcode.as_deref().unwrap_or("no answer")),
            serial,
        ),
        Op::LeaseCreate {
            lease_id, index, ..
        } => match lease_id {
            Some(id) => (format!("create lease → {id}"), index),
            None => ("create lease".to_string(), index),
        },
        Op::LeaseAttach {
            lease_id,
            id,
            index,
        } => (format!("register {id} under lease {lease_id}"), index),
        Op::KeepAlive {
            lease_id,
            granted_ms,
        } => match granted_ms {
            Some(0) => (format!("keep-alive {lease_id} → gone"), &None),
            Some(ttl) => (format!("keep-alive {lease_id} → {ttl} ms"), &None),
            None => (format!("keep-alive {lease_id}"), &None),
        },
        Op::LeaseScan { ids, index } => match ids {
            Some(ids) => (format!("list leased → {} instances", ids.len()), index),
            None => ("list leased".to_string(), index),
        },
        Op::LeaseRevoke {
            lease_id,
            revoked,
            index,
        } => match revoked {
            Some(false) => (format!("revoke {lease_id} (absent)"), index),
            _ => (format!("revoke {lease_id}"), index),
        },
    };
    match index {
        Some(i) => format!("{text} @{i}"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(process: u64, node: u32, outcome: Outcome, start: Nanos) -> OpRecord {
        OpRecord {
            process,
            node,
            op: Op::Add {
                id: format!("a{start}"),
                index: None,
            },
            start,
            end: start + 1_000_000,
            outcome,
            error: None,
        }
    }

    #[test]
    fn sampling_keeps_every_failure_and_spreads_the_rest() {
        let ops: Vec<OpRecord> = (0..1000)
            .map(|i| {
                let outcome = if i % 100 == 0 {
                    Outcome::Info
                } else {
                    Outcome::Ok
                };
                op(i, 1, outcome, i * 1_000_000)
            })
            .collect();
        let refs: Vec<&OpRecord> = ops.iter().collect();
        let picked = sample(&refs, 110);
        assert_eq!(picked.len(), 110);
        assert_eq!(
            picked.iter().filter(|o| o.outcome == Outcome::Info).count(),
            10
        );
        // The ok ones span the run, not just its beginning.
        assert!(picked.iter().any(|o| o.start > 900_000_000));
        assert_eq!(sample(&refs, 5).len(), 5);
        assert_eq!(sample(&refs, 5000).len(), 1000);
    }

    #[test]
    fn too_many_clients_are_grouped_by_node() {
        let ops: Vec<OpRecord> = (0..200)
            .map(|i| op(i, (i % 3 + 1) as u32, Outcome::Ok, i))
            .collect();
        let refs: Vec<&OpRecord> = ops.iter().collect();
        let lanes = Lanes::new(&refs);
        assert!(lanes.by_node);
        assert_eq!(lanes.labels.len(), 3);
        let few = Lanes::new(&refs[..10]);
        assert!(!few.by_node);
        assert_eq!(few.labels.len(), 10);
    }

    #[test]
    fn every_f_has_a_colour() {
        let mut css = String::new();
        style(&mut css).unwrap();
        for f in OP_NAMES {
            assert!(css.contains(&format!(".f-{f}{{")), "{f}");
            assert_ne!(f_colour(f), "#555");
        }
    }

    #[test]
    fn buckets_cover_the_run() {
        let b = Buckets::new(2_500_000_000);
        assert_eq!((b.width, b.n), (NS_PER_S, 3));
        assert_eq!(b.index(2_500_000_000), 2);
        let long = Buckets::new(3_600 * NS_PER_S);
        assert_eq!(long.width, 12 * NS_PER_S);
        assert!(long.n as u64 <= MAX_BUCKETS);
    }
}
