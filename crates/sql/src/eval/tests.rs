use std::path::{Path, PathBuf};

use super::*;
use crate::hardness::spider_hardness;

fn fixture_db(dir: &Path) -> PathBuf {
    let path = dir.join("shop.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (x INTEGER, name TEXT);
         INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');
         CREATE TABLE d (k INTEGER);
         INSERT INTO d VALUES (1), (1), (2);
         CREATE TABLE big (v INTEGER);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO big SELECT i FROM n;",
    )
    .unwrap();
    path
}

fn example(db: &Path, gold: &str, candidates: &[&str]) -> EvalExample {
    EvalExample {
        id: "0".to_string(),
        db_id: "shop".to_string(),
        db_path: Some(db.to_path_buf()),
        gold: gold.to_string(),
        candidates: candidates.iter().map(|c| c.to_string()).collect(),
        tier: None,
        hardness: spider_hardness(gold),
    }
}

fn options(rule: Rule) -> EvalOptions {
    EvalOptions {
        rule,
        limits: SandboxLimits::for_eval(Duration::from_millis(500)),
        ..EvalOptions::default()
    }
}

/// (gold, prediction, correct under Spider, correct under BIRD)
const RULE_CASES: &[(&str, &str, bool, bool)] = &[
    // Order counts only when the gold has ORDER BY (Spider); never for BIRD.
    (
        "SELECT x FROM t ORDER BY x",
        "SELECT x FROM t ORDER BY x DESC",
        false,
        true,
    ),
    (
        "SELECT x FROM t",
        "SELECT x FROM t ORDER BY x DESC",
        true,
        true,
    ),
    // Bags vs sets: DISTINCT is removed from both queries under Spider.
    ("SELECT k FROM d", "SELECT DISTINCT k FROM d", true, true),
    (
        "SELECT k FROM d",
        "SELECT k FROM d WHERE k = 1 UNION ALL SELECT 2 UNION ALL SELECT 2",
        false,
        true,
    ),
    // Column permutation: allowed by Spider, not by BIRD.
    (
        "SELECT x, name FROM t",
        "SELECT name, x FROM t",
        true,
        false,
    ),
    ("SELECT x, name FROM t", "SELECT x FROM t", false, false),
    // 1 == 1.0, '1' != 1.
    ("SELECT 1", "SELECT 1.0", true, true),
    ("SELECT count(*) FROM t", "SELECT 3.0", true, true),
    ("SELECT 1", "SELECT '1'", false, false),
    // Empty equals empty whatever the columns.
    (
        "SELECT x FROM t WHERE x < 0",
        "SELECT name, x FROM t WHERE 0",
        true,
        true,
    ),
    (
        "SELECT x FROM t WHERE x < 0",
        "SELECT x FROM t",
        false,
        false,
    ),
    // `> =` is closed up in the prediction before it runs (Spider only).
    (
        "SELECT x FROM t WHERE x >= 2",
        "SELECT x FROM t WHERE x > = 2",
        true,
        false,
    ),
];

#[test]
fn each_rule_is_pinned_by_hand_made_cases() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    for &(gold, pred, spider, bird) in RULE_CASES {
        let e = example(&db, gold, &[pred]);
        let s = score_example(0, &e, &options(Rule::Spider));
        assert_eq!(s.correct, spider, "spider: {gold} vs {pred}: {}", s.reason);
        let b = score_example(0, &e, &options(Rule::Bird));
        assert_eq!(b.correct, bird, "bird: {gold} vs {pred}: {}", b.reason);
    }
}

#[test]
fn keep_distinct_compares_bags_with_distinct_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    let e = example(&db, "SELECT k FROM d", &["SELECT DISTINCT k FROM d"]);
    let opts = EvalOptions {
        keep_distinct: true,
        ..options(Rule::Spider)
    };
    let outcome = score_example(0, &e, &opts);
    assert_eq!(outcome.verdict, Verdict::WrongResult);
    assert_eq!(outcome.reason, "2 rows, gold has 3");
}

#[test]
fn failures_get_their_own_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    let cases = [
        ("SELECT nope FROM t", Verdict::SqlError),
        ("DROP TABLE t", Verdict::Refused),
        ("", Verdict::Refused),
        ("SELECT count(*) FROM big a, big b, big c", Verdict::Timeout),
    ];
    for (pred, verdict) in cases {
        let outcome = score_example(
            0,
            &example(&db, "SELECT x FROM t", &[pred]),
            &options(Rule::Spider),
        );
        assert_eq!(outcome.verdict, verdict, "{pred}: {}", outcome.reason);
        assert!(!outcome.correct);
    }
    let no_candidates = score_example(0, &example(&db, "SELECT 1", &[]), &options(Rule::Bird));
    assert_eq!(no_candidates.verdict, Verdict::Refused);
    let bad_gold = score_example(
        0,
        &example(&db, "SELECT nope", &["SELECT 1"]),
        &options(Rule::Bird),
    );
    assert_eq!(bad_gold.verdict, Verdict::GoldError);
}

#[test]
fn execution_guided_selection_takes_the_first_candidate_that_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    let beams = ["SELECT nope FROM t", "SELECT x FROM t", "SELECT 42"];
    let e = example(&db, "SELECT x FROM t", &beams);
    let plain = score_example(0, &e, &options(Rule::Spider));
    assert_eq!(plain.verdict, Verdict::SqlError);
    assert_eq!(plain.chosen_candidate, Some(0));
    let guided = EvalOptions {
        execution_guided: true,
        ..options(Rule::Spider)
    };
    let outcome = score_example(0, &e, &guided);
    assert!(outcome.correct, "{}", outcome.reason);
    assert_eq!(outcome.chosen_candidate, Some(1));
    assert_eq!(outcome.prediction, "SELECT x FROM t");
    // Nothing runs: the first candidate is reported with its error.
    let e = example(&db, "SELECT x FROM t", &["SELECT a", "SELECT b"]);
    let outcome = score_example(0, &e, &guided);
    assert_eq!(
        (outcome.chosen_candidate, outcome.verdict),
        (Some(0), Verdict::SqlError)
    );
}

#[test]
fn answers_that_match_only_because_both_results_are_empty_are_counted_apart() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    let none = "SELECT name FROM t WHERE x > 10";
    let examples = vec![
        // A join on a text column (never true) returns nothing: it "matches"
        // a gold query with no rows without answering anything.
        example(&db, none, &["SELECT t.name FROM t JOIN d ON t.name"]),
        example(&db, none, &["SELECT name FROM t"]),
        example(
            &db,
            "SELECT name FROM t WHERE x = 1",
            &["SELECT name FROM t WHERE x < 2"],
        ),
    ];
    let report = evaluate(&examples, &options(Rule::Spider), &|| {}).unwrap();
    let s = &report.summary;
    assert_eq!(
        (s.correct, s.correct_with_no_rows, s.gold_with_no_rows),
        (2, 1, 2)
    );
    assert_eq!(report.examples[0].reason, "same result (no rows)");
    assert_eq!(report.examples[2].reason, "same result");
    assert_eq!(
        report
            .examples
            .iter()
            .map(|o| o.gold_rows)
            .collect::<Vec<_>>(),
        [Some(0), Some(0), Some(1)]
    );
    let table = s.to_table();
    assert!(
        table.contains("correct with an empty gold result: 1 (of 2 such questions"),
        "{table}"
    );
}

#[test]
fn the_report_counts_every_example() {
    let dir = tempfile::tempdir().unwrap();
    let db = fixture_db(dir.path());
    let mut examples = vec![
        example(&db, "SELECT x FROM t", &["SELECT x FROM t"]),
        example(&db, "SELECT x FROM t", &["SELECT nope"]),
        example(&db, "SELECT count(*) FROM t", &["select COUNT(*) from t;"]),
        example(&db, "SELECT x FROM t", &["SELECT 1"]),
    ];
    examples[0].tier = Some("Simple".to_string());
    examples[1].tier = Some("Simple".to_string());
    examples[2].tier = Some("Highly Complex".to_string());
    examples[3].db_path = None;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let report = evaluate(&examples, &options(Rule::Spider), &|| {
        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(done.into_inner(), 4);
    let s = &report.summary;
    assert_eq!(
        (s.total, s.scored, s.no_database, s.correct, s.sql_errors),
        (4, 3, 1, 2, 1)
    );
    assert!((s.accuracy - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(s.normalized_exact_match, 2);
    let tiers: Vec<(&str, usize, usize)> = s
        .by_tier
        .iter()
        .map(|b| (b.name.as_str(), b.examples, b.correct))
        .collect();
    assert_eq!(tiers, [("Simple", 2, 1), ("Highly Complex", 1, 1)]);
    assert_eq!(s.by_hardness.iter().map(|b| b.examples).sum::<usize>(), 3);
    assert_eq!(s.prediction_latency.count, 3);
    assert_eq!(report.examples[3].verdict, Verdict::NoDatabase);
    let table = s.to_table();
    assert!(table.contains("no database: 1 of 4"), "{table}");
}

fn spider_dev_examples() -> Option<Vec<EvalExample>> {
    let root = text2sql_data::test_data::shared_data("spider")?;
    let gold = files::read_gold_file(&root.join("dev_gold.sql")).unwrap();
    Some(
        gold.into_iter()
            .enumerate()
            .map(|(i, g)| EvalExample {
                id: i.to_string(),
                db_path: Some(
                    root.join("database")
                        .join(&g.db_id)
                        .join(format!("{}.sqlite", g.db_id)),
                ),
                hardness: spider_hardness(&g.sql),
                candidates: vec![g.sql.clone()],
                gold: g.sql,
                db_id: g.db_id,
                tier: None,
            })
            .collect(),
    )
}

#[test]
fn spider_dev_gold_against_itself_scores_one_under_both_rules() {
    let Some(examples) = spider_dev_examples() else {
        return;
    };
    assert_eq!(examples.len(), 1034);
    for rule in [Rule::Spider, Rule::Bird] {
        let opts = EvalOptions {
            rule,
            ..EvalOptions::default()
        };
        let report = evaluate(&examples, &opts, &|| {}).unwrap();
        let s = &report.summary;
        let failures: Vec<_> = report
            .examples
            .iter()
            .filter(|o| !o.correct && o.verdict != Verdict::NoDatabase)
            .map(|o| format!("{}: {}", o.gold, o.reason))
            .collect();
        assert!(failures.is_empty(), "{rule:?}: {failures:#?}");
        assert_eq!(
            (s.scored, s.correct, s.no_database),
            (972, 972, 62),
            "{rule:?}"
        );
        assert_eq!(s.accuracy, 1.0);
        assert_eq!(s.normalized_exact_match_rate, 1.0);
        assert!(report
            .examples
            .iter()
            .filter(|o| o.verdict == Verdict::NoDatabase)
            .all(|o| o.db_id == "wta_1"));
    }
}
