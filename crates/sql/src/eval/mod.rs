//! The scorer: per example, a ranked list of candidate SQLs, the gold SQL and
//! the database; out comes a verdict per example and a report. Prediction
//! files (`files`) and model generation both feed it the same way.

pub mod files;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use rayon::prelude::*;
use serde::Serialize;

pub use report::{Bucket, EvalReport, EvalSummary, GenerationStats, Latency};

use crate::compare::{results_equal, Rule};
use crate::exact::normalized_exact_match;
use crate::hardness::Hardness;
use crate::sandbox::{run_query, ExecError, QueryResult, SandboxLimits};

/// One example to score.
#[derive(Debug, Clone)]
pub struct EvalExample {
    /// A stable name for the per-example file (the line number, a record id).
    pub id: String,
    pub db_id: String,
    /// The SQLite file; `None` (or a missing file) scores as "no database".
    pub db_path: Option<PathBuf>,
    pub gold: String,
    /// Candidate SQLs, best first (beams); the first is the prediction unless
    /// execution-guided selection picks a later one. Empty = no prediction.
    pub candidates: Vec<String>,
    /// A difficulty tier from the data (SynSQL's `sql_complexity`), if any.
    pub tier: Option<String>,
    /// Spider hardness, if known (see [`crate::spider_hardness`]).
    pub hardness: Option<Hardness>,
}

impl EvalExample {
    /// A prepared record to score, with its database looked up in `db_dir`
    /// by the one database path rule (`None` when the file is missing, which
    /// scores as "no database"); Spider hardness from its gold SQL.
    pub fn for_record(
        record: text2sql_data::store::Example,
        db_dir: &std::path::Path,
        candidates: Vec<String>,
    ) -> Self {
        let db_path = text2sql_data::database_path(db_dir, &record.db_id);
        EvalExample {
            id: record.id.to_string(),
            hardness: crate::spider_hardness(&record.sql),
            db_path: db_path.is_file().then_some(db_path),
            candidates,
            tier: record
                .tier
                .map(|t| t.as_str().to_string())
                .or(record.difficulty),
            gold: record.sql,
            db_id: record.db_id,
        }
    }
}

/// How to score.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub rule: Rule,
    /// Spider rule only: keep DISTINCT instead of removing it from both queries.
    pub keep_distinct: bool,
    /// Take the first candidate that executes without error (RESDSQL's trick).
    pub execution_guided: bool,
    /// Per-query limits; the timeout counts a query as wrong when it fires.
    pub limits: SandboxLimits,
    /// Worker threads; `None` uses every core.
    pub threads: Option<usize>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            rule: Rule::Spider,
            keep_distinct: false,
            execution_guided: false,
            limits: SandboxLimits::for_eval(Duration::from_secs(10)),
            threads: None,
        }
    }
}

/// What happened to one example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Correct,
    /// Executed, but the result differs from the gold result.
    WrongResult,
    /// SQLite rejected or failed the prediction.
    SqlError,
    /// The sandbox refused the prediction (not one read-only statement).
    Refused,
    /// The prediction ran past the timeout.
    Timeout,
    /// The gold query itself failed or timed out: scored as wrong.
    GoldError,
    /// No database file for this example: not scored.
    NoDatabase,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::WrongResult => "wrong_result",
            Verdict::SqlError => "sql_error",
            Verdict::Refused => "refused",
            Verdict::Timeout => "timeout",
            Verdict::GoldError => "gold_error",
            Verdict::NoDatabase => "no_database",
        }
    }
}

/// The line written per example: enough to grep and to understand the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct ExampleOutcome {
    pub index: usize,
    pub id: String,
    pub db_id: String,
    pub tier: Option<String>,
    pub hardness: Option<Hardness>,
    pub verdict: Verdict,
    pub correct: bool,
    /// Why, in words (SQLite's message, which rule failed, ...).
    pub reason: String,
    /// The chosen candidate, as written.
    pub prediction: String,
    /// Which candidate was chosen (0 = the first), `None` when there was none.
    pub chosen_candidate: Option<usize>,
    pub gold: String,
    pub exact_match: bool,
    /// Rows the gold query returned; `None` when it did not run.
    pub gold_rows: Option<usize>,
    /// Time spent executing candidates (all tried ones), in milliseconds.
    pub prediction_ms: Option<f64>,
    pub gold_ms: Option<f64>,
}

/// The scorer's own thread pool could not be built (`--threads N`).
#[derive(Debug, thiserror::Error)]
#[error("cannot start {threads} scoring threads: {message}")]
pub struct ThreadPoolError {
    pub threads: usize,
    pub message: String,
}

/// Scores `examples` in parallel; `on_done` is called once per finished
/// example (for a progress bar). Outcomes keep the input order. With
/// `options.threads` set, a pool of exactly that many threads scores, or
/// nothing does: silently falling back to every core would break a user's
/// limit.
pub fn evaluate(
    examples: &[EvalExample],
    options: &EvalOptions,
    on_done: &(dyn Fn() + Sync),
) -> Result<EvalReport, ThreadPoolError> {
    let score_all = || -> Vec<ExampleOutcome> {
        examples
            .par_iter()
            .enumerate()
            .map(|(index, example)| {
                let outcome = score_example(index, example, options);
                on_done();
                outcome
            })
            .collect()
    };
    let outcomes = match options.threads {
        Some(threads) => rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| ThreadPoolError {
                threads,
                message: e.to_string(),
            })?
            .install(score_all),
        None => score_all(),
    };
    Ok(EvalReport::from_outcomes(outcomes, options))
}

/// Scores one example: execute the gold, then the candidate(s), compare.
pub fn score_example(index: usize, example: &EvalExample, options: &EvalOptions) -> ExampleOutcome {
    let first = example.candidates.first().cloned().unwrap_or_default();
    let mut outcome = ExampleOutcome {
        index,
        id: example.id.clone(),
        db_id: example.db_id.clone(),
        tier: example.tier.clone(),
        hardness: example.hardness,
        verdict: Verdict::NoDatabase,
        correct: false,
        reason: String::new(),
        exact_match: normalized_exact_match(&first, &example.gold),
        prediction: first,
        chosen_candidate: (!example.candidates.is_empty()).then_some(0),
        gold: example.gold.clone(),
        gold_rows: None,
        prediction_ms: None,
        gold_ms: None,
    };
    let db_path = match &example.db_path {
        Some(path) if path.is_file() => path,
        Some(path) => {
            outcome.reason = format!("database {} does not exist", path.display());
            return outcome;
        }
        None => {
            outcome.reason = format!("no database for `{}`", example.db_id);
            return outcome;
        }
    };
    let (rule, keep_distinct, limits) = (options.rule, options.keep_distinct, &options.limits);
    let as_executed = |sql: &str| rule.executed_sql(sql, keep_distinct);
    let gold_sql = as_executed(&example.gold);
    let order_matters = rule.order_matters(&gold_sql);
    let gold = run_query(db_path, &gold_sql, limits);
    outcome.gold_ms = gold.as_ref().ok().map(|r| ms(r.elapsed));
    let gold = match gold {
        Ok(result) if result.truncated => {
            return gold_failed(outcome, "gold result exceeds the row cap".to_string());
        }
        Ok(result) => result,
        Err(error) => return gold_failed(outcome, format!("gold query failed: {error}")),
    };
    outcome.gold_rows = Some(gold.rows.len());

    let mut spent = Duration::ZERO;
    let mut chosen: Option<(usize, Result<QueryResult, ExecError>)> = None;
    let tries = if options.execution_guided {
        example.candidates.len()
    } else {
        1
    };
    for (i, candidate) in example.candidates.iter().take(tries).enumerate() {
        let started = std::time::Instant::now();
        let result = run_query(db_path, &as_executed(candidate), limits);
        spent += started.elapsed();
        let executed = result.is_ok();
        // When no candidate executes, the first one is reported.
        if chosen.is_none() || executed {
            chosen = Some((i, result));
        }
        if executed {
            break;
        }
    }
    outcome.prediction_ms = Some(ms(spent));
    let Some((index, result)) = chosen else {
        outcome.verdict = Verdict::Refused;
        outcome.reason = "no prediction".to_string();
        return outcome;
    };
    outcome.chosen_candidate = Some(index);
    outcome.prediction = example.candidates[index].clone();
    outcome.exact_match = normalized_exact_match(&outcome.prediction, &example.gold);
    match result {
        Err(error) => {
            outcome.verdict = match error {
                ExecError::Timeout(_) | ExecError::Cancelled => Verdict::Timeout,
                ExecError::Refused(_) => Verdict::Refused,
                ExecError::Sql(_) | ExecError::Open(_) | ExecError::Worker(_) => Verdict::SqlError,
            };
            outcome.reason = error.to_string();
        }
        Ok(predicted) if predicted.truncated => {
            outcome.verdict = Verdict::WrongResult;
            outcome.reason = format!(
                "prediction returns more rows than the row cap ({})",
                predicted.rows.len()
            );
        }
        Ok(predicted) => {
            if results_equal(rule, &gold.rows, &predicted.rows, order_matters) {
                outcome.verdict = Verdict::Correct;
                outcome.correct = true;
                outcome.reason = if gold.rows.is_empty() {
                    "same result (no rows)".to_string()
                } else {
                    "same result".to_string()
                };
            } else {
                outcome.verdict = Verdict::WrongResult;
                outcome.reason = describe_difference(&gold, &predicted, rule, order_matters);
            }
        }
    }
    outcome
}

fn gold_failed(mut outcome: ExampleOutcome, reason: String) -> ExampleOutcome {
    outcome.verdict = Verdict::GoldError;
    outcome.reason = reason;
    outcome
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn describe_difference(
    gold: &QueryResult,
    predicted: &QueryResult,
    rule: Rule,
    order_matters: bool,
) -> String {
    let (gr, pr) = (gold.rows.len(), predicted.rows.len());
    let (gc, pc) = (gold.columns.len(), predicted.columns.len());
    if rule == Rule::Spider && gr != pr {
        format!("{pr} rows, gold has {gr}")
    } else if gc != pc {
        format!("{pc} columns, gold has {gc}")
    } else if order_matters {
        format!(
            "different rows or row order ({} rule, gold has ORDER BY)",
            rule.name()
        )
    } else {
        format!("different rows ({} rule)", rule.name())
    }
}

#[cfg(test)]
mod tests;
