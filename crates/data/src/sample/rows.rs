//! Generates each database's rows from its spec and writes them, with the
//! DDL, into a real SQLite file; also builds the SynSQL-style `tables.json`
//! entry for it.

use std::collections::HashSet;
use std::path::Path;

use rand::seq::IndexedRandom;
use rand::{Rng, RngCore};
use rusqlite::types::Value;
use serde_json::{json, Value as Json};

use super::catalog::Words;
use super::spec::{Domain, Gen, TableSpec};
use crate::error::DataError;

/// The generated rows of one table, in insertion order.
pub(crate) struct TableData {
    pub rows: Vec<Vec<Value>>,
}

/// Generates every table of `domain`, parents first. Within a row, a
/// column derived from another (`date_after`, an email from the name) is
/// generated after it, wherever the columns stand.
pub(crate) fn generate_rows(
    domain: &Domain,
    words: &Words,
    rng: &mut impl RngCore,
) -> Vec<TableData> {
    let mut data: Vec<TableData> = Vec::with_capacity(domain.tables.len());
    for table in &domain.tables {
        let person = table
            .columns
            .iter()
            .position(|c| matches!(c.gen, Gen::Person));
        let derived = |g: &Gen| matches!(g, Gen::DateAfter(..) | Gen::Email);
        let order: Vec<usize> = (0..table.columns.len())
            .filter(|&c| !derived(&table.columns[c].gen))
            .chain((0..table.columns.len()).filter(|&c| derived(&table.columns[c].gen)))
            .collect();
        let parent_rows: Vec<i64> = table
            .columns
            .iter()
            .map(|c| match &c.gen {
                Gen::Ref(parent) => domain
                    .table_index(parent)
                    .map_or(1, |i| data[i].rows.len().max(1) as i64),
                _ => 1,
            })
            .collect();
        // A composite key must stay unique: draw again on a repeat; give up
        // on a row after a few tries rather than loop (the spec's row counts
        // are far below the number of possible pairs).
        let key_columns: Vec<usize> = table
            .primary_key
            .iter()
            .filter_map(|k| table.column_index(k))
            .collect();
        let mut seen_keys = HashSet::new();
        let mut rows = Vec::with_capacity(table.rows);
        let mut attempts = 0usize;
        while rows.len() < table.rows && attempts < table.rows * 20 {
            attempts += 1;
            let serial = rows.len() as i64 + 1;
            let mut row: Vec<Value> = vec![Value::Null; table.columns.len()];
            for &c in &order {
                let value = match &table.columns[c].gen {
                    Gen::Serial => Value::Integer(serial),
                    Gen::Ref(_) => Value::Integer(rng.random_range(1..=parent_rows[c])),
                    Gen::Pick(values) => text(pick(values, rng)),
                    Gen::Int(low, high) => Value::Integer(rng.random_range(*low..=*high)),
                    Gen::Real(low, high) => {
                        Value::Real((rng.random_range(*low..=*high) * 100.0).round() / 100.0)
                    }
                    Gen::Date(from, to) => {
                        let day = days_from_civil(*from, 1, 1)
                            + rng.random_range(
                                0..=(days_from_civil(*to, 12, 31) - days_from_civil(*from, 1, 1)),
                            );
                        Value::Text(civil_from_days(day))
                    }
                    Gen::DateAfter(other, low, high) => {
                        let base = table
                            .column_index(other)
                            .and_then(|i| row.get(i))
                            .and_then(|v| match v {
                                Value::Text(s) => parse_date(s),
                                _ => None,
                            })
                            .unwrap_or_else(|| days_from_civil(2023, 1, 1));
                        Value::Text(civil_from_days(base + rng.random_range(*low..=*high)))
                    }
                    Gen::Person => text(&format!(
                        "{} {}",
                        pick(&words.first_names, rng),
                        pick(&words.last_names, rng)
                    )),
                    Gen::Email => {
                        let local = match person.and_then(|p| row.get(p)) {
                            Some(Value::Text(name)) => email_local_part(name),
                            _ => table.singular.replace(' ', "."),
                        };
                        Value::Text(format!("{local}{serial}@example.com"))
                    }
                    Gen::Phone => Value::Text(format!(
                        "+1-555-{:03}-{:04}",
                        rng.random_range(100..1000),
                        rng.random_range(0..10000)
                    )),
                    Gen::Named(first, second) => {
                        text(&format!("{} {}", pick(first, rng), pick(second, rng)))
                    }
                    Gen::Code(prefix) => Value::Text(format!("{prefix}{serial:04}")),
                    Gen::City => text(pick(&words.cities, rng)),
                };
                row[c] = value;
            }
            if key_columns.len() > 1 {
                let key: Vec<String> = key_columns
                    .iter()
                    .map(|&i| format!("{:?}", row[i]))
                    .collect();
                if !seen_keys.insert(key) {
                    continue;
                }
            }
            rows.push(row);
        }
        data.push(TableData { rows });
    }
    data
}

fn pick<'a>(values: &'a [String], rng: &mut impl RngCore) -> &'a str {
    values.choose(rng).map(String::as_str).unwrap_or_default()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn email_local_part(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('.'),
            'ü' => Some('u'),
            c if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm; a date crate would be a dependency for two small functions).
fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn parse_date(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, '-');
    let year = parts.next()?.parse().ok()?;
    let month = parts.next()?.parse().ok()?;
    let day = parts.next()?.parse().ok()?;
    Some(days_from_civil(year, month, day))
}

/// The `CREATE TABLE` statement of a table, in SynSQL's `ddls` manner:
/// quoted identifiers, each column's description as a comment, then the
/// primary key and the foreign keys.
pub(crate) fn create_table_sql(table: &TableSpec, domain: &Domain) -> String {
    let mut lines: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            format!(
                "  \"{}\" {} /* {} */",
                c.name,
                c.ty,
                c.description(table).replace("*/", "* /")
            )
        })
        .collect();
    let key: Vec<String> = table
        .primary_key
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect();
    lines.push(format!("  PRIMARY KEY ({})", key.join(", ")));
    for column in &table.columns {
        if let Gen::Ref(parent) = &column.gen {
            let parent_key = domain.referenced_key(parent).unwrap_or("id");
            lines.push(format!(
                "  FOREIGN KEY (\"{}\") REFERENCES \"{parent}\" (\"{parent_key}\")",
                column.name
            ));
        }
    }
    format!(
        "CREATE TABLE \"{}\" (\n{}\n)",
        table.name,
        lines.join(",\n")
    )
}

/// Writes the database file (which must not exist yet) with every table and row.
pub(crate) fn write_database(
    path: &Path,
    domain: &Domain,
    data: &[TableData],
) -> Result<(), DataError> {
    let sqlite_err = |source| DataError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = rusqlite::Connection::open(path).map_err(sqlite_err)?;
    // No journal: the file lives in a staging folder until it is complete.
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .map_err(sqlite_err)?;
    let tx = conn.transaction().map_err(sqlite_err)?;
    for (table, table_data) in domain.tables.iter().zip(data) {
        tx.execute_batch(&create_table_sql(table, domain))
            .map_err(sqlite_err)?;
        let placeholders = vec!["?"; table.columns.len()].join(", ");
        let mut insert = tx
            .prepare(&format!(
                "INSERT INTO \"{}\" VALUES ({placeholders})",
                table.name
            ))
            .map_err(sqlite_err)?;
        for row in &table_data.rows {
            insert
                .execute(rusqlite::params_from_iter(row.iter()))
                .map_err(sqlite_err)?;
        }
    }
    tx.commit().map_err(sqlite_err)?;
    conn.close().map_err(|(_, source)| sqlite_err(source))
}

/// The database's entry of `tables.json`, SynSQL style.
pub(crate) fn tables_json_entry(domain: &Domain) -> Json {
    let mut column_names = vec![json!([-1, "*"])];
    let mut column_names_original = vec![json!([-1, "*"])];
    let mut column_types = vec![json!("text")];
    // Global index (1-based, 0 is `*`) of each table's first column.
    let mut offsets = Vec::with_capacity(domain.tables.len());
    for (t, table) in domain.tables.iter().enumerate() {
        offsets.push(column_names.len());
        for column in &table.columns {
            column_names.push(json!([t, column.description(table)]));
            column_names_original.push(json!([t, column.name]));
            column_types.push(json!(column.ty));
        }
    }
    let global = |table: &str, column: &str| -> Option<usize> {
        let t = domain.table_index(table)?;
        Some(offsets[t] + domain.tables[t].column_index(column)?)
    };
    let mut primary_keys = Vec::new();
    let mut foreign_keys = Vec::new();
    for table in &domain.tables {
        let key: Vec<usize> = table
            .primary_key
            .iter()
            .filter_map(|k| global(&table.name, k))
            .collect();
        primary_keys.push(match key.as_slice() {
            [single] => json!(single),
            _ => json!(key),
        });
        for column in &table.columns {
            if let Gen::Ref(parent) = &column.gen {
                if let (Some(src), Some(dst)) = (
                    global(&table.name, &column.name),
                    domain
                        .referenced_key(parent)
                        .and_then(|k| global(parent, k)),
                ) {
                    foreign_keys.push(json!([src, dst]));
                }
            }
        }
    }
    json!({
        "db_id": domain.db_id,
        "ddls": domain.tables.iter().map(|t| create_table_sql(t, domain)).collect::<Vec<_>>(),
        "table_names": domain.tables.iter().map(|t| t.plural.as_str()).collect::<Vec<_>>(),
        "table_names_original": domain.tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        "column_names": column_names,
        "column_names_original": column_names_original,
        "column_types": column_types,
        "primary_keys": primary_keys,
        "foreign_keys": foreign_keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for (y, m, d) in [(1970, 1, 1), (2000, 2, 29), (2024, 12, 31), (1935, 3, 15)] {
            let days = days_from_civil(y, m, d);
            assert_eq!(civil_from_days(days), format!("{y:04}-{m:02}-{d:02}"));
        }
        assert_eq!(days_from_civil(1970, 1, 2), 1);
    }
}
