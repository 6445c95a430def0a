//! Turning a prepared example into the token ids the model trains on: the
//! source text (question, external knowledge and the schema pruned to the
//! budget) and the SQL target, both ending in `</s>`.

use std::collections::HashMap;
use std::path::Path;

use text2sql_data::schema::DatabaseSchema;
use text2sql_data::splitmix::mix64;
use text2sql_data::store::Example;
use text2sql_model::tokenizer::Tokenizer;
use text2sql_model::InputFormat;

use crate::error::{Result, TrainError};

/// Keeps an example's schema order independent of its symbol draw.
const SCHEMA_ORDER_SALT: u64 = 0x5c4e_3a0d_e11a_0001;

/// One tokenized training example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Encoder input ids, at most `max_source_tokens`, `</s>` last.
    pub source: Vec<u32>,
    /// Label ids, at most `max_target_tokens`, `</s>` last.
    pub target: Vec<u32>,
}

/// Everything that decides an example's token ids. Borrowing only, so the
/// trainer keeps owning the tokenizer and schemas; `Sync`, so the token
/// cache can encode a split on every core.
#[derive(Debug, Clone, Copy)]
pub struct ExampleEncoder<'a> {
    tokenizer: &'a Tokenizer,
    format: &'a InputFormat,
    schemas: &'a HashMap<String, DatabaseSchema>,
    dataset_dir: &'a Path,
}

impl<'a> ExampleEncoder<'a> {
    /// `schemas` are the prepared dataset's (by `db_id`); `dataset_dir` only
    /// names the dataset in errors.
    pub fn new(
        tokenizer: &'a Tokenizer,
        format: &'a InputFormat,
        schemas: &'a HashMap<String, DatabaseSchema>,
        dataset_dir: &'a Path,
    ) -> Self {
        Self {
            tokenizer,
            format,
            schemas,
            dataset_dir,
        }
    }

    pub fn tokenizer(&self) -> &'a Tokenizer {
        self.tokenizer
    }

    pub fn format(&self) -> &'a InputFormat {
        self.format
    }

    /// The example's source and target ids, cut to the format's budgets.
    pub fn encode(&self, example: &Example) -> Result<Encoded> {
        let schema = self.schemas.get(&example.db_id).ok_or_else(|| {
            TrainError::Dataset(format!(
                "example {} names database `{}`, which is not in {}",
                example.id,
                example.db_id,
                self.dataset_dir.display()
            ))
        })?;
        // Each example draws its own symbols and schema order (seeded by
        // its id, so the cache and resumed runs see the same ones).
        let shuffled;
        let schema = if self.format.shuffle_schema {
            shuffled = schema.shuffled(mix64(example.id ^ SCHEMA_ORDER_SALT));
            &shuffled
        } else {
            schema
        };
        let symbols = self
            .format
            .symbols(schema, self.tokenizer, Some(mix64(example.id)));
        let text = self.format.source_text(
            &example.question,
            &example.external_knowledge,
            schema,
            symbols.as_ref(),
            Some(&example.sql),
            self.tokenizer,
        );
        let mut source = self.tokenizer.encode(&text.text, true)?;
        truncate_keeping_eos(&mut source, self.format.max_source_tokens);
        let sql = self.format.target_text(&example.sql, symbols.as_ref());
        let mut target = self.tokenizer.encode(&sql, true)?;
        truncate_keeping_eos(&mut target, self.format.max_target_tokens);
        Ok(Encoded { source, target })
    }
}

/// Cuts `ids` to `max` tokens, keeping the end-of-sequence token last.
pub fn truncate_keeping_eos(ids: &mut Vec<u32>, max: usize) {
    if ids.len() > max && max > 0 {
        let eos = ids[ids.len() - 1];
        ids.truncate(max);
        ids[max - 1] = eos;
    }
}

#[cfg(test)]
mod tests {
    use super::truncate_keeping_eos;

    #[test]
    fn truncation_keeps_the_end_of_sequence_token() {
        let mut ids = vec![5, 6, 7, 8, 1];
        truncate_keeping_eos(&mut ids, 3);
        assert_eq!(ids, vec![5, 6, 1]);
        let mut short = vec![5, 1];
        truncate_keeping_eos(&mut short, 3);
        assert_eq!(short, vec![5, 1]);
    }
}
