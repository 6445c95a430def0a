//! Which parts of a schema a serializer prints: the budgeted serializers
//! prune by switching parts off here, so both forms share one pruning.

use crate::schema::DatabaseSchema;

/// Per table and column, whether it (and its example values) is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaSelection {
    pub tables: Vec<bool>,
    /// `columns[t][c]`: column `c` of table `t` is printed (when its table is).
    pub columns: Vec<Vec<bool>>,
    /// `values[t][c]`: the column's example values are printed.
    pub values: Vec<Vec<bool>>,
}

impl SchemaSelection {
    /// Everything in the schema.
    pub fn all(schema: &DatabaseSchema) -> Self {
        let per_column: Vec<Vec<bool>> = schema
            .tables
            .iter()
            .map(|t| vec![true; t.columns.len()])
            .collect();
        Self {
            tables: vec![true; schema.tables.len()],
            columns: per_column.clone(),
            values: per_column,
        }
    }

    pub fn table_shown(&self, table: usize) -> bool {
        self.tables.get(table).copied().unwrap_or(false)
    }

    pub fn column_shown(&self, table: usize, column: usize) -> bool {
        self.table_shown(table) && get(&self.columns, table, column)
    }

    pub fn values_shown(&self, table: usize, column: usize) -> bool {
        self.column_shown(table, column) && get(&self.values, table, column)
    }
}

fn get(flags: &[Vec<bool>], table: usize, column: usize) -> bool {
    flags
        .get(table)
        .and_then(|t| t.get(column))
        .copied()
        .unwrap_or(false)
}
