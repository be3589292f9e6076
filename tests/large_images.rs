#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A large image (2 MP and more) is resampled in bands and written into the model tensor on
//! several rayon threads; the tensors must be the one-thread tensors, bit for bit, at the
//! published settings of the families that split the work (SmolVLM's tiles, Qwen2-VL's
//! patches, LLaVA's resize), and at the portable SIMD level too.

use std::path::{Path, PathBuf};

use image::GrayImage;
use medvqa::infer::families::clip::ClipImageProcessor;
use medvqa::infer::families::{idefics3, qwen2_vl};
use medvqa::pixels::Pixels;
use medvqa::simd::{self, Level};

fn config(name: &str) -> (serde_json::Value, PathBuf) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/processors")
        .join(name)
        .join("preprocessor_config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    (serde_json::from_str(&text).unwrap(), path)
}

/// A 2100 × 1500 radiograph-like gray image: gradients plus fine texture.
fn radiograph() -> Pixels {
    Pixels::Gray(GrayImage::from_fn(2100, 1500, |x, y| {
        image::Luma([((x / 7 + y / 5) as u8) ^ ((x * y) as u8 & 0x1f)])
    }))
}

fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn large_images_give_the_one_thread_tensors_on_several_threads() {
    let img = radiograph();
    let (one, three) = (pool(1), pool(3));

    let (v, path) = config("smolvlm-256m");
    let smol = idefics3::ImageProcessor::from_config(&v, &path, None).unwrap();
    let (v, path) = config("qwen2-vl");
    let qwen = qwen2_vl::ImageProcessor::from_config(&v, &path, None).unwrap();
    let (v, path) = config("llava-1.5");
    let llava = ClipImageProcessor::from_config(&v, &path, false).unwrap();

    for level in [Level::Baseline, simd::level()] {
        let run = |pool: &rayon::ThreadPool| {
            pool.install(|| {
                simd::with_level(level, || {
                    let t = smol.tiles(&[&img]);
                    let q = qwen.patches(&img).unwrap();
                    let mut l = Vec::new();
                    let dims = llava.pixel_values(&img, &mut l);
                    (t, q, l, dims)
                })
            })
        };
        let (t1, q1, l1, d1) = run(&one);
        let (t3, q3, l3, d3) = run(&three);
        assert!(t1.count > 1 && t1.pixel_values.len() == t1.count * 3 * t1.height * t1.width);
        assert!(
            bits(&t1.pixel_values) == bits(&t3.pixel_values),
            "smolvlm at {level:?}"
        );
        assert_eq!(t1.pixel_attention_mask, t3.pixel_attention_mask);
        assert_eq!(q1.grid_thw, q3.grid_thw);
        assert!(q1.patches() > 1000, "{}", q1.patches());
        assert!(
            bits(&q1.pixel_values) == bits(&q3.pixel_values),
            "qwen2-vl at {level:?}"
        );
        assert_eq!(d1, d3);
        assert!(bits(&l1) == bits(&l3), "llava at {level:?}");
    }
}
