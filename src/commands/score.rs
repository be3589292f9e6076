//! `medvqa score`: score external predictions (e.g. from an API model) against a dataset
//! and write the run folder: report.json, report.md, report.html, summary.csv,
//! scored.jsonl, rejected.jsonl, timing.json.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context;

use super::{Outcome, load_all, out, select};
use crate::cli::{PredFrameArg, ScoreArgs};
use crate::data::decode::ImageStore;
use crate::infer::RuntimeOptions;
use crate::infer::minilm::{SemanticFiles, SemanticModel};
use crate::perturb::folded::{self, Folded};
use crate::report::{self, BuildOptions, DatasetInfo, Header, Thumbnail, Thumbnails, Timing};
use crate::sample::Sample;
use crate::score::stats::Bootstrap;
use crate::score::{self, Condition, HeaderSizes, ScoreOptions, predictions};

/// Decoded pixels kept for thumbnails.
const THUMB_CACHE_BYTES: usize = 64 << 20;

pub fn run(a: &ScoreArgs, _quiet: bool) -> anyhow::Result<Outcome> {
    let t0 = Instant::now();
    let mut ds = load_all(&a.data)?;
    // A dataset written by `medvqa perturb` is scored as conditions of its source samples.
    let folded = folded::fold(&ds.samples);
    if let Some(f) = &folded {
        ds.samples = f.samples.clone();
    }
    // The selection picks source samples (not perturbed copies); predictions for the
    // samples it leaves out are set aside with a count, not rejected as unknown ids.
    let selected = select(&a.data, &mut ds.samples)?;
    let semantic = if a.semantic {
        let files = SemanticFiles::locate(a.semantic_model.as_deref())
            .context("the semantic metric needs its MiniLM model")?;
        Some(SemanticModel::open(&files, &RuntimeOptions::default())?)
    } else {
        None
    };
    let t_load = t0.elapsed().as_secs_f64();

    let (preds, bad_lines) = predictions::read_jsonl(&a.predictions)
        .with_context(|| format!("reading predictions {}", a.predictions.display()))?;
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
    let box_frame = match a.box_frame {
        PredFrameArg::Dataset => ds.source_frame,
        PredFrameArg::Frame(f) => f,
    };
    let grounding = a.grounding;
    let scorer = semantic.as_ref().map(crate::pipeline::MiniLmScorer);
    let opts = ScoreOptions {
        box_frame,
        grounding,
        semantic: scorer.as_ref().map(|s| s as &dyn score::SemanticScorer),
    };
    let t1 = Instant::now();
    let truth = |_: &Sample, p: &score::Prediction| {
        folded
            .as_ref()
            .and_then(|f| f.seen(&p.id, &p.condition))
            .cloned()
    };
    let mut runs =
        score::score_run_with(&ds.samples, &preds, &opts, &HeaderSizes::default(), &truth);
    runs.rejected.extend(bad_lines);
    runs.rejected.sort();
    let t_score = t1.elapsed().as_secs_f64();

    let mut header = Header::new(
        DatasetInfo {
            spec: a.data.dataset.clone(),
            name: ds.name.clone(),
            format: ds.format.to_string(),
            source_box_frame: ds.source_frame.to_string(),
        },
        box_frame.to_string(),
        grounding,
    );
    header.model = a.model.clone();
    header.by_meta = a.by.clone();
    header.notes = a.notes.clone();
    header.bootstrap = Bootstrap {
        resamples: a.bootstrap,
        seed: a.bootstrap_seed,
        confidence: 0.95,
    };
    if let Some(note) = &selected.note {
        header.notes.push(note.clone());
    }
    if folded.is_some() {
        header.notes.push(
            "a dataset written by `medvqa perturb`: each copy is scored as a condition of its source sample, with its own (moved) boxes".into(),
        );
    }
    if matches!(a.box_frame, PredFrameArg::Dataset) {
        header.notes.push(format!(
            "predicted boxes read in the dataset's frame ({box_frame})"
        ));
    }

    let t2 = Instant::now();
    let rep = report::build(
        &ds.samples,
        &runs,
        &ds.failures,
        header,
        &BuildOptions::default(),
    );
    let thumbs = DatasetThumbnails::new(&ds.samples, folded.as_ref(), a.data.max_pixels);
    report::write_reports(&a.out, &rep, &thumbs)
        .with_context(|| format!("writing reports to {}", a.out.display()))?;
    report::write_records(&a.out, &runs)
        .with_context(|| format!("writing records to {}", a.out.display()))?;
    let seed = a
        .data
        .dataset
        .starts_with("phantom")
        .then_some(a.data.dataset_seed);
    let digests = crate::fingerprint::image_digests(&ds.samples);
    crate::fingerprint::Fingerprint::new(&a.data.dataset, seed, &ds.samples, &digests)
        .write(&a.out)
        .with_context(|| format!("writing the dataset fingerprint to {}", a.out.display()))?;
    let t_report = t2.elapsed().as_secs_f64();

    let wall = t0.elapsed().as_secs_f64();
    let records = runs.scored.len();
    report::write_timing(
        &a.out,
        &Timing {
            command: "score".to_string(),
            wall_seconds: wall,
            stages: [
                ("load".to_string(), t_load),
                ("score".to_string(), t_score),
                ("report".to_string(), t_report),
            ]
            .into_iter()
            .collect(),
            records,
            records_per_second: if wall > 0.0 {
                records as f64 / wall
            } else {
                0.0
            },
            threads: rayon::current_num_threads(),
        },
    )?;

    for f in &ds.failures {
        eprintln!("failed: {f}");
    }
    for f in &runs.failures {
        eprintln!("failed: {f}");
    }
    for r in &runs.rejected {
        eprintln!(
            "rejected: {}{}: {}",
            r.location
                .as_deref()
                .map(|l| format!("{l} "))
                .unwrap_or_default(),
            r.id.as_deref().unwrap_or("(no id)"),
            r.reason
        );
    }
    for (cond, ids) in &runs.missing {
        eprintln!(
            "missing: {} of {} samples have no {} prediction (first: {})",
            ids.len(),
            ds.samples.len(),
            cond,
            ids.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        );
    }
    out(&summary(&rep, &a.out))?;
    Ok(Outcome::from_failures(
        ds.failures.len() + runs.failures.len() + runs.rejected.len(),
    ))
}

fn summary(r: &report::Report, dir: &std::path::Path) -> String {
    let mut s = String::new();
    let c = &r.counts;
    let _ = writeln!(
        s,
        "scored {} predictions ({} clean) on {} samples; {} rejected, {} failed, {} missing; unparsed (clean): {} answers, {} without boxes",
        c.scored,
        c.scored_clean,
        c.samples,
        c.rejected,
        c.failures,
        c.missing,
        r.unparsed.answer,
        r.unparsed.boxes
    );
    for n in r.header.notes.iter().filter(|n| n.starts_with("by:")) {
        let _ = writeln!(s, "  note: {n}");
    }
    let head = report::headline_lines(r);
    if !head.is_empty() {
        let _ = writeln!(s, "headline, by question kind (clean):");
        for line in head {
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(s, "every metric (clean, all kinds together):");
    }
    for (m, v) in &r.overall {
        let _ = writeln!(
            s,
            "  {m:<17} {:.4}  [{:.4}, {:.4}]  n={}",
            v.value, v.ci_low, v.ci_high, v.n
        );
    }
    if let Some(x) = r.robustness_summary.as_ref().and_then(|x| x.score) {
        let _ = writeln!(s, "  {:<17} {x:.4} (mean relative score)", "robustness");
    }
    for line in report::box_scope_lines(r) {
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(s, "reports in {}", dir.display());
    s
}

/// Thumbnails of the dataset's images. For a dataset written by `medvqa perturb` these are
/// the perturbed images the model saw; otherwise `score` never sees perturbed images, so a
/// perturbed example shows the clean image, marked as such.
struct DatasetThumbnails<'a> {
    by_id: HashMap<&'a str, &'a Sample>,
    folded: Option<&'a Folded>,
    store: ImageStore,
}

impl<'a> DatasetThumbnails<'a> {
    fn new(samples: &'a [Sample], folded: Option<&'a Folded>, max_pixels: u64) -> Self {
        DatasetThumbnails {
            by_id: samples.iter().map(|s| (s.id.as_str(), s)).collect(),
            folded,
            store: ImageStore::new(max_pixels, THUMB_CACHE_BYTES),
        }
    }
}

impl Thumbnails for DatasetThumbnails<'_> {
    fn thumbnail(&self, id: &str, condition: &Condition, image: usize) -> Option<Thumbnail> {
        let seen = self.folded.and_then(|f| f.seen(id, condition));
        let sample = seen.or_else(|| self.by_id.get(id).copied())?;
        let pixels = self.store.get(sample.images.get(image)?).ok()?;
        Some(Thumbnail {
            png: report::thumbnail_png(&pixels)?,
            as_seen: seen.is_some() || condition.is_clean(),
        })
    }
}

/// Perturbation labels as users write them. A label that names a medvqa perturbation in
/// another spelling (`Gaussian_Blur`) takes its name; any other label stays a condition of
/// its own (a perturbation of the user's), and is named in a warning, with the closest
/// medvqa name, so that a typo does not become a new condition unnoticed.
fn canonical_labels(preds: &mut [score::Prediction]) -> Vec<String> {
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

    #[test]
    fn labels_in_other_spellings_take_the_medvqa_name_and_strangers_are_named() {
        let mut preds: Vec<score::Prediction> =
            ["Gaussian_Blur", "gausian-blur", "kvasir-transform.v2"]
                .iter()
                .map(|l| score::Prediction {
                    id: "q".into(),
                    condition: Condition::new(*l, 2),
                    response: String::new(),
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
