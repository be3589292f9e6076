#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `medvqa perturb` → another tool → `medvqa score`: a perturbed manifest is scored as
//! conditions of its source samples, against the boxes as the perturbed images show them.

mod common;

use std::io::Write;

use common::{run, stderr};

#[test]
fn scoring_a_perturbed_manifest_gives_robustness_rows_and_moved_boxes() {
    let tmp = tempfile::tempdir().unwrap();
    let pert = tmp.path().join("pert");
    let o = run(&[
        "perturb",
        "--quiet",
        "--dataset",
        "phantom:cxr",
        "--dataset-n",
        "5",
        "--dataset-seed",
        "7",
        "--perturbation",
        "rotate",
        "--severity",
        "0,5",
        "--out",
        pert.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // An "external model" that answers every grounding question with the true boxes of the
    // copy it was shown, and, for the rotated copies, a second run that answers with the
    // clean boxes (what a toolkit that forgets to move boxes would count as right).
    let manifest = std::fs::read_to_string(pert.join("manifest.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = manifest
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let clean_boxes = |source: &str| {
        rows.iter()
            .find(|r| r["meta"]["source_id"] == source && r["meta"]["perturbation"] == "clean")
            .unwrap()["boxes"]
            .clone()
    };
    let mut honest = std::fs::File::create(tmp.path().join("honest.jsonl")).unwrap();
    let mut stale = std::fs::File::create(tmp.path().join("stale.jsonl")).unwrap();
    let mut grounding = 0;
    for r in &rows {
        if r["kind"] != "grounding" {
            continue;
        }
        grounding += 1;
        let boxes: Vec<serde_json::Value> = r["boxes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["box"].clone())
            .collect();
        let old: Vec<serde_json::Value> = clean_boxes(r["meta"]["source_id"].as_str().unwrap())
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["box"].clone())
            .collect();
        let line = |b: &Vec<serde_json::Value>| serde_json::json!({"id": r["id"], "response": serde_json::to_string(b).unwrap()});
        writeln!(honest, "{}", line(&boxes)).unwrap();
        writeln!(stale, "{}", line(&old)).unwrap();
    }
    assert_eq!(grounding, 2, "one grounding question, clean and rotated");

    let score = |preds: &str, out: &str| -> serde_json::Value {
        let o = run(&[
            "score",
            "--quiet",
            "--dataset",
            &format!("jsonl:{}", pert.join("manifest.jsonl").display()),
            "--predictions",
            tmp.path().join(preds).to_str().unwrap(),
            "--box-frame",
            "normalized",
            "--grounding",
            "grounding-kind",
            "--out",
            tmp.path().join(out).to_str().unwrap(),
        ]);
        assert!(o.status.code() == Some(0), "{}", stderr(&o));
        serde_json::from_slice(&std::fs::read(tmp.path().join(out).join("report.json")).unwrap())
            .unwrap()
    };
    let honest = score("honest.jsonl", "r1");
    assert_eq!(
        honest["counts"]["samples"], 5,
        "folded onto the 5 source questions"
    );
    assert_eq!(honest["overall"]["miou"]["value"], 1.0);
    let row = honest["robustness"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["perturbation"] == "rotate" && r["severity"] == 5)
        .expect("a robustness row for rotate@5");
    assert_eq!(row["metrics"]["miou"]["value"], 1.0, "{row}");

    let stale = score("stale.jsonl", "r2");
    let row = stale["robustness"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["perturbation"] == "rotate" && r["severity"] == 5)
        .unwrap();
    assert!(
        row["metrics"]["miou"]["value"].as_f64().unwrap() < 0.9,
        "clean boxes on a rotated image must not score as right: {row}"
    );
}
