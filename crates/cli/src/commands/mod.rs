pub mod convert;
pub mod eval;
pub mod prepare;
pub mod sample;
pub mod schema;
pub mod tokenizer;
pub mod train;
