//! The one schema model every stage shares: read from a Spider-style
//! `tables.json` (SynSQL, Spider or BIRD flavour) and optionally enriched with
//! sample values from the SQLite file.

mod enrich;
mod introspect;
mod tables_file;

pub use enrich::{
    enrich_from_sqlite, quote_identifier, SAMPLE_TEXT_MAX_CHARS, SAMPLE_VALUES_PER_COLUMN,
};
pub use introspect::read_schema_from_sqlite;
pub use tables_file::{parse_tables_json, read_tables_file};

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::values::ValueIndex;

/// One database: its tables, columns and keys, in the order of the tables file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseSchema {
    pub db_id: String,
    pub tables: Vec<Table>,
    pub foreign_keys: Vec<ForeignKey>,
    /// The original `CREATE TABLE` statements when the tables file has them
    /// (SynSQL's `ddls`); empty for Spider and BIRD.
    pub ddls: Vec<String>,
    /// The database's distinct text values, for value retrieval: built from
    /// the SQLite file ([`crate::values::build_value_index`]) or read from a
    /// processed folder's `values.parquet`. Not part of the schema's JSON.
    #[serde(skip)]
    pub values: Option<Arc<ValueIndex>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// The real identifier (`table_names_original`).
    pub name: String,
    /// The natural-language name (`table_names`).
    pub natural_name: String,
    pub columns: Vec<Column>,
    /// Indices into `columns` of the primary key, in key order; more than one
    /// for a composite key.
    pub primary_key: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// The real identifier (`column_names_original`).
    pub name: String,
    /// `column_names`: in SynSQL a free-text description of the column, in
    /// Spider and BIRD a normalised lower-case name.
    pub description: String,
    /// `column_types` as written in the tables file: a raw DDL type in SynSQL
    /// (`INTEGER`, `REAL`, `TEXT`, ...), one of text/number/time/others/boolean
    /// in Spider.
    pub data_type: String,
    /// Up to a few distinct example values, filled from the SQLite file.
    #[serde(default)]
    pub sample_values: Vec<SampleValue>,
}

/// A value read from a database, kept with its SQLite storage class so that a
/// serializer can print `1`, `1.0` and `'1'` differently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum SampleValue {
    Integer(i64),
    Real(f64),
    Text(String),
}

/// `table.column` references `ref_table.ref_column`; indices into
/// `DatabaseSchema::tables` and that table's `columns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub table: usize,
    pub column: usize,
    pub ref_table: usize,
    pub ref_column: usize,
}

impl DatabaseSchema {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Foreign keys whose source is `table_index`, in file order.
    pub fn foreign_keys_from(&self, table_index: usize) -> impl Iterator<Item = &ForeignKey> {
        self.foreign_keys
            .iter()
            .filter(move |fk| fk.table == table_index)
    }

    pub fn column_count(&self) -> usize {
        self.tables.iter().map(|t| t.columns.len()).sum()
    }
}
