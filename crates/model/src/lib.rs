//! Tokenizer, T5 on candle, checkpoint load/convert/save, and generation.
//!
//! - [`T5Model`]: the encoder-decoder with Hugging Face parameter names.
//!   [`T5Model::load`] reads a checkpoint directory for inference,
//!   [`T5Model::load_trainable`] into a `VarMap` for training,
//!   [`T5Model::new`] builds one from any `VarBuilder`;
//!   [`T5Model::forward_train`] + [`loss`] for teacher-forced training;
//!   [`T5Model::encode`], [`T5Model::start_decoding`] and
//!   [`T5Model::decode_step`] for incremental decoding with an external
//!   [`DecoderCache`]; [`T5Model::save_pretrained`] writes the Hugging Face
//!   layout.
//! - [`generate`]: batched greedy and beam search matching transformers.
//! - [`tokenizer`]: load T5/flan/codet5 tokenizers, train a Unigram one.
//! - [`convert`]: checkpoint conversion behind `text2sql convert`.

pub mod bf16_matmul;
pub mod checkpoint;
pub mod error;
pub mod fill_links;
pub mod generate;
pub mod gold_check;
pub mod input;
pub mod ops;
pub mod predict;
pub mod sql_model;
pub mod t5;
pub mod table_links;
#[cfg(test)]
mod test_util;
mod threads;
pub mod tokenizer;

/// Re-exported so that callers need no direct candle dependency.
pub use candle_core::{DType, Device};
pub use checkpoint::{convert, expected_tensors, ConvertReport};
pub use error::{ModelError, Result};
pub use fill_links::FillLinks;
pub use generate::{
    check_token_prefixes, generate, generate_constrained, generate_in_batches, Constraint,
    GenerationConfig, Hypothesis, TokenTexts, DEFAULT_CONSTRAIN_TOP_K,
};
pub use gold_check::GoldChecker;
pub use input::{decode_sql, InputFormat};
pub use predict::{predict_split, PredictOptions, SplitPredictions};
pub use sql_model::{GeneratedSql, SchemaInput, SqlModel};
pub use t5::{loss, shift_right, DecoderCache, T5Architecture, T5Config, T5Model, IGNORED_LABEL};
pub use table_links::{table_links, SymbolLink, DEFAULT_TABLE_LINK_BONUS};
pub use threads::pin_cpu_threads;
