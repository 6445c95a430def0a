//! The one schema model every stage shares: read from a Spider-style
//! `tables.json` (SynSQL, Spider or BIRD flavour) and optionally enriched with
//! sample values from the SQLite file.

mod enrich;
mod introspect;
mod tables_file;

pub use enrich::{
    enrich_from_sqlite, quote_identifier, SAMPLE_TEXT_MAX_CHARS, SAMPLE_VALUES_PER_COLUMN,
};
pub use introspect::read_schema_from_sqlite;
pub use tables_file::{parse_tables_json, read_tables_file};

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::values::ValueIndex;

/// One database: its tables, columns and keys, in the order of the tables file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseSchema {
    pub db_id: String,
    pub tables: Vec<Table>,
    pub foreign_keys: Vec<ForeignKey>,
    /// The original `CREATE TABLE` statements when the tables file has them
    /// (SynSQL's `ddls`); empty for Spider and BIRD.
    pub ddls: Vec<String>,
    /// The database's distinct text values, for value retrieval: built from
    /// the SQLite file ([`crate::values::build_value_index`]) or read from a
    /// processed folder's `values.parquet`. Not part of the schema's JSON.
    #[serde(skip)]
    pub values: Option<Arc<ValueIndex>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// The real identifier (`table_names_original`).
    pub name: String,
    /// The natural-language name (`table_names`).
    pub natural_name: String,
    pub columns: Vec<Column>,
    /// Indices into `columns` of the primary key, in key order; more than one
    /// for a composite key.
    pub primary_key: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// The real identifier (`column_names_original`).
    pub name: String,
    /// `column_names`: in SynSQL a free-text description of the column, in
    /// Spider and BIRD a normalised lower-case name.
    pub description: String,
    /// `column_types` as written in the tables file: a raw DDL type in SynSQL
    /// (`INTEGER`, `REAL`, `TEXT`, ...), one of text/number/time/others/boolean
    /// in Spider.
    pub data_type: String,
    /// Up to a few distinct example values, filled from the SQLite file.
    #[serde(default)]
    pub sample_values: Vec<SampleValue>,
}

/// A value read from a database, kept with its SQLite storage class so that a
/// serializer can print `1`, `1.0` and `'1'` differently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum SampleValue {
    Integer(i64),
    Real(f64),
    Text(String),
}

impl SampleValue {
    /// The value as text (`12`, `1.5`, `Aliens`), as a question would
    /// write it.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            SampleValue::Text(text) => std::borrow::Cow::Borrowed(text),
            SampleValue::Integer(i) => std::borrow::Cow::Owned(i.to_string()),
            SampleValue::Real(f) => std::borrow::Cow::Owned(f.to_string()),
        }
    }
}

/// `table.column` references `ref_table.ref_column`; indices into
/// `DatabaseSchema::tables` and that table's `columns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub table: usize,
    pub column: usize,
    pub ref_table: usize,
    pub ref_column: usize,
}

impl DatabaseSchema {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Foreign keys whose source is `table_index`, in file order.
    pub fn foreign_keys_from(&self, table_index: usize) -> impl Iterator<Item = &ForeignKey> {
        self.foreign_keys
            .iter()
            .filter(move |fk| fk.table == table_index)
    }

    pub fn column_count(&self) -> usize {
        self.tables.iter().map(|t| t.columns.len()).sum()
    }

    /// The same database with its tables, and each table's columns, in an
    /// order drawn from `seed`; keys, foreign keys and the value index
    /// follow them. Training shows each example an order of its own, so
    /// that where a name stands (and so its schema symbol, numbered in the
    /// order shown) says nothing about it: the model has to read the names.
    pub fn shuffled(&self, seed: u64) -> DatabaseSchema {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut table_order: Vec<usize> = (0..self.tables.len()).collect();
        table_order.shuffle(&mut rng);
        let column_orders: Vec<Vec<usize>> = self
            .tables
            .iter()
            .map(|table| {
                let mut order: Vec<usize> = (0..table.columns.len()).collect();
                order.shuffle(&mut rng);
                order
            })
            .collect();
        // Old index -> new index, for tables and each (old) table's columns.
        let new_table = inverse(&table_order);
        let new_column: Vec<Vec<usize>> = column_orders.iter().map(|o| inverse(o)).collect();
        let tables = table_order
            .iter()
            .map(|&old| {
                let table = &self.tables[old];
                Table {
                    name: table.name.clone(),
                    natural_name: table.natural_name.clone(),
                    columns: column_orders[old]
                        .iter()
                        .map(|&c| table.columns[c].clone())
                        .collect(),
                    primary_key: table
                        .primary_key
                        .iter()
                        .map(|&c| new_column[old][c])
                        .collect(),
                }
            })
            .collect();
        let foreign_keys = self
            .foreign_keys
            .iter()
            .map(|fk| ForeignKey {
                table: new_table[fk.table],
                column: new_column[fk.table][fk.column],
                ref_table: new_table[fk.ref_table],
                ref_column: new_column[fk.ref_table][fk.ref_column],
            })
            .collect();
        let values = self
            .values
            .as_ref()
            .map(|index| Arc::new(index.relabelled(|t, c| (new_table[t], new_column[t][c]))));
        DatabaseSchema {
            db_id: self.db_id.clone(),
            tables,
            foreign_keys,
            ddls: self.ddls.clone(),
            values,
        }
    }
}

/// `order[new] = old` turned into `old -> new`.
fn inverse(order: &[usize]) -> Vec<usize> {
    let mut inverse = vec![0; order.len()];
    for (new, &old) in order.iter().enumerate() {
        inverse[old] = new;
    }
    inverse
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::ColumnValues;

    fn column(name: &str) -> Column {
        Column {
            name: name.into(),
            description: name.to_lowercase(),
            data_type: "text".into(),
            sample_values: Vec::new(),
        }
    }

    fn table(name: &str, columns: &[&str], primary_key: Vec<usize>) -> Table {
        Table {
            name: name.into(),
            natural_name: name.to_lowercase(),
            columns: columns.iter().map(|c| column(c)).collect(),
            primary_key,
        }
    }

    /// `singer(id, name, country)`, `concert(cid, venue, singer_id, year)`
    /// with a composite key, `stadium(sid, city)`, a foreign key and values.
    fn schema() -> DatabaseSchema {
        DatabaseSchema {
            db_id: "concerts".into(),
            tables: vec![
                table("singer", &["id", "name", "country"], vec![0]),
                table(
                    "concert",
                    &["cid", "venue", "singer_id", "year"],
                    vec![0, 3],
                ),
                table("stadium", &["sid", "city"], vec![0]),
            ],
            foreign_keys: vec![ForeignKey {
                table: 1,
                column: 2,
                ref_table: 0,
                ref_column: 0,
            }],
            ddls: Vec::new(),
            values: Some(Arc::new(ValueIndex::new(vec![
                ColumnValues {
                    table: 0,
                    column: 2,
                    values: vec!["France".into(), "Netherlands".into()],
                },
                ColumnValues {
                    table: 2,
                    column: 1,
                    values: vec!["Lyon".into(), "Rotterdam".into()],
                },
            ]))),
        }
    }

    fn names(schema: &DatabaseSchema, table: usize, column: usize) -> (String, String) {
        let t = &schema.tables[table];
        (t.name.clone(), t.columns[column].name.clone())
    }

    #[test]
    fn a_shuffled_schema_is_the_same_database_in_another_order() {
        let schema = schema();
        let orders: Vec<Vec<String>> = (0..16)
            .map(|seed| {
                let shuffled = schema.shuffled(seed);
                assert_eq!(shuffled, schema.shuffled(seed), "seeded");
                shuffled
                    .tables
                    .iter()
                    .flat_map(|t| {
                        t.columns
                            .iter()
                            .map(move |c| format!("{}.{}", t.name, c.name))
                    })
                    .collect()
            })
            .collect();
        assert!(
            orders.iter().any(|o| o != &orders[0]),
            "16 seeds drew one order"
        );
        for seed in 0..16 {
            let shuffled = schema.shuffled(seed);
            let mut tables: Vec<_> = shuffled.tables.iter().map(|t| t.name.clone()).collect();
            tables.sort();
            assert_eq!(tables, ["concert", "singer", "stadium"]);
            // Each table keeps its columns and its (composite) key in key order.
            let concert = shuffled.table("concert").unwrap();
            let key: Vec<&str> = concert
                .primary_key
                .iter()
                .map(|&c| concert.columns[c].name.as_str())
                .collect();
            assert_eq!(key, ["cid", "year"]);
            assert_eq!(concert.columns.len(), 4);
            // The foreign key still joins concert.singer_id to singer.id.
            let fk = &shuffled.foreign_keys[0];
            assert_eq!(
                (
                    names(&shuffled, fk.table, fk.column),
                    names(&shuffled, fk.ref_table, fk.ref_column)
                ),
                (
                    ("concert".into(), "singer_id".into()),
                    ("singer".into(), "id".into())
                )
            );
            // A retrieved value still lands on its own column.
            let found = shuffled
                .values
                .as_ref()
                .unwrap()
                .retrieve("concerts in Lyon by singers from France");
            let mut at: Vec<_> = found
                .matches
                .iter()
                .map(|m| (names(&shuffled, m.table, m.column), m.value.clone()))
                .collect();
            at.sort();
            assert_eq!(
                at,
                [
                    (("singer".into(), "country".into()), "France".into()),
                    (("stadium".into(), "city".into()), "Lyon".into())
                ]
            );
        }
    }
}
