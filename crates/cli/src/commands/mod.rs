pub mod convert;
pub mod schema;
