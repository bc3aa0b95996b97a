//! SVG primitives shared by the report's plots: a frame whose width is the run's time,
//! its axes, the fault shading and anomaly bands every plot carries, and the legend
//! under a plot.
//!
//! Coordinates are written with one decimal: finer is invisible, and the page holds
//! tens of thousands of them.

use std::collections::BTreeMap;
use std::fmt::{self, Write};

use super::escape::Esc;
use super::{secs, window_text};
use crate::history::{FaultRecord, Nanos};

/// Width of every plot, in px.
pub(super) const WIDTH: f64 = 1100.0;
/// Left margin: room for lane labels and y tick labels.
pub(super) const LEFT: f64 = 84.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 36.0;

/// Anomaly bands are red, a colour no fault kind and no series uses.
pub(super) const ANOMALY_COLOUR: &str = "#d62728";
/// Opacity of the fault shading: enough to see, little enough that overlapping
/// faults and the data on top stay readable.
const FAULT_OPACITY: f64 = 0.18;

/// A plot's drawing area, `plot_height` px tall, spanning run time `0..t_max`.
pub(super) struct Frame {
    plot_height: f64,
    t_max: Nanos,
}

impl Frame {
    pub(super) fn new(plot_height: f64, t_max: Nanos) -> Self {
        Self {
            plot_height,
            // At least a second: a zero span would divide by zero in `x`, and only
            // tests run for less (their axis would read in nanoseconds).
            t_max: t_max.max(1_000_000_000),
        }
    }

    fn plot_width() -> f64 {
        WIDTH - LEFT - RIGHT
    }

    fn height(&self) -> f64 {
        TOP + self.plot_height + BOTTOM
    }

    pub(super) fn top() -> f64 {
        TOP
    }

    fn bottom(&self) -> f64 {
        TOP + self.plot_height
    }

    /// The x of run time `t`.
    pub(super) fn x(&self, t: Nanos) -> f64 {
        LEFT + t.min(self.t_max) as f64 / self.t_max as f64 * Self::plot_width()
    }

    /// The y of a fraction of the plot height, 0 at the bottom and 1 at the top.
    pub(super) fn y(&self, fraction: f64) -> f64 {
        self.bottom() - fraction.clamp(0.0, 1.0) * self.plot_height
    }

    pub(super) fn open(&self, out: &mut String, label: &str) -> fmt::Result {
        let h = self.height();
        write!(
            out,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{h:.0}" viewBox="0 0 {WIDTH} {h:.0}" role="img" aria-label="{}">"##,
            Esc(label)
        )?;
        writeln!(
            out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="#fff" stroke="#bbb"/>"##,
            Self::plot_width(),
            self.plot_height
        )
    }

    pub(super) fn close(out: &mut String) -> fmt::Result {
        writeln!(out, "</svg>")
    }

    /// Vertical grid lines and labels in seconds along the bottom. Drawn before the
    /// data so the grid stays behind it.
    pub(super) fn time_axis(&self, out: &mut String) -> fmt::Result {
        let span = secs(self.t_max);
        let step = nice_step(span, 10);
        let decimals = decimals(step);
        let bottom = self.bottom();
        let mut k = 0u32;
        loop {
            let t = f64::from(k) * step;
            if t > span * (1.0 + 1e-9) {
                break;
            }
            let x = LEFT + t / span * Self::plot_width();
            writeln!(
                out,
                r##"<line class="grid" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom:.1}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{t:.decimals$}</text>"##,
                bottom + 14.0
            )?;
            k += 1;
        }
        writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">time since start (s)</text>"##,
            LEFT + Self::plot_width() / 2.0,
            bottom + 30.0
        )
    }

    /// Horizontal grid lines with labels at the given fractions of the height, and
    /// the axis title written up the left edge.
    pub(super) fn y_axis(
        &self,
        out: &mut String,
        ticks: &[(f64, String)],
        title: &str,
    ) -> fmt::Result {
        for (fraction, label) in ticks {
            let y = self.y(*fraction);
            writeln!(
                out,
                r##"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + Self::plot_width(),
                LEFT - 4.0,
                y + 4.0,
                Esc(label)
            )?;
        }
        let mid = TOP + self.plot_height / 2.0;
        writeln!(
            out,
            r##"<text transform="translate(14 {mid:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
            Esc(title)
        )
    }

    /// Shades each fault's window, full height, in its kind's colour; the tooltip
    /// names the fault.
    pub(super) fn shade_faults(
        &self,
        out: &mut String,
        faults: &[&FaultRecord],
        palette: &FaultPalette,
    ) -> fmt::Result {
        for f in faults {
            let (x, w) = self.span(f.start, f.end, 1.0);
            writeln!(
                out,
                r##"<rect class="fault" x="{x:.1}" y="{TOP}" width="{w:.1}" height="{:.1}" fill="{}" fill-opacity="{FAULT_OPACITY}"><title>{} on {}: {} ({})</title></rect>"##,
                self.plot_height,
                palette.colour(&f.fault),
                Esc(&f.fault),
                Esc(&node_list(&f.nodes)),
                Esc(&f.detail),
                window_text((f.start, f.end))
            )?;
        }
        Ok(())
    }

    /// Outlines each anomaly's window in red, drawn over the data so it is never
    /// hidden; the tooltip names the checker and the anomaly.
    pub(super) fn mark_anomalies(
        &self,
        out: &mut String,
        marks: &[AnomalyMark<'_>],
    ) -> fmt::Result {
        for m in marks {
            let (x, w) = self.span(m.start, m.end, 2.0);
            writeln!(
                out,
                r##"<rect class="anomaly-band" x="{x:.1}" y="{TOP}" width="{w:.1}" height="{:.1}" fill="{ANOMALY_COLOUR}" fill-opacity="0.08" stroke="{ANOMALY_COLOUR}" stroke-width="1.5"><title>{}: {} ({})</title></rect>"##,
                self.plot_height,
                Esc(m.checker),
                Esc(m.kind),
                window_text((m.start, m.end))
            )?;
        }
        Ok(())
    }

    /// The x and width of the interval `start..end`, at least `min_width` px wide so
    /// that an instant still shows.
    pub(super) fn span(&self, start: Nanos, end: Nanos, min_width: f64) -> (f64, f64) {
        let (a, b) = (start.min(end), start.max(end));
        let x = self.x(a);
        (x, (self.x(b) - x).max(min_width))
    }
}

/// An anomaly's window, to be marked on every plot.
pub(super) struct AnomalyMark<'a> {
    pub checker: &'a str,
    pub kind: &'a str,
    pub start: Nanos,
    pub end: Nanos,
}

/// A colour per fault kind: the usual kinds always get the same one, so pages of
/// different runs compare at a glance; other kinds take spare colours in name order.
pub(super) struct FaultPalette {
    colours: BTreeMap<String, &'static str>,
}

const KNOWN_FAULT_COLOURS: [(&str, &str); 5] = [
    ("kill", "#1f77b4"),
    ("restart", "#9467bd"),
    ("pause", "#e6a700"),
    ("partition", "#17becf"),
    ("loss", "#8c564b"),
];
const SPARE_FAULT_COLOURS: [&str; 4] = ["#bcbd22", "#e377c2", "#7f7f7f", "#2ca02c"];

impl FaultPalette {
    pub(super) fn new<'a>(kinds: impl IntoIterator<Item = &'a str>) -> Self {
        let mut colours = BTreeMap::new();
        let mut spare = SPARE_FAULT_COLOURS.iter().cycle();
        let kinds: std::collections::BTreeSet<&str> = kinds.into_iter().collect();
        for kind in kinds {
            let known = KNOWN_FAULT_COLOURS
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, c)| *c);
            let colour = known.or_else(|| spare.next().copied()).unwrap_or("#7f7f7f");
            colours.insert(kind.to_string(), colour);
        }
        Self { colours }
    }

    pub(super) fn colour(&self, kind: &str) -> &'static str {
        self.colours.get(kind).copied().unwrap_or("#7f7f7f")
    }

    /// Every kind with its colour, in name order.
    pub(super) fn kinds(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.colours.iter().map(|(k, c)| (k.as_str(), *c))
    }
}

/// How a legend entry's swatch is drawn.
pub(super) enum Swatch {
    /// A solid block, for marks and bars.
    Solid,
    /// A thick line, for line series.
    Line,
    /// An open ring, for hollow scatter marks.
    Ring,
    /// A translucent block, for fault shading.
    Shade,
    /// A red outline, for anomaly bands.
    Outline,
}

/// The legend under a plot (HTML, so it wraps and its text can be selected).
pub(super) fn legend(out: &mut String, items: &[(String, &str, Swatch)]) -> fmt::Result {
    out.push_str(r#"<div class="legend">"#);
    for (label, colour, swatch) in items {
        let style = match swatch {
            Swatch::Solid => format!("background:{colour}"),
            Swatch::Line => format!("height:3px;background:{colour}"),
            Swatch::Ring => {
                format!("width:8px;height:8px;border:1.5px solid {colour};border-radius:50%")
            }
            Swatch::Shade => format!("background:{colour};opacity:{}", FAULT_OPACITY * 2.5),
            Swatch::Outline => {
                format!("border:1.5px solid {colour};background:rgba(214,39,40,0.08)")
            }
        };
        write!(
            out,
            r#"<span><span class="sw" style="{}"></span>{}</span>"#,
            Esc(&style),
            Esc(label)
        )?;
    }
    writeln!(out, "</div>")
}

/// The legend entries every plot shares: each fault kind present and, if any, the
/// anomaly bands.
pub(super) fn context_legend(
    palette: &FaultPalette,
    anomalies: bool,
) -> Vec<(String, &'static str, Swatch)> {
    let mut items: Vec<(String, &'static str, Swatch)> = palette
        .kinds()
        .map(|(kind, colour)| (format!("fault: {kind}"), colour, Swatch::Shade))
        .collect();
    if anomalies {
        items.push((
            "anomaly window".to_string(),
            ANOMALY_COLOUR,
            Swatch::Outline,
        ));
    }
    items
}

/// `n1, n3`, or `none`.
pub(super) fn node_list(nodes: &[u32]) -> String {
    if nodes.is_empty() {
        return "no nodes".to_string();
    }
    nodes
        .iter()
        .map(|n| format!("n{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A round step (1, 2 or 5 times a power of ten) that cuts `span` into at most
/// `max_ticks` pieces.
pub(super) fn nice_step(span: f64, max_ticks: u32) -> f64 {
    if !span.is_finite() || span <= 0.0 {
        return 1.0;
    }
    let raw = span / f64::from(max_ticks.max(1));
    let magnitude = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0] {
        if m * magnitude >= raw {
            return m * magnitude;
        }
    }
    10.0 * magnitude
}

/// Decimals needed to print multiples of `step` without losing precision.
pub(super) fn decimals(step: f64) -> usize {
    if step >= 1.0 || step <= 0.0 || !step.is_finite() {
        0
    } else {
        // Less a hair: -log10(0.1) may come out as 1.0000000000000002.
        (-step.log10() - 1e-9).ceil() as usize
    }
}

/// A linear value axis from 0 to a round maximum at or above the data's.
pub(super) struct Linear {
    max: f64,
    step: f64,
}

impl Linear {
    pub(super) fn covering(max: f64) -> Self {
        let step = nice_step(max, 5);
        let top = ((max / step).ceil() * step).max(step);
        Self { max: top, step }
    }

    pub(super) fn fraction(&self, v: f64) -> f64 {
        v / self.max
    }

    pub(super) fn ticks(&self) -> Vec<(f64, String)> {
        let decimals = decimals(self.step);
        let n = (self.max / self.step).round() as u32;
        (0..=n)
            .map(|k| {
                let v = f64::from(k) * self.step;
                (self.fraction(v), format!("{v:.decimals$}"))
            })
            .collect()
    }
}

/// A log10 value axis spanning whole decades `10^lo ..= 10^hi`.
pub(super) struct Log {
    lo: i32,
    hi: i32,
}

impl Log {
    /// Covers `min..=max`; values at or below 0 are drawn at the bottom, and the
    /// bottom is never below `floor` (latencies of 0 would otherwise stretch it
    /// without end).
    pub(super) fn covering(min: f64, max: f64, floor: f64) -> Self {
        let min = if min.is_finite() {
            min.max(floor)
        } else {
            floor
        };
        let max = if max.is_finite() { max.max(min) } else { min };
        let lo = min.log10().floor() as i32;
        let hi = (max.log10().ceil() as i32).max(lo + 1);
        Self { lo, hi }
    }

    pub(super) fn fraction(&self, v: f64) -> f64 {
        if v <= 0.0 || !v.is_finite() {
            return 0.0;
        }
        (v.log10() - f64::from(self.lo)) / f64::from(self.hi - self.lo)
    }

    pub(super) fn ticks(&self) -> Vec<(f64, String)> {
        (self.lo..=self.hi)
            .map(|e| {
                let label = if e >= 0 {
                    format!("{}", 10u64.saturating_pow(e.unsigned_abs()))
                } else {
                    format!("{:.*}", e.unsigned_abs() as usize, 10f64.powi(e))
                };
                (self.fraction(10f64.powi(e)), label)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_are_round() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(nice_step(60.0, 10), 10.0));
        assert!(close(nice_step(7.0, 10), 1.0));
        assert!(close(nice_step(0.3, 10), 0.05));
        assert!(close(nice_step(0.0, 10), 1.0));
        assert_eq!(decimals(0.2), 1);
        assert_eq!(decimals(0.05), 2);
        assert_eq!(decimals(0.1), 1);
        assert_eq!(decimals(5.0), 0);
    }

    #[test]
    fn log_axis_covers_whole_decades_and_clamps_zero() {
        let log = Log::covering(0.0, 350.0, 0.01);
        let labels: Vec<String> = log.ticks().into_iter().map(|(_, l)| l).collect();
        assert_eq!(labels, ["0.01", "0.1", "1", "10", "100", "1000"]);
        assert_eq!(log.fraction(0.0), 0.0);
        assert!((log.fraction(1000.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn linear_axis_tops_out_at_a_round_value() {
        let lin = Linear::covering(87.0);
        let labels: Vec<String> = lin.ticks().into_iter().map(|(_, l)| l).collect();
        assert_eq!(labels, ["0", "20", "40", "60", "80", "100"]);
        let empty = Linear::covering(0.0);
        assert!(empty.fraction(0.0).is_finite());
    }

    #[test]
    fn an_empty_run_still_has_a_time_axis() {
        let frame = Frame::new(100.0, 0);
        let mut out = String::new();
        frame.time_axis(&mut out).unwrap();
        // A second at least, in tenths.
        assert!(out.contains(">0.0<") && out.contains(">1.0<"), "{out}");
        assert!(frame.x(5).is_finite());
    }

    #[test]
    fn known_fault_kinds_keep_their_colour() {
        let palette = FaultPalette::new(["zzz", "kill", "aaa"]);
        assert_eq!(palette.colour("kill"), "#1f77b4");
        assert_ne!(palette.colour("aaa"), palette.colour("zzz"));
        assert_eq!(palette.kinds().count(), 3);
    }
}
