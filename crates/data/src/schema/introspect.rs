//! Reads a [`DatabaseSchema`] from a SQLite file itself, for databases that
//! come without a `tables.json`: tables from `sqlite_master`, columns and
//! primary keys from `pragma_table_info`, foreign keys from
//! `pragma_foreign_key_list`. Names get Spider's normalised natural form
//! (`singer_id` → `singer id`) since there is no description to show.

use std::path::Path;

use super::{Column, DatabaseSchema, ForeignKey, Table};
use crate::error::DataError;
use rusqlite::{Connection, OpenFlags};

/// Reads the schema of `path`, opened read-only. Foreign keys whose target
/// cannot be resolved are left out and reported in the returned warnings.
pub fn read_schema_from_sqlite(
    db_id: &str,
    path: &Path,
) -> Result<(DatabaseSchema, Vec<String>), DataError> {
    let sqlite_err = |source| DataError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err)?;

    let mut tables_stmt = conn
        .prepare(
            "SELECT name, sql FROM sqlite_master \
             WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
        )
        .map_err(sqlite_err)?;
    let table_rows: Vec<(String, Option<String>)> = tables_stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(sqlite_err)?
        .collect::<Result<_, _>>()
        .map_err(sqlite_err)?;

    let mut tables = Vec::with_capacity(table_rows.len());
    let mut ddls = Vec::new();
    let mut columns_stmt = conn
        .prepare("SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid")
        .map_err(sqlite_err)?;
    for (name, sql) in &table_rows {
        let mut columns = Vec::new();
        let mut key_positions = Vec::new();
        let rows = columns_stmt
            .query_map([name], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .map_err(sqlite_err)?;
        for row in rows {
            let (column, data_type, pk_position) = row.map_err(sqlite_err)?;
            if pk_position > 0 {
                key_positions.push((pk_position, columns.len()));
            }
            columns.push(Column {
                description: natural_name(&column),
                name: column,
                data_type: data_type.unwrap_or_default(),
                sample_values: Vec::new(),
            });
        }
        key_positions.sort_unstable();
        tables.push(Table {
            natural_name: natural_name(name),
            name: name.clone(),
            columns,
            primary_key: key_positions.into_iter().map(|(_, index)| index).collect(),
        });
        if let Some(sql) = sql {
            ddls.push(sql.clone());
        }
    }

    let mut warnings = Vec::new();
    let mut foreign_keys = Vec::new();
    let mut fk_stmt = conn
        .prepare(
            "SELECT \"table\", \"from\", \"to\", seq FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
        )
        .map_err(sqlite_err)?;
    for (table_index, table) in tables.iter().enumerate() {
        let rows = fk_stmt
            .query_map([&table.name], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })
            .map_err(sqlite_err)?;
        for row in rows {
            let (ref_table_name, from, to, seq) = row.map_err(sqlite_err)?;
            match resolve_foreign_key(&tables, table_index, &ref_table_name, &from, to.as_deref(), seq)
            {
                Some(fk) => foreign_keys.push(fk),
                None => warnings.push(format!(
                    "{}: foreign key {}.{from} → {ref_table_name}.{} does not match any column; left out",
                    path.display(),
                    table.name,
                    to.as_deref().unwrap_or("<primary key>")
                )),
            }
        }
    }

    Ok((
        DatabaseSchema {
            db_id: db_id.to_string(),
            tables,
            foreign_keys,
            ddls,
            values: None,
        },
        warnings,
    ))
}

/// `to` is NULL in SQLite when the key refers to the parent's primary key;
/// `seq` is then the position within that key.
fn resolve_foreign_key(
    tables: &[Table],
    table_index: usize,
    ref_table_name: &str,
    from: &str,
    to: Option<&str>,
    seq: i64,
) -> Option<ForeignKey> {
    let column = column_index(&tables[table_index], from)?;
    let ref_table = tables
        .iter()
        .position(|t| t.name.eq_ignore_ascii_case(ref_table_name))?;
    let ref_column = match to {
        Some(to) => column_index(&tables[ref_table], to)?,
        None => *tables[ref_table]
            .primary_key
            .get(usize::try_from(seq).ok()?)?,
    };
    Some(ForeignKey {
        table: table_index,
        column,
        ref_table,
        ref_column,
    })
}

fn column_index(table: &Table, name: &str) -> Option<usize> {
    table
        .columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(name))
}

fn natural_name(identifier: &str) -> String {
    identifier.replace('_', " ").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(sql: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(sql).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_tables_columns_keys_in_file_order() {
        let (_dir, path) = database(
            "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INT);
             CREATE TABLE concert (concert_id INTEGER, year TEXT, singer_id INTEGER,
                 PRIMARY KEY (year, concert_id),
                 FOREIGN KEY (singer_id) REFERENCES singer (singer_id));
             CREATE TABLE ticket (concert_year TEXT, concert_no INTEGER,
                 FOREIGN KEY (concert_year, concert_no) REFERENCES concert);",
        );
        let (schema, warnings) = read_schema_from_sqlite("music", &path).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(schema.db_id, "music");
        let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["singer", "concert", "ticket"]);
        let singer = &schema.tables[0];
        assert_eq!(singer.primary_key, [0]);
        assert_eq!(singer.columns[0].description, "singer id");
        assert_eq!(singer.columns[2].data_type, "INT");
        // Composite key in key order, not column order.
        assert_eq!(schema.tables[1].primary_key, [1, 0]);
        assert_eq!(schema.ddls.len(), 3);
        assert!(schema.ddls[0].starts_with("CREATE TABLE singer"));
        assert_eq!(
            schema.foreign_keys,
            [
                ForeignKey {
                    table: 1,
                    column: 2,
                    ref_table: 0,
                    ref_column: 0
                },
                // Implicit target: the parent's primary key, position by position.
                ForeignKey {
                    table: 2,
                    column: 0,
                    ref_table: 1,
                    ref_column: 1
                },
                ForeignKey {
                    table: 2,
                    column: 1,
                    ref_table: 1,
                    ref_column: 0
                },
            ]
        );
    }

    #[test]
    fn dangling_foreign_key_is_reported_not_kept() {
        let (_dir, path) = database(
            "CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES missing (id));",
        );
        let (schema, warnings) = read_schema_from_sqlite("x", &path).unwrap();
        assert!(schema.foreign_keys.is_empty());
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("a.b_id → missing.id"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn a_file_that_is_not_sqlite_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.sqlite");
        std::fs::write(
            &path,
            b"this is not a database, just some text padding it out",
        )
        .unwrap();
        let message = read_schema_from_sqlite("broken", &path)
            .unwrap_err()
            .to_string();
        assert!(message.contains("broken.sqlite"), "{message}");
    }
}
