//! The public file formats of predictions and gold queries.
//! Spider: one predicted SQL per line (anything after a tab is ignored, as
//! Spider's script takes the first field); gold lines `SQL<TAB>db_id`, or a
//! JSON array of examples (Spider's or BIRD's dev.json, SynSQL records).
//! BIRD: predictions as a JSON object `{"0": "SQL\t----- bird -----\tdb_id", ...}`.

use std::path::{Path, PathBuf};

/// A problem reading a predictions or gold file, naming the file and record.
#[derive(Debug, thiserror::Error)]
pub enum EvalFileError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {record}: {message}", path.display())]
    Format {
        path: PathBuf,
        record: String,
        message: String,
    },
}

impl EvalFileError {
    /// A `Format` error at `record` of the file at `path`.
    fn format(path: &Path, record: impl Into<String>, message: impl Into<String>) -> Self {
        EvalFileError::Format {
            path: path.to_path_buf(),
            record: record.into(),
            message: message.into(),
        }
    }
}

/// One gold line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldEntry {
    pub sql: String,
    pub db_id: String,
    /// The example's difficulty tier when the file has one (BIRD's
    /// `difficulty`, SynSQL's `sql_complexity`).
    pub tier: Option<String>,
}

/// One prediction; BIRD files also name the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    pub sql: String,
    pub db_id: Option<String>,
}

fn read(path: &Path) -> Result<String, EvalFileError> {
    std::fs::read_to_string(path).map_err(|source| EvalFileError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads `SQL<TAB>db_id` lines; blank lines are skipped (as Spider's script does).
pub fn read_gold_file(path: &Path) -> Result<Vec<GoldEntry>, EvalFileError> {
    let text = read(path)?;
    let mut gold = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((sql, db_id)) = line.rsplit_once('\t') else {
            return Err(EvalFileError::format(
                path,
                format!("line {}", n + 1),
                "expected `SQL<TAB>db_id`, found no tab",
            ));
        };
        gold.push(GoldEntry {
            sql: sql.trim().to_string(),
            db_id: db_id.trim().to_string(),
            tier: None,
        });
    }
    Ok(gold)
}

/// Reads a JSON array of examples: the SQL from `query` (Spider), `SQL`
/// (BIRD) or `sql` (SynSQL) when it is a string, `db_id`, and the tier from
/// `difficulty` (BIRD) or `sql_complexity` (SynSQL) when present.
pub fn read_gold_json(path: &Path) -> Result<Vec<GoldEntry>, EvalFileError> {
    let text = read(path)?;
    let records: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(&text)
        .map_err(|e| {
            EvalFileError::format(
                path,
                "top level",
                format!("expected a JSON array of objects: {e}"),
            )
        })?;
    let text_field = |record: &serde_json::Map<String, serde_json::Value>, keys: &[&str]| {
        keys.iter()
            .find_map(|key| record.get(*key).and_then(|v| v.as_str()))
            .map(|v| v.trim().to_string())
    };
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let sql = text_field(record, &["query", "SQL", "sql"]).ok_or_else(|| {
                EvalFileError::format(
                    path,
                    format!("record {i}"),
                    "no SQL string in `query`, `SQL` or `sql`",
                )
            })?;
            let db_id = text_field(record, &["db_id"]).ok_or_else(|| {
                EvalFileError::format(path, format!("record {i}"), "no `db_id` string")
            })?;
            Ok(GoldEntry {
                sql,
                db_id,
                tier: text_field(record, &["difficulty", "sql_complexity"]),
            })
        })
        .collect()
}

/// Reads one prediction per line. A blank line is an empty prediction (it
/// scores as wrong, keeping the lines aligned with the gold file); blank
/// lines at the end of the file are ignored.
pub fn read_spider_predictions(path: &Path) -> Result<Vec<Prediction>, EvalFileError> {
    let text = read(path)?;
    let mut lines: Vec<&str> = text.lines().collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    Ok(lines
        .into_iter()
        .map(|line| Prediction {
            sql: line
                .split('\t')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
            db_id: None,
        })
        .collect())
}

const BIRD_SEPARATOR: &str = "\t----- bird -----\t";

/// Reads BIRD's prediction JSON; keys must be the indices 0..n.
pub fn read_bird_predictions(path: &Path) -> Result<Vec<Prediction>, EvalFileError> {
    let text = read(path)?;
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| {
            EvalFileError::format(
                path,
                "top level",
                format!("expected a JSON object of predictions: {e}"),
            )
        })?;
    let mut predictions: Vec<Option<Prediction>> = vec![None; object.len()];
    for (key, value) in &object {
        let record = format!("key \"{key}\"");
        let index: usize = key.parse().map_err(|_| {
            EvalFileError::format(
                path,
                record.clone(),
                "keys must be example indices 0, 1, 2, ...",
            )
        })?;
        let Some(slot) = predictions.get_mut(index) else {
            return Err(EvalFileError::format(
                path,
                record,
                format!(
                    "index out of range: {} predictions, so keys 0..{}",
                    object.len(),
                    object.len()
                ),
            ));
        };
        let serde_json::Value::String(value) = value else {
            return Err(EvalFileError::format(
                path,
                record,
                "the value must be a string",
            ));
        };
        let (sql, db_id) = match value.split_once(BIRD_SEPARATOR) {
            Some((sql, db_id)) => (sql, Some(db_id.trim().to_string())),
            None => (value.as_str(), None),
        };
        *slot = Some(Prediction {
            sql: sql.trim().to_string(),
            db_id,
        });
    }
    // Keys are unique and in range, so every slot is filled.
    Ok(predictions.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `read` makes of `text` in a file named `name`.
    fn read_text<T>(
        name: &str,
        text: &str,
        read: fn(&Path) -> Result<T, EvalFileError>,
    ) -> Result<T, EvalFileError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        read(&path)
    }

    /// The message `read` fails with on `text` in a file named `name`.
    fn error_of<T: std::fmt::Debug>(
        name: &str,
        text: &str,
        read: fn(&Path) -> Result<T, EvalFileError>,
    ) -> String {
        read_text(name, text, read).unwrap_err().to_string()
    }

    #[test]
    fn gold_lines_split_at_the_last_tab_and_name_bad_lines() {
        let text = "SELECT 1\tdb_a\n\nSELECT 'a\tb'\tdb_b\n";
        let gold = read_text("gold.sql", text, read_gold_file).unwrap();
        assert_eq!(gold.len(), 2);
        assert_eq!(gold[1].sql, "SELECT 'a\tb'");
        assert_eq!(gold[1].db_id, "db_b");
        let error = error_of("gold.sql", "SELECT 1\tdb\nSELECT 2\n", read_gold_file);
        assert!(error.contains("gold.sql: line 2"), "{error}");
    }

    #[test]
    fn gold_json_takes_sql_db_and_tier_from_the_known_keys() {
        let text = r#"[{"question": "q", "SQL": "SELECT 1", "db_id": "a", "difficulty": "simple"},
                {"query": "SELECT 2", "sql": {"parsed": true}, "db_id": "b"},
                {"sql": "SELECT 3", "db_id": "c", "sql_complexity": "Highly Complex"}]"#;
        let gold = read_text("dev.json", text, read_gold_json).unwrap();
        assert_eq!(gold[0].tier.as_deref(), Some("simple"));
        assert_eq!(
            (gold[1].sql.as_str(), gold[1].tier.as_deref()),
            ("SELECT 2", None)
        );
        assert_eq!(gold[2].tier.as_deref(), Some("Highly Complex"));
        let error = error_of("dev.json", r#"[{"SQL": "SELECT 1"}]"#, read_gold_json);
        assert!(
            error.contains("record 0") && error.contains("db_id"),
            "{error}"
        );
    }

    #[test]
    fn spider_predictions_keep_blank_lines_in_the_middle() {
        let text = "SELECT 1\n\nSELECT 3\tdb\n\n";
        let preds = read_text("pred.txt", text, read_spider_predictions).unwrap();
        let sqls: Vec<&str> = preds.iter().map(|p| p.sql.as_str()).collect();
        assert_eq!(sqls, ["SELECT 1", "", "SELECT 3"]);
    }

    #[test]
    fn bird_predictions_are_ordered_by_key() {
        let text =
            r#"{"1": "SELECT 2\t----- bird -----\tdb_b", "0": "SELECT 1\t----- bird -----\tdb_a"}"#;
        let preds = read_text("pred.json", text, read_bird_predictions).unwrap();
        assert_eq!(preds[0].sql, "SELECT 1");
        assert_eq!(preds[1].db_id.as_deref(), Some("db_b"));
        let gap = r#"{"0": "SELECT 1", "5": "SELECT 2"}"#;
        let error = error_of("pred.json", gap, read_bird_predictions);
        assert!(error.contains("key \"5\""), "{error}");
    }
}
