//! `text2sql sample`: a synthetic corpus in the exact SynSQL-2.5M layout
//! (`data.json`, `tables.json`, `databases/<db_id>/<db_id>.sqlite`), so that
//! every stage runs offline, in tests, benchmarks and the quickstart.
//!
//! Hundreds to thousands of databases (SynSQL's 150 questions per database
//! by default): database i is a seeded variant of one of the domains kept
//! as data under `crates/data/sample-domains/` (a table subset, its own
//! naming style, column order, extra columns and tables, row counts and
//! value ranges; see `variant`), generated with plausible rows. Per
//! database and tier a pool of distinct question/SQL items is built from
//! schema-driven templates (kept as data in
//! `crates/data/sample-templates.yaml`) that name tables and columns by the
//! domain's phrasings, and each SQL is executed once on the real database
//! (it must run and return rows). Records are then streamed from the pools
//! with a question style and phrasing drawn per record; databases are built
//! and written chunk by chunk, so any number of records and databases is
//! written in bounded memory. The same seed gives the same bytes in every
//! file.

mod catalog;
mod context;
mod pool;
mod render;
mod rows;
mod spec;
mod templates;
mod variant;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::atomic;
use crate::error::DataError;
use templates::Item;

pub use crate::reader::Tier;

/// Share of records per tier, in percent (a SynSQL-like mix).
fn tier_weight(tier: Tier) -> u32 {
    match tier {
        Tier::Simple => 35,
        Tier::Moderate => 30,
        Tier::Complex => 20,
        Tier::HighlyComplex => 15,
    }
}

/// SynSQL's nine question styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Style {
    Formal,
    Colloquial,
    Imperative,
    Interrogative,
    Descriptive,
    Concise,
    Vague,
    Metaphorical,
    MultiTurnDialogue,
}

impl Style {
    pub const ALL: [Style; 9] = [
        Style::Formal,
        Style::Colloquial,
        Style::Imperative,
        Style::Interrogative,
        Style::Descriptive,
        Style::Concise,
        Style::Vague,
        Style::Metaphorical,
        Style::MultiTurnDialogue,
    ];

    /// The `question_style` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Style::Formal => "Formal",
            Style::Colloquial => "Colloquial",
            Style::Imperative => "Imperative",
            Style::Interrogative => "Interrogative",
            Style::Descriptive => "Descriptive",
            Style::Concise => "Concise",
            Style::Vague => "Vague",
            Style::Metaphorical => "Metaphorical",
            Style::MultiTurnDialogue => "Multi-turn Dialogue",
        }
    }

    fn weight(self) -> u32 {
        match self {
            Style::Formal => 15,
            Style::Interrogative => 14,
            Style::Imperative => 12,
            Style::Descriptive => 12,
            Style::Colloquial => 10,
            Style::Concise => 10,
            Style::MultiTurnDialogue => 10,
            Style::Vague => 9,
            Style::Metaphorical => 8,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SampleOptions {
    pub records: u64,
    /// Number of databases; `None` is [`default_databases`].
    pub databases: Option<usize>,
    pub seed: u64,
    /// Replace `data.json`, `tables.json` and `databases/` in a non-empty
    /// output folder.
    pub force: bool,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            records: 5000,
            databases: None,
            seed: 42,
            force: false,
        }
    }
}

/// SynSQL-2.5M's questions per database (2,544,390 over 16,583).
pub const RECORDS_PER_DATABASE: u64 = 150;

/// The fewest databases a default sample has, so that a database split
/// leaves enough unseen databases for validation.
pub const MIN_DATABASES: u64 = 200;

/// The default number of databases for `records`: SynSQL's 150 questions
/// per database, at least [`MIN_DATABASES`], and never more databases than
/// records (nor fewer than one).
pub fn default_databases(records: u64) -> usize {
    records
        .div_ceil(RECORDS_PER_DATABASE)
        .max(MIN_DATABASES)
        .min(records)
        .max(1) as usize
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct SampleSummary {
    pub out: PathBuf,
    pub records: u64,
    pub seed: u64,
    pub databases: usize,
    /// Distinct verified SQL queries the records were drawn from.
    pub distinct_sql: usize,
    pub by_tier: BTreeMap<String, u64>,
    pub by_style: BTreeMap<String, u64>,
    pub with_external_knowledge: u64,
    pub data_json_bytes: u64,
    pub tables_json_bytes: u64,
    pub database_bytes: u64,
}

/// Most distinct items kept per database and tier; larger corpora reuse
/// them with other styles and phrasings. At 1,000 a 50,000-record sample
/// held 24,757 distinct queries (half its records repeated one); at 5,000
/// it holds 36,988, where some families run out of distinct queries.
const POOL_CAP: usize = 5000;

/// How many records between two progress callbacks.
const PROGRESS_EVERY: u64 = 1024;

/// Writes the sample corpus into `out` (created if missing). Refuses a
/// non-empty folder unless `opts.force`. Everything is first written to a
/// staging folder inside `out` and renamed into place, `data.json` last, so
/// an interrupted run never leaves a complete-looking corpus.
/// `on_progress` receives the number of records written so far.
pub fn write_sample(
    out: &Path,
    opts: &SampleOptions,
    on_progress: &mut dyn FnMut(u64),
) -> Result<SampleSummary, DataError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataError::Io { path, source }
    };
    prepare_out_dir(out, opts.force)?;
    // Dropped on an error, the staging folder is deleted with what it holds.
    let staging = atomic::temp_dir_in(out)?;
    fs::create_dir_all(staging.path().join("databases")).map_err(io_err(staging.path()))?;
    let mut summary = write_staged(staging.path(), opts, on_progress)?;
    for name in ["databases", "tables.json", "data.json"] {
        atomic::replace(&staging.path().join(name), &out.join(name))?;
    }
    let staging_path = staging.path().to_path_buf();
    staging.close().map_err(io_err(&staging_path))?;
    summary.out = out.to_path_buf();
    Ok(summary)
}

fn prepare_out_dir(out: &Path, force: bool) -> Result<(), DataError> {
    let io_err = |source| DataError::Io {
        path: out.to_path_buf(),
        source,
    };
    if out.exists() {
        if !out.is_dir() {
            return Err(DataError::Invalid(format!(
                "{}: exists and is not a folder",
                out.display()
            )));
        }
        // A staging folder left by an interrupted run does not count.
        let non_empty = fs::read_dir(out)
            .map_err(io_err)?
            .filter_map(Result::ok)
            .any(|entry| !atomic::is_temporary(&entry.file_name().to_string_lossy()));
        if non_empty && !force {
            return Err(DataError::Invalid(format!(
                "{}: folder is not empty; pass --force to replace its data.json, tables.json and databases/",
                out.display()
            )));
        }
        Ok(())
    } else {
        fs::create_dir_all(out).map_err(io_err)
    }
}

/// One generated database with its item pools, per tier.
struct BuiltDatabase {
    db_id: String,
    topic: String,
    pools: Vec<Vec<Item>>,
    /// Records of this database in `data.json`.
    records: u64,
    /// Its `tables.json` entry.
    tables_entry: serde_json::Value,
    database_bytes: u64,
}

/// About this many pool items are held in memory at once: databases are
/// built and their records written chunk by chunk, so the number of
/// databases does not bound the corpus size.
const ITEMS_IN_FLIGHT: usize = 200_000;

/// Most databases built per chunk.
const MAX_CHUNK: usize = 256;

/// The pool size per tier for a database with `records` records: the
/// expected count per tier and a margin, so small samples repeat no SQL.
fn pool_targets(records: u64) -> [usize; 4] {
    let mut targets = [0; 4];
    for (target, tier) in targets.iter_mut().zip(Tier::ALL) {
        let expected = (records * u64::from(tier_weight(tier)) / 100) as usize;
        *target = (expected + expected / 4 + 8).min(POOL_CAP);
    }
    targets
}

fn write_staged(
    staging: &Path,
    opts: &SampleOptions,
    on_progress: &mut dyn FnMut(u64),
) -> Result<SampleSummary, DataError> {
    let catalog = catalog::catalog()?;
    let n_databases = opts
        .databases
        .unwrap_or_else(|| default_databases(opts.records));
    if n_databases == 0 {
        return Err(DataError::Invalid(
            "--databases must be at least 1".to_string(),
        ));
    }
    // Records are spread evenly: database i gets `base` or `base + 1`.
    let (base, extra) = (
        opts.records / n_databases as u64,
        opts.records % n_databases as u64,
    );
    let records_of = |i: usize| base + u64::from((i as u64) < extra);
    let items_per_database: usize = pool_targets(base + 1).iter().sum();
    let chunk = (ITEMS_IN_FLIGHT / items_per_database.max(1)).clamp(1, MAX_CHUNK);

    let tables_path = staging.join("tables.json");
    let data_path = staging.join("data.json");
    let mut tables = JsonArrayWriter::create(&tables_path)?;
    let mut data = JsonArrayWriter::create(&data_path)?;
    let mut writer_rng = ChaCha8Rng::seed_from_u64(opts.seed);
    writer_rng.set_stream(0);
    let mut tally = Tally::default();
    let mut distinct_sql = 0;
    let mut database_bytes = 0;
    for first in (0..n_databases).step_by(chunk) {
        let last = (first + chunk).min(n_databases);
        let built: Vec<BuiltDatabase> = (first..last)
            .into_par_iter()
            .map(|i| build_database(staging, catalog, opts.seed, i, records_of(i)))
            .collect::<Result<_, _>>()?;
        for db in &built {
            tables.push(&db.tables_entry)?;
            distinct_sql += db.pools.iter().map(Vec::len).sum::<usize>();
            database_bytes += db.database_bytes;
        }
        write_records(&mut data, &built, &mut writer_rng, &mut tally, on_progress)?;
    }
    let tables_json_bytes = tables.finish()?;
    let data_json_bytes = data.finish()?;
    on_progress(opts.records);
    Ok(SampleSummary {
        out: PathBuf::new(),
        records: opts.records,
        seed: opts.seed,
        databases: n_databases,
        distinct_sql,
        by_tier: tally.by_tier,
        by_style: tally.by_style,
        with_external_knowledge: tally.with_knowledge,
        data_json_bytes,
        tables_json_bytes,
        database_bytes,
    })
}

/// Database `index` of the sample: a variant of domain `index % domains`,
/// its rows written to SQLite, and its verified item pools.
fn build_database(
    staging: &Path,
    catalog: &catalog::Catalog,
    seed: u64,
    index: usize,
    records: u64,
) -> Result<BuiltDatabase, DataError> {
    let domains = &catalog.domains;
    let domain = &domains[index % domains.len()];
    let db_id = format!("{}_{:04}", domain.db_id, index / domains.len() + 1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64 + 1);
    let db = variant::variant(domain, &catalog.words, db_id, &mut rng);
    let data = rows::generate_rows(&db, &catalog.words, &mut rng);
    let folder = staging.join("databases").join(&db.db_id);
    fs::create_dir_all(&folder).map_err(|source| DataError::Io {
        path: folder.clone(),
        source,
    })?;
    let db_path = folder.join(format!("{}.sqlite", db.db_id));
    rows::write_database(&db_path, &db, &data)?;
    let conn = pool::open_read_only(&db_path)?;
    let ctx = context::DbContext::new(&db, &data);
    let pools = Tier::ALL
        .iter()
        .zip(pool_targets(records))
        .map(|(&tier, target)| pool::build_pool(&ctx, &conn, &db_path, tier, target, &mut rng))
        .collect::<Result<Vec<_>, _>>()?;
    if records > 0 && pools.iter().all(Vec::is_empty) {
        return Err(DataError::Invalid(format!(
            "no verified question could be generated for database {}",
            db.db_id
        )));
    }
    drop(conn);
    let database_bytes = fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0);
    Ok(BuiltDatabase {
        tables_entry: rows::tables_json_entry(&db),
        db_id: db.db_id,
        topic: db.topic,
        pools,
        records,
        database_bytes,
    })
}

/// A JSON array written element by element, in SynSQL's layout (one
/// element per `,\n`, indented by four spaces).
struct JsonArrayWriter {
    path: PathBuf,
    writer: BufWriter<fs::File>,
    count: u64,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl JsonArrayWriter {
    fn create(path: &Path) -> Result<Self, DataError> {
        let file = fs::File::create(path).map_err(io_error(path))?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        writer.write_all(b"[").map_err(io_error(path))?;
        Ok(JsonArrayWriter {
            path: path.to_path_buf(),
            writer,
            count: 0,
        })
    }

    fn push(&mut self, value: &impl Serialize) -> Result<(), DataError> {
        let separator: &[u8] = if self.count == 0 { b"\n" } else { b",\n" };
        self.writer
            .write_all(separator)
            .map_err(io_error(&self.path))?;
        let mut serializer = serde_json::Serializer::with_formatter(
            &mut self.writer,
            serde_json::ser::PrettyFormatter::with_indent(b"    "),
        );
        value
            .serialize(&mut serializer)
            .map_err(|e| DataError::Invalid(format!("{}: {e}", self.path.display())))?;
        self.count += 1;
        Ok(())
    }

    /// Closes the array, syncs the file and returns its size in bytes.
    fn finish(mut self) -> Result<u64, DataError> {
        let path = self.path;
        self.writer.write_all(b"\n]\n").map_err(io_error(&path))?;
        let file = self
            .writer
            .into_inner()
            .map_err(|e| io_error(&path)(e.into_error()))?;
        file.sync_all().map_err(io_error(&path))?;
        Ok(file.metadata().map_err(io_error(&path))?.len())
    }
}

#[derive(Serialize)]
struct Record<'a> {
    db_id: &'a str,
    sql_complexity: &'a str,
    question_style: &'a str,
    question: &'a str,
    external_knowledge: &'a str,
    cot: &'a str,
    sql: &'a str,
}

/// Counts for the summary.
#[derive(Default)]
struct Tally {
    written: u64,
    by_tier: BTreeMap<String, u64>,
    by_style: BTreeMap<String, u64>,
    with_knowledge: u64,
}

/// Writes the records of one chunk of databases, interleaved in a seeded
/// order; each record draws a tier, a style and a phrasing.
fn write_records(
    out: &mut JsonArrayWriter,
    built: &[BuiltDatabase],
    rng: &mut ChaCha8Rng,
    tally: &mut Tally,
    on_progress: &mut dyn FnMut(u64),
) -> Result<(), DataError> {
    let tier_weights: Vec<u32> = Tier::ALL.iter().map(|t| tier_weight(*t)).collect();
    let style_weights: Vec<u32> = Style::ALL.iter().map(|s| s.weight()).collect();
    let mut order: Vec<u32> = Vec::new();
    for (db, built) in built.iter().enumerate() {
        order.extend(std::iter::repeat_n(db as u32, built.records as usize));
    }
    order.shuffle(rng);
    // Next item to use per (database, tier): pools are shuffled, so cycling
    // through them repeats an SQL only once a pool is exhausted.
    let mut cursors = vec![[0usize; 4]; built.len()];
    for db in order {
        let db = db as usize;
        let mut tier_index = render::weighted(rng, &tier_weights);
        // A database without items of the drawn tier falls back to the
        // next tier that has some.
        for _ in 0..Tier::ALL.len() {
            if !built[db].pools[tier_index].is_empty() {
                break;
            }
            tier_index = (tier_index + 1) % Tier::ALL.len();
        }
        let pool = &built[db].pools[tier_index];
        let item = &pool[cursors[db][tier_index] % pool.len()];
        cursors[db][tier_index] += 1;
        let style = Style::ALL[render::weighted(rng, &style_weights)];
        let question = render::question(item, style, &built[db].topic, rng);
        let cot = render::cot(item, &built[db].db_id);
        let tier = Tier::ALL[tier_index];
        out.push(&Record {
            db_id: &built[db].db_id,
            sql_complexity: tier.as_str(),
            question_style: style.as_str(),
            question: &question,
            external_knowledge: &item.knowledge,
            cot: &cot,
            sql: &item.sql,
        })?;
        *tally.by_tier.entry(tier.as_str().to_string()).or_default() += 1;
        *tally
            .by_style
            .entry(style.as_str().to_string())
            .or_default() += 1;
        tally.with_knowledge += u64::from(!item.knowledge.is_empty());
        tally.written += 1;
        if tally.written.is_multiple_of(PROGRESS_EVERY) {
            on_progress(tally.written);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::OnceLock;

    use serde_json::Value;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::schema::read_tables_file;

    const RECORDS: u64 = 1500;

    /// One sample shared by the tests that only read it.
    fn shared_sample() -> &'static (tempfile::TempDir, SampleSummary, Vec<Value>) {
        static SAMPLE: OnceLock<(tempfile::TempDir, SampleSummary, Vec<Value>)> = OnceLock::new();
        SAMPLE.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let opts = SampleOptions {
                records: RECORDS,
                ..SampleOptions::default()
            };
            let summary = write_sample(dir.path(), &opts, &mut |_| {}).unwrap();
            let records: Vec<Value> =
                serde_json::from_slice(&fs::read(dir.path().join("data.json")).unwrap()).unwrap();
            (dir, summary, records)
        })
    }

    fn db_path(root: &Path, db_id: &str) -> PathBuf {
        root.join("databases")
            .join(db_id)
            .join(format!("{db_id}.sqlite"))
    }

    fn hash_tree(root: &Path) -> Vec<(String, String)> {
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let digest = hex::encode(Sha256::digest(fs::read(&path).unwrap()));
                    let name = path.strip_prefix(root).unwrap().display().to_string();
                    files.push((name, digest));
                }
            }
        }
        files.sort();
        files
    }

    #[test]
    fn same_seed_gives_identical_bytes_and_another_seed_differs() {
        let write = |seed| {
            let dir = tempfile::tempdir().unwrap();
            let opts = SampleOptions {
                records: 300,
                databases: Some(15),
                seed,
                force: false,
            };
            write_sample(dir.path(), &opts, &mut |_| {}).unwrap();
            let hashes = hash_tree(dir.path());
            (dir, hashes)
        };
        let (_a, first) = write(7);
        let (_b, second) = write(7);
        let (_c, other) = write(8);
        assert_eq!(first.len(), 2 + 15, "{first:?}");
        assert_eq!(first, second);
        let data = |h: &[(String, String)]| h.iter().find(|(n, _)| n == "data.json").cloned();
        assert_ne!(data(&first), data(&other));
    }

    #[test]
    fn records_have_synsql_keys_every_tier_and_style() {
        let (_, summary, records) = shared_sample();
        assert_eq!(records.len() as u64, RECORDS);
        assert_eq!(summary.records, RECORDS);
        let keys = [
            "db_id",
            "sql_complexity",
            "question_style",
            "question",
            "external_knowledge",
            "cot",
            "sql",
        ];
        let mut tiers = HashSet::new();
        let mut styles = HashSet::new();
        let mut databases = HashSet::new();
        let (mut knowledge, mut multiline, mut commented) = (0, 0, 0);
        for record in records {
            let object = record.as_object().unwrap();
            assert_eq!(object.keys().map(String::as_str).collect::<Vec<_>>(), keys);
            let text = |k: &str| object[k].as_str().unwrap();
            tiers.insert(text("sql_complexity").to_string());
            styles.insert(text("question_style").to_string());
            databases.insert(text("db_id").to_string());
            if text("question_style") == "Multi-turn Dialogue" {
                assert!(text("question").starts_with("**User**: "));
                assert!(text("question").contains("\n**Assistant**: "));
            }
            assert!(
                text("cot").contains(text("sql")),
                "the cot ends with the query"
            );
            knowledge += usize::from(!text("external_knowledge").is_empty());
            multiline += usize::from(text("sql").contains('\n'));
            commented += usize::from(text("sql").contains("-- "));
        }
        let expect_tiers: HashSet<String> =
            Tier::ALL.iter().map(|t| t.as_str().to_string()).collect();
        let expect_styles: HashSet<String> =
            Style::ALL.iter().map(|s| s.as_str().to_string()).collect();
        assert_eq!(tiers, expect_tiers);
        assert_eq!(styles, expect_styles);
        // The default: at least 200 databases, each with records.
        assert_eq!(summary.databases, default_databases(RECORDS));
        assert_eq!(summary.databases, 200);
        assert_eq!(databases.len(), 200);
        assert!(
            knowledge > 0 && knowledge < records.len() / 2,
            "{knowledge} with external knowledge"
        );
        assert!(multiline > 0 && commented > 0);
        // Tier mix close to 35/30/20/15.
        let simple = summary.by_tier["Simple"] as f64 / RECORDS as f64;
        assert!((0.28..0.42).contains(&simple), "{simple}");
    }

    #[test]
    fn every_gold_sql_executes_and_returns_rows() {
        let (dir, _, records) = shared_sample();
        let mut connections = std::collections::HashMap::new();
        for (i, record) in records.iter().enumerate() {
            let db_id = record["db_id"].as_str().unwrap();
            let conn = connections
                .entry(db_id.to_string())
                .or_insert_with(|| pool::open_read_only(&db_path(dir.path(), db_id)).unwrap());
            let sql = record["sql"].as_str().unwrap();
            match pool::returns_rows(conn, sql) {
                Ok(true) => {}
                other => panic!("record {i} on {db_id}: {other:?}: {sql}"),
            }
        }
    }

    #[test]
    fn small_samples_do_not_repeat_sql() {
        let (_, summary, records) = shared_sample();
        let distinct: HashSet<(&str, &str)> = records
            .iter()
            .map(|r| (r["db_id"].as_str().unwrap(), r["sql"].as_str().unwrap()))
            .collect();
        assert_eq!(distinct.len(), records.len());
        assert!(summary.distinct_sql >= records.len());
    }

    /// The question names the literal values of the SQL (unless they come
    /// from external knowledge), so the mapping can be learnt.
    #[test]
    fn questions_carry_the_sql_literals() {
        let (_, _, records) = shared_sample();
        for record in records {
            if !record["external_knowledge"].as_str().unwrap().is_empty() {
                continue;
            }
            let question = record["question"].as_str().unwrap();
            let sql = record["sql"].as_str().unwrap();
            for literal in string_literals(sql) {
                if literal.contains('%') || literal == "highest" || literal == "lowest" {
                    continue; // LIKE patterns, strftime formats, UNION tags
                }
                assert!(
                    question.contains(&format!("'{literal}'")),
                    "'{literal}' of {sql} is not in: {question}"
                );
            }
        }
    }

    fn string_literals(sql: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\'' {
                continue;
            }
            let mut literal = String::new();
            while let Some(c) = chars.next() {
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                        literal.push('\'');
                    } else {
                        break;
                    }
                } else {
                    literal.push(c);
                }
            }
            out.push(literal);
        }
        out
    }

    #[test]
    fn tables_json_parses_with_keys_and_matches_the_databases() {
        let (dir, _, _) = shared_sample();
        let schemas = read_tables_file(&dir.path().join("tables.json")).unwrap();
        assert_eq!(schemas.len(), 200);
        let ids: HashSet<&str> = schemas.iter().map(|s| s.db_id.as_str()).collect();
        assert_eq!(ids.len(), schemas.len(), "db_ids are distinct");
        let mut composite = 0;
        for schema in &schemas {
            assert!((3..=8).contains(&schema.tables.len()), "{}", schema.db_id);
            assert!(!schema.foreign_keys.is_empty(), "{}", schema.db_id);
            assert_eq!(schema.ddls.len(), schema.tables.len());
            composite += schema
                .tables
                .iter()
                .filter(|t| t.primary_key.len() > 1)
                .count();
            let conn = pool::open_read_only(&db_path(dir.path(), &schema.db_id)).unwrap();
            for (table, ddl) in schema.tables.iter().zip(&schema.ddls) {
                // The DDL in tables.json is the statement that built the table.
                let stored: String = conn
                    .query_row(
                        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
                        [&table.name],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(&stored, ddl);
                let rows: i64 = conn
                    .query_row(
                        &format!("SELECT COUNT(*) FROM \"{}\"", table.name),
                        [],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert!(
                    rows >= 40,
                    "{}.{} has {rows} rows",
                    schema.db_id,
                    table.name
                );
                for column in &table.columns {
                    assert!(
                        column.description.len() > column.name.len() / 2,
                        "{}",
                        column.name
                    );
                    assert!(
                        ["INTEGER", "REAL", "TEXT", "DATE"].contains(&column.data_type.as_str())
                    );
                }
            }
            // Foreign keys hold: every referenced key exists.
            for fk in &schema.foreign_keys {
                let (child, parent) = (&schema.tables[fk.table], &schema.tables[fk.ref_table]);
                let orphans: i64 = conn
                    .query_row(
                        &format!(
                            "SELECT COUNT(*) FROM \"{}\" WHERE \"{}\" NOT IN (SELECT \"{}\" FROM \"{}\")",
                            child.name,
                            child.columns[fk.column].name,
                            parent.columns[fk.ref_column].name,
                            parent.name
                        ),
                        [],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(orphans, 0, "{}.{}", schema.db_id, child.name);
            }
        }
        assert!(composite >= 1);
    }

    /// Every template of the data file is instantiated on some sample
    /// database with SQL that executes and returns rows, so none is dead.
    #[test]
    fn every_template_produces_verified_sql() {
        let dir = tempfile::tempdir().unwrap();
        let library = templates::library().unwrap();
        let mut alive = vec![false; library.templates().len()];
        let catalog = catalog::catalog().unwrap();
        for index in 0..catalog.domains.len() * 2 {
            let mut rng = ChaCha8Rng::seed_from_u64(index as u64);
            let domain = &catalog.domains[index % catalog.domains.len()];
            let db_id = format!("db_{index}");
            let domain = variant::variant(domain, &catalog.words, db_id, &mut rng);
            let data = rows::generate_rows(&domain, &catalog.words, &mut rng);
            let path = dir.path().join(format!("{}.sqlite", domain.db_id));
            rows::write_database(&path, &domain, &data).unwrap();
            let conn = pool::open_read_only(&path).unwrap();
            let ctx = context::DbContext::new(&domain, &data);
            for (t, verified) in alive.iter_mut().enumerate() {
                for _ in 0..8 {
                    if let Some(item) = library.instantiate(t, &ctx, &mut rng).unwrap() {
                        let ok = pool::returns_rows(&conn, &item.sql);
                        assert!(ok.is_ok(), "{}: {ok:?}: {}", domain.db_id, item.sql);
                        if ok.unwrap_or(false) {
                            *verified = true;
                            break;
                        }
                    }
                }
            }
        }
        let dead: Vec<&str> = library
            .templates()
            .iter()
            .zip(&alive)
            .filter(|(_, verified)| !**verified)
            .map(|(t, _)| t.name.as_str())
            .collect();
        assert!(dead.is_empty(), "templates never verified: {dead:?}");
    }

    #[test]
    fn a_leftover_staging_folder_does_not_block_a_new_run() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(format!("{}1", atomic::TEMP_PREFIX))).unwrap();
        let opts = SampleOptions {
            records: 20,
            ..SampleOptions::default()
        };
        write_sample(dir.path(), &opts, &mut |_| {}).unwrap();
        assert!(dir.path().join("data.json").is_file());
    }

    #[test]
    fn refuses_a_non_empty_folder_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), "keep me").unwrap();
        let opts = SampleOptions {
            records: 50,
            ..SampleOptions::default()
        };
        let err = write_sample(dir.path(), &opts, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        assert!(!dir.path().join("data.json").exists());
        let forced = SampleOptions {
            force: true,
            ..opts
        };
        let mut last = 0;
        write_sample(dir.path(), &forced, &mut |n| last = n).unwrap();
        write_sample(dir.path(), &forced, &mut |_| {}).unwrap();
        assert_eq!(last, 50);
        assert!(dir.path().join("data.json").exists());
        assert_eq!(
            fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
            "keep me"
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| atomic::is_temporary(n))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// Databases differ in naming: snake_case and camelCase/PascalCase
    /// columns both occur, and gold SQL uses the variant's real names,
    /// which are often not the domain's.
    #[test]
    fn databases_vary_their_naming_and_the_sql_uses_the_real_names() {
        let (dir, _, records) = shared_sample();
        let schemas = read_tables_file(&dir.path().join("tables.json")).unwrap();
        let catalog = catalog::catalog().unwrap();
        let logical: HashSet<&str> = catalog
            .domains
            .iter()
            .flat_map(|d| &d.tables)
            .map(|t| t.name.as_str())
            .collect();
        let (mut snake, mut mixed, mut renamed_tables) = (0, 0, HashSet::new());
        for schema in &schemas {
            let columns: Vec<&str> = schema
                .tables
                .iter()
                .flat_map(|t| &t.columns)
                .map(|c| c.name.as_str())
                .collect();
            if columns
                .iter()
                .any(|c| c.chars().any(|ch| ch.is_ascii_lowercase()) && c.contains('_'))
            {
                snake += 1;
            }
            if columns.iter().any(|c| {
                c.chars().any(|ch| ch.is_ascii_uppercase())
                    && c.chars().any(|ch| ch.is_ascii_lowercase())
            }) {
                mixed += 1;
            }
            for table in &schema.tables {
                if !logical.contains(table.name.as_str()) {
                    renamed_tables.insert((schema.db_id.clone(), table.name.clone()));
                }
            }
        }
        assert!(
            snake >= 20 && mixed >= 20,
            "{snake} snake_case, {mixed} camel/Pascal"
        );
        let uses_renamed = records.iter().any(|r| {
            let sql = r["sql"].as_str().unwrap();
            let words: HashSet<&str> = sql
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .collect();
            renamed_tables
                .iter()
                .any(|(db, t)| r["db_id"] == db.as_str() && words.contains(t.as_str()))
        });
        assert!(uses_renamed, "no gold SQL names a renamed table");
    }

    /// Questions name columns and tables by the domain's other phrasings
    /// and synonyms, not only by the literal names.
    #[test]
    fn questions_use_synonyms_of_tables_and_columns() {
        let (_, _, records) = shared_sample();
        let catalog = catalog::catalog().unwrap();
        let mut others: Vec<String> = Vec::new();
        for table in catalog.domains.iter().flat_map(|d| &d.tables) {
            others.extend(
                table
                    .synonyms
                    .iter()
                    .map(|[_, plural]| format!(" {plural} ")),
            );
            for column in &table.columns {
                others.extend(
                    column
                        .phrases
                        .iter()
                        .skip(1)
                        .filter(|p| p.contains(' '))
                        .map(|p| format!(" {p} ")),
                );
            }
        }
        let with_synonym = records
            .iter()
            .filter(|r| {
                let question = r["question"]
                    .as_str()
                    .unwrap()
                    .replace(['.', ',', '?', '\''], " ");
                others.iter().any(|o| question.contains(o.as_str()))
            })
            .count();
        assert!(
            with_synonym * 5 > records.len(),
            "{with_synonym} of {} questions use a synonym",
            records.len()
        );
    }
}
