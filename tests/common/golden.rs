//! Reading the fixture models and golden files that `tests/fixtures/make_models.py` writes
//! (format in `tests/fixtures/export_common.py`). Test files include it with
//! `#[path = "common/golden.rs"] mod golden;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use medvqa::infer::{ModelOptions, PromptInput, RuntimeOptions};
use medvqa::pixels::Pixels;
use medvqa::sample::{ImageRef, ImageSource, Sample, Task};
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn golden(variant: &str) -> Value {
    golden_opt(variant).unwrap_or_else(|| panic!("no goldens for {variant}"))
}

/// `golden/<name>/cases.json`, if that folder exists.
pub fn golden_opt(name: &str) -> Option<Value> {
    let p = fixtures().join("golden").join(name).join("cases.json");
    p.is_file()
        .then(|| serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap())
}

pub fn model_dir(variant: &str) -> PathBuf {
    fixtures().join("models").join(variant)
}

pub fn options() -> ModelOptions {
    ModelOptions {
        runtime: RuntimeOptions {
            threads: Some(1),
            ..RuntimeOptions::default()
        },
        ..ModelOptions::default()
    }
}

pub fn load_png(rel: &str) -> Arc<Pixels> {
    let bytes = std::fs::read(fixtures().join(rel)).unwrap();
    Arc::new(medvqa::data::decode::decode_bytes(&bytes, rel, u64::MAX).unwrap())
}

/// A tensor written by `export_common.write_tensor`.
pub fn tensor_f32(dir: &Path, entry: &Value) -> (Vec<usize>, Vec<f32>) {
    let shape = shape(entry);
    let bytes = std::fs::read(dir.join(entry["file"].as_str().unwrap())).unwrap();
    assert_eq!(entry["dtype"], "f32");
    let data = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (shape, data)
}

pub fn tensor_bool(dir: &Path, entry: &Value) -> (Vec<usize>, Vec<bool>) {
    let bytes = std::fs::read(dir.join(entry["file"].as_str().unwrap())).unwrap();
    assert_eq!(entry["dtype"], "bool");
    (shape(entry), bytes.iter().map(|&b| b != 0).collect())
}

pub fn shape(entry: &Value) -> Vec<usize> {
    entry["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// A golden case as a medvqa sample, with its images.
pub fn case_sample(g: &Value, case: &Value) -> (Sample, Vec<Arc<Pixels>>) {
    let images: Vec<Arc<Pixels>> = case["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| load_png(g["images"][n.as_str().unwrap()]["path"].as_str().unwrap()))
        .collect();
    let options: Vec<String> = case["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    let task = match case["kind"].as_str().unwrap() {
        "open" => Task::Open {
            answer: String::new(),
        },
        "closed" => Task::Closed { answer: true },
        "single_choice" => Task::SingleChoice { options, answer: 0 },
        "multi_choice" => Task::MultiChoice {
            options,
            answer: vec![0],
        },
        "grounding" => Task::Grounding { answer: None },
        k => panic!("unknown kind {k}"),
    };
    let sample = Sample {
        id: case["name"].as_str().unwrap().to_string(),
        images: images
            .iter()
            .enumerate()
            .map(|(i, p)| ImageRef {
                key: format!("img{i}"),
                source: ImageSource::Pixels(p.clone()),
            })
            .collect(),
        question: case["question"].as_str().unwrap().to_string(),
        task,
        boxes: Vec::new(),
        meta: Default::default(),
    };
    (sample, images)
}

pub fn cases(g: &Value) -> Vec<(Sample, Vec<Arc<Pixels>>)> {
    g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| case_sample(g, c))
        .collect()
}

pub fn inputs(cases: &[(Sample, Vec<Arc<Pixels>>)]) -> Vec<PromptInput<'_>> {
    cases
        .iter()
        .map(|(sample, images)| PromptInput { sample, images })
        .collect()
}
