//! Speed of each model family's image preprocessing at the published processor settings, on
//! realistic images, one thread.
//!
//! ```text
//! $ cargo bench --bench preprocess
//! $ cargo bench --bench preprocess -- 'preprocess/qwen2-vl'    # one processor
//! $ python3 benches/peer_preprocess.py                          # transformers on the same images
//! ```
//!
//! The processors are the ones [`medvqa::infer::families`] builds when a model opens, read
//! from `benches/processors/<name>/preprocessor_config.json` (the published settings of
//! SmolVLM-256M, LLaVA-1.5, Qwen2-VL-2B, CLIP ViT-B/16 and SigLIP at 224 and 384). The images
//! are phantom cases scaled to 512×512 RGB, 1024×768 RGB and 2048×2048 grayscale; before
//! timing, the bench writes them to `target/preprocess-bench/images/` and medvqa's output
//! tensors to `target/preprocess-bench/tensors/` (raw little-endian f32 plus `manifest.json`),
//! so that `benches/peer_preprocess.py` can time transformers' PIL-backend processors on the
//! very same pixels and check that the tensors are equal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use image::imageops::{self, FilterType};
use serde_json::{Value, json};

use medvqa::data::phantom::{self, PhantomSet};
use medvqa::infer::families::clip::ClipImageProcessor;
use medvqa::infer::families::{idefics3, qwen2_vl};
use medvqa::pixels::Pixels;

/// A family's image processor, as the family builds it from the config.
enum Processor {
    Idefics3(idefics3::ImageProcessor),
    Qwen2Vl(qwen2_vl::ImageProcessor),
    Clip(ClipImageProcessor),
}

/// One output tensor of a preprocessing call.
struct Output {
    shape: Vec<usize>,
    values: Vec<f32>,
    /// Idefics3's `pixel_attention_mask`.
    mask: Option<Vec<bool>>,
}

/// `(bench name, folder under benches/processors, family)`.
const PROCESSORS: [(&str, &str); 6] = [
    ("smolvlm-256m", "idefics3"),
    ("llava-1.5", "llava"),
    ("qwen2-vl", "qwen2_vl"),
    ("clip-vit-b16", "clip"),
    ("siglip-224", "siglip"),
    ("siglip-384", "siglip"),
];

impl Processor {
    fn load(name: &str, family: &str) -> Result<Processor, String> {
        let path = manifest_dir()
            .join("benches/processors")
            .join(name)
            .join("preprocessor_config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path:?}: {e}"))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{path:?}: {e}"))?;
        let err = |e: medvqa::infer::ModelError| e.to_string();
        Ok(match family {
            "idefics3" => Processor::Idefics3(
                idefics3::ImageProcessor::from_config(&v, &path, None).map_err(err)?,
            ),
            "qwen2_vl" => Processor::Qwen2Vl(
                qwen2_vl::ImageProcessor::from_config(&v, &path, None).map_err(err)?,
            ),
            "llava" | "clip" => {
                Processor::Clip(ClipImageProcessor::from_config(&v, &path, false).map_err(err)?)
            }
            "siglip" => {
                Processor::Clip(ClipImageProcessor::from_config(&v, &path, true).map_err(err)?)
            }
            other => return Err(format!("unknown family {other}")),
        })
    }

    /// What the family's `preprocess` computes for one image.
    fn run(&self, px: &Pixels) -> Output {
        match self {
            Processor::Idefics3(p) => {
                let t = p.tiles(&[px]);
                Output {
                    shape: vec![1, t.count, 3, t.height, t.width],
                    values: t.pixel_values,
                    mask: Some(t.pixel_attention_mask),
                }
            }
            Processor::Qwen2Vl(p) => match p.patches(px) {
                Ok(patches) => {
                    let n = patches.patches();
                    let row = patches.pixel_values.len() / n.max(1);
                    Output {
                        shape: vec![n, row],
                        values: patches.pixel_values,
                        mask: None,
                    }
                }
                Err(_) => Output {
                    shape: vec![0],
                    values: Vec::new(),
                    mask: None,
                },
            },
            Processor::Clip(p) => {
                let mut values = Vec::new();
                let (w, h) = p.pixel_values(px, &mut values);
                Output {
                    shape: vec![1, 3, h as usize, w as usize],
                    values,
                    mask: None,
                }
            }
        }
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target"));
    target.join("preprocess-bench")
}

/// The first image of a phantom case, scaled to `w`×`h`.
fn phantom_image(set: PhantomSet, w: u32, h: u32, gray: bool) -> Pixels {
    let case = phantom::case(set, 0, 0);
    let src = case
        .images
        .into_iter()
        .next()
        .map(|p| p.to_rgb())
        .unwrap_or_else(|| {
            image::RgbImage::from_fn(448, 448, |x, y| {
                image::Rgb([x as u8, y as u8, (x ^ y) as u8])
            })
        });
    let rgb = imageops::resize(&src, w, h, FilterType::Triangle);
    if gray {
        Pixels::Gray(image::DynamicImage::ImageRgb8(rgb).to_luma8())
    } else {
        Pixels::Rgb(rgb)
    }
}

/// `(name, image)`: the three benchmark images.
fn images() -> Vec<(&'static str, Pixels)> {
    vec![
        (
            "rgb-512x512",
            phantom_image(PhantomSet::Endoscopy, 512, 512, false),
        ),
        (
            "rgb-1024x768",
            phantom_image(PhantomSet::Endoscopy, 1024, 768, false),
        ),
        (
            "gray-2048x2048",
            phantom_image(PhantomSet::Cxr, 2048, 2048, true),
        ),
    ]
}

fn write_f32(path: &Path, values: &[f32]) -> std::io::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes)
}

/// Writes the images and medvqa's tensors for the peer script. Failing to write only
/// affects that script, so errors are reported and the benchmark goes on.
fn write_reference(procs: &[(&str, Processor)], imgs: &[(&str, Pixels)]) {
    let run = || -> Result<(), String> {
        let dir = out_dir();
        let (img_dir, t_dir) = (dir.join("images"), dir.join("tensors"));
        for d in [&img_dir, &t_dir] {
            std::fs::create_dir_all(d).map_err(|e| format!("{d:?}: {e}"))?;
        }
        for (name, px) in imgs {
            px.save_png(&img_dir.join(format!("{name}.png")))
                .map_err(|e| e.to_string())?;
        }
        let mut manifest = Vec::new();
        for (pname, p) in procs {
            for (iname, px) in imgs {
                let out = p.run(px);
                let stem = format!("{pname}__{iname}");
                let file = format!("{stem}.f32");
                write_f32(&t_dir.join(&file), &out.values).map_err(|e| e.to_string())?;
                let mask = match &out.mask {
                    Some(m) => {
                        let f = format!("{stem}.mask.u8");
                        let bytes: Vec<u8> = m.iter().map(|&b| b as u8).collect();
                        std::fs::write(t_dir.join(&f), bytes).map_err(|e| e.to_string())?;
                        Value::String(f)
                    }
                    None => Value::Null,
                };
                manifest.push(json!({
                    "processor": pname,
                    "image": iname,
                    "shape": out.shape,
                    "file": file,
                    "mask": mask,
                }));
            }
        }
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
        std::fs::write(t_dir.join("manifest.json"), text).map_err(|e| e.to_string())
    };
    if let Err(e) = run() {
        eprintln!("preprocess bench: could not write reference tensors: {e}");
    }
}

fn preprocess(c: &mut Criterion) {
    let procs: Vec<(&str, Processor)> = PROCESSORS
        .iter()
        .filter_map(|&(name, family)| match Processor::load(name, family) {
            Ok(p) => Some((name, p)),
            Err(e) => {
                eprintln!("preprocess bench: skipping {name}: {e}");
                None
            }
        })
        .collect();
    let imgs = images();
    if std::env::var_os("MEDVQA_BENCH_NO_TENSORS").is_none() {
        write_reference(&procs, &imgs);
    }
    let mut group = c.benchmark_group("preprocess");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .throughput(Throughput::Elements(1));
    // One thread, as the peers run: the timed loop runs on a one-thread pool, so that large
    // images are not split into bands across threads (`image_ops::resize`).
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().ok();
    for (pname, p) in &procs {
        for (iname, px) in &imgs {
            group.bench_with_input(BenchmarkId::new(*pname, *iname), px, |b, px| {
                b.iter_custom(|iters| in_pool(one.as_ref(), || time(iters, || p.run(px))))
            });
        }
    }
    group.finish();

    // Parallelism inside one large image: the 2048² radiograph on 1 and 2 threads.
    let mut group = c.benchmark_group("preprocess-threads");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .throughput(Throughput::Elements(1));
    let big = imgs
        .iter()
        .filter(|(name, _)| name.starts_with("gray-2048"));
    for (iname, px) in big {
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .ok();
            for (pname, p) in &procs {
                let id = BenchmarkId::new(format!("{pname}/{iname}"), threads);
                group.bench_with_input(id, px, |b, px| {
                    b.iter_custom(|iters| in_pool(pool.as_ref(), || time(iters, || p.run(px))))
                });
            }
        }
    }
    group.finish();
}

/// `iters` calls of `f`, timed together.
fn time<R>(iters: u64, f: impl Fn() -> R) -> Duration {
    let start = std::time::Instant::now();
    for _ in 0..iters {
        std::hint::black_box(f());
    }
    start.elapsed()
}

/// Runs `f` on `pool` (the whole timed loop, so that no call pays a thread hand-off).
fn in_pool<R: Send>(pool: Option<&rayon::ThreadPool>, f: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

criterion_group!(benches, preprocess);
criterion_main!(benches);
