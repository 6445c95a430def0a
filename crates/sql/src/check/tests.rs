use std::collections::HashMap;
use std::sync::Arc;

use text2sql_data::schema::{read_tables_file, Column, DatabaseSchema, Table};

use super::*;

fn schema() -> Arc<SchemaIndex> {
    let table = |name: &str, columns: &[&str]| Table {
        name: name.to_string(),
        natural_name: name.to_string(),
        columns: columns
            .iter()
            .map(|c| Column {
                name: c.to_string(),
                description: c.to_string(),
                data_type: "text".to_string(),
                sample_values: Vec::new(),
            })
            .collect(),
        primary_key: vec![0],
    };
    Arc::new(SchemaIndex::new(&DatabaseSchema {
        db_id: "concert_singer".into(),
        tables: vec![
            table("singer", &["Singer_ID", "Name", "Country", "Age"]),
            table(
                "concert",
                &["concert_ID", "concert_Name", "Stadium_ID", "Year"],
            ),
            table("singer_in_concert", &["concert_ID", "Singer_ID"]),
            table("stadium", &["Stadium_ID", "Name", "Capacity"]),
            table("Cast", &["aid", "role"]),
        ],
        foreign_keys: Vec::new(),
        ddls: Vec::new(),
        values: None,
    }))
}

/// Feeds `sql` one character at a time: the offset where it is first
/// rejected (at a prefix or at the end), or None when accepted throughout.
fn first_rejection(schema: &Arc<SchemaIndex>, sql: &str) -> Option<(usize, String)> {
    first_rejection_by(SqlChecker::new(schema.clone()), sql)
}

/// [`first_rejection`] under `checker`'s rules.
fn first_rejection_by(mut checker: SqlChecker, sql: &str) -> Option<(usize, String)> {
    for (i, c) in sql.char_indices() {
        if let Err(e) = checker.push(c.encode_utf8(&mut [0; 4])) {
            return Some((i, e.message));
        }
    }
    checker.finish().err().map(|e| (sql.len(), e.message))
}

/// `sql` is accepted at every character prefix and as a whole.
fn assert_accepted(schema: &Arc<SchemaIndex>, sql: &str) {
    assert_eq!(first_rejection(schema, sql), None, "{sql}");
    assert_eq!(check_sql(schema, sql), Ok(()), "{sql}");
}

#[test]
fn accepts_valid_queries_at_every_prefix() {
    let schema = schema();
    for sql in [
        "SELECT count(*) FROM singer",
        "select T1.name, T2.concert_name from singer as T1 join singer_in_concert as T3 on T1.singer_id = T3.singer_id join concert T2 on T2.concert_id = T3.concert_id",
        "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer) ORDER BY age DESC LIMIT 3",
        "SELECT country, count(*) AS n FROM singer GROUP BY country HAVING n > 1 ORDER BY n",
        "WITH old AS (SELECT * FROM singer WHERE age >= 40) SELECT o.name, o.age FROM old AS o",
        "SELECT name FROM singer WHERE singer_id NOT IN (SELECT singer_id FROM singer_in_concert) ;",
        "SELECT name FROM singer WHERE name LIKE '%a''b%' AND age BETWEEN 20 AND 30 OR country IS NOT NULL",
        "SELECT name FROM singer WHERE age + 1 > 20 AND (age = 3) = (age < 4) OR age - 2 <> 9 AND CASE WHEN age = 1 THEN 2 = 2 END",
        "SELECT CASE WHEN age > 30 THEN 'old' ELSE \"young\" END, CAST(age AS REAL) / 2.5e1 FROM singer",
        "SELECT name, rank() OVER (PARTITION BY country ORDER BY age DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM singer",
        "SELECT name FROM singer UNION ALL SELECT name FROM stadium EXCEPT SELECT concert_name FROM concert",
        "SELECT sub.c FROM (SELECT country AS c FROM singer) AS sub\n  -- a comment\n",
        "SELECT `Name`, [Age], \"Country\" FROM \"singer\" WHERE EXISTS (SELECT 1 FROM concert WHERE concert.year = 2014)",
        "SELECT s.name FROM singer s WHERE s.singer_id IN (SELECT singer_id FROM singer_in_concert WHERE concert_id = s.singer_id)\n/* done */",
        "SELECT T1.name FROM stadium AS T1 JOIN concert AS T2 USING (stadium_id) GROUP BY T1.name",
        "WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < 5) SELECT x FROM cnt",
        "SELECT max(age), min(age) FROM singer LIMIT 1 OFFSET 2",
        "SELECT \"name\" AS \"Full Name\" FROM \"Singer\" AS \"s x\" WHERE age = \"30\"",
        "SELECT 1 FROM singer, concert ON singer.age = concert.year JOIN (stadium) USING (name)",
        // A keyword that is also a table's name, as in Spider's imdb.
        "SELECT t2.role FROM CAST AS t2 JOIN singer AS t1 ON t2.aid = t1.singer_id",
        // A database-qualified column and SQLite's built-in collations.
        "SELECT main.singer.name FROM singer WHERE name = 'x' COLLATE NOCASE ORDER BY age COLLATE binary",
        // Compounds of equal width, or whose width a star or VALUES hides.
        "SELECT name, age FROM singer UNION SELECT (SELECT name FROM stadium), max(age) FROM singer",
        "SELECT * FROM singer EXCEPT SELECT name, age FROM singer UNION SELECT s.* FROM singer AS s",
        "VALUES (1, 2) UNION SELECT name, age FROM singer",
    ] {
        assert_accepted(&schema, sql);
    }
}

/// A CTE's or derived table's columns are named as SQLite names them (an
/// alias, a bare column's own name, a star's columns, an expression's
/// text): every one of these runs in SQLite.
#[test]
fn accepts_every_column_a_cte_or_derived_table_has() {
    let schema = schema();
    for sql in [
        "WITH c AS (SELECT country, count(*) AS n FROM singer GROUP BY country) SELECT country, n FROM c WHERE n > 1",
        "WITH c(k, v) AS (SELECT country, age FROM singer) SELECT c.k, v FROM c",
        "SELECT d.total FROM (SELECT count(*) AS total FROM singer) AS d",
        "SELECT d.\"count(*)\" FROM (SELECT count(*) FROM singer) d",
        "SELECT x.name FROM (SELECT (T1.name) FROM singer T1) AS x",
        "SELECT x.age FROM (SELECT age COLLATE nocase FROM singer) x",
        "SELECT x.name FROM (SELECT main.singer.name FROM singer) x",
        "SELECT x.concert_name FROM (SELECT T2.* FROM singer AS T1 JOIN concert AS T2 ON 1) AS x",
        "WITH a AS (SELECT name, age FROM singer), b AS (SELECT * FROM a) SELECT b.age FROM b",
        "WITH u AS (SELECT name FROM singer UNION SELECT concert_name FROM concert) SELECT u.name FROM u",
        "WITH c AS (SELECT count(*) AS 'total' FROM singer) SELECT total FROM c",
        "SELECT x.\"name:1\" FROM (SELECT T1.name, T2.name FROM singer T1 JOIN stadium T2 ON 1) x",
        "SELECT x.name FROM (SELECT \"name\" FROM singer) x",
        "WITH c AS (SELECT name AS n FROM singer) SELECT singer.age FROM singer JOIN c ON c.n = singer.name",
        "SELECT x.rowid FROM (SELECT name FROM singer) x",
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT r.n FROM r",
        "SELECT x.column1 FROM (VALUES (1, 2)) AS x",
        "SELECT t.name FROM (SELECT name FROM singer) AS t JOIN (SELECT name AS nm FROM stadium) AS s ON t.name = s.nm",
        // An alias whose first letters are another alias, or the qualifier
        // of a column read before FROM (real SynSQL queries).
        "SELECT u.name FROM concert ur JOIN singer u ON 1",
        "SELECT p.name FROM singer p LEFT JOIN concert pr ON 1",
        "SELECT x.name FROM singer AS x JOIN stadium AS xy ON 1",
        "SELECT u.name FROM (SELECT year FROM concert) ur JOIN singer u ON 1",
        // A CTE named like a table hides it.
        "WITH singer AS (SELECT name AS nn FROM stadium) SELECT singer.nn FROM singer",
    ] {
        assert_accepted(&schema, sql);
    }
}

/// Rejections at the character where the query went wrong, with a reason
/// that says what (the committed list of wrong queries of issue #12).
#[test]
fn rejects_wrong_queries_where_they_go_wrong() {
    let schema = schema();
    let cases: &[(&str, &str, &str)] = &[
        // unknown table: rejected while the name is still being typed
        ("SELECT name FROM singr", "singr", "singr"),
        ("SELECT name FROM players", "players", "no such table: p"),
        (
            "SELECT name FROM singer_in WHERE",
            "_in WHERE",
            "no such table: singer_in",
        ),
        // unknown column: no table has it, decided when the name ends
        (
            "SELECT nme FROM singer WHERE",
            " FROM",
            "no such column: nme",
        ),
        (
            "SELECT name FROM singer WHERE agee > 3",
            "agee",
            "starts with `agee`",
        ),
        // a name no table has, before FROM is read: rejected while typed
        // once it leaves every name, keyword and function (a short word may
        // still be an alias FROM defines later)
        (
            "SELECT nationality FROM singer",
            "nationality",
            "starts with `natio`",
        ),
        (
            "SELECT count(singr_name) FROM singer",
            "singr_name",
            "starts with `singr`",
        ),
        // a word grown past every name: a decoder cannot extend one forever
        (
            "SELECT name AS aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa FROM singer",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "starts with `aaaa",
        ),
        // a column of a table not in FROM
        (
            "SELECT name FROM singer WHERE capacity > 10",
            " > 10",
            "no such column: capacity",
        ),
        // a qualified column the table lacks: rejected mid-word
        (
            "SELECT T1.name FROM singer AS T1 WHERE T1.yx",
            "yx",
            "starts with `y`",
        ),
        // alias not defined
        (
            "SELECT T2.name FROM singer AS T1 WHERE",
            "WHERE",
            "no such column: t2.name",
        ),
        // ambiguous column
        (
            "SELECT name FROM singer JOIN stadium ON singer.age = stadium.capacity ORDER",
            "ORDER",
            "ambiguous column name: name",
        ),
        // ambiguous in an ON clause: at once when both tables are in FROM,
        // at FROM's end when a later table brings the second holder
        (
            "SELECT 1 FROM singer JOIN stadium ON name = 'x'",
            " = 'x'",
            "ambiguous column name: name",
        ),
        (
            "SELECT 1 FROM singer_in_concert JOIN stadium ON singer_id > 0 JOIN singer WHERE",
            "WHERE",
            "ambiguous column name: singer_id",
        ),
        // unbalanced parentheses
        ("SELECT count(*)) FROM singer", ") FROM", "unexpected `)`"),
        ("SELECT count(* FROM singer", "FROM", "starts with `f`"),
        ("SELECT count(* , name FROM singer", ",", "expected )"),
        (
            "SELECT name FROM singer WHERE (age > 3",
            "",
            "expected `,` or `)`",
        ),
        // a keyword out of place
        ("SELECT FROM singer", "FROM", "expected an expression"),
        // (`o` may still start `oid`; `or` starts nothing an operand can be)
        (
            "SELECT name FROM singer WHERE ORDER BY age",
            "ORDER",
            "starts with `or`",
        ),
        (
            "SELECT name FROM singer GROUP age",
            "age",
            "starts with `a`",
        ),
        (
            "SELECT name FROM singer GROUP (age)",
            "(age)",
            "expected BY",
        ),
        // a comment that does not stand on its own line (SynSQL's do): a
        // decoder must not hide text in one
        (
            "SELECT name FROM singer -- the rest",
            "-- the rest",
            "unexpected `-`",
        ),
        (
            "SELECT name /* x */ FROM singer",
            "/* x */",
            "line of its own",
        ),
        // a quote never closed: cut off at 120 bytes
        (
            concat!(
                "SELECT name FROM singer WHERE name = '",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbbbbbb"
            ),
            "bbbbbbbb",
            "quoted text longer",
        ),
        // a trailing second statement
        (
            "SELECT name FROM singer; SELECT 1",
            "SELECT 1",
            "second statement",
        ),
        (
            "SELECT name FROM singer SELECT age",
            "SELECT age",
            "after the end",
        ),
        // a SELECT-list column of an alias, decided when the alias is defined
        (
            "SELECT T2.capacity FROM singer AS T1 JOIN concert AS T2 ON T1.age = T2.year",
            "T2 ON",
            "no such column: t2.capacity",
        ),
        // chained comparisons (SQLite's `(a = b) = c`, never meant)
        (
            "SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.age = T2.year = T1.age",
            "= T1.age",
            "a second comparison",
        ),
        // a double quote where neither a string nor a name can stand:
        // rejected at the quote, not when it closes
        (
            "SELECT name FROM singer AS T6\" AND age",
            "\" AND",
            "after the end of the query",
        ),
        (
            "SELECT name FROM \"singers\" WHERE",
            "singers\" WHERE",
            "no such table: singers",
        ),
        // a join constraint on the first source
        (
            "SELECT T1.name FROM singer AS T1 ON T1.age = 3",
            "ON T1",
            "a JOIN clause is required before `on`",
        ),
        // a second join constraint
        (
            "SELECT count(*) FROM singer AS T1 JOIN concert AS T2 ON T2.year ON 1",
            "ON 1",
            "one ON or USING constraint",
        ),
        // one alias for two sources (legal in SQLite, always a mistake)
        (
            "SELECT count(*) FROM singer AS T1 JOIN concert AS T1 ON 1",
            "T1 ON",
            "alias `t1` is already defined",
        ),
        // an alias without AS is short after a table too (a model wrote
        // `FROM album GROUPSELECT CROSS JOIN ...`)
        (
            "SELECT name FROM singer abcdefgh",
            "abcdefgh",
            "starts with `abcde`",
        ),
        (
            "SELECT name FROM singer GROUPS JOIN concert",
            "GROUPS",
            "starts with `groups`",
        ),
        // a call in FROM that is not one of SQLite's table-valued functions
        (
            "SELECT name FROM singer JOIN concert (x)",
            "(x)",
            "`concert` is not a table-valued function",
        ),
        // a table qualified by anything but a database (`JOIN album.invoice`)
        (
            "SELECT name FROM singer JOIN concert.singer",
            ".singer",
            "`concert` is not the database `main`",
        ),
        (
            "SELECT name FROM main.main.singer",
            "main.singer",
            "no such table: main.m",
        ),
        // a qualified column before FROM: a table's name stands for that
        // table, and an alias's column must be some table's
        (
            "SELECT singer.capacity FROM singer",
            "apacity",
            "starts with `ca`",
        ),
        // a quoted alias that hides SQL
        (
            "SELECT name FROM singer AS \"x ORDER BY age DESC LIMIT 1; ORDER BY age DESC LIMIT 1\"",
            "LIMIT 1\"",
            "a quoted alias longer than any name",
        ),
        // a value written as an alias, the escaped quote carrying on
        (
            "SELECT name FROM singer JOIN singer AS \"Spring\"\" AND age = \"",
            "\" AND age",
            "a quote character inside an alias",
        ),
        (
            "SELECT name FROM singer JOIN singer AS `it``s` ON 1",
            "`s`",
            "a quote character inside an alias",
        ),
        // a column a CTE or derived table does not have (SQLite: `no such
        // column`); a model wrote `T2.total_` on a CTE of (updatedBy, n)
        (
            "WITH t AS (SELECT country, count(*) AS n FROM singer GROUP BY country) SELECT T2.total_ FROM singer AS T1 JOIN t AS T2 ON T1.country = T2.country",
            "T2 ON",
            "no such column: t2.total_",
        ),
        (
            "WITH c AS (SELECT name FROM singer) SELECT c.age FROM c",
            "age FROM c",
            "starts with `a`",
        ),
        (
            "WITH c AS (SELECT count(*) AS n FROM singer) SELECT m FROM c WHERE",
            " FROM c WHERE",
            "no such column: m",
        ),
        (
            "SELECT x.age FROM (SELECT T1.name FROM singer T1) AS x WHERE",
            "x WHERE",
            "no such column: x.age",
        ),
        (
            "WITH old AS (SELECT * FROM stadium) SELECT 1 FROM old WHERE old.age",
            "age",
            "starts with `a`",
        ),
        // a subquery without FROM reading the outer query's column (SQLite:
        // "misuse of aggregate"), as a model wrote it
        (
            "SELECT name FROM singer WHERE age > (SELECT AVG(age) ORDER BY age)",
            "ORDER BY age)",
            "without from",
        ),
        (
            "SELECT name FROM singer AS T1 WHERE age > (SELECT max(T1.age))",
            ")",
            "without from",
        ),
        // a numbered alias does not grow into a longer one: a model whose
        // T1 lacked the column it had promised wrote `AS T1DISTINCT2`
        (
            "SELECT T1.capacity FROM singer AS T1DISTINCT2",
            "1DISTINCT2",
            "no such column: t1.capacity",
        ),
        // an ON clause naming a table the SELECT list waits on before it is
        // joined (stricter than SQLite's inner joins): a model promised
        // T1.x, could not give T1 a table with x, and never defined T1
        (
            "SELECT T1.name FROM singer AS T2 JOIN concert AS T3 ON T1.name = T2.name",
            "1.name = T2",
            "starts with `t1`",
        ),
        // nor when a piece brings the number and more at once
        (
            "SELECT name FROM singer AS T2ill JOIN concert",
            "T2ill JOIN",
            "goes on past its number",
        ),
        (
            "SELECT name FROM singer AS T200 JOIN concert",
            "T200 JOIN",
            "goes on past its number",
        ),
        // `temp` holds no table a SELECT could read
        (
            "SELECT name FROM temp.singer",
            "temp.singer",
            "no such table: t",
        ),
        // a compound's SELECTs differ in width: one column too many is
        // refused at its comma, one too few where the list ends
        (
            "SELECT name, age FROM singer INTERSECT SELECT name, age, country FROM singer",
            ", country",
            "the first one's 2 result column(s)",
        ),
        (
            "SELECT name, age FROM singer INTERSECT SELECT name FROM singer",
            "FROM singer",
            "the first one's 2 result column(s), this one 1",
        ),
        (
            "SELECT name, age FROM singer UNION SELECT name, age FROM singer EXCEPT SELECT age",
            "",
            "the first one's 2 result column(s), this one 1",
        ),
        // digits without end
        (
            "SELECT name FROM singer WHERE age > 2000000000000000000000000000000000000",
            "2000",
            "a number longer than 32 characters",
        ),
        // arguments past a function's last
        (
            "SELECT ROUND(AVG(age), 2, 3) FROM singer",
            ", 3) FROM singer",
            "round() takes at most 2 arguments",
        ),
        (
            "SELECT name, rank(age) OVER (ORDER BY age) FROM singer",
            "age) OVER (ORDER BY age) FROM singer",
            "rank() takes at most 0 arguments",
        ),
        // a column name called as a function
        (
            "SELECT count(*) FROM singer WHERE age (*)",
            "(*)",
            "no such function: age",
        ),
        // a table's name where a column must be
        (
            "SELECT stadium FROM singer",
            " FROM",
            "no such column: stadium",
        ),
        // a table twice without an alias (every `singer.x` is ambiguous)
        (
            "SELECT count(*) FROM singer JOIN singer ON 1",
            "ON 1",
            "the table `singer` is already in FROM",
        ),
        // three-part names start with a database, and name a real column
        (
            "SELECT count(*) FROM singer WHERE singer.name.age = 1",
            ".age",
            "`singer` is not the database `main`",
        ),
        (
            // (a table's name stands for that table, even before FROM)
            "SELECT main.singer.capacity FROM singer",
            "apacity FROM",
            "no such column: singer.ca",
        ),
        // a collation SQLite does not have (a model wrote `"x" COLLATE
        // " AND y = "` to swallow text into a quoted name)
        (
            "SELECT name FROM singer WHERE name = \"x\" COLLATE \" AND age = \"",
            "\" AND age",
            "expected BINARY or NOCASE or RTRIM",
        ),
        (
            "SELECT name FROM singer WHERE name = 'x' COLLATE french",
            "french",
            "starts with `f`",
        ),
        // incomplete at the end
        (
            "SELECT name FROM singer WHERE age >",
            "",
            "expected an expression",
        ),
    ];
    let mut failures = Vec::new();
    for (sql, at, reason) in cases {
        let expected = if at.is_empty() {
            sql.len()
        } else {
            sql.rfind(at).unwrap() + at.find(|c: char| c != ' ').unwrap()
        };
        let Some((offset, message)) = first_rejection(&schema, sql) else {
            failures.push(format!("{sql}: accepted"));
            continue;
        };
        // Rejected at the offending token, or while typing it.
        let token_end = sql[expected..]
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .map_or(sql.len(), |n| expected + n.max(1));
        if !(expected..=token_end).contains(&offset)
            || !message.to_lowercase().contains(&reason.to_lowercase())
        {
            failures.push(format!(
                "{sql}: rejected at {offset} ({message}), expected at {expected} ({reason})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_rejected_checker_stays_rejected_and_finish_does_not_consume() {
    let schema = schema();
    let mut checker = SqlChecker::new(schema.clone());
    checker.push("SELECT name FROM singer").unwrap();
    assert!(checker.finish().is_ok());
    // Still extendable after asking.
    checker.push(" WHERE age > 3").unwrap();
    assert!(checker.finish().is_ok());
    let clone = checker.clone();
    assert!(checker.push(" )").is_err());
    assert!(checker.push(" AND age < 9").is_err());
    let mut clone = clone;
    clone.push(" AND age < 9").unwrap();
    assert!(clone.finish().is_ok());
}

/// Gold `(sql, db_id)` pairs (of a `SQL<TAB>db_id` file, or Spider's JSON)
/// and each database's names.
type Gold = (Vec<(String, String)>, HashMap<String, Arc<SchemaIndex>>);

fn spider_gold(file: &str) -> Option<Gold> {
    let gold_file = text2sql_data::test_data::shared_data(&format!("spider/{file}"))?;
    let root = text2sql_data::test_data::shared_data_dir().join("spider");
    let schemas = read_tables_file(&root.join("tables.json"))
        .unwrap()
        .into_iter()
        .map(|s| (s.db_id.clone(), Arc::new(SchemaIndex::new(&s))))
        .collect();
    let gold = if file.ends_with(".json") {
        // Spider's own JSON: `query` and `db_id` per question.
        let text = std::fs::read_to_string(&gold_file).unwrap();
        let records: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        records
            .iter()
            .map(|r| {
                (
                    r["query"].as_str().unwrap().to_string(),
                    r["db_id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    } else {
        crate::eval::files::read_gold_file(&gold_file)
            .unwrap()
            .into_iter()
            .map(|g| (g.sql, g.db_id))
            .collect()
    };
    Some((gold, schemas))
}

/// Every Spider gold query (train and dev) is accepted at every character
/// prefix and at its end, with its own schema; the three train queries that
/// do not run on their databases (a table `Ref_Company_Types` that
/// assets_maintenance lacks, and twice `LIMIT` before `INTERSECT`) are the
/// only ones rejected.
#[test]
fn spider_gold_is_accepted_at_every_prefix() {
    for (file, expected_rejections) in [("dev_gold.sql", 0), ("train_gold.sql", 3)] {
        let Some((gold, schemas)) = spider_gold(file) else {
            continue;
        };
        let mut rejected = Vec::new();
        for (sql, db_id) in &gold {
            let schema = &schemas[db_id];
            if let Some((offset, message)) = first_rejection(schema, sql) {
                rejected.push(format!("{db_id}: {sql}\n   at {offset}: {message}"));
            }
        }
        assert_eq!(
            rejected.len(),
            expected_rejections,
            "{file}: {} of {} rejected:\n{}",
            rejected.len(),
            gold.len(),
            rejected.join("\n")
        );
    }
}

/// Held to its own shape, every Spider dev gold query is accepted at every
/// character prefix: the shape's rules (a double-quoted token is a value,
/// a word only a keyword could finish must be one SQL allows) refuse no
/// query of the shape. Blanks are single (a held query may not have three
/// in a row, which a few gold queries have).
#[test]
fn spider_gold_held_to_its_own_shape_is_accepted_at_every_prefix() {
    let Some((gold, schemas)) = spider_gold("dev_gold.sql") else {
        return;
    };
    let mut rejected = Vec::new();
    for (sql, db_id) in &gold {
        let sql = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        let sql = sql.as_str();
        let shape = Skeleton::of_sql(sql).unwrap();
        let checker = SqlChecker::new(schemas[db_id].clone()).with_skeletons(vec![shape]);
        if let Some((offset, message)) = first_rejection_by(checker, sql) {
            rejected.push(format!("{db_id}: {sql}\n   at {offset}: {message}"));
        }
    }
    assert!(rejected.is_empty(), "{}", rejected.join("\n"));
}

/// The rules of a second attempt (`SqlChecker::conventional`): numbered
/// aliases in FROM order (a subquery may start again at `T1`, or go on);
/// a numbered alias is one letter and its number; a column read through an alias FROM has not
/// defined yet is some table's or CTE's. Plain SQL rules accept it all.
#[test]
fn conventional_rules_refuse_what_gold_sql_never_does() {
    let schema = schema();
    let conventional = || SqlChecker::new(schema.clone()).conventional();
    for (sql, at) in [
        // `T2` before any `T1`.
        (
            "SELECT T1.Age FROM singer AS T2 JOIN singer AS T1 ON T1.Age = T2.Age",
            30,
        ),
        (
            "SELECT T1.Age FROM singer AS T1 JOIN concert AS T3 ON T1.Age = T3.Year",
            49,
        ),
        ("SELECT * FROM singer AS TX1", 26),
        // The first table of FROM is `T1`, which has `Name`: `concert` has not.
        (
            "SELECT T1.Name FROM concert JOIN singer AS T1 ON T1.Age = concert.Year",
            27,
        ),
        // `Sing` could begin `Singer_ID`; `Singer` is no table's column
        // (here a derived table's, which plain SQL may read so).
        (
            "SELECT T1.Singer FROM (SELECT Name AS Singer FROM singer) AS T1",
            16,
        ),
        // A ninth result column; a string of 49 characters.
        (
            "SELECT Age, Age, Age, Age, Age, Age, Age, Age, Age FROM singer",
            50,
        ),
        (
            "SELECT Name FROM singer WHERE Name = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'",
            86,
        ),
    ] {
        let (offset, message) =
            first_rejection_by(conventional(), sql).unwrap_or_else(|| panic!("accepted: {sql}"));
        assert_eq!(offset, at, "{sql}: {message}");
        assert_eq!(first_rejection(&schema, sql), None, "{sql}");
    }
    for sql in [
        "SELECT T1.Name FROM singer AS T1 JOIN concert AS T2 ON T1.Age = T2.Year",
        "SELECT T1.Name FROM singer AS T1 WHERE T1.Age > (SELECT avg(T1.Age) FROM singer AS T1)",
        "SELECT T1.Name FROM singer AS T1 EXCEPT SELECT T2.Name FROM singer AS T2",
        "SELECT T2.Name FROM singer AS T1 JOIN singer AS T2 ON T1.Age = T2.Age",
        "SELECT T1.concert_Name FROM concert AS T1",
        "SELECT * FROM (SELECT Name AS n FROM singer) AS sub WHERE sub.n > 1",
        "SELECT T1.rowid FROM singer AS T1",
        "SELECT Age, Age, Age, Age, Age, Age, Age, Age FROM singer",
        "SELECT Name FROM singer WHERE Name = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'",
    ] {
        assert_eq!(first_rejection_by(conventional(), sql), None, "{sql}");
    }
}

/// Spider's gold under the conventional rules: all of dev; of
/// train_spider.json (Spider's own 7,000 questions; the 1,659 of
/// train_others, GeoQuery and the like, number their aliases their own
/// way), the three queries any checker rejects and the two that alias
/// their first table `T2` (`FROM management AS T2 JOIN head AS T1`).
#[test]
fn conventional_rules_keep_spider_gold_but_a_few() {
    for (file, expected_rejections) in [("dev_gold.sql", 0), ("train_spider.json", 5)] {
        let Some((gold, schemas)) = spider_gold(file) else {
            continue;
        };
        let rejected: Vec<String> = gold
            .iter()
            .filter_map(|(sql, db_id)| {
                let checker = SqlChecker::new(schemas[db_id].clone()).conventional();
                first_rejection_by(checker, sql).map(|(at, why)| format!("{sql}\n  at {at}: {why}"))
            })
            .collect();
        assert_eq!(
            rejected.len(),
            expected_rejections,
            "{file}:\n{}",
            rejected.join("\n")
        );
    }
}

/// A sample corpus of 3,000 records written with `seed` into a temporary
/// folder, and its records.
fn sample_corpus(seed: u64) -> (tempfile::TempDir, Vec<serde_json::Value>) {
    use text2sql_data::sample::{write_sample, SampleOptions};
    let dir = tempfile::tempdir().unwrap();
    let opts = SampleOptions {
        records: 3000,
        seed,
        ..SampleOptions::default()
    };
    write_sample(dir.path(), &opts, &mut |_| {}).unwrap();
    let records =
        serde_json::from_slice(&std::fs::read(dir.path().join("data.json")).unwrap()).unwrap();
    (dir, records)
}

/// The sample corpus's gold SQL, which the quickstart model learns from,
/// keeps every convention: decoding's first attempt holds it to them.
#[test]
fn conventional_rules_keep_the_sample_corpus_gold() {
    let (dir, records) = sample_corpus(7);
    let schemas: HashMap<String, Arc<SchemaIndex>> =
        read_tables_file(&dir.path().join("tables.json"))
            .unwrap()
            .into_iter()
            .map(|s| (s.db_id.clone(), Arc::new(SchemaIndex::new(&s))))
            .collect();
    let rejected: Vec<String> = records
        .iter()
        .filter_map(|record| {
            let (sql, db_id) = (record["sql"].as_str()?, record["db_id"].as_str()?);
            let checker = SqlChecker::new(schemas[db_id].clone()).conventional();
            first_rejection_by(checker, sql).map(|(at, why)| format!("{sql}\n  at {at}: {why}"))
        })
        .collect();
    assert_eq!(records.len(), 3000);
    assert!(rejected.is_empty(), "{}", rejected.join("\n"));
}

/// A name pushed whole (a schema symbol's text, ` rgnId `) is checked as
/// soon as it ends, not when the next token comes: comments after it would
/// otherwise hide it to the token limit.
#[test]
fn a_whole_name_in_from_is_checked_when_it_ends() {
    let schema = schema();
    let mut checker = SqlChecker::new(schema.clone());
    checker.push("SELECT name FROM").unwrap();
    let rejection = checker.push(" age ").unwrap_err();
    assert!(
        rejection.message.contains("no such table: age"),
        "{rejection}"
    );

    let mut checker = SqlChecker::new(schema.clone());
    checker.push("SELECT 1 FROM main.").unwrap();
    assert!(checker.push("age ").is_err());
    for ok in [" singer ", " Cast ", " main"] {
        let mut checker = SqlChecker::new(schema.clone());
        checker.push("SELECT 1 FROM").unwrap();
        assert_eq!(checker.push(ok), Ok(()), "{ok}");
    }
}

/// A column after its qualifier is checked as its name ends too: blanks
/// after it would otherwise put the check off, and a decoder would write
/// blanks there until the token limit, every other token being rejected.
#[test]
fn a_qualified_column_is_checked_when_its_name_ends() {
    let schema = schema();
    let mut checker = SqlChecker::new(schema.clone());
    checker
        .push("SELECT T1.Name FROM singer AS T1 JOIN concert AS T2 ON T2.")
        .unwrap();
    let rejection = checker.push(" Age ").unwrap_err();
    assert!(rejection.message.contains("no such column"), "{rejection}");
    let mut checker = SqlChecker::new(schema.clone());
    checker
        .push("SELECT T1.Name FROM singer AS T1 JOIN concert AS T2 ON T1.")
        .unwrap();
    assert_eq!(checker.push(" Age "), Ok(()));
    // `main.` may still be followed by a table's column.
    let mut checker = SqlChecker::new(schema);
    checker.push("SELECT main.singer ").unwrap();
    assert_eq!(checker.push(".Age FROM singer"), Ok(()));
}

/// After FROM, a qualifier must be one of its sources (or an outer
/// query's): a column's name written as one (`WHERE Name.Age`) is refused
/// at its dot, not when the next name ends. Before FROM, an alias it will
/// define may still come.
#[test]
fn a_qualifier_no_source_in_scope_has_is_refused_at_its_dot() {
    let schema = schema();
    let rejection = first_rejection(&schema, "SELECT Age FROM singer WHERE Name.Age = 1");
    assert_eq!(
        rejection,
        Some((
            33,
            "no such table or alias in scope: `name` (at byte 29)".to_string()
        ))
    );
    // In a subquery, the outer query's alias is in scope.
    assert_accepted(
        &schema,
        "SELECT Name FROM singer AS T1 WHERE Age > (SELECT avg(Age) FROM singer WHERE Country = T1.Country)",
    );
    assert_accepted(&schema, "SELECT T1.Name FROM singer AS T1");
    // Within ON the FROM is still being read: a later source may come.
    let mut checker = SqlChecker::new(schema);
    checker
        .push("SELECT T1.Name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T3.")
        .unwrap();
}

/// The ten real SynSQL-2.5M records (CTEs, LEFT JOINs, aliases that begin
/// like other aliases) are accepted at every character prefix, each on the
/// schema of its own DDL.
#[test]
fn real_synsql_gold_is_accepted_at_every_prefix() {
    let Some(samples) = text2sql_data::test_data::real_synsql_samples() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut rejected = Vec::new();
    for (i, sample) in samples.iter().enumerate() {
        let db = dir.path().join(format!("{i}.sqlite"));
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(sample["schema"].as_str().unwrap())
            .unwrap();
        let (schema, _) =
            text2sql_data::schema::read_schema_from_sqlite(&i.to_string(), &db).unwrap();
        let sql = sample["sql"].as_str().unwrap();
        if let Some((offset, message)) = first_rejection(&Arc::new(SchemaIndex::new(&schema)), sql)
        {
            rejected.push(format!("record {i} at {offset}: {message}\n{sql}"));
        }
    }
    assert_eq!(samples.len(), 10);
    assert!(rejected.is_empty(), "{}", rejected.join("\n"));
}

/// The rows of `sql` on `conn`, each value as text (for comparing two
/// queries' results), or the error's message.
fn rows(conn: &rusqlite::Connection, sql: &str) -> Result<Vec<Vec<String>>, String> {
    let mut statement = conn.prepare(sql).map_err(|e| e.to_string())?;
    let width = statement.column_count();
    let rows = statement
        .query_map([], |row| {
            (0..width)
                .map(|i| {
                    row.get::<_, rusqlite::types::Value>(i)
                        .map(|v| format!("{v:?}"))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| e.to_string())?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// Where `sql` and its rewrite give different rows (or errors) on the
/// database at `path`, both queries and the start of what each gave.
fn rows_differ(path: &std::path::Path, sql: &str, rewritten: &str) -> Option<String> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let before = rows(&conn, sql);
    let after = rows(&conn, rewritten);
    if before == after {
        return None;
    }
    let shown = |r: &Result<Vec<Vec<String>>, String>| {
        format!("{r:?}").chars().take(200).collect::<String>()
    };
    Some(format!(
        "{sql}\n -> {rewritten}\n {} vs {}",
        shown(&before),
        shown(&after)
    ))
}

/// Writing aliases out keeps every Spider gold query's meaning: the
/// rewritten query gives the same rows in the same order on its database
/// and the checker accepts it at every prefix; most queries with aliases
/// lose them (self-joins keep theirs).
#[test]
fn unaliased_spider_gold_gives_the_same_rows() {
    for file in ["dev_gold.sql", "train_gold.sql"] {
        let Some((gold, schemas)) = spider_gold(file) else {
            continue;
        };
        let databases = text2sql_data::test_data::shared_data_dir().join("spider/database");
        let mut with_aliases = 0;
        let mut rewritten = 0;
        let mut differ = Vec::new();
        for (sql, db_id) in &gold {
            let out = crate::unalias_tables(sql).unwrap();
            if sql.to_lowercase().contains(" as t1") {
                with_aliases += 1;
            }
            if out == *sql {
                continue;
            }
            rewritten += 1;
            let aliases = |q: &str| q.to_lowercase().matches(" as t").count();
            assert!(aliases(&out) < aliases(sql), "{sql}\n -> {out}");
            // What a model trained on it writes passes constrained decoding
            // (the three train queries that do not run are rejected either way).
            let schema = &schemas[db_id];
            if first_rejection(schema, sql).is_none() {
                if let Some((offset, message)) = first_rejection(schema, &out) {
                    panic!("{db_id}: {out}\n rejected at {offset}: {message}");
                }
            }
            let path = databases.join(db_id).join(format!("{db_id}.sqlite"));
            if !path.exists() {
                // Spider's data leaves out a few databases (wta_1, ...).
                continue;
            }
            if let Some(difference) = rows_differ(&path, sql, &out) {
                differ.push(format!("{db_id}: {difference}"));
            }
        }
        assert!(differ.is_empty(), "{file}:\n{}", differ.join("\n"));
        eprintln!("{file}: {rewritten} queries rewritten, {with_aliases} with a T1 alias");
        assert!(
            rewritten * 10 >= with_aliases * 9,
            "{file}: only {rewritten} of {with_aliases} queries with aliases rewritten"
        );
    }
}

/// The sample corpus's gold SQL (CTEs, window functions, derived tables,
/// `T1`/`T2` joins) keeps its meaning written without aliases too.
#[test]
fn unaliased_sample_gold_gives_the_same_rows() {
    let (dir, records) = sample_corpus(11);
    let mut rewritten = 0;
    let mut differ = Vec::new();
    for record in &records {
        let (Some(sql), Some(db_id)) = (record["sql"].as_str(), record["db_id"].as_str()) else {
            panic!("a sample record without sql or db_id: {record}");
        };
        let out = crate::unalias_tables(sql).unwrap();
        if out == sql {
            continue;
        }
        rewritten += 1;
        let path = dir
            .path()
            .join("databases")
            .join(db_id)
            .join(format!("{db_id}.sqlite"));
        if let Some(difference) = rows_differ(&path, sql, &out) {
            differ.push(format!("{db_id}: {difference}"));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    assert!(
        rewritten > records.len() / 10,
        "{rewritten} of {}",
        records.len()
    );
}

mod skeletons {
    use super::*;

    fn held_to(shapes: &[&str]) -> SqlChecker {
        SqlChecker::new(schema()).with_skeletons(
            shapes
                .iter()
                .map(|sql| Skeleton::of_sql(sql).unwrap())
                .collect(),
        )
    }

    /// Pushes `sql` a few characters at a time, as a decoder's tokens come.
    fn write(checker: &SqlChecker, sql: &str) -> Result<SqlChecker, Rejection> {
        let mut checker = checker.clone();
        let chars: Vec<char> = sql.chars().collect();
        for piece in chars.chunks(3) {
            checker.push(&piece.iter().collect::<String>())?;
        }
        checker.finish()?;
        Ok(checker)
    }

    #[test]
    fn a_query_of_a_held_shape_passes_with_other_names_and_literals() {
        let checker = held_to(&[
            "SELECT count(*) FROM farm",
            "SELECT T1.a FROM x AS T1 JOIN y AS T2 ON T1.b = T2.c WHERE T2.d = 'v'",
        ]);
        write(&checker, "SELECT count(*) FROM singer").unwrap();
        write(
            &checker,
            "SELECT T1.Name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.Singer_ID = T2.Singer_ID WHERE T2.concert_ID = 3",
        )
        .unwrap();
    }

    #[test]
    fn a_query_of_another_shape_is_rejected_where_it_leaves_them() {
        let checker = held_to(&["SELECT count(*) FROM farm"]);
        let rejection = write(&checker, "SELECT Name FROM singer").unwrap_err();
        assert_eq!(rejection.offset, 7, "{rejection}");
        // A prefix of the shape is no whole query of it.
        let mut prefix = checker.clone();
        prefix
            .push("SELECT count(*) FROM singer WHERE")
            .unwrap_err();
        let mut short = held_to(&["SELECT count(*) FROM farm WHERE a = 1"]);
        short.push("SELECT count(*) FROM singer").unwrap();
        assert!(short.finish().is_err());
        assert!(checker
            .clone()
            .without_skeletons()
            .push("SELECT Name FROM singer")
            .is_ok());
    }

    #[test]
    fn a_name_is_a_schema_name_or_an_alias_and_a_function_is_no_name() {
        let checker = held_to(&[
            "SELECT strftime('%Y', d) AS year, count(*) AS n FROM t GROUP BY year ORDER BY year;",
        ]);
        write(
            &checker,
            "SELECT strftime('%Y', Year) AS yr, COUNT(*) AS concerts FROM concert GROUP BY yr ORDER BY yr;",
        )
        .unwrap();
        // `avg` where the shape has a name could only go on as the
        // function: no name of the schema starts so.
        let mut averaged = held_to(&["SELECT Name FROM singer"]);
        assert!(averaged.push("SELECT avg").is_err());
        let mut country = held_to(&["SELECT Name FROM singer"]);
        country.push("SELECT Countr").unwrap();
    }

    #[test]
    fn a_word_that_only_the_shape_or_only_sql_could_finish_is_refused() {
        // After `T2.Singer_ID` in ON the shape allows `AS` (an alias would
        // continue the name), SQL allows `AND`: no word is both.
        let checker =
            held_to(&["SELECT T1.a FROM x AS T1 JOIN y AS T2 ON T1.b = T2.c WHERE T2.d = 'v'"]);
        let joined = "SELECT T1.Name FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.Singer_ID = T2.Singer_ID";
        let mut on = checker.clone();
        on.push(joined).unwrap();
        let rejection = on.clone().push(" A").unwrap_err();
        assert!(rejection.message.contains("no keyword"), "{rejection}");
        on.push(" W").unwrap();
        // A double-quoted token is a value to the shape: not where it has
        // a name (a table after FROM), still where it has a value.
        let mut table = held_to(&["SELECT count(*) FROM farm WHERE a = 'v'"]);
        table.push("SELECT count(*) FROM").unwrap();
        assert!(table.clone().push(" \"sin").is_err());
        table.push(" singer WHERE Name = \"Jo").unwrap();
    }
}
