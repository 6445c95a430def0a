//! The sample's domain catalogue, kept as data: one JSON file per domain
//! under `crates/data/sample-domains/` (its logical tables, columns, value
//! generators, phrasings and concepts) and `words.json` (names, cities,
//! abbreviations, table prefixes and the unrelated extra columns and
//! tables that variants add). The files are embedded at build time and
//! parsed once, at run time.

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use serde::Deserialize;

use super::spec::{ColumnSpec, Domain, Gen, TableSpec};
use crate::error::DataError;

macro_rules! domain_files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../sample-domains/", $name, ".json")))),*]
    };
}

/// Every domain file, by name.
const DOMAIN_FILES: &[(&str, &str)] = domain_files![
    "retail_store_sales",
    "university_course_enrollment",
    "hospital_patient_care",
    "airline_flight_operations",
    "music_streaming_service",
    "real_estate_market",
    "football_league_statistics",
    "public_library_lending",
    "company_project_staffing",
    "energy_grid_monitoring",
    "restaurant_chain_orders",
    "car_rental_fleet",
    "software_issue_tracker",
    "hotel_reservations",
    "farm_harvest_records",
    "fitness_club_members",
];

const WORDS_FILE: &str = include_str!("../../sample-domains/words.json");

/// Word lists and the pieces variants are built from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Words {
    pub first_names: Vec<String>,
    pub last_names: Vec<String>,
    pub cities: Vec<String>,
    /// Word -> its abbreviation in column and table names (`quantity` -> `qty`).
    pub abbreviations: BTreeMap<String, String>,
    /// Words put before every table name in some databases (`tbl`).
    pub table_prefixes: Vec<String>,
    /// SQLite's keywords, upper case and sorted: no generated name is one.
    pub sqlite_keywords: Vec<String>,
    /// Columns unrelated to the domain that a variant may add to a table.
    pub extra_columns: Vec<ColumnSpec>,
    /// Tables unrelated to the domain that a variant may add.
    pub extra_tables: Vec<TableSpec>,
}

impl Words {
    /// Whether `name` can stand unquoted in SQL: not a keyword of SQLite
    /// (or of the dialects OmniSQL quotes for) and made of `[A-Za-z0-9_]`.
    pub fn is_plain_identifier(&self, name: &str) -> bool {
        !crate::serialize::needs_quotes(name)
            && self
                .sqlite_keywords
                .binary_search(&name.to_uppercase())
                .is_err()
    }
}

pub(crate) struct Catalog {
    pub domains: Vec<Domain>,
    pub words: Words,
}

/// The parsed catalogue, or the first problem found in its files.
pub(crate) fn catalog() -> Result<&'static Catalog, DataError> {
    static CATALOG: OnceLock<Result<Catalog, String>> = OnceLock::new();
    CATALOG
        .get_or_init(load)
        .as_ref()
        .map_err(|message| DataError::Invalid(message.clone()))
}

fn load() -> Result<Catalog, String> {
    let mut domains = Vec::with_capacity(DOMAIN_FILES.len());
    for (name, text) in DOMAIN_FILES {
        let file = format!("sample-domains/{name}.json");
        let domain: Domain = parse(&file, text)?;
        check_domain(&file, &domain)?;
        domains.push(domain);
    }
    let words: Words = parse("sample-domains/words.json", WORDS_FILE)?;
    for table in &words.extra_tables {
        check_table("sample-domains/words.json", &[], table)?;
    }
    if !words.sqlite_keywords.is_sorted() {
        return Err("sample-domains/words.json: sqlite_keywords must be sorted".to_string());
    }
    if words.first_names.is_empty() || words.last_names.is_empty() || words.cities.is_empty() {
        return Err("sample-domains/words.json: a name or city list is empty".to_string());
    }
    Ok(Catalog { domains, words })
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| {
        format!(
            "{file}: invalid at line {}, column {}: {e}",
            e.line(),
            e.column()
        )
    })
}

/// The domain's references hold: foreign keys name an earlier table with a
/// single-column key, keys and `date_after` name columns of their table,
/// concepts name a table.
fn check_domain(file: &str, domain: &Domain) -> Result<(), String> {
    if domain.tables.len() < 2 {
        return Err(format!("{file}: a domain needs at least two tables"));
    }
    for (t, table) in domain.tables.iter().enumerate() {
        check_table(file, &domain.tables[..t], table)?;
    }
    for concept in &domain.concepts {
        if domain.table_index(&concept.table).is_none() {
            return Err(format!(
                "{file}: concept `{}` names the unknown table `{}`",
                concept.term, concept.table
            ));
        }
    }
    Ok(())
}

fn check_table(file: &str, earlier: &[TableSpec], table: &TableSpec) -> Result<(), String> {
    let at = |field: &str| format!("{file}: table `{}`, {field}", table.name);
    let mut names = HashSet::new();
    for column in &table.columns {
        if !names.insert(column.name.as_str()) {
            return Err(format!("{}: `{}` twice", at("columns"), column.name));
        }
        match &column.gen {
            Gen::Ref(parent) => {
                let ok = earlier
                    .iter()
                    .any(|p| &p.name == parent && p.primary_key.len() == 1);
                if !ok {
                    return Err(format!(
                        "{}: `{parent}` is not an earlier table with a one-column key",
                        at(&format!("column `{}`", column.name))
                    ));
                }
            }
            Gen::DateAfter(other, ..) if table.column_index(other).is_none() => {
                return Err(format!(
                    "{}: date_after names the unknown column `{other}`",
                    at(&format!("column `{}`", column.name))
                ));
            }
            Gen::Pick(values) | Gen::Named(values, _) if values.is_empty() => {
                return Err(format!(
                    "{}: empty list",
                    at(&format!("column `{}`", column.name))
                ));
            }
            _ => {}
        }
    }
    if table.primary_key.is_empty() {
        return Err(at("primary_key: empty"));
    }
    for key in &table.primary_key {
        if table.column_index(key).is_none() {
            return Err(format!("{}: unknown column `{key}`", at("primary_key")));
        }
    }
    if table.rows == 0 {
        return Err(at("rows: must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_file_parses_and_its_references_hold() {
        let catalog = catalog().unwrap();
        assert_eq!(catalog.domains.len(), DOMAIN_FILES.len());
        let names: HashSet<&str> = catalog.domains.iter().map(|d| d.db_id.as_str()).collect();
        assert_eq!(
            names.len(),
            catalog.domains.len(),
            "domain names are distinct"
        );
        assert!(!catalog.words.extra_columns.is_empty());
        assert!(!catalog.words.extra_tables.is_empty());
    }

    #[test]
    fn a_broken_reference_names_the_file_table_and_column() {
        let text = r#"{"name": "d", "topic": "t", "tables": [
            {"name": "a", "singular": "a", "plural": "as", "rows": 5, "primary_key": ["id"],
             "columns": [{"name": "id", "type": "INTEGER", "gen": "serial"}]},
            {"name": "b", "singular": "b", "plural": "bs", "rows": 5, "primary_key": ["id"],
             "columns": [{"name": "id", "type": "INTEGER", "gen": "serial"},
                         {"name": "c_id", "type": "INTEGER", "gen": {"ref": "c"}}]}]}"#;
        let domain: Domain = parse("x.json", text).unwrap();
        let err = check_domain("x.json", &domain).unwrap_err();
        assert!(err.contains("x.json: table `b`, column `c_id`"), "{err}");
        let err = parse::<Domain>("y.json", "{\"name\": 1}").unwrap_err();
        assert!(err.starts_with("y.json: invalid at line 1"), "{err}");
    }
}
