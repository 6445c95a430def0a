//! `train.parquet` / `val.parquet`: one row per example.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use arrow_array::builder::{ArrayBuilder as _, StringBuilder, UInt64Builder};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use rayon::ThreadPool;
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

/// How the example files' pages are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageCompression {
    /// Fastest to write and to read; the files are about 3.5x larger than
    /// with zstd.
    #[default]
    None,
    Snappy,
    /// zstd level 1: about half the size of snappy for the same CPU time.
    Zstd,
}

impl PageCompression {
    fn parquet(self) -> Compression {
        match self {
            PageCompression::None => Compression::UNCOMPRESSED,
            PageCompression::Snappy => Compression::SNAPPY,
            PageCompression::Zstd => Compression::ZSTD(ZstdLevel::default()),
        }
    }
}

/// Row groups whose encoding may be under way at once, per file: enough to
/// keep every worker busy, few enough that memory stays small.
fn max_encoding(pool: &ThreadPool) -> usize {
    2 * pool.current_num_threads() + 2
}

type EncodedGroup = Result<Vec<ArrowColumnChunk>, ParquetError>;

/// Writes one example file so that every row group holds one tier: rows wait
/// per tier until a full row group is there. Rows of a tier keep their
/// arrival order, so the file is the same for any thread count as long as
/// batches arrive in source order.
///
/// Row groups are encoded and compressed on the worker pool, several at a
/// time, and appended to the file in the order they were cut, so the bytes
/// do not depend on which worker finished first.
pub struct SplitWriter<'p> {
    path: PathBuf,
    schema: SchemaRef,
    file: SerializedFileWriter<BufWriter<File>>,
    columns: Arc<ArrowRowGroupWriterFactory>,
    pool: &'p ThreadPool,
    pending: BTreeMap<Option<Tier>, (Vec<RecordBatch>, usize)>,
    /// Row groups handed to the pool, oldest first.
    encoding: VecDeque<(RowGroupEntry, mpsc::Receiver<EncodedGroup>)>,
    row_groups: Vec<RowGroupEntry>,
}

impl<'p> SplitWriter<'p> {
    pub fn create(
        path: &Path,
        schema: SchemaRef,
        compression: PageCompression,
        pool: &'p ThreadPool,
    ) -> Result<Self, DataError> {
        let file = File::create(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut props = WriterProperties::builder()
            .set_compression(compression.parquet())
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
        for column in ["question", "sql", "cot"] {
            // Long free text rarely repeats: dictionaries would be built and
            // thrown away for every page, and min/max statistics of prose
            // prune nothing.
            props = props
                .set_column_dictionary_enabled(ColumnPath::from(column), false)
                .set_column_statistics_enabled(ColumnPath::from(column), EnabledStatistics::None);
        }
        // ArrowWriter sets up the file (schema, Arrow metadata); row groups
        // are then encoded outside it, in parallel.
        let (file, columns) = ArrowWriter::try_new(
            BufWriter::with_capacity(1 << 20, file),
            schema.clone(),
            Some(props.build()),
        )
        .and_then(ArrowWriter::into_serialized_writer)
        .map_err(|e| store_error(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            schema,
            file,
            columns: Arc::new(columns),
            pool,
            pending: BTreeMap::new(),
            encoding: VecDeque::new(),
            row_groups: Vec::new(),
        })
    }

    /// Adds rows of one tier; starts encoding every row group that is full.
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
            self.cut_group(tier, ROW_GROUP_ROWS)?;
        }
        Ok(())
    }

    /// Takes the first `rows` pending rows of `tier` as one row group and
    /// hands it to the pool.
    fn cut_group(&mut self, tier: Option<Tier>, rows: usize) -> Result<(), DataError> {
        let Some((batches, pending_rows)) = self.pending.remove(&tier) else {
            return Ok(());
        };
        let mut left = rows;
        let mut group = Vec::new();
        let mut rest = Vec::new();
        for batch in batches {
            if left == 0 {
                rest.push(batch);
            } else if batch.num_rows() <= left {
                left -= batch.num_rows();
                group.push(batch);
            } else {
                group.push(batch.slice(0, left));
                rest.push(batch.slice(left, batch.num_rows() - left));
                left = 0;
            }
        }
        if pending_rows > rows {
            self.pending.insert(tier, (rest, pending_rows - rows));
        }
        // Column writers carry the row group's index (used by encryption).
        let index = self.row_groups.len() + self.encoding.len();
        let writers = self
            .columns
            .create_column_writers(index)
            .map_err(|e| store_error(&self.path, e))?;
        let schema = self.schema.clone();
        let (done, result) = mpsc::sync_channel(1);
        self.pool.spawn_fifo(move || {
            // The writer has gone (after an error) when this fails.
            let _ = done.send(encode_row_group(writers, &schema, &group));
        });
        let entry = RowGroupEntry {
            tier,
            rows: rows as u64,
        };
        self.encoding.push_back((entry, result));
        while self.encoding.len() >= max_encoding(self.pool) {
            self.append_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest row group in encoding and appends it to the file.
    fn append_oldest(&mut self) -> Result<(), DataError> {
        let Some((entry, result)) = self.encoding.pop_front() else {
            return Ok(());
        };
        let chunks = result
            .recv()
            .map_err(|_| store_error(&self.path, "a row group encoder stopped without a result"))?
            .map_err(|e| store_error(&self.path, e))?;
        let mut row_group = self
            .file
            .next_row_group()
            .map_err(|e| store_error(&self.path, e))?;
        for chunk in chunks {
            chunk
                .append_to_row_group(&mut row_group)
                .map_err(|e| store_error(&self.path, e))?;
        }
        row_group.close().map_err(|e| store_error(&self.path, e))?;
        self.row_groups.push(entry);
        Ok(())
    }

    /// Writes the partial row groups left (in tier order) and closes the file.
    pub fn finish(mut self) -> Result<Vec<RowGroupEntry>, DataError> {
        let tiers: Vec<Option<Tier>> = self.pending.keys().copied().collect();
        for tier in tiers {
            let rows = self.pending.get(&tier).map_or(0, |p| p.1);
            self.cut_group(tier, rows)?;
        }
        while !self.encoding.is_empty() {
            self.append_oldest()?;
        }
        self.file.close().map_err(|e| store_error(&self.path, e))?;
        Ok(self.row_groups)
    }
}

/// Encodes and compresses one row group's columns, as `ArrowWriter` does.
fn encode_row_group(
    mut writers: Vec<ArrowColumnWriter>,
    schema: &Schema,
    batches: &[RecordBatch],
) -> EncodedGroup {
    for batch in batches {
        let mut writer = writers.iter_mut();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            for leaf in compute_leaves(field, column)? {
                writer
                    .next()
                    .ok_or_else(|| ParquetError::General("more leaves than columns".into()))?
                    .write(&leaf)?;
            }
        }
    }
    writers.into_iter().map(ArrowColumnWriter::close).collect()
}

#[cfg(test)]
mod tests {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    /// Writes `rows` examples in batches of uneven sizes, the tier varying
    /// per batch, and returns the file's bytes and its row groups.
    fn write(
        dir: &Path,
        name: &str,
        threads: usize,
        compression: PageCompression,
        rows: u64,
    ) -> (Vec<u8>, Vec<RowGroupEntry>) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let path = dir.join(name);
        let schema = examples_schema(false);
        let mut writer = SplitWriter::create(&path, schema.clone(), compression, &pool).unwrap();
        let mut id = 0;
        let mut batch = 0u64;
        while id < rows {
            let tier = Tier::ALL[(batch * 7 % 4) as usize];
            let mut builder = ExampleBatchBuilder::new(schema.clone());
            for _ in 0..(100 + batch * 37 % 900).min(rows - id) {
                let record = Record {
                    db_id: format!("db{}", id % 13).into(),
                    tier: Some(tier),
                    difficulty: None,
                    question_style: Some("Formal".into()),
                    question: format!("How many rows are there in table {id}?").into(),
                    external_knowledge: "".into(),
                    sql: format!("SELECT count(*) FROM t{id}").into(),
                    cot: None,
                };
                builder.push(id, &record);
                id += 1;
            }
            writer.push(Some(tier), builder.finish()).unwrap();
            batch += 1;
        }
        let groups = writer.finish().unwrap();
        (std::fs::read(&path).unwrap(), groups)
    }

    #[test]
    fn parallel_encoding_writes_the_same_bytes_for_any_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let rows = 6 * ROW_GROUP_ROWS as u64 + 123;
        let (one, groups) = write(dir.path(), "one", 1, PageCompression::None, rows);
        let (four, groups_four) = write(dir.path(), "four", 4, PageCompression::None, rows);
        assert!(one == four, "the file depends on the thread count");
        assert_eq!(groups, groups_four);
        assert!(groups.len() >= 6, "{groups:?}");
        assert_eq!(groups.iter().map(|g| g.rows).sum::<u64>(), rows);

        // Row groups on disk are the listed ones, each of one tier, and every
        // row of a tier keeps its order.
        let file = File::open(dir.path().join("one")).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let on_disk: Vec<u64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows() as u64)
            .collect();
        assert_eq!(on_disk, groups.iter().map(|g| g.rows).collect::<Vec<_>>());
        let file = File::open(dir.path().join("one")).unwrap();
        let mut seen = BTreeMap::<Option<Tier>, u64>::new();
        let batches = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .with_batch_size(ROW_GROUP_ROWS)
            .build()
            .unwrap();
        let mut examples = Vec::new();
        for batch in batches {
            examples.extend(examples_from_batch(&batch.unwrap()).unwrap());
        }
        let mut offset = 0;
        for group in &groups {
            for example in &examples[offset..offset + group.rows as usize] {
                assert_eq!(example.tier, group.tier);
                let last = seen.insert(example.tier, example.id);
                assert!(last.is_none_or(|last| last < example.id));
            }
            offset += group.rows as usize;
        }
        assert_eq!(examples.len() as u64, rows);
    }

    #[test]
    fn every_compression_reads_back_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut sizes = Vec::new();
        let mut contents = Vec::new();
        for compression in [
            PageCompression::None,
            PageCompression::Snappy,
            PageCompression::Zstd,
        ] {
            let name = format!("{compression:?}");
            let (bytes, _) = write(dir.path(), &name, 2, compression, 5000);
            sizes.push(bytes.len());
            let file = File::open(dir.path().join(&name)).unwrap();
            let mut examples = Vec::new();
            for batch in ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
            {
                examples.extend(examples_from_batch(&batch.unwrap()).unwrap());
            }
            contents.push(examples);
        }
        assert_eq!(contents[0].len(), 5000);
        assert!(contents.iter().all(|c| *c == contents[0]));
        assert!(
            sizes[2] < sizes[1] && sizes[1] < sizes[0],
            "zstd < snappy < none: {sizes:?}"
        );
    }
}
