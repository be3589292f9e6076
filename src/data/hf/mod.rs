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
use crate::cache::BoundedCache;
use crate::data::decode::ImageError;
use crate::failure::{Failure, Stage};
use crate::sample::{ImageBytes, ImageSource, MetaValue};

mod files;
mod json;
mod parquet_rows;

pub use files::*;
pub use json::*;
pub use parquet_rows::*;

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

#[cfg(test)]
mod tests;
