//! Batched greedy and beam-search decoding with an external key/value cache,
//! following transformers' `generate` so that results match it token for
//! token: the same beam bookkeeping (2 x beams candidates per step, finished
//! hypotheses scored `sum_logprobs / generated_len ^ length_penalty`, the
//! same early-stop heuristic) and the same `min_new_tokens` rule.
//!
//! Constrained decoding ([`generate_constrained`]): at each step the best
//! candidate tokens of every hypothesis are checked by appending their text
//! to the hypothesis' [`SqlChecker`] (a clone per candidate, so a check
//! costs the new text only), and those that cannot lead to a valid query on
//! the input's schema are masked. EOS is a candidate only where the text is
//! a complete query. A hypothesis none of whose `top_k` candidates passes
//! takes the best passing token of the rest of the vocabulary, in rank
//! order (a small model on an unseen schema often ranks every real name
//! below its top 16, and an unchecked token there is an SQL error for
//! certain). One with no passing token at all is at a dead end and stops
//! there. A constrained hypothesis that a dead end or the token limit cuts
//! off ends where its text last was a complete query, when it ever was one.
//! Candidates that are complete queries come before those that are not.
//! A hypothesis the checker had to overrule more than [`MAX_OVERRULED`]
//! times stops as at a dead end.
//!
//! The first search also holds the output to gold SQL's conventions
//! ([`SqlChecker::conventional`]: `T1` before `T2`, a SELECT list's `T1.x`
//! a column some table has, …), which plain SQL does not require but which
//! rule out most starts no query can finish. Inputs left without a
//! complete query are searched again (see [`Unfinished`]): with
//! [`FALLBACK_BEAMS`] beams after greedy, greedily after beams, and last
//! greedily under the plain rules, so that a query outside the
//! conventions stays within reach.
//!
//! The first search also prefers the tables each question names where the
//! SQL names a table ([`Constraint::table_links`], see
//! [`crate::table_links`]); the searches again do not.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use text2sql_data::serialize::{starts_word_after_symbol, SchemaSymbols};
use text2sql_sql::{Rejection, Skeleton, SkeletonItem, SqlChecker};

use crate::error::{ModelError, Result};
use crate::fill_links::FillLinks;
use crate::t5::{DecoderCache, T5Config, T5Model};
use crate::table_links::{SymbolLink, DEFAULT_TABLE_LINK_BONUS};
use crate::tokenizer::Tokenizer;

/// Candidates checked per hypothesis and step unless told otherwise.
pub const DEFAULT_CONSTRAIN_TOP_K: usize = 16;

/// Each token's text as it extends already decoded text: SentencePiece's
/// `▁` as a space (also at the start: a leading space is harmless to SQL),
/// a digit as itself, a byte-level piece as its bytes. Special tokens
/// (`<pad>`, `<unk>`, sentinels), which decoding drops, have none.
///
/// Cheap to clone: the vocabulary's texts are shared, and an input's schema
/// symbols are a short list of replacements on top of them.
#[derive(Debug, Clone)]
pub struct TokenTexts {
    texts: Arc<[Option<Box<str>>]>,
    /// `(id, text)` sorted by id, read before `texts` (schema symbols).
    replaced: Vec<(u32, Option<Box<str>>)>,
}

impl TokenTexts {
    /// Computed once per tokenizer through its own decoder: the text a
    /// token adds is what decoding it twice gives beyond decoding it once,
    /// which keeps the space a leading `▁` stands for (decoding a sequence
    /// drops it only at the start).
    pub fn new(tokenizer: &Tokenizer) -> Self {
        let texts = (0..tokenizer.vocab_size() as u32)
            .map(|id| {
                let kept = tokenizer.decode(&[id], false).ok()?;
                let once = tokenizer.decode(&[id], true).ok()?;
                if once.is_empty() && !kept.is_empty() {
                    return None;
                }
                let twice = tokenizer.decode(&[id, id], true).ok()?;
                let text = match twice.strip_prefix(once.as_str()) {
                    Some(rest) if !rest.is_empty() => rest,
                    _ => once.as_str(),
                };
                Some(text.into())
            })
            .collect();
        Self::from_texts(texts)
    }

    fn from_texts(texts: Vec<Option<Box<str>>>) -> Self {
        Self {
            texts: texts.into(),
            replaced: Vec::new(),
        }
    }

    /// `id`'s replacement, when it is one of this input's schema symbols.
    fn replacement(&self, id: u32) -> Option<&Option<Box<str>>> {
        let at = self
            .replaced
            .binary_search_by_key(&id, |(id, _)| *id)
            .ok()?;
        Some(&self.replaced[at].1)
    }

    /// How many token ids there are.
    pub(crate) fn vocab_len(&self) -> usize {
        self.texts.len()
    }

    /// Whether `id` is a schema symbol of this input.
    pub(crate) fn is_symbol(&self, id: u32) -> bool {
        self.replacement(id).is_some()
    }

    /// The text `id` adds, or None for a special token.
    pub fn text(&self, id: u32) -> Option<&str> {
        match self.replacement(id) {
            Some(text) => text.as_deref(),
            None => self.texts.get(id as usize)?.as_deref(),
        }
    }

    /// These texts with each schema symbol of `tokenizer` standing for its
    /// name in `symbols` (with a space on each side), and symbols the schema
    /// does not use rejected: what the checker reads for one input.
    pub fn with_symbols(&self, tokenizer: &Tokenizer, symbols: &SchemaSymbols) -> Self {
        let mut replaced: Vec<(u32, Option<Box<str>>)> = (0..symbols.capacity())
            .filter_map(|index| {
                let id = tokenizer.symbol_id(index)?;
                // Spaced on both sides, as `SchemaSymbols::resolve` writes
                // the decoded SQL: a piece after a symbol (`<sym3>` then
                // `Role`) starts a new word there, so the checker must not
                // read one name (`assignmentRole`) where the SQL has two.
                let name = symbols
                    .name_of(index)
                    .map(|name| format!(" {name} ").into());
                ((id as usize) < self.texts.len()).then_some((id, name))
            })
            .collect();
        replaced.sort_by_key(|(id, _)| *id);
        replaced.dedup_by_key(|(id, _)| *id);
        Self {
            texts: self.texts.clone(),
            replaced,
        }
    }
}

/// The longest run of whitespace constrained decoding lets a hypothesis
/// write (gold SQL indents with at most a dozen spaces).
pub const MAX_BLANK_RUN: usize = 16;

/// What constrained decoding needs besides the model.
pub struct Constraint<'a> {
    pub texts: &'a TokenTexts,
    /// Per input, texts that replace `texts` (a model with schema symbols:
    /// see [`TokenTexts::with_symbols`]); empty when none do.
    pub input_texts: Vec<Option<TokenTexts>>,
    /// One checker per input, fresh (empty text), on that input's schema.
    pub checkers: Vec<SqlChecker>,
    /// Candidates checked per hypothesis and step, best first.
    pub top_k: usize,
    /// Per input, the symbols of the tables its question names, preferred
    /// where a table is named (see [`SymbolLink`]); empty when none.
    pub table_links: Vec<Vec<SymbolLink>>,
    /// Per input, the columns, keys and literals its question names,
    /// preferred where a query held to a shape names a column or writes a
    /// literal (see [`FillLinks`]); empty when none.
    pub fill_links: Vec<FillLinks>,
}

impl<'a> Constraint<'a> {
    /// One checker per input (fresh, on its schema) reading `texts`, or
    /// for an input with schema symbols (`symbols`, per input or empty)
    /// `texts` with each symbol standing for its name.
    pub fn new(
        texts: &'a TokenTexts,
        tokenizer: &Tokenizer,
        checkers: Vec<SqlChecker>,
        symbols: &[Option<&SchemaSymbols>],
    ) -> Self {
        Constraint {
            texts,
            input_texts: symbols
                .iter()
                .map(|s| s.map(|s| texts.with_symbols(tokenizer, s)))
                .collect(),
            checkers,
            top_k: DEFAULT_CONSTRAIN_TOP_K,
            table_links: Vec::new(),
            fill_links: Vec::new(),
        }
    }

    /// The constraint of the inputs at `indices`, in that order, its
    /// checkers also requiring gold SQL's conventions when `conventional`
    /// (see [`SqlChecker::conventional`]).
    fn select(
        &self,
        indices: impl IntoIterator<Item = usize>,
        conventional: bool,
    ) -> Constraint<'a> {
        let mut part = Constraint {
            texts: self.texts,
            input_texts: Vec::new(),
            checkers: Vec::new(),
            top_k: self.top_k,
            table_links: Vec::new(),
            fill_links: Vec::new(),
        };
        for input in indices {
            part.table_links
                .push(self.table_links.get(input).cloned().unwrap_or_default());
            part.fill_links
                .push(self.fill_links.get(input).cloned().unwrap_or_default());
            part.input_texts
                .push(self.input_texts.get(input).cloned().flatten());
            let checker = self.checkers[input].clone();
            part.checkers.push(if conventional {
                checker.conventional()
            } else {
                checker
            });
        }
        part
    }

    /// The constraint with these table links, one list per input.
    pub fn with_table_links(mut self, table_links: Vec<Vec<SymbolLink>>) -> Self {
        self.table_links = table_links;
        self
    }

    /// The constraint with these fill links, one per input.
    pub fn with_fill_links(mut self, fill_links: Vec<FillLinks>) -> Self {
        self.fill_links = fill_links;
        self
    }

    /// Adds input `input`'s link bonuses to `row` (log-probabilities of
    /// the next token after `history`): where a table is named next (right
    /// after FROM or JOIN outside parentheses) its table links, for the
    /// named tables `history` has not used yet; elsewhere, for a query held
    /// to a shape, its fill links (see [`FillLinks::prefer`]).
    pub(crate) fn prefer_links(&self, input: usize, row: &mut [f32], history: &[u32]) {
        let texts = self.texts_for(input);
        let last_word = history
            .last()
            .and_then(|&last| texts.text(last))
            .map(str::trim)
            .unwrap_or_default();
        let after_from = last_word.eq_ignore_ascii_case("from");
        if !after_from && !last_word.eq_ignore_ascii_case("join") {
            self.prefer_fill_links(input, row, history);
            return;
        }
        if after_from {
            self.prefer_fitting_table(input, row, history);
        }
        if let Some((links, shapes)) = self.held_shapes(input) {
            let texts = self.texts_for(input);
            if after_from {
                links.prefer_new_source(texts, history, row, shapes);
            } else {
                links.prefer_new_join_table(texts, history, row);
            }
        }
        let Some(links) = self.table_links.get(input).filter(|l| !l.is_empty()) else {
            return;
        };
        // Not inside parentheses: a subquery mostly reads the outer
        // query's table again (`seatCap > (SELECT AVG(seatCap) FROM acft)`),
        // which a bonus for the other named tables would turn into an
        // aggregate misused on an outer column (the quickstart model, 4
        // beams: 16 SQL errors of 200 with subqueries linked, 4 without).
        let depth: i64 = history
            .iter()
            .filter_map(|&token| texts.text(token))
            .flat_map(str::chars)
            .map(|c| match c {
                '(' => 1,
                ')' => -1,
                _ => 0,
            })
            .sum();
        if depth > 0 {
            return;
        }
        for link in links {
            if history.contains(&link.token) {
                continue;
            }
            if let Some(value) = row.get_mut(link.token as usize) {
                *value += link.bonus;
            }
        }
    }

    /// [`FillLinks::prefer`] for input `input`, when a shape holds it.
    fn prefer_fill_links(&self, input: usize, row: &mut [f32], history: &[u32]) {
        if let Some((links, joins)) = self.held_fill_links(input) {
            links.prefer(self.texts_for(input), history, row, joins);
        }
        if let Some((links, shapes)) = self.held_shapes(input) {
            links.prefer_keys(self.texts_for(input), history, row, shapes);
        }
    }

    /// After `FROM` (`history` ends with it) in a query held to shapes
    /// without a join: see [`FillLinks::prefer_table`].
    fn prefer_fitting_table(&self, input: usize, row: &mut [f32], history: &[u32]) {
        if let Some((links, false)) = self.held_fill_links(input) {
            links.prefer_table(self.texts_for(input), history, row);
        }
    }

    /// The fill links of an input held to query shapes, and whether one of
    /// its shapes joins.
    fn held_fill_links(&self, input: usize) -> Option<(&FillLinks, bool)> {
        let (links, shapes) = self.held_shapes(input)?;
        let joins = shapes.iter().any(|shape| {
            shape
                .items()
                .iter()
                .any(|item| matches!(item, SkeletonItem::Keyword(word) if word == "join"))
        });
        Some((links, joins))
    }

    /// The fill links of an input held to query shapes, and its shapes.
    fn held_shapes(&self, input: usize) -> Option<(&FillLinks, &[Skeleton])> {
        let links = self.fill_links.get(input).filter(|l| !l.is_empty())?;
        let shapes = self
            .checkers
            .get(input)
            .map(SqlChecker::skeletons)
            .filter(|shapes| !shapes.is_empty())?;
        Some((links, shapes))
    }

    /// The token texts the checker of input `input` reads.
    fn texts_for(&self, input: usize) -> &TokenTexts {
        match self.input_texts.get(input) {
            Some(Some(texts)) => texts,
            _ => self.texts,
        }
    }
}

/// The checker after `token` following `history` (the tokens so far), or
/// None when the checker rejects it or it would complete a third copy of
/// a block (see [`completes_third_copy`]). EOS passes only where the text is a
/// complete query.
fn try_token(
    checker: &SqlChecker,
    texts: &TokenTexts,
    history: &[u32],
    token: u32,
    eos: u32,
) -> Option<SqlChecker> {
    if token == eos {
        return checker.finish().ok().map(|()| checker.clone());
    }
    extend(checker, texts, history, token).ok()
}

/// Why a token may not come next: decoding's own rules besides the
/// checker's rejection of its text.
#[derive(Debug)]
enum Refusal {
    Special,
    ThirdCopy,
    WordAfterSymbol,
    BlankRun,
    Sql(Rejection),
}

impl Refusal {
    /// Where (`offset`, the checked text's length) and why, as the checker
    /// reports its own rejections.
    fn into_rejection(self, token: u32, offset: usize) -> Rejection {
        let message = match self {
            Refusal::Sql(rejection) => return rejection,
            Refusal::Special => {
                format!("token {token} is a special token, never generated as SQL")
            }
            Refusal::ThirdCopy => "completes a third copy in a row of the tokens before it".into(),
            Refusal::WordAfterSymbol => "a word glued to the schema symbol before it".into(),
            Refusal::BlankRun => format!("more than {MAX_BLANK_RUN} bytes of whitespace in a row"),
        };
        Rejection { offset, message }
    }
}

/// The checker after the text of `token` (not EOS) following `history`:
/// the one set of rules both decoding ([`try_token`]) and the gold check
/// ([`check_token_prefixes`]) apply.
fn extend(
    checker: &SqlChecker,
    texts: &TokenTexts,
    history: &[u32],
    token: u32,
) -> std::result::Result<SqlChecker, Refusal> {
    let text = texts.text(token).ok_or(Refusal::Special)?;
    if completes_third_copy(history, token) {
        return Err(Refusal::ThirdCopy);
    }
    // A word glued to a symbol (`<sym3>` then `Role`) is a second word in
    // the SQL (`assignment Role`, an implicit alias), never a longer name:
    // no target has one.
    if starts_word_after_symbol(text) && history.last().is_some_and(|&last| texts.is_symbol(last)) {
        return Err(Refusal::WordAfterSymbol);
    }
    if blank_run_too_long(checker, text) {
        return Err(Refusal::BlankRun);
    }
    let mut next = checker.clone();
    next.push(first_piece(checker, text))
        .map_err(Refusal::Sql)?;
    Ok(next)
}

/// The longest block of tokens whose repetition [`completes_third_copy`]
/// watches for.
const MAX_REPEAT_PERIOD: usize = 24;

/// Whether `token` would complete a third copy, in a row, of a block of 2
/// to [`MAX_REPEAT_PERIOD`] tokens (not all the same token) that `history`
/// ends with. A small model loops (`MAX(x) AS n, MAX(x) AS n, MAX(x) AS n,
/// …`) until the token limit cuts its query off, an SQL error for certain;
/// with this rule it must write something else after the third copy. No
/// gold query of Spider (train and dev) or of the sample corpus has a
/// block three times in a row, at any token prefix under the project's
/// tokenizers ([`check_token_prefixes`] applies the same rule). A token
/// repeated alone (digits, parentheses, spaces) is left to the checker,
/// which bounds those runs.
fn completes_third_copy(history: &[u32], token: u32) -> bool {
    let len = history.len() + 1;
    (2..=MAX_REPEAT_PERIOD.min(len / 3)).any(|period| {
        let tail = &history[len - 3 * period..];
        let (first, rest) = tail.split_at(period);
        let (second, third) = rest.split_at(period);
        first[period - 1] == token
            && first == second
            && third == &first[..period - 1]
            && first.iter().any(|&t| t != first[0])
    })
}

/// Whitespace is valid anywhere, so a model unsure what comes next could
/// write spaces until it runs out of tokens: past a run no SQL has, blank
/// tokens are rejected.
fn blank_run_too_long(checker: &SqlChecker, text: &str) -> bool {
    text.trim().is_empty() && checker.trailing_whitespace() >= MAX_BLANK_RUN
}

/// Decoding drops the space a first token's `▁` stands for: so does the
/// checker, so that its offsets are those of the decoded SQL.
fn first_piece<'t>(checker: &SqlChecker, text: &'t str) -> &'t str {
    if checker.is_empty() {
        text.strip_prefix(' ').unwrap_or(text)
    } else {
        text
    }
}

/// Checks `ids` (a tokenized query, no EOS) token by token as constrained
/// decoding would, then EOS: on rejection, the index of the token rejected
/// (`ids.len()` for EOS) and why.
pub fn check_token_prefixes(
    checker: &SqlChecker,
    texts: &TokenTexts,
    ids: &[u32],
) -> std::result::Result<(), (usize, Rejection)> {
    let mut state = checker.clone();
    for (index, &id) in ids.iter().enumerate() {
        state = extend(&state, texts, &ids[..index], id)
            .map_err(|refusal| (index, refusal.into_rejection(id, state.len())))?;
    }
    state.finish().map_err(|e| (ids.len(), e))
}

/// The `k` largest entries' indices, largest first (the lower index first
/// among equals), leaving out `-inf` (masked) entries.
fn top_indices(row: &[f32], k: usize) -> Vec<u32> {
    let mut top: Vec<u32> = Vec::with_capacity(k + 1);
    for (i, &value) in row.iter().enumerate() {
        if value == f32::NEG_INFINITY || (top.len() == k && value <= row[top[k - 1] as usize]) {
            continue;
        }
        let at = top.partition_point(|&j| row[j as usize] >= value);
        top.insert(at, i as u32);
        top.truncate(k);
    }
    top
}

/// Every entry's index but the masked (`-inf`) ones, largest first, the
/// lower index first among equals (so its first `k` are [`top_indices`]'s).
fn ranked_indices(row: &[f32]) -> Vec<u32> {
    let mut all: Vec<u32> = (0..row.len() as u32)
        .filter(|&i| row[i as usize] != f32::NEG_INFINITY)
        .collect();
    all.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]));
    all
}

/// The best-ranked token past the first `skip` that passes the checker:
/// the fallback when none of the top `skip` does.
fn first_passing_after(
    checker: &SqlChecker,
    row: &[f32],
    skip: usize,
    (texts, history): (&TokenTexts, &[u32]),
    eos: u32,
) -> Option<(u32, SqlChecker)> {
    ranked_indices(row)
        .into_iter()
        .skip(skip)
        .find_map(|token| try_token(checker, texts, history, token, eos).map(|n| (token, n)))
}

/// Greedy's choice for one row under the checker: the argmax when it
/// passes (the common case costs one check), else the best of the top
/// `top_k` that passes, else the best passing token of the rest; None when
/// no token passes.
fn constrained_choice(
    checker: &SqlChecker,
    row: &[f32],
    (argmax_token, history): (u32, &[u32]),
    constraint: &Constraint,
    input: usize,
    eos: u32,
) -> Option<(u32, SqlChecker)> {
    let texts = constraint.texts_for(input);
    if row[argmax_token as usize] != f32::NEG_INFINITY {
        if let Some(next) = try_token(checker, texts, history, argmax_token, eos) {
            return Some((argmax_token, next));
        }
    }
    top_indices(row, constraint.top_k)
        .into_iter()
        .filter(|&token| token != argmax_token)
        .find_map(|token| try_token(checker, texts, history, token, eos).map(|n| (token, n)))
        .or_else(|| first_passing_after(checker, row, constraint.top_k, (texts, history), eos))
}

/// How to decode. Field names follow transformers' `GenerationConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    /// The most tokens generated per input (an EOS included).
    pub max_new_tokens: usize,
    /// EOS is forbidden before this many tokens.
    pub min_new_tokens: usize,
    /// 1 = greedy.
    pub num_beams: usize,
    /// Finished beams are ranked by `sum_logprobs / len ^ length_penalty`:
    /// above 0 favours longer outputs.
    pub length_penalty: f32,
    /// Stop as soon as `num_beams` hypotheses have finished, instead of
    /// transformers' default heuristic.
    pub early_stopping: bool,
    pub decoder_start_token_id: u32,
    pub eos_token_id: u32,
    pub pad_token_id: u32,
    /// Constrained decoding with schema symbols: the log-probability bonus,
    /// per word of its name the question has, of a table the question
    /// names, where the SQL names a table (see [`SymbolLink`]); 0 turns it
    /// off. A text2sql field: transformers has no such setting.
    pub table_link_bonus: f32,
    /// Constrained decoding held to a query shape prefers the columns,
    /// join keys and literals the question names (see [`FillLinks`]). A
    /// text2sql field.
    pub fill_links: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 128,
            min_new_tokens: 0,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: false,
            decoder_start_token_id: 0,
            eos_token_id: 1,
            pad_token_id: 0,
            table_link_bonus: DEFAULT_TABLE_LINK_BONUS,
            fill_links: true,
        }
    }
}

impl GenerationConfig {
    /// Defaults with the model's special tokens.
    pub fn for_model(config: &T5Config) -> Self {
        Self {
            decoder_start_token_id: config.decoder_start_token(),
            eos_token_id: config.eos_token(),
            pad_token_id: config.pad_token(),
            ..Self::default()
        }
    }

    /// Reads a `generation_config.json`; fields it lacks keep `base`'s values.
    pub fn from_file(path: &Path, base: &Self) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let overrides: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| ModelError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let mut merged =
            serde_json::to_value(base).map_err(|e| ModelError::Invalid(e.to_string()))?;
        if let (Some(merged), Some(overrides)) = (merged.as_object_mut(), overrides.as_object()) {
            for (key, value) in overrides {
                // transformers allows a list of EOS ids; the first is ours.
                let value = match (key.as_str(), value) {
                    ("eos_token_id", serde_json::Value::Array(ids)) => {
                        ids.first().cloned().unwrap_or_default()
                    }
                    _ => value.clone(),
                };
                if merged.contains_key(key) && !value.is_null() {
                    merged.insert(key.clone(), value);
                }
            }
        }
        serde_json::from_value(merged).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    fn validate(&self) -> Result<()> {
        if self.num_beams == 0 {
            return Err(ModelError::Invalid("num_beams must be at least 1".into()));
        }
        check_table_link_bonus(self.table_link_bonus)?;
        if self.max_new_tokens == 0 {
            return Err(ModelError::Invalid(
                "max_new_tokens must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// A [`GenerationConfig::table_link_bonus`] must be a finite number of at
/// least 0.
pub fn check_table_link_bonus(bonus: f32) -> Result<()> {
    if !bonus.is_finite() || bonus < 0.0 {
        return Err(ModelError::Invalid(format!(
            "the table link bonus must be a finite number of at least 0, got {bonus}"
        )));
    }
    Ok(())
}

/// One decoded sequence: the generated tokens (no start token; the EOS
/// included when the model emitted one) and its score (greedy: the sum of
/// token log-probabilities; beam: that sum length-normalised).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hypothesis {
    pub tokens: Vec<u32>,
    pub score: f32,
}

/// Decodes every input (token ids, EOS included as the tokenizer gives
/// them) and returns, per input, its hypotheses best first: one for greedy,
/// `num_beams` for beam search. Deterministic.
pub fn generate(
    model: &T5Model,
    config: &GenerationConfig,
    inputs: &[Vec<u32>],
) -> Result<Vec<Vec<Hypothesis>>> {
    generate_constrained(model, config, inputs, None)
}

/// [`generate`], with each input's output held to SQL its checker accepts
/// when `constraint` is given (see the module documentation).
pub fn generate_constrained(
    model: &T5Model,
    config: &GenerationConfig,
    inputs: &[Vec<u32>],
    constraint: Option<Constraint>,
) -> Result<Vec<Vec<Hypothesis>>> {
    generate_in_batches(
        model,
        config,
        inputs,
        constraint.as_ref(),
        inputs.len().max(1),
        &mut |_| {},
    )
}

/// [`generate_constrained`] over many inputs, `batch_size` of them through
/// the model at a time, in input order. `on_batch` receives the number of
/// inputs decoded so far after each batch. Constrained inputs that never
/// wrote a complete query are searched again, those of several batches
/// together (see [`SEARCH_AGAIN_POOL`]).
pub fn generate_in_batches(
    model: &T5Model,
    config: &GenerationConfig,
    inputs: &[Vec<u32>],
    constraint: Option<&Constraint>,
    batch_size: usize,
    on_batch: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<Hypothesis>>> {
    config.validate()?;
    if batch_size == 0 {
        return Err(ModelError::Invalid(
            "the batch size must be at least 1".into(),
        ));
    }
    if let Some(c) = constraint {
        if c.checkers.len() != inputs.len() {
            return Err(ModelError::Invalid(format!(
                "{} checkers for {} inputs",
                c.checkers.len(),
                inputs.len()
            )));
        }
        if c.top_k == 0 {
            return Err(ModelError::Invalid(
                "the constraint's top_k must be at least 1".into(),
            ));
        }
    }
    if let Some(index) = inputs.iter().position(|ids| ids.is_empty()) {
        return Err(ModelError::Invalid(format!("input #{index} has no tokens")));
    }
    let vocab = model.config().shape.vocab_size as u32;
    for (index, ids) in inputs.iter().enumerate() {
        if let Some(bad) = ids.iter().find(|&&id| id >= vocab) {
            return Err(ModelError::Invalid(format!(
                "input #{index}: token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
    }
    let mut hypotheses = Vec::with_capacity(inputs.len());
    let mut unfinished = Unfinished::default();
    for start in (0..inputs.len()).step_by(batch_size) {
        let end = (start + batch_size).min(inputs.len());
        let part = constraint.map(|c| c.select(start..end, true));
        let (found, source) = first_pass(model, config, &inputs[start..end], part.as_ref())?;
        if constraint.is_some() {
            unfinished.gather(&found, &source, start, config.eos_token_id)?;
        }
        hypotheses.extend(found);
        if let Some(c) = constraint.filter(|_| unfinished.inputs.len() >= SEARCH_AGAIN_POOL) {
            std::mem::take(&mut unfinished).search_again(model, config, c, &mut hypotheses)?;
        }
        on_batch(end);
    }
    if let Some(c) = constraint {
        unfinished.search_again(model, config, c, &mut hypotheses)?;
    }
    Ok(hypotheses)
}

/// Greedy decoding (`num_beams` 1) or beam search of `source`, beam
/// search stopping each input at its first complete query when
/// `first_complete` (greedy's one row stops there anyway).
fn search_batch(
    model: &T5Model,
    config: &GenerationConfig,
    source: &Source,
    constraint: Option<&Constraint>,
    first_complete: bool,
) -> Result<Vec<Vec<Hypothesis>>> {
    if config.num_beams == 1 {
        greedy(model, config, source, constraint)
    } else {
        beam_search(model, config, source, constraint, first_complete)
    }
}

/// One batch: greedy or beam search (constrained: under gold SQL's
/// conventions), then (constrained) each hypothesis cut back to its last
/// complete query and complete queries ranked first. On Spider train's
/// 1,067 tuning questions (a 5,000-step Spider model, greedy), the
/// conventions in the first search rather than only in a second one: 8
/// inputs searched again instead of 193, no SQL errors either way, 45
/// right answers against 47 (the 2 lost were `SELECT count(*) FROM …`
/// right by chance).
fn first_pass(
    model: &T5Model,
    config: &GenerationConfig,
    inputs: &[Vec<u32>],
    constraint: Option<&Constraint>,
) -> Result<(Vec<Vec<Hypothesis>>, Source)> {
    let source = Source::encode(model, inputs, config.pad_token_id)?;
    let mut hypotheses = search_batch(model, config, &source, constraint, false)?;
    if let Some(c) = constraint {
        for (input, per_input) in hypotheses.iter_mut().enumerate() {
            for hypothesis in per_input.iter_mut() {
                end_at_last_complete_query(
                    hypothesis,
                    &c.checkers[input],
                    c.texts_for(input),
                    config.eos_token_id,
                );
            }
            // A query that can run before any that cannot, whatever their
            // scores (stable: the beams' order otherwise).
            per_input.sort_by_key(|h| h.tokens.last() != Some(&config.eos_token_id));
        }
    }
    Ok((hypotheses, source))
}

/// Beams for a constrained input whose greedy decoding never wrote a
/// complete query. On Spider train's 1,067 tuning questions (a 5,000-step
/// Spider model, greedy, conventional rescue after a plain first search):
/// 4 beams 11 SQL errors, 3 beams 13 with the same right answers in 7% less
/// time, 2 beams 32, a greedy rescue 87; 3 beams doubled the quickstart
/// model's greedy errors on its validation databases (8 of 200 against
/// 4).
pub const FALLBACK_BEAMS: usize = 4;

/// Unfinished inputs are searched again ([`FALLBACK_BEAMS`] decoder rows
/// each) once a batch brings their number to this many, and after the
/// last batch: a search takes fewer than this plus a batch. A step's cost
/// grows with its rows (the quickstart model: about 3 ms at 24 rows, 13-15
/// ms at 124), so pooling saves little time (within the noise, against one
/// search per batch, on the quickstart model and on Spider dev); the
/// bound keeps the memory of the encoder output kept for them, and of the
/// search, near that of a batch.
pub const SEARCH_AGAIN_POOL: usize = 32;

/// A constrained greedy row stops (see [`Unfinished`])
/// once the checker has overruled the model's choice more often than
/// this, and a beam ends as at a dead end. Chosen on the tuning databases
/// of Spider train (1,067 questions), greedy: 4 and 6 lost right answers,
/// 8, 12 and 16 gave the same answers, 8 the least time; with 4 beams the
/// limit changed no prediction there and took 6% less time.
pub const MAX_OVERRULED: usize = 8;

/// Constrained inputs whose decoding never wrote a complete query, kept
/// with their encoder output until they are searched again.
///
/// A constrained greedy row (or every beam of an input) can commit early
/// to a choice no query can finish (a SELECT list naming a table its FROM
/// never manages to join) and then wander until the token limit: an SQL
/// error for certain. Such inputs, and only those, are decoded again, by
/// the searches [`Unfinished::search_again`] lists in turn; the best
/// complete query found replaces the input's hypotheses. Inputs that
/// finished cost nothing more.
#[derive(Default)]
struct Unfinished {
    /// Their indices among all inputs.
    inputs: Vec<usize>,
    /// Their encoder output, batch by batch (the first pass's: encoding
    /// them again took a fifth of the search's time on the quickstart
    /// model).
    sources: Vec<Source>,
}

impl Unfinished {
    /// Adds the inputs of one batch (the first `first` among all inputs,
    /// encoded as `source`) none of whose hypotheses ends with EOS.
    fn gather(
        &mut self,
        found: &[Vec<Hypothesis>],
        source: &Source,
        first: usize,
        eos: u32,
    ) -> Result<()> {
        let rows: Vec<u32> = found
            .iter()
            .enumerate()
            .filter(|(_, per_input)| per_input.iter().all(|h| h.tokens.last() != Some(&eos)))
            .map(|(row, _)| row as u32)
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        self.inputs
            .extend(rows.iter().map(|&row| first + row as usize));
        let rows_tensor = Tensor::from_slice(&rows, rows.len(), source.encoded.device())?;
        self.sources.push(source.rows(&rows_tensor)?);
        Ok(())
    }

    /// Searches them again and replaces the hypotheses of each one the
    /// search finishes.
    fn search_again(
        self,
        model: &T5Model,
        config: &GenerationConfig,
        constraint: &Constraint,
        hypotheses: &mut [Vec<Hypothesis>],
    ) -> Result<()> {
        if self.inputs.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let mut left = Attempt {
            source: Source::concat(&self.sources, config.pad_token_id)?,
            inputs: self.inputs,
        };
        let searched = left.inputs.len();
        let greedy_config = GenerationConfig {
            num_beams: 1,
            ..config.clone()
        };
        // Each row stops at its first complete query.
        let beams = GenerationConfig {
            num_beams: FALLBACK_BEAMS.max(config.num_beams),
            early_stopping: true,
            ..config.clone()
        };
        // (search, under gold SQL's conventions), in turn, each for the
        // inputs the ones before left unfinished: after greedy, beams,
        // which keep the alternatives greedy dropped; after beams that all
        // looped to the token limit, greedy's one path, which often
        // finishes (the quickstart model's 4 beams on its validation
        // databases: 16 SQL errors without it, 4 with it). Last, greedy
        // under the plain rules, for a question whose answer breaks the
        // conventions (gold SQL that names its first table `T2`).
        let held = constraint
            .checkers
            .iter()
            .any(|c| !c.skeletons().is_empty());
        let mut attempts: Vec<Retry> = if config.num_beams == 1 {
            vec![Retry::new(&beams, true), Retry::new(&greedy_config, false)]
        } else {
            vec![
                Retry::new(&greedy_config, true),
                Retry::new(&greedy_config, false),
            ]
        };
        // Greedy, an input held to a query shape is first searched again
        // with beams still held to it, its links kept: the alternatives
        // greedy dropped often finish the shape (Spider train's tuning
        // databases: 218 right answers against 209, no SQL errors either
        // way; with 4 beams in the first search, 214 against 215, so not
        // there).
        if held && config.num_beams == 1 {
            attempts.insert(
                0,
                Retry {
                    held: true,
                    ..Retry::new(&beams, true)
                },
            );
        }
        // With beams, an input held to retrieved query shapes that none of
        // these finished is last decoded as it would have been without
        // them (Spider train's tuning databases, 4 beams, execution-guided:
        // 8 SQL errors without this search, where no shapes give none;
        // first instead of last, it found 5 fewer right answers).
        if held && config.num_beams > 1 {
            attempts.push(Retry::new(config, false));
        }
        for retry in attempts {
            if left.inputs.is_empty() {
                break;
            }
            left = left.search(model, &retry, constraint, hypotheses)?;
        }
        tracing::debug!(
            searched,
            rescued = searched - left.inputs.len(),
            seconds = started.elapsed().as_secs_f64(),
            "inputs without a complete query searched again"
        );
        Ok(())
    }
}

/// One search of [`Unfinished::search_again`].
struct Retry<'c> {
    search: &'c GenerationConfig,
    /// Under gold SQL's conventions.
    conventional: bool,
    /// Still held to the query shapes, with the table and fill links; an
    /// input without shapes is left for the next search.
    held: bool,
}

impl<'c> Retry<'c> {
    fn new(search: &'c GenerationConfig, conventional: bool) -> Self {
        Retry {
            search,
            conventional,
            held: false,
        }
    }
}

/// Inputs still without a complete query, with their encoder output.
struct Attempt {
    inputs: Vec<usize>,
    source: Source,
}

impl Attempt {
    /// Decodes these inputs as `retry` says; the best complete query of
    /// each input that has one replaces its hypotheses. Returns the inputs
    /// left without one.
    fn search(
        self,
        model: &T5Model,
        retry: &Retry,
        constraint: &Constraint,
        hypotheses: &mut [Vec<Hypothesis>],
    ) -> Result<Attempt> {
        let eos = retry.search.eos_token_id;
        let mut part = constraint.select(self.inputs.iter().copied(), retry.conventional);
        if !retry.held {
            // Searched again as before table links: where a preferred
            // table led the first search astray (the quickstart model,
            // greedy, on its validation databases: 15 SQL errors of 200
            // with links here too, 3 without, as without links at all),
            // the model's own choice is the way out.
            part.table_links.clear();
            part.fill_links.clear();
            // Likewise the query shapes retrieved for it: held to them,
            // the search already failed (Spider train's tuning databases,
            // greedy: 68 right answers and 3 SQL errors, against 72 and 1
            // without, before the held search with beams).
            for checker in &mut part.checkers {
                *checker = checker.clone().without_skeletons();
            }
        }
        let found = search_batch(model, retry.search, &self.source, Some(&part), true)?;
        let mut left = Vec::new();
        for (row, (&input, candidates)) in self.inputs.iter().zip(found).enumerate() {
            // A held search has nothing to hold an input without shapes to.
            if retry.held && part.checkers[row].skeletons().is_empty() {
                left.push(row as u32);
                continue;
            }
            let complete = candidates.into_iter().find_map(|mut hypothesis| {
                end_at_last_complete_query(
                    &mut hypothesis,
                    &part.checkers[row],
                    part.texts_for(row),
                    eos,
                );
                (hypothesis.tokens.last() == Some(&eos)).then_some(hypothesis)
            });
            match complete {
                Some(hypothesis) => hypotheses[input] = vec![hypothesis],
                None => left.push(row as u32),
            }
        }
        let rows = Tensor::from_slice(&left, left.len(), self.source.encoded.device())?;
        Ok(Attempt {
            inputs: left.iter().map(|&row| self.inputs[row as usize]).collect(),
            source: if left.is_empty() {
                self.source
            } else {
                self.source.rows(&rows)?
            },
        })
    }
}

/// A constrained hypothesis cut off by `max_new_tokens` (no EOS: a model
/// that loops, `ON T3.id = T3.id = T3.id …`) is an incomplete query that
/// cannot run. It ends instead where its text last was a complete query the
/// checker accepts, when there was such a point; its score stays that of
/// the whole hypothesis.
fn end_at_last_complete_query(
    hypothesis: &mut Hypothesis,
    fresh: &SqlChecker,
    texts: &TokenTexts,
    eos: u32,
) {
    if let Some((&last, before)) = hypothesis.tokens.split_last() {
        if last == eos {
            // Beam search can hand back a hypothesis ending in the EOS a
            // dead end was given (a held search, which reaches dead ends
            // often, handed back `FROM Customer AS T1 \` \``): only a query
            // the checker accepts whole ends here. Decoding checked each
            // token already, so this re-reads one text per hypothesis.
            if check_token_prefixes(fresh, texts, before).is_ok() {
                return;
            }
            hypothesis.tokens.pop();
        }
    }
    let mut state = fresh.clone();
    let mut complete_at = None;
    for (index, &id) in hypothesis.tokens.iter().enumerate() {
        let Some(text) = texts.text(id) else {
            break;
        };
        let piece = first_piece(&state, text);
        if state.push(piece).is_err() {
            break;
        }
        if state.finish().is_ok() {
            complete_at = Some(index + 1);
        }
    }
    if let Some(length) = complete_at {
        hypothesis.tokens.truncate(length);
        hypothesis.tokens.push(eos);
    }
}

/// A batch of inputs as the decoder reads them: their padded ids, the
/// encoder's output and the padding mask (none when nothing is padded).
#[derive(Clone)]
struct Source {
    ids: Tensor,
    encoded: Tensor,
    mask: Option<Tensor>,
}

impl Source {
    /// `inputs` right-padded into one batch and encoded.
    fn encode(model: &T5Model, inputs: &[Vec<u32>], pad: u32) -> Result<Source> {
        let (ids, mask) = pad_batch(model, inputs, pad)?;
        Ok(Source {
            encoded: model.encode(&ids, mask.as_ref(), false)?,
            ids,
            mask,
        })
    }

    /// The rows of `parts`, in order, in one batch: each part's ids,
    /// encoder output and mask padded to the longest part (masked there).
    fn concat(parts: &[Source], pad: u32) -> Result<Source> {
        if let [only] = parts {
            return Ok(only.clone());
        }
        let mut lengths = Vec::with_capacity(parts.len());
        for part in parts {
            lengths.push(part.ids.dim(1)?);
        }
        let longest = lengths.iter().copied().max().unwrap_or(0);
        let needs_mask =
            parts.iter().any(|p| p.mask.is_some()) || lengths.iter().any(|&l| l != longest);
        let (mut ids, mut encoded, mut masks) = (Vec::new(), Vec::new(), Vec::new());
        for (part, &length) in parts.iter().zip(&lengths) {
            let (rows, _, width) = part.encoded.dims3()?;
            let missing = longest - length;
            let device = part.ids.device();
            let (part_ids, part_encoded) = if missing == 0 {
                (part.ids.clone(), part.encoded.clone())
            } else {
                let pad_ids = Tensor::full(pad, (rows, missing), device)?;
                let zeros = Tensor::zeros((rows, missing, width), part.encoded.dtype(), device)?;
                (
                    Tensor::cat(&[&part.ids, &pad_ids], 1)?,
                    Tensor::cat(&[&part.encoded, &zeros], 1)?,
                )
            };
            ids.push(part_ids);
            encoded.push(part_encoded);
            if needs_mask {
                let shown = match &part.mask {
                    Some(mask) => mask.clone(),
                    None => Tensor::ones((rows, length), DType::U32, device)?,
                };
                masks.push(if missing == 0 {
                    shown
                } else {
                    Tensor::cat(
                        &[&shown, &Tensor::zeros((rows, missing), DType::U32, device)?],
                        1,
                    )?
                });
            }
        }
        Ok(Source {
            ids: Tensor::cat(&ids, 0)?,
            encoded: Tensor::cat(&encoded, 0)?,
            mask: needs_mask.then(|| Tensor::cat(&masks, 0)).transpose()?,
        })
    }

    /// Row `i` of the result is row `rows[i]` of this batch.
    fn rows(&self, rows: &Tensor) -> Result<Source> {
        Ok(Source {
            ids: self.ids.index_select(rows, 0)?,
            encoded: self.encoded.index_select(rows, 0)?,
            mask: self
                .mask
                .as_ref()
                .map(|m| m.index_select(rows, 0))
                .transpose()?,
        })
    }

    fn start_decoding(&self, model: &T5Model, beams: usize) -> Result<DecoderCache> {
        model.start_beam_decoding(&self.ids, &self.encoded, self.mask.as_ref(), beams)
    }
}

/// Right-pads `inputs` into `(batch, max_len)` ids and a mask, or no mask
/// when all have the same length.
fn pad_batch(model: &T5Model, inputs: &[Vec<u32>], pad: u32) -> Result<(Tensor, Option<Tensor>)> {
    let max_len = inputs.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(inputs.len() * max_len);
    let mut mask = Vec::with_capacity(inputs.len() * max_len);
    for row in inputs {
        ids.extend(
            row.iter()
                .copied()
                .chain(std::iter::repeat_n(pad, max_len - row.len())),
        );
        mask.extend((0..max_len).map(|i| u32::from(i < row.len())));
    }
    let shape = (inputs.len(), max_len);
    let ids = Tensor::from_vec(ids, shape, model.device())?;
    let padded = inputs.iter().any(|row| row.len() != max_len);
    let mask = if padded {
        Some(Tensor::from_vec(mask, shape, model.device())?)
    } else {
        None
    };
    Ok((ids, mask))
}

/// `log(sum(exp(row)))`, stable.
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    let sum: f32 = row.iter().map(|&x| crate::ops::exp_shifted(x - max)).sum();
    max + sum.ln()
}

/// Each input's fresh checker (`None` for every input of an unconstrained
/// batch of `batch`).
fn initial_checkers(constraint: Option<&Constraint>, batch: usize) -> Vec<Option<SqlChecker>> {
    match constraint {
        Some(c) => c.checkers.iter().cloned().map(Some).collect(),
        None => vec![None; batch],
    }
}

/// The states at `listed` (ascending indices), each with its index: the
/// inputs a decoding step advances, to be handed out to threads.
fn listed_mut<'s, T>(states: &'s mut [T], listed: &[usize]) -> Vec<(usize, &'s mut T)> {
    let mut is_listed = vec![false; states.len()];
    for &index in listed {
        is_listed[index] = true;
    }
    states
        .iter_mut()
        .enumerate()
        .filter(|(index, _)| is_listed[*index])
        .collect()
}

/// One input's greedy decoding so far.
struct GreedyState {
    hypothesis: Hypothesis,
    /// The checker while the hypothesis is constrained.
    checker: Option<SqlChecker>,
    /// How often the checker overruled the model's choice.
    overruled: usize,
}

impl GreedyState {
    /// One step on `row` (this input's logits): the token chosen, or None
    /// when the input stops (EOS chosen, or a constrained dead end).
    fn advance(
        &mut self,
        input: usize,
        mut row: Vec<f32>,
        step: usize,
        config: &GenerationConfig,
        constraint: Option<&Constraint>,
    ) -> Option<u32> {
        let log_norm = log_sum_exp(&row);
        if step < config.min_new_tokens {
            if let Some(eos) = row.get_mut(config.eos_token_id as usize) {
                *eos = f32::NEG_INFINITY;
            }
        }
        if let Some(c) = constraint {
            c.prefer_links(input, &mut row, &self.hypothesis.tokens);
        }
        let mut token = argmax(&row);
        if let (Some(c), Some(checker)) = (constraint, self.checker.take()) {
            // A dead end: no token of the vocabulary continues the text
            // into SQL that can run. The row stops here and ends at its
            // last complete query, if it had one (going on unconstrained
            // can only add an SQL error).
            let (chosen, next) = constrained_choice(
                &checker,
                &row,
                (token, &self.hypothesis.tokens),
                c,
                input,
                config.eos_token_id,
            )?;
            // A row the checker keeps overruling has lost its way (it
            // wanders until the token limit): it stops like a dead end.
            // A row held to retrieved query shapes is overruled by design.
            if chosen != token && checker.skeletons().is_empty() {
                self.overruled += 1;
                if self.overruled > MAX_OVERRULED {
                    return None;
                }
            }
            token = chosen;
            self.checker = Some(next);
        }
        self.hypothesis.tokens.push(token);
        self.hypothesis.score += row[token as usize] - log_norm;
        (token != config.eos_token_id).then_some(token)
    }
}

fn greedy(
    model: &T5Model,
    config: &GenerationConfig,
    source: &Source,
    constraint: Option<&Constraint>,
) -> Result<Vec<Vec<Hypothesis>>> {
    let batch = source.encoded.dim(0)?;
    let mut cache = source.start_decoding(model, 1)?;
    let mut states: Vec<GreedyState> = initial_checkers(constraint, batch)
        .into_iter()
        .map(|checker| GreedyState {
            hypothesis: Hypothesis {
                tokens: Vec::new(),
                score: 0.0,
            },
            checker,
            overruled: 0,
        })
        .collect();
    // Inputs still decoding, ascending, one cache row each; finished ones
    // are dropped from the cache so they cost nothing.
    let mut active: Vec<usize> = (0..batch).collect();
    let mut next = vec![config.decoder_start_token_id; batch];
    for step in 0..config.max_new_tokens {
        let tokens = Tensor::from_slice(&next, active.len(), model.device())?;
        let logits = model.decode_step(&mut cache, &tokens)?.to_vec2::<f32>()?;
        // The rows advance in parallel, as beam search's inputs do.
        let chosen: Vec<Option<u32>> = listed_mut(&mut states, &active)
            .par_iter_mut()
            .zip(logits.into_par_iter())
            .map(|((input, state), row)| state.advance(*input, row, step, config, constraint))
            .collect();
        let still_active: Vec<usize> = (0..active.len())
            .filter(|&row| chosen[row].is_some())
            .collect();
        if still_active.is_empty() {
            break;
        }
        if still_active.len() != active.len() {
            let keep: Vec<u32> = still_active.iter().map(|&row| row as u32).collect();
            cache.reorder(&Tensor::from_vec(keep, still_active.len(), model.device())?)?;
            active = still_active.iter().map(|&row| active[row]).collect();
        }
        next = chosen.into_iter().flatten().collect();
    }
    Ok(states.into_iter().map(|s| vec![s.hypothesis]).collect())
}

/// The first index of the largest value (torch's `argmax` on ties).
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &value) in row.iter().enumerate() {
        if value > row[best] {
            best = i;
        }
    }
    best as u32
}

/// transformers' "unreachable" score.
const NEG: f32 = -1.0e9;

#[derive(Debug, Clone)]
struct Beam {
    tokens: Vec<u32>,
    score: f32,
    /// The checker's state after `tokens`, while the beam is constrained.
    checker: Option<SqlChecker>,
    /// Steps at which the checker rejected the model's first choice.
    overruled: usize,
}

struct BeamState {
    running: Vec<Beam>,
    /// Best first, at most `num_beams`.
    finished: Vec<Hypothesis>,
    /// transformers' `is_early_stop_heuristic_unsatisfied`.
    improvable: bool,
}

/// What one step of beam search needs besides each input's own state.
struct BeamStep<'a> {
    config: &'a GenerationConfig,
    constraint: Option<&'a Constraint<'a>>,
    /// With it (and `early_stopping`), an input is done at its first
    /// finished hypothesis that ends with EOS (under a constraint, a
    /// complete query) rather than at `num_beams` finished ones.
    first_complete: bool,
    step: usize,
}

impl BeamStep<'_> {
    fn done(&self, state: &BeamState) -> bool {
        let eos = self.config.eos_token_id;
        state.finished.len() == self.config.num_beams
            || (self.first_complete && state.finished.iter().any(|h| h.tokens.last() == Some(&eos)))
    }

    /// An input whose finished hypotheses can no longer change.
    fn frozen(&self, state: &BeamState) -> bool {
        !state.improvable || (self.config.early_stopping && self.done(state))
    }

    fn last_step(&self) -> bool {
        self.step + 1 == self.config.max_new_tokens
    }

    /// One step of input `input`'s beams, whose logits are `logits` (one
    /// row per beam): its new running beams, and for each the beam it
    /// continues.
    fn advance(&self, state: &mut BeamState, input: usize, logits: &[Vec<f32>]) -> Vec<usize> {
        let config = self.config;
        let beams = config.num_beams;
        let candidates = 2 * beams;
        let last_step = self.last_step();
        // Length of a hypothesis ending at this step, start token excluded.
        let generated_len = (self.step + 1) as f64;
        let normaliser = generated_len.powf(config.length_penalty as f64) as f32;
        // Top `2 * beams` continuations over all beams, best first.
        let mut top: Vec<(f32, usize, u32)> = Vec::with_capacity(candidates + 1);
        // Checker states of the constrained candidates, by (beam, token).
        let mut checked: Vec<((usize, u32), SqlChecker)> = Vec::new();
        // Beams at a dead end (no token passes): their one candidate is
        // EOS, and they finish without it, cut back to their last
        // complete query (see `end_at_last_complete_query`).
        let mut dead_ends: Vec<usize> = Vec::new();
        // Per beam, its overruled steps after this one.
        let mut overruled: Vec<usize> = state.running.iter().map(|b| b.overruled).collect();
        for (k, beam) in state.running.iter().enumerate() {
            let mut row = logits[k].clone();
            let log_norm = log_sum_exp(&row);
            for value in row.iter_mut() {
                *value -= log_norm;
            }
            if let Some(c) = self.constraint {
                c.prefer_links(input, &mut row, &beam.tokens);
            }
            if self.step < config.min_new_tokens {
                if let Some(eos) = row.get_mut(config.eos_token_id as usize) {
                    *eos = f32::NEG_INFINITY;
                }
            }
            let insert = |top: &mut Vec<(f32, usize, u32)>, token: u32, log_prob: f32| {
                let total = log_prob + beam.score;
                if top.len() == candidates && total <= top[candidates - 1].0 {
                    return;
                }
                let at = top.partition_point(|&(score, _, _)| score >= total);
                top.insert(at, (total, k, token));
                top.truncate(candidates);
            };
            if let (Some(c), Some(checker)) = (self.constraint, &beam.checker) {
                // The best passing candidates, at most as many as can
                // be kept.
                let before = checked.len();
                // A beam overruled too often is lost, as a greedy row
                // is: it takes no candidate, so it ends at a dead end
                // below instead of wandering.
                let lost = beam.overruled > MAX_OVERRULED && checker.skeletons().is_empty();
                let ranked = if lost {
                    Vec::new()
                } else {
                    top_indices(&row, c.top_k)
                };
                for (rank, token) in ranked.into_iter().enumerate() {
                    // Past a candidate that cannot enter the kept ones
                    // none can (a beam's candidates come best first):
                    // once the beam has a passing token (it is at no
                    // dead end) the rest need no check.
                    let total = row[token as usize] + beam.score;
                    let kept_out = top.len() == candidates && total <= top[candidates - 1].0;
                    if kept_out && checked.len() > before {
                        break;
                    }
                    if let Some(next) = try_token(
                        checker,
                        c.texts_for(input),
                        &beam.tokens,
                        token,
                        config.eos_token_id,
                    ) {
                        insert(&mut top, token, row[token as usize]);
                        checked.push(((k, token), next));
                        if checked.len() - before == candidates {
                            break;
                        }
                    } else if rank == 0 {
                        overruled[k] += 1;
                    }
                }
                if checked.len() == before && !lost {
                    if let Some((token, next)) = first_passing_after(
                        checker,
                        &row,
                        c.top_k,
                        (c.texts_for(input), &beam.tokens),
                        config.eos_token_id,
                    ) {
                        insert(&mut top, token, row[token as usize]);
                        checked.push(((k, token), next));
                    }
                }
                if checked.len() == before {
                    let eos = config.eos_token_id;
                    let log_prob = row.get(eos as usize).copied().filter(|v| v.is_finite());
                    insert(&mut top, eos, log_prob.unwrap_or(NEG));
                    checked.push(((k, eos), checker.clone()));
                    dead_ends.push(k);
                }
                continue;
            }
            for (token, &log_prob) in row.iter().enumerate() {
                insert(&mut top, token as u32, log_prob);
            }
        }
        let hits: Vec<bool> = top
            .iter()
            .map(|&(_, _, token)| token == config.eos_token_id || last_step)
            .collect();
        // Finished hypotheses: candidates among the first `beams` that stop.
        if !self.frozen(state) {
            for (i, &(total, k, token)) in top.iter().enumerate().take(beams) {
                if !hits[i] {
                    continue;
                }
                let mut tokens = state.running[k].tokens.clone();
                if !(token == config.eos_token_id && dead_ends.contains(&k)) {
                    tokens.push(token);
                }
                let score = total / normaliser;
                let at = state.finished.partition_point(|h| h.score >= score);
                state.finished.insert(at, Hypothesis { tokens, score });
                state.finished.truncate(beams);
            }
        }
        // Next running beams: the best continuations that did not stop.
        let mut order: Vec<usize> = (0..top.len()).collect();
        order.sort_by(|&i, &j| {
            let key = |i: usize| top[i].0 + if hits[i] { NEG } else { 0.0 };
            key(j).total_cmp(&key(i))
        });
        let mut running = Vec::with_capacity(beams);
        let mut continued = Vec::with_capacity(beams);
        for &i in order.iter().take(beams) {
            let (total, k, token) = top[i];
            let mut tokens = state.running[k].tokens.clone();
            tokens.push(token);
            let checker = checked
                .iter()
                .position(|(key, _)| *key == (k, token))
                .map(|at| checked.swap_remove(at).1);
            running.push(Beam {
                tokens,
                score: total + if hits[i] { NEG } else { 0.0 },
                checker,
                overruled: overruled[k],
            });
            continued.push(k);
        }
        state.running = running;
        // transformers' early-stop heuristic, with the length so far.
        if state.improvable {
            let best_possible = state.running[0].score / normaliser;
            let worst_finished = if state.finished.len() == beams {
                state.finished[beams - 1].score
            } else {
                NEG
            };
            state.improvable = best_possible > worst_finished;
        }
        continued
    }
}

/// With `first_complete` (and `early_stopping`), a row is done at its first
/// finished hypothesis that ends with EOS (under a constraint, a complete
/// query) rather than at `num_beams` finished ones.
fn beam_search(
    model: &T5Model,
    config: &GenerationConfig,
    source: &Source,
    constraint: Option<&Constraint>,
    first_complete: bool,
) -> Result<Vec<Vec<Hypothesis>>> {
    let batch = source.encoded.dim(0)?;
    let beams = config.num_beams;
    let initial = initial_checkers(constraint, batch);
    let device = model.device();
    // Every input's rows, `beams` in a row, share its encoder output.
    let mut cache = source.start_decoding(model, beams)?;
    let mut states: Vec<BeamState> = (0..batch)
        .map(|b| BeamState {
            running: (0..beams)
                .map(|k| Beam {
                    tokens: Vec::new(),
                    score: if k == 0 { 0.0 } else { NEG },
                    checker: initial[b].clone(),
                    overruled: 0,
                })
                .collect(),
            finished: Vec::new(),
            improvable: true,
        })
        .collect();
    // The inputs still decoding, in the cache's order (`beams` rows each),
    // ascending: frozen ones leave the cache so that they cost nothing.
    let mut live: Vec<usize> = (0..batch).collect();
    let mut next = vec![config.decoder_start_token_id; batch * beams];
    for step in 0..config.max_new_tokens {
        let tokens = Tensor::from_slice(&next, next.len(), device)?;
        let logits = model.decode_step(&mut cache, &tokens)?.to_vec2::<f32>()?;
        let context = BeamStep {
            config,
            constraint,
            first_complete,
            step,
        };
        // The inputs advance in parallel: between two decoding steps the
        // cores would otherwise idle while one thread ranks and checks
        // every input's candidates.
        let continued: Vec<Vec<usize>> = listed_mut(&mut states, &live)
            .par_iter_mut()
            .enumerate()
            .map(|(slot, (b, state))| {
                context.advance(state, *b, &logits[slot * beams..(slot + 1) * beams])
            })
            .collect();
        let source_rows: Vec<u32> = continued
            .iter()
            .enumerate()
            .flat_map(|(slot, ks)| ks.iter().map(move |&k| (slot * beams + k) as u32))
            .collect();
        let kept: Vec<usize> = (0..live.len())
            .filter(|&slot| !context.frozen(&states[live[slot]]))
            .collect();
        if context.last_step() || kept.is_empty() {
            break;
        }
        if kept.len() == live.len() {
            cache.follow_beams(&source_rows, beams)?;
        } else {
            let rows: Vec<u32> = kept
                .iter()
                .flat_map(|&slot| {
                    source_rows[slot * beams..(slot + 1) * beams]
                        .iter()
                        .copied()
                })
                .collect();
            cache.reorder(&Tensor::from_vec(rows, kept.len() * beams, device)?)?;
            live = kept.iter().map(|&slot| live[slot]).collect();
        }
        next = live
            .iter()
            .flat_map(|&b| {
                states[b]
                    .running
                    .iter()
                    .map(|beam| beam.tokens.last().copied().unwrap_or(0))
            })
            .collect();
    }
    Ok(states.into_iter().map(|s| s.finished).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_texts_are_the_schema_names_and_unused_symbols_are_rejected() {
        let tokenizer =
            crate::test_util::symbol_tokenizer_trained_on("SELECT name FROM singer WHERE age > 3");
        let schema: text2sql_data::schema::DatabaseSchema = serde_json::from_str(
            r#"{"db_id": "s", "tables": [{"name": "singer", "natural_name": "singer",
                    "columns": [{"name": "Name", "description": "", "data_type": "TEXT",
                    "sample_values": []}], "primary_key": []}], "foreign_keys": [], "ddls": []}"#,
        )
        .unwrap();
        let symbols = SchemaSymbols::new(&schema, 8);
        let base = TokenTexts::new(&tokenizer);
        let texts = base.with_symbols(&tokenizer, &symbols);
        let id = |i: u32| tokenizer.symbol_id(i).unwrap();
        assert_eq!(texts.text(id(0)), Some(" singer "));
        assert_eq!(texts.text(id(1)), Some(" Name "));
        assert_eq!(texts.text(id(2)), None);
        let select = tokenizer.token_to_id("▁SELECT").unwrap();
        assert_eq!(texts.text(select), base.text(select));
        // A piece that continues a word, written right after a symbol: the
        // decoded SQL has two words there, and so must the checker's text.
        let piece = (0..tokenizer.vocab_size() as u32)
            .find(|&t| {
                base.text(t)
                    .is_some_and(|text| text.chars().all(|c| c.is_ascii_alphabetic()))
            })
            .unwrap();
        let ids = [select, id(1), piece];
        let checked: String = ids.iter().map(|&t| texts.text(t).unwrap()).collect();
        let decoded = crate::input::decode_sql(&tokenizer, &ids, Some(&symbols)).unwrap();
        assert_eq!(
            checked.split_whitespace().collect::<Vec<_>>(),
            decoded.split_whitespace().collect::<Vec<_>>(),
            "checked {checked:?}, decoded {decoded:?}"
        );
        // Constrained decoding refuses such a piece right after a symbol,
        // and takes one that starts with a space or a comma.
        let eos = tokenizer.vocab_size() as u32;
        let mut after_symbol = SqlChecker::new(Arc::new(text2sql_sql::SchemaIndex::new(&schema)));
        after_symbol.push("SELECT Name ").unwrap();
        let history = [select, id(1)];
        assert!(try_token(&after_symbol, &texts, &history, piece, eos).is_none());
        let from = tokenizer.token_to_id("▁FROM").unwrap();
        assert!(try_token(&after_symbol, &texts, &history, from, eos).is_some());
        // The gold check, token by token, applies the same rule.
        let fresh = SqlChecker::new(Arc::new(text2sql_sql::SchemaIndex::new(&schema)));
        let (at, why) = check_token_prefixes(&fresh, &texts, &ids).unwrap_err();
        assert_eq!(at, 2, "{why:?}");
        assert!(why.message.contains("glued"), "{why:?}");
    }

    #[test]
    fn generation_config_file_overrides_only_what_it_sets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("generation_config.json");
        std::fs::write(
            &path,
            r#"{"num_beams": 4, "eos_token_id": [7, 1], "length_penalty": 0.6,
                "transformers_version": "5.24.0", "max_length": 20}"#,
        )
        .unwrap();
        let base = GenerationConfig {
            max_new_tokens: 33,
            ..GenerationConfig::default()
        };
        let config = GenerationConfig::from_file(&path, &base).unwrap();
        assert_eq!(config.num_beams, 4);
        assert_eq!(config.eos_token_id, 7);
        assert_eq!(config.length_penalty, 0.6);
        assert_eq!(config.max_new_tokens, 33);
        std::fs::write(&path, r#"{"num_beams": "many"}"#).unwrap();
        let message = GenerationConfig::from_file(&path, &base)
            .unwrap_err()
            .to_string();
        assert!(message.contains("generation_config.json"), "{message}");
    }

    mod constrained {
        use std::sync::Arc;

        use candle_core::{DType, Device};
        use text2sql_data::schema::{Column, DatabaseSchema, Table};
        use text2sql_sql::{SchemaIndex, SqlChecker};

        use super::super::*;
        use crate::input::InputFormat;
        use crate::sql_model::write_random_checkpoint;
        use crate::tokenizer::{train_unigram, TrainOptions};

        struct Fixture {
            _dir: tempfile::TempDir,
            model: T5Model,
            tokenizer: Tokenizer,
            schema: Arc<SchemaIndex>,
            inputs: Vec<Vec<u32>>,
        }

        fn fixture() -> Fixture {
            let lines = [
                "How many singers are there ? | concert | singer : singer_id , name , age",
                "SELECT count(*) FROM singer",
                "SELECT name FROM singer WHERE age > 30 ORDER BY age DESC",
                "SELECT T1.name , max(age) FROM singer AS T1 GROUP BY T1.name",
                "What are the names of singers older than 30 ?",
            ];
            let tokenizer = train_unigram(
                lines.iter().cycle().take(200).map(|s| s.to_string()),
                &TrainOptions {
                    vocab_size: 300,
                    ..TrainOptions::default()
                },
            )
            .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let model_dir = dir.path().join("model");
            write_random_checkpoint(&model_dir, &tokenizer, &InputFormat::default(), 5).unwrap();
            let model = T5Model::load(&model_dir, DType::F32, &Device::Cpu).unwrap();
            let column = |name: &str| Column {
                name: name.to_string(),
                description: name.to_string(),
                data_type: "text".to_string(),
                sample_values: Vec::new(),
            };
            let schema = DatabaseSchema {
                db_id: "concert".into(),
                tables: vec![Table {
                    name: "singer".into(),
                    natural_name: "singer".into(),
                    columns: vec![column("singer_id"), column("name"), column("age")],
                    primary_key: vec![0],
                }],
                foreign_keys: Vec::new(),
                ddls: Vec::new(),
                values: None,
            };
            let inputs = [lines[0], lines[4]]
                .iter()
                .map(|text| tokenizer.encode(text, true).unwrap())
                .collect();
            Fixture {
                _dir: dir,
                model,
                tokenizer,
                schema: Arc::new(SchemaIndex::new(&schema)),
                inputs,
            }
        }

        /// Whether `tokens` (EOS last when finished) is SQL the checker
        /// accepts: a valid prefix, and a complete query when it ended.
        fn acceptable(f: &Fixture, texts: &TokenTexts, tokens: &[u32]) -> bool {
            let eos = f.tokenizer.eos_id();
            let (body, ended) = match tokens.split_last() {
                Some((&last, body)) if last == eos => (body, true),
                _ => (tokens, false),
            };
            let checker = SqlChecker::new(f.schema.clone());
            match check_token_prefixes(&checker, texts, body) {
                Ok(()) => true,
                Err((at, _)) => !ended && at == body.len(),
            }
        }

        #[test]
        fn every_hypothesis_is_sql_the_checker_accepts() {
            let f = fixture();
            let texts = TokenTexts::new(&f.tokenizer);
            for beams in [1, 3] {
                let config = GenerationConfig {
                    max_new_tokens: 24,
                    num_beams: beams,
                    ..GenerationConfig::for_model(f.model.config())
                };
                // Unconstrained, the random model writes what no checker accepts.
                let free = generate(&f.model, &config, &f.inputs).unwrap();
                assert!(
                    free.iter()
                        .flatten()
                        .any(|h| !acceptable(&f, &texts, &h.tokens)),
                    "{free:?}"
                );
                let constraint = Constraint {
                    texts: &texts,
                    input_texts: Vec::new(),
                    checkers: vec![SqlChecker::new(f.schema.clone()); f.inputs.len()],
                    // Two checked first, the rest of the vocabulary only
                    // when both fail.
                    top_k: 2,
                    table_links: Vec::new(),
                    fill_links: Vec::new(),
                };
                let held =
                    generate_constrained(&f.model, &config, &f.inputs, Some(constraint)).unwrap();
                assert_eq!(held.len(), 2);
                for hypothesis in held.iter().flatten() {
                    assert!(
                        acceptable(&f, &texts, &hypothesis.tokens),
                        "{beams} beams: {:?}",
                        f.tokenizer.decode(&hypothesis.tokens, false)
                    );
                    assert!(hypothesis.tokens.len() <= 24);
                }
                assert!(held.iter().all(|h| h.len() == beams));
            }
        }

        #[test]
        fn a_checker_held_to_a_query_shape_keeps_decoding_to_that_shape() {
            let f = fixture();
            let texts = TokenTexts::new(&f.tokenizer);
            let shape = text2sql_sql::Skeleton::of_sql("SELECT count(*) FROM farm").unwrap();
            let held_checker = SqlChecker::new(f.schema.clone()).with_skeletons(vec![shape]);
            // Whether the text of `tokens` can still become a query of the shape.
            let fits = |tokens: &[u32]| {
                let eos = f.tokenizer.eos_id();
                let body = tokens.strip_suffix(&[eos]).unwrap_or(tokens);
                let mut checker = held_checker.clone();
                body.iter()
                    .all(|&id| checker.push(texts.text(id).unwrap_or("\u{0}")).is_ok())
            };
            for beams in [1, 3] {
                let config = GenerationConfig {
                    max_new_tokens: 24,
                    num_beams: beams,
                    ..GenerationConfig::for_model(f.model.config())
                };
                let constrained = |checker: &SqlChecker| {
                    let checkers = vec![checker.clone(); f.inputs.len()];
                    generate_constrained(
                        &f.model,
                        &config,
                        &f.inputs,
                        Some(two_checked(&texts, checkers)),
                    )
                    .unwrap()
                };
                // Free, the random model writes something else (a comment).
                let free = constrained(&SqlChecker::new(f.schema.clone()));
                assert!(free.iter().all(|h| !fits(&h[0].tokens)), "{beams} beams");
                let held = constrained(&held_checker);
                for hypotheses in &held {
                    let best = &hypotheses[0].tokens;
                    let text = f.tokenizer.decode(best, true).unwrap();
                    assert!(fits(best), "{beams} beams: {text:?}");
                    assert!(text.to_lowercase().contains("count("), "{text:?}");
                }
            }
        }

        #[test]
        fn a_rejected_top_k_falls_back_to_the_best_passing_token_of_the_vocabulary() {
            let f = fixture();
            let texts = TokenTexts::new(&f.tokenizer);
            let config = GenerationConfig {
                max_new_tokens: 16,
                ..GenerationConfig::for_model(f.model.config())
            };
            // With one candidate checked first, a rejected argmax sends the
            // row to the rest of the vocabulary in rank order: the same
            // tokens as checking the whole vocabulary at once.
            let constrained = |top_k: usize| {
                let constraint = Constraint {
                    texts: &texts,
                    input_texts: Vec::new(),
                    checkers: vec![SqlChecker::new(f.schema.clone()); f.inputs.len()],
                    top_k,
                    table_links: Vec::new(),
                    fill_links: Vec::new(),
                };
                generate_constrained(&f.model, &config, &f.inputs, Some(constraint)).unwrap()
            };
            let held = constrained(1);
            assert_eq!(held, constrained(f.tokenizer.vocab_size()));
            assert_ne!(held, generate(&f.model, &config, &f.inputs).unwrap());
            for hypothesis in held.iter().flatten() {
                assert!(acceptable(&f, &texts, &hypothesis.tokens));
            }
            let wrong = Constraint {
                texts: &texts,
                input_texts: Vec::new(),
                checkers: vec![SqlChecker::new(f.schema.clone())],
                top_k: 4,
                table_links: Vec::new(),
                fill_links: Vec::new(),
            };
            assert!(generate_constrained(&f.model, &config, &f.inputs, Some(wrong)).is_err());
        }

        #[test]
        fn a_hypothesis_at_a_dead_end_stops_there() {
            let f = fixture();
            // Every token reads `)`, which nothing can take after WHERE, and
            // the text is not a complete query: no token passes, EOS
            // included. Going on unconstrained would write `)` to the limit.
            let texts = TokenTexts::from_texts(vec![Some(")".into()); f.tokenizer.vocab_size()]);
            let mut at_where = SqlChecker::new(f.schema.clone());
            at_where.push("SELECT name FROM singer WHERE").unwrap();
            for beams in [1, 3] {
                let config = short_search(&f, beams);
                let constraint = two_checked(&texts, vec![at_where.clone(); f.inputs.len()]);
                let held =
                    generate_constrained(&f.model, &config, &f.inputs, Some(constraint)).unwrap();
                assert!(held.iter().all(|h| h.len() == beams), "{held:?}");
                for hypothesis in held.iter().flatten() {
                    assert!(hypothesis.tokens.is_empty(), "{beams} beams: {held:?}");
                }
            }
        }

        /// A constraint checking two candidates first, on `texts` alone.
        fn two_checked(texts: &TokenTexts, checkers: Vec<SqlChecker>) -> Constraint<'_> {
            Constraint {
                texts,
                input_texts: Vec::new(),
                checkers,
                top_k: 2,
                table_links: Vec::new(),
                fill_links: Vec::new(),
            }
        }

        /// Texts where every token reads `)` but `(id, text)`.
        fn all_close_but(f: &Fixture, id: u32, text: &str) -> TokenTexts {
            let mut texts = vec![Some(")".into()); f.tokenizer.vocab_size()];
            texts[id as usize] = Some(text.into());
            TokenTexts::from_texts(texts)
        }

        /// Decoding of at most 12 tokens with `beams` beams (1: greedy).
        fn short_search(f: &Fixture, beams: usize) -> GenerationConfig {
            GenerationConfig {
                max_new_tokens: 12,
                num_beams: beams,
                ..GenerationConfig::for_model(f.model.config())
            }
        }

        fn at_comparison(f: &Fixture) -> SqlChecker {
            let mut checker = SqlChecker::new(f.schema.clone());
            checker.push("SELECT name FROM singer WHERE age >").unwrap();
            checker
        }

        #[test]
        fn an_input_that_never_finished_is_searched_again_with_beams() {
            let f = fixture();
            let eos = f.tokenizer.eos_id();
            // Only ` 1` then EOS completes `... WHERE age >`.
            let one = 5;
            let texts = all_close_but(&f, one, " 1");
            let constraint = two_checked(&texts, vec![at_comparison(&f); f.inputs.len()]);
            for beams in [1, 3] {
                let config = short_search(&f, beams);
                // The first input's pass wrote nothing that runs (greedy's
                // row, or each of its beams); the second ended with a
                // query, which stays as it is.
                let stopped = Hypothesis {
                    tokens: Vec::new(),
                    score: 0.0,
                };
                let ended = Hypothesis {
                    tokens: vec![one, eos],
                    score: -1.5,
                };
                let mut hypotheses = vec![vec![stopped; beams], vec![ended.clone()]];
                let source = Source::encode(&f.model, &f.inputs[..2], config.pad_token_id).unwrap();
                let mut unfinished = Unfinished::default();
                unfinished.gather(&hypotheses, &source, 0, eos).unwrap();
                assert_eq!(unfinished.inputs, vec![0]);
                unfinished
                    .search_again(&f.model, &config, &constraint, &mut hypotheses)
                    .unwrap();
                assert_eq!(hypotheses[0].len(), 1, "{beams} beams");
                assert_eq!(hypotheses[0][0].tokens, vec![one, eos]);
                assert_eq!(hypotheses[1], vec![ended]);
            }
        }

        #[test]
        fn a_greedy_input_held_to_a_shape_is_searched_again_held_to_it() {
            let f = fixture();
            let eos = f.tokenizer.eos_id();
            // Two tokens complete `... WHERE age >`: ` 1` in the shape,
            // ` 1 OR age > 1` outside it (the model's choice when free).
            let (in_shape, outside) = (5, 6);
            let mut texts = vec![Some(")".into()); f.tokenizer.vocab_size()];
            texts[in_shape as usize] = Some(" 1".into());
            texts[outside as usize] = Some(" 1 OR age > 1".into());
            let texts = TokenTexts::from_texts(texts);
            let shape = text2sql_sql::Skeleton::of_sql("SELECT name FROM singer WHERE age > 1");
            let at_comparison = |checker: SqlChecker| {
                let mut checker = checker;
                checker.push("SELECT name FROM singer WHERE age >").unwrap();
                checker
            };
            let free = at_comparison(SqlChecker::new(f.schema.clone()));
            let held = at_comparison(
                SqlChecker::new(f.schema.clone()).with_skeletons(vec![shape.unwrap()]),
            );
            let config = short_search(&f, 1);
            let search_again = |checker: &SqlChecker| {
                let constraint = two_checked(&texts, vec![checker.clone()]);
                let mut hypotheses = vec![vec![Hypothesis {
                    tokens: Vec::new(),
                    score: 0.0,
                }]];
                let source = Source::encode(&f.model, &f.inputs[..1], config.pad_token_id).unwrap();
                let mut unfinished = Unfinished::default();
                unfinished.gather(&hypotheses, &source, 0, eos).unwrap();
                unfinished
                    .search_again(&f.model, &config, &constraint, &mut hypotheses)
                    .unwrap();
                hypotheses.remove(0).remove(0).tokens
            };
            assert_eq!(search_again(&free), vec![outside, eos]);
            assert_eq!(search_again(&held), vec![in_shape, eos]);
        }

        #[test]
        fn a_query_outside_the_conventions_is_the_last_attempt() {
            let f = fixture();
            let eos = f.tokenizer.eos_id();
            // Eight result columns so far: only a ninth, which gold SQL
            // never has, then EOS, completes the query.
            let ninth = 5;
            let texts = all_close_but(&f, ninth, " , Age FROM singer");
            let mut checker = SqlChecker::new(f.schema.clone());
            checker
                .push("SELECT Age , Age , Age , Age , Age , Age , Age , Age")
                .unwrap();
            assert!(checker.clone().conventional().push(" , Age FROM").is_err());
            let constraint = two_checked(&texts, vec![checker; f.inputs.len()]);
            for beams in [1, 3] {
                let config = short_search(&f, beams);
                let found = generate_in_batches(
                    &f.model,
                    &config,
                    &f.inputs,
                    Some(&constraint),
                    2,
                    &mut |_| {},
                )
                .unwrap();
                for per_input in found {
                    assert_eq!(per_input[0].tokens, vec![ninth, eos], "{beams} beams");
                }
            }
        }

        #[test]
        fn inputs_gathered_from_batches_read_as_one_batch_of_them() {
            let f = fixture();
            let pad = f.tokenizer.pad_id();
            let mut lengths: Vec<usize> = f.inputs.iter().map(Vec::len).collect();
            lengths.sort_unstable();
            assert_ne!(lengths[0], lengths[lengths.len() - 1], "the fixture pads");
            let together = Source::encode(&f.model, &f.inputs, pad).unwrap();
            let parts: Vec<Source> = f
                .inputs
                .iter()
                .map(|input| Source::encode(&f.model, std::slice::from_ref(input), pad).unwrap())
                .collect();
            let gathered = Source::concat(&parts, pad).unwrap();
            assert_eq!(
                gathered.ids.to_vec2::<u32>().unwrap(),
                together.ids.to_vec2::<u32>().unwrap()
            );
            let mask = |s: &Source| s.mask.as_ref().unwrap().to_vec2::<u32>().unwrap();
            assert_eq!(mask(&gathered), mask(&together));
            let (a, b) = (
                gathered.encoded.to_vec3::<f32>().unwrap(),
                together.encoded.to_vec3::<f32>().unwrap(),
            );
            for (row, input) in f.inputs.iter().enumerate() {
                for position in 0..input.len() {
                    for (x, y) in a[row][position].iter().zip(&b[row][position]) {
                        assert!((x - y).abs() < 1e-4, "row {row} position {position}");
                    }
                }
            }
        }

        #[test]
        fn batches_give_the_answers_of_one_batch() {
            let f = fixture();
            let texts = TokenTexts::new(&f.tokenizer);
            // Each batch of two pads as the batch of four does.
            let inputs: Vec<Vec<u32>> = f.inputs.iter().chain(&f.inputs).cloned().collect();
            for beams in [1, 3] {
                let config = GenerationConfig {
                    max_new_tokens: 24,
                    num_beams: beams,
                    ..GenerationConfig::for_model(f.model.config())
                };
                let constraint = two_checked(
                    &texts,
                    vec![SqlChecker::new(f.schema.clone()); inputs.len()],
                );
                let whole = generate_in_batches(
                    &f.model,
                    &config,
                    &inputs,
                    Some(&constraint),
                    4,
                    &mut |_| {},
                )
                .unwrap();
                let mut done = Vec::new();
                let halves = generate_in_batches(
                    &f.model,
                    &config,
                    &inputs,
                    Some(&constraint),
                    2,
                    &mut |n| done.push(n),
                )
                .unwrap();
                assert_eq!(halves, whole, "{beams} beams");
                assert_eq!(done, vec![2, 4]);
                assert_eq!(whole[0], whole[2]);
            }
            let config = GenerationConfig::for_model(f.model.config());
            assert!(generate_in_batches(&f.model, &config, &inputs, None, 0, &mut |_| {}).is_err());
        }

        #[test]
        fn a_hypothesis_the_checker_keeps_overruling_stops_early() {
            let f = fixture();
            // ` (` is all that passes after `age >`, and again after each
            // `(`: a row the model cannot steer anywhere else.
            let open = 7;
            let texts = all_close_but(&f, open, " (");
            for beams in [1, 3] {
                let config = GenerationConfig {
                    max_new_tokens: 40,
                    num_beams: beams,
                    ..GenerationConfig::for_model(f.model.config())
                };
                let constraint = two_checked(&texts, vec![at_comparison(&f); f.inputs.len()]);
                let held =
                    generate_constrained(&f.model, &config, &f.inputs, Some(constraint)).unwrap();
                for hypothesis in held.iter().flatten() {
                    assert!(hypothesis.tokens.iter().all(|&t| t == open), "{held:?}");
                    // Stopped by the checker's overruling, well before the
                    // limit (greedy's second search, with beams, finds no
                    // query either, so the greedy row stays).
                    assert!(
                        hypothesis.tokens.len() <= 2 * (MAX_OVERRULED + 1),
                        "{beams} beams: {held:?}"
                    );
                }
            }
        }

        #[test]
        fn a_hypothesis_cut_off_ends_at_its_last_complete_query() {
            let f = fixture();
            let texts = TokenTexts::new(&f.tokenizer);
            let eos = f.tokenizer.eos_id();
            let fresh = SqlChecker::new(f.schema.clone());
            let ids = |sql: &str| f.tokenizer.encode(sql, false).unwrap();
            let cut = |tokens: Vec<u32>| {
                let mut hypothesis = Hypothesis {
                    tokens,
                    score: -3.0,
                };
                end_at_last_complete_query(&mut hypothesis, &fresh, &texts, eos);
                hypothesis
            };
            // A loop cut by the token limit ends after its last complete query.
            let looped = cut(ids("SELECT name FROM singer WHERE age > 30 AND ("));
            let mut expected = ids("SELECT name FROM singer WHERE age > 30");
            expected.push(eos);
            assert_eq!(looped.tokens, expected);
            assert_eq!(looped.score, -3.0);
            // Never complete, or ended by the model: left as it is.
            let never = ids("SELECT name FROM");
            assert_eq!(cut(never.clone()).tokens, never);
            let mut ended = ids("SELECT name FROM singer");
            ended.push(eos);
            assert_eq!(cut(ended.clone()).tokens, ended);
        }

        #[test]
        fn token_texts_keep_the_space_a_piece_stands_for() {
            let f = fixture();
            let texts = TokenTexts::new(&f.tokenizer);
            let sql = "SELECT name FROM singer WHERE age > 30";
            let ids = f.tokenizer.encode(sql, false).unwrap();
            let joined: String = ids.iter().map(|&id| texts.text(id).unwrap()).collect();
            assert_eq!(joined.trim_start(), sql);
            assert_eq!(texts.text(f.tokenizer.eos_id()), None);
            assert_eq!(texts.text(f.tokenizer.pad_id()), None);
            let checker = SqlChecker::new(f.schema.clone());
            assert_eq!(check_token_prefixes(&checker, &texts, &ids), Ok(()));
            let bad = f
                .tokenizer
                .encode("SELECT name FROM singer WHERE", false)
                .unwrap();
            let (at, _) = check_token_prefixes(&checker, &texts, &bad).unwrap_err();
            assert_eq!(at, bad.len(), "incomplete only at the end");
        }
    }

    #[test]
    fn a_block_written_twice_may_not_be_completed_a_third_time() {
        // `MAX(x) AS n,` as five tokens, twice, then the third copy's first four.
        let block = [11, 12, 13, 14, 15];
        let mut history = [block, block].concat();
        history.extend_from_slice(&block[..4]);
        assert!(completes_third_copy(&history, 15));
        // Anything else may follow; the third copy is refused only at its
        // last token.
        assert!(!completes_third_copy(&history, 16));
        assert!(!completes_third_copy(&history[..history.len() - 1], 14));
        // Two copies are fine: `T1.a = T2.a` style repeats.
        assert!(!completes_third_copy(&block[..], 11));
        assert!(!completes_third_copy(&[block, block].concat()[..9], 15));
        // One token repeated (digits, parentheses) is the checker's business.
        assert!(!completes_third_copy(&[7, 7, 7, 7, 7], 7));
        assert!(!completes_third_copy(&[7, 7, 7, 7, 7, 7, 7], 7));
        // Within the period watched; a longer block may repeat.
        let long: Vec<u32> = (0..MAX_REPEAT_PERIOD as u32 + 1).collect();
        let mut history = [long.clone(), long.clone()].concat();
        history.extend_from_slice(&long[..long.len() - 1]);
        assert!(!completes_third_copy(&history, *long.last().unwrap()));
    }

    #[test]
    fn argmax_takes_the_first_of_equal_values() {
        assert_eq!(argmax(&[0.5, 2.0, 2.0, -1.0]), 1);
        assert!((log_sum_exp(&[0.0, 0.0]) - 2f32.ln()).abs() < 1e-6);
    }
}
