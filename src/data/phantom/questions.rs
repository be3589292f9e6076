//! Turning drawn cases into samples: question templates, option shuffling and the
//! parallel, order-preserving driver every set's `generate` uses.
//!
//! Each case asks [`PER_CASE`] questions, one of each kind, in the order of
//! [`QuestionKind::ALL`]; `n` questions take `ceil(n / PER_CASE)` cases and the last case
//! contributes only its first questions. Wordings and option orders come from the case's
//! own RNG, so a sample depends on `(seed, set, case index)` only, never on threads.

use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::{Rng, RngExt};
use rayon::prelude::*;

use super::{Case, Finding, PhantomSet};
use crate::pixels::Pixels;
use crate::sample::{GtBox, ImageRef, ImageSource, Meta, MetaValue, Sample, Task};

/// Questions per case: one of each kind.
pub const PER_CASE: usize = 5;

/// One question about a case, before it becomes a [`Sample`].
#[derive(Debug, Clone)]
pub struct Question {
    /// The template's name; also the last part of the sample id, so unique within a case.
    pub template: &'static str,
    pub text: String,
    pub task: Task,
    pub boxes: Vec<GtBox>,
    /// Extra meta: what the question is about (`finding`, `frame`, …).
    pub meta: Vec<(&'static str, MetaValue)>,
}

impl Question {
    pub fn new(template: &'static str, text: String, task: Task) -> Question {
        Question {
            template,
            text,
            task,
            boxes: Vec::new(),
            meta: Vec::new(),
        }
    }

    pub fn boxes(mut self, boxes: Vec<GtBox>) -> Question {
        self.boxes = boxes;
        self
    }

    pub fn about(mut self, finding: &str) -> Question {
        self.meta.push(("finding", MetaValue::from(finding)));
        self
    }

    pub fn meta(mut self, key: &'static str, value: MetaValue) -> Question {
        self.meta.push((key, value));
        self
    }
}

/// A question template: the name a sample id ends with, and the wordings one of which is
/// drawn per question (`{key}` is replaced by its value). Each set keeps its templates as a
/// table in its `templates.rs`; the builders decide the answer, the table the words.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    pub name: &'static str,
    pub wordings: &'static [&'static str],
}

impl Template {
    /// One wording, drawn by the RNG, with the variables filled in.
    pub fn phrase<R: Rng>(&self, rng: &mut R, vars: &[(&str, &str)]) -> String {
        phrase(rng, self.wordings, vars)
    }

    /// The question, named after the template.
    pub fn question(&self, text: String, task: Task) -> Question {
        Question::new(self.name, text, task)
    }
}

/// One of `wordings`, chosen by the RNG, with every `{key}` replaced by its value.
pub fn phrase<R: Rng>(rng: &mut R, wordings: &[&str], vars: &[(&str, &str)]) -> String {
    let i = rng.random_range(0..wordings.len().max(1));
    let mut s = wordings.get(i).copied().unwrap_or_default().to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// Picks one of `candidates` (a template and its yes/no answer) so that answers come out
/// yes and no about equally often: the answer is drawn first, then a template that has it.
/// Falls back to any candidate when none has the drawn answer.
pub fn balanced<R: Rng, T: Copy>(rng: &mut R, candidates: &[(T, bool)]) -> Option<T> {
    let want = rng.random_bool(0.5);
    let fit: Vec<T> = candidates
        .iter()
        .filter(|c| c.1 == want)
        .map(|c| c.0)
        .collect();
    let pool: Vec<T> = if fit.is_empty() {
        candidates.iter().map(|c| c.0).collect()
    } else {
        fit
    };
    pool.get(rng.random_range(0..pool.len().max(1))).copied()
}

/// A single-choice task: `correct` among `distractors`, shuffled. Distractors equal to the
/// correct text are dropped so that the options stay distinct.
pub fn single<R: Rng>(rng: &mut R, correct: &str, distractors: &[String]) -> Task {
    let mut options: Vec<String> = vec![correct.to_string()];
    for d in distractors {
        if !options.contains(d) {
            options.push(d.clone());
        }
    }
    options.shuffle(rng);
    let answer = options.iter().position(|o| o == correct).unwrap_or(0);
    Task::SingleChoice { options, answer }
}

/// A single-choice task whose options keep the given order (frame numbers, ranges).
pub fn single_ordered(options: Vec<String>, correct: usize) -> Task {
    Task::SingleChoice {
        options,
        answer: correct,
    }
}

/// A multi-choice task from `(text, is_true)` pairs, shuffled; `last`, if given, stays the
/// final option (e.g. "none of these"). Texts must be distinct and at least one true.
pub fn multi<R: Rng>(
    rng: &mut R,
    mut opts: Vec<(String, bool)>,
    last: Option<(String, bool)>,
) -> Task {
    opts.shuffle(rng);
    opts.extend(last);
    let answer = opts
        .iter()
        .enumerate()
        .filter(|(_, (_, t))| *t)
        .map(|(i, _)| i)
        .collect();
    Task::MultiChoice {
        options: opts.into_iter().map(|(t, _)| t).collect(),
        answer,
    }
}

/// Multi-choice over options kept in order (frame lists).
pub fn multi_ordered(opts: Vec<(String, bool)>) -> Task {
    let answer = opts
        .iter()
        .enumerate()
        .filter(|(_, (_, t))| *t)
        .map(|(i, _)| i)
        .collect();
    Task::MultiChoice {
        options: opts.into_iter().map(|(t, _)| t).collect(),
        answer,
    }
}

/// The boxes of every finding with `label` (on any image), labelled.
pub fn boxes_of(findings: &[Finding], label: &str) -> Vec<GtBox> {
    findings
        .iter()
        .filter(|f| f.label == label)
        .map(gt)
        .collect()
}

/// The ground-truth box of one finding.
pub fn gt(f: &Finding) -> GtBox {
    GtBox {
        image: f.image,
        bbox: f.bbox,
        label: Some(f.label.clone()),
    }
}

/// Findings with `label`.
pub fn with_label<'a>(findings: &'a [Finding], label: &str) -> Vec<&'a Finding> {
    findings.iter().filter(|f| f.label == label).collect()
}

/// A case with its questions and the meta every question of it shares.
pub struct Built {
    pub case: Case,
    /// One per kind, in [`crate::sample::QuestionKind::ALL`] order.
    pub questions: Vec<Question>,
    pub meta: Meta,
}

impl Built {
    /// A case with its questions; `meta` starts with the case's modality and organ.
    pub fn new(case: Case, questions: Vec<Question>, modality: &str, organ: &str) -> Built {
        let mut meta = Meta::new();
        meta.insert("modality".into(), modality.into());
        meta.insert("organ".into(), organ.into());
        Built {
            case,
            questions,
            meta,
        }
    }
}

/// The image key of image `i` of a case: `<case key>.png`, or `<case key>_f<i+1>.png` for
/// the frames of a sequence.
pub fn image_key(case_key: &str, i: usize, sequence: bool) -> String {
    if sequence {
        format!("{case_key}_f{}.png", i + 1)
    } else {
        format!("{case_key}.png")
    }
}

/// `n` samples from cases `0..ceil(n / PER_CASE)`, built in parallel and kept in index
/// order, so the result is the same for any thread count.
pub fn generate<F>(set: PhantomSet, seed: u64, n: usize, sequence: bool, build: F) -> Vec<Sample>
where
    F: Fn(u64, usize) -> Built + Sync,
{
    let cases = n.div_ceil(PER_CASE);
    let built: Vec<Vec<Sample>> = (0..cases)
        .into_par_iter()
        .map(|i| samples_of(set, build(seed, i), sequence))
        .collect();
    let mut out: Vec<Sample> = built.into_iter().flatten().collect();
    out.truncate(n);
    out
}

fn samples_of(set: PhantomSet, b: Built, sequence: bool) -> Vec<Sample> {
    let images: Vec<ImageRef> = b
        .case
        .images
        .into_iter()
        .enumerate()
        .map(|(i, p): (usize, Pixels)| ImageRef {
            key: image_key(&b.case.key, i, sequence),
            source: ImageSource::Pixels(Arc::new(p)),
        })
        .collect();
    b.questions
        .into_iter()
        .map(|q| {
            let mut meta = b.meta.clone();
            meta.insert("set".into(), set.name().into());
            meta.insert("template".into(), q.template.into());
            for (k, v) in q.meta {
                meta.insert(k.to_string(), v);
            }
            Sample {
                id: format!("{}/{}", b.case.key, q.template),
                images: images.clone(),
                question: q.text,
                task: q.task,
                boxes: q.boxes,
                meta,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn single_choice_keeps_the_correct_text_and_distinct_options() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20 {
            let t = single(
                &mut rng,
                "red",
                &["pink".into(), "red".into(), "white".into()],
            );
            let Task::SingleChoice { options, answer } = t else {
                panic!()
            };
            assert_eq!(options.len(), 3);
            assert_eq!(options[answer], "red");
        }
    }

    #[test]
    fn multi_choice_answers_are_the_true_options_and_last_stays_last() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let t = multi(
            &mut rng,
            vec![("a".into(), true), ("b".into(), false), ("c".into(), true)],
            Some(("none".into(), false)),
        );
        let Task::MultiChoice { options, answer } = t else {
            panic!()
        };
        assert_eq!(options.last().map(String::as_str), Some("none"));
        let picked: Vec<&str> = answer.iter().map(|&i| options[i].as_str()).collect();
        assert_eq!(picked.len(), 2);
        assert!(picked.contains(&"a") && picked.contains(&"c"));
    }

    #[test]
    fn phrase_fills_its_variables() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let s = phrase(&mut rng, &["Is there a {x}?"], &[("x", "nodule")]);
        assert_eq!(s, "Is there a nodule?");
    }
}
