pub mod sample;
pub mod schema;
