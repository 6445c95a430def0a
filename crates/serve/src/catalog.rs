//! The databases the server offers, found once at start-up. Requests name a
//! database by id and get it from this map or not at all: no text from a
//! request is ever joined into a path.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use text2sql_data::schema::{
    enrich_from_sqlite, read_schema_from_sqlite, read_tables_file, DatabaseSchema,
};
use text2sql_data::values::index_values_from_sqlite;

use crate::error::ServeError;

/// Longest database id accepted, in bytes.
pub const MAX_DB_ID_LEN: usize = 128;

/// Whether `id` has the shape of a database id: 1 to 128 ASCII letters,
/// digits, `_` or `-`. Checked on folder names at start-up and on every
/// request before any lookup, so ids with `/`, `.`, `%` or NUL never get far.
/// A character test rather than a regex: the rule is one line.
pub fn is_valid_db_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_DB_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Where a database's schema came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaSource {
    TablesFile(PathBuf),
    Sqlite,
}

#[derive(Debug)]
pub struct Database {
    pub db_id: String,
    /// `<databases>/<db_id>/<db_id>.sqlite`, built from the folder scan.
    pub path: PathBuf,
    /// With example values filled in from the database.
    pub schema: DatabaseSchema,
    pub schema_source: SchemaSource,
}

#[derive(Debug)]
pub struct Catalog {
    root: PathBuf,
    databases: BTreeMap<String, Arc<Database>>,
    warnings: Vec<String>,
}

impl Catalog {
    /// Scans `root` for `<db_id>/<db_id>.sqlite` (the SynSQL and Spider
    /// layout). A database's schema comes from the first `tables.json` that
    /// lists it, looking beside it (`<root>/<db_id>/tables.json`), in `root`,
    /// then in `root`'s parent; otherwise from the SQLite file itself. Folders
    /// that are not databases, and example values that cannot be read, become
    /// warnings; an unreadable tables.json or no database at all is an error.
    pub fn load(root: &Path) -> Result<Self, ServeError> {
        let io_err = |source| ServeError::Io {
            path: root.to_path_buf(),
            source,
        };
        let mut entries: Vec<_> = std::fs::read_dir(root)
            .map_err(io_err)?
            .collect::<Result<_, _>>()
            .map_err(io_err)?;
        entries.sort_by_key(|e| e.file_name());

        let mut tables_files = TablesFiles::default();
        let mut databases = BTreeMap::new();
        let mut warnings = Vec::new();
        for entry in entries {
            let folder = entry.path();
            if !folder.is_dir() {
                continue;
            }
            let Some(db_id) = entry.file_name().to_str().map(str::to_string) else {
                warnings.push(format!(
                    "{}: folder name is not UTF-8; skipped",
                    folder.display()
                ));
                continue;
            };
            if !is_valid_db_id(&db_id) {
                warnings.push(format!(
                    "{}: `{db_id}` is not a usable database id (letters, digits, _ and - only); skipped",
                    folder.display()
                ));
                continue;
            }
            let path = text2sql_data::database_path(root, &db_id);
            if !path.is_file() {
                warnings.push(format!(
                    "{}: no {db_id}.sqlite inside; skipped",
                    folder.display()
                ));
                continue;
            }
            let candidates = [
                folder.join("tables.json"),
                root.join("tables.json"),
                root.join("..").join("tables.json"),
            ];
            let (mut schema, schema_source) = match tables_files.find(&candidates, &db_id)? {
                Some((schema, file)) => (schema, SchemaSource::TablesFile(file)),
                None => {
                    let (schema, fk_warnings) = read_schema_from_sqlite(&db_id, &path)?;
                    warnings.extend(fk_warnings);
                    (schema, SchemaSource::Sqlite)
                }
            };
            if let Err(error) = enrich_from_sqlite(&mut schema, &path) {
                warnings.push(format!(
                    "{db_id}: example values could not be read, the schema is shown without them: {error}"
                ));
            }
            // In memory, for models trained with retrieved values.
            if let Err(error) = index_values_from_sqlite(&mut schema, &path) {
                warnings.push(format!(
                    "{db_id}: values could not be indexed, questions will retrieve none: {error}"
                ));
            }
            databases.insert(
                db_id.clone(),
                Arc::new(Database {
                    db_id,
                    path,
                    schema,
                    schema_source,
                }),
            );
        }
        if databases.is_empty() {
            return Err(ServeError::NoDatabases(root.to_path_buf()));
        }
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        Ok(Self {
            root: root.to_path_buf(),
            databases,
            warnings,
        })
    }

    /// The database with this id, if the id is well-formed and was found at
    /// start-up.
    pub fn get(&self, db_id: &str) -> Option<&Arc<Database>> {
        if !is_valid_db_id(db_id) {
            return None;
        }
        self.databases.get(db_id)
    }

    /// All databases, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Database>> {
        self.databases.values()
    }

    pub fn len(&self) -> usize {
        self.databases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.databases.is_empty()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What was skipped or degraded while loading, one line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// tables.json files read so far, each parsed once.
#[derive(Default)]
struct TablesFiles {
    parsed: HashMap<PathBuf, HashMap<String, DatabaseSchema>>,
}

impl TablesFiles {
    fn find(
        &mut self,
        candidates: &[PathBuf],
        db_id: &str,
    ) -> Result<Option<(DatabaseSchema, PathBuf)>, ServeError> {
        for file in candidates {
            if !file.is_file() {
                continue;
            }
            if !self.parsed.contains_key(file) {
                let schemas = read_tables_file(file)?
                    .into_iter()
                    .map(|s| (s.db_id.clone(), s))
                    .collect();
                self.parsed.insert(file.clone(), schemas);
            }
            if let Some(schema) = self.parsed.get(file).and_then(|s| s.get(db_id)) {
                return Ok(Some((schema.clone(), file.clone())));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use text2sql_data::schema::SampleValue;

    fn make_db(root: &Path, db_id: &str, sql: &str) {
        let folder = root.join(db_id);
        std::fs::create_dir_all(&folder).unwrap();
        let conn = rusqlite::Connection::open(folder.join(format!("{db_id}.sqlite"))).unwrap();
        conn.execute_batch(sql).unwrap();
    }

    #[test]
    fn db_id_shape() {
        for ok in ["concert_singer", "car_1", "A-b_9", &"x".repeat(128)] {
            assert!(is_valid_db_id(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../etc",
            "a/b",
            "a\\b",
            "a.sqlite",
            "a b",
            "é",
            "a%2F",
            "a\0",
            &"x".repeat(129),
        ] {
            assert!(!is_valid_db_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn scans_folders_reads_schema_and_examples_and_reports_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("databases");
        std::fs::create_dir_all(&root).unwrap();
        make_db(
            &root,
            "shop",
            "CREATE TABLE item (id INTEGER PRIMARY KEY, label TEXT);
             INSERT INTO item VALUES (1, 'pen'), (2, 'ink'), (3, 'nib');",
        );
        std::fs::create_dir_all(root.join("empty_folder")).unwrap();
        std::fs::create_dir_all(root.join("bad.name")).unwrap();
        std::fs::write(root.join("notes.txt"), "not a folder").unwrap();

        let catalog = Catalog::load(&root).unwrap();
        assert_eq!(catalog.len(), 1);
        let shop = catalog.get("shop").unwrap();
        assert_eq!(shop.path, root.join("shop").join("shop.sqlite"));
        assert_eq!(shop.schema_source, SchemaSource::Sqlite);
        assert_eq!(
            shop.schema.tables[0].columns[1].sample_values,
            [
                SampleValue::Text("pen".into()),
                SampleValue::Text("ink".into())
            ]
        );
        let warnings = catalog.warnings().join("\n");
        assert!(
            warnings.contains("no empty_folder.sqlite inside"),
            "{warnings}"
        );
        assert!(
            warnings.contains("`bad.name` is not a usable database id"),
            "{warnings}"
        );
        assert!(catalog.get("../databases/shop").is_none());
        assert!(catalog.get("nope").is_none());
    }

    #[test]
    fn tables_json_above_the_folder_wins_over_introspection() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("databases");
        make_db(
            &root,
            "pets",
            "CREATE TABLE Pets (PetID INTEGER PRIMARY KEY, PetType TEXT);",
        );
        let tables = serde_json::json!([{
            "db_id": "pets",
            "table_names_original": ["Pets"],
            "table_names": ["pets"],
            "column_names_original": [[-1, "*"], [0, "PetID"], [0, "PetType"]],
            "column_names": [[-1, "*"], [0, "pet id"], [0, "kind of animal"]],
            "column_types": ["text", "number", "text"],
            "primary_keys": [1],
            "foreign_keys": []
        }]);
        std::fs::write(dir.path().join("tables.json"), tables.to_string()).unwrap();
        let catalog = Catalog::load(&root).unwrap();
        let pets = catalog.get("pets").unwrap();
        assert_eq!(
            pets.schema_source,
            SchemaSource::TablesFile(root.join("..").join("tables.json"))
        );
        assert_eq!(
            pets.schema.tables[0].columns[1].description,
            "kind of animal"
        );
    }

    #[test]
    fn a_broken_tables_json_stops_start_up_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        make_db(dir.path(), "a", "CREATE TABLE t (x INTEGER);");
        std::fs::write(dir.path().join("tables.json"), "[{\"db_id\": ").unwrap();
        let message = Catalog::load(dir.path()).unwrap_err().to_string();
        assert!(message.contains("tables.json"), "{message}");
    }

    #[test]
    fn an_empty_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let message = Catalog::load(dir.path()).unwrap_err().to_string();
        assert!(message.contains("no database found"), "{message}");
        let missing = Catalog::load(&dir.path().join("absent"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("absent"), "{missing}");
    }

    /// Spider's dev databases with its tables.json one level up.
    #[test]
    fn loads_spider_dev_databases_with_their_tables_file() {
        let Some(root) = text2sql_data::test_data::shared_data("spider/database") else {
            return;
        };
        let catalog = Catalog::load(&root).unwrap();
        // Every `<db_id>/<db_id>.sqlite` (dev's 19 and train's) loads.
        let on_disk = std::fs::read_dir(&root)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                text2sql_data::database_path(&root, &e.file_name().to_string_lossy()).is_file()
            })
            .count();
        assert!(on_disk >= 19, "{on_disk}");
        assert_eq!(catalog.len(), on_disk, "{:?}", catalog.warnings());
        let car = catalog.get("car_1").unwrap();
        assert!(matches!(car.schema_source, SchemaSource::TablesFile(_)));
        let names: Vec<&str> = car.schema.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "continents",
                "countries",
                "car_makers",
                "model_list",
                "car_names",
                "cars_data"
            ]
        );
        assert!(car.schema.tables[0].columns[1].sample_values.len() == 2);
    }
}
