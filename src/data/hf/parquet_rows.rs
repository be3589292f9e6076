//! Parquet rows in bounded batches, typed cell access, and image cells read on demand
//! through the chunk cache.

use super::*;

/// Where a parquet row is: its number in the file (0-based, as `datasets` counts), its row
/// group and its index inside the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowPos {
    pub number: usize,
    pub row_group: usize,
    pub in_group: usize,
}

/// One parquet file open for deferred image reads.
#[derive(Debug)]
pub struct ParquetImages {
    path: PathBuf,
    label: String,
    meta: ArrowReaderMetadata,
    cache: Arc<ChunkCache>,
}

/// A parquet row, valid while its batch is.
pub struct ParquetRow<'a> {
    batch: &'a RecordBatch,
    index: usize,
    pub pos: RowPos,
    file: &'a Arc<ParquetImages>,
}

impl ParquetRow<'_> {
    fn column(&self, column: &str, expected: &'static str) -> Result<&ArrayRef, FieldError> {
        self.batch
            .column_by_name(column)
            .ok_or_else(|| FieldError::Missing {
                column: column.to_string(),
                expected,
            })
    }

    /// The HF `Image` cell in `column`; `Ok(None)` when the cell is null.
    pub fn image(&self, column: &str) -> Result<Option<ImageCell>, FieldError> {
        let a = self.column(column, AN_IMAGE)?;
        let wrong = || wrong_type(column, a.data_type(), AN_IMAGE);
        let s = a.as_struct_opt().ok_or_else(wrong)?;
        let bytes = s.column_by_name("bytes");
        let path = s.column_by_name("path");
        if bytes.is_none() && path.is_none() {
            return Err(wrong());
        }
        if s.is_null(self.index) {
            return Ok(None);
        }
        let has_bytes = match bytes {
            Some(b) => binary_len(b.as_ref(), self.index)
                .ok_or_else(wrong)?
                .is_some_and(|n| n > 0),
            None => false,
        };
        let path = match path {
            Some(p) => string_at(p.as_ref(), self.index)
                .ok_or_else(wrong)?
                .filter(|p| !p.trim().is_empty()),
            None => None,
        };
        Ok(Some(ImageCell { has_bytes, path }))
    }

    /// The bytes of the image in `column` of this row, read again only when asked for.
    pub fn deferred(&self, column: &str) -> ImageSource {
        ImageSource::Deferred(Arc::new(ParquetCell {
            file: self.file.clone(),
            row_group: self.pos.row_group,
            in_group: self.pos.in_group,
            number: self.pos.number,
            column: column.to_string(),
        }))
    }
}

pub(super) fn wrong_type(column: &str, found: &DataType, expected: &'static str) -> FieldError {
    FieldError::WrongType {
        column: column.to_string(),
        found: found.to_string(),
        expected,
    }
}

/// `None` when the array is not a string type; `Some(None)` for a null.
pub(super) fn string_at(a: &dyn Array, i: usize) -> Option<Option<String>> {
    let v = |valid: bool, s: &str| if valid { Some(s.to_string()) } else { None };
    match a.data_type() {
        DataType::Utf8 => a
            .as_string_opt::<i32>()
            .map(|s| v(s.is_valid(i), s.value(i))),
        DataType::LargeUtf8 => a
            .as_string_opt::<i64>()
            .map(|s| v(s.is_valid(i), s.value(i))),
        DataType::Utf8View => a.as_string_view_opt().map(|s| v(s.is_valid(i), s.value(i))),
        _ => None,
    }
}

/// The byte length of a binary cell: `None` when not binary, `Some(None)` for a null.
pub(super) fn binary_len(a: &dyn Array, i: usize) -> Option<Option<usize>> {
    let v = |valid: bool, b: &[u8]| if valid { Some(b.len()) } else { None };
    match a.data_type() {
        DataType::Binary => a
            .as_binary_opt::<i32>()
            .map(|b| v(b.is_valid(i), b.value(i))),
        DataType::LargeBinary => a
            .as_binary_opt::<i64>()
            .map(|b| v(b.is_valid(i), b.value(i))),
        DataType::BinaryView => a.as_binary_view_opt().map(|b| v(b.is_valid(i), b.value(i))),
        _ => None,
    }
}

pub(super) fn binary_at(a: &dyn Array, i: usize) -> Option<Option<&[u8]>> {
    fn v(valid: bool, b: &[u8]) -> Option<&[u8]> {
        if valid { Some(b) } else { None }
    }
    match a.data_type() {
        DataType::Binary => a
            .as_binary_opt::<i32>()
            .map(|b| v(b.is_valid(i), b.value(i))),
        DataType::LargeBinary => a
            .as_binary_opt::<i64>()
            .map(|b| v(b.is_valid(i), b.value(i))),
        DataType::BinaryView => a.as_binary_view_opt().map(|b| v(b.is_valid(i), b.value(i))),
        _ => None,
    }
}

/// `None` when not an integer type; `Some(None)` for a null.
pub(super) fn int_at(a: &dyn Array, i: usize) -> Option<Option<i64>> {
    if a.is_null(i) && a.data_type().is_integer() {
        return Some(None);
    }
    let v = match a.data_type() {
        DataType::Int8 => a.as_primitive_opt::<Int8Type>()?.value(i) as i64,
        DataType::Int16 => a.as_primitive_opt::<Int16Type>()?.value(i) as i64,
        DataType::Int32 => a.as_primitive_opt::<Int32Type>()?.value(i) as i64,
        DataType::Int64 => a.as_primitive_opt::<Int64Type>()?.value(i),
        DataType::UInt8 => a.as_primitive_opt::<UInt8Type>()?.value(i) as i64,
        DataType::UInt16 => a.as_primitive_opt::<UInt16Type>()?.value(i) as i64,
        DataType::UInt32 => a.as_primitive_opt::<UInt32Type>()?.value(i) as i64,
        DataType::UInt64 => i64::try_from(a.as_primitive_opt::<UInt64Type>()?.value(i)).ok()?,
        _ => return None,
    };
    Some(Some(v))
}

pub(super) fn float_at(a: &dyn Array, i: usize) -> Option<Option<f64>> {
    let v = match a.data_type() {
        DataType::Float32 => a.as_primitive_opt::<Float32Type>()?.value(i) as f64,
        DataType::Float64 => a.as_primitive_opt::<Float64Type>()?.value(i),
        _ => return None,
    };
    Some(if a.is_null(i) { None } else { Some(v) })
}

/// `None` when not a list of strings; `Some(None)` for a null list. A null element makes
/// the whole list unusable, reported as the wrong type.
pub(super) fn string_list_at(a: &dyn Array, i: usize) -> Option<Option<Vec<String>>> {
    let values: ArrayRef = match a.data_type() {
        DataType::List(_) => {
            let l = a.as_list_opt::<i32>()?;
            if l.is_null(i) {
                return Some(None);
            }
            l.value(i)
        }
        DataType::LargeList(_) => {
            let l = a.as_list_opt::<i64>()?;
            if l.is_null(i) {
                return Some(None);
            }
            l.value(i)
        }
        DataType::FixedSizeList(..) => {
            let l = a.as_fixed_size_list_opt()?;
            if l.is_null(i) {
                return Some(None);
            }
            l.value(i)
        }
        _ => return None,
    };
    (0..values.len())
        .map(|j| string_at(values.as_ref(), j).flatten())
        .collect::<Option<Vec<_>>>()
        .map(Some)
}

impl Row for ParquetRow<'_> {
    fn text(&self, column: &str) -> Result<Option<String>, FieldError> {
        let a = self.column(column, A_STRING)?;
        string_at(a.as_ref(), self.index).ok_or_else(|| wrong_type(column, a.data_type(), A_STRING))
    }

    fn int(&self, column: &str) -> Result<Option<i64>, FieldError> {
        let a = self.column(column, AN_INTEGER)?;
        int_at(a.as_ref(), self.index).ok_or_else(|| wrong_type(column, a.data_type(), AN_INTEGER))
    }

    fn text_list(&self, column: &str) -> Result<Option<Vec<String>>, FieldError> {
        let a = self.column(column, A_STRING_LIST)?;
        string_list_at(a.as_ref(), self.index)
            .ok_or_else(|| wrong_type(column, a.data_type(), A_STRING_LIST))
    }

    fn meta(&self, column: &str) -> Result<Option<MetaValue>, FieldError> {
        let a = self.column(column, A_META_VALUE)?;
        let i = self.index;
        if let Some(v) = string_at(a.as_ref(), i) {
            return Ok(v.map(MetaValue::Str));
        }
        if let Some(v) = int_at(a.as_ref(), i) {
            return Ok(v.map(MetaValue::Int));
        }
        if let Some(v) = float_at(a.as_ref(), i) {
            return Ok(v.map(MetaValue::Float));
        }
        if let Some(v) = string_list_at(a.as_ref(), i) {
            return Ok(v.map(MetaValue::List));
        }
        Err(wrong_type(column, a.data_type(), A_META_VALUE))
    }

    fn has(&self, column: &str) -> bool {
        self.batch.column_by_name(column).is_some()
    }
}

/// Reads `path` in row batches, calling `on_row` for each row. Only the top-level columns
/// named in `columns` are decoded (those the file lacks are simply absent from the rows, so
/// the row parser reports them). Returns the failures that lose rows: an unreadable footer
/// loses the file, an undecodable row group its remaining rows.
pub fn read_parquet(
    path: &Path,
    columns: &[&str],
    cache: &Arc<ChunkCache>,
    mut on_row: impl FnMut(&ParquetRow<'_>),
) -> Result<Vec<Failure>, DataError> {
    let mut failures = Vec::new();
    let label = file_label(path);
    let file = std::fs::File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let meta = match unpanicked(|| ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())) {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            failures.push(Failure::new(Stage::Load, &ParquetError::footer(e)).at(label));
            return Ok(failures);
        }
        Err(e) => {
            failures.push(Failure::new(Stage::Load, &ParquetError::footer(e)).at(label));
            return Ok(failures);
        }
    };
    let schema = meta.parquet_schema();
    let roots: Vec<usize> = schema
        .root_schema()
        .get_fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| columns.contains(&f.name()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(schema, roots);
    let images = Arc::new(ParquetImages {
        path: path.to_path_buf(),
        label: label.clone(),
        meta: meta.clone(),
        cache: cache.clone(),
    });
    let mut first_row = 0usize;
    for (rg, rg_meta) in meta.metadata().row_groups().iter().enumerate() {
        let n = usize::try_from(rg_meta.num_rows()).unwrap_or(0);
        let projected: i64 = (0..rg_meta.num_columns())
            .filter(|&c| mask.leaf_included(c))
            .map(|c| rg_meta.column(c).uncompressed_size())
            .sum();
        let per_row = (projected.max(1) as u64).div_ceil(n.max(1) as u64).max(1);
        let batch_rows = ((BATCH_TARGET_BYTES / per_row) as usize).clamp(1, MAX_BATCH_ROWS);
        let mut done = 0usize;
        let reader = file.try_clone().map_err(ParquetError::Io).and_then(|f| {
            unpanicked(|| {
                ParquetRecordBatchReaderBuilder::new_with_metadata(f, meta.clone())
                    .with_row_groups(vec![rg])
                    .with_projection(mask.clone())
                    .with_batch_size(batch_rows)
                    .build()
            })
            .and_then(|r| r.map_err(Into::into))
            .map_err(|e| ParquetError::RowGroup {
                row_group: rg,
                source: e,
            })
        });
        let lost = |done: usize, err: &ParquetError| {
            Failure::new(Stage::Load, err).at(format!(
                "{label}#rows {}-{}",
                first_row + done,
                first_row + n.max(done + 1) - 1
            ))
        };
        match reader {
            Err(e) => failures.push(lost(0, &e)),
            Ok(mut reader) => {
                // A panic inside the reader leaves it in no state to go on: the row
                // group's remaining rows are lost, as after an error.
                while let Some(batch) = unpanicked(|| reader.next()).transpose() {
                    let batch = match batch.and_then(|b| b.map_err(Into::into)) {
                        Ok(b) => b,
                        Err(e) => {
                            failures.push(lost(
                                done,
                                &ParquetError::RowGroup {
                                    row_group: rg,
                                    source: e,
                                },
                            ));
                            break;
                        }
                    };
                    for index in 0..batch.num_rows() {
                        let row = ParquetRow {
                            batch: &batch,
                            index,
                            pos: RowPos {
                                number: first_row + done + index,
                                row_group: rg,
                                in_group: done + index,
                            },
                            file: &images,
                        };
                        on_row(&row);
                    }
                    done += batch.num_rows();
                }
            }
        }
        first_row += n;
    }
    Ok(failures)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs one call into the `parquet` crate, turning a panic into an error. The crate
/// (60.1) panics on some malformed files instead of returning an error: the
/// `parquet_rows` fuzz target found a plain-encoded dictionary page that declares no
/// values but holds bytes, which divides by zero in `ByteArrayDecoderPlain::read`, and a
/// column chunk whose byte range is negative (`file/metadata/mod.rs`: "column start and
/// length should not be negative"); both are in `fuzz/regressions/parquet_rows/`. A damaged file must be a failure of its rows, never
/// the end of the run. The panic's own message still reaches stderr through the default
/// hook; the failure record says what was lost.
fn unpanicked<T>(call: impl FnOnce() -> T) -> Result<T, BoxError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).map_err(|p| {
        let why = crate::failure::panic_message(p.as_ref());
        format!("the parquet reader failed on a malformed page ({why})").into()
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    #[error(
        "cannot read the parquet footer (the file is truncated, damaged or not parquet); none of its rows loaded"
    )]
    Footer {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot decode row group {row_group}; the rows listed did not load")]
    RowGroup {
        row_group: usize,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot reopen the file")]
    Io(#[source] std::io::Error),
}

impl ParquetError {
    fn footer(source: impl Into<BoxError>) -> Self {
        ParquetError::Footer {
            source: source.into(),
        }
    }
}

/// One HF `Image` cell with embedded bytes, read again when the image is decoded.
#[derive(Debug)]
pub(super) struct ParquetCell {
    file: Arc<ParquetImages>,
    row_group: usize,
    in_group: usize,
    number: usize,
    column: String,
}

impl ParquetCell {
    fn what(&self) -> String {
        format!("{}#row {} {}", self.file.label, self.number, self.column)
    }

    fn load_chunk(&self) -> Result<Chunk, String> {
        let schema = self.file.meta.parquet_schema();
        let leaf = schema
            .columns()
            .iter()
            .position(|c| {
                let parts = c.path().parts();
                parts.len() == 2 && parts[0] == self.column && parts[1] == "bytes"
            })
            .ok_or_else(|| format!("the file has no column {}.bytes", self.column))?;
        let file = std::fs::File::open(&self.file.path).map_err(|e| e.to_string())?;
        let rows = self
            .file
            .meta
            .metadata()
            .row_groups()
            .get(self.row_group)
            .map(|g| g.num_rows())
            .unwrap_or(0);
        let mut reader = unpanicked(|| {
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.file.meta.clone())
                .with_row_groups(vec![self.row_group])
                .with_projection(ProjectionMask::leaves(schema, [leaf]))
                .with_batch_size(usize::try_from(rows).unwrap_or(1).max(1))
                .build()
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let mut arrays = Vec::new();
        let mut bytes = 0usize;
        while let Some(batch) = unpanicked(|| reader.next()).map_err(|e| e.to_string())? {
            let batch = batch.map_err(|e| e.to_string())?;
            let s = batch
                .column(0)
                .as_struct_opt()
                .and_then(|s| s.column_by_name("bytes"))
                .ok_or_else(|| format!("column {} is not an HF Image struct", self.column))?;
            bytes += s.get_array_memory_size();
            arrays.push(s.clone());
        }
        Ok(Chunk { arrays, bytes })
    }
}

impl ImageBytes for ParquetCell {
    fn read(&self) -> Result<Arc<[u8]>, ImageError> {
        let io = |message: String| ImageError::Io {
            what: self.what(),
            message,
        };
        let key = ChunkKey {
            path: self.file.path.clone(),
            row_group: self.row_group,
            column: self.column.clone(),
        };
        let chunk = self
            .file
            .cache
            .get_or_load(key, || self.load_chunk())
            .map_err(io)?;
        let mut at = self.in_group;
        for a in &chunk.arrays {
            if at < a.len() {
                return match binary_at(a.as_ref(), at) {
                    Some(Some(b)) if !b.is_empty() => Ok(Arc::from(b)),
                    Some(_) => Err(io("the cell has no bytes".to_string())),
                    None => Err(io(format!("bytes have type {}", a.data_type()))),
                };
            }
            at -= a.len();
        }
        Err(io(format!(
            "row {} is past the end of row group {}",
            self.in_group, self.row_group
        )))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ChunkKey {
    path: PathBuf,
    row_group: usize,
    column: String,
}

#[derive(Debug)]
pub(super) struct Chunk {
    arrays: Vec<ArrayRef>,
    bytes: usize,
}

/// The image column chunks most recently read, up to a byte budget (always at least one),
/// on [`BoundedCache`]: threads asking for one chunk wait for a single read.
pub struct ChunkCache(BoundedCache<ChunkKey, Result<Arc<Chunk>, String>>);

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCache")
            .field("held_bytes", &self.held_bytes())
            .finish()
    }
}

impl ChunkCache {
    pub fn new(capacity_bytes: usize) -> Arc<ChunkCache> {
        Arc::new(ChunkCache(BoundedCache::new(capacity_bytes)))
    }

    fn get_or_load(
        &self,
        key: ChunkKey,
        load: impl FnOnce() -> Result<Chunk, String>,
    ) -> Result<Arc<Chunk>, String> {
        self.0.get_or_make(
            &key,
            || load().map(Arc::new),
            |r| r.as_ref().map_or(0, |c| c.bytes),
        )
    }

    /// Bytes held now; tests use it to check the bound.
    pub fn held_bytes(&self) -> usize {
        self.0.held()
    }
}
