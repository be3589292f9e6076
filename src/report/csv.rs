//! `summary.csv`: every number of the report in one long table, for spreadsheets and
//! pandas.
//!
//! ```text
//! scope,dimension,group,perturbation,severity,metric,value,ci_low,ci_high,n,relative
//! overall,,,none,0,accuracy,1,1,1,5,
//! by,kind,closed,none,0,accuracy,1,1,1,2,
//! robustness,,,gaussian_blur,3,accuracy,0.4,0,0.8,5,0.4
//! robustness,,,gaussian_blur,3,flip_rate,0.571429,,,7,
//! ```
//!
//! Values are rounded to 6 decimals; empty cells mean "not applicable".

use std::fmt::Write;

use super::Report;
use crate::score::MetricSummary;
use crate::score::stats::r6;

pub const HEADER: &str =
    "scope,dimension,group,perturbation,severity,metric,value,ci_low,ci_high,n,relative";

/// The whole file.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{HEADER}");
    for (m, s) in &report.overall {
        row(&mut out, "overall", "", "", "none", 0, m, s, None);
    }
    for (dim, groups) in &report.by {
        for (g, metrics) in groups {
            for (m, s) in metrics {
                row(&mut out, "by", dim, g, "none", 0, m, s, None);
            }
        }
    }
    for r in &report.robustness {
        for (m, s) in &r.metrics {
            let rel = r.relative.get(m).copied();
            row(
                &mut out,
                "robustness",
                "",
                "",
                &r.perturbation,
                r.severity,
                m,
                s,
                rel,
            );
        }
        if let Some(f) = r.flip_rate {
            plain(
                &mut out,
                &r.perturbation,
                r.severity,
                "flip_rate",
                f,
                r.flip_n,
            );
        }
        if let Some(d) = r.miou_drop {
            plain(&mut out, &r.perturbation, r.severity, "miou_drop", d, r.n);
        }
    }
    // The cluster bootstrap: one row per overall metric, value = design effect, n = clusters.
    if let Some(c) = &report.clustering {
        for (m, d) in &c.design_effect {
            let _ = writeln!(
                out,
                "clustering,design_effect,{},none,0,{},{},,,{},",
                field(&c.by),
                field(m),
                r6(*d),
                c.clusters
            );
        }
    }
    // Image reliance under each control: the metric clean and under the control, their
    // difference, and the share of unchanged answers.
    for x in &report.image_reliance {
        for (what, v) in [
            (format!("clean:{}", x.metric), x.clean),
            (format!("control:{}", x.metric), x.under_control),
            (format!("reliance:{}", x.metric), x.reliance),
            ("unchanged".to_string(), x.unchanged),
        ] {
            let _ = writeln!(
                out,
                "image_reliance,{},{},{},1,{},{},,,{},",
                field(&x.dimension),
                field(&x.group),
                field(&x.control),
                field(&what),
                r6(v),
                x.n
            );
        }
    }
    for x in &report.consistency_by_reliance {
        for (what, v) in [
            ("consistent_reliant", x.consistent_reliant),
            ("consistent_ignores_image", x.consistent_ignores_image),
            ("inconsistent_reliant", x.inconsistent_reliant),
            ("inconsistent_ignores_image", x.inconsistent_ignores_image),
        ] {
            let _ = writeln!(
                out,
                "consistency_reliance,kind,{},{},1,{what},{},,,{},",
                field(&x.kind),
                field(&x.control),
                r6(v),
                x.n
            );
        }
    }
    if let Some(o) = &report.option_order {
        super::option_order::csv_rows(&mut out, o);
    }
    // Calibration per condition and kind (group = kind, `all` pooling them; n = records
    // with a confidence), then its shift from clean (metric `<name>_change` and the mean
    // confidence of wrong answers).
    if let Some(c) = &report.calibration {
        for x in &c.rows {
            for (m, v) in [
                ("mean_confidence", Some(x.mean_confidence)),
                ("mean_confidence_wrong", x.mean_confidence_wrong),
                ("ece", Some(x.ece)),
                ("brier", Some(x.brier)),
                ("auroc", x.auroc),
                ("aurc", Some(x.aurc)),
            ] {
                if let Some(v) = v {
                    let _ = writeln!(
                        out,
                        "calibration,kind,{},{},{},{m},{},,,{},",
                        field(&x.kind),
                        field(&x.perturbation),
                        x.severity,
                        r6(v),
                        x.n
                    );
                }
            }
        }
        for x in &c.shift {
            for (m, v) in [
                ("ece_change", Some(x.ece_change)),
                ("confidence_change", Some(x.confidence_change)),
                ("accuracy_change", Some(x.accuracy_change)),
                ("confidence_wrong_clean", x.confidence_wrong_clean),
                ("confidence_wrong", x.confidence_wrong),
            ] {
                if let Some(v) = v {
                    let _ = writeln!(
                        out,
                        "calibration_shift,kind,{},{},{},{m},{},,,,",
                        field(&x.kind),
                        field(&x.perturbation),
                        x.severity,
                        r6(v)
                    );
                }
            }
        }
    }
    if let Some(s) = report.robustness_summary.as_ref().and_then(|s| s.score) {
        let _ = writeln!(
            out,
            "robustness_summary,,,,,mean_relative_score,{},,,{},",
            r6(s),
            report
                .robustness_summary
                .as_ref()
                .map_or(0, |x| x.conditions)
        );
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn row(
    out: &mut String,
    scope: &str,
    dim: &str,
    group: &str,
    pert: &str,
    sev: u8,
    metric: &str,
    s: &MetricSummary,
    relative: Option<f64>,
) {
    let _ = writeln!(
        out,
        "{scope},{},{},{},{sev},{},{},{},{},{},{}",
        field(dim),
        field(group),
        field(pert),
        field(metric),
        r6(s.value),
        r6(s.ci_low),
        r6(s.ci_high),
        s.n,
        relative.map(|v| r6(v).to_string()).unwrap_or_default()
    );
}

fn plain(out: &mut String, pert: &str, sev: u8, metric: &str, v: f64, n: usize) {
    let _ = writeln!(
        out,
        "robustness,,,{},{sev},{metric},{},,,{n},",
        field(pert),
        r6(v)
    );
}

/// RFC 4180 quoting where needed.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
