//! Chest X-ray artefacts: anti-scatter grid lines, under- and over-exposure, patient
//! rotation, and burned-in markers and text.
//!
//! Display convention: bright is dense (bone, mediastinum), dark is air (lungs).
//! - Grid lines: the lead strips of a stationary anti-scatter grid print as fine bright
//!   parallel lines, here vertical (the usual bucky mounting) with a period of about 1% of
//!   the short side and a random phase.
//! - Under-exposure (too few photons): the image washes out towards white, dark detail
//!   compresses and quantum mottle appears.
//! - Over-exposure: the lungs burn out to black and the soft tissue darkens.
//! - Patient rotation: a 2-D stand-in for a rotated patient, an in-plane tilt plus the
//!   horizontal foreshortening of a turn about the body axis; boxes are mapped.
//! - Burned-in text: laterality marker, exam text, date and ID lines and an arrow, in the
//!   white of burned-in annotations, more of them and larger with severity.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::geometric::{Affine, apply_affine};
use super::raster::{self, Plane, QUANTILES, TableCache, clamp_u8, normal_quantiles};
use super::{Apply, ApplyError, Family, Modality, Perturbation, Perturbed};
use crate::draw::{self, Canvas};
use crate::pixels::Pixels;

const CXR: &[Modality] = &[Modality::Cxr];

/// Peak strength of a grid line, as a share of the way to white.
const GRID_STRENGTH: [f32; 5] = [0.06, 0.1, 0.15, 0.22, 0.3];
/// Grid period as a fraction of the short side (jittered ±10% by the seed).
const GRID_PERIOD: f32 = 0.009;
/// Under-exposure: (remaining share of the dark range, mottle sigma in 0–255).
const UNDER: [(f32, f32); 5] = [
    (0.85, 3.0),
    (0.72, 5.0),
    (0.6, 8.0),
    (0.5, 11.0),
    (0.4, 15.0),
];
/// Over-exposure: (gamma, burn-out threshold as a fraction of full scale).
const OVER: [(f32, f32); 5] = [
    (1.2, 0.03),
    (1.4, 0.06),
    (1.6, 0.1),
    (1.9, 0.14),
    (2.2, 0.18),
];
/// Patient rotation: (in-plane tilt in degrees, turn about the body axis in degrees).
const ROTATION: [(f32, f32); 5] = [
    (2.0, 10.0),
    (4.0, 15.0),
    (6.0, 20.0),
    (8.0, 25.0),
    (11.0, 30.0),
];
/// Burned-in text: number of annotation items, and their size (font pixel as a fraction of
/// the short side: text lines about 3% of the image high, the laterality marker twice that).
const TEXT: [(usize, f32); 5] = [
    (1, 0.004),
    (2, 0.0045),
    (3, 0.005),
    (4, 0.0055),
    (5, 0.0065),
];

fn at<T: Copy>(table: &[T; 5], severity: u8) -> T {
    table[(severity.clamp(1, 5) - 1) as usize]
}

pub const GRID: Perturbation = Perturbation {
    name: "cxr-grid",
    family: Family::Cxr,
    summary: "anti-scatter grid lines: fine bright vertical lines, random phase",
    modalities: CXR,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "line strength (share of the way to white)",
    table: |s| format!("{}", at(&GRID_STRENGTH, s)),
    apply: Apply::Image(grid),
};

pub const UNDEREXPOSURE: Perturbation = Perturbation {
    name: "cxr-underexposure",
    family: Family::Cxr,
    summary: "too few photons: washed out towards white, dark detail compressed, quantum mottle",
    modalities: CXR,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "dark range kept / mottle sigma (0-255)",
    table: |s| {
        let (k, n) = at(&UNDER, s);
        format!("{k} / {n}")
    },
    apply: Apply::Image(underexposure),
};

pub const OVEREXPOSURE: Perturbation = Perturbation {
    name: "cxr-overexposure",
    family: Family::Cxr,
    summary: "too many photons: lungs burn out to black, soft tissue darkens",
    modalities: CXR,
    levels: 5,
    seeded: false,
    geometric: false,
    parameter: "gamma / burn-out threshold",
    table: |s| {
        let (g, t) = at(&OVER, s);
        format!("{g} / {t}")
    },
    apply: Apply::Image(overexposure),
};

pub const PATIENT_ROTATION: Perturbation = Perturbation {
    name: "cxr-patient-rotation",
    family: Family::Cxr,
    summary: "rotated patient: in-plane tilt plus foreshortening of a turn about the body axis; boxes mapped",
    modalities: CXR,
    levels: 5,
    seeded: true,
    geometric: true,
    parameter: "tilt / turn, degrees (directions from the seed)",
    table: |s| {
        let (t, y) = at(&ROTATION, s);
        format!("±{t} / {y}")
    },
    apply: Apply::Image(patient_rotation),
};

pub const BURNED_IN_TEXT: Perturbation = Perturbation {
    name: "cxr-burned-in-text",
    family: Family::Cxr,
    summary: "burned-in laterality marker, exam text, date and ID lines, arrow",
    modalities: CXR,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "items / font pixel (fraction of the short side)",
    table: |s| {
        let (n, f) = at(&TEXT, s);
        format!("{n} / {f}")
    },
    apply: Apply::Image(burned_in_text),
};

fn grid(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let strength = at(&GRID_STRENGTH, s);
    let period = (GRID_PERIOD * raster::short_side(p) * rng.random_range(0.9f32..1.1)).max(2.2);
    let phase = rng.random_range(0.0f32..std::f32::consts::TAU);
    let (w, h) = (p.width() as usize, p.height() as usize);
    let ch = p.channels();
    // Per column: how far towards white the strip pushes, 16-bit fixed point.
    let k: Vec<u32> = (0..w)
        .map(|x| {
            let c = 0.5 + 0.5 * (std::f32::consts::TAU * (x as f32 + 0.5) / period + phase).cos();
            (strength * c * c * 65536.0).round() as u32
        })
        .collect();
    let mut out = p.as_raw().to_vec();
    for y in 0..h {
        let row = &mut out[y * w * ch..(y + 1) * w * ch];
        for (px, &kx) in row.chunks_exact_mut(ch).zip(&k) {
            for v in px {
                *v += (((255 - *v as u32) * kx + (1 << 15)) >> 16) as u8;
            }
        }
    }
    Ok(Perturbed::photometric(raster::with_data(p, out)))
}

fn underexposure(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    static CACHE: TableCache = TableCache::new();
    let (keep, sigma) = at(&UNDER, s);
    let table = CACHE.get(s, || {
        let z = normal_quantiles();
        raster::build_noise_table(|v, q| {
            clamp_u8(255.0 - (255.0 - v as f32) * keep + sigma * z[q % QUANTILES])
        })
    });
    Ok(Perturbed::photometric(raster::noise_by_table(
        p, table, rng,
    )))
}

fn overexposure(p: &Pixels, s: u8, _rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let (g, t) = at(&OVER, s);
    let table = raster::table_of(|v| ((v / 255.0).powf(g) - t) / (1.0 - t) * 255.0);
    Ok(Perturbed::photometric(raster::lut(p, &table)))
}

fn patient_rotation(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let (tilt, turn) = at(&ROTATION, s);
    let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
    let (w, h) = (p.width() as f64, p.height() as f64);
    // The body axis sits off centre on the side the patient turns towards.
    let axis = w * (0.5 + sign * rng.random_range(0.05..0.15));
    let squeeze = (turn as f64).to_radians().cos();
    let m = Affine::translate(-axis, 0.0)
        .then(&Affine::scale(squeeze, 1.0))
        .then(&Affine::translate(axis, 0.0))
        .then(&Affine::rotate_about(
            sign * (tilt as f64).to_radians(),
            w / 2.0,
            h / 2.0,
        ));
    Ok(apply_affine(p, m))
}

/// Random digits.
fn digits(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

fn burned_in_text(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let (items, size) = at(&TEXT, s);
    let short = raster::short_side(p);
    let scale = ((size * short).round() as u32).max(1);
    let (w, h) = (p.width() as i64, p.height() as i64);
    let margin = (short * 0.03) as i64;
    let white = [250.0, 250.0, 250.0];
    let mut out = p.clone();
    let mut plane = Plane::of(&mut out);
    // Text in the shipped TrueType font, its capitals about 7 * sc pixels high.
    let font_px = |sc: u32| 10.0 * sc as f32;
    let text_at = |plane: &mut Plane, text: &str, sc: u32, corner: (bool, bool), boxed: bool| {
        let t = draw::truetype(text, font_px(sc));
        let (tw, th) = (t.width as i64, t.height as i64);
        let pad = if boxed { 2 * sc as i64 } else { 0 };
        let mut c = Canvas::new((tw + 2 * pad) as u32, (th + 2 * pad) as u32, &[0.0]);
        c.paint_mask(&t, pad, pad, &[255.0], 1.0);
        if boxed {
            c.stroke_rect(
                [0, 0, tw + 2 * pad, th + 2 * pad],
                (sc as i64 / 2).max(1),
                &[255.0],
                1.0,
            );
        }
        let x = if corner.0 {
            w - margin - c.width as i64
        } else {
            margin
        };
        let y = if corner.1 {
            h - margin - c.height as i64
        } else {
            margin
        };
        plane.stamp(&c, x, y, white);
    };
    // 1. Laterality marker in an upper corner, boxed, larger than the rest. On a frontal
    // film the patient's right is on the image left, so "R" goes left and "L" right.
    let left_marker = rng.random::<bool>();
    let marker = if left_marker { "L" } else { "R" };
    text_at(&mut plane, marker, scale * 2, (left_marker, false), true);
    if items >= 2 {
        let exam = ["PORTABLE", "AP SUPINE", "PA ERECT", "AP SEMI-ERECT"][rng.random_range(0..4)];
        text_at(&mut plane, exam, scale, (!left_marker, false), false);
    }
    // 3-4. Date and ID lines, stacked in the lower left.
    let text_h = draw::truetype_line_height(font_px(scale)) as i64;
    let line_h = text_h + 2 * scale as i64;
    if items >= 3 {
        let date = format!(
            "20{}{}-0{}-1{} {:02}:{:02}",
            rng.random_range(0..3),
            digits(rng, 1),
            rng.random_range(1..10),
            digits(rng, 1),
            rng.random_range(0..24),
            rng.random_range(0..60)
        );
        text_at(&mut plane, &date, scale, (false, true), false);
    }
    if items >= 4 {
        let id = format!("ID {}  KV 1{}0", digits(rng, 7), digits(rng, 1));
        let c = draw::truetype(&id, font_px(scale));
        plane.stamp(&c, margin, h - margin - c.height as i64 - line_h, white);
        // An arrow into a lung field.
        let (tx, ty) = (
            w as f32 * rng.random_range(0.3f32..0.7),
            h as f32 * rng.random_range(0.35f32..0.6),
        );
        let len = short * 0.12;
        let (sx, sy) = (tx + len * 0.8, ty - len * 0.6);
        let thick = (scale as f32).max(1.5);
        let (x0, y0) = (tx.min(sx) - len, ty.min(sy) - len);
        let mut c = Canvas::new((len * 3.0) as u32 + 1, (len * 3.0) as u32 + 1, &[0.0]);
        let local = |x: f32, y: f32| (x - x0, y - y0);
        c.line(local(sx, sy), local(tx, ty), thick, &[255.0], 1.0);
        c.line(
            local(tx, ty),
            local(tx + len * 0.35, ty - len * 0.05),
            thick,
            &[255.0],
            1.0,
        );
        c.line(
            local(tx, ty),
            local(tx + len * 0.1, ty - len * 0.35),
            thick,
            &[255.0],
            1.0,
        );
        plane.stamp(&c, x0 as i64, y0 as i64, white);
    }
    if items >= 5 {
        let lines = [
            format!("ACC {}", digits(rng, 8)),
            "WARD 4B  TUBE CHECK".to_string(),
        ];
        let th = text_h + scale as i64 * 3;
        let y0 = h / 2 + rng.random_range(-(h / 8)..=(h / 8));
        for (i, line) in lines.iter().enumerate() {
            let c = draw::truetype(line, font_px(scale));
            let tw = c.width as i64;
            let x = rng.random_range(margin..(w - tw - margin).max(margin + 1));
            plane.stamp(&c, x, y0 + i as i64 * th, white);
        }
    }
    Ok(Perturbed::photometric(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perturb::{mean_abs_diff, testimg};
    use rand::SeedableRng;

    #[test]
    fn grid_lines_are_periodic_columns() {
        let img = Pixels::Gray(image::GrayImage::from_pixel(400, 400, image::Luma([60])));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let out = grid(&img, 5, &mut rng).unwrap().pixels;
        let g = match &out {
            Pixels::Gray(g) => g,
            _ => unreachable!(),
        };
        // Every row is the same; columns vary with a period of about 3.6 px.
        assert!((0..400).all(|x| g.get_pixel(x, 0) == g.get_pixel(x, 399)));
        let col: Vec<u8> = (0..400).map(|x| g.get_pixel(x, 10)[0]).collect();
        let peaks = col
            .windows(3)
            .filter(|w| w[1] > w[0] && w[1] >= w[2])
            .count();
        assert!((90..130).contains(&peaks), "{peaks} peaks");
        assert!(*col.iter().max().unwrap() > 100 && *col.iter().min().unwrap() <= 63);
    }

    #[test]
    fn under_exposure_brightens_over_exposure_darkens() {
        let img = testimg::gray(64, 64, 0);
        let mean = |p: &Pixels| crate::perturb::tone::mean(p);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let under = underexposure(&img, 3, &mut rng).unwrap().pixels;
        let over = overexposure(&img, 3, &mut rng).unwrap().pixels;
        assert!(mean(&under) > mean(&img) + 10.0);
        assert!(mean(&over) < mean(&img) - 10.0);
    }

    #[test]
    fn text_adds_white_marks_that_grow_with_severity() {
        let img = testimg::gray(256, 256, 0);
        let mut last = 0.0;
        for s in 1..=5 {
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let out = burned_in_text(&img, s, &mut rng).unwrap().pixels;
            assert!(out.as_raw().iter().any(|&v| v >= 249));
            let d = mean_abs_diff(&img, &out);
            assert!(d > last, "s{s}: {d} <= {last}");
            last = d;
        }
    }

    #[test]
    fn patient_rotation_narrows_the_chest() {
        let img = testimg::gray(100, 100, 0);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let out = patient_rotation(&img, 5, &mut rng).unwrap();
        let b = crate::geometry::BBox::new(0.2, 0.4, 0.8, 0.6).unwrap();
        let m = out.map.apply(&b).unwrap();
        assert!(m.width() < 0.6, "{m:?}");
    }
}
