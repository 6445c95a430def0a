//! End-to-end: `text2sql sample` writes a SynSQL-format corpus that the
//! project's own tables.json reader accepts, reports a JSON summary, and
//! refuses to overwrite a non-empty folder without `--force`.

use std::path::{Path, PathBuf};

use crate::common::{db_ids, fails, ok, prepare_sample, s, stdout_json, text2sql};

/// Runs `text2sql sample --out <out> --json` with `flags`; its summary.
fn sample_json(out: &Path, flags: &[&str]) -> serde_json::Value {
    let mut args = vec!["sample", "--out", s(out), "--json"];
    args.extend(flags);
    stdout_json(&ok(text2sql(&args)))
}

/// A sample corpus's database file for `db_id`.
fn database(corpus: &Path, db_id: &str) -> PathBuf {
    corpus
        .join("databases")
        .join(db_id)
        .join(format!("{db_id}.sqlite"))
}

#[test]
fn sample_writes_a_synsql_corpus_and_guards_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("corpus");
    let out_str = s(&out);

    let summary = sample_json(&out, &["--records", "400", "--seed", "3"]);
    assert_eq!(summary["records"], 400);
    assert_eq!(summary["seed"], 3);
    assert!(summary["databases"].as_u64().unwrap() >= 8);
    assert_eq!(summary["by_tier"].as_object().unwrap().len(), 4);
    assert_eq!(summary["by_style"].as_object().unwrap().len(), 9);

    let data: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("data.json")).unwrap()).unwrap();
    assert_eq!(data.len(), 400);
    assert_eq!(
        summary["data_json_bytes"].as_u64().unwrap(),
        std::fs::metadata(out.join("data.json")).unwrap().len()
    );
    let schemas = text2sql_data::schema::read_tables_file(&out.join("tables.json")).unwrap();
    for schema in &schemas {
        let db = database(&out, &schema.db_id);
        assert!(db.is_file(), "{}", db.display());
    }
    assert!(data.iter().all(|r| schemas
        .iter()
        .any(|s| s.db_id == r["db_id"].as_str().unwrap())));

    // The `schema` subcommand reads what `sample` wrote.
    let listed = text2sql(&["schema", "--tables", s(&out.join("tables.json")), "--json"]);
    assert!(listed.status.success());
    let ids: Vec<String> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(ids.len(), schemas.len());

    // A second run into the now non-empty folder is refused ...
    let stderr = fails(&text2sql(&[
        "sample",
        "--out",
        out_str,
        "--records",
        "10",
        "--quiet",
    ]));
    assert!(stderr.contains("--force"), "{stderr}");
    let unchanged: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("data.json")).unwrap()).unwrap();
    assert_eq!(unchanged.len(), 400);

    // ... unless forced; the human summary names tiers and styles.
    let forced = ok(text2sql(&[
        "sample",
        "--out",
        out_str,
        "--records",
        "10",
        "--force",
    ]));
    let stdout = String::from_utf8_lossy(&forced.stdout);
    assert!(stdout.contains("wrote 10 records"), "{stdout}");
    assert!(stdout.contains("by question style"), "{stdout}");
    let replaced: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("data.json")).unwrap()).unwrap();
    assert_eq!(replaced.len(), 10);
}

#[test]
fn sample_help_explains_the_options() {
    let help = text2sql(&["sample", "--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--out",
        "--records",
        "--databases",
        "--seed",
        "--force",
        "SynSQL",
    ] {
        assert!(text.contains(option), "{option} missing from:\n{text}");
    }
}

/// The default sample has at least 200 databases, and `prepare`'s default
/// split by database puts 2-10% of them, with all their questions, on the
/// validation side and none on both sides.
#[test]
fn default_sample_prepared_by_database_gives_unseen_validation_databases() {
    use text2sql_data::loader::ProcessedDataset;
    use text2sql_data::prepare::Split;

    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("sample");
    let summary = sample_json(&sample, &[]);
    assert_eq!(summary["records"], 5000);
    let databases = summary["databases"].as_u64().unwrap();
    assert!(databases >= 200, "{databases} databases");
    let entries = std::fs::read_dir(sample.join("databases")).unwrap().count() as u64;
    assert_eq!(entries, databases);

    let processed = dir.path().join("processed");
    prepare_sample(&sample, &processed, &[]);
    let dataset = ProcessedDataset::open(&processed).unwrap();
    let (train, val) = (db_ids(&dataset, Split::Train), db_ids(&dataset, Split::Val));
    assert!(train.is_disjoint(&val), "a database on both sides");
    let share = val.len() as f64 / (train.len() + val.len()) as f64;
    assert!(
        (0.02..=0.10).contains(&share),
        "{} of {} databases in validation",
        val.len(),
        train.len() + val.len()
    );
}

/// `--databases` sets the number of databases; each opens and holds rows.
#[test]
fn databases_option_sets_how_many_databases_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("corpus");
    let summary = sample_json(&out, &["--records", "60", "--databases", "23"]);
    assert_eq!(summary["databases"], 23);
    let schemas = text2sql_data::schema::read_tables_file(&out.join("tables.json")).unwrap();
    assert_eq!(schemas.len(), 23);
    for schema in &schemas {
        let path = database(&out, &schema.db_id);
        let limits = text2sql_sql::SandboxLimits::default();
        let mut db = text2sql_sql::Sandbox::open(&path, limits).unwrap();
        for table in &schema.tables {
            let sql = format!("SELECT * FROM {} LIMIT 1", table.name);
            let result = db.query(&sql).unwrap();
            assert_eq!(
                result.rows.len(),
                1,
                "{}.{} is empty",
                schema.db_id,
                table.name
            );
        }
    }
    fails(&text2sql(&[
        "sample",
        "--out",
        s(&dir.path().join("z")),
        "--databases",
        "0",
    ]));
}
