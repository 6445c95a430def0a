//! `text2sql prepare`: stream a corpus, validate every record against the
//! tables file, split it, and write the processed store.
//!
//! Shape of the pipeline: one thread finds record boundaries in the
//! memory-mapped file ([`ArrayScanner`]), hashes the bytes it passed and
//! hands out batches; a rayon pool parses, validates and turns them into
//! Arrow columns; one thread puts the results back in source order and cuts
//! Parquet row groups, which the pool encodes and compresses and that thread
//! appends in order. A window on batches in flight bounds memory, and pages
//! of the mapping already written are given back to the kernel, so memory
//! does not grow with the input. Because results are written in source
//! order, the output is the same for any thread count.

mod manifest;
mod split;

pub use manifest::{
    Checksum, ChecksumAlgorithm, Manifest, RecordCounts, SourceFile, Sources, SplitInfo, Splits,
    ValuesSummary,
};
pub use split::{database_split, example_split, stratified_subset, Split, SplitBy};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Condvar, Mutex};
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use memmap2::Mmap;
use rayon::prelude::*;

use crate::atomic;
use crate::error::DataError;
use crate::reader::{
    parse_scanned_record, ArrayScanner, Format, InvalidCause, Record, RecordError, Span,
    StructureError, Tier,
};
use crate::schema::{enrich_from_sqlite, parse_tables_json, DatabaseSchema};
use crate::store::{
    examples_schema, write_schemas, write_values, ExampleBatchBuilder, PageCompression,
    RowGroupEntry, SchemaRow, SplitWriter, FORMAT_VERSION, MANIFEST_FILE, SCHEMAS_FILE, TRAIN_FILE,
    VALUES_FILE, VAL_FILE,
};
use crate::values::{index_values_from_sqlite, MAX_VALUES_PER_COLUMN, MAX_VALUE_CHARS};

/// The default share of validation for SynSQL and for Spider's and BIRD's
/// training files (`train_spider.json`, `train.json`); their other files
/// (`dev.json`) are evaluation sets and go to validation whole unless a
/// ratio is given.
pub const DEFAULT_VAL_RATIO: f64 = 0.05;

/// A batch is cut at this many bytes or records, whichever comes first.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_RECORDS: usize = 2048;
/// Mapped pages are handed back in steps of this size.
const RELEASE_STEP: usize = 64 << 20;

#[derive(Debug, Clone)]
pub struct PrepareOptions {
    pub data: PathBuf,
    pub tables: PathBuf,
    pub out: PathBuf,
    /// `<dir>/<db_id>/<db_id>.sqlite`: enrich schemas with example values and
    /// require every used database to exist.
    pub databases: Option<PathBuf>,
    pub format: Format,
    pub split_by: SplitBy,
    /// `None`: [`DEFAULT_VAL_RATIO`] for SynSQL and for Spider's and BIRD's
    /// training files (whose name starts with `train`), 1.0 for their
    /// evaluation files.
    pub val_ratio: Option<f64>,
    pub seed: u64,
    pub subset_size: Option<u64>,
    pub skip_invalid: bool,
    pub keep_cot: bool,
    pub compression: PageCompression,
    /// Worker threads; `None` uses every core.
    pub threads: Option<usize>,
    /// Replace `out` when it exists.
    pub overwrite: bool,
}

impl PrepareOptions {
    /// The defaults of `text2sql prepare`.
    pub fn new(
        data: impl Into<PathBuf>,
        tables: impl Into<PathBuf>,
        out: impl Into<PathBuf>,
    ) -> Self {
        Self {
            data: data.into(),
            tables: tables.into(),
            out: out.into(),
            databases: None,
            format: Format::Synsql,
            split_by: SplitBy::Database,
            val_ratio: None,
            seed: 42,
            subset_size: None,
            skip_invalid: false,
            keep_cot: false,
            compression: PageCompression::default(),
            threads: None,
            overwrite: false,
        }
    }

    pub fn effective_val_ratio(&self) -> f64 {
        let training_file = self
            .data
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("train"));
        self.val_ratio.unwrap_or(match self.format {
            Format::Synsql => DEFAULT_VAL_RATIO,
            Format::Spider | Format::Bird if training_file => DEFAULT_VAL_RATIO,
            Format::Spider | Format::Bird => 1.0,
        })
    }
}

/// What a run did; the manifest is also on disk, the rest is about this run.
#[derive(Debug, Clone)]
pub struct PrepareReport {
    pub manifest: Manifest,
    pub out: PathBuf,
    pub wall_seconds: f64,
}

impl PrepareReport {
    pub fn megabytes_per_second(&self) -> f64 {
        self.manifest.sources.data.bytes as f64 / 1e6 / self.wall_seconds.max(1e-9)
    }
}

struct DbInfo {
    index: usize,
    split: Split,
    /// With `--databases`: the SQLite file, when it is missing.
    missing_file: Option<PathBuf>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a preparation is, for a progress display: bytes of the data file
/// read (a subset needs two passes, so `total_bytes` is then twice the
/// file) and records read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepareProgress {
    pub bytes_done: u64,
    pub total_bytes: u64,
    pub records_read: u64,
}

/// Runs the whole preparation; `on_progress` is called after each batch
/// is written (from the writer thread), so a caller can draw a bar.
pub fn prepare(
    opts: &PrepareOptions,
    on_progress: &(dyn Fn(PrepareProgress) + Sync),
) -> Result<PrepareReport, DataError> {
    let started = Instant::now();
    let val_ratio = opts.effective_val_ratio();
    if !(0.0..=1.0).contains(&val_ratio) {
        return Err(DataError::Invalid(format!(
            "--val-ratio must be between 0 and 1, got {val_ratio}"
        )));
    }
    if opts.subset_size == Some(0) {
        return Err(DataError::Invalid(
            "--subset-size must be at least 1".into(),
        ));
    }
    if opts.out.exists() && !opts.overwrite {
        return Err(DataError::Invalid(format!(
            "{} already exists; pass --overwrite to replace it",
            opts.out.display()
        )));
    }

    let tables_bytes = std::fs::read(&opts.tables).map_err(io_error(&opts.tables))?;
    let schemas = parse_tables_json(&tables_bytes, &opts.tables.display().to_string())?;
    let dbs: HashMap<String, DbInfo> = schemas
        .iter()
        .enumerate()
        .map(|(index, schema)| {
            let missing_file = opts.databases.as_ref().and_then(|dir| {
                let path = database_path(dir, &schema.db_id);
                (!path.is_file()).then_some(path)
            });
            let info = DbInfo {
                index,
                split: database_split(opts.seed, &schema.db_id, val_ratio),
                missing_file,
            };
            (schema.db_id.clone(), info)
        })
        .collect();

    let data_file = File::open(&opts.data).map_err(io_error(&opts.data))?;
    let data_len = data_file.metadata().map_err(io_error(&opts.data))?.len();
    // SAFETY: the mapping is read-only and the file is not ours to change;
    // a concurrent writer truncating it would fault, as with any mmap reader.
    let mmap = if data_len > 0 {
        let map = unsafe { Mmap::map(&data_file) }.map_err(io_error(&opts.data))?;
        let _ = map.advise(memmap2::Advice::Sequential);
        Some(map)
    } else {
        None
    };
    let bytes: &[u8] = mmap.as_deref().unwrap_or(&[]);

    let pool = {
        let mut builder = rayon::ThreadPoolBuilder::new();
        if let Some(n) = opts.threads {
            builder = builder.num_threads(n.max(1));
        }
        builder
            .build()
            .map_err(|e| DataError::Invalid(format!("cannot start worker threads: {e}")))?
    };

    if opts.out.file_name().is_none() {
        return Err(DataError::Invalid(format!(
            "--out {} has no folder name",
            opts.out.display()
        )));
    }
    // Built beside `--out` and renamed into place once complete; deleted
    // when dropped on an error.
    let partial = atomic::StagedDir::new(&opts.out)?;

    let passes = if opts.subset_size.is_some() { 2 } else { 1 };
    let ctx = PassContext {
        pool: &pool,
        compression: opts.compression,
        bytes,
        mmap: mmap.as_ref(),
        file: opts.data.display().to_string(),
        format: opts.format,
        dbs: &dbs,
        split_by: opts.split_by,
        val_ratio,
        seed: opts.seed,
        skip_invalid: opts.skip_invalid,
        keep_cot: opts.keep_cot,
        schema: examples_schema(opts.keep_cot),
        total_bytes: data_len * passes,
        on_progress,
    };

    // The first pass also hashes the data file, as it scans it.
    let (first, second) = match opts.subset_size {
        None => {
            let out = ctx.run(Sink::Write(partial.path().to_path_buf()), None, 0, true)?;
            (out, None)
        }
        Some(size) => {
            let index = ctx.run(Sink::Index, None, 0, true)?;
            let chosen = stratified_subset(&index.index, size, opts.seed);
            let out = ctx.run(
                Sink::Write(partial.path().to_path_buf()),
                Some(&chosen),
                data_len,
                false,
            )?;
            (index, Some(out))
        }
    };
    let data_hash = first.checksum.clone();
    // With a subset, validity counts come from the full first pass and
    // everything else from the pass that wrote.
    let (validated, written) = match second {
        Some(second) => (first.counts, second),
        None => (first.counts.clone(), first),
    };

    let used: BTreeSet<usize> = written.seen.iter().map(|&(db, _)| db).collect();
    let rows: Vec<SchemaRow> = pool.install(|| {
        used.par_iter()
            .map(|&i| {
                let mut schema: DatabaseSchema = schemas[i].clone();
                if let Some(dir) = &opts.databases {
                    let path = database_path(dir, &schema.db_id);
                    enrich_from_sqlite(&mut schema, &path)?;
                    index_values_from_sqlite(&mut schema, &path)?;
                }
                Ok(SchemaRow::new(schema))
            })
            .collect::<Result<_, DataError>>()
    })?;
    write_schemas(&partial.path().join(SCHEMAS_FILE), &rows)?;
    let values_summary = match opts.databases {
        Some(_) => {
            let schemas: Vec<&DatabaseSchema> = rows.iter().map(|r| &r.schema).collect();
            write_values(&partial.path().join(VALUES_FILE), &schemas)?;
            let indexes = schemas.iter().filter_map(|s| s.values.as_deref());
            let (mut values, mut columns) = (0, 0);
            for index in indexes {
                values += index.value_count() as u64;
                columns += index.columns().len() as u64;
            }
            Some(ValuesSummary {
                values,
                columns,
                max_values_per_column: MAX_VALUES_PER_COLUMN as u64,
                max_value_chars: MAX_VALUE_CHARS as u64,
            })
        }
        None => None,
    };

    let [train_groups, val_groups] = written.row_groups.unwrap_or_default();
    let split_info = |split: Split, row_groups: Vec<RowGroupEntry>| {
        let tiers = written
            .tier_rows
            .iter()
            .filter(|((s, _), _)| *s == split)
            .map(|((_, tier), n)| (tier.map_or("none", Tier::as_str).to_string(), *n))
            .collect();
        let difficulties = written
            .difficulties
            .iter()
            .filter(|((s, _), _)| *s == split)
            .map(|((_, d), n)| (d.clone(), *n))
            .collect();
        SplitInfo {
            rows: row_groups.iter().map(|g| g.rows).sum(),
            databases: written.seen.iter().filter(|(_, s)| *s == split).count() as u64,
            tiers,
            difficulties,
            row_groups,
        }
    };
    let splits = Splits {
        train: split_info(Split::Train, train_groups),
        val: split_info(Split::Val, val_groups),
    };
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        created_by: format!("text2sql {}", env!("CARGO_PKG_VERSION")),
        source_format: opts.format,
        sources: Sources {
            data: SourceFile {
                path: opts.data.display().to_string(),
                bytes: data_len,
                checksum: Checksum {
                    algorithm: ChecksumAlgorithm::Blake3,
                    hex: data_hash,
                },
            },
            tables: SourceFile {
                path: opts.tables.display().to_string(),
                bytes: tables_bytes.len() as u64,
                checksum: Checksum {
                    algorithm: ChecksumAlgorithm::Blake3,
                    hex: blake3::hash(&tables_bytes).to_hex().to_string(),
                },
            },
            databases: opts.databases.as_ref().map(|d| d.display().to_string()),
        },
        seed: opts.seed,
        split_by: opts.split_by,
        val_ratio,
        subset_size: opts.subset_size,
        keep_cot: opts.keep_cot,
        enriched: opts.databases.is_some(),
        records: RecordCounts {
            read: validated.read,
            valid: validated.valid,
            invalid: validated.invalid.values().sum(),
            kept: splits.train.rows + splits.val.rows,
        },
        invalid: validated.invalid,
        splits,
        databases: rows.len() as u64,
        values: values_summary,
    };
    let manifest_path = partial.path().join(MANIFEST_FILE);
    let mut text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| DataError::Invalid(format!("cannot serialize the manifest: {e}")))?;
    text.push('\n');
    std::fs::write(&manifest_path, text).map_err(io_error(&manifest_path))?;

    partial.commit()?;
    Ok(PrepareReport {
        manifest,
        out: opts.out.clone(),
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Where a database's SQLite file is expected.
pub fn database_path(dir: &Path, db_id: &str) -> PathBuf {
    dir.join(db_id).join(format!("{db_id}.sqlite"))
}

/// Drops the pages of `start..end` from this process's mapping.
fn release_pages(mmap: &Mmap, start: usize, end: usize) {
    if end > start {
        // SAFETY: a read-only shared file mapping: dropped pages are read back
        // from the file if touched again, so no data can be lost or changed.
        let _ = unsafe {
            mmap.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
        };
    }
}

struct PassContext<'a> {
    /// Parses batches and encodes row groups; the scanner and the writer
    /// run on threads of their own, so that the pool's threads never wait.
    pool: &'a rayon::ThreadPool,
    compression: PageCompression,
    bytes: &'a [u8],
    mmap: Option<&'a Mmap>,
    file: String,
    format: Format,
    dbs: &'a HashMap<String, DbInfo>,
    split_by: SplitBy,
    val_ratio: f64,
    seed: u64,
    skip_invalid: bool,
    keep_cot: bool,
    schema: SchemaRef,
    total_bytes: u64,
    on_progress: &'a (dyn Fn(PrepareProgress) + Sync),
}

/// What one pass does with each batch.
struct Job<'a> {
    /// With a subset: the records to keep (sorted ids).
    chosen: Option<&'a [u64]>,
    index_only: bool,
    /// Hash the data file while scanning it.
    hash: bool,
}

enum Sink {
    /// Validate only, and list every valid record's tier (for the subset).
    Index,
    /// Write `train.parquet` and `val.parquet` into this folder.
    Write(PathBuf),
}

struct BatchIn {
    seq: u64,
    spans: Vec<Span>,
    /// Byte offset where this batch's part of the file ends.
    end: usize,
    structure: Option<StructureError>,
}

#[derive(Default)]
struct BatchOut {
    seq: u64,
    end: usize,
    counts: Counts,
    rows: Vec<(Split, Option<Tier>, RecordBatch)>,
    index: Vec<(u64, Option<Tier>)>,
    seen: Vec<(usize, Split)>,
    difficulties: Vec<(Split, String)>,
    error: Option<DataError>,
}

#[derive(Default, Clone)]
struct Counts {
    read: u64,
    valid: u64,
    invalid: BTreeMap<InvalidCause, u64>,
}

struct PassOutcome {
    counts: Counts,
    index: Vec<(u64, Option<Tier>)>,
    seen: BTreeSet<(usize, Split)>,
    tier_rows: BTreeMap<(Split, Option<Tier>), u64>,
    difficulties: BTreeMap<(Split, String), u64>,
    row_groups: Option<[Vec<RowGroupEntry>; 2]>,
    /// BLAKE3 of the data file, in hex; empty when the pass did not hash.
    checksum: String,
}

/// Back-pressure between the scanner and the writer: at most `window`
/// batches are between them.
struct Flow {
    written: Mutex<(u64, usize)>,
    changed: Condvar,
    abort: AtomicBool,
    window: u64,
}

impl Flow {
    fn stop(&self) {
        self.abort.store(true, Ordering::Relaxed);
        self.changed.notify_all();
    }
}

impl<'a> PassContext<'a> {
    fn run(
        &self,
        sink: Sink,
        chosen: Option<&[u64]>,
        progress_base: u64,
        hash: bool,
    ) -> Result<PassOutcome, DataError> {
        let threads = self.pool.current_num_threads();
        let flow = Flow {
            written: Mutex::new((0, 0)),
            changed: Condvar::new(),
            abort: AtomicBool::new(false),
            window: 4 * threads as u64 + 4,
        };
        let job = Job {
            chosen,
            index_only: matches!(sink, Sink::Index),
            hash,
        };
        let (out_tx, out_rx) = mpsc::channel::<BatchOut>();
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| {
                let result = self.collect(sink, out_rx, &flow, progress_base);
                flow.stop();
                result
            });
            // This thread scans; the pool parses what it hands out.
            let checksum = self
                .pool
                .in_place_scope(|workers| self.scan(workers, out_tx, &flow, &job));
            let mut outcome = writer
                .join()
                .map_err(|_| DataError::Invalid("the Parquet writer panicked".into()))??;
            outcome.checksum = checksum.unwrap_or_default();
            Ok(outcome)
        })
    }

    /// Cuts the file into batches of records, in order, and spawns their
    /// processing on the pool. With `job.hash`, also hashes each batch's
    /// bytes while they are still in the CPU cache from scanning, and
    /// returns the file's BLAKE3 once it reached the end.
    fn scan<'s>(
        &'s self,
        workers: &rayon::Scope<'s>,
        out: mpsc::Sender<BatchOut>,
        flow: &'s Flow,
        job: &'s Job<'s>,
    ) -> Option<String> {
        let mut hasher = job.hash.then(blake3::Hasher::new);
        let mut hashed = 0usize;
        let mut scanner = ArrayScanner::new(self.bytes);
        let mut seq = 0u64;
        let mut released = 0usize;
        let mut spans = Vec::new();
        let mut batch_bytes = 0usize;
        let mut send = |spans: Vec<Span>, end: usize, structure: Option<StructureError>| -> bool {
            let mut written = flow.written.lock().unwrap_or_else(|p| p.into_inner());
            while seq >= written.0 + flow.window && !flow.abort.load(Ordering::Relaxed) {
                written = flow
                    .changed
                    .wait(written)
                    .unwrap_or_else(|p| p.into_inner());
            }
            let done_bytes = written.1;
            drop(written);
            if flow.abort.load(Ordering::Relaxed) {
                return false;
            }
            self.release(&mut released, done_bytes);
            let batch = BatchIn {
                seq,
                spans,
                end,
                structure,
            };
            seq += 1;
            if let Some(hasher) = &mut hasher {
                hasher.update(&self.bytes[hashed..end]);
                hashed = end;
            }
            let out = out.clone();
            workers.spawn(move |_| {
                if !flow.abort.load(Ordering::Relaxed) {
                    // The writer has gone when this fails; it has the error.
                    let _ = out.send(self.process(batch, job.chosen, job.index_only));
                }
            });
            true
        };
        loop {
            match scanner.next() {
                Some(Ok(span)) => {
                    batch_bytes += span.end - span.start;
                    spans.push(span);
                    if batch_bytes >= BATCH_BYTES || spans.len() >= BATCH_RECORDS {
                        let end = span.end;
                        if !send(std::mem::take(&mut spans), end, None) {
                            return None;
                        }
                        batch_bytes = 0;
                    }
                }
                Some(Err(error)) => {
                    let end = self.bytes.len();
                    if !send(std::mem::take(&mut spans), end, Some(error)) {
                        return None;
                    }
                    break;
                }
                None => {
                    if !send(std::mem::take(&mut spans), self.bytes.len(), None) {
                        return None;
                    }
                    break;
                }
            }
        }
        hasher.map(|h| h.finalize().to_hex().to_string())
    }

    /// Hands pages of the mapping below `upto` back to the kernel: they have
    /// been parsed and written, and nothing points into them any more.
    fn release(&self, released: &mut usize, upto: usize) {
        let Some(mmap) = self.mmap else { return };
        let upto = upto.min(mmap.len()) / RELEASE_STEP * RELEASE_STEP;
        if upto > *released {
            release_pages(mmap, *released, upto);
            *released = upto;
        }
    }

    fn record_error(&self, span: &Span, error: RecordError) -> DataError {
        DataError::Record {
            file: self.file.clone(),
            index: span.index,
            offset: span.start as u64,
            field: error.field,
            message: format!("{} ({})", error.message, error.cause.as_str()),
        }
    }

    /// Parses and checks one record against the tables file.
    fn check(&self, span: &Span) -> Result<(Record<'a>, &DbInfo), RecordError> {
        let bytes = &self.bytes[span.start..span.end];
        let record = parse_scanned_record(bytes, self.format, self.keep_cot, span.strings_only)?;
        let Some(db) = self.dbs.get(record.db_id.as_ref()) else {
            return Err(RecordError::new(
                InvalidCause::UnknownDbId,
                "db_id",
                format!("`{}` is not in the tables file", record.db_id),
            ));
        };
        if let Some(path) = &db.missing_file {
            return Err(RecordError::new(
                InvalidCause::MissingDatabase,
                "db_id",
                format!("no database file {} for `{}`", path.display(), record.db_id),
            ));
        }
        Ok((record, db))
    }

    /// Checks a batch and, unless `index_only`, builds its Arrow columns.
    fn process(&self, batch: BatchIn, chosen: Option<&[u64]>, index_only: bool) -> BatchOut {
        let mut out = BatchOut {
            seq: batch.seq,
            end: batch.end,
            ..BatchOut::default()
        };
        let mut builders: BTreeMap<(Split, Option<Tier>), ExampleBatchBuilder> = BTreeMap::new();
        for span in &batch.spans {
            if chosen.is_some_and(|c| c.binary_search(&span.index).is_err()) {
                continue;
            }
            out.counts.read += 1;
            match self.check(span) {
                Ok((record, db)) => {
                    out.counts.valid += 1;
                    let split = match self.split_by {
                        SplitBy::Database => db.split,
                        SplitBy::Example => example_split(self.seed, span.index, self.val_ratio),
                    };
                    out.seen.push((db.index, split));
                    if let Some(d) = &record.difficulty {
                        out.difficulties.push((split, d.to_string()));
                    }
                    if index_only {
                        out.index.push((span.index, record.tier));
                        continue;
                    }
                    builders
                        .entry((split, record.tier))
                        .or_insert_with(|| ExampleBatchBuilder::new(self.schema.clone()))
                        .push(span.index, &record);
                }
                Err(error) if self.skip_invalid => {
                    *out.counts.invalid.entry(error.cause).or_default() += 1;
                }
                Err(error) => {
                    out.error = Some(self.record_error(span, error));
                    return out;
                }
            }
        }
        out.seen.sort_unstable();
        out.seen.dedup();
        out.rows = builders
            .into_iter()
            .map(|((split, tier), b)| (split, tier, b.finish()))
            .collect();
        if let Some(structure) = batch.structure {
            let cause = match structure {
                StructureError::Truncated { .. } => Some(InvalidCause::Truncated),
                StructureError::Trailing { .. } => Some(InvalidCause::TrailingData),
                // Nothing after bad separators can be found reliably, and a
                // file that is no array holds no records: always fatal.
                StructureError::Garbage { .. } | StructureError::NotAnArray { .. } => None,
            };
            match cause {
                Some(cause) if self.skip_invalid => {
                    if cause == InvalidCause::Truncated {
                        out.counts.read += 1;
                    }
                    *out.counts.invalid.entry(cause).or_default() += 1;
                }
                _ => {
                    out.error = Some(DataError::Record {
                        file: self.file.clone(),
                        index: structure.index(),
                        offset: structure.offset() as u64,
                        field: "<array>".into(),
                        message: structure.message(),
                    });
                }
            }
        }
        out
    }

    /// Takes batch results in source order and writes them.
    fn collect(
        &self,
        sink: Sink,
        rx: mpsc::Receiver<BatchOut>,
        flow: &Flow,
        progress_base: u64,
    ) -> Result<PassOutcome, DataError> {
        let mut writers = match &sink {
            Sink::Index => None,
            Sink::Write(dir) => Some([
                SplitWriter::create(
                    &dir.join(TRAIN_FILE),
                    self.schema.clone(),
                    self.compression,
                    self.pool,
                )?,
                SplitWriter::create(
                    &dir.join(VAL_FILE),
                    self.schema.clone(),
                    self.compression,
                    self.pool,
                )?,
            ]),
        };
        let mut outcome = PassOutcome {
            counts: Counts::default(),
            index: Vec::new(),
            seen: BTreeSet::new(),
            tier_rows: BTreeMap::new(),
            difficulties: BTreeMap::new(),
            row_groups: None,
            checksum: String::new(),
        };
        let mut waiting: BTreeMap<u64, BatchOut> = BTreeMap::new();
        let mut next = 0u64;
        for out in rx {
            waiting.insert(out.seq, out);
            while let Some(out) = waiting.remove(&next) {
                if let Some(error) = out.error {
                    return Err(error);
                }
                outcome.counts.read += out.counts.read;
                outcome.counts.valid += out.counts.valid;
                for (cause, n) in out.counts.invalid {
                    *outcome.counts.invalid.entry(cause).or_default() += n;
                }
                outcome.seen.extend(out.seen);
                for key in out.difficulties {
                    *outcome.difficulties.entry(key).or_default() += 1;
                }
                match &mut writers {
                    None => outcome.index.extend(out.index),
                    Some(writers) => {
                        for (split, tier, batch) in out.rows {
                            *outcome.tier_rows.entry((split, tier)).or_default() +=
                                batch.num_rows() as u64;
                            let writer = match split {
                                Split::Train => &mut writers[0],
                                Split::Val => &mut writers[1],
                            };
                            writer.push(tier, batch)?;
                        }
                    }
                }
                next += 1;
                (self.on_progress)(PrepareProgress {
                    bytes_done: progress_base + out.end as u64,
                    total_bytes: self.total_bytes,
                    records_read: outcome.counts.read,
                });
                let mut written = flow.written.lock().unwrap_or_else(|p| p.into_inner());
                *written = (next, out.end);
                flow.changed.notify_all();
            }
        }
        if !waiting.is_empty() || flow.abort.load(Ordering::Relaxed) {
            return Err(DataError::Invalid(
                "the pipeline stopped before the end of the file".into(),
            ));
        }
        if let Some([train, val]) = writers {
            outcome.row_groups = Some([train.finish()?, val.finish()?]);
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names_blake3_checksums_of_both_sources() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.json");
        let tables = dir.path().join("tables.json");
        std::fs::write(
            &data,
            r#"[{"db_id":"shop","sql_complexity":"Simple","question_style":"Formal",
                "question":"How many?","external_knowledge":"","cot":"a\nb","sql":"SELECT 1"}]"#,
        )
        .unwrap();
        std::fs::write(
            &tables,
            r#"[{"db_id":"shop","table_names":["t"],"table_names_original":["t"],
                "column_names":[[-1,"*"],[0,"a"]],"column_names_original":[[-1,"*"],[0,"a"]],
                "column_types":["text","text"],"primary_keys":[],"foreign_keys":[]}]"#,
        )
        .unwrap();
        let opts = PrepareOptions::new(&data, &tables, dir.path().join("out"));
        let report = prepare(&opts, &|_| {}).unwrap();
        let sources = &report.manifest.sources;
        for (source, path) in [(&sources.data, &data), (&sources.tables, &tables)] {
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(
                source.checksum,
                Checksum {
                    algorithm: ChecksumAlgorithm::Blake3,
                    hex: blake3::hash(&bytes).to_hex().to_string(),
                }
            );
        }
        assert_eq!(report.manifest.records.kept, 1);
        assert_eq!(
            Manifest::read(&dir.path().join("out").join(MANIFEST_FILE)).unwrap(),
            report.manifest
        );
    }
}
