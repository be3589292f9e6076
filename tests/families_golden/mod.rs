//! Reading the fixture goldens that `tests/fixtures/make_models.py` writes
//! (`golden/<family>/cases.json` plus raw little-endian tensors), for the family tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use medvqa::pixels::Pixels;
use medvqa::sample::{ImageRef, ImageSource, Sample, Task};
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn model_dir(name: &str) -> PathBuf {
    fixtures().join("models").join(name)
}

pub fn golden_dir(name: &str) -> PathBuf {
    fixtures().join("golden").join(name)
}

pub fn cases(name: &str) -> Value {
    let path = golden_dir(name).join("cases.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A float32 tensor descriptor `{"file", "dtype": "f32", "shape"}` of `dir`.
pub fn f32_tensor(dir: &Path, desc: &Value) -> (Vec<usize>, Vec<f32>) {
    assert_eq!(desc["dtype"], "f32");
    let bytes = std::fs::read(dir.join(desc["file"].as_str().unwrap())).unwrap();
    let data: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let shape: Vec<usize> = desc["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(shape.iter().product::<usize>(), data.len());
    (shape, data)
}

/// The largest absolute difference, after checking the lengths agree.
pub fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// A fixture image as medvqa decodes it (gray stays gray).
pub fn image(name: &str) -> Arc<Pixels> {
    let path = fixtures().join("images").join(format!("{name}.png"));
    let bytes = std::fs::read(&path).unwrap();
    Arc::new(medvqa::data::decode::decode_bytes(&bytes, name, 1 << 30).unwrap())
}

pub fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// The sample of a golden case (its answer is irrelevant to inference).
pub fn sample(case: &Value) -> Sample {
    let id = case["name"].as_str().unwrap().to_string();
    let options = strings(&case["options"]);
    let task = match case["kind"].as_str().unwrap() {
        "open" => Task::Open { answer: "x".into() },
        "closed" => Task::Closed { answer: true },
        "single_choice" => Task::SingleChoice { options, answer: 0 },
        "multi_choice" => Task::MultiChoice {
            options,
            answer: vec![0],
        },
        "grounding" => Task::Grounding { answer: None },
        k => panic!("unknown kind {k}"),
    };
    let images = strings(&case["images"])
        .into_iter()
        .map(|n| ImageRef {
            key: n.clone(),
            source: ImageSource::Pixels(image(&n)),
        })
        .collect();
    Sample {
        id,
        images,
        question: case["question"].as_str().unwrap().to_string(),
        task,
        boxes: Vec::new(),
        meta: Default::default(),
    }
}

/// The images of a golden case, in order.
pub fn case_images(case: &Value) -> Vec<Arc<Pixels>> {
    strings(&case["images"]).iter().map(|n| image(n)).collect()
}
