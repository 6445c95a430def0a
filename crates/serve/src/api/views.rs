//! What the API reads and writes: request bodies and the JSON shapes of
//! databases, schemas, results and timings.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use text2sql_data::schema::{DatabaseSchema, SampleValue};

use super::error::ErrorBody;
use crate::backend::ResultSet;
use crate::catalog::{Database, SchemaSource};

#[derive(Serialize)]
pub(super) struct DatabaseList {
    pub(super) databases: Vec<DatabaseSummary>,
    pub(super) limits: Limits,
}

#[derive(Serialize)]
pub(super) struct DatabaseSummary {
    pub(super) db_id: String,
    pub(super) tables: usize,
    pub(super) columns: usize,
}

/// The bounds a client should respect, so the page can say so up front.
#[derive(Serialize)]
pub(super) struct Limits {
    pub(super) max_question_chars: usize,
    pub(super) max_sql_chars: usize,
    pub(super) max_rows: usize,
    pub(super) beams: usize,
    pub(super) sql_timeout_ms: u128,
    pub(super) request_timeout_ms: u128,
}

/// A schema as the page shows it: names instead of indices, keys marked on
/// their columns.
#[derive(Serialize)]
pub struct SchemaView {
    pub(super) db_id: String,
    /// `tables.json` or `sqlite` (read from the file itself).
    pub(super) source: &'static str,
    pub(super) tables: Vec<TableView>,
    pub(super) foreign_keys: Vec<ForeignKeyView>,
}

#[derive(Serialize)]
pub(super) struct TableView {
    pub(super) name: String,
    pub(super) natural_name: String,
    pub(super) primary_key: Vec<String>,
    pub(super) columns: Vec<ColumnView>,
}

#[derive(Serialize)]
pub(super) struct ColumnView {
    pub(super) name: String,
    pub(super) description: String,
    pub(super) data_type: String,
    pub(super) primary_key: bool,
    /// The column this one refers to, when it is a foreign key.
    pub(super) references: Option<ColumnRef>,
    pub(super) samples: Vec<Value>,
}

#[derive(Serialize)]
pub(super) struct ColumnRef {
    pub(super) table: String,
    pub(super) column: String,
}

#[derive(Serialize)]
pub(super) struct ForeignKeyView {
    pub(super) table: String,
    pub(super) column: String,
    pub(super) ref_table: String,
    pub(super) ref_column: String,
}

pub(super) fn column_name(
    schema: &DatabaseSchema,
    table: usize,
    column: usize,
) -> Option<(&str, &str)> {
    let t = schema.tables.get(table)?;
    Some((t.name.as_str(), t.columns.get(column)?.name.as_str()))
}

pub(super) fn schema_view(db: &Database) -> SchemaView {
    let schema = &db.schema;
    let tables = schema
        .tables
        .iter()
        .enumerate()
        .map(|(table_index, table)| TableView {
            name: table.name.clone(),
            natural_name: table.natural_name.clone(),
            primary_key: table
                .primary_key
                .iter()
                .filter_map(|&i| table.columns.get(i).map(|c| c.name.clone()))
                .collect(),
            columns: table
                .columns
                .iter()
                .enumerate()
                .map(|(column_index, column)| ColumnView {
                    name: column.name.clone(),
                    description: column.description.clone(),
                    data_type: column.data_type.clone(),
                    primary_key: table.primary_key.contains(&column_index),
                    references: schema
                        .foreign_keys_from(table_index)
                        .find(|fk| fk.column == column_index)
                        .and_then(|fk| column_name(schema, fk.ref_table, fk.ref_column))
                        .map(|(table, column)| ColumnRef {
                            table: table.into(),
                            column: column.into(),
                        }),
                    samples: column
                        .sample_values
                        .iter()
                        .map(|v| match v {
                            SampleValue::Integer(i) => Value::from(*i),
                            SampleValue::Real(f) => Value::from(*f),
                            SampleValue::Text(s) => Value::from(s.as_str()),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let foreign_keys = schema
        .foreign_keys
        .iter()
        .filter_map(|fk| {
            let (table, column) = column_name(schema, fk.table, fk.column)?;
            let (ref_table, ref_column) = column_name(schema, fk.ref_table, fk.ref_column)?;
            Some(ForeignKeyView {
                table: table.into(),
                column: column.into(),
                ref_table: ref_table.into(),
                ref_column: ref_column.into(),
            })
        })
        .collect();
    SchemaView {
        db_id: db.db_id.clone(),
        source: match db.schema_source {
            SchemaSource::TablesFile(_) => "tables.json",
            SchemaSource::Sqlite => "sqlite",
        },
        tables,
        foreign_keys,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AskRequest {
    pub(super) db_id: String,
    pub(super) question: String,
    /// Fewer candidates than the server's beam width, if wanted.
    #[serde(default)]
    pub(super) beams: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExecuteRequest {
    pub(super) db_id: String,
    pub(super) sql: String,
}

/// The rows of one execution as JSON.
#[derive(Serialize)]
pub(super) struct ResultView {
    pub(super) columns: Vec<String>,
    pub(super) rows: Vec<Vec<Value>>,
    pub(super) row_count: usize,
    /// More rows exist than `max_rows`; only the first ones are here.
    pub(super) truncated: bool,
    pub(super) elapsed_ms: f64,
}

impl From<ResultSet> for ResultView {
    fn from(result: ResultSet) -> Self {
        Self {
            row_count: result.rows.len(),
            columns: result.columns,
            rows: result.rows,
            truncated: result.truncated,
            elapsed_ms: millis(result.elapsed),
        }
    }
}

#[derive(Serialize)]
pub(super) struct Alternative {
    /// 1 = the generator's best.
    pub(super) rank: usize,
    pub(super) sql: String,
    pub(super) score: f64,
    pub(super) executes: bool,
    pub(super) error: Option<ErrorBody>,
}

#[derive(Serialize)]
pub(super) struct AskTimings {
    pub(super) queue_ms: f64,
    pub(super) generate_ms: f64,
    pub(super) execute_ms: f64,
    pub(super) total_ms: f64,
}

#[derive(Serialize)]
pub(super) struct AskResponse {
    pub(super) db_id: String,
    pub(super) question: String,
    /// The SQL shown: the best candidate that executes, else the best one.
    pub(super) sql: String,
    /// Rank of `sql` among `alternatives` when it executed.
    pub(super) chosen_rank: Option<usize>,
    pub(super) result: Option<ResultView>,
    /// Why `sql` did not run, when no candidate did.
    pub(super) error: Option<ErrorBody>,
    pub(super) alternatives: Vec<Alternative>,
    /// The query shapes decoding held the SQL to (`--skeletons-from`),
    /// best first; empty without.
    pub(super) shapes: Vec<String>,
    pub(super) timings: AskTimings,
}

#[derive(Serialize)]
pub(super) struct ExecuteTimings {
    pub(super) queue_ms: f64,
    pub(super) execute_ms: f64,
    pub(super) total_ms: f64,
}

#[derive(Serialize)]
pub(super) struct ExecuteResponse {
    pub(super) db_id: String,
    pub(super) sql: String,
    pub(super) result: ResultView,
    pub(super) timings: ExecuteTimings,
}

pub(super) fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}
