//! Served models: any VLM behind an OpenAI-compatible chat-completions endpoint (vLLM,
//! SGLang, Ollama, llama.cpp's server, OpenAI, Gemini's OpenAI-compatible API).
//!
//! The same [`Engine`] contract as the ONNX families, so `eval`'s plan, perturbations, store,
//! resume, shards and reports do not know which backend answered:
//!
//! - **One user turn**: the sample's images in order as `image_url` data URLs, then the same
//!   question block the ONNX path renders ([`prompt::sample_text`]); the server applies the
//!   model's own chat template.
//! - **Exactly the perturbed pixels**: images go as lossless PNG unless the config asks for
//!   JPEG or a `max_side` downscale (both applied after the perturbation, and named in the
//!   report header and the store key, since they change what the model sees).
//! - **Bounded concurrency**: a batch is answered by at most `max_concurrency` worker threads,
//!   each with one request in flight, over one pooled HTTP client (`client.rs`). Results land
//!   by index, so the order responses come back in never changes a record.
//! - **Failures are per sample**: a refused prompt, too many images, or a request that still
//!   fails after its retries fails that sample with the server's message, never the run.
//! - **The API key** comes from the environment variable the config names, is sent only in
//!   the `Authorization` header, and is cut out of every message medvqa keeps or prints.

mod client;

use std::sync::Mutex;
use std::time::Instant;

use base64::Engine as _;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::geometry::BoxFrame;
use crate::pixels::Pixels;

use super::engine::{Engine, Generated, PreparedBatch, PromptInput, PromptView, Timings};
use super::error::{ModelError, SampleError, SampleErrorKind};
use super::image_ops::{Filter, resize};
use super::prompt;

pub use client::{Reply, RetryPolicy};

/// How images are encoded for the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// Lossless: the server sees exactly the perturbed pixels.
    #[default]
    Png,
    /// Smaller requests; changes the pixels (stated in the report header).
    Jpeg,
}

/// Prices per million tokens, for the cost line of `timing.json`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub prompt_per_mtok: f64,
    pub completion_per_mtok: f64,
}

/// Everything a served model is opened with (`[model]` with `backend = "openai"`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServedSettings {
    /// The API base (`http://localhost:8000/v1`), or the full `…/chat/completions` URL.
    pub url: String,
    /// The model name the server knows (`Qwen/Qwen2.5-VL-7B-Instruct`).
    pub model: String,
    /// The environment variable holding the API key; `None` sends no key.
    pub api_key_env: Option<String>,
    /// The most requests in flight at once.
    pub max_concurrency: usize,
    pub retry: RetryPolicy,
    pub image_format: ImageFormat,
    pub jpeg_quality: u8,
    /// Downscale images so that their longer side is at most this (never upscales).
    pub max_side: Option<u32>,
    pub max_tokens: Option<usize>,
    pub temperature: f64,
    pub seed: Option<u64>,
    /// Refuse samples with more images than this before sending them.
    pub max_images: Option<usize>,
    /// The frame the model's boxes are in, declared by the config.
    pub box_frame: BoxFrame,
    pub prices: Option<Prices>,
    /// The configured prompt (`[prompt]`).
    pub prompt: prompt::PromptSettings,
}

/// The default of `max_concurrency`.
pub const DEFAULT_CONCURRENCY: usize = 8;

impl ServedSettings {
    /// Settings with the defaults: PNG, temperature 0, 8 requests in flight, 120 s timeout,
    /// 6 retries.
    pub fn new(url: impl Into<String>, model: impl Into<String>, box_frame: BoxFrame) -> Self {
        ServedSettings {
            url: url.into(),
            model: model.into(),
            api_key_env: None,
            max_concurrency: DEFAULT_CONCURRENCY,
            retry: RetryPolicy::default(),
            image_format: ImageFormat::Png,
            jpeg_quality: 95,
            max_side: None,
            max_tokens: None,
            temperature: 0.0,
            seed: None,
            max_images: None,
            box_frame,
            prices: None,
            prompt: prompt::PromptSettings::default(),
        }
    }

    /// The chat-completions endpoint.
    pub fn endpoint(&self) -> String {
        endpoint_of(&self.url)
    }

    /// What the images go as, in words, for the report header.
    pub fn image_note(&self) -> String {
        let format = match self.image_format {
            ImageFormat::Png => "lossless PNG (the exact perturbed pixels)".to_string(),
            ImageFormat::Jpeg => format!(
                "JPEG at quality {} (lossy: the model does not see the exact perturbed pixels)",
                self.jpeg_quality
            ),
        };
        match self.max_side {
            Some(s) => format!(
                "{format}, downscaled after perturbation to at most {s} px on the longer side"
            ),
            None => format,
        }
    }
}

/// Request statistics of this process, for `timing.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// HTTP requests sent, retries included.
    pub requests: usize,
    /// Requests repeated after a 429, a 5xx, a timeout or a dropped connection.
    pub retries: usize,
    /// Samples answered / failed by the server (after retries).
    pub answered: usize,
    pub failed: usize,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Latency of the answered samples' last request, in milliseconds.
    pub latency_ms: Percentiles,
    /// From the config's prices, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// p50, p90, p99 and max, in milliseconds (0 when nothing was measured).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values`.
    pub fn of(values: &[f64]) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            (v[rank - 1] * 1000.0).round() / 1000.0
        };
        Percentiles {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    requests: usize,
    retries: usize,
    answered: usize,
    failed: usize,
    prompt_tokens: u64,
    completion_tokens: u64,
    latencies_ms: Vec<f64>,
}

/// A model behind an OpenAI-compatible chat-completions endpoint.
pub struct ServedEngine {
    settings: ServedSettings,
    client: client::Client,
    tally: Mutex<Tally>,
    warnings: Vec<String>,
}

/// The images of one input, encoded as data URLs.
type Encoded = Result<Vec<String>, SampleErrorKind>;

impl ServedEngine {
    /// Reads the key from the environment and sets up the client. Nothing is sent yet.
    pub fn open(settings: ServedSettings) -> Result<ServedEngine, ModelError> {
        if settings.max_concurrency == 0 {
            return Err(ModelError::Served(
                "model.max_concurrency must be at least 1".into(),
            ));
        }
        let (client, warnings) = connect(
            "model",
            &settings.endpoint(),
            settings.api_key_env.as_deref(),
            settings.retry,
        )?;
        Ok(ServedEngine {
            settings,
            client,
            tally: Mutex::new(Tally::default()),
            warnings,
        })
    }

    pub fn settings(&self) -> &ServedSettings {
        &self.settings
    }

    /// This process's request statistics so far.
    pub fn usage(&self) -> Usage {
        let t = match self.tally.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let cost_usd = self.settings.prices.map(|p| {
            let c = t.prompt_tokens as f64 * p.prompt_per_mtok / 1e6
                + t.completion_tokens as f64 * p.completion_per_mtok / 1e6;
            (c * 1e6).round() / 1e6
        });
        Usage {
            requests: t.requests,
            retries: t.retries,
            answered: t.answered,
            failed: t.failed,
            prompt_tokens: t.prompt_tokens,
            completion_tokens: t.completion_tokens,
            latency_ms: Percentiles::of(&t.latencies_ms),
            cost_usd,
        }
    }

    /// The images of one input as data URLs, after the configured re-encoding.
    fn encode(&self, input: &PromptInput<'_>) -> Encoded {
        if let Some(limit) = self.settings.max_images
            && input.images.len() > limit
        {
            return Err(SampleErrorKind::TooManyImages {
                given: input.images.len(),
                limit: format!("model.max_images is {limit}"),
            });
        }
        input
            .images
            .iter()
            .enumerate()
            .map(|(index, p)| {
                encode_image(p, &self.settings)
                    .map_err(|reason| SampleErrorKind::Image { index, reason })
            })
            .collect()
    }

    /// The request body for one input.
    fn body(&self, input: &PromptInput<'_>, urls: &[String]) -> Value {
        let images: Vec<Value> = urls
            .iter()
            .map(|u| json!({"type": "image_url", "image_url": {"url": u}}))
            .collect();
        let text = json!({"type": "text", "text": self.text(input)});
        let content = self.settings.prompt.images.arrange(images, text);
        let s = &self.settings;
        let mut messages = Vec::new();
        if let Some(system) = &s.prompt.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": content}));
        let mut body = json!({
            "model": s.model,
            "messages": messages,
            "temperature": s.temperature,
            "stream": false,
        });
        if let Some(m) = s.max_tokens {
            body["max_tokens"] = json!(m);
        }
        if let Some(seed) = s.seed {
            body["seed"] = json!(seed);
        }
        body
    }

    fn text(&self, input: &PromptInput<'_>) -> String {
        prompt::sample_text_with(input.sample, self.settings.box_frame, &self.settings.prompt)
    }

    /// Sends one prepared input and turns the reply into an answer.
    fn ask(&self, encoded: &Encoded, input: &PromptInput<'_>) -> AnswerOf {
        let id = input.sample.id.as_str();
        let urls = match encoded {
            Ok(u) => u,
            Err(e) => {
                return Err(SampleError::new(id, SampleErrorKind::Output(e.to_string())));
            }
        };
        let body = self.body(input, urls).to_string();
        let t = Instant::now();
        let outcome = self.client.send(&body);
        let took = t.elapsed();
        let mut tally = match self.tally.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        tally.requests += outcome.attempts;
        tally.retries += outcome.attempts.saturating_sub(1);
        match outcome.result {
            Ok(reply) => {
                tally.answered += 1;
                tally.prompt_tokens += reply.prompt_tokens.unwrap_or(0);
                tally.completion_tokens += reply.completion_tokens.unwrap_or(0);
                tally
                    .latencies_ms
                    .push(outcome.last_latency.as_secs_f64() * 1e3);
                Ok(Generated {
                    text: reply.text,
                    token_ids: Vec::new(),
                    token_probs: Vec::new(),
                    prompt_tokens: reply.prompt_tokens.unwrap_or(0) as usize,
                    completion_tokens: reply.completion_tokens.map(|c| c as usize),
                    timings: Timings {
                        request: took,
                        batch_size: 1,
                        ..Timings::default()
                    },
                })
            }
            Err(reason) => {
                tally.failed += 1;
                Err(SampleError::new(id, SampleErrorKind::Served(reason)))
            }
        }
    }
}

type AnswerOf = Result<Generated, SampleError>;

/// The chat-completions endpoint of `url`: an API base (`…/v1`) or the endpoint itself.
fn endpoint_of(url: &str) -> String {
    let base = url.trim_end_matches('/');
    if base.ends_with("/chat/completions") {
        base.to_string()
    } else {
        format!("{base}/chat/completions")
    }
}

/// The client for `endpoint`, with the key read from `api_key_env`, and the warnings about
/// the URL. `section` names the config section in messages (`model`, `score.judge`).
fn connect(
    section: &str,
    endpoint: &str,
    api_key_env: Option<&str>,
    retry: RetryPolicy,
) -> Result<(client::Client, Vec<String>), ModelError> {
    let key = match api_key_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(k) if !k.trim().is_empty() => Some(k.trim().to_string()),
            _ => {
                return Err(ModelError::Served(format!(
                    "{section}.api_key_env names {var}, which is not set (or empty) in the environment; \
                     export {var}=… before the run (the key is read from the environment only)"
                )));
            }
        },
    };
    let mut warnings = Vec::new();
    match client::scheme_and_host(endpoint) {
        Some(("https", _)) => {}
        Some(("http", host)) if client::is_loopback(host) => {}
        Some(("http", host)) => warnings.push(format!(
            "{section}.url {endpoint} is plain http:// to {host}, which is not this machine: prompts, images{} travel unencrypted; use https://",
            if key.is_some() { " and the API key" } else { "" }
        )),
        _ => {
            return Err(ModelError::Served(format!(
                "{section}.url {endpoint:?} is not an http:// or https:// URL"
            )));
        }
    }
    Ok((
        client::Client::new(endpoint.to_string(), key, retry),
        warnings,
    ))
}

/// A chat-completions client for callers other than the engine (the LLM judge), with the
/// same key handling, TLS, timeouts and retries.
pub struct ChatClient {
    client: client::Client,
    warnings: Vec<String>,
}

impl ChatClient {
    /// `url` is the API base or the full `…/chat/completions`; `section` names the config
    /// section in messages.
    pub fn open(
        section: &str,
        url: &str,
        api_key_env: Option<&str>,
        retry: RetryPolicy,
    ) -> Result<ChatClient, ModelError> {
        let (client, warnings) = connect(section, &endpoint_of(url), api_key_env, retry)?;
        Ok(ChatClient { client, warnings })
    }

    /// Sends a request body: the reply, or why there is none (the key cut out), and the
    /// number of requests it took.
    pub fn send(&self, body: &str) -> (Result<Reply, String>, usize) {
        let o = self.client.send(body);
        (o.result, o.attempts)
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Encodes one image for the request: optional downscale, then PNG or JPEG, as a data URL.
fn encode_image(p: &Pixels, s: &ServedSettings) -> Result<String, String> {
    let scaled;
    let p = match s.max_side.map(|m| (m, p.width().max(p.height()))) {
        Some((m, side)) if side > m && m > 0 => {
            let (w, h) = fit(p.width(), p.height(), m);
            scaled = Pixels::from_dynamic(image::DynamicImage::ImageRgb8(resize(
                &p.rgb(),
                w,
                h,
                Filter::Lanczos,
            )));
            &scaled
        }
        _ => p,
    };
    let (mime, bytes) = match s.image_format {
        ImageFormat::Png => (
            "image/png",
            p.encode_png().map_err(|e| format!("PNG encoding: {e}"))?,
        ),
        ImageFormat::Jpeg => ("image/jpeg", encode_jpeg(p, s.jpeg_quality)?),
    };
    Ok(format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// `(w, h)` scaled so that the longer side is `max_side`, the aspect kept (at least 1 px).
fn fit(w: u32, h: u32, max_side: u32) -> (u32, u32) {
    let long = w.max(h).max(1) as f64;
    let k = max_side as f64 / long;
    let side = |v: u32| ((v as f64 * k).round() as u32).max(1);
    (side(w), side(h))
}

fn encode_jpeg(p: &Pixels, quality: u8) -> Result<Vec<u8>, String> {
    let (width, height) = p.dimensions();
    let (Ok(w), Ok(h)) = (u16::try_from(width), u16::try_from(height)) else {
        return Err(format!(
            "{width}x{height} is too large for JPEG (65535 px a side); set model.max_side"
        ));
    };
    let color = if p.is_gray() {
        jpeg_encoder::ColorType::Luma
    } else {
        jpeg_encoder::ColorType::Rgb
    };
    let mut buf = Vec::new();
    jpeg_encoder::Encoder::new(&mut buf, quality)
        .encode(p.as_raw(), w, h, color)
        .map_err(|e| format!("JPEG encoding: {e}"))?;
    Ok(buf)
}

/// What [`ServedEngine::prepare_batch`] makes: each input's encoded images.
struct Prepared(Vec<Encoded>);

impl Engine for ServedEngine {
    fn answer_batch(&self, inputs: &[PromptInput<'_>]) -> Vec<AnswerOf> {
        let prepared = self.prepare_batch(inputs);
        self.answer_prepared(inputs, prepared)
    }

    fn prepare_batch(&self, inputs: &[PromptInput<'_>]) -> PreparedBatch {
        let encoded: Vec<Encoded> = inputs.par_iter().map(|i| self.encode(i)).collect();
        PreparedBatch(Some(Box::new(Prepared(encoded))))
    }

    fn answer_prepared(
        &self,
        inputs: &[PromptInput<'_>],
        prepared: PreparedBatch,
    ) -> Vec<AnswerOf> {
        let encoded = match prepared.0.map(|b| b.downcast::<Prepared>()) {
            Some(Ok(p)) if p.0.len() == inputs.len() => p.0,
            _ => inputs.par_iter().map(|i| self.encode(i)).collect(),
        };
        let pairs: Vec<(&PromptInput<'_>, &Encoded)> = inputs.iter().zip(&encoded).collect();
        let slots =
            crate::pool::bounded_map(&pairs, self.settings.max_concurrency, |_, (input, enc)| {
                self.ask(enc, input)
            });
        slots
            .into_iter()
            .zip(inputs)
            .map(|(s, input)| {
                s.unwrap_or_else(|| {
                    Err(SampleError::new(
                        input.sample.id.clone(),
                        SampleErrorKind::Output("a request thread stopped".into()),
                    ))
                })
            })
            .collect()
    }

    fn prompt(&self, input: &PromptInput<'_>) -> Result<PromptView, SampleError> {
        // The server renders its own chat template; what medvqa controls is the user turn.
        let images = input.images.len();
        let p = &self.settings.prompt;
        let system = p
            .system
            .as_ref()
            .map(|s| format!("[system] {s}\n"))
            .unwrap_or_default();
        let user: String = p
            .images
            .arrange(vec!["<image>".to_string(); images], self.text(input))
            .concat();
        let rendered = format!("{system}[user] {user}");
        Ok(PromptView {
            rendered,
            input_ids: Vec::new(),
        })
    }

    fn box_frame(&self) -> BoxFrame {
        self.settings.box_frame
    }

    fn prompt_hash(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        // The user turn's layout (images first, then the question block) and the
        // instruction lines; the version tag changes with the layout.
        h.update(b"served-user-turn/v1");
        for k in crate::sample::QuestionKind::ALL {
            let line = prompt::instruction(k, self.settings.box_frame, "?").unwrap_or_default();
            h.update(line.as_bytes());
            h.update([0u8]);
        }
        if !self.settings.prompt.is_default() {
            h.update(self.settings.prompt.key_text().as_bytes());
        }
        hex::encode(h.finalize())
    }

    fn generation_key(&self) -> String {
        let s = &self.settings;
        format!(
            "served;model={};temperature={};max_tokens={:?};seed={:?};images={}{}",
            s.model,
            s.temperature,
            s.max_tokens,
            s.seed,
            match s.image_format {
                ImageFormat::Png => "png".to_string(),
                ImageFormat::Jpeg => format!("jpeg:{}", s.jpeg_quality),
            },
            s.max_side
                .map(|m| format!(";max_side={m}"))
                .unwrap_or_default()
        )
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn served_usage(&self) -> Option<Usage> {
        Some(self.usage())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> ServedSettings {
        ServedSettings::new(url, "m", BoxFrame::Normalized)
    }

    #[test]
    fn plain_http_is_warned_about_unless_it_stays_on_this_machine() {
        let e = ServedEngine::open(settings("http://10.0.0.5:8000/v1")).unwrap();
        assert!(
            e.warnings()[0].contains("unencrypted"),
            "{:?}",
            e.warnings()
        );
        for url in [
            "http://localhost:8000/v1",
            "http://127.0.0.1/v1",
            "https://api.example.com/v1",
        ] {
            assert!(
                ServedEngine::open(settings(url))
                    .unwrap()
                    .warnings()
                    .is_empty(),
                "{url}"
            );
        }
        assert!(ServedEngine::open(settings("localhost:8000")).is_err());
    }

    #[test]
    fn a_missing_key_names_its_variable() {
        let mut s = settings("http://localhost:8000/v1");
        s.api_key_env = Some("MEDVQA_UNIT_TEST_NO_SUCH_KEY".into());
        let e = ServedEngine::open(s).err().unwrap().to_string();
        assert!(e.contains("MEDVQA_UNIT_TEST_NO_SUCH_KEY"), "{e}");
    }

    #[test]
    fn every_answer_changing_setting_changes_the_key() {
        let base = settings("http://localhost:8000/v1");
        let key = |s: ServedSettings| {
            let e = ServedEngine::open(s).unwrap();
            format!("{}|{}", e.generation_key(), e.prompt_hash())
        };
        let k0 = key(base.clone());
        let mut variants = Vec::new();
        let mut s = base.clone();
        s.model = "other".into();
        variants.push(s);
        let mut s = base.clone();
        s.temperature = 0.7;
        variants.push(s);
        let mut s = base.clone();
        s.max_tokens = Some(8);
        variants.push(s);
        let mut s = base.clone();
        s.seed = Some(1);
        variants.push(s);
        let mut s = base.clone();
        s.image_format = ImageFormat::Jpeg;
        variants.push(s);
        let mut s = base.clone();
        s.max_side = Some(512);
        variants.push(s);
        let mut s = base.clone();
        s.box_frame = BoxFrame::Grid(1000);
        variants.push(s);
        for v in variants {
            assert_ne!(key(v.clone()), k0, "{v:?}");
        }
        // Where it is served, how many at once and how patiently do not change answers.
        let mut s = base.clone();
        s.url = "http://127.0.0.1:9000/v1".into();
        s.max_concurrency = 64;
        s.retry.max_retries = 1;
        assert_eq!(key(s), k0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&v);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
    }

    #[test]
    fn images_are_downscaled_to_max_side_and_keep_their_aspect() {
        assert_eq!(fit(4000, 3000, 1000), (1000, 750));
        assert_eq!(fit(300, 5000, 1000), (60, 1000));
        assert_eq!(fit(10, 2000, 100), (1, 100));
        let p = Pixels::from_dynamic(image::DynamicImage::ImageRgb8(image::RgbImage::new(64, 32)));
        let mut s = settings("http://localhost/v1");
        let png = encode_image(&p, &s).unwrap();
        assert!(png.starts_with("data:image/png;base64,"));
        s.max_side = Some(16);
        s.image_format = ImageFormat::Jpeg;
        let url = encode_image(&p, &s).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(url.trim_start_matches("data:image/jpeg;base64,"))
            .unwrap();
        let back = image::load_from_memory(&bytes).unwrap();
        assert_eq!((back.width(), back.height()), (16, 8));
    }
}
