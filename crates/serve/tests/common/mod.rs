//! Test doubles and fixtures shared by the serve integration tests. The real
//! runner is the `text2sql-sql` sandbox and the real generator is the T5
//! model; these stand in for them here only and are not reachable from the
//! shipped binary.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use text2sql_data::schema::DatabaseSchema;
use text2sql_serve::{AppState, Candidate, Catalog, GenerateError, ServeConfig, SqlGenerator};

/// The production runner: tests execute through the real sandbox.
pub use text2sql_serve::SandboxRunner;

/// A generator that knows a fixed list of candidates per question.
pub struct FixedGenerator {
    answers: HashMap<String, Vec<Candidate>>,
    /// Simulated inference time (slept, not spun, to spare the CPU).
    pub delay: Duration,
    gate: Option<Gate>,
}

/// Each generation says it started, then waits for the test's release.
struct Gate {
    started: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl FixedGenerator {
    pub fn new() -> Self {
        let mut answers = HashMap::new();
        let mut add = |question: &str, sqls: &[&str]| {
            let candidates = sqls
                .iter()
                .enumerate()
                .map(|(i, sql)| Candidate {
                    sql: sql.to_string(),
                    score: -0.25 - 0.5 * i as f64,
                })
                .collect();
            answers.insert(question.to_string(), candidates);
        };
        add(
            Q_COUNT,
            &[
                "SELECT count(*) FROM singer",
                "SELECT count(*) FROM singers",
                "SELECT count(singer_id) FROM singer",
            ],
        );
        add(
            Q_FRANCE,
            &[
                "SELECT nme FROM singer WHERE country = 'France'",
                "SELECT name FROM singer WHERE country = 'France' ORDER BY name",
                "SELECT name, age FROM singer WHERE country = 'France'",
                // Duplicate after trimming: shown once.
                "  SELECT name FROM singer WHERE country = 'France' ORDER BY name ",
            ],
        );
        add(
            Q_CONCERTS,
            &["SELECT concert_id, concert_name, year FROM concert ORDER BY concert_id"],
        );
        add(
            Q_NOTHING_RUNS,
            &["SELECT title FROM singer", "SELECT * FROM singers"],
        );
        add(Q_WRITES, &["DELETE FROM singer"]);
        add(Q_ITEMS, &["SELECT label FROM item ORDER BY id"]);
        Self {
            answers,
            delay: Duration::ZERO,
            gate: None,
        }
    }

    /// One that holds every generation until the test releases it (a send
    /// on the returned sender); the receiver hears of each start.
    pub fn gated() -> (Self, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        let generator = Self {
            gate: Some(Gate {
                started: Mutex::new(started_tx),
                release: Mutex::new(release_rx),
            }),
            ..Self::new()
        };
        (generator, started_rx, release_tx)
    }
}

pub const Q_COUNT: &str = "How many singers are there?";
pub const Q_FRANCE: &str = "What are the names of the singers from France?";
pub const Q_CONCERTS: &str = "List every concert";
pub const Q_NOTHING_RUNS: &str = "What is the title of each singer?";
pub const Q_WRITES: &str = "Remove all singers";
pub const Q_ITEMS: &str = "Which items are for sale?";

impl SqlGenerator for FixedGenerator {
    fn generate(
        &self,
        question: &str,
        schema: &DatabaseSchema,
        beams: usize,
    ) -> Result<Vec<Candidate>, GenerateError> {
        if let Some(gate) = &self.gate {
            gate.started.lock().unwrap().send(()).unwrap();
            gate.release.lock().unwrap().recv().unwrap();
        }
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        // A real generator reads the schema; this one at least checks that
        // the server handed over the database asked about.
        if schema.tables.is_empty() {
            return Err(GenerateError::new("the schema has no tables"));
        }
        let candidates = self.answers.get(question).ok_or_else(|| {
            GenerateError::new(format!("the test generator has no SQL for `{question}`"))
        })?;
        Ok(candidates.iter().take(beams).cloned().collect())
    }

    /// The shape of the first answer to `Q_COUNT`; none for the others.
    fn query_shapes(&self, question: &str, _schema: &DatabaseSchema) -> Vec<String> {
        match question {
            Q_COUNT => vec!["select count ( * ) from _".to_string()],
            _ => Vec::new(),
        }
    }
}

/// Two small databases in the SynSQL layout: `concert` (6 singers, 60
/// concerts, a foreign key) and `shop`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub databases: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let databases = dir.path().join("databases");
        create(
            &databases,
            "concert",
            "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT, age INTEGER);
             INSERT INTO singer VALUES
               (1, 'Joe Sharp', 'Netherlands', 52), (2, 'Timbaland', 'United States', 32),
               (3, 'Justin Brown', 'France', 29), (4, 'Rose White', 'France', 41),
               (5, 'John Nizinik', 'France', 43), (6, 'Tribal King', 'France', 25);
             CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, concert_name TEXT, year INTEGER,
               singer_id INTEGER REFERENCES singer (singer_id));
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
               INSERT INTO concert SELECT i, 'Concert ' || i, 2000 + i % 20, 1 + i % 6 FROM n;",
        );
        create(
            &databases,
            "shop",
            "CREATE TABLE item (id INTEGER PRIMARY KEY, label TEXT, price REAL);
             INSERT INTO item VALUES (1, 'pen', 1.5), (2, 'ink', 4.25), (3, 'nib', 0.75);",
        );
        Self { dir, databases }
    }

    pub fn concert_db(&self) -> PathBuf {
        self.databases.join("concert").join("concert.sqlite")
    }

    pub fn config(&self) -> ServeConfig {
        ServeConfig {
            addr: ([127, 0, 0, 1], 0).into(),
            databases: self.databases.clone(),
            workers: 2,
            sql_workers: 2,
            max_rows: 50,
            ..ServeConfig::default()
        }
    }

    pub fn state(&self, config: ServeConfig, generator: Arc<dyn SqlGenerator>) -> AppState {
        let catalog = Catalog::load(&config.databases).unwrap();
        AppState::new(config, catalog, Arc::new(SandboxRunner), generator)
    }
}

fn create(root: &Path, db_id: &str, sql: &str) {
    let folder = root.join(db_id);
    std::fs::create_dir_all(&folder).unwrap();
    let conn = Connection::open(folder.join(format!("{db_id}.sqlite"))).unwrap();
    conn.execute_batch(sql).unwrap();
}

/// Every file under `root` with its bytes, to show that nothing changed.
pub fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

/// Resident set size in KiB of this process (`None`) or another, from
/// /proc (Linux only).
pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let path = pid.map_or("/proc/self/status".to_string(), |p| {
        format!("/proc/{p}/status")
    });
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// An `/api/execute` body running `sql` on `db_id`. SQL that is not UTF-8
/// is put raw inside the JSON string, as a careless client would send it.
pub fn execute_body(db_id: &str, sql: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(sql) {
        Ok(sql) => serde_json::json!({"db_id": db_id, "sql": sql})
            .to_string()
            .into_bytes(),
        Err(_) => [
            format!(r#"{{"db_id": "{db_id}", "sql": ""#).as_bytes(),
            sql,
            b"\"}",
        ]
        .concat(),
    }
}
