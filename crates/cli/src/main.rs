//! The `text2sql` binary: argument parsing and wiring only. Each subcommand
//! lives in `commands/<name>.rs` with its own `Args` and `run`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod output;

// mimalloc: the model's training and decoding loops allocate many short-lived
// tensors, and the system allocator spent a fifth of the time zeroing fresh
// pages in the prototype's profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "text2sql",
    version,
    about = "Turn SynSQL-2.5M into a working text-to-SQL model: prepare, train, evaluate, ask, serve",
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    global: output::GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic corpus in the exact SynSQL format (data.json, tables.json, SQLite databases).
    ///
    /// Hundreds to thousands of databases (--databases; by default SynSQL's 150
    /// records per database, at least 200), each a seeded variant of a built-in
    /// domain with its own tables, naming style, columns and rows (real SQLite
    /// files, composite and foreign keys), and question/SQL records over the four
    /// SynSQL tiers and nine question styles, some with external knowledge.
    /// Every gold SQL was executed on its database while generating. The same
    /// --seed gives byte-identical files; 2,544,390 records (the size of
    /// SynSQL-2.5M) are written in bounded memory.
    Sample(commands::sample::Args),
    /// Stream, validate and split a corpus (SynSQL, Spider, BIRD) into Parquet files.
    Prepare(commands::prepare::Args),
    /// Show a database schema the way a model sees it: JSON, OmniSQL DDL or compact T5 form,
    /// optionally with example values and pruned to a token budget.
    Schema(commands::schema::Args),
    /// Train a T5-style tokenizer on the corpus, or see how one splits a text.
    Tokenizer(commands::tokenizer::Args),
    /// Bring a Hugging Face T5 checkpoint into the project's layout (f32 or bf16).
    Convert(commands::convert::Args),
    /// Score predicted SQL by executing it against the gold SQL (execution accuracy).
    Eval(commands::eval::Args),
    /// Train a T5 model on a prepared dataset, as a YAML config describes.
    ///
    /// Starts from a converted checkpoint (model.init_from) or a random model
    /// (model.architecture + model.tokenizer); follows the curriculum phases,
    /// batches by token budget, and writes checkpoints, metrics.jsonl, plots
    /// and the best model (by execution accuracy or validation loss, see
    /// eval.best_metric) to runs/NAME/best. --resume continues exactly from
    /// the latest checkpoint.
    Train(commands::train::Args),
    /// Ask a trained model a question about a SQLite database; optionally run its SQL.
    Ask(commands::ask::Args),
    /// Serve the web demo and JSON API: pick a database, ask, see the SQL and its result.
    Serve(commands::serve::Args),
    /// Check SQL with the constrained-decoding checker: which gold queries it
    /// accepts on their own schema, and where and why it rejects the others.
    Sql(commands::sql::Args),
}

fn main() -> ExitCode {
    // A copy of this program started to run untrusted SQL does only that,
    // and never reads the command line.
    text2sql_sql::serve_worker_if_requested();
    // Before any thread exists: spares candle a /proc/cpuinfo parse per matmul.
    text2sql_model::pin_cpu_threads();
    let cli = Cli::parse();
    output::init_logging(&cli.global);
    let result = match cli.command {
        Command::Sample(args) => commands::sample::run(args, &cli.global),
        Command::Prepare(args) => commands::prepare::run(args, &cli.global),
        Command::Schema(args) => commands::schema::run(args, &cli.global),
        Command::Tokenizer(args) => commands::tokenizer::run(args, &cli.global),
        Command::Eval(args) => commands::eval::run(args, &cli.global),
        Command::Convert(args) => commands::convert::run(args, &cli.global),
        Command::Train(args) => commands::train::run(args, &cli.global),
        Command::Ask(args) => commands::ask::run(args, &cli.global),
        Command::Serve(args) => commands::serve::run(args, &cli.global),
        Command::Sql(args) => commands::sql::run(args, &cli.global),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the cause chain joined with ": ".
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
