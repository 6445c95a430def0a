//! The endpoints that read the catalog and run the model and the SQL:
//! `/api/databases`, `/api/databases/{id}/schema`, `/api/ask`, `/api/execute`.

use std::path::PathBuf;
use std::time::Instant;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::error::{ApiError, ErrorBody};
use super::views::*;
use super::AppState;
use crate::backend::{Candidate, ResultSet, RunError, RunLimits, SqlRunner};
use crate::explain::Author;

pub(super) async fn list_databases(State(state): State<AppState>) -> Json<DatabaseList> {
    let config = state.config();
    Json(DatabaseList {
        databases: state
            .catalog()
            .iter()
            .map(|db| DatabaseSummary {
                db_id: db.db_id.clone(),
                tables: db.schema.tables.len(),
                columns: db.schema.column_count(),
            })
            .collect(),
        limits: Limits {
            max_question_chars: config.max_question_chars,
            max_sql_chars: config.max_sql_chars,
            max_rows: config.max_rows,
            beams: config.beams,
            sql_timeout_ms: config.sql_timeout.as_millis(),
            request_timeout_ms: config.request_timeout.as_millis(),
        },
    })
}

pub(super) async fn schema(
    State(state): State<AppState>,
    db_id: Result<Path<String>, PathRejection>,
) -> Result<Json<SchemaView>, ApiError> {
    let Path(db_id) = db_id.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_database_id",
            format!(
                "The database id in the path is not usable: {}",
                rejection.body_text()
            ),
        )
    })?;
    let db = state.database(&db_id)?;
    Ok(Json(schema_view(&db)))
}

pub(super) fn check_text(
    text: &str,
    field: &str,
    max_chars: usize,
    what: &str,
) -> Result<String, ApiError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            &format!("empty_{field}"),
            format!("The {what} is empty."),
        ));
    }
    let length = trimmed.chars().count();
    if length > max_chars {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            &format!("{field}_too_long"),
            format!("The {what} has {length} characters; the limit is {max_chars}."),
        ));
    }
    Ok(trimmed.to_string())
}

pub(super) async fn ask(
    State(state): State<AppState>,
    payload: Result<Json<AskRequest>, JsonRejection>,
) -> Result<Json<AskResponse>, ApiError> {
    let started = Instant::now();
    let config = state.config();
    let Json(request) = payload.map_err(|r| ApiError::json(r, config.max_body_bytes))?;
    let db = state.database(&request.db_id)?;
    let question = check_text(
        &request.question,
        "question",
        config.max_question_chars,
        "question",
    )?;
    let beams = match request.beams {
        None => config.beams,
        Some(b) if (1..=config.beams).contains(&b) => b,
        Some(b) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_beams",
                format!("beams is {b}; it must be between 1 and {}.", config.beams),
            ))
        }
    };

    let generated = {
        let generator = state.inner.generator.clone();
        let db = db.clone();
        let question = question.clone();
        state
            .inner
            .inference
            .run(move || {
                let started = Instant::now();
                let candidates = generator.generate(&question, &db.schema, beams);
                let shapes = generator.query_shapes(&question, &db.schema);
                (candidates, shapes, started.elapsed())
            })
            .await
            .map_err(ApiError::pool)?
    };
    let (candidates, shapes, generate_time) = generated.value;
    let candidates = candidates.map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "generation_failed",
            format!("The model could not write SQL for this question: {error}"),
        )
    })?;
    let candidates = distinct_candidates(candidates);
    if candidates.is_empty() {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "generation_failed",
            "The model produced no SQL for this question.",
        ));
    }

    let executed = {
        let runner = state.inner.runner.clone();
        let path = db.path.clone();
        let full = state.limits(config.max_rows);
        let probe = state.limits(1);
        state
            .inner
            .execution
            .run(move || {
                let started = Instant::now();
                let outcomes = execute_candidates(runner.as_ref(), &path, candidates, full, probe);
                (outcomes, started.elapsed())
            })
            .await
            .map_err(ApiError::pool)?
    };
    let (outcomes, execute_time) = executed.value;

    let mut chosen: Option<(usize, ResultSet)> = None;
    let mut alternatives = Vec::with_capacity(outcomes.len());
    for (index, (candidate, outcome)) in outcomes.into_iter().enumerate() {
        let rank = index + 1;
        let (executes, error) = match outcome {
            Ok(result) => {
                if chosen.is_none() {
                    chosen = Some((rank, result));
                }
                (true, None)
            }
            Err(error) => (
                false,
                Some(ErrorBody::from_run(&error, Author::Model, &candidate.sql)),
            ),
        };
        alternatives.push(Alternative {
            rank,
            sql: candidate.sql,
            score: candidate.score,
            executes,
            error,
        });
    }
    let (sql, chosen_rank, result, error) = match chosen {
        Some((rank, result)) => (
            alternatives[rank - 1].sql.clone(),
            Some(rank),
            Some(ResultView::from(result)),
            None,
        ),
        None => (
            alternatives[0].sql.clone(),
            None,
            None,
            alternatives[0].error.clone(),
        ),
    };
    Ok(Json(AskResponse {
        db_id: db.db_id.clone(),
        question,
        sql,
        chosen_rank,
        result,
        error,
        alternatives,
        shapes,
        timings: AskTimings {
            queue_ms: millis(generated.waited + executed.waited),
            generate_ms: millis(generate_time),
            execute_ms: millis(execute_time),
            total_ms: millis(started.elapsed()),
        },
    }))
}

/// Beam search can end in the same text twice (after detokenisation); the
/// first, better-scored copy is kept.
pub(super) fn distinct_candidates(candidates: Vec<Candidate>) -> Vec<Candidate> {
    let mut seen = std::collections::HashSet::new();
    candidates
        .into_iter()
        .map(|c| Candidate {
            sql: c.sql.trim().to_string(),
            score: c.score,
        })
        .filter(|c| !c.sql.is_empty() && seen.insert(c.sql.clone()))
        .collect()
}

/// Runs candidates best first. The first one that executes is the answer and
/// keeps up to `full.max_rows` rows; the others only need to show whether
/// they execute, so they stop at `probe.max_rows`.
pub(super) fn execute_candidates(
    runner: &dyn SqlRunner,
    path: &std::path::Path,
    candidates: Vec<Candidate>,
    full: RunLimits,
    probe: RunLimits,
) -> Vec<(Candidate, Result<ResultSet, RunError>)> {
    let mut answered = false;
    candidates
        .into_iter()
        .map(|candidate| {
            let limits = if answered { probe } else { full };
            let outcome = runner.run(path, &candidate.sql, limits);
            answered |= outcome.is_ok();
            (candidate, outcome)
        })
        .collect()
}

pub(super) async fn execute(
    State(state): State<AppState>,
    payload: Result<Json<ExecuteRequest>, JsonRejection>,
) -> Result<Json<ExecuteResponse>, ApiError> {
    let started = Instant::now();
    let config = state.config();
    let Json(request) = payload.map_err(|r| ApiError::json(r, config.max_body_bytes))?;
    let db = state.database(&request.db_id)?;
    let sql = check_text(&request.sql, "sql", config.max_sql_chars, "SQL")?;
    let executed = {
        let runner = state.inner.runner.clone();
        let path: PathBuf = db.path.clone();
        let sql = sql.clone();
        let limits = state.limits(config.max_rows);
        state
            .inner
            .execution
            .run(move || runner.run(&path, &sql, limits))
            .await
            .map_err(ApiError::pool)?
    };
    let result = executed
        .value
        .map_err(|error| ApiError::run(&error, &sql))?;
    Ok(Json(ExecuteResponse {
        db_id: db.db_id.clone(),
        sql,
        timings: ExecuteTimings {
            queue_ms: millis(executed.waited),
            execute_ms: millis(result.elapsed),
            total_ms: millis(started.elapsed()),
        },
        result: result.into(),
    }))
}
