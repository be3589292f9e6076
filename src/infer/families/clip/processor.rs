//! CLIPImageProcessor: resize, crop, rescale and normalise exactly as `transformers` does.

use super::*;

pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// How an image is resized first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// `{"shortest_edge": n}`: the short side becomes `n`, the long side keeps the ratio.
    ShortestEdge(u32),
    /// `{"height": h, "width": w}`.
    Exact { width: u32, height: u32 },
}

/// `CLIPImageProcessor` (also LLaVA's) and `SiglipImageProcessor`: resize, optional centre
/// crop, rescale, normalise.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipImageProcessor {
    pub resize: Option<Resize>,
    pub resample: Filter,
    /// `(width, height)` of the centre crop.
    pub crop: Option<(u32, u32)>,
    pub normalize: Normalize,
}

/// `[a, b, c]` or one number for all three channels.
pub fn triple(
    v: &Value,
    key: &str,
    default: [f32; 3],
    path: &Path,
) -> Result<[f32; 3], ModelError> {
    let bad = || ModelError::Field {
        path: path.to_path_buf(),
        field: key.into(),
        problem: "must be a number or a list of 3 numbers".into(),
    };
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
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

/// A `size`-like field: an integer (one side) or `{"height", "width"}` / `{"shortest_edge"}`.
pub(super) fn size_field(
    v: &Value,
    key: &str,
    path: &Path,
    int_means_shortest: bool,
) -> Result<Option<Resize>, ModelError> {
    let bad = |problem: &str| ModelError::Field {
        path: path.to_path_buf(),
        field: key.into(),
        problem: problem.into(),
    };
    let Some(s) = v.get(key) else {
        return Ok(None);
    };
    if let Some(n) = s.as_u64() {
        let n = n as u32;
        return Ok(Some(if int_means_shortest {
            Resize::ShortestEdge(n)
        } else {
            Resize::Exact {
                width: n,
                height: n,
            }
        }));
    }
    let num = |k: &str| s.get(k).and_then(Value::as_u64).map(|n| n as u32);
    if let Some(n) = num("shortest_edge") {
        if num("longest_edge").is_some() {
            return Err(bad(
                "with both shortest_edge and longest_edge is not supported for this family",
            ));
        }
        return Ok(Some(Resize::ShortestEdge(n)));
    }
    match (num("height"), num("width")) {
        (Some(height), Some(width)) if height > 0 && width > 0 => {
            Ok(Some(Resize::Exact { width, height }))
        }
        _ => Err(bad("needs shortest_edge, or positive height and width")),
    }
}

impl ClipImageProcessor {
    /// Reads `preprocessor_config.json`. `siglip` selects `SiglipImageProcessor`'s defaults
    /// (fixed 224×224 resize, no crop, mean and std 0.5) over `CLIPImageProcessor`'s
    /// (shortest edge 224, 224×224 crop, CLIP mean and std).
    pub fn from_config(v: &Value, path: &Path, siglip: bool) -> Result<Self, ModelError> {
        let flag = |k: &str, default: bool| v.get(k).and_then(Value::as_bool).unwrap_or(default);
        let resize = if flag("do_resize", true) {
            let default = if siglip {
                Resize::Exact {
                    width: 224,
                    height: 224,
                }
            } else {
                Resize::ShortestEdge(224)
            };
            Some(size_field(v, "size", path, !siglip)?.unwrap_or(default))
        } else {
            None
        };
        if let Some(Resize::ShortestEdge(0)) = resize {
            return Err(ModelError::Field {
                path: path.to_path_buf(),
                field: "size.shortest_edge".into(),
                problem: "must be positive".into(),
            });
        }
        let crop = if flag("do_center_crop", !siglip) {
            match size_field(v, "crop_size", path, false)? {
                Some(Resize::Exact { width, height }) => Some((width, height)),
                None => Some((224, 224)),
                Some(Resize::ShortestEdge(_)) => {
                    return Err(ModelError::Field {
                        path: path.to_path_buf(),
                        field: "crop_size".into(),
                        problem: "needs height and width".into(),
                    });
                }
            }
        } else {
            None
        };
        let code = v.get("resample").and_then(Value::as_i64).unwrap_or(3);
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
        let (mean, std) = if siglip {
            ([0.5; 3], [0.5; 3])
        } else {
            (CLIP_MEAN, CLIP_STD)
        };
        let mean_std = if flag("do_normalize", true) {
            Some((
                triple(v, "image_mean", mean, path)?,
                triple(v, "image_std", std, path)?,
            ))
        } else {
            None
        };
        Ok(ClipImageProcessor {
            resize,
            resample,
            crop,
            normalize: Normalize { rescale, mean_std },
        })
    }

    /// The image after resize and crop, before normalisation.
    pub fn transform(&self, px: &Pixels) -> RgbImage {
        // A gray image is resized on its one channel, then converted (the same bytes). RGB
        // calls `resize` itself: through `resize_pixels` this function ran at half the speed
        // (llava-1.5 at 512², 494 against 869 img/s, measured on 2026-12-06; a code-layout
        // effect that Qwen2-VL's and Idefics3's callers do not show).
        let mut img = match self.resize {
            Some(r) => {
                let (w, h) = match r {
                    Resize::ShortestEdge(n) => shortest_edge_size(px.width(), px.height(), n),
                    Resize::Exact { width, height } => (width, height),
                };
                match px {
                    Pixels::Rgb(rgb) => Cow::Owned(image_ops::resize(rgb, w, h, self.resample)),
                    gray => Cow::Owned(image_ops::resize_pixels(gray, w, h, self.resample)),
                }
            }
            None => px.rgb(),
        };
        if let Some((w, h)) = self.crop {
            img = Cow::Owned(center_crop(&img, w, h));
        }
        img.into_owned()
    }

    /// `[3, H, W]` float32, appended to `out`; returns `(width, height)`.
    pub fn pixel_values(&self, px: &Pixels, out: &mut Vec<f32>) -> (u32, u32) {
        let img = self.transform(px);
        image_ops::to_chw(&img, &self.normalize, out);
        img.dimensions()
    }
}

/// `get_resize_output_image_size(default_to_square=False)`: the short side becomes `short`,
/// the long side `int(short * long / short_side)`. `(width, height)`.
pub fn shortest_edge_size(width: u32, height: u32, short: u32) -> (u32, u32) {
    let (s, l) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = ((short as f64 * l as f64) / s.max(1) as f64) as u32;
    if width <= height {
        (short, new_long.max(1))
    } else {
        (new_long.max(1), short)
    }
}

/// transformers' `center_crop`: offsets `(size - crop) // 2`; an image smaller than the crop
/// is first padded with zeros, centred (`ceil` of half the difference on the top/left).
pub fn center_crop(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (ow, oh) = (img.width() as i64, img.height() as i64);
    let (cw, ch) = (width as i64, height as i64);
    let top = (oh - ch).div_euclid(2);
    let left = (ow - cw).div_euclid(2);
    if top >= 0 && left >= 0 && top + ch <= oh && left + cw <= ow {
        return image_ops::crop(img, left as u32, top as u32, width, height);
    }
    let (nw, nh) = (cw.max(ow), ch.max(oh));
    let top_pad = (nh - oh + 1) / 2;
    let left_pad = (nw - ow + 1) / 2;
    let mut canvas = RgbImage::new(nw as u32, nh as u32);
    image::imageops::replace(&mut canvas, img, left_pad, top_pad);
    let (t, l) = (top + top_pad, left + left_pad);
    let (y0, x0) = (t.max(0), l.max(0));
    let (y1, x1) = ((t + ch).min(nh), (l + cw).min(nw));
    image_ops::crop(
        &canvas,
        x0 as u32,
        y0 as u32,
        (x1 - x0) as u32,
        (y1 - y0) as u32,
    )
}
