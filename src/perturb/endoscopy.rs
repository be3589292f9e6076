//! Endoscopy artefacts: specular glare, bubbles, colour cast, strong vignetting, camera
//! motion smear, blood and bile tint, and the green position-box overlay.
//!
//! - Specular glare: saturated white reflections on wet mucosa, small irregular ellipses
//!   with a soft halo, half of them clustered on one surface, inside the circular field of
//!   view.
//! - Bubbles: clustered translucent circles with a bright rim, a dark outer edge and a
//!   highlight.
//! - Colour cast: a white-balance error along the warm–cool axis (red against blue gain)
//!   with a small green–magenta tint.
//! - Vignetting: quadratic light fall-off from an off-centre point, reaching black in the
//!   corners at the top severities.
//! - Motion smear: an even-weighted line blur along any direction plus a faint ghost, as a
//!   scope moving during the exposure.
//! - Blood / bile tint: patches of a smooth random field that absorb like blood (green and
//!   blue lost) or bile (blue lost, yellow veil).
//! - Green box: the scope-position overlay of Kvasir images, a dark square in the lower
//!   left with a green frame and a green coil drawing; it hides what lies beneath.
//!
//! On gray images (not these perturbations' modality) colours act through their luma.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::blur::{Weighting, motion_taps};
use super::raster::{self, Plane, luma};
use super::{Apply, ApplyError, Family, Modality, Perturbation, Perturbed};
use crate::draw;
use crate::pixels::Pixels;

const ENDO: &[Modality] = &[Modality::Endoscopy, Modality::Video];

/// Specular glare: (number of reflections, mean radius as a fraction of the short side).
const GLARE: [(usize, f32); 5] = [
    (6, 0.012),
    (10, 0.016),
    (16, 0.02),
    (24, 0.024),
    (34, 0.028),
];
/// Bubbles: (number, mean radius as a fraction of the short side).
const BUBBLE: [(usize, f32); 5] = [(4, 0.035), (7, 0.04), (11, 0.045), (16, 0.05), (24, 0.055)];
/// Colour cast: red/blue gain change (green tint is up to 30% of it).
const CAST: [f32; 5] = [0.08, 0.14, 0.2, 0.28, 0.38];
/// Vignetting: light lost at the short side's half-distance from the centre.
const VIGNETTE_STRENGTH: [f32; 5] = [0.35, 0.5, 0.62, 0.74, 0.85];
/// Motion smear: (length as a fraction of the short side, ghost weight).
const SMEAR: [(f32, f32); 5] = [
    (0.02, 0.1),
    (0.035, 0.15),
    (0.05, 0.2),
    (0.07, 0.25),
    (0.09, 0.3),
];
/// Fluid: (share of the image covered, opacity).
const FLUID: [(f32, f32); 5] = [
    (0.1, 0.55),
    (0.18, 0.65),
    (0.27, 0.72),
    (0.38, 0.8),
    (0.5, 0.88),
];
/// Green box: side as a fraction of the image width.
const GREEN_BOX_SIDE: [f32; 5] = [0.16, 0.2, 0.24, 0.28, 0.33];

fn at<T: Copy>(table: &[T; 5], severity: u8) -> T {
    table[(severity.clamp(1, 5) - 1) as usize]
}

pub const SPECULAR: Perturbation = Perturbation {
    name: "endo-specular",
    family: Family::Endoscopy,
    summary: "specular glare: saturated white reflections with soft halos",
    modalities: ENDO,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "reflections / mean radius (fraction of the short side)",
    table: |s| {
        let (n, r) = at(&GLARE, s);
        format!("{n} / {r}")
    },
    apply: Apply::Image(specular),
};

pub const BUBBLES: Perturbation = Perturbation {
    name: "endo-bubbles",
    family: Family::Endoscopy,
    summary: "air bubbles: clustered translucent circles with bright rims and highlights",
    modalities: ENDO,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "bubbles / mean radius (fraction of the short side)",
    table: |s| {
        let (n, r) = at(&BUBBLE, s);
        format!("{n} / {r}")
    },
    apply: Apply::Image(bubbles),
};

pub const COLOUR_CAST: Perturbation = Perturbation {
    name: "endo-colour-cast",
    family: Family::Endoscopy,
    summary: "white-balance error: warm or cool cast with a slight green-magenta tint",
    modalities: ENDO,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "red/blue gain change (sign from the seed)",
    table: |s| format!("±{}", at(&CAST, s)),
    apply: Apply::Image(colour_cast),
};

pub const VIGNETTE: Perturbation = Perturbation {
    name: "endo-vignette",
    family: Family::Endoscopy,
    summary: "strong vignetting: quadratic light fall-off from an off-centre point",
    modalities: ENDO,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "light lost at half the short side from the centre",
    table: |s| format!("{}", at(&VIGNETTE_STRENGTH, s)),
    apply: Apply::Image(vignette),
};

pub const MOTION_SMEAR: Perturbation = Perturbation {
    name: "endo-motion-smear",
    family: Family::Endoscopy,
    summary: "camera motion: even line smear in any direction plus a faint ghost",
    modalities: ENDO,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "length (fraction of the short side) / ghost weight",
    table: |s| {
        let (l, g) = at(&SMEAR, s);
        format!("{l} / {g}")
    },
    apply: Apply::Image(motion_smear),
};

pub const BLOOD_TINT: Perturbation = Perturbation {
    name: "endo-blood",
    family: Family::Endoscopy,
    summary: "blood in the field: dark red absorbing patches",
    modalities: ENDO,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "share covered / opacity",
    table: |s| {
        let (c, o) = at(&FLUID, s);
        format!("{c} / {o}")
    },
    apply: Apply::Image(blood),
};

pub const BILE_TINT: Perturbation = Perturbation {
    name: "endo-bile",
    family: Family::Endoscopy,
    summary: "bile or turbid fluid: yellow-green murky patches",
    modalities: ENDO,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "share covered / opacity",
    table: |s| {
        let (c, o) = at(&FLUID, s);
        format!("{c} / {o}")
    },
    apply: Apply::Image(bile),
};

pub const GREEN_BOX: Perturbation = Perturbation {
    name: "endo-green-box",
    family: Family::Endoscopy,
    summary: "the scope-position overlay: dark square, green frame and coil, lower left",
    modalities: ENDO,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "side (fraction of the width)",
    table: |s| format!("{}", at(&GREEN_BOX_SIDE, s)),
    apply: Apply::Image(green_box),
};

/// A point inside the circular field of view, `spread` = fraction of the short side.
fn in_view(p: &Pixels, rng: &mut ChaCha8Rng, around: (f32, f32), spread: f32) -> (f32, f32) {
    let (w, h) = (p.width() as f32, p.height() as f32);
    let short = w.min(h);
    let r = spread * short * rng.random::<f32>().sqrt();
    let t = rng.random_range(0.0f32..std::f32::consts::TAU);
    let (x, y) = (around.0 + r * t.cos(), around.1 + r * t.sin());
    // Pull back inside the view disk (radius 0.45 of the short side).
    let (cx, cy) = (w / 2.0, h / 2.0);
    let (dx, dy) = (x - cx, y - cy);
    let d = (dx * dx + dy * dy).sqrt();
    let max = 0.45 * short;
    if d > max {
        (cx + dx * max / d, cy + dy * max / d)
    } else {
        (x, y)
    }
}

/// Normalised elliptical radius of `(x, y)` for an ellipse at `c` with radii and angle.
fn ell_r(x: f32, y: f32, c: (f32, f32), rx: f32, ry: f32, cos_sin: (f32, f32)) -> f32 {
    let (dx, dy) = (x - c.0, y - c.1);
    let u = (dx * cos_sin.0 + dy * cos_sin.1) / rx;
    let v = (-dx * cos_sin.1 + dy * cos_sin.0) / ry;
    (u * u + v * v).sqrt()
}

fn specular(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let (n, size) = at(&GLARE, s);
    let short = raster::short_side(p);
    let (w, h) = (p.width() as f32, p.height() as f32);
    let cluster = in_view(p, rng, (w / 2.0, h / 2.0), 0.3);
    let mut out = p.clone();
    let mut plane = Plane::of(&mut out);
    for i in 0..n {
        let c = if i % 2 == 0 {
            in_view(p, rng, cluster, 0.12)
        } else {
            in_view(p, rng, (w / 2.0, h / 2.0), 0.45)
        };
        let rx = (size * short * rng.random_range(0.5f32..1.5)).max(0.8);
        let ry = (rx * rng.random_range(0.35f32..1.0)).max(0.6);
        let angle = rng.random_range(0.0f32..std::f32::consts::PI);
        let cs = (angle.cos(), angle.sin());
        let reach = 2.2 * rx.max(ry);
        plane.paint(
            (c.0 - reach, c.1 - reach, c.0 + reach, c.1 + reach),
            [255.0, 255.0, 252.0],
            |x, y| {
                let r = ell_r(x, y, c, rx, ry, cs);
                if r < 0.7 {
                    1.0
                } else if r < 1.0 {
                    1.0 - (r - 0.7) / 0.3 * 0.6
                } else {
                    0.4 * (-((r - 1.0) / 0.45).powi(2)).exp()
                }
            },
        );
    }
    Ok(Perturbed::photometric(out))
}

fn bubbles(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let (n, size) = at(&BUBBLE, s);
    let short = raster::short_side(p);
    let (w, h) = (p.width() as f32, p.height() as f32);
    let cluster = in_view(p, rng, (w / 2.0, h / 2.0), 0.3);
    let mut out = p.clone();
    let mut plane = Plane::of(&mut out);
    for _ in 0..n {
        let c = in_view(p, rng, cluster, 0.2);
        let r = (size * short * rng.random_range(0.5f32..1.4)).max(1.5);
        let rim = (r * 0.1).max(1.2);
        let reach = r + 2.0 * rim;
        let bbox = (c.0 - reach, c.1 - reach, c.0 + reach, c.1 + reach);
        let dist = move |x: f32, y: f32| ((x - c.0).powi(2) + (y - c.1).powi(2)).sqrt();
        // Lens: a milky interior, lighter towards the light (upper left).
        plane.paint(bbox, [228.0, 236.0, 245.0], |x, y| {
            let d = dist(x, y);
            if d < r - rim {
                let toward = ((c.0 - x) + (c.1 - y)) / (2.0 * r);
                0.12 + 0.08 * toward.clamp(-1.0, 1.0)
            } else {
                0.0
            }
        });
        // A dark edge just outside the rim, then the bright rim.
        plane.paint(bbox, [30.0, 12.0, 10.0], |x, y| {
            let d = dist(x, y) - r;
            if (0.0..rim).contains(&d) {
                0.4 * (1.0 - d / rim)
            } else {
                0.0
            }
        });
        plane.paint(bbox, [252.0, 252.0, 250.0], |x, y| {
            let d = (dist(x, y) - (r - rim / 2.0)).abs();
            (0.85 * (1.0 - d / (rim / 2.0 + 0.6))).max(0.0)
        });
        // A crescent of light refracted on the far side, and the highlight, upper left.
        let (fc, fr) = ((c.0 + 0.55 * r, c.1 + 0.55 * r), 0.3 * r);
        plane.paint(bbox, [255.0, 250.0, 240.0], |x, y| {
            let d = ((x - fc.0).powi(2) + (y - fc.1).powi(2)).sqrt() / fr;
            if dist(x, y) < r - rim {
                (0.35 * (1.0 - d)).max(0.0)
            } else {
                0.0
            }
        });
        let hc = (c.0 - 0.45 * r, c.1 - 0.45 * r);
        let hr = (0.18 * r).max(0.8);
        plane.paint(bbox, [255.0, 255.0, 255.0], |x, y| {
            let d = ((x - hc.0).powi(2) + (y - hc.1).powi(2)).sqrt() / hr;
            (1.2 - d).clamp(0.0, 0.95)
        });
    }
    Ok(Perturbed::photometric(out))
}

fn colour_cast(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let m = at(&CAST, s);
    let warm = if rng.random::<bool>() { 1.0 } else { -1.0 };
    let tint = rng.random_range(-0.3f32..0.3);
    let gains = [1.0 + warm * m, 1.0 + tint * m, 1.0 - warm * m];
    let tables = gains.map(|g| raster::table_of(|v| v * g));
    let gray = raster::table_of(|v| v * luma(gains));
    Ok(Perturbed::photometric(raster::lut3(p, &tables, &gray)))
}

fn vignette(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let k = at(&VIGNETTE_STRENGTH, s);
    let (w, h) = (p.width() as usize, p.height() as usize);
    let short = raster::short_side(p);
    let cx = w as f32 / 2.0 + rng.random_range(-0.05f32..0.05) * short;
    let cy = h as f32 / 2.0 + rng.random_range(-0.05f32..0.05) * short;
    let r2 = (0.5 * short).powi(2);
    let dx2: Vec<f32> = (0..w).map(|x| (x as f32 + 0.5 - cx).powi(2) / r2).collect();
    let ch = p.channels();
    let mut out = p.as_raw().to_vec();
    let mut gain = vec![0u32; w];
    for y in 0..h {
        let dy2 = (y as f32 + 0.5 - cy).powi(2) / r2;
        for (g, &d) in gain.iter_mut().zip(&dx2) {
            *g = ((1.0 - k * (d + dy2)).max(0.0) * 65536.0) as u32;
        }
        let row = &mut out[y * w * ch..(y + 1) * w * ch];
        for (px, &g) in row.chunks_exact_mut(ch).zip(&gain) {
            for v in px {
                *v = ((*v as u32 * g + (1 << 15)) >> 16) as u8;
            }
        }
    }
    Ok(Perturbed::photometric(raster::with_data(p, out)))
}

fn motion_smear(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let (len, ghost) = at(&SMEAR, s);
    let angle = rng.random_range(0.0f32..std::f32::consts::TAU);
    let l = len * raster::short_side(p);
    let mut taps = motion_taps(l / 2.0, 1.0, angle, Weighting::Uniform);
    // The ghost: a faint copy a third of the smear length beyond its end.
    let (sn, cs) = angle.sin_cos();
    let d = l * 0.85;
    let gw = (ghost * 65536.0) as u32;
    for t in &mut taps {
        t.weight = ((t.weight as u64 * (65536 - gw) as u64) >> 16) as u32;
    }
    taps.push(raster::Tap {
        dx: (d * cs).round() as i32,
        dy: (d * sn).round() as i32,
        weight: 0,
    });
    let sum: u32 = taps.iter().map(|t| t.weight).sum();
    if let Some(last) = taps.last_mut() {
        last.weight = 65536 - sum.min(65536);
    }
    Ok(Perturbed::photometric(raster::tap_blur(p, &taps)))
}

/// Fluid patches: `out = v · (1 − α (1 − T)) + α · veil`, with `α` the opacity times a soft
/// threshold of a smooth random field at the quantile that covers the table's share.
fn fluid(p: &Pixels, s: u8, rng: &mut ChaCha8Rng, transmit: [f32; 3], veil: [f32; 3]) -> Pixels {
    let (cover, opacity) = at(&FLUID, s);
    let (w, h) = (p.width() as usize, p.height() as usize);
    // The field is drawn at half the size and upsampled: it is smooth anyway.
    let (fw, fh) = ((w / 2).max(2), (h / 2).max(2));
    let cell = (fw.min(fh) as f32 / 3.0).max(1.0);
    let field = draw::fractal_noise(fw as u32, fh as u32, cell, 3, rng);
    // Threshold at the field's own quantile, so the covered share is the table's whatever
    // the draw.
    let mut sorted = field.clone();
    let k = ((1.0 - cover) * (sorted.len() - 1) as f32) as usize;
    let (_, &mut thr, _) = sorted.select_nth_unstable_by(k, f32::total_cmp);
    let ch = p.channels();
    let (t, v) = if ch == 1 {
        ([luma(transmit); 3], [luma(veil); 3])
    } else {
        (transmit, veil)
    };
    let mut out = p.as_raw().to_vec();
    for y in 0..h {
        let fy = ((y as f32 + 0.5) * fh as f32 / h as f32 - 0.5).clamp(0.0, (fh - 1) as f32);
        let (y0, ty) = (fy.floor() as usize, fy.fract());
        let y1 = (y0 + 1).min(fh - 1);
        let row = &mut out[y * w * ch..(y + 1) * w * ch];
        for (x, px) in row.chunks_exact_mut(ch).enumerate() {
            let fx = ((x as f32 + 0.5) * fw as f32 / w as f32 - 0.5).clamp(0.0, (fw - 1) as f32);
            let (x0, tx) = (fx.floor() as usize, fx.fract());
            let x1 = (x0 + 1).min(fw - 1);
            let top = field[y0 * fw + x0] * (1.0 - tx) + field[y0 * fw + x1] * tx;
            let bot = field[y1 * fw + x0] * (1.0 - tx) + field[y1 * fw + x1] * tx;
            let n = top * (1.0 - ty) + bot * ty;
            let a = opacity * smoothstep(thr - 0.04, thr + 0.04, n);
            if a <= 0.0 {
                continue;
            }
            for (c, val) in px.iter_mut().enumerate() {
                let x = *val as f32;
                *val = raster::clamp_u8(x * (1.0 - a * (1.0 - t[c])) + a * v[c]);
            }
        }
    }
    raster::with_data(p, out)
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn blood(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    Ok(Perturbed::photometric(fluid(
        p,
        s,
        rng,
        [0.5, 0.07, 0.06],
        [25.0, 0.0, 0.0],
    )))
}

fn bile(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    Ok(Perturbed::photometric(fluid(
        p,
        s,
        rng,
        [0.7, 0.68, 0.2],
        [45.0, 50.0, 8.0],
    )))
}

fn green_box(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let (w, h) = p.dimensions();
    let side = ((at(&GREEN_BOX_SIDE, s) * w as f32).round() as u32).clamp(1, w.min(h));
    let margin = (w as f32 * rng.random_range(0.0f32..0.015)) as u32;
    let x0 = margin.min(w - side);
    let y0 = (h - side).saturating_sub(margin);
    let mut c = raster::region(p, x0, y0, side, side);
    let dark = [8.0, 22.0, 12.0];
    let green = [40.0, 210.0, 70.0];
    let pick = |col: [f32; 3]| -> Vec<f32> {
        if p.is_gray() {
            vec![luma(col)]
        } else {
            col.to_vec()
        }
    };
    let sd = side as f32;
    let t = (sd * 0.025).max(1.0);
    c.fill_rect(0, 0, side as i64, side as i64, &pick(dark), 0.93);
    c.stroke_rect(
        [0, 0, side as i64, side as i64],
        t as i64,
        &pick(green),
        1.0,
    );
    // The scope coil: a wandering loop from the lower right towards the centre.
    let mut pts = Vec::new();
    let (mut x, mut y) = (sd * 0.85, sd * 0.85);
    let mut heading = rng.random_range(3.6f32..4.4);
    for _ in 0..14 {
        pts.push((x, y));
        heading += rng.random_range(0.15f32..0.55);
        x = (x + heading.cos() * sd * 0.09).clamp(sd * 0.12, sd * 0.88);
        y = (y + heading.sin() * sd * 0.09).clamp(sd * 0.12, sd * 0.88);
    }
    c.polyline(&pts, (sd * 0.045).max(1.0), &pick(green), 1.0);
    let mut out = p.clone();
    raster::put_region(&mut out, &c, x0, y0);
    Ok(Perturbed::photometric(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perturb::testimg;
    use rand::SeedableRng;

    fn rng(s: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(s)
    }

    #[test]
    fn glare_saturates_some_pixels_inside_the_view() {
        let img = testimg::rgb(128, 128, 0);
        let out = specular(&img, 3, &mut rng(1)).unwrap().pixels.to_rgb();
        let white: Vec<(u32, u32)> = out
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0[0] >= 250 && p.0[1] >= 250)
            .map(|(x, y, _)| (x, y))
            .collect();
        assert!(white.len() > 20);
        for (x, y) in white {
            let d = ((x as f32 - 64.0).powi(2) + (y as f32 - 64.0).powi(2)).sqrt();
            assert!(d < 0.45 * 128.0 + 10.0, "({x},{y})");
        }
    }

    #[test]
    fn cast_moves_red_against_blue() {
        let img = testimg::rgb(32, 32, 0);
        let out = colour_cast(&img, 5, &mut rng(2)).unwrap().pixels;
        let mean_c = |p: &Pixels, c: usize| {
            p.as_raw()
                .iter()
                .skip(c)
                .step_by(3)
                .map(|&v| v as f64)
                .sum::<f64>()
                / 1024.0
        };
        let dr = mean_c(&out, 0) - mean_c(&img, 0);
        let db = mean_c(&out, 2) - mean_c(&img, 2);
        assert!(dr * db < 0.0, "red {dr} and blue {db} move apart");
    }

    #[test]
    fn vignette_darkens_corners_more_than_the_centre() {
        let img = Pixels::Rgb(image::RgbImage::from_pixel(100, 100, image::Rgb([200; 3])));
        let out = vignette(&img, 5, &mut rng(3)).unwrap().pixels.to_rgb();
        assert!(out.get_pixel(50, 50).0[0] > 180);
        assert!(out.get_pixel(0, 0).0[0] < 30);
    }

    #[test]
    fn blood_takes_green_away() {
        let img = testimg::rgb(64, 64, 0);
        let out = blood(&img, 5, &mut rng(4)).unwrap().pixels;
        let g = |p: &Pixels| {
            p.as_raw()
                .iter()
                .skip(1)
                .step_by(3)
                .map(|&v| v as u64)
                .sum::<u64>()
        };
        assert!(g(&out) < g(&img) * 9 / 10);
    }

    #[test]
    fn green_box_sits_lower_left_and_is_green() {
        let img = testimg::rgb(100, 80, 0);
        let out = green_box(&img, 3, &mut rng(5)).unwrap().pixels.to_rgb();
        let greenish = out
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0[1] > 150 && p.0[0] < 120)
            .map(|(x, y, _)| (x, y))
            .collect::<Vec<_>>();
        assert!(!greenish.is_empty());
        assert!(greenish.iter().all(|&(x, y)| x < 30 && y > 50));
        assert_eq!(out.get_pixel(99, 0), img.to_rgb().get_pixel(99, 0));
    }
}
