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
    // (v - m)·k + m = v·k + m·(1 - k): an affine map, computed rather than looked up.
    Ok(Perturbed::photometric(raster::scale_add(
        p,
        k,
        m * (1.0 - k),
    )))
}

fn gamma(p: &Pixels, s: u8, _rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    let g = at(&GAMMA_EXPONENT, s);
    Ok(Perturbed::photometric(raster::lut(
        p,
        &table_of(|v| (v / 255.0).powf(g) * 255.0),
    )))
}

/// The mean of all samples, from an exact integer sum (order-free). Blocks of 2^16 samples
/// keep each partial sum in a `u32`, so the inner loop widens and adds 16 samples at a time.
pub fn mean(p: &Pixels) -> f32 {
    let raw = p.as_raw();
    if raw.is_empty() {
        return 0.0;
    }
    let sum: u64 = crate::simd::run(
        #[inline(always)]
        || {
            raw.chunks(1 << 16)
                .map(|block| u64::from(block.iter().map(|&v| u32::from(v)).sum::<u32>()))
                .sum()
        },
    );
    (sum as f64 / raw.len() as f64) as f32
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
