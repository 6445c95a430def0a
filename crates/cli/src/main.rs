//! The `text2sql` binary: argument parsing and wiring only. Each subcommand
//! lives in `commands/<name>.rs` with its own `Args` and `run`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod output;

// mimalloc: the model's training and decoding loops allocate many short-lived
// tensors, and the system allocator spent a fifth of the time zeroing fresh
// pages in the prototype (see DESIGN.md).
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
    /// Show a database schema from a tables.json file, parsed and serialized.
    Schema(commands::schema::Args),
    /// Bring a Hugging Face T5 checkpoint into the project's layout (f32 or bf16).
    Convert(commands::convert::Args),
}

fn main() -> ExitCode {
    // Before any thread exists: spares candle a /proc/cpuinfo parse per matmul.
    text2sql_model::pin_cpu_threads();
    let cli = Cli::parse();
    output::init_logging(&cli.global);
    let result = match cli.command {
        Command::Schema(args) => commands::schema::run(args, &cli.global),
        Command::Convert(args) => commands::convert::run(args, &cli.global),
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
