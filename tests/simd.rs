#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every runtime-dispatched kernel gives the same bytes at every SIMD level this machine has
//! (`medvqa::simd`), on random images of odd sizes: Pillow's resampler (every filter, up and
//! down), normalisation into the model tensor, and every image perturbation at every
//! severity, in RGB and gray. The baseline level is the portable build, the path every CPU
//! runs; the others must not change a byte of it.

mod common;

use image::{GrayImage, RgbImage};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use medvqa::infer::image_ops::{self, Filter, Normalize};
use medvqa::perturb::{Apply, REGISTRY};
use medvqa::pixels::Pixels;
use medvqa::simd::{self, Level};

/// Odd sizes: no dimension a multiple of any vector width, some below one.
const SIZES: [(u32, u32); 4] = [(1, 1), (7, 3), (37, 23), (203, 129)];

fn random_rgb(w: u32, h: u32, seed: u64) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Smooth regions and edges, plus noise: resamplers and blurs see both.
    RgbImage::from_fn(w, h, |x, y| {
        let n: u8 = rng.random();
        image::Rgb([
            ((x * 255) / w.max(1)) as u8 ^ (n & 0x0f),
            if (x / 5 + y / 3) % 2 == 0 { 250 } else { n },
            ((y * 255) / h.max(1)) as u8,
        ])
    })
}

fn random_gray(w: u32, h: u32, seed: u64) -> GrayImage {
    let rgb = random_rgb(w, h, seed);
    GrayImage::from_fn(w, h, |x, y| {
        image::Luma([rgb.get_pixel(x, y).0[(x % 3) as usize]])
    })
}

/// The levels to compare against the baseline; prints which ran, so a log shows that a
/// machine without AVX-512 did not check it.
fn levels() -> Vec<Level> {
    let have = simd::available();
    let missing: Vec<&str> = Level::ALL
        .iter()
        .filter(|l| !have.contains(l))
        .map(|l| l.name())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "NOTICE: this CPU lacks SIMD level(s) {}; compared only {:?}",
            missing.join(", "),
            have.iter().map(|l| l.name()).collect::<Vec<_>>()
        );
    }
    have
}

#[test]
fn the_resampler_is_byte_identical_at_every_level() {
    let filters = [
        Filter::Nearest,
        Filter::Box,
        Filter::Bilinear,
        Filter::Hamming,
        Filter::Bicubic,
        Filter::Lanczos,
    ];
    let mut checked = 0;
    for (i, &(w, h)) in SIZES.iter().enumerate() {
        let img = random_rgb(w, h, i as u64);
        let targets = [
            (w * 2 + 1, h + 2),
            (w.div_ceil(3), h.div_ceil(2)),
            (17, 224),
            (w, h / 2 + 1),
        ];
        for &f in &filters {
            for &(tw, th) in &targets {
                let base = simd::with_level(Level::Baseline, || image_ops::resize(&img, tw, th, f));
                for l in levels() {
                    let got = simd::with_level(l, || image_ops::resize(&img, tw, th, f));
                    assert!(
                        got == base,
                        "resize {w}x{h} -> {tw}x{th} {f:?} differs at {}",
                        l.name()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= SIZES.len() * 6 * 4);
}

#[test]
fn normalisation_is_byte_identical_at_every_level() {
    let norms = [
        Normalize {
            rescale: Some(1.0 / 255.0),
            mean_std: Some((
                [0.481_454_66, 0.457_827_5, 0.408_210_73],
                [0.268_629_54, 0.261_302_6, 0.275_777_1],
            )),
        },
        Normalize {
            rescale: Some(0.003_921_569),
            mean_std: Some(([0.5; 3], [0.5; 3])),
        },
        Normalize {
            rescale: None,
            mean_std: None,
        },
    ];
    for (i, &(w, h)) in SIZES.iter().enumerate() {
        let img = random_rgb(w, h, 100 + i as u64);
        for n in &norms {
            let mut base = Vec::new();
            simd::with_level(Level::Baseline, || image_ops::to_chw(&img, n, &mut base));
            assert_eq!(base.len(), (w * h * 3) as usize);
            for l in levels() {
                let mut got = Vec::new();
                simd::with_level(l, || image_ops::to_chw(&img, n, &mut got));
                let same = got.len() == base.len()
                    && got
                        .iter()
                        .zip(&base)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "to_chw {w}x{h} differs at {}", l.name());
            }
        }
    }
}

#[test]
fn every_image_perturbation_is_byte_identical_at_every_level() {
    let mut checked = 0;
    for p in REGISTRY {
        let Apply::Image(f) = p.apply else { continue };
        for (i, &(w, h)) in SIZES.iter().enumerate() {
            let inputs = [
                Pixels::Rgb(random_rgb(w, h, 200 + i as u64)),
                Pixels::Gray(random_gray(w, h, 300 + i as u64)),
            ];
            for px in &inputs {
                for s in 1..=p.levels {
                    let run = |l: Level| {
                        let mut rng = ChaCha8Rng::seed_from_u64(42);
                        simd::with_level(l, || f(px, s, &mut rng)).map(|r| r.pixels)
                    };
                    let base = run(Level::Baseline);
                    for l in levels() {
                        let got = run(l);
                        match (&base, &got) {
                            (Ok(a), Ok(b)) => assert!(
                                a == b,
                                "{} s{s} on {w}x{h} ({} channels) differs at {}",
                                p.name,
                                px.channels(),
                                l.name()
                            ),
                            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                            _ => panic!("{} s{s} on {w}x{h}: fails at one level only", p.name),
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} comparisons");
}

/// The bilinear warp's AVX-512 blocks (rotate, the Kvasir recipe) and the zoom's planned
/// two-tap pass on maps the perturbations' severities do not reach: large angles, shear, up-
/// and downscaling, maps that leave most of the output black, and maps that read the source's
/// last row and column (where a 4-byte gather would overrun the buffer and the kernel must
/// fall back).
#[test]
fn the_bilinear_warp_is_byte_identical_at_every_level_on_any_map() {
    use medvqa::perturb::geometric::{Affine, warp};
    let mut checked = 0;
    for (i, &(w, h)) in [(2u32, 2u32), (17, 5), (64, 48), (203, 129), (300, 31)]
        .iter()
        .enumerate()
    {
        let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
        let maps = [
            Affine::rotate_about(0.17, cx, cy),
            Affine::rotate_about(-2.3, cx, cy),
            Affine::rotate_about(0.6, cx, cy).then(&Affine::scale(1.7, 0.8)),
            Affine([1.0, 0.35, -3.0, 0.1, 0.9, 2.5]),
            Affine::rotate_about(0.01, 0.0, 0.0).then(&Affine::translate(-0.3, -0.6)),
            Affine::scale(3.1, 2.9).then(&Affine::rotate_about(0.4, 0.0, 0.0)),
            // Separable maps (the zoom's two passes): magnified, shrunk, partly outside.
            Affine::translate(-(w as f64) * 0.2, -1.3).then(&Affine::scale(1.43, 1.43)),
            Affine::scale(0.3, 0.45),
            Affine::translate(w as f64 * 0.6, -(h as f64) * 0.3).then(&Affine::scale(1.1, 2.0)),
        ];
        for (j, m) in maps.iter().enumerate() {
            for dst in [(w, h), (w + 13, h / 2 + 1)] {
                let rgb = Pixels::Rgb(random_rgb(w, h, (i * 10 + j) as u64));
                let gray = Pixels::Gray(random_gray(w, h, (i * 10 + j) as u64));
                for img in [&rgb, &gray] {
                    let base = simd::with_level(Level::Baseline, || warp(img, m, dst));
                    for &l in &levels() {
                        let got = simd::with_level(l, || warp(img, m, dst));
                        assert!(
                            got.as_raw() == base.as_raw(),
                            "{w}x{h} map {j} -> {dst:?} at {}",
                            l.name()
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked >= 180, "{checked}");
}

/// Every kernel closure handed to `simd::run`/`run_at` in `src/` is `#[inline(always)]`.
/// Without it the compiler may keep the closure as a function of its own, compiled for the
/// baseline, and the dispatch silently buys nothing: bytes stay equal, so the tests above
/// cannot see it (issue 17 found most kernels running at SSE2 that way). Test modules
/// aside, each call's text up to its closure's `||` must carry the attribute.
#[test]
fn every_dispatched_kernel_closure_is_inlined_into_its_level() {
    let files = common::rust_sources(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut calls = 0;
    let mut bare = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // Code only: the test module (always last in this codebase) aside, comment lines blanked.
        let code: String = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap()
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("//") {
                    ""
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        for pat in ["simd::run(", "simd::run_at(", " run(", " run_at("] {
            for (at, _) in code.match_indices(pat) {
                let before = &code[..at];
                if before.ends_with("fn") || before.trim_end().ends_with("fn") {
                    continue; // the definitions themselves
                }
                let rest = &code[at + pat.len()..];
                let Some(closure) = rest.find("||") else {
                    continue; // not handed a closure literal
                };
                // A call whose own closure starts after the next `;` is some other `run`.
                if rest[..closure].contains(';') {
                    continue;
                }
                calls += 1;
                if !rest[..closure].contains("#[inline(always)]") {
                    let line = before.lines().count();
                    bare.push(format!("{}:{line}", file.display()));
                }
            }
        }
    }
    assert!(
        calls >= 10,
        "found only {calls} dispatch calls; has the API moved?"
    );
    assert!(
        bare.is_empty(),
        "closures handed to simd::run without #[inline(always)] (they run at the baseline): {bare:?}"
    );
}
