//! Idefics3 and SmolVLM (`model_type` `idefics3`, `smolvlm`): a SigLIP-style vision encoder
//! with pixel shuffle, and a Llama decoder.
//!
//! ```text
//! onnx/vision_encoder.onnx        pixel_values [1, tiles, 3, T, T] f32, pixel_attention_mask [1, tiles, T, T] bool
//!                                 -> image_features [tiles, image_seq_len, hidden]
//! onnx/embed_tokens.onnx          input_ids -> inputs_embeds
//! onnx/decoder_model_merged.onnx  inputs_embeds, attention_mask, position_ids, past_key_values.* -> logits, present.*
//! ```
//!
//! Preprocessing is `Idefics3ImageProcessor`'s (identical to `SmolVLMImageProcessor`'s): resize
//! so the longest edge is `size.longest_edge` (the other edge rounded up to even), resize up
//! to multiples of the tile `max_image_size.longest_edge`, cut row-major tiles and add the whole
//! image resized to one tile last, then rescale, normalise and pad. Resizing is Pillow's, so
//! tensors equal the PIL backend's exactly. Each image placeholder becomes, as in
//! `Idefics3Processor`/`SmolVLMProcessor`:
//!
//! ```text
//! <fake_token_around_image><row_1_col_1><image>×seq … <fake_token_around_image><row_1_col_C><image>×seq\n
//! …                                                                                   (one line per row)
//! \n<fake_token_around_image><global-img><image>×seq<fake_token_around_image>
//! ```
//!
//! or, for an image that needed no splitting, only the last line without its leading `\n`.
//! One vision call per sample sends only real tiles: the export does not drop the all-zero
//! padding images that transformers' model removes (docs/design.md §9).

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use ort::session::Session;
use ort::value::TensorRef;
use serde_json::Value;

use crate::infer::engine::{DecoderEngine, DecoderFamily, Engine, ModelOptions};
use crate::infer::error::{ModelError, SampleErrorKind};
use crate::infer::families::FamilyEntry;
use crate::infer::folder::ModelFolder;
use crate::infer::image_ops::{self, Filter, Normalize};
use crate::pixels::Pixels;

pub const ENTRY: FamilyEntry = FamilyEntry {
    name: "idefics3",
    model_types: &["idefics3", "smolvlm"],
    open,
};

fn open(folder: &ModelFolder, opts: &ModelOptions) -> Result<Box<dyn Engine>, ModelError> {
    Ok(Box::new(DecoderEngine::<Idefics3>::open(folder, opts)?))
}

/// transformers' `MAX_IMAGE_SIZE`: no resized edge goes past it.
const MAX_IMAGE_SIZE: u32 = 4096;

/// How the first resize is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// `{"longest_edge": n}`.
    LongestEdge(u32),
    /// `{"height": h, "width": w}`.
    Exact { width: u32, height: u32 },
}

/// `Idefics3ImageProcessor`'s settings, from `preprocessor_config.json` with its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessor {
    pub resize: Option<Size>,
    pub resample: Filter,
    pub split: bool,
    /// `max_image_size.longest_edge`: the tile side.
    pub tile: u32,
    pub normalize: Normalize,
    pub pad: bool,
}

/// One image cut into tiles: `rows × cols` crops (row-major) then the global image; no
/// crops (`rows == cols == 0`) when the image fits one tile. The tiles are windows of
/// `planes` (the resized image, then the global image), normalised from there without a copy
/// of each crop; a gray image stays gray (its three RGB channels would be equal).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTiles {
    pub rows: usize,
    pub cols: usize,
    pub planes: Vec<Pixels>,
    pub frames: Vec<Frame>,
}

/// A tile: the `width × height` window at `(x, y)` of plane `plane` of its [`ImageTiles`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub plane: usize,
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Frame {
    /// All of `px`, as plane `plane`.
    fn whole(plane: usize, px: &Pixels) -> Frame {
        let (width, height) = px.dimensions();
        Frame {
            plane,
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    /// The window `[x, x+w) × [y, y+h)` of `px`, clipped to it as numpy slicing does.
    fn crop(plane: usize, px: &Pixels, x: u32, y: u32, w: u32, h: u32) -> Frame {
        let (iw, ih) = px.dimensions();
        let (x1, y1) = ((x + w).min(iw), (y + h).min(ih));
        let (x0, y0) = (x.min(x1), y.min(y1));
        Frame {
            plane,
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        }
    }

    pub fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }
}

/// A sample's vision input: every tile of every image, in order, as the vision graph takes
/// them.
#[derive(Debug, Clone, PartialEq)]
pub struct Tiles {
    /// `(rows, cols)` per image.
    pub grids: Vec<(usize, usize)>,
    pub count: usize,
    pub height: usize,
    pub width: usize,
    /// `[count, 3, height, width]`.
    pub pixel_values: Vec<f32>,
    /// `[count, height, width]`: true on real pixels, false on padding.
    pub pixel_attention_mask: Vec<bool>,
}

fn size_dict(v: &Value, key: &str, path: &Path) -> Result<Option<Size>, ModelError> {
    let Some(d) = v.get(key) else {
        return Ok(None);
    };
    let num = |k: &str| d.get(k).and_then(Value::as_u64).map(|n| n as u32);
    if let Some(n) = num("longest_edge") {
        return Ok(Some(Size::LongestEdge(n)));
    }
    if let (Some(h), Some(w)) = (num("height"), num("width")) {
        return Ok(Some(Size::Exact {
            width: w,
            height: h,
        }));
    }
    Err(ModelError::Field {
        path: path.to_path_buf(),
        field: key.into(),
        problem: "needs longest_edge, or height and width".into(),
    })
}

fn triple(v: &Value, key: &str, default: f32, path: &Path) -> Result<[f32; 3], ModelError> {
    let bad = || ModelError::Field {
        path: path.to_path_buf(),
        field: key.into(),
        problem: "must be a number or a list of 3 numbers".into(),
    };
    match v.get(key) {
        None | Some(Value::Null) => Ok([default; 3]),
        Some(Value::Number(n)) => Ok([n.as_f64().ok_or_else(bad)? as f32; 3]),
        Some(Value::Array(a)) if a.len() == 3 => {
            let mut out = [0f32; 3];
            for (o, x) in out.iter_mut().zip(a) {
                *o = x.as_f64().ok_or_else(bad)? as f32;
            }
            Ok(out)
        }
        _ => Err(bad()),
    }
}

impl ImageProcessor {
    /// Reads the settings; absent keys take `Idefics3ImageProcessor`'s defaults. `max_pixels`
    /// lowers `size.longest_edge` to the largest multiple of the tile whose square fits it (at
    /// least one tile), which bounds the tiles per image.
    pub fn from_config(
        v: &Value,
        path: &Path,
        max_pixels: Option<u64>,
    ) -> Result<Self, ModelError> {
        let flag = |k: &str, default: bool| v.get(k).and_then(Value::as_bool).unwrap_or(default);
        let tile = match size_dict(v, "max_image_size", path)? {
            None => 364,
            Some(Size::LongestEdge(n)) => n,
            Some(Size::Exact { .. }) => {
                return Err(ModelError::Field {
                    path: path.to_path_buf(),
                    field: "max_image_size".into(),
                    problem: "needs longest_edge".into(),
                });
            }
        };
        if tile == 0 {
            return Err(ModelError::Field {
                path: path.to_path_buf(),
                field: "max_image_size.longest_edge".into(),
                problem: "must be positive".into(),
            });
        }
        let mut resize = if flag("do_resize", true) {
            Some(size_dict(v, "size", path)?.unwrap_or(Size::LongestEdge(4 * 364)))
        } else {
            None
        };
        if let (Some(Size::LongestEdge(n)), Some(mp)) = (resize, max_pixels) {
            let side = (mp as f64).sqrt() as u32;
            let budget = (side / tile * tile).max(tile);
            resize = Some(Size::LongestEdge(n.min(budget)));
        }
        let code = v.get("resample").and_then(Value::as_i64).unwrap_or(1);
        let resample = Filter::from_pil(code).ok_or_else(|| ModelError::Field {
            path: path.to_path_buf(),
            field: "resample".into(),
            problem: format!("{code} is not a Pillow resampling filter (0-5)"),
        })?;
        let rescale = flag("do_rescale", true).then(|| {
            v.get("rescale_factor")
                .and_then(Value::as_f64)
                .unwrap_or(1.0 / 255.0)
        });
        let mean_std = if flag("do_normalize", true) {
            Some((
                triple(v, "image_mean", 0.5, path)?,
                triple(v, "image_std", 0.5, path)?,
            ))
        } else {
            None
        };
        Ok(ImageProcessor {
            resize,
            resample,
            split: flag("do_image_splitting", true),
            tile,
            normalize: Normalize { rescale, mean_std },
            pad: flag("do_pad", true),
        })
    }

    /// Resizes and cuts one image.
    pub fn image_tiles(&self, px: &Pixels) -> ImageTiles {
        // A gray image stays gray through the resizes and crops, and each tile is converted
        // to RGB last: Pillow resamples each channel alone with the same coefficients, so
        // this gives the bytes of converting first, at a third of the resampling work.
        let r = |img: &Pixels, w: u32, h: u32| image_ops::resize_kept(img, w, h, self.resample);
        let mut img = Cow::Borrowed(px);
        if let Some(size) = self.resize {
            let (w, h) = match size {
                Size::LongestEdge(n) => resize_output_size(px.width(), px.height(), n),
                Size::Exact { width, height } => (width, height),
            };
            if (w, h) != px.dimensions() {
                img = Cow::Owned(r(px, w, h));
            }
        }
        if !self.split {
            let global = r(&img, self.tile, self.tile);
            return ImageTiles {
                rows: 0,
                cols: 0,
                frames: vec![Frame::whole(0, &global)],
                planes: vec![global],
            };
        }
        let (w, h) = vision_encoder_size(img.width(), img.height(), self.tile);
        if (w, h) != img.dimensions() {
            img = Cow::Owned(r(&img, w, h));
        }
        let t = self.tile;
        if h > t || w > t {
            let rows = ((h - t) / t + 1) as usize;
            let cols = ((w - t) / t + 1) as usize;
            let mut frames = Vec::with_capacity(rows * cols + 1);
            for row in 0..rows {
                for col in 0..cols {
                    frames.push(Frame::crop(0, &img, col as u32 * t, row as u32 * t, t, t));
                }
            }
            let global = r(&img, t, t);
            frames.push(Frame::whole(1, &global));
            ImageTiles {
                rows,
                cols,
                frames,
                planes: vec![img.into_owned(), global],
            }
        } else {
            ImageTiles {
                rows: 0,
                cols: 0,
                frames: vec![Frame::whole(0, &img)],
                planes: vec![img.into_owned()],
            }
        }
    }

    /// A sample's images as the vision graph's inputs: tiles in order, normalised, padded
    /// to the largest tile.
    pub fn tiles(&self, images: &[&Pixels]) -> Tiles {
        let per_image: Vec<ImageTiles> = images.iter().map(|p| self.image_tiles(p)).collect();
        let frames: Vec<(&Pixels, Frame)> = per_image
            .iter()
            .flat_map(|t| t.frames.iter().map(move |f| (&t.planes[f.plane], *f)))
            .collect();
        let (mut height, mut width) = (0usize, 0usize);
        for (_, f) in &frames {
            height = height.max(f.height as usize);
            width = width.max(f.width as usize);
        }
        let count = frames.len();
        let plane = height * width;
        // Normalised straight from the 8-bit planes into the padded tensor (zeros where a tile
        // is smaller): no float copy of each tile in between (SmolVLM's 17 tiles are 53 MB of
        // f32 per image), and no 8-bit copy of each crop either. One SIMD dispatch per tile.
        // Many large tiles are written on the caller's rayon threads, at the caller's SIMD
        // level.
        let mut pixel_values = vec![0f32; count * 3 * plane];
        let level = crate::simd::current();
        let fill = |(px, f): &(&Pixels, Frame), out: &mut [f32]| {
            crate::simd::run(
                #[inline(always)]
                || {
                    let (fw, fh) = (f.width as usize, f.height as usize);
                    let (pw, raw, gray) = (px.width() as usize, px.as_raw(), px.is_gray());
                    let (x0, y0) = (f.x as usize, f.y as usize);
                    for c in 0..3 {
                        for y in 0..fh.min(height) {
                            let at = c * plane + y * width;
                            let first = (y0 + y) * pw + x0;
                            let dst = &mut out[at..at + fw];
                            self.normalize.write_run_inline(raw, gray, first, c, dst);
                        }
                    }
                },
            )
        };
        if image_ops::split_across_threads(count * plane) {
            use rayon::prelude::*;
            pixel_values
                .par_chunks_mut((3 * plane).max(1))
                .zip(frames.par_iter())
                .for_each(|(out, f)| crate::simd::with_level(level, || fill(f, out)));
        } else {
            for (out, f) in pixel_values.chunks_mut((3 * plane).max(1)).zip(&frames) {
                fill(f, out);
            }
        }
        // True over each tile, false over its padding: row spans filled at once (a push per
        // pixel was 4.5 million pushes for SmolVLM's 17 tiles).
        let mut pixel_attention_mask = vec![false; count * plane];
        for (mask, (_, f)) in pixel_attention_mask.chunks_mut(plane.max(1)).zip(&frames) {
            let (fw, fh) = (f.width as usize, f.height as usize);
            for row in mask.chunks_mut(width.max(1)).take(fh.min(height)) {
                row[..fw.min(width)].fill(true);
            }
        }
        Tiles {
            grids: per_image.iter().map(|t| (t.rows, t.cols)).collect(),
            count,
            height,
            width,
            pixel_values,
            pixel_attention_mask,
        }
    }
}

/// `get_resize_output_image_size`: the longest edge becomes `longest`, the other keeps the
/// aspect ratio and is rounded up to even; then both are capped at 4096. `(width, height)`.
pub fn resize_output_size(width: u32, height: u32, longest: u32) -> (u32, u32) {
    let (mut w, mut h) = (width as f64, height as f64);
    let aspect = w / h;
    if w >= h {
        w = longest as f64;
        h = (w / aspect).trunc();
        if !(h as u64).is_multiple_of(2) {
            h += 1.0;
        }
    } else {
        h = longest as f64;
        w = (h * aspect).trunc();
        if !(w as u64).is_multiple_of(2) {
            w += 1.0;
        }
    }
    let (w, h) = ((w as u32).max(1), (h as u32).max(1));
    // `_resize_output_size_scale_below_upper_bound`.
    let aspect = w as f64 / h as f64;
    let (w, h) = if w >= h && w > MAX_IMAGE_SIZE {
        (MAX_IMAGE_SIZE, (MAX_IMAGE_SIZE as f64 / aspect) as u32)
    } else if h > w && h > MAX_IMAGE_SIZE {
        ((MAX_IMAGE_SIZE as f64 * aspect) as u32, MAX_IMAGE_SIZE)
    } else {
        (w, h)
    };
    (w.max(1), h.max(1))
}

/// `resize_for_vision_encoder`: both edges rounded up to multiples of the tile, the shorter
/// one through the aspect ratio as transformers computes it. `(width, height)`.
pub fn vision_encoder_size(width: u32, height: u32, tile: u32) -> (u32, u32) {
    let t = tile as f64;
    let aspect = width as f64 / height as f64;
    if width >= height {
        let w = (width as f64 / t).ceil() * t;
        let h = (w / aspect).trunc();
        let h = (h / t).ceil() * t;
        (w as u32, h as u32)
    } else {
        let h = (height as f64 / t).ceil() * t;
        let w = (h * aspect).trunc();
        let w = (w / t).ceil() * t;
        (w as u32, h as u32)
    }
}

/// The family.
#[derive(Debug)]
pub struct Idefics3 {
    pub processor: ImageProcessor,
    pub image_seq_len: usize,
    image_token: String,
    fake_token: String,
    global_token: String,
    image_token_id: u32,
}

impl Idefics3 {
    /// What one image's placeholder expands to.
    pub fn image_prompt(&self, rows: usize, cols: usize) -> String {
        let seq = self.image_token.repeat(self.image_seq_len);
        let global = format!(
            "{fake}{global}{seq}{fake}",
            fake = self.fake_token,
            global = self.global_token
        );
        if rows == 0 && cols == 0 {
            return global;
        }
        let mut s = String::new();
        for r in 0..rows {
            for c in 0..cols {
                s.push_str(&self.fake_token);
                s.push_str(&format!("<row_{}_col_{}>", r + 1, c + 1));
                s.push_str(&seq);
            }
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&global);
        s
    }
}

fn token_setting(tc: &Value, key: &str, default: &str) -> String {
    match tc.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string(),
        _ => default.to_string(),
    }
}

impl DecoderFamily for Idefics3 {
    type Vision = Tiles;
    const NAME: &'static str = "idefics3";

    fn open(
        folder: &ModelFolder,
        tokenizer: &tokenizers::Tokenizer,
        opts: &ModelOptions,
    ) -> Result<Self, ModelError> {
        let (pp, pp_path) = folder.preprocessor_config()?;
        let processor = ImageProcessor::from_config(&pp, &pp_path, opts.max_pixels)?;
        let config_path = folder.path("config.json");
        let cfg = &folder.config;
        let vision = cfg.get("vision_config");
        let num = |v: Option<&Value>, k: &str| v.and_then(|v| v.get(k)).and_then(Value::as_u64);
        let computed = match (num(vision, "image_size"), num(vision, "patch_size")) {
            (Some(size), Some(patch)) if patch > 0 => {
                let scale = num(Some(cfg), "scale_factor").unwrap_or(2).max(1);
                if size as u32 != processor.tile {
                    return Err(ModelError::Field {
                        path: pp_path.clone(),
                        field: "max_image_size.longest_edge".into(),
                        problem: format!(
                            "is {}, but the vision encoder takes {size}x{size} tiles \
                             (vision_config.image_size in config.json)",
                            processor.tile
                        ),
                    });
                }
                Some(((size / patch) * (size / patch) / (scale * scale)) as usize)
            }
            _ => None,
        };
        let pc_path = folder.path("processor_config.json");
        let declared = folder
            .json_opt("processor_config.json")?
            .and_then(|v| v.get("image_seq_len").and_then(Value::as_u64))
            .map(|n| n as usize);
        let image_seq_len = match (declared, computed) {
            (Some(d), Some(c)) if d != c => {
                return Err(ModelError::Field {
                    path: pc_path,
                    field: "image_seq_len".into(),
                    problem: format!(
                        "is {d}, but config.json's vision_config and scale_factor give {c}"
                    ),
                });
            }
            (Some(d), _) => d,
            (None, Some(c)) => c,
            (None, None) => {
                return Err(ModelError::Field {
                    path: config_path,
                    field: "vision_config.image_size / patch_size".into(),
                    problem: "are missing, and processor_config.json has no image_seq_len".into(),
                });
            }
        };

        let tc = folder.tokenizer_config()?;
        let image_token = token_setting(&tc, "image_token", "<image>");
        let fake_token = token_setting(&tc, "fake_image_token", "<fake_token_around_image>");
        let global_token = token_setting(&tc, "global_image_token", "<global-img>");
        let id_of = |t: &str| super::token_id(folder, tokenizer, t, Self::NAME);
        let image_token_id = id_of(&image_token)?;
        id_of(&fake_token)?;
        id_of(&global_token)?;
        super::check_declared_id(
            folder,
            "image_token_id",
            cfg.get("image_token_id").and_then(Value::as_u64),
            &image_token,
            image_token_id,
        )?;
        Ok(Idefics3 {
            processor,
            image_seq_len,
            image_token,
            fake_token,
            global_token,
            image_token_id,
        })
    }

    fn vision_inputs(&self) -> &'static [&'static str] {
        &["pixel_values", "pixel_attention_mask"]
    }

    fn image_placeholder(&self) -> &str {
        &self.image_token
    }

    fn image_token_id(&self) -> u32 {
        self.image_token_id
    }

    fn preprocess(&self, images: &[Arc<Pixels>]) -> Result<Tiles, SampleErrorKind> {
        for (index, p) in images.iter().enumerate() {
            if p.width() == 0 || p.height() == 0 {
                return Err(SampleErrorKind::Image {
                    index,
                    reason: "the image is empty".into(),
                });
            }
        }
        let refs: Vec<&Pixels> = images.iter().map(|p| p.as_ref()).collect();
        Ok(self.processor.tiles(&refs))
    }

    fn expand_prompt(&self, rendered: &str, vision: &Tiles) -> Result<String, SampleErrorKind> {
        let parts: Vec<&str> = rendered.split(self.image_token.as_str()).collect();
        if parts.len() != vision.grids.len() + 1 {
            return Err(SampleErrorKind::Placeholders {
                found: parts.len() - 1,
                images: vision.grids.len(),
                placeholder: self.image_token.clone(),
            });
        }
        let mut out = String::with_capacity(rendered.len());
        for (i, part) in parts.iter().enumerate() {
            out.push_str(part);
            if let Some(&(rows, cols)) = vision.grids.get(i) {
                out.push_str(&self.image_prompt(rows, cols));
            }
        }
        Ok(out)
    }

    fn encode(&self, session: &mut Session, v: &Tiles) -> Result<Vec<f32>, SampleErrorKind> {
        let run = |source| SampleErrorKind::Run {
            graph: "vision_encoder".into(),
            source,
        };
        let (n, h, w) = (v.count as i64, v.height as i64, v.width as i64);
        // Views of the tiles, not copies: the tensors can be tens of MB per sample.
        let pv =
            TensorRef::from_array_view((vec![1, n, 3, h, w], &v.pixel_values[..])).map_err(run)?;
        let pm = TensorRef::from_array_view((vec![1, n, h, w], &v.pixel_attention_mask[..]))
            .map_err(run)?;
        let out = session
            .run(ort::inputs! {"pixel_values" => pv, "pixel_attention_mask" => pm})
            .map_err(run)?;
        let (_, data) = out[0].try_extract_tensor::<f32>().map_err(run)?;
        Ok(data.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_transformers() {
        // 80x48 -> longest 96: 96 x int(96/1.666..)=57 -> even 58.
        assert_eq!(resize_output_size(80, 48, 96), (96, 58));
        assert_eq!(resize_output_size(40, 72, 96), (54, 96));
        assert_eq!(resize_output_size(10000, 10, 8192), (4096, 4));
        assert_eq!(vision_encoder_size(96, 58, 32), (96, 64));
        assert_eq!(vision_encoder_size(54, 96, 32), (64, 96));
        assert_eq!(vision_encoder_size(20, 20, 32), (32, 32));
    }

    #[test]
    fn max_pixels_caps_the_longest_edge_at_a_tile_multiple() {
        let v = serde_json::json!({"size": {"longest_edge": 2048}, "max_image_size": {"longest_edge": 512}});
        let p = ImageProcessor::from_config(&v, Path::new("p.json"), Some(1100 * 1100)).unwrap();
        assert_eq!(p.resize, Some(Size::LongestEdge(1024)));
        let p = ImageProcessor::from_config(&v, Path::new("p.json"), Some(10)).unwrap();
        assert_eq!(p.resize, Some(Size::LongestEdge(512)));
        let p = ImageProcessor::from_config(&v, Path::new("p.json"), None).unwrap();
        assert_eq!(p.resize, Some(Size::LongestEdge(2048)));
    }

    #[test]
    fn bad_processor_settings_name_the_field() {
        let v = serde_json::json!({"resample": 9});
        let e = ImageProcessor::from_config(&v, Path::new("pp.json"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pp.json") && e.contains("resample"), "{e}");
        let v = serde_json::json!({"image_mean": [0.5, 0.5]});
        let e = ImageProcessor::from_config(&v, Path::new("pp.json"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("image_mean"), "{e}");
    }

    #[test]
    fn tiles_are_row_major_with_the_global_image_last() {
        let p = ImageProcessor::from_config(
            &serde_json::json!({"size": {"longest_edge": 96}, "max_image_size": {"longest_edge": 32}}),
            Path::new("p.json"),
            None,
        )
        .unwrap();
        let img = Pixels::Rgb(image::RgbImage::from_fn(80, 48, |x, y| {
            image::Rgb([x as u8, y as u8, 0])
        }));
        let t = p.image_tiles(&img);
        assert_eq!((t.rows, t.cols, t.frames.len()), (2, 3, 7));
        assert!(t.frames.iter().all(|f| f.dimensions() == (32, 32)));
        let small = Pixels::Gray(image::GrayImage::new(8, 8));
        let all = p.tiles(&[&img, &small]);
        assert_eq!(all.grids, vec![(2, 3), (3, 3)]);
        assert_eq!(all.count, 7 + 10);
        assert_eq!(all.pixel_values.len(), 17 * 3 * 32 * 32);
        assert!(all.pixel_attention_mask.iter().all(|&m| m));
    }
}
