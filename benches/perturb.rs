//! Speed of every image-level perturbation on 512×512 RGB and grayscale images, at
//! severity 3 (1 for one-level perturbations), one thread; plus a batch on 1 and 2 threads.
//!
//! ```text
//! $ cargo bench --bench perturb
//! $ cargo bench --bench perturb -- 'perturb/jpeg'      # one perturbation
//! ```
//!
//! The images are phantom cases scaled to 512×512 (a synthetic texture when the phantom
//! generator has none); they are also written to `target/perturb-bench/{rgb,gray}.png` so
//! that `benches/peer_perturb.py` times albumentations and imagecorruptions on the very
//! same pixels. Each perturbation's output on them goes to
//! `target/perturb-bench/medvqa/{name}-{kind}.png`, for the script's like-for-like check.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use image::imageops::{self, FilterType};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use medvqa::data::phantom::{self, PhantomSet};
use medvqa::perturb::{Application, REGISTRY, SeedContext, find, perturb_image};
use medvqa::pixels::Pixels;

const SIDE: u32 = 512;

/// A phantom image of `set` at 512×512, or a synthetic one when the set draws nothing.
fn bench_image(set: PhantomSet, gray: bool) -> Pixels {
    let case = phantom::case(set, 0, 0);
    let img = match case.images.into_iter().next() {
        Some(p) => {
            let rgb = imageops::resize(&p.to_rgb(), SIDE, SIDE, FilterType::Triangle);
            Pixels::Rgb(rgb)
        }
        None => synthetic(),
    };
    if gray {
        Pixels::Gray(img.to_dynamic().to_luma8())
    } else {
        img
    }
}

fn synthetic() -> Pixels {
    let mut rng = ChaCha8Rng::seed_from_u64(512);
    let n: Vec<f32> = (0..3)
        .flat_map(|_| medvqa::draw::fractal_noise(SIDE, SIDE, 64.0, 5, &mut rng))
        .collect();
    let plane = (SIDE * SIDE) as usize;
    Pixels::Rgb(image::RgbImage::from_fn(SIDE, SIDE, |x, y| {
        let i = (y * SIDE + x) as usize;
        image::Rgb([
            (40.0 + 200.0 * n[i]) as u8,
            (20.0 + 150.0 * n[plane + i]) as u8,
            (20.0 + 120.0 * n[2 * plane + i]) as u8,
        ])
    }))
}

fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("perturb-bench")
}

fn images() -> (Pixels, Pixels) {
    let rgb = bench_image(PhantomSet::Endoscopy, false);
    let gray = bench_image(PhantomSet::Cxr, true);
    let dir = out_dir();
    if std::fs::create_dir_all(&dir).is_ok() {
        // The peer script reads these; failing to write them only affects that script.
        let _ = rgb.save_png(&dir.join("rgb.png"));
        let _ = gray.save_png(&dir.join("gray.png"));
    }
    (rgb, gray)
}

fn per_perturbation(c: &mut Criterion) {
    let (rgb, gray) = images();
    let ctx = SeedContext::new(0, "bench");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().ok();
    let mut group = c.benchmark_group("perturb");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .throughput(Throughput::Elements(1));
    for p in REGISTRY.iter().filter(|p| p.is_image_level()) {
        let Ok(app) = Application::new(p, 3.min(p.levels)) else {
            continue;
        };
        for (kind, img) in [("rgb", &rgb), ("gray", &gray)] {
            save_output(p.name, kind, &ctx, img, &app);
            group.bench_with_input(BenchmarkId::new(p.name, kind), img, |b, img| {
                // The whole timed loop runs on the one-thread pool: handing every single
                // call to a pool thread would time a thread wake-up with each image.
                b.iter_custom(|iters| {
                    let timed = || {
                        let start = Instant::now();
                        for _ in 0..iters {
                            black_box(perturb_image(&ctx, "bench/0", black_box(img), &app).ok());
                        }
                        start.elapsed()
                    };
                    match &pool {
                        Some(pool) => pool.install(timed),
                        None => timed(),
                    }
                })
            });
        }
    }
    group.finish();
}

/// Writes the bench key's output, so that the peer script can check that its transforms
/// change the image about as much as medvqa's do.
fn save_output(name: &str, kind: &str, ctx: &SeedContext, img: &Pixels, app: &Application) {
    let dir = out_dir().join("medvqa");
    if let (Ok(()), Ok(out)) = (
        std::fs::create_dir_all(&dir),
        perturb_image(ctx, "bench/0", img, app),
    ) {
        let _ = out.pixels.save_png(&dir.join(format!("{name}-{kind}.png")));
    }
}

/// A batch of 16 images through four common perturbations, on 1 and 2 threads.
fn batch_scaling(c: &mut Criterion) {
    let (rgb, _) = images();
    let ctx = SeedContext::new(0, "bench");
    let apps: Vec<Application> = ["gaussian-noise", "gaussian-blur", "jpeg", "rotate"]
        .iter()
        .filter_map(|n| find(n).and_then(|p| Application::new(p, 3).ok()))
        .collect();
    let keys: Vec<String> = (0..16).map(|i| format!("bench/{i}")).collect();
    let work: Vec<(&String, &Application)> = keys
        .iter()
        .flat_map(|k| apps.iter().map(move |a| (k, a)))
        .collect();
    let mut group = c.benchmark_group("batch");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10)
        .throughput(Throughput::Elements(work.len() as u64));
    for threads in [1usize, 2] {
        let Ok(pool) = rayon::ThreadPoolBuilder::new().num_threads(threads).build() else {
            continue;
        };
        group.bench_function(BenchmarkId::new("threads", threads), |b| {
            b.iter(|| {
                pool.install(|| {
                    work.par_iter()
                        .map(|(k, a)| perturb_image(&ctx, k, &rgb, a).is_ok())
                        .filter(|ok| *ok)
                        .count()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, per_perturbation, batch_scaling);
criterion_main!(benches);
