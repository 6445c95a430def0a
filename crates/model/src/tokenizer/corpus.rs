//! The text a tokenizer is trained on: lines of text files, or the
//! model's real inputs and SQL read from prepared datasets, sampled down to
//! a size cap, with a check that nothing the data holds becomes `<unk>`.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use text2sql_data::loader::ProcessedDataset;
use text2sql_data::prepare::Split as DataSplit;
use text2sql_data::store::{Example, SchemaRow};

use super::train::{train_unigram_with_progress, TrainOptions, TrainStage};
use super::{Tokenizer, TokenizerError};
use crate::input::InputFormat;

/// How much text to train on, and the tokenizer to train.
#[derive(Debug, Clone, Default)]
pub struct CorpusOptions {
    pub train: TrainOptions,
    /// Train on at most this many bytes of example text, an evenly spread
    /// sample (the same texts every run); `None` for all of it.
    pub max_bytes: Option<u64>,
}

/// Where corpus training stands, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorpusProgress {
    /// Bytes of text read so far, of `total`.
    Reading { done: u64, total: u64 },
    /// All text read; the EM rounds start (no finer progress is available).
    Training { texts: u64, unique_words: usize },
}

/// A trained tokenizer and what it was trained on.
#[derive(Debug)]
pub struct CorpusTokenizer {
    pub tokenizer: Tokenizer,
    /// Texts the trainer read (after sampling).
    pub texts: u64,
    pub unique_words: usize,
}

/// Trains on the lines of `paths` (empty lines skipped). A file that cannot
/// be read, or a line that is not UTF-8, is an error naming the file and
/// line, never a tokenizer trained on part of the input.
pub fn train_on_text_files(
    paths: &[PathBuf],
    options: &CorpusOptions,
    on_progress: &mut dyn FnMut(CorpusProgress),
) -> Result<CorpusTokenizer, TokenizerError> {
    let mut total_bytes = 0u64;
    for path in paths {
        total_bytes += std::fs::metadata(path)
            .map_err(|source| TokenizerError::Io {
                path: path.clone(),
                source,
            })?
            .len();
    }
    let reader = LineReader::new(paths);
    let trained = train_sampled(
        reader.texts(),
        total_bytes,
        std::iter::empty(),
        options,
        on_progress,
    );
    // A read error ends the text stream early: report it rather than the
    // tokenizer trained on part of the input.
    if let Some(error) = reader.error() {
        return Err(error);
    }
    trained
}

/// Trains on prepared datasets' train splits (see [`DatasetTexts`]): the
/// example texts sampled down to `max_bytes`, then every schema name and
/// every character met, which are never sampled away, so nothing the
/// sources hold becomes `<unk>` (checked after training). Two passes over
/// the splits: the first sizes the progress and surfaces read errors.
pub fn train_on_datasets(
    dirs: &[PathBuf],
    options: &CorpusOptions,
    on_progress: &mut dyn FnMut(CorpusProgress),
) -> Result<CorpusTokenizer, TokenizerError> {
    let corpus = DatasetTexts::open(dirs)?;
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
    let trained = train_sampled(examples, scan.bytes, always, options, on_progress);
    if let Some(error) = failure.into_inner() {
        return Err(error);
    }
    let trained = trained?;
    let missing = uncovered_chars(&trained.tokenizer, scan.chars.iter().copied())?;
    if !missing.is_empty() {
        return Err(TokenizerError::Train(format!(
            "the trained tokenizer turns {} character(s) of the data into <unk>: {:?}",
            missing.len(),
            missing.iter().collect::<String>()
        )));
    }
    Ok(trained)
}

/// Trains on `texts`, sampled down to `options.max_bytes` given their
/// `total_bytes`, then on `always` (never sampled away).
fn train_sampled(
    texts: impl Iterator<Item = String>,
    total_bytes: u64,
    always: impl Iterator<Item = String>,
    options: &CorpusOptions,
    on_progress: &mut dyn FnMut(CorpusProgress),
) -> Result<CorpusTokenizer, TokenizerError> {
    if options.max_bytes == Some(0) {
        return Err(TokenizerError::Train(
            "the text size cap must be positive".into(),
        ));
    }
    let fraction = match options.max_bytes {
        Some(max) if total_bytes > max => max as f64 / total_bytes as f64,
        _ => 1.0,
    };
    let progress = RefCell::new(on_progress);
    let mut done = 0u64;
    let texts = texts.inspect(|text| {
        done += text.len() as u64 + 1;
        (progress.borrow_mut())(CorpusProgress::Reading {
            done,
            total: total_bytes,
        });
    });
    let texts = sample_texts(texts, fraction, options.max_bytes).chain(always);
    let (mut text_count, mut unique_words) = (0, 0);
    let tokenizer = train_unigram_with_progress(texts, &options.train, |stage| {
        if let TrainStage::Training {
            texts,
            unique_words: words,
        } = stage
        {
            (text_count, unique_words) = (texts, words);
            (progress.borrow_mut())(CorpusProgress::Training {
                texts,
                unique_words: words,
            });
        }
    })?;
    Ok(CorpusTokenizer {
        tokenizer,
        texts: text_count,
        unique_words,
    })
}

/// Lines of several files as one stream of texts (empty lines skipped).
/// A read error (say, invalid UTF-8) ends the stream and is kept, naming the
/// file and line, for the caller to report once training returns.
struct LineReader {
    paths: Vec<PathBuf>,
    error: RefCell<Option<TokenizerError>>,
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

    fn lines_of<'a>(
        &'a self,
        path: &'a Path,
    ) -> Box<dyn Iterator<Item = Result<String, TokenizerError>> + 'a> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(source) => {
                let error = TokenizerError::Io {
                    path: path.to_path_buf(),
                    source,
                };
                return Box::new(std::iter::once(Err(error)));
            }
        };
        Box::new(
            BufReader::new(file)
                .lines()
                .enumerate()
                .map(move |(index, line)| {
                    line.map_err(|e| {
                        TokenizerError::Train(format!(
                            "{} line {}: not UTF-8 text ({e})",
                            path.display(),
                            index + 1
                        ))
                    })
                }),
        )
    }

    fn error(&self) -> Option<TokenizerError> {
        self.error.borrow_mut().take()
    }
}

/// Keeps an evenly spread `fraction` of `texts` (all of them when the
/// fraction is 1 or more), stopping once `max_bytes` have been kept: a
/// deterministic way to cap the training text (`--max-mb`) in one pass.
pub fn sample_texts(
    texts: impl Iterator<Item = String>,
    fraction: f64,
    max_bytes: Option<u64>,
) -> impl Iterator<Item = String> {
    let fraction = fraction.clamp(0.0, 1.0);
    let mut kept_bytes = 0u64;
    texts
        .enumerate()
        .filter(move |(index, _)| {
            // Text i is kept when the running quota floor((i + 1) * f) grows.
            let before = (*index as f64 * fraction).floor();
            let after = ((*index + 1) as f64 * fraction).floor();
            after > before
        })
        .map(|(_, text)| text)
        .take_while(move |text| {
            kept_bytes += text.len() as u64;
            max_bytes.is_none_or(|max| kept_bytes <= max)
        })
}

/// The training texts of prepared datasets (`text2sql prepare` folders),
/// for a tokenizer that covers what the model will read: per train example
/// the question as the model sees it (external knowledge included) followed
/// by its database's compact schema, and its gold SQL; and per database of
/// each folder (the val split's too, which no train example shows) one text
/// of its table and column names, real and natural.
pub struct DatasetTexts {
    datasets: Vec<(ProcessedDataset, HashMap<String, SchemaRow>)>,
    format: InputFormat,
}

/// What a first pass over [`DatasetTexts::examples`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextScan {
    /// Bytes of the example texts, one newline each included.
    pub bytes: u64,
    /// Every character of the example and schema-name texts.
    pub chars: BTreeSet<char>,
}

fn data_error(dir: &Path, error: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Train(format!("{}: {error}", dir.display()))
}

impl DatasetTexts {
    /// Opens each folder and reads its schemas.
    pub fn open(dirs: &[PathBuf]) -> Result<Self, TokenizerError> {
        let mut datasets = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let dataset = ProcessedDataset::open(dir).map_err(|e| data_error(dir, e))?;
            let schemas = dataset.schemas().map_err(|e| data_error(dir, e))?;
            datasets.push((dataset, schemas));
        }
        Ok(Self {
            datasets,
            format: InputFormat::default(),
        })
    }

    /// The two texts of one train example of dataset `index`.
    fn example_texts(
        &self,
        index: usize,
        example: &Example,
    ) -> Result<[String; 2], TokenizerError> {
        let (dataset, schemas) = &self.datasets[index];
        let schema = schemas.get(&example.db_id).ok_or_else(|| {
            data_error(
                dataset.dir(),
                format!(
                    "example {} uses database `{}`, which schemas.parquet lacks",
                    example.id, example.db_id
                ),
            )
        })?;
        let question = self
            .format
            .question_text(&example.question, &example.external_knowledge);
        Ok([
            format!("{question} | {}", schema.compact_schema),
            example.sql.clone(),
        ])
    }

    /// Every train example's texts, dataset after dataset, in file order;
    /// a read error ends the stream with that error.
    pub fn examples(&self) -> impl Iterator<Item = Result<String, TokenizerError>> + '_ {
        let mut failed = false;
        self.datasets
            .iter()
            .enumerate()
            .flat_map(move |(index, (dataset, _))| {
                dataset.split(DataSplit::Train).iter().map(move |example| {
                    example
                        .map_err(|e| data_error(dataset.dir(), e))
                        .and_then(|e| self.example_texts(index, &e))
                })
            })
            .flat_map(|texts| -> Vec<Result<String, TokenizerError>> {
                match texts {
                    Ok([a, b]) => vec![Ok(a), Ok(b)],
                    Err(e) => vec![Err(e)],
                }
            })
            .take_while(move |text| {
                let go = !failed;
                failed |= text.is_err();
                go
            })
    }

    /// One text per database of every folder: its table and column names,
    /// real and natural (SynSQL's natural column names are descriptions, so
    /// only the real ones are taken there), space-separated, in a fixed order.
    pub fn schema_names(&self) -> Vec<String> {
        let mut texts = Vec::new();
        for (_, schemas) in &self.datasets {
            let mut ids: Vec<&String> = schemas.keys().collect();
            ids.sort();
            for id in ids {
                let schema = &schemas[id].schema;
                let mut names = vec![schema.db_id.clone()];
                for table in &schema.tables {
                    names.push(table.name.clone());
                    names.push(table.natural_name.clone());
                    names.extend(table.columns.iter().map(|c| c.name.clone()));
                }
                texts.push(names.join(" "));
            }
        }
        texts
    }

    /// A first pass: the example texts' size and every character of them
    /// and of the schema names.
    pub fn scan(&self) -> Result<TextScan, TokenizerError> {
        let mut scan = TextScan::default();
        for text in self.examples() {
            let text = text?;
            scan.bytes += text.len() as u64 + 1;
            scan.chars.extend(text.chars());
        }
        for text in self.schema_names() {
            scan.chars.extend(text.chars());
        }
        Ok(scan)
    }
}

/// The characters of `chars` that `tokenizer` turns into `<unk>`.
pub fn uncovered_chars(
    tokenizer: &Tokenizer,
    chars: impl IntoIterator<Item = char>,
) -> Result<Vec<char>, TokenizerError> {
    let unk = tokenizer.unk_id();
    let mut missing = Vec::new();
    for c in chars {
        if c.is_control() && !matches!(c, '\n' | '\t') {
            continue; // normalised away or kept as bytes nobody reads
        }
        if tokenizer.encode(&c.to_string(), false)?.contains(&unk) {
            missing.push(c);
        }
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_even_deterministic_and_capped() {
        let texts: Vec<String> = (0..100).map(|i| format!("{i:03}")).collect();
        let kept: Vec<String> = sample_texts(texts.clone().into_iter(), 0.25, None).collect();
        assert_eq!(kept.len(), 25);
        assert_eq!(kept[0], "003");
        assert_eq!(kept[1], "007");
        let all: Vec<String> = sample_texts(texts.clone().into_iter(), 2.0, None).collect();
        assert_eq!(all, texts);
        let capped: Vec<String> = sample_texts(texts.into_iter(), 1.0, Some(30)).collect();
        assert_eq!(capped.len(), 10);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_an_error_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("texts.txt");
        std::fs::write(&path, b"SELECT 1\nSELECT \xff\n").unwrap();
        let err = train_on_text_files(&[path], &CorpusOptions::default(), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("texts.txt line 2: not UTF-8"), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = train_on_text_files(
            &[PathBuf::from("/nonexistent/texts.txt")],
            &CorpusOptions::default(),
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/texts.txt"), "{err}");
    }
}
