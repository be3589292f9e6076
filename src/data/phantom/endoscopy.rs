//! `phantom:endoscopy`: synthetic colonoscopy frames, 448×384 RGB, in the style of Kvasir.
//!
//! Each frame shows textured mucosa with haustral folds around a dark lumen, specular
//! highlights and an octagonal field of view. Findings: polyps (0-3, one colour per frame,
//! each small, medium or large), an instrument entering from an edge (forceps, snare or
//! catheter), the green position-map box in the lower-left corner and burned-in processor
//! text in a corner. Every case has at least one of them.

use image::GrayImage;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

use super::common::{case_rng, finding, mask_bbox, mask_centroid, mask_intersect, mask_subtract};
use super::questions::{
    self, Built, Question, boxes_of, gt, multi, phrase, single, single_ordered, with_label,
};
use super::scope::{
    self, GREEN_BOX, H, Instrument, InstrumentKind, Polyp, PolypColour, Scene, View, W,
};
use super::{Case, Finding, PhantomSet};
use crate::sample::{Sample, Task};

pub fn generate(seed: u64, n: usize) -> Vec<Sample> {
    questions::generate(PhantomSet::Endoscopy, seed, n, false, build)
}

pub fn case(seed: u64, index: usize) -> Case {
    draw(seed, index).case
}

/// Polyp size classes, by the width of the polyp's box as a share of the image width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Size {
    Small,
    Medium,
    Large,
}

impl Size {
    pub(crate) const ALL: [Size; 3] = [Size::Small, Size::Medium, Size::Large];

    /// Class of a box width (normalised): below 0.12, 0.12-0.22, above 0.22.
    pub(crate) fn of_width(w: f64) -> Size {
        if w < 0.12 {
            Size::Small
        } else if w <= 0.22 {
            Size::Medium
        } else {
            Size::Large
        }
    }

    pub(crate) fn option(self) -> &'static str {
        match self {
            Size::Small => "small (less than 12% of the image width)",
            Size::Medium => "medium (12% to 22% of the image width)",
            Size::Large => "large (more than 22% of the image width)",
        }
    }

    fn target<R: Rng>(self, rng: &mut R) -> f32 {
        let (a, b) = match self {
            Size::Small => (0.065, 0.095),
            Size::Medium => (0.145, 0.185),
            Size::Large => (0.25, 0.30),
        };
        rng.random_range(a..b) * W as f32
    }
}

/// The four image quadrants, named as the questions name them.
pub(crate) const QUADRANTS: [&str; 4] = ["upper left", "upper right", "lower left", "lower right"];

/// The quadrant of a point in normalised coordinates.
pub(crate) fn quadrant(x: f64, y: f64) -> &'static str {
    QUADRANTS[(x >= 0.5) as usize + 2 * (y >= 0.5) as usize]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

impl Corner {
    pub(crate) const ALL: [Corner; 4] = [
        Corner::TopLeft,
        Corner::TopRight,
        Corner::BottomLeft,
        Corner::BottomRight,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Corner::TopLeft => "top left",
            Corner::TopRight => "top right",
            Corner::BottomLeft => "bottom left",
            Corner::BottomRight => "bottom right",
        }
    }

    /// The corner a normalised box's centre lies toward.
    pub(crate) fn of(x: f64, y: f64) -> Corner {
        Corner::ALL[(x >= 0.5) as usize + 2 * (y >= 0.5) as usize]
    }
}

/// What one polyp finding is, beside its mask.
#[derive(Debug, Clone)]
pub(crate) struct PolypInfo {
    pub size: Size,
    pub quadrant: &'static str,
    pub area: usize,
}

pub(crate) struct Drawn {
    pub case: Case,
    /// In the order of the `polyp` findings.
    pub polyps: Vec<PolypInfo>,
    pub colour: PolypColour,
    pub instrument: Option<InstrumentKind>,
    pub green_box: bool,
    pub text: Option<Corner>,
    rng_state: rand_chacha::ChaCha8Rng,
}

/// Processor text lines: a date, an elapsed time and settings, as Kvasir frames show.
pub(crate) fn text_lines<R: Rng>(rng: &mut R) -> Vec<String> {
    let mut lines = vec![format!(
        "{:02}/{:02}/{}",
        rng.random_range(1..29),
        rng.random_range(1..13),
        rng.random_range(2008..2020)
    )];
    lines.push(format!(
        "<{:02}:{:02}:{:02}>",
        0,
        rng.random_range(0..30),
        rng.random_range(0..60)
    ));
    let extra = [
        format!("CVP:{}", rng.random_range(1..4)),
        "G:N".to_string(),
        format!("EH:A{}", rng.random_range(1..9)),
        format!("ID:{:06}", rng.random_range(0..1_000_000)),
    ];
    let k = rng.random_range(0..3);
    lines.extend(extra.into_iter().take(k));
    lines
}

/// Top-left pixel of a text block of size `(tw, th)` in `corner`.
pub(crate) fn text_origin(corner: Corner, tw: u32, th: u32) -> (i64, i64) {
    let (w, h, m) = (W as i64, H as i64, 6i64);
    match corner {
        Corner::TopLeft => (m, m),
        Corner::TopRight => (w - m - tw as i64, m),
        Corner::BottomLeft => (m, h - m - th as i64),
        Corner::BottomRight => (w - m - tw as i64, h - m - th as i64),
    }
}

/// An instrument entering from the right, bottom or left edge toward the image centre.
pub(crate) fn random_instrument<R: Rng>(
    rng: &mut R,
    kind: InstrumentKind,
    target: (f32, f32),
) -> Instrument {
    let (w, h) = (W as f32, H as f32);
    let entry = match rng.random_range(0..3) {
        0 => (w + 6.0, rng.random_range(0.55..0.85f32) * h),
        1 => (rng.random_range(0.55..0.85f32) * w, h + 6.0),
        _ => (-6.0, rng.random_range(0.18..0.42f32) * h),
    };
    let w0 = rng.random_range(26.0..36.0f32);
    Instrument {
        kind,
        entry,
        aim: (
            target.0 + rng.random_range(-40.0..40.0f32),
            target.1 + rng.random_range(-40.0..40.0f32),
        ),
        bend: rng.random_range(-0.12..0.12f32),
        extend: rng.random_range(0.32..0.48f32) * w,
        w0,
        w1: w0 * rng.random_range(0.55..0.68f32),
    }
}

struct Rect {
    x0: f32,
    y0: f32,
    x1: f32,
    y1: f32,
}

impl Rect {
    fn near(&self, x: f32, y: f32, r: f32) -> bool {
        x > self.x0 - r && x < self.x1 + r && y > self.y0 - r && y < self.y1 + r
    }
}

fn mask_near(mask: &GrayImage, x: f32, y: f32, r: f32) -> bool {
    let (x0, x1) = ((x - r).max(0.0) as u32, ((x + r).max(0.0) as u32).min(W));
    let (y0, y1) = ((y - r).max(0.0) as u32, ((y + r).max(0.0) as u32).min(H));
    for py in y0..y1 {
        for px in x0..x1 {
            if mask.get_pixel(px, py).0[0] > 0
                && (px as f32 + 0.5 - x).powi(2) + (py as f32 + 0.5 - y).powi(2) <= r * r
            {
                return true;
            }
        }
    }
    false
}

pub(crate) fn draw(seed: u64, index: usize) -> Drawn {
    let mut rng = case_rng(PhantomSet::Endoscopy, seed, index);
    let (w, h) = (W as f32, H as f32);
    let lumen = (
        w * (0.5 + rng.random_range(-0.2..0.2f32)),
        h * (0.5 + rng.random_range(-0.2..0.2f32)),
    );
    let mut scene = Scene::random(&mut rng, W, H, lumen);

    let n_polyps = *[0usize, 1, 1, 1, 1, 2, 2, 3]
        .get(rng.random_range(0..8))
        .unwrap_or(&1);
    let colour = PolypColour::ALL[rng.random_range(0..3)];
    let instrument_kind = rng
        .random_bool(0.35)
        .then(|| InstrumentKind::ALL[rng.random_range(0..3)]);
    let green_box = rng.random_bool(0.4);
    let mut text = rng.random_bool(0.8).then(|| {
        let c = [
            Corner::TopLeft,
            Corner::TopLeft,
            Corner::TopRight,
            Corner::BottomRight,
            Corner::BottomLeft,
        ];
        c[rng.random_range(0..c.len())]
    });
    if green_box && text == Some(Corner::BottomLeft) {
        text = Some(Corner::TopLeft);
    }
    if n_polyps == 0 && instrument_kind.is_none() && !green_box && text.is_none() {
        text = Some(Corner::TopLeft);
    }
    let lines = text_lines(&mut rng);
    let (tw, th) = scope::text_size(&lines);
    let text_rect = text.map(|c| {
        let (x, y) = text_origin(c, tw, th);
        Rect {
            x0: x as f32,
            y0: y as f32,
            x1: (x + tw as i64) as f32,
            y1: (y + th as i64) as f32,
        }
    });
    let box_rect = green_box.then_some(Rect {
        x0: 0.0,
        y0: h - GREEN_BOX as f32,
        x1: GREEN_BOX as f32,
        y1: h,
    });
    let instrument = instrument_kind.map(|k| random_instrument(&mut rng, k, scene.lumen));
    let instrument_mask = instrument.as_ref().map(|i| {
        let mut scratch = crate::draw::Canvas::new(W, H, &[0.0, 0.0, 0.0]);
        i.draw(&mut scratch)
    });

    // Place polyps where they are whole, clear of the lumen, overlays and each other.
    for _ in 0..n_polyps {
        let size = Size::ALL[rng.random_range(0..3)];
        let target = size.target(&mut rng);
        for _attempt in 0..200 {
            let cx = rng.random_range(0.08..0.92f32) * w;
            let cy = rng.random_range(0.08..0.92f32) * h;
            if (cx - w / 2.0).abs() < 0.07 * w || (cy - h / 2.0).abs() < 0.07 * h {
                continue; // keep the quadrant unambiguous
            }
            let mut p = Polyp::new(&mut rng, cx, cy, 10.0, colour);
            p.fit_width(target, 1.0);
            let reach = p.reach();
            if !scope::inside_fov((cx, cy), reach, 6.0)
                || scope::near_lumen(&scene, cx, cy, reach)
                || text_rect
                    .as_ref()
                    .is_some_and(|r| r.near(cx, cy, reach + 6.0))
                || box_rect
                    .as_ref()
                    .is_some_and(|r| r.near(cx, cy, reach + 6.0))
                || instrument_mask
                    .as_ref()
                    .is_some_and(|m| mask_near(m, cx, cy, reach + 8.0))
                || scene.polyps.iter().any(|q| {
                    ((q.cx - cx).powi(2) + (q.cy - cy).powi(2)).sqrt() < q.reach() + reach + 10.0
                })
            {
                continue;
            }
            scene.add_polyp(&mut rng, p);
            break;
        }
    }

    let (mut canvas, mut polyp_masks) = scene.render(&View::identity());
    let mut inst_mask = instrument.as_ref().map(|i| i.draw(&mut canvas));
    scope::apply_fov(&mut canvas);
    let fov = scope::fov_mask();
    if let Some(m) = inst_mask.as_mut() {
        mask_intersect(m, &fov);
    }
    for m in &mut polyp_masks {
        mask_intersect(m, &fov);
        if let Some(im) = &inst_mask {
            mask_subtract(m, im);
        }
    }
    let box_mask = green_box.then(|| scope::draw_green_box(&mut rng, &mut canvas));
    let text_mask = text_rect
        .as_ref()
        .map(|r| scope::draw_text(&mut canvas, r.x0 as i64, r.y0 as i64, &lines));
    for m in polyp_masks.iter_mut().chain(inst_mask.iter_mut()) {
        for cut in box_mask.iter().chain(text_mask.iter()) {
            mask_subtract(m, cut);
        }
    }

    let mut findings: Vec<Finding> = Vec::new();
    let mut polyps = Vec::new();
    for m in polyp_masks {
        let area = super::common::mask_area(&m);
        let (Some(b), Some((mx, my))) = (mask_bbox(&m), mask_centroid(&m)) else {
            continue;
        };
        polyps.push(PolypInfo {
            size: Size::of_width(b.width()),
            quadrant: quadrant(mx / W as f64, my / H as f64),
            area,
        });
        findings.extend(finding("polyp", 0, m));
    }
    let instrument = inst_mask
        .and_then(|m| finding("instrument", 0, m))
        .map(|f| {
            findings.push(f);
            instrument_kind
        });
    if let Some(m) = box_mask {
        findings.extend(finding("green_box", 0, m));
    }
    let text = text_mask.and_then(|m| finding("text", 0, m)).map(|f| {
        let c = Corner::of((f.bbox.x1 + f.bbox.x2) / 2.0, (f.bbox.y1 + f.bbox.y2) / 2.0);
        findings.push(f);
        c
    });
    Drawn {
        case: Case {
            key: format!("endoscopy/{index:04}"),
            images: vec![canvas.to_pixels()],
            findings,
        },
        polyps,
        colour,
        instrument: instrument.flatten(),
        green_box,
        text,
        rng_state: rng,
    }
}

mod builders;
mod templates;

use builders::*;

#[cfg(test)]
mod tests;
