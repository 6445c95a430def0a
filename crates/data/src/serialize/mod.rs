//! Schema serializers: the OmniSQL DDL form (what OmniSQL-style prompts use)
//! and the compact form T5 text-to-SQL models are trained on.

use crate::schema::DatabaseSchema;

/// The schema as OmniSQL prints it: one `CREATE TABLE` per table with
/// example values in comments, primary keys and foreign-key constraints.
pub fn omnisql_ddl(schema: &DatabaseSchema) -> String {
    let mut out = String::new();
    for (t, table) in schema.tables.iter().enumerate() {
        if t > 0 {
            out.push_str("\n\n");
        }
        out.push_str(&format!("CREATE TABLE {} (\n", table.name));
        let mut lines: Vec<String> = table
            .columns
            .iter()
            .map(|c| format!("    {} {}", c.name, c.data_type))
            .collect();
        if !table.primary_key.is_empty() {
            let cols: Vec<&str> = table
                .primary_key
                .iter()
                .map(|&c| table.columns[c].name.as_str())
                .collect();
            lines.push(format!("    PRIMARY KEY ({})", cols.join(", ")));
        }
        for fk in schema.foreign_keys_from(t) {
            let target = &schema.tables[fk.ref_table];
            lines.push(format!(
                "    FOREIGN KEY ({}) REFERENCES {} ({})",
                table.columns[fk.column].name, target.name, target.columns[fk.ref_column].name
            ));
        }
        out.push_str(&lines.join(",\n"));
        out.push_str("\n);");
    }
    out
}

/// The schema part of the compact T5 input: `db_id | table : col , col | …`.
pub fn compact_schema(schema: &DatabaseSchema) -> String {
    let mut out = schema.db_id.clone();
    for table in &schema.tables {
        let cols: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        out.push_str(&format!(" | {} : {}", table.name, cols.join(" , ")));
    }
    out
}
