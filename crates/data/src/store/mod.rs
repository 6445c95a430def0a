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

use std::path::Path;

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

/// Parquet and Arrow errors carry no path; this adds it.
pub(crate) fn store_error(path: &Path, error: impl std::fmt::Display) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(error.to_string()),
    }
}
