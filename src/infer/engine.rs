//! The engine behind [`super::Model`], and the decoder engine every generative family shares.
//!
//! An [`Engine`] answers prompts. Decoder families (Idefics3/SmolVLM, LLaVA, Qwen2-VL) only
//! implement [`DecoderFamily`] — their image preprocessing, how an image placeholder expands,
//! how the vision graph runs, and (for M-RoPE) the position ids — and get a
//! [`DecoderEngine`], which renders the chat template, tokenizes, checks limits, batches, and
//! runs [`super::generate`]. Families of another shape (CLIP/SigLIP dual encoders) implement
//! [`Engine`] directly.
//!
//! Batching: the inputs are cut into chunks of `batch_size`, in order. With `sessions > 1`
//! several chunks run at once, each on its own sessions; which thread runs which chunk never
//! changes a result. A sample that fails (bad image, too long, too many images) is reported
//! and the rest of its chunk still runs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ort::session::Session;
use rayon::prelude::*;

use crate::geometry::BoxFrame;
use crate::pixels::Pixels;

use super::error::{ModelError, SampleError, SampleErrorKind};
use super::folder::{GenerationConfig, ModelFolder, Variant};
use super::generate::{self, DecoderGraphs, DecoderPrompt, Positions, Settings, TextGeometry};
use super::prompt::{self, ChatTemplate};
use super::runtime::{SessionConfig, SessionPool};

pub use super::options::*;

/// What every model family provides once loaded.
pub trait Engine: Send + Sync {
    /// Answers each input; the result at index `i` is for `inputs[i]`.
    fn answer_batch(&self, inputs: &[PromptInput<'_>]) -> Vec<Result<Generated, SampleError>>;
    /// The CPU-side work for `inputs`, which a caller may run on another thread while the model
    /// answers the batch before. The default prepares nothing.
    fn prepare_batch(&self, _inputs: &[PromptInput<'_>]) -> PreparedBatch {
        PreparedBatch::none()
    }
    /// Answers `inputs` with what [`Self::prepare_batch`] made for the same inputs, in the same
    /// order; gives the same answers as [`Self::answer_batch`].
    fn answer_prepared(
        &self,
        inputs: &[PromptInput<'_>],
        _prepared: PreparedBatch,
    ) -> Vec<Result<Generated, SampleError>> {
        self.answer_batch(inputs)
    }
    /// The prompt for one input, without running the model's decoder.
    fn prompt(&self, input: &PromptInput<'_>) -> Result<PromptView, SampleError>;
    /// The frame boxes in the model's answers are in (docs/design.md §4).
    fn box_frame(&self) -> BoxFrame;
    /// Hash of what shapes the prompt (template text, instruction lines), for the store key.
    fn prompt_hash(&self) -> String;
    /// The generation settings that change answers, as a stable string for the store key.
    fn generation_key(&self) -> String;
    /// Non-fatal notes from opening (ignored sampling settings, CUDA fallback, …).
    fn warnings(&self) -> Vec<String>;
    /// Request statistics, for engines that call a server.
    fn served_usage(&self) -> Option<super::served::Usage> {
        None
    }
}

/// The family-specific half of a decoder model. See the module docs.
pub trait DecoderFamily: Send + Sync + Sized + 'static {
    /// A sample's images, preprocessed.
    type Vision: Send + Sync + 'static;

    /// The registry name, used in error messages.
    const NAME: &'static str;

    /// Reads the family's settings from the folder (image processor, special tokens).
    fn open(
        folder: &ModelFolder,
        tokenizer: &tokenizers::Tokenizer,
        opts: &ModelOptions,
    ) -> Result<Self, ModelError>;

    /// The vision graph's input names (checked when the model opens).
    fn vision_inputs(&self) -> &'static [&'static str];

    /// The text the chat template writes for each image.
    fn image_placeholder(&self) -> &str;

    /// The token whose embeddings the image features replace.
    fn image_token_id(&self) -> u32;

    /// The box frame the family answers in.
    fn box_frame(&self) -> BoxFrame {
        BoxFrame::Normalized
    }

    /// The most images the model takes, and where that limit comes from.
    fn max_images(&self) -> Option<(usize, String)> {
        None
    }

    /// Position-id axes the decoder takes (3 for M-RoPE).
    fn position_axes(&self) -> usize {
        1
    }

    /// Preprocesses a sample's images, in order.
    fn preprocess(&self, images: &[Arc<Pixels>]) -> Result<Self::Vision, SampleErrorKind>;

    /// Replaces each image placeholder in the rendered prompt by what the HF processor puts
    /// there; the result is tokenized as is.
    fn expand_prompt(
        &self,
        rendered: &str,
        vision: &Self::Vision,
    ) -> Result<String, SampleErrorKind>;

    /// Runs the vision graph: one row of text-hidden-size values per image token, in prompt
    /// order.
    fn encode(
        &self,
        session: &mut Session,
        vision: &Self::Vision,
    ) -> Result<Vec<f32>, SampleErrorKind>;

    /// Position ids of the prompt.
    fn positions(&self, ids: &[i64], _vision: &Self::Vision) -> Result<Positions, SampleErrorKind> {
        Ok(Positions::sequential(ids.len()))
    }

    /// The answer text of generated ids: without special tokens, unless the family's answer
    /// format is written in special tokens (Qwen2-VL's box markup).
    fn decode(&self, tokenizer: &tokenizers::Tokenizer, ids: &[u32]) -> String {
        tokenizer.decode(ids, true).unwrap_or_default()
    }
}

/// Where the text of each generated token ends in the decoded answer `full`: the byte
/// length of the longest common prefix (whole characters) of `full` and the decoded first
/// `k` tokens, never moving back. Decoding prefixes, rather than tokens one by one, keeps
/// the tokenizer's own joining (SentencePiece spaces, byte fallback: half a character
/// decodes as U+FFFD and so counts only once complete). Quadratic in the answer length, but
/// answers are short and the decoder's steps dominate: 48 tokens of the reference model's
/// tokenizer take about 0.2 ms, against tens of milliseconds per decoder step.
pub fn token_ends(full: &str, ids: &[u32], decode: impl Fn(&[u32]) -> String) -> Vec<usize> {
    let mut ends = Vec::with_capacity(ids.len());
    let mut last = 0;
    for k in 1..=ids.len() {
        let prefix = decode(&ids[..k]);
        let common: usize = full
            .chars()
            .zip(prefix.chars())
            .take_while(|(a, b)| a == b)
            .map(|(a, _)| a.len_utf8())
            .sum();
        last = last.max(common);
        ends.push(last);
    }
    ends
}

/// The text model's geometry and context length from `config.json` (`text_config` or top
/// level).
pub fn text_geometry(folder: &ModelFolder) -> Result<(TextGeometry, Option<usize>), ModelError> {
    let cfg = folder.config.get("text_config").unwrap_or(&folder.config);
    let get = |k: &str| {
        cfg.get(k)
            .and_then(serde_json::Value::as_u64)
            .map(|v| v as usize)
    };
    let path = folder.path("config.json");
    let field = |k: &str| ModelError::Field {
        path: path.clone(),
        field: format!("text_config.{k}"),
        problem: "is missing or not a number".into(),
    };
    let hidden = get("hidden_size").ok_or_else(|| field("hidden_size"))?;
    let heads = get("num_attention_heads").ok_or_else(|| field("num_attention_heads"))?;
    let kv_heads = get("num_key_value_heads").unwrap_or(heads);
    let head_dim = match get("head_dim") {
        Some(d) => d,
        None if heads > 0 => hidden / heads,
        None => return Err(field("num_attention_heads")),
    };
    Ok((
        TextGeometry {
            kv_heads,
            head_dim,
            hidden,
        },
        get("max_position_embeddings"),
    ))
}

/// Gives each input at `indices` the batch's error: one graph call failed for all of them.
pub(crate) fn fail_batch(
    inputs: &[PromptInput<'_>],
    results: &mut [Option<Result<Generated, SampleError>>],
    indices: impl Iterator<Item = usize>,
    err: &(dyn std::error::Error + 'static),
) {
    let msg = crate::failure::error_chain(err);
    for i in indices {
        results[i] = Some(Err(SampleError::new(
            inputs[i].sample.id.clone(),
            SampleErrorKind::Output(msg.clone()),
        )));
    }
}

/// A chunk's answers in input order; an input nothing answered gets an error, never a gap.
pub(crate) fn collect_answers(
    inputs: &[PromptInput<'_>],
    results: Vec<Option<Result<Generated, SampleError>>>,
) -> Answers {
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                Err(SampleError::new(
                    inputs[i].sample.id.clone(),
                    SampleErrorKind::Output("no result".into()),
                ))
            })
        })
        .collect()
}

/// One input's CPU-side work: its prompt, preprocessed images and the time they took.
type Prepared<F> = Result<(PromptView, <F as DecoderFamily>::Vision, Duration), SampleErrorKind>;
/// The answers of one chunk, in input order.
type Answers = Vec<Result<Generated, SampleError>>;

/// A loaded decoder model of family `F`.
pub struct DecoderEngine<F: DecoderFamily> {
    family: F,
    tokenizer: tokenizers::Tokenizer,
    template: ChatTemplate,
    template_path: std::path::PathBuf,
    vision: SessionPool,
    graphs: DecoderGraphs,
    settings: Settings,
    context: Option<usize>,
    batch_size: usize,
    parallel: usize,
    max_images: Option<usize>,
    prompt: prompt::PromptSettings,
    warnings: Vec<String>,
}

fn load_pool(
    cfg: &SessionConfig,
    folder: &ModelFolder,
    graph: &str,
    variant: &Variant,
    warnings: &mut Vec<String>,
) -> Result<SessionPool, ModelError> {
    let path = folder.onnx(graph, variant)?;
    SessionPool::open(cfg, &path, warnings).map_err(|source| ModelError::Onnx { path, source })
}

impl<F: DecoderFamily> DecoderEngine<F> {
    pub fn open(folder: &ModelFolder, opts: &ModelOptions) -> Result<Self, ModelError> {
        let tokenizer = folder.tokenizer()?;
        let tokenizer_config = folder.tokenizer_config()?;
        let family = F::open(folder, &tokenizer, opts)?;
        let gen_cfg: GenerationConfig = folder.generation_config()?;
        let (template_src, template_path) = folder.chat_template()?;
        let template = ChatTemplate::new(&template_src, &tokenizer_config).map_err(|source| {
            ModelError::ChatTemplate {
                path: template_path.clone(),
                source,
            }
        })?;
        // A template that cannot render one image and a question fails every sample: say so
        // now, naming the file.
        template
            .render(prompt::user_turn(1, "Is this a test?"), true)
            .map_err(|source| ModelError::ChatTemplate {
                path: template_path.clone(),
                source,
            })?;
        let (geometry, context) = text_geometry(folder)?;

        let mut warnings: Vec<String> = gen_cfg
            .ignored
            .iter()
            .map(|w| format!("generation_config.json asks for {w}"))
            .collect();
        let cfg = SessionConfig::new(&opts.runtime, &mut warnings)?;
        let vision = load_pool(&cfg, folder, "vision_encoder", &opts.variant, &mut warnings)?;
        generate::check_names(
            &vision,
            F::NAME,
            "vision_encoder",
            family.vision_inputs(),
            &[],
        )?;
        let embed = load_pool(&cfg, folder, "embed_tokens", &opts.variant, &mut warnings)?;
        let decoder = load_pool(
            &cfg,
            folder,
            "decoder_model_merged",
            &opts.variant,
            &mut warnings,
        )?;
        let graphs = DecoderGraphs::new(embed, decoder, F::NAME, geometry, family.position_axes())?;

        let pad = gen_cfg
            .pad_token_id
            .or_else(|| gen_cfg.eos_token_ids.first().copied())
            .unwrap_or(0);
        if gen_cfg.eos_token_ids.is_empty() {
            warnings.push(
                "no eos_token_id in generation_config.json or config.json: answers run to max_new_tokens"
                    .into(),
            );
        }
        let settings = Settings {
            max_new_tokens: opts
                .max_new_tokens
                .or(gen_cfg.max_new_tokens)
                .unwrap_or(DEFAULT_MAX_NEW_TOKENS),
            eos: gen_cfg.eos_token_ids.clone(),
            pad,
            image_token: family.image_token_id(),
            repetition_penalty: gen_cfg.repetition_penalty,
        };
        Ok(DecoderEngine {
            family,
            tokenizer,
            template,
            template_path,
            vision,
            graphs,
            settings,
            context,
            batch_size: opts.batch_size.max(1),
            parallel: cfg.sessions,
            max_images: opts.max_images,
            prompt: opts.prompt.clone(),
            warnings,
        })
    }

    pub fn family(&self) -> &F {
        &self.family
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Renders, checks and tokenizes one input; preprocesses its images.
    fn prepare(&self, input: &PromptInput<'_>) -> Result<(PromptView, F::Vision), SampleErrorKind> {
        let n = input.images.len();
        if let Some((max, why)) = self.family.max_images()
            && n > max
        {
            return Err(SampleErrorKind::TooManyImages {
                given: n,
                limit: format!("the model takes at most {max} ({why})"),
            });
        }
        if let Some(max) = self.max_images
            && n > max
        {
            return Err(SampleErrorKind::TooManyImages {
                given: n,
                limit: format!("max_images is set to {max}"),
            });
        }
        let text = prompt::sample_text_with(input.sample, self.family.box_frame(), &self.prompt);
        let rendered = self
            .template
            .render(prompt::messages(&self.prompt, n, &text), true)
            .map_err(SampleErrorKind::Template)?;
        let placeholder = self.family.image_placeholder();
        let found = rendered.matches(placeholder).count();
        if found != n {
            return Err(SampleErrorKind::Placeholders {
                found,
                images: n,
                placeholder: placeholder.to_string(),
            });
        }
        let vision = self.family.preprocess(input.images)?;
        let expanded = self.family.expand_prompt(&rendered, &vision)?;
        let enc = self
            .tokenizer
            .encode(expanded.as_str(), true)
            .map_err(SampleErrorKind::Tokenize)?;
        let input_ids = enc.get_ids().to_vec();
        if let Some(context) = self.context
            && input_ids.len() + self.settings.max_new_tokens > context
        {
            return Err(SampleErrorKind::ContextTooLong {
                prompt_tokens: input_ids.len(),
                max_new_tokens: self.settings.max_new_tokens,
                context,
            });
        }
        Ok((
            PromptView {
                rendered,
                input_ids,
            },
            vision,
        ))
    }

    /// [`Self::prepare`], timed.
    fn prepare_timed(
        &self,
        input: &PromptInput<'_>,
    ) -> Result<(PromptView, F::Vision, Duration), SampleErrorKind> {
        let t0 = Instant::now();
        let (view, vision) = self.prepare(input)?;
        Ok((view, vision, t0.elapsed()))
    }

    /// The vision graph for one prepared input, and its decoder prompt.
    fn with_features(
        &self,
        input: &PromptInput<'_>,
        (view, vision, preprocess): (PromptView, F::Vision, Duration),
    ) -> Result<(DecoderPrompt, Timings), SampleErrorKind> {
        let t1 = Instant::now();
        let n_image_tokens = view
            .input_ids
            .iter()
            .filter(|&&t| t == self.settings.image_token)
            .count();
        let image_features = if input.images.is_empty() {
            Vec::new()
        } else {
            let mut session = self.vision.get();
            self.family.encode(&mut session, &vision)?
        };
        let rows = image_features.len() / self.graphs.layout.hidden.max(1);
        if rows != n_image_tokens || rows * self.graphs.layout.hidden != image_features.len() {
            return Err(SampleErrorKind::FeatureCount {
                features: rows,
                tokens: n_image_tokens,
            });
        }
        let ids: Vec<i64> = view.input_ids.iter().map(|&t| t as i64).collect();
        let positions = self.family.positions(&ids, &vision)?;
        let prompt = DecoderPrompt {
            ids,
            image_features,
            positions,
        };
        Ok((
            prompt,
            Timings {
                preprocess,
                vision: t1.elapsed(),
                ..Timings::default()
            },
        ))
    }

    /// Image preprocessing, templating and tokenizing: CPU work independent per input, run in
    /// parallel.
    fn prepare_all(&self, inputs: &[PromptInput<'_>]) -> Vec<Prepared<F>> {
        inputs.par_iter().map(|i| self.prepare_timed(i)).collect()
    }

    /// Runs the vision graph on this chunk's session, in order, then generates.
    fn run_chunk(
        &self,
        inputs: &[PromptInput<'_>],
        prepared: Vec<Prepared<F>>,
    ) -> Vec<Result<Generated, SampleError>> {
        let mut results: Vec<Option<Result<Generated, SampleError>>> =
            Vec::with_capacity(inputs.len());
        let mut ready = Vec::new();
        for (i, (input, prep)) in inputs.iter().zip(prepared).enumerate() {
            match prep.and_then(|p| self.with_features(input, p)) {
                Ok((p, t)) => {
                    ready.push((i, p, t));
                    results.push(None);
                }
                Err(kind) => {
                    results.push(Some(Err(SampleError::new(input.sample.id.clone(), kind))))
                }
            }
        }
        let prompts: Vec<&DecoderPrompt> = ready.iter().map(|(_, p, _)| p).collect();
        match generate::generate(&self.graphs, &prompts, &self.settings) {
            Ok((tokens, timing)) => {
                for ((i, p, t), toks) in ready.iter().zip(tokens) {
                    let text = self.family.decode(&self.tokenizer, &toks.ids);
                    let ends = token_ends(&text, &toks.ids, |ids| {
                        self.family.decode(&self.tokenizer, ids)
                    });
                    let token_probs = ends
                        .into_iter()
                        .zip(&toks.probs)
                        .map(|(end, &p)| crate::store::TokenProb::new(end, p))
                        .collect();
                    results[*i] = Some(Ok(Generated {
                        text,
                        token_ids: toks.ids,
                        token_probs,
                        prompt_tokens: p.ids.len(),
                        completion_tokens: None,
                        timings: Timings {
                            prefill: timing.prefill,
                            decode: timing.decode,
                            batch_size: prompts.len(),
                            ..*t
                        },
                    }));
                }
            }
            Err(kind) => fail_batch(inputs, &mut results, ready.iter().map(|r| r.0), &kind),
        }
        collect_answers(inputs, results)
    }
}

impl<F: DecoderFamily> Engine for DecoderEngine<F> {
    fn answer_batch(&self, inputs: &[PromptInput<'_>]) -> Vec<Result<Generated, SampleError>> {
        self.answer_prepared(inputs, self.prepare_batch(inputs))
    }

    fn prepare_batch(&self, inputs: &[PromptInput<'_>]) -> PreparedBatch {
        PreparedBatch(Some(Box::new(self.prepare_all(inputs))))
    }

    fn answer_prepared(
        &self,
        inputs: &[PromptInput<'_>],
        prepared: PreparedBatch,
    ) -> Vec<Result<Generated, SampleError>> {
        // What another engine or another batch prepared is not trusted: it is redone.
        let prepared = match prepared.0.map(|b| b.downcast::<Vec<Prepared<F>>>()) {
            Some(Ok(p)) if p.len() == inputs.len() => *p,
            _ => self.prepare_all(inputs),
        };
        let chunks: Vec<&[PromptInput<'_>]> = inputs.chunks(self.batch_size).collect();
        let mut rest = prepared.into_iter();
        let parts: Vec<Mutex<Option<Vec<Prepared<F>>>>> = chunks
            .iter()
            .map(|c| Mutex::new(Some(rest.by_ref().take(c.len()).collect())))
            .collect();
        let take = |i: usize, chunk: &[PromptInput<'_>]| {
            let part = match parts[i].lock() {
                Ok(mut g) => g.take(),
                Err(p) => p.into_inner().take(),
            };
            part.unwrap_or_else(|| self.prepare_all(chunk))
        };
        let slots = crate::pool::bounded_map(&chunks, self.parallel, |i, chunk| {
            self.run_chunk(chunk, take(i, chunk))
        });
        slots
            .into_iter()
            .zip(&chunks)
            .flat_map(|(s, chunk)| {
                s.unwrap_or_else(|| {
                    chunk
                        .iter()
                        .map(|inp| {
                            Err(SampleError::new(
                                inp.sample.id.clone(),
                                SampleErrorKind::Output("a worker thread stopped".into()),
                            ))
                        })
                        .collect()
                })
            })
            .collect()
    }

    fn prompt(&self, input: &PromptInput<'_>) -> Result<PromptView, SampleError> {
        self.prepare(input)
            .map(|(v, _)| v)
            .map_err(|k| SampleError::new(input.sample.id.clone(), k))
    }

    fn box_frame(&self) -> BoxFrame {
        self.family.box_frame()
    }

    fn prompt_hash(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.template.source_hash().as_bytes());
        h.update(
            self.template_path
                .file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        // The instruction lines as asked of a question without its own instruction; the
        // version tag changes whenever the rules that pick or drop a line change.
        h.update(b"instructions/v2");
        for k in crate::sample::QuestionKind::ALL {
            let line = prompt::instruction(k, self.family.box_frame(), "?").unwrap_or_default();
            h.update(line.as_bytes());
            h.update([0u8]);
        }
        // A configured prompt; the default adds nothing, so that keys stored before
        // `[prompt]` existed still match.
        if !self.prompt.is_default() {
            h.update(self.prompt.key_text().as_bytes());
        }
        hex::encode(h.finalize())
    }

    fn generation_key(&self) -> String {
        let s = &self.settings;
        format!(
            "greedy;max_new_tokens={};eos={:?};repetition_penalty={:?}",
            s.max_new_tokens, s.eos, s.repetition_penalty
        )
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_counts_its_graph_time_once() {
        let ms = Duration::from_millis;
        let batch = [ms(3), ms(5), ms(7)].map(|vision| Timings {
            preprocess: ms(100),
            vision,
            prefill: ms(30),
            decode: ms(60),
            batch_size: 3,
            ..Timings::default()
        });
        let total: Duration = batch.iter().map(Timings::graph_share).sum();
        assert_eq!(total, ms(3 + 5 + 7 + 30 + 60));
        assert_eq!(Timings::default().graph_share(), Duration::ZERO);
    }

    #[test]
    fn token_ends_follow_the_decoded_prefixes() {
        // A toy vocabulary: id 3 and 4 are the two bytes of "é" (half decodes as U+FFFD),
        // id 9 is a special token that decodes to nothing.
        let decode = |ids: &[u32]| -> String {
            let mut s = String::new();
            let mut i = 0;
            while i < ids.len() {
                match ids[i] {
                    0 => s.push_str("The"),
                    1 => s.push_str(" answer"),
                    2 => s.push_str(" is B"),
                    3 if ids.get(i + 1) == Some(&4) => {
                        s.push('é');
                        i += 1;
                    }
                    3 => s.push('\u{fffd}'),
                    _ => {}
                }
                i += 1;
            }
            s
        };
        let ids = [0, 1, 2, 3, 4, 9];
        let full = decode(&ids);
        assert_eq!(full, "The answer is Bé");
        assert_eq!(token_ends(&full, &ids, decode), vec![3, 10, 15, 15, 17, 17]);
        assert!(token_ends("", &[], decode).is_empty());
    }
}
