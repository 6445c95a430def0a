//! Reader for Spider-style `tables.json` files. SynSQL, Spider and BIRD share
//! the layout; they differ in whether `ddls` is present, in what
//! `column_names` means, and in BIRD's nested lists for composite keys.
//!
//! The file is parsed into `serde_json::Value` first rather than straight
//! into structs so that every error can name the database index, its `db_id`
//! and the exact field, which derive-based errors cannot.

use std::path::Path;

use serde_json::Value;

use super::{Column, DatabaseSchema, ForeignKey, Table};
use crate::error::DataError;
use crate::reader::json_kind;

/// Reads and validates a whole tables file.
pub fn read_tables_file(path: &Path) -> Result<Vec<DatabaseSchema>, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_tables_json(&bytes, &path.display().to_string())
}

/// Parses the bytes of a tables file; `file` is used in error messages only.
pub fn parse_tables_json(bytes: &[u8], file: &str) -> Result<Vec<DatabaseSchema>, DataError> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| DataError::Json {
        file: file.to_string(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let entries = root.as_array().ok_or_else(|| DataError::Schema {
        file: file.to_string(),
        index: 0,
        db_id: String::new(),
        field: "<root>".into(),
        message: "expected a JSON array of databases".into(),
    })?;
    let mut schemas = Vec::with_capacity(entries.len());
    let mut seen = std::collections::HashSet::new();
    for (index, entry) in entries.iter().enumerate() {
        let schema = parse_database(entry, file, index)?;
        if !seen.insert(schema.db_id.clone()) {
            return Err(DataError::Schema {
                file: file.to_string(),
                index,
                db_id: schema.db_id,
                field: "db_id".into(),
                message: "this db_id appears twice in the tables file".into(),
            });
        }
        schemas.push(schema);
    }
    Ok(schemas)
}

struct Ctx<'a> {
    file: &'a str,
    index: usize,
    db_id: String,
}

impl Ctx<'_> {
    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> DataError {
        DataError::Schema {
            file: self.file.to_string(),
            index: self.index,
            db_id: self.db_id.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    fn array<'v>(&self, obj: &'v Value, field: &str) -> Result<&'v Vec<Value>, DataError> {
        match obj.get(field) {
            None => Err(self.err(field, "missing field")),
            Some(v) => v.as_array().ok_or_else(|| {
                self.err(field, format!("expected an array, found {}", json_kind(v)))
            }),
        }
    }

    fn string_list(&self, obj: &Value, field: &str) -> Result<Vec<String>, DataError> {
        self.array(obj, field)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    self.err(
                        format!("{field}[{i}]"),
                        format!("expected a string, found {}", json_kind(v)),
                    )
                })
            })
            .collect()
    }

    /// `[[table_index, "name"], ...]`, the first entry being `[-1, "*"]`.
    fn column_pairs(&self, obj: &Value, field: &str) -> Result<Vec<(i64, String)>, DataError> {
        self.array(obj, field)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let pair = v.as_array().filter(|p| p.len() == 2);
                match pair.and_then(|p| Some((p[0].as_i64()?, p[1].as_str()?.to_string()))) {
                    Some(p) => Ok(p),
                    None => Err(self.err(
                        format!("{field}[{i}]"),
                        format!("expected [table_index, \"name\"], found {v}"),
                    )),
                }
            })
            .collect()
    }

    fn column_index(&self, v: &Value, field: &str, n_columns: usize) -> Result<usize, DataError> {
        match v.as_u64() {
            Some(i) if (i as usize) < n_columns && i > 0 => Ok(i as usize),
            _ => Err(self.err(
                field,
                format!(
                    "expected a column index between 1 and {}, found {v}",
                    n_columns - 1
                ),
            )),
        }
    }
}

fn parse_database(entry: &Value, file: &str, index: usize) -> Result<DatabaseSchema, DataError> {
    let mut ctx = Ctx {
        file,
        index,
        db_id: String::new(),
    };
    if !entry.is_object() {
        return Err(ctx.err(
            "<database>",
            format!("expected an object, found {}", json_kind(entry)),
        ));
    }
    ctx.db_id = match entry.get("db_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(v) => return Err(ctx.err("db_id", format!("expected a non-empty string, found {v}"))),
        None => return Err(ctx.err("db_id", "missing field")),
    };

    let table_names_original = ctx.string_list(entry, "table_names_original")?;
    let table_names = match entry.get("table_names") {
        Some(_) => ctx.string_list(entry, "table_names")?,
        None => table_names_original.clone(),
    };
    if table_names.len() != table_names_original.len() {
        return Err(ctx.err(
            "table_names",
            format!(
                "{} names but table_names_original has {}",
                table_names.len(),
                table_names_original.len()
            ),
        ));
    }
    let originals = ctx.column_pairs(entry, "column_names_original")?;
    let descriptions = match entry.get("column_names") {
        Some(_) => ctx.column_pairs(entry, "column_names")?,
        None => originals.clone(),
    };
    let types = ctx.string_list(entry, "column_types")?;
    if descriptions.len() != originals.len() || types.len() != originals.len() {
        return Err(ctx.err(
            "column_names",
            format!(
                "column_names has {}, column_names_original {} and column_types {} entries; they must match",
                descriptions.len(),
                originals.len(),
                types.len()
            ),
        ));
    }

    let mut tables: Vec<Table> = table_names_original
        .iter()
        .zip(&table_names)
        .map(|(name, natural)| Table {
            name: name.clone(),
            natural_name: natural.clone(),
            columns: Vec::new(),
            primary_key: Vec::new(),
        })
        .collect();
    // Global column index (as used by primary_keys / foreign_keys) -> (table, column).
    let mut location = vec![None; originals.len()];
    for (global, ((table_idx, name), ((_, description), data_type))) in originals
        .iter()
        .zip(descriptions.iter().zip(&types))
        .enumerate()
    {
        if *table_idx == -1 {
            continue; // the `*` pseudo-column
        }
        let table = usize::try_from(*table_idx)
            .ok()
            .filter(|t| *t < tables.len())
            .ok_or_else(|| {
                ctx.err(
                    format!("column_names_original[{global}]"),
                    format!(
                        "table index {table_idx} is out of range (0..{})",
                        tables.len()
                    ),
                )
            })?;
        location[global] = Some((table, tables[table].columns.len()));
        tables[table].columns.push(Column {
            name: name.clone(),
            description: description.clone(),
            data_type: data_type.clone(),
            sample_values: Vec::new(),
        });
    }
    let locate = |global: usize, field: &str| {
        location[global].ok_or_else(|| ctx.err(field, "refers to the `*` pseudo-column"))
    };

    for (i, key) in ctx.array(entry, "primary_keys")?.iter().enumerate() {
        let field = format!("primary_keys[{i}]");
        // An int for a one-column key, a list of ints for a composite key
        // (BIRD, SynSQL).
        let members: Vec<&Value> = match key {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let mut owner = None;
        let mut columns = Vec::new();
        for member in members {
            let global = ctx.column_index(member, &field, originals.len())?;
            let (table, column) = locate(global, &field)?;
            if owner.is_some_and(|t| t != table) {
                return Err(ctx.err(&field, "a composite key spans several tables"));
            }
            owner = Some(table);
            columns.push(column);
        }
        if let Some(table) = owner {
            for column in columns {
                if !tables[table].primary_key.contains(&column) {
                    tables[table].primary_key.push(column);
                }
            }
        }
    }

    let mut foreign_keys = Vec::new();
    for (i, fk) in ctx.array(entry, "foreign_keys")?.iter().enumerate() {
        let field = format!("foreign_keys[{i}]");
        let pair = fk.as_array().filter(|p| p.len() == 2).ok_or_else(|| {
            ctx.err(
                &field,
                format!("expected [source_column, target_column], found {fk}"),
            )
        })?;
        let (table, column) = locate(ctx.column_index(&pair[0], &field, originals.len())?, &field)?;
        let (ref_table, ref_column) =
            locate(ctx.column_index(&pair[1], &field, originals.len())?, &field)?;
        foreign_keys.push(ForeignKey {
            table,
            column,
            ref_table,
            ref_column,
        });
    }

    let ddls = match entry.get("ddls") {
        Some(_) => ctx.string_list(entry, "ddls")?,
        None => Vec::new(),
    };

    Ok(DatabaseSchema {
        db_id: ctx.db_id,
        tables,
        foreign_keys,
        ddls,
        values: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_data::shared_data as shared;

    const SPIDER: &str = "spider/tables.json";
    const BIRD: &str = "bird/dev_tables.json";

    #[test]
    fn spider_tables_parse_with_keys() {
        let Some(path) = shared(SPIDER) else { return };
        let schemas = read_tables_file(&path).unwrap();
        assert_eq!(schemas.len(), 166);
        let perpetrator = schemas.iter().find(|s| s.db_id == "perpetrator").unwrap();
        assert_eq!(perpetrator.tables[0].name, "perpetrator");
        assert_eq!(perpetrator.tables[0].columns[0].name, "Perpetrator_ID");
        assert_eq!(perpetrator.tables[0].primary_key, vec![0]);
        assert_eq!(
            perpetrator.foreign_keys,
            vec![ForeignKey {
                table: 0,
                column: 1,
                ref_table: 1,
                ref_column: 0
            }]
        );
    }

    #[test]
    fn bird_composite_primary_keys_parse() {
        let Some(path) = shared(BIRD) else { return };
        let schemas = read_tables_file(&path).unwrap();
        let db = schemas
            .iter()
            .find(|s| s.db_id == "debit_card_specializing")
            .unwrap();
        assert!(db.tables.iter().any(|t| t.primary_key.len() == 2));
    }

    #[test]
    fn errors_name_database_and_field() {
        let bad = r#"[{"db_id":"shop","table_names_original":["a"],"table_names":["a"],
            "column_names_original":[[-1,"*"],[0,"id"]],"column_names":[[-1,"*"],[0,"id"]],
            "column_types":["text","number"],"primary_keys":[7],"foreign_keys":[]}]"#;
        let err = parse_tables_json(bad.as_bytes(), "tables.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tables.json"), "{err}");
        assert!(err.contains("shop"), "{err}");
        assert!(err.contains("primary_keys[0]"), "{err}");

        let missing = r#"[{"db_id":"x","table_names_original":[]}]"#;
        let err = parse_tables_json(missing.as_bytes(), "t.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("column_names_original") && err.contains("missing"),
            "{err}"
        );
    }
}
