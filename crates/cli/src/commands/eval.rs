//! `text2sql eval`: execution accuracy of any system's predictions, in
//! Spider's or BIRD's file formats, under the Spider or BIRD rule.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use text2sql_sql::eval::files::{
    read_bird_predictions, read_gold_file, read_gold_json, read_spider_predictions,
};
use text2sql_sql::{
    evaluate, spider_hardness, EvalExample, EvalOptions, EvalReport, GenerationStats, Rule,
    SandboxLimits,
};

use text2sql_data::prepare::Split;
use text2sql_model::{predict_split, Device, PredictOptions, SqlModel};

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
      --gold bird/dev.sql --db-dir bird/dev_databases --report report.json --per-example examples.jsonl
  text2sql eval --model runs/quickstart/best --data quickstart/processed --split val --limit 200 \\
      --db-dir quickstart/sample/databases --beams 4 --execution-guided")]
pub struct Args {
    /// Predicted SQL: one query per line, or BIRD's prediction JSON with `--format bird`.
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    pub predictions: Option<PathBuf>,
    /// Gold SQL: one `SQL<TAB>db_id` per line (Spider's dev_gold.sql, BIRD's dev.sql),
    /// or a .json array of examples (Spider's or BIRD's dev.json; BIRD's
    /// `difficulty` then gives per-tier accuracy).
    #[arg(long, required_unless_present = "model")]
    pub gold: Option<PathBuf>,
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
    /// Generate the predictions with this model (a checkpoint folder from
    /// `text2sql train` or `convert`) instead of reading a file.
    #[arg(long, requires = "data")]
    pub model: Option<PathBuf>,
    /// With --model: a folder made by `text2sql prepare` (SynSQL, Spider or BIRD).
    #[arg(long, requires = "model")]
    pub data: Option<PathBuf>,
    /// With --model: which split of --data to score.
    #[arg(long, value_enum, default_value_t = SplitArg::Val)]
    pub split: SplitArg,
    /// With --model: score N examples spread evenly over the split (every tier).
    #[arg(long)]
    pub limit: Option<usize>,
    /// With --model: beam width; all beams become candidates.
    #[arg(long, default_value_t = 1)]
    pub beams: usize,
    /// With --model and beams: the first beam whose SQL executes without
    /// error is the prediction (RESDSQL's execution-guided selection).
    #[arg(long)]
    pub execution_guided: bool,
    /// With --model: questions generated together in one batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// With --model: decode without the SQL checker (by default only SQL
    /// that parses and names the database's real tables and columns).
    #[arg(long, requires = "model")]
    pub no_constrain: bool,
    #[command(flatten)]
    pub links: super::LinkArgs,
    #[command(flatten)]
    pub skeletons: super::SkeletonArgs,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitArg {
    Train,
    Val,
}

pub fn run(args: Args, global: &GlobalOpts) -> Result<()> {
    let timeout = text2sql_sql::timeout_from_secs(args.timeout_s).context("--timeout-s")?;
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    if !args.db_dir.is_dir() {
        bail!("--db-dir {} is not a folder", args.db_dir.display());
    }
    let (examples, generation) = match &args.model {
        Some(model) => {
            let (examples, stats) = generate_examples(&args, model, global)?;
            (examples, Some(stats))
        }
        None => (load_examples(&args)?, None),
    };
    let options = EvalOptions {
        rule: args.rule,
        keep_distinct: args.keep_distinct,
        execution_guided: args.execution_guided,
        limits: SandboxLimits {
            max_rows: Some(args.max_rows),
            ..SandboxLimits::for_eval(timeout)
        },
        threads: args.threads,
    };
    let bar = progress_bar(global, examples.len() as u64, "eval", false);
    let mut report = evaluate(&examples, &options, &|| bar.inc(1))?;
    report.summary.generation = generation;
    bar.finish_and_clear();
    emit_report(
        &report,
        args.report.as_deref(),
        args.per_example.as_deref(),
        global,
    )
}

/// Generates predictions with the model for a prepared split, building the
/// model's inputs exactly as it was trained (its saved `InputFormat`).
fn generate_examples(
    args: &Args,
    model_dir: &Path,
    global: &GlobalOpts,
) -> Result<(Vec<EvalExample>, GenerationStats)> {
    let data_dir = args.data.as_deref().context("--model needs --data")?;
    if args.beams == 0 || args.batch_size == 0 {
        bail!("--beams and --batch-size must be at least 1");
    }
    // A batch job: decoding frees and re-allocates the same buffers for
    // every batch, and each return to the kernel would be faulted back in
    // and zeroed (perf: 5% of `eval --model`'s CPU in `clear_page_erms`).
    text2sql_train::alloc::keep_freed_memory();
    let mut model = SqlModel::load(model_dir, &Device::Cpu)?;
    model.set_constrained(!args.no_constrain);
    args.links.apply(&mut model)?;
    args.skeletons.apply(&mut model)?;
    let options = PredictOptions {
        split: match args.split {
            SplitArg::Train => Split::Train,
            SplitArg::Val => Split::Val,
        },
        limit: args.limit,
        beams: args.beams,
        batch_size: args.batch_size,
    };
    let bar = progress_bar(global, 0, "generate", false);
    let predictions = predict_split(
        &model,
        data_dir,
        &args.db_dir,
        &options,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    );
    bar.finish_and_clear();
    let predictions = predictions?;
    Ok((predictions.examples, predictions.stats))
}

fn load_examples(args: &Args) -> Result<Vec<EvalExample>> {
    let (Some(gold_path), Some(predictions_path)) = (&args.gold, &args.predictions) else {
        bail!("give --predictions and --gold, or --model and --data");
    };
    let is_json = gold_path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let gold = if is_json {
        read_gold_json(gold_path)?
    } else {
        read_gold_file(gold_path)?
    };
    let predictions = match args.format {
        PredictionFormat::Spider => read_spider_predictions(predictions_path)?,
        PredictionFormat::Bird => read_bird_predictions(predictions_path)?,
    };
    if predictions.len() != gold.len() {
        bail!(
            "{} has {} predictions but {} has {} gold queries: they must align one to one",
            predictions_path.display(),
            predictions.len(),
            gold_path.display(),
            gold.len()
        );
    }
    let mut examples = Vec::with_capacity(gold.len());
    for (index, (gold, prediction)) in gold.into_iter().zip(predictions).enumerate() {
        if let Some(db_id) = &prediction.db_id {
            if *db_id != gold.db_id {
                bail!(
                    "{}: prediction {index} is for database `{db_id}` but gold line {} is for `{}`",
                    predictions_path.display(),
                    index + 1,
                    gold.db_id
                );
            }
        }
        let db_path = text2sql_data::database_path(&args.db_dir, &gold.db_id);
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
    text2sql_data::atomic::write_file_with(path, fill)
        .with_context(|| format!("cannot write {}", path.display()))
}
