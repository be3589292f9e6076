//! A small manifest dataset with real PNG images and a sweep of predictions, for the
//! `medvqa score` CLI tests and the HTML check. Everything is generated in a temp folder.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use serde_json::json;

/// A 96×72 image: a dark gradient with a bright rectangle at `bx` (normalised).
fn picture(bx: [f64; 4], tint: u8) -> RgbImage {
    let (w, h) = (96u32, 72u32);
    RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f64 / w as f64, y as f64 / h as f64);
        if fx >= bx[0] && fx < bx[2] && fy >= bx[1] && fy < bx[3] {
            Rgb([230, 200u8.saturating_sub(tint), 120])
        } else {
            let g = (30.0 + 60.0 * fx + 40.0 * fy) as u8;
            Rgb([g, g.saturating_add(tint / 4), g])
        }
    })
}

pub const BOX_A: [f64; 4] = [0.25, 0.25, 0.5, 0.75];
pub const BOX_B: [f64; 4] = [0.6, 0.1, 0.9, 0.4];

/// Writes images and `manifest.jsonl` under `dir`; returns the manifest path.
pub fn write_dataset(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    for (i, (b, tint)) in [(BOX_A, 0u8), (BOX_B, 40), (BOX_A, 80), (BOX_B, 120)]
        .into_iter()
        .enumerate()
    {
        picture(b, tint)
            .save(dir.join(format!("img/{i}.png")))
            .unwrap();
    }
    let opts = [
        "Left lung",
        "Right lung",
        "Cardiac region",
        "Bilateral lung",
    ];
    let rows = vec![
        json!({"id": "cxr-closed-1", "images": ["img/0.png"], "question": "Is there a nodule?", "kind": "closed", "answer": "yes", "boxes": [{"image": 0, "box": BOX_A}], "meta": {"modality": "cxr", "type": "abnormality"}}),
        json!({"id": "cxr-closed-2", "images": ["img/1.png"], "question": "Is the heart enlarged?", "kind": "closed", "answer": "no", "boxes": [], "meta": {"modality": "cxr", "type": "disease"}}),
        json!({"id": "cxr-single-1", "images": ["img/0.png"], "question": "Where is the nodule?", "kind": "single_choice", "options": opts, "answer": "A", "boxes": [{"image": 0, "box": BOX_A}], "meta": {"modality": "cxr", "type": "location"}}),
        json!({"id": "cxr-multi-1", "images": ["img/1.png"], "question": "Which regions are affected?", "kind": "multi_choice", "options": opts, "answer": ["B", "C"], "boxes": [], "meta": {"modality": "cxr", "type": "location"}}),
        json!({"id": "endo-open-1", "images": ["img/2.png"], "question": "What is seen?", "kind": "open", "answer": "A sessile polyp in the sigmoid colon", "boxes": [], "meta": {"modality": "endoscopy", "type": "finding"}}),
        json!({"id": "endo-open-2", "images": ["img/3.png"], "question": "What procedure is this?", "kind": "open", "answer": "colonoscopy", "boxes": [], "meta": {"modality": "endoscopy", "type": "procedure"}}),
        json!({"id": "endo-ground-1", "images": ["img/2.png"], "question": "Locate the polyp.", "kind": "grounding", "answer": null, "boxes": [{"image": 0, "box": BOX_A}], "meta": {"modality": "endoscopy", "type": "location"}}),
        json!({"id": "frames-single-1", "images": ["img/1.png", "img/3.png"], "question": "In which frame does the polyp appear?", "kind": "single_choice", "options": ["first", "second", "both", "neither"], "answer": "B", "boxes": [{"image": 1, "box": BOX_B}], "meta": {"modality": "endoscopy", "type": "temporal"}}),
    ];
    let mut s = String::from(
        "{\"medvqa_manifest\": 1, \"box_frame\": \"normalized\", \"name\": \"scoring-fixture\"}\n",
    );
    for r in rows {
        writeln!(s, "{r}").unwrap();
    }
    let path = dir.join("manifest.jsonl");
    std::fs::write(&path, s).unwrap();
    path
}

fn px(b: [f64; 4], dx: f64) -> String {
    // Predicted boxes in a 0-1000 grid (the score command is told --box-frame grid:1000).
    format!(
        "[{}, {}, {}, {}]",
        ((b[0] + dx) * 1000.0).round(),
        (b[1] * 1000.0).round(),
        ((b[2] + dx) * 1000.0).round(),
        (b[3] * 1000.0).round()
    )
}

/// Clean predictions and a sweep of two perturbations at severities 1, 3, 5 that degrade
/// the answers step by step. Lines in file order; `reverse` writes them backwards.
pub fn prediction_lines() -> Vec<String> {
    let mut lines = Vec::new();
    let mut push = |id: &str, resp: String, pert: Option<(&str, u8)>| {
        let mut v = json!({"id": id, "response": resp});
        if let Some((p, s)) = pert {
            v["perturbation"] = json!(p);
            v["severity"] = json!(s);
        }
        lines.push(v.to_string());
    };
    let conds: Vec<Option<(&str, u8)>> = std::iter::once(None)
        .chain(
            ["gaussian_blur", "jpeg"]
                .into_iter()
                .flat_map(|p| [1u8, 3, 5].map(|s| Some((p, s)))),
        )
        .collect();
    for c in conds {
        let sev = c.map_or(0, |x| x.1) as f64;
        let hard = c.is_some_and(|x| x.0 == "gaussian_blur");
        let dx = sev * if hard { 0.05 } else { 0.02 };
        push(
            "cxr-closed-1",
            format!("Yes. <location> [{}]", px(BOX_A, dx)),
            c,
        );
        push(
            "cxr-closed-2",
            if hard && sev >= 3.0 {
                "Yes, it looks enlarged.".into()
            } else {
                "No.".into()
            },
            c,
        );
        push(
            "cxr-single-1",
            match (hard, sev as u8) {
                (_, 0) | (false, 1) => format!("Answer: A <location> [{}]", px(BOX_A, dx)),
                (true, 5) => "I cannot tell from this image.".into(),
                _ => format!("Answer: C <location> [{}]", px(BOX_A, dx)),
            },
            c,
        );
        push(
            "cxr-multi-1",
            if sev >= 3.0 {
                "B".into()
            } else {
                "B and C".into()
            },
            c,
        );
        push(
            "endo-open-1",
            if sev == 0.0 {
                "A sessile polyp in the sigmoid colon.".into()
            } else {
                format!("A polyp, blurred (level {sev}).")
            },
            c,
        );
        push("endo-open-2", "This is a colonoscopy.".into(), c);
        push(
            "endo-ground-1",
            format!("<location> [[{}]]", px(BOX_A, dx).trim_matches(['[', ']'])),
            c,
        );
        push(
            "frames-single-1",
            if hard && sev >= 5.0 {
                "(C)".into()
            } else {
                // The box is on the second image, named JSON-style.
                format!(
                    "The polyp appears in the second frame: {{\"image\": 1, \"box\": {}}}",
                    px(BOX_B, dx)
                )
            },
            c,
        );
    }
    lines
}

pub fn write_predictions(path: &Path, reverse: bool) {
    let mut lines = prediction_lines();
    if reverse {
        lines.reverse();
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}
