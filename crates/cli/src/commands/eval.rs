//! `text2sql eval`: execution accuracy of any system's predictions, in
//! Spider's or BIRD's file formats, under the Spider or BIRD rule.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use text2sql_sql::eval::files::{
    read_bird_predictions, read_gold_file, read_gold_json, read_spider_predictions,
};
use text2sql_sql::{
    evaluate, spider_hardness, EvalExample, EvalOptions, EvalReport, Rule, SandboxLimits,
};

use crate::output::{print_json, progress_bar, GlobalOpts};

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictionFormat {
    /// One SQL per line, aligned with the gold file (Spider's format).
    Spider,
    /// BIRD's JSON object: {"0": "SQL\t----- bird -----\tdb_id", ...}.
    Bird,
}

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  text2sql eval --predictions pred.txt --gold spider/dev_gold.sql --db-dir spider/database
  text2sql eval --format bird --rule bird --predictions predict_dev.json \\
      --gold bird/dev.sql --db-dir bird/dev_databases --report report.json --per-example examples.jsonl")]
pub struct Args {
    /// Predicted SQL: one query per line, or BIRD's prediction JSON with `--format bird`.
    #[arg(long)]
    pub predictions: PathBuf,
    /// Gold SQL: one `SQL<TAB>db_id` per line (Spider's dev_gold.sql, BIRD's dev.sql),
    /// or a .json array of examples (Spider's or BIRD's dev.json; BIRD's
    /// `difficulty` then gives per-tier accuracy).
    #[arg(long)]
    pub gold: PathBuf,
    /// Folder of databases, laid out as DIR/<db_id>/<db_id>.sqlite.
    #[arg(long)]
    pub db_dir: PathBuf,
    /// Format of the predictions file.
    #[arg(long, value_enum, default_value_t = PredictionFormat::Spider)]
    pub format: PredictionFormat,
    /// Execution-accuracy rule: `spider` (test-suite: bags, column permutations,
    /// order only with ORDER BY) or `bird` (set of rows, as BIRD and OmniSQL).
    #[arg(long, default_value = "spider")]
    pub rule: Rule,
    /// Spider rule: keep DISTINCT instead of removing it from both queries.
    #[arg(long)]
    pub keep_distinct: bool,
    /// Seconds each query may run; a prediction that runs longer is wrong.
    #[arg(long, default_value_t = 10.0)]
    pub timeout_s: f64,
    /// Rows read per query before it is cut off (a cut-off prediction is wrong).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_rows: usize,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write one JSON line per example (prediction, gold, verdict, reason) to this file.
    #[arg(long)]
    pub per_example: Option<PathBuf>,
}

pub fn run(args: Args, global: &GlobalOpts) -> Result<()> {
    if !(args.timeout_s.is_finite() && args.timeout_s > 0.0) {
        bail!(
            "--timeout-s must be a positive number of seconds, got {}",
            args.timeout_s
        );
    }
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    if !args.db_dir.is_dir() {
        bail!("--db-dir {} is not a folder", args.db_dir.display());
    }
    let examples = load_examples(&args)?;
    let options = EvalOptions {
        rule: args.rule,
        keep_distinct: args.keep_distinct,
        execution_guided: false,
        limits: SandboxLimits {
            max_rows: Some(args.max_rows),
            ..SandboxLimits::for_eval(Duration::from_secs_f64(args.timeout_s))
        },
        threads: args.threads,
    };
    let bar = progress_bar(global, examples.len() as u64, "eval", false);
    let report = evaluate(&examples, &options, &|| bar.inc(1));
    bar.finish_and_clear();
    emit_report(
        &report,
        args.report.as_deref(),
        args.per_example.as_deref(),
        global,
    )
}

fn load_examples(args: &Args) -> Result<Vec<EvalExample>> {
    let is_json = args
        .gold
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let gold = if is_json {
        read_gold_json(&args.gold)?
    } else {
        read_gold_file(&args.gold)?
    };
    let predictions = match args.format {
        PredictionFormat::Spider => read_spider_predictions(&args.predictions)?,
        PredictionFormat::Bird => read_bird_predictions(&args.predictions)?,
    };
    if predictions.len() != gold.len() {
        bail!(
            "{} has {} predictions but {} has {} gold queries: they must align one to one",
            args.predictions.display(),
            predictions.len(),
            args.gold.display(),
            gold.len()
        );
    }
    let mut examples = Vec::with_capacity(gold.len());
    for (index, (gold, prediction)) in gold.into_iter().zip(predictions).enumerate() {
        if let Some(db_id) = &prediction.db_id {
            if *db_id != gold.db_id {
                bail!(
                    "{}: prediction {index} is for database `{db_id}` but gold line {} is for `{}`",
                    args.predictions.display(),
                    index + 1,
                    gold.db_id
                );
            }
        }
        let db_path = args
            .db_dir
            .join(&gold.db_id)
            .join(format!("{}.sqlite", gold.db_id));
        examples.push(EvalExample {
            id: index.to_string(),
            // Spider's hardness only means something on Spider-style gold.
            hardness: match args.format {
                PredictionFormat::Spider => spider_hardness(&gold.sql),
                PredictionFormat::Bird => None,
            },
            db_path: db_path.is_file().then_some(db_path),
            candidates: if prediction.sql.is_empty() {
                Vec::new()
            } else {
                vec![prediction.sql]
            },
            gold: gold.sql,
            db_id: gold.db_id,
            tier: gold.tier,
        });
    }
    Ok(examples)
}

/// Writes the summary JSON and the per-example JSONL (when asked), then
/// prints the summary: a table, or JSON under `--json`. Shared by every way
/// of producing predictions (files here, the model's generations).
pub fn emit_report(
    report: &EvalReport,
    report_path: Option<&Path>,
    per_example_path: Option<&Path>,
    global: &GlobalOpts,
) -> Result<()> {
    if let Some(path) = report_path {
        write_atomically(path, |out| {
            serde_json::to_writer_pretty(&mut *out, &report.summary)?;
            writeln!(out)?;
            Ok(())
        })?;
    }
    if let Some(path) = per_example_path {
        write_atomically(path, |out| {
            for outcome in &report.examples {
                serde_json::to_writer(&mut *out, outcome)?;
                writeln!(out)?;
            }
            Ok(())
        })?;
    }
    if global.json {
        print_json(&report.summary)
    } else {
        print!("{}", report.summary.to_table());
        Ok(())
    }
}

/// Writes next to `path` under a temporary name and renames it into place,
/// so that an interrupted run never leaves a file that looks complete.
fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let file_name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| -> Result<()> {
        let mut out = BufWriter::new(File::create(&tmp)?);
        fill(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}
