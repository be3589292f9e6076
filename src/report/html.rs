//! `report.html`: one self-contained page. Inline CSS, inline SVG charts, thumbnails as PNG
//! data URIs, no script and no external resource of any kind, so it opens offline, in a
//! mail attachment or a CI artefact viewer, and renders the same everywhere.
//!
//! Sections: header (dataset, model, frames, counts), overall metrics with intervals,
//! metric against severity (a perturbation × severity heatmap of the relative score per
//! headline metric, worst first, then one small line chart per perturbation family), bars by
//! question kind, modality, number of images and requested meta keys, the worst-hit
//! perturbations, the robustness table, example failures with thumbnails (ground-truth
//! boxes green, predicted boxes red), and extraction, unparsed and failure counts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::svg::{self, Bar, Group, Series, esc};
use super::{Report, Thumbnails, fmt4};
use crate::score::{METRICS, MetricSummary};

const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;padding:16px 24px;color:#222;background:#fff}
h1{font-size:1.5em;margin:.2em 0 .4em}h2{font-size:1.15em;margin:1.6em 0 .5em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.4em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 8px;vertical-align:top}
th{background:#f4f6f8;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.meta td:first-child{font-weight:600;background:#f9fafb}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{background:#fff;border:1px solid #e5e5e5}
.ctitle{font-size:13px;font-weight:600}.cellv{font-size:10.5px;font-variant-numeric:tabular-nums}h3{font-size:1em;margin:1.2em 0 .4em}.tick{font-size:10px;fill:#444}.axis{font-size:11px;fill:#333}.legend{font-size:10.5px;fill:#222}
.note{color:#555;font-style:italic}.resp{max-width:360px;white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,monospace;font-size:.85em}
.thumb{border:1px solid #ccc;background:#111}.scroll{overflow-x:auto;max-width:100%}.noimg{color:#888;font-size:.8em}
footer{margin-top:2em;color:#777;font-size:.8em}
"#;

/// Standard base64 with padding (RFC 4648), for data URIs.
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        o.push(T[(n >> 18) as usize & 63] as char);
        o.push(T[(n >> 12) as usize & 63] as char);
        o.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        o.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    o
}

/// The headline metrics (registry order) that appear in `present`.
fn headlines(present: impl Fn(&str) -> bool) -> Vec<&'static str> {
    METRICS
        .iter()
        .filter(|m| m.headline && present(m.name))
        .map(|m| m.name)
        .collect()
}

fn metric_table(o: &mut String, metrics: &BTreeMap<String, MetricSummary>) {
    o.push_str("<table><tr><th>metric</th><th>value</th><th>95% CI</th><th>n</th></tr>");
    for (m, s) in metrics {
        let _ = write!(
            o,
            r#"<tr><td>{}</td><td class="num">{}</td><td class="num">[{}, {}]</td><td class="num">{}</td></tr>"#,
            esc(m),
            fmt4(s.value),
            fmt4(s.ci_low),
            fmt4(s.ci_high),
            s.n
        );
    }
    o.push_str("</table>");
}

/// The whole page.
pub fn render(r: &Report, thumbs: &dyn Thumbnails) -> String {
    let mut o = String::new();
    let h = &r.header;
    let _ = write!(
        o,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"><title>medvqa report: {}</title><style>{CSS}</style></head><body>"#,
        esc(&h.dataset.name)
    );
    let _ = write!(o, "<h1>medvqa report: {}</h1>", esc(&h.dataset.name));
    o.push_str(r#"<table class="meta">"#);
    let mut meta = |k: &str, v: String| {
        let _ = write!(o, "<tr><td>{}</td><td>{}</td></tr>", esc(k), v);
    };
    meta(
        "dataset",
        format!(
            "<code>{}</code> (format {})",
            esc(&h.dataset.spec),
            esc(&h.dataset.format)
        ),
    );
    meta("model", esc(h.model.as_deref().unwrap_or("(not given)")));
    meta(
        "boxes",
        format!(
            "ground truth declared <code>{}</code>; predictions read as <code>{}</code>; scored on boxes: {}",
            esc(&h.dataset.source_box_frame),
            esc(&h.box_frame),
            h.grounding_scope.as_str()
        ),
    );
    let c = &r.counts;
    meta(
        "counts",
        format!(
            "{} samples; {} predictions scored ({} clean); {} rejected; {} failed; {} missing",
            c.samples, c.scored, c.scored_clean, c.rejected, c.failures, c.missing
        ),
    );
    meta(
        "unparsed (clean)",
        format!(
            "{} answers; {} responses without boxes",
            r.unparsed.answer, r.unparsed.boxes
        ),
    );
    meta(
        "statistics",
        format!(
            "{}% percentile bootstrap, {} resamples, seed {}",
            h.bootstrap.confidence * 100.0,
            h.bootstrap.resamples,
            h.bootstrap.seed
        ),
    );
    if let Some(line) = super::clustering_line(r) {
        meta("clusters", esc(&line));
    }
    for n in &h.notes {
        meta("note", esc(n));
    }
    o.push_str("</table>");

    let head = super::headline(r);
    if !head.is_empty() {
        o.push_str(r#"<section id="headline"><h2>Headline, by question kind (clean images)</h2>"#);
        o.push_str(
            "<table><tr><th>kind</th><th>metric</th><th>value</th><th>95% CI</th><th>n</th></tr>",
        );
        for (kind, metric, s) in head {
            let _ = write!(
                o,
                r#"<tr><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">[{}, {}]</td><td class="num">{}</td></tr>"#,
                esc(kind),
                esc(metric),
                fmt4(s.value),
                fmt4(s.ci_low),
                fmt4(s.ci_high),
                s.n
            );
        }
        o.push_str("</table></section>");
    }
    o.push_str(r#"<section id="overall"><h2>Every metric (clean images, all kinds together)</h2>"#);
    if r.overall.is_empty() {
        o.push_str(r#"<p class="note">No clean predictions were scored.</p>"#);
    } else {
        metric_table(&mut o, &r.overall);
    }
    o.push_str("</section>");

    severity_section(&mut o, r);
    groups_section(&mut o, r);
    worst_section(&mut o, r);
    robustness_table(&mut o, r);
    reliance_section(&mut o, r);
    if let Some(x) = &r.option_order {
        super::option_order::html(&mut o, x);
    }
    calibration_section(&mut o, r);
    if let Some(a) = &r.judge_agreement {
        super::judge_html(&mut o, a);
    }
    examples_section(&mut o, r, thumbs);
    counts_section(&mut o, r);

    let _ = writeln!(
        o,
        "<footer>medvqa {} · report layout {} · every number here is also in report.json and summary.csv</footer></body></html>",
        esc(&h.medvqa_version),
        r.medvqa_report
    );
    o
}

/// The mean relative score of a perturbation over its severities, for ordering (worst
/// first); perturbations without the metric sort last.
fn mean_relative(r: &Report, pert: &str, m: &str) -> f64 {
    let v: Vec<f64> = r
        .robustness
        .iter()
        .filter(|x| x.perturbation == pert)
        .filter_map(|x| x.relative.get(m).copied())
        .collect();
    if v.is_empty() {
        f64::INFINITY
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// What a reader needs at a glance: per headline metric, a heatmap of perturbation ×
/// severity holding the relative score (metric ÷ clean), worst perturbations first; then,
/// for the first headline metric, the curves as small multiples, one chart per family.
fn severity_section(o: &mut String, r: &Report) {
    o.push_str(r#"<section id="severity"><h2>Metrics against severity</h2>"#);
    let metrics = headlines(|m| r.robustness.iter().any(|x| x.metrics.contains_key(m)));
    if metrics.is_empty() {
        o.push_str(r#"<p class="note">No perturbed predictions: every number is on clean images.</p></section>"#);
        return;
    }
    let perts: BTreeSet<&str> = r
        .robustness
        .iter()
        .map(|x| x.perturbation.as_str())
        .collect();
    let max_sev = r.robustness.iter().map(|x| x.severity).max().unwrap_or(1);
    o.push_str(
        r#"<p class="note">Each cell is the metric under the perturbation divided by the metric on clean images (1.00 = no change), worst perturbations on top. Hover a cell for the exact value.</p><div class="charts">"#,
    );
    for &m in &metrics {
        let mut order: Vec<&str> = perts
            .iter()
            .copied()
            .filter(|p| {
                r.robustness
                    .iter()
                    .any(|x| x.perturbation == *p && x.relative.contains_key(m))
            })
            .collect();
        if order.is_empty() {
            continue;
        }
        order.sort_by(|a, b| {
            mean_relative(r, a, m)
                .total_cmp(&mean_relative(r, b, m))
                .then(a.cmp(b))
        });
        let rows: Vec<svg::HeatRow> = order
            .iter()
            .map(|p| svg::HeatRow {
                label: p.to_string(),
                values: (1..=max_sev)
                    .map(|sev| {
                        r.robustness
                            .iter()
                            .find(|x| x.perturbation == *p && x.severity == sev)
                            .and_then(|x| x.relative.get(m).copied())
                    })
                    .collect(),
            })
            .collect();
        let hi = rows
            .iter()
            .flat_map(|row| row.values.iter().flatten().copied())
            .fold(1.0f64, f64::max);
        let columns: Vec<String> = (1..=max_sev).map(|s| format!("sev {s}")).collect();
        o.push_str(&svg::heatmap(
            &format!("{m}: relative to clean"),
            "severity",
            &columns,
            &rows,
            0.0,
            hi,
        ));
    }
    o.push_str("</div>");

    // Small multiples: one chart per perturbation family, on the first headline metric.
    let m = metrics[0];
    let clean = r.overall.get(m).map(|s| s.value);
    let mut families: BTreeMap<&'static str, Vec<&str>> = BTreeMap::new();
    for p in &perts {
        let family = crate::perturb::find(p).map_or("other", |e| e.family.as_str());
        families.entry(family).or_default().push(p);
    }
    let ticks: Vec<f64> = (0..=max_sev).map(f64::from).collect();
    let _ = write!(
        o,
        r#"<h3>{} against severity, by perturbation family</h3><div class="charts">"#,
        esc(m)
    );
    for (family, members) in &families {
        let series: Vec<Series> = members
            .iter()
            .map(|p| {
                let mut points: Vec<(f64, f64)> = clean.map(|c| (0.0, c)).into_iter().collect();
                points.extend(
                    r.robustness
                        .iter()
                        .filter(|x| x.perturbation == *p)
                        .filter_map(|x| x.metrics.get(m).map(|s| (f64::from(x.severity), s.value))),
                );
                Series {
                    name: p.to_string(),
                    points,
                }
            })
            .filter(|s| s.points.len() > 1)
            .collect();
        if series.is_empty() {
            continue;
        }
        o.push_str(&svg::line_chart(
            &format!("{family}: {m}"),
            "severity (0 = clean)",
            m,
            &ticks,
            &series,
        ));
    }
    o.push_str("</div></section>");
}

fn groups_section(o: &mut String, r: &Report) {
    o.push_str(r#"<section id="groups"><h2>By question kind, modality and number of images</h2><div class="charts">"#);
    for (dim, groups) in &r.by {
        let metrics = headlines(|m| groups.values().any(|g| g.contains_key(m)));
        if metrics.is_empty() {
            continue;
        }
        let series: Vec<String> = metrics.iter().map(|m| m.to_string()).collect();
        let gs: Vec<Group> = groups
            .iter()
            .map(|(label, ms)| Group {
                label: label.clone(),
                bars: metrics
                    .iter()
                    .map(|m| {
                        ms.get(*m).map(|s| Bar {
                            value: s.value,
                            lo: s.ci_low,
                            hi: s.ci_high,
                            n: s.n,
                        })
                    })
                    .collect(),
            })
            .collect();
        let title = match dim.as_str() {
            "kind" => "by question kind".to_string(),
            "n_images" => "by number of images".to_string(),
            other => format!("by {other}"),
        };
        o.push_str(&svg::bar_chart(&title, "score (95% CI)", &series, &gs));
    }
    o.push_str("</div></section>");
}

/// The conditions with the lowest mean headline relative score.
fn worst_section(o: &mut String, r: &Report) {
    o.push_str(r#"<section id="worst"><h2>Worst-hit perturbations</h2>"#);
    let mut items: Vec<(String, f64, String)> = r
        .robustness
        .iter()
        .filter_map(|x| {
            let heads: Vec<f64> = headlines(|m| x.relative.contains_key(m))
                .iter()
                .filter_map(|m| x.relative.get(*m).copied())
                .collect();
            if heads.is_empty() {
                return None;
            }
            let v = heads.iter().sum::<f64>() / heads.len() as f64;
            let note = x
                .flip_rate
                .map(|f| format!("flips {:.0}%", f * 100.0))
                .unwrap_or_default();
            Some((format!("{} @ {}", x.perturbation, x.severity), v, note))
        })
        .collect();
    if items.is_empty() {
        o.push_str(
            r#"<p class="note">No perturbed predictions with a clean baseline.</p></section>"#,
        );
        return;
    }
    items.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    items.truncate(10);
    let max = items.iter().map(|i| i.1).fold(1.0f64, f64::max) * 1.05;
    if let Some(s) = r.robustness_summary.as_ref().and_then(|s| s.score) {
        let _ = write!(
            o,
            "<p>Mean relative score over all conditions: <b>{}</b> (1 = unaffected by perturbation).</p>",
            fmt4(s)
        );
    }
    o.push_str(&svg::hbar_chart(
        "relative score of the headline metrics (perturbed / clean)",
        &items,
        max,
    ));
    o.push_str("</section>");
}

/// The controls' table: how much the answers depend on the image.
fn reliance_section(o: &mut String, r: &Report) {
    if r.image_reliance.is_empty() {
        return;
    }
    o.push_str(r#"<section id="reliance"><h2>Image reliance</h2><p class="note">The headline metric with the image and under each control, on the same questions. Reliance = clean − control: near 0, the model answers as well without looking. Unchanged: the share of answers the control did not change.</p><table><tr><th>control</th><th>by</th><th>group</th><th>metric</th><th>n</th><th>clean</th><th>under control</th><th>reliance</th><th>unchanged</th></tr>"#);
    for x in &r.image_reliance {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:+.3}</td><td>{:.3}</td></tr>",
            esc(&x.control),
            esc(&x.dimension),
            esc(&x.group),
            esc(&x.metric),
            x.n,
            x.clean,
            x.under_control,
            x.reliance,
            x.unchanged
        );
    }
    o.push_str("</table>");
    if !r.consistency_by_reliance.is_empty() {
        o.push_str(r#"<h3>Consistency × image reliance</h3><p class="note">Questions answered clean, under the control and under the perturbations. Consistent: the answer stays the clean one under most (more than half) of the perturbations. Reliant: the control changes it. "Consistent, ignores image" is stability that comes from not looking.</p><table><tr><th>control</th><th>kind</th><th>n</th><th>consistent, reliant</th><th>consistent, ignores image</th><th>inconsistent, reliant</th><th>inconsistent, ignores image</th></tr>"#);
        for x in &r.consistency_by_reliance {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
                esc(&x.control),
                esc(&x.kind),
                x.n,
                x.consistent_reliant,
                x.consistent_ignores_image,
                x.inconsistent_reliant,
                x.inconsistent_ignores_image
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</section>");
}

/// Calibration: the reliability diagram, the risk–coverage plot, and the tables.
fn calibration_section(o: &mut String, r: &Report) {
    use super::calibration::{condition_label, plotted};
    use super::svg::line_chart;
    let Some(c) = &r.calibration else {
        return;
    };
    let opt = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.3}"));
    let _ = write!(
        o,
        r#"<section id="calibration"><h2>Calibration</h2><p class="note">Confidence = the probability the model gave its answer; correct = accuracy 1 (closed, choice), exact match (open), Acc@0.5 (grounding). ECE over {} equal-mass bins; Brier = mean (confidence − correct)²; AUROC of confidence for correctness; AURC = area under the risk–coverage curve (lower is better). The plots show clean images and the {} conditions with the largest ECE, all kinds together; the table has every condition.</p>"#,
        c.bins,
        super::calibration::PLOTTED
    );
    let rows = plotted(c);
    let mut reliability = Vec::new();
    let mut risk = Vec::new();
    for x in &rows {
        let name = condition_label(&x.perturbation, x.severity);
        reliability.push(Series {
            name: name.clone(),
            points: x
                .reliability
                .iter()
                .map(|b| (b.confidence, b.accuracy))
                .collect(),
        });
        risk.push(Series {
            name,
            points: x.risk_coverage.iter().map(|p| (p[0], p[1])).collect(),
        });
    }
    // The diagonal last, so that each condition has the same colour in both charts.
    reliability.push(Series {
        name: "perfect calibration".into(),
        points: vec![(0.0, 0.0), (1.0, 1.0)],
    });
    let ticks = [0.0, 0.25, 0.5, 0.75, 1.0];
    o.push_str(&line_chart(
        "Reliability diagram (equal-mass bins)",
        "mean confidence in bin",
        "accuracy in bin",
        &ticks,
        &reliability,
    ));
    o.push_str(&line_chart(
        "Risk–coverage (most confident answers first)",
        "coverage",
        "risk (share wrong)",
        &ticks,
        &risk,
    ));
    o.push_str("<table><tr><th>condition</th><th>kind</th><th>n</th><th>accuracy</th><th>mean conf.</th><th>conf. (wrong)</th><th>ECE</th><th>Brier</th><th>AUROC</th><th>AURC</th></tr>");
    for x in &c.rows {
        let _ = write!(
            o,
            r#"<tr><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{:.3}</td><td class="num">{:.3}</td><td class="num">{}</td><td class="num">{:.3}</td><td class="num">{:.3}</td><td class="num">{}</td><td class="num">{:.3}</td></tr>"#,
            esc(&condition_label(&x.perturbation, x.severity)),
            esc(&x.kind),
            x.n,
            x.accuracy,
            x.mean_confidence,
            opt(x.mean_confidence_wrong),
            x.ece,
            x.brier,
            opt(x.auroc),
            x.aurc
        );
    }
    o.push_str("</table>");
    if !c.shift.is_empty() {
        o.push_str(r#"<h3>Calibration shift from clean</h3><p class="note">Each condition minus clean, same kind. A confidence of wrong answers that stays high while accuracy falls is the dangerous case.</p><table><tr><th>condition</th><th>kind</th><th>ECE change</th><th>confidence change</th><th>accuracy change</th><th>conf. (wrong), clean</th><th>conf. (wrong), here</th></tr>"#);
        for x in &c.shift {
            let _ = write!(
                o,
                r#"<tr><td>{}</td><td>{}</td><td class="num">{:+.3}</td><td class="num">{:+.3}</td><td class="num">{:+.3}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                esc(&condition_label(&x.perturbation, x.severity)),
                esc(&x.kind),
                x.ece_change,
                x.confidence_change,
                x.accuracy_change,
                opt(x.confidence_wrong_clean),
                opt(x.confidence_wrong)
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</section>");
}

fn robustness_table(o: &mut String, r: &Report) {
    if r.robustness.is_empty() {
        return;
    }
    o.push_str(r#"<section id="robustness"><h2>Robustness table</h2><p class="note">Each cell: the metric under the perturbation, and in brackets its ratio to the clean value on the same samples."#);
    if r.robustness.iter().any(|x| x.order_dependent) {
        o.push_str(" Rows marked (order-dependent) hold the questions whose answer the dataset cannot follow through the frame perturbation; they are reported apart and not counted in the score.");
    }
    o.push_str(
        r#"</p><div class="scroll"><table><tr><th>perturbation</th><th>severity</th><th>n</th>"#,
    );
    let metrics: BTreeSet<&String> = r.robustness.iter().flat_map(|x| x.metrics.keys()).collect();
    for m in &metrics {
        let _ = write!(o, "<th>{} (relative)</th>", esc(m));
    }
    o.push_str("<th>flip rate</th><th>mIoU drop</th><th>unparsed</th></tr>");
    for x in &r.robustness {
        let _ = write!(
            o,
            r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td>"#,
            esc(&x.perturbation),
            x.severity,
            x.n
        );
        for m in &metrics {
            match x.metrics.get(*m) {
                Some(s) => {
                    let rel = x
                        .relative
                        .get(*m)
                        .map(|v| format!(" ({})", fmt4(*v)))
                        .unwrap_or_default();
                    let _ = write!(o, r#"<td class="num">{}{rel}</td>"#, fmt4(s.value));
                }
                None => o.push_str("<td></td>"),
            }
        }
        let _ = write!(
            o,
            r#"<td class="num">{}</td><td class="num">{}</td><td class="num">{} / {}</td></tr>"#,
            x.flip_rate.map(fmt4).unwrap_or_default(),
            x.miou_drop.map(fmt4).unwrap_or_default(),
            x.unparsed.answer,
            x.unparsed.boxes
        );
    }
    o.push_str("</table></div></section>");
}

/// A thumbnail with the example's boxes drawn over it, or a placeholder.
fn thumbnail(e: &super::Example, thumbs: &dyn Thumbnails) -> String {
    let image = e.gt_boxes.iter().map(|b| b.image).min().unwrap_or(0);
    let Some(t) = thumbs.thumbnail(&e.id, &e.condition, image) else {
        return r#"<span class="noimg">image not available</span>"#.to_string();
    };
    let png = t.png;
    let Ok((w, h)) =
        image::ImageReader::with_format(std::io::Cursor::new(&png), image::ImageFormat::Png)
            .into_dimensions()
    else {
        return r#"<span class="noimg">thumbnail unreadable</span>"#.to_string();
    };
    let (wf, hf) = (w as f64, h as f64);
    let mut s = format!(
        r#"<svg class="thumb" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}"><image href="data:image/png;base64,{}" x="0" y="0" width="{w}" height="{h}"/>"#,
        base64(&png)
    );
    let mut rect = |b: &crate::geometry::BBox, color: &str| {
        let _ = write!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            b.x1 * wf,
            b.y1 * hf,
            b.width() * wf,
            b.height() * hf
        );
    };
    for b in e.gt_boxes.iter().filter(|b| b.image == image) {
        rect(&b.bbox, "#2ca02c");
    }
    if t.as_seen {
        for b in e.pred_boxes.iter().filter(|b| b.image == image) {
            rect(&b.bbox, "#d62728");
        }
    }
    s.push_str("</svg>");
    if !t.as_seen {
        s.push_str(r#"<br><span class="noimg">clean image; predicted boxes not drawn</span>"#);
    }
    s
}

fn examples_section(o: &mut String, r: &Report, thumbs: &dyn Thumbnails) {
    o.push_str(r#"<section id="examples"><h2>Example failures</h2>"#);
    if r.examples.is_empty() {
        o.push_str(r#"<p class="note">No failures to show.</p></section>"#);
        return;
    }
    o.push_str(r#"<p class="note">Boxes: ground truth green, prediction red.</p><table><tr><th>image</th><th>id · condition</th><th>question</th><th>expected</th><th>response</th><th>parsed (rule)</th><th>why</th></tr>"#);
    for e in &r.examples {
        let _ = write!(
            o,
            r#"<tr><td>{}</td><td><code>{}</code><br>{}</td><td>{}</td><td>{}</td><td class="resp">{}</td><td>{} ({})</td><td>{}{}</td></tr>"#,
            thumbnail(e, thumbs),
            esc(&e.id),
            esc(&e.condition.to_string()),
            esc(&e.question),
            esc(e.expected.as_deref().unwrap_or("")),
            esc(&e.response),
            esc(e.parsed.as_deref().unwrap_or(if e.rule.is_some() {
                "—"
            } else {
                "(boxes only)"
            })),
            esc(e.rule.as_deref().unwrap_or("no answer to extract")),
            esc(&e.why),
            e.iou
                .map(|v| format!("<br>IoU {}", fmt4(v)))
                .unwrap_or_default()
        );
    }
    o.push_str("</table></section>");
}

fn counts_section(o: &mut String, r: &Report) {
    o.push_str(r#"<section id="counts"><h2>Extraction, unparsed and failures</h2><table><tr><th>extraction rule (clean)</th><th>predictions</th></tr>"#);
    for (k, v) in &r.extraction_rules {
        let _ = write!(o, r#"<tr><td>{}</td><td class="num">{v}</td></tr>"#, esc(k));
    }
    for (k, v) in &r.box_syntaxes {
        let _ = write!(
            o,
            r#"<tr><td>box syntax: {}</td><td class="num">{v}</td></tr>"#,
            esc(k)
        );
    }
    o.push_str("</table>");
    if !r.unparsed.by_kind.is_empty() {
        o.push_str("<table><tr><th>kind</th><th>unparsed answers</th><th>no boxes</th></tr>");
        for (k, u) in &r.unparsed.by_kind {
            let _ = write!(
                o,
                r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                esc(k),
                u.answer,
                u.boxes
            );
        }
        o.push_str("</table>");
    }
    let _ = write!(
        o,
        "<p>{} failed, {} rejected, {} missing.</p>",
        r.failures.count, r.rejected.count, r.counts.missing
    );
    if r.failures.count + r.rejected.count > 0 {
        o.push_str("<ul>");
        for f in r.failures.items.iter().take(100) {
            let _ = write!(o, "<li>failed: {}</li>", esc(&f.to_string()));
        }
        for x in r.rejected.items.iter().take(100) {
            let _ = write!(
                o,
                "<li>rejected {}: {}</li>",
                esc(x.id.as_deref().unwrap_or("(no id)")),
                esc(&x.reason)
            );
        }
        o.push_str("</ul>");
    }
    o.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
