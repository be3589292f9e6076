//! Inference: ONNX vision-language models from a Hugging Face folder, answering samples.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn demo(sample: &medvqa::sample::Sample, images: &[Arc<medvqa::pixels::Pixels>]) -> Result<(), medvqa::infer::ModelError> {
//! use medvqa::infer::{Model, ModelOptions, PromptInput};
//! let model = Model::open("SmolVLM-256M-Instruct".as_ref(), &ModelOptions::default())?;
//! for answer in model.answer_batch(&[PromptInput { sample, images }]) {
//!     match answer {
//!         Ok(g) => println!("{}", g.text),
//!         Err(e) => eprintln!("{}", e.failure()),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! A model is a folder in the onnx-community layout (docs/design.md §6, [`folder`]); `config.json`'s
//! `model_type` picks the family from the registry in [`families`]. The prompt is the model's
//! own chat template ([`prompt`]); decoding is greedy with the KV cache reused, and batched
//! answers equal unbatched ones ([`generate`]). ONNX Runtime is loaded at run time
//! ([`runtime`]). Opening fails with a [`ModelError`] that names the file and the fix; a
//! sample that cannot be answered fails alone with a [`SampleError`].

pub mod engine;
pub mod error;
pub mod families;
pub mod folder;
pub mod generate;
pub mod image_ops;
pub mod minilm;
mod options;
pub mod prompt;
pub mod runtime;
pub mod served;

use std::path::{Path, PathBuf};

pub use engine::{
    Engine, Generated, ModelOptions, PreparedBatch, PromptInput, PromptView, Timings,
    ZeroShotOptions,
};
pub use error::{ModelError, SampleError, SampleErrorKind};
pub use folder::{ModelFolder, Variant};
pub use runtime::{Device, RuntimeOptions};

use crate::geometry::BoxFrame;

/// An opened model.
pub struct Model {
    engine: Box<dyn Engine>,
    dir: PathBuf,
    family: &'static str,
    model_type: String,
    fingerprint: String,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("dir", &self.dir)
            .field("family", &self.family)
            .field("model_type", &self.model_type)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Opens the model folder `dir`: reads its configs, tokenizer and chat template, and loads
    /// its ONNX graphs.
    pub fn open(dir: &Path, opts: &ModelOptions) -> Result<Model, ModelError> {
        let folder = ModelFolder::open(dir)?;
        let entry = families::for_model_type(&folder.model_type).ok_or_else(|| {
            ModelError::UnknownModelType {
                path: folder.path("config.json"),
                model_type: folder.model_type.clone(),
                known: families::known_model_types(),
            }
        })?;
        let engine = (entry.open)(&folder, opts)?;
        let fingerprint = folder.fingerprint()?;
        Ok(Model {
            engine,
            dir: dir.to_path_buf(),
            family: entry.name,
            model_type: folder.model_type.clone(),
            fingerprint,
        })
    }

    /// A model behind an OpenAI-compatible chat-completions endpoint ([`served`]). Nothing is
    /// sent until it answers.
    pub fn served(settings: served::ServedSettings) -> Result<Model, ModelError> {
        use sha2::Digest;
        // The store key covers the model's name, not where it is served: answers from
        // another replica of the same model resume the same run.
        let fingerprint = hex::encode(sha2::Sha256::digest(
            format!("served-model\0{}", settings.model).as_bytes(),
        ));
        let name = settings.model.clone();
        let endpoint = settings.endpoint();
        let engine = served::ServedEngine::open(settings)?;
        Ok(Model {
            engine: Box::new(engine),
            dir: PathBuf::from(endpoint),
            family: "served",
            model_type: name,
            fingerprint,
        })
    }

    /// Request statistics of a served model (`None` for an ONNX model).
    pub fn served_usage(&self) -> Option<served::Usage> {
        self.engine.served_usage()
    }

    /// Answers each input; result `i` is for `inputs[i]`. Failures are per sample.
    pub fn answer_batch(&self, inputs: &[PromptInput<'_>]) -> Vec<Result<Generated, SampleError>> {
        self.engine.answer_batch(inputs)
    }

    /// The CPU-side work for `inputs` (templating, tokenizing, image preprocessing), to run
    /// while the model answers the batch before; hand it to [`Self::answer_prepared`].
    pub fn prepare_batch(&self, inputs: &[PromptInput<'_>]) -> PreparedBatch {
        self.engine.prepare_batch(inputs)
    }

    /// Answers `inputs` with what [`Self::prepare_batch`] made for them; the same answers as
    /// [`Self::answer_batch`].
    pub fn answer_prepared(
        &self,
        inputs: &[PromptInput<'_>],
        prepared: PreparedBatch,
    ) -> Vec<Result<Generated, SampleError>> {
        self.engine.answer_prepared(inputs, prepared)
    }

    /// The prompt text and token ids a sample would get, without running the decoder.
    pub fn prompt(&self, input: &PromptInput<'_>) -> Result<PromptView, SampleError> {
        self.engine.prompt(input)
    }

    /// SHA-256 (hex) of the ONNX, config, tokenizer and template files used.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The frame of boxes in the model's answers.
    pub fn box_frame(&self) -> BoxFrame {
        self.engine.box_frame()
    }

    /// The registry family name (`idefics3`, …).
    pub fn family(&self) -> &'static str {
        self.family
    }

    pub fn model_type(&self) -> &str {
        &self.model_type
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Hash of the chat template and instruction lines.
    pub fn prompt_hash(&self) -> String {
        self.engine.prompt_hash()
    }

    /// The answer-changing generation settings, as a stable string.
    pub fn generation_key(&self) -> String {
        self.engine.generation_key()
    }

    /// Notes from opening that do not stop the model (ignored sampling settings, CUDA
    /// unavailable, …).
    pub fn warnings(&self) -> Vec<String> {
        self.engine.warnings()
    }
}
