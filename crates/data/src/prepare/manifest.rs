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
    /// What `values.parquet` holds (written when the databases were read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<ValuesSummary>,
}

/// The size of `values.parquet` and the caps it was built with, so that a
/// store built with other caps has another manifest (and token cache key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValuesSummary {
    /// Distinct values over all databases and columns.
    pub values: u64,
    /// Columns with at least one value.
    pub columns: u64,
    pub max_values_per_column: u64,
    pub max_value_chars: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sources {
    pub data: SourceFile,
    pub tables: SourceFile,
    pub databases: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SourceFileOnDisk")]
pub struct SourceFile {
    pub path: String,
    pub bytes: u64,
    pub checksum: Checksum,
}

/// A file's digest and the algorithm that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    /// Lowercase hex, as `b3sum` / `sha256sum` print it.
    pub hex: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    /// What `prepare` writes: several times faster than SHA-256 on one core
    /// (SIMD over many chunks at once), still a cryptographic hash.
    Blake3,
    /// Written by builds before BLAKE3, as `"sha256": "<hex>"`; still read.
    Sha256,
}

/// A source entry as stored, in the current form or the older
/// `"sha256": "<hex>"` one, so stores prepared before still load.
#[derive(Deserialize)]
struct SourceFileOnDisk {
    path: String,
    bytes: u64,
    #[serde(default)]
    checksum: Option<Checksum>,
    #[serde(default)]
    sha256: Option<String>,
}

impl TryFrom<SourceFileOnDisk> for SourceFile {
    type Error = String;

    fn try_from(disk: SourceFileOnDisk) -> Result<Self, String> {
        let checksum = match (disk.checksum, disk.sha256) {
            (Some(checksum), _) => checksum,
            (None, Some(hex)) => Checksum {
                algorithm: ChecksumAlgorithm::Sha256,
                hex,
            },
            (None, None) => return Err(format!("source `{}` has no checksum", disk.path)),
        };
        Ok(Self {
            path: disk.path,
            bytes: disk.bytes,
            checksum,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_checksums_round_trip_and_older_sha256_entries_still_read() {
        let current = SourceFile {
            path: "data.json".into(),
            bytes: 3,
            checksum: Checksum {
                algorithm: ChecksumAlgorithm::Blake3,
                hex: "ab".into(),
            },
        };
        let text = serde_json::to_string(&current).unwrap();
        assert_eq!(
            text,
            r#"{"path":"data.json","bytes":3,"checksum":{"algorithm":"blake3","hex":"ab"}}"#
        );
        assert_eq!(serde_json::from_str::<SourceFile>(&text).unwrap(), current);

        let older: SourceFile =
            serde_json::from_str(r#"{"path":"t.json","bytes":5,"sha256":"cd"}"#).unwrap();
        assert_eq!(older.checksum.algorithm, ChecksumAlgorithm::Sha256);
        assert_eq!(older.checksum.hex, "cd");

        let error = serde_json::from_str::<SourceFile>(r#"{"path":"t.json","bytes":5}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`t.json` has no checksum"), "{error}");
    }
}
