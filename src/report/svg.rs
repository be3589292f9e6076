//! Inline SVG charts for `report.html`: lines, grouped bars with interval whiskers, and
//! horizontal bars. Pure string building, coordinates printed with one decimal, so the
//! same numbers always give the same bytes. Every chart is an `<svg class="chart">` with a
//! `<title>`, readable without CSS or script.

use std::fmt::Write;

/// A colour-blind-friendly palette (Okabe–Ito, then Tableau), cycled.
pub const PALETTE: [&str; 10] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
    "#8C564B", "#7F7F7F",
];

pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// The dash pattern of series `i`: solid for the first round of colours, then dashed and
/// dotted, so that series sharing a colour stay apart.
fn dash(i: usize) -> &'static str {
    ["none", "7 3", "2 2", "9 3 2 3"][(i / PALETTE.len()) % 4]
}

/// Escapes text for XML/HTML content and attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

fn f1(v: f64) -> String {
    format!("{v:.1}")
}

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// `(x, y)` points, drawn in the given order.
    pub points: Vec<(f64, f64)>,
}

const W: f64 = 560.0;
const H: f64 = 300.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 44.0;

fn open(o: &mut String, title: &str, w: f64, h: f64) {
    let _ = write!(
        o,
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" width="{}" height="{}" role="img"><title>{}</title>"#,
        f1(w),
        f1(h),
        f1(w),
        f1(h),
        esc(title)
    );
    let _ = write!(
        o,
        r#"<text x="{}" y="20" class="ctitle">{}</text>"#,
        f1(LEFT),
        esc(title)
    );
}

/// Horizontal grid lines and y labels for a 0..`ymax` axis.
fn y_axis(o: &mut String, ymax: f64, plot_w: f64, plot_h: f64, label: &str) {
    for k in 0..=4 {
        let v = ymax * k as f64 / 4.0;
        let y = TOP + plot_h - plot_h * k as f64 / 4.0;
        let _ = write!(
            o,
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/><text x="{}" y="{}" class="tick" text-anchor="end">{:.2}</text>"##,
            f1(LEFT),
            f1(y),
            f1(LEFT + plot_w),
            f1(y),
            f1(LEFT - 6.0),
            f1(y + 4.0),
            v
        );
    }
    let _ = write!(
        o,
        r#"<text x="14" y="{}" class="axis" transform="rotate(-90 14 {})" text-anchor="middle">{}</text>"#,
        f1(TOP + plot_h / 2.0),
        f1(TOP + plot_h / 2.0),
        esc(label)
    );
}

/// A line chart on a 0–1 y axis (values above 1 stretch it). `x_ticks` label the x axis.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    x_ticks: &[f64],
    series: &[Series],
) -> String {
    let mut o = String::new();
    // The plot keeps its size; the canvas grows so a long legend (a track has dozens of
    // perturbations) is never cut off.
    let h = H.max(TOP + 14.0 * series.len() as f64 + 10.0);
    open(&mut o, title, W, h);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let ymax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let xmin = x_ticks.iter().copied().fold(f64::INFINITY, f64::min);
    let xmax = x_ticks.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (xmin, xmax) = if xmin.is_finite() && xmax > xmin {
        (xmin, xmax)
    } else {
        (0.0, 1.0)
    };
    let px = |x: f64| LEFT + (x - xmin) / (xmax - xmin) * plot_w;
    let py = |y: f64| TOP + plot_h - (y / ymax) * plot_h;
    y_axis(&mut o, ymax, plot_w, plot_h, y_label);
    for &t in x_ticks {
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
            f1(px(t)),
            f1(TOP + plot_h + 16.0),
            t
        );
    }
    let _ = write!(
        o,
        r#"<text x="{}" y="{}" class="axis" text-anchor="middle">{}</text>"#,
        f1(LEFT + plot_w / 2.0),
        f1(H - 8.0),
        esc(x_label)
    );
    for (i, s) in series.iter().enumerate() {
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{},{}", f1(px(x)), f1(py(y))))
            .collect();
        let _ = write!(
            o,
            r#"<polyline class="series" fill="none" stroke="{}" stroke-width="2" stroke-dasharray="{}" points="{}"><title>{}</title></polyline>"#,
            color(i),
            dash(i),
            pts.join(" "),
            esc(&s.name)
        );
        for &(x, y) in &s.points {
            let _ = write!(
                o,
                r#"<circle cx="{}" cy="{}" r="3" fill="{}"><title>{} @ {}: {:.4}</title></circle>"#,
                f1(px(x)),
                f1(py(y)),
                color(i),
                esc(&s.name),
                x,
                y
            );
        }
        let ly = TOP + 14.0 * i as f64;
        let _ = write!(
            o,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="2" stroke-dasharray="{}"/><text x="{}" y="{}" class="legend">{}</text>"#,
            f1(W - RIGHT + 12.0),
            f1(ly + 1.5),
            f1(W - RIGHT + 27.0),
            f1(ly + 1.5),
            color(i),
            dash(i),
            f1(W - RIGHT + 30.0),
            f1(ly + 5.0),
            esc(&truncate(&s.name, 22))
        );
    }
    o.push_str("</svg>");
    o
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// Viridis at eleven stops (matplotlib's table at 0, 0.1, …, 1): perceptually uniform and
/// readable with every common colour-vision deficiency and in grey print.
const VIRIDIS: [(u8, u8, u8); 11] = [
    (68, 1, 84),
    (72, 36, 117),
    (65, 68, 135),
    (53, 95, 141),
    (42, 120, 142),
    (33, 145, 140),
    (34, 168, 132),
    (68, 191, 112),
    (122, 209, 81),
    (189, 223, 38),
    (253, 231, 37),
];

/// The viridis colour of `t` in [0, 1] (clamped), linearly between the stops, and whether
/// text on it should be dark (light background) for contrast.
pub fn viridis(t: f64) -> (String, bool) {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |p: u8, q: u8| (f64::from(p) + (f64::from(q) - f64::from(p)) * f).round() as u8;
    let (r, g, bl) = (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2));
    let luma = 0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(bl);
    (format!("#{r:02x}{g:02x}{bl:02x}"), luma > 140.0)
}

/// One row of a heatmap: a label and one value per column (`None` = no cell).
#[derive(Debug, Clone)]
pub struct HeatRow {
    pub label: String,
    pub values: Vec<Option<f64>>,
}

/// A heatmap with the value printed in every cell, coloured on viridis over `[lo, hi]`
/// (values outside are clamped for the colour, printed as they are), with a colour key.
pub fn heatmap(
    title: &str,
    x_label: &str,
    columns: &[String],
    rows: &[HeatRow],
    lo: f64,
    hi: f64,
) -> String {
    let mut o = String::new();
    let cell_w = 58.0;
    let cell_h = 20.0;
    let left = 170.0;
    let top = TOP + 6.0;
    let width = (left + cell_w * columns.len().max(1) as f64 + 120.0).max(360.0);
    let height = top + cell_h * rows.len().max(1) as f64 + 46.0;
    open(&mut o, title, width, height);
    for (ci, c) in columns.iter().enumerate() {
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
            f1(left + cell_w * (ci as f64 + 0.5)),
            f1(top - 5.0),
            esc(c)
        );
    }
    let span = if hi > lo { hi - lo } else { 1.0 };
    for (ri, row) in rows.iter().enumerate() {
        let y = top + cell_h * ri as f64;
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" class="tick" text-anchor="end">{}</text>"#,
            f1(left - 6.0),
            f1(y + cell_h * 0.68),
            esc(&truncate(&row.label, 26))
        );
        for (ci, v) in row.values.iter().enumerate() {
            let x = left + cell_w * ci as f64;
            let Some(v) = v else {
                let _ = write!(
                    o,
                    r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#f2f2f2" stroke="#fff"/>"##,
                    f1(x),
                    f1(y),
                    f1(cell_w),
                    f1(cell_h)
                );
                continue;
            };
            let (fill, dark_text) = viridis((v - lo) / span);
            let _ = write!(
                o,
                r##"<rect class="cell" x="{}" y="{}" width="{}" height="{}" fill="{}" stroke="#fff"><title>{} · {}: {:.4}</title></rect><text x="{}" y="{}" class="cellv" text-anchor="middle" fill="{}">{:.2}</text>"##,
                f1(x),
                f1(y),
                f1(cell_w),
                f1(cell_h),
                fill,
                esc(&row.label),
                esc(columns.get(ci).map_or("", String::as_str)),
                v,
                f1(x + cell_w / 2.0),
                f1(y + cell_h * 0.7),
                if dark_text { "#111" } else { "#fff" },
                v
            );
        }
    }
    let grid_bottom = top + cell_h * rows.len().max(1) as f64;
    let _ = write!(
        o,
        r#"<text x="{}" y="{}" class="axis" text-anchor="middle">{}</text>"#,
        f1(left + cell_w * columns.len() as f64 / 2.0),
        f1(grid_bottom + 18.0),
        esc(x_label)
    );
    // The colour key: ten steps from lo to hi.
    let kx = left + cell_w * columns.len() as f64 + 24.0;
    for k in 0..10 {
        let (fill, _) = viridis(1.0 - (k as f64 + 0.5) / 10.0);
        let _ = write!(
            o,
            r#"<rect x="{}" y="{}" width="14" height="9" fill="{}"/>"#,
            f1(kx),
            f1(top + 9.0 * k as f64),
            fill
        );
    }
    let _ = write!(
        o,
        r#"<text x="{}" y="{}" class="legend">{:.2}</text><text x="{}" y="{}" class="legend">{:.2}</text>"#,
        f1(kx + 18.0),
        f1(top + 8.0),
        hi,
        f1(kx + 18.0),
        f1(top + 90.0),
        lo
    );
    o.push_str("</svg>");
    o
}

/// One bar with its interval.
#[derive(Debug, Clone)]
pub struct Bar {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
}

/// One x position of a grouped bar chart: a bar per series (None = no bar).
#[derive(Debug, Clone)]
pub struct Group {
    pub label: String,
    pub bars: Vec<Option<Bar>>,
}

/// Grouped bars on a 0–1 axis with whiskers for the intervals.
pub fn bar_chart(title: &str, y_label: &str, series: &[String], groups: &[Group]) -> String {
    let mut o = String::new();
    let width =
        (LEFT + RIGHT + 40.0 + groups.len() as f64 * (series.len() as f64 * 18.0 + 22.0)).max(W);
    open(&mut o, title, width, H);
    let plot_w = width - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    y_axis(&mut o, 1.0, plot_w, plot_h, y_label);
    let slot = plot_w / groups.len().max(1) as f64;
    let bw = (slot * 0.8 / series.len().max(1) as f64).min(28.0);
    let py = |y: f64| TOP + plot_h - y.clamp(0.0, 1.0) * plot_h;
    for (gi, g) in groups.iter().enumerate() {
        let x0 = LEFT + slot * gi as f64 + (slot - bw * series.len() as f64) / 2.0;
        for (si, b) in g.bars.iter().enumerate() {
            let Some(b) = b else { continue };
            let x = x0 + bw * si as f64;
            let _ = write!(
                o,
                r#"<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{} · {}: {:.4} [{:.4}, {:.4}] n={}</title></rect>"#,
                f1(x),
                f1(py(b.value)),
                f1(bw - 2.0),
                f1(py(0.0) - py(b.value)),
                color(si),
                esc(&g.label),
                esc(series.get(si).map_or("", String::as_str)),
                b.value,
                b.lo,
                b.hi,
                b.n
            );
            let cx = x + (bw - 2.0) / 2.0;
            let _ = write!(
                o,
                r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
                f1(cx),
                f1(py(b.lo)),
                f1(cx),
                f1(py(b.hi))
            );
        }
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
            f1(LEFT + slot * gi as f64 + slot / 2.0),
            f1(TOP + plot_h + 16.0),
            esc(&truncate(&g.label, 18))
        );
    }
    for (si, s) in series.iter().enumerate() {
        let ly = TOP + 14.0 * si as f64;
        let _ = write!(
            o,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" class="legend">{}</text>"#,
            f1(width - RIGHT + 14.0),
            f1(ly - 4.0),
            color(si),
            f1(width - RIGHT + 30.0),
            f1(ly + 5.0),
            esc(s)
        );
    }
    o.push_str("</svg>");
    o
}

/// Horizontal bars: `(label, value, note)`, drawn top to bottom on a 0–`max` axis, with a
/// reference line at 1 when `max` ≥ 1.
pub fn hbar_chart(title: &str, items: &[(String, f64, String)], max: f64) -> String {
    let mut o = String::new();
    let row = 22.0;
    let left = 190.0;
    let h = TOP + BOTTOM + row * items.len().max(1) as f64;
    open(&mut o, title, W + 60.0, h);
    let plot_w = W + 60.0 - left - 150.0;
    let px = |v: f64| left + (v.clamp(0.0, max) / max) * plot_w;
    for (i, (label, v, note)) in items.iter().enumerate() {
        let y = TOP + row * i as f64;
        let _ = write!(
            o,
            r#"<text x="{}" y="{}" class="tick" text-anchor="end">{}</text><rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {:.4}</title></rect><text x="{}" y="{}" class="legend">{:.3} {}</text>"#,
            f1(left - 6.0),
            f1(y + 14.0),
            esc(&truncate(label, 28)),
            f1(left),
            f1(y + 3.0),
            f1(px(*v) - left),
            f1(row - 6.0),
            color(3),
            esc(label),
            v,
            f1(px(*v) + 6.0),
            f1(y + 14.0),
            v,
            esc(note)
        );
    }
    if max >= 1.0 {
        let _ = write!(
            o,
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#333" stroke-dasharray="4 3"/><text x="{}" y="{}" class="tick" text-anchor="middle">1 = clean</text>"##,
            f1(px(1.0)),
            f1(TOP - 2.0),
            f1(px(1.0)),
            f1(h - BOTTOM + 4.0),
            f1(px(1.0)),
            f1(h - BOTTOM + 18.0)
        );
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        let svg = line_chart(
            "t <x>",
            "severity",
            "accuracy",
            &[0.0, 1.0],
            &[Series {
                name: "blur & noise".into(),
                points: vec![(0.0, 0.5), (1.0, 0.25)],
            }],
        );
        assert!(svg.contains("blur &amp; noise") && !svg.contains("<x>"));
        assert!(svg.starts_with("<svg class=\"chart\"") && svg.ends_with("</svg>"));
    }

    #[test]
    fn charts_are_deterministic() {
        let g = vec![Group {
            label: "closed".into(),
            bars: vec![
                Some(Bar {
                    value: 0.5,
                    lo: 0.4,
                    hi: 0.6,
                    n: 20,
                }),
                None,
            ],
        }];
        let s = vec!["accuracy".to_string(), "miou".to_string()];
        assert_eq!(bar_chart("x", "y", &s, &g), bar_chart("x", "y", &s, &g));
        let h = hbar_chart("w", &[("blur@5".into(), 0.42, "flip 0.3".into())], 1.2);
        assert!(h.contains("blur@5"));
    }
}
