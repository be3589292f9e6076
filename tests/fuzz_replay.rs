#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The fuzz targets (`fuzz/`, `cargo +nightly fuzz run <target>`) replayed on stable, in
//! `.ci/run`: every seed in `fuzz/seeds/<target>/` and every crash input kept in
//! `fuzz/regressions/<target>/`, then proptest's random and mutated inputs through the same
//! harness. A panic, an out-of-range box or an over-budget image fails the test.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

use proptest::prelude::*;

fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_seed_and_kept_crash_runs_through_its_target() {
    for (target, run) in harness::TARGETS {
        let seeds = inputs("seeds", target);
        assert!(!seeds.is_empty(), "{target} has no seeds");
        for (path, bytes) in seeds.iter().chain(&inputs("regressions", target)) {
            // A panic names the input through the test's output.
            eprintln!("{target}: {}", path.display());
            run(bytes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_break_no_target(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        for (_, run) in harness::TARGETS {
            run(&data);
        }
    }

    #[test]
    fn mutated_seeds_break_no_target(
        target in any::<prop::sample::Index>(),
        seed in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let (name, run) = harness::TARGETS[target.index(harness::TARGETS.len())];
        let seeds = inputs("seeds", name);
        let mut bytes = seeds[seed.index(seeds.len())].1.clone();
        for (at, byte, op) in edits {
            let i = if bytes.is_empty() { 0 } else { at.index(bytes.len()) };
            match op {
                0 if !bytes.is_empty() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if !bytes.is_empty() => {
                    bytes.remove(i);
                }
                _ => bytes.push(byte),
            }
        }
        run(&bytes);
    }
}

/// The parquet seeds load: the MedFrameQA seed gives samples whose embedded frames decode,
/// so mutations start from a file that reaches the row and cell readers.
#[test]
fn the_parquet_seeds_reach_the_row_and_cell_readers() {
    for (path, bytes) in inputs("seeds", "parquet_rows") {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("test-00000-of-00001.parquet");
        std::fs::write(&file, &bytes).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let format = name.split('.').next().unwrap();
        let mut ds = medvqa::data::load(
            &format!("{format}:{}", file.display()),
            &medvqa::data::LoadOptions::default(),
        )
        .unwrap();
        assert!(!ds.samples.is_empty(), "{name}: {:?}", ds.failures);
        assert!(!ds.failures.is_empty(), "{name}: a seed keeps one bad row");
        let store = medvqa::data::decode::ImageStore::new(1 << 22, 1 << 20);
        let before = ds.samples.len();
        ds.validate_images(&store, &medvqa::progress::Progress::new(0, "decode", true));
        assert_eq!(ds.samples.len(), before, "{name}: {:?}", ds.failures);
    }
}

/// The `parquet` crate panics on some malformed files instead of returning an error: the
/// fuzz target found a dictionary page that declares no values but holds bytes (a division
/// by zero) and a column chunk with a negative byte range. medvqa records the lost rows with
/// the reason and goes on to the next row group, instead of ending the run.
#[test]
fn a_parquet_page_that_panics_the_reader_is_a_failure_of_its_rows() {
    for (name, format, why) in [
        (
            "dictionary-page-without-values.parquet",
            "medframeqa",
            "divide by zero",
        ),
        (
            "column-chunk-negative-range.parquet",
            "kvasir-vqa-x1",
            "should not be negative",
        ),
    ] {
        let (_, bytes) = inputs("regressions", "parquet_rows")
            .into_iter()
            .find(|(p, _)| p.ends_with(name))
            .expect("the kept crash input");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("test-00000-of-00001.parquet");
        std::fs::write(&file, &bytes).unwrap();
        let ds = medvqa::data::load(
            &format!("{format}:{}", file.display()),
            &medvqa::data::LoadOptions::default(),
        )
        .unwrap();
        let reasons: Vec<String> = ds.failures.iter().map(|f| f.to_string()).collect();
        assert!(
            reasons.iter().any(|r| r.contains("row group")
                && r.contains("malformed page")
                && r.contains(why)),
            "{name}: {reasons:?}"
        );
        // Every row of the file is accounted for: loaded, or named in a failure (both row
        // groups of the mutated seed are damaged).
        assert!(ds.samples.is_empty(), "{name}: {reasons:?}");
        assert!(
            reasons.iter().any(|r| r.contains("#rows 0-1")),
            "{name}: {reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("#rows 2-2")),
            "{name}: {reasons:?}"
        );
    }
}

/// Writes the parquet seeds (`fuzz/seeds/parquet_rows/`): small files in the shapes of the
/// two parquet formats, each with a bad row, row groups of two rows and embedded PNG
/// frames. Run it again after changing them:
/// `cargo test --test fuzz_replay -- --ignored write_parquet_seeds`.
#[test]
#[ignore = "writes the committed seeds"]
fn write_parquet_seeds() {
    use std::sync::Arc;

    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, StructArray};
    use arrow_schema::{DataType, Field, Fields};

    fn png(v: u8) -> Vec<u8> {
        let img =
            image::GrayImage::from_fn(3, 2, |x, y| image::Luma([v.wrapping_add((x + y) as u8)]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }
    fn strings(v: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }
    fn lists(v: &[&[&str]]) -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new());
        for l in v {
            for s in *l {
                b.values().append_value(s);
            }
            b.append(true);
        }
        Arc::new(b.finish())
    }
    fn images(cells: &[Option<Vec<u8>>]) -> ArrayRef {
        let bytes: BinaryArray = cells.iter().map(|c| c.as_deref()).collect();
        let paths: StringArray = cells.iter().map(|_| None::<&str>).collect();
        let fields = Fields::from(vec![
            Field::new("bytes", DataType::Binary, true),
            Field::new("path", DataType::Utf8, true),
        ]);
        Arc::new(
            StructArray::try_new(fields, vec![Arc::new(bytes), Arc::new(paths)], None).unwrap(),
        )
    }
    fn write(name: &str, columns: Vec<(&str, ArrayRef)>) {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds/parquet_rows")
            .join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(path).unwrap(),
            batch.schema(),
            Some(props),
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    // The last row's answer is outside its options: a row failure.
    write(
        "medframeqa.parquet",
        vec![
            (
                "question_id",
                strings(&[Some("q0"), Some("q1"), Some("q2")]),
            ),
            (
                "question",
                strings(&[Some("Which?"), Some("Next?"), Some("Odd?")]),
            ),
            ("options", lists(&[&["a", "b"], &["a", "b", "c"], &["a"]])),
            (
                "correct_answer",
                strings(&[Some("A"), Some("C"), Some("D")]),
            ),
            ("modality", strings(&[Some("CT"), Some("US"), None])),
            (
                "image_1",
                images(&[Some(png(1)), Some(png(2)), Some(png(3))]),
            ),
            ("image_2", images(&[Some(png(4)), None, Some(png(5))])),
        ],
    );
    // The last row has no answer.
    write(
        "kvasir-vqa-x1.parquet",
        vec![
            ("img_id", strings(&[Some("a1"), Some("a1"), Some("b2")])),
            (
                "question",
                strings(&[Some("Polyp?"), Some("Size?"), Some("Colour?")]),
            ),
            ("answer", strings(&[Some("yes"), Some("5 mm"), None])),
            (
                "complexity",
                Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
            ),
            ("question_class", lists(&[&["polyp"], &["size"], &[]])),
            ("original", strings(&[Some("[]"), None, Some("[]")])),
            ("image", images(&[Some(png(6)), Some(png(6)), Some(png(7))])),
        ],
    );
}
