//! Registry-driven and whole-run tests of the scorer.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::geometry::BBox;
use crate::sample::{GtBox, ImageRef, ImageSource, Meta};

pub(crate) fn sample(id: &str, task: Task, boxes: Vec<[f64; 4]>) -> Sample {
    Sample {
        id: id.to_string(),
        images: vec![ImageRef {
            key: format!("{id}.png"),
            source: ImageSource::Bytes(Arc::from(Vec::new())),
        }],
        question: format!("question {id}?"),
        task,
        boxes: boxes
            .into_iter()
            .map(|b| GtBox {
                image: 0,
                bbox: BBox::new(b[0], b[1], b[2], b[3]).unwrap(),
                label: None,
            })
            .collect(),
        meta: Meta::new(),
    }
}

fn options() -> Vec<String> {
    [
        "Left lung",
        "Right lung",
        "Cardiac region",
        "Bilateral lung",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One sample of every kind, with and without boxes.
pub(crate) fn battery() -> Vec<Sample> {
    let b = vec![[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.8]];
    vec![
        sample("closed", Task::Closed { answer: true }, vec![]),
        sample("closed_boxed", Task::Closed { answer: false }, b.clone()),
        sample(
            "single",
            Task::SingleChoice {
                options: options(),
                answer: 2,
            },
            vec![b[0]],
        ),
        sample(
            "multi",
            Task::MultiChoice {
                options: options(),
                answer: vec![0, 3],
            },
            vec![],
        ),
        sample(
            "open",
            Task::Open {
                answer: "No residual polyps identified during colonoscopy".into(),
            },
            vec![],
        ),
        sample("ground", Task::Grounding { answer: None }, b.clone()),
        sample(
            "ground_text",
            Task::Grounding {
                answer: Some("polyp".into()),
            },
            vec![b[1]],
        ),
    ]
}

const RESPONSES: &[&str] = &[
    "",
    "yes",
    "No. <location> [[0.1, 0.1, 0.5, 0.5]]",
    "C",
    "A and D",
    "Answer: B",
    "\\boxed{A, C}",
    "There are no polyps; a colonoscopy was performed.",
    "[[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.8]]",
    "[0.9, 0.9, 0.1, 0.1]",
    "<|box_start|>(100,100),(500,500)<|box_end|>",
    "polyp<loc_600><loc_600><loc_900><loc_800>",
    "<loc0102><loc0102><loc0512><loc0512> polyp",
    "the cardiac region",
    "garbage ✓ ü 🙂 [1,2",
];

fn opts() -> ScoreOptions<'static> {
    ScoreOptions {
        judge: None,
        box_frame: BoxFrame::Normalized,
        grounding: GroundingScope::Boxed,
        semantic: None,
    }
}

struct NoSizes;
impl ImageSizes for NoSizes {
    fn size(&self, _: &Sample, _: usize) -> Result<(u32, u32), String> {
        Err("no images in this test".into())
    }
}

#[test]
fn metric_names_are_unique_and_cover_design_section_7() {
    let names: BTreeSet<&str> = METRICS.iter().map(|m| m.name).collect();
    assert_eq!(names.len(), METRICS.len());
    for n in [
        "accuracy",
        "exact_match",
        "token_f1",
        "bleu",
        "rouge_l",
        "jaccard",
        "miou",
        "acc@0.3",
        "acc@0.5",
        "acc@0.75",
        "recall@0.5",
        "semantic",
    ] {
        assert!(metric(n).is_some(), "{n} is not registered");
    }
}

#[test]
fn every_metric_scores_within_zero_and_one_and_applies_somewhere() {
    let samples = battery();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for s in &samples {
        for r in RESPONSES {
            let p = Prediction::clean(s.id.clone(), *r);
            let sc = score_one(s, &p, &opts(), &NoSizes).unwrap();
            for (name, v) in &sc.metrics {
                assert!((0.0..=1.0).contains(v), "{name} = {v} on {} / {r:?}", s.id);
                seen.insert(name.to_string());
            }
        }
    }
    for m in METRICS {
        if matches!(m.scorer, Scorer::Sample(_)) {
            assert!(seen.contains(m.name), "{} never applied", m.name);
        }
    }
}

struct FixedSemantic;
impl SemanticScorer for FixedSemantic {
    fn similarities(&self, pairs: &[(&str, &str)]) -> Vec<Result<f64, SemanticError>> {
        pairs
            .iter()
            .map(|(a, b)| {
                if b.is_empty() {
                    Err(SemanticError("empty candidate".into()))
                } else {
                    // A real scorer returns cosines in [-1, 1]; check the clamp too.
                    Ok(if a == b { 1.0 } else { -0.25 })
                }
            })
            .collect()
    }
}

#[test]
fn semantic_is_reported_only_with_a_scorer_and_failures_are_recorded() {
    let samples = battery();
    let preds = vec![
        Prediction::clean("open", "No residual polyps identified during colonoscopy"),
        Prediction::clean("ground_text", ""),
        Prediction::clean("closed", "yes"),
    ];
    let without = score_run(&samples, &preds, &opts(), &NoSizes);
    assert!(
        without
            .scored
            .iter()
            .all(|s| !s.metrics.contains_key("semantic"))
    );
    let o = ScoreOptions {
        judge: None,
        semantic: Some(&FixedSemantic),
        ..opts()
    };
    let with = score_run(&samples, &preds, &o, &NoSizes);
    let open = with.scored.iter().find(|s| s.id == "open").unwrap();
    assert_eq!(open.metrics["semantic"], 1.0);
    assert!(
        !with
            .scored
            .iter()
            .any(|s| s.id == "closed" && s.metrics.contains_key("semantic"))
    );
    assert_eq!(with.failures.len(), 1);
    assert_eq!(with.failures[0].id.as_deref(), Some("ground_text"));
}

#[test]
fn unknown_ids_and_duplicates_are_rejected_with_reasons() {
    let samples = battery();
    let preds = vec![
        Prediction::clean("closed", "yes"),
        Prediction::clean("closed", "yes"),
        Prediction::clean("single", "A"),
        Prediction::clean("single", "B"),
        Prediction::clean("nope", "yes"),
    ];
    let r = score_run(&samples, &preds, &opts(), &NoSizes);
    let ids: Vec<&str> = r.scored.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["closed"]);
    assert_eq!(r.rejected.len(), 4);
    let reasons: Vec<&str> = r.rejected.iter().map(|x| x.reason.as_str()).collect();
    assert!(reasons.iter().any(|x| x.starts_with("unknown id")));
    assert_eq!(
        reasons
            .iter()
            .filter(|x| x.starts_with("conflicting"))
            .count(),
        2
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|x| x.starts_with("duplicate"))
            .count(),
        1
    );
    // "single" has no accepted prediction, so it is missing along with the others.
    assert!(r.missing[&Condition::clean()].contains(&"single".to_string()));
}

#[test]
fn pixel_frames_without_a_size_fail_the_sample_not_the_run() {
    let samples = battery();
    let preds = vec![
        Prediction::clean("ground", "[[10, 10, 50, 50]]"),
        Prediction::clean("closed", "yes"),
    ];
    let o = ScoreOptions {
        judge: None,
        box_frame: BoxFrame::Pixels,
        ..opts()
    };
    let r = score_run(&samples, &preds, &o, &NoSizes);
    assert_eq!(r.scored.len(), 1);
    assert_eq!(r.failures.len(), 1);
    assert!(
        r.failures[0].reason.contains("no images in this test"),
        "{}",
        r.failures[0].reason
    );
}

#[test]
fn grounding_scope_decides_which_samples_are_scored_on_boxes() {
    let s = &battery()[1]; // closed with boxes
    let p = Prediction::clean("closed_boxed", "No.");
    let boxed = score_one(s, &p, &opts(), &NoSizes).unwrap();
    assert!(boxed.unparsed_boxes && boxed.metrics["miou"] == 0.0);
    let o = ScoreOptions {
        judge: None,
        grounding: GroundingScope::GroundingKind,
        ..opts()
    };
    let kind_only = score_one(s, &p, &o, &NoSizes).unwrap();
    assert!(!kind_only.unparsed_boxes && !kind_only.metrics.contains_key("miou"));
    assert_eq!(kind_only.metrics["accuracy"], 1.0);
}

proptest! {
    #[test]
    fn results_do_not_depend_on_prediction_order(seed in 0u64..1000) {
        let samples = battery();
        let mut preds: Vec<Prediction> = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            for (k, cond) in [Condition::clean(), Condition::new("blur", 2)].into_iter().enumerate() {
                let r = RESPONSES[(i * 3 + k + seed as usize) % RESPONSES.len()];
                preds.push(Prediction { id: s.id.clone(), condition: cond, response: r.into(), confidence: None, source: None });
            }
        }
        preds.push(Prediction::clean("unknown", "x"));
        let a = score_run(&samples, &preds, &opts(), &NoSizes);
        // A deterministic shuffle driven by the seed.
        let mut shuffled = preds.clone();
        let n = shuffled.len();
        for i in 0..n {
            shuffled.swap(i, (i * 7 + seed as usize) % n);
        }
        let b = score_run(&samples, &shuffled, &opts(), &NoSizes);
        prop_assert_eq!(a.scored, b.scored);
        prop_assert_eq!(a.rejected, b.rejected);
    }

    #[test]
    fn any_response_scores_within_bounds(resp in ".{0,80}", k in 0usize..7) {
        let s = &battery()[k];
        let sc = score_one(s, &Prediction::clean(s.id.clone(), resp), &opts(), &NoSizes).unwrap();
        for (name, v) in &sc.metrics {
            prop_assert!((0.0..=1.0).contains(v), "{} = {}", name, v);
        }
    }
}

#[test]
fn a_model_that_always_says_no_does_not_look_good() {
    // 2 yes and 8 no references: "no" to everything is 80% accurate, but finds nothing.
    let samples: Vec<Sample> = (0..10)
        .map(|i| sample(&format!("c{i}"), Task::Closed { answer: i < 2 }, vec![]))
        .collect();
    let preds: Vec<Prediction> = samples
        .iter()
        .map(|s| Prediction::clean(s.id.clone(), "No."))
        .collect();
    let runs = score_run(
        &samples,
        &preds,
        &opts(),
        &crate::run::HeaderSizes::default(),
    );
    let records: Vec<&Scored> = runs.scored.iter().collect();
    let cfg = stats::Bootstrap {
        resamples: 0,
        seed: 0,
        confidence: 0.95,
    };
    let s = summarize(&records, &cfg, "overall");
    assert_eq!(s["accuracy"].value, 0.8);
    assert_eq!(s["sensitivity"].value, 0.0);
    assert_eq!(s["sensitivity"].n, 2);
    assert_eq!(s["specificity"].value, 1.0);
    assert_eq!(s["specificity"].n, 8);
    assert_eq!(s["yes_rate"].value, 0.0);
    assert_eq!(s["balanced_accuracy"].value, 0.5);
}

#[test]
fn a_scored_record_reads_on_its_own() {
    let samples = battery();
    let preds = vec![Prediction::clean("single", "The answer is C.")];
    let runs = score_run(
        &samples,
        &preds,
        &opts(),
        &crate::run::HeaderSizes::default(),
    );
    let v = serde_json::to_value(&runs.scored[0]).unwrap();
    assert_eq!(v["question"], "question single?");
    assert_eq!(v["options"][2], "Cardiac region");
    assert_eq!(v["reference"], "C");
    assert_eq!(v["response"], "The answer is C.");
    assert_eq!(v["extracted"], "C");
    assert!(v.get("answer").is_none());
    // Records written before the rename still read.
    let mut old = v.clone();
    let o = old.as_object_mut().unwrap();
    let x = o.remove("extracted").unwrap();
    o.insert("answer".into(), x);
    for k in ["question", "options", "reference"] {
        o.remove(k);
    }
    let back: Scored = serde_json::from_value(old).unwrap();
    assert_eq!(back.extracted.as_deref(), Some("C"));
}

#[test]
fn cluster_rules_parse_and_name_each_samples_cluster() {
    use super::ClusterRule;
    assert_eq!("image".parse::<ClusterRule>(), Ok(ClusterRule::Image));
    assert_eq!("none".parse::<ClusterRule>(), Ok(ClusterRule::None));
    assert_eq!(
        "meta.video_id".parse::<ClusterRule>(),
        Ok(ClusterRule::Meta("video_id".into()))
    );
    assert!("meta.".parse::<ClusterRule>().is_err());
    assert!(
        "video"
            .parse::<ClusterRule>()
            .unwrap_err()
            .contains("meta.KEY")
    );
    let s = &battery()[0];
    assert_eq!(ClusterRule::None.of(s), None);
    assert_eq!(
        ClusterRule::Image.of(s),
        Some(format!("image:{}", s.images[0].key))
    );
    assert_eq!(ClusterRule::Meta("no_such_key".into()).of(s), None);
    for r in ["image", "none", "meta.img_id"] {
        assert_eq!(r.parse::<ClusterRule>().unwrap().to_string(), r);
    }
}
