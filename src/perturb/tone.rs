//! Tone: brightness, contrast and gamma, each one 256-entry lookup table.
//!
//! Brightness adds a constant to every channel (as albumentations' brightness does;
//! ImageNet-C adds the same amounts to the HSV value). Contrast pulls every sample towards
//! the image's mean with ImageNet-C's factors. Gamma raises normalised values to a power
//! above 1, which darkens mid-tones as a wrongly windowed display does.

use rand_chacha::ChaCha8Rng;

use super::raster::{self, table_of};
use super::{ANY, Apply, ApplyError, Family, Perturbation, Perturbed};
use crate::pixels::Pixels;

/// Added to every channel, fraction of full scale (ImageNet-C `brightness` amounts).
const BRIGHTNESS_SHIFT: [f32; 5] = [0.1, 0.2, 0.3, 0.4, 0.5];
/// Contrast factor around the image mean (ImageNet-C `contrast`).
const CONTRAST_FACTOR: [f32; 5] = [0.4, 0.3, 0.2, 0.1, 0.05];
/// Display gamma applied to normalised values.
const GAMMA_EXPONENT: [f32; 5] = [1.3, 1.6, 2.0, 2.5, 3.2];

fn at(table: &[f32; 5], severity: u8) -> f32 {
    table[(severity.clamp(1, 5) - 1) as usize]
}

pub const BRIGHTNESS: Perturbation = Perturbation {
    name: "brightness",
    family: Family::Tone,
    summary: "brighter: a constant added to every channel",
    modalities: ANY,
    levels: 5,
    seeded: false,
    geometric: false,
    parameter: "shift, fraction of full scale",
    table: |s| format!("+{}", at(&BRIGHTNESS_SHIFT, s)),
    apply: Apply::Image(brightness),
};

pub const CONTRAST: Perturbation = Perturbation {
    name: "contrast",
    family: Family::Tone,
    summary: "lower contrast: samples pulled towards the image mean (ImageNet-C)",
    modalities: ANY,
    levels: 5,
    seeded: false,
    geometric: false,
    parameter: "factor around the mean",
    table: |s| format!("{}", at(&CONTRAST_FACTOR, s)),
    apply: Apply::Image(contrast),
};

pub const GAMMA: Perturbation = Perturbation {
    name: "gamma",
    family: Family::Tone,
    summary: "display gamma above 1: darker mid-tones, ends fixed",
    modalities: ANY,
    levels: 5,
    seeded: false,
    geometric: false,
    parameter: "exponent on values in [0, 1]",
    table: |s| format!("{}", at(&GAMMA_EXPONENT, s)),
    apply: Apply::Image(gamma),
};

fn brightness(p: &Pixels, s: u8, _rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let add = raster::clamp_u8(at(&BRIGHTNESS_SHIFT, s) * 255.0);
    // A saturating add, which compiles to one vector instruction per 16 samples.
    let data = p.as_raw().iter().map(|&v| v.saturating_add(add)).collect();
    Ok(Perturbed::photometric(raster::with_data(p, data)))
}

fn contrast(p: &Pixels, s: u8, _rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let k = at(&CONTRAST_FACTOR, s);
    let m = mean(p);
    Ok(Perturbed::photometric(raster::lut(
        p,
        &table_of(|v| (v - m) * k + m),
    )))
}

fn gamma(p: &Pixels, s: u8, _rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let g = at(&GAMMA_EXPONENT, s);
    Ok(Perturbed::photometric(raster::lut(
        p,
        &table_of(|v| (v / 255.0).powf(g) * 255.0),
    )))
}

/// The mean of all samples, via a histogram (exact and order-free).
pub fn mean(p: &Pixels) -> f32 {
    // Four interleaved histograms, so consecutive equal samples do not wait on each other.
    let mut hist = [[0u32; 256]; 4];
    let raw = p.as_raw();
    let mut quads = raw.chunks_exact(4);
    for q in &mut quads {
        hist[0][q[0] as usize] += 1;
        hist[1][q[1] as usize] += 1;
        hist[2][q[2] as usize] += 1;
        hist[3][q[3] as usize] += 1;
    }
    for &v in quads.remainder() {
        hist[0][v as usize] += 1;
    }
    let n = raw.len() as u64;
    let sum: u64 = (0..256)
        .map(|v| v as u64 * hist.iter().map(|h| h[v] as u64).sum::<u64>())
        .sum();
    if n == 0 {
        0.0
    } else {
        (sum as f64 / n as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perturb::testimg;
    use rand::SeedableRng;

    #[test]
    fn contrast_keeps_the_mean_and_shrinks_the_spread() {
        let img = testimg::gray(64, 64, 0);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let out = contrast(&img, 3, &mut rng).unwrap().pixels;
        assert!((mean(&out) - mean(&img)).abs() < 1.0);
        let range = |p: &Pixels| {
            let r = p.as_raw();
            r.iter().max().unwrap() - r.iter().min().unwrap()
        };
        assert!(range(&out) < range(&img) / 3);
    }

    #[test]
    fn gamma_fixes_black_and_white() {
        let t = table_of(|v| (v / 255.0).powf(2.0) * 255.0);
        assert_eq!((t[0], t[255], t[128]), (0, 255, 64));
    }
}
