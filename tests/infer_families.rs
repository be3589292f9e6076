#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every registered model family against `transformers`, on its committed fixtures
//! (`tests/fixtures/make_models.py`): for each `model_type` a family claims that has a
//! `golden/<model_type>/cases.json`,
//!
//! - for generative families, the question block, the rendered chat template and the prompt
//!   token ids equal the HF processor's (`text`, `prompt`, `input_ids`);
//! - greedy ids equal `transformers.generate` (`generated_ids`) one sample at a time, as one
//!   batch, and in batches of 2 running on two sessions at once, with the CPU work done in
//!   the same call or prepared ahead.
//!
//! A family without any golden folder fails `every_family_has_fixtures`. Needs the ONNX
//! Runtime library (`scripts/setup.sh`).

mod common;
#[path = "common/golden.rs"]
mod golden;

use golden::*;
use medvqa::infer::Model;
use medvqa::infer::families::FAMILIES;
use serde_json::Value;

/// `(family, model_type, goldens)` for every fixture folder of a registered family.
fn fixtures_by_family() -> Vec<(&'static str, &'static str, Value)> {
    let mut out = Vec::new();
    for f in FAMILIES {
        for t in f.model_types {
            if let Some(g) = golden_opt(t) {
                out.push((f.name, *t, g));
            }
        }
    }
    out
}

#[test]
fn every_family_has_fixtures() {
    let have = fixtures_by_family();
    for f in FAMILIES {
        assert!(
            have.iter().any(|(name, _, _)| *name == f.name),
            "family {} has no tests/fixtures/golden/<model_type>/cases.json for any of {:?}",
            f.name,
            f.model_types
        );
    }
}

#[test]
fn prompt_ids_equal_transformers_for_every_family() {
    for (family, model_type, g) in fixtures_by_family() {
        // Only generative families render a chat prompt (dual encoders have captions).
        if g["cases"][0]["prompt"].is_null() {
            continue;
        }
        let model = Model::open(&model_dir(model_type), &options()).unwrap();
        assert_eq!(model.family(), family);
        assert_eq!(model.model_type(), model_type);
        let cases = cases(&g);
        for (input, want) in inputs(&cases).iter().zip(g["cases"].as_array().unwrap()) {
            let what = format!("{model_type}/{}", input.sample.id);
            if let Some(text) = want["text"].as_str() {
                let got = medvqa::infer::prompt::sample_text(input.sample, model.box_frame());
                assert_eq!(got, text, "{what}");
            }
            let view = model.prompt(input).unwrap();
            if let Some(prompt) = want["prompt"].as_str() {
                assert_eq!(view.rendered, prompt, "{what}");
            }
            if !want["input_ids"].is_null() {
                assert_eq!(view.input_ids, ids(&want["input_ids"]), "{what}");
            }
        }
    }
}

#[test]
fn greedy_tokens_equal_transformers_batched_and_unbatched_for_every_family() {
    for (_, model_type, g) in fixtures_by_family() {
        if g["cases"][0]["generated_ids"].is_null() {
            continue;
        }
        let cases = cases(&g);
        let inputs = inputs(&cases);
        let want: Vec<Vec<u32>> = g["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| ids(&c["generated_ids"]))
            .collect();
        let mut opts = options();
        opts.max_new_tokens = Some(g["max_new_tokens"].as_u64().unwrap() as usize);

        let model = Model::open(&model_dir(model_type), &opts).unwrap();
        for (input, want) in inputs.iter().zip(&want) {
            let got = model.answer_batch(std::slice::from_ref(input)).remove(0);
            let got = got.unwrap_or_else(|e| panic!("{model_type}: {e}"));
            assert_eq!(
                &got.token_ids, want,
                "{model_type}/{} unbatched",
                input.sample.id
            );
            assert_eq!(got.timings.batch_size, 1);
        }
        if let Some(batched) = g["batch"]["generated_ids"].as_array() {
            let batched: Vec<Vec<u32>> = batched.iter().map(ids).collect();
            assert_eq!(
                batched, want,
                "{model_type}: transformers batched differs from unbatched"
            );
        }
        for (batch_size, sessions) in [(inputs.len(), 1), (2, 2), (3, 1)] {
            let mut o = opts.clone();
            o.batch_size = batch_size;
            o.runtime.sessions = sessions;
            o.runtime.threads = Some(sessions);
            let model = Model::open(&model_dir(model_type), &o).unwrap();
            let got: Vec<Vec<u32>> = model
                .answer_batch(&inputs)
                .into_iter()
                .map(|r| r.unwrap().token_ids)
                .collect();
            assert_eq!(
                got, want,
                "{model_type}: batches of {batch_size} on {sessions} sessions"
            );
            // Prepared ahead (as `medvqa eval`'s producer does), and prepared for other
            // inputs (redone, never trusted): the same tokens.
            let tokens = |r: Vec<Result<medvqa::infer::Generated, _>>| -> Vec<Vec<u32>> {
                r.into_iter().map(|r| r.unwrap().token_ids).collect()
            };
            let ahead = model.prepare_batch(&inputs);
            assert_eq!(
                tokens(model.answer_prepared(&inputs, ahead)),
                want,
                "{model_type}: prepared ahead, batches of {batch_size} on {sessions} sessions"
            );
            let other = model.prepare_batch(&inputs[..1]);
            assert_eq!(
                tokens(model.answer_prepared(&inputs, other)),
                want,
                "{model_type}: prepared for other inputs"
            );
        }
    }
}
