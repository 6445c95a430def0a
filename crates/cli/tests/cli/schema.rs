//! End-to-end tests of `text2sql schema` on Spider's real files.

use std::process::Output;

use crate::common::{fails, ok, s, shared, text2sql};

fn stdout(output: &Output) -> String {
    String::from_utf8(ok(output).stdout.clone()).unwrap()
}

/// `text2sql schema` of `db_id` in Spider's `tables` and `databases` in
/// `format`; callers add flags.
fn schema<'a>(
    tables: &'a str,
    databases: &'a str,
    db_id: &'a str,
    format: &'a str,
) -> Vec<&'a str> {
    let mut args = schema_of(tables, db_id);
    args.extend(["--databases", databases, "--format", format]);
    args
}

/// `text2sql schema` of `db_id` in Spider's `tables`, with no other flag.
fn schema_of<'a>(tables: &'a str, db_id: &'a str) -> Vec<&'a str> {
    vec!["schema", "--tables", tables, "--db-id", db_id]
}

fn spider() -> Option<(String, String)> {
    let tables = shared("spider/tables.json")?;
    let databases = shared("spider/database")?;
    Some((
        tables.display().to_string(),
        databases.display().to_string(),
    ))
}

#[test]
fn omnisql_format_prints_omnisql_own_car_1_schema() {
    let (Some((tables, databases)), Some(example)) = (spider(), shared("omnisql/example_2.txt"))
    else {
        return;
    };
    let out = stdout(&text2sql(&schema(&tables, &databases, "car_1", "omnisql")));
    let prompt = std::fs::read_to_string(example).unwrap();
    let start = prompt.find("Database Schema:\n").unwrap() + "Database Schema:\n".len();
    let end = prompt.find("\nThis schema describes").unwrap();
    assert_eq!(out, format!("{}\n", &prompt[start..end]));
}

#[test]
fn compact_format_prunes_to_the_budget_and_says_what_it_left_out() {
    let Some((tables, databases)) = spider() else {
        return;
    };
    let question =
        "How many car makers are there in each continents? List the continent name and the count.";
    let mut base = schema(&tables, &databases, "car_1", "compact");
    base.extend(["--question", question]);
    let full = stdout(&text2sql(&base));
    assert!(
        full.starts_with(&format!(
            "{question} | car_1 | continents : ContId ( 1 , 2 ) , Continent ( america , europe )"
        )),
        "{full}"
    );
    assert!(
        full.contains("| countries.Continent = continents.ContId"),
        "{full}"
    );
    let full_words = full.split_whitespace().count();

    let budget = (full_words * 2 / 3).to_string();
    let mut args = base.clone();
    args.extend(["--max-tokens", &budget]);
    let output = text2sql(&args);
    let pruned = stdout(&output);
    assert!(
        pruned.split_whitespace().count() <= full_words * 2 / 3,
        "{pruned}"
    );
    assert!(pruned.contains("| car_makers : Id"), "{pruned}");
    assert!(pruned.contains("| continents : ContId"), "{pruned}");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(report.contains("left out"), "{report}");

    // The same as JSON, for scripts.
    let mut json_args = args.clone();
    json_args.push("--json");
    let value: serde_json::Value = serde_json::from_str(&stdout(&text2sql(&json_args))).unwrap();
    assert_eq!(value["text"].as_str().unwrap(), pruned.trim_end());
    assert_eq!(value["pruned"]["over_budget"], false);
    assert!(value["pruned"]["tokens"].as_u64().unwrap() as usize <= full_words * 2 / 3);
}

#[test]
fn schema_linking_marks_the_names_a_question_mentions() {
    let Some((tables, databases)) = spider() else {
        return;
    };
    let mut args = schema(&tables, &databases, "concert_singer", "compact");
    args.extend([
        "--values",
        "none",
        "--question",
        "How many singers performed in each stadium?",
        "--schema-linking",
    ]);
    let text = stdout(&text2sql(&args));
    // `stadium` is a whole table name; `singers` is `singer` and the first
    // word of `singer_in_concert`.
    assert!(text.contains("| stadium @ : Stadium_ID ~ ,"), "{text}");
    assert!(text.contains("| singer @ : Singer_ID ~ ,"), "{text}");
    assert!(text.contains("| singer_in_concert ~ :"), "{text}");
    assert!(
        !text.contains("Capacity ~") && !text.contains("Capacity @"),
        "{text}"
    );
}

#[test]
fn retrieved_values_show_a_stored_value_that_is_not_an_example() {
    let Some((tables, databases)) = spider() else {
        return;
    };
    let matching = |db_id: &str, question: &str, extra: &[&str]| {
        let mut args = schema(&tables, &databases, db_id, "compact");
        args.extend(["--values", "matching", "--question", question]);
        args.extend_from_slice(extra);
        stdout(&text2sql(&args))
    };
    // `France` is a singer's country, but the two examples are
    // `Netherlands` and `United States`.
    let question = "What is the average, minimum, and maximum age of all singers from France?";
    let without = matching("concert_singer", question, &[]);
    assert!(
        without.contains("| singer : Singer_ID , Name , Country , "),
        "{without}"
    );
    let with = matching("concert_singer", question, &["--retrieve-values"]);
    assert!(
        with.contains("| singer : Singer_ID , Name , Country ( France ) , "),
        "{with}"
    );
    // A multi-word value, named in lower case with its punctuation, within a budget.
    let question = "What is the accelerate of the car make amc hornet sportabout (sw)?";
    let with = matching(
        "car_1",
        question,
        &["--retrieve-values", "--max-tokens", "60"],
    );
    assert!(
        with.contains("Make ( amc hornet sportabout (sw) )"),
        "{with}"
    );
    // Unrelated questions get nothing more.
    let question = "How many singers are there?";
    assert_eq!(
        matching("concert_singer", question, &["--retrieve-values"]),
        matching("concert_singer", question, &[])
    );
    // The index needs the database.
    let mut args = schema_of(&tables, "car_1");
    args.extend(["--format", "compact", "--retrieve-values"]);
    let err = fails(&text2sql(&args));
    assert!(err.contains("--databases"), "{err}");
}

#[test]
fn tokenizer_file_counts_the_budget() {
    let Some((tables, databases)) = spider() else {
        return;
    };
    // A tokenizer that makes every character a token (with the special
    // tokens every T5 tokenizer has, which the model's loader requires).
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = dir.path().join("tokenizer.json");
    std::fs::write(
        &tokenizer,
        r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
            "normalizer":null,
            "pre_tokenizer":{"type":"Split","pattern":{"Regex":"."},"behavior":"Isolated","invert":false},
            "post_processor":null,"decoder":null,
            "model":{"type":"WordLevel","vocab":{"<pad>":0,"</s>":1,"<unk>":2},"unk_token":"<unk>"}}"#,
    )
    .unwrap();
    let mut args = schema(&tables, &databases, "car_1", "omnisql");
    args.extend(["--question", "What is the horsepower of cars from 1970?"]);
    args.extend(["--max-tokens", "900", "--tokenizer", s(dir.path())]);
    let out = stdout(&text2sql(&args));
    assert!(out.trim_end().chars().count() <= 900, "{} chars", out.len());
    assert!(out.contains("CREATE TABLE cars_data"), "{out}");
    assert!(out.contains("Horsepower text"), "{out}");
}

#[test]
fn missing_database_and_unknown_db_id_fail_with_one_line() {
    let Some((tables, _)) = spider() else {
        return;
    };
    let mut args = schema_of(&tables, "car_1");
    args.extend(["--db", "/nonexistent/car_1.sqlite"]);
    let err = fails(&text2sql(&args));
    assert!(err.contains("/nonexistent/car_1.sqlite"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let err = fails(&text2sql(&schema_of(&tables, "no_such_db")));
    assert!(
        err.contains("no_such_db") && err.contains("tables.json"),
        "{err}"
    );
}
