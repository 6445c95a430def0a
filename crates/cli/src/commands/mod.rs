pub mod prepare;
pub mod schema;
