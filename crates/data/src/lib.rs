//! The data stage of text2sql: corpus readers (SynSQL, Spider, BIRD), the
//! schema model and its serializers, `prepare`, the processed store and its
//! loader, curriculum sampling, and the sample corpus generator.

pub mod atomic;
pub mod curriculum;
pub mod error;
pub mod loader;
pub mod prepare;
pub mod reader;
pub mod sample;
pub mod schema;
pub mod serialize;
pub mod splitmix;
pub mod store;
pub mod test_data;
pub mod values;

pub use atomic::AtomicError;
pub use error::DataError;
/// The one database path rule: `<dir>/<db_id>/<db_id>.sqlite`.
pub use prepare::database_path;
