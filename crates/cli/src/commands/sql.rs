//! `text2sql sql check`: run the constrained-decoding checker over a gold
//! file, to see whether constrained decoding fits a corpus: how many queries
//! it accepts, and for each one it rejects, where and why.
//! `text2sql sql run`: run one query in the sandbox exactly as `ask --run`
//! runs the model's SQL.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use text2sql_data::schema::read_tables_file;
use text2sql_model::tokenizer::Tokenizer;
use text2sql_model::GoldChecker;
use text2sql_sql::eval::files::{read_gold_file, read_gold_json};

use crate::output::{print_json, progress_bar, GlobalOpts};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: SqlCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum SqlCommand {
    /// Check gold SQL with the constrained-decoding checker, on its own schema.
    ///
    /// Every query is checked at every prefix and at its end, as decoding
    /// checks it: character by character, or token by token with
    /// --tokenizer. A correct query should always be accepted; a rejected one
    /// is reported with the character offset and reason.
    #[command(after_help = "Examples:
  text2sql sql check --tables spider/tables.json spider/train_gold.sql
  text2sql sql check --tables spider/tables.json --tokenizer runs/quickstart/best spider/dev.json")]
    Check(CheckArgs),
    /// Run one query on a database in the sandbox, exactly as `ask --run`
    /// runs the model's SQL: read-only, one statement, in a worker process
    /// that is stopped at the deadline. Exits 1 when the query fails.
    #[command(after_help = "Examples:
  text2sql sql run --db concert_singer.sqlite --sql \"SELECT count(*) FROM singer\"
  text2sql sql run --db concert_singer.sqlite query.sql --timeout-s 2 --json")]
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The SQLite database.
    #[arg(long)]
    pub db: PathBuf,
    /// The query as text.
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    pub sql: Option<String>,
    /// A file holding the query.
    pub file: Option<PathBuf>,
    /// Rows printed at most.
    #[arg(long, default_value_t = 20)]
    pub max_rows: usize,
    /// Seconds the query may run.
    #[arg(long = "timeout-s", default_value_t = 10.0)]
    pub timeout_s: f64,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Gold SQL: `SQL<TAB>db_id` lines (Spider's dev_gold.sql, BIRD's dev.sql),
    /// or a .json array of examples (Spider, BIRD or SynSQL).
    pub file: PathBuf,
    /// The tables.json with every database the file names.
    #[arg(long)]
    pub tables: PathBuf,
    /// Check at every token prefix under this tokenizer (a folder with
    /// tokenizer.json or spiece.model, such as a checkpoint) instead of at
    /// every character.
    #[arg(long, value_name = "DIR")]
    pub tokenizer: Option<PathBuf>,
    /// Also require gold SQL's conventions (`T1` before `T2`, at most 8
    /// result columns, ...), as decoding's first search does: queries
    /// rejected only here are still reachable by its last attempt.
    #[arg(long)]
    pub conventional: bool,
    /// Rejected queries listed at most (all are counted).
    #[arg(long, default_value_t = 50)]
    pub show: usize,
}

#[derive(Serialize)]
struct Rejected {
    /// 1-based record (line, or element of the JSON array).
    record: usize,
    db_id: String,
    sql: String,
    /// The token (with --tokenizer) or character rejected, 0-based; equal
    /// to the count at the end of the query.
    piece: usize,
    offset: usize,
    message: String,
}

#[derive(Serialize)]
struct Summary {
    file: String,
    unit: &'static str,
    total: usize,
    accepted: usize,
    rejected: Vec<Rejected>,
}

pub fn run(args: Args, global: &GlobalOpts) -> Result<()> {
    match args.command {
        SqlCommand::Check(args) => check(args, global),
        SqlCommand::Run(args) => run_sql(args, global),
    }
}

fn run_sql(args: RunArgs, global: &GlobalOpts) -> Result<()> {
    let timeout: Duration =
        text2sql_sql::timeout_from_secs(args.timeout_s).context("--timeout-s")?;
    let sql = match (args.sql, &args.file) {
        (Some(sql), _) => sql,
        (None, Some(file)) => {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            String::from_utf8(bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{}: not UTF-8 text (byte {})",
                    file.display(),
                    e.utf8_error().valid_up_to()
                )
            })?
        }
        (None, None) => bail!("give --sql or a file"),
    };
    let outcome = super::ask::run_untrusted(&args.db, &sql, timeout, args.max_rows);
    if global.json {
        print_json(&serde_json::json!({
            "result": outcome.as_ref().ok(),
            "error": outcome.as_ref().err(),
        }))?;
    } else if let Ok(result) = &outcome {
        super::ask::print_table(result, args.max_rows);
    }
    // The same exit status with and without --json.
    outcome
        .map(|_| ())
        .with_context(|| format!("the query failed on {}", args.db.display()))
}

fn check(args: CheckArgs, global: &GlobalOpts) -> Result<()> {
    let is_json = args
        .file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let gold = if is_json {
        read_gold_json(&args.file)?
    } else {
        read_gold_file(&args.file)?
    };
    let schemas = read_tables_file(&args.tables)?;
    let tokenizer = args
        .tokenizer
        .as_deref()
        .map(|dir| {
            Tokenizer::from_dir(dir).with_context(|| format!("--tokenizer {}", dir.display()))
        })
        .transpose()?;
    let checker = GoldChecker::new(&schemas, tokenizer.as_ref()).conventional(args.conventional);

    let bar = progress_bar(global, gold.len() as u64, "check", false);
    let mut rejected = Vec::new();
    for (index, entry) in gold.iter().enumerate() {
        bar.inc(1);
        let outcome = checker.check(&entry.db_id, &entry.sql).map_err(|e| {
            anyhow::anyhow!(
                "{}: record {}: {e} (schemas from {})",
                args.file.display(),
                index + 1,
                args.tables.display()
            )
        })?;
        if let Some((piece, rejection)) = outcome {
            rejected.push(Rejected {
                record: index + 1,
                db_id: entry.db_id.clone(),
                sql: entry.sql.clone(),
                piece,
                offset: rejection.offset,
                message: rejection.message,
            });
        }
    }
    bar.finish_and_clear();

    let summary = Summary {
        file: args.file.display().to_string(),
        unit: checker.unit(),
        total: gold.len(),
        accepted: gold.len() - rejected.len(),
        rejected,
    };
    if global.json {
        return print_json(&summary);
    }
    let percent = if summary.total == 0 {
        100.0
    } else {
        100.0 * summary.accepted as f64 / summary.total as f64
    };
    println!(
        "{}: {} of {} queries accepted ({percent:.2}%), checked at every {} prefix",
        summary.file, summary.accepted, summary.total, summary.unit
    );
    for r in summary.rejected.iter().take(args.show) {
        println!(
            "record {} ({}): rejected at byte {} ({} {}): {}\n    {}",
            r.record, r.db_id, r.offset, summary.unit, r.piece, r.message, r.sql
        );
    }
    if summary.rejected.len() > args.show {
        println!(
            "... and {} more (--show N lists more)",
            summary.rejected.len() - args.show
        );
    }
    Ok(())
}
