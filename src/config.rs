//! `medvqa eval` configs: a TOML file, validated strictly, resolved into a run plan.
//!
//! ```text
//! $ medvqa eval --config configs/default.toml --out runs/mine --batch-size 8
//! ```
//!
//! Every section and key is checked (`deny_unknown_fields`): a misspelt key is an error that
//! names it, never a silently ignored setting. Command-line flags override the file.
//! Relative paths in the file resolve against the file's folder (so a config works from any
//! current directory); paths given as flags resolve against the current directory, as
//! every command-line path does. The resolved config (after overrides) is written to the
//! run folder as `config.resolved.toml`, its paths relative to that folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::decode::DEFAULT_MAX_PIXELS;
use crate::geometry::BoxFrame;
use crate::infer::{Device, Variant};
use crate::perturb::Severities;
use crate::score::GroundingScope;
use crate::store::Shard;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub run: RunSection,
    pub dataset: DatasetSection,
    pub model: ModelSection,
    #[serde(default)]
    pub perturb: PerturbSection,
    #[serde(default)]
    pub score: ScoreSection,
    #[serde(default)]
    pub report: ReportSection,
    /// The prompt, when not medvqa's own wording (a benchmark's published prompt).
    #[serde(default, skip_serializing_if = "PromptSection::is_default")]
    pub prompt: PromptSection,
}

/// `[prompt]`: the system message, the question block and the instruction lines, for both
/// backends (docs/eval.md, "Prompts"). Part of the store key.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// `{question}`, `{options}`, `{instruction}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// `{letter}`, `{text}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option_separator: Option<String>,
    /// Per question kind; an empty line asks nothing.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub instructions: std::collections::BTreeMap<crate::sample::QuestionKind, String>,
    /// `first` (the default) or `last`: where the images go in the user turn.
    #[serde(default, skip_serializing_if = "is_default_images")]
    pub images: crate::infer::prompt::ImagesAt,
}

fn is_default_images(i: &crate::infer::prompt::ImagesAt) -> bool {
    *i == crate::infer::prompt::ImagesAt::default()
}

impl PromptSection {
    pub fn is_default(&self) -> bool {
        self == &PromptSection::default()
    }

    /// The settings the engines take.
    pub fn settings(&self) -> crate::infer::prompt::PromptSettings {
        crate::infer::prompt::PromptSettings {
            system: self.system.clone(),
            template: self.template.clone(),
            option_format: self.option_format.clone(),
            option_separator: self.option_separator.clone(),
            instructions: self.instructions.clone(),
            images: self.images,
        }
    }
}

/// Where the run goes and what seeds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// The run folder: predictions.jsonl, reports, timing.json, config.resolved.toml.
    #[serde(default = "default_out")]
    pub out: PathBuf,
    /// Seeds perturbations (docs/design.md §3) and, unless `score.bootstrap_seed` is set, the
    /// bootstrap.
    #[serde(default)]
    pub seed: u64,
    /// `i/n`: this process handles the prediction keys whose hash mod n is i.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_text")]
    pub shard: Option<Shard>,
    /// Only the first N samples of the dataset (for a quick look).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// MiB for decoded and perturbed images kept between uses (default 576): seven eighths
    /// decoded, one eighth perturbed. The model's own memory comes on top (docs/eval.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_cache_mib: Option<usize>,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            out: default_out(),
            seed: 0,
            shard: None,
            limit: None,
            image_cache_mib: None,
        }
    }
}

fn default_out() -> PathBuf {
    PathBuf::from("runs/eval")
}

/// Which dataset, and how to read it (the flags of `medvqa inspect`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSection {
    /// `FORMAT:PATH`, e.g. `gemex:data/gemex` or `phantom:all`.
    pub spec: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_root: Option<PathBuf>,
    /// Overrides the format's declared ground-truth box frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub box_frame: Option<BoxFrame>,
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
    /// How DICOM grey values become 8-bit: `auto` (the file's VOI LUT, else its first
    /// window, else min-max), `none` (min-max) or `CENTER,WIDTH`.
    #[serde(default, skip_serializing_if = "crate::data::dicom::Window::is_auto")]
    pub dicom_window: crate::data::dicom::Window,
    /// For generated datasets (phantom:…).
    #[serde(default)]
    pub seed: u64,
    /// Questions per set, for generated datasets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// Keep samples where every `KEY=VALUE[|VALUE...]` holds (`kind=closed`,
    /// `modality=cxr|endoscopy`, any meta key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter: Vec<String>,
    /// Then a seeded random subset of this many samples (`run.limit` comes after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<usize>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sample_seed: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Config {
    /// The samples this run works on: `dataset.filter`, `dataset.sample`, `run.limit`.
    /// The dataset, how to read it and which samples.
    pub fn dataset_source(&self) -> crate::data::DatasetSource {
        crate::data::DatasetSource {
            spec: self.dataset.spec.clone(),
            load: crate::data::LoadOptions {
                image_root: self.dataset.image_root.clone(),
                box_frame: self.dataset.box_frame,
                max_pixels: self.dataset.max_pixels,
                seed: self.dataset.seed,
                n: self.dataset.n,
                dicom_window: self.dataset.dicom_window,
            },
            selection: self.selection(),
        }
    }

    pub fn selection(&self) -> crate::data::select::Selection {
        crate::data::select::Selection {
            filter: self.dataset.filter.clone(),
            sample: self.dataset.sample,
            sample_seed: self.dataset.sample_seed,
            limit: self.run.limit,
        }
    }
}

fn default_max_pixels() -> u64 {
    DEFAULT_MAX_PIXELS
}

/// Which kind of model answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A model folder in the onnx-community layout, run here through ONNX Runtime.
    #[default]
    Onnx,
    /// A served model behind an OpenAI-compatible chat-completions endpoint (vLLM, SGLang,
    /// Ollama, llama.cpp's server, OpenAI, Gemini's OpenAI-compatible API).
    Openai,
}

/// The model and how to run it: a model folder (`backend = "onnx"`, the default) or a
/// served model (`backend = "openai"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    #[serde(default)]
    pub backend: Backend,
    /// A folder in the onnx-community layout (backend `onnx`).
    #[serde(default, skip_serializing_if = "is_empty_path")]
    pub path: PathBuf,
    /// The name in the report header (default: the folder name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ONNX variant: `fp32`, `q4`, `quantized`, … or per graph (`decoder_model_merged=q4`).
    #[serde(default, with = "text")]
    pub variant: Variant,
    /// `cpu`, `cuda` or `cuda:N`.
    #[serde(default, with = "text")]
    pub device: Device,
    /// ONNX Runtime sessions per graph (batches in flight).
    #[serde(default = "one")]
    pub sessions: usize,
    /// Prompts per decoder batch; answers never depend on it.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// The most tokens an answer may have (`max_tokens` is the same key, as OpenAI names it).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "max_tokens")]
    pub max_new_tokens: Option<usize>,
    /// Image budget in pixels: fewer tiles or patches for large images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_budget: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_images: Option<usize>,
    /// The frame of boxes in the model's answers, when it is not the family's own (e.g. a
    /// fine-tuned model answering in `pixels`). Default: the family's declared frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub box_frame: Option<BoxFrame>,
    /// Says in the report header that the weights are random (fixture models).
    #[serde(default)]
    pub random_weights: bool,
    /// Dual encoders (CLIP/SigLIP): how questions become captions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_shot: Option<ZeroShotSection>,

    // Served models (backend = "openai"); an error with the onnx backend.
    /// The API base, e.g. `http://localhost:8000/v1` (or the full `…/chat/completions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The model name the server knows, e.g. `Qwen/Qwen2.5-VL-7B-Instruct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The environment variable that holds the API key (the key itself is never in a config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// The most requests in flight (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<usize>,
    /// Seconds one request may take, reply included (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    /// Retries after a 429, a 5xx, a timeout or a dropped connection (default 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// The first retry's backoff in seconds, doubling each time up to 60 s (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff_s: Option<f64>,
    /// `png` (lossless, the default) or `jpeg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_format: Option<crate::infer::served::ImageFormat>,
    /// JPEG quality, 1-100 (default 95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jpeg_quality: Option<u8>,
    /// Downscale each image after perturbation so that its longer side is at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_side: Option<u32>,
    /// Sampling temperature (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The request's `seed`, for servers that honour it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// US dollars per million prompt / completion tokens: `timing.json` then gives a cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_prompt_per_mtok: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_completion_per_mtok: Option<f64>,
}

fn is_empty_path(p: &Path) -> bool {
    p.as_os_str().is_empty()
}

impl ModelSection {
    /// The served-model keys that are set, by name.
    fn served_keys(&self) -> Vec<&'static str> {
        [
            ("url", self.url.is_some()),
            ("model", self.model.is_some()),
            ("api_key_env", self.api_key_env.is_some()),
            ("max_concurrency", self.max_concurrency.is_some()),
            ("timeout_s", self.timeout_s.is_some()),
            ("max_retries", self.max_retries.is_some()),
            ("retry_backoff_s", self.retry_backoff_s.is_some()),
            ("image_format", self.image_format.is_some()),
            ("jpeg_quality", self.jpeg_quality.is_some()),
            ("max_side", self.max_side.is_some()),
            ("temperature", self.temperature.is_some()),
            ("seed", self.seed.is_some()),
            (
                "price_prompt_per_mtok",
                self.price_prompt_per_mtok.is_some(),
            ),
            (
                "price_completion_per_mtok",
                self.price_completion_per_mtok.is_some(),
            ),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    /// The ONNX-only keys that are set (away from their defaults), by name.
    fn onnx_keys(&self) -> Vec<&'static str> {
        [
            ("path", !is_empty_path(&self.path)),
            ("variant", self.variant != Variant::default()),
            ("device", self.device != Device::default()),
            ("sessions", self.sessions != 1),
            ("image_budget", self.image_budget.is_some()),
            ("zero_shot", self.zero_shot.is_some()),
            ("random_weights", self.random_weights),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    /// Checks the keys against the backend.
    fn validate(&self) -> Result<(), String> {
        match self.backend {
            Backend::Onnx => {
                if let Some(k) = self.served_keys().first() {
                    return Err(format!(
                        "model.{k} is a served-model setting: add backend = \"openai\" to [model], or remove it"
                    ));
                }
                if is_empty_path(&self.path) {
                    return Err(
                        "model.path is missing: a model folder in the onnx-community layout (or backend = \"openai\" with url and model for a served model)"
                            .into(),
                    );
                }
            }
            Backend::Openai => {
                if let Some(k) = self.onnx_keys().first() {
                    return Err(format!(
                        "model.{k} applies to ONNX model folders, not to a served model (backend = \"openai\")"
                    ));
                }
                self.served_settings()?;
            }
        }
        Ok(())
    }

    /// The served model's settings (backend `openai`), checked.
    pub fn served_settings(&self) -> Result<crate::infer::served::ServedSettings, String> {
        use crate::infer::served::{ImageFormat, Prices, ServedSettings};
        let need = |v: &Option<String>, k: &str, eg: &str| -> Result<String, String> {
            match v.as_deref().map(str::trim) {
                Some(s) if !s.is_empty() => Ok(s.to_string()),
                _ => Err(format!(
                    "model.{k} is missing: a served model needs it, e.g. {k} = {eg:?}"
                )),
            }
        };
        let url = need(&self.url, "url", "http://localhost:8000/v1")?;
        let model = need(&self.model, "model", "Qwen/Qwen2.5-VL-7B-Instruct")?;
        let box_frame = self.box_frame.ok_or_else(|| {
            "model.box_frame is missing: a served model's box frame is declared, never guessed \
             (normalized, pixels, grid:1000, yx-grid:1000 for Gemini, \
             qwen2.5-vl:min_pixels=3136,max_pixels=12845056,factor=28 for Qwen2.5-VL)"
                .to_string()
        })?;
        if self.max_side.is_some() && box_frame.needs_image_size() {
            return Err(format!(
                "model.max_side with box_frame {box_frame}: the model would answer in pixels of the downscaled image, which the scorer does not see; drop max_side (or use a frame relative to the image size)"
            ));
        }
        let mut s = ServedSettings::new(url, model, box_frame);
        s.api_key_env = self.api_key_env.clone();
        if let Some(c) = self.max_concurrency {
            if c == 0 {
                return Err("model.max_concurrency must be at least 1".into());
            }
            s.max_concurrency = c;
        }
        let seconds = |v: Option<f64>, k: &str| -> Result<Option<std::time::Duration>, String> {
            match v {
                None => Ok(None),
                Some(x) if x.is_finite() && x > 0.0 && x < 1e6 => {
                    Ok(Some(std::time::Duration::from_secs_f64(x)))
                }
                Some(x) => Err(format!(
                    "model.{k} = {x}: give a positive number of seconds"
                )),
            }
        };
        if let Some(t) = seconds(self.timeout_s, "timeout_s")? {
            s.retry.timeout = t;
        }
        if let Some(b) = seconds(self.retry_backoff_s, "retry_backoff_s")? {
            s.retry.base = b;
        }
        if let Some(r) = self.max_retries {
            s.retry.max_retries = r;
        }
        s.image_format = self.image_format.unwrap_or_default();
        if let Some(q) = self.jpeg_quality {
            if !(1..=100).contains(&q) {
                return Err(format!("model.jpeg_quality = {q}: give 1-100"));
            }
            if s.image_format != ImageFormat::Jpeg {
                return Err("model.jpeg_quality applies with image_format = \"jpeg\" only".into());
            }
            s.jpeg_quality = q;
        }
        if self.max_side == Some(0) {
            return Err("model.max_side must be at least 1".into());
        }
        s.max_side = self.max_side;
        s.max_tokens = self.max_new_tokens;
        if let Some(t) = self.temperature {
            if !(t.is_finite() && t >= 0.0) {
                return Err(format!("model.temperature = {t}: give 0 or more"));
            }
            s.temperature = t;
        }
        s.seed = self.seed;
        s.max_images = self.max_images;
        s.prices = match (self.price_prompt_per_mtok, self.price_completion_per_mtok) {
            (None, None) => None,
            (p, c) => {
                let (p, c) = (p.unwrap_or(0.0), c.unwrap_or(0.0));
                if !(p.is_finite() && c.is_finite() && p >= 0.0 && c >= 0.0) {
                    return Err("model.price_*_per_mtok: give prices of 0 or more".into());
                }
                Some(Prices {
                    prompt_per_mtok: p,
                    completion_per_mtok: c,
                })
            }
        };
        Ok(s)
    }
}

fn one() -> usize {
    1
}
fn default_batch() -> usize {
    8
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroShotSection {
    /// `{option}` is replaced by the option text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option_template: Option<String>,
    /// `{question}` and `{answer}` (yes, then no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_threshold: Option<f64>,
}

/// The robustness track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerturbSection {
    /// Perturbation and track names (`medvqa perturbations` lists them); empty: clean only.
    #[serde(default)]
    pub perturbations: Vec<String>,
    /// `all`, a list like `1,3,5` (or the TOML list `[1, 3, 5]`) or a range like `1..5`.
    #[serde(
        default = "default_severities",
        deserialize_with = "severities_any",
        serialize_with = "text::serialize"
    )]
    pub severities: Severities,
    /// Apply explicitly named perturbations to every sample, also where they do not suit
    /// its modality (`cxr-grid` on endoscopy). Off: such samples are skipped, with a note.
    #[serde(default)]
    pub any_modality: bool,
}

impl Default for PerturbSection {
    fn default() -> Self {
        PerturbSection {
            perturbations: Vec::new(),
            severities: default_severities(),
            any_modality: false,
        }
    }
}

/// A TOML error as a person reads it: `LINE: what is wrong`, then the line itself, and
/// for a misspelt key the closest known one (`unknown key batchsize; did you mean
/// batch_size?`) and the keys allowed there.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim();
    let mut lines = Vec::new();
    let mut first = match message.strip_prefix("unknown field `") {
        Some(rest) => {
            let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
            let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            if !known.is_empty() {
                lines.push(format!("  keys allowed here: {}", known.join(", ")));
            }
            format!("unknown key {key}{}", crate::suggest::hint(key, known))
        }
        None => message.replace('\n', " "),
    };
    if let Some(span) = e.span() {
        let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
        let line = text.lines().nth(line_no - 1).unwrap_or("").trim_end();
        first = format!("{line_no}: {first}");
        lines.insert(0, format!("  {line_no:>4} | {line}"));
    } else {
        first = format!(" {first}");
    }
    std::iter::once(first)
        .chain(lines)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `severities` as a string (`all`, `1,3,5`, `1..3`) or a TOML list of numbers (`[1, 3, 5]`).
fn severities_any<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Severities, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        List(Vec<u8>),
    }
    let text = match Either::deserialize(d)? {
        Either::Text(s) => s,
        Either::List(v) => v.iter().map(u8::to_string).collect::<Vec<_>>().join(","),
    };
    text.parse().map_err(serde::de::Error::custom)
}

fn default_severities() -> Severities {
    Severities::All
}

/// A value that is text in TOML and typed in memory, through `FromStr` and `Display`: a
/// bad value is a parse error at its line, before anything touches the disk.
mod text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, T: Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: Display,
    {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// [`text`] for optional values.
mod opt_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, T: Display>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: Display,
    {
        Option::<String>::deserialize(d)?
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Scoring choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreSection {
    /// `boxed` (every sample with ground-truth boxes) or `grounding-kind`.
    #[serde(default)]
    pub grounding: GroundingScope,
    /// Also report `semantic` (MiniLM cosine) on open answers.
    #[serde(default)]
    pub semantic: bool,
    /// Folder holding the MiniLM files, or a site-packages folder with the two packages
    /// (default: found in ./.venv, $VIRTUAL_ENV or python3's packages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic_model: Option<PathBuf>,
    /// Meta keys to break results down by, besides kind, modality and image count.
    #[serde(default)]
    pub by: Vec<String>,
    #[serde(default = "default_bootstrap")]
    pub bootstrap: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_seed: Option<u64>,
    /// What the bootstrap resamples together: `image`, `meta.KEY` (e.g. `meta.video_id`) or
    /// `none`. Default: what the dataset format declares (`medvqa datasets`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_text")]
    pub cluster: Option<crate::score::ClusterRule>,
    /// An LLM judge for open answers (the `judge` metric): a served model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeSection>,
}

/// `[score.judge]`: the served model that grades open answers (docs/scoring.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeSection {
    /// The API base, e.g. `http://localhost:8000/v1`.
    pub url: String,
    /// The judge model's name on that server; part of every verdict's cache key.
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Requests in flight (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

impl Default for ScoreSection {
    fn default() -> Self {
        ScoreSection {
            grounding: GroundingScope::default(),
            semantic: false,
            semantic_model: None,
            by: Vec::new(),
            bootstrap: default_bootstrap(),
            bootstrap_seed: None,
            cluster: None,
            judge: None,
        }
    }
}

fn default_bootstrap() -> usize {
    1000
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSection {
    /// Notes printed in the report header.
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `message` starts with `LINE: ` where the parser knows the line.
    #[error("config {path}:{message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialise the resolved config: {0}")]
    Serialize(String),
}

impl Config {
    /// Reads a config file. Its relative paths resolve against the file's own folder, so a
    /// config works from any current directory (`config.resolved.toml` too: it is written
    /// with paths relative to the run folder it lies in).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut c = Config::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        c.map_paths(|p| normalize(&base.join(p)));
        Ok(c)
    }

    /// A config from the two things a run cannot do without; every other key takes its
    /// documented default (`medvqa eval --dataset … --model …` without a file).
    pub fn minimal(spec: &str, model: &Path) -> Result<Config, String> {
        let mut table = toml::Table::new();
        let mut dataset = toml::Table::new();
        dataset.insert("spec".into(), spec.into());
        let mut m = toml::Table::new();
        m.insert("path".into(), model.to_string_lossy().into_owned().into());
        table.insert("dataset".into(), dataset.into());
        table.insert("model".into(), m.into());
        Config::deserialize(table).map_err(|e| e.to_string())
    }

    /// Applies `f` to every relative path of the config: run.out, the dataset spec's path
    /// (not a generated set's name), dataset.image_root, model.path, score.semantic_model.
    fn map_paths(&mut self, f: impl Fn(&Path) -> PathBuf) {
        let g = |p: &Path| {
            if p.is_relative() {
                f(p)
            } else {
                p.to_path_buf()
            }
        };
        self.run.out = g(&self.run.out);
        if let Some((format, rest)) = self.dataset.spec.split_once(':')
            && !crate::data::is_generated(format)
            && !rest.is_empty()
        {
            let resolved = g(Path::new(rest));
            self.dataset.spec = format!("{format}:{}", resolved.display());
        }
        self.dataset.image_root = self.dataset.image_root.as_deref().map(g);
        if !is_empty_path(&self.model.path) {
            self.model.path = g(&self.model.path);
        }
        self.score.semantic_model = self.score.semantic_model.as_deref().map(g);
    }

    pub fn from_toml(text: &str) -> Result<Config, String> {
        // Editors on Windows save a byte-order mark; TOML does not allow one.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut c: Config = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        c.perturb.perturbations = crate::perturb::canonical_names(&c.perturb.perturbations);
        c.validate().map_err(|e| format!(" {e}"))?;
        Ok(c)
    }

    /// The checks serde cannot make, run on the file and again after the command-line
    /// overrides, before a run writes anything: perturbation and track names exist, and
    /// the selection filters are `KEY=VALUE`.
    pub fn validate(&self) -> Result<(), String> {
        self.model.validate()?;
        self.prompt.settings().validate()?;
        if let Some(j) = &self.score.judge {
            if j.url.trim().is_empty() || j.model.trim().is_empty() {
                return Err("score.judge needs url and model".into());
            }
            if j.max_concurrency == Some(0) {
                return Err("score.judge.max_concurrency must be at least 1".into());
            }
            if let Some(t) = j.timeout_s
                && !(t.is_finite() && t > 0.0 && t < 1e6)
            {
                return Err(format!(
                    "score.judge.timeout_s = {t}: give a positive number of seconds"
                ));
            }
        }
        for name in &self.perturb.perturbations {
            if crate::perturb::find(name).is_none()
                && crate::perturb::presets::track(name).is_none()
            {
                return Err(format!(
                    "perturb.perturbations: {}",
                    crate::perturb::PerturbError::unknown(name)
                ));
            }
        }
        for f in &self.dataset.filter {
            crate::data::select::parse_filters(f).map_err(|e| format!("dataset.filter: {e}"))?;
        }
        Ok(())
    }

    /// The config as TOML, as written to `config.resolved.toml`.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Serialize(e.to_string()))
    }

    /// Writes `config.resolved.toml` into the run folder `dir`, with relative paths
    /// rewritten relative to `dir`, so that `Config::from_file` reads back this config.
    pub fn write_resolved(&self, dir: &Path) -> Result<(), ConfigError> {
        let path = dir.join("config.resolved.toml");
        let mut here = self.clone();
        here.map_paths(|p| relative_to(p, dir));
        let text = format!(
            "# The config this run used, after command-line overrides (medvqa {}).\n\
             # Relative paths are relative to this file's folder.\n{}",
            env!("CARGO_PKG_VERSION"),
            here.to_toml()?
        );
        std::fs::write(&path, text).map_err(|source| ConfigError::Write { path, source })
    }
}

/// `a/./b/../c` → `a/c`, without touching the file system (a symlinked folder followed by
/// `..` is taken lexically; configs rarely do that, and the path an error names stays the
/// one the user can read). An empty result is `.`.
pub fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

/// `p` as seen from folder `dir` (both relative to the current directory, or absolute):
/// `assets/m` from `runs/x` is `../../assets/m`. Falls back to the absolute path where no
/// relative one exists (`dir` climbs above the current directory).
fn relative_to(p: &Path, dir: &Path) -> PathBuf {
    let absolute = |q: &Path| match std::env::current_dir() {
        Ok(cwd) if q.is_relative() => normalize(&cwd.join(q)),
        _ => normalize(q),
    };
    let (p, dir) = if p.is_absolute() == dir.is_absolute() {
        (normalize(p), normalize(dir))
    } else {
        (absolute(p), absolute(dir))
    };
    let pc: Vec<_> = p.components().collect();
    let dc: Vec<_> = dir
        .components()
        .filter(|c| *c != std::path::Component::CurDir)
        .collect();
    let common = pc.iter().zip(&dc).take_while(|(a, b)| a == b).count();
    if dc[common..].contains(&std::path::Component::ParentDir) {
        return absolute(&p);
    }
    let mut out = PathBuf::new();
    for _ in common..dc.len() {
        out.push("..");
    }
    for c in &pc[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

#[cfg(test)]
mod tests;
