#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Registry-driven checks over every model family: each `model_type` the registry claims has
//! a committed fixture folder, opens to its family, declares a box frame, and builds a prompt
//! for a one-image closed question; and the answers it gives for that question are the same
//! alone and in a batch.

mod families_golden;

use std::path::PathBuf;

use families_golden as g;
use medvqa::infer::families::{FAMILIES, for_model_type};
use medvqa::infer::{Model, ModelOptions, PromptInput};
use medvqa::sample::{ImageRef, ImageSource, Sample, Task};

/// The fixture folder for a `model_type`: the one under `tests/fixtures/models` whose
/// `config.json` names it.
fn fixture_for(model_type: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(g::fixtures().join("models"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs.into_iter().find(|d| {
        std::fs::read_to_string(d.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|c| c["model_type"] == model_type)
    })
}

fn closed(id: &str, img: &std::sync::Arc<medvqa::pixels::Pixels>) -> Sample {
    Sample {
        id: id.into(),
        images: vec![ImageRef {
            key: id.into(),
            source: ImageSource::Pixels(img.clone()),
        }],
        question: "Is there a polyp in the image?".into(),
        task: Task::Closed { answer: true },
        boxes: Vec::new(),
        meta: Default::default(),
    }
}

#[test]
fn every_registered_model_type_has_a_fixture_that_opens_and_answers() {
    let images = [
        g::image("wide_rgb"),
        g::image("tall_gray"),
        g::image("odd_rgb"),
    ];
    for family in FAMILIES {
        for model_type in family.model_types {
            let dir = fixture_for(model_type).unwrap_or_else(|| {
                panic!("no fixture folder under tests/fixtures/models has model_type {model_type}")
            });
            assert_eq!(
                for_model_type(model_type).map(|f| f.name),
                Some(family.name)
            );
            let alone = Model::open(&dir, &ModelOptions::default()).unwrap();
            assert_eq!(alone.family(), family.name, "{model_type}");
            let _ = alone.box_frame();
            let samples: Vec<Sample> = images
                .iter()
                .enumerate()
                .map(|(i, im)| closed(&format!("s{i}"), im))
                .collect();
            let one: Vec<Vec<_>> = images.iter().map(|im| vec![im.clone()]).collect();
            let inputs: Vec<PromptInput<'_>> = samples
                .iter()
                .zip(&one)
                .map(|(sample, images)| PromptInput { sample, images })
                .collect();
            let view = alone.prompt(&inputs[0]).unwrap();
            assert!(!view.input_ids.is_empty(), "{model_type}: empty prompt");
            let singles: Vec<String> = inputs
                .iter()
                .map(|i| {
                    alone
                        .answer_batch(std::slice::from_ref(i))
                        .pop()
                        .unwrap()
                        .unwrap()
                        .text
                })
                .collect();
            let batched = Model::open(
                &dir,
                &ModelOptions {
                    batch_size: inputs.len(),
                    ..ModelOptions::default()
                },
            )
            .unwrap();
            let together: Vec<String> = batched
                .answer_batch(&inputs)
                .into_iter()
                .map(|r| r.unwrap().text)
                .collect();
            assert_eq!(
                singles, together,
                "{model_type}: batched answers differ from single ones"
            );
        }
    }
}
