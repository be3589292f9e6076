//! Greedy decoding shared by the decoder families (`embed_tokens` + `decoder_model_merged`).
//!
//! A batch of prompts is left-padded to one length, with an attention mask of 0 on padding
//! and position ids counted over the real tokens only (padding gets 1), as transformers does
//! for left padding. Token embeddings come from `embed_tokens`; the family's image features
//! replace the embeddings at image-token positions, in order. The first decoder step takes
//! empty past tensors (sequence length 0, docs/design.md §9); every later step feeds one token per
//! row and the previous step's `present.*` as `past_key_values.*`, so the KV cache is reused
//! without copying. A row stops at an eos id or after `max_new_tokens`; finished rows keep
//! feeding the pad id until all are done. Argmax takes the first maximal logit (numpy's and
//! torch's rule). Nothing here depends on the batch a prompt is in except float rounding,
//! which the fixture goldens show stays far below the logit margins.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorElementType};

use super::error::{ModelError, SampleErrorKind};
use super::runtime::SessionPool;

/// Position ids of one prompt: `axes` rows (1, or 3 for M-RoPE) of one id per token, and the
/// position of the first generated token (later ones count up from it on every axis).
#[derive(Debug, Clone, PartialEq)]
pub struct Positions {
    pub axes: Vec<Vec<i64>>,
    pub next: i64,
}

impl Positions {
    /// `0..len` on one axis.
    pub fn sequential(len: usize) -> Positions {
        Positions {
            axes: vec![(0..len as i64).collect()],
            next: len as i64,
        }
    }
}

/// One prompt ready for the decoder.
#[derive(Debug, Clone)]
pub struct DecoderPrompt {
    pub ids: Vec<i64>,
    /// One row of `hidden` values per image token, in prompt order.
    pub image_features: Vec<f32>,
    pub positions: Positions,
}

/// Settings of one generation call.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub max_new_tokens: usize,
    pub eos: Vec<u32>,
    pub pad: u32,
    pub image_token: u32,
    pub repetition_penalty: Option<f32>,
}

/// The decoder graph's geometry, read from its inputs and checked against `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderLayout {
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub position_axes: usize,
    /// optimum's merged decoders take a `use_cache_branch` flag; onnx-community's do not.
    pub use_cache_branch: bool,
    /// Some exports compute positions themselves and take no `position_ids`.
    pub position_ids: bool,
    /// Newer exports take `num_logits_to_keep` (fed 1: only the last position's logits).
    pub num_logits_to_keep: bool,
}

/// What `config.json` says about the text model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextGeometry {
    pub kv_heads: usize,
    pub head_dim: usize,
    pub hidden: usize,
}

/// `embed_tokens` and `decoder_model_merged`, loaded and checked.
#[derive(Debug)]
pub struct DecoderGraphs {
    pub embed: SessionPool,
    pub decoder: SessionPool,
    pub layout: DecoderLayout,
}

fn static_dim(shape: &[i64], i: usize) -> Option<usize> {
    shape.get(i).copied().filter(|&d| d > 0).map(|d| d as usize)
}

impl DecoderGraphs {
    /// Checks the graphs' input and output names against the onnx-community layout and reads
    /// the geometry. `geometry` comes from `config.json` and is used where the graph leaves a
    /// dimension symbolic.
    pub fn new(
        embed: SessionPool,
        decoder: SessionPool,
        family: &str,
        geometry: TextGeometry,
        position_axes: usize,
    ) -> Result<DecoderGraphs, ModelError> {
        check_names(&embed, family, "embed_tokens", &["input_ids"], &[])?;
        let layers = decoder
            .inputs()
            .iter()
            .filter(|n| n.starts_with("past_key_values.") && n.ends_with(".key"))
            .count();
        // Without M-RoPE, position ids may be left to the graph.
        let position_ids =
            position_axes > 1 || decoder.inputs().iter().any(|n| n == "position_ids");
        let mut expected: Vec<String> = ["inputs_embeds", "attention_mask"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if position_ids {
            expected.push("position_ids".into());
        }
        for i in 0..layers {
            expected.push(format!("past_key_values.{i}.key"));
            expected.push(format!("past_key_values.{i}.value"));
        }
        let expected_ref: Vec<&str> = expected.iter().map(String::as_str).collect();
        check_names(
            &decoder,
            family,
            "decoder_model_merged",
            &expected_ref,
            &["use_cache_branch", "num_logits_to_keep"],
        )?;
        let path = decoder.path().to_path_buf();
        let unsupported = |problem: String| ModelError::Unsupported {
            path: path.clone(),
            problem,
        };
        if layers == 0 {
            return Err(unsupported(
                "has no past_key_values inputs: medvqa needs a decoder exported with its KV cache"
                    .into(),
            ));
        }
        for name in ["present.0.key", "logits"] {
            if !decoder.outputs().iter().any(|o| o == name) {
                return Err(unsupported(format!(
                    "has no output {name:?} (outputs: {})",
                    decoder.outputs().join(", ")
                )));
            }
        }
        let mut kv_heads = geometry.kv_heads;
        let mut head_dim = geometry.head_dim;
        let mut hidden = geometry.hidden;
        for (name, graph) in [
            ("inputs_embeds", &decoder),
            ("past_key_values.0.key", &decoder),
        ] {
            let Some((ty, shape)) = graph.input_type(name) else {
                continue;
            };
            if ty != TensorElementType::Float32 {
                return Err(unsupported(format!(
                    "input {name} is {ty:?}; medvqa runs graphs with float32 inputs and outputs \
                     (pick --variant fp32, q4 or quantized instead of an fp16 file)"
                )));
            }
            if name == "inputs_embeds" {
                if let Some(h) = static_dim(&shape, 2) {
                    hidden = h;
                }
            } else {
                if let Some(k) = static_dim(&shape, 1) {
                    kv_heads = k;
                }
                if let Some(d) = static_dim(&shape, 3) {
                    head_dim = d;
                }
            }
        }
        if (kv_heads, head_dim, hidden) != (geometry.kv_heads, geometry.head_dim, geometry.hidden) {
            return Err(unsupported(format!(
                "the graph has {kv_heads} KV heads of size {head_dim} and hidden size {hidden}, \
                 but config.json says {}, {} and {}: the ONNX files and config.json are from \
                 different models",
                geometry.kv_heads, geometry.head_dim, geometry.hidden
            )));
        }
        let use_cache_branch = decoder.inputs().iter().any(|n| n == "use_cache_branch");
        let num_logits_to_keep = decoder.inputs().iter().any(|n| n == "num_logits_to_keep");
        Ok(DecoderGraphs {
            embed,
            decoder,
            layout: DecoderLayout {
                layers,
                kv_heads,
                head_dim,
                hidden,
                position_axes,
                use_cache_branch,
                position_ids,
                num_logits_to_keep,
            },
        })
    }
}

/// Errors unless the graph's inputs are exactly `required` plus any of `optional`.
pub fn check_names(
    pool: &SessionPool,
    family: &str,
    graph: &str,
    required: &[&str],
    optional: &[&str],
) -> Result<(), ModelError> {
    let have: BTreeSet<&str> = pool.inputs().iter().map(String::as_str).collect();
    let missing: Vec<String> = required
        .iter()
        .filter(|n| !have.contains(**n))
        .map(|s| s.to_string())
        .collect();
    let unexpected: Vec<String> = have
        .iter()
        .filter(|n| !required.contains(n) && !optional.contains(n))
        .map(|s| s.to_string())
        .collect();
    if missing.is_empty() && unexpected.is_empty() {
        return Ok(());
    }
    Err(ModelError::InputNames {
        path: pool.path().to_path_buf(),
        family: family.to_string(),
        graph: graph.to_string(),
        missing,
        unexpected,
    })
}

/// What one batch took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchTiming {
    pub prefill: Duration,
    pub decode: Duration,
    pub steps: usize,
}

type Feeds = Vec<(Cow<'static, str>, SessionInputValue<'static>)>;

fn run_err(graph: &str) -> impl Fn(ort::Error) -> SampleErrorKind + '_ {
    move |source| SampleErrorKind::Run {
        graph: graph.to_string(),
        source,
    }
}

fn tensor<T>(shape: Vec<i64>, data: Vec<T>) -> Result<SessionInputValue<'static>, SampleErrorKind>
where
    T: ort::value::PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static,
{
    Tensor::from_array((shape, data))
        .map(|t| t.into())
        .map_err(run_err("input tensor"))
}

/// Runs `embed_tokens` on `[batch, seq]` ids and returns the flat `[batch, seq, hidden]`.
fn embed(
    session: &mut Session,
    ids: Vec<i64>,
    batch: usize,
    hidden: usize,
) -> Result<Vec<f32>, SampleErrorKind> {
    let seq = ids.len() / batch.max(1);
    let feeds: Feeds = vec![(
        Cow::Borrowed("input_ids"),
        tensor(vec![batch as i64, seq as i64], ids)?,
    )];
    let out = session.run(feeds).map_err(run_err("embed_tokens"))?;
    let (_, data) = out[0]
        .try_extract_tensor::<f32>()
        .map_err(run_err("embed_tokens"))?;
    if data.len() != batch * seq * hidden {
        return Err(SampleErrorKind::Output(format!(
            "embed_tokens returned {} values for {batch}x{seq} ids of hidden size {hidden}",
            data.len()
        )));
    }
    Ok(data.to_vec())
}

/// Index of the first maximal value.
pub fn argmax(v: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in v.iter().enumerate() {
        if x.is_nan() {
            return None;
        }
        if best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i)
}

/// transformers' `RepetitionPenaltyLogitsProcessor`: every token already in the sequence
/// (prompt included) has its logit divided by `p` when positive, multiplied when negative.
fn penalise(logits: &mut [f32], seen: &BTreeSet<u32>, p: f32) {
    for &t in seen {
        if let Some(l) = logits.get_mut(t as usize) {
            *l = if *l < 0.0 { *l * p } else { *l / p };
        }
    }
}

/// The softmax probability of entry `i` of a logits row: `exp(x_i - max) / Σ exp(x_j - max)`,
/// one pass for the maximum and one for the sum, so that it costs about what `argmax` does.
pub fn softmax_at(row: &[f32], i: usize) -> Option<f64> {
    let x = f64::from(*row.get(i)?);
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return None;
    }
    let max = f64::from(max);
    let sum: f64 = row.iter().map(|&v| (f64::from(v) - max).exp()).sum();
    Some((x - max).exp() / sum)
}

/// What greedy generation gives for one prompt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tokens {
    /// The new ids, the eos id included when one ended the answer.
    pub ids: Vec<u32>,
    /// The probability of each id under the model's own distribution at its step: the
    /// softmax of the logits as the decoder returned them, *before* any repetition
    /// penalty. The penalty only steers the choice; the model's belief is the unpenalised
    /// distribution.
    pub probs: Vec<f64>,
}

/// Greedy generation for a batch of prompts. Returns the new tokens of each prompt (the eos
/// token included when one ended it) with their probabilities.
pub fn generate(
    graphs: &DecoderGraphs,
    prompts: &[&DecoderPrompt],
    s: &Settings,
) -> Result<(Vec<Tokens>, BatchTiming), SampleErrorKind> {
    let lay = &graphs.layout;
    let b = prompts.len();
    let mut timing = BatchTiming::default();
    if b == 0 {
        return Ok((Vec::new(), timing));
    }
    let start = Instant::now();
    let len = prompts.iter().map(|p| p.ids.len()).max().unwrap_or(0);
    if len == 0 {
        return Err(SampleErrorKind::Output("empty prompt".into()));
    }
    let h = lay.hidden;

    // Left padding.
    let mut ids = vec![s.pad as i64; b * len];
    let mut mask = vec![0i64; b * len];
    let mut pos = vec![1i64; lay.position_axes * b * len];
    for (r, p) in prompts.iter().enumerate() {
        let pad = len - p.ids.len();
        ids[r * len + pad..(r + 1) * len].copy_from_slice(&p.ids);
        mask[r * len + pad..(r + 1) * len].fill(1);
        if p.positions.axes.len() != lay.position_axes
            || p.positions.axes.iter().any(|a| a.len() != p.ids.len())
        {
            return Err(SampleErrorKind::Output(format!(
                "position ids of shape {}x{:?} for a prompt of {} tokens and {} position axes",
                p.positions.axes.len(),
                p.positions.axes.first().map(Vec::len),
                p.ids.len(),
                lay.position_axes
            )));
        }
        for (a, axis) in p.positions.axes.iter().enumerate() {
            let off = (a * b + r) * len + pad;
            pos[off..off + axis.len()].copy_from_slice(axis);
        }
    }

    let mut embeds = {
        let mut session = graphs.embed.get();
        embed(&mut session, ids.clone(), b, h)?
    };
    for (r, p) in prompts.iter().enumerate() {
        let pad = len - p.ids.len();
        let mut rows = p.image_features.chunks_exact(h);
        let mut used = 0usize;
        for (j, &id) in p.ids.iter().enumerate() {
            if id == s.image_token as i64 {
                let Some(row) = rows.next() else {
                    return Err(SampleErrorKind::FeatureCount {
                        features: p.image_features.len() / h,
                        tokens: p.ids.iter().filter(|&&t| t == s.image_token as i64).count(),
                    });
                };
                let at = (r * len + pad + j) * h;
                embeds[at..at + h].copy_from_slice(row);
                used += 1;
            }
        }
        if used * h != p.image_features.len() {
            return Err(SampleErrorKind::FeatureCount {
                features: p.image_features.len() / h,
                tokens: used,
            });
        }
    }

    let mut seen: Vec<BTreeSet<u32>> = prompts
        .iter()
        .map(|p| p.ids.iter().map(|&t| t as u32).collect())
        .collect();
    let mut out: Vec<Tokens> = vec![Tokens::default(); b];
    let mut done = vec![false; b];
    let mut decoder = graphs.decoder.get();

    let pos_shape = |seq: usize| -> Vec<i64> {
        if lay.position_axes == 1 {
            vec![b as i64, seq as i64]
        } else {
            vec![lay.position_axes as i64, b as i64, seq as i64]
        }
    };
    let mut past: Vec<SessionInputValue<'static>> = Vec::with_capacity(2 * lay.layers);
    for _ in 0..2 * lay.layers {
        past.push(tensor(
            vec![b as i64, lay.kv_heads as i64, 0, lay.head_dim as i64],
            Vec::<f32>::new(),
        )?);
    }
    let mut step_embeds = embeds;
    let mut step_pos = pos;
    let mut seq = len;
    let mut total = len;
    let mut past_len = 0usize;
    let max_new = s.max_new_tokens;

    for step in 0..max_new {
        let mut feeds: Feeds = Vec::with_capacity(3 + past.len() + 1);
        feeds.push((
            Cow::Borrowed("inputs_embeds"),
            tensor(
                vec![b as i64, seq as i64, h as i64],
                std::mem::take(&mut step_embeds),
            )?,
        ));
        feeds.push((
            Cow::Borrowed("attention_mask"),
            tensor(vec![b as i64, total as i64], mask.clone())?,
        ));
        if lay.position_ids {
            feeds.push((
                Cow::Borrowed("position_ids"),
                tensor(pos_shape(seq), std::mem::take(&mut step_pos))?,
            ));
        }
        for (i, v) in past.drain(..).enumerate() {
            let kind = if i % 2 == 0 { "key" } else { "value" };
            feeds.push((Cow::Owned(format!("past_key_values.{}.{kind}", i / 2)), v));
        }
        if lay.num_logits_to_keep {
            feeds.push((
                Cow::Borrowed("num_logits_to_keep"),
                tensor(vec![], vec![1i64])?,
            ));
        }
        if lay.use_cache_branch {
            feeds.push((
                Cow::Borrowed("use_cache_branch"),
                tensor(vec![1], vec![past_len > 0])?,
            ));
        }
        let mut outputs = decoder
            .run(feeds)
            .map_err(run_err("decoder_model_merged"))?;
        let mut next = vec![s.pad; b];
        {
            let (shape, logits) = outputs["logits"]
                .try_extract_tensor::<f32>()
                .map_err(run_err("decoder_model_merged"))?;
            let vocab = shape.last().copied().unwrap_or(0).max(0) as usize;
            // All positions, or only the last ones (num_logits_to_keep).
            let kept = shape.get(1).copied().unwrap_or(0).max(0) as usize;
            if vocab == 0 || kept == 0 || kept > seq || logits.len() != b * kept * vocab {
                return Err(SampleErrorKind::Output(format!(
                    "decoder_model_merged returned logits of shape {shape:?} for batch {b}, length {seq}"
                )));
            }
            let seq = kept;
            for r in 0..b {
                if done[r] {
                    continue;
                }
                let at = (r * seq + seq - 1) * vocab;
                let row = &logits[at..at + vocab];
                let tok = match s.repetition_penalty {
                    Some(p) => {
                        let mut row = row.to_vec();
                        penalise(&mut row, &seen[r], p);
                        argmax(&row)
                    }
                    None => argmax(row),
                };
                let Some(tok) = tok else {
                    return Err(SampleErrorKind::Output(
                        "decoder_model_merged returned NaN logits".into(),
                    ));
                };
                let p = softmax_at(row, tok).unwrap_or(0.0);
                let tok = tok as u32;
                out[r].ids.push(tok);
                out[r].probs.push(p);
                seen[r].insert(tok);
                next[r] = tok;
                if s.eos.contains(&tok) {
                    done[r] = true;
                }
            }
        }
        for i in 0..lay.layers {
            for kind in ["key", "value"] {
                let name = format!("present.{i}.{kind}");
                let v = outputs.remove(name.as_str()).ok_or_else(|| {
                    SampleErrorKind::Output(format!("decoder_model_merged has no output {name}"))
                })?;
                past.push(SessionInputValue::Owned(v));
            }
        }
        drop(outputs);
        if step == 0 {
            timing.prefill = start.elapsed();
        }
        timing.steps = step + 1;
        if done.iter().all(|&d| d) || step + 1 == max_new {
            break;
        }
        for r in 0..b {
            if done[r] {
                next[r] = s.pad;
            }
        }
        step_embeds = {
            let mut emb = graphs.embed.get();
            embed(&mut emb, next.iter().map(|&t| t as i64).collect(), b, h)?
        };
        past_len = total;
        total += 1;
        seq = 1;
        let mut new_mask = Vec::with_capacity(b * total);
        for r in 0..b {
            new_mask.extend_from_slice(&mask[r * (total - 1)..(r + 1) * (total - 1)]);
            new_mask.push(1);
        }
        mask = new_mask;
        step_pos = Vec::with_capacity(lay.position_axes * b);
        for _ in 0..lay.position_axes {
            for p in prompts {
                step_pos.push(p.positions.next + step as i64);
            }
        }
    }
    timing.decode = start.elapsed().saturating_sub(timing.prefill);
    Ok((out, timing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum_and_refuses_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), Some(1));
        assert_eq!(argmax(&[]), None);
        assert_eq!(argmax(&[0.0, f32::NAN]), None);
    }

    #[test]
    fn softmax_at_matches_a_direct_computation() {
        let row = [1.0f32, 3.0, 0.5, -2.0];
        let z: f64 = row.iter().map(|&v| f64::from(v).exp()).sum();
        let want = 3f64.exp() / z;
        let got = softmax_at(&row, 1).unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // Large logits do not overflow: the maximum is subtracted first.
        let big = [1000.0f32, 1000.0];
        assert!((softmax_at(&big, 0).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(softmax_at(&row, 9), None);
        assert_eq!(softmax_at(&[f32::NEG_INFINITY], 0), None);
    }

    #[test]
    fn repetition_penalty_follows_transformers() {
        let mut l = vec![2.0, -2.0, 1.0];
        penalise(&mut l, &[0u32, 1].into_iter().collect(), 2.0);
        assert_eq!(l, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn sequential_positions_count_from_zero() {
        let p = Positions::sequential(3);
        assert_eq!(p.axes, vec![vec![0, 1, 2]]);
        assert_eq!(p.next, 3);
    }
}
