//! Boxes and the coordinate frames they come in (docs/design.md §4).
//!
//! Inside medvqa every box is a [`BBox`]: `[x1, y1, x2, y2]` normalised to [0, 1] over the
//! image as shown to the model. Numbers from outside (a dataset file, a model's response)
//! are converted from a frame that somebody *declared*: [`BoxFrame`]. Nothing here ever
//! guesses a frame from the size of the numbers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An axis-aligned box, normalised to [0, 1], with `x1 <= x2` and `y1 <= y2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

impl BBox {
    /// A box from corners in the normalised frame, clamped to [0, 1]. Corners given in the
    /// wrong order are an error, not silently swapped.
    pub fn new(x1: f64, y1: f64, x2: f64, y2: f64) -> Result<BBox, BoxError> {
        let v = [x1, y1, x2, y2];
        if v.iter().any(|c| !c.is_finite()) {
            return Err(BoxError::NotFinite(v));
        }
        if x2 < x1 || y2 < y1 {
            return Err(BoxError::Inverted(v));
        }
        Ok(BBox {
            x1: x1.clamp(0.0, 1.0),
            y1: y1.clamp(0.0, 1.0),
            x2: x2.clamp(0.0, 1.0),
            y2: y2.clamp(0.0, 1.0),
        })
    }

    pub fn to_array(self) -> [f64; 4] {
        [self.x1, self.y1, self.x2, self.y2]
    }

    pub fn width(&self) -> f64 {
        (self.x2 - self.x1).max(0.0)
    }

    pub fn height(&self) -> f64 {
        (self.y2 - self.y1).max(0.0)
    }

    pub fn area(&self) -> f64 {
        self.width() * self.height()
    }

    /// Intersection over union; 0 when both boxes are empty.
    pub fn iou(&self, other: &BBox) -> f64 {
        let ix = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let iy = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = ix * iy;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// Whether the normalised point lies inside (edges included).
    pub fn contains(&self, x: f64, y: f64) -> bool {
        x >= self.x1 && x <= self.x2 && y >= self.y1 && y <= self.y2
    }

    /// The box in pixels of a `width`×`height` image, as `[x1, y1, x2, y2]` floats.
    pub fn to_pixels(&self, width: u32, height: u32) -> [f64; 4] {
        let (w, h) = (width as f64, height as f64);
        [self.x1 * w, self.y1 * h, self.x2 * w, self.y2 * h]
    }

    /// The box rounded to 6 decimals, so that manifests and reports print stable numbers.
    pub fn rounded(self) -> BBox {
        let r = |v: f64| (v * 1e6).round() / 1e6;
        BBox {
            x1: r(self.x1),
            y1: r(self.y1),
            x2: r(self.x2),
            y2: r(self.y2),
        }
    }
}

impl Serialize for BBox {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_array().serialize(s)
    }
}

impl<'de> Deserialize<'de> for BBox {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let [x1, y1, x2, y2] = <[f64; 4]>::deserialize(d)?;
        BBox::new(x1, y1, x2, y2).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BoxError {
    #[error("box {0:?} has a coordinate that is not a finite number")]
    NotFinite([f64; 4]),
    #[error("box {0:?} has x2 < x1 or y2 < y1")]
    Inverted([f64; 4]),
    #[error("box frame {frame} needs the image size, which is not known here")]
    NeedsImageSize { frame: BoxFrame },
    #[error(
        "box frame {0:?} is not one of: normalized, pixels, pixels:WxH, grid:N, yx-grid:N (or gemini), qwen2.5-vl:min_pixels=M,max_pixels=N,factor=F"
    )]
    UnknownFrame(String),
    #[error("box frame {frame}: {reason}")]
    Resize { frame: BoxFrame, reason: String },
    #[error(
        "box {raw:?} lies outside the declared {frame} frame (by more than 5% of the image): the boxes look written in another frame; declare theirs (box_frame in a manifest's header, --dataset-box-frame)"
    )]
    OutsideFrame { raw: [f64; 4], frame: BoxFrame },
}

/// How far (a fraction of the image) a ground-truth box may reach beyond its frame and be
/// clamped, for annotations drawn a few pixels past the edge; further is refused
/// ([`BoxFrame::normalize_truth`]).
pub const TRUTH_SLACK: f64 = 0.05;

/// A declared coordinate frame for raw `[x1, y1, x2, y2]` numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxFrame {
    /// Already in [0, 1].
    Normalized,
    /// Pixels of the image as given (its own width and height).
    Pixels,
    /// Pixels of a fixed `W`×`H` frame, whatever the image's size (GEMeX: 224×224).
    PixelsOf { width: u32, height: u32 },
    /// A `0..N` grid on both axes (Qwen2-VL: 1000).
    Grid(u32),
    /// `[y1, x1, y2, x2]`, y first, on a `0..N` grid (Gemini: `yx-grid:1000`, also
    /// written `gemini`).
    GridYx(u32),
    /// Absolute pixels of the image after Qwen2.5-VL's `smart_resize`, which a served
    /// Qwen2.5-VL answers in: `qwen2.5-vl:min_pixels=M,max_pixels=N,factor=F`. The size depends
    /// on each image's own size and on the processor's settings (`factor` is `patch_size ×
    /// merge_size`, 28 for Qwen2.5-VL), so the config states them rather than medvqa guessing.
    SmartResize {
        min_pixels: u64,
        max_pixels: u64,
        factor: u32,
    },
}

impl BoxFrame {
    /// Converts raw corners in this frame to the canonical normalised box. `image_size` is
    /// the image's `(width, height)`, needed only by [`BoxFrame::Pixels`]. Values outside
    /// the frame are clamped.
    pub fn normalize(
        self,
        raw: [f64; 4],
        image_size: Option<(u32, u32)>,
    ) -> Result<BBox, BoxError> {
        let [x1, y1, x2, y2] = self.scaled(raw, image_size)?;
        BBox::new(x1, y1, x2, y2)
    }

    /// Raw corners divided by the frame's size, in `[x1, y1, x2, y2]` order, unclamped.
    fn scaled(self, raw: [f64; 4], image_size: Option<(u32, u32)>) -> Result<[f64; 4], BoxError> {
        let (sx, sy) = self.scale(image_size)?;
        let [x1, y1, x2, y2] = self.xy_order(raw);
        Ok([x1 / sx, y1 / sy, x2 / sx, y2 / sy])
    }

    /// As [`normalize`](Self::normalize), for ground truth: a box reaching more than
    /// [`TRUTH_SLACK`] of the image beyond the declared frame is refused, not clamped. Such
    /// a box was written in another frame (pixel boxes in a manifest whose header declares
    /// no frame, so read as normalised), and clamping it would score every prediction
    /// against a sliver at the image's edge: a wrong number, silently.
    pub fn normalize_truth(
        self,
        raw: [f64; 4],
        image_size: Option<(u32, u32)>,
    ) -> Result<BBox, BoxError> {
        let v = self.scaled(raw, image_size)?;
        let inside = -TRUTH_SLACK..=1.0 + TRUTH_SLACK;
        if v.iter().any(|c| c.is_finite() && !inside.contains(c)) {
            return Err(BoxError::OutsideFrame { raw, frame: self });
        }
        BBox::new(v[0], v[1], v[2], v[3])
    }

    /// Whether converting needs the image's own size ([`BoxFrame::Pixels`],
    /// [`BoxFrame::SmartResize`]).
    pub fn needs_image_size(self) -> bool {
        matches!(self, BoxFrame::Pixels | BoxFrame::SmartResize { .. })
    }

    /// How a box is written in this frame, for prompts: `[x1, y1, x2, y2]`, or
    /// `[y1, x1, y2, x2]` for the y-first frame.
    pub fn layout(self) -> &'static str {
        match self {
            BoxFrame::GridYx(_) => "[y1, x1, y2, x2]",
            _ => "[x1, y1, x2, y2]",
        }
    }

    /// Raw numbers in `[x1, y1, x2, y2]` order (the y-first frame swaps; its own inverse).
    fn xy_order(self, raw: [f64; 4]) -> [f64; 4] {
        match self {
            BoxFrame::GridYx(_) => [raw[1], raw[0], raw[3], raw[2]],
            _ => raw,
        }
    }

    /// The inverse of [`BoxFrame::normalize`]: a normalised box in this frame's numbers.
    pub fn denormalize(
        self,
        b: BBox,
        image_size: Option<(u32, u32)>,
    ) -> Result<[f64; 4], BoxError> {
        let (sx, sy) = self.scale(image_size)?;
        Ok(self.xy_order([b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy]))
    }

    fn scale(self, image_size: Option<(u32, u32)>) -> Result<(f64, f64), BoxError> {
        match self {
            BoxFrame::Normalized => Ok((1.0, 1.0)),
            BoxFrame::Pixels => image_size
                .map(|(w, h)| (w.max(1) as f64, h.max(1) as f64))
                .ok_or(BoxError::NeedsImageSize { frame: self }),
            BoxFrame::PixelsOf { width, height } => Ok((width.max(1) as f64, height.max(1) as f64)),
            BoxFrame::Grid(n) | BoxFrame::GridYx(n) => Ok((n.max(1) as f64, n.max(1) as f64)),
            BoxFrame::SmartResize {
                min_pixels,
                max_pixels,
                factor,
            } => {
                let (w, h) = image_size.ok_or(BoxError::NeedsImageSize { frame: self })?;
                let (rh, rw) =
                    smart_resize(h, w, factor, min_pixels, max_pixels).map_err(|reason| {
                        BoxError::Resize {
                            frame: self,
                            reason,
                        }
                    })?;
                Ok((rw.max(1) as f64, rh.max(1) as f64))
            }
        }
    }
}

impl fmt::Display for BoxFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoxFrame::Normalized => f.write_str("normalized"),
            BoxFrame::Pixels => f.write_str("pixels"),
            BoxFrame::PixelsOf { width, height } => write!(f, "pixels:{width}x{height}"),
            BoxFrame::Grid(n) => write!(f, "grid:{n}"),
            BoxFrame::GridYx(n) => write!(f, "yx-grid:{n}"),
            BoxFrame::SmartResize {
                min_pixels,
                max_pixels,
                factor,
            } => write!(
                f,
                "qwen2.5-vl:min_pixels={min_pixels},max_pixels={max_pixels},factor={factor}"
            ),
        }
    }
}

impl FromStr for BoxFrame {
    type Err = BoxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BoxError::UnknownFrame(s.to_string());
        match s {
            "normalized" => return Ok(BoxFrame::Normalized),
            "pixels" => return Ok(BoxFrame::Pixels),
            "gemini" => return Ok(BoxFrame::GridYx(1000)),
            _ => {}
        }
        if let Some(wh) = s.strip_prefix("pixels:") {
            let (w, h) = wh.split_once('x').ok_or_else(bad)?;
            let width: u32 = w.parse().map_err(|_| bad())?;
            let height: u32 = h.parse().map_err(|_| bad())?;
            if width == 0 || height == 0 {
                return Err(bad());
            }
            return Ok(BoxFrame::PixelsOf { width, height });
        }
        for (prefix, make) in [
            ("grid:", BoxFrame::Grid as fn(u32) -> BoxFrame),
            ("yx-grid:", BoxFrame::GridYx),
        ] {
            if let Some(n) = s.strip_prefix(prefix) {
                let n: u32 = n.parse().map_err(|_| bad())?;
                if n == 0 {
                    return Err(bad());
                }
                return Ok(make(n));
            }
        }
        if let Some(settings) = s.strip_prefix("qwen2.5-vl:") {
            // All three stated, each once, in any order: these are the server's processor
            // settings, and a default here would be a guess.
            let (mut min, mut max, mut factor) = (None, None, None);
            for pair in settings.split(',') {
                let (k, v) = pair.split_once('=').ok_or_else(bad)?;
                let v: u64 = v.trim().parse().map_err(|_| bad())?;
                let slot = match k.trim() {
                    "min_pixels" => &mut min,
                    "max_pixels" => &mut max,
                    "factor" => &mut factor,
                    _ => return Err(bad()),
                };
                if slot.replace(v).is_some() {
                    return Err(bad());
                }
            }
            let (Some(min_pixels), Some(max_pixels), Some(factor)) = (min, max, factor) else {
                return Err(bad());
            };
            let factor = u32::try_from(factor).map_err(|_| bad())?;
            if factor == 0 || max_pixels == 0 || min_pixels > max_pixels {
                return Err(bad());
            }
            return Ok(BoxFrame::SmartResize {
                min_pixels,
                max_pixels,
                factor,
            });
        }
        Err(bad())
    }
}

impl Serialize for BoxFrame {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BoxFrame {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// transformers' `smart_resize`: `(height, width)`, or why the image cannot be used.
pub fn smart_resize(
    height: u32,
    width: u32,
    factor: u32,
    min_pixels: u64,
    max_pixels: u64,
) -> Result<(u32, u32), String> {
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    if height == 0 || width == 0 {
        return Err("the image is empty".into());
    }
    if h.max(w) / h.min(w) > 200.0 {
        return Err(format!(
            "absolute aspect ratio must be smaller than 200, got {}",
            h.max(w) / h.min(w)
        ));
    }
    // Python's round(): half to even
    let mut h_bar = (h / f).round_ties_even() * f;
    let mut w_bar = (w / f).round_ties_even() * f;
    if h_bar * w_bar > max_pixels as f64 {
        let beta = ((height as u64 * width as u64) as f64 / max_pixels as f64).sqrt();
        h_bar = f.max((h / beta / f).floor() * f);
        w_bar = f.max((w / beta / f).floor() * f);
    } else if h_bar * w_bar < min_pixels as f64 {
        let beta = (min_pixels as f64 / (height as u64 * width as u64) as f64).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }
    Ok((h_bar as u32, w_bar as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_and_print_the_same_names() {
        for s in [
            "normalized",
            "pixels",
            "pixels:224x224",
            "grid:1000",
            "yx-grid:1000",
            "qwen2.5-vl:min_pixels=3136,max_pixels=12845056,factor=28",
        ] {
            assert_eq!(s.parse::<BoxFrame>().unwrap().to_string(), s);
        }
        for bad in [
            "",
            "pixel",
            "grid:",
            "grid:0",
            "pixels:224",
            "pixels:0x4",
            "auto",
            "yx-grid:0",
            "qwen2.5-vl",
            "qwen2.5-vl:min_pixels=3136,max_pixels=12845056",
            "qwen2.5-vl:min_pixels=3136,max_pixels=12845056,factor=0",
            "qwen2.5-vl:min_pixels=9,max_pixels=4,factor=28",
            "qwen2.5-vl:min_pixels=1,min_pixels=2,max_pixels=4,factor=28",
            "qwen2.5-vl:min_pixels=1,max_pixels=4,factor=28,patch=14",
        ] {
            assert!(bad.parse::<BoxFrame>().is_err(), "{bad}");
        }
    }

    #[test]
    fn gemex_frame_maps_224_to_one_and_clamps() {
        let f: BoxFrame = "pixels:224x224".parse().unwrap();
        let b = f.normalize([0.0, 112.0, 224.0, 230.0], None).unwrap();
        assert_eq!(b.to_array(), [0.0, 0.5, 1.0, 1.0]);
    }

    #[test]
    fn ground_truth_far_outside_its_frame_is_refused_not_clamped() {
        let n = BoxFrame::Normalized;
        // Pixel boxes in a manifest that declares no frame: refused, naming the fix.
        let e = n
            .normalize_truth([12.0, 30.0, 60.0, 90.0], None)
            .unwrap_err();
        assert!(matches!(e, BoxError::OutsideFrame { .. }));
        assert!(e.to_string().contains("box_frame"), "{e}");
        // A few pixels past the edge is an annotation habit: clamped.
        let g: BoxFrame = "pixels:224x224".parse().unwrap();
        let b = g.normalize_truth([0.0, 112.0, 224.0, 230.0], None).unwrap();
        assert_eq!(b.to_array(), [0.0, 0.5, 1.0, 1.0]);
        assert!(g.normalize_truth([0.0, 112.0, 224.0, 240.0], None).is_err());
        let p = BoxFrame::Pixels;
        assert!(
            p.normalize_truth([-30.0, 0.0, 50.0, 50.0], Some((100, 100)))
                .is_err()
        );
        assert!(
            p.normalize_truth([-4.0, 0.0, 104.0, 50.0], Some((100, 100)))
                .is_ok()
        );
        // Predictions keep being clamped: a model's overshoot is scored, not refused.
        assert!(n.normalize([12.0, 30.0, 60.0, 90.0], None).is_ok());
    }

    #[test]
    fn gemini_frame_reads_y_first_on_1000() {
        assert_eq!(
            "gemini".parse::<BoxFrame>().unwrap(),
            BoxFrame::GridYx(1000)
        );
        let f = BoxFrame::GridYx(1000);
        // [ymin, xmin, ymax, xmax]
        let b = f.normalize([100.0, 200.0, 500.0, 900.0], None).unwrap();
        assert_eq!(b.to_array(), [0.2, 0.1, 0.9, 0.5]);
        assert_eq!(
            f.denormalize(b, None).unwrap(),
            [100.0, 200.0, 500.0, 900.0]
        );
        assert_eq!(f.layout(), "[y1, x1, y2, x2]");
    }

    #[test]
    fn qwen25_frame_is_pixels_of_the_smart_resized_image() {
        let f: BoxFrame = "qwen2.5-vl:min_pixels=3136,max_pixels=12845056,factor=28"
            .parse()
            .unwrap();
        assert!(f.needs_image_size());
        assert!(f.normalize([0.0, 0.0, 1.0, 1.0], None).is_err());
        // A 640x480 image: transformers' smart_resize(480, 640, 28, 3136, 12845056) gives
        // (476, 644), so x is read over 644 and y over 476.
        let b = f
            .normalize([161.0, 119.0, 322.0, 238.0], Some((640, 480)))
            .unwrap();
        assert_eq!(b.to_array(), [0.25, 0.25, 0.5, 0.5]);
        // A small budget shrinks the frame: 1000x1000 under max_pixels 200704 = 448x448.
        let small: BoxFrame = "qwen2.5-vl:factor=28,max_pixels=200704,min_pixels=3136"
            .parse()
            .unwrap();
        let b = small
            .normalize([0.0, 0.0, 224.0, 448.0], Some((1000, 1000)))
            .unwrap();
        assert_eq!(b.to_array(), [0.0, 0.0, 0.5, 1.0]);
        // An image the processor refuses is an error, not a guess.
        assert!(f.normalize([0.0, 0.0, 1.0, 1.0], Some((1, 500))).is_err());
    }

    #[test]
    fn pixels_frame_needs_the_image_size() {
        assert!(
            BoxFrame::Pixels
                .normalize([0.0, 0.0, 1.0, 1.0], None)
                .is_err()
        );
        let b = BoxFrame::Pixels
            .normalize([10.0, 20.0, 30.0, 40.0], Some((100, 200)))
            .unwrap();
        assert_eq!(b.to_array(), [0.1, 0.1, 0.3, 0.2]);
    }

    #[test]
    fn inverted_boxes_are_refused_not_swapped() {
        assert!(matches!(
            BBox::new(0.5, 0.1, 0.2, 0.3),
            Err(BoxError::Inverted(_))
        ));
    }

    #[test]
    fn iou_of_half_overlap() {
        let a = BBox::new(0.0, 0.0, 0.5, 1.0).unwrap();
        let b = BBox::new(0.25, 0.0, 0.75, 1.0).unwrap();
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-12);
    }
}
