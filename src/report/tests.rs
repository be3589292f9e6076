//! Report building: schema, determinism, robustness rows, examples.

use super::*;
use crate::geometry::BoxFrame;
use crate::sample::Task;
use crate::score::tests::battery;
use crate::score::{Prediction, ScoreOptions, score_run};

fn header() -> Header {
    let mut h = Header::new(
        DatasetInfo {
            spec: "test:battery".into(),
            name: "battery".into(),
            format: "test".into(),
            source_box_frame: "normalized".into(),
        },
        "normalized".into(),
        GroundingScope::Boxed,
    );
    h.bootstrap.resamples = 200;
    h
}

fn preds() -> Vec<Prediction> {
    let clean = [
        ("closed", "Yes."),
        (
            "closed_boxed",
            "No. <location> [[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.8]]",
        ),
        ("single", "C <location> [[0.1, 0.1, 0.5, 0.5]]"),
        ("multi", "A and D"),
        (
            "open",
            "No residual polyps were identified during the colonoscopy.",
        ),
        ("ground", "[[0.1, 0.1, 0.5, 0.5]]"),
        ("ground_text", "polyp [0.6, 0.6, 0.9, 0.8]"),
    ];
    let blur = [
        ("closed", "No."),
        ("closed_boxed", "No. <location> [[0.2, 0.2, 0.5, 0.5]]"),
        ("single", "I cannot tell."),
        ("multi", "A"),
        ("open", "A polyp."),
        ("ground", "nothing"),
        ("ground_text", "polyp [0.6, 0.6, 0.9, 0.8]"),
    ];
    let mut v: Vec<Prediction> = clean
        .iter()
        .map(|(id, r)| Prediction::clean(*id, *r))
        .collect();
    for sev in [1u8, 3] {
        v.extend(blur.iter().map(|(id, r)| Prediction {
            id: id.to_string(),
            condition: Condition::new("gaussian_blur", sev),
            response: r.to_string(),
            confidence: None,
            source: None,
        }));
    }
    v
}

fn report_of(p: &[Prediction]) -> Report {
    report_by(p, &[])
}

/// The battery's report with `by` asking for these keys.
fn report_by(p: &[Prediction], by: &[&str]) -> Report {
    let samples = battery();
    let o = ScoreOptions {
        judge: None,
        box_frame: BoxFrame::Normalized,
        grounding: GroundingScope::Boxed,
        semantic: None,
    };
    let runs = score_run(&samples, p, &o, &crate::run::HeaderSizes::default());
    let mut h = header();
    h.by_meta = by.iter().map(|k| k.to_string()).collect();
    build(&samples, &runs, &[], h, &BuildOptions::default())
}

#[test]
fn report_json_has_the_design_shape() {
    let r = report_of(&preds());
    let v: serde_json::Value = serde_json::from_str(&json::render(&r).unwrap()).unwrap();
    for key in [
        "overall",
        "by",
        "robustness",
        "unparsed",
        "failures",
        "header",
        "counts",
    ] {
        assert!(v.get(key).is_some(), "no {key}");
    }
    let acc = &v["overall"]["accuracy"];
    for k in ["value", "ci_low", "ci_high", "n"] {
        assert!(acc.get(k).is_some(), "accuracy has no {k}");
    }
    // closed, closed_boxed, single, multi: all right on clean.
    assert_eq!(acc["value"], 1.0);
    assert_eq!(acc["n"], 4);
    assert!(v["by"]["kind"]["closed"]["accuracy"].is_object());
    assert!(v["by"]["n_images"]["1"].is_object());
    let row = &v["robustness"][0];
    for k in [
        "perturbation",
        "severity",
        "metrics",
        "relative",
        "flip_rate",
    ] {
        assert!(row.get(k).is_some(), "robustness row has no {k}");
    }
    assert_eq!(row["perturbation"], "gaussian_blur");
}

#[test]
fn robustness_rows_count_flips_relative_scores_and_miou_drop() {
    let r = report_of(&preds());
    assert_eq!(r.robustness.len(), 2);
    let row = &r.robustness[0];
    // Answers: closed yes→no (flip), closed_boxed no→no, single C→unparsed (flip),
    // multi A,D→A (flip), open text changed (flip), ground_text unchanged. "ground" has no
    // answer to extract.
    assert_eq!(row.flip_n, 6);
    assert!((row.flip_rate.unwrap() - 4.0 / 6.0).abs() < 1e-12);
    // Accuracy 1 → 1/4 (only closed_boxed stays right).
    assert!((row.relative["accuracy"] - 0.25).abs() < 1e-12);
    assert!(row.miou_drop.unwrap() > 0.0);
    assert_eq!(row.unparsed.answer, 1);
    assert_eq!(row.unparsed.boxes, 2);
    let s = r.robustness_summary.as_ref().unwrap();
    assert_eq!(s.conditions, 2);
    assert!(s.score.unwrap() < 1.0);
}

#[test]
fn reports_are_byte_identical_across_runs_and_prediction_orders() {
    let p = preds();
    let a = json::render(&report_of(&p)).unwrap();
    let b = json::render(&report_of(&p)).unwrap();
    assert_eq!(a, b);
    let mut rev = p.clone();
    rev.reverse();
    let c = report_of(&rev);
    assert_eq!(a, json::render(&c).unwrap());
    assert_eq!(csv::render(&report_of(&p)), csv::render(&c));
    assert_eq!(markdown::render(&report_of(&p)), markdown::render(&c));
    assert_eq!(
        html::render(&report_of(&p), &NoThumbnails),
        html::render(&c, &NoThumbnails)
    );
}

#[test]
fn examples_lead_with_flips_and_carry_boxes() {
    let r = report_of(&preds());
    assert!(!r.examples.is_empty());
    assert_eq!(r.examples[0].why, "flipped from clean");
    assert!(
        r.examples
            .iter()
            .all(|e| e.response.chars().count() <= EXAMPLE_RESPONSE_CHARS + 1)
    );
    let boxed = r.examples.iter().find(|e| e.id == "closed_boxed");
    if let Some(e) = boxed {
        assert_eq!(e.gt_boxes.len(), 2);
    }
}

#[test]
fn csv_has_one_header_and_quoted_fields() {
    let out = csv::render(&report_of(&preds()));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(csv::HEADER));
    assert!(out.contains("overall,,,none,0,accuracy,1,"));
    assert!(out.contains("robustness,,,gaussian_blur,1,flip_rate,"));
    assert_eq!(csv::field("a,b"), "\"a,b\"");
    assert_eq!(csv::field("say \"x\""), "\"say \"\"x\"\"\"");
}

#[test]
fn html_is_self_contained_with_charts() {
    let h = html::render(&report_of(&preds()), &NoThumbnails);
    assert!(h.starts_with("<!DOCTYPE html>"));
    assert!(h.matches("<svg class=\"chart\"").count() >= 4);
    // The SVG namespace is an identifier, not a fetch; nothing else may point outside.
    let rest = h.replace("http://www.w3.org/2000/svg", "");
    for banned in ["<script", "http:", "https:", "src=", "@import", "url("] {
        assert!(
            !rest.contains(banned),
            "external or scripted content: {banned}"
        );
    }
}

#[test]
fn by_a_built_in_dimension_keeps_it() {
    // Regression: `by = ["kind"]` looked `kind` up in meta and replaced the per-kind table
    // by one "unknown" group.
    let r = report_by(&preds(), &["kind", "modality"]);
    let v = serde_json::to_value(&r).unwrap();
    assert!(
        v["by"]["kind"]["closed"]["accuracy"].is_object(),
        "{}",
        v["by"]["kind"]
    );
    assert!(v["by"]["kind"].get("unknown").is_none());
    assert_eq!(
        v["by"],
        serde_json::to_value(report_of(&preds())).unwrap()["by"]
    );
}

#[test]
fn a_by_key_no_sample_has_is_a_note() {
    let r = report_by(&preds(), &["tpye", "kind"]);
    let notes: Vec<&String> = r
        .header
        .notes
        .iter()
        .filter(|n| n.starts_with("by:"))
        .collect();
    assert_eq!(notes.len(), 1, "{:?}", r.header.notes);
    assert!(notes[0].contains("meta key tpye"), "{}", notes[0]);
}

#[test]
fn the_headline_is_one_metric_per_kind() {
    let r = report_of(&preds());
    let head: Vec<(&str, &str)> = headline(&r).iter().map(|(k, m, _)| (*k, *m)).collect();
    assert_eq!(
        head,
        [
            ("closed", "accuracy"),
            ("single_choice", "accuracy"),
            ("multi_choice", "accuracy"),
            ("open", "token_f1"),
            ("grounding", "acc@0.5"),
        ]
    );
    let md = markdown::render(&r);
    assert!(md.find("## Headline").unwrap() < md.find("## Every metric").unwrap());
    assert_eq!(headline_lines(&r).len(), 5);
}

#[test]
fn clustered_records_give_a_clustering_block_and_unclustered_ones_none() {
    let samples = battery();
    let o = ScoreOptions {
        judge: None,
        box_frame: BoxFrame::Normalized,
        grounding: GroundingScope::Boxed,
        semantic: None,
    };
    let mut runs = score_run(&samples, &preds(), &o, &crate::run::HeaderSizes::default());
    let plain = build(&samples, &runs, &[], header(), &BuildOptions::default());
    assert_eq!(plain.clustering, None);
    assert_eq!(clustering_line(&plain), None);

    // Every question in one of two clusters.
    for (i, r) in runs.scored.iter_mut().enumerate() {
        r.cluster = Some(format!("image:{}", i % 2));
    }
    let mut h = header();
    h.cluster = Some("image".into());
    let rep = build(&samples, &runs, &[], h, &BuildOptions::default());
    let c = rep.clustering.as_ref().unwrap();
    assert_eq!((c.by.as_str(), c.clusters, c.questions), ("image", 2, 7));
    assert!(c.design_effect.contains_key("miou"), "{c:?}");
    assert!(
        clustering_line(&rep)
            .unwrap()
            .contains("2 clusters for 7 clean questions")
    );
    let json = serde_json::to_string(&rep).unwrap();
    assert!(json.contains("\"clustering\""), "{json}");
    assert!(
        csv::render(&rep).contains("clustering,design_effect,image,none,0,miou,"),
        "{}",
        csv::render(&rep)
    );
}

#[test]
fn image_reliance_compares_clean_and_blank_answers_on_the_same_questions() {
    let samples = battery();
    let o = ScoreOptions {
        judge: None,
        box_frame: BoxFrame::Normalized,
        grounding: GroundingScope::Boxed,
        semantic: None,
    };
    let mut p: Vec<Prediction> = [
        ("closed", "Yes."),
        ("single", "C"),
        ("multi", "A and D"),
        (
            "open",
            "No residual polyps were identified during the colonoscopy.",
        ),
    ]
    .iter()
    .map(|(id, r)| Prediction::clean(*id, *r))
    .collect();
    // Without the image: the closed answer stays, the others change.
    for (id, r) in [
        ("closed", "Yes."),
        ("single", "A"),
        ("multi", "B"),
        ("open", "A polyp."),
    ] {
        p.push(Prediction {
            id: id.to_string(),
            condition: Condition::new("blank-image", 1),
            response: r.to_string(),
            confidence: None,
            source: None,
        });
    }
    let runs = score_run(&samples, &p, &o, &crate::run::HeaderSizes::default());
    let rep = build(&samples, &runs, &[], header(), &BuildOptions::default());
    // Independent computation from the scored records, kind by kind.
    let value = |id: &str, blank: bool, m: &str| {
        runs.scored
            .iter()
            .find(|r| r.id == id && r.condition.is_clean() != blank)
            .and_then(|r| r.metrics.get(m).copied())
            .unwrap()
    };
    for (id, kind, metric, same) in [
        ("closed", "closed", "accuracy", 1.0),
        ("single", "single_choice", "accuracy", 0.0),
        ("multi", "multi_choice", "accuracy", 0.0),
        ("open", "open", "token_f1", 0.0),
    ] {
        let row = rep
            .image_reliance
            .iter()
            .find(|x| x.dimension == "kind" && x.group == kind)
            .unwrap_or_else(|| panic!("no row for {kind}: {:?}", rep.image_reliance));
        let (c, b) = (value(id, false, metric), value(id, true, metric));
        assert_eq!(
            (row.control.as_str(), row.metric.as_str(), row.n),
            ("blank-image", metric, 1)
        );
        assert!((row.clean - c).abs() < 1e-12 && (row.under_control - b).abs() < 1e-12);
        assert!((row.reliance - (c - b)).abs() < 1e-12);
        assert_eq!(row.unchanged, same, "{kind}");
    }
    let csv = csv::render(&rep);
    assert!(
        csv.contains("image_reliance,kind,closed,blank-image,1,unchanged,1,,,1,"),
        "{csv}"
    );
    // A control is not a robustness condition: no one-number robustness score from it.
    assert_eq!(rep.robustness_summary, None);
    // No control, no table.
    assert!(report_of(&preds()).image_reliance.is_empty());
}

#[test]
fn option_order_gives_circular_accuracy_and_position_bias_from_scripted_answers() {
    use crate::perturb::options::task_as_asked;
    use crate::score::tests::sample;
    let opts = |v: [&str; 4]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let samples = vec![
        // q1: a reader, who picks option "b" in every order.
        sample(
            "q1",
            Task::SingleChoice {
                options: opts(["a", "b", "c", "d"]),
                answer: 1,
            },
            vec![],
        ),
        // q2: a position picker, who says A in every order.
        sample(
            "q2",
            Task::SingleChoice {
                options: opts(["w", "x", "y", "z"]),
                answer: 0,
            },
            vec![],
        ),
    ];
    let mut p = Vec::new();
    for r in 0..4u8 {
        // Rotation r shows original option j at letter (j - r) mod 4.
        let q1 = ["B", "A", "D", "C"][usize::from(r)];
        for (id, letter) in [("q1", q1), ("q2", "A")] {
            p.push(Prediction {
                id: id.into(),
                condition: if r == 0 {
                    Condition::clean()
                } else {
                    Condition::new("option-rotate", r)
                },
                response: letter.into(),
                confidence: None,
                source: None,
            });
        }
    }
    let o = ScoreOptions {
        judge: None,
        box_frame: BoxFrame::Normalized,
        grounding: GroundingScope::Boxed,
        semantic: None,
    };
    let truth = |s: &Sample, p: &Prediction| {
        task_as_asked(&p.condition.perturbation, p.condition.severity, &s.task)
            .map(|task| Sample { task, ..s.clone() })
    };
    let runs = crate::score::score_run_with(
        &samples,
        &p,
        &o,
        &crate::run::HeaderSizes::default(),
        &truth,
    );
    let rep = build(&samples, &runs, &[], header(), &BuildOptions::default());
    let x = rep.option_order.as_ref().expect("an option-order block");
    // By hand: q1 right in all 4 orders, q2 only in the clean one.
    let c = &x.circular[0];
    assert_eq!((c.kind.as_str(), c.n), ("single_choice", 2));
    assert_eq!(c.clean_accuracy, 1.0);
    assert_eq!(c.mean_accuracy, 5.0 / 8.0);
    assert_eq!(c.circular_accuracy, 0.5);
    assert_eq!(c.changed, 0.5, "q2's chosen option changes; q1's does not");
    // Chosen: A five times of 8 (q1 once, q2 four times), B, C, D once each. Right: each
    // letter twice, as the rotations move both answers through every letter.
    let bias: Vec<(&str, f64, f64)> = x
        .position_bias
        .iter()
        .map(|r| (r.letter.as_str(), r.chosen, r.correct))
        .collect();
    assert_eq!(
        bias,
        [
            ("A", 5.0 / 8.0, 0.25),
            ("B", 1.0 / 8.0, 0.25),
            ("C", 1.0 / 8.0, 0.25),
            ("D", 1.0 / 8.0, 0.25)
        ]
    );
    // Flips compare the options chosen, not their letters: q1 never flips, q2 always.
    for row in &rep.robustness {
        assert_eq!(row.perturbation, "option-rotate");
        assert_eq!(row.flip_rate, Some(0.5), "{row:?}");
    }
    // Option order is not a degradation: no robustness score from it.
    assert_eq!(rep.robustness_summary, None);
    let csv = csv::render(&rep);
    assert!(
        csv.contains("option_order,kind,single_choice,option-rotate,,circular_accuracy,0.5,,,2,"),
        "{csv}"
    );
    assert!(
        csv.contains("position_bias,single_choice,A,option-rotate,,chosen,0.625,,,8,"),
        "{csv}"
    );
    assert!(markdown::render(&rep).contains("## Option order"));
    // No rotation, no block.
    assert!(report_of(&preds()).option_order.is_none());
}

#[test]
fn consistency_by_reliance_puts_each_question_in_its_cell() {
    let samples = battery();
    let o = ScoreOptions {
        judge: None,
        box_frame: BoxFrame::Normalized,
        grounding: GroundingScope::Boxed,
        semantic: None,
    };
    let open_clean = "No residual polyps were identified during the colonoscopy.";
    // (id, clean, under blur, under blank)
    let script = [
        // Stable, and the blank image does not move it: stable because it does not look.
        ("closed", "Yes.", "Yes.", "Yes."),
        // Stable, and the blank image moves it: it looked.
        ("single", "C", "C", "A"),
        // Moved by blur, not by the blank image.
        ("multi", "A and D", "A", "A and D"),
        // Moved by both.
        ("open", open_clean, "A polyp.", "Nothing."),
    ];
    let mut p = Vec::new();
    for (id, clean, blur, blank) in script {
        p.push(Prediction::clean(id, clean));
        for (cond, r) in [("gaussian-blur", blur), ("blank-image", blank)] {
            p.push(Prediction {
                id: id.into(),
                condition: Condition::new(cond, if cond == "blank-image" { 1 } else { 3 }),
                response: r.into(),
                confidence: None,
                source: None,
            });
        }
    }
    let runs = score_run(&samples, &p, &o, &crate::run::HeaderSizes::default());
    let rep = build(&samples, &runs, &[], header(), &BuildOptions::default());
    let cell = |kind: &str| {
        let r = rep
            .consistency_by_reliance
            .iter()
            .find(|r| r.kind == kind)
            .unwrap_or_else(|| panic!("no row for {kind}"));
        assert_eq!((r.control.as_str(), r.n), ("blank-image", 1));
        [
            r.consistent_reliant,
            r.consistent_ignores_image,
            r.inconsistent_reliant,
            r.inconsistent_ignores_image,
        ]
    };
    assert_eq!(cell("closed"), [0.0, 1.0, 0.0, 0.0]);
    assert_eq!(cell("single_choice"), [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(cell("multi_choice"), [0.0, 0.0, 0.0, 1.0]);
    assert_eq!(cell("open"), [0.0, 0.0, 1.0, 0.0]);
    let csv = csv::render(&rep);
    assert!(
        csv.contains(
            "consistency_reliance,kind,closed,blank-image,1,consistent_ignores_image,1,,,1,"
        ),
        "{csv}"
    );
    assert!(markdown::render(&rep).contains("Consistency × image reliance"));
}

#[test]
fn calibration_matches_a_hand_computation() {
    use crate::score::confidence::Confidence;
    // Confidences on the four accuracy-scored questions; the others carry none.
    let given = |id: &str, sev: u8| -> Option<f64> {
        let clean = [
            ("closed", 0.9),
            ("closed_boxed", 0.8),
            ("single", 0.7),
            ("multi", 0.6),
        ];
        let blur = [
            ("closed", 0.9),
            ("closed_boxed", 0.6),
            ("single", 0.8),
            ("multi", 0.5),
        ];
        let table: &[(&str, f64)] = match sev {
            0 => &clean,
            3 => &blur,
            _ => &[],
        };
        table.iter().find(|(i, _)| *i == id).map(|x| x.1)
    };
    let mut p = preds();
    for x in &mut p {
        x.confidence = given(&x.id, x.condition.severity).map(Confidence::Given);
    }
    let r = report_of(&p);
    let c = r.calibration.as_ref().expect("a calibration block");
    assert_eq!(c.bins, 15);
    let row = |pert: &str, sev: u8, kind: &str| {
        c.rows
            .iter()
            .find(|x| x.perturbation == pert && x.severity == sev && x.kind == kind)
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    // Clean: all four right. ECE = mean |1 − c| = (0.1+0.2+0.3+0.4)/4 = 0.25 (one answer
    // a bin); Brier = (0.01+0.04+0.09+0.16)/4 = 0.075; AURC 0; AUROC undefined.
    let clean = row("none", 0, "all").unwrap();
    assert_eq!((clean.n, clean.without), (4, 3));
    assert!(close(clean.ece, 0.25) && close(clean.brier, 0.075) && close(clean.aurc, 0.0));
    assert_eq!(clean.auroc, None);
    assert_eq!(clean.mean_confidence_wrong, None);
    // Blur@3: closed 0.9 wrong ("No."), closed_boxed 0.6 right, single 0.8 wrong
    // (unparsed), multi 0.5 wrong ("A" for A, D).
    // ECE = (0.9+0.4+0.8+0.5)/4 = 0.65; Brier = (0.81+0.16+0.64+0.25)/4 = 0.465;
    // AUROC: the right 0.6 beats only the wrong 0.5: 1/3. AURC: most confident first
    // W W R W: risks 1, 1, 2/3, 3/4, mean 0.8541666...
    let blur = row("gaussian_blur", 3, "all").unwrap();
    assert_eq!(blur.n, 4);
    assert!(close(blur.accuracy, 0.25));
    assert!(close(blur.ece, 0.65), "{}", blur.ece);
    assert!(close(blur.brier, 0.465));
    assert!(close(blur.auroc.unwrap(), 1.0 / 3.0));
    assert!(close(blur.aurc, (1.0 + 1.0 + 2.0 / 3.0 + 0.75) / 4.0));
    assert!(close(blur.mean_confidence_wrong.unwrap(), 2.2 / 3.0));
    // No confidence at severity 1: no row.
    assert!(row("gaussian_blur", 1, "all").is_none());
    // By kind: closed at blur@3 is closed 0.9 wrong and closed_boxed 0.6 right.
    let closed = row("gaussian_blur", 3, "closed").unwrap();
    assert!(close(closed.brier, (0.81 + 0.16) / 2.0));
    // The shift: ECE 0.65 − 0.25, confidence 0.7 − 0.75, accuracy 0.25 − 1.
    let s = c
        .shift
        .iter()
        .find(|x| x.perturbation == "gaussian_blur" && x.severity == 3 && x.kind == "all")
        .unwrap();
    assert!(close(s.ece_change, 0.4) && close(s.confidence_change, -0.05));
    assert!(close(s.accuracy_change, -0.75));
    assert_eq!(s.confidence_wrong_clean, None);
    // Every format carries it.
    let v: serde_json::Value = serde_json::from_str(&json::render(&r).unwrap()).unwrap();
    assert_eq!(v["calibration"]["rows"][0]["kind"], "all");
    let md = markdown::render(&r);
    assert!(
        md.contains("## Calibration") && md.contains("Calibration shift"),
        "{md}"
    );
    let csv = csv::render(&r);
    assert!(
        csv.contains("calibration,kind,all,gaussian_blur,3,ece,0.65,,,4,"),
        "{csv}"
    );
    assert!(csv.contains("calibration_shift,kind,all,gaussian_blur,3,ece_change,0.4,"));
    let html = html::render(&r, &NoThumbnails);
    assert!(html.contains("Reliability diagram") && html.contains("Risk–coverage"));
    let line = super::calibration::clean_line(c).unwrap();
    assert!(
        line.starts_with("calibration (clean, n=4): ECE 0.250, Brier 0.075, AUROC -")
            && line.ends_with("worst ECE 0.650 under gaussian_blur@3"),
        "{line}"
    );
    // Without confidences there is no block.
    assert!(report_of(&preds()).calibration.is_none());
}
