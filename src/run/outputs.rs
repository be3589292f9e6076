//! What every command's run folder gets, written one way: the report header's parts, the
//! thumbnails, `report.*`, `scored.jsonl`, `rejected.jsonl`, the dataset fingerprint,
//! `timing.json`, and the summary printed at the end.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::RunError;
use super::execute::{PerturbedCache, seen_images};
use crate::config::Config;
use crate::data::Dataset;
use crate::data::decode::ImageStore;
use crate::failure::{Failure, error_chain};
use crate::fingerprint::Fingerprint;
use crate::geometry::BoxFrame;
use crate::infer::Model;
use crate::infer::minilm::SemanticModel;
use crate::perturb::{Application, SeedContext};
use crate::report::{self, DatasetInfo, Header, Report, Thumbnail, Thumbnails, Timing};
use crate::sample::Sample;
use crate::score::stats::Bootstrap;
use crate::score::{Condition, RunScores, SemanticError, SemanticScorer};

/// The header's dataset block.
pub(super) fn dataset_info(spec: &str, ds: &Dataset) -> DatasetInfo {
    DatasetInfo {
        spec: spec.to_string(),
        name: ds.name.clone(),
        format: ds.format.to_string(),
        source_box_frame: ds.source_frame.to_string(),
    }
}

/// Failures in the order every report lists them: by id, location, reason.
pub(super) fn sort_failures(failures: &mut [Failure]) {
    failures.sort_by(|a, b| (&a.id, &a.location, &a.reason).cmp(&(&b.id, &b.location, &b.reason)));
}

/// Header notes for the explicitly named perturbations that were not applied to samples of
/// other modalities.
pub(super) fn modality_notes(skipped: &BTreeMap<&'static str, usize>) -> Vec<String> {
    skipped
        .iter()
        .map(|(name, n)| {
            let suits = crate::perturb::find(name)
                .map(|p| {
                    p.modalities
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            format!(
                "{name} suits {suits} only: not applied to {n} sample(s) of other modalities (set perturb.any_modality = true to apply it anyway)"
            )
        })
        .collect()
}

/// Writes the reports, the scored and rejected records and the dataset fingerprint into
/// `out`. `timing.json` is written apart, last, once the wall time is known.
pub(super) fn write_run_folder(
    out: &Path,
    rep: &Report,
    runs: &RunScores,
    thumbs: &dyn Thumbnails,
    fingerprint: &Fingerprint,
) -> Result<(), RunError> {
    report::write_reports(out, rep, thumbs)?;
    report::write_records(out, runs)?;
    fingerprint.write(out).map_err(RunError::io(
        "cannot write",
        out.join(crate::fingerprint::FILE),
    ))
}

/// `timing.json` for a command without a model: its stages and the records it wrote.
pub(super) fn timing(
    command: &str,
    wall: Duration,
    stages: &[(&str, Duration)],
    records: usize,
) -> Timing {
    let w = wall.as_secs_f64();
    Timing {
        command: command.to_string(),
        wall_seconds: w,
        stages: stages
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_secs_f64()))
            .collect(),
        records,
        records_per_second: if w > 0.0 { records as f64 / w } else { 0.0 },
        threads: rayon::current_num_threads(),
        peak_rss_mib: report::peak_rss_mib(),
        served: None,
    }
}

/// The metrics a finished `eval` or `score` prints: the headline by question kind, every
/// metric on the clean condition with its interval, the robustness score, and which samples
/// were scored on boxes.
pub fn summary_text(r: &Report) -> String {
    let mut text = String::new();
    let head = report::headline_lines(r);
    if !head.is_empty() {
        let _ = writeln!(text, "headline, by question kind (clean):");
        for line in head {
            let _ = writeln!(text, "{line}");
        }
        let _ = writeln!(text, "every metric (clean, all kinds together):");
    }
    for (m, v) in &r.overall {
        let _ = writeln!(
            text,
            "  {m:<17} {:.4}  [{:.4}, {:.4}]  n={}",
            v.value, v.ci_low, v.ci_high, v.n
        );
    }
    if let Some(x) = r.robustness_summary.as_ref().and_then(|x| x.score) {
        let _ = writeln!(
            text,
            "  {:<17} {x:.4} (mean relative score over the track)",
            "robustness"
        );
    }
    let _ = writeln!(
        text,
        "unparsed (clean): {} answers, {} without boxes",
        r.unparsed.answer, r.unparsed.boxes
    );
    if let Some(line) = report::clustering_line(r) {
        let _ = writeln!(text, "{line}");
    }
    if let Some(line) = r.option_order.as_ref().and_then(report::option_order_line) {
        let _ = writeln!(text, "{line}");
    }
    if let Some(line) = r.judge_agreement.as_ref().and_then(report::judge_line) {
        let _ = writeln!(text, "{line}");
    }
    if let Some(line) = r
        .calibration
        .as_ref()
        .and_then(report::calibration::clean_line)
    {
        let _ = writeln!(text, "{line}");
    }
    for line in report::box_scope_lines(r) {
        let _ = writeln!(text, "{line}");
    }
    text
}

/// `eval`'s report header: the dataset, the model, the frame its boxes are read in, the
/// track, the selection and the config's own notes.
pub(super) fn eval_header(
    cfg: &Config,
    ds: &Dataset,
    model: &Model,
    box_frame: BoxFrame,
    selection_note: Option<&str>,
) -> Header {
    let grounding = cfg.score.grounding;
    let mut h = Header::new(
        dataset_info(&cfg.dataset.spec, ds),
        box_frame.to_string(),
        grounding,
    );
    h.model = Some(cfg.model.name.clone().unwrap_or_else(|| {
        match (&cfg.model.backend, &cfg.model.model) {
            (crate::config::Backend::Openai, Some(m)) => m.clone(),
            _ => cfg
                .model
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| cfg.model.path.display().to_string()),
        }
    }));
    h.by_meta = cfg.score.by.clone();
    h.bootstrap = Bootstrap {
        resamples: cfg.score.bootstrap,
        seed: cfg.score.bootstrap_seed.unwrap_or(cfg.run.seed),
        confidence: 0.95,
    };
    if cfg.model.random_weights {
        h.notes.push(
            "The model has random weights (a test fixture): its answers are random, and so are these scores. They show the pipeline working, not a model's ability.".into(),
        );
    }
    match cfg.model.served_settings() {
        Ok(s) if cfg.model.backend == crate::config::Backend::Openai => {
            h.notes.push(format!(
                "served model {} through an OpenAI-compatible chat-completions endpoint (temperature {}{}); answers' boxes read in the declared {} frame",
                s.model,
                s.temperature,
                s.seed.map(|x| format!(", seed {x}")).unwrap_or_default(),
                box_frame
            ));
            h.notes.push(format!("images sent as {}", s.image_note()));
        }
        _ => h.notes.push(format!(
            "model family {} ({}); answers' boxes read in the {} frame",
            model.family(),
            model.model_type(),
            box_frame
        )),
    }
    if let Some(j) = &cfg.score.judge {
        h.notes
            .push(super::judge::JudgeSettings::from_section(j).note());
    }
    if !cfg.prompt.is_default() {
        let p = &cfg.prompt;
        let mut parts = Vec::new();
        if p.system.is_some() {
            parts.push("a system message".to_string());
        }
        if p.template.is_some() || p.option_format.is_some() || p.option_separator.is_some() {
            parts.push("its own question template".to_string());
        }
        if !p.instructions.is_empty() {
            parts.push(format!(
                "its own instruction lines for {}",
                p.instructions
                    .keys()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if p.images == crate::infer::prompt::ImagesAt::Last {
            parts.push("images after the text".to_string());
        }
        h.notes.push(format!(
            "prompt from the config's [prompt]: {} (config.resolved.toml has it verbatim)",
            parts.join("; ")
        ));
    }
    if !cfg.perturb.perturbations.is_empty() {
        h.notes.push(format!(
            "robustness track: {} at severities {} (run seed {})",
            cfg.perturb.perturbations.join(", "),
            cfg.perturb.severities,
            cfg.run.seed
        ));
    }
    h.notes.extend(selection_note.map(str::to_string));
    h.notes.extend(cfg.report.notes.iter().cloned());
    h
}

/// The MiniLM model as the scorer's `semantic` metric.
pub struct MiniLmScorer<'a>(pub &'a SemanticModel);

impl SemanticScorer for MiniLmScorer<'_> {
    fn similarities(&self, pairs: &[(&str, &str)]) -> Vec<Result<f64, SemanticError>> {
        match self.0.similarities(pairs) {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => {
                let msg = error_chain(&e);
                pairs
                    .iter()
                    .map(|_| Err(SemanticError(msg.clone().into())))
                    .collect()
            }
        }
    }
}

/// Thumbnails of the images as the model saw them: perturbations are recomputed (they are
/// pure functions of the image and condition), so nothing needs to be kept from inference.
pub(super) struct EvalThumbnails<'a> {
    pub ds: &'a Dataset,
    pub ctx: &'a SeedContext,
    pub decoded: &'a ImageStore,
    pub apps: HashMap<Condition, Application>,
    pub swaps: &'a crate::perturb::Swaps,
}

impl Thumbnails for EvalThumbnails<'_> {
    fn thumbnail(&self, id: &str, condition: &Condition, image: usize) -> Option<Thumbnail> {
        let s = self.ds.samples.iter().find(|s| s.id == id)?;
        let app = if condition.is_clean() {
            None
        } else {
            Some(self.apps.get(condition)?)
        };
        let cache = PerturbedCache::new(32 << 20);
        let seen = seen_images(s, app, self.ctx, self.decoded, &cache, self.swaps).ok()?;
        let pixels = seen.images.get(image)?;
        Some(Thumbnail {
            png: report::thumbnail_png(pixels)?,
            as_seen: true,
        })
    }
}

/// Thumbnails of the dataset's images, for `score`. For a dataset written by `medvqa
/// perturb` these are the perturbed images the model saw; otherwise `score` never sees
/// perturbed images, so a perturbed example shows the clean image, marked as such.
pub(super) struct DatasetThumbnails<'a> {
    by_id: HashMap<&'a str, &'a Sample>,
    folded: Option<&'a super::folded::Folded>,
    store: ImageStore,
}

/// Decoded pixels kept for `score`'s thumbnails.
const THUMB_CACHE_BYTES: usize = 64 << 20;

impl<'a> DatasetThumbnails<'a> {
    pub fn new(
        samples: &'a [Sample],
        folded: Option<&'a super::folded::Folded>,
        load: &crate::data::LoadOptions,
    ) -> Self {
        DatasetThumbnails {
            by_id: samples.iter().map(|s| (s.id.as_str(), s)).collect(),
            folded,
            store: ImageStore::new(load.max_pixels, THUMB_CACHE_BYTES)
                .with_dicom_window(load.dicom_window),
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
