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
    let mut args = vec![
        "score",
        "--quiet",
        "--dataset",
        &*Box::leak(format!("jsonl:{}", manifest.display()).into_boxed_str()),
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
    let blur5 = rows
        .iter()
        .find(|x| x["perturbation"] == "gaussian_blur" && x["severity"] == 5)
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
    let text = common::stdout(&o);
    assert!(
        text.contains("mcnemar_exact") && text.contains("paired_bootstrap"),
        "{text}"
    );
    let c = read_json(&cmp.join("compare.json"));
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
