//! Paired comparison of two scored runs (`medvqa compare RUN_A RUN_B`).
//!
//! ```text
//! $ medvqa compare runs/a runs/b
//! condition              metric          n        A        B       A-B                95% CI        p  test
//! clean                  accuracy       60   1.0000   0.8333   +0.1667    [+0.0833, +0.2667]   0.0020  mcnemar_exact (A only 10, B only 0)
//! ```
//!
//! Records pair on `(id, perturbation, severity)`; only pairs present in both runs count,
//! and the counts of unpaired records are reported. For every condition and every metric
//! that both records of a pair have:
//! - `accuracy`: McNemar's exact test on the discordant pairs gives the p-value;
//! - every metric, `accuracy` included: the paired bootstrap gives the interval of
//!   `A − B` (and the p-value for metrics other than accuracy), aggregated as the report
//!   aggregates it (corpus BLEU, pooled recall, means).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::stats::{self, Bootstrap, mcnemar, paired_bootstrap_clustered, r6, round6, round6_opt};
use super::{Condition, METRICS, MetricValue, Scored};

/// One metric under one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    pub perturbation: String,
    pub severity: u8,
    pub metric: String,
    /// Paired samples.
    pub n: usize,
    #[serde(serialize_with = "round6")]
    pub a: f64,
    #[serde(serialize_with = "round6")]
    pub b: f64,
    /// `a - b`.
    #[serde(serialize_with = "round6")]
    pub diff: f64,
    #[serde(serialize_with = "round6_opt")]
    pub ci_low: Option<f64>,
    #[serde(serialize_with = "round6_opt")]
    pub ci_high: Option<f64>,
    #[serde(serialize_with = "round6")]
    pub p_value: f64,
    /// `mcnemar_exact` or `paired_bootstrap`.
    pub test: String,
    /// McNemar's discordant counts: right only in A, right only in B.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_only: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b_only: Option<usize>,
}

/// `compare.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub run_a: String,
    pub run_b: String,
    pub bootstrap: Bootstrap,
    /// Records paired on (id, perturbation, severity).
    pub paired: usize,
    pub only_in_a: usize,
    pub only_in_b: usize,
    /// Conditions with paired records (clean counts as one).
    pub conditions: usize,
    /// Clusters among the clean pairs (from run A's records), when the records carry them:
    /// the paired bootstrap resamples these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<usize>,
    /// The models' names, from each run's report.json header, where it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_a: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_b: Option<String>,
    /// Each question kind's headline metric (accuracy; token F1 for open; Acc@0.5 for
    /// grounding), clean and over every perturbed condition pooled ([`PERTURBED`]).
    pub headline: Vec<KindRow>,
    pub rows: Vec<CompareRow>,
    /// Calibration of both runs per condition, on the pairs where both give a confidence;
    /// empty when either run has none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calibration: Vec<CalibrationPair>,
    /// The analyses of each run on its own records, side by side (image reliance under
    /// each control, option order); filled in by the caller, which has the report's
    /// analyses. Empty when neither run has a control or an option rotation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analyses: Vec<SideBySide>,
}

/// One analysis number for both runs, each computed on its own records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideBySide {
    /// `image_reliance:<control>` or `option_order`.
    pub analysis: String,
    /// The question kind.
    pub group: String,
    /// `reliance`, `unchanged`, `circular_accuracy`, `changed`.
    pub metric: String,
    #[serde(serialize_with = "super::stats::round6_opt")]
    pub a: Option<f64>,
    #[serde(serialize_with = "super::stats::round6_opt")]
    pub b: Option<f64>,
}

/// Both runs' calibration under one condition (docs/scoring.md, Calibration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationPair {
    pub perturbation: String,
    pub severity: u8,
    /// Pairs where both records have a confidence.
    pub n: usize,
    #[serde(serialize_with = "round6")]
    pub ece_a: f64,
    #[serde(serialize_with = "round6")]
    pub ece_b: f64,
    #[serde(serialize_with = "round6")]
    pub brier_a: f64,
    #[serde(serialize_with = "round6")]
    pub brier_b: f64,
    #[serde(serialize_with = "round6_opt")]
    pub auroc_a: Option<f64>,
    #[serde(serialize_with = "round6_opt")]
    pub auroc_b: Option<f64>,
    #[serde(serialize_with = "round6")]
    pub aurc_a: f64,
    #[serde(serialize_with = "round6")]
    pub aurc_b: f64,
}

/// [`CalibrationPair`] over the pairs where both records have a confidence; `None` if none.
fn calibration_pair(cond: &Condition, pairs: &[(&Scored, &Scored)]) -> Option<CalibrationPair> {
    use super::confidence::pair;
    type Pairs = Vec<(f64, bool)>;
    let (a, b): (Pairs, Pairs) = pairs
        .iter()
        .filter_map(|(x, y)| Some((pair(x)?, pair(y)?)))
        .unzip();
    Some(CalibrationPair {
        perturbation: cond.perturbation.clone(),
        severity: cond.severity,
        n: a.len(),
        ece_a: stats::ece(&a)?,
        ece_b: stats::ece(&b)?,
        brier_a: stats::brier(&a)?,
        brier_b: stats::brier(&b)?,
        auroc_a: stats::auroc(&a),
        auroc_b: stats::auroc(&b),
        aurc_a: stats::aurc(&a)?,
        aurc_b: stats::aurc(&b)?,
    })
}

/// A headline row: one question kind's headline metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindRow {
    pub kind: String,
    #[serde(flatten)]
    pub row: CompareRow,
}

/// Compares two runs' scored records.
pub fn compare(
    run_a: &str,
    a: &[Scored],
    run_b: &str,
    b: &[Scored],
    cfg: &Bootstrap,
) -> Comparison {
    let key = |s: &Scored| (s.id.clone(), s.condition.clone());
    let am: BTreeMap<(String, Condition), &Scored> = a.iter().map(|s| (key(s), s)).collect();
    let bm: BTreeMap<(String, Condition), &Scored> = b.iter().map(|s| (key(s), s)).collect();
    let mut by_cond: BTreeMap<Condition, Vec<(&Scored, &Scored)>> = BTreeMap::new();
    for (k, x) in &am {
        if let Some(y) = bm.get(k) {
            by_cond.entry(k.1.clone()).or_default().push((x, y));
        }
    }
    let paired: usize = by_cond.values().map(Vec::len).sum();
    let mut rows = Vec::new();
    for (cond, pairs) in &by_cond {
        for m in METRICS {
            rows.extend(compare_metric(
                &cond.perturbation,
                cond.severity,
                pairs,
                m,
                cfg,
            ));
        }
    }
    // The summary: each kind's headline metric, clean, then every perturbed condition pooled.
    let mut headline = Vec::new();
    let clean: Vec<(&Scored, &Scored)> = by_cond
        .iter()
        .filter(|(c, _)| c.is_clean())
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    let perturbed: Vec<(&Scored, &Scored)> = by_cond
        .iter()
        .filter(|(c, _)| !c.is_clean())
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    for (scope, pairs) in [("clean", &clean), (PERTURBED, &perturbed)] {
        for (kind, metric) in super::HEADLINE {
            let of_kind: Vec<(&Scored, &Scored)> = pairs
                .iter()
                .filter(|(x, _)| x.kind.as_str() == kind)
                .copied()
                .collect();
            let Some(m) = METRICS.iter().find(|m| m.name == metric) else {
                continue;
            };
            if let Some(row) = compare_metric(scope, 0, &of_kind, m, cfg) {
                headline.push(KindRow {
                    kind: kind.to_string(),
                    row,
                });
            }
        }
    }
    let ka: BTreeSet<_> = am.keys().collect();
    let kb: BTreeSet<_> = bm.keys().collect();
    let clusters = clean.iter().any(|(x, _)| x.cluster.is_some()).then(|| {
        clean
            .iter()
            .map(|(x, _)| x.cluster.as_deref().unwrap_or(x.id.as_str()))
            .collect::<BTreeSet<_>>()
            .len()
    });
    Comparison {
        clusters,
        run_a: run_a.to_string(),
        run_b: run_b.to_string(),
        model_a: None,
        model_b: None,
        bootstrap: *cfg,
        paired,
        only_in_a: ka.difference(&kb).count(),
        only_in_b: kb.difference(&ka).count(),
        conditions: by_cond.len(),
        headline,
        rows,
        calibration: by_cond
            .iter()
            .filter_map(|(c, p)| calibration_pair(c, p))
            .collect(),
        analyses: Vec::new(),
    }
}

/// The `perturbation` of the pooled headline rows: every perturbed condition together.
pub const PERTURBED: &str = "all perturbed";

/// One metric over paired records; `None` where no pair has it.
fn compare_metric(
    perturbation: &str,
    severity: u8,
    pairs: &[(&Scored, &Scored)],
    m: &super::Metric,
    cfg: &Bootstrap,
) -> Option<CompareRow> {
    let mut va: Vec<MetricValue> = Vec::new();
    let mut vb: Vec<MetricValue> = Vec::new();
    // The pair's cluster, from run A's record (both runs ask the same questions of the same
    // images); with no clusters the bootstrap resamples single pairs.
    let mut clusters: Vec<&str> = Vec::new();
    let clustered = pairs.iter().any(|(x, _)| x.cluster.is_some());
    for (x, y) in pairs {
        if let (Some(a), Some(b)) = (x.value(m.name), y.value(m.name)) {
            va.push(a);
            vb.push(b);
            if clustered {
                clusters.push(x.cluster.as_deref().unwrap_or(x.id.as_str()));
            }
        }
    }
    if va.is_empty() {
        return None;
    }
    let ra: Vec<&MetricValue> = va.iter().collect();
    let rb: Vec<&MetricValue> = vb.iter().collect();
    let (av, bv) = (m.aggregate.apply(&va)?, m.aggregate.apply(&vb)?);
    let label = format!("{perturbation}|{severity}|{}", m.name);
    let boot = paired_bootstrap_clustered(&ra, &rb, &clusters, m.aggregate, cfg, &label);
    let mut row = CompareRow {
        perturbation: perturbation.to_string(),
        severity,
        metric: m.name.to_string(),
        n: va.len(),
        a: av,
        b: bv,
        diff: av - bv,
        ci_low: boot.map(|d| d.ci_low),
        ci_high: boot.map(|d| d.ci_high),
        p_value: boot.map_or(1.0, |d| d.p_value),
        test: "paired_bootstrap".to_string(),
        a_only: None,
        b_only: None,
    };
    if m.name == "accuracy" {
        let xa: Vec<bool> = va.iter().map(|v| v.value >= 0.5).collect();
        let xb: Vec<bool> = vb.iter().map(|v| v.value >= 0.5).collect();
        let t = mcnemar(&xa, &xb);
        row.p_value = t.p_value;
        row.test = "mcnemar_exact".to_string();
        row.a_only = Some(t.a_only);
        row.b_only = Some(t.b_only);
    }
    Some(row)
}

fn signed(v: f64) -> String {
    format!("{:+.4}", r6(v))
}

fn run_line(run: &str, model: Option<&str>) -> String {
    match model {
        Some(m) => format!("{run} (model: {m})"),
        None => run.to_string(),
    }
}

/// Which run a row favours at p < 0.05, in words.
fn verdict(r: &CompareRow) -> &'static str {
    if r.p_value >= 0.05 || r.diff == 0.0 {
        "no significant difference"
    } else if r.diff > 0.0 {
        "A better"
    } else {
        "B better"
    }
}

/// The short summary the terminal shows first: the runs, what was paired, each kind's
/// headline metric with its test, and how the perturbed conditions split.
pub fn render_summary(c: &Comparison) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "A = {}", run_line(&c.run_a, c.model_a.as_deref()));
    let _ = writeln!(o, "B = {}", run_line(&c.run_b, c.model_b.as_deref()));
    let _ = writeln!(
        o,
        "{} paired records over {} condition(s); {} only in A, {} only in B\n",
        c.paired, c.conditions, c.only_in_a, c.only_in_b
    );
    let clean_pairs = c
        .headline
        .iter()
        .filter(|k| k.row.perturbation == "clean")
        .map(|k| k.row.n)
        .sum::<usize>();
    if let Some(k) = c
        .clusters
        .filter(|&k| k > 0 && clean_pairs as f64 / k as f64 > 1.5)
    {
        let _ = writeln!(
            o,
            "note: the clean questions fall in {k} clusters (about {:.1} questions each); the bootstrap intervals resample clusters, McNemar's test counts questions as independent, so read its p-values as optimistic\n",
            clean_pairs as f64 / k as f64
        );
    }
    let _ = writeln!(
        o,
        "{:<15} {:<14} {:<9} {:>5} {:>7} {:>7} {:>8} {:>18} {:>8}  verdict (p < 0.05)",
        "scope", "kind", "metric", "n", "A", "B", "A-B", "95% CI", "p"
    );
    for k in &c.headline {
        let r = &k.row;
        let ci = match (r.ci_low, r.ci_high) {
            (Some(l), Some(h)) => format!("[{:+.3}, {:+.3}]", r6(l), r6(h)),
            _ => String::new(),
        };
        let p = if r.p_value < 1e-4 {
            "<0.0001".to_string()
        } else {
            format!("{:.4}", r.p_value)
        };
        let _ = writeln!(
            o,
            "{:<15} {:<14} {:<9} {:>5} {:>7.3} {:>7.3} {:>+8.3} {:>18} {:>8}  {}{}",
            r.perturbation,
            k.kind,
            r.metric,
            r.n,
            r.a,
            r.b,
            r6(r.diff),
            ci,
            p,
            verdict(r),
            if r.test == "mcnemar_exact" {
                " (McNemar)"
            } else {
                ""
            }
        );
    }
    let perturbed: Vec<&CompareRow> = c
        .rows
        .iter()
        .filter(|r| r.perturbation != super::CLEAN && r.metric == "accuracy")
        .collect();
    if !perturbed.is_empty() {
        let count = |v: &str| perturbed.iter().filter(|r| verdict(r) == v).count();
        let _ = writeln!(
            o,
            "\naccuracy per perturbed condition ({}): A better in {}, B better in {}, no significant difference in {}",
            perturbed.len(),
            count("A better"),
            count("B better"),
            count("no significant difference")
        );
    }
    if !c.analyses.is_empty() {
        let _ = writeln!(
            o,
            "\nanalyses (each run on its own records; reliance = clean minus control, circular accuracy = right under every option order):"
        );
        let _ = writeln!(
            o,
            "{:<28} {:<14} {:<18} {:>7} {:>7}",
            "analysis", "kind", "metric", "A", "B"
        );
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3}"));
        for x in &c.analyses {
            let _ = writeln!(
                o,
                "{:<28} {:<14} {:<18} {:>7} {:>7}",
                x.analysis,
                x.group,
                x.metric,
                opt(x.a),
                opt(x.b)
            );
        }
    }
    if !c.calibration.is_empty() {
        let _ = writeln!(
            o,
            "\ncalibration (pairs where both runs give a confidence; ECE over 15 equal-mass bins, lower is better; AUROC higher is better):"
        );
        let _ = writeln!(
            o,
            "{:<22} {:>5} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
            "condition",
            "n",
            "ECE A",
            "ECE B",
            "Brier A",
            "Brier B",
            "AUROC A",
            "AUROC B",
            "AURC A",
            "AURC B"
        );
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.3}"));
        for x in &c.calibration {
            let _ = writeln!(
                o,
                "{:<22} {:>5} {:>7.3} {:>7.3} {:>8.3} {:>8.3} {:>8} {:>8} {:>7.3} {:>7.3}",
                Condition::new(x.perturbation.clone(), x.severity).to_string(),
                x.n,
                x.ece_a,
                x.ece_b,
                x.brier_a,
                x.brier_b,
                opt(x.auroc_a),
                opt(x.auroc_b),
                x.aurc_a,
                x.aurc_b
            );
        }
    }
    o
}

/// The summary, then the full table (every metric under every condition) for the terminal.
pub fn render_text(c: &Comparison) -> String {
    let mut o = render_summary(c);
    let _ = writeln!(o, "\nevery metric under every condition:\n");
    let _ = writeln!(
        o,
        "{:<22} {:<17} {:>5} {:>8} {:>8} {:>9} {:>21} {:>8}  test",
        "condition", "metric", "n", "A", "B", "A-B", "95% CI", "p"
    );
    for r in &c.rows {
        let cond = Condition::new(r.perturbation.clone(), r.severity).to_string();
        let ci = match (r.ci_low, r.ci_high) {
            (Some(l), Some(h)) => format!("[{}, {}]", signed(l), signed(h)),
            _ => String::new(),
        };
        let extra = match (r.a_only, r.b_only) {
            (Some(x), Some(y)) => format!(" (A only {x}, B only {y})"),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "{:<22} {:<17} {:>5} {:>8.4} {:>8.4} {:>9} {:>21} {:>8.4}  {}{}",
            cond,
            r.metric,
            r.n,
            r.a,
            r.b,
            signed(r.diff),
            ci,
            r.p_value,
            r.test,
            extra
        );
    }
    o
}

/// The same as a Markdown table.
pub fn render_markdown(c: &Comparison) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# medvqa compare\n\n- A: `{}`\n- B: `{}`",
        run_line(&c.run_a, c.model_a.as_deref()),
        run_line(&c.run_b, c.model_b.as_deref())
    );
    let _ = writeln!(
        o,
        "- {} paired records; {} only in A, {} only in B\n- paired bootstrap: {} resamples, seed {}\n",
        c.paired, c.only_in_a, c.only_in_b, c.bootstrap.resamples, c.bootstrap.seed
    );
    let _ = writeln!(o, "## Summary\n\n```text\n{}```\n", render_summary(c));
    let _ = writeln!(o, "## Every metric under every condition\n");
    let _ = writeln!(
        o,
        "| condition | metric | n | A | B | A−B | 95% CI | p | test |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---|---:|---|");
    for r in &c.rows {
        let cond = Condition::new(r.perturbation.clone(), r.severity).to_string();
        let ci = match (r.ci_low, r.ci_high) {
            (Some(l), Some(h)) => format!("[{}, {}]", signed(l), signed(h)),
            _ => String::new(),
        };
        let test = match (r.a_only, r.b_only) {
            (Some(x), Some(y)) => format!("{} (A only {x}, B only {y})", r.test),
            _ => r.test.clone(),
        };
        let _ = writeln!(
            o,
            "| {cond} | {} | {} | {:.4} | {:.4} | {} | {ci} | {:.4} | {test} |",
            r.metric,
            r.n,
            r.a,
            r.b,
            signed(r.diff),
            r.p_value
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BoxFrame;
    use crate::sample::Sample;
    use crate::score::tests::battery;
    use crate::score::{GroundingScope, ImageSizes, Prediction, ScoreOptions, score_run};

    struct NoSizes;
    impl ImageSizes for NoSizes {
        fn size(&self, _: &Sample, _: usize) -> Result<(u32, u32), String> {
            Err("none".into())
        }
    }

    fn run(responses: &[(&str, &str)]) -> Vec<Scored> {
        let o = ScoreOptions {
            judge: None,
            box_frame: BoxFrame::Normalized,
            grounding: GroundingScope::Boxed,
            semantic: None,
        };
        let p: Vec<Prediction> = responses
            .iter()
            .map(|(i, r)| Prediction::clean(*i, *r))
            .collect();
        score_run(&battery(), &p, &o, &NoSizes).scored
    }

    #[test]
    fn calibration_is_compared_on_pairs_with_confidences() {
        let mut a = run(&[("closed", "yes"), ("single", "C"), ("multi", "A")]);
        let mut b = run(&[("closed", "no"), ("single", "C"), ("multi", "A")]);
        assert!(
            compare("a", &a, "b", &b, &Bootstrap::default())
                .calibration
                .is_empty()
        );
        // A: closed right 0.9, single right 0.8, multi wrong 0.4 (no confidence in B).
        // B: closed wrong 0.7, single right 0.6.
        let conf =
            |id: &str, table: &[(&str, f64)]| table.iter().find(|(i, _)| *i == id).map(|x| x.1);
        for r in &mut a {
            r.confidence = conf(&r.id, &[("closed", 0.9), ("single", 0.8), ("multi", 0.4)]);
        }
        for r in &mut b {
            r.confidence = conf(&r.id, &[("closed", 0.7), ("single", 0.6)]);
        }
        let c = compare("a", &a, "b", &b, &Bootstrap::default());
        let x = &c.calibration[0];
        assert_eq!(x.n, 2);
        // A over its two pairs: both right, ECE = (0.1 + 0.2) / 2 = 0.15, Brier
        // (0.01 + 0.04) / 2 = 0.025. B: (0.7 + 0.4) / 2 = 0.55, Brier (0.49 + 0.16) / 2.
        let close = |p: f64, q: f64| (p - q).abs() < 1e-12;
        assert!(close(x.ece_a, 0.15) && close(x.brier_a, 0.025));
        assert!(close(x.ece_b, 0.55) && close(x.brier_b, 0.325));
        assert_eq!(x.auroc_a, None);
        // B: the right 0.6 ranks below the wrong 0.7: AUROC 0; AURC = (1 + 1/2) / 2.
        assert_eq!(x.auroc_b, Some(0.0));
        assert!(close(x.aurc_b, 0.75));
        assert!(render_summary(&c).contains("ECE A"));
    }

    #[test]
    fn pairs_shared_records_and_tests_accuracy_with_mcnemar() {
        let a = run(&[
            ("closed", "yes"),
            ("single", "C"),
            ("multi", "A and D"),
            ("open", "polyp"),
        ]);
        let b = run(&[
            ("closed", "no"),
            ("single", "A"),
            ("multi", "A and D"),
            ("ground", "[0,0,1,1]"),
        ]);
        let c = compare("a", &a, "b", &b, &Bootstrap::default());
        assert_eq!((c.paired, c.only_in_a, c.only_in_b), (3, 1, 1));
        let acc = c.rows.iter().find(|r| r.metric == "accuracy").unwrap();
        assert_eq!(acc.n, 3);
        assert_eq!((acc.a_only, acc.b_only), (Some(2), Some(0)));
        assert!((acc.diff - 2.0 / 3.0).abs() < 1e-12);
        // Two discordant pairs, both for A: p = 2 · (1/2)^2.
        assert!((acc.p_value - 0.5).abs() < 1e-12);
        assert_eq!(acc.test, "mcnemar_exact");
        let jac = c.rows.iter().find(|r| r.metric == "jaccard").unwrap();
        assert_eq!((jac.diff, jac.test.as_str()), (0.0, "paired_bootstrap"));
        assert!(render_text(&c).contains("mcnemar_exact"));
        // The summary leads with each kind's headline metric.
        let kinds: Vec<&str> = c.headline.iter().map(|k| k.kind.as_str()).collect();
        assert_eq!(kinds, ["closed", "single_choice", "multi_choice"]);
        let summary = render_summary(&c);
        assert!(
            summary.contains("3 paired records over 1 condition(s)"),
            "{summary}"
        );
        assert!(summary.contains("clean           closed"), "{summary}");
        assert!(render_markdown(&c).contains("| clean | accuracy | 3 |"));
    }

    #[test]
    fn clustered_records_are_counted_and_the_summary_warns_about_mcnemar() {
        let answers = [
            ("closed", "yes"),
            ("single", "C"),
            ("multi", "A and D"),
            ("open", "polyp"),
        ];
        let mut a = run(&answers);
        let mut b = run(&answers);
        let c = compare("a", &a, "b", &b, &Bootstrap::default());
        assert_eq!(c.clusters, None);
        assert!(!render_summary(&c).contains("note: the clean questions"));
        // All four questions on one image.
        for r in a.iter_mut().chain(b.iter_mut()) {
            r.cluster = Some("image:x".into());
        }
        let c = compare("a", &a, "b", &b, &Bootstrap::default());
        assert_eq!(c.clusters, Some(1));
        assert!(
            render_summary(&c).contains("1 clusters (about 4.0 questions each)"),
            "{}",
            render_summary(&c)
        );
    }
}
