#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Qwen2-VL parity with transformers on the tiny fixture (`tests/fixtures/families/qwen2_vl.py`):
//! patches and `grid_thw`, prompt ids, M-RoPE position ids, greedy output ids, one image to
//! five, unbatched and batched; box answers keep their markup in the 0–1000 grid frame.

mod families_golden;

use families_golden as g;
use medvqa::geometry::BoxFrame;
use medvqa::infer::engine::{DecoderEngine, DecoderFamily};
use medvqa::infer::families::qwen2_vl::Qwen2Vl;
use medvqa::infer::{Model, ModelFolder, ModelOptions, PromptInput};

const FAMILY: &str = "qwen2_vl";

fn options(batch_size: usize) -> ModelOptions {
    ModelOptions {
        batch_size,
        ..ModelOptions::default()
    }
}

fn i64s(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[test]
fn patches_and_grids_equal_the_pil_backend() {
    let gold = g::cases(FAMILY);
    let folder = ModelFolder::open(&g::model_dir(FAMILY)).unwrap();
    let engine = DecoderEngine::<Qwen2Vl>::open(&folder, &options(1)).unwrap();
    for (name, entry) in gold["images"].as_object().unwrap() {
        let (shape, want) = g::f32_tensor(&g::golden_dir(FAMILY), &entry["pixel_values"]);
        let got = engine
            .family()
            .preprocess(&[g::image(name)])
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(
            got.grid_thw.to_vec(),
            i64s(&entry["grid_thw"]),
            "{name}: grid_thw"
        );
        assert_eq!(
            vec![got.patches(), got.pixel_values.len() / got.patches()],
            shape,
            "{name}"
        );
        let err = g::max_abs_diff(&got.pixel_values, &want);
        assert!(err <= 1e-5, "{name}: max abs error {err}");
    }
}

#[test]
fn prompts_positions_and_greedy_answers_match_transformers_unbatched() {
    let gold = g::cases(FAMILY);
    let folder = ModelFolder::open(&g::model_dir(FAMILY)).unwrap();
    let engine = DecoderEngine::<Qwen2Vl>::open(&folder, &options(1)).unwrap();
    let model = Model::open(&g::model_dir(FAMILY), &options(1)).unwrap();
    assert_eq!(model.box_frame(), BoxFrame::Grid(1000));
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

        let vision = engine.family().preprocess(&images).unwrap();
        let ids: Vec<i64> = view.input_ids.iter().map(|&t| t as i64).collect();
        let pos = engine.family().positions(&ids, &vision).unwrap();
        let want: Vec<Vec<i64>> = case["position_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(i64s)
            .collect();
        assert_eq!(pos.axes, want, "{name}: M-RoPE position ids");
        assert_eq!(
            pos.next - ids.len() as i64,
            case["rope_delta"].as_i64().unwrap(),
            "{name}: rope delta"
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
fn box_markup_survives_decoding() {
    let folder = ModelFolder::open(&g::model_dir(FAMILY)).unwrap();
    let engine = DecoderEngine::<Qwen2Vl>::open(&folder, &options(1)).unwrap();
    let tok = folder.tokenizer().unwrap();
    let text = "<|object_ref_start|>the polyp<|object_ref_end|><|box_start|>(100,200),(500,600)<|box_end|><|im_end|>";
    let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
    let decoded = engine.family().decode(&tok, &ids);
    assert_eq!(
        decoded.replace(' ', ""),
        "<|object_ref_start|>thepolyp<|object_ref_end|><|box_start|>(100,200),(500,600)<|box_end|>"
    );
}
