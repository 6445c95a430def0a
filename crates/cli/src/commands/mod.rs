pub mod ask;
pub mod convert;
pub mod eval;
pub mod prepare;
pub mod sample;
pub mod schema;
pub mod serve;
pub mod tokenizer;
