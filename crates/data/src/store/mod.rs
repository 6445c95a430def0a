//! The processed store on disk: the Parquet layout of `train.parquet`,
//! `val.parquet` and `schemas.parquet`, how they are written and read back.
//!
//! Example files keep rows of one tier per row group (see [`SplitWriter`]),
//! so the loader can serve one tier by reading only its row groups; which
//! row group holds which tier is listed in the manifest.

mod examples;
mod schemas;
mod values;

pub use examples::{
    examples_from_batch, examples_schema, Example, ExampleBatchBuilder, PageCompression,
    RowGroupEntry, SplitWriter, ROW_GROUP_ROWS,
};
pub use schemas::{read_schemas, write_schemas, SchemaRow};
pub use values::{attach_values, read_values, write_values};

use std::fs::File;
use std::path::Path;

use arrow_array::{Array as _, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::DataError;

/// Version of the processed layout; bumped when columns or the manifest change
/// incompatibly.
pub const FORMAT_VERSION: u32 = 1;

pub const TRAIN_FILE: &str = "train.parquet";
pub const VAL_FILE: &str = "val.parquet";
pub const SCHEMAS_FILE: &str = "schemas.parquet";
/// The databases' value indexes (see [`crate::values`]); written when
/// `prepare` reads the databases.
pub const VALUES_FILE: &str = "values.parquet";
pub const MANIFEST_FILE: &str = "manifest.json";

/// A new Snappy-compressed Parquet file of `schema` at `path`, the layout
/// of the small side files (schemas, values).
pub(crate) fn parquet_writer(
    path: &Path,
    schema: SchemaRef,
) -> Result<ArrowWriter<File>, DataError> {
    let file = File::create(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| store_error(path, e))
}

/// The record batches of the Parquet file at `path`.
pub(crate) fn parquet_batches(path: &Path) -> Result<ParquetRecordBatchReader, DataError> {
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|builder| builder.build())
        .map_err(|e| store_error(path, e))
}

/// The string column `name` of a batch read from `path`.
pub(crate) fn string_column(
    path: &Path,
    batch: &RecordBatch,
    name: &str,
) -> Result<StringArray, DataError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .cloned()
        .ok_or_else(|| store_error(path, format!("missing string column `{name}`")))
}

/// Parquet and Arrow errors carry no path; this adds it.
pub(crate) fn store_error(path: &Path, error: impl std::fmt::Display) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(error.to_string()),
    }
}
