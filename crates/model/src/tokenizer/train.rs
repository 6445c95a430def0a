//! Training a T5-style Unigram tokenizer on our own corpus, since no
//! pretrained one can be downloaded here.
//!
//! The pipeline differs from T5's on purpose, for SQL:
//! - every printable ASCII character, `\n` and `\t` is a piece, so `<`, `{`,
//!   `}`, `|`, backquotes and double quotes never become `<unk>` (T5's own
//!   vocabulary lacks `<` and `{`, a known trap for text-to-SQL);
//! - SQL operators (`<=`, `>=`, `!=`, `<>`, `||`) and keywords are always
//!   single tokens (see [`SQL_OPERATORS`], [`SQL_KEYWORDS`]);
//! - normalisation is NFKC only (it keeps all of ASCII), `\r\n` becomes `\n`;
//! - every digit is its own token (a leading space stays on the first one:
//!   ` 6500` is `▁6 5 0 0`), so a number in the question is copied digit by
//!   digit into the SQL instead of being a rare whole-number piece that a
//!   model has to learn one by one (a third of a 3,072 vocabulary went to
//!   numbers before);
//! - newlines are kept as their own token instead of being folded into spaces
//!   (a `--` comment ends at a newline: folding it would comment out the rest
//!   of the query), and runs of spaces are kept, so `decode(encode(s)) == s`
//!   for any NFKC-normal text.
//!
//! Training is deterministic: the same texts give byte-identical
//! `tokenizer.json` whatever the machine's core count (see [`train_unigram`]).

use std::collections::HashMap;

use rayon::prelude::*;
use tokenizers::models::unigram::{Unigram, UnigramTrainer};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence, NFKC};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, NormalizedString, Normalizer, NormalizerWrapper, OffsetReferential, OffsetType,
    PreTokenizedString, PreTokenizer, PreTokenizerWrapper, SplitDelimiterBehavior,
};

use super::spiece::eos_template;
use super::{Tokenizer, TokenizerError, EOS_TOKEN, PAD_TOKEN, UNK_TOKEN};
use text2sql_data::serialize::symbol_token;

/// The trainer's E and M steps sum floating-point counts over chunks of the
/// corpus, one chunk per thread of the current rayon pool: a different thread
/// count gives different low bits and, through ties, a different vocabulary.
/// Training always runs on a pool of exactly this many threads (more than
/// this machine's cores costs little; fewer would idle big machines).
const TRAIN_THREADS: usize = 8;

/// Texts are normalised and split into words in batches of this many.
const COUNT_BATCH: usize = 4096;

/// What [`train_unigram`] needs to know.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Ids in the final vocabulary, `<pad>`, `</s>` and `<unk>` included.
    pub vocab_size: u32,
    /// Longest piece, in characters (SentencePiece's default is 16).
    pub max_piece_length: usize,
    /// Schema symbols (`<sym0>` …, see
    /// [`text2sql_data::serialize::SchemaSymbols`]) taking the last ids of
    /// `vocab_size`: 0 for none.
    pub schema_symbols: u32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            vocab_size: 8000,
            max_piece_length: 16,
            schema_symbols: 0,
        }
    }
}

/// Where training stands, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainStage {
    /// Texts read and split into words so far.
    Reading { texts: u64, bytes: u64 },
    /// All text read; the EM rounds start (no finer progress is available).
    Training { texts: u64, unique_words: usize },
}

/// Characters that are always pieces: printable ASCII, newline and tab.
fn required_alphabet() -> impl Iterator<Item = char> {
    (' '..='~').chain(['\n', '\t'])
}

/// Trains a Unigram tokenizer on `texts` with T5's special tokens at ids
/// 0 (`<pad>`), 1 (`</s>`) and 2 (`<unk>`).
pub fn train_unigram(
    texts: impl Iterator<Item = String>,
    options: &TrainOptions,
) -> Result<Tokenizer, TokenizerError> {
    train_unigram_with_progress(texts, options, |_| {})
}

/// [`train_unigram`], calling `progress` as it goes.
pub fn train_unigram_with_progress(
    texts: impl Iterator<Item = String>,
    options: &TrainOptions,
    mut progress: impl FnMut(TrainStage),
) -> Result<Tokenizer, TokenizerError> {
    let train_error = |message: String| TokenizerError::Train(message);
    let specials = [PAD_TOKEN, EOS_TOKEN, UNK_TOKEN];
    let alphabet_size = required_alphabet().count() + 1; // + "▁"
    let minimum = specials.len()
        + alphabet_size
        + forced_pieces().len()
        + options.schema_symbols as usize
        + 1;
    if (options.vocab_size as usize) < minimum {
        return Err(train_error(format!(
            "vocabulary size {} is too small: the special tokens, the required characters, \
             the SQL operators and keywords and the schema symbols alone take {}",
            options.vocab_size,
            minimum - 1
        )));
    }
    let piece_vocab_size = options.vocab_size - options.schema_symbols;
    let mut tokenizer = empty_pipeline()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(TRAIN_THREADS)
        .build()
        .map_err(|e| train_error(format!("starting the training threads: {e}")))?;
    // The trainer's parallel and sequential paths add in different orders:
    // always take the parallel one so TOKENIZERS_PARALLELISM cannot change the result.
    tokenizers::utils::parallelism::set_parallelism(true);

    let (words, text_count) = count_words(&tokenizer, &pool, texts, &mut progress)?;
    if words.is_empty() {
        return Err(train_error(
            "no training text (all texts were empty)".into(),
        ));
    }
    progress(TrainStage::Training {
        texts: text_count,
        unique_words: words.len(),
    });

    // Sorted words: the seed suffix array and the floating-point sums then
    // see the same order every run (the trainer's own `feed` uses a hash map).
    let mut sentences: Vec<(String, u32)> = words.into_iter().collect();
    // Each required character also stands alone as a sentence whose only
    // segmentation is itself, so EM never drops it; otherwise the trainer
    // re-adds dropped characters in hash-set order, a non-deterministic
    // vocabulary.
    let mut chars: Vec<char> = sentences
        .iter()
        .flat_map(|(word, _)| word.chars())
        .chain(required_alphabet())
        .chain(['▁'])
        .collect();
    chars.sort_unstable();
    chars.dedup();
    if chars.len() + specials.len() > piece_vocab_size as usize {
        return Err(train_error(format!(
            "vocabulary size {} is too small for the {} distinct characters of the corpus",
            options.vocab_size,
            chars.len()
        )));
    }
    sentences.extend(chars.iter().map(|c| (c.to_string(), 1)));
    sentences.sort_unstable();

    let trainer = UnigramTrainer::builder()
        .show_progress(false)
        .vocab_size(piece_vocab_size)
        .max_piece_length(options.max_piece_length)
        .special_tokens(
            specials
                .iter()
                .map(|token| AddedToken::from(*token, true))
                .collect(),
        )
        .unk_token(Some(UNK_TOKEN.to_string()))
        .build()
        .map_err(|e| train_error(format!("configuring the trainer: {e}")))?;
    let mut model = Unigram::default();
    pool.install(|| trainer.do_train(sentences, &mut model))
        .map_err(|e| train_error(e.to_string()))?;

    let model = finish_vocabulary(&model, specials.len(), piece_vocab_size as usize)?;
    tokenizer.with_model(model);
    tokenizer
        .add_special_tokens(specials.iter().map(|token| AddedToken::from(*token, true)))
        .map_err(|e| train_error(format!("adding special tokens: {e}")))?;
    // Not special: decoding keeps them, so the SQL can be mapped back.
    // Matched in the raw text and taking the spaces around them, so that the
    // text between symbols is encoded as it would be alone (each segment
    // gets the normaliser's leading `▁`: a space kept next to a symbol
    // would become a lone `▁` token).
    let symbols: Vec<AddedToken> = (0..options.schema_symbols)
        .map(|i| {
            AddedToken::from(symbol_token(i), false)
                .normalized(false)
                .lstrip(true)
                .rstrip(true)
        })
        .collect();
    tokenizer
        .add_tokens(symbols)
        .map_err(|e| train_error(format!("adding schema symbols: {e}")))?;
    let tokenizer = Tokenizer::from_tokenizers(tokenizer)?;
    if (tokenizer.pad_id, tokenizer.eos_id, tokenizer.unk_id) != (0, 1, 2) {
        return Err(train_error(format!(
            "special tokens landed at ids {}, {}, {} instead of 0, 1, 2",
            tokenizer.pad_id, tokenizer.eos_id, tokenizer.unk_id
        )));
    }
    Ok(tokenizer)
}

/// One digit, with the space before it when there is one: each digit is a
/// word of its own.
const DIGIT_PATTERN: &str = "▁?[0-9]";

/// The pipeline around the model, described in the module documentation.
fn empty_pipeline() -> Result<tokenizers::Tokenizer, TokenizerError> {
    let build = |what: &str, e: tokenizers::Error| TokenizerError::Train(format!("{what}: {e}"));
    let mut tokenizer = tokenizers::Tokenizer::new(Unigram::default());
    let normalizer = NormalizerSequence::new(vec![
        NormalizerWrapper::NFKC(NFKC),
        NormalizerWrapper::Replace(Replace::new("\r\n", "\n").map_err(|e| build("normalizer", e))?),
        NormalizerWrapper::Replace(Replace::new(" ", "▁").map_err(|e| build("normalizer", e))?),
        // Unconditionally, unlike Metaspace's prefix (skipped when the text
        // starts with a space), so leading spaces survive a round trip.
        NormalizerWrapper::Prepend(Prepend::new("▁".into())),
    ]);
    tokenizer
        .with_normalizer(Some(normalizer))
        .map_err(|e| build("normalizer", e))?;
    let newline = Split::new("\n", SplitDelimiterBehavior::Isolated, false)
        .map_err(|e| build("pre-tokenizer", e))?;
    let digits = Split::new(
        SplitPattern::Regex(DIGIT_PATTERN.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| build("pre-tokenizer", e))?;
    tokenizer.with_pre_tokenizer(Some(PreTokenizerSequence::new(vec![
        PreTokenizerWrapper::Split(newline),
        PreTokenizerWrapper::Metaspace(Metaspace::new('▁', PrependScheme::Never, true)),
        PreTokenizerWrapper::Split(digits),
    ])));
    // Turns "▁" back into spaces and drops the one the normaliser prepended.
    tokenizer.with_decoder(Some(Metaspace::new('▁', PrependScheme::First, true)));
    let template = eos_template(1).map_err(TokenizerError::Train)?;
    tokenizer.with_post_processor(Some(template));
    Ok(tokenizer)
}

/// Normalises and splits `texts` into words with the tokenizer's own
/// pipeline, counting each word (what the trainer's `feed` does).
fn count_words(
    tokenizer: &tokenizers::Tokenizer,
    pool: &rayon::ThreadPool,
    texts: impl Iterator<Item = String>,
    progress: &mut impl FnMut(TrainStage),
) -> Result<(HashMap<String, u32>, u64), TokenizerError> {
    let normalizer = tokenizer.get_normalizer();
    let pre_tokenizer = tokenizer.get_pre_tokenizer();
    let split_words = |text: &String| -> Result<Vec<String>, TokenizerError> {
        let fail = |e: tokenizers::Error| TokenizerError::Train(format!("splitting {text:?}: {e}"));
        let mut normalized = NormalizedString::from(text.as_str());
        if let Some(normalizer) = normalizer {
            normalizer.normalize(&mut normalized).map_err(fail)?;
        }
        let mut pre_tokenized = PreTokenizedString::from(normalized);
        if let Some(pre_tokenizer) = pre_tokenizer {
            pre_tokenizer
                .pre_tokenize(&mut pre_tokenized)
                .map_err(fail)?;
        }
        Ok(pre_tokenized
            .get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(word, _, _)| word.to_string())
            .collect())
    };

    let mut counts: HashMap<String, u32> = HashMap::new();
    let (mut text_count, mut byte_count) = (0u64, 0u64);
    let mut texts = texts.peekable();
    while texts.peek().is_some() {
        let batch: Vec<String> = texts.by_ref().take(COUNT_BATCH).collect();
        let batch_words: Vec<Vec<String>> =
            pool.install(|| batch.par_iter().map(split_words).collect::<Result<_, _>>())?;
        for word in batch_words.into_iter().flatten() {
            let count = counts.entry(word).or_insert(0);
            *count = count.saturating_add(1);
        }
        text_count += batch.len() as u64;
        byte_count += batch.iter().map(|t| t.len() as u64).sum::<u64>();
        progress(TrainStage::Reading {
            texts: text_count,
            bytes: byte_count,
        });
    }
    Ok((counts, text_count))
}

/// SQL's multi-character operators, always single tokens, with and without
/// a leading space: `a <= 1` and `a<=1` both give one `<=` piece.
pub const SQL_OPERATORS: [&str; 5] = ["<=", ">=", "!=", "<>", "||"];

/// SQL keywords, always one token after a space, in upper and lower case.
/// Unigram training (SentencePiece's as well as this one) spells them out
/// letter by letter on SQL corpora (`▁S EL E C T`), which makes every
/// target query several times longer than it needs to be.
pub const SQL_KEYWORDS: [&str; 42] = [
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "BETWEEN",
    "IS",
    "NULL",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "DISTINCT",
    "AS",
    "JOIN",
    "INNER",
    "LEFT",
    "OUTER",
    "ON",
    "UNION",
    "INTERSECT",
    "EXCEPT",
    "ALL",
    "ASC",
    "DESC",
    "COUNT",
    "SUM",
    "AVG",
    "MIN",
    "MAX",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "WITH",
    "CAST",
];

/// The pieces [`finish_vocabulary`] guarantees, bare operators before the
/// spaced forms that must beat them.
///
/// A space before a punctuation mark or a digit is also always one piece
/// with it (`▁,`, `▁|`, `▁(`, `▁6`). The trainer seeds its candidates from
/// substrings repeated across the *distinct* words, scored by how many
/// distinct words hold them, so a short word that is never inside another
/// (`▁,` in a schema's ` , `) is never a candidate however often it occurs:
/// every separator cost two tokens.
fn forced_pieces() -> Vec<String> {
    let operators = SQL_OPERATORS.iter().map(|op| op.to_string());
    let spaced_operators = SQL_OPERATORS.iter().map(|op| format!("▁{op}"));
    let keywords = SQL_KEYWORDS
        .iter()
        .flat_map(|kw| [format!("▁{kw}"), format!("▁{}", kw.to_lowercase())]);
    let spaced_marks = ('!'..='~')
        .filter(|c| !c.is_ascii_alphabetic())
        .map(|c| format!("▁{c}"));
    operators
        .chain(spaced_operators)
        .chain(keywords)
        .chain(spaced_marks)
        .collect()
}

/// The trained vocabulary with [`SQL_OPERATORS`] and [`SQL_KEYWORDS`]
/// guaranteed as pieces, the specials first and the other pieces by
/// decreasing score, ties broken by the piece itself (the trainer breaks
/// them in hash-set order), cut to `vocab_size` by dropping the least likely
/// multi-character pieces.
fn finish_vocabulary(
    model: &Unigram,
    specials: usize,
    vocab_size: usize,
) -> Result<Unigram, TokenizerError> {
    let rebuild = |pieces: Vec<(String, f64)>| {
        Unigram::from(pieces, Some(2), false)
            .map_err(|e| TokenizerError::Train(format!("rebuilding the model: {e}")))
    };
    let mut pieces: Vec<(String, f64)> = model.iter().cloned().collect();
    let mut rest = pieces.split_off(specials.min(pieces.len()));
    let mut scores: HashMap<String, f64> = rest.iter().cloned().collect();
    let forced = forced_pieces();
    // Shorter pieces first: a forced piece must beat every segmentation,
    // including those through forced pieces inside it (`▁OR` in `▁ORDER`).
    let mut by_length: Vec<&String> = forced.iter().collect();
    by_length.sort_by_key(|piece| piece.chars().count());
    for piece in by_length {
        let best_other = best_split_score(piece, &scores);
        if scores.get(piece).is_some_and(|&own| own > best_other) {
            continue; // already learnt, and Viterbi already picks it
        }
        // A score above the best other segmentation's makes Viterbi pick it
        // (log-probabilities: the sum over the parts).
        let score = best_other + 1.0;
        match scores.insert(piece.clone(), score) {
            Some(_) => {
                if let Some(entry) = rest.iter_mut().find(|(p, _)| p == piece) {
                    entry.1 = score;
                }
            }
            None => rest.push((piece.clone(), score)),
        }
    }
    rest.sort_by(|(a, sa), (b, sb)| sb.total_cmp(sa).then_with(|| a.cmp(b)));
    let room = vocab_size.saturating_sub(pieces.len());
    let droppable = |piece: &String| {
        // Every single character is required, and the forced pieces were
        // just added with low (log-probability) scores on purpose.
        piece.chars().count() > 1 && !forced.contains(piece)
    };
    while rest.len() > room {
        match rest.iter().rposition(|(piece, _)| droppable(piece)) {
            Some(last) => rest.remove(last),
            None => break,
        };
    }
    pieces.extend(rest);
    rebuild(pieces)
}

/// The highest score of a segmentation of `piece` into two or more pieces
/// of `scores` (Viterbi's objective: the sum of their log-probabilities).
fn best_split_score(piece: &str, scores: &HashMap<String, f64>) -> f64 {
    let bounds: Vec<usize> = piece
        .char_indices()
        .map(|(at, _)| at)
        .chain([piece.len()])
        .collect();
    let last = bounds.len() - 1;
    // best[i]: the best score of the text before bounds[i].
    let mut best = vec![f64::NEG_INFINITY; bounds.len()];
    best[0] = 0.0;
    for end in 1..=last {
        for start in 0..end {
            if (start, end) == (0, last) || best[start] == f64::NEG_INFINITY {
                continue;
            }
            if let Some(score) = scores.get(&piece[bounds[start]..bounds[end]]) {
                best[end] = best[end].max(best[start] + score);
            }
        }
    }
    best[last]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_corpus(lines: usize) -> Vec<String> {
        let tables = ["singer", "concert", "stadium", "orders"];
        let columns = ["name", "age", "country", "year", "capacity"];
        let ops = ["<", "<=", ">", ">=", "=", "!=", "<>"];
        (0..lines)
            .map(|i| {
                let (t, c, o) = (tables[i % 4], columns[i % 5], ops[i % 7]);
                if i % 2 == 0 {
                    format!("How many {t}s have {c} {o} {i}? | {t} : {c} , id")
                } else {
                    format!("SELECT {c}, COUNT(*) FROM {t} WHERE {c} {o} {i} GROUP BY {c}")
                }
            })
            .collect()
    }

    fn small_options() -> TrainOptions {
        TrainOptions {
            vocab_size: 300,
            max_piece_length: 16,
            schema_symbols: 0,
        }
    }

    #[test]
    fn schema_symbols_take_the_last_ids_and_stay_whole() {
        let options = TrainOptions {
            schema_symbols: 40,
            ..small_options()
        };
        let tokenizer = train_unigram(sql_corpus(400).into_iter(), &options).unwrap();
        // The pieces the corpus supports (at most 260), then the symbols.
        assert_eq!(tokenizer.schema_symbols(), 40);
        let first = tokenizer.symbol_id(0).unwrap();
        assert!(first <= 260, "{first}");
        assert_eq!(tokenizer.vocab_size() as u32, first + 40);
        // A symbol is one token, and the text around it is encoded as it
        // would be alone: the spaces next to a symbol leave no lone `▁`.
        let pieces = |text: &str| -> Vec<String> {
            let pieces = tokenizer.tokens(text).unwrap();
            pieces.into_iter().map(|(p, _)| p).collect()
        };
        let with = pieces("SELECT T1.<sym3> FROM <sym39> AS x");
        assert_eq!(
            with,
            [
                pieces("SELECT T1."),
                vec!["<sym3>".into()],
                pieces("FROM"),
                vec!["<sym39>".into()],
                pieces("AS x")
            ]
            .concat()
        );
        let ids = tokenizer
            .encode("SELECT T1.<sym3> FROM <sym39>", true)
            .unwrap();
        assert_eq!(
            tokenizer.decode(&ids, true).unwrap(),
            "SELECT T1.<sym3> FROM<sym39>"
        );
        let plain = train_unigram(sql_corpus(400).into_iter(), &small_options()).unwrap();
        assert_eq!(plain.schema_symbols(), 0);
    }

    #[test]
    fn specials_sit_at_zero_one_two_and_eos_is_appended() {
        let tokenizer = train_unigram(sql_corpus(400).into_iter(), &small_options()).unwrap();
        assert_eq!(tokenizer.id_to_token(0).as_deref(), Some(PAD_TOKEN));
        assert_eq!(tokenizer.id_to_token(1).as_deref(), Some(EOS_TOKEN));
        assert_eq!(tokenizer.id_to_token(2).as_deref(), Some(UNK_TOKEN));
        // The trainer stops early on a tiny corpus: at most what was asked.
        assert!(tokenizer.vocab_size() <= 300, "{}", tokenizer.vocab_size());
        let ids = tokenizer.encode("SELECT name FROM singer", true).unwrap();
        assert_eq!(ids.last(), Some(&1));
        assert!(!ids.contains(&2));
        // Saved for transformers' generic fast class, which keeps our pipeline.
        let dir = tempfile::tempdir().unwrap();
        tokenizer.save(dir.path()).unwrap();
        let config = std::fs::read_to_string(dir.path().join("tokenizer_config.json")).unwrap();
        assert!(config.contains("\"PreTrainedTokenizerFast\""), "{config}");
    }

    #[test]
    fn every_printable_ascii_string_round_trips_without_unk() {
        // The corpus lacks `{`, `}`, `~`, backquotes and most letters.
        let tokenizer = train_unigram(sql_corpus(400).into_iter(), &small_options()).unwrap();
        let printable: String = (' '..='~').collect();
        let mut samples = vec![
            printable.clone(),
            printable.chars().rev().collect(),
            "SELECT `a b` FROM {t} WHERE x <= 1 AND y <> 'q' || \"z\" -- c\nLIMIT 1".into(),
            "  two leading, two trailing  ".into(),
            "a\n\nb\tc   d".into(),
            String::new(),
        ];
        // Every pair of printable characters, a cheap exhaustive check of joins.
        samples.extend(printable.chars().map(|c| format!("{c}{printable}{c}")));
        for text in samples {
            let ids = tokenizer.encode(&text, true).unwrap();
            assert!(
                !ids.contains(&tokenizer.unk_id()),
                "<unk> in {text:?}: {ids:?}"
            );
            assert_eq!(tokenizer.decode(&ids, true).unwrap(), text);
        }
    }

    #[test]
    fn sql_operators_are_single_tokens() {
        let tokenizer = train_unigram(sql_corpus(400).into_iter(), &small_options()).unwrap();
        for op in SQL_OPERATORS {
            let spaced = tokenizer.tokens(&format!("a {op} 1")).unwrap();
            assert!(
                spaced.iter().any(|(t, _)| *t == format!("▁{op}")),
                "{spaced:?}"
            );
            let tight = tokenizer.tokens(&format!("a{op}1")).unwrap();
            assert!(tight.iter().any(|(t, _)| t == op), "{tight:?}");
        }
        let query = "SELECT name FROM singer WHERE age IS NOT NULL ORDER BY age DESC";
        let pieces: Vec<String> = tokenizer
            .tokens(query)
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        let expected = [
            "▁SELECT",
            "▁FROM",
            "▁WHERE",
            "▁IS",
            "▁NOT",
            "▁NULL",
            "▁ORDER",
            "▁BY",
            "▁DESC",
        ];
        for keyword in expected {
            assert!(pieces.iter().any(|p| p == keyword), "{keyword}: {pieces:?}");
        }
        let lower = tokenizer.tokens(&query.to_lowercase()).unwrap();
        assert!(lower.iter().any(|(t, _)| t == "▁select"), "{lower:?}");
        assert_eq!(
            tokenizer
                .decode(&tokenizer.encode(query, true).unwrap(), true)
                .unwrap(),
            query
        );
    }

    fn pieces(tokenizer: &Tokenizer, text: &str) -> Vec<String> {
        tokenizer
            .tokens(text)
            .unwrap()
            .into_iter()
            .map(|(piece, _)| piece)
            .collect()
    }

    #[test]
    fn numbers_are_split_into_digits_the_same_way_in_question_and_sql() {
        // The corpus repeats 6500 often enough to be a whole-number piece.
        let mut corpus = sql_corpus(400);
        corpus.extend((0..200).map(|_| "peak demand 6500 ? | regions : peak_demand_mw".into()));
        let tokenizer = train_unigram(corpus.into_iter(), &small_options()).unwrap();
        assert_eq!(
            pieces(&tokenizer, "capacity 6500?"),
            ["▁capacity", "▁6", "5", "0", "0", "?"].map(String::from)
        );
        // The same digits follow a quote or an operator in SQL.
        let sql = pieces(&tokenizer, "WHERE d >= 6500 AND t < '2023-11-07';");
        let digits: Vec<&str> = sql
            .iter()
            .map(String::as_str)
            .filter(|p| p.trim_start_matches('▁').parse::<u8>().is_ok())
            .collect();
        assert_eq!(
            digits,
            ["▁6", "5", "0", "0", "2", "0", "2", "3", "1", "1", "0", "7"]
        );
        let text = "WHERE d >= 6500 AND t < '2023-11-07';";
        let ids = tokenizer.encode(text, true).unwrap();
        assert_eq!(tokenizer.decode(&ids, true).unwrap(), text);
    }

    #[test]
    fn a_space_and_a_punctuation_mark_are_one_token() {
        // ` , ` and ` | ` separate schema items: one token each, not two.
        let tokenizer = train_unigram(sql_corpus(400).into_iter(), &small_options()).unwrap();
        assert_eq!(
            pieces(&tokenizer, "singer : name , age | stadium ( 1 )"),
            [
                "▁singer",
                "▁:",
                "▁name",
                "▁,",
                "▁age",
                "▁|",
                "▁stadium",
                "▁(",
                "▁1",
                "▁)"
            ]
            .map(String::from)
        );
    }

    #[test]
    fn every_spaced_forced_piece_is_one_token_even_when_it_starts_with_another() {
        // `ORDER` starts with the forced `OR`, `<=` with `<`.
        let tokenizer = train_unigram(sql_corpus(400).into_iter(), &small_options()).unwrap();
        for piece in forced_pieces() {
            let Some(bare) = piece.strip_prefix('▁') else {
                continue;
            };
            assert_eq!(pieces(&tokenizer, bare), std::slice::from_ref(&piece));
        }
    }

    #[test]
    fn forced_pieces_displace_the_least_likely_ones_in_a_full_vocabulary() {
        let mut pieces: Vec<(String, f64)> = [PAD_TOKEN, EOS_TOKEN, UNK_TOKEN]
            .iter()
            .map(|t| (t.to_string(), 0.0))
            .collect();
        pieces.extend(
            required_alphabet()
                .chain(['▁'])
                .map(|c| (c.to_string(), -5.0)),
        );
        let filler: Vec<(String, f64)> = (0..200)
            .map(|i| (format!("w{i:03}"), -6.0 - i as f64 / 100.0))
            .collect();
        pieces.extend(filler);
        let size = pieces.len();
        let model = Unigram::from(pieces, Some(2), false).unwrap();
        let finished = finish_vocabulary(&model, 3, size).unwrap();
        let vocab: Vec<String> = finished.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(vocab.len(), size);
        assert_eq!(&vocab[..3], &[PAD_TOKEN, EOS_TOKEN, UNK_TOKEN]);
        for piece in forced_pieces() {
            assert!(vocab.contains(&piece), "{piece} missing");
        }
        // The most likely filler pieces stay, the least likely went.
        assert!(vocab.contains(&"w000".to_string()));
        assert!(!vocab.contains(&"w199".to_string()));
        assert_eq!(finished.encode("▁SELECT").unwrap(), ["▁SELECT"]);
    }

    #[test]
    fn same_texts_give_identical_tokenizer_json() {
        let corpus = sql_corpus(600);
        let a = train_unigram(corpus.clone().into_iter(), &small_options()).unwrap();
        let b = train_unigram(corpus.into_iter(), &small_options()).unwrap();
        assert_eq!(a.to_json().unwrap(), b.to_json().unwrap());
    }

    #[test]
    fn too_small_a_vocabulary_is_refused_with_the_reason() {
        let options = TrainOptions {
            vocab_size: 150,
            ..small_options()
        };
        let err = train_unigram(sql_corpus(10).into_iter(), &options)
            .unwrap_err()
            .to_string();
        assert!(err.contains("too small"), "{err}");
    }

    #[test]
    fn empty_corpus_is_an_error() {
        let err = train_unigram(vec![String::new()].into_iter(), &small_options())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no training text"), "{err}");
    }
}
