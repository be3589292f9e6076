//! Scoring: responses in, per-sample results and metric values out (DESIGN §4, §5, §7).
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
//! - Metrics live in one registry, [`METRICS`], keyed by the names of DESIGN §7. Each entry
//!   says how a sample is scored (returning `None` where it does not apply) and how values
//!   combine over a group ([`Aggregate`]). `semantic` is scored by a model the caller
//!   supplies ([`SemanticScorer`]); without one it is not reported.
//! - Grounding metrics apply to samples with ground-truth boxes, as [`GroundingScope`]
//!   says; for them, box markup is cut out of the response before the answer is extracted.

pub mod bleu;
pub mod boxes;
pub mod compare;
pub mod extract;
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

pub use predictions::{Prediction, Rejected};

/// The name and severity of the perturbation a prediction was made under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Condition {
    /// `none` for the clean images.
    pub perturbation: String,
    /// 0 for clean; 1–5 for the ImageNet-C style severities.
    pub severity: u8,
}

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
}

/// A per-sample metric value in [0, 1], with the sufficient statistics its aggregate needs
/// (BLEU's n-gram counts; recall's hits and ground-truth boxes).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    pub value: f64,
    pub stats: Vec<f64>,
}

impl MetricValue {
    fn plain(value: f64) -> MetricValue {
        MetricValue {
            value,
            stats: Vec::new(),
        }
    }
}

/// How per-sample values combine over a group of samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// The mean of the values.
    Mean,
    /// `sum(stats[0]) / sum(stats[1])`: a rate pooled over units other than questions
    /// (recall over ground-truth boxes).
    Pooled,
    /// sacrebleu's corpus BLEU over the summed n-gram statistics.
    CorpusBleu,
    /// Balanced accuracy from summed `[tp, positives, tn, negatives]`: the mean of
    /// sensitivity and specificity (the one defined, when a group has one class only).
    Balanced,
}

impl Aggregate {
    /// The group value; `None` for an empty group.
    pub fn apply<'v>(self, values: impl IntoIterator<Item = &'v MetricValue>) -> Option<f64> {
        match self {
            Aggregate::Mean => {
                let (mut sum, mut n) = (0.0, 0usize);
                for v in values {
                    sum += v.value;
                    n += 1;
                }
                (n > 0).then(|| sum / n as f64)
            }
            Aggregate::Pooled => {
                let (mut num, mut den, mut n) = (0.0, 0.0, 0usize);
                for v in values {
                    num += v.stats.first().copied().unwrap_or(0.0);
                    den += v.stats.get(1).copied().unwrap_or(0.0);
                    n += 1;
                }
                (n > 0).then(|| if den > 0.0 { num / den } else { 0.0 })
            }
            Aggregate::CorpusBleu => {
                let mut total = BleuStats::default();
                let mut n = 0usize;
                for v in values {
                    if let Some(s) = BleuStats::from_slice(&v.stats) {
                        total.add(&s);
                    }
                    n += 1;
                }
                (n > 0).then(|| bleu::corpus(&total))
            }
            Aggregate::Balanced => {
                let mut t = [0.0f64; 4];
                let mut n = 0usize;
                for v in values {
                    for (acc, x) in t.iter_mut().zip(&v.stats) {
                        *acc += x;
                    }
                    n += 1;
                }
                let rates: Vec<f64> = [(t[0], t[1]), (t[2], t[3])]
                    .into_iter()
                    .filter(|&(_, d)| d > 0.0)
                    .map(|(k, d)| k / d)
                    .collect();
                (n > 0 && !rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
            }
        }
    }
}

/// What a metric's scorer sees of one prediction.
pub struct Ctx<'a> {
    pub sample: &'a Sample,
    /// The cascade's outcome; `None` when the sample has no answer to extract (a
    /// grounding question without a text answer).
    pub extraction: Option<&'a Extraction>,
    /// The grounding outcome; `None` when the sample is not scored on boxes.
    pub grounding: Option<&'a Grounding>,
}

impl Ctx<'_> {
    /// The reference text and the extracted text, for text metrics; `None` when the sample
    /// is not an open-text question. An unparsed (empty) answer scores as empty text.
    fn texts(&self) -> Option<(&str, &str)> {
        let reference = match &self.sample.task {
            Task::Open { answer } => answer.as_str(),
            Task::Grounding {
                answer: Some(answer),
            } => answer.as_str(),
            _ => return None,
        };
        let predicted = match self.extraction.and_then(|e| e.answer.as_ref()) {
            Some(Answer::Text(t)) => t.as_str(),
            _ => "",
        };
        Some((reference, predicted))
    }
}

/// How a registry entry scores a sample.
#[derive(Clone, Copy)]
pub enum Scorer {
    /// A pure function of the prediction; `None` = not applicable to this sample.
    Sample(fn(&Ctx) -> Option<MetricValue>),
    /// Scored by the [`SemanticScorer`] in [`ScoreOptions`], on open-text samples.
    Semantic,
}

/// One metric of the registry.
pub struct Metric {
    /// The name in reports (DESIGN §7).
    pub name: &'static str,
    /// What it measures, for `--help` and the README.
    pub description: &'static str,
    /// Which samples it applies to, in words.
    pub applies_to: &'static str,
    pub aggregate: Aggregate,
    /// One headline metric per answer family feeds the robustness summary and the charts.
    pub headline: bool,
    pub scorer: Scorer,
}

/// Every metric medvqa reports. Adding one is a function plus one entry here.
pub static METRICS: &[Metric] = &[
    Metric {
        name: "accuracy",
        description: "1 if the extracted answer equals the reference (multi-choice: the exact set), else 0; unparsed is 0",
        applies_to: "closed, single_choice, multi_choice",
        aggregate: Aggregate::Mean,
        headline: true,
        scorer: Scorer::Sample(accuracy),
    },
    Metric {
        name: "sensitivity",
        description: "share of yes-reference questions answered yes (unparsed counts as not yes)",
        applies_to: "closed, reference yes",
        aggregate: Aggregate::Mean,
        headline: false,
        scorer: Scorer::Sample(sensitivity),
    },
    Metric {
        name: "specificity",
        description: "share of no-reference questions answered no (unparsed counts as not no)",
        applies_to: "closed, reference no",
        aggregate: Aggregate::Mean,
        headline: false,
        scorer: Scorer::Sample(specificity),
    },
    Metric {
        name: "yes_rate",
        description: "share of questions answered yes: a model that always says no has 0, whatever its accuracy",
        applies_to: "closed",
        aggregate: Aggregate::Mean,
        headline: false,
        scorer: Scorer::Sample(yes_rate),
    },
    Metric {
        name: "balanced_accuracy",
        description: "(sensitivity + specificity) / 2 over the group; a constant answer scores 0.5",
        applies_to: "closed",
        aggregate: Aggregate::Balanced,
        headline: false,
        scorer: Scorer::Sample(balanced_accuracy),
    },
    Metric {
        name: "exact_match",
        description: "1 if the normalised texts are equal (SQuAD normalisation), else 0",
        applies_to: "open; grounding with a text answer",
        aggregate: Aggregate::Mean,
        headline: false,
        scorer: Scorer::Sample(exact_match),
    },
    Metric {
        name: "token_f1",
        description: "SQuAD v2.0 token F1 over normalised tokens",
        applies_to: "open; grounding with a text answer",
        aggregate: Aggregate::Mean,
        headline: true,
        scorer: Scorer::Sample(token_f1),
    },
    Metric {
        name: "bleu",
        description: "sacrebleu corpus BLEU-4 (13a, exp smoothing) / 100; per sample: sentence BLEU",
        applies_to: "open; grounding with a text answer",
        aggregate: Aggregate::CorpusBleu,
        headline: false,
        scorer: Scorer::Sample(bleu_metric),
    },
    Metric {
        name: "rouge_l",
        description: "rouge-score ROUGE-L F (default tokenizer, no stemming), mean over samples",
        applies_to: "open; grounding with a text answer",
        aggregate: Aggregate::Mean,
        headline: false,
        scorer: Scorer::Sample(rouge_l),
    },
    Metric {
        name: "jaccard",
        description: "|predicted ∩ reference| / |predicted ∪ reference| over option letters; unparsed is 0",
        applies_to: "multi_choice",
        aggregate: Aggregate::Mean,
        headline: false,
        scorer: Scorer::Sample(jaccard),
    },
    Metric {
        name: "miou",
        description: "per question: matched IoU sum / max(#pred, #gt) under the optimal assignment; mean",
        applies_to: "samples scored on boxes (see grounding scope)",
        aggregate: Aggregate::Mean,
        headline: true,
        scorer: Scorer::Sample(miou),
    },
    Metric {
        name: "acc@0.3",
        description: "share of questions whose grounding IoU is at least 0.3",
        applies_to: "samples scored on boxes",
        aggregate: Aggregate::Mean,
        headline: false,
        scorer: Scorer::Sample(acc_03),
    },
    Metric {
        name: "acc@0.5",
        description: "share of questions whose grounding IoU is at least 0.5",
        applies_to: "samples scored on boxes",
        aggregate: Aggregate::Mean,
        headline: false,
        scorer: Scorer::Sample(acc_05),
    },
    Metric {
        name: "acc@0.75",
        description: "share of questions whose grounding IoU is at least 0.75",
        applies_to: "samples scored on boxes",
        aggregate: Aggregate::Mean,
        headline: false,
        scorer: Scorer::Sample(acc_075),
    },
    Metric {
        name: "recall@0.5",
        description: "share of ground-truth boxes matched with IoU at least 0.5, pooled over boxes",
        applies_to: "samples scored on boxes",
        aggregate: Aggregate::Pooled,
        headline: false,
        scorer: Scorer::Sample(recall_05),
    },
    Metric {
        name: "semantic",
        description: "cosine similarity of mean-pooled sentence embeddings (MiniLM), clamped to [0, 1]",
        applies_to: "open; grounding with a text answer; only when a model is supplied",
        aggregate: Aggregate::Mean,
        headline: false,
        scorer: Scorer::Semantic,
    },
];

/// Looks up a metric by name.
pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

fn bool_value(b: bool) -> MetricValue {
    MetricValue::plain(if b { 1.0 } else { 0.0 })
}

fn accuracy(c: &Ctx) -> Option<MetricValue> {
    let got = c.extraction?.answer.as_ref();
    let right = match &c.sample.task {
        Task::Closed { answer } => got == Some(&Answer::YesNo(*answer)),
        Task::SingleChoice { answer, .. } => got == Some(&Answer::Letters(vec![*answer])),
        Task::MultiChoice { answer, .. } => got == Some(&Answer::Letters(answer.clone())),
        Task::Open { .. } | Task::Grounding { .. } => return None,
    };
    Some(bool_value(right))
}

/// A closed question's reference and whether the extracted answer was yes.
fn yes_no(c: &Ctx) -> Option<(bool, bool)> {
    let Task::Closed { answer } = &c.sample.task else {
        return None;
    };
    let said_yes = c.extraction?.answer.as_ref() == Some(&Answer::YesNo(true));
    Some((*answer, said_yes))
}

fn sensitivity(c: &Ctx) -> Option<MetricValue> {
    let (reference, said_yes) = yes_no(c)?;
    reference.then(|| bool_value(said_yes))
}

fn specificity(c: &Ctx) -> Option<MetricValue> {
    let (reference, _) = yes_no(c)?;
    let said_no = c.extraction?.answer.as_ref() == Some(&Answer::YesNo(false));
    (!reference).then(|| bool_value(said_no))
}

fn yes_rate(c: &Ctx) -> Option<MetricValue> {
    let (_, said_yes) = yes_no(c)?;
    Some(bool_value(said_yes))
}

fn balanced_accuracy(c: &Ctx) -> Option<MetricValue> {
    let (reference, _) = yes_no(c)?;
    let right = accuracy(c)?.value;
    Some(MetricValue {
        value: right,
        stats: if reference {
            vec![right, 1.0, 0.0, 0.0]
        } else {
            vec![0.0, 0.0, right, 1.0]
        },
    })
}

fn jaccard(c: &Ctx) -> Option<MetricValue> {
    let Task::MultiChoice { answer, .. } = &c.sample.task else {
        return None;
    };
    let got: &[usize] = match c.extraction?.answer.as_ref() {
        Some(Answer::Letters(v)) => v,
        _ => &[],
    };
    let inter = got.iter().filter(|g| answer.contains(g)).count();
    let union = got.len() + answer.len() - inter;
    Some(MetricValue::plain(if union == 0 {
        0.0
    } else {
        inter as f64 / union as f64
    }))
}

fn exact_match(c: &Ctx) -> Option<MetricValue> {
    let (r, p) = c.texts()?;
    Some(MetricValue::plain(text::exact_match(p, r)))
}

fn token_f1(c: &Ctx) -> Option<MetricValue> {
    let (r, p) = c.texts()?;
    Some(MetricValue::plain(text::token_f1(p, r)))
}

fn bleu_metric(c: &Ctx) -> Option<MetricValue> {
    let (r, p) = c.texts()?;
    let s = BleuStats::of(p, r);
    Some(MetricValue {
        value: bleu::sentence(&s),
        stats: s.to_vec(),
    })
}

fn rouge_l(c: &Ctx) -> Option<MetricValue> {
    let (r, p) = c.texts()?;
    Some(MetricValue::plain(rouge::rouge_l(p, r)))
}

fn miou(c: &Ctx) -> Option<MetricValue> {
    Some(MetricValue::plain(c.grounding?.iou))
}

fn acc_at(c: &Ctx, tau: f64) -> Option<MetricValue> {
    Some(bool_value(c.grounding?.iou >= tau))
}

fn acc_03(c: &Ctx) -> Option<MetricValue> {
    acc_at(c, 0.3)
}

fn acc_05(c: &Ctx) -> Option<MetricValue> {
    acc_at(c, 0.5)
}

fn acc_075(c: &Ctx) -> Option<MetricValue> {
    acc_at(c, 0.75)
}

fn recall_05(c: &Ctx) -> Option<MetricValue> {
    let g = c.grounding?;
    let hits = g.gt_hits_at_05 as f64;
    let n = g.n_gt as f64;
    Some(MetricValue {
        value: if n > 0.0 { hits / n } else { 0.0 },
        stats: vec![hits, n],
    })
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
    pub metrics: BTreeMap<String, f64>,
    /// Sufficient statistics for metrics whose aggregate needs them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stats: BTreeMap<String, Vec<f64>>,
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
    let jobs: Vec<(&Metric, Vec<MetricValue>)> = METRICS
        .iter()
        .map(|m| (m, records.iter().filter_map(|r| r.value(m.name)).collect()))
        .filter(|(_, v): &(&Metric, Vec<MetricValue>)| !v.is_empty())
        .collect();
    jobs.into_par_iter()
        .filter_map(|(m, values)| {
            let refs: Vec<&MetricValue> = values.iter().collect();
            let value = m.aggregate.apply(refs.iter().copied())?;
            let (ci_low, ci_high) =
                stats::ci(&refs, m.aggregate, cfg, &format!("{label}|{}", m.name))
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
}

/// Scores every prediction against its sample. See the module docs for the contract.
pub fn score_run(
    samples: &[Sample],
    predictions: &[Prediction],
    opts: &ScoreOptions,
    sizes: &dyn ImageSizes,
) -> RunScores {
    score_run_with(samples, predictions, opts, sizes, &|_, _| None)
}

/// The sample as the model saw it under a prediction's condition, when that differs from
/// the dataset's: ground-truth boxes moved by a geometric perturbation, frames dropped or
/// reordered. `None` means the dataset's sample.
pub type TruthFn<'a> = dyn Fn(&Sample, &Prediction) -> Option<Sample> + Sync + 'a;

/// [`score_run`], with the ground truth of each prediction given by `truth` (see
/// [`TruthFn`]). `medvqa eval` uses it so that boxes are scored where the perturbed image
/// shows the finding, never where the clean one did.
pub fn score_run_with(
    samples: &[Sample],
    predictions: &[Prediction],
    opts: &ScoreOptions,
    sizes: &dyn ImageSizes,
    truth: &TruthFn<'_>,
) -> RunScores {
    let by_id: HashMap<&str, &Sample> = samples.iter().map(|s| (s.id.as_str(), s)).collect();
    let (accepted, rejected) = predictions::accept(predictions, &by_id);
    let results: Vec<Result<Scored, Failure>> = accepted
        .par_iter()
        .map(|p| {
            let sample = by_id[p.id.as_str()];
            let seen = truth(sample, p);
            score_one(seen.as_ref().unwrap_or(sample), p, opts, sizes)
                .map_err(|e| Failure::new(Stage::Score, &e).with_id(p.id.clone()))
        })
        .collect();
    let mut scored = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(s) => scored.push(s),
            Err(f) => failures.push(f),
        }
    }
    if let Some(sem) = opts.semantic {
        add_semantic(&mut scored, &by_id, sem, &mut failures);
    }
    scored.sort_by(|a, b| (&a.id, &a.condition).cmp(&(&b.id, &b.condition)));
    failures.sort_by(|a, b| (&a.id, &a.reason).cmp(&(&b.id, &b.reason)));

    let mut missing: BTreeMap<Condition, Vec<String>> = BTreeMap::new();
    let conditions: std::collections::BTreeSet<&Condition> =
        accepted.iter().map(|p| &p.condition).collect();
    for c in conditions {
        let have: std::collections::HashSet<&str> = accepted
            .iter()
            .filter(|p| &p.condition == c)
            .map(|p| p.id.as_str())
            .collect();
        let mut ids: Vec<String> = samples
            .iter()
            .filter(|s| !have.contains(s.id.as_str()))
            .map(|s| s.id.clone())
            .collect();
        if !ids.is_empty() {
            ids.sort();
            missing.insert(c.clone(), ids);
        }
    }
    RunScores {
        scored,
        rejected,
        failures,
        missing,
    }
}

/// Scores one prediction (everything but `semantic`).
pub fn score_one(
    sample: &Sample,
    p: &Prediction,
    opts: &ScoreOptions,
    sizes: &dyn ImageSizes,
) -> Result<Scored, ScoreError> {
    let mut answer_source = std::borrow::Cow::Borrowed(p.response.as_str());
    let mut grounding = None;
    let mut box_syntax = None;
    let mut pred_boxes: Vec<PredBox> = Vec::new();
    let mut unparsed_boxes = false;
    if opts.grounding.applies(sample) {
        let default_image = sample.boxes.iter().map(|b| b.image).min().unwrap_or(0);
        match boxes::find_boxes(&p.response) {
            Some(raw) => {
                let size_of = |i: usize| sizes.size(sample, i).ok();
                pred_boxes = boxes::normalize_boxes(
                    &raw,
                    opts.box_frame,
                    default_image,
                    sample.images.len(),
                    &size_of,
                )
                .map_err(|e| ScoreError::ImageSize {
                    condition: p.condition.clone(),
                    frame: opts.box_frame,
                    image: e.image,
                    reason: sizes
                        .size(sample, e.image)
                        .err()
                        .unwrap_or_else(|| e.source.to_string()),
                })?;
                answer_source =
                    std::borrow::Cow::Owned(boxes::strip_spans(&p.response, &raw.spans));
                box_syntax = Some(raw.syntax);
            }
            None => unparsed_boxes = true,
        }
        grounding = Some(boxes::ground(&pred_boxes, &sample.boxes));
    }
    let extraction = match &sample.task {
        Task::Grounding { answer: None } => None,
        task => Some(extract::extract(task, &answer_source)),
    };
    let ctx = Ctx {
        sample,
        extraction: extraction.as_ref(),
        grounding: grounding.as_ref(),
    };
    let mut metrics = BTreeMap::new();
    let mut stats = BTreeMap::new();
    for m in METRICS {
        if let Scorer::Sample(f) = m.scorer
            && let Some(v) = f(&ctx)
        {
            metrics.insert(m.name.to_string(), v.value);
            if !v.stats.is_empty() {
                stats.insert(m.name.to_string(), v.stats);
            }
        }
    }
    Ok(Scored {
        id: sample.id.clone(),
        condition: p.condition.clone(),
        kind: sample.kind(),
        question: sample.question.clone(),
        options: sample.task.options().to_vec(),
        reference: sample.task.answer_text(),
        response: p.response.clone(),
        extracted: extraction
            .as_ref()
            .and_then(|e| e.answer.as_ref())
            .map(Answer::display),
        rule: extraction.as_ref().map(|e| e.rule),
        answer_tag: extraction.as_ref().is_some_and(|e| e.answer_tag),
        box_syntax,
        boxes: pred_boxes
            .iter()
            .map(|b| ScoredBox {
                image: b.image,
                bbox: b.bbox.map(BBox::rounded),
            })
            .collect(),
        grounding,
        unparsed_answer: extraction
            .as_ref()
            .is_some_and(|e| e.rule == Rule::Unparsed),
        unparsed_boxes,
        metrics,
        stats,
    })
}

fn add_semantic(
    scored: &mut [Scored],
    by_id: &HashMap<&str, &Sample>,
    sem: &dyn SemanticScorer,
    failures: &mut Vec<Failure>,
) {
    let mut idx = Vec::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (i, s) in scored.iter().enumerate() {
        let Some(sample) = by_id.get(s.id.as_str()) else {
            continue;
        };
        let reference = match &sample.task {
            Task::Open { answer } => answer,
            Task::Grounding {
                answer: Some(answer),
            } => answer,
            _ => continue,
        };
        idx.push(i);
        pairs.push((reference.clone(), s.extracted.clone().unwrap_or_default()));
    }
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let mut values = sem.similarities(&refs).into_iter();
    for i in idx {
        let err = match values.next() {
            Some(Ok(v)) => {
                scored[i]
                    .metrics
                    .insert("semantic".to_string(), v.clamp(0.0, 1.0));
                continue;
            }
            Some(Err(e)) => e,
            None => SemanticError("the scorer returned fewer values than pairs".into()),
        };
        // The record keeps its other metrics; `semantic`'s n in the report shows the gap
        // and the failure says why.
        let e = ScoreError::Semantic {
            condition: scored[i].condition.clone(),
            source: err,
        };
        failures.push(Failure::new(Stage::Score, &e).with_id(scored[i].id.clone()));
    }
}

#[cfg(test)]
pub(crate) mod tests;
