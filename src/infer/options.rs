//! What a model is opened with and what it hands back: options, prompt inputs, timings,
//! generated answers, prompt views and prepared batches.

use std::sync::Arc;
use std::time::Duration;

use crate::pixels::Pixels;
use crate::sample::Sample;

use super::folder::Variant;
use super::runtime::RuntimeOptions;

/// Used when neither the options nor `generation_config.json` set `max_new_tokens`.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 256;

/// How a model is opened and run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelOptions {
    pub runtime: RuntimeOptions,
    pub variant: Variant,
    /// Overrides `generation_config.json`.
    pub max_new_tokens: Option<usize>,
    /// Prompts per decoder batch (≥ 1).
    pub batch_size: usize,
    /// Image budget: a family shrinks images (fewer tiles, fewer patches) to stay within it.
    pub max_pixels: Option<u64>,
    /// Refuse samples with more images than this.
    pub max_images: Option<usize>,
    /// How dual encoders (CLIP/SigLIP) turn questions into captions; decoders ignore it.
    pub zero_shot: ZeroShotOptions,
    /// The configured prompt (`[prompt]`); dual encoders ignore it.
    pub prompt: super::prompt::PromptSettings,
}

/// Zero-shot settings of the dual-encoder families (see `families::clip`).
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroShotOptions {
    /// The caption of a choice option; `{option}` is replaced by the option text.
    pub option_template: String,
    /// The captions of a closed question; `{question}`, and `{answer}` (`yes`, then `no`).
    pub closed_template: String,
    /// Multi-choice: the probability an option needs to be chosen; `None` takes the
    /// family's rule (CLIP: the uniform share 1/n of the softmax, SigLIP: a sigmoid of 0.5).
    pub multi_threshold: Option<f64>,
}

// A threshold is a finite number in [0, 1], never NaN, so equality is an equivalence.
impl Eq for ZeroShotOptions {}

impl Default for ZeroShotOptions {
    fn default() -> Self {
        ZeroShotOptions {
            option_template: "This is a photo of {option}.".into(),
            closed_template: "Question: {question} Answer: {answer}".into(),
            multi_threshold: None,
        }
    }
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            runtime: RuntimeOptions::default(),
            variant: Variant::default(),
            max_new_tokens: None,
            batch_size: 1,
            max_pixels: None,
            max_images: None,
            zero_shot: ZeroShotOptions::default(),
            prompt: Default::default(),
        }
    }
}

/// One question to answer: the sample and its images as the model should see them
/// (perturbed or not), in the sample's order.
#[derive(Debug, Clone, Copy)]
pub struct PromptInput<'a> {
    pub sample: &'a Sample,
    pub images: &'a [Arc<Pixels>],
}

/// Where the time of one answer went. `preprocess` and `vision` are this sample's own (a
/// dual encoder, whose one graph call scores the whole batch, gives each answer an equal
/// share as `vision`); `prefill` and `decode` belong to the whole batch the sample ran in.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    pub preprocess: Duration,
    pub vision: Duration,
    pub prefill: Duration,
    pub decode: Duration,
    /// A served model's request, retries and waits included.
    pub request: Duration,
    pub batch_size: usize,
}

impl Timings {
    /// This answer's share of the time the model's graphs ran: its vision call plus
    /// `1 / batch_size` of its batch's prefill and decode. Summed over the answers of a batch,
    /// each batch counts once.
    pub fn graph_share(&self) -> Duration {
        self.vision + (self.prefill + self.decode) / self.batch_size.max(1) as u32
    }
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// Decoded without special tokens.
    pub text: String,
    /// The generated ids, the eos id included when one ended the answer.
    pub token_ids: Vec<u32>,
    /// One per generated id: the softmax probability of the emitted token and where its
    /// text ends in `text` (empty for engines that do not generate, e.g. dual encoders).
    pub token_probs: Vec<crate::store::TokenProb>,
    pub prompt_tokens: usize,
    /// The answer's length in tokens where no ids are known (a server's usage count).
    pub completion_tokens: Option<usize>,
    pub timings: Timings,
}

/// The prompt a sample would get, for inspection and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptView {
    /// The rendered chat template, before image placeholders are expanded.
    pub rendered: String,
    /// The token ids the decoder would see.
    pub input_ids: Vec<u32>,
}

/// A batch's CPU-side work (templating, tokenizing, image preprocessing), done ahead of the
/// model by [`Engine::prepare_batch`](super::engine::Engine::prepare_batch) so that it overlaps the previous batch's graphs. Opaque:
/// only the engine that made it reads it.
pub struct PreparedBatch(pub(super) Option<Box<dyn std::any::Any + Send>>);

impl PreparedBatch {
    /// Nothing prepared: the engine does all the work in [`Engine::answer_prepared`](super::engine::Engine::answer_prepared).
    pub fn none() -> PreparedBatch {
        PreparedBatch(None)
    }
}
