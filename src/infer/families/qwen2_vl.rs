//! Qwen2-VL (`model_type` `qwen2_vl`): a ViT over variable-size images cut into patches, and a
//! Qwen2 decoder with 3-D rotary positions (M-RoPE).
//!
//! ```text
//! onnx/vision_encoder.onnx        pixel_values [patches, C*T*P*P] f32, grid_thw [images, 3] i64
//!                                 -> image_features [patches / merge², hidden]
//! onnx/embed_tokens.onnx          input_ids -> inputs_embeds
//! onnx/decoder_model_merged.onnx  inputs_embeds, attention_mask, position_ids [3, batch, seq],
//!                                 past_key_values.* -> logits, present.*
//! ```
//!
//! Preprocessing is `Qwen2VLImageProcessor`'s: `smart_resize` picks a size whose sides are
//! multiples of `patch_size * merge_size` and whose area lies in `[min_pixels, max_pixels]`
//! (Python's round-half-to-even included), Pillow resizes to it (bicubic by default), then
//! rescale, normalise and patching: patches in merge-block order (`h/m, w/m, m, m`), each
//! flattened as `C, T, P, P` with the single frame repeated over `temporal_patch_size`.
//! `grid_thw` is `[1, H/P, W/P]` per image, and each `<|image_pad|>` of the chat template
//! becomes `t*h*w / merge²` copies, as `Qwen2VLProcessor` writes them.
//!
//! The vision graph runs once per image: its attention is block-diagonal over images, so one
//! call per image gives the same features without a mask quadratic in all patches.
//!
//! Position ids are transformers' `get_rope_index`, computed here: text tokens count up on all
//! three axes; an image's tokens take `start + (t, row, column)` of its merged grid; the text
//! after an image resumes at `start + max(h, w) / merge`. Generated tokens continue from the
//! largest position + 1 on all axes (`rope_deltas`). Left padding is the decoder loop's.
//!
//! Boxes: Qwen2-VL answers `<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`
//! on a 0–1000 grid ([`BoxFrame::Grid`]). Those markup tokens are special tokens, so the answer
//! is decoded without special tokens except these, which the box parser needs.

use std::sync::Arc;

use ort::session::Session;
use ort::value::{Tensor, TensorRef};
use serde_json::Value;

use crate::geometry::BoxFrame;
use crate::infer::engine::{DecoderEngine, DecoderFamily, Engine, ModelOptions};
use crate::infer::error::{ModelError, SampleErrorKind};
use crate::infer::families::FamilyEntry;
use crate::infer::families::clip::{CLIP_MEAN, CLIP_STD, triple};
use crate::infer::folder::ModelFolder;
use crate::infer::generate::Positions;
use crate::infer::image_ops::{self, Filter, Normalize};
use crate::pixels::Pixels;

pub const ENTRY: FamilyEntry = FamilyEntry {
    name: "qwen2_vl",
    model_types: &["qwen2_vl"],
    open,
};

fn open(folder: &ModelFolder, opts: &ModelOptions) -> Result<Box<dyn Engine>, ModelError> {
    Ok(Box::new(DecoderEngine::<Qwen2Vl>::open(folder, opts)?))
}

/// The answer markup kept when decoding (grounding).
const MARKUP: [&str; 6] = [
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
];

/// `Qwen2VLImageProcessor`'s settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessor {
    pub min_pixels: u64,
    pub max_pixels: u64,
    pub patch: usize,
    pub temporal: usize,
    pub merge: usize,
    pub resample: Filter,
    pub normalize: Normalize,
}

/// One image, patched.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePatches {
    /// `[t, h, w]` in patches.
    pub grid_thw: [i64; 3],
    /// `[t*h*w, C*T*P*P]`.
    pub pixel_values: Vec<f32>,
}

impl ImagePatches {
    pub fn patches(&self) -> usize {
        (self.grid_thw[0] * self.grid_thw[1] * self.grid_thw[2]) as usize
    }
}

/// transformers' `smart_resize`; it lives with the box frames, which need it too.
pub use crate::geometry::smart_resize;

impl ImageProcessor {
    /// Reads `preprocessor_config.json`: `min_pixels`/`max_pixels` (or the newer
    /// `size.shortest_edge`/`size.longest_edge`), patch, temporal and merge sizes, resample,
    /// rescale and normalisation. `max_pixels` (the image budget) lowers the file's.
    pub fn from_config(
        v: &Value,
        path: &std::path::Path,
        budget: Option<u64>,
    ) -> Result<Self, ModelError> {
        let flag = |k: &str, default: bool| v.get(k).and_then(Value::as_bool).unwrap_or(default);
        let num = |k: &str| v.get(k).and_then(Value::as_u64);
        let size = |k: &str| v.get("size").and_then(|s| s.get(k)).and_then(Value::as_u64);
        let field = |f: &str, problem: &str| ModelError::Field {
            path: path.to_path_buf(),
            field: f.into(),
            problem: problem.into(),
        };
        let mut min_pixels = num("min_pixels")
            .or_else(|| size("shortest_edge"))
            .unwrap_or(56 * 56);
        let mut max_pixels = num("max_pixels")
            .or_else(|| size("longest_edge"))
            .unwrap_or(28 * 28 * 1280);
        if let Some(b) = budget {
            max_pixels = max_pixels.min(b);
            min_pixels = min_pixels.min(max_pixels);
        }
        let patch = num("patch_size").unwrap_or(14) as usize;
        let temporal = num("temporal_patch_size").unwrap_or(2) as usize;
        let merge = num("merge_size").unwrap_or(2) as usize;
        if patch == 0 || temporal == 0 || merge == 0 {
            return Err(field(
                "patch_size",
                "patch_size, temporal_patch_size and merge_size must be positive",
            ));
        }
        if max_pixels == 0 {
            return Err(field("max_pixels", "must be positive"));
        }
        let code = v.get("resample").and_then(Value::as_i64).unwrap_or(3);
        let resample = Filter::from_pil(code).ok_or_else(|| {
            field(
                "resample",
                &format!("{code} is not a Pillow resampling filter (0-5)"),
            )
        })?;
        let rescale = flag("do_rescale", true).then(|| {
            v.get("rescale_factor")
                .and_then(Value::as_f64)
                .unwrap_or(1.0 / 255.0)
        });
        let mean_std = if flag("do_normalize", true) {
            Some((
                triple(v, "image_mean", CLIP_MEAN, path)?,
                triple(v, "image_std", CLIP_STD, path)?,
            ))
        } else {
            None
        };
        if !flag("do_resize", true) {
            return Err(field(
                "do_resize",
                "false is not supported: Qwen2-VL needs sides that are multiples of patch_size * merge_size",
            ));
        }
        Ok(ImageProcessor {
            min_pixels,
            max_pixels,
            patch,
            temporal,
            merge,
            resample,
            normalize: Normalize { rescale, mean_std },
        })
    }

    /// Resizes, normalises and patches one image.
    pub fn patches(&self, px: &Pixels) -> Result<ImagePatches, String> {
        let factor = (self.patch * self.merge) as u32;
        let (h, w) = smart_resize(
            px.height(),
            px.width(),
            factor,
            self.min_pixels,
            self.max_pixels,
        )?;
        // A gray image is resized and normalised on its one channel: Pillow resamples each
        // channel alone, so its RGB channels would all equal these bytes.
        let img = image_ops::resize_kept(px, w, h, self.resample);
        let (gray, raw) = (img.is_gray(), img.as_raw());
        // Normalised straight from the 8-bit pixels into patch order: no full-size float
        // image in between (for a large image that copy and its page faults cost more than
        // the lookups).
        let (p, m, t) = (self.patch, self.merge, self.temporal);
        let (gh, gw) = (h as usize / p, w as usize / p);
        let w = w as usize;
        let row = 3 * t * p * p;
        // One band per row of merge blocks: its patches are contiguous in the output. A large
        // image's bands are written on the caller's rayon threads, at the caller's SIMD level.
        // Each band is one SIMD dispatch; its 14-value patch rows are not dispatched alone.
        let band = (gw / m) * m * m * row;
        let fill = |bh: usize, out: &mut [f32]| {
            crate::simd::run(
                #[inline(always)]
                || {
                    let mut o = 0;
                    for bw in 0..gw / m {
                        for mh in 0..m {
                            for mw in 0..m {
                                let (y0, x0) = ((bh * m + mh) * p, (bw * m + mw) * p);
                                for c in 0..3 {
                                    for _ in 0..t {
                                        for py in 0..p {
                                            let first = (y0 + py) * w + x0;
                                            let dst = &mut out[o..o + p];
                                            self.normalize
                                                .write_run_inline(raw, gray, first, c, dst);
                                            o += p;
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
            )
        };
        let bands = gh / m;
        let mut out = vec![0f32; bands * band];
        if image_ops::split_across_threads(h as usize * w) && bands > 1 {
            use rayon::prelude::*;
            let level = crate::simd::current();
            out.par_chunks_mut(band.max(1))
                .enumerate()
                .for_each(|(bh, chunk)| crate::simd::with_level(level, || fill(bh, chunk)));
        } else {
            for (bh, chunk) in out.chunks_mut(band.max(1)).enumerate() {
                fill(bh, chunk);
            }
        }
        Ok(ImagePatches {
            grid_thw: [1, gh as i64, gw as i64],
            pixel_values: out,
        })
    }
}

/// transformers' `get_rope_index` for one unpadded prompt: `[3][len]` position ids and the
/// position of the next token. `grids` are the images' `[t, h, w]` in prompt order; each
/// image's tokens are the next `t*h*w / merge²` image tokens.
pub fn rope_index(
    ids: &[i64],
    image_token: i64,
    grids: &[[i64; 3]],
    merge: i64,
) -> Result<Positions, String> {
    let mut axes: Vec<Vec<i64>> = (0..3).map(|_| Vec::with_capacity(ids.len())).collect();
    let mut pos = 0i64;
    let mut images = grids.iter();
    let mut j = 0;
    while j < ids.len() {
        if ids[j] != image_token {
            for a in &mut axes {
                a.push(pos);
            }
            pos += 1;
            j += 1;
            continue;
        }
        let Some(&[t, h, w]) = images.next() else {
            return Err("more image tokens than images".into());
        };
        let (lh, lw) = (h / merge, w / merge);
        let n = (t * lh * lw) as usize;
        if ids.len() < j + n || ids[j..j + n].iter().any(|&x| x != image_token) {
            return Err(format!(
                "an image of {n} tokens has fewer image tokens in the prompt"
            ));
        }
        for ti in 0..t {
            for hi in 0..lh {
                for wi in 0..lw {
                    axes[0].push(pos + ti);
                    axes[1].push(pos + hi);
                    axes[2].push(pos + wi);
                }
            }
        }
        pos += h.max(w) / merge;
        j += n;
    }
    if images.next().is_some() {
        return Err("fewer image tokens than images".into());
    }
    let next = axes
        .iter()
        .flat_map(|a| a.iter().copied())
        .max()
        .map_or(0, |m| m + 1);
    Ok(Positions { axes, next })
}

/// The family.
#[derive(Debug)]
pub struct Qwen2Vl {
    pub processor: ImageProcessor,
    image_token: String,
    image_token_id: u32,
    /// `(id, text)` of the markup tokens kept in answers.
    markup: Vec<(u32, &'static str)>,
}

impl DecoderFamily for Qwen2Vl {
    type Vision = Vec<ImagePatches>;
    const NAME: &'static str = "qwen2_vl";

    fn open(
        folder: &ModelFolder,
        tokenizer: &tokenizers::Tokenizer,
        opts: &ModelOptions,
    ) -> Result<Self, ModelError> {
        let (pp, pp_path) = folder.preprocessor_config()?;
        let processor = ImageProcessor::from_config(&pp, &pp_path, opts.max_pixels)?;
        let cfg = &folder.config;
        if let Some(m) = cfg
            .get("vision_config")
            .and_then(|v| v.get("spatial_merge_size"))
            .and_then(Value::as_u64)
            && m as usize != processor.merge
        {
            return Err(ModelError::Field {
                path: pp_path,
                field: "merge_size".into(),
                problem: format!(
                    "is {}, but config.json's vision_config.spatial_merge_size is {m}",
                    processor.merge
                ),
            });
        }
        let image_token = "<|image_pad|>".to_string();
        let image_token_id = super::token_id(folder, tokenizer, &image_token, Self::NAME)?;
        super::check_declared_id(
            folder,
            "image_token_id",
            cfg.get("image_token_id").and_then(Value::as_u64),
            &image_token,
            image_token_id,
        )?;
        let markup = MARKUP
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t).map(|id| (id, *t)))
            .collect();
        Ok(Qwen2Vl {
            processor,
            image_token,
            image_token_id,
            markup,
        })
    }

    fn vision_inputs(&self) -> &'static [&'static str] {
        &["pixel_values", "grid_thw"]
    }

    fn image_placeholder(&self) -> &str {
        &self.image_token
    }

    fn image_token_id(&self) -> u32 {
        self.image_token_id
    }

    fn box_frame(&self) -> BoxFrame {
        BoxFrame::Grid(1000)
    }

    fn position_axes(&self) -> usize {
        3
    }

    fn preprocess(&self, images: &[Arc<Pixels>]) -> Result<Vec<ImagePatches>, SampleErrorKind> {
        images
            .iter()
            .enumerate()
            .map(|(index, p)| {
                self.processor
                    .patches(p)
                    .map_err(|reason| SampleErrorKind::Image { index, reason })
            })
            .collect()
    }

    fn expand_prompt(
        &self,
        rendered: &str,
        vision: &Vec<ImagePatches>,
    ) -> Result<String, SampleErrorKind> {
        let parts: Vec<&str> = rendered.split(self.image_token.as_str()).collect();
        if parts.len() != vision.len() + 1 {
            return Err(SampleErrorKind::Placeholders {
                found: parts.len() - 1,
                images: vision.len(),
                placeholder: self.image_token.clone(),
            });
        }
        let merge2 = self.processor.merge * self.processor.merge;
        let mut out = String::with_capacity(rendered.len());
        for (i, part) in parts.iter().enumerate() {
            out.push_str(part);
            if let Some(img) = vision.get(i) {
                out.push_str(&self.image_token.repeat(img.patches() / merge2));
            }
        }
        Ok(out)
    }

    fn encode(
        &self,
        session: &mut Session,
        vision: &Vec<ImagePatches>,
    ) -> Result<Vec<f32>, SampleErrorKind> {
        let run = |source| SampleErrorKind::Run {
            graph: "vision_encoder".into(),
            source,
        };
        let merge2 = self.processor.merge * self.processor.merge;
        let mut features = Vec::new();
        for img in vision {
            let n = img.patches();
            let dim = img.pixel_values.len() / n.max(1);
            let pv =
                TensorRef::from_array_view((vec![n as i64, dim as i64], &img.pixel_values[..]))
                    .map_err(run)?;
            let grid = Tensor::from_array((vec![1i64, 3], img.grid_thw.to_vec())).map_err(run)?;
            let out = session
                .run(ort::inputs! {"pixel_values" => pv, "grid_thw" => grid})
                .map_err(run)?;
            let (shape, data) = out[0].try_extract_tensor::<f32>().map_err(run)?;
            if shape.first().copied() != Some((n / merge2) as i64) {
                return Err(SampleErrorKind::FeatureCount {
                    features: shape.first().copied().unwrap_or(0).max(0) as usize,
                    tokens: n / merge2,
                });
            }
            features.extend_from_slice(data);
        }
        Ok(features)
    }

    fn positions(
        &self,
        ids: &[i64],
        vision: &Vec<ImagePatches>,
    ) -> Result<Positions, SampleErrorKind> {
        let grids: Vec<[i64; 3]> = vision.iter().map(|v| v.grid_thw).collect();
        rope_index(
            ids,
            self.image_token_id as i64,
            &grids,
            self.processor.merge as i64,
        )
        .map_err(SampleErrorKind::Output)
    }

    fn decode(&self, tokenizer: &tokenizers::Tokenizer, ids: &[u32]) -> String {
        let mut out = String::new();
        let mut start = 0;
        for (i, id) in ids.iter().enumerate() {
            if let Some((_, text)) = self.markup.iter().find(|(m, _)| m == id) {
                out.push_str(&tokenizer.decode(&ids[start..i], true).unwrap_or_default());
                out.push_str(text);
                start = i + 1;
            }
        }
        out.push_str(&tokenizer.decode(&ids[start..], true).unwrap_or_default());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_resize_follows_transformers() {
        // values from transformers' smart_resize (factor 14, min 784, max 3136)
        assert_eq!(smart_resize(48, 80, 14, 784, 3136), Ok((42, 70)));
        assert_eq!(smart_resize(20, 24, 14, 784, 3136), Ok((28, 42)));
        assert_eq!(smart_resize(64, 64, 14, 784, 3136), Ok((56, 56)));
        // round half to even: 21/14 = 1.5 -> 2, 35/14 = 2.5 -> 2
        assert_eq!(smart_resize(21, 35, 14, 1, 1 << 30), Ok((28, 28)));
        assert!(
            smart_resize(1, 500, 14, 784, 3136)
                .unwrap_err()
                .contains("aspect ratio")
        );
        assert!(smart_resize(0, 5, 14, 784, 3136).is_err());
    }

    #[test]
    fn rope_index_matches_get_rope_index() {
        // 2 text tokens, one image of grid [1, 4, 6] (merge 2: 2x3 tokens), 2 text tokens
        let img = 9;
        let mut ids = vec![1, 2];
        ids.extend(std::iter::repeat_n(img, 6));
        ids.extend([3, 4]);
        let p = rope_index(&ids, img, &[[1, 4, 6]], 2).unwrap();
        assert_eq!(p.axes[0], vec![0, 1, 2, 2, 2, 2, 2, 2, 5, 6]);
        assert_eq!(p.axes[1], vec![0, 1, 2, 2, 2, 3, 3, 3, 5, 6]);
        assert_eq!(p.axes[2], vec![0, 1, 2, 3, 4, 2, 3, 4, 5, 6]);
        assert_eq!(p.next, 7);
        assert!(rope_index(&ids, img, &[], 2).is_err());
        assert!(rope_index(&ids, img, &[[1, 4, 6], [1, 2, 2]], 2).is_err());
    }

    #[test]
    fn patches_come_in_merge_blocks_with_the_frame_repeated() {
        let p = ImageProcessor::from_config(
            &serde_json::json!({"patch_size": 2, "merge_size": 2, "temporal_patch_size": 2,
                "min_pixels": 16, "max_pixels": 64, "do_normalize": false, "do_rescale": false}),
            std::path::Path::new("p.json"),
            None,
        )
        .unwrap();
        // 8x4 stays 8x4 (multiples of 4, area 32 within [16, 64])
        let img = Pixels::Rgb(image::RgbImage::from_fn(8, 4, |x, y| {
            image::Rgb([(y * 8 + x) as u8, 0, 0])
        }));
        let out = p.patches(&img).unwrap();
        assert_eq!(out.grid_thw, [1, 2, 4]);
        let row = 3 * 2 * 2 * 2;
        assert_eq!(out.pixel_values.len(), 8 * row);
        // patch 1 is block (0,0), sub-patch (0,1): columns 2..4 of rows 0..2, twice (T = 2)
        let red = &out.pixel_values[row..row + 8];
        assert_eq!(red, &[2.0, 3.0, 10.0, 11.0, 2.0, 3.0, 10.0, 11.0]);
        // patch 4 starts the second merge block: columns 4..6
        assert_eq!(out.pixel_values[4 * row], 4.0);
    }
}
