//! Schema symbols: one vocabulary token per distinct table or column name
//! of a database (`<sym0>`, `<sym1>`, …), printed before that name in the
//! compact input and written instead of it in the model's SQL.
//!
//! Why: a model trained from scratch that spells names piece by piece learns
//! the names of its training databases and writes them on any other
//! (`no such table: loans` on every Spider dev question). With symbols, a
//! name in the SQL is one token that only the input can explain: the model
//! learns to point at the schema, which is what a database it has never
//! seen asks of it. At training time each example gets its own random
//! assignment ([`SchemaSymbols::shuffled`]), so that no symbol means a
//! name by itself; inference numbers names in schema order
//! ([`SchemaSymbols::new`]).

use std::collections::HashMap;

use crate::schema::DatabaseSchema;
use crate::splitmix::{splitmix64, GOLDEN_GAMMA};

use super::compact::compact_identifier;
use super::relevance::name_words;

/// What every symbol's text starts with.
const SYMBOL_PREFIX: &str = "<sym";

/// The text of symbol `index`, a token of its own in tokenizers trained with
/// schema symbols.
pub fn symbol_token(index: u32) -> String {
    format!("{SYMBOL_PREFIX}{index}>")
}

/// Which symbol stands for which name in one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaSymbols {
    /// Symbol index -> the name as SQL writes it (quoted when it must be);
    /// None for symbols this database does not use.
    names: Vec<Option<String>>,
    /// Lower-cased name -> symbol index (SQLite compares names ignoring
    /// ASCII case).
    by_name: HashMap<String, u32>,
    /// Label names with the words a question would use (see
    /// [`Self::with_natural_names`]).
    natural_names: bool,
}

/// Whether generated text that follows a symbol starts a new word there:
/// [`SchemaSymbols::resolve`] then spaces it from the name, and constrained
/// decoding refuses it (no target ever glues a word to a symbol).
pub fn starts_word_after_symbol(text: &str) -> bool {
    text.chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || "_'\"`[".contains(c))
}

impl SchemaSymbols {
    /// Symbols `0..` for the schema's distinct names, tables and then each
    /// table's columns in schema order; names past `capacity` get none and
    /// stay spelled out.
    pub fn new(schema: &DatabaseSchema, capacity: u32) -> Self {
        let names = distinct_names(schema, capacity as usize);
        let indices: Vec<u32> = (0..names.len() as u32).collect();
        Self::assign(names, &indices, capacity)
    }

    /// The same names on distinct symbols drawn at random from
    /// `0..capacity` (a Fisher-Yates draw seeded by `seed`), so that every
    /// symbol is trained and none stands for a name or a position.
    pub fn shuffled(schema: &DatabaseSchema, capacity: u32, seed: u64) -> Self {
        let names = distinct_names(schema, capacity as usize);
        let mut pool: Vec<u32> = (0..capacity).collect();
        let mut state = seed;
        for i in 0..names.len() {
            state = state.wrapping_add(GOLDEN_GAMMA);
            let j = i + (splitmix64(state) % (pool.len() - i) as u64) as usize;
            pool.swap(i, j);
        }
        let used = names.len();
        Self::assign(names, &pool[..used], capacity)
    }

    fn assign(names: Vec<String>, indices: &[u32], capacity: u32) -> Self {
        let mut by_index = vec![None; capacity as usize];
        let mut by_name = HashMap::with_capacity(names.len());
        for (name, &index) in names.into_iter().zip(indices) {
            by_name.insert(name.to_lowercase(), index);
            by_index[index as usize] = Some(compact_identifier(&name));
        }
        Self {
            names: by_index,
            by_name,
            natural_names: false,
        }
    }

    /// Labels each name in the input with the words a question would write
    /// (`<sym12> total horses` for `Total_Horses`, see [`name_words`]): the
    /// symbol is what the SQL uses, so the label need not be the name as
    /// SQL spells it, and a model reads `total horses` in the question and
    /// the schema as the same tokens (`Horses` and `horses` are not). Names
    /// without a symbol stay as SQL spells them.
    pub fn with_natural_names(mut self, natural: bool) -> Self {
        self.natural_names = natural;
        self
    }

    /// The symbol of `name` (any case; unquoted), if it has one.
    pub fn symbol_of(&self, name: &str) -> Option<u32> {
        self.by_name.get(&name.to_lowercase()).copied()
    }

    /// The name symbol `index` stands for, as SQL writes it.
    pub fn name_of(&self, index: u32) -> Option<&str> {
        self.names.get(index as usize)?.as_deref()
    }

    /// How many symbols the tokenizer has (used or not).
    pub fn capacity(&self) -> u32 {
        self.names.len() as u32
    }

    /// `<symN> name` when the name has a symbol, else the name alone.
    pub fn labelled(&self, name: &str) -> String {
        let Some(index) = self.symbol_of(name) else {
            return compact_identifier(name);
        };
        let words = if self.natural_names {
            name_words(name)
        } else {
            Vec::new()
        };
        if words.is_empty() {
            format!("{} {}", symbol_token(index), compact_identifier(name))
        } else {
            format!("{} {}", symbol_token(index), words.join(" "))
        }
    }

    /// `<symN>` when the name has a symbol, else the name.
    pub fn reference(&self, name: &str) -> String {
        match self.symbol_of(name) {
            Some(index) => symbol_token(index),
            None => compact_identifier(name),
        }
    }

    /// Generated text with each `<symN>` replaced by the name it stands for,
    /// spaced from the words around it; a symbol the schema does not use stays
    /// as it is (and the query fails as SQL, as a wrong name would).
    pub fn resolve(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(SYMBOL_PREFIX) {
            out.push_str(&rest[..at]);
            let tail = &rest[at + SYMBOL_PREFIX.len()..];
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            let name = (digits > 0 && tail[digits..].starts_with('>'))
                .then(|| tail[..digits].parse::<u32>().ok())
                .flatten()
                .and_then(|index| self.name_of(index));
            match name {
                Some(name) => {
                    // Symbols take the spaces around them (see the tokenizer):
                    // one goes back except after `.`, `(` or a space.
                    if out
                        .chars()
                        .next_back()
                        .is_some_and(|c| !c.is_whitespace() && c != '.' && c != '(')
                    {
                        out.push(' ');
                    }
                    out.push_str(name);
                    rest = &tail[digits + 1..];
                    if starts_word_after_symbol(rest) {
                        out.push(' ');
                    }
                }
                None => {
                    out.push_str(SYMBOL_PREFIX);
                    rest = tail;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Table names, then column names, first spelling of each (ignoring case),
/// at most `limit`.
fn distinct_names(schema: &DatabaseSchema, limit: usize) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let tables = schema.tables.iter().map(|t| &t.name);
    let columns = schema
        .tables
        .iter()
        .flat_map(|t| t.columns.iter().map(|c| &c.name));
    tables
        .chain(columns)
        .filter(|name| seen.insert(name.to_lowercase()))
        .take(limit)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, Table};

    fn schema() -> DatabaseSchema {
        let column = |name: &str| Column {
            name: name.into(),
            description: name.into(),
            data_type: "TEXT".into(),
            sample_values: vec![],
        };
        DatabaseSchema {
            db_id: "concerts".into(),
            tables: vec![
                Table {
                    name: "singer".into(),
                    natural_name: "singer".into(),
                    columns: vec![column("singer_id"), column("Name")],
                    primary_key: vec![0],
                },
                Table {
                    name: "concert".into(),
                    natural_name: "concert".into(),
                    columns: vec![column("singer_id"), column("Stadium Name")],
                    primary_key: vec![],
                },
            ],
            foreign_keys: vec![],
            ddls: vec![],
            values: None,
        }
    }

    #[test]
    fn names_get_symbols_in_schema_order_once_each() {
        let symbols = SchemaSymbols::new(&schema(), 8);
        assert_eq!(symbols.symbol_of("SINGER"), Some(0));
        assert_eq!(symbols.symbol_of("concert"), Some(1));
        assert_eq!(symbols.symbol_of("singer_id"), Some(2));
        assert_eq!(symbols.symbol_of("name"), Some(3));
        assert_eq!(symbols.name_of(4), Some("\"Stadium Name\""));
        assert_eq!(symbols.name_of(5), None);
        assert_eq!(symbols.labelled("Name"), "<sym3> Name");
        assert_eq!(symbols.reference("Singer_ID"), "<sym2>");
        assert_eq!(symbols.reference("other"), "other");
    }

    #[test]
    fn symbols_resolve_with_spacing_and_unknown_ones_stay() {
        let schema = DatabaseSchema {
            db_id: "shop".into(),
            tables: vec![crate::schema::Table {
                name: "singer".into(),
                natural_name: "singer".into(),
                columns: vec![crate::schema::Column {
                    name: "Full Name".into(),
                    description: String::new(),
                    data_type: "TEXT".into(),
                    sample_values: vec![],
                }],
                primary_key: vec![],
            }],
            foreign_keys: vec![],
            ddls: vec![],
            values: None,
        };
        let symbols = SchemaSymbols::new(&schema, 4);
        assert_eq!(
            symbols.resolve("SELECT T1.<sym1>, count(<sym1>) FROM<sym0> AS T1 WHERE<sym1>='x'"),
            "SELECT T1.\"Full Name\", count(\"Full Name\") FROM singer AS T1 WHERE \"Full Name\"='x'"
        );
        assert_eq!(
            symbols.resolve("SELECT <sym3> FROM <sym0>"),
            "SELECT <sym3> FROM singer"
        );
        assert_eq!(
            symbols.resolve("SELECT '<sym' FROM t"),
            "SELECT '<sym' FROM t"
        );
    }

    #[test]
    fn names_past_the_capacity_stay_spelled_out() {
        let symbols = SchemaSymbols::new(&schema(), 2);
        assert_eq!(symbols.symbol_of("concert"), Some(1));
        assert_eq!(symbols.symbol_of("singer_id"), None);
        assert_eq!(symbols.labelled("singer_id"), "singer_id");
        // Natural labels too: a name without a symbol is written as SQL does.
        let natural = symbols.with_natural_names(true);
        assert_eq!(natural.labelled("singer_id"), "singer_id");
    }

    #[test]
    fn natural_labels_read_as_a_question_while_sql_keeps_the_names() {
        let symbols = SchemaSymbols::new(&schema(), 8).with_natural_names(true);
        assert_eq!(symbols.labelled("singer_id"), "<sym2> singer id");
        assert_eq!(symbols.labelled("Stadium Name"), "<sym4> stadium name");
        assert_eq!(symbols.labelled("SINGER"), "<sym0> singer");
        // What the model writes still resolves to the names as SQL spells them.
        assert_eq!(
            symbols.resolve("SELECT <sym4> FROM <sym1> WHERE <sym2> = 1"),
            "SELECT \"Stadium Name\" FROM concert WHERE singer_id = 1"
        );
    }

    #[test]
    fn shuffled_symbols_are_distinct_seeded_and_spread_over_the_capacity() {
        let a = SchemaSymbols::shuffled(&schema(), 64, 7);
        assert_eq!(a, SchemaSymbols::shuffled(&schema(), 64, 7));
        let used: std::collections::HashSet<u32> = ["singer", "concert", "singer_id", "name"]
            .iter()
            .map(|n| a.symbol_of(n).unwrap())
            .collect();
        assert_eq!(used.len(), 4);
        let highest = (0..32u64)
            .map(|seed| {
                let s = SchemaSymbols::shuffled(&schema(), 64, seed);
                (0..64).filter(|&i| s.name_of(i).is_some()).max().unwrap()
            })
            .max()
            .unwrap();
        assert!(
            highest > 32,
            "symbols drawn from the whole range: {highest}"
        );
        for index in 0..64 {
            if let Some(name) = a.name_of(index) {
                assert_eq!(a.symbol_of(name.trim_matches('"')), Some(index));
            }
        }
    }
}
