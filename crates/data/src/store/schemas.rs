//! `schemas.parquet`: one row per database, the structured schema as JSON
//! (serde of `DatabaseSchema`) and its serialized forms.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use super::{parquet_batches, parquet_writer, store_error, string_column};
use crate::error::DataError;
use crate::schema::DatabaseSchema;
use crate::serialize::{compact_schema, omnisql_ddl};

/// One row of `schemas.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaRow {
    pub schema: DatabaseSchema,
    pub omnisql_ddl: String,
    pub compact_schema: String,
}

impl SchemaRow {
    pub fn new(schema: DatabaseSchema) -> Self {
        Self {
            omnisql_ddl: omnisql_ddl(&schema),
            compact_schema: compact_schema(&schema),
            schema,
        }
    }
}

fn arrow_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("db_id", DataType::Utf8, false),
        Field::new("schema_json", DataType::Utf8, false),
        Field::new("omnisql_ddl", DataType::Utf8, false),
        Field::new("compact_schema", DataType::Utf8, false),
    ]))
}

pub fn write_schemas(path: &Path, rows: &[SchemaRow]) -> Result<(), DataError> {
    let err = |e: &dyn std::fmt::Display| store_error(path, e);
    let mut json = Vec::with_capacity(rows.len());
    for row in rows {
        json.push(serde_json::to_string(&row.schema).map_err(|e| err(&e))?);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.schema.db_id.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(json)),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.omnisql_ddl.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.compact_schema.as_str()),
        )),
    ];
    let batch = RecordBatch::try_new(arrow_schema(), columns).map_err(|e| err(&e))?;
    let mut writer = parquet_writer(path, arrow_schema())?;
    writer.write(&batch).map_err(|e| err(&e))?;
    writer.close().map_err(|e| err(&e))?;
    Ok(())
}

pub fn read_schemas(path: &Path) -> Result<Vec<SchemaRow>, DataError> {
    let err = |e: &dyn std::fmt::Display| store_error(path, e);
    let mut rows = Vec::new();
    for batch in parquet_batches(path)? {
        let batch = batch.map_err(|e| err(&e))?;
        let column = |name: &str| string_column(path, &batch, name);
        let (json, ddl, compact) = (
            column("schema_json")?,
            column("omnisql_ddl")?,
            column("compact_schema")?,
        );
        for i in 0..batch.num_rows() {
            let schema: DatabaseSchema = serde_json::from_str(json.value(i))
                .map_err(|e| err(&format!("row {i}, column `schema_json`: {e}")))?;
            rows.push(SchemaRow {
                schema,
                omnisql_ddl: ddl.value(i).to_string(),
                compact_schema: compact.value(i).to_string(),
            });
        }
    }
    Ok(rows)
}
