#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! CLIP and SigLIP parity with transformers on the tiny fixtures
//! (`tests/fixtures/families/{clip,siglip}.py`): image tensors, token ids, embeddings and
//! logits to 1e-4, and the zero-shot answers medvqa derives from them, batched and unbatched.

mod families_golden;

use families_golden as g;
use medvqa::infer::families::clip::DualEncoder;
use medvqa::infer::{Model, ModelFolder, ModelOptions, PromptInput, SampleErrorKind};
use medvqa::sample::{ImageRef, ImageSource, Sample, Task};

const FAMILIES: [&str; 2] = ["clip", "siglip"];

fn options(batch_size: usize) -> ModelOptions {
    ModelOptions {
        batch_size,
        ..ModelOptions::default()
    }
}

fn rows(v: &serde_json::Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn assert_close(name: &str, got: &[Vec<f32>], want: &[Vec<f32>], tol: f32) {
    assert_eq!(got.len(), want.len(), "{name}: rows");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let err = g::max_abs_diff(a, b);
        assert!(err <= tol, "{name}[{i}]: max abs error {err} > {tol}");
    }
}

#[test]
fn image_tensors_equal_the_pil_backend() {
    for family in FAMILIES {
        let gold = g::cases(family);
        let folder = ModelFolder::open(&g::model_dir(family)).unwrap();
        let enc = DualEncoder::open(&folder, &options(1)).unwrap();
        for (name, entry) in gold["images"].as_object().unwrap() {
            let (shape, want) = g::f32_tensor(&g::golden_dir(family), &entry["pixel_values"]);
            let img = g::image(name);
            let (got, (w, h)) = enc.pixel_values(&[&img]);
            assert_eq!(vec![1, 3, h as usize, w as usize], shape, "{family}/{name}");
            let err = g::max_abs_diff(&got, &want);
            assert!(err <= 1e-5, "{family}/{name}: max abs error {err}");
        }
    }
}

#[test]
fn embeddings_and_logits_match_transformers() {
    for family in FAMILIES {
        let gold = g::cases(family);
        let e = &gold["embeddings"];
        let folder = ModelFolder::open(&g::model_dir(family)).unwrap();
        let enc = DualEncoder::open(&folder, &options(1)).unwrap();
        let sentences = g::strings(&e["sentences"]);
        let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
        // token ids: HF pads (CLIP to the longest, SigLIP to max_length); compare the unpadded
        // prefix and the padded length
        let ids = enc.tokenize(&texts).unwrap();
        for (i, (got, want)) in ids
            .iter()
            .zip(e["input_ids"].as_array().unwrap())
            .enumerate()
        {
            let want = g::u32s(want);
            let real = match e["attention_mask"].as_array() {
                Some(m) => m[i]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|x| x.as_i64() == Some(1))
                    .count(),
                None => got.len(),
            };
            assert_eq!(got[..], want[..real], "{family}: ids of {:?}", texts[i]);
        }
        let images: Vec<_> = g::strings(&e["images"])
            .iter()
            .map(|n| g::image(n))
            .collect();
        let refs: Vec<&medvqa::pixels::Pixels> = images.iter().map(|p| p.as_ref()).collect();
        let scores = enc.scores(&texts, &refs).unwrap();
        assert_close(
            &format!("{family} text_embeds"),
            &scores.text_embeds,
            &rows(&e["text_embeds"]),
            1e-4,
        );
        assert_close(
            &format!("{family} image_embeds"),
            &scores.image_embeds,
            &rows(&e["image_embeds"]),
            1e-4,
        );
        assert_close(
            &format!("{family} logits"),
            &scores.logits_per_image,
            &rows(&e["logits_per_image"]),
            1e-4,
        );
    }
}

#[test]
fn zero_shot_answers_match_the_goldens_batched_and_unbatched() {
    for family in FAMILIES {
        let gold = g::cases(family);
        let cases = gold["cases"].as_array().unwrap();
        let samples: Vec<Sample> = cases.iter().map(g::sample).collect();
        let images: Vec<_> = cases.iter().map(g::case_images).collect();
        let inputs: Vec<PromptInput<'_>> = samples
            .iter()
            .zip(&images)
            .map(|(sample, images)| PromptInput { sample, images })
            .collect();
        let folder = ModelFolder::open(&g::model_dir(family)).unwrap();
        let enc = DualEncoder::open(&folder, &options(1)).unwrap();
        for (case, input) in cases.iter().zip(&inputs) {
            let name = case["name"].as_str().unwrap();
            let captions = g::strings(&case["captions"]);
            let model = Model::open(&g::model_dir(family), &options(1)).unwrap();
            let view = model.prompt(input).unwrap();
            assert_eq!(
                view.rendered,
                captions.join("\n"),
                "{family}/{name}: captions"
            );
            let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
            let img = &input.images[0];
            let s = enc.scores(&refs, &[img.as_ref()]).unwrap();
            assert_close(
                &format!("{family}/{name} logits"),
                &s.logits_per_image,
                &[rows(&serde_json::json!([case["logits_per_image"]])).remove(0)],
                1e-4,
            );
        }
        for batch_size in [1, cases.len()] {
            let model = Model::open(&g::model_dir(family), &options(batch_size)).unwrap();
            let t = std::time::Instant::now();
            let out = model.answer_batch(&inputs);
            let wall = t.elapsed();
            // Each answer carries its own preprocessing and a share of its batch's one graph
            // call, so the answers' times add up to no more than the call took.
            let spent: std::time::Duration = out
                .iter()
                .map(|g| {
                    let t = g.as_ref().unwrap().timings;
                    assert_eq!((t.prefill, t.decode), Default::default());
                    t.preprocess + t.graph_share()
                })
                .sum();
            assert!(
                spent > std::time::Duration::ZERO && spent <= wall,
                "{family}: batch {batch_size}: {spent:?} of {wall:?}"
            );
            for (case, got) in cases.iter().zip(out) {
                let got = got.unwrap();
                assert_eq!(
                    got.text,
                    case["answer"].as_str().unwrap(),
                    "{family}/{}: batch {batch_size}",
                    case["name"]
                );
                assert_eq!(got.timings.batch_size, batch_size);
            }
        }
    }
}

#[test]
fn open_grounding_and_multi_image_questions_fail_per_sample() {
    let model = Model::open(&g::model_dir("clip"), &options(4)).unwrap();
    let img = g::image("wide_rgb");
    let mk = |id: &str, task: Task, n: usize| Sample {
        id: id.into(),
        images: (0..n)
            .map(|_| ImageRef {
                key: "wide_rgb".into(),
                source: ImageSource::Pixels(img.clone()),
            })
            .collect(),
        question: "What is shown?".into(),
        task,
        boxes: Vec::new(),
        meta: Default::default(),
    };
    let open = mk("open", Task::Open { answer: "x".into() }, 1);
    let ground = mk("ground", Task::Grounding { answer: None }, 1);
    let two = mk("two", Task::Closed { answer: true }, 2);
    let fine = mk("fine", Task::Closed { answer: true }, 1);
    let one = vec![img.clone()];
    let both = vec![img.clone(), img.clone()];
    let inputs = [
        PromptInput {
            sample: &open,
            images: &one,
        },
        PromptInput {
            sample: &ground,
            images: &one,
        },
        PromptInput {
            sample: &two,
            images: &both,
        },
        PromptInput {
            sample: &fine,
            images: &one,
        },
    ];
    let out = model.answer_batch(&inputs);
    for (i, id) in ["open", "ground"].iter().enumerate() {
        let e = out[i].as_ref().unwrap_err();
        assert_eq!(e.id, *id);
        assert!(
            matches!(e.kind, SampleErrorKind::UnsupportedKind { .. }),
            "{e}"
        );
        assert_eq!(e.failure().id.as_deref(), Some(*id));
    }
    let e = out[2].as_ref().unwrap_err();
    assert!(
        matches!(e.kind, SampleErrorKind::TooManyImages { given: 2, .. }),
        "{e}"
    );
    let ok = out[3].as_ref().unwrap();
    assert!(ok.text == "yes" || ok.text == "no", "{}", ok.text);
}
