//! `values.parquet`: every database's value index (see [`crate::values`]),
//! one row per distinct value: `db_id`, `table` and `column` (indices into
//! the schema in `schemas.parquet`) and `value`, databases in the order of
//! `schemas.parquet`, columns in schema order, values sorted.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{StringBuilder, UInt32Builder};
use arrow_array::{Array as _, ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema};

use super::{parquet_batches, parquet_writer, store_error, string_column};
use crate::error::DataError;
use crate::schema::DatabaseSchema;
use crate::values::{ColumnValues, ValueIndex};

/// Rows per record batch written.
const BATCH_ROWS: usize = 64 * 1024;

fn arrow_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("db_id", DataType::Utf8, false),
        Field::new("table", DataType::UInt32, false),
        Field::new("column", DataType::UInt32, false),
        Field::new("value", DataType::Utf8, false),
    ]))
}

/// Writes the value indexes of `schemas` (those that have one), in order.
pub fn write_values(path: &Path, schemas: &[&DatabaseSchema]) -> Result<(), DataError> {
    let err = |e: &dyn std::fmt::Display| store_error(path, e);
    let mut writer = parquet_writer(path, arrow_schema())?;
    let mut batch = Builders::default();
    for schema in schemas {
        let Some(index) = &schema.values else {
            continue;
        };
        for column in index.columns() {
            for value in &column.values {
                batch.db_id.append_value(&schema.db_id);
                batch.table.append_value(column.table as u32);
                batch.column.append_value(column.column as u32);
                batch.value.append_value(value);
                batch.rows += 1;
                if batch.rows == BATCH_ROWS {
                    writer.write(&batch.finish()?).map_err(|e| err(&e))?;
                }
            }
        }
    }
    if batch.rows > 0 {
        writer.write(&batch.finish()?).map_err(|e| err(&e))?;
    }
    writer.close().map_err(|e| err(&e))?;
    Ok(())
}

#[derive(Default)]
struct Builders {
    db_id: StringBuilder,
    table: UInt32Builder,
    column: UInt32Builder,
    value: StringBuilder,
    rows: usize,
}

impl Builders {
    fn finish(&mut self) -> Result<RecordBatch, DataError> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.db_id.finish()),
            Arc::new(self.table.finish()),
            Arc::new(self.column.finish()),
            Arc::new(self.value.finish()),
        ];
        RecordBatch::try_new(arrow_schema(), columns)
            .map_err(|e| DataError::Invalid(format!("building a values batch: {e}")))
    }
}

/// Reads `values.parquet` back into one [`ValueIndex`] per database.
pub fn read_values(path: &Path) -> Result<HashMap<String, ValueIndex>, DataError> {
    let err = |e: &dyn std::fmt::Display| store_error(path, e);
    let mut columns: HashMap<String, Vec<ColumnValues>> = HashMap::new();
    for batch in parquet_batches(path)? {
        let batch = batch.map_err(|e| err(&e))?;
        let strings = |name: &str| string_column(path, &batch, name);
        let numbers = |name: &str| -> Result<UInt32Array, DataError> {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
                .cloned()
                .ok_or_else(|| err(&format!("missing u32 column `{name}`")))
        };
        let (db_ids, tables, cols, values) = (
            strings("db_id")?,
            numbers("table")?,
            numbers("column")?,
            strings("value")?,
        );
        for i in 0..batch.num_rows() {
            let list = columns.entry(db_ids.value(i).to_string()).or_default();
            let (table, column) = (tables.value(i) as usize, cols.value(i) as usize);
            match list.last_mut() {
                Some(last) if last.table == table && last.column == column => {
                    last.values.push(values.value(i).to_string());
                }
                _ => list.push(ColumnValues {
                    table,
                    column,
                    values: vec![values.value(i).to_string()],
                }),
            }
        }
    }
    Ok(columns
        .into_iter()
        .map(|(db_id, columns)| (db_id, ValueIndex::new(columns)))
        .collect())
}

/// Attaches each schema's index from `indexes`, checking that its table and
/// column indices exist in the schema (`path` names the file in errors).
pub fn attach_values(
    path: &Path,
    schemas: &mut [&mut DatabaseSchema],
    mut indexes: HashMap<String, ValueIndex>,
) -> Result<(), DataError> {
    for schema in schemas.iter_mut() {
        let index = indexes
            .remove(&schema.db_id)
            .unwrap_or_else(|| ValueIndex::new(vec![]));
        for column in index.columns() {
            let exists = schema
                .tables
                .get(column.table)
                .is_some_and(|t| column.column < t.columns.len());
            if !exists {
                return Err(store_error(
                    path,
                    format!(
                        "database `{}`: values of table #{} column #{}, which its schema lacks \
                         (prepare the data again)",
                        schema.db_id, column.table, column.column
                    ),
                ));
            }
        }
        schema.values = Some(Arc::new(index));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, Table};

    fn schema(db_id: &str, columns: Vec<ColumnValues>) -> DatabaseSchema {
        let column = |name: &str| Column {
            name: name.into(),
            description: name.into(),
            data_type: "text".into(),
            sample_values: vec![],
        };
        DatabaseSchema {
            db_id: db_id.into(),
            tables: vec![Table {
                name: "t".into(),
                natural_name: "t".into(),
                columns: vec![column("a"), column("b")],
                primary_key: vec![],
            }],
            foreign_keys: vec![],
            ddls: vec![],
            values: Some(Arc::new(ValueIndex::new(columns))),
        }
    }

    fn values(table: usize, column: usize, values: &[&str]) -> ColumnValues {
        ColumnValues {
            table,
            column,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn indexes_round_trip_and_bad_indices_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::store::VALUES_FILE);
        let many: Vec<String> = (0..BATCH_ROWS + 5).map(|i| format!("v{i:06}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let shop = schema(
            "shop",
            vec![values(0, 0, &["Lyon", "New York"]), values(0, 1, &many)],
        );
        let empty = schema("empty", vec![]);
        let mut bare = schema("bare", vec![]);
        bare.values = None;
        write_values(&path, &[&shop, &empty, &bare]).unwrap();

        let read = read_values(&path).unwrap();
        assert_eq!(read.len(), 1, "databases without values have no rows");
        let mut shop_back = schema("shop", vec![]);
        let mut empty_back = schema("empty", vec![values(0, 0, &["stale"])]);
        attach_values(&path, &mut [&mut shop_back, &mut empty_back], read).unwrap();
        assert_eq!(shop_back, shop);
        assert_eq!(empty_back.values.as_deref(), empty.values.as_deref());
        let found = shop_back.values.unwrap().retrieve("stores in new york");
        assert_eq!(found.matches[0].value, "New York");

        let mut other = schema("shop", vec![]);
        other.tables[0].columns.truncate(1);
        let err = attach_values(&path, &mut [&mut other], read_values(&path).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(crate::store::VALUES_FILE) && err.contains("column #1"),
            "{err}"
        );
    }
}
