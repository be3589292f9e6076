//! The scoring driver: predictions against samples, in parallel, into sorted records.

use super::*;

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
            let dependent = seen.as_ref().is_some_and(|s| {
                s.meta
                    .get(ORDER_DEPENDENT)
                    .is_some_and(|v| v.to_string() == "true")
            });
            score_one(seen.as_ref().unwrap_or(sample), p, opts, sizes)
                .map(|mut r| {
                    r.order_dependent = dependent && !p.condition.is_clean();
                    r
                })
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
    if let Some(judge) = opts.judge {
        add_judge(&mut scored, &by_id, judge, &mut failures);
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
    // The span is in the response only when no box markup was cut out of it; otherwise
    // the confidence falls back to the whole response.
    let span = match answer_source {
        std::borrow::Cow::Borrowed(_) => extraction.as_ref().and_then(|e| e.span),
        std::borrow::Cow::Owned(_) => None,
    };
    let confidence = p
        .confidence
        .as_ref()
        .and_then(|c| confidence::confidence(c, span));
    let ctx = Ctx {
        sample,
        extraction: extraction.as_ref(),
        grounding: grounding.as_ref(),
    };
    let mut metrics = MetricMap::new();
    let mut stats = MetricMap::new();
    for m in METRICS {
        if let Scorer::Sample(f) = m.scorer
            && let Some(v) = f(&ctx)
        {
            metrics.insert(m.name, v.value);
            if !v.stats.is_empty() {
                stats.insert(m.name, v.stats);
            }
        }
    }
    metrics.shrink_to_fit();
    stats.shrink_to_fit();
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
        cluster: None,
        order_dependent: false,
        confidence: confidence.map(|c| c.0),
        confidence_scope: confidence.map(|c| c.1),
        judge: None,
    })
}

/// Asks the judge about every open record: the question as asked, the manifest's reference
/// and the whole response (the judge reads the answer in it, as a person would).
pub(super) fn add_judge(
    scored: &mut [Scored],
    by_id: &HashMap<&str, &Sample>,
    judge: &dyn super::judge::Judge,
    failures: &mut Vec<Failure>,
) {
    let mut idx = Vec::new();
    for (i, s) in scored.iter().enumerate() {
        if let Some(Task::Open { .. }) = by_id.get(s.id.as_str()).map(|x| &x.task) {
            idx.push(i);
        }
    }
    let items: Vec<super::judge::JudgeItem<'_>> = idx
        .iter()
        .filter_map(|&i| {
            let s = &scored[i];
            let Task::Open { answer } = &by_id.get(s.id.as_str())?.task else {
                return None;
            };
            Some(super::judge::JudgeItem {
                question: &s.question,
                reference: answer,
                response: &s.response,
            })
        })
        .collect();
    let verdicts = judge.verdicts(&items);
    let mut verdicts = verdicts.into_iter();
    for i in idx {
        match verdicts.next() {
            Some(Ok(v)) => {
                if let Some(x) = v.value() {
                    scored[i].metrics.insert("judge", x);
                }
                scored[i].judge = Some(v);
            }
            other => {
                let reason = match other {
                    Some(Err(e)) => e,
                    _ => "the judge returned fewer verdicts than questions".into(),
                };
                let e = ScoreError::Judge {
                    condition: scored[i].condition.clone(),
                    reason,
                };
                failures.push(Failure::new(Stage::Score, &e).with_id(scored[i].id.clone()));
            }
        }
    }
}

pub(super) fn add_semantic(
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
                scored[i].metrics.insert("semantic", v.clamp(0.0, 1.0));
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
