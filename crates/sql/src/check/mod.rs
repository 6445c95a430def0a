//! An incremental SQL checker for constrained decoding (PICARD's idea, in
//! process): given a text prefix and a schema it says whether the text can
//! still become a valid SQLite query, cannot, or already is one.
//!
//! It is hand-written rather than built on `sqlparser` because decoding
//! needs what a whole-statement parser cannot give: a verdict on every
//! prefix (`SELECT name FROM sin` is fine, `SELECT name FROM )` is not), and
//! a state that a decoder copies per hypothesis and extends by a few
//! characters at a time, so that a check costs the new text rather than a
//! re-parse. The state is an incremental tokenizer ([`lexer`]) and a
//! pushdown automaton over SQLite's SELECT grammar ([`parser`]) whose stack
//! is a plain value; the words it knows (keywords, built-in functions,
//! collations) are in [`vocabulary`].
//!
//! It never rejects a valid query where deciding is hard: a CTE's or
//! derived table's columns are named as SQLite names them (alias, bare
//! column, star), but one named by its expression's text or a string alias
//! lets such names through; table-valued functions, VALUES and a recursive
//! CTE without a column list inside its own body are not tracked (any name
//! resolves); double-quoted names fall back to strings as in SQLite;
//! types are not checked (a function must be one of SQLite's built-ins).
//! What it rejects, as soon as it can tell: syntax errors (a keyword out of
//! place, unbalanced parentheses, a second statement), unknown tables,
//! unknown and ambiguous columns, columns of tables not in scope and
//! undefined aliases; and, stricter than SQLite, one alias given to two
//! sources of a FROM, a `COLLATE` other than SQLite's built-in three, and a
//! `x.y.z` column whose `x` is not `main`. Names compare as SQLite compares
//! them, ASCII case-insensitively, quoted or not.

mod lexer;
mod parser;
mod rename;
mod skeleton;
mod unalias;
mod vocabulary;

use std::sync::Arc;

use text2sql_data::schema::DatabaseSchema;

use lexer::{Lexer, Tok, Token};
use parser::Parser;
pub use rename::rename_identifiers;
pub use skeleton::{alias_prefix, Skeleton, SkeletonItem};
use skeleton::{Pending, SkeletonReader};
pub use unalias::unalias_tables;

/// A schema's names, lower-cased, for checking.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaIndex {
    tables: Vec<TableNames>,
}

#[derive(Debug, Clone, PartialEq)]
struct TableNames {
    name: String,
    columns: Vec<String>,
}

impl SchemaIndex {
    pub fn new(schema: &DatabaseSchema) -> Self {
        Self {
            tables: schema
                .tables
                .iter()
                .map(|t| TableNames {
                    name: t.name.to_ascii_lowercase(),
                    columns: t
                        .columns
                        .iter()
                        .map(|c| c.name.to_ascii_lowercase())
                        .collect(),
                })
                .collect(),
        }
    }

    /// The longest table or column name, in bytes.
    fn longest_name(&self) -> usize {
        self.names().map(str::len).max().unwrap_or(0)
    }

    /// Every table and column name.
    fn names(&self) -> impl Iterator<Item = &str> {
        self.tables
            .iter()
            .flat_map(|t| std::iter::once(&t.name).chain(&t.columns))
            .map(String::as_str)
    }

    fn table_index(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.name == name)
    }
}

/// Why a text cannot become a valid query: the byte offset of the token
/// where that became certain, and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {message}")]
pub struct Rejection {
    pub offset: usize,
    pub message: String,
}

/// The checker's state after some text. Cheap to clone: a decoder keeps one
/// per hypothesis and extends a clone with each candidate token's text.
#[derive(Debug, Clone)]
pub struct SqlChecker {
    schema: Arc<SchemaIndex>,
    lexer: Lexer,
    parser: Parser,
    rejected: Option<Rejection>,
    /// Reused buffer for the tokens a push completes.
    tokens: Vec<Token>,
    /// Whitespace bytes at the end of the text.
    trailing_blank: usize,
    /// The query shapes the text must keep to, when held to some (see
    /// [`SqlChecker::with_skeletons`]).
    skeletons: Option<SkeletonGuide>,
}

/// The longest run of blanks in a query held to shapes.
const MAX_HELD_BLANK_RUN: usize = 2;

/// The shapes a checker holds its text to, and the text's shape so far.
#[derive(Debug, Clone)]
struct SkeletonGuide {
    shapes: Arc<[Skeleton]>,
    reader: SkeletonReader,
}

impl SkeletonGuide {
    /// A model overruled by the shapes would otherwise pad with blanks,
    /// which are valid anywhere, and wander (`SELECT` and 16 spaces); gold
    /// SQL has runs of two (Spider's `T1.a  =  T2.b`). Nor may `text`
    /// start a line (nor a comment, see [`SkeletonGuide::check_prefix`]),
    /// where anything could hide from the shapes. `trailing_blank` counts
    /// the blanks ending the text with `text`, `offset` is where it starts.
    fn check_blanks(text: &str, trailing_blank: usize, offset: usize) -> Result<(), Rejection> {
        if trailing_blank > MAX_HELD_BLANK_RUN || text.contains('\n') {
            return Err(Rejection {
                offset,
                message: format!(
                    "a line break or more than {MAX_HELD_BLANK_RUN} blanks in a row in a query held to shapes"
                ),
            });
        }
        Ok(())
    }

    fn read(&mut self, tokens: &[Token]) {
        for token in tokens {
            self.reader.push(&token.tok);
        }
    }

    /// Whether the text read so far, with the token `lexer` has pending,
    /// can still become a query of one of the shapes.
    fn check_prefix(&self, lexer: &Lexer, schema: &SchemaIndex) -> Result<(), Rejection> {
        if lexer.in_comment() {
            return Err(Rejection {
                offset: lexer.pending_start(),
                message: "a comment in a query held to shapes".into(),
            });
        }
        let pending = if let Some(prefix) = lexer.pending_name() {
            let name_possible = self.name_possible(schema, &prefix);
            Pending::Word {
                prefix,
                name_possible,
                quoted: lexer.pending_quote_text().is_some(),
            }
        } else if lexer.pending_double_quoted().is_some() {
            Pending::DoubleQuoted
        } else {
            let tokens = lexer.pending_tokens_without_comments();
            if tokens.is_empty() {
                Pending::None
            } else {
                Pending::Tokens(tokens)
            }
        };
        if self.shapes.iter().any(|s| self.reader.fits(s, &pending)) {
            Ok(())
        } else {
            Err(Rejection {
                offset: lexer.pending_start().min(lexer.len()),
                message: "leaves the query shapes it is held to".into(),
            })
        }
    }

    /// Whether a word beginning with `prefix` can still become a name: a
    /// table's or column's, an alias the query defined, or one as gold SQL
    /// writes them (`T1`).
    fn name_possible(&self, schema: &SchemaIndex, prefix: &str) -> bool {
        skeleton::alias_prefix(prefix)
            || self.reader.alias_starts_with(prefix)
            || schema.names().any(|name| name.starts_with(prefix))
    }

    /// Where a word beginning with `prefix` can only become a keyword of
    /// the shapes: one of those keywords must be one SQL allows here
    /// (`ON T1.a = T2.a A`: the shape allows `AS`, SQL `AND`, and no word
    /// both; a greedy search went on to a dead end).
    fn check_keyword_prefix(
        &self,
        parser: &Parser,
        schema: &SchemaIndex,
        prefix: &str,
        end: usize,
    ) -> Result<(), Rejection> {
        let name_possible = self.name_possible(schema, prefix);
        let mut keywords = Vec::new();
        for shape in self.shapes.iter() {
            match self.reader.keywords_for(shape, prefix, name_possible) {
                Some(words) => keywords.extend(words),
                None => return Ok(()),
            }
        }
        if keywords
            .iter()
            .any(|word| parser.take_word(schema, word).is_ok())
        {
            return Ok(());
        }
        Err(Rejection {
            offset: end - prefix.len(),
            message: format!(
                "no keyword of the query shapes it is held to that fits here starts with `{prefix}`"
            ),
        })
    }

    /// Whether the whole text read is a query of one of the shapes.
    fn check_whole(&self, offset: usize) -> Result<(), Rejection> {
        if self.shapes.iter().any(|s| self.reader.matches(s)) {
            Ok(())
        } else {
            Err(Rejection {
                offset,
                message: "is not a query of the shapes it is held to".into(),
            })
        }
    }
}

impl SqlChecker {
    pub fn new(schema: Arc<SchemaIndex>) -> Self {
        Self {
            schema,
            lexer: Lexer::default(),
            parser: Parser::default(),
            rejected: None,
            tokens: Vec::new(),
            trailing_blank: 0,
            skeletons: None,
        }
    }

    /// This checker also requiring the query to have one of `shapes` (see
    /// [`Skeleton`]); none (an empty list) leaves it free. Set on a fresh
    /// checker: text pushed before is not re-read.
    pub fn with_skeletons(mut self, shapes: Vec<Skeleton>) -> Self {
        self.skeletons = (!shapes.is_empty()).then(|| SkeletonGuide {
            shapes: shapes.into(),
            reader: SkeletonReader::default(),
        });
        self
    }

    /// This checker without the shapes [`SqlChecker::with_skeletons`] set.
    pub fn without_skeletons(mut self) -> Self {
        self.skeletons = None;
        self
    }

    /// The shapes this checker holds its text to (empty when free).
    pub fn skeletons(&self) -> &[Skeleton] {
        self.skeletons.as_ref().map_or(&[], |guide| &guide.shapes)
    }

    /// This checker also requiring, from here on, conventions that gold
    /// SQL keeps and SQL does not require: numbered FROM aliases in order
    /// in each SELECT (`T1` before `T2`; 2 of Spider's 8,034 train and dev
    /// queries break it); a column read through an alias that FROM has not
    /// defined yet (`SELECT T1.x FROM …`) is a column some table or CTE has
    /// (not a derived table's own); the first table of FROM is `T1` where
    /// the SELECT list reads through `T1`; short aliases, at most 8 result
    /// columns, strings of at most 48 characters. A decoder's first
    /// attempts use it; its last attempt at a question those could not
    /// finish uses the plain rules, which accept every valid query.
    pub fn conventional(mut self) -> Self {
        self.parser.conventional = true;
        self
    }

    /// How many whitespace bytes end the text so far (a decoder uses it to
    /// stop a hypothesis from writing nothing but spaces).
    pub fn trailing_whitespace(&self) -> usize {
        self.trailing_blank
    }

    /// Bytes of text pushed so far.
    pub fn len(&self) -> usize {
        self.lexer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `text`. `Ok` when the text so far can still become a valid
    /// query; once rejected, the checker stays rejected.
    pub fn push(&mut self, text: &str) -> Result<(), Rejection> {
        if let Some(rejection) = &self.rejected {
            return Err(rejection.clone());
        }
        let kept = text.trim_end().len();
        self.trailing_blank = if kept == 0 {
            self.trailing_blank + text.len()
        } else {
            text.len() - kept
        };
        let held_blanks = match &self.skeletons {
            Some(_) => SkeletonGuide::check_blanks(text, self.trailing_blank, self.len()),
            None => Ok(()),
        };
        let result = held_blanks.and_then(|()| self.push_inner(text));
        if let Err(rejection) = &result {
            self.rejected = Some(rejection.clone());
        }
        result
    }

    fn push_inner(&mut self, text: &str) -> Result<(), Rejection> {
        let mut tokens = std::mem::take(&mut self.tokens);
        tokens.clear();
        let lexed = self.lexer.push(text, &mut tokens);
        // Tokens completed before a lexing error still count: report the
        // earliest problem.
        let parsed = self.feed_all(&tokens);
        if let Some(guide) = &mut self.skeletons {
            guide.read(&tokens);
        }
        self.tokens = tokens;
        parsed?;
        lexed.map_err(|e| Rejection {
            offset: e.offset,
            message: e.message,
        })?;
        if let Some(guide) = &self.skeletons {
            guide.check_prefix(&self.lexer, &self.schema)?;
            if let Some(prefix) = self.lexer.pending_name() {
                if self.lexer.pending_quote_text().is_none() {
                    guide.check_keyword_prefix(
                        &self.parser,
                        &self.schema,
                        &prefix,
                        self.lexer.len(),
                    )?;
                }
            }
        }
        // A pending operator, number or string: some token it can become
        // must fit (`|` at the start of a query cannot).
        let mut first_error = None;
        for tok in self.lexer.pending_tokens() {
            let token = Token {
                tok,
                offset: self.lexer.pending_start(),
            };
            match self.parser.clone().feed(&self.schema, &token) {
                Ok(()) => {
                    first_error = None;
                    break;
                }
                Err(message) => {
                    first_error.get_or_insert(message);
                }
            }
        }
        if let Some(message) = first_error {
            return Err(Rejection {
                offset: self.lexer.pending_start(),
                message,
            });
        }
        if self.parser.conventional
            && self
                .lexer
                .pending_string_len()
                .is_some_and(|len| len > parser::MAX_CONVENTIONAL_STRING)
        {
            return Err(Rejection {
                offset: self.lexer.pending_start(),
                message: format!(
                    "a string longer than {} characters (conventional rules)",
                    parser::MAX_CONVENTIONAL_STRING
                ),
            });
        }
        if let Some(text) = self.lexer.pending_quote_text() {
            if let Some(message) = self.parser.quoted_alias_rejection(&self.schema, text) {
                return Err(Rejection {
                    offset: self.lexer.pending_start(),
                    message,
                });
            }
        }
        // A pending double-quoted token: a string, or a name it begins
        // (an alias may be any).
        if let Some(prefix) = self.lexer.pending_double_quoted() {
            let offset = self.lexer.pending_start();
            let feed = |tok: Tok| {
                self.parser
                    .clone()
                    .feed(&self.schema, &Token { tok, offset })
            };
            if let Err(message) = feed(Tok::DQuoted(prefix.clone())) {
                let possible = feed(Tok::Str).is_ok()
                    || self
                        .schema
                        .names()
                        .filter(|name| name.starts_with(&prefix))
                        .any(|name| feed(Tok::DQuoted(name.to_string())).is_ok());
                if !possible {
                    return Err(Rejection { offset, message });
                }
            }
        }
        if let Some(prefix) = self.lexer.pending_name() {
            if !self.parser.word_prefix_possible(&self.schema, &prefix) {
                return Err(Rejection {
                    offset: self.lexer.len() - prefix.len(),
                    message: self.parser.word_rejection(&self.schema, &prefix),
                });
            }
        }
        Ok(())
    }

    fn feed_all(&mut self, tokens: &[Token]) -> Result<(), Rejection> {
        for token in tokens {
            self.parser
                .feed(&self.schema, token)
                .map_err(|message| Rejection {
                    offset: token.offset,
                    message,
                })?;
        }
        Ok(())
    }

    /// Whether the text so far is a complete valid query (the state is not
    /// changed: more text may still follow).
    pub fn finish(&self) -> Result<(), Rejection> {
        if let Some(rejection) = &self.rejected {
            return Err(rejection.clone());
        }
        let mut end = self.clone();
        let mut tokens = Vec::new();
        end.lexer.finish(&mut tokens).map_err(|e| Rejection {
            offset: e.offset,
            message: e.message,
        })?;
        tokens.push(Token {
            tok: Tok::End,
            offset: end.lexer.len(),
        });
        end.feed_all(&tokens)?;
        match &mut end.skeletons {
            Some(guide) => {
                guide.read(&tokens);
                guide.check_whole(end.lexer.len())
            }
            None => Ok(()),
        }
    }
}

/// Checks a whole query: every prefix and the end.
pub fn check_sql(schema: &Arc<SchemaIndex>, sql: &str) -> Result<(), Rejection> {
    let mut checker = SqlChecker::new(schema.clone());
    checker.push(sql)?;
    checker.finish()
}

/// Feeds `pieces` one after another (a decoder's tokens, or single
/// characters), checking after each, then ends the text: on rejection, the
/// index of the piece rejected (`pieces.len()` for the end) and why.
pub fn check_pieces<'a>(
    mut checker: SqlChecker,
    pieces: impl IntoIterator<Item = &'a str>,
) -> Result<(), (usize, Rejection)> {
    let mut count = 0;
    for (index, piece) in pieces.into_iter().enumerate() {
        checker.push(piece).map_err(|e| (index, e))?;
        count = index + 1;
    }
    checker.finish().map_err(|e| (count, e))
}

#[cfg(test)]
mod tests;
