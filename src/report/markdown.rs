//! `report.md`: the report as Markdown tables, for terminals, pull requests and notebooks.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Report, fmt4};
use crate::score::MetricSummary;

/// Escapes the characters that break a Markdown table cell.
pub fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn metric_table(out: &mut String, metrics: &BTreeMap<String, MetricSummary>) {
    let _ = writeln!(out, "| metric | value | 95% CI | n |");
    let _ = writeln!(out, "|---|---:|---|---:|");
    for (m, s) in metrics {
        let _ = writeln!(
            out,
            "| {m} | {} | [{}, {}] | {} |",
            fmt4(s.value),
            fmt4(s.ci_low),
            fmt4(s.ci_high),
            s.n
        );
    }
}

/// The whole document.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let h = &r.header;
    let _ = writeln!(o, "# medvqa report: {}\n", cell(&h.dataset.name));
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(
        o,
        "| dataset | `{}` ({}) |",
        cell(&h.dataset.spec),
        h.dataset.format
    );
    if let Some(m) = &h.model {
        let _ = writeln!(o, "| model | {} |", cell(m));
    }
    let _ = writeln!(
        o,
        "| boxes | ground truth declared `{}`; predictions read as `{}`; scored on boxes: {} |",
        h.dataset.source_box_frame,
        h.box_frame,
        h.grounding_scope.as_str()
    );
    let _ = writeln!(
        o,
        "| bootstrap | {} resamples, seed {}, {}% intervals |",
        h.bootstrap.resamples,
        h.bootstrap.seed,
        h.bootstrap.confidence * 100.0
    );
    if let Some(line) = super::clustering_line(r) {
        let _ = writeln!(o, "| clusters | {line} |");
    }
    let _ = writeln!(o, "| medvqa | {} |", h.medvqa_version);
    let c = &r.counts;
    let _ = writeln!(
        o,
        "| counts | {} samples; {} predictions scored ({} clean); {} rejected; {} failed; {} missing |",
        c.samples, c.scored, c.scored_clean, c.rejected, c.failures, c.missing
    );
    let _ = writeln!(
        o,
        "| unparsed (clean) | {} answers, {} without boxes |",
        r.unparsed.answer, r.unparsed.boxes
    );
    for n in &h.notes {
        let _ = writeln!(o, "| note | {} |", cell(n));
    }

    let head = super::headline(r);
    if !head.is_empty() {
        let _ = writeln!(o, "\n## Headline, by question kind (clean)\n");
        let _ = writeln!(o, "| kind | metric | value | 95% CI | n |");
        let _ = writeln!(o, "|---|---|---:|---|---:|");
        for (kind, metric, s) in head {
            let _ = writeln!(
                o,
                "| {kind} | {metric} | {} | [{}, {}] | {} |",
                fmt4(s.value),
                fmt4(s.ci_low),
                fmt4(s.ci_high),
                s.n
            );
        }
    }

    let _ = writeln!(o, "\n## Every metric (clean, all kinds together)\n");
    if r.overall.is_empty() {
        let _ = writeln!(o, "No clean predictions were scored.");
    } else {
        metric_table(&mut o, &r.overall);
    }

    for (dim, groups) in &r.by {
        let _ = writeln!(o, "\n## By {dim}\n");
        let metrics: std::collections::BTreeSet<&String> =
            groups.values().flat_map(|m| m.keys()).collect();
        let _ = write!(o, "| {dim} |");
        for m in &metrics {
            let _ = write!(o, " {m} |");
        }
        let _ = write!(o, "\n|---|");
        for _ in &metrics {
            let _ = write!(o, "---:|");
        }
        let _ = writeln!(o);
        for (g, ms) in groups {
            let _ = write!(o, "| {} |", cell(g));
            for m in &metrics {
                match ms.get(*m) {
                    Some(s) => {
                        let _ = write!(o, " {} (n={}) |", fmt4(s.value), s.n);
                    }
                    None => {
                        let _ = write!(o, " |");
                    }
                }
            }
            let _ = writeln!(o);
        }
    }

    if !r.image_reliance.is_empty() {
        let _ = writeln!(
            o,
            "\n## Image reliance\n\nThe headline metric with the image and under each control, on the same questions; reliance = clean − control (near 0: the model answers as well without looking); unchanged = the share of answers the control did not change.\n"
        );
        let _ = writeln!(
            o,
            "| control | by | group | metric | n | clean | under control | reliance | unchanged |"
        );
        let _ = writeln!(o, "|---|---|---|---|---:|---:|---:|---:|---:|");
        for x in &r.image_reliance {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                x.control,
                x.dimension,
                x.group,
                x.metric,
                x.n,
                fmt4(x.clean),
                fmt4(x.under_control),
                fmt4(x.reliance),
                fmt4(x.unchanged)
            );
        }
    }

    if !r.consistency_by_reliance.is_empty() {
        let _ = writeln!(
            o,
            "\n### Consistency × image reliance\n\nQuestions answered clean, under the control and under the perturbations. Consistent: the answer stays the clean one under most (more than half) of the perturbations. Reliant: the control changes it. *Consistent, ignores the image* is stability that comes from not looking.\n\n| control | kind | n | consistent, reliant | consistent, ignores image | inconsistent, reliant | inconsistent, ignores image |\n|---|---|---:|---:|---:|---:|---:|"
        );
        for x in &r.consistency_by_reliance {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} |",
                x.control,
                x.kind,
                x.n,
                fmt4(x.consistent_reliant),
                fmt4(x.consistent_ignores_image),
                fmt4(x.inconsistent_reliant),
                fmt4(x.inconsistent_ignores_image)
            );
        }
    }

    if let Some(x) = &r.option_order {
        super::option_order::markdown(&mut o, x);
    }

    if let Some(c) = &r.calibration {
        calibration(&mut o, c);
    }
    if let Some(a) = &r.judge_agreement {
        super::judge_markdown(&mut o, a);
    }

    if !r.robustness.is_empty() {
        let _ = writeln!(o, "\n## Robustness\n");
        if let Some(s) = r.robustness_summary.as_ref().and_then(|s| s.score) {
            let _ = writeln!(
                o,
                "Mean relative score over {} conditions: **{}** (1 = unaffected).\n",
                r.robustness_summary.as_ref().map_or(0, |s| s.conditions),
                fmt4(s)
            );
        }
        if r.robustness.iter().any(|x| x.order_dependent) {
            let _ = writeln!(
                o,
                "Rows marked *(order-dependent)* hold the questions whose answer the dataset cannot follow through the frame perturbation (docs/perturbations.md); they are reported apart and not counted in the score.\n"
            );
        }
        let metrics: std::collections::BTreeSet<&String> =
            r.robustness.iter().flat_map(|x| x.metrics.keys()).collect();
        let _ = write!(o, "| perturbation | severity | n |");
        for m in &metrics {
            let _ = write!(o, " {m} (rel.) |");
        }
        let _ = writeln!(o, " flip rate | mIoU drop | unparsed |");
        let _ = write!(o, "|---|---:|---:|");
        for _ in &metrics {
            let _ = write!(o, "---:|");
        }
        let _ = writeln!(o, "---:|---:|---:|");
        for row in &r.robustness {
            let _ = write!(
                o,
                "| {} | {} | {} |",
                cell(&row.perturbation),
                row.severity,
                row.n
            );
            for m in &metrics {
                match row.metrics.get(*m) {
                    Some(s) => {
                        let rel = row
                            .relative
                            .get(*m)
                            .map(|v| format!(" ({})", fmt4(*v)))
                            .unwrap_or_default();
                        let _ = write!(o, " {}{rel} |", fmt4(s.value));
                    }
                    None => {
                        let _ = write!(o, " |");
                    }
                }
            }
            let _ = writeln!(
                o,
                " {} | {} | {} / {} |",
                row.flip_rate.map(fmt4).unwrap_or_default(),
                row.miou_drop.map(fmt4).unwrap_or_default(),
                row.unparsed.answer,
                row.unparsed.boxes
            );
        }
    }

    let _ = writeln!(o, "\n## Extraction\n");
    let _ = writeln!(o, "| rule | clean predictions |\n|---|---:|");
    for (k, v) in &r.extraction_rules {
        let _ = writeln!(o, "| {k} | {v} |");
    }
    for (k, v) in &r.box_syntaxes {
        let _ = writeln!(o, "| box syntax {k} | {v} |");
    }

    if !r.examples.is_empty() {
        let _ = writeln!(o, "\n## Example failures\n");
        let _ = writeln!(o, "| id | condition | why | expected | parsed | response |");
        let _ = writeln!(o, "|---|---|---|---|---|---|");
        for e in &r.examples {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&e.id),
                e.condition,
                e.why,
                cell(e.expected.as_deref().unwrap_or("")),
                cell(e.parsed.as_deref().unwrap_or("(unparsed)")),
                cell(&e.response)
            );
        }
    }

    if r.failures.count > 0 || r.rejected.count > 0 || !r.missing.is_empty() {
        let _ = writeln!(o, "\n## Problems\n");
        for f in &r.failures.items {
            let _ = writeln!(o, "- failed: {}", cell(&f.to_string()));
        }
        for x in &r.rejected.items {
            let _ = writeln!(
                o,
                "- rejected: {} {}@{}: {}",
                cell(x.id.as_deref().unwrap_or("(no id)")),
                x.perturbation.as_deref().unwrap_or("?"),
                x.severity.map(|s| s.to_string()).unwrap_or_default(),
                cell(&x.reason)
            );
        }
        for (cond, m) in &r.missing {
            let _ = writeln!(
                o,
                "- missing under {cond}: {} samples ({}{})",
                m.count,
                m.ids.join(", "),
                if m.count > m.ids.len() { ", …" } else { "" }
            );
        }
    }
    o
}

/// The calibration tables: per condition and kind, then the shift from clean.
fn calibration(o: &mut String, c: &super::calibration::Calibration) {
    use super::calibration::condition_label;
    let opt = |v: Option<f64>| v.map_or("–".to_string(), fmt4);
    let _ = writeln!(
        o,
        "\n## Calibration\n\nConfidence = the probability the model gave its answer; correct = accuracy 1 (closed, choice), exact match (open), Acc@0.5 (grounding). ECE over {} equal-mass bins; Brier = mean (confidence − correct)²; AUROC of confidence for correctness; AURC = area under the risk–coverage curve (lower is better). n counts answers with a confidence.\n",
        c.bins
    );
    let _ = writeln!(
        o,
        "| condition | kind | n | accuracy | mean conf. | conf. (wrong) | ECE | Brier | AUROC | AURC |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for x in &c.rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            condition_label(&x.perturbation, x.severity),
            x.kind,
            x.n,
            fmt4(x.accuracy),
            fmt4(x.mean_confidence),
            opt(x.mean_confidence_wrong),
            fmt4(x.ece),
            fmt4(x.brier),
            opt(x.auroc),
            fmt4(x.aurc)
        );
    }
    if !c.shift.is_empty() {
        let _ = writeln!(
            o,
            "\n### Calibration shift from clean\n\nEach condition minus clean, same kind. A confidence of wrong answers that stays high while accuracy falls is the dangerous case.\n"
        );
        let _ = writeln!(
            o,
            "| condition | kind | ECE change | confidence change | accuracy change | conf. (wrong), clean | conf. (wrong), here |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|");
        for x in &c.shift {
            let _ = writeln!(
                o,
                "| {} | {} | {:+.4} | {:+.4} | {:+.4} | {} | {} |",
                condition_label(&x.perturbation, x.severity),
                x.kind,
                x.ece_change,
                x.confidence_change,
                x.accuracy_change,
                opt(x.confidence_wrong_clean),
                opt(x.confidence_wrong)
            );
        }
    }
}
