#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The JSONL manifest end to end: `medvqa inspect` on bad input (issue 2's acceptance test),
//! the export round trip, and decode-once.

mod common;

use std::path::Path;

use common::{run, stdout};
use image::{GrayImage, Luma, Rgb, RgbImage};
use medvqa::data::decode::{DEFAULT_MAX_PIXELS, ImageStore};
use medvqa::data::{self, LoadOptions};
use medvqa::pixels::Pixels;
use medvqa::sample::{QuestionKind, Task};

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A well-formed PNG header claiming `w`×`h` gray pixels, followed by a tiny IDAT: the
/// shape of a decompression bomb.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

fn write_png(path: &Path, rgb: bool) {
    let p = if rgb {
        Pixels::Rgb(RgbImage::from_fn(40, 30, |x, y| {
            Rgb([x as u8 * 6, y as u8 * 8, 90])
        }))
    } else {
        Pixels::Gray(GrayImage::from_fn(40, 30, |x, y| Luma([(x + y) as u8 * 3])))
    };
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    p.save_png(path).unwrap();
}

/// A manifest holding two good samples and one of each kind of bad input from issue 2.
fn bad_manifest(dir: &Path) -> std::path::PathBuf {
    write_png(&dir.join("img/a.png"), false);
    write_png(&dir.join("img/b.png"), true);
    let full = std::fs::read(dir.join("img/a.png")).unwrap();
    std::fs::write(dir.join("img/truncated.png"), &full[..full.len() / 2]).unwrap();
    std::fs::write(dir.join("img/bomb.png"), png_header_only(30_000, 30_000)).unwrap();
    let lines = [
        r#"{"medvqa_manifest": 1, "box_frame": "pixels", "name": "bad-input"}"#,
        r#"{"id": "good-closed", "images": ["img/a.png"], "question": "Is there a nodule?", "kind": "closed", "answer": "yes", "boxes": [{"image": 0, "box": [4, 3, 20, 15], "label": "nodule"}], "meta": {"modality": "cxr"}}"#,
        r#"{"id": "good-multi", "images": ["img/a.png", "img/b.png"], "question": "Which?", "kind": "multi_choice", "options": ["x", "y", "z", "w"], "answer": ["C", "A"], "meta": {"modality": "video", "frames": 2}}"#,
        r#"{"id": "missing", "images": ["img/nope.png"], "question": "?", "kind": "open", "answer": "a"}"#,
        r#"{"id": "truncated", "images": ["img/truncated.png"], "question": "?", "kind": "open", "answer": "a"}"#,
        r#"{"id": "bomb", "images": ["img/bomb.png"], "question": "?", "kind": "open", "answer": "a"}"#,
        r#"{"id": "escape", "images": ["../../etc/passwd"], "question": "?", "kind": "open", "answer": "a"}"#,
        r#"{"id": "malformed", "images": ["img/a.png"], "question": "?", "#,
        r#"{"id": "unknown-kind", "images": ["img/a.png"], "question": "?", "kind": "multiple_choice", "options": ["a", "b"], "answer": "A"}"#,
        r#"{"id": "bad-letter", "images": ["img/a.png"], "question": "?", "kind": "single_choice", "options": ["a", "b", "c"], "answer": "E"}"#,
    ];
    let path = dir.join("manifest.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn inspect_records_every_bad_input_with_its_reason_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = bad_manifest(dir.path());
    let spec = format!("jsonl:{}", manifest.display());
    let out = run(&["inspect", "--quiet", "--dataset", &spec]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{text}\n{}",
        common::stderr(&out)
    );
    assert!(text.contains("samples      2 loaded, 7 failed"), "{text}");
    let expect = [
        ("missing", "does not exist"),
        ("truncated", "cannot be decoded"),
        ("bomb", "30000x30000 = 900000000 pixels, over the budget"),
        ("escape", "contains '..'"),
        ("manifest.jsonl:8", "not a valid manifest record"),
        ("unknown-kind", "unknown question kind \"multiple_choice\""),
        (
            "bad-letter",
            "answer letter \"E\" is not among the 3 options (A-C)",
        ),
    ];
    for (what, reason) in expect {
        let line = text
            .lines()
            .find(|l| l.contains(what) && l.contains(reason))
            .unwrap_or_else(|| panic!("no failure line for {what} with {reason:?} in:\n{text}"));
        assert!(line.starts_with("  ["), "{line}");
    }
    assert!(
        text.contains("by kind      closed 1 | multi_choice 1"),
        "{text}"
    );
    assert!(
        text.contains("by images    1 image(s): 1 | 2 image(s): 1"),
        "{text}"
    );
}

#[test]
fn inspect_json_counts_failures_by_stage() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = bad_manifest(dir.path());
    let spec = format!("jsonl:{}", manifest.display());
    let out = run(&["inspect", "--quiet", "--json", "--dataset", &spec]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["counts"]["samples"], 2);
    let failures = v["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 7);
    let decode = failures.iter().filter(|f| f["stage"] == "decode").count();
    // missing, truncated, bomb, escape: image problems; the rest are row problems.
    assert_eq!(decode, 4, "{failures:#?}");
}

#[test]
fn no_decode_still_catches_path_problems_but_not_corrupt_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = bad_manifest(dir.path());
    let spec = format!("jsonl:{}", manifest.display());
    let text = stdout(&run(&[
        "inspect",
        "--quiet",
        "--no-decode",
        "--dataset",
        &spec,
    ]));
    assert!(text.contains("samples      4 loaded, 5 failed"), "{text}");
}

#[test]
fn export_round_trips_through_the_normalised_frame() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = bad_manifest(dir.path());
    let spec = format!("jsonl:{}", manifest.display());
    let out_dir = tempfile::tempdir().unwrap();
    let export = out_dir.path().join("export.jsonl");
    let out = run(&[
        "inspect",
        "--quiet",
        "--dataset",
        &spec,
        "--export",
        export.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));

    let original = data::load(&spec, &LoadOptions::default()).unwrap();
    let exported = data::load(
        &format!("jsonl:{}", export.display()),
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(exported.failures.is_empty(), "{:?}", exported.failures);
    assert_eq!(exported.name, "bad-input");
    assert_eq!(exported.samples.len(), 2);
    let good: Vec<_> = original
        .samples
        .iter()
        .filter(|s| s.id.starts_with("good"))
        .collect();
    for (a, b) in good.iter().zip(&exported.samples) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.question, b.question);
        assert_eq!(a.task, b.task);
        assert_eq!(a.boxes, b.boxes);
        assert_eq!(a.meta, b.meta);
        assert_eq!(a.images.len(), b.images.len());
    }
    // The pixel-frame box [4, 3, 20, 15] on a 40x30 image is normalised on the way in.
    assert_eq!(
        exported.samples[0].boxes[0].bbox.to_array(),
        [0.1, 0.1, 0.5, 0.5]
    );
    let header = std::fs::read_to_string(&export).unwrap();
    assert!(
        header.starts_with(r#"{"medvqa_manifest":1,"box_frame":"normalized","name":"bad-input"}"#)
    );
    // Images outside the export folder were copied beside it, once each.
    assert!(out_dir.path().join("export_images/img/a.png").is_file());
    assert!(out_dir.path().join("export_images/img/b.png").is_file());
    // A second export of the export references the images in place: nothing is copied.
    let again = out_dir.path().join("again.jsonl");
    medvqa::data::manifest::write(&again, &exported.name, &exported.samples, "again_images")
        .unwrap();
    assert!(!out_dir.path().join("again_images").exists());
    let reloaded = data::load(
        &format!("jsonl:{}", again.display()),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(reloaded.samples.len(), 2);
    assert_eq!(
        reloaded.samples[1].task,
        Task::MultiChoice {
            options: vec!["x".into(), "y".into(), "z".into(), "w".into()],
            answer: vec![0, 2]
        }
    );
    assert_eq!(reloaded.samples[1].kind(), QuestionKind::MultiChoice);
}

#[test]
fn images_shared_by_questions_are_decoded_once() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = bad_manifest(dir.path());
    let mut ds = data::load(
        &format!("jsonl:{}", manifest.display()),
        &LoadOptions::default(),
    )
    .unwrap();
    let store = ImageStore::new(DEFAULT_MAX_PIXELS, 64 << 20);
    ds.validate_images(&store, &medvqa::progress::Progress::hidden());
    // good-closed and good-multi share img/a.png: 2 good images + 2 bad ones decoded.
    assert_eq!(store.decode_count(), 4);
    for s in &ds.samples {
        for img in &s.images {
            store.get(img).unwrap();
        }
    }
    assert_eq!(store.decode_count(), 4);
}

#[test]
fn a_missing_manifest_is_a_fatal_error_with_exit_code_1() {
    let out = run(&[
        "inspect",
        "--quiet",
        "--dataset",
        "jsonl:/nonexistent/m.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(common::stderr(&out).contains("cannot read /nonexistent/m.jsonl"));
}

#[test]
fn a_spec_without_format_says_how_to_write_it() {
    let out = run(&["inspect", "--quiet", "--dataset", "m.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(common::stderr(&out).contains("write FORMAT:PATH, e.g. jsonl:m.jsonl"));
}

#[test]
fn a_bom_loads_and_a_json_array_gets_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    write_png(&dir.path().join("a.png"), false);
    let row = r#"{"id": "q1", "images": ["a.png"], "question": "Normal?", "kind": "closed", "answer": "yes"}"#;
    let bom = dir.path().join("bom.jsonl");
    std::fs::write(&bom, format!("\u{feff}{row}\n")).unwrap();
    let opts = LoadOptions::default();
    let ds = data::load(&format!("jsonl:{}", bom.display()), &opts).unwrap();
    assert_eq!(ds.samples.len(), 1);
    assert!(ds.failures.is_empty(), "{:?}", ds.failures);

    let array = dir.path().join("array.json");
    std::fs::write(&array, format!("[\n{row},\n{row}\n]\n")).unwrap();
    let out = run(&[
        "inspect",
        "--quiet",
        "--dataset",
        &format!("jsonl:{}", array.display()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr(&out);
    assert!(err.contains("write one JSON object per line"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
