//! Calibration: whether the model's confidence in its answers (the probability it gave
//! them, [`crate::score::confidence`]) tracks whether they are right, on clean images and
//! under each perturbation and severity. Confident wrong answers on degraded images are
//! what a clinician must fear, so the shift from clean is reported beside the numbers.
//!
//! - A record counts when it has a confidence; the others (old stores, engines without
//!   probabilities) are left out and counted in `without`.
//! - "Correct" is binary: `accuracy` = 1 for closed and choice questions (the exact set
//!   for multi-choice), `exact_match` = 1 for open answers, `acc@0.5` = 1 for grounding
//!   ([`CORRECT_BY`]).
//! - Numbers per (condition, kind), kind `all` pooling the kinds: ECE over 15 equal-mass
//!   bins, Brier, AUROC, AURC (definitions in [`crate::score::stats`] and
//!   docs/scoring.md), the reliability bins and the risk–coverage curve.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Scored;
pub use crate::score::confidence::{CORRECT_BY, correct};
use crate::score::stats::{self, ECE_BINS, ReliabilityBin, r6, round6, round6_opt};

/// The group that pools every kind.
pub const ALL: &str = "all";

/// How many points of the risk–coverage curve the report keeps: the first point at or
/// past each 5% of coverage.
const CURVE_POINTS: usize = 20;

/// Calibration under one condition, for one kind (or `all`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationRow {
    pub perturbation: String,
    pub severity: u8,
    pub kind: String,
    /// Records with a confidence, and without one (not counted).
    pub n: usize,
    pub without: usize,
    #[serde(serialize_with = "round6")]
    pub accuracy: f64,
    #[serde(serialize_with = "round6")]
    pub mean_confidence: f64,
    /// The mean confidence of the wrong answers; `null` when none is wrong.
    #[serde(serialize_with = "round6_opt")]
    pub mean_confidence_wrong: Option<f64>,
    #[serde(serialize_with = "round6")]
    pub ece: f64,
    #[serde(serialize_with = "round6")]
    pub brier: f64,
    /// `null` when every answer is right or every one wrong.
    #[serde(serialize_with = "round6_opt")]
    pub auroc: Option<f64>,
    #[serde(serialize_with = "round6")]
    pub aurc: f64,
    /// The equal-mass bins of the ECE: mean confidence against accuracy.
    pub reliability: Vec<ReliabilityBin>,
    /// `[coverage, risk]`, most confident answers first (at most 20 points).
    pub risk_coverage: Vec<[f64; 2]>,
}

/// How calibration moved from clean images to a perturbed condition, for one kind (or
/// `all`): this condition's row minus the clean row of the same kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftRow {
    pub perturbation: String,
    pub severity: u8,
    pub kind: String,
    #[serde(serialize_with = "round6")]
    pub ece_change: f64,
    #[serde(serialize_with = "round6")]
    pub confidence_change: f64,
    #[serde(serialize_with = "round6")]
    pub accuracy_change: f64,
    /// The mean confidence of wrong answers, clean and under the condition.
    #[serde(serialize_with = "round6_opt")]
    pub confidence_wrong_clean: Option<f64>,
    #[serde(serialize_with = "round6_opt")]
    pub confidence_wrong: Option<f64>,
}

/// The report's `calibration` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The number of equal-mass bins of the ECE.
    pub bins: usize,
    /// Kind → the metric whose value 1 counts as correct.
    pub correct_by: BTreeMap<String, String>,
    pub rows: Vec<CalibrationRow>,
    pub shift: Vec<ShiftRow>,
}

/// The calibration block; `None` when no record has a confidence.
pub fn calibration(scored: &[Scored]) -> Option<Calibration> {
    if !scored.iter().any(|r| r.confidence.is_some()) {
        return None;
    }
    // (perturbation, severity, kind) -> (pairs, records without a confidence)
    type Key = (String, u8, String);
    let mut groups: BTreeMap<Key, (Vec<(f64, bool)>, usize)> = BTreeMap::new();
    for r in scored {
        let Some(ok) = correct(r) else {
            continue;
        };
        let p = &r.condition.perturbation;
        let s = r.condition.severity;
        for kind in [ALL.to_string(), r.kind.to_string()] {
            let g = groups.entry((p.clone(), s, kind)).or_default();
            match r.confidence {
                Some(c) => g.0.push((c, ok)),
                None => g.1 += 1,
            }
        }
    }
    let mut rows: Vec<CalibrationRow> = groups
        .into_iter()
        .filter_map(|((perturbation, severity, kind), (pairs, without))| {
            row(perturbation, severity, kind, &pairs, without)
        })
        .collect();
    // Clean first, the baseline every other row is read against.
    rows.sort_by_key(|r| r.perturbation != crate::score::CLEAN);
    let clean: BTreeMap<&str, &CalibrationRow> = rows
        .iter()
        .filter(|r| r.perturbation == crate::score::CLEAN)
        .map(|r| (r.kind.as_str(), r))
        .collect();
    let shift = rows
        .iter()
        .filter(|r| r.perturbation != crate::score::CLEAN)
        .filter_map(|r| {
            let c = clean.get(r.kind.as_str())?;
            Some(ShiftRow {
                perturbation: r.perturbation.clone(),
                severity: r.severity,
                kind: r.kind.clone(),
                ece_change: r.ece - c.ece,
                confidence_change: r.mean_confidence - c.mean_confidence,
                accuracy_change: r.accuracy - c.accuracy,
                confidence_wrong_clean: c.mean_confidence_wrong,
                confidence_wrong: r.mean_confidence_wrong,
            })
        })
        .collect();
    Some(Calibration {
        bins: ECE_BINS,
        correct_by: CORRECT_BY
            .iter()
            .map(|(k, m)| (k.to_string(), m.to_string()))
            .collect(),
        rows,
        shift,
    })
}

fn row(
    perturbation: String,
    severity: u8,
    kind: String,
    pairs: &[(f64, bool)],
    without: usize,
) -> Option<CalibrationRow> {
    let n = pairs.len();
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let confidences: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let wrong: Vec<f64> = pairs.iter().filter(|p| !p.1).map(|p| p.0).collect();
    let curve = stats::risk_coverage(pairs);
    let mut kept: Vec<[f64; 2]> = Vec::new();
    for k in 1..=CURVE_POINTS {
        let at = k as f64 / CURVE_POINTS as f64;
        if let Some(&(c, r)) = curve.iter().find(|p| p.0 >= at - 1e-12) {
            let point = [r6(c), r6(r)];
            if kept.last() != Some(&point) {
                kept.push(point);
            }
        }
    }
    Some(CalibrationRow {
        perturbation,
        severity,
        kind,
        n,
        without,
        accuracy: pairs.iter().filter(|p| p.1).count() as f64 / n.max(1) as f64,
        mean_confidence: mean(&confidences)?,
        mean_confidence_wrong: mean(&wrong),
        ece: stats::ece(pairs)?,
        brier: stats::brier(pairs)?,
        auroc: stats::auroc(pairs),
        aurc: stats::aurc(pairs)?,
        reliability: stats::equal_mass_bins(pairs, ECE_BINS),
        risk_coverage: kept,
    })
}

/// The condition's label in tables: `clean` or `blur@3`.
pub fn condition_label(perturbation: &str, severity: u8) -> String {
    crate::score::Condition::new(perturbation, severity).to_string()
}

/// How many conditions the plots draw besides clean.
pub const PLOTTED: usize = 5;

/// The rows the plots draw, kind `all`: the clean row and the [`PLOTTED`] conditions with
/// the largest ECE (ties by condition order). A sweep has dozens of conditions; a line for
/// each would bury the ones a reader needs, the least trustworthy.
pub fn plotted(c: &Calibration) -> Vec<&CalibrationRow> {
    let all: Vec<&CalibrationRow> = c.rows.iter().filter(|r| r.kind == ALL).collect();
    let mut out: Vec<&CalibrationRow> = all
        .iter()
        .copied()
        .filter(|r| r.perturbation == crate::score::CLEAN)
        .collect();
    let mut others: Vec<&CalibrationRow> = all
        .into_iter()
        .filter(|r| r.perturbation != crate::score::CLEAN)
        .collect();
    // Stable: equal ECEs keep the rows' own (condition) order.
    others.sort_by(|a, b| b.ece.total_cmp(&a.ece));
    out.extend(others.into_iter().take(PLOTTED));
    out
}

/// One line for the printed summary: the clean calibration, all kinds together, and the
/// worst ECE under a perturbation.
pub fn clean_line(c: &Calibration) -> Option<String> {
    let clean = c
        .rows
        .iter()
        .find(|r| r.perturbation == crate::score::CLEAN && r.kind == ALL)?;
    let auroc = clean.auroc.map_or("-".to_string(), |a| format!("{a:.3}"));
    let worst = c
        .rows
        .iter()
        .filter(|r| r.perturbation != crate::score::CLEAN && r.kind == ALL)
        .max_by(|a, b| a.ece.total_cmp(&b.ece))
        .map(|w| {
            format!(
                "; worst ECE {:.3} under {}",
                w.ece,
                condition_label(&w.perturbation, w.severity)
            )
        })
        .unwrap_or_default();
    Some(format!(
        "calibration (clean, n={}): ECE {:.3}, Brier {:.3}, AUROC {auroc}, AURC {:.3}, mean confidence {:.3}{worst}",
        clean.n, clean.ece, clean.brier, clean.aurc, clean.mean_confidence
    ))
}
