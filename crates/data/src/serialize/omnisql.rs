//! The OmniSQL DDL form, reproducing `obtain_db_details` of OmniSQL's
//! `train_and_evaluate/process_dataset.py` in its evaluation mode (every
//! table and column, tables in file order, comments shown whenever the
//! description says more than the column name).

use super::python_repr::python_list;
use super::selection::SchemaSelection;
use crate::schema::DatabaseSchema;

/// OmniSQL shows at most this many example values per column.
pub const OMNISQL_MAX_VALUES: usize = 6;

/// OmniSQL's `SQL_RESERVED_WORDS`, copied as is (it mixes SQLite, MySQL and
/// PostgreSQL words; `RANK` is not in it, `YEAR` and `ROLE` are), sorted so
/// that membership is a binary search.
const SQL_RESERVED_WORDS: &[&str] = &[
    "ACCESS",
    "ADD",
    "AFTER",
    "ALL",
    "ALTER",
    "ANALYZE",
    "AND",
    "AS",
    "ASC",
    "AVG",
    "BEFORE",
    "BEGIN",
    "BETWEEN",
    "BIGINT",
    "BINARY",
    "BIT",
    "BLOB",
    "BOOLEAN",
    "BOTH",
    "BREAK",
    "BY",
    "CALL",
    "CASCADE",
    "CASE",
    "CAST",
    "CHAR",
    "CHARACTER",
    "CHECK",
    "CLOB",
    "COLLATE",
    "COLUMN",
    "COMMENT",
    "COMMIT",
    "CONDITION",
    "CONNECT",
    "CONSTRAINT",
    "CONTINUE",
    "CONVERT",
    "COUNT",
    "CREATE",
    "CROSS",
    "CURRENT",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "CURSOR",
    "DATABASE",
    "DATE",
    "DAY",
    "DEC",
    "DECIMAL",
    "DECLARE",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DESCRIBE",
    "DISTINCT",
    "DO",
    "DOUBLE",
    "DROP",
    "EACH",
    "ELSE",
    "ELSEIF",
    "END",
    "ESCAPE",
    "EXCEPT",
    "EXEC",
    "EXECUTE",
    "EXISTS",
    "EXIT",
    "EXPLAIN",
    "EXTEND",
    "EXTERNAL",
    "FALSE",
    "FETCH",
    "FILTER",
    "FLOAT",
    "FOR",
    "FOREIGN",
    "FROM",
    "FULL",
    "FUNCTION",
    "GENERATED",
    "GLOBAL",
    "GRANT",
    "GROUP",
    "HAVING",
    "HOLD",
    "HOUR",
    "IDENTIFIED",
    "IF",
    "IGNORE",
    "ILIKE",
    "IN",
    "INDEX",
    "INNER",
    "INOUT",
    "INSENSITIVE",
    "INSERT",
    "INT",
    "INTEGER",
    "INTERSECT",
    "INTERVAL",
    "INTO",
    "IS",
    "ITERATE",
    "JOIN",
    "KEY",
    "LANGUAGE",
    "LEADING",
    "LEAVE",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LOCAL",
    "LOCALTIME",
    "LOCALTIMESTAMP",
    "LOCK",
    "LOOP",
    "MATCH",
    "MAX",
    "MERGE",
    "MIN",
    "MINUTE",
    "MODIFIES",
    "MODULE",
    "MONTH",
    "NATURAL",
    "NCHAR",
    "NEW",
    "NO",
    "NOT",
    "NULL",
    "NUMERIC",
    "OF",
    "OFFSET",
    "OLD",
    "ON",
    "ONLY",
    "OPEN",
    "OR",
    "ORDER",
    "OUT",
    "OUTER",
    "OVER",
    "PARTITION",
    "PERCENT",
    "PLACING",
    "POSITION",
    "PRECISION",
    "PRIMARY",
    "PROCEDURE",
    "RANGE",
    "READS",
    "REAL",
    "RECURSIVE",
    "REFERENCES",
    "REGEXP",
    "RELEASE",
    "RENAME",
    "REPEAT",
    "REPLACE",
    "RESIGNAL",
    "RESTRICT",
    "RETURN",
    "REVOKE",
    "RIGHT",
    "RLIKE",
    "ROLE",
    "ROLLBACK",
    "ROW",
    "ROWNUM",
    "ROWS",
    "SAVEPOINT",
    "SCHEMA",
    "SELECT",
    "SENSITIVE",
    "SESSION",
    "SET",
    "SIGNAL",
    "SMALLINT",
    "SOME",
    "SPECIFIC",
    "SQL",
    "SQLEXCEPTION",
    "SQLSTATE",
    "SQLWARNING",
    "START",
    "STATIC",
    "SUBSTRING",
    "SUM",
    "SYSDATE",
    "TABLE",
    "TERMINATED",
    "THEN",
    "TIME",
    "TIMESTAMP",
    "TO",
    "TOP",
    "TRAILING",
    "TRIGGER",
    "TRUE",
    "UNDO",
    "UNION",
    "UNIQUE",
    "UNKNOWN",
    "UNLOCK",
    "UPDATE",
    "USAGE",
    "USER",
    "USING",
    "VALUE",
    "VALUES",
    "VARCHAR",
    "VARYING",
    "VIEW",
    "WHEN",
    "WHERE",
    "WHILE",
    "WITH",
    "WITHIN",
    "YEAR",
    "ZONE",
];

/// Whether OmniSQL back-quotes this identifier: a reserved word in any case,
/// or any character outside `[A-Za-z0-9_]`.
pub fn needs_quotes(identifier: &str) -> bool {
    !identifier
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        || SQL_RESERVED_WORDS
            .binary_search(&identifier.to_uppercase().as_str())
            .is_ok()
}

/// OmniSQL's `format_identifier`: `` `name` `` when [`needs_quotes`], else the
/// name unchanged.
pub fn format_identifier(identifier: &str) -> String {
    if needs_quotes(identifier) {
        format!("`{identifier}`")
    } else {
        identifier.to_string()
    }
}

/// Whether the description is worth a comment: OmniSQL leaves it out when it
/// is blank or only restates the column name (`cont id` for `ContId`).
pub fn description_adds_information(column_name: &str, description: &str) -> bool {
    if description.trim().is_empty() {
        return false;
    }
    let name = column_name.to_lowercase();
    let description = description.to_lowercase();
    name != description
        && name != description.replace(' ', "_")
        && name != description.replace(' ', "")
}

/// The schema as OmniSQL prints it: one `CREATE TABLE` per table with
/// example values in comments, primary keys and foreign-key constraints.
pub fn omnisql_ddl(schema: &DatabaseSchema) -> String {
    omnisql_ddl_selected(schema, &SchemaSelection::all(schema))
}

/// Like [`omnisql_ddl`] for the tables, columns and example values that
/// `selection` keeps; keys of dropped columns and foreign keys into dropped
/// tables are left out so that what is printed stays consistent.
pub fn omnisql_ddl_selected(schema: &DatabaseSchema, selection: &SchemaSelection) -> String {
    let mut tables = Vec::new();
    for (t, table) in schema.tables.iter().enumerate() {
        let mut lines = Vec::new();
        for (c, column) in table.columns.iter().enumerate() {
            if !selection.column_shown(t, c) {
                continue;
            }
            let mut line = format!(
                "    {} {},",
                format_identifier(&column.name),
                column.data_type
            );
            let values = if selection.values_shown(t, c) {
                &column.sample_values[..column.sample_values.len().min(OMNISQL_MAX_VALUES)]
            } else {
                &[]
            };
            let examples = (!values.is_empty()).then(|| python_list(values));
            match (
                description_adds_information(&column.name, &column.description),
                examples,
            ) {
                (true, Some(examples)) => {
                    line.push_str(&format!(" -- {}, example: {examples}", column.description))
                }
                (true, None) => line.push_str(&format!(" -- {}", column.description)),
                (false, Some(examples)) => line.push_str(&format!(" -- example: {examples}")),
                (false, None) => {}
            }
            lines.push(line);
        }
        if lines.is_empty() {
            continue;
        }
        // OmniSQL lists key columns in column order, whatever the key order.
        let mut key_columns: Vec<usize> = table
            .primary_key
            .iter()
            .copied()
            .filter(|&c| selection.column_shown(t, c))
            .collect();
        key_columns.sort_unstable();
        key_columns.dedup();
        if !key_columns.is_empty() {
            let names: Vec<String> = key_columns
                .iter()
                .map(|&c| format_identifier(&table.columns[c].name))
                .collect();
            lines.push(format!("    PRIMARY KEY ({}),", names.join(", ")));
        }
        // Grouped by source column in column order, then in file order;
        // identical lines printed once.
        let mut foreign_keys: Vec<_> = schema
            .foreign_keys_from(t)
            .filter(|fk| {
                selection.column_shown(t, fk.column)
                    && selection.column_shown(fk.ref_table, fk.ref_column)
            })
            .collect();
        foreign_keys.sort_by_key(|fk| fk.column);
        for fk in foreign_keys {
            let source = &table.columns[fk.column].name;
            let target = &schema.tables[fk.ref_table];
            let line = format!(
                "    CONSTRAINT fk_{}_{} FOREIGN KEY ({}) REFERENCES {} ({}),",
                table.name.to_lowercase().replace(' ', "_"),
                source.to_lowercase().replace(' ', "_"),
                format_identifier(source),
                format_identifier(&target.name),
                format_identifier(&target.columns[fk.ref_column].name)
            );
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        let mut ddl = format!(
            "CREATE TABLE {} (\n{}",
            format_identifier(&table.name),
            lines.join("\n")
        );
        // OmniSQL strips one trailing comma from the whole statement, which
        // may sit at the end of a comment when the last line is a column.
        if ddl.ends_with(',') {
            ddl.pop();
        }
        ddl.push_str("\n);");
        tables.push(ddl);
    }
    tables.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{read_tables_file, Column, ForeignKey, SampleValue, Table};

    use crate::test_data::shared_data as shared;

    #[test]
    fn reserved_word_list_is_sorted_for_binary_search() {
        assert!(SQL_RESERVED_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(SQL_RESERVED_WORDS.len(), 223);
    }

    #[test]
    fn quoting_follows_omnisql() {
        for quoted in [
            "Year",
            "role",
            "ROLE",
            "date",
            "value",
            "order",
            "First Name",
            "a-b",
            "é",
        ] {
            assert_eq!(format_identifier(quoted), format!("`{quoted}`"));
        }
        for plain in ["rank", "name", "ContId", "user_id", "_x9", "years"] {
            assert_eq!(format_identifier(plain), plain);
        }
    }

    #[test]
    fn comments_only_when_the_description_says_more() {
        assert!(!description_adds_information("ContId", "cont id"));
        assert!(!description_adds_information("full_name", "Full Name"));
        assert!(!description_adds_information("x", "  "));
        assert!(description_adds_information(
            "user_id",
            "Unique identifier for each user"
        ));
    }

    fn column(name: &str, description: &str, data_type: &str, values: Vec<SampleValue>) -> Column {
        Column {
            name: name.into(),
            description: description.into(),
            data_type: data_type.into(),
            sample_values: values,
        }
    }

    #[test]
    fn synsql_style_lines_keys_and_constraints() {
        let schema = DatabaseSchema {
            db_id: "shop".into(),
            tables: vec![
                Table {
                    name: "stores".into(),
                    natural_name: "stores".into(),
                    columns: vec![
                        column(
                            "store_id",
                            "Unique identifier for each store",
                            "INTEGER",
                            vec![SampleValue::Integer(0), SampleValue::Integer(1)],
                        ),
                        column(
                            "store_name",
                            "Name of the store",
                            "TEXT",
                            vec![
                                SampleValue::Text("Power Adapter Specialist".into()),
                                SampleValue::Text("JUNZI'S Store".into()),
                            ],
                        ),
                        column("role", "role", "TEXT", vec![]),
                    ],
                    primary_key: vec![0],
                },
                Table {
                    name: "Order Items".into(),
                    natural_name: "order items".into(),
                    columns: vec![
                        column("item", "item", "INTEGER", vec![SampleValue::Integer(3)]),
                        column(
                            "store_id",
                            "store_id",
                            "INTEGER",
                            vec![SampleValue::Integer(1)],
                        ),
                        column("rank", "rank", "REAL", vec![SampleValue::Real(4.5)]),
                    ],
                    // key order differs from column order: OmniSQL prints column order
                    primary_key: vec![1, 0],
                },
            ],
            foreign_keys: vec![ForeignKey {
                table: 1,
                column: 1,
                ref_table: 0,
                ref_column: 0,
            }],
            ddls: vec![],
            values: None,
        };
        let expected = "CREATE TABLE stores (
    store_id INTEGER, -- Unique identifier for each store, example: [0, 1]
    store_name TEXT, -- Name of the store, example: ['Power Adapter Specialist', \"JUNZI'S Store\"]
    `role` TEXT,
    PRIMARY KEY (store_id)
);

CREATE TABLE `Order Items` (
    item INTEGER, -- example: [3]
    store_id INTEGER, -- example: [1]
    rank REAL, -- example: [4.5]
    PRIMARY KEY (item, store_id),
    CONSTRAINT fk_order_items_store_id FOREIGN KEY (store_id) REFERENCES stores (store_id)
);";
        assert_eq!(omnisql_ddl(&schema), expected);
    }

    #[test]
    fn last_column_without_keys_keeps_omnisql_comma_rule() {
        let schema = DatabaseSchema {
            db_id: "d".into(),
            tables: vec![Table {
                name: "t".into(),
                natural_name: "t".into(),
                columns: vec![
                    column("a", "a", "TEXT", vec![SampleValue::Text("x".into())]),
                    column("b", "b", "TEXT", vec![]),
                ],
                primary_key: vec![],
            }],
            foreign_keys: vec![],
            ddls: vec![],
            values: None,
        };
        assert_eq!(
            omnisql_ddl(&schema),
            "CREATE TABLE t (\n    a TEXT, -- example: ['x']\n    b TEXT\n);"
        );
    }

    /// The golden test: OmniSQL's own prompt for Spider's `car_1`.
    #[test]
    fn car_1_matches_omnisql_example_byte_for_byte() {
        let (Some(tables), Some(db), Some(example)) = (
            shared("spider/tables.json"),
            shared("spider/database/car_1/car_1.sqlite"),
            shared("omnisql/example_2.txt"),
        ) else {
            return;
        };
        let mut schema = read_tables_file(&tables)
            .unwrap()
            .into_iter()
            .find(|s| s.db_id == "car_1")
            .unwrap();
        crate::schema::enrich_from_sqlite(&mut schema, &db).unwrap();
        let prompt = std::fs::read_to_string(example).unwrap();
        let start = prompt.find("Database Schema:\n").unwrap() + "Database Schema:\n".len();
        let end = prompt.find("\nThis schema describes").unwrap();
        assert_eq!(omnisql_ddl(&schema), &prompt[start..end]);
    }
}
