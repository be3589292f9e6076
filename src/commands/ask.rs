//! `medvqa ask`: one question about some images, answered by a model folder or a served
//! model. The quickest check that a downloaded model runs (it uses the model's own
//! preprocessing, tokenizer and chat template, exactly as an evaluation does), or that a
//! server is reachable and takes images.

use std::sync::Arc;

use anyhow::Context;

use super::{Outcome, out};
use crate::cli::AskArgs;
use crate::data::decode::{DEFAULT_MAX_PIXELS, decode_bytes};
use crate::geometry::BoxFrame;
use crate::infer::served::ServedSettings;
use crate::infer::{Model, PromptInput};
use crate::pixels::Pixels;
use crate::sample::{ImageRef, ImageSource, QuestionKind, Sample, Task};

pub fn run(a: &AskArgs, threads: Option<usize>) -> anyhow::Result<Outcome> {
    let mut images: Vec<Arc<Pixels>> = Vec::new();
    for path in &a.images {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let what = path.display().to_string();
        images.push(Arc::new(decode_bytes(&bytes, &what, DEFAULT_MAX_PIXELS)?));
    }
    // The reference answer is not known here; inference never reads it.
    let options = a.options.clone();
    let task = match a.kind {
        QuestionKind::Open => Task::Open {
            answer: String::new(),
        },
        QuestionKind::Closed => Task::Closed { answer: false },
        QuestionKind::SingleChoice => Task::SingleChoice { options, answer: 0 },
        QuestionKind::MultiChoice => Task::MultiChoice {
            options,
            answer: Vec::new(),
        },
        QuestionKind::Grounding => Task::Grounding { answer: None },
    };
    if !a.options.is_empty() && task.options().is_empty() {
        anyhow::bail!("--option applies to single_choice and multi_choice questions only");
    }
    if a.options.is_empty()
        && matches!(
            a.kind,
            QuestionKind::SingleChoice | QuestionKind::MultiChoice
        )
    {
        anyhow::bail!(
            "a {} question needs its options: pass --option TEXT once per option, in order (A, B, …)",
            a.kind
        );
    }
    let m = &a.model;
    let model = match (&m.model, &m.url, &m.served_model) {
        (Some(dir), _, _) => Model::open(dir, &m.options(threads))?,
        (None, Some(url), Some(name)) => {
            let frame = match (m.box_frame, a.kind) {
                (Some(f), _) => f,
                (None, QuestionKind::Grounding) => anyhow::bail!(
                    "a grounding question to a served model needs --box-frame: the frame its boxes come in is declared, never guessed (normalized, pixels, grid:1000, yx-grid:1000 for Gemini, qwen2.5-vl:min_pixels=…,max_pixels=…,factor=28 for Qwen2.5-VL)"
                ),
                // No box is read from the answer of another kind.
                (None, _) => BoxFrame::Normalized,
            };
            let mut s = ServedSettings::new(url.as_str(), name.as_str(), frame);
            s.api_key_env = m.api_key_env.clone();
            s.max_tokens = m.max_new_tokens;
            s.max_images = m.max_images;
            s.max_concurrency = 1;
            Model::served(s)?
        }
        _ => anyhow::bail!("ask needs --model DIR, or --url URL and --served-model NAME"),
    };
    for w in model.warnings() {
        eprintln!("warning: {w}");
    }
    let sample = Sample {
        id: "ask".into(),
        images: images
            .iter()
            .enumerate()
            .map(|(i, p)| ImageRef {
                key: format!("image{i}"),
                source: ImageSource::Pixels(p.clone()),
            })
            .collect(),
        question: a.question.clone(),
        task,
        boxes: Vec::new(),
        meta: Default::default(),
    };
    let input = PromptInput {
        sample: &sample,
        images: &images,
    };
    if a.show_prompt {
        match model.prompt(&input) {
            // A served model's server renders its own chat template: medvqa shows the user
            // turn it sends, without token ids.
            Ok(view) if view.input_ids.is_empty() => out(&format!(
                "--- user turn (the server applies its chat template) ---\n{}\n--- answer ---\n",
                view.rendered
            ))?,
            Ok(view) => out(&format!(
                "--- prompt ({} tokens) ---\n{}\n--- answer ---\n",
                view.input_ids.len(),
                view.rendered
            ))?,
            Err(e) => {
                eprintln!("{}", e.failure());
                return Ok(Outcome::SamplesFailed(1));
            }
        }
    }
    match model.answer_batch(&[input]).pop() {
        Some(Ok(g)) => {
            // The raw answer, then what medvqa's scorer reads from it.
            let mut text = format!("{}\n", g.text);
            if !matches!(sample.task, Task::Grounding { answer: None }) {
                let e = crate::score::extract::extract(&sample.task, &g.text);
                let answer = e
                    .answer
                    .as_ref()
                    .map_or_else(|| "(none: unparsed)".to_string(), |x| x.display());
                text.push_str(&format!("extracted: {answer} (rule {})\n", e.rule));
            }
            out(&text)?;
            Ok(Outcome::Clean)
        }
        Some(Err(e)) => {
            eprintln!("{}", e.failure());
            Ok(Outcome::SamplesFailed(1))
        }
        None => Ok(Outcome::SamplesFailed(1)),
    }
}
