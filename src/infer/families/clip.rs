//! CLIP and SigLIP dual encoders (`model_type` `clip`, `siglip`): zero-shot answers by
//! image–text similarity.
//!
//! ```text
//! onnx/model.onnx  input_ids [texts, seq] i64, pixel_values [images, 3, H, W] f32,
//!                  attention_mask [texts, seq] i64 (CLIP only; SigLIP's export has none)
//!                  -> logits_per_image [images, texts], logits_per_text, text_embeds, image_embeds
//! ```
//!
//! That is optimum's `zero-shot-image-classification` export, the graph transformers.js's
//! pipeline runs; it is the only one of the published files that carries the learnt logit
//! scale (and SigLIP's bias). `text_embeds` and `image_embeds` come out L2-normalised.
//!
//! Preprocessing follows the HF image processors' PIL backend: `CLIPImageProcessor` resizes
//! the shortest edge (bicubic) and centre-crops; `SiglipImageProcessor` resizes to a fixed
//! size. Both rescale and normalise with the file's mean and std. Text is tokenised with
//! `tokenizer.json`, truncated at the tokenizer's `model_max_length`; CLIP pads to the longest
//! caption with an attention mask, SigLIP pads to `model_max_length` as it was trained, after
//! the canonicalisation the Python `SiglipTokenizer` applies (lower case, no ASCII
//! punctuation, single spaces).
//!
//! Questions become captions ([`ZeroShotOptions`]): one per option for choice questions
//! (`option_template`, default `This is a photo of {option}.`, the default hypothesis of
//! transformers' zero-shot pipeline), and a yes and a no caption for closed questions
//! (`closed_template`, default `Question: {question} Answer: {answer}`). The answer is
//! written as a response the extraction cascade reads like any model's:
//! - closed: `yes` or `no`, whichever caption scores higher;
//! - single choice: the letter of the best option;
//! - multi choice: every option whose probability reaches the threshold — softmax over the
//!   options for CLIP (default threshold: the uniform share `1/n`), the sigmoid of each
//!   logit for SigLIP (default 0.5) — and at least the best one, as `A, C`.
//!
//! Open and grounding questions, and samples with other than one image, fail with a clear
//! per-sample error: a dual encoder scores one image against captions and writes no text.

use std::path::Path;
use std::time::{Duration, Instant};

use image::RgbImage;
use ort::value::Tensor;
use serde_json::Value;

use crate::geometry::BoxFrame;
use std::borrow::Cow;

use crate::infer::engine::{
    Engine, Generated, ModelOptions, PromptInput, PromptView, Timings, ZeroShotOptions,
};
use crate::infer::error::{ModelError, SampleError, SampleErrorKind};
use crate::infer::families::FamilyEntry;
use crate::infer::folder::ModelFolder;
use crate::infer::image_ops::{self, Filter, Normalize};
use crate::infer::runtime::{SessionConfig, SessionPool};
use crate::pixels::Pixels;
use crate::sample::{QuestionKind, option_letter};

pub const ENTRY: FamilyEntry = FamilyEntry {
    name: "clip",
    model_types: &["clip", "siglip"],
    open,
};

fn open(folder: &ModelFolder, opts: &ModelOptions) -> Result<Box<dyn Engine>, ModelError> {
    Ok(Box::new(DualEncoder::open(folder, opts)?))
}

/// OpenAI CLIP's normalisation, `CLIPImageProcessor`'s default, written as transformers
/// writes it (`OPENAI_CLIP_MEAN`/`STD`); the f32 rounding is numpy's.
#[allow(clippy::excessive_precision)]
mod processor;

pub use processor::*;

/// `SiglipTokenizer.canonicalize_text`: lower case (when `do_lower_case`), ASCII punctuation
/// removed, runs of whitespace made one space, trimmed.
pub fn canonicalize(text: &str, lower: bool) -> String {
    let text = if lower {
        text.to_lowercase()
    } else {
        text.to_string()
    };
    let kept: String = text.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Which dual encoder: the link from logits to probabilities differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// CLIP: softmax over the captions.
    Softmax,
    /// SigLIP: an independent sigmoid per caption.
    Sigmoid,
}

/// The captions scored for one question.
pub fn captions(
    kind: QuestionKind,
    question: &str,
    options: &[String],
    z: &ZeroShotOptions,
) -> Result<Vec<String>, SampleErrorKind> {
    match kind {
        QuestionKind::Closed => Ok(["yes", "no"]
            .iter()
            .map(|a| {
                z.closed_template
                    .replace("{question}", question.trim())
                    .replace("{answer}", a)
            })
            .collect()),
        QuestionKind::SingleChoice | QuestionKind::MultiChoice => {
            if options.is_empty() {
                return Err(SampleErrorKind::Output(
                    "a choice question without options".into(),
                ));
            }
            Ok(options
                .iter()
                .map(|o| z.option_template.replace("{option}", o.trim()))
                .collect())
        }
        QuestionKind::Open | QuestionKind::Grounding => Err(SampleErrorKind::UnsupportedKind {
            kind: kind.as_str(),
            family: "a dual encoder (clip/siglip)",
            why: "it scores captions against the image and cannot write an answer".into(),
        }),
    }
}

/// The response for one question from its captions' logits (see the module docs).
pub fn decide(kind: QuestionKind, logits: &[f32], link: Link, threshold: Option<f64>) -> String {
    let Some(best) = crate::infer::generate::argmax(logits) else {
        return String::new();
    };
    let letter = |i: usize| option_letter(i).map(String::from).unwrap_or_default();
    match kind {
        QuestionKind::Closed => if best == 0 { "yes" } else { "no" }.to_string(),
        QuestionKind::MultiChoice => {
            let n = logits.len();
            let probs: Vec<f64> = match link {
                Link::Softmax => {
                    let m = logits[best] as f64;
                    let e: Vec<f64> = logits.iter().map(|&l| (l as f64 - m).exp()).collect();
                    let s: f64 = e.iter().sum();
                    e.iter().map(|x| x / s).collect()
                }
                Link::Sigmoid => logits
                    .iter()
                    .map(|&l| 1.0 / (1.0 + (-(l as f64)).exp()))
                    .collect(),
            };
            let t = threshold.unwrap_or(match link {
                Link::Softmax => 1.0 / n as f64,
                Link::Sigmoid => 0.5,
            });
            let mut chosen: Vec<usize> = (0..n).filter(|&i| probs[i] >= t).collect();
            if chosen.is_empty() {
                chosen.push(best);
            }
            chosen
                .into_iter()
                .map(letter)
                .collect::<Vec<_>>()
                .join(", ")
        }
        _ => letter(best),
    }
}

/// Embeddings and logits of some texts against some images.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// `[texts][dim]`, L2-normalised.
    pub text_embeds: Vec<Vec<f32>>,
    /// `[images][dim]`, L2-normalised.
    pub image_embeds: Vec<Vec<f32>>,
    /// `[images][texts]`.
    pub logits_per_image: Vec<Vec<f32>>,
}

/// A loaded CLIP or SigLIP model.
pub struct DualEncoder {
    link: Link,
    processor: ClipImageProcessor,
    tokenizer: tokenizers::Tokenizer,
    /// SigLIP's Python-side canonicalisation, with its lower-casing flag.
    canonical: Option<bool>,
    /// Pad every caption to this length (SigLIP); else to the longest in the call.
    pad_to: Option<usize>,
    pad_id: u32,
    session: SessionPool,
    has_mask: bool,
    options: ZeroShotOptions,
    batch_size: usize,
    warnings: Vec<String>,
}

impl std::fmt::Debug for DualEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DualEncoder")
            .field("link", &self.link)
            .field("processor", &self.processor)
            .field("pad_to", &self.pad_to)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn token_id(tc: &Value, key: &str, tokenizer: &tokenizers::Tokenizer) -> Option<u32> {
    let s = match tc.get(key)? {
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("content")?.as_str()?,
        _ => return None,
    };
    tokenizer.token_to_id(s)
}

impl DualEncoder {
    pub fn open(folder: &ModelFolder, opts: &ModelOptions) -> Result<DualEncoder, ModelError> {
        let siglip = folder.model_type == "siglip";
        let link = if siglip { Link::Sigmoid } else { Link::Softmax };
        let (pp, pp_path) = folder.preprocessor_config()?;
        let processor = ClipImageProcessor::from_config(&pp, &pp_path, siglip)?;
        let mut tokenizer = folder.tokenizer()?;
        let tc = folder.tokenizer_config()?;
        let text_cfg = folder.config.get("text_config");
        let positions = text_cfg
            .and_then(|t| t.get("max_position_embeddings"))
            .and_then(Value::as_u64)
            .map(|n| n as usize);
        // transformers writes a huge number when the tokenizer has no limit
        let declared = tc
            .get("model_max_length")
            .and_then(Value::as_f64)
            .filter(|&n| n > 0.0 && n < 1e9)
            .map(|n| n as usize);
        let max_len = match (declared, positions) {
            (Some(d), Some(p)) => d.min(p),
            (Some(d), None) => d,
            (None, Some(p)) => p,
            (None, None) => {
                if siglip {
                    64
                } else {
                    77
                }
            }
        };
        let tok_path = folder.path("tokenizer.json");
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|source| ModelError::Tokenizer {
                path: tok_path.clone(),
                source,
            })?;
        tokenizer.with_padding(None);
        let pad_id = token_id(&tc, "pad_token", &tokenizer)
            .or_else(|| token_id(&tc, "eos_token", &tokenizer))
            .ok_or_else(|| ModelError::MissingToken {
                path: tok_path.clone(),
                token: "pad_token".into(),
                family: ENTRY.name.into(),
            })?;
        let canonical = (tc.get("tokenizer_class").and_then(Value::as_str)
            == Some("SiglipTokenizer")
            || siglip)
            .then(|| {
                tc.get("do_lower_case")
                    .and_then(Value::as_bool)
                    .unwrap_or(true)
            });

        let mut warnings = Vec::new();
        let cfg = SessionConfig::new(&opts.runtime, &mut warnings)?;
        let path = folder.onnx("model", &opts.variant)?;
        let session =
            SessionPool::open(&cfg, &path, &mut warnings).map_err(|source| ModelError::Onnx {
                path: path.clone(),
                source,
            })?;
        crate::infer::generate::check_names(
            &session,
            ENTRY.name,
            "model",
            &["input_ids", "pixel_values"],
            &["attention_mask"],
        )?;
        for out in ["logits_per_image", "text_embeds", "image_embeds"] {
            if !session.outputs().iter().any(|o| o == out) {
                return Err(ModelError::Unsupported {
                    path: path.clone(),
                    problem: format!(
                        "has no output {out:?}: medvqa needs the zero-shot export of the whole model \
                         (onnx/model.onnx of the onnx-community / Xenova repositories)"
                    ),
                });
            }
        }
        let has_mask = session.inputs().iter().any(|n| n == "attention_mask");
        Ok(DualEncoder {
            link,
            processor,
            tokenizer,
            canonical,
            pad_to: siglip.then_some(max_len),
            pad_id,
            session,
            has_mask,
            options: opts.zero_shot.clone(),
            batch_size: opts.batch_size.max(1),
            warnings,
        })
    }

    pub fn processor(&self) -> &ClipImageProcessor {
        &self.processor
    }

    pub fn link(&self) -> Link {
        self.link
    }

    /// Token ids of each text, as the model sees them (truncated, not padded).
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, SampleErrorKind> {
        texts
            .iter()
            .map(|t| {
                let text = match self.canonical {
                    Some(lower) => canonicalize(t, lower),
                    None => t.to_string(),
                };
                self.tokenizer
                    .encode(text.as_str(), true)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(SampleErrorKind::Tokenize)
            })
            .collect()
    }

    /// Preprocessed images, `[n, 3, H, W]`.
    pub fn pixel_values(&self, images: &[&Pixels]) -> (Vec<f32>, (u32, u32)) {
        let mut out = Vec::new();
        let mut dims = (0, 0);
        for p in images {
            dims = self.processor.pixel_values(p, &mut out);
        }
        (out, dims)
    }

    /// Runs the model on texts and images.
    pub fn scores(&self, texts: &[&str], images: &[&Pixels]) -> Result<Scores, SampleErrorKind> {
        let ids = self.tokenize(texts)?;
        let (pixels, (w, h)) = self.pixel_values(images);
        self.run(&ids, pixels, images.len(), w, h)
    }

    fn run(
        &self,
        ids: &[Vec<u32>],
        pixels: Vec<f32>,
        n_images: usize,
        w: u32,
        h: u32,
    ) -> Result<Scores, SampleErrorKind> {
        let run_err = |source| SampleErrorKind::Run {
            graph: "model".into(),
            source,
        };
        let len = self
            .pad_to
            .unwrap_or_else(|| ids.iter().map(Vec::len).max().unwrap_or(0))
            .max(1);
        let mut input_ids = vec![self.pad_id as i64; ids.len() * len];
        let mut mask = vec![0i64; ids.len() * len];
        for (r, row) in ids.iter().enumerate() {
            for (j, &t) in row.iter().take(len).enumerate() {
                input_ids[r * len + j] = t as i64;
                mask[r * len + j] = 1;
            }
        }
        let shape = vec![ids.len() as i64, len as i64];
        let ids_t = Tensor::from_array((shape.clone(), input_ids)).map_err(run_err)?;
        let px_t = Tensor::from_array((vec![n_images as i64, 3, h as i64, w as i64], pixels))
            .map_err(run_err)?;
        let mut session = self.session.get();
        let outputs = if self.has_mask {
            let mask_t = Tensor::from_array((shape, mask)).map_err(run_err)?;
            session.run(ort::inputs! {"input_ids" => ids_t, "pixel_values" => px_t, "attention_mask" => mask_t})
        } else {
            session.run(ort::inputs! {"input_ids" => ids_t, "pixel_values" => px_t})
        }
        .map_err(run_err)?;
        let rows = |name: &str, n: usize| -> Result<Vec<Vec<f32>>, SampleErrorKind> {
            let (_, data) = outputs[name].try_extract_tensor::<f32>().map_err(run_err)?;
            if n == 0 || data.len() % n != 0 {
                return Err(SampleErrorKind::Output(format!(
                    "model returned {} values of {name} for {n} rows",
                    data.len()
                )));
            }
            Ok(data.chunks(data.len() / n).map(<[f32]>::to_vec).collect())
        };
        Ok(Scores {
            text_embeds: rows("text_embeds", ids.len())?,
            image_embeds: rows("image_embeds", n_images)?,
            logits_per_image: rows("logits_per_image", n_images)?,
        })
    }

    /// Captions of one input, after its checks.
    fn prepare(&self, input: &PromptInput<'_>) -> Result<Vec<String>, SampleErrorKind> {
        let s = input.sample;
        let texts = captions(s.kind(), &s.question, s.task.options(), &self.options)?;
        if input.images.len() != 1 {
            return Err(SampleErrorKind::TooManyImages {
                given: input.images.len(),
                limit: "a dual encoder (clip/siglip) scores exactly one image per question".into(),
            });
        }
        let img = &input.images[0];
        if img.width() == 0 || img.height() == 0 {
            return Err(SampleErrorKind::Image {
                index: 0,
                reason: "the image is empty".into(),
            });
        }
        Ok(texts)
    }

    fn run_chunk(&self, inputs: &[PromptInput<'_>]) -> Vec<Result<Generated, SampleError>> {
        let mut results: Vec<Option<Result<Generated, SampleError>>> =
            Vec::with_capacity(inputs.len());
        // (input, first caption, count, its preprocessing time)
        let mut ready: Vec<(usize, usize, usize, Duration)> = Vec::new();
        let mut ids: Vec<Vec<u32>> = Vec::new();
        let mut pixels = Vec::new();
        let mut dims = (0, 0);
        for (i, input) in inputs.iter().enumerate() {
            let t0 = Instant::now();
            let prepared = self.prepare(input).and_then(|texts| {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                self.tokenize(&refs)
            });
            match prepared {
                Ok(caption_ids) => {
                    let first = ids.len();
                    let count = caption_ids.len();
                    ids.extend(caption_ids);
                    dims = self.processor.pixel_values(&input.images[0], &mut pixels);
                    ready.push((i, first, count, t0.elapsed()));
                    results.push(None);
                }
                Err(kind) => {
                    results.push(Some(Err(SampleError::new(input.sample.id.clone(), kind))))
                }
            }
        }
        if !ready.is_empty() {
            let t1 = Instant::now();
            match self.run(&ids, pixels, ready.len(), dims.0, dims.1) {
                Ok(scores) => {
                    // One graph call scores the whole batch: each answer takes its share.
                    let spent = t1.elapsed() / ready.len() as u32;
                    for (row, &(i, first, count, preprocess)) in ready.iter().enumerate() {
                        let logits = &scores.logits_per_image[row][first..first + count];
                        let s = inputs[i].sample;
                        results[i] = Some(Ok(Generated {
                            text: decide(s.kind(), logits, self.link, self.options.multi_threshold),
                            token_ids: Vec::new(),
                            token_probs: Vec::new(),
                            prompt_tokens: ids[first..first + count].iter().map(Vec::len).sum(),
                            completion_tokens: None,
                            timings: Timings {
                                preprocess,
                                vision: spent,
                                batch_size: ready.len(),
                                ..Timings::default()
                            },
                        }));
                    }
                }
                Err(kind) => crate::infer::engine::fail_batch(
                    inputs,
                    &mut results,
                    ready.iter().map(|r| r.0),
                    &kind,
                ),
            }
        }
        crate::infer::engine::collect_answers(inputs, results)
    }
}

impl Engine for DualEncoder {
    fn answer_batch(&self, inputs: &[PromptInput<'_>]) -> Vec<Result<Generated, SampleError>> {
        inputs
            .chunks(self.batch_size)
            .flat_map(|c| self.run_chunk(c))
            .collect()
    }

    fn prompt(&self, input: &PromptInput<'_>) -> Result<PromptView, SampleError> {
        let err = |k| SampleError::new(input.sample.id.clone(), k);
        let texts = self.prepare(input).map_err(err)?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let ids = self.tokenize(&refs).map_err(err)?;
        Ok(PromptView {
            rendered: texts.join("\n"),
            input_ids: ids.concat(),
        })
    }

    fn box_frame(&self) -> BoxFrame {
        BoxFrame::Normalized
    }

    fn prompt_hash(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for part in [
            self.options.option_template.as_str(),
            self.options.closed_template.as_str(),
            &format!("{:?};{:?}", self.link, self.options.multi_threshold),
        ] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        hex::encode(h.finalize())
    }

    fn generation_key(&self) -> String {
        format!(
            "zero-shot;link={:?};multi_threshold={:?}",
            self.link, self.options.multi_threshold
        )
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}

#[cfg(test)]
mod tests;
