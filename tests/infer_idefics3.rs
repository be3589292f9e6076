#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Idefics3/SmolVLM parity with transformers on the committed tiny fixtures
//! (`tests/fixtures/make_models.py --family idefics3`), and every bad-input case of a model
//! folder. Needs the ONNX Runtime library (`scripts/setup.sh`).
//!
//! - Preprocessing: each fixture image's tiles equal the PIL backend's `pixel_values` and
//!   `pixel_attention_mask` exactly (max abs difference 0).
//! - Pillow's resize is matched byte for byte for every filter.
//!
//! Prompt ids and greedy tokens are checked for every family in `infer_families.rs`.

mod common;
#[path = "common/golden.rs"]
mod golden;

use golden::*;

use std::path::Path;

use medvqa::infer::families::idefics3::ImageProcessor;
use medvqa::infer::{Model, ModelError, SampleErrorKind};
use serde_json::Value;

const VARIANTS: [&str; 2] = ["idefics3", "smolvlm"];

#[test]
fn preprocessing_equals_the_pil_image_processor_exactly() {
    for variant in VARIANTS {
        let g = golden(variant);
        assert_eq!(g["image_processor_backend"], "pil");
        let dir = fixtures().join("golden").join(variant);
        let pp_path = model_dir(variant).join("preprocessor_config.json");
        let pp: Value = serde_json::from_str(&std::fs::read_to_string(&pp_path).unwrap()).unwrap();
        let proc = ImageProcessor::from_config(&pp, &pp_path, None).unwrap();
        for (name, entry) in g["images"].as_object().unwrap() {
            let img = load_png(entry["path"].as_str().unwrap());
            let tiles = proc.tiles(&[&img]);
            assert_eq!(
                tiles.grids,
                vec![(
                    entry["rows"].as_u64().unwrap() as usize,
                    entry["cols"].as_u64().unwrap() as usize
                )],
                "{variant}/{name}"
            );
            let (shape, want) = tensor_f32(&dir, &entry["pixel_values"]);
            assert_eq!(
                shape,
                vec![1, tiles.count, 3, tiles.height, tiles.width],
                "{variant}/{name}"
            );
            let max_err = want
                .iter()
                .zip(&tiles.pixel_values)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert_eq!(
                max_err, 0.0,
                "{variant}/{name}: pixel_values differ by {max_err}"
            );
            let (mshape, mask) = tensor_bool(&dir, &entry["pixel_attention_mask"]);
            assert_eq!(mshape, vec![1, tiles.count, tiles.height, tiles.width]);
            assert_eq!(mask, tiles.pixel_attention_mask, "{variant}/{name}");
        }
    }
}

#[test]
fn pillow_resize_is_matched_byte_for_byte_for_every_filter() {
    let dir = fixtures().join("golden/pil_resize");
    let g: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let src = load_png(g["source"].as_str().unwrap()).to_rgb();
    for c in g["cases"].as_array().unwrap() {
        let filter =
            medvqa::infer::image_ops::Filter::from_pil(c["resample"].as_i64().unwrap()).unwrap();
        let (w, h) = (
            c["width"].as_u64().unwrap() as u32,
            c["height"].as_u64().unwrap() as u32,
        );
        let want = image::open(dir.join(c["file"].as_str().unwrap()))
            .unwrap()
            .to_rgb8();
        let got = medvqa::infer::image_ops::resize(&src, w, h, filter);
        let diff = want
            .as_raw()
            .iter()
            .zip(got.as_raw())
            .map(|(&a, &b)| (a as i16 - b as i16).abs())
            .max()
            .unwrap();
        assert_eq!(diff, 0, "{} {w}x{h}: max difference {diff}", c["filter"]);
    }
}

#[test]
fn answers_decode_and_the_fingerprint_is_stable() {
    let g = golden("idefics3");
    let cases = cases(&g);
    let inputs = inputs(&cases);
    let mut opts = options();
    opts.max_new_tokens = Some(g["max_new_tokens"].as_u64().unwrap() as usize);
    let model = Model::open(&model_dir("idefics3"), &opts).unwrap();
    let first = model.answer_batch(&inputs[..1]).remove(0).unwrap();
    assert_eq!(
        first.text,
        g["cases"][0]["generated_text"].as_str().unwrap()
    );
    assert_eq!(
        first.prompt_tokens,
        g["cases"][0]["input_ids"].as_array().unwrap().len()
    );
    assert_eq!(model.fingerprint().len(), 64);
    let again = Model::open(&model_dir("idefics3"), &opts).unwrap();
    assert_eq!(model.fingerprint(), again.fingerprint());
    let other = Model::open(&model_dir("smolvlm"), &opts).unwrap();
    assert_ne!(model.fingerprint(), other.fingerprint());
    assert_eq!(model.box_frame(), medvqa::geometry::BoxFrame::Normalized);
    assert_eq!(model.prompt_hash(), again.prompt_hash());
    assert!(model.generation_key().contains("max_new_tokens=12"));
}

#[test]
fn every_generated_token_has_a_probability_and_a_place_in_the_text() {
    let g = golden("idefics3");
    let cases = cases(&g);
    let inputs = inputs(&cases);
    let mut opts = options();
    opts.max_new_tokens = Some(g["max_new_tokens"].as_u64().unwrap() as usize);
    let model = Model::open(&model_dir("idefics3"), &opts).unwrap();
    let batch = model.answer_batch(&inputs);
    for (i, got) in batch.iter().enumerate() {
        let got = got.as_ref().unwrap();
        assert_eq!(got.token_probs.len(), got.token_ids.len());
        let mut last = 0;
        for t in &got.token_probs {
            assert!(t.p > 0.0 && t.p <= 1.0, "probability {}", t.p);
            assert!(t.end >= last && t.end <= got.text.len());
            assert!(got.text.is_char_boundary(t.end));
            last = t.end;
        }
        // Every character of the answer belongs to some token.
        assert_eq!(last, got.text.len(), "{:?}", got.text);
        // The same prompt alone gives the same probabilities as in the batch (padding
        // changes nothing), up to the stored rounding.
        let alone = model.answer_batch(&inputs[i..=i]).remove(0).unwrap();
        assert_eq!(alone.token_ids, got.token_ids);
        for (a, b) in alone.token_probs.iter().zip(&got.token_probs) {
            assert!((a.p - b.p).abs() <= 2e-4, "{} vs {}", a.p, b.p);
            assert_eq!(a.end, b.end);
        }
    }
}

#[test]
fn probabilities_come_from_the_logits_before_the_repetition_penalty() {
    let g = golden("idefics3");
    let cases = cases(&g);
    let inputs = inputs(&cases);
    let mut opts = options();
    opts.max_new_tokens = Some(g["max_new_tokens"].as_u64().unwrap() as usize);
    let plain = Model::open(&model_dir("idefics3"), &opts).unwrap();
    let dir = copy_model("idefics3");
    let cfg = dir.path().join("generation_config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    v["repetition_penalty"] = serde_json::json!(3.0);
    std::fs::write(&cfg, v.to_string()).unwrap();
    let penalised = Model::open(dir.path(), &opts).unwrap();
    let mut diverged = 0;
    for (a, b) in plain
        .answer_batch(&inputs)
        .into_iter()
        .zip(penalised.answer_batch(&inputs))
    {
        let (a, b) = (a.unwrap(), b.unwrap());
        // While the two runs emit the same tokens they see the same logits, and the recorded
        // probabilities agree: the penalty does not enter them.
        let same = a
            .token_ids
            .iter()
            .zip(&b.token_ids)
            .take_while(|(x, y)| x == y)
            .count();
        for k in 0..same {
            assert_eq!(a.token_probs[k].p, b.token_probs[k].p, "step {k}");
        }
        // Where the penalty changed the choice, the penalised token's probability under
        // the unpenalised distribution is at most that of its argmax (the plain run's
        // token at the same step, after the same prefix).
        if same < a.token_ids.len().min(b.token_ids.len()) {
            diverged += 1;
            assert!(b.token_probs[same].p <= a.token_probs[same].p);
        }
    }
    assert!(
        diverged > 0,
        "a penalty of 3 changed no answer: the test checks nothing"
    );
}

// ------------------------------------------------------------------------------------------
// Bad input: each case is a clear error naming the file and the fix, never a panic.

/// A writable copy of a fixture folder.
fn copy_model(variant: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&model_dir(variant), tmp.path());
    tmp
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn open_err(dir: &Path) -> String {
    match Model::open(dir, &options()) {
        Ok(_) => panic!("{} opened", dir.display()),
        Err(e) => {
            let msg = medvqa::failure::error_chain(&e);
            assert!(
                !msg.contains('\n') || matches!(e, ModelError::ChatTemplate { .. }),
                "{msg}"
            );
            msg
        }
    }
}

#[test]
fn a_missing_onnx_file_names_it_and_the_variants_present() {
    let tmp = copy_model("idefics3");
    std::fs::remove_file(tmp.path().join("onnx/decoder_model_merged.onnx")).unwrap();
    let e = open_err(tmp.path());
    assert!(
        e.contains("onnx/decoder_model_merged.onnx is missing"),
        "{e}"
    );
    assert!(e.contains("--variant"), "{e}");

    let tmp = copy_model("idefics3");
    let mut o = options();
    o.variant = "q4".parse().unwrap();
    let e = Model::open(tmp.path(), &o).unwrap_err().to_string();
    assert!(
        e.contains("vision_encoder_q4.onnx") && e.contains("fp32"),
        "{e}"
    );
}

#[test]
fn a_truncated_onnx_file_is_reported_not_a_panic() {
    let tmp = copy_model("idefics3");
    let p = tmp.path().join("onnx/vision_encoder.onnx");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 3]).unwrap();
    let e = open_err(tmp.path());
    assert!(
        e.contains("vision_encoder.onnx") && e.contains("truncated"),
        "{e}"
    );
}

#[test]
fn an_unknown_model_type_lists_the_known_ones() {
    let tmp = copy_model("idefics3");
    let p = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"idefics3\"", "\"mystery_vlm\"");
    std::fs::write(&p, text).unwrap();
    let e = open_err(tmp.path());
    assert!(
        e.contains("config.json") && e.contains("mystery_vlm"),
        "{e}"
    );
    assert!(
        e.contains("idefics3, smolvlm") || e.contains("smolvlm"),
        "{e}"
    );
}

#[test]
fn graphs_with_the_wrong_inputs_are_refused() {
    let tmp = copy_model("idefics3");
    std::fs::copy(
        tmp.path().join("onnx/embed_tokens.onnx"),
        tmp.path().join("onnx/vision_encoder.onnx"),
    )
    .unwrap();
    let e = open_err(tmp.path());
    assert!(e.contains("vision_encoder.onnx"), "{e}");
    assert!(
        e.contains("missing [pixel_values, pixel_attention_mask]"),
        "{e}"
    );
    assert!(e.contains("unexpected [input_ids]"), "{e}");

    let tmp = copy_model("idefics3");
    std::fs::copy(
        tmp.path().join("onnx/embed_tokens.onnx"),
        tmp.path().join("onnx/decoder_model_merged.onnx"),
    )
    .unwrap();
    let e = open_err(tmp.path());
    assert!(
        e.contains("decoder_model_merged.onnx") && e.contains("inputs_embeds"),
        "{e}"
    );
}

#[test]
fn a_tokenizer_without_the_image_token_is_refused() {
    let tmp = copy_model("idefics3");
    let p = tmp.path().join("tokenizer.json");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"<image>\"", "\"<img>\"");
    std::fs::write(&p, text).unwrap();
    let e = open_err(tmp.path());
    assert!(
        e.contains("tokenizer.json") && e.contains("\"<image>\""),
        "{e}"
    );

    let tmp = copy_model("idefics3");
    std::fs::write(tmp.path().join("tokenizer.json"), "{\"version\": ").unwrap();
    let e = open_err(tmp.path());
    assert!(e.contains("tokenizer.json"), "{e}");
}

#[test]
fn a_chat_template_that_fails_is_named() {
    let tmp = copy_model("idefics3");
    std::fs::write(
        tmp.path().join("chat_template.json"),
        r#"{"chat_template": "{{ raise_exception('this template is broken') }}"}"#,
    )
    .unwrap();
    let e = open_err(tmp.path());
    assert!(
        e.contains("chat_template.json") && e.contains("this template is broken"),
        "{e}"
    );

    let tmp = copy_model("smolvlm");
    std::fs::write(
        tmp.path().join("chat_template.jinja"),
        "{% for m in messages %}",
    )
    .unwrap();
    let e = open_err(tmp.path());
    assert!(e.contains("chat_template.jinja"), "{e}");
}

#[test]
fn a_sample_that_fails_is_reported_and_the_others_run() {
    let g = golden("idefics3");
    let cases = cases(&g);
    let inputs = inputs(&cases);
    let want: Vec<Vec<u32>> = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| ids(&c["generated_ids"]))
        .collect();
    let five = inputs.iter().position(|i| i.images.len() == 5).unwrap();

    // A template that refuses more than two images: a per-sample render failure.
    let tmp = copy_model("idefics3");
    let src: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("chat_template.json")).unwrap(),
    )
    .unwrap();
    let guarded = format!(
        "{{% if messages[0]['content']|length > 3 %}}{{{{ raise_exception('at most two images') }}}}{{% endif %}}{}",
        src["chat_template"].as_str().unwrap()
    );
    std::fs::write(
        tmp.path().join("chat_template.json"),
        serde_json::json!({ "chat_template": guarded }).to_string(),
    )
    .unwrap();
    let mut opts = options();
    opts.max_new_tokens = Some(g["max_new_tokens"].as_u64().unwrap() as usize);
    opts.batch_size = 4;
    let model = Model::open(tmp.path(), &opts).unwrap();
    let out = model.answer_batch(&inputs);
    for (i, r) in out.iter().enumerate() {
        if i == five {
            let e = r.as_ref().unwrap_err();
            assert!(matches!(e.kind, SampleErrorKind::Template(_)), "{e}");
            let f = e.failure();
            assert_eq!(f.id.as_deref(), Some("five_images"));
            assert!(f.reason.contains("at most two images"), "{}", f.reason);
        } else {
            assert_eq!(&r.as_ref().unwrap().token_ids, &want[i]);
        }
    }

    // More images than allowed.
    let mut o = opts.clone();
    o.max_images = Some(2);
    let model = Model::open(&model_dir("idefics3"), &o).unwrap();
    let out = model.answer_batch(&inputs);
    let e = out[five].as_ref().unwrap_err();
    assert!(
        matches!(e.kind, SampleErrorKind::TooManyImages { given: 5, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("max_images"), "{e}");
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), inputs.len() - 1);

    // A prompt over the model's context.
    let tmp = copy_model("idefics3");
    let p = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "\"max_position_embeddings\": 4096",
        "\"max_position_embeddings\": 400",
    );
    std::fs::write(&p, text).unwrap();
    let model = Model::open(tmp.path(), &opts).unwrap();
    let out = model.answer_batch(&inputs);
    let e = out[five].as_ref().unwrap_err();
    assert!(
        matches!(e.kind, SampleErrorKind::ContextTooLong { context: 400, .. }),
        "{e}"
    );
    for (i, r) in out.iter().enumerate() {
        if i != five {
            assert_eq!(&r.as_ref().unwrap().token_ids, &want[i]);
        }
    }
}

#[test]
fn the_image_budget_shrinks_the_prompt() {
    let g = golden("idefics3");
    let cases = cases(&g);
    let inputs = inputs(&cases);
    let full = Model::open(&model_dir("idefics3"), &options()).unwrap();
    let mut o = options();
    o.max_pixels = Some(64 * 64);
    let small = Model::open(&model_dir("idefics3"), &o).unwrap();
    for input in &inputs {
        let a = full.prompt(input).unwrap().input_ids.len();
        let b = small.prompt(input).unwrap().input_ids.len();
        assert!(b < a, "{}: {b} !< {a}", input.sample.id);
    }
}

#[test]
fn cuda_falls_back_to_cpu_with_a_warning_and_the_same_tokens() {
    let g = golden("idefics3");
    let cases = cases(&g);
    let inputs = inputs(&cases);
    let mut o = options();
    o.max_new_tokens = Some(g["max_new_tokens"].as_u64().unwrap() as usize);
    o.runtime.device = medvqa::infer::Device::Cuda(0);
    let model = Model::open(&model_dir("idefics3"), &o).unwrap();
    if !medvqa::infer::runtime::cuda_available() {
        assert!(
            model
                .warnings()
                .iter()
                .any(|w| w.contains("CUDA") && w.contains("CPU")),
            "{:?}",
            model.warnings()
        );
    }
    let got = model.answer_batch(&inputs[..1]).remove(0).unwrap();
    assert_eq!(got.token_ids, ids(&g["cases"][0]["generated_ids"]));
}

#[test]
fn ask_prints_the_answer_of_a_model_folder() {
    let g = golden("idefics3");
    let case = &g["cases"][0];
    let image = fixtures().join(
        g["images"][case["images"][0].as_str().unwrap()]["path"]
            .as_str()
            .unwrap(),
    );
    let o = common::run(&[
        "ask",
        "--model",
        model_dir("idefics3").to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--max-new-tokens",
        "12",
        "--threads",
        "1",
        case["question"].as_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    // The raw answer, then what the scorer extracts from it.
    let text = common::stdout(&o);
    let raw = format!("{}\n", case["generated_text"].as_str().unwrap());
    assert!(text.starts_with(&raw), "{text:?}");
    assert!(text[raw.len()..].starts_with("extracted: "), "{text:?}");

    // A choice question without its options cannot be asked.
    let o = common::run(&[
        "ask",
        "--model",
        model_dir("idefics3").to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--kind",
        "single_choice",
        "Which?",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        common::stderr(&o).contains("--option"),
        "{}",
        common::stderr(&o)
    );

    // A missing model folder: exit 1 and one line naming it.
    let o = common::run(&["ask", "--model", "no/such/model", "q"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        common::stderr(&o).contains("no/such/model"),
        "{}",
        common::stderr(&o)
    );
}
