//! How a question and its database schema become the model's input text.
//!
//! Training, `ask`, `eval` and `serve` must build inputs identically, so the
//! format is saved beside the weights as [`InputFormat::FILE_NAME`] and every
//! stage reads it from the checkpoint instead of assuming defaults.

use std::path::Path;

use serde::{Deserialize, Serialize};
use text2sql_data::schema::DatabaseSchema;
use text2sql_data::serialize::{
    compact_input_within_budget, CompactOptions, PrunedText, SchemaSymbols, TokenBudget,
};

use crate::error::{ModelError, Result};
use crate::tokenizer::Tokenizer;

/// The serialization a model was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFormat {
    /// Encoder input budget in tokens, `</s>` included; the schema is pruned
    /// (never cut mid-name) to fit.
    pub max_source_tokens: usize,
    /// Longest SQL the model is trained on or asked to write, in tokens.
    pub max_target_tokens: usize,
    /// Example values and foreign keys shown in the compact schema.
    pub schema: CompactOptions,
    /// Whether SynSQL/BIRD `external_knowledge` is appended to the question.
    pub external_knowledge: bool,
    /// Whether names are labelled with schema symbols in the input and
    /// written as symbols in the SQL (see [`SchemaSymbols`]); needs a
    /// tokenizer trained with them. Left out of the JSON when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub schema_symbols: bool,
    /// Training numbers each example's names in schema order too, instead
    /// of drawing its symbols at random. Left out of the JSON when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub symbols_in_schema_order: bool,
    /// Names with a symbol are labelled with the words a question would
    /// use (see [`SchemaSymbols::with_natural_names`]). Left out of the JSON
    /// when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub natural_names: bool,
    /// The model learns to write table names where the gold SQL has
    /// aliases (`singer.name` for `T1.name`, see
    /// [`text2sql_sql::unalias_tables`]); what it writes runs as it is.
    /// Left out of the JSON when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unalias_tables: bool,
    /// Training shows each example's tables, and each table's columns, in
    /// an order of its own (see [`DatabaseSchema::shuffled`]); inference
    /// keeps the database's order. Left out of the JSON when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shuffle_schema: bool,
}

impl Default for InputFormat {
    fn default() -> Self {
        InputFormat {
            max_source_tokens: 512,
            max_target_tokens: 256,
            schema: CompactOptions::default(),
            external_knowledge: true,
            schema_symbols: false,
            symbols_in_schema_order: false,
            natural_names: false,
            unalias_tables: false,
            shuffle_schema: false,
        }
    }
}

impl InputFormat {
    pub const FILE_NAME: &'static str = "text2sql_input.json";

    /// Reads the format saved in a checkpoint folder. A checkpoint converted
    /// from the Hub has none: it gets the defaults, which is what
    /// `text2sql train` writes when a config leaves them unset.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(Self::FILE_NAME);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| ModelError::Json { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ModelError::Io { path, source }),
        }
    }

    /// Writes the format into `dir` (a checkpoint folder being assembled).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(Self::FILE_NAME);
        let json = serde_json::to_vec_pretty(self).map_err(|source| ModelError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, json).map_err(|source| ModelError::Io { path, source })
    }

    /// The question as the model sees it: with its external knowledge
    /// appended when the format asks for it and there is any.
    pub fn question_text(&self, question: &str, external_knowledge: &str) -> String {
        let knowledge = external_knowledge.trim();
        if self.external_knowledge && !knowledge.is_empty() {
            format!("{} ( {} )", question.trim(), knowledge)
        } else {
            question.trim().to_string()
        }
    }

    /// An error when this format shows retrieved values (see
    /// [`CompactOptions::retrieved_values`]) and `schema` has no value index
    /// to retrieve them from: the inputs would silently differ from
    /// training's. `source` says where the schema came from.
    pub fn check_value_index(&self, schema: &DatabaseSchema, source: &str) -> Result<()> {
        if self.schema.retrieved_values && schema.values.is_none() {
            return Err(ModelError::Invalid(format!(
                "the model's input format shows retrieved database values, but {source} has no \
                 value index for `{}` (prepare the data again with --databases, which writes \
                 values.parquet)",
                schema.db_id
            )));
        }
        Ok(())
    }

    /// An error when this format uses schema symbols and `tokenizer` has
    /// none (it was trained without `--schema-symbols`).
    pub fn check_tokenizer(&self, tokenizer: &Tokenizer) -> Result<()> {
        if self.schema_symbols && tokenizer.schema_symbols() == 0 {
            return Err(ModelError::Invalid(
                "the input format uses schema symbols, but the tokenizer has none (train it \
                 with `text2sql tokenizer train --schema-symbols N`)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The symbols of `schema`'s names when this format uses them: in schema
    /// order, or (training) drawn at random with `shuffle_seed`.
    pub fn symbols(
        &self,
        schema: &DatabaseSchema,
        tokenizer: &Tokenizer,
        shuffle_seed: Option<u64>,
    ) -> Option<SchemaSymbols> {
        if !self.schema_symbols {
            return None;
        }
        let capacity = tokenizer.schema_symbols();
        let shuffle_seed = shuffle_seed.filter(|_| !self.symbols_in_schema_order);
        let symbols = match shuffle_seed {
            Some(seed) => SchemaSymbols::shuffled(schema, capacity, seed),
            None => SchemaSymbols::new(schema, capacity),
        };
        Some(symbols.with_natural_names(self.natural_names))
    }

    /// The SQL the model learns to write: with [`Self::unalias_tables`],
    /// aliases written out as their tables; with `symbols`, each table and
    /// column name that has one becomes its symbol. SQL the checker's lexer
    /// cannot read is kept as it is.
    pub fn target_text(&self, sql: &str, symbols: Option<&SchemaSymbols>) -> String {
        let unaliased;
        let sql = if self.unalias_tables {
            unaliased = text2sql_sql::unalias_tables(sql).unwrap_or_else(|_| sql.to_string());
            unaliased.as_str()
        } else {
            sql
        };
        let Some(symbols) = symbols else {
            return sql.to_string();
        };
        text2sql_sql::rename_identifiers(sql, |name| {
            symbols
                .symbol_of(name)
                .map(text2sql_data::serialize::symbol_token)
        })
        .unwrap_or_else(|_| sql.to_string())
    }

    /// The encoder input `question | db_id | table : col , … | …`, pruned to
    /// `max_source_tokens` as counted by `tokenizer`, names labelled with
    /// `symbols` when given. At training time pass the gold SQL so that the
    /// tables and columns it uses are never pruned.
    pub fn source_text(
        &self,
        question: &str,
        external_knowledge: &str,
        schema: &DatabaseSchema,
        symbols: Option<&SchemaSymbols>,
        gold_sql: Option<&str>,
        tokenizer: &Tokenizer,
    ) -> PrunedText {
        let question = self.question_text(question, external_knowledge);
        // An encoding failure cannot be budgeted; counting it as over any
        // budget makes the pruner drop optional parts rather than pass it.
        let count = |text: &str| {
            tokenizer
                .encode(text, true)
                .map_or(usize::MAX, |ids| ids.len())
        };
        let budget = TokenBudget {
            max_tokens: self.max_source_tokens,
            count_tokens: &count,
        };
        compact_input_within_budget(&question, schema, &self.schema, symbols, gold_sql, &budget)
    }
}

/// A hypothesis' SQL: its tokens decoded, schema symbols mapped back to
/// names when the input had them, surrounding whitespace trimmed.
pub fn decode_sql(
    tokenizer: &Tokenizer,
    tokens: &[u32],
    symbols: Option<&SchemaSymbols>,
) -> std::result::Result<String, crate::tokenizer::TokenizerError> {
    let text = tokenizer.decode(tokens, true)?;
    let sql = match symbols {
        Some(symbols) => symbols.resolve(&text),
        None => text,
    };
    Ok(sql.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_format_reads_back_and_missing_file_means_defaults() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            InputFormat::load(dir.path()).unwrap(),
            InputFormat::default()
        );
        let format = InputFormat {
            max_source_tokens: 128,
            external_knowledge: false,
            ..InputFormat::default()
        };
        format.save(dir.path()).unwrap();
        assert_eq!(InputFormat::load(dir.path()).unwrap(), format);
    }

    #[test]
    fn formats_saved_before_value_retrieval_load_without_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(InputFormat::FILE_NAME),
            r#"{"max_source_tokens": 512, "max_target_tokens": 256,
                "schema": {"values": "matching_question", "foreign_keys": true},
                "external_knowledge": true}"#,
        )
        .unwrap();
        let old = InputFormat::load(dir.path()).unwrap();
        assert!(!old.schema.retrieved_values);
        // Saved again it reads the same, and an older build could read it.
        old.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(InputFormat::FILE_NAME)).unwrap();
        assert!(!text.contains("retrieved_values"), "{text}");

        let mut retrieving = old.clone();
        retrieving.schema.retrieved_values = true;
        retrieving.save(dir.path()).unwrap();
        assert_eq!(InputFormat::load(dir.path()).unwrap(), retrieving);
        let schema = DatabaseSchema {
            db_id: "shop".into(),
            tables: vec![],
            foreign_keys: vec![],
            ddls: vec![],
            values: None,
        };
        let err = retrieving
            .check_value_index(&schema, "data/processed")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data/processed") && err.contains("`shop`"),
            "{err}"
        );
        assert!(old.check_value_index(&schema, "data/processed").is_ok());
    }

    #[test]
    fn unaliased_targets_name_tables_and_survive_symbols() {
        let format = InputFormat {
            unalias_tables: true,
            ..InputFormat::default()
        };
        let sql = "SELECT T2.name FROM singer AS T1 JOIN concert AS T2 ON T1.id = T2.singer_id";
        let unaliased =
            "SELECT concert.name FROM singer JOIN concert ON singer.id = concert.singer_id";
        assert_eq!(format.target_text(sql, None), unaliased);
        // Off, the target is the gold SQL.
        assert_eq!(InputFormat::default().target_text(sql, None), sql);
        let tables = r#"[{"db_id": "music",
            "table_names_original": ["singer", "concert"], "table_names": ["singer", "concert"],
            "column_names_original": [[-1, "*"], [0, "id"], [1, "name"], [1, "singer_id"]],
            "column_names": [[-1, "*"], [0, "id"], [1, "name"], [1, "singer id"]],
            "column_types": ["text", "number", "text", "number"],
            "primary_keys": [1], "foreign_keys": [[3, 1]]}]"#;
        let schema = text2sql_data::schema::parse_tables_json(tables.as_bytes(), "tables.json")
            .unwrap()
            .remove(0);
        let symbols = SchemaSymbols::new(&schema, 16);
        let target = format.target_text(sql, Some(&symbols));
        assert!(
            !target.contains("T1") && !target.contains("singer"),
            "{target}"
        );
        assert_eq!(comparable(&symbols.resolve(&target)), comparable(unaliased));
        // Saved and read back with the option.
        let dir = tempfile::tempdir().unwrap();
        format.save(dir.path()).unwrap();
        assert_eq!(InputFormat::load(dir.path()).unwrap(), format);
    }

    /// What decoding gives back compares equal to the gold SQL ignoring
    /// ASCII case, spacing and back-quotes/brackets around names.
    fn comparable(sql: &str) -> String {
        sql.chars()
            .filter(|c| !c.is_whitespace() && !"`[]".contains(*c))
            .flat_map(char::to_lowercase)
            .collect()
    }

    /// Every Spider gold query (train and dev), written in symbols the way
    /// training writes targets and read back the way decoding does, is the
    /// same query; and it names no table or column except by symbol.
    #[test]
    fn spider_gold_survives_symbols_both_ways() {
        use std::collections::HashMap;
        use text2sql_data::schema::read_tables_file;
        use text2sql_data::test_data::{shared_data, shared_data_dir};
        let Some(tables) = shared_data("spider/tables.json") else {
            return;
        };
        let schemas: HashMap<String, DatabaseSchema> = read_tables_file(&tables)
            .unwrap()
            .into_iter()
            .map(|s| (s.db_id.clone(), s))
            .collect();
        let format = InputFormat {
            schema_symbols: true,
            ..InputFormat::default()
        };
        let root = shared_data_dir().join("spider");
        let mut queries = 0;
        let mut spelled_out = Vec::new();
        for file in ["dev_gold.sql", "train_gold.sql"] {
            let gold = text2sql_sql::eval::files::read_gold_file(&root.join(file)).unwrap();
            for (i, entry) in gold.iter().enumerate() {
                let schema = &schemas[&entry.db_id];
                for seed in [None, Some(i as u64)] {
                    let symbols = match seed {
                        Some(seed) => SchemaSymbols::shuffled(schema, 192, seed),
                        None => SchemaSymbols::new(schema, 192),
                    };
                    let target = format.target_text(&entry.sql, Some(&symbols));
                    let back = symbols.resolve(&target);
                    assert_eq!(
                        comparable(&back),
                        comparable(&entry.sql),
                        "{file} {i}: {}\n -> {target}\n -> {back}",
                        entry.sql
                    );
                    let names_left = text2sql_sql::rename_identifiers(&target, |name| {
                        symbols.symbol_of(name).map(|_| String::new())
                    })
                    .unwrap();
                    if names_left != target {
                        spelled_out.push(format!("{file} {i}: {target}"));
                    }
                }
                queries += 1;
            }
        }
        assert!(queries > 8000, "{queries}");
        assert!(spelled_out.is_empty(), "{}", spelled_out.join("\n"));
    }

    #[test]
    fn unknown_keys_are_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(InputFormat::FILE_NAME),
            r#"{"max_source_tokens": 1, "typo": 2}"#,
        )
        .unwrap();
        let err = InputFormat::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(InputFormat::FILE_NAME), "{err}");
    }

    #[test]
    fn knowledge_is_appended_only_when_asked_and_present() {
        let format = InputFormat::default();
        assert_eq!(format.question_text("How many? ", ""), "How many?");
        assert_eq!(
            format.question_text("Premium products?", "premium means price > 100"),
            "Premium products? ( premium means price > 100 )"
        );
        let without = InputFormat {
            external_knowledge: false,
            ..InputFormat::default()
        };
        assert_eq!(
            without.question_text("Premium products?", "premium means price > 100"),
            "Premium products?"
        );
    }
}
