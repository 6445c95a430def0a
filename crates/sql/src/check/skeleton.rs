//! A query's skeleton: its keywords, functions and punctuation with every
//! name written `_` and every literal `v` (`SELECT count ( * ) FROM _ WHERE
//! _ = v`), as RESDSQL and DAIL-SQL compare queries by shape. A qualified
//! column (`T1.name`) and an aliased table (`singer AS T1`) are one name,
//! so a skeleton does not depend on how aliases are written.
//!
//! The checker can be held to a few skeletons ([`super::SqlChecker::with_skeletons`]):
//! constrained decoding then writes a query of one of those shapes and the
//! model only fills in the names and literals.

use std::fmt;

use super::lexer::Tok;
use super::vocabulary::{reserved, FUNCTIONS};
use super::Rejection;

/// One element of a skeleton.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SkeletonItem {
    /// A reserved word or a function called with `(`, lower-cased.
    Keyword(String),
    /// A table, column or alias (`T1.name` and `singer AS T1` are one).
    Name,
    /// A string or number literal.
    Value,
    Punct(&'static str),
}

/// A query's shape (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Skeleton(Vec<SkeletonItem>);

impl Skeleton {
    /// The skeleton of `sql`; an error where it does not tokenize.
    pub fn of_sql(sql: &str) -> Result<Self, Rejection> {
        let mut reader = SkeletonReader::default();
        for token in &super::rename::lex(sql)? {
            reader.push(&token.tok);
        }
        Ok(Skeleton(reader.finish()))
    }

    pub fn items(&self) -> &[SkeletonItem] {
        &self.0
    }

    /// This shape with what does not change a query's result left out: a
    /// trailing `;`, `ASC` (the default order), the parentheses of
    /// `DISTINCT ( _ )`. Spider train writes 321 of its 5,837 queries
    /// with a `;` and 172 with `ASC`: as shapes of their own they split
    /// their questions from those of the same query without.
    pub fn canonical(&self) -> Skeleton {
        let mut out: Vec<SkeletonItem> = Vec::with_capacity(self.0.len());
        let items = &self.0;
        let mut i = 0;
        while i < items.len() {
            let item = &items[i];
            if *item == SkeletonItem::Keyword("asc".into()) {
                i += 1;
                continue;
            }
            if *item == SkeletonItem::Keyword("distinct".into())
                && items[i + 1..].starts_with(&[
                    SkeletonItem::Punct("("),
                    SkeletonItem::Name,
                    SkeletonItem::Punct(")"),
                ])
            {
                out.push(item.clone());
                out.push(SkeletonItem::Name);
                i += 4;
                continue;
            }
            out.push(item.clone());
            i += 1;
        }
        while out.last() == Some(&SkeletonItem::Punct(";")) {
            out.pop();
        }
        Skeleton(out)
    }
}

impl fmt::Display for Skeleton {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match item {
                SkeletonItem::Keyword(word) => f.write_str(word)?,
                SkeletonItem::Name => f.write_str("_")?,
                SkeletonItem::Value => f.write_str("v")?,
                SkeletonItem::Punct(p) => f.write_str(p)?,
            }
        }
        Ok(())
    }
}

/// What the tokens read so far leave open at their end.
#[derive(Debug, Clone, Default, PartialEq)]
enum Tail {
    #[default]
    Normal,
    /// The last item is a name: a `.` or `AS` after it continues it.
    AfterName,
    /// After a name's `.` or `AS`: the next token belongs to that name.
    Absorbing,
    /// A function's name, which is a keyword if `(` follows and a column
    /// name otherwise (`date`, `year`).
    Function(String),
}

/// Whether `prefix` (lower-cased) can begin an alias as gold SQL writes
/// them: `T` and a number.
pub fn alias_prefix(prefix: &str) -> bool {
    prefix
        .strip_prefix('t')
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
}

/// Reads tokens one at a time into skeleton items.
#[derive(Debug, Clone, Default)]
pub(crate) struct SkeletonReader {
    items: Vec<SkeletonItem>,
    tail: Tail,
    /// Words written after `AS` (aliases a later name may use, `GROUP BY
    /// year`) or after a name's `.`.
    aliases: Vec<String>,
}

/// The token pending at the end of a text, as the guide sees it.
pub(crate) enum Pending {
    None,
    /// A word (or quoted name) still being written, and whether it can
    /// still become a name: a table's or column's, an alias the query
    /// defined, or one as gold SQL writes them (`T1`). Without that rule a decoder could start a
    /// function's name where the shape has a name (`count` for `country`)
    /// and find no way on once the SQL checker reads it as the function.
    Word {
        prefix: String,
        name_possible: bool,
        /// In backquotes or brackets: a name, never a keyword.
        quoted: bool,
    },
    /// A double-quoted token still open: a string or a name.
    DoubleQuoted,
    /// The tokens a pending operator, number or string may become.
    Tokens(Vec<Tok>),
}

impl SkeletonReader {
    pub(crate) fn push(&mut self, tok: &Tok) {
        if let Tail::Function(word) = &self.tail {
            let word = word.clone();
            self.tail = Tail::Normal;
            if *tok == Tok::Punct("(") {
                self.items.push(SkeletonItem::Keyword(word));
            } else {
                self.items.push(SkeletonItem::Name);
                self.tail = Tail::AfterName;
            }
        }
        match std::mem::take(&mut self.tail) {
            Tail::Absorbing => {
                self.note_alias(tok);
                self.tail = Tail::AfterName;
                return;
            }
            Tail::AfterName if *tok == Tok::Punct(".") || *tok == Tok::Word("as".into()) => {
                self.tail = Tail::Absorbing;
                return;
            }
            _ => {}
        }
        if self.items.last() == Some(&SkeletonItem::Keyword("as".into())) {
            self.note_alias(tok);
        }
        match tok {
            Tok::Word(word) if reserved(word) => {
                self.items.push(SkeletonItem::Keyword(word.clone()))
            }
            Tok::Word(word) if FUNCTIONS.contains(&word.as_str()) => {
                self.tail = Tail::Function(word.clone())
            }
            Tok::Word(_) | Tok::Quoted(_) => {
                self.items.push(SkeletonItem::Name);
                self.tail = Tail::AfterName;
            }
            Tok::DQuoted(_) | Tok::Str | Tok::Num => self.items.push(SkeletonItem::Value),
            Tok::Punct(p) => self.items.push(SkeletonItem::Punct(p)),
            Tok::End => {}
        }
    }

    fn note_alias(&mut self, tok: &Tok) {
        if let Tok::Word(word) | Tok::Quoted(word) | Tok::DQuoted(word) = tok {
            self.aliases.push(word.clone());
        }
    }

    /// Whether an alias written so far starts with `prefix` (lower-cased).
    pub(crate) fn alias_starts_with(&self, prefix: &str) -> bool {
        self.aliases.iter().any(|alias| alias.starts_with(prefix))
    }

    /// The items of the whole text (a function name nothing follows is a name).
    pub(crate) fn finish(mut self) -> Vec<SkeletonItem> {
        if let Tail::Function(_) = self.tail {
            self.items.push(SkeletonItem::Name);
        }
        self.items
    }

    /// The readings of the text so far: a trailing function name is read
    /// both ways.
    fn readings(&self) -> Vec<SkeletonReader> {
        match &self.tail {
            Tail::Function(word) => vec![
                SkeletonReader {
                    items: [&self.items[..], &[SkeletonItem::Keyword(word.clone())]].concat(),
                    tail: Tail::Normal,
                    aliases: self.aliases.clone(),
                },
                SkeletonReader {
                    items: [&self.items[..], &[SkeletonItem::Name]].concat(),
                    tail: Tail::AfterName,
                    aliases: self.aliases.clone(),
                },
            ],
            _ => vec![self.clone()],
        }
    }

    /// Whether the text read so far, then `pending`, can still become a
    /// query of `skeleton`'s shape.
    pub(crate) fn fits(&self, skeleton: &Skeleton, pending: &Pending) -> bool {
        self.readings()
            .iter()
            .any(|reading| reading.reading_fits(&skeleton.0, pending))
    }

    fn reading_fits(&self, target: &[SkeletonItem], pending: &Pending) -> bool {
        if !target.starts_with(&self.items) {
            return false;
        }
        let next = target.get(self.items.len());
        let absorbing = self.tail == Tail::Absorbing;
        match pending {
            Pending::None => true,
            Pending::Word {
                prefix,
                name_possible,
                quoted,
            } => {
                absorbing
                    || (!quoted
                        && self.tail == Tail::AfterName
                        && "as".starts_with(prefix.as_str()))
                    || match next {
                        // An alias after AS may be any word.
                        Some(SkeletonItem::Name) => {
                            *name_possible
                                || self.items.last() == Some(&SkeletonItem::Keyword("as".into()))
                        }
                        Some(SkeletonItem::Keyword(word)) => {
                            !quoted && word.starts_with(prefix.as_str())
                        }
                        _ => false,
                    }
            }
            // A double-quoted token is a value to the shape (see `push`):
            // where the shape has a name it could only leave it once
            // read (`FROM "Re` in a subquery met that dead end).
            Pending::DoubleQuoted => absorbing || matches!(next, Some(SkeletonItem::Value)),
            Pending::Tokens(tokens) => tokens.iter().any(|tok| {
                let mut after = self.clone();
                after.push(tok);
                after
                    .readings()
                    .iter()
                    .any(|reading| target.starts_with(&reading.items))
            }),
        }
    }

    /// The keywords of `skeleton` a word beginning with `prefix` (not
    /// quoted) can become next (`as` after a name included), or None where
    /// it could also become a name (after `.` or `AS`, or where the shape
    /// has a name and `name_possible`).
    pub(crate) fn keywords_for(
        &self,
        skeleton: &Skeleton,
        prefix: &str,
        name_possible: bool,
    ) -> Option<Vec<String>> {
        let mut words = Vec::new();
        for reading in self.readings() {
            if !skeleton.0.starts_with(&reading.items) {
                continue;
            }
            if reading.tail == Tail::Absorbing {
                return None;
            }
            if reading.tail == Tail::AfterName && "as".starts_with(prefix) {
                words.push("as".to_string());
            }
            match skeleton.0.get(reading.items.len()) {
                Some(SkeletonItem::Name)
                    if name_possible
                        || reading.items.last() == Some(&SkeletonItem::Keyword("as".into())) =>
                {
                    return None
                }
                Some(SkeletonItem::Keyword(word)) if word.starts_with(prefix) => {
                    words.push(word.clone());
                }
                _ => {}
            }
        }
        Some(words)
    }

    /// Whether the whole text is a query of `skeleton`'s shape.
    pub(crate) fn matches(&self, skeleton: &Skeleton) -> bool {
        self.clone().finish() == skeleton.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(sql: &str) -> String {
        Skeleton::of_sql(sql).unwrap().to_string()
    }

    #[test]
    fn names_and_literals_are_blanks_and_aliases_are_part_of_their_name() {
        assert_eq!(
            shape("SELECT count(*) FROM singer WHERE age > 20"),
            "select count ( * ) from _ where _ > v"
        );
        assert_eq!(
            shape("SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.id = T2.sid WHERE T2.year = \"2014\""),
            "select _ from _ join _ on _ = _ where _ = v"
        );
        assert_eq!(
            shape("select name from singer join concert on singer.id = concert.sid where concert.year = '2014'"),
            shape("SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.id = T2.sid WHERE T2.year = '2014'")
        );
    }

    #[test]
    fn shapes_that_run_alike_have_one_canonical_shape() {
        let canonical = |sql: &str| Skeleton::of_sql(sql).unwrap().canonical().to_string();
        assert_eq!(
            canonical("SELECT DISTINCT(name) FROM t ORDER BY age ASC;"),
            "select distinct _ from _ order by _"
        );
        assert_eq!(
            canonical("SELECT DISTINCT name FROM t ORDER BY age"),
            "select distinct _ from _ order by _"
        );
        // What does change the result stays.
        assert_eq!(
            canonical("SELECT count(DISTINCT name) FROM t ORDER BY age DESC"),
            "select count ( distinct _ ) from _ order by _ desc"
        );
    }

    #[test]
    fn a_function_name_without_parenthesis_is_a_column() {
        assert_eq!(
            shape("SELECT date, max(year) FROM t"),
            "select _ , max ( _ ) from _"
        );
        assert_eq!(
            shape("SELECT name FROM t ORDER BY date"),
            "select _ from _ order by _"
        );
    }
}
