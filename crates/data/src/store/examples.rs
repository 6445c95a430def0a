//! `train.parquet` / `val.parquet`: one row per example.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder as _, StringBuilder, UInt64Builder};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use super::store_error;
use crate::error::DataError;
use crate::reader::{Record, Tier};

/// Rows per row group. Small enough that reading one row group (the unit the
/// loader decodes) takes milliseconds, large enough for good compression.
pub const ROW_GROUP_ROWS: usize = 4096;

/// One processed example, as the loader yields it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The record's index in the source file: stable across runs of the same
    /// source (whose checksum the manifest holds).
    pub id: u64,
    pub db_id: String,
    /// SynSQL's complexity; `None` for Spider and BIRD.
    pub tier: Option<Tier>,
    /// BIRD's difficulty label (simple/moderate/challenging), as written.
    pub difficulty: Option<String>,
    pub question_style: Option<String>,
    pub question: String,
    /// Empty when the record has none.
    pub external_knowledge: String,
    pub sql: String,
    /// Only when prepared with `--keep-cot`.
    pub cot: Option<String>,
}

/// The Arrow schema of the example files; `cot` only when kept.
pub fn examples_schema(keep_cot: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("db_id", DataType::Utf8, false),
        Field::new("complexity", DataType::Utf8, true),
        Field::new("difficulty", DataType::Utf8, true),
        Field::new("question_style", DataType::Utf8, true),
        Field::new("question", DataType::Utf8, false),
        Field::new("external_knowledge", DataType::Utf8, false),
        Field::new("sql", DataType::Utf8, false),
    ];
    if keep_cot {
        fields.push(Field::new("cot", DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
}

/// Collects examples column by column.
pub struct ExampleBatchBuilder {
    schema: SchemaRef,
    id: UInt64Builder,
    db_id: StringBuilder,
    complexity: StringBuilder,
    difficulty: StringBuilder,
    question_style: StringBuilder,
    question: StringBuilder,
    external_knowledge: StringBuilder,
    sql: StringBuilder,
    cot: Option<StringBuilder>,
}

impl ExampleBatchBuilder {
    pub fn new(schema: SchemaRef) -> Self {
        let keep_cot = schema.column_with_name("cot").is_some();
        Self {
            schema,
            id: UInt64Builder::new(),
            db_id: StringBuilder::new(),
            complexity: StringBuilder::new(),
            difficulty: StringBuilder::new(),
            question_style: StringBuilder::new(),
            question: StringBuilder::new(),
            external_knowledge: StringBuilder::new(),
            sql: StringBuilder::new(),
            cot: keep_cot.then(StringBuilder::new),
        }
    }

    pub fn push(&mut self, id: u64, record: &Record<'_>) {
        self.id.append_value(id);
        self.db_id.append_value(&record.db_id);
        self.complexity.append_option(record.tier.map(Tier::as_str));
        self.difficulty.append_option(record.difficulty.as_deref());
        self.question_style
            .append_option(record.question_style.as_deref());
        self.question.append_value(&record.question);
        self.external_knowledge
            .append_value(&record.external_knowledge);
        self.sql.append_value(&record.sql);
        if let Some(cot) = &mut self.cot {
            cot.append_option(record.cot.as_deref());
        }
    }

    pub fn len(&self) -> usize {
        self.id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn finish(mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.db_id.finish()),
            Arc::new(self.complexity.finish()),
            Arc::new(self.difficulty.finish()),
            Arc::new(self.question_style.finish()),
            Arc::new(self.question.finish()),
            Arc::new(self.external_knowledge.finish()),
            Arc::new(self.sql.finish()),
        ];
        if let Some(mut cot) = self.cot.take() {
            columns.push(Arc::new(cot.finish()));
        }
        // The columns match the schema by construction.
        RecordBatch::try_new(self.schema, columns).unwrap_or_else(|e| unreachable!("{e}"))
    }
}

fn string_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, String> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("missing column `{name}`"))?
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| format!("column `{name}` is not a string column"))
}

fn optional(array: &StringArray, i: usize) -> Option<String> {
    array.is_valid(i).then(|| array.value(i).to_string())
}

/// Turns a batch read from an example file back into examples.
pub fn examples_from_batch(batch: &RecordBatch) -> Result<Vec<Example>, String> {
    let id = batch
        .column_by_name("id")
        .ok_or("missing column `id`")?
        .as_any()
        .downcast_ref::<UInt64Array>()
        .ok_or("column `id` is not UInt64")?;
    let db_id = string_column(batch, "db_id")?;
    let complexity = string_column(batch, "complexity")?;
    let difficulty = string_column(batch, "difficulty")?;
    let question_style = string_column(batch, "question_style")?;
    let question = string_column(batch, "question")?;
    let external_knowledge = string_column(batch, "external_knowledge")?;
    let sql = string_column(batch, "sql")?;
    let cot = match batch.column_by_name("cot") {
        Some(_) => Some(string_column(batch, "cot")?),
        None => None,
    };
    (0..batch.num_rows())
        .map(|i| {
            let tier = match optional(complexity, i) {
                Some(s) => Some(s.parse::<Tier>()?),
                None => None,
            };
            Ok(Example {
                id: id.value(i),
                db_id: db_id.value(i).to_string(),
                tier,
                difficulty: optional(difficulty, i),
                question_style: optional(question_style, i),
                question: question.value(i).to_string(),
                external_knowledge: external_knowledge.value(i).to_string(),
                sql: sql.value(i).to_string(),
                cot: cot.and_then(|c| optional(c, i)),
            })
        })
        .collect()
}

/// One row group of an example file: its tier (`None` for corpora without
/// tiers) and row count, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowGroupEntry {
    pub tier: Option<Tier>,
    pub rows: u64,
}

/// Writes one example file so that every row group holds one tier: rows wait
/// per tier until a full row group is there. Rows of a tier keep their
/// arrival order, so the file is the same for any thread count as long as
/// batches arrive in source order.
pub struct SplitWriter {
    path: PathBuf,
    writer: ArrowWriter<BufWriter<File>>,
    pending: BTreeMap<Option<Tier>, (Vec<RecordBatch>, usize)>,
    row_groups: Vec<RowGroupEntry>,
}

impl SplitWriter {
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self, DataError> {
        let file = File::create(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            // Long free text rarely repeats: dictionaries would be built and
            // thrown away for every page.
            .set_column_dictionary_enabled(ColumnPath::from("question"), false)
            .set_column_dictionary_enabled(ColumnPath::from("sql"), false)
            .set_column_dictionary_enabled(ColumnPath::from("cot"), false)
            .build();
        let writer =
            ArrowWriter::try_new(BufWriter::with_capacity(1 << 20, file), schema, Some(props))
                .map_err(|e| store_error(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
            pending: BTreeMap::new(),
            row_groups: Vec::new(),
        })
    }

    /// Adds rows of one tier; writes every row group that is full.
    pub fn push(&mut self, tier: Option<Tier>, batch: RecordBatch) -> Result<(), DataError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let entry = self.pending.entry(tier).or_default();
        entry.1 += batch.num_rows();
        entry.0.push(batch);
        while self
            .pending
            .get(&tier)
            .is_some_and(|p| p.1 >= ROW_GROUP_ROWS)
        {
            self.write_group(tier, ROW_GROUP_ROWS)?;
        }
        Ok(())
    }

    /// Writes the first `rows` pending rows of `tier` as one row group.
    fn write_group(&mut self, tier: Option<Tier>, rows: usize) -> Result<(), DataError> {
        let Some((batches, pending_rows)) = self.pending.remove(&tier) else {
            return Ok(());
        };
        let mut left = rows;
        let mut rest = Vec::new();
        for batch in batches {
            if left == 0 {
                rest.push(batch);
            } else if batch.num_rows() <= left {
                left -= batch.num_rows();
                self.writer
                    .write(&batch)
                    .map_err(|e| store_error(&self.path, e))?;
            } else {
                self.writer
                    .write(&batch.slice(0, left))
                    .map_err(|e| store_error(&self.path, e))?;
                rest.push(batch.slice(left, batch.num_rows() - left));
                left = 0;
            }
        }
        self.writer
            .flush()
            .map_err(|e| store_error(&self.path, e))?;
        self.row_groups.push(RowGroupEntry {
            tier,
            rows: rows as u64,
        });
        if pending_rows > rows {
            self.pending.insert(tier, (rest, pending_rows - rows));
        }
        Ok(())
    }

    /// Writes the partial row groups left (in tier order) and closes the file.
    pub fn finish(mut self) -> Result<Vec<RowGroupEntry>, DataError> {
        let tiers: Vec<Option<Tier>> = self.pending.keys().copied().collect();
        for tier in tiers {
            let rows = self.pending.get(&tier).map_or(0, |p| p.1);
            self.write_group(tier, rows)?;
        }
        self.writer
            .close()
            .map_err(|e| store_error(&self.path, e))?;
        Ok(self.row_groups)
    }
}
