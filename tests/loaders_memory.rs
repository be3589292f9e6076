//! Scale: a parquet file with embedded image bytes is read in row batches and its image
//! bytes stay on disk, so `medvqa inspect` uses about the same memory whether each row
//! carries 16 bytes or 1 KiB of image, at 200k rows: memory does not grow with the file.
//! (The samples' text and metadata stay resident, so memory does grow with the row count,
//! by well under a kilobyte per row here.)
//!
//! The files are generated here (MedFrameQA layout, one HF `Image` column, small row
//! groups as `datasets` writes them). Peak RSS of the `medvqa` process comes from
//! `/usr/bin/time -f %M` when present, else from polling `/proc/<pid>/status` (VmHWM).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

const WRITE_BATCH: usize = 10_000;

/// `rows` MedFrameQA rows whose single frame holds `payload` bytes, distinct per row so
/// that no encoding can fold them.
fn write_file(path: &Path, rows: usize, payload: usize) -> u64 {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(1000))
        .set_dictionary_enabled(false)
        .set_compression(Compression::UNCOMPRESSED)
        .build();
    let mut w: Option<ArrowWriter<std::fs::File>> = None;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for start in (0..rows).step_by(WRITE_BATCH) {
        let n = WRITE_BATCH.min(rows - start);
        let ids: StringArray = (start..start + n).map(|i| Some(format!("q{i}"))).collect();
        let questions: StringArray = (0..n).map(|_| Some("Which?")).collect();
        let answers: StringArray = (0..n).map(|_| Some("A")).collect();
        let mut options = ListBuilder::new(StringBuilder::new());
        for _ in 0..n {
            options.values().append_value("yes");
            options.values().append_value("no");
            options.append(true);
        }
        let blobs: Vec<Vec<u8>> = (start..start + n)
            .map(|i| {
                let mut b = (i as u64).to_le_bytes().to_vec();
                while b.len() < payload {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    b.extend_from_slice(&state.to_le_bytes());
                }
                b.truncate(payload);
                b
            })
            .collect();
        let bytes: BinaryArray = blobs.iter().map(|b| Some(b.as_slice())).collect();
        let paths: StringArray = (0..n).map(|_| None::<&str>).collect();
        let image = StructArray::try_new(
            Fields::from(vec![
                Field::new("bytes", DataType::Binary, true),
                Field::new("path", DataType::Utf8, true),
            ]),
            vec![Arc::new(bytes) as ArrayRef, Arc::new(paths)],
            None,
        )
        .unwrap();
        let batch = RecordBatch::try_from_iter([
            ("question_id", Arc::new(ids) as ArrayRef),
            ("question", Arc::new(questions)),
            ("options", Arc::new(options.finish())),
            ("correct_answer", Arc::new(answers)),
            ("image_1", Arc::new(image)),
        ])
        .unwrap();
        let writer = w.get_or_insert_with(|| {
            ArrowWriter::try_new(
                std::fs::File::create(path).unwrap(),
                batch.schema(),
                Some(props.clone()),
            )
            .unwrap()
        });
        writer.write(&batch).unwrap();
    }
    w.unwrap().close().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// Runs `medvqa inspect --no-decode --json` on `file`; returns (samples loaded, peak RSS in
/// KiB).
fn inspect_peak(file: &Path, scratch: &Path) -> (u64, u64) {
    let spec = format!("medframeqa:{}", file.display());
    let args = [
        "inspect",
        "--quiet",
        "--no-decode",
        "--json",
        "--dataset",
        &spec,
    ];
    let time = Path::new("/usr/bin/time");
    let (stdout, peak) = if time.is_file() {
        let report = scratch.join("time.txt");
        let out = std::process::Command::new(time)
            .args(["-f", "%M", "-o"])
            .arg(&report)
            .arg(env!("CARGO_BIN_EXE_medvqa"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::stderr(&out));
        let text = std::fs::read_to_string(&report).unwrap();
        let peak: u64 = text.trim().lines().last().unwrap().trim().parse().unwrap();
        (common::stdout(&out), peak)
    } else {
        let child = common::medvqa()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let status = format!("/proc/{}/status", child.id());
        let mut peak = 0u64;
        // The process is polled until its status no longer shows memory (it has exited).
        while let Ok(s) = std::fs::read_to_string(&status) {
            match s.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
                Some(v) => {
                    peak = peak.max(v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0))
                }
                None => break,
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        (common::stdout(&out), peak)
    };
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    (v["counts"]["samples"].as_u64().unwrap(), peak)
}

#[test]
fn peak_memory_does_not_grow_with_embedded_image_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.parquet");
    let heavy = dir.path().join("heavy.parquet");
    let light = dir.path().join("light.parquet");
    let small_size = write_file(&small, 20_000, 1024);
    let heavy_size = write_file(&heavy, 200_000, 1024);
    let light_size = write_file(&light, 200_000, 16);

    let (n_small, rss_small) = inspect_peak(&small, dir.path());
    let (n_heavy, rss_heavy) = inspect_peak(&heavy, dir.path());
    let (n_light, rss_light) = inspect_peak(&light, dir.path());
    assert_eq!((n_small, n_heavy, n_light), (20_000, 200_000, 200_000));
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "peak RSS: 20k rows x 1 KiB ({:.1} MiB file): {:.1} MiB; 200k rows x 1 KiB ({:.1} MiB file): {:.1} MiB; 200k rows x 16 B ({:.1} MiB file): {:.1} MiB",
        mib(small_size),
        rss_small as f64 / 1024.0,
        mib(heavy_size),
        rss_heavy as f64 / 1024.0,
        mib(light_size),
        rss_light as f64 / 1024.0,
    );
    // 190 MiB more image bytes on disk may cost no more than one read batch in memory.
    let extra_file_kib = (heavy_size - light_size) / 1024;
    assert!(extra_file_kib > 190 * 1024);
    assert!(
        rss_heavy < rss_light + 32 * 1024,
        "image bytes are held: {rss_heavy} KiB with 1 KiB images vs {rss_light} KiB with 16 B"
    );
    // What does grow with the row count is the samples' text, which stays resident.
    let per_row = (rss_heavy.saturating_sub(rss_small) * 1024) / 180_000;
    eprintln!("resident cost per row (200k vs 20k rows): {per_row} bytes");
}
