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

use super::stats::{Bootstrap, mcnemar, paired_bootstrap, r6, round6, round6_opt};
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
    pub rows: Vec<CompareRow>,
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
            let (va, vb): (Vec<MetricValue>, Vec<MetricValue>) = pairs
                .iter()
                .filter_map(|(x, y)| Some((x.value(m.name)?, y.value(m.name)?)))
                .unzip();
            if va.is_empty() {
                continue;
            }
            let ra: Vec<&MetricValue> = va.iter().collect();
            let rb: Vec<&MetricValue> = vb.iter().collect();
            let (Some(av), Some(bv)) = (m.aggregate.apply(&va), m.aggregate.apply(&vb)) else {
                continue;
            };
            let label = format!("{}|{}|{}", cond.perturbation, cond.severity, m.name);
            let boot = paired_bootstrap(&ra, &rb, m.aggregate, cfg, &label);
            let mut row = CompareRow {
                perturbation: cond.perturbation.clone(),
                severity: cond.severity,
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
            rows.push(row);
        }
    }
    let ka: BTreeSet<_> = am.keys().collect();
    let kb: BTreeSet<_> = bm.keys().collect();
    Comparison {
        run_a: run_a.to_string(),
        run_b: run_b.to_string(),
        bootstrap: *cfg,
        paired,
        only_in_a: ka.difference(&kb).count(),
        only_in_b: kb.difference(&ka).count(),
        rows,
    }
}

fn signed(v: f64) -> String {
    format!("{:+.4}", r6(v))
}

/// A plain-text table for the terminal.
pub fn render_text(c: &Comparison) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "A = {}\nB = {}", c.run_a, c.run_b);
    let _ = writeln!(
        o,
        "{} paired records; {} only in A, {} only in B\n",
        c.paired, c.only_in_a, c.only_in_b
    );
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
        c.run_a, c.run_b
    );
    let _ = writeln!(
        o,
        "- {} paired records; {} only in A, {} only in B\n- paired bootstrap: {} resamples, seed {}\n",
        c.paired, c.only_in_a, c.only_in_b, c.bootstrap.resamples, c.bootstrap.seed
    );
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
        assert!(render_markdown(&c).contains("| clean | accuracy | 3 |"));
    }
}
