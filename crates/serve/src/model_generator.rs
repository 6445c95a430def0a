//! The production [`SqlGenerator`]: the T5 checkpoint through
//! [`text2sql_model::SqlModel`], so the server builds the model's input
//! exactly as training did.

use text2sql_data::schema::DatabaseSchema;
use text2sql_model::SqlModel;

use crate::backend::{Candidate, GenerateError, SqlGenerator};

/// Answers with a loaded checkpoint. The demo has no external-knowledge
/// field, so questions go in without one.
pub struct ModelGenerator {
    model: SqlModel,
}

impl ModelGenerator {
    pub fn new(model: SqlModel) -> Self {
        Self { model }
    }
}

impl SqlGenerator for ModelGenerator {
    fn generate(
        &self,
        question: &str,
        schema: &DatabaseSchema,
        beams: usize,
    ) -> Result<Vec<Candidate>, GenerateError> {
        let generated = self
            .model
            .generate_sql(question, "", schema, beams.max(1))
            .map_err(|e| GenerateError::new(format!("the model failed: {e}")))?;
        Ok(generated
            .into_iter()
            .map(|g| Candidate {
                sql: g.sql,
                score: f64::from(g.score),
            })
            .collect())
    }

    fn query_shapes(&self, question: &str, schema: &DatabaseSchema) -> Vec<String> {
        self.model
            .query_shapes(question, schema)
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use text2sql_data::schema::{Column, Table};
    use text2sql_model::tokenizer::{train_unigram, TrainOptions};
    use text2sql_model::{Device, InputFormat};

    #[test]
    fn candidates_come_best_first_one_per_beam() {
        let texts = ["list the name of every city | geo | city : name , population"]
            .iter()
            .cycle()
            .take(50)
            .map(|s| s.to_string());
        let options = TrainOptions {
            vocab_size: 300,
            ..TrainOptions::default()
        };
        let tokenizer = train_unigram(texts, &options).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let format = InputFormat {
            max_target_tokens: 8,
            ..InputFormat::default()
        };
        let model_dir = dir.path().join("m");
        text2sql_model::sql_model::write_random_checkpoint(&model_dir, &tokenizer, &format, 3)
            .unwrap();
        let generator = ModelGenerator::new(SqlModel::load(&model_dir, &Device::Cpu).unwrap());
        let schema = DatabaseSchema {
            db_id: "geo".into(),
            tables: vec![Table {
                name: "city".into(),
                natural_name: "city".into(),
                columns: vec![Column {
                    name: "name".into(),
                    description: "name".into(),
                    data_type: "text".into(),
                    sample_values: Vec::new(),
                }],
                primary_key: Vec::new(),
            }],
            foreign_keys: Vec::new(),
            ddls: Vec::new(),
            values: None,
        };
        let candidates = generator.generate("list the cities", &schema, 2).unwrap();
        assert_eq!(candidates.len(), 2);
        assert!(candidates[0].score >= candidates[1].score);
        assert_eq!(
            generator.generate("list the cities", &schema, 2).unwrap(),
            candidates
        );
    }
}
