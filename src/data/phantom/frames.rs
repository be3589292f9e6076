//! `phantom:frames`: 2-5 frame colonoscopy clips, 448×384 RGB per frame.
//!
//! A clip is one colon scene (see `scope`) filmed through a slightly moving camera, with the
//! processor's timestamp ticking in the top-left corner. Each clip has one event:
//! - `appears`: the camera pans and a polyp comes into view;
//! - `disappears`: the camera pans away and the polyp leaves the view;
//! - `grows`: the camera approaches the polyp, which looks larger frame by frame;
//! - `moves`: the camera pans and the polyp shifts across the image, staying in view;
//! - `instrument`: an instrument comes out of the working channel and advances.
//!
//! Findings are per frame: a finding absent from a frame has no entry for it. A polyp that
//! is in view is always at least 30% visible, so "first frame where it appears" never hangs
//! on a sliver.

use image::GrayImage;
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

use super::common::{
    case_rng, finding, mask_area, mask_centroid, mask_from_fn, mask_intersect, mask_subtract,
};
use super::endoscopy::{random_instrument, text_lines};
use super::questions::{self, Built, Question, gt, multi, multi_ordered, phrase, single_ordered};
use super::scope::{self, H, Instrument, InstrumentKind, Polyp, PolypColour, Scene, View, W};
use super::{Case, Finding, PhantomSet};
use crate::sample::{MetaValue, Sample, Task};

pub fn generate(seed: u64, n: usize) -> Vec<Sample> {
    questions::generate(PhantomSet::Frames, seed, n, true, build)
}

pub fn case(seed: u64, index: usize) -> Case {
    draw(seed, index).case
}

/// World size: room for the camera to pan.
const WORLD_W: u32 = W * 8 / 5;
const WORLD_H: u32 = H * 8 / 5;

/// Least visible share of a polyp in a frame where it counts as present.
const MIN_VISIBLE: f64 = 0.3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Appears,
    Disappears,
    Grows,
    Moves,
    Instrument,
}

impl Event {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Event::Appears => "appears",
            Event::Disappears => "disappears",
            Event::Grows => "grows",
            Event::Moves => "moves",
            Event::Instrument => "instrument",
        }
    }
}

/// Image directions, as the questions name them.
pub(crate) const DIRECTIONS: [&str; 4] = ["left", "right", "up", "down"];

/// The dominant direction of a displacement in image pixels.
pub(crate) fn direction(dx: f64, dy: f64) -> &'static str {
    if dx.abs() >= dy.abs() {
        if dx < 0.0 { "left" } else { "right" }
    } else if dy < 0.0 {
        "up"
    } else {
        "down"
    }
}

pub(crate) struct Drawn {
    pub case: Case,
    pub event: Event,
    pub n_frames: usize,
    rng_state: rand_chacha::ChaCha8Rng,
}

fn unit(dir: usize) -> (f32, f32) {
    match dir {
        0 => (-1.0, 0.0),
        1 => (1.0, 0.0),
        2 => (0.0, -1.0),
        _ => (0.0, 1.0),
    }
}

/// Views for `n` frames, moving the centre from `from` to `to` and the scale from `s0` to
/// `s1`, each with a little hand tremor.
fn views<R: Rng>(
    rng: &mut R,
    n: usize,
    from: (f32, f32),
    to: (f32, f32),
    s0: f32,
    s1: f32,
) -> Vec<View> {
    (0..n)
        .map(|k| {
            let t = k as f32 / (n - 1).max(1) as f32;
            View {
                cx: from.0 + (to.0 - from.0) * t + rng.random_range(-5.0..5.0f32),
                cy: from.1 + (to.1 - from.1) * t + rng.random_range(-5.0..5.0f32),
                scale: (s0 + (s1 - s0) * t) * rng.random_range(0.985..1.015f32),
                angle: rng.random_range(-0.03..0.03f32),
            }
        })
        .collect()
}

/// The polyp's exact mask in one view, clipped to the field of view.
fn polyp_mask(scene: &Scene, view: &View, fov: &GrayImage) -> GrayImage {
    let masks = scene.render_masks(view);
    let mut m = masks
        .into_iter()
        .next()
        .unwrap_or_else(|| GrayImage::new(W, H));
    mask_intersect(&mut m, fov);
    m
}

/// Unclipped area of the polyp in a view (its whole outline, wherever it falls).
fn full_area(p: &Polyp, view: &View) -> f64 {
    // The outline's area scales with the square of the view's magnification.
    p.area() / (view.scale as f64 * view.scale as f64)
}

/// Whether the polyp is, in every view, either wholly out of sight or at least
/// `MIN_VISIBLE` visible; returns the visible masks when so.
fn clear_cut(scene: &Scene, views: &[View], fov: &GrayImage) -> Option<Vec<GrayImage>> {
    let p = scene.polyps.first()?;
    let mut out = Vec::new();
    for v in views {
        let m = polyp_mask(scene, v, fov);
        let a = mask_area(&m) as f64;
        if a > 0.0 && a < MIN_VISIBLE * full_area(p, v) {
            return None;
        }
        out.push(m);
    }
    Some(out)
}

struct Plan {
    event: Event,
    scene: Scene,
    views: Vec<View>,
    instrument: Option<(Instrument, usize, f32)>,
}

fn plan<R: Rng>(rng: &mut R, event: Event, n: usize) -> Plan {
    let (ww, wh) = (WORLD_W as f32, WORLD_H as f32);
    let centre = (ww / 2.0, wh / 2.0);
    let (w, h) = (W as f32, H as f32);
    let colour = PolypColour::ALL[rng.random_range(0..3)];
    let fov = scope::fov_mask();
    let lumen = (
        centre.0 + rng.random_range(-0.12..0.12f32) * w,
        centre.1 + rng.random_range(-0.12..0.12f32) * h,
    );
    let base = Scene::random(rng, WORLD_W, WORLD_H, lumen);
    match event {
        Event::Appears | Event::Disappears => {
            for _ in 0..60 {
                let dir = rng.random_range(0..4);
                let (ux, uy) = unit(dir);
                let half_view = if ux != 0.0 { w / 2.0 } else { h / 2.0 };
                let d = rng.random_range(0.45..0.55f32) * w.min(h) * 1.1;
                let from = (centre.0 - ux * d / 2.0, centre.1 - uy * d / 2.0);
                let to = (centre.0 + ux * d / 2.0, centre.1 + uy * d / 2.0);
                let mut scene = base.clone();
                let mut p = Polyp::new(rng, 0.0, 0.0, 10.0, colour);
                p.fit_width(rng.random_range(0.11..0.18f32) * w, 1.0);
                let reach = p.reach();
                let along = rng.random_range(half_view + reach + 4.0..half_view + d - reach - 12.0);
                let across = rng.random_range(-0.18..0.18f32) * if ux != 0.0 { h } else { w };
                p.cx = from.0 + ux * along + uy.abs() * across;
                p.cy = from.1 + uy * along + ux.abs() * across;
                if scope::near_lumen(&scene, p.cx, p.cy, reach) {
                    continue;
                }
                scene.add_polyp(rng, p);
                let mut vs = views(rng, n, from, to, 1.0, 1.0);
                if event == Event::Disappears {
                    vs.reverse();
                }
                let Some(masks) = clear_cut(&scene, &vs, &fov) else {
                    continue;
                };
                let seen: Vec<bool> = masks.iter().map(|m| mask_area(m) > 0).collect();
                let ok = match event {
                    Event::Appears => !seen[0] && seen[n - 1],
                    _ => seen[0] && !seen[n - 1],
                };
                if ok {
                    return Plan {
                        event,
                        scene,
                        views: vs,
                        instrument: None,
                    };
                }
            }
            plan(rng, Event::Grows, n)
        }
        Event::Grows | Event::Moves | Event::Instrument => {
            for _ in 0..60 {
                let mut scene = base.clone();
                let mut p = Polyp::new(rng, 0.0, 0.0, 10.0, colour);
                let width = match event {
                    Event::Grows => rng.random_range(0.1..0.14f32),
                    _ => rng.random_range(0.1..0.18f32),
                };
                p.fit_width(width * w, 1.0);
                let reach = p.reach();
                p.cx = centre.0 + rng.random_range(-0.3..0.3f32) * w;
                p.cy = centre.1 + rng.random_range(-0.3..0.3f32) * h;
                if scope::near_lumen(&scene, p.cx, p.cy, reach) {
                    continue;
                }
                let pc = (p.cx, p.cy);
                scene.add_polyp(rng, p);
                let vs = match event {
                    Event::Grows => {
                        let g = rng.random_range(0.38..0.48f32);
                        let to = (
                            centre.0 + (pc.0 - centre.0) * 0.6,
                            centre.1 + (pc.1 - centre.1) * 0.6,
                        );
                        views(rng, n, centre, to, 1.0, 1.0 - g)
                    }
                    Event::Moves => {
                        let (ux, uy) = unit(rng.random_range(0..4));
                        let d = rng.random_range(0.22..0.3f32) * w;
                        let from = (centre.0 - ux * d / 2.0, centre.1 - uy * d / 2.0);
                        let to = (centre.0 + ux * d / 2.0, centre.1 + uy * d / 2.0);
                        views(rng, n, from, to, 1.0, 1.0)
                    }
                    _ => views(rng, n, centre, centre, 1.0, 1.0),
                };
                let whole = vs.iter().all(|v| {
                    let (ix, iy) = v.to_image(pc.0, pc.1);
                    scope::inside_fov((ix, iy), reach / v.scale, 8.0)
                });
                if !whole {
                    continue;
                }
                let instrument = if event == Event::Instrument {
                    let kind = InstrumentKind::ALL[rng.random_range(0..3)];
                    let (lx, ly) = vs[0].to_image(scene.lumen.0, scene.lumen.1);
                    let mut inst = random_instrument(rng, kind, (lx, ly));
                    let start = rng.random_range(1..n);
                    let e0 = rng.random_range(0.16..0.22f32) * w;
                    let step = rng.random_range(0.06..0.1f32) * w;
                    inst.extend = e0 + step * (n - 1 - start) as f32;
                    let mut scratch = crate::draw::Canvas::new(W, H, &[0.0, 0.0, 0.0]);
                    let mut first = inst.clone();
                    first.extend = e0;
                    let mut shown = first.draw(&mut scratch);
                    mask_intersect(&mut shown, &fov);
                    if mask_area(&shown) < 300 {
                        continue;
                    }
                    let reach_mask = inst.draw(&mut scratch);
                    let (ix, iy) = vs[n - 1].to_image(pc.0, pc.1);
                    let clash = mask_from_fn(W, H, |x, y| {
                        (x as f32 + 0.5 - ix).powi(2) + (y as f32 + 0.5 - iy).powi(2)
                            <= (reach / vs[n - 1].scale + 12.0).powi(2)
                    });
                    let mut both = reach_mask;
                    mask_intersect(&mut both, &clash);
                    if mask_area(&both) > 0 {
                        continue;
                    }
                    Some((inst, start, step))
                } else {
                    None
                };
                return Plan {
                    event,
                    scene,
                    views: vs,
                    instrument,
                };
            }
            // The lumen or the field of view left no room: fall back to a static polyp
            // near the centre with a gentle approach.
            let mut scene = base;
            let mut p = Polyp::new(rng, centre.0, centre.1 + 0.2 * h, 10.0, colour);
            p.fit_width(0.1 * w, 1.0);
            scene.add_polyp(rng, p);
            let vs = views(rng, n, centre, centre, 1.0, 0.6);
            Plan {
                event: Event::Grows,
                scene,
                views: vs,
                instrument: None,
            }
        }
    }
}

pub(crate) fn draw(seed: u64, index: usize) -> Drawn {
    let mut rng = case_rng(PhantomSet::Frames, seed, index);
    let n = rng.random_range(2..=5usize);
    let event = [
        Event::Appears,
        Event::Disappears,
        Event::Grows,
        Event::Moves,
        Event::Instrument,
    ][rng.random_range(0..5)];
    let plan = plan(&mut rng, event, n);
    let lines = text_lines(&mut rng);
    let t0 = rng.random_range(60..1500u32);
    let step = rng.random_range(1..3u32);
    let fov = scope::fov_mask();
    let mut images = Vec::with_capacity(n);
    let mut findings: Vec<Finding> = Vec::new();
    for (k, view) in plan.views.iter().enumerate() {
        let (mut canvas, mut masks) = plan.scene.render(view);
        let mut inst_mask = plan.instrument.as_ref().and_then(|(inst, start, step)| {
            (k >= *start).then(|| {
                let mut i = inst.clone();
                i.extend -= step * (n - 1 - k) as f32;
                i.draw(&mut canvas)
            })
        });
        scope::apply_fov(&mut canvas);
        let t = t0 + step * k as u32;
        let mut frame_lines = lines.clone();
        if let Some(l) = frame_lines.get_mut(1) {
            *l = format!("<00:{:02}:{:02}>", t / 60 % 60, t % 60);
        }
        let (x, y) = super::endoscopy::text_origin(super::endoscopy::Corner::TopLeft, 0, 0);
        let text_mask = scope::draw_text(&mut canvas, x, y, &frame_lines);
        if let Some(m) = inst_mask.as_mut() {
            mask_intersect(m, &fov);
            mask_subtract(m, &text_mask);
        }
        for m in &mut masks {
            mask_intersect(m, &fov);
            mask_subtract(m, &text_mask);
            if let Some(im) = &inst_mask {
                mask_subtract(m, im);
            }
        }
        for m in masks {
            findings.extend(finding("polyp", k, m));
        }
        if let Some(m) = inst_mask {
            findings.extend(finding("instrument", k, m));
        }
        findings.extend(finding("text", k, text_mask));
        images.push(canvas.to_pixels());
    }
    Drawn {
        case: Case {
            key: format!("frames/{index:04}"),
            images,
            findings,
        },
        event: plan.event,
        n_frames: n,
        rng_state: rng,
    }
}

/// Per-frame facts about one label, read off the findings.
struct Track<'a> {
    per_frame: Vec<Option<&'a Finding>>,
}

impl<'a> Track<'a> {
    fn of(findings: &'a [Finding], label: &str, n: usize) -> Track<'a> {
        let mut per_frame = vec![None; n];
        for f in findings.iter().filter(|f| f.label == label) {
            if let Some(slot) = per_frame.get_mut(f.image) {
                *slot = Some(f);
            }
        }
        Track { per_frame }
    }

    fn seen(&self, k: usize) -> bool {
        self.per_frame.get(k).is_some_and(|f| f.is_some())
    }

    fn first(&self) -> Option<usize> {
        (0..self.per_frame.len()).find(|&k| self.seen(k))
    }

    fn last(&self) -> Option<usize> {
        (0..self.per_frame.len()).rev().find(|&k| self.seen(k))
    }

    fn count(&self) -> usize {
        (0..self.per_frame.len()).filter(|&k| self.seen(k)).count()
    }

    fn area(&self, k: usize) -> usize {
        self.per_frame
            .get(k)
            .copied()
            .flatten()
            .map(|f| mask_area(&f.mask))
            .unwrap_or(0)
    }

    fn largest(&self) -> Option<usize> {
        (0..self.per_frame.len())
            .filter(|&k| self.seen(k))
            .max_by_key(|&k| self.area(k))
    }

    fn centroid(&self, k: usize) -> Option<(f64, f64)> {
        self.per_frame
            .get(k)
            .copied()
            .flatten()
            .and_then(|f| mask_centroid(&f.mask))
    }

    fn boxes(&self) -> Vec<crate::sample::GtBox> {
        self.per_frame.iter().flatten().map(|f| gt(f)).collect()
    }

    fn boxes_in(&self, k: usize) -> Vec<crate::sample::GtBox> {
        self.per_frame
            .get(k)
            .copied()
            .flatten()
            .map(|f| vec![gt(f)])
            .unwrap_or_default()
    }
}

mod builders;
mod templates;

use builders::*;

#[cfg(test)]
mod tests;
