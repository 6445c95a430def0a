//! Fills a schema's `sample_values` from its SQLite database, choosing values
//! exactly as OmniSQL's `sample_table_values` (train_and_evaluate/
//! process_dataset.py) does, so that the OmniSQL serializer reproduces its
//! prompts byte for byte.

use std::path::Path;

use rusqlite::{types::ValueRef, Connection, OpenFlags};

use super::{DatabaseSchema, SampleValue};
use crate::error::DataError;

/// How many distinct example values a column keeps (OmniSQL's
/// `--value_limit_num 2`).
pub const SAMPLE_VALUES_PER_COLUMN: usize = 2;

/// Text values are cut to this many characters (not bytes), as OmniSQL's
/// `value[:40]` does.
pub const SAMPLE_TEXT_MAX_CHARS: usize = 40;

/// Reads up to [`SAMPLE_VALUES_PER_COLUMN`] distinct, non-null, non-empty
/// values of every column, in the order SQLite returns them (OmniSQL's query
/// has no `ORDER BY` either), cutting text to [`SAMPLE_TEXT_MAX_CHARS`]
/// characters. The database is opened read-only.
///
/// A missing file, a table or a column of the schema that the database lacks
/// is an error naming the file. BLOB values are left out of the examples: the
/// schema model has no variant for them and a model cannot use raw bytes.
pub fn enrich_from_sqlite(schema: &mut DatabaseSchema, db_path: &Path) -> Result<(), DataError> {
    if !db_path.is_file() {
        return Err(DataError::Io {
            path: db_path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("SQLite database of `{}` not found", schema.db_id),
            ),
        });
    }
    let sqlite_err = |source| DataError::Sqlite {
        path: db_path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(
        db_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err)?;

    for table in &mut schema.tables {
        let present = database_columns(&conn, &table.name).map_err(sqlite_err)?;
        if present.is_empty() {
            return Err(DataError::Invalid(format!(
                "{}: database `{}` has no table `{}`",
                db_path.display(),
                schema.db_id,
                table.name
            )));
        }
        for column in &mut table.columns {
            if !present.iter().any(|c| c.eq_ignore_ascii_case(&column.name)) {
                return Err(DataError::Invalid(format!(
                    "{}: table `{}` of database `{}` has no column `{}` (it has: {})",
                    db_path.display(),
                    table.name,
                    schema.db_id,
                    column.name,
                    present.join(", ")
                )));
            }
            column.sample_values =
                sample_column(&conn, &table.name, &column.name).map_err(|e| {
                    DataError::Invalid(format!(
                        "{}: reading example values of `{}`.`{}`: {e}",
                        db_path.display(),
                        table.name,
                        column.name
                    ))
                })?;
        }
    }
    Ok(())
}

/// The column names SQLite knows for `table`; empty when there is no such table.
fn database_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote_identifier(table)))?;
    let names = stmt.query_map([], |row| row.get::<_, String>(1))?;
    names.collect()
}

/// OmniSQL's query, kept as it is (DISTINCT inside a subquery, then LIMIT) so
/// that SQLite picks the same plan and so returns the same values first.
fn sample_column(
    conn: &Connection,
    table: &str,
    column: &str,
) -> rusqlite::Result<Vec<SampleValue>> {
    let col = quote_identifier(column);
    let sql = format!(
        "SELECT {col} FROM (SELECT DISTINCT {col} FROM {table} \
         WHERE {col} IS NOT NULL and {col} != '') AS unique_values LIMIT {limit}",
        table = quote_identifier(table),
        limit = SAMPLE_VALUES_PER_COLUMN
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    let mut values = Vec::new();
    while let Some(row) = rows.next()? {
        match row.get_ref(0)? {
            ValueRef::Integer(i) => values.push(SampleValue::Integer(i)),
            ValueRef::Real(f) => values.push(SampleValue::Real(f)),
            ValueRef::Text(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                values.push(SampleValue::Text(
                    text.chars().take(SAMPLE_TEXT_MAX_CHARS).collect(),
                ));
            }
            ValueRef::Blob(_) | ValueRef::Null => {}
        }
    }
    Ok(values)
}

/// Double-quotes an identifier for a SQLite statement, doubling embedded
/// quotes, so any table or column name is safe to put in a query.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{read_tables_file, Column, Table};

    fn one_table_schema(table: &str, columns: &[&str]) -> DatabaseSchema {
        DatabaseSchema {
            db_id: "shop".into(),
            tables: vec![Table {
                name: table.into(),
                natural_name: table.into(),
                columns: columns
                    .iter()
                    .map(|c| Column {
                        name: c.to_string(),
                        description: c.to_string(),
                        data_type: "TEXT".into(),
                        sample_values: Vec::new(),
                    })
                    .collect(),
                primary_key: vec![],
            }],
            foreign_keys: vec![],
            ddls: vec![],
            values: None,
        }
    }

    fn database(sql: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("shop.sqlite")).unwrap();
        conn.execute_batch(sql).unwrap();
        dir
    }

    #[test]
    fn values_are_distinct_non_empty_typed_and_cut() {
        let long = "x".repeat(45);
        let dir = database(&format!(
            "CREATE TABLE \"order items\" (id INTEGER, price REAL, name TEXT, note TEXT, \"select\" TEXT);
             INSERT INTO \"order items\" VALUES (7, 2.5, '', NULL, 'a');
             INSERT INTO \"order items\" VALUES (7, 2.5, 'it''s', NULL, 'a');
             INSERT INTO \"order items\" VALUES (8, 3.0, 'Ünïcødé-{long}', NULL, 'a');"
        ));
        let mut schema =
            one_table_schema("order items", &["id", "price", "name", "note", "select"]);
        enrich_from_sqlite(&mut schema, &dir.path().join("shop.sqlite")).unwrap();
        let values: Vec<&Vec<SampleValue>> = schema.tables[0]
            .columns
            .iter()
            .map(|c| &c.sample_values)
            .collect();
        assert_eq!(
            *values[0],
            vec![SampleValue::Integer(7), SampleValue::Integer(8)]
        );
        assert_eq!(
            *values[1],
            vec![SampleValue::Real(2.5), SampleValue::Real(3.0)]
        );
        let cut: String = format!("Ünïcødé-{long}").chars().take(40).collect();
        assert_eq!(
            *values[2],
            vec![SampleValue::Text("it's".into()), SampleValue::Text(cut)]
        );
        assert!(values[3].is_empty(), "only NULLs: no examples");
        assert_eq!(*values[4], vec![SampleValue::Text("a".into())]);
    }

    #[test]
    fn missing_file_table_or_column_names_the_file() {
        let dir = database("CREATE TABLE items (id INTEGER);");
        let path = dir.path().join("shop.sqlite");

        let mut schema = one_table_schema("items", &["id"]);
        let missing = dir.path().join("nope.sqlite");
        let err = enrich_from_sqlite(&mut schema, &missing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.sqlite"), "{err}");
        assert!(!missing.exists(), "a missing database must not be created");

        let mut schema = one_table_schema("orders", &["id"]);
        let err = enrich_from_sqlite(&mut schema, &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("shop.sqlite") && err.contains("orders"),
            "{err}"
        );

        let mut schema = one_table_schema("items", &["id", "price"]);
        let err = enrich_from_sqlite(&mut schema, &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("shop.sqlite") && err.contains("price"),
            "{err}"
        );
    }

    /// Every Spider dev database that ships here matches its tables.json
    /// entry, so enrichment must succeed on all of them.
    #[test]
    fn every_spider_dev_database_enriches() {
        let Some(root) = crate::test_data::shared_data("spider") else {
            return;
        };
        // The folder also holds Spider's train databases, some of them empty
        // (`academic`); dev's 19 with a database all have rows.
        let dev: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join("dev.json")).unwrap()).unwrap();
        let dev_ids: std::collections::BTreeSet<&str> = dev
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["db_id"].as_str().unwrap())
            .collect();
        let schemas = read_tables_file(&root.join("tables.json")).unwrap();
        let mut enriched = 0;
        for mut schema in schemas {
            if !dev_ids.contains(schema.db_id.as_str()) {
                continue;
            }
            let db = root
                .join("database")
                .join(&schema.db_id)
                .join(format!("{}.sqlite", schema.db_id));
            if !db.exists() {
                continue;
            }
            enrich_from_sqlite(&mut schema, &db).unwrap();
            let with_values = schema
                .tables
                .iter()
                .flat_map(|t| &t.columns)
                .filter(|c| !c.sample_values.is_empty())
                .count();
            assert!(
                with_values > 0,
                "{}: no example values at all",
                schema.db_id
            );
            enriched += 1;
        }
        assert_eq!(enriched, 19);
    }
}
