//! `medvqa score` and `medvqa compare` end to end: on a generated manifest dataset with
//! real PNGs, and (done-when checks) on the real GEMeX and Kvasir-VQA-x1 samples in
//! `../shared/data`.

// Test code may unwrap and panic (clippy.toml allows it inside #[test] only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod scoring_fixture;

use std::path::Path;

use serde_json::Value;

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `medvqa score` on the fixture, boxes read on a 0-1000 grid unless `extra` says otherwise.
fn score(manifest: &Path, preds: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let spec = format!("jsonl:{}", manifest.display());
    let mut args = vec![
        "score",
        "--quiet",
        "--dataset",
        &spec,
        "--predictions",
        preds.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--by",
        "type",
    ];
    args.extend_from_slice(extra);
    if !extra.contains(&"--box-frame") {
        args.extend_from_slice(&["--box-frame", "grid:1000"]);
    }
    common::run(&args)
}

#[test]
fn score_writes_every_report_file_and_is_byte_identical_across_reruns_and_orders() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = scoring_fixture::write_dataset(&tmp.path().join("data"));
    let p1 = tmp.path().join("p1.jsonl");
    let p2 = tmp.path().join("p2.jsonl");
    scoring_fixture::write_predictions(&p1, false);
    scoring_fixture::write_predictions(&p2, true);
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    for (p, out) in [(&p1, &a), (&p1, &b), (&p2, &c)] {
        let o = score(&manifest, p, out, &[]);
        assert_eq!(o.status.code(), Some(0), "stderr: {}", common::stderr(&o));
    }
    for f in [
        "report.json",
        "report.md",
        "report.html",
        "summary.csv",
        "scored.jsonl",
        "rejected.jsonl",
        "timing.json",
    ] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    for f in [
        "report.json",
        "report.md",
        "report.html",
        "summary.csv",
        "scored.jsonl",
    ] {
        let x = std::fs::read(a.join(f)).unwrap();
        assert_eq!(
            x,
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between reruns"
        );
        assert_eq!(
            x,
            std::fs::read(c.join(f)).unwrap(),
            "{f} depends on prediction order"
        );
    }
    let r = read_json(&a.join("report.json"));
    assert_eq!(r["counts"]["scored"], 56);
    assert_eq!(r["counts"]["scored_clean"], 8);
    // Clean: every closed and choice answer is right.
    assert_eq!(r["overall"]["accuracy"]["value"], 1.0);
    assert_eq!(r["overall"]["accuracy"]["n"], 5);
    assert_eq!(r["overall"]["miou"]["value"], 1.0);
    assert!(r["by"]["type"]["location"].is_object());
    assert!(r["by"]["n_images"]["2"].is_object());
    let rows = r["robustness"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    // The fixture writes `gaussian_blur`; score reads it as medvqa's `gaussian-blur`.
    let blur5 = rows
        .iter()
        .find(|x| x["perturbation"] == "gaussian-blur" && x["severity"] == 5)
        .unwrap();
    assert!(blur5["flip_rate"].as_f64().unwrap() > 0.5);
    assert!(blur5["miou_drop"].as_f64().unwrap() > 0.5);
    assert_eq!(blur5["unparsed"]["answer"], 1);
    assert!(r["robustness_summary"]["score"].as_f64().unwrap() < 1.0);
    // Timing is kept out of report.json.
    assert!(
        !std::fs::read_to_string(a.join("report.json"))
            .unwrap()
            .contains("wall")
    );
    let t = read_json(&a.join("timing.json"));
    assert!(t["wall_seconds"].as_f64().unwrap() >= 0.0);
    if std::path::Path::new("/proc/self/status").exists() {
        assert!(t["peak_rss_mib"].as_f64().unwrap() > 1.0, "{t}");
    }
}

#[test]
fn unknown_ids_bad_lines_and_duplicates_are_reported_and_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = scoring_fixture::write_dataset(&tmp.path().join("data"));
    let preds = tmp.path().join("p.jsonl");
    std::fs::write(
        &preds,
        [
            r#"{"id": "cxr-closed-1", "response": "yes"}"#,
            r#"{"id": "cxr-closed-1", "response": "yes"}"#,
            r#"{"id": "cxr-closed-2", "response": "yes"}"#,
            r#"{"id": "cxr-closed-2", "response": "no"}"#,
            r#"{"id": "no-such-id", "response": "yes"}"#,
            r#"{"id": "cxr-single-1", "response": "A", "severity": 2}"#,
            r#"{"id": "endo-open-1", "resp"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = score(&manifest, &preds, &out, &[]);
    assert_eq!(o.status.code(), Some(3), "stderr: {}", common::stderr(&o));
    let err = common::stderr(&o);
    assert!(
        err.contains("no-such-id") && err.contains("unknown id"),
        "{err}"
    );
    assert!(
        err.contains("p.jsonl:7"),
        "bad line location missing: {err}"
    );
    assert!(err.contains("conflicting duplicates"), "{err}");
    let r = read_json(&out.join("report.json"));
    // Duplicate kept once (1 rejected), conflicting pair (2), unknown id, bad severity,
    // torn line.
    assert_eq!(r["rejected"]["count"], 6);
    assert_eq!(r["counts"]["scored"], 1);
    assert_eq!(r["missing"]["clean"]["count"], 7);
    let rejected = std::fs::read_to_string(out.join("rejected.jsonl")).unwrap();
    assert_eq!(rejected.lines().count(), 6);
    assert!(rejected.contains("\"location\""));
}

#[test]
fn pixels_frame_reads_image_sizes_and_dataset_frame_is_the_default() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = scoring_fixture::write_dataset(&tmp.path().join("data"));
    let preds = tmp.path().join("p.jsonl");
    // BOX_A on a 96x72 image is [24, 18, 48, 54] in pixels.
    std::fs::write(
        &preds,
        r#"{"id": "endo-ground-1", "response": "[24, 18, 48, 54]"}"#,
    )
    .unwrap();
    let out = tmp.path().join("px");
    let o = score(&manifest, &preds, &out, &["--box-frame", "pixels"]);
    assert!(o.status.code() == Some(0), "{}", common::stderr(&o));
    let r = read_json(&out.join("report.json"));
    assert_eq!(r["overall"]["miou"]["value"], 1.0);
    assert_eq!(r["header"]["box_frame"], "pixels");
    // The same numbers read in the dataset's (normalised) frame are clamped to a corner.
    let out2 = tmp.path().join("ds");
    let args = [
        "score",
        "--dataset",
        &format!("jsonl:{}", manifest.display()),
        "--predictions",
        preds.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
    ];
    let o = common::run(&args);
    assert!(o.status.code() == Some(0), "{}", common::stderr(&o));
    let r = read_json(&out2.join("report.json"));
    assert_eq!(r["header"]["box_frame"], "normalized");
    assert!(r["overall"]["miou"]["value"].as_f64().unwrap() < 0.1);
}

#[test]
fn compare_pairs_two_runs_and_writes_json_and_markdown() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = scoring_fixture::write_dataset(&tmp.path().join("data"));
    let good = tmp.path().join("good.jsonl");
    scoring_fixture::write_predictions(&good, false);
    let bad = tmp.path().join("bad.jsonl");
    let lines: Vec<String> = scoring_fixture::prediction_lines()
        .into_iter()
        .map(|l| l.replace("Yes.", "No.").replace("B and C", "A"))
        .collect();
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let (ra, rb) = (tmp.path().join("ra"), tmp.path().join("rb"));
    assert_eq!(score(&manifest, &good, &ra, &[]).status.code(), Some(0));
    assert_eq!(score(&manifest, &bad, &rb, &[]).status.code(), Some(0));
    let cmp = tmp.path().join("cmp");
    let o = common::run(&[
        "compare",
        ra.to_str().unwrap(),
        rb.to_str().unwrap(),
        "--out",
        cmp.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    // The terminal gets the summary: each kind's headline metric, and the verdict.
    let text = common::stdout(&o);
    assert!(text.contains("over 7 condition(s)"), "{text}");
    assert!(text.contains("all perturbed"), "{text}");
    assert!(text.contains("add --full"), "{text}");
    assert!(!text.contains("paired_bootstrap"), "{text}");
    // --full adds every metric under every condition.
    let o = common::run(&[
        "compare",
        ra.to_str().unwrap(),
        rb.to_str().unwrap(),
        "--full",
    ]);
    let text = common::stdout(&o);
    assert!(
        text.contains("mcnemar_exact") && text.contains("paired_bootstrap"),
        "{text}"
    );
    let c = read_json(&cmp.join("compare.json"));
    assert!(c["headline"].as_array().is_some_and(|h| !h.is_empty()));
    let md = std::fs::read_to_string(cmp.join("compare.md")).unwrap();
    assert!(
        md.contains("## Summary") && md.contains("| condition | metric |"),
        "{md}"
    );
    assert_eq!(c["paired"], 56);
    let acc = c["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == "accuracy" && r["perturbation"] == "none")
        .unwrap();
    // Clean: A right on all 5; B loses cxr-closed-1 (yes→no) and cxr-multi-1.
    assert_eq!(acc["a_only"], 2);
    assert_eq!(acc["b_only"], 0);
    assert_eq!(acc["p_value"], 0.5);
    assert!(cmp.join("compare.md").is_file());
}

#[test]
fn given_confidences_reach_the_report_and_compare_and_bad_ones_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = scoring_fixture::write_dataset(&tmp.path().join("data"));
    // Run A is sure of everything (0.9), run B hesitant (0.6); same answers.
    let with = |c: f64| -> Vec<String> {
        scoring_fixture::prediction_lines()
            .into_iter()
            .map(|l| {
                let mut v: Value = serde_json::from_str(&l).unwrap();
                v["confidence"] = serde_json::json!(c);
                v.to_string()
            })
            .collect()
    };
    let (pa, pb) = (tmp.path().join("a.jsonl"), tmp.path().join("b.jsonl"));
    std::fs::write(&pa, with(0.9).join("\n")).unwrap();
    std::fs::write(&pb, with(0.6).join("\n")).unwrap();
    let (ra, rb) = (tmp.path().join("ra"), tmp.path().join("rb"));
    assert_eq!(score(&manifest, &pa, &ra, &[]).status.code(), Some(0));
    assert_eq!(score(&manifest, &pb, &rb, &[]).status.code(), Some(0));
    let r = read_json(&ra.join("report.json"));
    let clean = r["calibration"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["perturbation"] == "none" && x["kind"] == "all")
        .unwrap()
        .clone();
    // Every answer at 0.9: one value, so ECE = |accuracy − 0.9| and the mean confidence 0.9.
    let acc = clean["accuracy"].as_f64().unwrap();
    assert_eq!(clean["mean_confidence"], 0.9);
    assert!((clean["ece"].as_f64().unwrap() - (acc - 0.9).abs()).abs() < 1e-6);
    let scored = jsonl(&ra.join("scored.jsonl"));
    assert!(scored.iter().all(|v| v["confidence_scope"] == "given"));
    let cmp = tmp.path().join("cmp");
    let o = common::run(&[
        "compare",
        ra.to_str().unwrap(),
        rb.to_str().unwrap(),
        "--out",
        cmp.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    assert!(common::stdout(&o).contains("ECE A"));
    let c = read_json(&cmp.join("compare.json"));
    let x = &c["calibration"][0];
    // Same answers, so the same correctness: the Brier scores differ by the confidences alone.
    assert!(x["brier_a"].as_f64().unwrap() != x["brier_b"].as_f64().unwrap());
    // A confidence outside [0, 1] is rejected with the reason.
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        r#"{"id": "cxr-closed-1", "response": "yes", "confidence": 1.5}"#,
    )
    .unwrap();
    let o = score(&manifest, &bad, &tmp.path().join("rbad"), &[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(common::stderr(&o).contains("confidence must be a number in [0, 1]"));
}

// -----------------------------------------------------------------------------------------
// Done-when checks on the real GEMeX subset (all four question files) and the six real
// Kvasir-VQA-x1 rows.

fn jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn placeholder_jpeg(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img =
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(64, 64, image::Luma([90])));
    img.save_with_format(path, image::ImageFormat::Jpeg)
        .unwrap();
}

/// One real GEMeX row with the ids the loader gives it.
struct GemexRow {
    id: String,
    kind: &'static str,
    answer: String,
    boxes: Vec<[i64; 4]>,
}

/// The real rows of all four files, and an image root with a placeholder JPEG at every
/// `image_path` (MIMIC-CXR-JPG is credentialed; GEMeX boxes are on a declared 224×224
/// frame, so the pixels do not matter for scoring).
fn gemex(d: &Path, root: &Path) -> Vec<GemexRow> {
    let mut rows = Vec::new();
    for f in [
        "open_ended",
        "closed_ended",
        "single_choice",
        "multi_choice",
    ] {
        for r in jsonl(&d.join(format!("gemex/{f}_question.jsonl"))) {
            placeholder_jpeg(&root.join(r["image_path"].as_str().unwrap()));
            let answer = match &r["answer"] {
                Value::String(s) => s.clone(),
                Value::Array(v) => v
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(", "),
                other => panic!("unexpected answer {other}"),
            };
            let boxes = r["visual_locations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let v: Vec<i64> = b
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_i64().unwrap())
                        .collect();
                    [v[0], v[1], v[2], v[3]]
                })
                .collect();
            rows.push(GemexRow {
                id: format!(
                    "{f}/{}/{}",
                    r["row_id"].as_str().unwrap(),
                    r["q_id"].as_i64().unwrap()
                ),
                kind: f,
                answer,
                boxes,
            });
        }
    }
    assert_eq!(rows.len(), 80);
    rows
}

fn location(boxes: &[[i64; 4]]) -> String {
    let inner: Vec<String> = boxes
        .iter()
        .map(|b| format!("[{}, {}, {}, {}]", b[0], b[1], b[2], b[3]))
        .collect();
    format!("<location> [{}]", inner.join(", "))
}

/// Writes predictions: for each row, the question's response and its grounding item's.
fn write_preds(path: &Path, lines: &[(String, String)]) {
    let s: Vec<String> = lines
        .iter()
        .map(|(id, r)| serde_json::json!({"id": id, "response": r}).to_string())
        .collect();
    std::fs::write(path, s.join("\n") + "\n").unwrap();
}

fn score_gemex(d: &Path, root: &Path, preds: &Path, out: &Path) -> (Value, Vec<Value>) {
    let o = common::run(&[
        "score",
        "--quiet",
        "--dataset",
        &format!("gemex:{}", d.join("gemex").display()),
        "--image-root",
        root.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--by",
        "type",
        // GEMeX boxes every answer's reason, and scores them all (as configs/gemex.toml).
        "--grounding",
        "boxed",
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", common::stderr(&o));
    (
        read_json(&out.join("report.json")),
        jsonl(&out.join("scored.jsonl")),
    )
}

#[test]
fn gemex_ground_truth_predictions_score_accuracy_one_and_miou_one() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let rows = gemex(&d, &tmp.path().join("mimic"));
    let mut lines = Vec::new();
    for r in &rows {
        lines.push((r.id.clone(), format!("{} {}", r.answer, location(&r.boxes))));
        lines.push((format!("{}#grounding", r.id), location(&r.boxes)));
    }
    let preds = tmp.path().join("truth.jsonl");
    write_preds(&preds, &lines);
    let (r, scored) = score_gemex(
        &d,
        &tmp.path().join("mimic"),
        &preds,
        &tmp.path().join("out"),
    );
    assert_eq!(r["counts"]["samples"], 160);
    assert_eq!(r["counts"]["scored"], 160);
    assert_eq!(r["header"]["box_frame"], "pixels:224x224");
    let o = &r["overall"];
    assert_eq!(o["accuracy"]["value"], 1.0);
    assert_eq!(o["accuracy"]["n"], 60);
    assert_eq!(o["miou"]["value"], 1.0);
    assert_eq!(o["miou"]["n"], 160);
    for m in [
        "acc@0.3",
        "acc@0.5",
        "acc@0.75",
        "recall@0.5",
        "jaccard",
        "exact_match",
        "token_f1",
        "rouge_l",
    ] {
        assert_eq!(o[m]["value"], 1.0, "{m}");
    }
    // Every kind and every question file reaches 1.
    for k in ["closed", "single_choice", "multi_choice"] {
        assert_eq!(r["by"]["kind"][k]["accuracy"]["value"], 1.0, "{k}");
    }
    for k in [
        "closed",
        "single_choice",
        "multi_choice",
        "open",
        "grounding",
    ] {
        assert_eq!(r["by"]["kind"][k]["miou"]["value"], 1.0, "{k}");
    }
    assert_eq!(r["unparsed"]["answer"], 0);
    assert_eq!(r["unparsed"]["boxes"], 0);
    assert!(scored.iter().all(|s| s["box_syntax"] == "location_tag"));
}

#[test]
fn gemex_shifted_boxes_score_the_iou_computed_by_hand() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let rows = gemex(&d, &tmp.path().join("mimic"));
    // Shift every box 2 px right and 2 px down. GEMeX boxes lie within 6..222 of the 224
    // frame, so nothing is clamped and each shifted box overlaps its original in a
    // (w-2)×(h-2) rectangle: IoU = (w-2)(h-2) / (2wh - (w-2)(h-2)).
    let (dx, dy) = (2i64, 2i64);
    let mut lines = Vec::new();
    let mut expected: std::collections::BTreeMap<String, f64> = Default::default();
    for r in &rows {
        let shifted: Vec<[i64; 4]> = r
            .boxes
            .iter()
            .map(|b| {
                assert!(b[2] + dx <= 224 && b[3] + dy <= 224);
                [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy]
            })
            .collect();
        let hand: f64 = r
            .boxes
            .iter()
            .map(|b| {
                let (w, h) = ((b[2] - b[0]) as f64, (b[3] - b[1]) as f64);
                let inter = (w - dx as f64) * (h - dy as f64);
                inter / (2.0 * w * h - inter)
            })
            .sum::<f64>()
            / r.boxes.len() as f64;
        lines.push((r.id.clone(), format!("{} {}", r.answer, location(&shifted))));
        lines.push((format!("{}#grounding", r.id), location(&shifted)));
        expected.insert(r.id.clone(), hand);
        expected.insert(format!("{}#grounding", r.id), hand);
    }
    let preds = tmp.path().join("shifted.jsonl");
    write_preds(&preds, &lines);
    let (r, scored) = score_gemex(
        &d,
        &tmp.path().join("mimic"),
        &preds,
        &tmp.path().join("out"),
    );
    assert_eq!(scored.len(), 160);
    for s in &scored {
        let id = s["id"].as_str().unwrap();
        let got = s["metrics"]["miou"].as_f64().unwrap();
        assert!(
            (got - expected[id]).abs() < 1e-9,
            "{id}: medvqa {got}, by hand {}",
            expected[id]
        );
    }
    let mean = expected.values().sum::<f64>() / expected.len() as f64;
    let reported = r["overall"]["miou"]["value"].as_f64().unwrap();
    assert!((reported - mean).abs() < 1e-6, "mIoU {reported} vs {mean}");
    assert!(mean < 1.0 && mean > 0.9);
    // The answers are still right.
    assert_eq!(r["overall"]["accuracy"]["value"], 1.0);
}

#[test]
fn gemex_garbage_predictions_score_zero_and_count_unparsed() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let rows = gemex(&d, &tmp.path().join("mimic"));
    const GARBAGE: [&str; 5] = [
        "",
        "???",
        "lorem ipsum dolor sit amet",
        "[1, 2, 3]",
        "<location> nothing",
    ];
    let mut lines = Vec::new();
    let (mut want_answer, mut want_boxes) = (0, 0);
    for (i, r) in rows.iter().enumerate() {
        for (k, id) in [r.id.clone(), format!("{}#grounding", r.id)]
            .into_iter()
            .enumerate()
        {
            let g = GARBAGE[(2 * i + k) % GARBAGE.len()];
            // No garbage has box markup except the empty <location> tag.
            if !g.starts_with("<location>") {
                want_boxes += 1;
            }
            // Questions (not grounding items) are unparsed unless open and non-empty.
            if k == 0 && (r.kind != "open_ended" || g.is_empty()) {
                want_answer += 1;
            }
            lines.push((id, g.to_string()));
        }
    }
    let preds = tmp.path().join("garbage.jsonl");
    write_preds(&preds, &lines);
    let (r, _) = score_gemex(
        &d,
        &tmp.path().join("mimic"),
        &preds,
        &tmp.path().join("out"),
    );
    let o = &r["overall"];
    for m in [
        "accuracy",
        "miou",
        "acc@0.3",
        "acc@0.5",
        "acc@0.75",
        "recall@0.5",
        "jaccard",
        "exact_match",
        "token_f1",
        "bleu",
        "rouge_l",
    ] {
        assert_eq!(o[m]["value"], 0.0, "{m}");
    }
    assert_eq!(r["unparsed"]["answer"], want_answer);
    assert_eq!(r["unparsed"]["boxes"], want_boxes);
    assert!(want_answer > 60 && want_boxes > 100 && want_boxes < 160);
    assert_eq!(r["extraction_rules"]["unparsed"], want_answer);
}

#[test]
fn kvasir_vqa_x1_responses_match_the_python_references() {
    let Some(d) = common::shared_data() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let rows = jsonl(&d.join("kvasir_vqa_x1/sample_eval_rows.jsonl"));
    let root = tmp.path().join("kvasir");
    for r in &rows {
        placeholder_jpeg(&root.join(format!("images/{}.jpg", r["img_id"].as_str().unwrap())));
    }
    let spec = format!(
        "kvasir-vqa-x1:{}",
        d.join("kvasir_vqa_x1/sample_eval_rows.jsonl").display()
    );
    // The ids the loader gives, matched back to the rows by image and question.
    let ds = medvqa::data::load(
        &spec,
        &medvqa::data::LoadOptions {
            image_root: Some(root.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(ds.failures.is_empty(), "{:?}", ds.failures);
    let mut lines = Vec::new();
    for r in &rows {
        let s = ds
            .samples
            .iter()
            .find(|s| {
                s.question == r["question"].as_str().unwrap()
                    && s.images[0].key == format!("images/{}.jpg", r["img_id"].as_str().unwrap())
            })
            .unwrap();
        lines.push((s.id.clone(), r["response"].as_str().unwrap().to_string()));
    }
    let preds = tmp.path().join("kvasir.jsonl");
    write_preds(&preds, &lines);
    let out = tmp.path().join("out");
    let o = common::run(&[
        "score",
        "--quiet",
        "--dataset",
        &spec,
        "--image-root",
        root.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--by",
        "complexity",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    let r = read_json(&out.join("report.json"));
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text_metrics/expected.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let k = &want["kvasir_vqa_x1"];
    let close = |m: &str, key: &str| {
        let got = r["overall"][m]["value"].as_f64().unwrap();
        let py = k[key].as_f64().unwrap();
        assert!((got - py).abs() < 1e-6, "{m}: medvqa {got} vs Python {py}");
        assert_eq!(r["overall"][m]["n"], 6);
    };
    close("exact_match", "mean_exact_match");
    close("bleu", "corpus_bleu");
    close("rouge_l", "mean_rouge_l");
    close("token_f1", "mean_token_f1");
    // Per sample, at full precision, in the order of the rows.
    let scored = jsonl(&out.join("scored.jsonl"));
    for ((id, _), py) in lines.iter().zip(k["pairs"].as_array().unwrap()) {
        let s = scored.iter().find(|s| s["id"] == id.as_str()).unwrap();
        for (m, key) in [
            ("exact_match", "exact_match"),
            ("bleu", "sentence_bleu"),
            ("rouge_l", "rouge_l"),
            ("token_f1", "token_f1"),
        ] {
            let got = s["metrics"][m].as_f64().unwrap();
            let p = py[key].as_f64().unwrap();
            assert!(
                (got - p).abs() < 1e-9,
                "{id} {m}: medvqa {got} vs Python {p}"
            );
        }
    }
    assert!(r["by"]["complexity"]["3"].is_object());
}

#[test]
fn medframeqa_real_items_extract_by_marker_and_by_quoted_option_never_by_similarity() {
    use medvqa::sample::{Task, letter_index};
    use medvqa::score::extract::{Rule, extract};
    let Some(d) = common::shared_data() else {
        return;
    };
    let items: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(d.join("medframeqa/questions.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(items.len(), 4);
    for it in &items {
        let options: Vec<String> = it["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap().into())
            .collect();
        let letter = it["correct_answer"].as_str().unwrap();
        let task = Task::SingleChoice {
            answer: letter_index(letter.chars().next().unwrap()).unwrap(),
            options: options.clone(),
        };
        let reasoning = it["reasoning_chain"].as_str().unwrap();
        let got = |r: &str| {
            let e = extract(&task, r);
            (e.answer.map(|a| a.display()), e.rule)
        };
        // MedFrameQA's convention: reasoning, then "Answer: $LETTER".
        assert_eq!(
            got(&format!("{reasoning}\nAnswer: {letter}")),
            (Some(letter.into()), Rule::AnswerMarker)
        );
        // The reasoning alone names no option: unparsed, not the most similar option. The
        // options begin with the article "A", which is not read as option A.
        assert_eq!(
            got(reasoning),
            (None, Rule::Unparsed),
            "{}",
            it["question_id"]
        );
        // The correct option's text quoted back.
        let quoted = &options[letter_index(letter.chars().next().unwrap()).unwrap()];
        assert_eq!(
            got(&format!("I think: {quoted}")),
            (Some(letter.into()), Rule::OptionText)
        );
    }
}

/// `medvqa score` of `preds` on phantom:cxr at `seed`, into `out`.
fn score_phantom(seed: u64, preds: &Path, out: &Path) -> std::process::Output {
    let seed = seed.to_string();
    common::run(&[
        "score",
        "--quiet",
        "--dataset",
        "phantom:cxr",
        "--dataset-seed",
        &seed,
        "--dataset-n",
        "40",
        "--predictions",
        preds.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn compare_refuses_runs_on_different_datasets_under_the_same_ids() {
    // Regression: runs on phantom seeds 7 and 1 share ids (`cxr/0000/count`, …) with other
    // questions and answers; compare paired them and printed McNemar rows.
    let tmp = tempfile::tempdir().unwrap();
    let o = common::run(&[
        "phantom",
        "--set",
        "cxr",
        "--seed",
        "7",
        "--n",
        "40",
        "--out",
        tmp.path().join("p7").to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let lines: Vec<String> = jsonl(&tmp.path().join("p7/manifest.jsonl"))
        .iter()
        .map(|s| serde_json::json!({"id": s["id"], "response": "yes"}).to_string())
        .collect();
    let preds = tmp.path().join("preds.jsonl");
    std::fs::write(&preds, lines.join("\n")).unwrap();
    let (r7, r7b, r1) = (
        tmp.path().join("r7"),
        tmp.path().join("r7b"),
        tmp.path().join("r1"),
    );
    for (seed, out) in [(7, &r7), (7, &r7b), (1, &r1)] {
        let o = score_phantom(seed, &preds, out);
        assert!(out.join("dataset.json").is_file(), "{}", common::stderr(&o));
    }
    let fp = read_json(&r7.join("dataset.json"));
    assert_eq!(fp["spec"], "phantom:cxr");
    assert_eq!(fp["seed"], 7);

    // Same dataset: compared.
    let o = common::run(&["compare", r7.to_str().unwrap(), r7b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    // Different datasets under the same ids: refused, naming an id and both seeds.
    let o = common::run(&["compare", r7.to_str().unwrap(), r1.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    let err = common::stderr(&o);
    assert!(err.contains("disagree on sample cxr/"), "{err}");
    assert!(err.contains("seed 7") && err.contains("seed 1"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert!(common::stdout(&o).is_empty());
    // --force compares anyway, with a warning.
    let o = common::run(&[
        "compare",
        r7.to_str().unwrap(),
        r1.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    assert!(
        common::stderr(&o).contains("warning"),
        "{}",
        common::stderr(&o)
    );
}

#[test]
fn score_and_eval_default_to_boxes_on_grounding_questions_and_say_so() {
    // Regression: `score` defaulted to `boxed` (13 answers scored on boxes, yes/no ones
    // counted as having no box) where `eval` scored grounding questions only (3).
    let tmp = tempfile::tempdir().unwrap();
    let manifest = scoring_fixture::write_dataset(&tmp.path().join("data"));
    let preds = tmp.path().join("preds.jsonl");
    scoring_fixture::write_predictions(&preds, false);
    let out = tmp.path().join("run");
    let spec = format!("jsonl:{}", manifest.display());
    let o = common::run(&[
        "score",
        "--dataset",
        &spec,
        "--predictions",
        preds.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--box-frame",
        "grid:1000",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
    let r = read_json(&out.join("report.json"));
    assert_eq!(
        r["header"]["grounding_scope"], "grounding_kind",
        "{}",
        r["header"]
    );
    let scored = jsonl(&out.join("scored.jsonl"));
    let boxed_non_grounding = scored
        .iter()
        .filter(|s| s["kind"] != "grounding" && s["metrics"].get("miou").is_some())
        .count();
    assert_eq!(boxed_non_grounding, 0);
    let text = common::stdout(&o);
    assert!(
        text.contains("boxes scored on grounding questions only (grounding-kind)"),
        "{text}"
    );
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    // `medvqa score … | head -1`: the reader goes away before the summary is written. The
    // command still writes its run folder and exits 0, without a panic.
    let tmp = tempfile::tempdir().unwrap();
    let manifest = scoring_fixture::write_dataset(&tmp.path().join("data"));
    let preds = tmp.path().join("preds.jsonl");
    scoring_fixture::write_predictions(&preds, false);
    let spec = format!("jsonl:{}", manifest.display());
    for (i, args) in [
        vec![
            "score",
            "--dataset",
            &spec,
            "--predictions",
            preds.to_str().unwrap(),
        ],
        vec!["perturbations"],
        vec!["inspect", "--dataset", &spec],
    ]
    .into_iter()
    .enumerate()
    {
        let out = tmp.path().join(format!("run{i}"));
        let mut cmd = common::medvqa();
        cmd.args(&args);
        if args[0] == "score" {
            cmd.args(["--out", out.to_str().unwrap()]);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end at once, as `head` does after its first line.
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = common::stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        if args[0] == "score" {
            assert!(out.join("report.json").is_file());
        }
    }
}

#[test]
fn a_filtered_score_sets_aside_the_other_samples_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = scoring_fixture::write_dataset(&tmp.path().join("data"));
    let preds = tmp.path().join("p.jsonl");
    scoring_fixture::write_predictions(&preds, false);
    let out = tmp.path().join("out");
    let o = score(&manifest, &preds, &out, &["--filter", "kind=closed"]);
    // Nothing is rejected: the other samples' predictions are outside the selection.
    assert_eq!(o.status.code(), Some(0), "stderr: {}", common::stderr(&o));
    let err = common::stderr(&o);
    assert!(err.contains("outside the selection; not scored"), "{err}");
    let r = read_json(&out.join("report.json"));
    assert_eq!(r["rejected"]["count"], 0);
    let kinds: std::collections::BTreeSet<String> = jsonl(&out.join("scored.jsonl"))
        .iter()
        .map(|v| v["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["closed".to_string()].into());
    assert!(
        r["header"]["notes"]
            .to_string()
            .contains("filter kind=closed")
    );
}
