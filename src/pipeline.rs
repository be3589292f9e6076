//! `medvqa eval`: load → perturb → infer → score → report, resumable (DESIGN §7).
//!
//! ```text
//! $ medvqa eval --config configs/default.toml
//! eval: 30 samples x 1 clean + track = 1530 predictions (0 already done, 1530 to run)
//! wrote runs/default/report.html (accuracy 0.30, ...)
//! ```
//!
//! - The plan is every (sample, condition) pair: the clean images plus each application of
//!   the configured perturbation track that suits the sample. Each pair has a content key
//!   ([`crate::store::key_of`] over the model fingerprint, prompt and generation settings,
//!   the sample's text and image bytes, the condition and the run seed), so rerunning the
//!   same command skips what is stored and a changed model or prompt reruns.
//! - Work is ordered by condition, then image, so an image is decoded once and perturbed
//!   once per condition and shared by every question on it ([`ImageStore`],
//!   `PerturbedCache`). A producer thread decodes and perturbs the next batch (on rayon)
//!   while the model answers the current one.
//! - Each batch's records are appended to `predictions.jsonl` and fsync'd before the
//!   next starts. A sample that fails (a corrupt image, too many images for the model) is
//!   stored with its error and counted; the run goes on.
//! - The report is built from the store alone, sorted, without timings, so an interrupted
//!   and resumed run writes the same `report.json` as an uninterrupted one. Timings go to
//!   `timing.json`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::config::Config;
use crate::data::decode::{ImageError, ImageStore};
use crate::data::{self, Dataset, LoadOptions};
use crate::failure::{Failure, Stage, error_chain};
use crate::geometry::BoxFrame;
use crate::infer::minilm::SemanticModel;
use crate::infer::{Model, ModelOptions, PreparedBatch, PromptInput, RuntimeOptions};
use crate::perturb::{
    Application, BoxMap, Modality, SeedContext, Severities, apply_to_sample, perturb_image, presets,
};
use crate::pixels::Pixels;
use crate::progress::Progress;
use crate::report::{self, BuildOptions, DatasetInfo, Header, Thumbnail, Thumbnails, Timing};
use crate::sample::{GtBox, Sample};
use crate::score::stats::Bootstrap;
use crate::score::{
    self, Condition, GroundingScope, HeaderSizes, Prediction, RunScores, ScoreOptions,
    SemanticError, SemanticScorer,
};
use crate::store::{self, Record, Shard, Store};

/// Decoded source images kept at once.
const DECODED_CACHE_BYTES: usize = 512 << 20;
/// Perturbed images kept at once; work is ordered so each is needed in one stretch.
const PERTURBED_CACHE_ENTRIES: usize = 256;

/// How `eval` runs, beyond the config.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    pub quiet: bool,
    /// `--threads`: the budget ONNX Runtime splits among its sessions.
    pub threads: Option<usize>,
    /// Build the report from what is stored, answer nothing new (`medvqa merge`).
    pub report_only: bool,
}

/// What a finished run reports back.
#[derive(Debug)]
pub struct EvalSummary {
    pub out: PathBuf,
    pub report: report::Report,
    /// Predictions answered by this invocation, and those found already stored.
    pub answered: usize,
    pub reused: usize,
    /// Failed samples: loading, decoding, perturbing, inference, scoring.
    pub failures: usize,
    pub timing: Timing,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Model(#[from] crate::infer::ModelError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Report(#[from] report::ReportError),
    #[error("the semantic metric is enabled but its model cannot be opened")]
    Semantic(#[source] crate::infer::minilm::SemanticModelError),
    #[error("config: {0}")]
    Invalid(String),
    #[error("cannot create the run folder {path}")]
    RunFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Per (sample id, condition): the frame order and moved boxes a perturbation gave, as
/// stored with the prediction.
type SeenAs = HashMap<(String, Condition), (Option<Vec<usize>>, Option<Vec<GtBox>>)>;

/// One (sample, condition) pair of the plan.
#[derive(Debug, Clone)]
struct Item {
    sample: usize,
    app: Option<Application>,
    key: String,
}

impl Item {
    fn condition(&self) -> Condition {
        match &self.app {
            None => Condition::clean(),
            Some(a) => Condition::new(a.label(), a.severity),
        }
    }
}

/// Runs `eval` as configured.
pub fn run(cfg: &Config, opts: &EvalOptions) -> Result<EvalSummary, EvalError> {
    let t_start = Instant::now();
    let out = cfg.run.out.clone();
    cfg.validate().map_err(EvalError::Invalid)?;
    let shard: Option<Shard> = cfg.run.shard;
    let severities: &Severities = &cfg.perturb.severities;
    let grounding = cfg.score.grounding;

    // Load.
    let t = Instant::now();
    let mut ds = data::load(
        &cfg.dataset.spec,
        &LoadOptions {
            image_root: cfg.dataset.image_root.clone(),
            box_frame: cfg.dataset.box_frame,
            max_pixels: cfg.dataset.max_pixels,
            seed: cfg.dataset.seed,
            n: cfg.dataset.n,
        },
    )?;
    let selected = cfg
        .selection()
        .apply(&mut ds.samples)
        .map_err(|e| EvalError::Invalid(e.to_string()))?;
    if let (Some(note), false) = (&selected.note, opts.quiet) {
        eprintln!("{note}");
    }
    let model = Model::open(&cfg.model.path, &model_options(cfg, opts.threads)?)?;
    for w in model.warnings() {
        eprintln!("warning: {w}");
    }
    let semantic = if cfg.score.semantic {
        let files =
            crate::infer::minilm::SemanticFiles::locate(cfg.score.semantic_model.as_deref())
                .map_err(EvalError::Semantic)?;
        Some(SemanticModel::open(&files, &RuntimeOptions::default()).map_err(EvalError::Semantic)?)
    } else {
        None
    };
    let t_load = t.elapsed();

    // The run folder is written only once the config, the dataset, the selection and the
    // model have all been read without error.
    std::fs::create_dir_all(&out).map_err(|source| EvalError::RunFolder {
        path: out.clone(),
        source,
    })?;
    cfg.write_resolved(&out)?;

    // Plan: identities and keys.
    let t = Instant::now();
    let decoded = ImageStore::new(cfg.dataset.max_pixels, DECODED_CACHE_BYTES);
    let mut failures: Vec<Failure> = ds.failures.clone();
    let digests = crate::fingerprint::image_digests(&ds.samples);
    let ctx = SeedContext::new(cfg.run.seed, ds.name.clone());
    let Plan {
        items,
        failures: plan_failures,
        skipped: modality_skips,
    } = plan(cfg, &ds, &model, severities, &digests)?;
    failures.extend(plan_failures);
    let t_plan = t.elapsed();

    // Infer what is not stored yet.
    let (mut store, _, stats) = Store::open(&out.join("predictions.jsonl"))?;
    if stats.torn_tail {
        eprintln!(
            "note: predictions.jsonl ended in a torn line (an interrupted write); it was cut off"
        );
    }
    if !stats.bad_lines.is_empty() {
        eprintln!(
            "warning: predictions.jsonl has {} unreadable line(s) ({:?}); they are ignored",
            stats.bad_lines.len(),
            stats.bad_lines
        );
    }
    let mine: Vec<&Item> = items
        .iter()
        .filter(|i| shard.is_none_or(|s| s.owns(&i.key)))
        .collect();
    let mut pending: Vec<&Item> = mine
        .iter()
        .copied()
        .filter(|i| !store.is_done(&i.key))
        .collect();
    let reused = mine.len() - pending.len();
    if !opts.quiet {
        eprintln!(
            "eval: {} samples, {} predictions planned{}; {} stored, {} to run",
            ds.samples.len(),
            items.len(),
            shard
                .map(|s| format!(" ({} in shard {s})", mine.len()))
                .unwrap_or_default(),
            reused,
            if opts.report_only { 0 } else { pending.len() }
        );
    }
    let mut timing = StageTimes::default();
    let mut answered = 0;
    if !opts.report_only && !pending.is_empty() {
        pending.sort_by(|a, b| work_order(&ds, a).cmp(&work_order(&ds, b)));
        let runner = Runner {
            ds: &ds,
            model: &model,
            ctx: &ctx,
            decoded: &decoded,
            perturbed: PerturbedCache::new(PERTURBED_CACHE_ENTRIES),
        };
        answered = runner.run(
            &pending,
            &mut store,
            cfg.model.batch_size,
            cfg.model.sessions,
            opts.quiet,
            &mut timing,
        )?;
    }

    // Score and report from the store.
    let t = Instant::now();
    let (stored, _) = store::read(&out.join("predictions.jsonl"))?;
    let wanted: HashMap<&str, &Item> = items.iter().map(|i| (i.key.as_str(), i)).collect();
    let mut preds = Vec::new();
    let mut seen_as: SeenAs = HashMap::new();
    for r in stored
        .iter()
        .filter(|r| wanted.contains_key(r.key.as_str()))
    {
        let condition = match &r.perturbation {
            None => Condition::clean(),
            Some(p) => Condition::new(p.clone(), r.severity),
        };
        match (&r.response, &r.error) {
            (Some(response), None) => {
                if r.frames.is_some() || r.gt_boxes.is_some() {
                    seen_as.insert(
                        (r.id.clone(), condition.clone()),
                        (r.frames.clone(), r.gt_boxes.clone()),
                    );
                }
                preds.push(Prediction {
                    id: r.id.clone(),
                    condition,
                    response: response.clone(),
                    source: None,
                });
            }
            (_, error) => failures.push(Failure {
                stage: Stage::Infer,
                id: Some(r.id.clone()),
                location: Some(condition.to_string()),
                reason: error
                    .clone()
                    .unwrap_or_else(|| "no response recorded".into()),
            }),
        }
    }
    let box_frame = cfg.model.box_frame.unwrap_or_else(|| model.box_frame());
    let scorer = semantic.as_ref().map(MiniLmScorer);
    let score_opts = ScoreOptions {
        box_frame,
        grounding,
        semantic: scorer.as_ref().map(|s| s as &dyn SemanticScorer),
    };
    let truth = |s: &Sample, p: &Prediction| -> Option<Sample> {
        let (frames, boxes) = seen_as.get(&(p.id.clone(), p.condition.clone()))?;
        let mut seen = s.clone();
        if let Some(order) = frames {
            seen.images = order
                .iter()
                .filter_map(|&i| s.images.get(i).cloned())
                .collect();
        }
        if let Some(b) = boxes {
            seen.boxes = b.clone();
        }
        Some(seen)
    };
    let mut runs: RunScores = score::score_run_with(
        &ds.samples,
        &preds,
        &score_opts,
        &HeaderSizes::default(),
        &truth,
    );
    let planned: Vec<&Item> = items.iter().collect();
    add_missing(&mut runs, &planned, &ds, &stored);
    let t_score = t.elapsed();

    let t = Instant::now();
    failures.sort_by(|a, b| (&a.id, &a.location, &a.reason).cmp(&(&b.id, &b.location, &b.reason)));
    let mut header = header(
        cfg,
        &ds,
        &model,
        box_frame,
        grounding,
        selected.note.as_deref(),
    );
    for (name, n) in &modality_skips {
        let suits = crate::perturb::find(name)
            .map(|p| {
                p.modalities
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        header.notes.push(format!(
            "{name} suits {suits} only: not applied to {n} sample(s) of other modalities (set perturb.any_modality = true to apply it anyway)"
        ));
    }
    let rep = report::build(
        &ds.samples,
        &runs,
        &failures,
        header,
        &BuildOptions::default(),
    );
    let thumbs = EvalThumbnails {
        ds: &ds,
        ctx: &ctx,
        decoded: &decoded,
        apps: items
            .iter()
            .filter_map(|i| i.app)
            .map(|a| (Condition::new(a.label(), a.severity), a))
            .collect(),
    };
    report::write_reports(&out, &rep, &thumbs)?;
    report::write_records(&out, &runs)?;
    dataset_fingerprint(cfg, &ds, &digests)
        .write(&out)
        .map_err(|source| EvalError::RunFolder {
            path: out.join(crate::fingerprint::FILE),
            source,
        })?;
    let t_report = t.elapsed();

    let wall = t_start.elapsed();
    let timing_json = timing.to_timing(
        wall,
        [
            ("load", t_load),
            ("plan", t_plan),
            ("score", t_score),
            ("report", t_report),
        ],
        answered,
    );
    report::write_timing(&out, &timing_json)?;
    let n_failures = rep.counts.failures;
    Ok(EvalSummary {
        out,
        report: rep,
        answered,
        reused,
        failures: n_failures,
        timing: timing_json,
    })
}

fn model_options(cfg: &Config, threads: Option<usize>) -> Result<ModelOptions, EvalError> {
    let m = &cfg.model;
    let mut o = ModelOptions {
        runtime: RuntimeOptions {
            threads,
            sessions: m.sessions.max(1),
            device: m.device,
            library: None,
        },
        variant: m.variant.clone(),
        max_new_tokens: m.max_new_tokens,
        batch_size: m.batch_size.max(1),
        max_pixels: m.image_budget,
        max_images: m.max_images,
        ..ModelOptions::default()
    };
    if let Some(z) = &m.zero_shot {
        if let Some(t) = &z.option_template {
            o.zero_shot.option_template = t.clone();
        }
        if let Some(t) = &z.closed_template {
            o.zero_shot.closed_template = t.clone();
        }
        o.zero_shot.multi_threshold = z.multi_threshold;
    }
    Ok(o)
}

/// The run's [`Fingerprint`](crate::fingerprint::Fingerprint): what `compare` and `merge`
/// check before they pair runs.
fn dataset_fingerprint(
    cfg: &Config,
    ds: &Dataset,
    digests: &HashMap<String, Result<String, String>>,
) -> crate::fingerprint::Fingerprint {
    let seed = cfg
        .dataset
        .spec
        .starts_with("phantom")
        .then_some(cfg.dataset.seed);
    crate::fingerprint::Fingerprint::new(&cfg.dataset.spec, seed, &ds.samples, digests)
}

/// Every (sample, condition) pair with its key. Samples whose images cannot be read fail
/// here, once, instead of once per condition.
fn plan(
    cfg: &Config,
    ds: &Dataset,
    model: &Model,
    severities: &Severities,
    digests: &HashMap<String, Result<String, String>>,
) -> Result<Plan, EvalError> {
    let fixed = [
        model.fingerprint().to_string(),
        model.prompt_hash(),
        model.generation_key(),
    ];
    let mut items = Vec::new();
    let mut failures = Vec::new();
    let mut skipped: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (si, s) in ds.samples.iter().enumerate() {
        let mut image_hashes = Vec::with_capacity(s.images.len());
        let mut bad = None;
        for img in &s.images {
            match digests.get(&img.key) {
                Some(Ok(d)) => image_hashes.push(d.as_str()),
                Some(Err(e)) => bad = Some(e.clone()),
                None => bad = Some(format!("image {} has no digest", img.key)),
            }
        }
        if let Some(reason) = bad {
            failures.push(Failure {
                stage: Stage::Decode,
                id: Some(s.id.clone()),
                location: None,
                reason,
            });
            continue;
        }
        let content = sample_digest(s, &image_hashes);
        let modality = Modality::of(s);
        if !cfg.perturb.any_modality {
            for name in presets::unsuited(&cfg.perturb.perturbations, modality) {
                *skipped.entry(name).or_default() += 1;
            }
        }
        let apps = presets::expand(
            &cfg.perturb.perturbations,
            severities,
            modality,
            s.images.len(),
            cfg.perturb.any_modality,
        )
        .map_err(|e| EvalError::Invalid(format!("perturb.perturbations: {}", error_chain(&e))))?;
        let clean_key = store::key_of(&[
            fixed[0].as_bytes(),
            fixed[1].as_bytes(),
            fixed[2].as_bytes(),
            content.as_bytes(),
            b"clean",
        ]);
        items.push(Item {
            sample: si,
            app: None,
            key: clean_key,
        });
        for app in apps {
            let key = store::key_of(&[
                fixed[0].as_bytes(),
                fixed[1].as_bytes(),
                fixed[2].as_bytes(),
                content.as_bytes(),
                app.label().as_bytes(),
                &[app.severity],
                &cfg.run.seed.to_le_bytes(),
                ds.name.as_bytes(),
            ]);
            items.push(Item {
                sample: si,
                app: Some(app),
                key,
            });
        }
    }
    Ok(Plan {
        items,
        failures,
        skipped,
    })
}

/// The planned work, the samples that failed before inference, and per explicitly named
/// perturbation the samples it was not applied to because it does not suit their modality.
struct Plan {
    items: Vec<Item>,
    failures: Vec<Failure>,
    skipped: BTreeMap<&'static str, usize>,
}

/// What the model is asked: the sample's text, kind, options and images (not its answer).
fn sample_digest(s: &Sample, image_hashes: &[&str]) -> String {
    let mut parts: Vec<Vec<u8>> = vec![
        s.id.as_bytes().to_vec(),
        s.question.as_bytes().to_vec(),
        s.kind().as_str().as_bytes().to_vec(),
    ];
    parts.extend(s.task.options().iter().map(|o| o.as_bytes().to_vec()));
    parts.extend(image_hashes.iter().map(|h| h.as_bytes().to_vec()));
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    store::key_of(&refs)
}

/// Condition first, then the sample's first image, then its id: questions on one image
/// under one condition run together.
fn work_order<'a>(
    ds: &'a Dataset,
    i: &'a Item,
) -> (Option<(&'static str, u16, u8)>, &'a str, &'a str) {
    let s = &ds.samples[i.sample];
    (
        i.app.map(|a| a.sort_key()),
        s.images.first().map_or("", |im| im.key.as_str()),
        s.id.as_str(),
    )
}

/// A sample's images as the model sees them under one condition.
struct Seen {
    images: Vec<Arc<Pixels>>,
    frames: Option<Vec<usize>>,
    gt_boxes: Option<Vec<GtBox>>,
}

/// Perturbed images by (image key, label, severity), computed once however many questions
/// share them; a bounded number are kept.
struct PerturbedCache {
    inner: Mutex<PerturbedSlots>,
    capacity: usize,
}

/// (image key, label, severity).
type PerturbKey = (String, String, u8);
type PerturbSlot = Arc<OnceLock<Result<(Arc<Pixels>, BoxMap), String>>>;

#[derive(Default)]
struct PerturbedSlots {
    slots: HashMap<PerturbKey, PerturbSlot>,
    order: VecDeque<PerturbKey>,
}

impl PerturbedCache {
    fn new(capacity: usize) -> PerturbedCache {
        PerturbedCache {
            inner: Mutex::new(PerturbedSlots::default()),
            capacity,
        }
    }

    fn get(
        &self,
        key: PerturbKey,
        make: impl FnOnce() -> Result<(Arc<Pixels>, BoxMap), String>,
    ) -> Result<(Arc<Pixels>, BoxMap), String> {
        let slot = {
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            if !g.slots.contains_key(&key) {
                g.order.push_back(key.clone());
                while g.order.len() > self.capacity {
                    if let Some(old) = g.order.pop_front() {
                        g.slots.remove(&old);
                    }
                }
            }
            g.slots.entry(key).or_default().clone()
        };
        slot.get_or_init(make).clone()
    }
}

struct Runner<'a> {
    ds: &'a Dataset,
    model: &'a Model,
    ctx: &'a SeedContext,
    decoded: &'a ImageStore,
    perturbed: PerturbedCache,
}

#[derive(Debug, Default)]
struct StageTimes {
    /// Decoding and perturbing, summed over the producer's batches (overlaps the model).
    perturb: Duration,
    /// Image preprocessing, templating and tokenizing, summed over samples. The producer does
    /// it one batch ahead, so it overlaps the model.
    preprocess: Duration,
    /// Time the pipeline waited on the model: vision, prefill, decode, and the CPU work of a
    /// batch the producer could not prepare (a dual encoder's).
    model: Duration,
    /// Time the model's graphs ran (vision, prefill, decode), each batch counted once
    /// ([`crate::infer::Timings::graph_share`]). With `sessions > 1` batches overlap, and this
    /// sum can exceed the time waited on the model.
    model_compute: Duration,
    /// Time the model waited for the producer (images and preprocessing).
    starved: Duration,
    /// Appending to the store.
    store: Duration,
}

impl StageTimes {
    fn to_timing<const N: usize>(
        &self,
        wall: Duration,
        extra: [(&str, Duration); N],
        answered: usize,
    ) -> Timing {
        let mut stages: BTreeMap<String, f64> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_secs_f64()))
            .collect();
        stages.insert("perturb".into(), self.perturb.as_secs_f64());
        stages.insert("preprocess".into(), self.preprocess.as_secs_f64());
        stages.insert("model".into(), self.model.as_secs_f64());
        stages.insert("model_compute".into(), self.model_compute.as_secs_f64());
        stages.insert("waiting_for_images".into(), self.starved.as_secs_f64());
        stages.insert("store".into(), self.store.as_secs_f64());
        let w = wall.as_secs_f64();
        Timing {
            command: "eval".to_string(),
            wall_seconds: w,
            stages,
            records: answered,
            records_per_second: if w > 0.0 { answered as f64 / w } else { 0.0 },
            threads: rayon::current_num_threads(),
        }
    }
}

/// One batch handed from the producer to the model: the items and their images (or why
/// they could not be made).
type Prepared<'a> = Vec<(&'a Item, Result<Seen, Failure>)>;

impl Runner<'_> {
    fn run(
        &self,
        pending: &[&Item],
        store: &mut Store,
        batch_size: usize,
        sessions: usize,
        quiet: bool,
        times: &mut StageTimes,
    ) -> Result<usize, EvalError> {
        let step = (batch_size.max(1) * sessions.max(1)).max(1);
        let progress = Progress::new(pending.len() as u64, "eval", quiet);
        // The producer decodes and perturbs the next batch's images and does the model's CPU
        // work for it (templates, tokens, image preprocessing) while the model runs this one.
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Prepared<'_>, PreparedBatch, Duration)>(1);
        let mut answered = 0;
        let result = std::thread::scope(|scope| -> Result<(), EvalError> {
            scope.spawn(move || {
                for chunk in pending.chunks(step) {
                    let t = Instant::now();
                    let prepared: Prepared<'_> = chunk
                        .par_iter()
                        .map(|item| (*item, self.seen(item)))
                        .collect();
                    let t_perturb = t.elapsed();
                    let batch = self.model.prepare_batch(&self.inputs(&prepared));
                    if tx.send((prepared, batch, t_perturb)).is_err() {
                        break;
                    }
                }
            });
            loop {
                let t_wait = Instant::now();
                let Ok((prepared, batch, t_perturb)) = rx.recv() else {
                    break;
                };
                times.starved += t_wait.elapsed();
                times.perturb += t_perturb;
                let records = self.answer(&prepared, batch, times);
                let t = Instant::now();
                store.append(&records)?;
                times.store += t.elapsed();
                answered += records.len();
                progress.inc(records.len() as u64);
            }
            Ok(())
        });
        progress.finish();
        result.map(|()| answered)
    }

    /// The model inputs of a batch's items whose images were made, in batch order.
    fn inputs<'b>(&'b self, prepared: &'b Prepared<'_>) -> Vec<PromptInput<'b>> {
        prepared
            .iter()
            .filter_map(|(i, r)| r.as_ref().ok().map(|s| (*i, s)))
            .map(|(i, s)| PromptInput {
                sample: &self.ds.samples[i.sample],
                images: &s.images,
            })
            .collect()
    }

    /// Runs the model on one prepared batch; one record per item.
    fn answer(
        &self,
        prepared: &Prepared<'_>,
        batch: PreparedBatch,
        times: &mut StageTimes,
    ) -> Vec<Record> {
        let ok: Vec<(&Item, &Seen)> = prepared
            .iter()
            .filter_map(|(i, r)| r.as_ref().ok().map(|s| (*i, s)))
            .collect();
        let inputs = self.inputs(prepared);
        let t = Instant::now();
        let answers = self.model.answer_prepared(&inputs, batch);
        times.model += t.elapsed();
        let mut by_key: HashMap<&str, Record> = HashMap::new();
        for ((item, seen), answer) in ok.iter().zip(answers) {
            let mut r = self.record(item);
            r.frames = seen.frames.clone();
            r.gt_boxes = seen.gt_boxes.clone();
            match answer {
                Ok(g) => {
                    times.preprocess += g.timings.preprocess;
                    times.model_compute += g.timings.graph_share();
                    r.response = Some(g.text);
                    r.tokens = Some(g.token_ids.len());
                    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
                    r.timing_ms = [
                        ("preprocess", ms(g.timings.preprocess)),
                        ("vision", ms(g.timings.vision)),
                        ("prefill_batch", ms(g.timings.prefill)),
                        ("decode_batch", ms(g.timings.decode)),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                }
                Err(e) => r.error = Some(e.failure().to_string()),
            }
            by_key.insert(item.key.as_str(), r);
        }
        prepared
            .iter()
            .map(
                |(item, seen)| match (by_key.remove(item.key.as_str()), seen) {
                    (Some(r), _) => r,
                    (None, Err(f)) => {
                        let mut r = self.record(item);
                        r.error = Some(f.to_string());
                        r
                    }
                    (None, Ok(_)) => {
                        let mut r = self.record(item);
                        r.error = Some("the model returned no answer".into());
                        r
                    }
                },
            )
            .collect()
    }

    fn record(&self, item: &Item) -> Record {
        Record {
            key: item.key.clone(),
            id: self.ds.samples[item.sample].id.clone(),
            perturbation: item.app.map(|a| a.label()),
            severity: item.app.map_or(0, |a| a.severity),
            response: None,
            error: None,
            tokens: None,
            frames: None,
            gt_boxes: None,
            timing_ms: BTreeMap::new(),
        }
    }

    /// Decodes and perturbs one item's images.
    fn seen(&self, item: &Item) -> Result<Seen, Failure> {
        let s = &self.ds.samples[item.sample];
        seen_images(
            s,
            item.app.as_ref(),
            self.ctx,
            self.decoded,
            &self.perturbed,
        )
        .map_err(|(stage, reason)| Failure {
            stage,
            id: Some(s.id.clone()),
            location: Some(item.condition().to_string()),
            reason,
        })
    }
}

/// A sample's images (and moved boxes) under `app`, through the run's caches.
fn seen_images(
    s: &Sample,
    app: Option<&Application>,
    ctx: &SeedContext,
    decoded: &ImageStore,
    perturbed: &PerturbedCache,
) -> Result<Seen, (Stage, String)> {
    let decode = |i: usize| -> Result<Arc<Pixels>, (Stage, String)> {
        let img = &s.images[i];
        decoded.get(img).map_err(|e: ImageError| {
            (
                Stage::Decode,
                format!("image {}: {}", img.key, error_chain(&e)),
            )
        })
    };
    let seen = apply_to_sample(ctx, s, app, |i, change| match change {
        None => decode(i)
            .map(|p| (p, BoxMap::Identity))
            .map_err(SampleError),
        Some(app) => {
            let img = &s.images[i];
            perturbed
                .get((img.key.clone(), app.label(), app.severity), || {
                    let clean = decode(i).map_err(|(_, r)| r)?;
                    perturb_image(ctx, &img.key, &clean, app)
                        .map(|p| (Arc::new(p.pixels), p.map))
                        .map_err(|e| error_chain(&e))
                })
                .map_err(|r| SampleError((Stage::Perturb, r)))
        }
    })
    .map_err(|e: SampleError| e.0)?;
    Ok(Seen {
        gt_boxes: seen.boxes.if_changed(s),
        images: seen.images,
        frames: seen.frames,
    })
}

/// Why a sample's images could not be made: the stage and the reason.
struct SampleError((Stage, String));

impl From<crate::perturb::PerturbError> for SampleError {
    fn from(e: crate::perturb::PerturbError) -> Self {
        SampleError((Stage::Perturb, error_chain(&e)))
    }
}

/// Planned predictions that are not stored (another shard's share, an unfinished run in
/// `merge`) are listed as missing, so the report never looks complete when it is not.
fn add_missing(runs: &mut RunScores, planned: &[&Item], ds: &Dataset, stored: &[Record]) {
    // The scorer counts a sample as missing under every condition some prediction has; a
    // track gives each modality its own conditions, so the plan is the reference here.
    runs.missing.clear();
    let have: HashSet<&str> = stored.iter().map(|r| r.key.as_str()).collect();
    for item in planned.iter().filter(|i| !have.contains(i.key.as_str())) {
        runs.missing
            .entry(item.condition())
            .or_default()
            .push(ds.samples[item.sample].id.clone());
    }
    for ids in runs.missing.values_mut() {
        ids.sort();
        ids.dedup();
    }
}

fn header(
    cfg: &Config,
    ds: &Dataset,
    model: &Model,
    box_frame: BoxFrame,
    grounding: GroundingScope,
    selection_note: Option<&str>,
) -> Header {
    let mut h = Header::new(
        DatasetInfo {
            spec: cfg.dataset.spec.clone(),
            name: ds.name.clone(),
            format: ds.format.to_string(),
            source_box_frame: ds.source_frame.to_string(),
        },
        box_frame.to_string(),
        grounding,
    );
    h.model = Some(cfg.model.name.clone().unwrap_or_else(|| {
        cfg.model
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| cfg.model.path.display().to_string())
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
    h.notes.push(format!(
        "model family {} ({}); answers' boxes read in the {} frame",
        model.family(),
        model.model_type(),
        box_frame
    ));
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
struct EvalThumbnails<'a> {
    ds: &'a Dataset,
    ctx: &'a SeedContext,
    decoded: &'a ImageStore,
    apps: HashMap<Condition, Application>,
}

impl Thumbnails for EvalThumbnails<'_> {
    fn thumbnail(&self, id: &str, condition: &Condition, image: usize) -> Option<Thumbnail> {
        let s = self.ds.samples.iter().find(|s| s.id == id)?;
        let app = if condition.is_clean() {
            None
        } else {
            Some(self.apps.get(condition)?)
        };
        let cache = PerturbedCache::new(4);
        let seen = seen_images(s, app, self.ctx, self.decoded, &cache).ok()?;
        let pixels = seen.images.get(image)?;
        Some(Thumbnail {
            png: report::thumbnail_png(pixels)?,
            as_seen: true,
        })
    }
}

/// `medvqa merge`: the union of several run folders' stores, deduplicated by key, written
/// to `out/predictions.jsonl` (existing records kept).
pub fn merge_stores(out: &Path, runs: &[PathBuf]) -> Result<(usize, usize), EvalError> {
    std::fs::create_dir_all(out).map_err(|source| EvalError::RunFolder {
        path: out.to_path_buf(),
        source,
    })?;
    let (mut store, _, _) = Store::open(&out.join("predictions.jsonl"))?;
    let mut added = 0;
    let mut dups = 0;
    for dir in runs {
        let (records, stats) = store::read(&dir.join("predictions.jsonl"))?;
        dups += stats.duplicates;
        let fresh: Vec<Record> = records
            .into_iter()
            .filter(|r| !store.is_done(&r.key))
            .collect();
        added += fresh.len();
        store.append(&fresh)?;
    }
    Ok((added, dups))
}
