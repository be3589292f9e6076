//! Inference errors. [`ModelError`]: the model cannot be opened at all; each names the file
//! and the fix. [`SampleError`]: one sample failed (its id kept); the run goes on, and
//! [`SampleError::failure`] turns it into the report's [`Failure`].

use std::path::PathBuf;

use crate::failure::{Failure, Stage};

use super::runtime::RuntimeError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model folder {dir} does not exist or is not a folder")]
    NotADirectory { dir: PathBuf },
    #[error("{path} is missing: {fix}")]
    MissingFile { path: PathBuf, fix: String },
    #[error(
        "{path} is missing (variants of {graph} in that folder: {}); pick one with --variant, or download the file",
        list(available)
    )]
    MissingOnnx {
        path: PathBuf,
        graph: String,
        available: Vec<String>,
    },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: field `{field}` {problem}")]
    Field {
        path: PathBuf,
        field: String,
        problem: String,
    },
    #[error("{path}: model_type {model_type:?} is not a family medvqa can run (known: {})", known.join(", "))]
    UnknownModelType {
        path: PathBuf,
        model_type: String,
        known: Vec<String>,
    },
    #[error("cannot load the ONNX graph {path} (truncated or not an ONNX file? download it again)")]
    Onnx {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },
    #[error(
        "{path} does not have the inputs of a {family} {graph} graph: missing [{}], unexpected [{}]; \
         it is not an onnx-community/optimum {family} export",
        missing.join(", "),
        unexpected.join(", ")
    )]
    InputNames {
        path: PathBuf,
        family: String,
        graph: String,
        missing: Vec<String>,
        unexpected: Vec<String>,
    },
    #[error("{path}: {problem}")]
    Unsupported { path: PathBuf, problem: String },
    #[error("cannot load the tokenizer {path}")]
    Tokenizer {
        path: PathBuf,
        #[source]
        source: BoxError,
    },
    #[error(
        "{path} has no {token:?} token, which the {family} prompt format needs (is it this model's tokenizer?)"
    )]
    MissingToken {
        path: PathBuf,
        token: String,
        family: String,
    },
    #[error(
        "no chat template in {dir}: expected chat_template.jinja, chat_template.json, or chat_template in tokenizer_config.json"
    )]
    NoChatTemplate { dir: PathBuf },
    #[error("the chat template in {path} fails on a plain image + question prompt")]
    ChatTemplate {
        path: PathBuf,
        #[source]
        source: minijinja::Error,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("served model: {0}")]
    Served(String),
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Why one sample could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum SampleErrorKind {
    #[error("{given} images, but {limit}")]
    TooManyImages { given: usize, limit: String },
    #[error(
        "the prompt is {prompt_tokens} tokens and up to {max_new_tokens} more may be generated, \
         over the model's context of {context} (max_position_embeddings in config.json); \
         lower the image budget (--image-budget) or --max-new-tokens"
    )]
    ContextTooLong {
        prompt_tokens: usize,
        max_new_tokens: usize,
        context: usize,
    },
    #[error("the chat template failed to render")]
    Template(#[source] minijinja::Error),
    #[error(
        "the rendered prompt has {found} image placeholders ({placeholder:?}) for {images} images"
    )]
    Placeholders {
        found: usize,
        images: usize,
        placeholder: String,
    },
    #[error("cannot tokenize the prompt")]
    Tokenize(#[source] BoxError),
    #[error("cannot preprocess image {index}: {reason}")]
    Image { index: usize, reason: String },
    #[error("the vision encoder returned {features} feature rows for {tokens} image tokens")]
    FeatureCount { features: usize, tokens: usize },
    #[error("{graph} failed")]
    Run {
        graph: String,
        #[source]
        source: ort::Error,
    },
    #[error("{family} cannot answer {kind} questions: {why}")]
    UnsupportedKind {
        kind: &'static str,
        family: &'static str,
        why: String,
    },
    #[error("{0}")]
    Output(String),
    /// A served model's request failed: the server's message or the transport's, the API key
    /// cut out.
    #[error("{0}")]
    Served(String),
}

/// One sample that failed, with its id.
#[derive(Debug, thiserror::Error)]
#[error("sample {id}: {kind}")]
pub struct SampleError {
    pub id: String,
    #[source]
    pub kind: SampleErrorKind,
}

impl SampleError {
    pub fn new(id: impl Into<String>, kind: SampleErrorKind) -> SampleError {
        SampleError {
            id: id.into(),
            kind,
        }
    }

    /// The report's record of this failure (stage `infer`).
    pub fn failure(&self) -> Failure {
        Failure::new(Stage::Infer, &self.kind).with_id(self.id.clone())
    }
}
