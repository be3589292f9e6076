//! Noise: Gaussian, Poisson (quantum), speckle and salt-and-pepper, each independent per
//! sample and channel, with ImageNet-C's parameter tables.
//!
//! All four are one lookup per sample: a table, built once per severity, maps an input
//! value and 10 uniform random bits to the output value at that quantile of the noise
//! distribution (see [`raster::noise_by_table`]). That is exact sampling from the
//! distribution quantised to 1024 quantiles, which an 8-bit output cannot tell apart, and
//! it runs at memory speed.

use rand_chacha::ChaCha8Rng;

use super::raster::{self, QUANTILES, TableCache, clamp_u8, normal_quantiles};
use super::{ANY, Apply, ApplyError, Family, Perturbation, Perturbed};
use crate::pixels::Pixels;

/// Standard deviation as a fraction of full scale (ImageNet-C `gaussian_noise`).
const GAUSSIAN_SIGMA: [f32; 5] = [0.08, 0.12, 0.18, 0.26, 0.38];
/// Photon count at full scale; fewer photons, more noise (ImageNet-C `shot_noise`).
const POISSON_PHOTONS: [f32; 5] = [60.0, 25.0, 12.0, 5.0, 3.0];
/// Multiplicative noise sigma (ImageNet-C `speckle_noise`).
const SPECKLE_SIGMA: [f32; 5] = [0.15, 0.2, 0.35, 0.45, 0.6];
/// Share of samples set to black or white (ImageNet-C `impulse_noise`).
const SALT_PEPPER_AMOUNT: [f32; 5] = [0.03, 0.06, 0.09, 0.17, 0.27];

fn at(table: &[f32; 5], severity: u8) -> f32 {
    table[(severity.clamp(1, 5) - 1) as usize]
}

pub const GAUSSIAN: Perturbation = Perturbation {
    name: "gaussian-noise",
    family: Family::Noise,
    summary: "additive Gaussian noise, independent per sample (ImageNet-C)",
    modalities: ANY,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "sigma, fraction of full scale",
    table: |s| format!("{}", at(&GAUSSIAN_SIGMA, s)),
    apply: Apply::Image(gaussian),
};

pub const POISSON: Perturbation = Perturbation {
    name: "poisson-noise",
    family: Family::Noise,
    summary: "quantum (shot) noise: Poisson photon counts at a given full-scale dose (ImageNet-C shot)",
    modalities: ANY,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "photons at full scale",
    table: |s| format!("{}", at(&POISSON_PHOTONS, s)),
    apply: Apply::Image(poisson),
};

pub const SPECKLE: Perturbation = Perturbation {
    name: "speckle-noise",
    family: Family::Noise,
    summary: "multiplicative noise x + x*N(0, sigma) (ImageNet-C speckle)",
    modalities: ANY,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "sigma, relative",
    table: |s| format!("{}", at(&SPECKLE_SIGMA, s)),
    apply: Apply::Image(speckle),
};

pub const SALT_PEPPER: Perturbation = Perturbation {
    name: "salt-pepper",
    family: Family::Noise,
    summary: "impulse noise: a share of samples set to black or white (ImageNet-C impulse)",
    modalities: ANY,
    levels: 5,
    seeded: true,
    geometric: false,
    parameter: "share of samples replaced",
    table: |s| format!("{}", at(&SALT_PEPPER_AMOUNT, s)),
    apply: Apply::Image(salt_pepper),
};

fn gaussian(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    static CACHE: TableCache = TableCache::new();
    let sigma = at(&GAUSSIAN_SIGMA, s) * 255.0;
    let table = CACHE.get(s, || {
        let z = normal_quantiles();
        raster::build_noise_table(|v, q| clamp_u8(v as f32 + sigma * z[q]))
    });
    Ok(Perturbed::photometric(raster::noise_by_table(
        p, table, rng,
    )))
}

fn speckle(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    static CACHE: TableCache = TableCache::new();
    let sigma = at(&SPECKLE_SIGMA, s);
    let table = CACHE.get(s, || {
        let z = normal_quantiles();
        raster::build_noise_table(|v, q| {
            let x = v as f32;
            clamp_u8(x + x * sigma * z[q])
        })
    });
    Ok(Perturbed::photometric(raster::noise_by_table(
        p, table, rng,
    )))
}

fn salt_pepper(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    static CACHE: TableCache = TableCache::new();
    let hit = (at(&SALT_PEPPER_AMOUNT, s) * QUANTILES as f32).round() as usize;
    let table = CACHE.get(s, || {
        raster::build_noise_table(|v, q| {
            if q < hit / 2 {
                0
            } else if q < hit {
                255
            } else {
                v as u8
            }
        })
    });
    Ok(Perturbed::photometric(raster::noise_by_table(
        p, table, rng,
    )))
}

fn poisson(p: &Pixels, s: u8, rng: &mut ChaCha8Rng) -> Result<Perturbed, ApplyError> {
    static CACHE: TableCache = TableCache::new();
    let photons = at(&POISSON_PHOTONS, s);
    let table = CACHE.get(s, || poisson_table(photons as f64));
    Ok(Perturbed::photometric(raster::noise_by_table(
        p, table, rng,
    )))
}

/// For each input value, the Poisson count at the centre of each quantile bin, scaled
/// back to 0–255: `out = Poisson(v/255 · photons) / photons · 255`.
fn poisson_table(photons: f64) -> raster::NoiseTable {
    let mut t = vec![0u8; 256 * QUANTILES];
    for v in 0..256usize {
        let lambda = v as f64 / 255.0 * photons;
        let mut k = 0u32;
        let mut pk = (-lambda).exp();
        let mut cdf = pk;
        for q in 0..QUANTILES {
            let target = (q as f64 + 0.5) / QUANTILES as f64;
            // The cap only guards against rounding keeping the CDF below a target.
            while cdf < target && k < 10_000 {
                k += 1;
                pk *= lambda / k as f64;
                cdf += pk;
            }
            t[(v << raster::QBITS) | q] = clamp_u8((k as f64 / photons * 255.0) as f32);
        }
    }
    t.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perturb::testimg;
    use image::GrayImage;
    use rand::SeedableRng;

    fn stats(p: &Pixels) -> (f64, f64) {
        let n = p.as_raw().len() as f64;
        let m = p.as_raw().iter().map(|&v| v as f64).sum::<f64>() / n;
        let v = p
            .as_raw()
            .iter()
            .map(|&x| (x as f64 - m).powi(2))
            .sum::<f64>()
            / n;
        (m, v.sqrt())
    }

    fn flat(v: u8) -> Pixels {
        Pixels::Gray(GrayImage::from_pixel(128, 128, image::Luma([v])))
    }

    #[test]
    fn gaussian_noise_has_the_table_sigma_on_mid_gray() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let out = gaussian(&flat(128), 1, &mut rng).unwrap().pixels;
        let (m, sd) = stats(&out);
        assert!((m - 128.0).abs() < 1.0, "{m}");
        assert!((sd - 0.08 * 255.0).abs() < 1.0, "{sd}");
    }

    #[test]
    fn poisson_noise_grows_as_the_dose_falls_and_keeps_the_mean() {
        let mut last = 0.0;
        for s in 1..=5 {
            let mut rng = ChaCha8Rng::seed_from_u64(s as u64);
            let out = poisson(&flat(128), s, &mut rng).unwrap().pixels;
            let (m, sd) = stats(&out);
            let photons = at(&POISSON_PHOTONS, s) as f64;
            let lambda = 128.0 / 255.0 * photons;
            let want_sd = lambda.sqrt() / photons * 255.0;
            // At low doses the counts above full scale clip, as in ImageNet-C, which pulls
            // the mean down; below that the mean is kept.
            if s <= 3 {
                assert!((m - 128.0).abs() < 3.0, "s{s}: mean {m}");
            }
            if s <= 3 {
                assert!(
                    (sd - want_sd).abs() < want_sd * 0.1,
                    "s{s}: sd {sd} want {want_sd}"
                );
            }
            assert!(sd > last);
            last = sd;
        }
    }

    #[test]
    fn black_stays_black_under_shot_and_speckle_noise() {
        let black = flat(0);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        assert_eq!(poisson(&black, 5, &mut rng).unwrap().pixels, black);
        assert_eq!(speckle(&black, 5, &mut rng).unwrap().pixels, black);
    }

    #[test]
    fn salt_and_pepper_replaces_the_table_share() {
        let img = testimg::rgb(100, 100, 0);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let out = salt_pepper(&img, 4, &mut rng).unwrap().pixels;
        let changed = img
            .as_raw()
            .iter()
            .zip(out.as_raw())
            .filter(|(a, b)| a != b)
            .count() as f64
            / img.as_raw().len() as f64;
        assert!((changed - 0.17).abs() < 0.02, "{changed}");
    }
}
