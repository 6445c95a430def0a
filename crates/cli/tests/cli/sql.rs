//! `text2sql sql check`: the constrained-decoding checker over gold files,
//! and `ask`'s constrained output checked by it.

use std::path::Path;

use crate::common::{fails, ok, s, sample_with_model, shared, text2sql, train_tokenizer};

const TABLES: &str = r#"[{"db_id": "concert", "table_names": ["singer", "stadium"],
  "table_names_original": ["Singer", "Stadium"],
  "column_names": [[-1, "*"], [0, "singer id"], [0, "name"], [0, "age"], [1, "stadium id"], [1, "capacity"]],
  "column_names_original": [[-1, "*"], [0, "Singer_ID"], [0, "Name"], [0, "Age"], [1, "Stadium_ID"], [1, "Capacity"]],
  "column_types": ["text", "number", "text", "number", "number", "number"],
  "primary_keys": [1, 4], "foreign_keys": []}]"#;

fn check_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["sql", "check", "--json"];
    all.extend(args);
    serde_json::from_slice(&ok(text2sql(&all)).stdout).unwrap()
}

/// [`TABLES`] and a gold file of `lines` in `dir`: their paths.
fn tables_and_gold(
    dir: &tempfile::TempDir,
    lines: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let tables = dir.path().join("tables.json");
    std::fs::write(&tables, TABLES).unwrap();
    let gold = dir.path().join("gold.sql");
    std::fs::write(&gold, lines).unwrap();
    (tables, gold)
}

#[test]
fn check_counts_accepted_queries_and_says_where_and_why_others_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (tables, gold) = tables_and_gold(
        &dir,
        "SELECT name FROM singer WHERE age > 30\tconcert\n\
         SELECT T1.name FROM singer AS T1 ORDER BY T1.age DESC LIMIT 1\tconcert\n\
         SELECT name FROM singer WHERE capacity > 3\tconcert\n\
         SELECT count(*) FROM singer; DROP TABLE singer\tconcert\n",
    );
    let json = check_json(&["--tables", s(&tables), s(&gold)]);
    assert_eq!(json["total"], 4);
    assert_eq!(json["accepted"], 2);
    let rejected = json["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["record"], 3);
    assert_eq!(rejected[0]["offset"], 39, "{json}");
    assert!(rejected[0]["message"]
        .as_str()
        .unwrap()
        .contains("no such column: capacity"));
    assert_eq!(rejected[1]["record"], 4);
    assert!(rejected[1]["message"]
        .as_str()
        .unwrap()
        .contains("second statement"));

    let text = String::from_utf8(
        ok(text2sql(&[
            "sql",
            "check",
            "--tables",
            s(&tables),
            s(&gold),
        ]))
        .stdout,
    )
    .unwrap();
    assert!(text.contains("2 of 4 queries accepted"), "{text}");
    assert!(
        text.contains("record 3 (concert): rejected at byte 39"),
        "{text}"
    );

    // A database the tables file lacks is an error naming file and record.
    std::fs::write(&gold, "SELECT 1\tconcert\nSELECT 1\tnowhere\n").unwrap();
    let out = text2sql(&["sql", "check", "--tables", s(&tables), s(&gold)]);
    let stderr = fails(&out);
    assert!(
        stderr.contains("gold.sql: record 2: db_id `nowhere`"),
        "{stderr}"
    );
}

/// With `--conventional`, a query that breaks gold SQL's conventions (its
/// first table aliased `T3`, which nothing awaits) is rejected where it
/// does.
#[test]
fn check_can_hold_gold_to_the_conventions_decoding_tries_first() {
    let dir = tempfile::tempdir().unwrap();
    let (tables, gold) = tables_and_gold(
        &dir,
        "SELECT T1.name FROM singer AS T1 ORDER BY T1.age\tconcert\n\
         SELECT T2.name FROM singer AS T2 JOIN singer AS T3 ON T2.age = T3.age\tconcert\n\
         SELECT name FROM singer AS T3\tconcert\n",
    );
    let plain = check_json(&["--tables", s(&tables), s(&gold)]);
    assert_eq!(plain["accepted"], 3, "{plain}");
    let json = check_json(&["--conventional", "--tables", s(&tables), s(&gold)]);
    assert_eq!(json["accepted"], 2, "{json}");
    let rejected = &json["rejected"][0];
    assert_eq!(rejected["record"], 3, "{json}");
    assert!(
        rejected["message"]
            .as_str()
            .unwrap()
            .contains("out of order"),
        "{json}"
    );
}

/// Spider's gold SQL is accepted at every character and every token
/// prefix, except the three train queries that do not run.
#[test]
fn spider_gold_passes_the_checker() {
    let (Some(tables), Some(dev), Some(train)) = (
        shared("spider/tables.json"),
        shared("spider/dev_gold.sql"),
        shared("spider/train_gold.sql"),
    ) else {
        return;
    };
    let json = check_json(&["--tables", s(&tables), s(&train)]);
    assert_eq!(json["total"], 8659);
    let records: Vec<u64> = json["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record"].as_u64().unwrap())
        .collect();
    // No such table Ref_Company_Types; twice ORDER BY/LIMIT before INTERSECT.
    assert_eq!(records, [4398, 5939, 5940], "{json}");

    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("sql.txt");
    let gold = std::fs::read_to_string(&dev).unwrap();
    std::fs::write(&text, gold.replace('\t', "\n")).unwrap();
    let tokenizer = dir.path().join("tokenizer");
    ok(train_tokenizer("--text", &text, 1000, &tokenizer, &["-q"]));
    for args in [
        vec!["--tables", s(&tables), s(&dev)],
        vec![
            "--tables",
            s(&tables),
            "--tokenizer",
            s(&tokenizer),
            s(&dev),
        ],
    ] {
        let json = check_json(&args);
        assert_eq!(json["accepted"], 1034, "{json}");
    }
}

/// Greedy under the checker (the default) keeps SQL valid at least as far
/// as plain greedy does (a row whose candidates all fail goes on as plain
/// greedy); `--max-new-tokens` cuts the output.
#[test]
fn ask_constrains_by_default_and_takes_the_generation_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (sample, model) = sample_with_model(dir.path(), 50, 24, 11);
    let db_id = "retail_store_sales_0001";
    let db = sample.join(format!("databases/{db_id}/{db_id}.sqlite"));
    let tables = sample.join("tables.json");
    let ask = |extra: &[&str]| {
        let mut args = vec![
            "ask",
            "--model",
            s(&model),
            "--db",
            s(&db),
            "--tables",
            s(&tables),
            "--question",
            "How many stores are there?",
            "--json",
        ];
        args.extend(extra);
        let json: serde_json::Value = serde_json::from_slice(&ok(text2sql(&args)).stdout).unwrap();
        json["sql"].as_str().unwrap().to_string()
    };
    // The character where the checker first rejects `sql` (its length
    // when only the end is missing).
    let valid_up_to = |sql: &str, gold: &Path| {
        std::fs::write(
            gold,
            format!("{}\t{db_id}\n", sql.replace(['\n', '\t'], " ")),
        )
        .unwrap();
        let json = check_json(&["--tables", s(&tables), s(gold)]);
        json["rejected"]
            .as_array()
            .unwrap()
            .first()
            .map_or(sql.chars().count() as u64, |r| r["piece"].as_u64().unwrap())
    };
    let gold = dir.path().join("candidate.sql");
    let constrained = ask(&[]);
    let free = ask(&["--no-constrain"]);
    let (held, loose) = (valid_up_to(&constrained, &gold), valid_up_to(&free, &gold));
    assert!(held >= loose, "{constrained:?} {held} / {free:?} {loose}");
    let short = ask(&[
        "--no-constrain",
        "--max-new-tokens",
        "3",
        "--length-penalty",
        "0.5",
    ]);
    assert!(
        short.len() < free.len() && free.starts_with(&short),
        "{short:?} {free:?}"
    );
    // Table links off still decode under the checker; a negative bonus is
    // refused by name.
    let unlinked = ask(&["--table-link-bonus", "0"]);
    assert!(valid_up_to(&unlinked, &gold) >= loose, "{unlinked:?}");
    let refused = text2sql(&[
        "ask",
        "--model",
        s(&model),
        "--db",
        s(&db),
        "--question",
        "How many stores are there?",
        "--table-link-bonus",
        "-1",
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--table-link-bonus"), "{stderr}");
}
