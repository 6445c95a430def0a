//! The declarative description of a synthetic database: tables, columns, how
//! each column's values are generated, keys, and domain "concepts" (named
//! conditions that questions with external knowledge refer to).
//!
//! Domains are read from the JSON files under `crates/data/sample-domains/`
//! (see [`super::catalog`]) and describe the *logical* schema; a
//! [`super::variant`] turns one into the physical schema of one database
//! (a table subset, naming style, column order, extra columns, row counts).

use serde::Deserialize;

/// One domain (logical) or one generated database (physical).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Domain {
    /// The domain's name (`retail_store_sales`); a variant's `db_id`.
    #[serde(rename = "name")]
    pub db_id: String,
    /// What the database is about, in a few words ("retail store sales").
    pub topic: String,
    /// Parents before children: a `Gen::Ref` only refers to an earlier table.
    pub tables: Vec<TableSpec>,
    #[serde(default)]
    pub concepts: Vec<Concept>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TableSpec {
    pub name: String,
    /// Natural plural name (`table_names`), e.g. "order items".
    pub plural: String,
    pub singular: String,
    /// Other natural names of the table, each `[singular, plural]`
    /// ("client", "clients"); a variant may name the table by one.
    #[serde(default)]
    pub synonyms: Vec<[String; 2]>,
    pub rows: usize,
    pub columns: Vec<ColumnSpec>,
    /// Column names of the primary key; two or more for a composite key.
    pub primary_key: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ColumnSpec {
    pub name: String,
    /// The raw DDL type, as SynSQL's `column_types` holds it.
    #[serde(rename = "type")]
    pub ty: String,
    /// The description for `column_names`; empty means "derive one".
    #[serde(default)]
    pub desc: String,
    /// Natural phrasings of the column ("unit price", "price per unit");
    /// questions use the first, so a variant puts its choice first. Empty
    /// means the name in words.
    #[serde(default)]
    pub phrases: Vec<String>,
    /// The logical (domain) name of a physical column; empty in a domain.
    #[serde(skip)]
    pub logical: String,
    pub gen: Gen,
}

/// How a column's values are generated.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Gen {
    /// 1, 2, 3, ... (a single-column primary key).
    Serial,
    /// A key of an earlier table (a foreign key to its primary key).
    Ref(String),
    /// A category drawn from a fixed list (a value listed twice is drawn
    /// twice as often).
    Pick(Vec<String>),
    Int(i64, i64),
    /// Uniform in the range, rounded to 2 decimals.
    Real(f64, f64),
    /// A `YYYY-MM-DD` date within the years (inclusive).
    Date(i32, i32),
    /// A date between min and max days after another date column of the row.
    DateAfter(String, i64, i64),
    /// "First Last".
    Person,
    /// Derived from the row's `Person` column when there is one.
    Email,
    Phone,
    /// "<word from first list> <word from second list>".
    Named(Vec<String>, Vec<String>),
    /// Prefix followed by the row number, zero-padded to 4 digits.
    Code(String),
    /// A city name.
    City,
}

/// A named condition on one table ("premium products"), explained in a
/// record's `external_knowledge`. `condition` writes `{a}` where a table
/// alias prefix (`T1.`) or nothing goes, right before each column name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Concept {
    pub term: String,
    pub table: String,
    pub condition: String,
    pub explanation: String,
}

impl Domain {
    pub fn table_index(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.name == name)
    }

    /// The key column a foreign key to table `name` refers to: the first
    /// of its primary key.
    pub fn referenced_key(&self, name: &str) -> Option<&str> {
        let table = &self.tables[self.table_index(name)?];
        table.primary_key.first().map(String::as_str)
    }
}

impl TableSpec {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

impl ColumnSpec {
    /// The column in words as questions name it: the first phrasing, or
    /// `unit_price` -> "unit price".
    pub fn words(&self) -> String {
        match self.phrases.first() {
            Some(phrase) => phrase.clone(),
            None => self.logical_name().replace('_', " "),
        }
    }

    /// The domain's name of the column (its own name in a domain).
    pub fn logical_name(&self) -> &str {
        if self.logical.is_empty() {
            &self.name
        } else {
            &self.logical
        }
    }

    /// The `column_names` description: the spec's own, or one derived from
    /// how the column is generated, in SynSQL's manner.
    pub fn description(&self, table: &TableSpec) -> String {
        if !self.desc.is_empty() {
            return self.desc.to_string();
        }
        let words = self.words();
        let thing = &table.singular;
        match &self.gen {
            Gen::Serial => format!("Unique identifier for each {thing}"),
            Gen::Ref(parent) => format!(
                "Identifier of the {} ({parent}) of the {thing}",
                words.trim_end_matches(" id")
            ),
            Gen::Pick(values) => {
                let mut shown: Vec<&str> = Vec::new();
                for value in values {
                    if shown.len() < 3 && !shown.contains(&value.as_str()) {
                        shown.push(value);
                    }
                }
                format!(
                    "{} of the {thing} (e.g., {})",
                    capitalise(&words),
                    shown.join(", ")
                )
            }
            Gen::Date(..) | Gen::DateAfter(..) => {
                format!("Date of the {thing}'s {words} (YYYY-MM-DD)")
            }
            Gen::Person => format!("Full name of the {thing}"),
            Gen::Email => format!("Email address of the {thing}"),
            Gen::Phone => format!("Phone number of the {thing}"),
            Gen::Code(_) => format!("Reference code of the {thing}"),
            Gen::City => format!("City of the {thing}"),
            Gen::Named(..) => format!("Name of the {thing}"),
            Gen::Int(..) | Gen::Real(..) => format!("{} of the {thing}", capitalise(&words)),
        }
    }
}

pub(crate) fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
