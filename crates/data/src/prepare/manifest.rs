//! `manifest.json`: what was prepared from what, with which settings, and
//! where each tier's rows are. It holds no times, so two runs on the same
//! input write the same bytes.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::split::SplitBy;
use crate::error::DataError;
use crate::reader::{Format, InvalidCause};
use crate::store::RowGroupEntry;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub created_by: String,
    pub source_format: Format,
    pub sources: Sources,
    pub seed: u64,
    pub split_by: SplitBy,
    pub val_ratio: f64,
    /// `--subset-size` as asked; `records.kept` says how many were taken.
    pub subset_size: Option<u64>,
    pub keep_cot: bool,
    /// Whether schemas were enriched with example values from the databases.
    pub enriched: bool,
    pub records: RecordCounts,
    /// Rejected records per cause (only with `--skip-invalid`; otherwise
    /// the first one stops the run).
    pub invalid: BTreeMap<InvalidCause, u64>,
    pub splits: Splits,
    /// Databases in `schemas.parquet`: those used by at least one kept record.
    pub databases: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sources {
    pub data: SourceFile,
    pub tables: SourceFile,
    pub databases: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RecordCounts {
    /// Records found in the data file (valid or not).
    pub read: u64,
    pub valid: u64,
    pub invalid: u64,
    /// Written to train + val (fewer than `valid` with a subset).
    pub kept: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Splits {
    pub train: SplitInfo,
    pub val: SplitInfo,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SplitInfo {
    pub rows: u64,
    pub databases: u64,
    /// Rows per tier (`"none"` for corpora without tiers).
    pub tiers: BTreeMap<String, u64>,
    /// BIRD's difficulty labels, when present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub difficulties: BTreeMap<String, u64>,
    /// Row groups in file order; each holds one tier.
    pub row_groups: Vec<RowGroupEntry>,
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Self, DataError> {
        let bytes = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| DataError::Json {
            file: path.display().to_string(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    }
}
