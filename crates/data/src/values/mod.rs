//! Database value retrieval: the distinct text values of a database's
//! columns, indexed by word, and the ones a question mentions.
//!
//! A model can only copy a literal it is shown. The two sampled example
//! values per column rarely hold the one a question names (`orders shipped
//! to Lyon`), so, as BRIDGE (picklists matched against question n-grams) and
//! OmniSQL (BM25 over values, then a similarity filter) do, each database
//! gets an index of its distinct text values, built once (`prepare` stores it
//! as `values.parquet`; `ask`, `serve` and `schema` build it in memory from
//! the SQLite file), and each question retrieves the values it mentions, to
//! be shown next to their column: `city ( Lyon )`.
//!
//! Matching is lexical and deterministic: question and values are cut into
//! lower-cased words (runs of letters and digits, a plural `s` dropped); a
//! value matches when a run of its words occurs as consecutive words of the
//! question, either all of them (an exact match, `New York`) or enough of
//! them (a partial match: two words or more, or one word of at least four
//! letters that at most three values of the database contain, as `Kennedy`
//! in `John F Kennedy International Airport`). Longer and exact matches rank
//! first, a value whose match lies inside a longer exact match of another
//! value is dropped (`York` when `New York` matched), and few values are
//! kept per column and per question.

mod build;
mod matcher;

pub use build::{build_value_index, index_values_from_sqlite, indexes_column};
pub use matcher::{ValueMatch, ValueMatches};

use std::collections::HashMap;
use std::sync::Arc;

/// Distinct values kept per column (the first ones SQLite returns, sorted).
pub const MAX_VALUES_PER_COLUMN: usize = 5000;
/// Longer values are left out of the index: they are descriptions and
/// comments, which questions do not quote.
pub const MAX_VALUE_CHARS: usize = 64;
/// Retrieved values shown per column, best first.
pub const MAX_MATCHES_PER_COLUMN: usize = 3;
/// Retrieved values shown per question, over all columns.
pub const MAX_MATCHES_PER_INPUT: usize = 12;

/// The distinct text values of one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnValues {
    /// Index into `DatabaseSchema::tables`.
    pub table: usize,
    /// Index into that table's `columns`.
    pub column: usize,
    /// As stored in the database (case and spacing kept: a SQL literal must
    /// repeat them), distinct, sorted.
    pub values: Vec<String>,
}

/// One database's values and the word postings used to match questions
/// against them. Equality compares the values only (the postings follow
/// from them).
#[derive(Debug, Clone)]
pub struct ValueIndex {
    columns: Vec<ColumnValues>,
    /// Shared: [`Self::relabelled`] copies only the columns' places.
    words: Arc<Words>,
}

/// The values' words, which do not depend on where their columns stand.
#[derive(Debug)]
struct Words {
    entries: Vec<Entry>,
    /// Word (stemmed) to the entries holding it, each entry once, in order.
    postings: HashMap<Box<str>, Vec<u32>>,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Index into `columns`.
    column: u32,
    /// Index into that column's `values`.
    value: u32,
    /// The value's matching words.
    words: Box<[Box<str>]>,
}

impl PartialEq for ValueIndex {
    fn eq(&self, other: &Self) -> bool {
        self.columns == other.columns
    }
}

impl ValueIndex {
    /// Indexes `columns` (as built from a database or read back from
    /// `values.parquet`).
    pub fn new(columns: Vec<ColumnValues>) -> Self {
        let mut entries = Vec::new();
        let mut postings: HashMap<Box<str>, Vec<u32>> = HashMap::new();
        for (c, column) in columns.iter().enumerate() {
            for (v, value) in column.values.iter().enumerate() {
                let words: Vec<matcher::Word> = matcher::words(value);
                let id = entries.len() as u32;
                for word in &words {
                    if word.stop {
                        continue;
                    }
                    let list = postings.entry(word.stem.as_str().into()).or_default();
                    if list.last() != Some(&id) {
                        list.push(id);
                    }
                }
                entries.push(Entry {
                    column: c as u32,
                    value: v as u32,
                    words: words.into_iter().map(|w| w.stem.into()).collect(),
                });
            }
        }
        Self {
            columns,
            words: Arc::new(Words { entries, postings }),
        }
    }

    /// The same index over a database whose tables and columns moved:
    /// `place(table, column)` gives a column's new `(table, column)`. The
    /// words stay indexed as they were and are shared, not copied.
    pub fn relabelled(&self, place: impl Fn(usize, usize) -> (usize, usize)) -> Self {
        let mut index = self.clone();
        for column in &mut index.columns {
            (column.table, column.column) = place(column.table, column.column);
        }
        index
    }

    /// The indexed columns, in schema order (unless [`Self::relabelled`]).
    pub fn columns(&self) -> &[ColumnValues] {
        &self.columns
    }

    /// How many values the index holds over all columns.
    pub fn value_count(&self) -> usize {
        self.words.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::schema::{enrich_from_sqlite, Column, DatabaseSchema, Table};
    use crate::serialize::{
        compact_input, compact_input_within_budget, CompactOptions, TokenBudget, ValuesShown,
    };

    /// A shop database built in the test: `orders.city` holds more cities
    /// than the two example values `prepare` samples.
    fn shop() -> (tempfile::TempDir, std::path::PathBuf, DatabaseSchema) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, city TEXT, note, amount REAL, placed DATE);
             INSERT INTO orders VALUES (1, 'Amsterdam', 'gift wrap', 2.5, '2020-01-01');
             INSERT INTO orders VALUES (2, 'Berlin', NULL, 3.0, '2020-01-02');
             INSERT INTO orders VALUES (3, 'Lyon', 'leave at door', 4.0, '2020-01-03');
             INSERT INTO orders VALUES (4, 'New York', 'Lyon office', 5.0, '2020-01-04');
             INSERT INTO orders VALUES (5, 'lyon', '', 6.0, '2020-01-05');
             CREATE TABLE staff (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO staff VALUES (1, 'Ada Lovelace');",
        )
        .unwrap();
        let column = |name: &str, data_type: &str| Column {
            name: name.into(),
            description: name.into(),
            data_type: data_type.into(),
            sample_values: vec![],
        };
        let mut schema = DatabaseSchema {
            db_id: "shop".into(),
            tables: vec![
                Table {
                    name: "orders".into(),
                    natural_name: "orders".into(),
                    columns: vec![
                        column("id", "INTEGER"),
                        column("city", "TEXT"),
                        column("note", ""),
                        column("amount", "REAL"),
                        column("placed", "DATE"),
                    ],
                    primary_key: vec![0],
                },
                Table {
                    name: "staff".into(),
                    natural_name: "staff".into(),
                    columns: vec![column("id", "number"), column("name", "text")],
                    primary_key: vec![0],
                },
            ],
            foreign_keys: vec![],
            ddls: vec![],
            values: None,
        };
        enrich_from_sqlite(&mut schema, &path).unwrap();
        (dir, path, schema)
    }

    #[test]
    fn index_holds_distinct_text_values_of_text_columns_only() {
        let (_dir, path, schema) = shop();
        let index = build_value_index(&schema, &path).unwrap();
        let columns: Vec<(usize, usize, Vec<&str>)> = index
            .columns()
            .iter()
            .map(|c| {
                (
                    c.table,
                    c.column,
                    c.values.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            columns,
            [
                (
                    0,
                    1,
                    vec!["Amsterdam", "Berlin", "Lyon", "New York", "lyon"]
                ),
                (0, 2, vec!["Lyon office", "gift wrap", "leave at door"]),
                (1, 1, vec!["Ada Lovelace"]),
            ]
        );
        let missing = build_value_index(&schema, &path.with_file_name("nope.sqlite"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope.sqlite"), "{missing}");
    }

    #[test]
    fn a_stored_value_that_is_not_an_example_reaches_the_input() {
        let (_dir, path, mut schema) = shop();
        let city = &schema.tables[0].columns[1].sample_values;
        assert_eq!(city.len(), 2);
        assert!(!city.contains(&crate::schema::SampleValue::Text("Lyon".into())));
        let question = "How many orders were shipped to LYON?";
        let retrieving = CompactOptions {
            values: ValuesShown::MatchingQuestion,
            foreign_keys: true,
            retrieved_values: true,
            schema_linking: false,
        };
        // No index yet: nothing is retrieved.
        assert!(!compact_input(question, &schema, &retrieving).contains("Lyon"));
        index_values_from_sqlite(&mut schema, &path).unwrap();
        let text = compact_input(question, &schema, &retrieving);
        assert_eq!(
            text,
            "How many orders were shipped to LYON? | shop \
             | orders : id , city ( Lyon , lyon ) , note , amount , placed \
             | staff : id , name"
        );
        // Without the option the index is not used.
        let plain = CompactOptions {
            retrieved_values: false,
            schema_linking: false,
            ..retrieving
        };
        assert!(!compact_input(question, &schema, &plain).contains("Lyon"));
        // Unrelated questions retrieve nothing.
        assert_eq!(
            compact_input("How many staff are there?", &schema, &retrieving),
            compact_input("How many staff are there?", &schema, &plain)
        );
        // Multi-word values, case-insensitively.
        assert!(
            compact_input("orders to new york", &schema, &retrieving).contains("city ( New York )")
        );
    }

    #[test]
    fn pruning_keeps_columns_of_retrieved_values() {
        let (_dir, path, mut schema) = shop();
        index_values_from_sqlite(&mut schema, &path).unwrap();
        let options = CompactOptions {
            values: ValuesShown::All,
            foreign_keys: true,
            retrieved_values: true,
            schema_linking: false,
        };
        let words = |s: &str| s.split_whitespace().count();
        let budget = TokenBudget {
            max_tokens: 24,
            count_tokens: &words,
        };
        let question = "orders for lyon";
        let result = compact_input_within_budget(question, &schema, &options, None, None, &budget);
        assert!(result.pruned.any() && !result.pruned.over_budget);
        // The city's example values would go first (they are not in the
        // question); as the column of a retrieved value it keeps them all.
        assert!(
            result
                .text
                .contains("| orders : id , city ( Lyon , lyon , Amsterdam , Berlin )"),
            "{}",
            result.text
        );
    }
}
