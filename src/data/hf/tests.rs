use super::*;
use arrow_array::{BinaryArray, StringArray, StructArray};
use arrow_schema::{Field, Fields};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// A file of `rows` rows in groups of `group`, column `image` holding `blob(i)`.
fn image_file(dir: &Path, rows: usize, group: usize, blob: impl Fn(usize) -> Vec<u8>) -> PathBuf {
    let blobs: Vec<Vec<u8>> = (0..rows).map(blob).collect();
    let bytes: BinaryArray = blobs.iter().map(|b| Some(b.as_slice())).collect();
    let paths: StringArray = (0..rows).map(|_| None::<&str>).collect();
    let image = StructArray::try_new(
        Fields::from(vec![
            Field::new("bytes", DataType::Binary, true),
            Field::new("path", DataType::Utf8, true),
        ]),
        vec![Arc::new(bytes) as ArrayRef, Arc::new(paths)],
        None,
    )
    .unwrap();
    let ids: StringArray = (0..rows).map(|i| Some(format!("r{i}"))).collect();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(ids) as ArrayRef),
        ("image", Arc::new(image)),
    ])
    .unwrap();
    let path = dir.join("f.parquet");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        batch.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path
}

#[test]
fn deferred_cells_read_their_own_bytes_and_the_cache_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let blob = |i: usize| vec![(i % 251) as u8; 10_000 + i];
    let path = image_file(dir.path(), 40, 8, blob);
    // Room for about one row group's chunk (8 x 10 kB).
    let cache = ChunkCache::new(100_000);
    let mut cells = Vec::new();
    let lost = read_parquet(&path, &["id", "image"], &cache, |row| {
        assert_eq!(
            row.text("id").unwrap(),
            Some(format!("r{}", row.pos.number))
        );
        assert_eq!(row.pos.row_group, row.pos.number / 8);
        assert_eq!(row.pos.in_group, row.pos.number % 8);
        let cell = row.image("image").unwrap().unwrap();
        assert!(cell.has_bytes && cell.path.is_none());
        cells.push(row.deferred("image"));
    })
    .unwrap();
    assert!(lost.is_empty());
    assert_eq!(cells.len(), 40);
    assert_eq!(
        cache.held_bytes(),
        0,
        "reading rows must not keep image bytes"
    );
    // Backwards, so that every group is evicted and read again.
    for (i, c) in cells.iter().enumerate().rev() {
        let ImageSource::Deferred(d) = c else {
            panic!("not deferred")
        };
        assert_eq!(&*d.read().unwrap(), blob(i).as_slice(), "row {i}");
        assert!(cache.held_bytes() <= 200_000, "{}", cache.held_bytes());
    }
}

#[test]
fn wildcards_match_shard_names() {
    assert!(wildcard("test-*.parquet", "test-00000-of-00002.parquet"));
    assert!(!wildcard("test-*.parquet", "train-00000-of-00002.parquet"));
    assert!(!wildcard("test-*.parquet", "test-0.parquet.bak"));
    assert!(wildcard("*", "x"));
    assert!(wildcard("a*b*c", "a-b-b-c"));
    assert!(!wildcard("ab*ba", "aba"));
}

#[test]
fn json_rows_report_missing_null_and_wrong_types() {
    let v: Value = serde_json::json!({"q": "x", "n": 3, "l": ["a", 1], "z": null, "f": 1.5});
    let row = JsonRow(v.as_object().unwrap());
    assert_eq!(row.text("q"), Ok(Some("x".into())));
    assert!(matches!(row.text("n"), Err(FieldError::WrongType { .. })));
    assert!(matches!(
        required_text(&row, "z"),
        Err(FieldError::Null { .. })
    ));
    assert!(matches!(row.text("nope"), Err(FieldError::Missing { .. })));
    assert_eq!(optional(row.text("nope")), Ok(None));
    assert!(matches!(
        row.text_list("l"),
        Err(FieldError::WrongType { .. })
    ));
    assert_eq!(row.meta("f"), Ok(Some(MetaValue::Float(1.5))));
    assert_eq!(row.int("n"), Ok(Some(3)));
}
