//! Building a [`ValueIndex`] from a database's SQLite file.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{ColumnValues, ValueIndex, MAX_VALUES_PER_COLUMN, MAX_VALUE_CHARS};
use crate::error::DataError;
use crate::schema::{quote_identifier, Column, DatabaseSchema};

/// Whether a column's values are indexed: text columns (Spider's `text`,
/// SQL's `TEXT`, `VARCHAR(…)`, `CHAR`, `CLOB`, `STRING`, or no declared type
/// at all). Numbers, dates and booleans are left out: the question writes
/// them as the SQL does, and the example values show their format.
pub fn indexes_column(column: &Column) -> bool {
    let data_type = column.data_type.to_ascii_lowercase();
    let data_type = data_type.trim();
    data_type.is_empty()
        || ["char", "text", "clob", "string"]
            .iter()
            .any(|t| data_type.contains(t))
}

/// Reads the distinct text values (non-empty, at most [`MAX_VALUE_CHARS`]
/// characters, at most [`MAX_VALUES_PER_COLUMN`] per column) of every
/// column [`indexes_column`] accepts, the database opened read-only. A
/// missing file, table or column is an error naming the file.
pub fn build_value_index(schema: &DatabaseSchema, db_path: &Path) -> Result<ValueIndex, DataError> {
    if !db_path.is_file() {
        return Err(DataError::Io {
            path: db_path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("SQLite database of `{}` not found", schema.db_id),
            ),
        });
    }
    let conn = Connection::open_with_flags(
        db_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| DataError::Sqlite {
        path: db_path.to_path_buf(),
        source,
    })?;
    let mut columns = Vec::new();
    for (t, table) in schema.tables.iter().enumerate() {
        for (c, column) in table.columns.iter().enumerate() {
            if !indexes_column(column) {
                continue;
            }
            let values = distinct_text_values(&conn, &table.name, &column.name).map_err(|e| {
                DataError::Invalid(format!(
                    "{}: reading the values of `{}`.`{}` of database `{}`: {e}",
                    db_path.display(),
                    table.name,
                    column.name,
                    schema.db_id
                ))
            })?;
            if !values.is_empty() {
                columns.push(ColumnValues {
                    table: t,
                    column: c,
                    values,
                });
            }
        }
    }
    Ok(ValueIndex::new(columns))
}

/// [`build_value_index`] into `schema.values`, where the serializers look
/// for it.
pub fn index_values_from_sqlite(
    schema: &mut DatabaseSchema,
    db_path: &Path,
) -> Result<(), DataError> {
    schema.values = Some(std::sync::Arc::new(build_value_index(schema, db_path)?));
    Ok(())
}

fn distinct_text_values(
    conn: &Connection,
    table: &str,
    column: &str,
) -> rusqlite::Result<Vec<String>> {
    let col = quote_identifier(column);
    let sql = format!(
        "SELECT DISTINCT {col} FROM {table} WHERE typeof({col}) = 'text' \
         AND length(trim({col})) BETWEEN 1 AND {MAX_VALUE_CHARS} LIMIT {MAX_VALUES_PER_COLUMN}",
        table = quote_identifier(table),
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    let mut values = Vec::new();
    while let Some(row) = rows.next()? {
        if let rusqlite::types::ValueRef::Text(bytes) = row.get_ref(0)? {
            values.push(String::from_utf8_lossy(bytes).into_owned());
        }
    }
    values.sort_unstable();
    values.dedup();
    Ok(values)
}
