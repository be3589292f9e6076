//! Scoring: responses in, per-sample results and metric values out (docs/design.md §4, §5, §7).
//!
//! ```text
//! $ medvqa score --dataset gemex:data/gemex --image-root mimic/files --predictions b.jsonl --out runs/b
//! scored 160 predictions (160 clean) on 160 samples; 0 rejected, 0 failed, 0 missing; unparsed (clean): 0 answers, 13 without boxes
//!   accuracy     0.8333  [0.7333, 0.9167]  n=60
//!   miou         0.7268  [0.6882, 0.7624]  n=160
//! ```
//!
//! The contract:
//! - [`score_run`] takes the samples, one [`Prediction`] per (sample, perturbation,
//!   severity), and [`ScoreOptions`]; it returns [`RunScores`]: a [`Scored`] record per
//!   accepted prediction, sorted by `(id, perturbation, severity)`, plus every prediction it
//!   refused ([`Rejected`]: unknown id, conflicting duplicates) and every sample it could not
//!   score ([`Failure`]). Nothing is dropped silently, and nothing depends on input order.
//! - Each record says how its answer was read ([`extract::Rule`], `unparsed` included) and
//!   which box syntax was read ([`boxes::BoxSyntax`]), and holds every applicable metric's
//!   per-sample value in [0, 1].
//! - Metrics live in one registry, [`METRICS`], keyed by the names of docs/design.md §7. Each entry
//!   says how a sample is scored (returning `None` where it does not apply) and how values
//!   combine over a group ([`Aggregate`]). `semantic` is scored by a model the caller
//!   supplies ([`SemanticScorer`]); without one it is not reported.
//! - Grounding metrics apply to samples with ground-truth boxes, as [`GroundingScope`]
//!   says; for them, box markup is cut out of the response before the answer is extracted.

pub mod bleu;
pub mod boxes;
pub mod compare;
pub mod confidence;
pub mod extract;
pub mod judge;
pub mod metric_map;
pub mod predictions;
pub mod robustness;
pub mod rouge;
pub mod stats;
pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::failure::{Failure, Stage};
use crate::geometry::{BBox, BoxFrame};
use crate::sample::{QuestionKind, Sample, Task};
use bleu::BleuStats;
use boxes::{BoxSyntax, Grounding, PredBox};
use extract::{Answer, Extraction, Rule};
pub use metric_map::MetricMap;

mod driver;
mod metrics;

pub use driver::*;
pub use metrics::*;
pub use predictions::{Prediction, Rejected};

/// The name and severity of the perturbation a prediction was made under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Condition {
    /// `none` for the clean images.
    pub perturbation: String,
    /// 0 for clean; 1–5 for the ImageNet-C style severities.
    pub severity: u8,
}

/// The meta key a seen sample carries (set to `true`) when a frame perturbation reordered
/// its frames and its answer could not be remapped (docs/datasets.md).
pub const ORDER_DEPENDENT: &str = "order_dependent";

/// The perturbation name of clean predictions.
pub const CLEAN: &str = "none";

impl Condition {
    pub fn clean() -> Condition {
        Condition {
            perturbation: CLEAN.to_string(),
            severity: 0,
        }
    }

    pub fn new(perturbation: impl Into<String>, severity: u8) -> Condition {
        Condition {
            perturbation: perturbation.into(),
            severity,
        }
    }

    pub fn is_clean(&self) -> bool {
        self.perturbation == CLEAN
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            f.write_str("clean")
        } else {
            write!(f, "{}@{}", self.perturbation, self.severity)
        }
    }
}

/// Which samples are scored on boxes (`--grounding` and `score.grounding` alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum GroundingScope {
    /// Every sample with ground-truth boxes, whatever its kind: grounded VQA as in GEMeX,
    /// where each answer is followed by `<location> [[…]]`. Opt in where the prompt asks
    /// for locations with every answer.
    Boxed,
    /// Only `grounding`-kind samples; boxes on other kinds are ignored. The default of
    /// `eval` and `score` alike.
    #[default]
    #[serde(alias = "grounding-kind")]
    #[value(name = "grounding-kind", alias = "grounding_kind")]
    GroundingKind,
}

impl GroundingScope {
    pub fn as_str(self) -> &'static str {
        match self {
            GroundingScope::Boxed => "boxed",
            GroundingScope::GroundingKind => "grounding_kind",
        }
    }

    /// In words, for summaries.
    pub fn describe(self) -> &'static str {
        match self {
            GroundingScope::Boxed => "every question with ground-truth boxes (boxed)",
            GroundingScope::GroundingKind => "grounding questions only (grounding-kind)",
        }
    }

    /// Whether `sample` is scored on boxes.
    pub fn applies(self, sample: &Sample) -> bool {
        !sample.boxes.is_empty()
            && (self == GroundingScope::Boxed || sample.kind() == QuestionKind::Grounding)
    }
}

/// The metric a question kind is judged by first: accuracy for closed and choice
/// questions, token F1 for open ones, Acc@0.5 for grounding.
pub const HEADLINE: [(&str, &str); 5] = [
    ("closed", "accuracy"),
    ("single_choice", "accuracy"),
    ("multi_choice", "accuracy"),
    ("open", "token_f1"),
    ("grounding", "acc@0.5"),
];

/// Which questions the bootstrap resamples together (`score.cluster`, `--cluster`).
/// Questions on one image are not independent: Kvasir-VQA-x1 asks many per image, and a
/// naive bootstrap over questions gives intervals that are too narrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterRule {
    /// Every question on its own (the naive bootstrap).
    None,
    /// The sample's first image: questions on one image, one phantom case, resample together.
    Image,
    /// A meta value, e.g. `meta.video_id` (MedFrameQA) or `meta.img_id`; a sample without
    /// it is its own cluster.
    Meta(String),
}

impl std::str::FromStr for ClusterRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(ClusterRule::None),
            "image" => Ok(ClusterRule::Image),
            _ => match s.strip_prefix("meta.") {
                Some(k) if !k.is_empty() => Ok(ClusterRule::Meta(k.to_string())),
                _ => Err(format!(
                    "cluster {s:?} is not none, image or meta.KEY (e.g. meta.video_id)"
                )),
            },
        }
    }
}

impl fmt::Display for ClusterRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterRule::None => f.write_str("none"),
            ClusterRule::Image => f.write_str("image"),
            ClusterRule::Meta(k) => write!(f, "meta.{k}"),
        }
    }
}

impl ClusterRule {
    /// The cluster of `sample` under this rule; `None`: its own.
    pub fn of(&self, sample: &Sample) -> Option<String> {
        match self {
            ClusterRule::None => None,
            ClusterRule::Image => sample
                .images
                .first()
                .map(|i| format!("image:{}", i.origin())),
            ClusterRule::Meta(k) => sample.meta.get(k).map(|v| format!("{k}:{v}")),
        }
    }

    /// Gives every scored record the cluster of its sample.
    pub fn assign(&self, runs: &mut RunScores, samples: &[Sample]) {
        let by_id: HashMap<&str, &Sample> = samples.iter().map(|s| (s.id.as_str(), s)).collect();
        for r in &mut runs.scored {
            r.cluster = by_id.get(r.id.as_str()).and_then(|s| self.of(s));
        }
    }
}

/// The image sizes the `pixels` box frame needs: `(width, height)` of image `index` of a
/// sample, as shown to the model.
pub trait ImageSizes: Sync {
    fn size(&self, sample: &Sample, index: usize) -> Result<(u32, u32), String>;
}

/// The error a [`SemanticScorer`] reports for one pair.
#[derive(Debug, thiserror::Error)]
#[error("semantic similarity failed")]
pub struct SemanticError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The model behind the `semantic` metric (cosine of sentence embeddings), supplied at run
/// time by the inference stage.
pub trait SemanticScorer: Sync {
    /// One similarity per `(reference, candidate)` pair, in [0, 1] (negative cosines
    /// clamped to 0). Batching is the implementation's business.
    fn similarities(&self, pairs: &[(&str, &str)]) -> Vec<Result<f64, SemanticError>>;
}

/// How a run is scored.
#[derive(Clone, Copy)]
pub struct ScoreOptions<'a> {
    /// The frame of boxes written in the generic syntaxes (`<location>`, JSON lists).
    pub box_frame: BoxFrame,
    pub grounding: GroundingScope,
    pub semantic: Option<&'a dyn SemanticScorer>,
    /// An LLM judge for open answers (the `judge` metric).
    pub judge: Option<&'a dyn judge::Judge>,
}

/// A predicted box as `scored.jsonl` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredBox {
    pub image: usize,
    /// Normalised `[x1, y1, x2, y2]`, rounded to 6 decimals; `null` when the numbers were
    /// unusable.
    #[serde(rename = "box")]
    pub bbox: Option<BBox>,
}

/// One scored prediction: a line of `scored.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub id: String,
    #[serde(flatten)]
    pub condition: Condition,
    pub kind: QuestionKind,
    /// The question as asked, its options (choice kinds) and the reference answer as the
    /// manifest spells it: the record reads on its own, as lmms-eval's `--log_samples`.
    #[serde(default)]
    pub question: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default)]
    pub reference: Option<String>,
    /// The model's raw response.
    pub response: String,
    /// The extracted answer, spelled as in the manifest; `null` when unparsed or when the
    /// sample has no answer to extract. (`answer` in records before medvqa 0.1.1.)
    #[serde(alias = "answer")]
    pub extracted: Option<String>,
    /// The cascade rule; `null` when the sample has no answer to extract.
    pub rule: Option<Rule>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub answer_tag: bool,
    /// The box syntax read, when the sample is scored on boxes and the response had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub box_syntax: Option<BoxSyntax>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boxes: Vec<ScoredBox>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grounding: Option<Grounding>,
    /// The answer could not be extracted.
    pub unparsed_answer: bool,
    /// The sample is scored on boxes and the response had no box markup.
    pub unparsed_boxes: bool,
    /// Per-sample values of every applicable metric.
    pub metrics: MetricMap<f64>,
    /// Sufficient statistics for metrics whose aggregate needs them.
    #[serde(default, skip_serializing_if = "MetricMap::is_empty")]
    pub stats: MetricMap<Vec<f64>>,
    /// The cluster the bootstrap resamples this question with (its image, case or video;
    /// see [`ClusterRule`]); absent: the question is its own cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Under a frame perturbation, the dataset could not say how the answer follows the
    /// frames: the record is reported apart and not counted as a robustness failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub order_dependent: bool,
    /// The probability the model gave its answer (see [`confidence`]), when the
    /// prediction came with probabilities; rounded to 6 decimals.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "stats::round6_opt"
    )]
    pub confidence: Option<f64>,
    /// What the confidence covers: the answer's tokens, the whole response, or a number
    /// the predictions file gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_scope: Option<confidence::Scope>,
    /// The LLM judge's verdict on an open answer, when a judge was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<judge::Verdict>,
}

impl Scored {
    /// The metric's value with its statistics, if it applies.
    pub fn value(&self, name: &str) -> Option<MetricValue> {
        self.metrics.get(name).map(|&value| MetricValue {
            value,
            stats: self.stats.get(name).cloned().unwrap_or_default(),
        })
    }

    /// The parsed answer for flip rates: normalised text for open answers, the spelling
    /// otherwise; `None` when the sample has no answer to extract. Unparsed is a value of
    /// its own.
    pub fn flip_key(&self) -> Option<String> {
        self.rule?;
        Some(match (&self.extracted, self.kind) {
            (None, _) => "\u{0}unparsed".to_string(),
            (Some(a), QuestionKind::Open | QuestionKind::Grounding) => text::normalize(a),
            // The options chosen, by text: an option rotation moves the letters, and the
            // same option under another letter is the same answer.
            (Some(a), QuestionKind::SingleChoice | QuestionKind::MultiChoice) => {
                match extract::letters_of(a) {
                    Some(ix) => {
                        let mut texts: Vec<&str> = ix
                            .iter()
                            .filter_map(|&i| self.options.get(i).map(String::as_str))
                            .collect();
                        texts.sort_unstable();
                        texts.join("\u{1}")
                    }
                    None => a.clone(),
                }
            }
            (Some(a), _) => a.clone(),
        })
    }
}

/// A metric over a group of records: the value, its bootstrap interval, and how many
/// records it covers. Floats are rounded to 6 decimals when written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    #[serde(serialize_with = "stats::round6")]
    pub value: f64,
    #[serde(serialize_with = "stats::round6")]
    pub ci_low: f64,
    #[serde(serialize_with = "stats::round6")]
    pub ci_high: f64,
    pub n: usize,
}

/// Every metric that applies to at least one of `records`, with its interval. `label`
/// names the group in the bootstrap seed (e.g. `overall`, `kind=closed`).
pub fn summarize(
    records: &[&Scored],
    cfg: &stats::Bootstrap,
    label: &str,
) -> BTreeMap<String, MetricSummary> {
    summarize_by(records, cfg, label, true)
}

/// [`summarize`] with every question its own cluster, whatever the records carry: the
/// naive intervals a design effect is measured against.
pub fn summarize_naive(
    records: &[&Scored],
    cfg: &stats::Bootstrap,
    label: &str,
) -> BTreeMap<String, MetricSummary> {
    summarize_by(records, cfg, label, false)
}

fn summarize_by(
    records: &[&Scored],
    cfg: &stats::Bootstrap,
    label: &str,
    use_clusters: bool,
) -> BTreeMap<String, MetricSummary> {
    // Each value's cluster; none at all when no record has one (every question its own).
    let clustered = use_clusters && records.iter().any(|r| r.cluster.is_some());
    type Job<'r> = (&'static Metric, Vec<MetricValue>, Vec<&'r str>);
    let jobs: Vec<Job> = METRICS
        .iter()
        .map(|m| {
            let mut values = Vec::new();
            let mut clusters = Vec::new();
            for r in records {
                if let Some(v) = r.value(m.name) {
                    values.push(v);
                    if clustered {
                        clusters.push(r.cluster.as_deref().unwrap_or(r.id.as_str()));
                    }
                }
            }
            (m, values, clusters)
        })
        .filter(|(_, v, _)| !v.is_empty())
        .collect();
    jobs.into_par_iter()
        .filter_map(|(m, values, clusters)| {
            let refs: Vec<&MetricValue> = values.iter().collect();
            let value = m.aggregate.apply(refs.iter().copied())?;
            let (ci_low, ci_high) = stats::ci_clustered(
                &refs,
                &clusters,
                m.aggregate,
                cfg,
                &format!("{label}|{}", m.name),
            )
            .unwrap_or((value, value));
            Some((
                m.name.to_string(),
                MetricSummary {
                    value,
                    ci_low,
                    ci_high,
                    n: refs.len(),
                },
            ))
        })
        .collect()
}

/// Counts of unparsed outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unparsed {
    /// Answers the cascade could not read.
    pub answer: usize,
    /// Samples scored on boxes whose response had no box markup.
    pub boxes: usize,
}

impl Unparsed {
    pub fn of<'a>(records: impl IntoIterator<Item = &'a Scored>) -> Unparsed {
        let mut u = Unparsed::default();
        for r in records {
            u.answer += r.unparsed_answer as usize;
            u.boxes += r.unparsed_boxes as usize;
        }
        u
    }
}

/// Everything [`score_run`] produced.
#[derive(Debug, Clone, Default)]
pub struct RunScores {
    /// Sorted by `(id, perturbation, severity)`.
    pub scored: Vec<Scored>,
    /// Prediction records that were refused, sorted.
    pub rejected: Vec<Rejected>,
    /// Samples that could not be scored (and any failures the caller adds: load, infer).
    pub failures: Vec<Failure>,
    /// Per condition seen in the predictions, the sample ids it has no prediction for.
    pub missing: BTreeMap<Condition, Vec<String>>,
}

/// Why one prediction could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("{condition}: box frame {frame} needs the size of image {image}: {reason}")]
    ImageSize {
        condition: Condition,
        frame: BoxFrame,
        image: usize,
        reason: String,
    },
    #[error("{condition}: the semantic metric could not be computed")]
    Semantic {
        condition: Condition,
        #[source]
        source: SemanticError,
    },
    #[error("{condition}: the LLM judge gave no verdict: {reason}")]
    Judge {
        condition: Condition,
        reason: String,
    },
}

#[cfg(test)]
pub(crate) mod tests;
