//! Tokenizer, T5 on candle, checkpoint load/convert/save, and generation.

pub mod tokenizer;
