//! `text2sql ask`: one question to a trained model, from the command line.
//! The schema is serialized exactly as in training (the checkpoint's
//! `text2sql_input.json`); `--run` executes the best SQL in the sandbox.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use text2sql_data::schema::{
    enrich_from_sqlite, read_schema_from_sqlite, read_tables_file, DatabaseSchema,
};
use text2sql_data::values::index_values_from_sqlite;
use text2sql_model::{Device, GeneratedSql, SqlModel};
use text2sql_sql::{run_query, QueryResult, SandboxLimits, Value};

use crate::output::{print_json, GlobalOpts};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  text2sql ask --model runs/quickstart/best --db sample/databases/retail/retail.sqlite \\
      --question \"How many customers live in Paris?\" --run
  text2sql ask --model runs/quickstart/best --db concert.sqlite --tables tables.json \\
      --question \"Name every singer\" --beams 4
  text2sql ask --model runs/quickstart/best --raw-input \"How many singers? | concert | singer : name\"")]
pub struct Args {
    /// The model checkpoint (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// The SQLite database the question is about.
    #[arg(long, required_unless_present = "raw_input", requires = "question")]
    pub db: Option<PathBuf>,
    /// The question, in plain language.
    #[arg(long, requires = "db")]
    pub question: Option<String>,
    /// Evidence for the question (BIRD/SynSQL `external_knowledge`).
    #[arg(long, default_value = "")]
    pub external_knowledge: String,
    /// A tables.json describing the database (the entry whose db_id is the
    /// --db file's stem); without it the schema is read from the SQLite file.
    #[arg(long, requires = "db")]
    pub tables: Option<PathBuf>,
    /// Give the model this exact input text instead of a question and a
    /// database (to reproduce what training fed it).
    #[arg(long, conflicts_with_all = ["db", "question", "tables", "run"])]
    pub raw_input: Option<String>,
    /// Beam-search candidates to show, best first (1 = greedy decoding).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub beams: u16,
    /// Execute the best SQL on the database (read-only sandbox) and print its rows.
    #[arg(long, requires = "db")]
    pub run: bool,
    /// Rows printed at most with --run.
    #[arg(long, default_value_t = 20)]
    pub max_rows: usize,
    /// Seconds the query may run with --run.
    #[arg(long = "timeout-s", default_value_t = 10.0)]
    pub timeout_s: f64,
    /// Decode without the SQL checker (by default only SQL that parses and
    /// names the database's real tables and columns can be generated).
    #[arg(long)]
    pub no_constrain: bool,
    /// The most tokens generated (default: the longest SQL the model was trained on).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_new_tokens: Option<u32>,
    /// Beam search ranks finished candidates by `sum_logprobs / len ^ length_penalty`
    /// (above 0 favours longer SQL).
    #[arg(long)]
    pub length_penalty: Option<f32>,
    #[command(flatten)]
    pub links: super::LinkArgs,
    #[command(flatten)]
    pub skeletons: super::SkeletonArgs,
}

pub fn run(args: Args, global: &GlobalOpts) -> Result<()> {
    // Checked before the model loads, so that a bad flag fails at once.
    let timeout = text2sql_sql::timeout_from_secs(args.timeout_s).context("--timeout-s")?;
    let mut model = SqlModel::load(&args.model, &Device::Cpu)
        .with_context(|| format!("cannot load the model from {}", args.model.display()))?;
    model.set_constrained(!args.no_constrain);
    args.links.apply(&mut model)?;
    args.skeletons.apply(&mut model)?;
    if let Some(max) = args.max_new_tokens {
        model.generation_mut().max_new_tokens = max as usize;
    }
    if let Some(penalty) = args.length_penalty {
        if !penalty.is_finite() {
            bail!("--length-penalty must be a finite number, got {penalty}");
        }
        model.generation_mut().length_penalty = penalty;
    }
    let beams = usize::from(args.beams);
    let mut shapes = Vec::new();
    let (source, candidates) = match (&args.raw_input, &args.db, &args.question) {
        (Some(raw), _, _) => (raw.clone(), model.generate_from_raw(raw, beams)?),
        (None, Some(db), Some(question)) => {
            let mut schema = load_schema(db, args.tables.as_deref())?;
            if model.format().schema.retrieved_values {
                index_values_from_sqlite(&mut schema, db)?;
            }
            let input = model.input(question, &args.external_knowledge, &schema);
            shapes = model
                .query_shapes(question, &schema)
                .iter()
                .map(ToString::to_string)
                .collect();
            let candidates = model
                .generate_batch_for(std::slice::from_ref(&input), beams)?
                .pop()
                .unwrap_or_default();
            (input.source, candidates)
        }
        _ => bail!("give --db and --question, or --raw-input"),
    };
    let best = candidates
        .first()
        .context("the model produced no candidate")?;
    let execution = match (&args.db, args.run) {
        (Some(db), true) => Some(execute(db, &best.sql, timeout, &args)),
        _ => None,
    };

    if global.json {
        print_json(&serde_json::json!({
            "input": source,
            "sql": best.sql,
            "candidates": candidates,
            // The query shapes decoding was held to (--skeletons-from).
            "shapes": shapes,
            "result": execution.as_ref().map(|r| r.as_ref().ok()),
            "error": execution.as_ref().and_then(|r| r.as_ref().err().map(|e| format!("{e:#}"))),
        }))?;
        // The same exit status as without --json: a failed --run fails.
        if let Some(Err(error)) = execution {
            bail!("{error:#}");
        }
        return Ok(());
    }
    println!("{}", best.sql);
    if !shapes.is_empty() && !global.quiet {
        eprintln!(
            "held to the query shape predicted from the training questions: {}",
            shapes.join(" | ")
        );
    }
    if beams > 1 && !global.quiet {
        print_candidates(&candidates);
    }
    match execution {
        Some(Ok(result)) => print_table(&result, args.max_rows),
        Some(Err(error)) => bail!("{error:#}"),
        None => {}
    }
    Ok(())
}

/// The schema of `db`: from `tables` (the entry named after the file) or
/// read from the SQLite file, with example values either way.
fn load_schema(db: &Path, tables: Option<&Path>) -> Result<DatabaseSchema> {
    if !db.is_file() {
        bail!("--db {}: no such SQLite file", db.display());
    }
    let db_id = db
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .with_context(|| format!("--db {}: not a file name", db.display()))?;
    let mut schema = match tables {
        Some(tables) => read_tables_file(tables)?
            .into_iter()
            .find(|schema| schema.db_id == db_id)
            .with_context(|| {
                format!(
                    "{}: no database with db_id `{db_id}` (the --db file's name)",
                    tables.display()
                )
            })?,
        None => {
            let (schema, warnings) = read_schema_from_sqlite(&db_id, db)?;
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            schema
        }
    };
    enrich_from_sqlite(&mut schema, db)?;
    Ok(schema)
}

fn execute(db: &Path, sql: &str, timeout: Duration, args: &Args) -> Result<QueryResult> {
    run_untrusted(db, sql, timeout, args.max_rows)
        .with_context(|| format!("the generated SQL failed on {}", db.display()))
}

/// Runs SQL nobody vetted as `ask --run` and `sql run` do: in the sandbox's
/// worker process, under serve's limits with this deadline and row cap.
pub(crate) fn run_untrusted(
    db: &Path,
    sql: &str,
    timeout: Duration,
    max_rows: usize,
) -> Result<QueryResult, text2sql_sql::ExecError> {
    let limits = SandboxLimits {
        timeout,
        max_rows: Some(max_rows),
        ..SandboxLimits::default()
    };
    run_query(db, sql, &limits)
}

fn print_candidates(candidates: &[GeneratedSql]) {
    eprintln!("candidates (best first, score = length-normalised log-probability):");
    for (rank, candidate) in candidates.iter().enumerate() {
        eprintln!("  {}. [{:.3}] {}", rank + 1, candidate.score, candidate.sql);
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(s) => s.clone(),
        Value::Blob(bytes) => format!("<{} bytes>", bytes.len()),
    }
}

/// A plain aligned table; the full values are available with --json.
pub(crate) fn print_table(result: &QueryResult, max_rows: usize) {
    let rows: Vec<Vec<String>> = result
        .rows
        .iter()
        .take(max_rows)
        .map(|row| row.iter().map(cell).collect())
        .collect();
    let mut widths: Vec<usize> = result.columns.iter().map(|c| c.chars().count()).collect();
    for row in &rows {
        for (width, value) in widths.iter_mut().zip(row) {
            *width = (*width).max(value.chars().count());
        }
    }
    let line = |values: &[String]| {
        values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!("{}", line(&result.columns));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    );
    for row in &rows {
        println!("{}", line(row));
    }
    let more = if result.truncated {
        " (more not shown)"
    } else {
        ""
    };
    println!("({} rows{more})", rows.len());
}
