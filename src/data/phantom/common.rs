//! Helpers every phantom set shares: the per-case RNG seed, exact masks and their tight
//! boxes, antialiased polygon coverage and smooth outlines.
//!
//! A mask is the set of pixels whose shape coverage is at least one half, so a finding's
//! mask and its drawn pixels agree to the antialiased rim; its box is the tight hull of the
//! mask's pixels in the normalised frame.

use image::{GrayImage, Luma};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::{Finding, PhantomSet};
use crate::geometry::BBox;

/// The RNG of one case: ChaCha8 seeded with the first 8 bytes (little-endian) of
/// `SHA-256("medvqa/phantom/v1|{seed}|{set}|{index}")`.
pub fn case_rng(set: PhantomSet, seed: u64, index: usize) -> ChaCha8Rng {
    let text = format!("medvqa/phantom/v1|{seed}|{}|{index}", set.name());
    let digest = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    ChaCha8Rng::seed_from_u64(u64::from_le_bytes(first))
}

/// A `w`×`h` mask that is 255 where `inside(x, y)` holds.
pub fn mask_from_fn(w: u32, h: u32, mut inside: impl FnMut(u32, u32) -> bool) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| Luma([if inside(x, y) { 255 } else { 0 }]))
}

/// A mask from a row-major coverage map: 255 where coverage is at least one half.
pub fn mask_from_coverage(w: u32, h: u32, cov: &[f32]) -> GrayImage {
    mask_from_fn(w, h, |x, y| cov[(y * w + x) as usize] >= 0.5)
}

/// Number of set pixels.
pub fn mask_area(mask: &GrayImage) -> usize {
    mask.as_raw().iter().filter(|&&v| v > 0).count()
}

/// The tight normalised box around the mask's set pixels; `None` for an empty mask.
pub fn mask_bbox(mask: &GrayImage) -> Option<BBox> {
    let (w, h) = mask.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0u32, 0u32);
    for (x, y, p) in mask.enumerate_pixels() {
        if p.0[0] > 0 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    if x0 == u32::MAX {
        return None;
    }
    let (fw, fh) = (w as f64, h as f64);
    BBox::new(
        x0 as f64 / fw,
        y0 as f64 / fh,
        (x1 + 1) as f64 / fw,
        (y1 + 1) as f64 / fh,
    )
    .ok()
    .map(BBox::rounded)
}

/// The mask's centroid in pixels; `None` for an empty mask.
pub fn mask_centroid(mask: &GrayImage) -> Option<(f64, f64)> {
    let (mut sx, mut sy, mut n) = (0.0, 0.0, 0usize);
    for (x, y, p) in mask.enumerate_pixels() {
        if p.0[0] > 0 {
            sx += x as f64 + 0.5;
            sy += y as f64 + 0.5;
            n += 1;
        }
    }
    (n > 0).then(|| (sx / n as f64, sy / n as f64))
}

/// A finding from its mask, with the box derived from the mask; `None` when the mask is
/// empty (the finding is not visible in that image).
pub fn finding(label: &str, image: usize, mask: GrayImage) -> Option<Finding> {
    let bbox = mask_bbox(&mask)?;
    Some(Finding {
        label: label.to_string(),
        image,
        bbox,
        mask,
    })
}

/// Clears every mask pixel where `keep` is 0.
pub fn mask_intersect(mask: &mut GrayImage, keep: &GrayImage) {
    for (m, k) in mask.as_mut().iter_mut().zip(keep.as_raw()) {
        if *k == 0 {
            *m = 0;
        }
    }
}

/// Clears every mask pixel where `cut` is set.
pub fn mask_subtract(mask: &mut GrayImage, cut: &GrayImage) {
    for (m, c) in mask.as_mut().iter_mut().zip(cut.as_raw()) {
        if *c > 0 {
            *m = 0;
        }
    }
}

/// Antialiased coverage in [0, 1] of a closed polygon (even-odd rule) over a `w`×`h` grid,
/// row-major: four sub-scanlines per row, exact horizontal span coverage.
pub fn polygon_coverage(w: u32, h: u32, pts: &[(f32, f32)]) -> Vec<f32> {
    const SUB: usize = 4;
    let (wu, hu) = (w as usize, h as usize);
    let mut cov = vec![0.0f32; wu * hu];
    if pts.len() < 3 || wu == 0 {
        return cov;
    }
    let ymin = pts.iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
    let ymax = pts.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
    let y0 = ymin.floor().max(0.0) as usize;
    let y1 = (ymax.ceil().max(0.0) as usize).min(hu);
    let mut xs: Vec<f32> = Vec::new();
    let wgt = 1.0 / SUB as f32;
    for y in y0..y1 {
        let row = &mut cov[y * wu..(y + 1) * wu];
        for s in 0..SUB {
            let sy = y as f32 + (s as f32 + 0.5) * wgt;
            xs.clear();
            for i in 0..pts.len() {
                let a = pts[i];
                let b = pts[(i + 1) % pts.len()];
                if (a.1 <= sy) != (b.1 <= sy) {
                    xs.push(a.0 + (sy - a.1) * (b.0 - a.0) / (b.1 - a.1));
                }
            }
            xs.sort_by(f32::total_cmp);
            for pair in xs.chunks_exact(2) {
                add_span(row, pair[0], pair[1], wgt);
            }
        }
    }
    cov
}

fn add_span(row: &mut [f32], xa: f32, xb: f32, wgt: f32) {
    let n = row.len() as f32;
    let (xa, xb) = (xa.clamp(0.0, n), xb.clamp(0.0, n));
    if xb <= xa {
        return;
    }
    let ia = xa.floor() as usize;
    let ib = xb.floor() as usize;
    if ia == ib {
        if ia < row.len() {
            row[ia] += (xb - xa) * wgt;
        }
        return;
    }
    row[ia] += (ia as f32 + 1.0 - xa) * wgt;
    let end = ib.min(row.len());
    for v in &mut row[ia + 1..end] {
        *v += wgt;
    }
    if ib < row.len() {
        row[ib] += (xb - ib as f32) * wgt;
    }
}

/// A Catmull-Rom curve through `pts`, `per` samples per segment. Closed curves wrap
/// around; open ones pass through both end points.
pub fn spline(pts: &[(f32, f32)], closed: bool, per: usize) -> Vec<(f32, f32)> {
    let n = pts.len();
    if n < 2 {
        return pts.to_vec();
    }
    let at = |i: isize| -> (f32, f32) {
        if closed {
            pts[i.rem_euclid(n as isize) as usize]
        } else {
            pts[i.clamp(0, n as isize - 1) as usize]
        }
    };
    let segs = if closed { n } else { n - 1 };
    let mut out = Vec::with_capacity(segs * per + 1);
    for i in 0..segs as isize {
        let (p0, p1, p2, p3) = (at(i - 1), at(i), at(i + 1), at(i + 2));
        for k in 0..per {
            let t = k as f32 / per as f32;
            let (t2, t3) = (t * t, t * t * t);
            let f = |a: f32, b: f32, c: f32, d: f32| {
                0.5 * (2.0 * b
                    + (-a + c) * t
                    + (2.0 * a - 5.0 * b + 4.0 * c - d) * t2
                    + (-a + 3.0 * b - 3.0 * c + d) * t3)
            };
            out.push((f(p0.0, p1.0, p2.0, p3.0), f(p0.1, p1.1, p2.1, p3.1)));
        }
    }
    if !closed {
        out.push(pts[n - 1]);
    }
    out
}

/// Hermite smoothstep from `a` to `b`.
pub fn smoothstep(a: f32, b: f32, x: f32) -> f32 {
    let t = ((x - a) / (b - a)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Bilinear sample of a row-major scalar field, clamped at the edges.
pub fn sample_bilinear(field: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    let fx = (x - 0.5).clamp(0.0, (w - 1) as f32);
    let fy = (y - 0.5).clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
    let top = field[y0 * w + x0] + (field[y0 * w + x1] - field[y0 * w + x0]) * tx;
    let bot = field[y1 * w + x0] + (field[y1 * w + x1] - field[y1 * w + x0]) * tx;
    top + (bot - top) * ty
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn case_rng_depends_on_every_part_of_the_identity() {
        let draw = |set, seed, i| case_rng(set, seed, i).random::<u64>();
        let a = draw(PhantomSet::Cxr, 7, 3);
        assert_eq!(a, draw(PhantomSet::Cxr, 7, 3));
        assert_ne!(a, draw(PhantomSet::Cxr, 8, 3));
        assert_ne!(a, draw(PhantomSet::Cxr, 7, 4));
        assert_ne!(a, draw(PhantomSet::Endoscopy, 7, 3));
    }

    #[test]
    fn square_polygon_covers_exactly_its_pixels() {
        let cov = polygon_coverage(10, 10, &[(2.0, 3.0), (6.0, 3.0), (6.0, 8.0), (2.0, 8.0)]);
        let total: f32 = cov.iter().sum();
        assert!((total - 20.0).abs() < 1e-4, "{total}");
        let mask = mask_from_coverage(10, 10, &cov);
        assert_eq!(mask_area(&mask), 20);
        let b = mask_bbox(&mask).unwrap();
        assert_eq!(b.to_array(), [0.2, 0.3, 0.6, 0.8]);
    }

    #[test]
    fn half_covered_pixels_split_the_area() {
        let cov = polygon_coverage(4, 4, &[(0.5, 0.0), (2.5, 0.0), (2.5, 4.0), (0.5, 4.0)]);
        assert!((cov[0] - 0.5).abs() < 1e-5 && (cov[1] - 1.0).abs() < 1e-5);
        assert!((cov[2] - 0.5).abs() < 1e-5 && cov[3] == 0.0);
    }

    #[test]
    fn empty_masks_have_no_box_and_no_finding() {
        let m = GrayImage::new(5, 5);
        assert!(mask_bbox(&m).is_none());
        assert!(finding("x", 0, m).is_none());
    }

    #[test]
    fn open_spline_passes_through_its_ends() {
        let s = spline(&[(0.0, 0.0), (1.0, 2.0), (3.0, 1.0)], false, 8);
        assert_eq!(s.first(), Some(&(0.0, 0.0)));
        assert_eq!(s.last(), Some(&(3.0, 1.0)));
        assert!(s.contains(&(1.0, 2.0)));
    }
}
