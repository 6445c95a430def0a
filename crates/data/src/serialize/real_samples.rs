//! Checks the OmniSQL serializer against 10 real SynSQL-2.5M prompts: each
//! serialized schema is read back into the schema model (names, types,
//! descriptions, example values, keys) and must serialize to the same bytes.
//! That covers comments, Python value formatting (quotes inside strings,
//! floats), quoting of identifiers and constraint names on real output.

use super::omnisql_ddl;
use crate::schema::{Column, DatabaseSchema, ForeignKey, SampleValue, Table};

fn unquote(identifier: &str) -> String {
    identifier
        .strip_prefix('`')
        .and_then(|s| s.strip_suffix('`'))
        .unwrap_or(identifier)
        .to_string()
}

/// Reads a Python list literal of str / int / float, as OmniSQL printed it.
fn python_list(text: &str) -> Vec<SampleValue> {
    let inner = text
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or_else(|| panic!("not a list: {text}"));
    let mut values = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == '\'' || c == '"' {
            chars.next();
            let mut s = String::new();
            while let Some(d) = chars.next() {
                match d {
                    '\\' => match chars.next().unwrap() {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        'r' => s.push('\r'),
                        'x' => {
                            let hex: String = chars.by_ref().take(2).collect();
                            s.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                        }
                        'u' => {
                            let hex: String = chars.by_ref().take(4).collect();
                            s.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                        }
                        other => s.push(other),
                    },
                    d if d == c => break,
                    d => s.push(d),
                }
            }
            values.push(SampleValue::Text(s));
        } else {
            let number: String = chars.by_ref().take_while(|&d| d != ',').collect();
            let number = number.trim();
            values.push(match number.parse::<i64>() {
                Ok(i) => SampleValue::Integer(i),
                Err(_) => SampleValue::Real(number.parse().unwrap()),
            });
        }
        // the ", " separator
        while chars.peek().is_some_and(|&d| d == ',' || d == ' ') {
            chars.next();
        }
    }
    values
}

fn parse_column(line: &str) -> Column {
    let (declaration, comment) = match line.split_once(", -- ") {
        Some((d, c)) => (d, Some(c)),
        None => (line.strip_suffix(',').unwrap_or(line), None),
    };
    let (name, data_type) = if let Some(rest) = declaration.strip_prefix('`') {
        let (name, rest) = rest.split_once('`').unwrap();
        (name.to_string(), rest.trim_start().to_string())
    } else {
        let (name, rest) = declaration.split_once(' ').unwrap();
        (name.to_string(), rest.to_string())
    };
    let (description, sample_values) = match comment {
        None => (name.clone(), vec![]),
        Some(c) => match c.strip_prefix("example: ") {
            Some(list) => (name.clone(), python_list(list)),
            None => match c.rfind(", example: [") {
                Some(at) => (
                    c[..at].to_string(),
                    python_list(&c[at + ", example: ".len()..]),
                ),
                None => (c.to_string(), vec![]),
            },
        },
    };
    Column {
        name,
        description,
        data_type,
        sample_values,
    }
}

/// Reads OmniSQL's DDL text back into the schema model.
fn parse_omnisql(text: &str) -> DatabaseSchema {
    let mut tables = Vec::new();
    // (table index, source column, target table name, target column)
    let mut pending_keys = Vec::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines();
        let header = lines.next().unwrap();
        let name = header
            .strip_prefix("CREATE TABLE ")
            .and_then(|s| s.strip_suffix(" ("))
            .unwrap();
        let mut table = Table {
            name: unquote(name),
            natural_name: unquote(name),
            columns: vec![],
            primary_key: vec![],
        };
        let mut key_names = vec![];
        for line in lines {
            let line = line.strip_prefix("    ").unwrap_or(line);
            if line == ");" {
                break;
            }
            let bare = line.strip_suffix(',').unwrap_or(line);
            if let Some(keys) = bare.strip_prefix("PRIMARY KEY (") {
                key_names = keys
                    .trim_end_matches(')')
                    .split(", ")
                    .map(unquote)
                    .collect();
            } else if let Some(fk) = bare.strip_prefix("CONSTRAINT ") {
                let (_, rest) = fk.split_once(" FOREIGN KEY (").unwrap();
                let (source, rest) = rest.split_once(") REFERENCES ").unwrap();
                let (target_table, target_column) = rest.split_once(" (").unwrap();
                pending_keys.push((
                    tables.len(),
                    unquote(source),
                    unquote(target_table),
                    unquote(target_column.trim_end_matches(')')),
                ));
            } else {
                table.columns.push(parse_column(line));
            }
        }
        table.primary_key = key_names
            .iter()
            .map(|k| table.columns.iter().position(|c| &c.name == k).unwrap())
            .collect();
        tables.push(table);
    }
    let foreign_keys = pending_keys
        .into_iter()
        .map(|(table, source, target_table, target_column)| {
            let ref_table = tables.iter().position(|t| t.name == target_table).unwrap();
            ForeignKey {
                table,
                column: tables[table]
                    .columns
                    .iter()
                    .position(|c| c.name == source)
                    .unwrap(),
                ref_table,
                ref_column: tables[ref_table]
                    .columns
                    .iter()
                    .position(|c| c.name == target_column)
                    .unwrap(),
            }
        })
        .collect();
    DatabaseSchema {
        db_id: "synsql".into(),
        tables,
        foreign_keys,
        ddls: vec![],
        values: None,
    }
}

#[test]
fn real_synsql_schemas_serialize_back_byte_for_byte() {
    let Some(samples) = crate::test_data::real_synsql_samples() else {
        return;
    };
    assert_eq!(samples.len(), 10);
    let (mut quoted_apostrophes, mut reals, mut foreign_keys, mut comments) = (0, 0, 0, 0);
    for (i, sample) in samples.iter().enumerate() {
        let text = sample["schema"].as_str().unwrap();
        let schema = parse_omnisql(text);
        quoted_apostrophes += schema
            .tables
            .iter()
            .flat_map(|t| &t.columns)
            .flat_map(|c| &c.sample_values)
            .filter(|v| matches!(v, SampleValue::Text(s) if s.contains('\'')))
            .count();
        let columns = || schema.tables.iter().flat_map(|t| &t.columns);
        reals += columns()
            .flat_map(|c| &c.sample_values)
            .filter(|v| matches!(v, SampleValue::Real(_)))
            .count();
        comments += columns().filter(|c| c.description != c.name).count();
        foreign_keys += schema.foreign_keys.len();
        let again = omnisql_ddl(&schema);
        if again != text {
            let first_difference = again
                .lines()
                .zip(text.lines())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("ours:   {a}\nreal:   {b}"))
                .unwrap_or_default();
            panic!("sample {i} differs:\n{first_difference}");
        }
    }
    // The samples exercise what this test is for.
    assert!(quoted_apostrophes > 0 && reals > 0 && comments > 0 && foreign_keys > 0);
}
