pub mod schema;
pub mod tokenizer;
