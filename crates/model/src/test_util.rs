//! Helpers shared by this crate's unit tests.

use candle_core::Tensor;
use text2sql_data::schema::DatabaseSchema;

use crate::tokenizer::{train_unigram, Tokenizer, TrainOptions};

/// The largest absolute difference between two tensors of the same shape.
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// A tokenizer with 8 schema symbols, trained on a few SQL words.
pub(crate) fn symbol_tokenizer() -> Tokenizer {
    symbol_tokenizer_trained_on("SELECT count(*) FROM farm JOIN city WHERE (age > 3)")
}

/// A tokenizer with 8 schema symbols that can spell `sql`.
pub(crate) fn symbol_tokenizer_trained_on(sql: &str) -> Tokenizer {
    train_unigram(
        [sql.to_string()].into_iter().cycle().take(50),
        &TrainOptions {
            vocab_size: 400,
            schema_symbols: 8,
            ..TrainOptions::default()
        },
    )
    .unwrap()
}

/// `city`, `farm`, and `competition_record` joining them.
pub(crate) fn farm_schema() -> DatabaseSchema {
    let table = |name: &str, columns: &[&str]| {
        serde_json::json!({"name": name, "natural_name": name.replace('_', " "),
            "columns": columns.iter().map(|c| serde_json::json!({"name": c,
                "description": c, "data_type": "INTEGER", "sample_values": []}))
                .collect::<Vec<_>>(),
            "primary_key": [0]})
    };
    serde_json::from_value(serde_json::json!({"db_id": "farm",
        "tables": [table("city", &["City_ID", "Population"]),
            table("farm", &["Farm_ID", "Total_Horses"]),
            table("competition_record", &["Farm_ID", "City_ID"])],
        "foreign_keys": [
            {"table": 2, "column": 0, "ref_table": 1, "ref_column": 0},
            {"table": 2, "column": 1, "ref_table": 0, "ref_column": 0}],
        "ddls": []}))
    .unwrap()
}
