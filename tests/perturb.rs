//! `medvqa perturb` and `medvqa perturbations` end to end: byte-identical output across
//! thread counts, runs and input order; seeds and severities that change it; mapped boxes;
//! failures counted with exit code 3; contact sheets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{medvqa, stderr, stdout};
use image::{GrayImage, Luma, Rgb, RgbImage};

/// A small dataset in a temp dir: two RGB images shared by three questions, a gray image,
/// and a three-frame question. Returns the manifest path.
fn dataset(dir: &Path, reversed: bool) -> PathBuf {
    std::fs::create_dir_all(dir.join("img")).unwrap();
    let rgb = |seed: u32| {
        RgbImage::from_fn(80, 64, |x, y| {
            let v = (x * 3 + y * 2 + seed * 40) % 256;
            Rgb([v as u8, ((x * y + seed) % 200) as u8 + 30, (255 - v) as u8])
        })
    };
    rgb(0).save(dir.join("img/a.png")).unwrap();
    rgb(1).save(dir.join("img/b.png")).unwrap();
    GrayImage::from_fn(64, 64, |x, y| Luma([((x * 4) ^ (y * 3)) as u8]))
        .save(dir.join("img/c.png"))
        .unwrap();
    let mut lines = vec![
        r#"{"id": "q1", "images": ["img/a.png"], "question": "Where is the polyp?", "kind": "grounding", "options": [], "answer": null, "boxes": [{"image": 0, "box": [0.1, 0.2, 0.4, 0.6], "label": "polyp"}], "meta": {"modality": "endoscopy"}}"#,
        r#"{"id": "q2", "images": ["img/a.png"], "question": "Is there a polyp?", "kind": "closed", "options": [], "answer": "yes", "boxes": [], "meta": {"modality": "endoscopy"}}"#,
        r#"{"id": "q3", "images": ["img/b.png"], "question": "Colour?", "kind": "open", "options": [], "answer": "red", "boxes": [], "meta": {"modality": "endoscopy"}}"#,
        r#"{"id": "q4", "images": ["img/c.png"], "question": "Nodule?", "kind": "closed", "options": [], "answer": "no", "boxes": [{"image": 0, "box": [0.5, 0.5, 0.7, 0.9]}], "meta": {"modality": "cxr"}}"#,
        r#"{"id": "v1", "images": ["img/a.png", "img/b.png", "img/c.png"], "question": "Which frame first shows it?", "kind": "single_choice", "options": ["first", "second", "third"], "answer": "B", "boxes": [{"image": 1, "box": [0.2, 0.2, 0.3, 0.3]}], "meta": {"modality": "video"}}"#,
    ];
    if reversed {
        lines.reverse();
    }
    let header = r#"{"medvqa_manifest": 1, "box_frame": "normalized", "name": "tiny"}"#;
    let text = std::iter::once(header)
        .chain(lines)
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join("manifest.jsonl");
    std::fs::write(&path, text + "\n").unwrap();
    path
}

/// Every file under `dir`, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// An exported manifest's samples by id (the header line skipped).
fn manifest_by_id(dir: &Path) -> BTreeMap<String, serde_json::Value> {
    std::fs::read_to_string(dir.join("manifest.jsonl"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

const NAMES: &str = "gaussian-noise,rotate,flip-h,endo-bubbles,jpeg,frame-shuffle,kvasir-weak";

fn perturb(
    manifest: &Path,
    out: &Path,
    seed: &str,
    sev: &str,
    threads: &str,
) -> std::process::Output {
    perturb_with(NAMES, manifest, out, seed, sev, threads)
}

fn perturb_with(
    names: &str,
    manifest: &Path,
    out: &Path,
    seed: &str,
    sev: &str,
    threads: &str,
) -> std::process::Output {
    medvqa()
        .env("RAYON_NUM_THREADS", threads)
        .args([
            "perturb",
            "--quiet",
            "--dataset",
            &format!("jsonl:{}", manifest.display()),
            "--perturbation",
            names,
            "--severity",
            sev,
            "--seed",
            seed,
            "--out",
        ])
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn output_is_byte_identical_across_threads_runs_and_input_order() {
    let tmp = tempfile::tempdir().unwrap();
    let fwd = dataset(&tmp.path().join("fwd"), false);
    let rev = dataset(&tmp.path().join("rev"), true);
    let runs = [
        (&fwd, "1", "one"),
        (&fwd, "2", "two"),
        (&fwd, "2", "again"),
        (&rev, "2", "reversed"),
    ];
    let mut outputs = Vec::new();
    for (manifest, threads, name) in runs {
        let out = tmp.path().join(name);
        let o = perturb(manifest, &out, "7", "0,1,3", threads);
        assert!(o.status.success(), "{}", stderr(&o));
        outputs.push(files(&out));
    }
    assert!(outputs[0].len() > 40, "{} files", outputs[0].len());
    for (i, o) in outputs.iter().enumerate().skip(1) {
        assert_eq!(
            o.keys().collect::<Vec<_>>(),
            outputs[0].keys().collect::<Vec<_>>(),
            "run {i}: different files"
        );
        for (k, v) in o {
            assert!(v == &outputs[0][k], "run {i}: {k} differs");
        }
    }
}

#[test]
fn seeds_and_severities_change_the_bytes_but_severity_zero_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let m = dataset(&tmp.path().join("d"), false);
    // Without the one-level perturbations, which have no severity 2 or 3.
    let names = "gaussian-noise,rotate,endo-bubbles,jpeg,frame-shuffle";
    let run = |name: &str, seed: &str, sev: &str| {
        let out = tmp.path().join(name);
        let o = perturb_with(names, &m, &out, seed, sev, "2");
        assert!(o.status.success(), "{}", stderr(&o));
        files(&out)
    };
    let a = run("a", "1", "0,2");
    let b = run("b", "2", "0,2");
    let clean = |f: &BTreeMap<String, Vec<u8>>| {
        f.iter()
            .filter(|(k, _)| k.starts_with("clean/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    assert!(!clean(&a).is_empty());
    assert_eq!(
        clean(&a),
        clean(&b),
        "severity 0 does not depend on the seed"
    );
    let noise = "gaussian-noise/s2/img/a.png";
    assert!(
        a[noise] != b[noise],
        "the seed changes seeded perturbations"
    );
    assert!(
        a["manifest.jsonl"] != b["manifest.jsonl"],
        "frame orders and kvasir draws move"
    );
    // The clean copy is the source image, pixel for pixel.
    let src = image::open(tmp.path().join("d/img/a.png"))
        .unwrap()
        .to_rgb8();
    let copy = image::load_from_memory(&a["clean/s0/img/a.png"])
        .unwrap()
        .to_rgb8();
    assert_eq!(src, copy);
    let c = run("c", "1", "3");
    assert!(c["gaussian-noise/s3/img/a.png"] != a[noise]);
}

#[test]
fn the_manifest_maps_boxes_and_keeps_shared_images_single() {
    let tmp = tempfile::tempdir().unwrap();
    let m = dataset(&tmp.path().join("d"), false);
    let out = tmp.path().join("o");
    let o = perturb(&m, &out, "0", "all", "2");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("0 failed"), "{}", stdout(&o));
    let text = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(header["name"], "tiny");
    assert_eq!(header["box_frame"], "normalized");
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "rows are sorted by id");
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap();
    // flip-h mirrors the box exactly.
    let flipped = row("q1@flip-h/s1");
    assert_eq!(
        flipped["boxes"][0]["box"],
        serde_json::json!([0.6, 0.2, 0.9, 0.6])
    );
    assert_eq!(flipped["meta"]["source_id"], "q1");
    assert_eq!(flipped["meta"]["perturbation"], "flip-h");
    assert_eq!(flipped["meta"]["severity"], 1);
    // Both questions on img/a.png point at the same perturbed file, written once.
    assert_eq!(row("q1@rotate/s4")["images"], row("q2@rotate/s4")["images"]);
    // kvasir-weak writes ten labelled draws.
    assert!(ids.contains(&"q3@kvasir-transform.v10/s1"));
    // Frame shuffles reorder the frames and move the box with its frame; single-image
    // questions get no frame perturbation.
    let shuffled = row("v1@frame-shuffle/s5");
    let frames: Vec<&str> = shuffled["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let at = frames
        .iter()
        .position(|f| f.ends_with("img/b.png"))
        .unwrap();
    assert_eq!(shuffled["boxes"][0]["image"], at);
    assert!(!ids.iter().any(|i| i.starts_with("q1@frame-")));
    // The output is itself a dataset medvqa can read.
    let inspect = medvqa()
        .args(["inspect", "--quiet", "--dataset"])
        .arg(format!("jsonl:{}", out.join("manifest.jsonl").display()))
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", stderr(&inspect));
}

#[test]
fn a_corrupt_image_fails_its_samples_with_exit_code_3() {
    let tmp = tempfile::tempdir().unwrap();
    let m = dataset(&tmp.path().join("d"), false);
    std::fs::write(tmp.path().join("d/img/b.png"), b"\x89PNG\r\n\x1a\nbroken").unwrap();
    let out = tmp.path().join("o");
    let o = perturb(&m, &out, "0", "1", "2");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let failures = std::fs::read_to_string(out.join("failures.jsonl")).unwrap();
    let ids: Vec<String> = failures
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string())
        .collect();
    assert_eq!(ids, ["\"q3\"", "\"v1\""], "{failures}");
    let text = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    assert!(text.contains("q1@gaussian-noise/s1"));
    assert!(!text.contains("q3@"));
}

#[test]
fn unknown_names_and_missing_severities_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let m = dataset(&tmp.path().join("d"), false);
    let base = |names: &str, sev: &str| {
        medvqa()
            .args(["perturb", "--quiet", "--dataset"])
            .arg(format!("jsonl:{}", m.display()))
            .args(["--perturbation", names, "--severity", sev, "--out"])
            .arg(tmp.path().join("x"))
            .output()
            .unwrap()
    };
    let o = base("gaussian-nosie", "1");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown perturbation"),
        "{}",
        stderr(&o)
    );
    let o = base("flip-h", "3");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("flip-h has severities 0..=1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_contact_sheet_is_drawn_without_an_output_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let m = dataset(&tmp.path().join("d"), false);
    let sheet = tmp.path().join("sheets/s.png");
    let o = medvqa()
        .args(["perturb", "--quiet", "--dataset"])
        .arg(format!("jsonl:{}", m.display()))
        .args(["--perturbation", "rotate,endoscopy-default", "--sheet"])
        .arg(&sheet)
        .args(["--sheet-sample", "q1", "--sheet-thumb", "48"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(&sheet).unwrap();
    assert!(img.width() > 6 * 48 && img.height() > 10 * 48);
}

#[test]
fn perturbations_lists_every_name_with_its_table() {
    let o = medvqa().args(["perturbations", "--json"]).output().unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = v["perturbations"].as_array().unwrap();
    assert!(list.len() >= 30);
    for p in list {
        let levels = p["levels"].as_u64().unwrap();
        assert_eq!(p["severities"].as_object().unwrap().len() as u64, levels);
        assert!(!p["modalities"].as_array().unwrap().is_empty());
    }
    assert!(
        v["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "kvasir-weak")
    );
    let text = medvqa().arg("perturbations").output().unwrap();
    assert!(stdout(&text).contains("cxr-grid"));
}

#[test]
fn controls_and_option_rotation_export_deterministically_with_remapped_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let fwd = dataset(&tmp.path().join("fwd"), false);
    let rev = dataset(&tmp.path().join("rev"), true);
    let names = "controls,option-order";
    let mut outs = Vec::new();
    for (m, name, threads) in [(&fwd, "a", "1"), (&rev, "b", "2")] {
        let out = tmp.path().join(name);
        let o = perturb_with(names, m, &out, "7", "0", threads);
        // Two samples have no one to swap with: exit code 3, the rest written.
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        outs.push((out.clone(), files(&out)));
    }
    assert_eq!(
        outs[0].1, outs[1].1,
        "input order or threads changed the export"
    );
    let dir = &outs[0].0;
    let lines = manifest_by_id(dir);
    // Option rotation: three options give rotations 1 and 2, the reference follows.
    let rot1 = &lines["v1@option-rotate/s1"];
    assert_eq!(
        rot1["options"],
        serde_json::json!(["second", "third", "first"])
    );
    assert_eq!(rot1["answer"], "A");
    let rot2 = &lines["v1@option-rotate/s2"];
    assert_eq!(
        rot2["options"],
        serde_json::json!(["third", "first", "second"])
    );
    assert_eq!(rot2["answer"], "C");
    assert!(!lines.contains_key("v1@option-rotate/s3"));
    assert!(
        !lines.keys().any(|k| k.starts_with("q2@option-rotate")),
        "closed questions have no options"
    );
    // The rotated copy shows the clean images.
    let img = rot1["images"][1].as_str().unwrap();
    assert!(img.starts_with("option-rotate/s1/"), "{img}");
    assert_eq!(
        std::fs::read(dir.join(img))
            .map(|b| image::load_from_memory(&b).unwrap().to_rgb8())
            .unwrap(),
        image::open(tmp.path().join("fwd/img/b.png"))
            .unwrap()
            .to_rgb8()
    );
    // No image: the question alone, no boxes.
    let none = &lines["q1@no-image/s1"];
    assert_eq!(none["images"], serde_json::json!([]));
    assert_eq!(none["boxes"], serde_json::json!([]));
    // Swapped: q1 and q2 share img/a, so both get img/b (q3's); q3 gets img/a.
    let swapped = |id: &str| {
        let p = lines[&format!("{id}@swapped-image/s1")]["images"][0]
            .as_str()
            .unwrap()
            .to_string();
        image::open(dir.join(p)).unwrap().to_rgb8()
    };
    let a = image::open(tmp.path().join("fwd/img/a.png"))
        .unwrap()
        .to_rgb8();
    let b = image::open(tmp.path().join("fwd/img/b.png"))
        .unwrap()
        .to_rgb8();
    assert!(swapped("q1") == b && swapped("q2") == b && swapped("q3") == a);
    // The only chest X-ray and the only video have no donor: failures that say so.
    let failures = std::fs::read_to_string(dir.join("failures.jsonl")).unwrap();
    for id in ["q4@swapped-image/s1", "v1@swapped-image/s1"] {
        assert!(
            failures
                .lines()
                .any(|l| l.contains(id) && l.contains("no image of another sample")),
            "{failures}"
        );
    }
    // Blank: same size, mid-grey.
    let blank = image::open(dir.join(lines["q3@blank-image/s1"]["images"][0].as_str().unwrap()))
        .unwrap()
        .to_rgb8();
    assert_eq!(blank.dimensions(), b.dimensions());
    assert!(blank.pixels().all(|p| p.0 == [128; 3]));
}

#[test]
fn frame_copies_carry_the_remapped_answer_or_the_order_dependent_mark() {
    let tmp = tempfile::tempdir().unwrap();
    let m = dataset(&tmp.path().join("d"), false);
    // v1 says nothing about how its answer follows the frames; v2 says which frames show
    // the subject, and asks about frame 1.
    let text = std::fs::read_to_string(&m).unwrap();
    let v2 = r#"{"id": "v2", "images": ["img/a.png", "img/b.png", "img/c.png"], "question": "Is the polyp visible in frame 2?", "kind": "closed", "options": [], "answer": "yes", "boxes": [], "meta": {"modality": "video", "frame_answer": "at2:010"}}"#;
    std::fs::write(&m, format!("{text}{v2}\n")).unwrap();
    let out = tmp.path().join("out");
    let o = perturb_with("frame-shuffle", &m, &out, "7", "1", "1");
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = manifest_by_id(&out);
    let v1 = &lines["v1@frame-shuffle/s1"];
    assert_eq!(v1["meta"]["order_dependent"], "true", "{v1}");
    let v2 = &lines["v2@frame-shuffle/s1"];
    assert!(v2["meta"]["order_dependent"].is_null(), "{v2}");
    // Frame 2 as seen is the second image listed; the answer is whether that source frame
    // shows the polyp (only b does).
    let second = v2["images"][1].as_str().unwrap();
    let expect = if second.ends_with("img/b.png") {
        "yes"
    } else {
        "no"
    };
    assert_eq!(v2["answer"], expect, "{v2}");
}
