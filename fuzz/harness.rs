//! What each fuzz target runs on one input, shared by the `cargo fuzz` targets
//! (`fuzz_targets/*.rs`, nightly) and their stable replay (`tests/fuzz_replay.rs`, which
//! runs every seed in `fuzz/seeds/<target>/` plus proptest-generated inputs in `.ci/run`).
//!
//! Each function must return, whatever the bytes: no panic, no hang, no allocation beyond
//! the budgets medvqa sets itself. Where a result can be checked cheaply, it is.

#![allow(dead_code)]

use std::path::Path;

use medvqa::data::decode::decode_bytes;
use medvqa::data::manifest::parse_record;
use medvqa::geometry::BoxFrame;
use medvqa::sample::Task;
use medvqa::score::boxes::{find_boxes, normalize_boxes};
use medvqa::score::extract::extract;
use medvqa::score::predictions::parse_line;

/// What a target runs on one input.
pub type Target = fn(&[u8]);

/// The targets, by name (the folders of `fuzz/seeds/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("extract", extract_answer),
    ("boxes", boxes),
    ("manifest_line", manifest_line),
    ("predictions_line", predictions_line),
    ("config", config),
    ("decode", decode),
    ("parquet_rows", parquet_rows),
];

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// The answer-extraction cascade, for every kind; the first byte picks the kind.
pub fn extract_answer(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let options: Vec<String> = ["nodule", "effusion", "cardiomegaly", "no finding", "polyp"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let task = match kind % 5 {
        0 => Task::Open {
            answer: "polyp".into(),
        },
        1 => Task::Closed { answer: true },
        2 => Task::SingleChoice { options, answer: 1 },
        3 => Task::MultiChoice {
            options,
            answer: vec![0, 2],
        },
        _ => Task::Grounding {
            answer: Some("left lung".into()),
        },
    };
    let response = text(rest);
    let e = extract(&task, &response);
    // An answer span, when given, lies inside the response on character boundaries.
    if let Some((a, b)) = e.span {
        assert!(
            response.get(a..b).is_some(),
            "{a}..{b} outside the response"
        );
    }
}

/// Every box syntax, read and normalised in every frame.
pub fn boxes(data: &[u8]) {
    let response = text(data);
    let Some(raw) = find_boxes(&response) else {
        return;
    };
    for span in &raw.spans {
        assert!(
            response.get(span.clone()).is_some(),
            "{span:?} outside the response"
        );
    }
    for frame in [
        BoxFrame::Normalized,
        BoxFrame::Pixels,
        BoxFrame::PixelsOf {
            width: 224,
            height: 224,
        },
        BoxFrame::Grid(1000),
    ] {
        if let Ok(boxes) = normalize_boxes(&raw, frame, 0, 3, &|_| Some((640, 480))) {
            for b in boxes.iter().filter_map(|b| b.bbox) {
                for v in [b.x1, b.y1, b.x2, b.y2] {
                    assert!(v.is_finite() && (0.0..=1.0).contains(&v), "{b:?}");
                }
            }
        }
    }
}

/// One manifest line (paths are resolved, never read).
pub fn manifest_line(data: &[u8]) {
    let _ = parse_record(
        &text(data),
        Path::new("/medvqa-fuzz-root"),
        BoxFrame::Normalized,
    );
    let _ = parse_record(
        &text(data),
        Path::new("/medvqa-fuzz-root"),
        BoxFrame::Pixels,
    );
}

/// One line of a predictions file.
pub fn predictions_line(data: &[u8]) {
    let _ = parse_line(&text(data));
}

/// A TOML run config.
pub fn config(data: &[u8]) {
    let _ = medvqa::config::Config::from_toml(&text(data));
}

/// The safe image decoder (PNG, JPEG, WebP, …), under a 4-megapixel budget.
pub fn decode(data: &[u8]) {
    const BUDGET: u64 = 1 << 22;
    default_panic_hook();
    if let Ok(p) = decode_bytes(data, "fuzz", BUDGET) {
        assert!(u64::from(p.width()) * u64::from(p.height()) <= BUDGET);
    }
}

/// medvqa catches the panics that the `parquet` and DICOM crates raise on some malformed
/// input and records the sample or rows as failures. libFuzzer's panic hook aborts on any
/// panic, caught or not, so the targets that reach those crates put the default hook back:
/// a panic that escapes medvqa still ends in libFuzzer's abort (its catch around each
/// input), and a caught one is what it is, a failure of its input.
fn default_panic_hook() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| drop(std::panic::take_hook()));
}

/// A parquet file read by the row readers of the two parquet formats (MedFrameQA with
/// embedded image cells, Kvasir-VQA-x1), then every loaded sample's images read back
/// lazily from their cells and decoded under a 4-megapixel budget. A bad footer, row group
/// or cell must come back as a failure of its file or row, never a panic.
pub fn parquet_rows(data: &[u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    default_panic_hook();
    // One folder per input: proptest's tests run this target on several threads at once.
    let dir = std::env::temp_dir().join(format!(
        "medvqa-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let file = dir.join("test-00000-of-00001.parquet");
    if std::fs::write(&file, data).is_ok() {
        let opts = medvqa::data::LoadOptions {
            max_pixels: 1 << 22,
            ..Default::default()
        };
        let store = medvqa::data::decode::ImageStore::new(1 << 22, 64 << 20);
        let quiet = medvqa::progress::Progress::new(0, "decode", true);
        for format in ["medframeqa", "kvasir-vqa-x1"] {
            let spec = format!("{format}:{}", file.display());
            if let Ok(mut ds) = medvqa::data::load(&spec, &opts) {
                ds.validate_images(&store, &quiet);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
