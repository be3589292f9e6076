#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The shipped reference VLM (`assets/reference-vlm`) answers phantom questions it never
//! saw, clean, through the whole path a user runs: `medvqa eval` decodes the PNGs,
//! preprocesses them, renders the chat template, generates, extracts and scores. The
//! random-weight fixtures cannot catch a regression in any of these that leaves the tokens
//! plausible; a model that can see does: its accuracy falls.
//!
//! Seed 4242 is outside the training seeds (1,000,001 and up; see the model card).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{medvqa, stderr};

const MODEL: &str = "assets/reference-vlm";
/// The accuracy floor on closed and choice questions; see the assertion.
const FLOOR: f64 = 0.45;

#[test]
fn reference_model_answers_unseen_phantoms_clean() {
    let dir = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join(MODEL);
    let cfg = dir.path().join("ref.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[run]
out = "{out}"

[dataset]
spec = "phantom:all"
seed = 4242
n = 40

[model]
path = "{model}"
batch_size = 8
max_new_tokens = 64

[perturb]
perturbations = []

[score]
bootstrap = 0
"#,
            out = dir.path().join("run").display(),
            model = model.display(),
        ),
    )
    .unwrap();
    let start = Instant::now();
    let out = medvqa()
        .args(["eval", "--quiet", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(out.status.success(), "eval failed: {}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run").join("report.json")).unwrap())
            .unwrap();
    let by_kind = &report["by"]["kind"];
    // Closed and choice questions together: the share answered right.
    let (mut right, mut n) = (0.0, 0.0);
    for kind in ["closed", "single_choice", "multi_choice"] {
        let acc = &by_kind[kind]["accuracy"];
        let k = acc["n"].as_f64().unwrap();
        right += acc["value"].as_f64().unwrap() * k;
        n += k;
    }
    assert!(n >= 30.0, "too few closed/choice questions scored: {n}");
    let accuracy = right / n;
    // The shipped model scores 0.528 here (n=72; chance is about 0.3: half the closed
    // questions, a quarter of single choice, little of multi choice). Issue 10 asks for
    // 0.8, which this model does not reach (see its model card); the floor below guards
    // the path against regressions without claiming more than the model does.
    assert!(
        accuracy >= FLOOR,
        "reference model accuracy on unseen closed and choice phantoms is {accuracy:.3} (n={n}), \
         below {FLOOR}: something in decoding, preprocessing, prompting, generation or \
         extraction broke"
    );
    // Generous for a debug-built test binary on a loaded 2-core machine; the release eval
    // of these 120 questions takes a few seconds.
    assert!(
        took < Duration::from_secs(30),
        "the reference model took {took:?} for 120 questions"
    );
}
