pub mod eval;
pub mod schema;
