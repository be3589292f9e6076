//! The chest's anatomy: lung and heart outlines, jittered per case into a geometry with a target cardiothoracic ratio.

use super::*;

pub(super) type Pt = (f32, f32);

/// Control points of the patient's right lung (image left) in normalised units: the medial
/// border from the cardiophrenic angle up to the apex and down the lateral wall to the
/// costophrenic angle, with each point's share of the collapse in a pneumothorax.
pub(super) const LUNG_WALL: [(f32, f32, f32); 15] = [
    (0.445, 0.685, 0.0),
    (0.437, 0.600, 0.0),
    (0.432, 0.500, 0.1),
    (0.438, 0.400, 0.2),
    (0.445, 0.300, 0.35),
    (0.430, 0.215, 0.7),
    (0.385, 0.165, 1.0),
    (0.330, 0.150, 1.0),
    (0.260, 0.175, 1.0),
    (0.195, 0.245, 1.0),
    (0.148, 0.340, 1.0),
    (0.121, 0.450, 1.0),
    (0.106, 0.560, 1.0),
    (0.100, 0.660, 0.8),
    (0.106, 0.740, 0.5),
];

/// The hemidiaphragm from the costophrenic angle to the medial end.
pub(super) const LUNG_DOME: [(f32, f32, f32); 5] = [
    (0.160, 0.700, 0.2),
    (0.220, 0.665, 0.0),
    (0.290, 0.650, 0.0),
    (0.360, 0.660, 0.0),
    (0.410, 0.675, 0.0),
];

/// The cardiac silhouette before it is scaled to the case's cardiothoracic ratio.
pub(super) const HEART: [Pt; 14] = [
    (0.455, 0.460),
    (0.425, 0.520),
    (0.418, 0.580),
    (0.428, 0.655),
    (0.470, 0.700),
    (0.560, 0.715),
    (0.640, 0.705),
    (0.675, 0.665),
    (0.668, 0.600),
    (0.640, 0.530),
    (0.605, 0.500),
    (0.575, 0.455),
    (0.552, 0.435),
    (0.500, 0.430),
];

pub(super) struct Geometry {
    /// Outline, collapsed outline (for a pneumothorax), per side.
    pub(super) lung: [Vec<Pt>; 2],
    pub(super) collapsed: [Vec<Pt>; 2],
    pub(super) heart: Vec<Pt>,
    /// Image x of the spine's centre.
    pub(super) mid: f32,
    /// Top of each hemidiaphragm dome (image y).
    pub(super) dome_top: [f32; 2],
}

pub(super) fn jitter<R: Rng>(rng: &mut R, a: f32) -> f32 {
    rng.random_range(-a..=a)
}

pub(super) fn build_geometry<R: Rng>(rng: &mut R, ctr_target: f32, ptx_f: f32) -> Geometry {
    let s = SIZE as f32;
    let mid = 0.5 + jitter(rng, 0.012);
    let sv = rng.random_range(0.95..1.05f32);
    let sh = rng.random_range(0.96..1.04f32);
    let mut lung: [Vec<Pt>; 2] = [Vec::new(), Vec::new()];
    let mut collapsed: [Vec<Pt>; 2] = [Vec::new(), Vec::new()];
    let mut dome_top = [0.0f32; 2];
    for side in SIDES {
        let dome_drop = match side {
            Side::Right => 0.0,
            Side::Left => rng.random_range(0.015..0.035f32),
        } + jitter(rng, 0.012);
        let anchor = (0.38f32, 0.66f32);
        let mut wall = Vec::new();
        let mut wall_c = Vec::new();
        let place = |u: f32, v: f32, w: f32, dome: bool, rng: &mut R| -> (Pt, Pt) {
            let (ju, jv) = (jitter(rng, 0.006), jitter(rng, 0.006));
            let v = if dome { v + dome_drop } else { v };
            let uu = 0.5 - (0.5 - u) * sh + ju;
            let vv = 0.15 + (v - 0.15) * sv + jv;
            let cu = uu + w * (1.0 - ptx_f) * (anchor.0 - uu);
            let cv = vv + w * (1.0 - ptx_f) * (anchor.1 + dome_drop - vv);
            let img = |u: f32, v: f32| ((mid + side.sign() * (0.5 - u)) * s, v * s);
            (img(uu, vv), img(cu, cv))
        };
        for &(u, v, w) in &LUNG_WALL {
            let (p, c) = place(u, v, w, false, rng);
            wall.push(p);
            wall_c.push(c);
        }
        let cp = *wall.last().unwrap_or(&(0.0, 0.0));
        let cp_c = *wall_c.last().unwrap_or(&(0.0, 0.0));
        let mut dome = vec![cp];
        let mut dome_c = vec![cp_c];
        for &(u, v, w) in &LUNG_DOME {
            let (p, c) = place(u, v, w, true, rng);
            dome.push(p);
            dome_c.push(c);
        }
        dome.push(wall[0]);
        dome_c.push(wall_c[0]);
        dome_top[side.index()] = dome.iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
        let mut outline = spline(&wall, false, 6);
        outline.extend(spline(&dome, false, 6).into_iter().skip(1));
        let mut outline_c = spline(&wall_c, false, 6);
        outline_c.extend(spline(&dome_c, false, 6).into_iter().skip(1));
        lung[side.index()] = outline;
        collapsed[side.index()] = outline_c;
    }
    // Scale the heart about a point left of the midline until its width is the target
    // share of the inner chest width.
    let lo = lung[0].iter().map(|p| p.0).fold(f32::INFINITY, f32::min);
    let hi = lung[1]
        .iter()
        .map(|p| p.0)
        .fold(f32::NEG_INFINITY, f32::max);
    let raw: Vec<Pt> = HEART
        .iter()
        .map(|&(u, v)| {
            (
                (u + mid - 0.5 + jitter(rng, 0.004)) * s,
                (v + jitter(rng, 0.004)) * s,
            )
        })
        .collect();
    let raw = spline(&raw, true, 6);
    let hw = raw.iter().map(|p| p.0).fold(f32::NEG_INFINITY, f32::max)
        - raw.iter().map(|p| p.0).fold(f32::INFINITY, f32::min);
    let sx = ctr_target * (hi - lo) / hw.max(1.0);
    let sy = 1.0 + (sx - 1.25).max(0.0) * 0.25;
    let ax = (mid - 0.01) * s;
    let ay = 0.70 * s;
    let heart = raw
        .iter()
        .map(|&(x, y)| (ax + (x - ax) * sx, ay + (y - ay) * sy))
        .collect();
    Geometry {
        lung,
        collapsed,
        heart,
        mid: mid * s,
        dome_top,
    }
}

/// Where a horizontal line at `y` crosses `outline`: the smallest and largest x.
pub(super) fn outline_span(outline: &[Pt], y: f32) -> Option<(f32, f32)> {
    let mut lo = f32::INFINITY;
    let mut hi = f32::NEG_INFINITY;
    for i in 0..outline.len() {
        let a = outline[i];
        let b = outline[(i + 1) % outline.len()];
        if (a.1 <= y) != (b.1 <= y) {
            let x = a.0 + (y - a.1) * (b.0 - a.0) / (b.1 - a.1);
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    (lo <= hi).then_some((lo, hi))
}
