//! End-to-end: `text2sql sample` writes a SynSQL-format corpus that the
//! project's own tables.json reader accepts, reports a JSON summary, and
//! refuses to overwrite a non-empty folder without `--force`.

use std::path::Path;

use crate::common::text2sql;

#[test]
fn sample_writes_a_synsql_corpus_and_guards_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("corpus");
    let out_str = out.to_str().unwrap();

    let run = text2sql(&[
        "sample",
        "--out",
        out_str,
        "--records",
        "400",
        "--seed",
        "3",
        "--json",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
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
        let db = Path::new(&out)
            .join("databases")
            .join(&schema.db_id)
            .join(format!("{}.sqlite", schema.db_id));
        assert!(db.is_file(), "{}", db.display());
    }
    assert!(data.iter().all(|r| schemas
        .iter()
        .any(|s| s.db_id == r["db_id"].as_str().unwrap())));

    // The `schema` subcommand reads what `sample` wrote.
    let listed = text2sql(&[
        "schema",
        "--tables",
        out.join("tables.json").to_str().unwrap(),
        "--json",
    ]);
    assert!(listed.status.success());
    let ids: Vec<String> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(ids.len(), schemas.len());

    // A second run into the now non-empty folder is refused ...
    let again = text2sql(&["sample", "--out", out_str, "--records", "10", "--quiet"]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("--force"), "{stderr}");
    let unchanged: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("data.json")).unwrap()).unwrap();
    assert_eq!(unchanged.len(), 400);

    // ... unless forced; the human summary names tiers and styles.
    let forced = text2sql(&["sample", "--out", out_str, "--records", "10", "--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
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
    for option in ["--out", "--records", "--seed", "--force", "SynSQL"] {
        assert!(text.contains(option), "{option} missing from:\n{text}");
    }
}
