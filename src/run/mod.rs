//! The run layer: plan → execute → store → score → report, for `eval`, `merge`, `score`
//! and `perturb`'s export (docs/design.md §7). Commands turn their arguments into the typed
//! requests here and print what comes back; everything between lives in this module.
//!
//! ```text
//! $ medvqa eval --config configs/default.toml
//! eval: 30 samples x 1 clean + track = 1530 predictions (0 already done, 1530 to run)
//! wrote runs/default/report.html (accuracy 0.30, ...)
//! ```
//!
//! - The plan (`plan.rs`) is every (sample, condition) pair: the clean images plus each
//!   application of the configured perturbation track that suits the sample. Each pair has
//!   a content key ([`crate::store::key_of`] over the model fingerprint, prompt and
//!   generation settings, the sample's text and image bytes, the condition and the run
//!   seed), so rerunning the same command skips what is stored and a changed model or
//!   prompt reruns.
//! - Execution (`execute.rs`) is ordered by condition, then image, so an image is decoded
//!   once and perturbed once per condition and shared by every question on it. A producer
//!   thread decodes and perturbs the next batch (on rayon) while the model answers the
//!   current one.
//! - Each batch's records are appended to `predictions.jsonl` and fsync'd before the next
//!   starts. A sample that fails (a corrupt image, too many images for the model) is stored
//!   with its error and counted; the run goes on.
//! - The report is built from the store alone, sorted, without timings, so an interrupted
//!   and resumed run writes the same `report.json` as an uninterrupted one. Timings go to
//!   `timing.json`. [`outputs`] writes a run folder's files the same way for every command.

mod execute;
pub mod export;
mod external;
pub mod folded;
pub mod judge;
pub mod lock;
mod merge;
pub mod outputs;
mod plan;
mod sizes;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::{Backend, Config};
use crate::data::decode::ImageStore;
use crate::data::select::Selected;
use crate::data::{self, Dataset};
use crate::failure::{Failure, Stage};
use crate::infer::minilm::{SemanticFiles, SemanticModel};
use crate::infer::{Model, ModelOptions, RuntimeOptions};
use crate::perturb::SeedContext;
use crate::perturb::frames::FrameTruth;
use crate::report::{self, Timing};
use crate::sample::{GtBox, Sample};
use crate::score::{self, Condition, Prediction, RunScores, ScoreOptions, SemanticScorer};
use crate::store::{self, Record, Store};

pub use export::{ExportRequest, ExportSummary, SheetRequest, export, write_sheet};
pub use external::{ScoreRequest, ScoreSummary, score_predictions};
pub use merge::{MergeRequest, Merged, merge, merge_stores, shards_config};
pub use outputs::{MiniLmScorer, summary_text};
pub use sizes::HeaderSizes;

use execute::{PerturbedCache, Runner, StageTimes};
use plan::{Item, Plan};

/// The default of `run.image_cache_mib`: memory for decoded and perturbed images.
pub const DEFAULT_IMAGE_CACHE_MIB: usize = 576;

/// The image caches' budgets in bytes, `(decoded, perturbed)`: seven eighths for decoded
/// source images (an image stays decoded across conditions while it fits), one eighth for
/// perturbed ones (work is ordered by condition and image, so a perturbed image is shared
/// only by the questions next to it).
fn cache_budgets(cfg: &Config) -> (usize, usize) {
    let total = cfg
        .run
        .image_cache_mib
        .unwrap_or(DEFAULT_IMAGE_CACHE_MIB)
        .saturating_mul(1 << 20);
    (total / 8 * 7, total / 8)
}

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
pub enum RunError {
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
    #[error(transparent)]
    Perturb(#[from] crate::perturb::PerturbError),
    #[error(transparent)]
    Manifest(#[from] crate::data::manifest::WriteError),
    #[error(transparent)]
    Write(#[from] crate::pixels::PixelsWriteError),
    #[error("the semantic metric is enabled but its model cannot be opened")]
    Semantic(#[source] crate::infer::minilm::SemanticModelError),
    #[error("config: {0}")]
    Invalid(String),
    #[error("{0}")]
    Usage(String),
    #[error("cannot create the run folder {path}")]
    RunFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the run folder {dir} is in use by another medvqa process{}; one writer per run folder: wait for it to end or stop it (its lock goes with it)",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked { dir: PathBuf, holder: Option<u32> },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RunError {
    fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RunError {
        let path = path.into();
        move |source| RunError::Io { what, path, source }
    }
}

/// Per (sample id, condition): the frame order and moved boxes a perturbation gave, as
/// stored with the prediction.
type SeenAs = HashMap<(String, Condition), (Option<Vec<usize>>, Option<Vec<GtBox>>)>;

/// What `eval` opened before it touches the disk.
struct Opened {
    ds: Dataset,
    selected: Selected,
    model: Model,
    semantic: Option<SemanticModel>,
    took: Duration,
}

/// The config's dataset, selection, model and semantic model, opened. Nothing is written.
fn open(cfg: &Config, opts: &EvalOptions) -> Result<Opened, RunError> {
    let t = Instant::now();
    cfg.validate().map_err(RunError::Invalid)?;
    let (ds, selected) = cfg.dataset_source().load()?;
    if let (Some(note), false) = (&selected.note, opts.quiet) {
        eprintln!("{note}");
    }
    // Nothing is sent when reporting from the store, so no key is needed.
    let model = open_model(cfg, opts.threads, !opts.report_only)?;
    for w in model.warnings() {
        eprintln!("warning: {w}");
    }
    let semantic = open_semantic(cfg.score.semantic, cfg.score.semantic_model.as_deref())?;
    Ok(Opened {
        ds,
        selected,
        model,
        semantic,
        took: t.elapsed(),
    })
}

/// The cluster rule asked for, or the one the dataset's format declares.
fn cluster_rule(
    asked: Option<&crate::score::ClusterRule>,
    ds: &Dataset,
) -> Result<crate::score::ClusterRule, RunError> {
    match asked {
        Some(r) => Ok(r.clone()),
        None => data::format(ds.format)
            .map_or("image", |f| f.cluster)
            .parse()
            .map_err(RunError::Invalid),
    }
}

/// The MiniLM model, when the semantic metric is asked for.
fn open_semantic(
    enabled: bool,
    files: Option<&std::path::Path>,
) -> Result<Option<SemanticModel>, RunError> {
    if !enabled {
        return Ok(None);
    }
    let files = SemanticFiles::locate(files).map_err(RunError::Semantic)?;
    SemanticModel::open(&files, &RuntimeOptions::default())
        .map(Some)
        .map_err(RunError::Semantic)
}

/// Runs `eval` as configured: open, plan, answer what is not stored, score and report.
pub fn eval(cfg: &Config, opts: &EvalOptions) -> Result<EvalSummary, RunError> {
    let t_start = Instant::now();
    let out = cfg.run.out.clone();
    let Opened {
        ds,
        selected,
        model,
        semantic,
        took: t_load,
    } = open(cfg, opts)?;

    // The run folder is written only once the config, the dataset, the selection and the
    // model have all been read without error, and only by the process holding its lock.
    let _lock = lock::acquire(&out)?;
    cfg.write_resolved(&out)?;

    let t = Instant::now();
    let digests = crate::fingerprint::image_digests(&ds.samples);
    let ctx = SeedContext::new(cfg.run.seed, ds.name.clone());
    let Plan {
        items,
        failures: plan_failures,
        skipped,
    } = plan::plan(cfg, &ds, &model, &digests)?;
    let mut failures: Vec<Failure> = ds.failures.clone();
    failures.extend(plan_failures);
    let t_plan = t.elapsed();

    let (decoded_bytes, _) = cache_budgets(cfg);
    let decoded = ImageStore::new(cfg.dataset.max_pixels, decoded_bytes)
        .with_dicom_window(cfg.dataset.dicom_window);
    let swaps = export::swaps_for(&ctx, &ds, &cfg.perturb.perturbations);
    let mut times = StageTimes::default();
    let (answered, reused) = answer_pending(
        cfg,
        opts,
        Inputs {
            ds: &ds,
            model: &model,
            ctx: &ctx,
            decoded: &decoded,
            swaps: &swaps,
        },
        &items,
        &mut times,
    )?;

    // Score and report from the store.
    let t = Instant::now();
    let (stored, _) = store::read(&out.join("predictions.jsonl"))?;
    let (preds, seen_as) = predictions_of(&items, &stored, &mut failures);
    let box_frame = cfg.model.box_frame.unwrap_or_else(|| model.box_frame());
    let scorer = semantic.as_ref().map(MiniLmScorer);
    let judge = match &cfg.score.judge {
        Some(j) => Some(judge::LlmJudge::open(
            judge::JudgeSettings::from_section(j),
            &out,
        )?),
        None => None,
    };
    let score_opts = ScoreOptions {
        box_frame,
        grounding: cfg.score.grounding,
        semantic: scorer.as_ref().map(|s| s as &dyn SemanticScorer),
        judge: judge.as_ref().map(|j| j as &dyn crate::score::judge::Judge),
    };
    let truth = |s: &Sample, p: &Prediction| seen_sample(&seen_as, s, p);
    let mut runs: RunScores = score::score_run_with(
        &ds.samples,
        &preds,
        &score_opts,
        &HeaderSizes::default(),
        &truth,
    );
    add_missing(&mut runs, &items, &ds, &stored);
    if let (Some(j), false) = (&judge, opts.quiet) {
        let (asked, reused) = j.counts();
        eprintln!("judge: {asked} verdicts asked, {reused} reused from judgements.jsonl");
    }
    let cluster = cluster_rule(cfg.score.cluster.as_ref(), &ds)?;
    cluster.assign(&mut runs, &ds.samples);
    let t_score = t.elapsed();

    let t = Instant::now();
    outputs::sort_failures(&mut failures);
    let mut header = outputs::eval_header(cfg, &ds, &model, box_frame, selected.note.as_deref());
    header.cluster = Some(cluster.to_string());
    header.notes.extend(outputs::modality_notes(&skipped));
    let rep = report::build(
        &ds.samples,
        &runs,
        &failures,
        header,
        &report::BuildOptions::default(),
    );
    let thumbs = outputs::EvalThumbnails {
        ds: &ds,
        ctx: &ctx,
        decoded: &decoded,
        apps: items
            .iter()
            .filter_map(|i| i.app)
            .map(|a| (Condition::new(a.label(), a.severity), a))
            .collect(),
        swaps: &swaps,
    };
    let fingerprint = crate::fingerprint::Fingerprint::new(
        &cfg.dataset.spec,
        cfg.dataset_source().generated_seed(),
        &ds.samples,
        &digests,
    );
    outputs::write_run_folder(&out, &rep, &runs, &thumbs, &fingerprint)?;
    let t_report = t.elapsed();

    let mut timing = times.to_timing(
        t_start.elapsed(),
        [
            ("load", t_load),
            ("plan", t_plan),
            ("score", t_score),
            ("report", t_report),
        ],
        answered,
    );
    timing.served = model.served_usage();
    report::write_timing(&out, &timing)?;
    Ok(EvalSummary {
        out,
        failures: rep.counts.failures,
        report: rep,
        answered,
        reused,
        timing,
    })
}

/// What answering reads: the dataset, the model, the seeds, the decoded images and the
/// `swapped-image` donors.
struct Inputs<'a> {
    ds: &'a Dataset,
    model: &'a Model,
    ctx: &'a SeedContext,
    decoded: &'a ImageStore,
    swaps: &'a crate::perturb::Swaps,
}

/// Answers the planned items this shard owns that the store does not hold yet, appending
/// each batch to the store. Returns (answered now, found stored).
fn answer_pending(
    cfg: &Config,
    opts: &EvalOptions,
    inputs: Inputs<'_>,
    items: &[Item],
    times: &mut StageTimes,
) -> Result<(usize, usize), RunError> {
    let Inputs {
        ds,
        model,
        ctx,
        decoded,
        swaps,
    } = inputs;
    let shard = cfg.run.shard;
    let (mut store, _, stats) = Store::open(&cfg.run.out.join("predictions.jsonl"))?;
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
    if opts.report_only || pending.is_empty() {
        return Ok((0, reused));
    }
    pending.sort_by(|a, b| plan::work_order(ds, a).cmp(&plan::work_order(ds, b)));
    let runner = Runner {
        ds,
        model,
        ctx,
        decoded,
        perturbed: PerturbedCache::new(cache_budgets(cfg).1),
        swaps,
    };
    let (batch_size, sessions) = step_shape(cfg);
    let answered = runner.run(
        &pending, &mut store, batch_size, sessions, opts.quiet, times,
    )?;
    Ok((answered, reused))
}

/// The stored answers to planned items as predictions, with the frame order and moved
/// boxes each was answered under; stored errors join `failures`.
fn predictions_of(
    items: &[Item],
    stored: &[Record],
    failures: &mut Vec<Failure>,
) -> (Vec<Prediction>, SeenAs) {
    let wanted: HashSet<&str> = items.iter().map(|i| i.key.as_str()).collect();
    let mut preds = Vec::new();
    let mut seen_as: SeenAs = HashMap::new();
    for r in stored.iter().filter(|r| wanted.contains(r.key.as_str())) {
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
                    // Probabilities that do not fit the response (a hand-edited store)
                    // give no confidence rather than a wrong one.
                    confidence: r
                        .token_probs
                        .as_ref()
                        .filter(|t| crate::score::predictions::valid_tokens(t, response.len()))
                        .map(|t| crate::score::confidence::Confidence::Tokens(t.clone())),
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
    (preds, seen_as)
}

/// The sample as the model saw it for `p`: frames reordered and boxes moved as stored,
/// options rotated (and the reference with them) as the condition says, the answer
/// remapped through a frame reordering, or marked order-dependent where the dataset cannot
/// say how it follows the frames. `None` when it
/// saw the sample as it is.
fn seen_sample(seen_as: &SeenAs, s: &Sample, p: &Prediction) -> Option<Sample> {
    let task = crate::perturb::options::task_as_asked(
        &p.condition.perturbation,
        p.condition.severity,
        &s.task,
    );
    let stored = seen_as.get(&(p.id.clone(), p.condition.clone()));
    if task.is_none() && stored.is_none() {
        return None;
    }
    let mut seen = s.clone();
    if let Some(task) = task {
        seen.task = task;
    }
    let Some((frames, boxes)) = stored else {
        return Some(seen);
    };
    if let Some(order) = frames {
        seen.images = order
            .iter()
            .filter_map(|&i| s.images.get(i).cloned())
            .collect();
        let reordered =
            crate::perturb::find(&p.condition.perturbation).is_some_and(|x| x.is_frames());
        if reordered {
            match crate::perturb::frames::answer_under_order(s, order) {
                FrameTruth::Same => {}
                FrameTruth::Remapped(task) => seen.task = task,
                FrameTruth::OrderDependent => {
                    seen.meta.insert(
                        score::ORDER_DEPENDENT.into(),
                        crate::sample::MetaValue::Str("true".into()),
                    );
                }
            }
        }
    }
    if let Some(b) = boxes {
        seen.boxes = b.clone();
    }
    Some(seen)
}

/// The config's model: a folder run through ONNX Runtime, or a served model (whose key is
/// read only when it will be asked something, `with_key`).
pub fn open_model(cfg: &Config, threads: Option<usize>, with_key: bool) -> Result<Model, RunError> {
    Ok(match cfg.model.backend {
        Backend::Onnx => Model::open(&cfg.model.path, &model_options(cfg, threads))?,
        Backend::Openai => {
            let mut s = cfg.model.served_settings().map_err(RunError::Invalid)?;
            s.prompt = cfg.prompt.settings();
            if !with_key {
                s.api_key_env = None;
            }
            Model::served(s)?
        }
    })
}

/// Items per pipeline step and batches in flight. A served model gets at least four requests
/// per worker in a step, so that one slow reply holds up little of the step.
fn step_shape(cfg: &Config) -> (usize, usize) {
    let m = &cfg.model;
    match m.backend {
        Backend::Onnx => (m.batch_size, m.sessions),
        Backend::Openai => {
            let workers = m
                .max_concurrency
                .unwrap_or(crate::infer::served::DEFAULT_CONCURRENCY);
            (m.batch_size.max(4 * workers), 1)
        }
    }
}

fn model_options(cfg: &Config, threads: Option<usize>) -> ModelOptions {
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
        prompt: cfg.prompt.settings(),
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
    o
}

/// Planned predictions that are not stored (another shard's share, an unfinished run in
/// `merge`) are listed as missing, so the report never looks complete when it is not.
fn add_missing(runs: &mut RunScores, planned: &[Item], ds: &Dataset, stored: &[Record]) {
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
