//! Streaming corpus readers: the array scanner that finds records in a
//! memory-mapped JSON file, and the per-format record parsers (SynSQL,
//! Spider, BIRD) that validate one record at a time.

mod record;
mod scan;

pub(crate) use record::json_kind;
pub use record::{
    parse_record, parse_scanned_record, Format, InvalidCause, Record, RecordError, Tier,
};
pub use scan::{ArrayScanner, Span, StructureError};
