#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! LLaVA parity with transformers on the tiny fixture (`tests/fixtures/families/llava.py`):
//! image tensors, prompt ids and greedy output ids, one image to five, unbatched and batched.

mod families_golden;

use families_golden as g;
use medvqa::infer::engine::{DecoderEngine, DecoderFamily};
use medvqa::infer::families::llava::Llava;
use medvqa::infer::{Model, ModelFolder, ModelOptions, PromptInput};

const FAMILY: &str = "llava";

fn options(batch_size: usize) -> ModelOptions {
    ModelOptions {
        batch_size,
        ..ModelOptions::default()
    }
}

#[test]
fn image_tensors_equal_the_pil_backend() {
    let gold = g::cases(FAMILY);
    let folder = ModelFolder::open(&g::model_dir(FAMILY)).unwrap();
    let engine = DecoderEngine::<Llava>::open(&folder, &options(1)).unwrap();
    for (name, entry) in gold["images"].as_object().unwrap() {
        let (shape, want) = g::f32_tensor(&g::golden_dir(FAMILY), &entry["pixel_values"]);
        let got = engine.family().preprocess(&[g::image(name)]).unwrap();
        assert_eq!(vec![1, 3, got.height, got.width], shape, "{name}");
        let err = g::max_abs_diff(&got.pixel_values, &want);
        assert!(err <= 1e-5, "{name}: max abs error {err}");
    }
}

#[test]
fn prompts_and_greedy_answers_match_transformers_unbatched() {
    let gold = g::cases(FAMILY);
    let model = Model::open(&g::model_dir(FAMILY), &options(1)).unwrap();
    assert_eq!(model.family(), "llava");
    for case in gold["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let sample = g::sample(case);
        let images = g::case_images(case);
        let input = PromptInput {
            sample: &sample,
            images: &images,
        };
        let view = model.prompt(&input).unwrap();
        assert_eq!(
            view.rendered,
            case["prompt"].as_str().unwrap(),
            "{name}: rendered prompt"
        );
        assert_eq!(
            view.input_ids,
            g::u32s(&case["input_ids"]),
            "{name}: prompt ids"
        );
        let out = model.answer_batch(&[input]).pop().unwrap().unwrap();
        assert_eq!(
            out.token_ids,
            g::u32s(&case["generated_ids"]),
            "{name}: generated ids"
        );
        assert_eq!(
            out.text,
            case["generated_text"].as_str().unwrap(),
            "{name}: text"
        );
        assert_eq!(out.prompt_tokens, view.input_ids.len());
    }
}

#[test]
fn one_left_padded_batch_answers_like_transformers_and_like_unbatched() {
    let gold = g::cases(FAMILY);
    let cases = gold["cases"].as_array().unwrap();
    let model = Model::open(&g::model_dir(FAMILY), &options(cases.len())).unwrap();
    let samples: Vec<_> = cases.iter().map(g::sample).collect();
    let images: Vec<_> = cases.iter().map(g::case_images).collect();
    let inputs: Vec<PromptInput<'_>> = samples
        .iter()
        .zip(&images)
        .map(|(sample, images)| PromptInput { sample, images })
        .collect();
    let out = model.answer_batch(&inputs);
    let batched = gold["batch"]["generated_ids"].as_array().unwrap();
    for ((case, got), want) in cases.iter().zip(out).zip(batched) {
        let got = got.unwrap();
        assert_eq!(got.timings.batch_size, cases.len());
        assert_eq!(got.token_ids, g::u32s(want), "{}: batched", case["name"]);
        assert_eq!(
            got.token_ids,
            g::u32s(&case["generated_ids"]),
            "{}: batched vs unbatched",
            case["name"]
        );
    }
}

#[test]
fn image_token_count_follows_the_processor_config() {
    let folder = ModelFolder::open(&g::model_dir(FAMILY)).unwrap();
    let engine = DecoderEngine::<Llava>::open(&folder, &options(1)).unwrap();
    // (32/8)^2 patches + 1 CLS added by num_additional_image_tokens, dropped by "default"
    assert_eq!(engine.family().image_tokens, 16);
    assert_eq!(g::cases(FAMILY)["image_seq_len"], 16);
}
