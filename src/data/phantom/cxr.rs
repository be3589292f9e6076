//! `phantom:cxr`: synthetic posteroanterior chest radiographs, 448×448 grayscale.
//!
//! A radiograph is drawn as an attenuation map (soft tissue, air in the lungs, bone,
//! vessels) that is exposed through `1 - exp(-k·d)`, so structures add up as on film. The
//! anatomy is varied per case; the findings are nodules (0-3), a unilateral pleural
//! effusion with a meniscus, cardiomegaly (cardiothoracic ratio above 0.5) and a
//! pneumothorax (a pleural line with no lung markings beyond it). Sides are the patient's:
//! the patient's right lung is on the image left, as the "L" marker on the image right says.
//!
//! Every case also has a `heart` finding (the cardiac silhouette), so that questions about
//! heart size can be grounded in normal cases too.

use image::GrayImage;
use rand::{Rng, RngExt};

use super::common::{
    case_rng, finding, mask_bbox, mask_from_coverage, mask_from_fn, polygon_coverage, smoothstep,
    spline,
};
use super::questions::{
    self, Built, Question, boxes_of, gt, multi, single, single_ordered, with_label,
};
use super::{Case, PhantomSet};
use crate::draw::{Canvas, fractal_noise};
use crate::sample::{MetaValue, Sample, Task};

/// Width and height of every image.
pub const SIZE: u32 = 448;

pub fn generate(seed: u64, n: usize) -> Vec<Sample> {
    questions::generate(PhantomSet::Cxr, seed, n, false, build)
}

pub fn case(seed: u64, index: usize) -> Case {
    draw(seed, index).case
}

/// The patient's side. Viewed as a PA film, the patient's right is on the image left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Right,
    Left,
}

impl Side {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Side::Right => "right",
            Side::Left => "left",
        }
    }

    /// +1 on the image right (patient's left), -1 on the image left.
    fn sign(self) -> f32 {
        match self {
            Side::Right => -1.0,
            Side::Left => 1.0,
        }
    }

    fn index(self) -> usize {
        match self {
            Side::Right => 0,
            Side::Left => 1,
        }
    }
}

const SIDES: [Side; 2] = [Side::Right, Side::Left];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zone {
    Upper,
    Middle,
    Lower,
}

impl Zone {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Zone::Upper => "upper",
            Zone::Middle => "middle",
            Zone::Lower => "lower",
        }
    }
}

const ZONES: [Zone; 3] = [Zone::Upper, Zone::Middle, Zone::Lower];

#[derive(Debug, Clone)]
pub(crate) struct Nodule {
    pub side: Side,
    pub zone: Zone,
    pub cx: f32,
    pub cy: f32,
    pub r: f32,
}

/// A case plus the facts the questions need.
pub(crate) struct Drawn {
    pub case: Case,
    pub nodules: Vec<Nodule>,
    pub effusion: Option<Side>,
    pub pneumothorax: Option<Side>,
    /// Cardiothoracic ratio measured on the masks: heart width over the inner chest width.
    pub ctr: f64,
    /// Lung masks (right, left), as drawn.
    #[cfg_attr(not(test), allow(dead_code))]
    pub lungs: [GrayImage; 2],
    rng_state: rand_chacha::ChaCha8Rng,
}

mod anatomy;

use anatomy::*;

fn blurred(cov: &[f32], r: u32, passes: u32) -> Vec<f32> {
    let mut c = Canvas {
        width: SIZE,
        height: SIZE,
        channels: 1,
        data: cov.to_vec(),
    };
    c.box_blur(r, passes);
    c.data
}

fn layer() -> Canvas {
    Canvas::new(SIZE, SIZE, &[0.0])
}

/// Branching vessel trees from a hilum, fanning over the lateral half-plane of `side`.
fn vessel_tree<R: Rng>(rng: &mut R, c: &mut Canvas, hilum: Pt, side: Side) {
    let s = SIZE as f32;
    let n = rng.random_range(9..=12);
    for k in 0..n {
        // Angles from upward-lateral to downward-lateral; image y grows downward.
        let t = (k as f32 + rng.random_range(0.2..0.8f32)) / n as f32;
        let a = -1.75 + 3.3 * t;
        let dir = if side == Side::Right {
            std::f32::consts::PI - a
        } else {
            a
        };
        branch(rng, c, hilum, dir, 0.07 * s, 3.2, 5);
    }
}

fn branch<R: Rng>(rng: &mut R, c: &mut Canvas, p: Pt, dir: f32, len: f32, width: f32, depth: u32) {
    if depth == 0 || width < 0.45 {
        return;
    }
    let mut pts = vec![p];
    let mut d = dir;
    let mut q = p;
    for _ in 0..3 {
        d += jitter(rng, 0.25);
        q = (q.0 + d.cos() * len / 3.0, q.1 + d.sin() * len / 3.0);
        pts.push(q);
    }
    c.polyline(&pts, width, &[1.0], 0.25 + 0.13 * depth as f32);
    let spread = rng.random_range(0.28..0.5f32);
    branch(rng, c, q, d - spread, len * 0.8, width * 0.72, depth - 1);
    branch(rng, c, q, d + spread, len * 0.8, width * 0.72, depth - 1);
}

/// Draws one case. Every random choice comes from the case RNG, in a fixed order.
pub(crate) fn draw(seed: u64, index: usize) -> Drawn {
    let mut rng = case_rng(PhantomSet::Cxr, seed, index);
    let s = SIZE as f32;
    let n = (SIZE * SIZE) as usize;

    // What this case shows.
    let n_nodules = *[0usize, 0, 0, 1, 1, 1, 2, 2, 3]
        .get(rng.random_range(0..9))
        .unwrap_or(&0);
    let cardiomegaly = rng.random_bool(0.35);
    let effusion = rng.random_bool(0.3).then(|| {
        if rng.random_bool(0.5) {
            Side::Right
        } else {
            Side::Left
        }
    });
    let pneumothorax = rng
        .random_bool(0.22)
        .then(|| {
            if rng.random_bool(0.5) {
                Side::Right
            } else {
                Side::Left
            }
        })
        .filter(|p| Some(*p) != effusion);
    let ctr_target = if cardiomegaly {
        if rng.random_bool(0.5) {
            rng.random_range(0.54..0.57f32)
        } else {
            rng.random_range(0.63..0.67f32)
        }
    } else {
        rng.random_range(0.40..0.46f32)
    };
    let ptx_f = rng.random_range(0.78..0.86f32);
    let g = build_geometry(&mut rng, ctr_target, ptx_f);

    // Shapes.
    let lung_cov: Vec<Vec<f32>> = g
        .lung
        .iter()
        .map(|o| polygon_coverage(SIZE, SIZE, o))
        .collect();
    let coll_cov: Vec<Vec<f32>> = g
        .collapsed
        .iter()
        .map(|o| polygon_coverage(SIZE, SIZE, o))
        .collect();
    let heart_cov = polygon_coverage(SIZE, SIZE, &g.heart);
    let heart_soft = blurred(&heart_cov, 2, 1);
    let heart_broad = blurred(&heart_cov, 12, 2);
    let knob = {
        let mut c = layer();
        c.fill_ellipse(
            crate::draw::Ellipse::new(g.mid + 0.062 * s, 0.345 * s, 0.03 * s, 0.028 * s),
            &[1.0],
            1.0,
            3.0,
        );
        c.data
    };

    // Effusion: the fluid surface rises toward the lateral wall (meniscus).
    let mut fluid = vec![0.0f32; n];
    if let Some(side) = effusion {
        let o = &g.lung[side.index()];
        let cp = o[(LUNG_WALL.len() - 1) * 6];
        let x_med = o[0].0;
        let level = g.dome_top[side.index()] - rng.random_range(0.0..0.05f32) * s;
        let h = rng.random_range(0.08..0.15f32) * s;
        let lc = &lung_cov[side.index()];
        for y in 0..SIZE {
            for x in 0..SIZE {
                let i = (y * SIZE + x) as usize;
                if lc[i] <= 0.0 {
                    continue;
                }
                let t = ((x as f32 + 0.5 - x_med) / (cp.0 - x_med)).clamp(0.0, 1.0);
                let ym = level - h * t.powf(2.6);
                fluid[i] = smoothstep(ym - 5.0, ym + 5.0, y as f32 + 0.5) * lc[i].min(1.0);
            }
        }
    }

    // Visible lung: what air reaches the film, per pixel.
    let mut air = vec![0.0f32; n];
    let mut vessel_keep = vec![0.0f32; n];
    let mut ptx_air = vec![0.0f32; n];
    // Lungs are thinner toward their edges: air scales with a broad blur of both.
    let both: Vec<f32> = lung_cov[0]
        .iter()
        .zip(&lung_cov[1])
        .map(|(a, b)| a + b)
        .collect();
    let broad = blurred(&both, 14, 2);
    for side in SIDES {
        let lc = &lung_cov[side.index()];
        let cc = &coll_cov[side.index()];
        for i in 0..n {
            let lung = lc[i].min(1.0);
            if lung <= 0.0 {
                continue;
            }
            let mut a = lung * (0.5 + 0.5 * broad[i]);
            let mut keep = lung;
            if pneumothorax == Some(side) {
                let gap = (lc[i] - cc[i]).max(0.0);
                ptx_air[i] = gap;
                a = a * (1.0 - gap) * 0.97 + gap * 1.04;
                keep = keep.min(cc[i]);
            }
            let cover = 1.0 - 0.9 * heart_soft[i].min(1.0);
            let knob_cover = 1.0 - 0.5 * knob[i].min(1.0);
            air[i] += a * cover * knob_cover * (1.0 - fluid[i]);
            vessel_keep[i] += keep * cover * knob_cover * (1.0 - fluid[i]);
        }
    }

    // Nodules: inside clearly visible lung, away from edges, hila and each other.
    let mut nodules: Vec<Nodule> = Vec::new();
    let hila = [(g.mid - 0.08 * s, 0.44 * s), (g.mid + 0.085 * s, 0.43 * s)];
    for _ in 0..n_nodules {
        for _attempt in 0..300 {
            let side = if rng.random_bool(0.5) {
                Side::Right
            } else {
                Side::Left
            };
            let o = &g.lung[side.index()];
            let top = o.iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
            let bot = o.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
            let r = rng.random_range(0.011..0.026f32) * s;
            let cy = rng.random_range(top..bot);
            let Some((x0, x1)) = outline_span(o, cy) else {
                continue;
            };
            let cx = rng.random_range(x0..x1.max(x0 + 1.0));
            let third = (bot - top) / 3.0;
            let rel = (cy - top) / third;
            if (rel - rel.round()).abs() < 0.12 {
                continue; // too close to a zone boundary to name its zone
            }
            let zone = ZONES[(rel.floor() as usize).min(2)];
            let h = hila[side.index()];
            if ((cx - h.0).powi(2) + (cy - h.1).powi(2)).sqrt() < 0.06 * s + r {
                continue;
            }
            if nodules
                .iter()
                .any(|q| ((q.cx - cx).powi(2) + (q.cy - cy).powi(2)).sqrt() < q.r + r + 0.03 * s)
            {
                continue;
            }
            let lc = &lung_cov[side.index()];
            let reach = r + 4.0;
            let mut ok = true;
            'scan: for y in (cy - reach).floor() as i64..=(cy + reach).ceil() as i64 {
                for x in (cx - reach).floor() as i64..=(cx + reach).ceil() as i64 {
                    if x < 0 || y < 0 || x >= SIZE as i64 || y >= SIZE as i64 {
                        ok = false;
                        break 'scan;
                    }
                    let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                    if dx * dx + dy * dy > reach * reach {
                        continue;
                    }
                    let i = (y as u32 * SIZE + x as u32) as usize;
                    let visible = lc[i] >= 0.999
                        && heart_cov[i] <= 0.0
                        && knob[i] <= 0.001
                        && fluid[i] <= 0.001
                        && (pneumothorax != Some(side) || coll_cov[side.index()][i] >= 0.999);
                    if !visible {
                        ok = false;
                        break 'scan;
                    }
                }
            }
            if ok {
                nodules.push(Nodule {
                    side,
                    zone,
                    cx,
                    cy,
                    r,
                });
                break;
            }
        }
    }

    // Attenuation layers.
    let body_pts: Vec<Pt> = {
        let half = [
            (0.395, 0.0),
            (0.385, 0.06),
            (0.30, 0.085),
            (0.18, 0.11),
            (0.09, 0.15),
            (0.055, 0.21),
            (0.055, 0.35),
            (0.06, 0.55),
            (0.068, 0.75),
            (0.075, 1.02),
        ];
        let w = rng.random_range(-0.012..0.012f32);
        let mut pts: Vec<Pt> = half
            .iter()
            .map(|&(u, v)| ((u - w * (v > 0.15) as u8 as f32) * s, v * s))
            .collect();
        pts.extend(
            half.iter()
                .rev()
                .map(|&(u, v)| ((1.0 - u + w * (v > 0.15) as u8 as f32) * s, v * s)),
        );
        pts
    };
    let body = polygon_coverage(SIZE, SIZE, &body_pts);
    let arms = {
        let mut c = layer();
        for side in SIDES {
            let f = |u: f32| if side == Side::Right { u } else { 1.0 - u };
            let arm = [
                (f(-0.02) * s, 0.13 * s),
                (f(0.07) * s, 0.16 * s),
                (f(0.045) * s, 0.45 * s),
                (f(0.025) * s, 0.85 * s),
                (f(-0.02) * s, 0.9 * s),
            ];
            let cov = polygon_coverage(SIZE, SIZE, &spline(&arm, true, 5));
            for (d, v) in c.data.iter_mut().zip(cov) {
                *d = d.max(v);
            }
        }
        c.data
    };
    let tissue_noise = fractal_noise(SIZE, SIZE, 64.0, 3, &mut rng);
    let lung_noise = fractal_noise(SIZE, SIZE, 5.0, 2, &mut rng);

    let mut bone = layer();
    let rib_w = rng.random_range(0.018..0.022f32) * s;
    for side in SIDES {
        let o = &g.lung[side.index()];
        let sg = side.sign();
        // Posterior ribs: from the spine, up a little, then down along the chest wall.
        for i in 0..10 {
            let y0 = (0.105 + i as f32 * 0.054) * s + jitter(&mut rng, 0.004) * s;
            let xs = g.mid + sg * 0.04 * s;
            let lat = outline_span(o, (y0 + 0.05 * s).min(0.72 * s))
                .map(|(a, b)| if side == Side::Right { a } else { b })
                .unwrap_or(g.mid + sg * 0.3 * s);
            let span = (lat + sg * 0.025 * s - xs).abs();
            let pts: Vec<Pt> = (0..=20)
                .map(|k| {
                    let t = k as f32 / 20.0;
                    (
                        xs + sg * span * (t * std::f32::consts::FRAC_PI_2).sin(),
                        y0 + (-0.09 * t + (0.2 + 0.006 * i as f32) * t.powf(2.2)) * s,
                    )
                })
                .collect();
            bone.polyline(&pts, rib_w, &[1.0], 1.0);
            bone.polyline(&pts, rib_w * 0.5, &[0.7], 1.0);
        }
        // Anterior ribs: fainter, from the lateral wall down toward the sternum.
        for j in 0..6 {
            let y0 = (0.20 + j as f32 * 0.07) * s + jitter(&mut rng, 0.004) * s;
            let Some((a, b)) = outline_span(o, y0) else {
                continue;
            };
            let lat = if side == Side::Right { a } else { b };
            let x_end = g.mid + sg * 0.13 * s;
            let pts: Vec<Pt> = (0..=12)
                .map(|k| {
                    let t = k as f32 / 12.0;
                    (lat + (x_end - lat) * t, y0 + 0.085 * s * t.powf(1.4))
                })
                .collect();
            bone.polyline(&pts, rib_w * 0.9, &[0.35], 1.0);
        }
        // Clavicle.
        let cl: Vec<Pt> = [
            (0.04, 0.215),
            (0.10, 0.200),
            (0.18, 0.180),
            (0.26, 0.172),
            (0.33, 0.150),
            (0.375, 0.128),
        ]
        .iter()
        .map(|&(du, v)| (g.mid + sg * du * s, (v + jitter(&mut rng, 0.004)) * s))
        .collect();
        let cl = spline(&cl, false, 6);
        bone.polyline(&cl, 0.026 * s, &[2.0], 1.0);
        bone.polyline(&cl, 0.012 * s, &[1.5], 1.0);
        // Humeral head at the shoulder.
        bone.fill_ellipse(
            crate::draw::Ellipse::new(g.mid + sg * 0.475 * s, 0.20 * s, 0.06 * s, 0.065 * s),
            &[1.8],
            1.0,
            3.0,
        );
    }
    bone.box_blur(1, 1);

    let mut vessels = layer();
    vessel_tree(&mut rng, &mut vessels, hila[0], Side::Right);
    vessel_tree(&mut rng, &mut vessels, hila[1], Side::Left);

    let mut pleura = layer();
    if let Some(side) = pneumothorax {
        let lc = &lung_cov[side.index()];
        let o = &g.collapsed[side.index()];
        for w in o.windows(2) {
            let inside = |p: Pt| {
                let (x, y) = (p.0 as i64, p.1 as i64);
                x >= 0
                    && y >= 0
                    && x < SIZE as i64
                    && y < SIZE as i64
                    && lc[(y as u32 * SIZE + x as u32) as usize] >= 0.999
            };
            if inside(w[0]) && inside(w[1]) {
                pleura.line(w[0], w[1], 1.3, &[1.0], 1.0);
            }
        }
    }

    let bubble = {
        let mut c = layer();
        let y = g.dome_top[1] + 0.065 * s;
        c.fill_ellipse(
            crate::draw::Ellipse::new(g.mid + 0.13 * s, y, 0.045 * s, 0.025 * s),
            &[1.0],
            1.0,
            4.0,
        );
        // Bowel gas low in the abdomen, well below both domes.
        for _ in 0..rng.random_range(3..8) {
            let e = crate::draw::Ellipse::new(
                rng.random_range(0.22..0.78f32) * s,
                rng.random_range(0.82..0.98f32) * s,
                rng.random_range(0.015..0.035f32) * s,
                rng.random_range(0.01..0.022f32) * s,
            )
            .rotated(rng.random_range(0.0..3.0f32));
            c.add_gaussian(e, &[rng.random_range(0.3..0.6f32)]);
        }
        c.data
    };

    let mut dens = vec![0.0f32; n];
    let spine_w = 0.036 * s;
    let vert = 0.046 * s;
    let vphase = rng.random_range(0.0..1.0f32);
    for y in 0..SIZE {
        let v = (y as f32 + 0.5) / s;
        for x in 0..SIZE {
            let i = (y * SIZE + x) as usize;
            let xf = x as f32 + 0.5;
            let u = xf / s;
            let thick = (1.0 - ((u - 0.5) / 0.5).powi(2)).max(0.0).sqrt();
            let tissue = body[i].max(arms[i] * 0.75);
            let mut d = tissue * (0.40 + 0.40 * thick) * (0.94 + 0.12 * tissue_noise[i]);
            d += tissue * 0.10 * smoothstep(0.62, 0.85, v);
            // The liver under the right hemidiaphragm is denser than the stomach side.
            d += tissue * 0.05 * smoothstep(0.6, 0.72, v) * (1.0 - smoothstep(0.45, 0.6, u));
            // Spine: vertebral bodies with disc spaces and pedicles.
            let dx = (xf - g.mid).abs();
            if dx < spine_w + 2.0 {
                let edge = 1.0 - smoothstep(spine_w - 2.0, spine_w + 2.0, dx);
                let ph = ((y as f32 / vert) + vphase).fract();
                let disc = smoothstep(0.0, 0.12, ph) * (1.0 - smoothstep(0.88, 1.0, ph));
                let ped =
                    (-((dx - 0.7 * spine_w).powi(2) / 8.0) - ((ph - 0.45).powi(2) / 0.02)).exp();
                d += edge * (0.08 + 0.06 * disc) * tissue + 0.06 * ped * tissue;
            }
            // Trachea and main bronchi: air.
            if v < 0.40 {
                let tw = 0.017 * s;
                let t = 1.0 - smoothstep(tw - 2.0, tw + 2.0, dx);
                d -= 0.25 * t * (1.0 - smoothstep(0.34, 0.40, v));
            }
            d += (0.03 * heart_soft[i].min(1.0) + 0.05 * heart_broad[i])
                * (1.0 - smoothstep(0.70, 0.76, v));
            d += 0.06 * knob[i];
            for h in &hila {
                let e =
                    ((xf - h.0) / (0.022 * s)).powi(2) + ((y as f32 - h.1) / (0.04 * s)).powi(2);
                if e < 9.0 {
                    d += 0.08 * (-0.5 * e).exp();
                }
            }
            d -= 0.56 * air[i];
            d += 0.05 * (lung_noise[i] - 0.5) * air[i];
            d += 0.12 * vessels.data[i].min(1.0) * vessel_keep[i];
            d += 0.06 * fluid[i];
            d += 0.14 * bone.data[i] * tissue;
            d += 0.22 * pleura.data[i];
            d -= 0.28 * bubble[i];
            dens[i] = d;
        }
    }
    for q in &nodules {
        let reach = q.r + 1.0;
        for y in (q.cy - reach).floor().max(0.0) as u32..((q.cy + reach).ceil() as u32).min(SIZE) {
            for x in
                (q.cx - reach).floor().max(0.0) as u32..((q.cx + reach).ceil() as u32).min(SIZE)
            {
                let dd = ((x as f32 + 0.5 - q.cx).powi(2) + (y as f32 + 0.5 - q.cy).powi(2)).sqrt();
                let t = (1.0 - (dd / q.r).powi(2)).max(0.0);
                let rim = (q.r + 0.5 - dd).clamp(0.0, 1.0);
                dens[(y * SIZE + x) as usize] += 0.26 * (0.35 + 0.65 * t.powf(0.5)) * rim;
            }
        }
    }

    // Exposure.
    let k = rng.random_range(1.55..1.8f32);
    let lift = rng.random_range(0.0..10.0f32);
    let mut film = Canvas {
        width: SIZE,
        height: SIZE,
        channels: 1,
        data: dens,
    };
    film.box_blur(1, 1);
    let grain = fractal_noise(SIZE, SIZE, 1.0, 1, &mut rng);
    for (v, g2) in film.data.iter_mut().zip(&grain) {
        *v = lift + 250.0 * (1.0 - (-k * v.max(0.0)).exp()) + 4.0 * (g2 - 0.5);
    }
    film.text((0.89 * s) as i64, (0.05 * s) as i64, "L", 3, &[235.0], 1.0);
    let image = film.to_pixels();

    // Findings, from the same shapes that were drawn.
    let mut findings = Vec::new();
    let heart_mask = mask_from_coverage(SIZE, SIZE, &heart_cov);
    findings.extend(finding("heart", 0, heart_mask.clone()));
    for q in &nodules {
        let m = mask_from_fn(SIZE, SIZE, |x, y| {
            (x as f32 + 0.5 - q.cx).powi(2) + (y as f32 + 0.5 - q.cy).powi(2) <= q.r * q.r
        });
        findings.extend(finding("nodule", 0, m));
    }
    if let Some(side) = effusion {
        let lc = &lung_cov[side.index()];
        let m = mask_from_fn(SIZE, SIZE, |x, y| {
            let i = (y * SIZE + x) as usize;
            lc[i] >= 0.5 && fluid[i] >= 0.5
        });
        findings.extend(finding("effusion", 0, m));
    }
    if let Some(side) = pneumothorax {
        let (lc, cc) = (&lung_cov[side.index()], &coll_cov[side.index()]);
        let m = mask_from_fn(SIZE, SIZE, |x, y| {
            let i = (y * SIZE + x) as usize;
            lc[i] >= 0.5 && cc[i] < 0.5
        });
        findings.extend(finding("pneumothorax", 0, m));
    }
    let lungs = [
        mask_from_coverage(SIZE, SIZE, &lung_cov[0]),
        mask_from_coverage(SIZE, SIZE, &lung_cov[1]),
    ];
    let ctr = measured_ctr(&heart_mask, &lungs);
    if cardiomegaly {
        findings.extend(finding("cardiomegaly", 0, heart_mask));
    }
    let effusion = effusion.filter(|_| findings.iter().any(|f| f.label == "effusion"));
    let pneumothorax = pneumothorax.filter(|_| findings.iter().any(|f| f.label == "pneumothorax"));
    Drawn {
        case: Case {
            key: format!("cxr/{index:04}"),
            images: vec![image],
            findings,
        },
        nodules,
        effusion,
        pneumothorax,
        ctr,
        lungs,
        rng_state: rng,
    }
}

/// Heart mask width over the inner chest width (outer edges of the two lung masks).
pub(crate) fn measured_ctr(heart: &GrayImage, lungs: &[GrayImage; 2]) -> f64 {
    let width = |m: &GrayImage| mask_bbox(m).map(|b| (b.x1, b.x2));
    match (width(heart), width(&lungs[0]), width(&lungs[1])) {
        (Some((h0, h1)), Some((r0, _)), Some((_, l1))) if l1 > r0 => (h1 - h0) / (l1 - r0),
        _ => 0.0,
    }
}

mod builders;
mod templates;

use builders::*;

#[cfg(test)]
mod tests;
