//! The metric registry: every metric medvqa reports, how it scores one sample and how its
//! values combine over a group. Adding a metric is a function plus one entry in
//! [`METRICS`].

use super::*;

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
    /// The verdict of the judge in [`ScoreOptions`], on open questions.
    Judge,
}

/// One metric of the registry.
pub struct Metric {
    /// The name in reports (docs/design.md §7).
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
    Metric {
        name: "judge",
        description: "1 if an LLM judge (score.judge) finds the response correct against the reference, 0 if not; unparsed verdicts are left out and counted",
        applies_to: "open; only when a judge is configured",
        aggregate: Aggregate::Mean,
        headline: false,
        scorer: Scorer::Judge,
    },
];

/// Looks up a metric by name.
pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

pub(super) fn bool_value(b: bool) -> MetricValue {
    MetricValue::plain(if b { 1.0 } else { 0.0 })
}

pub(super) fn accuracy(c: &Ctx) -> Option<MetricValue> {
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
pub(super) fn yes_no(c: &Ctx) -> Option<(bool, bool)> {
    let Task::Closed { answer } = &c.sample.task else {
        return None;
    };
    let said_yes = c.extraction?.answer.as_ref() == Some(&Answer::YesNo(true));
    Some((*answer, said_yes))
}

pub(super) fn sensitivity(c: &Ctx) -> Option<MetricValue> {
    let (reference, said_yes) = yes_no(c)?;
    reference.then(|| bool_value(said_yes))
}

pub(super) fn specificity(c: &Ctx) -> Option<MetricValue> {
    let (reference, _) = yes_no(c)?;
    let said_no = c.extraction?.answer.as_ref() == Some(&Answer::YesNo(false));
    (!reference).then(|| bool_value(said_no))
}

pub(super) fn yes_rate(c: &Ctx) -> Option<MetricValue> {
    let (_, said_yes) = yes_no(c)?;
    Some(bool_value(said_yes))
}

pub(super) fn balanced_accuracy(c: &Ctx) -> Option<MetricValue> {
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

pub(super) fn jaccard(c: &Ctx) -> Option<MetricValue> {
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

pub(super) fn exact_match(c: &Ctx) -> Option<MetricValue> {
    let (r, p) = c.texts()?;
    Some(MetricValue::plain(text::exact_match(p, r)))
}

pub(super) fn token_f1(c: &Ctx) -> Option<MetricValue> {
    let (r, p) = c.texts()?;
    Some(MetricValue::plain(text::token_f1(p, r)))
}

pub(super) fn bleu_metric(c: &Ctx) -> Option<MetricValue> {
    let (r, p) = c.texts()?;
    let s = BleuStats::of(p, r);
    Some(MetricValue {
        value: bleu::sentence(&s),
        stats: s.to_vec(),
    })
}

pub(super) fn rouge_l(c: &Ctx) -> Option<MetricValue> {
    let (r, p) = c.texts()?;
    Some(MetricValue::plain(rouge::rouge_l(p, r)))
}

pub(super) fn miou(c: &Ctx) -> Option<MetricValue> {
    Some(MetricValue::plain(c.grounding?.iou))
}

pub(super) fn acc_at(c: &Ctx, tau: f64) -> Option<MetricValue> {
    Some(bool_value(c.grounding?.iou >= tau))
}

pub(super) fn acc_03(c: &Ctx) -> Option<MetricValue> {
    acc_at(c, 0.3)
}

pub(super) fn acc_05(c: &Ctx) -> Option<MetricValue> {
    acc_at(c, 0.5)
}

pub(super) fn acc_075(c: &Ctx) -> Option<MetricValue> {
    acc_at(c, 0.75)
}

pub(super) fn recall_05(c: &Ctx) -> Option<MetricValue> {
    let g = c.grounding?;
    let hits = g.gt_hits_at_05 as f64;
    let n = g.n_gt as f64;
    Some(MetricValue {
        value: if n > 0.0 { hits / n } else { 0.0 },
        stats: vec![hits, n],
    })
}
