//! Analyses the report adds on top of the metrics: how much clustering widens the
//! intervals, and how much the answers depend on the image at all (the controls).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{Bootstrap, MetricSummary, Report, Scored};
use crate::sample::Sample;

/// The cluster bootstrap, measured on the clean records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clustering {
    /// The rule (`image`, `meta.video_id`).
    pub by: String,
    /// Clusters and questions among the clean records.
    pub clusters: usize,
    pub questions: usize,
    /// Per overall metric: the clustered interval's width over the naive one's, squared
    /// (the design effect: how many times the variance grows when questions that share an
    /// image are resampled together). 1 means clustering changed nothing.
    #[serde(serialize_with = "crate::score::stats::round6_map")]
    pub design_effect: BTreeMap<String, f64>,
}

/// The clustering block for the clean records, comparing `overall` with the naive
/// intervals; `None` when no record has a cluster.
pub(super) fn clustering(
    clean: &[&Scored],
    overall: &BTreeMap<String, MetricSummary>,
    cfg: &Bootstrap,
    rule: Option<&str>,
) -> Option<Clustering> {
    if !clean.iter().any(|r| r.cluster.is_some()) {
        return None;
    }
    let naive = crate::score::summarize_naive(clean, cfg, "overall");
    let design_effect = overall
        .iter()
        .filter_map(|(m, c)| {
            let n = naive.get(m)?;
            let (wc, wn) = (c.ci_high - c.ci_low, n.ci_high - n.ci_low);
            (wn > 0.0).then(|| (m.clone(), (wc / wn).powi(2)))
        })
        .collect();
    let clusters: std::collections::HashSet<&str> = clean
        .iter()
        .map(|r| r.cluster.as_deref().unwrap_or(r.id.as_str()))
        .collect();
    Some(Clustering {
        by: rule.unwrap_or("custom").to_string(),
        clusters: clusters.len(),
        questions: clean.len(),
        design_effect,
    })
}

/// One line on the cluster bootstrap, for every report format and the printed summary:
/// what was resampled together, how many clusters, and the headline design effects.
pub fn clustering_line(r: &Report) -> Option<String> {
    let c = r.clustering.as_ref()?;
    let effects: Vec<String> = ["accuracy", "token_f1", "acc@0.5"]
        .iter()
        .filter_map(|m| c.design_effect.get(*m).map(|d| format!("{m} {d:.2}")))
        .collect();
    Some(format!(
        "intervals resample clusters by {}: {} clusters for {} clean questions{}",
        c.by,
        c.clusters,
        c.questions,
        if effects.is_empty() {
            String::new()
        } else {
            format!("; design effect {}", effects.join(", "))
        }
    ))
}

/// Image reliance under one control condition, for one group of samples: the headline
/// metric on clean images and under the control, on the samples answered under both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelianceRow {
    /// The control (`blank-image`).
    pub control: String,
    /// `kind` or `modality`, and the group's value.
    pub dimension: String,
    pub group: String,
    /// The metric compared: `accuracy` for closed and choice questions, `token_f1` for open.
    pub metric: String,
    pub n: usize,
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub clean: f64,
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub under_control: f64,
    /// Clean minus control: how much the image is worth to the model. Near 0: it answers
    /// as well without looking.
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub reliance: f64,
    /// The share of answers that stay the same when the image is taken away.
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub unchanged: f64,
}

/// The metric a kind is compared on under a control; grounding has none (boxes are not
/// scored under controls).
fn reliance_metric(kind: &str) -> Option<&'static str> {
    match kind {
        "closed" | "single_choice" | "multi_choice" => Some("accuracy"),
        "open" => Some("token_f1"),
        _ => None,
    }
}

/// One row per (control condition, kind or modality group), from the records of every
/// condition whose perturbation is a control.
pub fn reliance(scored: &[Scored], samples: &HashMap<&str, &Sample>) -> Vec<RelianceRow> {
    let clean: HashMap<&str, &Scored> = scored
        .iter()
        .filter(|r| r.condition.is_clean())
        .map(|r| (r.id.as_str(), r))
        .collect();
    // (control, dimension, group, metric) -> (clean values, control values, unchanged)
    type Acc = (Vec<f64>, Vec<f64>, usize);
    let mut acc: BTreeMap<(String, String, String, &'static str), Acc> = BTreeMap::new();
    for r in scored
        .iter()
        .filter(|r| is_control(&r.condition.perturbation))
    {
        let Some(c) = clean.get(r.id.as_str()) else {
            continue;
        };
        // Without the sample (compare reads only scored records), by kind alone.
        let modality = samples.get(r.id.as_str()).map(|s| s.modality());
        let kind = r.kind.to_string();
        let Some(metric) = reliance_metric(&kind) else {
            continue;
        };
        let (Some(cv), Some(rv)) = (c.metrics.get(metric), r.metrics.get(metric)) else {
            continue;
        };
        let groups =
            std::iter::once(("kind", kind.clone())).chain(modality.map(|m| ("modality", m)));
        for (dim, group) in groups {
            let e = acc
                .entry((
                    r.condition.perturbation.clone(),
                    dim.to_string(),
                    group,
                    metric,
                ))
                .or_default();
            e.0.push(*cv);
            e.1.push(*rv);
            e.2 += usize::from(c.extracted == r.extracted);
        }
    }
    acc.into_iter()
        .map(|((control, dimension, group, metric), (cv, rv, same))| {
            let n = cv.len();
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            let (clean, under) = (mean(&cv), mean(&rv));
            RelianceRow {
                control,
                dimension,
                group,
                metric: metric.to_string(),
                n,
                clean,
                under_control: under,
                reliance: clean - under,
                unchanged: same as f64 / n.max(1) as f64,
            }
        })
        .collect()
}

/// Whether a condition's perturbation degrades the images (not a control, not an option
/// rotation); a name medvqa does not know (scored from elsewhere) counts as one.
pub fn is_degradation(perturbation: &str) -> bool {
    crate::perturb::find(perturbation).is_none_or(|p| p.is_degradation())
}

/// Whether a condition's perturbation is a control (its family is `control`).
pub fn is_control(perturbation: &str) -> bool {
    crate::perturb::find(perturbation).is_some_and(|p| p.family == crate::perturb::Family::Control)
}

/// Consistency under the perturbations crossed with reliance on the image, per control and
/// question kind: "stable because it ignores the image" made visible. Over the questions
/// answered clean, under the control and under at least one degrading condition:
/// - consistent: the parsed answer is the clean one under most (more than half) of the
///   degrading conditions it was asked under (a sweep has dozens; "every" would leave
///   almost nothing consistent);
/// - image-reliant: the control changed the parsed answer.
///
/// The four shares add up to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsistencyRow {
    pub control: String,
    pub kind: String,
    pub n: usize,
    /// Consistent and image-reliant: stable, and it looked.
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub consistent_reliant: f64,
    /// Consistent but not image-reliant: stable because it ignores the image.
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub consistent_ignores_image: f64,
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub inconsistent_reliant: f64,
    #[serde(serialize_with = "crate::score::stats::round6")]
    pub inconsistent_ignores_image: f64,
}

/// The 2×2 rows ([`ConsistencyRow`]); empty without a control or a degrading condition.
pub fn consistency_by_reliance(scored: &[Scored]) -> Vec<ConsistencyRow> {
    // id -> (clean key, controls: name -> key, all degradations consistent, any degradation)
    type Q<'a> = (
        Option<Option<String>>,
        BTreeMap<&'a str, Option<String>>,
        Vec<Option<String>>,
        String,
    );
    let mut qs: BTreeMap<&str, Q<'_>> = BTreeMap::new();
    for r in scored {
        let e = qs
            .entry(r.id.as_str())
            .or_insert_with(|| (None, BTreeMap::new(), Vec::new(), r.kind.to_string()));
        if r.condition.is_clean() {
            e.0 = Some(r.flip_key());
        } else if is_control(&r.condition.perturbation) {
            e.1.insert(r.condition.perturbation.as_str(), r.flip_key());
        } else if is_degradation(&r.condition.perturbation) {
            e.2.push(r.flip_key());
        }
    }
    // (control, kind) -> [cr, ci, ir, ii]
    let mut acc: BTreeMap<(&str, String), [usize; 4]> = BTreeMap::new();
    for (clean, controls, degraded, kind) in qs.values() {
        let Some(clean) = clean else { continue };
        if degraded.is_empty() || clean.is_none() {
            continue;
        }
        let kept = degraded.iter().filter(|k| *k == clean).count();
        let consistent = 2 * kept > degraded.len();
        for (control, key) in controls {
            let reliant = key != clean;
            let cell = match (consistent, reliant) {
                (true, true) => 0,
                (true, false) => 1,
                (false, true) => 2,
                (false, false) => 3,
            };
            acc.entry((control, kind.clone())).or_default()[cell] += 1;
        }
    }
    acc.into_iter()
        .map(|((control, kind), c)| {
            let n: usize = c.iter().sum();
            let share = |i: usize| c[i] as f64 / n.max(1) as f64;
            ConsistencyRow {
                control: control.to_string(),
                kind,
                n,
                consistent_reliant: share(0),
                consistent_ignores_image: share(1),
                inconsistent_reliant: share(2),
                inconsistent_ignores_image: share(3),
            }
        })
        .collect()
}
