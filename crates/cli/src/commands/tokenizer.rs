//! `text2sql tokenizer`: train a T5-style Unigram tokenizer, or show how a
//! tokenizer splits a text.

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use text2sql_model::tokenizer::{
    sample_texts, train_unigram_with_progress, uncovered_chars, DatasetTexts, Tokenizer,
    TrainOptions, TrainStage,
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
    if !args.data.is_empty() {
        let (tokenizer, summary) = train_on_corpus(&args.data, &args, global)?;
        write_folder(&args.out, &tokenizer)?;
        return report(&summary, global);
    }
    let mut total_bytes = 0u64;
    for path in &args.texts {
        let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        total_bytes += meta.len();
    }
    let reader = LineReader::new(&args.texts);
    let trained = train_on_texts(
        reader.texts(),
        total_bytes,
        std::iter::empty(),
        &args,
        global,
    );
    // A read error ends the text stream early: report it rather than the
    // tokenizer trained on part of the input.
    if let Some(error) = reader.error() {
        return Err(error);
    }
    let (tokenizer, summary) = trained?;
    write_folder(&args.out, &tokenizer)?;
    report(&summary, global)
}

/// Trains on prepared corpora's train splits (see [`DatasetTexts`]): the
/// example texts sampled down to `--max-mb`, then every schema name and
/// every character met, which are never sampled away, so nothing the
/// sources hold becomes <unk> (checked after training). Two passes over the
/// splits: the first sizes the progress bar and surfaces read errors.
fn train_on_corpus(
    data: &[PathBuf],
    args: &TrainArgs,
    global: &GlobalOpts,
) -> Result<(Tokenizer, TrainSummary)> {
    let corpus = DatasetTexts::open(data)?;
    let scan = corpus.scan()?;
    let failure = RefCell::new(None);
    let examples = corpus.examples().map_while(|text| match text {
        Ok(text) => Some(text),
        Err(error) => {
            failure.borrow_mut().get_or_insert(error);
            None
        }
    });
    let every_char: String = scan.chars.iter().flat_map(|&c| [c, ' ']).collect();
    let always = corpus.schema_names().into_iter().chain([every_char]);
    let trained = train_on_texts(examples, scan.bytes, always, args, global);
    if let Some(error) = failure.into_inner() {
        return Err(error.into());
    }
    let trained = trained?;
    let missing = uncovered_chars(&trained.0, scan.chars.iter().copied())?;
    if !missing.is_empty() {
        bail!(
            "the trained tokenizer turns {} character(s) of the data into <unk>: {:?}",
            missing.len(),
            missing.iter().collect::<String>()
        );
    }
    Ok(trained)
}

/// Trains on `texts`, sampled down to `--max-mb` given their `total_bytes`,
/// with a progress bar over those bytes. `--text` files feed it; a processed
/// corpus can feed it the model's real inputs (question + schema) and SQL.
fn train_on_texts(
    texts: impl Iterator<Item = String>,
    total_bytes: u64,
    always: impl Iterator<Item = String>,
    args: &TrainArgs,
    global: &GlobalOpts,
) -> Result<(Tokenizer, TrainSummary)> {
    let max_bytes = match args.max_mb {
        Some(mb) if mb.is_nan() || mb <= 0.0 => bail!("--max-mb must be positive, got {mb}"),
        Some(mb) => Some((mb * 1e6) as u64),
        None => None,
    };
    let fraction = match max_bytes {
        Some(max) if total_bytes > max => max as f64 / total_bytes as f64,
        _ => 1.0,
    };
    let started = Instant::now();
    let bar = progress_bar(global, total_bytes, "reading", true);
    let texts = texts.inspect(|text| bar.inc(text.len() as u64 + 1));
    let texts = sample_texts(texts, fraction, max_bytes).chain(always);
    let options = TrainOptions {
        vocab_size: args.vocab_size,
        max_piece_length: args.max_piece_length,
        schema_symbols: args.schema_symbols,
    };
    let (mut text_count, mut unique_words) = (0, 0);
    let mut em_spinner = None;
    let result = train_unigram_with_progress(texts, &options, |stage| {
        if let TrainStage::Training {
            texts,
            unique_words: words,
        } = stage
        {
            (text_count, unique_words) = (texts, words);
            bar.finish_and_clear();
            em_spinner = Some(spinner(
                global,
                &format!("EM training on {words} distinct words"),
            ));
        }
    });
    if let Some(spinner) = em_spinner {
        spinner.finish_and_clear();
    }
    bar.finish_and_clear();
    let tokenizer = result.context("training the tokenizer")?;
    let summary = TrainSummary {
        out: args.out.clone(),
        vocab_size: tokenizer.vocab_size(),
        texts: text_count,
        unique_words,
        seconds: started.elapsed().as_secs_f64(),
        example: encoded(
            &tokenizer,
            "SELECT name FROM singer WHERE age <= 30 AND country <> 'France'",
            false,
        )?,
    };
    Ok((tokenizer, summary))
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

/// Saves the tokenizer into a folder built under a temporary name next to
/// `out` and renamed into place (replacing an old `out`, which `--force`
/// allows), so an interrupted run never leaves a complete-looking output.
fn write_folder(out: &Path, tokenizer: &Tokenizer) -> Result<()> {
    text2sql_data::atomic::write_dir(out, |dir| tokenizer.save(dir).map_err(anyhow::Error::from))
        .with_context(|| format!("writing {}", out.display()))
}

/// Lines of several files as one stream of texts (empty lines skipped).
/// A read error (say, invalid UTF-8) ends the stream and is kept, naming the
/// file and line, for the caller to report once training returns.
struct LineReader {
    paths: Vec<PathBuf>,
    error: RefCell<Option<anyhow::Error>>,
}

impl LineReader {
    fn new(paths: &[PathBuf]) -> Self {
        LineReader {
            paths: paths.to_vec(),
            error: RefCell::new(None),
        }
    }

    fn texts(&self) -> impl Iterator<Item = String> + '_ {
        self.paths
            .iter()
            .flat_map(move |path| self.lines_of(path))
            .map_while(move |line| match line {
                Ok(text) => Some(text),
                Err(error) => {
                    self.error.borrow_mut().get_or_insert(error);
                    None
                }
            })
            .filter(|text| !text.is_empty())
    }

    fn lines_of<'a>(&'a self, path: &'a Path) -> Box<dyn Iterator<Item = Result<String>> + 'a> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) => {
                let error =
                    anyhow::Error::new(error).context(format!("opening {}", path.display()));
                return Box::new(std::iter::once(Err(error)));
            }
        };
        Box::new(
            BufReader::new(file)
                .lines()
                .enumerate()
                .map(move |(index, line)| {
                    line.with_context(|| {
                        format!("{} line {}: not UTF-8 text", path.display(), index + 1)
                    })
                }),
        )
    }

    fn error(&self) -> Option<anyhow::Error> {
        self.error.borrow_mut().take()
    }
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
