//! The declarative description of a synthetic database: tables, columns, how
//! each column's values are generated, keys, and domain "concepts" (named
//! conditions that questions with external knowledge refer to).

/// One synthetic database of the sample corpus.
pub(crate) struct Domain {
    pub db_id: &'static str,
    /// What the database is about, in a few words ("retail store sales").
    pub topic: &'static str,
    /// Parents before children: a `Gen::Ref` only refers to an earlier table.
    pub tables: &'static [TableSpec],
    pub concepts: &'static [Concept],
}

pub(crate) struct TableSpec {
    pub name: &'static str,
    /// Natural plural name (`table_names`), e.g. "order items".
    pub plural: &'static str,
    pub singular: &'static str,
    pub rows: usize,
    pub columns: &'static [ColumnSpec],
    /// Column names of the primary key; two or more for a composite key.
    pub primary_key: &'static [&'static str],
}

pub(crate) struct ColumnSpec {
    pub name: &'static str,
    /// The raw DDL type, as SynSQL's `column_types` holds it.
    pub ty: &'static str,
    /// The description for `column_names`; empty means "derive one".
    pub desc: &'static str,
    pub gen: Gen,
}

/// How a column's values are generated.
#[derive(Clone, Copy)]
pub(crate) enum Gen {
    /// 1, 2, 3, ... (a single-column primary key).
    Serial,
    /// A key of an earlier table (a foreign key to its primary key).
    Ref(&'static str),
    /// A category drawn from a fixed list.
    Pick(&'static [&'static str]),
    Int(i64, i64),
    /// Uniform in the range, rounded to 2 decimals.
    Real(f64, f64),
    /// A `YYYY-MM-DD` date within the years (inclusive).
    Date(i32, i32),
    /// A date between min and max days after another date column of the row.
    DateAfter(&'static str, i64, i64),
    /// "First Last".
    Person,
    /// Derived from the row's `Person` column when there is one.
    Email,
    Phone,
    /// "<word from first list> <word from second list>".
    Named(&'static [&'static str], &'static [&'static str]),
    /// Prefix followed by the row number, zero-padded to 4 digits.
    Code(&'static str),
    /// A city name.
    City,
}

/// A named condition on one table ("premium products"), explained in a
/// record's `external_knowledge`. `condition` writes `{a}` where a table
/// alias prefix (`T1.`) or nothing goes.
pub(crate) struct Concept {
    pub term: &'static str,
    pub table: &'static str,
    pub condition: &'static str,
    pub explanation: &'static str,
}

pub(crate) const fn col(name: &'static str, ty: &'static str, gen: Gen) -> ColumnSpec {
    ColumnSpec {
        name,
        ty,
        desc: "",
        gen,
    }
}

pub(crate) const fn cold(
    name: &'static str,
    ty: &'static str,
    desc: &'static str,
    gen: Gen,
) -> ColumnSpec {
    ColumnSpec {
        name,
        ty,
        desc,
        gen,
    }
}

impl TableSpec {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

impl ColumnSpec {
    /// The column's name in words: `unit_price` -> "unit price".
    pub fn words(&self) -> String {
        self.name.replace('_', " ")
    }

    /// The `column_names` description: the spec's own, or one derived from
    /// how the column is generated, in SynSQL's manner.
    pub fn description(&self, table: &TableSpec) -> String {
        if !self.desc.is_empty() {
            return self.desc.to_string();
        }
        let words = self.words();
        let thing = table.singular;
        match self.gen {
            Gen::Serial => format!("Unique identifier for each {thing}"),
            Gen::Ref(parent) => format!(
                "Identifier of the {} ({parent}) of the {thing}",
                words.trim_end_matches(" id")
            ),
            Gen::Pick(values) => {
                let shown: Vec<&str> = values.iter().take(3).copied().collect();
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

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
