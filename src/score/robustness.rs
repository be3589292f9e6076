//! Robustness tables: every metric per perturbation and severity, compared with clean.
//!
//! For each condition (perturbation × severity) present in the scored records:
//! - `metrics`: every metric over that condition's records, with bootstrap intervals;
//! - `relative`: per metric, the perturbed value over the clean value, both computed on the
//!   samples that have a prediction under both (so a partial sweep compares like with
//!   like); absent where the clean value is 0;
//! - `flip_rate`: the share of those paired samples whose parsed answer differs from the
//!   clean one (open answers compared after normalisation; unparsed is an answer of its
//!   own; samples with no answer to extract are left out);
//! - `miou_drop`: paired clean mIoU minus perturbed mIoU.
//!
//! Under a frame perturbation, the records of questions whose answer the dataset could not
//! follow through the new frame order ([`Scored::order_dependent`]) form a row of their own,
//! marked `order_dependent`; the caller leaves such rows out of the summary.
//!
//! The summary per model is the mean relative score: for each condition the mean of the
//! headline metrics' relative scores ([`super::Metric::headline`]: accuracy, token F1,
//! mIoU), averaged over conditions. A model unaffected by every perturbation scores 1.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::stats::{Bootstrap, round6_map, round6_opt};
use super::{Condition, METRICS, MetricSummary, MetricValue, Scored, Unparsed, summarize};

/// One row of the robustness table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionRow {
    pub perturbation: String,
    pub severity: u8,
    /// The records of questions whose answer the dataset could not follow through this
    /// frame perturbation: reported apart, never counted in the summary.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub order_dependent: bool,
    /// Records under this condition.
    pub n: usize,
    pub metrics: BTreeMap<String, MetricSummary>,
    #[serde(serialize_with = "round6_map")]
    pub relative: BTreeMap<String, f64>,
    #[serde(serialize_with = "round6_opt")]
    pub flip_rate: Option<f64>,
    /// Paired samples the flip rate is over.
    pub flip_n: usize,
    #[serde(serialize_with = "round6_opt")]
    pub miou_drop: Option<f64>,
    pub unparsed: Unparsed,
}

/// The single robustness number per model, and its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Mean over conditions of the headline metrics' mean relative score.
    #[serde(serialize_with = "round6_opt")]
    pub score: Option<f64>,
    /// Per metric, the mean relative score over the conditions that have it.
    #[serde(serialize_with = "round6_map")]
    pub mean_relative: BTreeMap<String, f64>,
    pub conditions: usize,
}

/// The table over every non-clean condition, in `(perturbation, severity)` order; its
/// one-number [`summary`] is the caller's, over the rows it counts.
pub fn table(scored: &[Scored], cfg: &Bootstrap) -> Vec<ConditionRow> {
    let mut by_cond: BTreeMap<(&Condition, bool), Vec<&Scored>> = BTreeMap::new();
    for s in scored {
        by_cond
            .entry((&s.condition, s.order_dependent))
            .or_default()
            .push(s);
    }
    let clean: HashMap<&str, &Scored> = scored
        .iter()
        .filter(|s| s.condition.is_clean())
        .map(|s| (s.id.as_str(), s))
        .collect();
    let mut rows = Vec::new();
    for ((cond, dependent), recs) in by_cond {
        if cond.is_clean() {
            continue;
        }
        let mut r = row(cond, &recs, &clean, cfg);
        if dependent {
            // A series of its own in every table and chart.
            r.perturbation = format!("{} (order-dependent)", cond.perturbation);
            r.order_dependent = true;
        }
        rows.push(r);
    }
    rows
}

fn row(
    cond: &Condition,
    recs: &[&Scored],
    clean: &HashMap<&str, &Scored>,
    cfg: &Bootstrap,
) -> ConditionRow {
    let label = format!("robustness|{}|{}", cond.perturbation, cond.severity);
    let metrics = summarize(recs, cfg, &label);
    let pairs: Vec<(&Scored, &Scored)> = recs
        .iter()
        .filter_map(|p| clean.get(p.id.as_str()).map(|c| (*c, *p)))
        .collect();
    let mut relative = BTreeMap::new();
    let mut paired_values: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for m in METRICS {
        let (cv, pv): (Vec<MetricValue>, Vec<MetricValue>) = pairs
            .iter()
            .filter_map(|(c, p)| Some((c.value(m.name)?, p.value(m.name)?)))
            .unzip();
        if cv.is_empty() {
            continue;
        }
        let (Some(c), Some(p)) = (m.aggregate.apply(&cv), m.aggregate.apply(&pv)) else {
            continue;
        };
        paired_values.insert(m.name, (c, p));
        if c > 0.0 {
            relative.insert(m.name.to_string(), p / c);
        }
    }
    let flips: Vec<bool> = pairs
        .iter()
        .filter_map(|(c, p)| Some(c.flip_key()? != p.flip_key()?))
        .collect();
    let flip_rate = (!flips.is_empty())
        .then(|| flips.iter().filter(|f| **f).count() as f64 / flips.len() as f64);
    ConditionRow {
        perturbation: cond.perturbation.clone(),
        severity: cond.severity,
        order_dependent: false,
        n: recs.len(),
        metrics,
        relative,
        flip_rate,
        flip_n: flips.len(),
        miou_drop: paired_values.get("miou").map(|(c, p)| c - p),
        unparsed: Unparsed::of(recs.iter().copied()),
    }
}

/// The one-number summary over `rows` (the caller leaves out the conditions that are not
/// robustness conditions, such as controls).
pub fn summary(rows: &[ConditionRow]) -> Option<Summary> {
    if rows.is_empty() {
        return None;
    }
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut per_condition = Vec::new();
    for r in rows {
        for (k, v) in &r.relative {
            let e = sums.entry(k.clone()).or_default();
            e.0 += v;
            e.1 += 1;
        }
        let heads: Vec<f64> = METRICS
            .iter()
            .filter(|m| m.headline)
            .filter_map(|m| r.relative.get(m.name).copied())
            .collect();
        if !heads.is_empty() {
            per_condition.push(heads.iter().sum::<f64>() / heads.len() as f64);
        }
    }
    Some(Summary {
        score: (!per_condition.is_empty())
            .then(|| per_condition.iter().sum::<f64>() / per_condition.len() as f64),
        mean_relative: sums
            .into_iter()
            .map(|(k, (s, n))| (k, s / n as f64))
            .collect(),
        conditions: rows.len(),
    })
}
