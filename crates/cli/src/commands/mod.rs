pub mod eval;
pub mod sample;
pub mod schema;
