//! `medvqa score`: predictions made elsewhere (an API model, another toolkit), scored
//! against a dataset into a run folder like `eval`'s.

use std::path::PathBuf;
use std::time::Instant;

use super::HeaderSizes;
use super::folded;
use super::outputs::{self, DatasetThumbnails};
use super::{MiniLmScorer, RunError, open_semantic};
use crate::data::DatasetSource;
use crate::failure::Failure;
use crate::geometry::BoxFrame;
use crate::report::{self, Header, Report};
use crate::sample::Sample;
use crate::score::stats::Bootstrap;
use crate::score::{self, GroundingScope, Prediction, RunScores, ScoreOptions, predictions};

/// What `score` is asked.
#[derive(Debug, Clone)]
pub struct ScoreRequest {
    pub dataset: DatasetSource,
    /// The predictions JSONL.
    pub predictions: PathBuf,
    /// The run folder to write.
    pub out: PathBuf,
    /// The frame predicted boxes are read in; `None`: the dataset's own.
    pub box_frame: Option<BoxFrame>,
    pub grounding: GroundingScope,
    /// The model's name, for the header.
    pub model: Option<String>,
    pub by: Vec<String>,
    pub bootstrap: usize,
    pub bootstrap_seed: u64,
    pub notes: Vec<String>,
    pub semantic: bool,
    pub semantic_model: Option<PathBuf>,
    /// What the bootstrap resamples together; `None`: what the dataset's format declares.
    pub cluster: Option<crate::score::ClusterRule>,
    /// An LLM judge for open answers; its verdicts are cached in `out`.
    pub judge: Option<super::judge::JudgeSettings>,
}

/// What `score` found: the report, and the records a command lists one by one.
#[derive(Debug)]
pub struct ScoreSummary {
    pub report: Report,
    pub runs: RunScores,
    /// Rows and images of the dataset that could not be read.
    pub load_failures: Vec<Failure>,
    pub samples: usize,
}

impl ScoreSummary {
    /// Everything that did not score: load failures, failed and rejected predictions.
    pub fn failed(&self) -> usize {
        self.load_failures.len() + self.runs.failures.len() + self.runs.rejected.len()
    }
}

/// Scores the predictions and writes the run folder.
pub fn score_predictions(req: &ScoreRequest) -> Result<ScoreSummary, RunError> {
    let t0 = Instant::now();
    let mut ds = req.dataset.load_all()?;
    // A dataset written by `medvqa perturb` is scored as conditions of its source samples.
    let folded = folded::fold(&ds.samples);
    if let Some(f) = &folded {
        ds.samples = f.samples.clone();
    }
    // The selection picks source samples (not perturbed copies); predictions for the
    // samples it leaves out are set aside with a count, not rejected as unknown ids.
    let selected = req.dataset.select(&mut ds.samples)?;
    if let Some(note) = &selected.note {
        eprintln!("{note}");
    }
    let semantic = open_semantic(req.semantic, req.semantic_model.as_deref())?;
    let t_load = t0.elapsed();

    let (preds, bad_lines) = predictions::read_jsonl(&req.predictions).map_err(RunError::io(
        "cannot read the predictions",
        &req.predictions,
    ))?;
    let mut preds = match &folded {
        Some(f) => f.rewrite(preds),
        None => preds,
    };
    for w in canonical_labels(&mut preds) {
        eprintln!("warning: {w}");
    }
    let before = preds.len();
    preds.retain(|p| !selected.left_out.contains(&p.id));
    let set_aside = before - preds.len();
    if set_aside > 0 {
        eprintln!(
            "{set_aside} prediction records are for samples outside the selection; not scored"
        );
    }
    let box_frame = req.box_frame.unwrap_or(ds.source_frame);
    let scorer = semantic.as_ref().map(MiniLmScorer);
    // Only one process writes a run folder at a time; the judge's cache is written while
    // scoring, so the lock is taken first.
    let _lock = super::lock::acquire(&req.out)?;
    let judge = match &req.judge {
        Some(s) => Some(super::judge::LlmJudge::open(s.clone(), &req.out)?),
        None => None,
    };
    let opts = ScoreOptions {
        box_frame,
        grounding: req.grounding,
        semantic: scorer.as_ref().map(|s| s as &dyn score::SemanticScorer),
        judge: judge.as_ref().map(|j| j as &dyn score::judge::Judge),
    };
    let t1 = Instant::now();
    let truth = |_: &Sample, p: &Prediction| {
        folded
            .as_ref()
            .and_then(|f| f.seen(&p.id, &p.condition))
            .cloned()
    };
    let mut runs =
        score::score_run_with(&ds.samples, &preds, &opts, &HeaderSizes::default(), &truth);
    // Each record holds what it needs of its prediction; the predictions go before the
    // report is built (issue 15: `score`'s peak).
    drop(preds);
    runs.rejected.extend(bad_lines);
    runs.rejected.sort();
    let cluster = super::cluster_rule(req.cluster.as_ref(), &ds)?;
    cluster.assign(&mut runs, &ds.samples);
    let t_score = t1.elapsed();

    let mut header = Header::new(
        outputs::dataset_info(&req.dataset.spec, &ds),
        box_frame.to_string(),
        req.grounding,
    );
    header.model = req.model.clone();
    header.by_meta = req.by.clone();
    header.cluster = Some(cluster.to_string());
    header.notes = req.notes.clone();
    header.bootstrap = Bootstrap {
        resamples: req.bootstrap,
        seed: req.bootstrap_seed,
        confidence: 0.95,
    };
    header.notes.extend(selected.note.clone());
    if folded.is_some() {
        header.notes.push(
            "a dataset written by `medvqa perturb`: each copy is scored as a condition of its source sample, with its own (moved) boxes".into(),
        );
    }
    if req.box_frame.is_none() {
        header.notes.push(format!(
            "predicted boxes read in the dataset's frame ({box_frame})"
        ));
    }

    if let Some(s) = &req.judge {
        header.notes.push(s.note());
    }
    if let Some(j) = &judge {
        let (asked, reused) = j.counts();
        eprintln!("judge: {asked} verdicts asked, {reused} reused from judgements.jsonl");
    }
    let t2 = Instant::now();
    let rep = report::build(
        &ds.samples,
        &runs,
        &ds.failures,
        header,
        &report::BuildOptions::default(),
    );
    let thumbs = DatasetThumbnails::new(&ds.samples, folded.as_ref(), &req.dataset.load);
    let digests = crate::fingerprint::image_digests(&ds.samples);
    let fingerprint = crate::fingerprint::Fingerprint::new(
        &req.dataset.spec,
        req.dataset.generated_seed(),
        &ds.samples,
        &digests,
    );
    outputs::write_run_folder(&req.out, &rep, &runs, &thumbs, &fingerprint)?;
    let t_report = t2.elapsed();
    let timing = outputs::timing(
        "score",
        t0.elapsed(),
        &[("load", t_load), ("score", t_score), ("report", t_report)],
        runs.scored.len(),
    );
    report::write_timing(&req.out, &timing)?;
    Ok(ScoreSummary {
        report: rep,
        samples: ds.samples.len(),
        load_failures: ds.failures,
        runs,
    })
}

/// Perturbation labels as users write them. A label that names a medvqa perturbation in
/// another spelling (`Gaussian_Blur`) takes its name; any other label stays a condition of
/// its own (a perturbation of the user's), and is named in a warning, with the closest
/// medvqa name, so that a typo does not become a new condition unnoticed.
pub fn canonical_labels(preds: &mut [Prediction]) -> Vec<String> {
    let mut unknown: std::collections::BTreeMap<String, usize> = Default::default();
    for p in preds.iter_mut() {
        let label = &p.condition.perturbation;
        if p.condition.is_clean() || crate::perturb::find(base(label)).is_some() {
            continue;
        }
        let canonical = crate::perturb::canonical_name(label);
        if crate::perturb::find(base(&canonical)).is_some() {
            p.condition.perturbation = canonical;
        } else {
            *unknown.entry(label.clone()).or_default() += 1;
        }
    }
    unknown
        .into_iter()
        .map(|(label, n)| {
            let hint = crate::suggest::hint(
                &crate::perturb::canonical_name(&label),
                crate::perturb::REGISTRY.iter().map(|p| p.name),
            );
            format!(
                "perturbation {label:?} ({n} predictions) is not a medvqa perturbation{hint}; \
                 scored as a condition of its own"
            )
        })
        .collect()
}

/// `kvasir-transform.v3` → `kvasir-transform`: the perturbation a variant label names.
fn base(label: &str) -> &str {
    label.split_once('.').map_or(label, |(b, _)| b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::Condition;

    #[test]
    fn labels_in_other_spellings_take_the_medvqa_name_and_strangers_are_named() {
        let mut preds: Vec<Prediction> = ["Gaussian_Blur", "gausian-blur", "kvasir-transform.v2"]
            .iter()
            .map(|l| Prediction {
                id: "q".into(),
                condition: Condition::new(*l, 2),
                response: String::new(),
                confidence: None,
                source: None,
            })
            .collect();
        let warnings = canonical_labels(&mut preds);
        assert_eq!(preds[0].condition.perturbation, "gaussian-blur");
        assert_eq!(preds[1].condition.perturbation, "gausian-blur");
        assert_eq!(preds[2].condition.perturbation, "kvasir-transform.v2");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("did you mean gaussian-blur?"),
            "{warnings:?}"
        );
    }
}
