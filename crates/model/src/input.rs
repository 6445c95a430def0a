//! How a question and its database schema become the model's input text.
//!
//! Training, `ask`, `eval` and `serve` must build inputs identically, so the
//! format is saved beside the weights as [`InputFormat::FILE_NAME`] and every
//! stage reads it from the checkpoint instead of assuming defaults.

use std::path::Path;

use serde::{Deserialize, Serialize};
use text2sql_data::schema::DatabaseSchema;
use text2sql_data::serialize::{
    compact_input_within_budget, CompactOptions, PrunedText, TokenBudget,
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
}

impl Default for InputFormat {
    fn default() -> Self {
        InputFormat {
            max_source_tokens: 512,
            max_target_tokens: 256,
            schema: CompactOptions::default(),
            external_knowledge: true,
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

    /// The encoder input `question | db_id | table : col , … | …`, pruned to
    /// `max_source_tokens` as counted by `tokenizer`. At training time pass
    /// the gold SQL so that the tables and columns it uses are never pruned.
    pub fn source_text(
        &self,
        question: &str,
        external_knowledge: &str,
        schema: &DatabaseSchema,
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
        compact_input_within_budget(&question, schema, &self.schema, gold_sql, &budget)
    }
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
