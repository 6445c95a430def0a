//! Reading a processed dataset: open reads `manifest.json` and the Parquet
//! footers only, so it costs the same whatever the size; rows are decoded
//! one row group at a time when asked for.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};

use crate::error::DataError;
use crate::prepare::{Manifest, Split};
use crate::reader::Tier;
use crate::store::{
    attach_values, examples_from_batch, read_schemas, read_values, store_error, Example,
    RowGroupEntry, SchemaRow, FORMAT_VERSION, MANIFEST_FILE, SCHEMAS_FILE, TRAIN_FILE, VALUES_FILE,
    VAL_FILE,
};

/// A folder written by `text2sql prepare`.
#[derive(Debug, Clone)]
pub struct ProcessedDataset {
    dir: PathBuf,
    manifest: Manifest,
    train: SplitReader,
    val: SplitReader,
}

impl ProcessedDataset {
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, DataError> {
        let dir = dir.as_ref().to_path_buf();
        let manifest = Manifest::read(&dir.join(MANIFEST_FILE))?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(DataError::Invalid(format!(
                "{}: format version {} is not the {} this build reads; prepare the data again",
                dir.join(MANIFEST_FILE).display(),
                manifest.format_version,
                FORMAT_VERSION
            )));
        }
        let train = SplitReader::open(&dir.join(TRAIN_FILE), &manifest.splits.train.row_groups)?;
        let val = SplitReader::open(&dir.join(VAL_FILE), &manifest.splits.val.row_groups)?;
        Ok(Self {
            dir,
            manifest,
            train,
            val,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn split(&self, split: Split) -> &SplitReader {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    /// Every database's schema and serialized forms, by `db_id`, with its
    /// value index (`schema.values`) when the folder has `values.parquet`.
    pub fn schemas(&self) -> Result<HashMap<String, SchemaRow>, DataError> {
        let mut rows = read_schemas(&self.dir.join(SCHEMAS_FILE))?;
        let values = self.dir.join(VALUES_FILE);
        if values.is_file() {
            let indexes = read_values(&values)?;
            let mut schemas: Vec<_> = rows.iter_mut().map(|row| &mut row.schema).collect();
            attach_values(&values, &mut schemas, indexes)?;
        }
        Ok(rows
            .into_iter()
            .map(|row| (row.schema.db_id.clone(), row))
            .collect())
    }
}

/// A decoded row group and its index.
type CachedGroup = Option<(usize, Arc<Vec<Example>>)>;

#[derive(Debug, Clone, Copy)]
struct Group {
    tier: Option<Tier>,
    start: u64,
    rows: u64,
}

/// One split's examples. Cloning is cheap (the footer is shared).
#[derive(Debug, Clone)]
pub struct SplitReader {
    path: PathBuf,
    metadata: ArrowReaderMetadata,
    groups: Vec<Group>,
    len: u64,
    /// The row group decoded last, for `get` on neighbouring rows.
    cache: Arc<Mutex<CachedGroup>>,
}

impl SplitReader {
    fn open(path: &Path, row_groups: &[RowGroupEntry]) -> Result<Self, DataError> {
        let file = File::open(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let metadata = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
            .map_err(|e| store_error(path, e))?;
        let in_file: Vec<i64> = metadata
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        let in_manifest: Vec<i64> = row_groups.iter().map(|g| g.rows as i64).collect();
        if in_file != in_manifest {
            return Err(store_error(
                path,
                "its row groups do not match manifest.json (files from different runs?)",
            ));
        }
        let mut start = 0;
        let groups = row_groups
            .iter()
            .map(|g| {
                let group = Group {
                    tier: g.tier,
                    start,
                    rows: g.rows,
                };
                start += g.rows;
                group
            })
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            metadata,
            groups,
            len: start,
            cache: Arc::default(),
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows of one tier (`None`: rows without a tier, as in Spider).
    pub fn tier_len(&self, tier: Option<Tier>) -> u64 {
        self.groups
            .iter()
            .filter(|g| g.tier == tier)
            .map(|g| g.rows)
            .sum()
    }

    pub fn row_group_count(&self) -> usize {
        self.groups.len()
    }

    /// The tier and row count of a row group.
    pub fn row_group_info(&self, group: usize) -> Option<(Option<Tier>, u64)> {
        self.groups.get(group).map(|g| (g.tier, g.rows))
    }

    /// Decodes one row group.
    pub fn read_row_group(&self, group: usize) -> Result<Arc<Vec<Example>>, DataError> {
        if let Some((cached, rows)) = &*self.cache.lock().unwrap_or_else(|p| p.into_inner()) {
            if *cached == group {
                return Ok(rows.clone());
            }
        }
        let info = self
            .groups
            .get(group)
            .ok_or_else(|| store_error(&self.path, format!("row group {group} does not exist")))?;
        let file = File::open(&self.path).map_err(|source| DataError::Io {
            path: self.path.clone(),
            source,
        })?;
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                .with_row_groups(vec![group])
                .with_batch_size(info.rows.max(1) as usize)
                .build()
                .map_err(|e| store_error(&self.path, e))?;
        let mut rows = Vec::with_capacity(info.rows as usize);
        for batch in reader {
            let batch = batch.map_err(|e| store_error(&self.path, e))?;
            rows.extend(examples_from_batch(&batch).map_err(|e| store_error(&self.path, e))?);
        }
        let rows = Arc::new(rows);
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((group, rows.clone()));
        Ok(rows)
    }

    /// The example at row `index` in file order.
    pub fn get(&self, index: u64) -> Result<Example, DataError> {
        let group = self.groups.partition_point(|g| g.start + g.rows <= index);
        let Some(info) = self.groups.get(group) else {
            return Err(DataError::Invalid(format!(
                "{}: row {index} is out of range (the split has {} rows)",
                self.path.display(),
                self.len
            )));
        };
        let rows = self.read_row_group(group)?;
        Ok(rows[(index - info.start) as usize].clone())
    }

    /// Every example, in file order.
    pub fn iter(&self) -> SplitIter<'_> {
        SplitIter::new(self, (0..self.groups.len()).collect())
    }

    /// The examples of one tier, in file order; only its row groups are read.
    pub fn iter_tier(&self, tier: Tier) -> SplitIter<'_> {
        let groups = (0..self.groups.len())
            .filter(|&g| self.groups[g].tier == Some(tier))
            .collect();
        SplitIter::new(self, groups)
    }
}

/// Iterates over examples row group by row group.
pub struct SplitIter<'a> {
    reader: &'a SplitReader,
    groups: std::vec::IntoIter<usize>,
    current: Arc<Vec<Example>>,
    pos: usize,
}

impl<'a> SplitIter<'a> {
    fn new(reader: &'a SplitReader, groups: Vec<usize>) -> Self {
        Self {
            reader,
            groups: groups.into_iter(),
            current: Arc::default(),
            pos: 0,
        }
    }
}

impl Iterator for SplitIter<'_> {
    type Item = Result<Example, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.pos >= self.current.len() {
            let group = self.groups.next()?;
            match self.reader.read_row_group(group) {
                Ok(rows) => {
                    self.current = rows;
                    self.pos = 0;
                }
                Err(e) => return Some(Err(e)),
            }
        }
        self.pos += 1;
        Some(Ok(self.current[self.pos - 1].clone()))
    }
}
