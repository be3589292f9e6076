//! Hugging Face datasets as published: parquet shards and JSONL rows, read without conversion.
//!
//! Shared by the `kvasir-vqa-x1` and `medframeqa` loaders:
//! - [`data_files`] turns a spec path (a file, a folder of shards, or a `*` pattern) into the
//!   list of files, in name order.
//! - [`read_parquet`] reads one parquet file in row batches whose size follows the row
//!   group's bytes per row, so memory stays bounded by a batch, not by the file. A file whose
//!   footer cannot be read (truncated, not parquet) and a row group that cannot be decoded
//!   become [`Failure`]s; the other files and row groups still load.
//! - [`Row`] is one row, from parquet or JSON, with typed access: a missing column, a wrong
//!   type or a null is a [`FieldError`] naming the column and the type it should have.
//! - HF `Image` cells with embedded bytes become [`ImageSource::Deferred`] parquet cells:
//!   their bytes are read again on demand, through a [`ChunkCache`] that keeps a bounded
//!   number of bytes of decoded column chunks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use serde_json::Value;

use super::DataError;
use super::decode::ImageError;
use crate::cache::BoundedCache;
use crate::failure::{Failure, Stage};
use crate::sample::{ImageBytes, ImageSource, MetaValue};

/// Decoded bytes a row batch aims at. Text rows are small, so batches are large; rows with
/// embedded images are big, so batches shrink to a few rows.
const BATCH_TARGET_BYTES: u64 = 8 << 20;
const MAX_BATCH_ROWS: usize = 4096;

/// Decoded image column chunks kept for [`ImageSource::Deferred`] reads, per dataset.
pub const CHUNK_CACHE_BYTES: usize = 64 << 20;

/// Why one field of a row cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldError {
    #[error("missing column `{column}` (expected {expected})")]
    Missing {
        column: String,
        expected: &'static str,
    },
    #[error("column `{column}` has type {found}, expected {expected}")]
    WrongType {
        column: String,
        found: String,
        expected: &'static str,
    },
    #[error("column `{column}` is null, expected {expected}")]
    Null {
        column: String,
        expected: &'static str,
    },
}

const A_STRING: &str = "a string";
const AN_INTEGER: &str = "an integer";
const A_STRING_LIST: &str = "a list of strings";
const AN_IMAGE: &str = "an HF Image struct {bytes, path}";
const A_META_VALUE: &str = "a string, a number or a list of strings";

/// An HF `Image` cell: whether it holds bytes, and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCell {
    pub has_bytes: bool,
    pub path: Option<String>,
}

/// One row of an HF dataset, from parquet or JSON.
pub trait Row {
    /// `Ok(None)` for a null; `Err(Missing)` when the row has no such column.
    fn text(&self, column: &str) -> Result<Option<String>, FieldError>;
    fn int(&self, column: &str) -> Result<Option<i64>, FieldError>;
    fn text_list(&self, column: &str) -> Result<Option<Vec<String>>, FieldError>;
    /// A scalar or string list for `meta`.
    fn meta(&self, column: &str) -> Result<Option<MetaValue>, FieldError>;
    fn has(&self, column: &str) -> bool;
}

/// A non-null string.
pub fn required_text(row: &dyn Row, column: &str) -> Result<String, FieldError> {
    row.text(column)?.ok_or_else(|| FieldError::Null {
        column: column.to_string(),
        expected: A_STRING,
    })
}

/// A non-null list of strings.
pub fn required_text_list(row: &dyn Row, column: &str) -> Result<Vec<String>, FieldError> {
    row.text_list(column)?.ok_or_else(|| FieldError::Null {
        column: column.to_string(),
        expected: A_STRING_LIST,
    })
}

/// Turns a missing column into `None`, for columns a format may leave out.
pub fn optional<T>(r: Result<Option<T>, FieldError>) -> Result<Option<T>, FieldError> {
    match r {
        Err(FieldError::Missing { .. }) => Ok(None),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------
// Files

/// The files a spec path names: the file itself; every file with one of `exts` in a folder
/// (or, when it has none, in its `data/` subfolder, the HF repository layout); or the
/// files matching a `*` pattern in the last path component. Sorted by name.
pub fn data_files(spec_path: &str, exts: &[&str]) -> Result<Vec<PathBuf>, DataError> {
    let path = PathBuf::from(spec_path);
    let has_ext = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| exts.iter().any(|x| x.eq_ignore_ascii_case(e)))
    };
    let list = |dir: &Path, keep: &dyn Fn(&Path) -> bool| -> Result<Vec<PathBuf>, DataError> {
        let rd = std::fs::read_dir(dir).map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut v: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && keep(p))
            .collect();
        v.sort();
        Ok(v)
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let files = if name.contains('*') {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        list(&dir, &|p: &Path| {
            p.file_name()
                .is_some_and(|n| wildcard(&name, &n.to_string_lossy()))
        })?
    } else if path.is_dir() {
        let here = list(&path, &has_ext)?;
        if here.is_empty() && path.join("data").is_dir() {
            list(&path.join("data"), &has_ext)?
        } else {
            here
        }
    } else {
        std::fs::metadata(&path).map_err(|source| DataError::Io {
            path: path.clone(),
            source,
        })?;
        vec![path.clone()]
    };
    if files.is_empty() {
        return Err(DataError::Invalid {
            path,
            message: format!("no .{} files found", exts.join(" or .")),
        });
    }
    Ok(files)
}

/// `*` matches any run of characters; everything else matches itself.
fn wildcard(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Where image paths resolve: `--image-root`, else the first data file's folder, or that
/// folder's parent when the files sit in an HF repository's `data/` folder without an
/// `images/` folder of their own.
pub fn image_root(files: &[PathBuf], given: Option<&Path>) -> PathBuf {
    if let Some(r) = given {
        return r.to_path_buf();
    }
    let dir = files
        .first()
        .and_then(|f| f.parent())
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    match dir.parent() {
        Some(up)
            if dir.file_name().is_some_and(|n| n == "data") && !dir.join("images").is_dir() =>
        {
            if up.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                up.to_path_buf()
            }
        }
        _ => dir,
    }
}

/// [`resolve_under`](super::decode::resolve_under) once per distinct path: Kvasir-VQA-x1
/// asks for each of its 6.5k images about 25 times.
#[derive(Debug)]
pub struct Resolver {
    root: PathBuf,
    seen: std::collections::HashMap<String, Result<PathBuf, ImageError>>,
}

impl Resolver {
    pub fn new(root: PathBuf) -> Resolver {
        Resolver {
            root,
            seen: Default::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn resolve(&mut self, rel: &str) -> Result<PathBuf, ImageError> {
        if let Some(r) = self.seen.get(rel) {
            return r.clone();
        }
        let r = super::decode::resolve_under(&self.root, rel);
        self.seen.insert(rel.to_string(), r.clone());
        r
    }
}

/// A file's name for locations in failures.
pub fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

// ---------------------------------------------------------------------------------------
// Parquet

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

fn wrong_type(column: &str, found: &DataType, expected: &'static str) -> FieldError {
    FieldError::WrongType {
        column: column.to_string(),
        found: found.to_string(),
        expected,
    }
}

/// `None` when the array is not a string type; `Some(None)` for a null.
fn string_at(a: &dyn Array, i: usize) -> Option<Option<String>> {
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
fn binary_len(a: &dyn Array, i: usize) -> Option<Option<usize>> {
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

fn binary_at(a: &dyn Array, i: usize) -> Option<Option<&[u8]>> {
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
fn int_at(a: &dyn Array, i: usize) -> Option<Option<i64>> {
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

fn float_at(a: &dyn Array, i: usize) -> Option<Option<f64>> {
    let v = match a.data_type() {
        DataType::Float32 => a.as_primitive_opt::<Float32Type>()?.value(i) as f64,
        DataType::Float64 => a.as_primitive_opt::<Float64Type>()?.value(i),
        _ => return None,
    };
    Some(if a.is_null(i) { None } else { Some(v) })
}

/// `None` when not a list of strings; `Some(None)` for a null list. A null element makes
/// the whole list unusable, reported as the wrong type.
fn string_list_at(a: &dyn Array, i: usize) -> Option<Option<Vec<String>>> {
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
    let meta = match ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()) {
        Ok(m) => m,
        Err(e) => {
            failures.push(
                Failure::new(
                    Stage::Load,
                    &ParquetError::Footer {
                        source: Box::new(e),
                    },
                )
                .at(label),
            );
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
            ParquetRecordBatchReaderBuilder::new_with_metadata(f, meta.clone())
                .with_row_groups(vec![rg])
                .with_projection(mask.clone())
                .with_batch_size(batch_rows)
                .build()
                .map_err(|e| ParquetError::RowGroup {
                    row_group: rg,
                    source: Box::new(e),
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
            Ok(reader) => {
                for batch in reader {
                    let batch = match batch {
                        Ok(b) => b,
                        Err(e) => {
                            failures.push(lost(
                                done,
                                &ParquetError::RowGroup {
                                    row_group: rg,
                                    source: Box::new(e),
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

/// One HF `Image` cell with embedded bytes, read again when the image is decoded.
#[derive(Debug)]
struct ParquetCell {
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
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.file.meta.clone())
                .with_row_groups(vec![self.row_group])
                .with_projection(ProjectionMask::leaves(schema, [leaf]))
                .with_batch_size(usize::try_from(rows).unwrap_or(1).max(1))
                .build()
                .map_err(|e| e.to_string())?;
        let mut arrays = Vec::new();
        let mut bytes = 0usize;
        for batch in reader {
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
struct ChunkKey {
    path: PathBuf,
    row_group: usize,
    column: String,
}

#[derive(Debug)]
struct Chunk {
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

/// Why an HF `Image` cell gives no image.
#[derive(Debug, thiserror::Error)]
pub enum CellError {
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("column `{column}`: the image struct has neither bytes nor a path")]
    Empty { column: String },
    #[error("column `{column}`: {source}")]
    Path {
        column: String,
        #[source]
        source: ImageError,
    },
}

/// Where an HF `Image` cell's image is.
#[derive(Debug, Clone)]
pub enum CellImage {
    /// Embedded bytes, read on demand.
    Bytes(ImageSource),
    /// Only a path, resolved under the image root: `rel` as written, normalised.
    File { rel: String, path: PathBuf },
}

/// The image of `column` in `row`: embedded bytes win over a path, as in `datasets`.
/// `Ok(None)` for a null cell.
pub fn image_cell(
    row: &ParquetRow<'_>,
    column: &str,
    paths: &mut Resolver,
) -> Result<Option<CellImage>, CellError> {
    let Some(cell) = row.image(column)? else {
        return Ok(None);
    };
    if cell.has_bytes {
        return Ok(Some(CellImage::Bytes(row.deferred(column))));
    }
    let Some(rel) = cell.path else {
        return Err(CellError::Empty {
            column: column.to_string(),
        });
    };
    let path = paths.resolve(&rel).map_err(|source| CellError::Path {
        column: column.to_string(),
        source,
    })?;
    Ok(Some(CellImage::File {
        rel: rel.trim_start_matches("./").replace('\\', "/"),
        path,
    }))
}

// ---------------------------------------------------------------------------------------
// JSON rows

/// A JSON object read as a row; unknown fields are ignored.
pub struct JsonRow<'a>(pub &'a serde_json::Map<String, Value>);

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

impl JsonRow<'_> {
    fn field(&self, column: &str, expected: &'static str) -> Result<&Value, FieldError> {
        self.0.get(column).ok_or_else(|| FieldError::Missing {
            column: column.to_string(),
            expected,
        })
    }

    fn wrong(column: &str, v: &Value, expected: &'static str) -> FieldError {
        FieldError::WrongType {
            column: column.to_string(),
            found: json_type(v).to_string(),
            expected,
        }
    }
}

impl Row for JsonRow<'_> {
    fn text(&self, column: &str) -> Result<Option<String>, FieldError> {
        match self.field(column, A_STRING)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            v => Err(Self::wrong(column, v, A_STRING)),
        }
    }

    fn int(&self, column: &str) -> Result<Option<i64>, FieldError> {
        match self.field(column, AN_INTEGER)? {
            Value::Null => Ok(None),
            v => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| Self::wrong(column, v, AN_INTEGER)),
        }
    }

    fn text_list(&self, column: &str) -> Result<Option<Vec<String>>, FieldError> {
        match self.field(column, A_STRING_LIST)? {
            Value::Null => Ok(None),
            v @ Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| Self::wrong(column, v, A_STRING_LIST)),
            v => Err(Self::wrong(column, v, A_STRING_LIST)),
        }
    }

    fn meta(&self, column: &str) -> Result<Option<MetaValue>, FieldError> {
        match self.field(column, A_META_VALUE)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(MetaValue::Str(s.clone()))),
            Value::Number(n) => Ok(Some(match n.as_i64() {
                Some(i) => MetaValue::Int(i),
                None => MetaValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            })),
            Value::Array(_) => self.text_list(column).map(|l| l.map(MetaValue::List)),
            v => Err(Self::wrong(column, v, A_META_VALUE)),
        }
    }

    fn has(&self, column: &str) -> bool {
        self.0.contains_key(column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{BinaryArray, StringArray, StructArray};
    use arrow_schema::{Field, Fields};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    /// A file of `rows` rows in groups of `group`, column `image` holding `blob(i)`.
    fn image_file(
        dir: &Path,
        rows: usize,
        group: usize,
        blob: impl Fn(usize) -> Vec<u8>,
    ) -> PathBuf {
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
}
