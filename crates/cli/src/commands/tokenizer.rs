//! `text2sql tokenizer`: train a T5-style Unigram tokenizer, or show how a
//! tokenizer splits a text.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use text2sql_model::tokenizer::{
    train_on_datasets, train_on_text_files, CorpusOptions, CorpusProgress, Tokenizer, TrainOptions,
};

use crate::output::{print_json, progress_bar, GlobalOpts};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: TokenizerCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum TokenizerCommand {
    /// Train a Unigram tokenizer (T5's kind) and write it in Hugging Face layout.
    ///
    /// Every printable ASCII character is kept as a piece, so SQL's `<`, `{`,
    /// `}` and `|` never become <unk> (T5's own vocabulary lacks `<`), and
    /// `<=`, `>=`, `!=`, `<>`, `||` are single tokens. Newlines and repeated
    /// spaces survive a round trip. Special tokens: <pad> = 0, </s> = 1,
    /// <unk> = 2. The same input gives the same tokenizer.json, byte for byte.
    Train(TrainArgs),
    /// Show the pieces and ids a tokenizer gives a text (to spot <unk>s).
    Encode(EncodeArgs),
}

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// A text file with one training text per line (repeatable).
    #[arg(long = "text", value_name = "FILE", required_unless_present = "data")]
    pub texts: Vec<PathBuf>,
    /// A folder written by `text2sql prepare` (repeatable, to train on a mix
    /// of sources): train on the model's real texts, each train example's
    /// question with its database's compact schema, and its gold SQL, plus
    /// the table and column names of every database in the folder. Every
    /// character of them is checked to have a piece (no <unk>).
    #[arg(long, value_name = "DIR", conflicts_with = "texts")]
    pub data: Vec<PathBuf>,
    /// Ids in the vocabulary, special tokens included.
    #[arg(long, default_value_t = 8000)]
    pub vocab_size: u32,
    /// Output folder (tokenizer.json, tokenizer_config.json, special_tokens_map.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Train on at most this many megabytes of text, an evenly spread sample
    /// (the same lines every run). Training time grows with the number of
    /// distinct words: 23 s for 60 MB of Spider-like text on 2 cores.
    #[arg(long, value_name = "MB")]
    pub max_mb: Option<f64>,
    /// Longest piece, in characters.
    #[arg(long, default_value_t = 16)]
    pub max_piece_length: usize,
    /// Reserve the last N ids for schema symbols `<sym0>`..: a model trained
    /// with `data.schema.symbols: true` points at tables and columns with
    /// them instead of spelling names (N must cover the largest database's
    /// distinct names; Spider's largest has 178).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub schema_symbols: u32,
    /// Replace `--out` if it already exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub struct EncodeArgs {
    /// Folder with tokenizer.json or spiece.model (a checkpoint or `tokenizer train` output).
    #[arg(long, value_name = "DIR")]
    pub tokenizer: PathBuf,
    /// Do not append </s>.
    #[arg(long)]
    pub no_eos: bool,
    /// The text to encode.
    pub text: String,
}

pub fn run(args: Args, global: &GlobalOpts) -> Result<()> {
    match args.command {
        TokenizerCommand::Train(args) => train(args, global),
        TokenizerCommand::Encode(args) => encode(args, global),
    }
}

#[derive(Serialize)]
struct TrainSummary {
    out: PathBuf,
    vocab_size: usize,
    texts: u64,
    unique_words: usize,
    seconds: f64,
    example: Encoded,
}

fn train(args: TrainArgs, global: &GlobalOpts) -> Result<()> {
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists (pass --force to replace it)",
            args.out.display()
        );
    }
    let max_bytes = match args.max_mb {
        Some(mb) if mb.is_nan() || mb <= 0.0 => bail!("--max-mb must be positive, got {mb}"),
        Some(mb) => Some((mb * 1e6) as u64),
        None => None,
    };
    let options = CorpusOptions {
        train: TrainOptions {
            vocab_size: args.vocab_size,
            max_piece_length: args.max_piece_length,
            schema_symbols: args.schema_symbols,
        },
        max_bytes,
    };
    let started = Instant::now();
    let bar = progress_bar(global, 0, "reading", true);
    let mut em_spinner = None;
    let mut show = |at: CorpusProgress| match at {
        CorpusProgress::Reading { done, total } => {
            bar.set_length(total);
            bar.set_position(done);
        }
        CorpusProgress::Training { unique_words, .. } => {
            bar.finish_and_clear();
            em_spinner = Some(spinner(
                global,
                &format!("EM training on {unique_words} distinct words"),
            ));
        }
    };
    let trained = if args.data.is_empty() {
        train_on_text_files(&args.texts, &options, &mut show)
    } else {
        train_on_datasets(&args.data, &options, &mut show)
    };
    if let Some(spinner) = em_spinner {
        spinner.finish_and_clear();
    }
    bar.finish_and_clear();
    let trained = trained.context("training the tokenizer")?;
    text2sql_data::atomic::write_dir(&args.out, |dir| {
        trained.tokenizer.save(dir).map_err(anyhow::Error::from)
    })
    .with_context(|| format!("writing {}", args.out.display()))?;
    let summary = TrainSummary {
        out: args.out.clone(),
        vocab_size: trained.tokenizer.vocab_size(),
        texts: trained.texts,
        unique_words: trained.unique_words,
        seconds: started.elapsed().as_secs_f64(),
        example: encoded(
            &trained.tokenizer,
            "SELECT name FROM singer WHERE age <= 30 AND country <> 'France'",
            false,
        )?,
    };
    report(&summary, global)
}

fn report(summary: &TrainSummary, global: &GlobalOpts) -> Result<()> {
    if global.json {
        return print_json(summary);
    }
    if !global.quiet {
        println!(
            "wrote {} (vocabulary {}, trained on {} texts, {} distinct words, {:.1} s)",
            summary.out.display(),
            summary.vocab_size,
            summary.texts,
            summary.unique_words,
            summary.seconds
        );
        println!("example: {}", summary.example.tokens.join(" "));
    }
    Ok(())
}

#[derive(Serialize)]
struct Encoded {
    ids: Vec<u32>,
    tokens: Vec<String>,
    unk_count: usize,
    decoded: String,
}

fn encoded(tokenizer: &Tokenizer, text: &str, add_eos: bool) -> Result<Encoded> {
    let ids = tokenizer.encode(text, add_eos)?;
    let tokens = ids
        .iter()
        .map(|&id| {
            tokenizer
                .id_to_token(id)
                .unwrap_or_else(|| format!("#{id}"))
        })
        .collect();
    Ok(Encoded {
        unk_count: ids.iter().filter(|&&id| id == tokenizer.unk_id()).count(),
        decoded: tokenizer.decode(&ids, true)?,
        ids,
        tokens,
    })
}

fn encode(args: EncodeArgs, global: &GlobalOpts) -> Result<()> {
    let tokenizer = Tokenizer::from_dir(&args.tokenizer)?;
    let result = encoded(&tokenizer, &args.text, !args.no_eos)?;
    if global.json {
        return print_json(&result);
    }
    for (id, token) in result.ids.iter().zip(&result.tokens) {
        println!("{id}\t{token:?}");
    }
    if !global.quiet {
        println!(
            "{} tokens; decodes to {:?}",
            result.ids.len(),
            result.decoded
        );
        if result.unk_count > 0 {
            eprintln!(
                "warning: {} piece(s) are <unk>: this tokenizer cannot represent some characters",
                result.unk_count
            );
        }
    }
    Ok(())
}

/// A spinner with elapsed time, for a stage whose length is unknown.
fn spinner(global: &GlobalOpts, message: &str) -> ProgressBar {
    if !global.interactive() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}]") {
        bar.set_style(style);
    }
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}
