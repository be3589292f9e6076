//! Geometric perturbations, which move content and so move ground-truth boxes with it:
//! rotate, shift, zoom (crop), horizontal and vertical flip. Also the affine machinery the
//! CXR patient-rotation and the Kvasir-VQA-x1 recipe reuse.
//!
//! Conventions (docs/design.md §4):
//! - The output has the input's size. Zoom crops a window and scales it back up to the
//!   full frame; rotate and shift keep the frame and fill what the source no longer covers
//!   with black (0), as torchvision's and albumentations' defaults do.
//! - Pixels are resampled once, bilinearly, through the inverse of the same [`Affine`] that
//!   maps the boxes.
//! - A box maps to the axis-aligned hull of its mapped outline clipped to the image (the
//!   polygon is clipped first, so a rotated box the border cuts does not over-reach).
//!   A box that ends up entirely outside the image maps to `None`: the caller drops it
//!   (`medvqa perturb` counts dropped boxes in the sample's `meta.boxes_dropped`).
//! - Flips map boxes exactly.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::raster::with_data;
use super::{ANY, Apply, ApplyError, Family, Modality, Perturbation, Perturbed};
use crate::geometry::BBox;
use crate::pixels::Pixels;

/// Rotation angle in degrees; the sign is drawn from the seed.
const ROTATE_DEG: [f32; 5] = [3.0, 6.0, 10.0, 15.0, 22.0];
/// Shift as a fraction of the image size, along a direction drawn from the seed.
const SHIFT_FRACTION: [f32; 5] = [0.03, 0.06, 0.1, 0.14, 0.2];
/// Side of the crop window as a fraction of the image side; its place is drawn from the
/// seed.
const ZOOM_WINDOW: [f32; 5] = [0.9, 0.8, 0.7, 0.6, 0.5];

fn at(table: &[f32; 5], severity: u8) -> f32 {
    table[(severity.clamp(1, 5) - 1) as usize]
}

pub const ROTATE: Perturbation = Perturbation {
    name: "rotate",
    family: Family::Geometric,
    summary: "rotation about the centre, random direction; corners filled black; boxes mapped",
    modalities: ANY,
    levels: 5,
    seeded: true,
    geometric: true,
    parameter: "angle, degrees (sign from the seed)",
    table: |s| format!("±{}", at(&ROTATE_DEG, s)),
    apply: Apply::Image(rotate),
};

pub const SHIFT: Perturbation = Perturbation {
    name: "shift",
    family: Family::Geometric,
    summary: "translation in a random direction; uncovered band filled black; boxes mapped",
    modalities: ANY,
    levels: 5,
    seeded: true,
    geometric: true,
    parameter: "distance, fraction of the image size",
    table: |s| format!("{}", at(&SHIFT_FRACTION, s)),
    apply: Apply::Image(shift),
};

pub const ZOOM: Perturbation = Perturbation {
    name: "zoom",
    family: Family::Geometric,
    summary: "crop a window at a random place and scale it back to full size; boxes mapped",
    modalities: ANY,
    levels: 5,
    seeded: true,
    geometric: true,
    parameter: "window side, fraction of the image side",
    table: |s| format!("{}", at(&ZOOM_WINDOW, s)),
    apply: Apply::Image(zoom),
};

pub const FLIP_H: Perturbation = Perturbation {
    name: "flip-h",
    family: Family::Geometric,
    summary: "mirror left-right (one level); boxes mapped exactly; laterality answers change",
    modalities: ANY,
    levels: 1,
    seeded: false,
    geometric: true,
    parameter: "axis",
    table: |_| "vertical axis".to_string(),
    apply: Apply::Image(flip_h),
};

pub const FLIP_V: Perturbation = Perturbation {
    name: "flip-v",
    family: Family::Geometric,
    summary: "mirror top-bottom (one level); boxes mapped exactly",
    modalities: &[Modality::Endoscopy, Modality::Video],
    levels: 1,
    seeded: false,
    geometric: true,
    parameter: "axis",
    table: |_| "horizontal axis".to_string(),
    apply: Apply::Image(flip_v),
};

/// A 2-D affine map of continuous pixel coordinates (origin at the top-left corner of the
/// top-left pixel): `x' = a·x + b·y + c`, `y' = d·x + e·y + f`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub [f64; 6]);

impl Affine {
    pub const IDENTITY: Affine = Affine([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);

    pub fn translate(tx: f64, ty: f64) -> Affine {
        Affine([1.0, 0.0, tx, 0.0, 1.0, ty])
    }

    pub fn scale(sx: f64, sy: f64) -> Affine {
        Affine([sx, 0.0, 0.0, 0.0, sy, 0.0])
    }

    /// Rotation by `radians` about `(cx, cy)`; positive turns clockwise on screen (y down).
    pub fn rotate_about(radians: f64, cx: f64, cy: f64) -> Affine {
        let (s, c) = radians.sin_cos();
        Affine::translate(-cx, -cy)
            .then(&Affine([c, -s, 0.0, s, c, 0.0]))
            .then(&Affine::translate(cx, cy))
    }

    /// `self` first, then `next`.
    pub fn then(&self, next: &Affine) -> Affine {
        let [a, b, c, d, e, f] = self.0;
        let [a2, b2, c2, d2, e2, f2] = next.0;
        Affine([
            a2 * a + b2 * d,
            a2 * b + b2 * e,
            a2 * c + b2 * f + c2,
            d2 * a + e2 * d,
            d2 * b + e2 * e,
            d2 * c + e2 * f + f2,
        ])
    }

    pub fn map(&self, x: f64, y: f64) -> (f64, f64) {
        let [a, b, c, d, e, f] = self.0;
        (a * x + b * y + c, d * x + e * y + f)
    }

    /// The inverse map; `None` when the map is singular.
    pub fn inverse(&self) -> Option<Affine> {
        let [a, b, c, d, e, f] = self.0;
        let det = a * e - b * d;
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let (ia, ib, id, ie) = (e / det, -b / det, -d / det, a / det);
        Some(Affine([
            ia,
            ib,
            -(ia * c + ib * f),
            id,
            ie,
            -(id * c + ie * f),
        ]))
    }
}

/// How a perturbation moved the content, for moving boxes with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BoxMap {
    /// Content stays where it was.
    Identity,
    /// Content moved by `to_output`, from a `src`-sized image to a `dst`-sized one
    /// (`(width, height)` in pixels).
    Affine {
        to_output: Affine,
        src: (u32, u32),
        dst: (u32, u32),
    },
}

impl BoxMap {
    /// Where box `b` (normalised on the input) lies on the output: the hull of its mapped
    /// outline clipped to the output. `None` when nothing of it lies inside the output.
    pub fn apply(&self, b: &BBox) -> Option<BBox> {
        let BoxMap::Affine {
            to_output,
            src,
            dst,
        } = self
        else {
            return Some(*b);
        };
        let (sw, sh) = (src.0 as f64, src.1 as f64);
        let (dw, dh) = (dst.0.max(1) as f64, dst.1.max(1) as f64);
        // The box's corners in order around it, mapped: a convex quadrilateral.
        let corners = [(b.x1, b.y1), (b.x2, b.y1), (b.x2, b.y2), (b.x1, b.y2)];
        let quad: Vec<(f64, f64)> = corners
            .iter()
            .map(|&(x, y)| {
                let (u, v) = to_output.map(x * sw, y * sh);
                (u / dw, v / dh)
            })
            .collect();
        // Clip the polygon to the image first, then take its hull: the hull of the
        // unclipped corners, clipped, over-reaches where the border cuts a rotated box.
        let clipped = clip_to_unit_square(quad);
        let (mut x1, mut y1, mut x2, mut y2) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for &(u, v) in &clipped {
            x1 = x1.min(u);
            y1 = y1.min(v);
            x2 = x2.max(u);
            y2 = y2.max(v);
        }
        if clipped.len() < 3 || x2 <= x1 || y2 <= y1 {
            return None;
        }
        BBox::new(x1, y1, x2, y2).ok().map(BBox::rounded)
    }

    /// Moves a same-size mask (or any image) the way the perturbation moved the pixels,
    /// with the same resampling: tests check phantom findings against mapped boxes with it.
    pub fn warp(&self, p: &Pixels) -> Pixels {
        match self {
            BoxMap::Identity => p.clone(),
            BoxMap::Affine { to_output, dst, .. } => warp(p, to_output, *dst),
        }
    }
}

/// Sutherland–Hodgman: the part of the convex polygon `poly` inside `[0, 1]²`.
fn clip_to_unit_square(mut poly: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    // Each edge of the square as (inside test, intersection with the edge's line).
    type Inside = fn((f64, f64)) -> bool;
    let edges: [(Inside, usize, f64); 4] = [
        (|p| p.0 >= 0.0, 0, 0.0),
        (|p| p.0 <= 1.0, 0, 1.0),
        (|p| p.1 >= 0.0, 1, 0.0),
        (|p| p.1 <= 1.0, 1, 1.0),
    ];
    for (inside, axis, at) in edges {
        if poly.is_empty() {
            break;
        }
        let cross = |a: (f64, f64), b: (f64, f64)| {
            let (pa, pb) = if axis == 0 { (a.0, b.0) } else { (a.1, b.1) };
            let t = (at - pa) / (pb - pa);
            let p = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
            // Exactly on the edge, whatever the rounding of t.
            if axis == 0 { (at, p.1) } else { (p.0, at) }
        };
        let mut out = Vec::with_capacity(poly.len() + 2);
        for i in 0..poly.len() {
            let (cur, prev) = (poly[i], poly[(i + poly.len() - 1) % poly.len()]);
            match (inside(prev), inside(cur)) {
                (true, true) => out.push(cur),
                (true, false) => out.push(cross(prev, cur)),
                (false, true) => {
                    out.push(cross(prev, cur));
                    out.push(cur);
                }
                (false, false) => {}
            }
        }
        poly = out;
    }
    poly
}

/// Resamples `p` through `to_output` into a `dst`-sized image: bilinear, black outside the
/// source. Source positions step in 16.16 fixed point and weights are 8-bit, so the result
/// is exact integer arithmetic; a whole-pixel translation copies rows instead, and a map
/// without rotation or shear (a zoom) runs as two 1-D passes that give the same bytes.
pub fn warp(p: &Pixels, to_output: &Affine, dst: (u32, u32)) -> Pixels {
    let [a, b, c, d, e, f] = to_output.0;
    let whole = |v: f64| v.fract() == 0.0 && v.abs() < 1e9;
    if (a, b, d, e) == (1.0, 0.0, 0.0, 1.0) && whole(c) && whole(f) && p.dimensions() == dst {
        return translate(p, c as i64, f as i64);
    }
    let Some(inv) = to_output.inverse() else {
        return blank_like(p, dst);
    };
    let separable = inv.0[1] == 0.0 && inv.0[3] == 0.0 && p.width() >= 2 && p.height() >= 2;
    let data = crate::simd::run(
        #[inline(always)]
        || match (p.channels(), separable) {
            (1, true) => warp_separable::<1>(p, &inv, dst),
            (_, true) => warp_separable::<3>(p, &inv, dst),
            (1, false) => warp_n::<1>(p, &inv, dst),
            (_, false) => warp_n::<3>(p, &inv, dst),
        },
    );
    make(p, dst, data)
}

/// Where output pixel centres fall in the source along one axis, as `warp_n` steps them:
/// 16.16 fixed point from `start`, `step` per pixel.
#[inline(always)]
fn fixed(v: f64) -> i64 {
    (v * 65536.0).round() as i64
}

/// The two source taps of one output column (or row) of a separable warp: the samples at
/// `i` and `i + 1` with 8-bit weights, a tap outside the source weighing 0 as in `warp_n`;
/// `None` when the output pixel lies wholly outside (it stays black).
#[inline(always)]
fn taps_1d(pos: i64, n: i64) -> Option<(usize, u32, u32)> {
    let (i0, w) = (pos >> 16, ((pos >> 8) & 255) as u32);
    if i0 < -1 || i0 >= n {
        return None;
    }
    Some(if i0 == -1 {
        (0, w, 0)
    } else if i0 == n - 1 {
        ((n - 2) as usize, 0, 256 - w)
    } else {
        (i0 as usize, 256 - w, w)
    })
}

/// [`warp_n`] for maps without rotation or shear: a horizontal 2-tap pass per source row
/// (16-bit, each row computed once and kept while output rows use it), then a vertical
/// 2-tap pass per output row that vectorises. `Σ wx·wy·s` factors exactly, so the bytes
/// equal `warp_n`'s. Needs a source of at least 2×2.
#[inline(always)]
fn warp_separable<const CH: usize>(p: &Pixels, inv: &Affine, dst: (u32, u32)) -> Vec<u8> {
    let (sw, sh) = (p.width() as i64, p.height() as i64);
    let (dw, dh) = (dst.0 as usize, dst.1 as usize);
    let src = p.as_raw();
    let stride = sw as usize * CH;
    let [a, _, c, _, e, f] = inv.0;
    let (x_start, x_step) = (fixed(a * 0.5 + c - 0.5), fixed(a));
    let cols: Vec<Option<(usize, u32, u32)>> = (0..dw as i64)
        .map(|x| taps_1d(x_start + x * x_step, sw))
        .collect();
    let mut out = vec![0u8; dw * dh * CH];
    // Two horizontally resampled source rows, tagged with the row they hold.
    let mut rows: [(usize, Vec<u16>); 2] = [
        (usize::MAX, vec![0; dw * CH]),
        (usize::MAX, vec![0; dw * CH]),
    ];
    let plan = crate::simd::TwoTapPlan::new(&cols, CH, stride);
    let horizontal = |sy: usize, buf: &mut [u16]| {
        let line = &src[sy * stride..(sy + 1) * stride];
        if let Some(plan) = &plan
            && plan.row(line, buf)
        {
            return;
        }
        for (h, col) in buf.chunks_exact_mut(CH).zip(&cols) {
            match *col {
                Some((i, wl, wr)) => {
                    let s = &line[i * CH..(i + 2) * CH];
                    for k in 0..CH {
                        h[k] = (u32::from(s[k]) * wl + u32::from(s[CH + k]) * wr) as u16;
                    }
                }
                None => h.fill(0),
            }
        }
    };
    for (y, orow) in out.chunks_exact_mut(dw * CH).enumerate() {
        let Some((sy, wt, wb)) = taps_1d(fixed(e * (y as f64 + 0.5) + f - 0.5), sh) else {
            continue;
        };
        for (slot, want) in [sy, sy + 1].into_iter().enumerate() {
            if rows[slot].0 != want {
                // The row may already sit in the other slot (the previous output row's).
                if rows[1 - slot].0 == want {
                    rows.swap(0, 1);
                } else {
                    horizontal(want, &mut rows[slot].1);
                    rows[slot].0 = want;
                }
            }
        }
        let (top, bottom) = (&rows[0].1, &rows[1].1);
        for ((o, &t), &b) in orow.iter_mut().zip(top).zip(bottom) {
            *o = ((u32::from(t) * wt + u32::from(b) * wb + (1 << 15)) >> 16) as u8;
        }
    }
    out
}

/// The general bilinear warp, one output row at a time: through [`crate::simd::bilinear_row`]
/// (16 interior pixels at a time with AVX-512) where the CPU allows, else pixel by pixel
/// through [`warp_pixel`].
#[inline(always)]
fn warp_n<const CH: usize>(p: &Pixels, inv: &Affine, dst: (u32, u32)) -> Vec<u8> {
    let (sw, sh) = (p.width() as i64, p.height() as i64);
    let (dw, dh) = (dst.0 as usize, dst.1 as usize);
    let src = p.as_raw();
    let mut out = vec![0u8; dw * dh * CH];
    let [a, b, c, d, e, f] = inv.0;
    let (dfx, dfy) = (fixed(a), fixed(d));
    let source = crate::simd::Source {
        data: src,
        width: sw as usize,
        height: sh as usize,
    };
    for (y, row) in out.chunks_exact_mut(dw * CH).enumerate() {
        let yc = y as f64 + 0.5;
        // Source position of the first pixel centre, shifted so that integer values are
        // source pixel centres.
        let fx = fixed(a * 0.5 + b * yc + c - 0.5);
        let fy = fixed(d * 0.5 + e * yc + f - 0.5);
        if crate::simd::bilinear_row::<CH>(&source, (fx, fy), (dfx, dfy), row, |x, o| {
            warp_pixel::<CH>(src, sw, sh, fx + x as i64 * dfx, fy + x as i64 * dfy, o)
        }) {
            continue;
        }
        let (mut fx, mut fy) = (fx, fy);
        for o in row.chunks_exact_mut(CH) {
            warp_pixel::<CH>(src, sw, sh, fx, fy, o);
            fx += dfx;
            fy += dfy;
        }
    }
    out
}

/// One output pixel of [`warp_n`] at source position `(fx, fy)` (16.16 fixed point): bilinear
/// with 8-bit weights, taps outside the source black, untouched wholly outside.
#[inline(always)]
fn warp_pixel<const CH: usize>(src: &[u8], sw: i64, sh: i64, fx: i64, fy: i64, o: &mut [u8]) {
    let stride = sw as usize * CH;
    let (x0, y0) = (fx >> 16, fy >> 16);
    let wx = ((fx >> 8) & 255) as u32;
    let wy = ((fy >> 8) & 255) as u32;
    // Unsigned bounds for the interior test: all four taps inside the source.
    if (x0 as u64) < (sw - 1) as u64 && (y0 as u64) < (sh - 1) as u64 {
        // Interior: two slices of two pixels each, so the tap reads need no further bounds
        // checks; blended across, then down (the same integer sum).
        let i = y0 as usize * stride + x0 as usize * CH;
        let top = &src[i..i + 2 * CH];
        let bottom = &src[i + stride..i + stride + 2 * CH];
        for k in 0..CH {
            let t = u32::from(top[k]) * (256 - wx) + u32::from(top[CH + k]) * wx;
            let b = u32::from(bottom[k]) * (256 - wx) + u32::from(bottom[CH + k]) * wx;
            o[k] = ((t * (256 - wy) + b * wy + (1 << 15)) >> 16) as u8;
        }
    } else if x0 >= -1 && y0 >= -1 && x0 < sw && y0 < sh {
        // On the border: taps outside the source count as black.
        let w00 = (256 - wx) * (256 - wy);
        let w10 = wx * (256 - wy);
        let w01 = (256 - wx) * wy;
        let w11 = wx * wy;
        let mut acc = [0u32; CH];
        for (xx, yy, wgt) in [
            (x0, y0, w00),
            (x0 + 1, y0, w10),
            (x0, y0 + 1, w01),
            (x0 + 1, y0 + 1, w11),
        ] {
            if wgt > 0 && xx >= 0 && yy >= 0 && xx < sw && yy < sh {
                let i = yy as usize * stride + xx as usize * CH;
                for k in 0..CH {
                    acc[k] += u32::from(src[i + k]) * wgt;
                }
            }
        }
        for k in 0..CH {
            o[k] = ((acc[k] + (1 << 15)) >> 16).min(255) as u8;
        }
    }
}

/// Moves the image by whole pixels, copying rows; uncovered pixels are black.
fn translate(p: &Pixels, tx: i64, ty: i64) -> Pixels {
    let (w, h) = (p.width() as i64, p.height() as i64);
    let ch = p.channels();
    let src = p.as_raw();
    let mut out = vec![0u8; src.len()];
    let (x_lo, x_hi) = (tx.clamp(0, w), (w + tx).clamp(0, w));
    if x_lo < x_hi {
        for y in 0..h {
            let sy = y - ty;
            if sy < 0 || sy >= h {
                continue;
            }
            let d0 = (y * w + x_lo) as usize * ch;
            let s0 = (sy * w + x_lo - tx) as usize * ch;
            let n = (x_hi - x_lo) as usize * ch;
            out[d0..d0 + n].copy_from_slice(&src[s0..s0 + n]);
        }
    }
    with_data(p, out)
}

fn blank_like(p: &Pixels, dst: (u32, u32)) -> Pixels {
    make(
        p,
        dst,
        vec![0u8; dst.0 as usize * dst.1 as usize * p.channels()],
    )
}

fn make(like: &Pixels, dst: (u32, u32), data: Vec<u8>) -> Pixels {
    if like.dimensions() == dst {
        return with_data(like, data);
    }
    match like {
        Pixels::Gray(_) => Pixels::Gray(
            image::GrayImage::from_raw(dst.0, dst.1, data)
                .unwrap_or_else(|| image::GrayImage::new(dst.0, dst.1)),
        ),
        Pixels::Rgb(_) => Pixels::Rgb(
            image::RgbImage::from_raw(dst.0, dst.1, data)
                .unwrap_or_else(|| image::RgbImage::new(dst.0, dst.1)),
        ),
    }
}

/// Warps `p` through `m` into its own frame and returns the result with its box map.
pub fn apply_affine(p: &Pixels, m: Affine) -> Perturbed {
    let dims = p.dimensions();
    Perturbed {
        pixels: warp(p, &m, dims),
        map: BoxMap::Affine {
            to_output: m,
            src: dims,
            dst: dims,
        },
    }
}

fn centre(p: &Pixels) -> (f64, f64) {
    (p.width() as f64 / 2.0, p.height() as f64 / 2.0)
}

fn random_sign(rng: &mut ChaCha8Rng) -> f64 {
    if rng.random::<bool>() { 1.0 } else { -1.0 }
}

fn rotate(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let deg = at(&ROTATE_DEG, s) as f64 * random_sign(rng);
    let (cx, cy) = centre(p);
    Ok(apply_affine(
        p,
        Affine::rotate_about(deg.to_radians(), cx, cy),
    ))
}

fn shift(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let dist = at(&SHIFT_FRACTION, s) as f64;
    let dir = rng.random_range(0.0..std::f64::consts::TAU);
    // Whole pixels, so the content is copied rather than resampled.
    let tx = (dist * dir.cos() * p.width() as f64).round();
    let ty = (dist * dir.sin() * p.height() as f64).round();
    Ok(apply_affine(p, Affine::translate(tx, ty)))
}

fn zoom(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let f = at(&ZOOM_WINDOW, s) as f64;
    let (w, h) = (p.width() as f64, p.height() as f64);
    let x0 = rng.random::<f64>() * w * (1.0 - f);
    let y0 = rng.random::<f64>() * h * (1.0 - f);
    let m = Affine::translate(-x0, -y0).then(&Affine::scale(1.0 / f, 1.0 / f));
    Ok(apply_affine(p, m))
}

fn flip_h(p: &Pixels, _s: u8, _rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let w = (p.width() as usize).max(1);
    let ch = p.channels();
    let out = crate::simd::mirror_rows(p.as_raw(), w, ch);
    Ok(Perturbed {
        pixels: with_data(p, out),
        map: BoxMap::Affine {
            to_output: Affine([-1.0, 0.0, w as f64, 0.0, 1.0, 0.0]),
            src: p.dimensions(),
            dst: p.dimensions(),
        },
    })
}

fn flip_v(p: &Pixels, _s: u8, _rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let h = p.height() as usize;
    let stride = (p.width() as usize * p.channels()).max(1);
    let src = p.as_raw();
    // Rows appended bottom-up into an uninitialised buffer: one memcpy per row.
    let mut out = Vec::with_capacity(src.len());
    for row in src.chunks_exact(stride).rev() {
        out.extend_from_slice(row);
    }
    Ok(Perturbed {
        pixels: with_data(p, out),
        map: BoxMap::Affine {
            to_output: Affine([1.0, 0.0, 0.0, 0.0, -1.0, h as f64]),
            src: p.dimensions(),
            dst: p.dimensions(),
        },
    })
}

#[cfg(test)]
mod tests;
