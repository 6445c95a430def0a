//! The HTTP surface: the page, the JSON API behind it, `/healthz`, and the
//! bounds every request meets (body size, field lengths, deadline, pools).
//! `docs/openapi.yaml` describes the same endpoints for clients.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use text2sql_data::schema::{DatabaseSchema, SampleValue};
use tower_http::trace::TraceLayer;

use crate::backend::{Candidate, ResultSet, RunError, RunLimits, SqlGenerator, SqlRunner};
use crate::catalog::{is_valid_db_id, Catalog, Database, SchemaSource};
use crate::config::ServeConfig;
use crate::explain::{explain, strip_location, Author, Explanation};
use crate::pool::{PoolError, WorkerPool};

/// The demo page: one self-contained file, no build step, nothing fetched
/// from the internet.
const PAGE: &str = include_str!("page.html");
const OPENAPI: &str = include_str!("../../../docs/openapi.yaml");
/// The page's inline script and style are its only code; nothing else may load.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";
/// Seconds a client is told to wait after a 503.
const RETRY_AFTER_S: u64 = 2;

/// Shared by every request: the catalog, the two backends and the two pools.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: ServeConfig,
    catalog: Catalog,
    runner: Arc<dyn SqlRunner>,
    generator: Arc<dyn SqlGenerator>,
    inference: WorkerPool,
    execution: WorkerPool,
}

impl AppState {
    pub fn new(
        config: ServeConfig,
        catalog: Catalog,
        runner: Arc<dyn SqlRunner>,
        generator: Arc<dyn SqlGenerator>,
    ) -> Self {
        let inference = WorkerPool::new("inference", config.workers, config.queue);
        let execution = WorkerPool::new("execution", config.sql_workers, config.queue);
        Self {
            inner: Arc::new(Inner {
                config,
                catalog,
                runner,
                generator,
                inference,
                execution,
            }),
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    pub fn config(&self) -> &ServeConfig {
        &self.inner.config
    }

    fn database(&self, db_id: &str) -> Result<Arc<Database>, ApiError> {
        if !is_valid_db_id(db_id) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_database_id",
                format!(
                    "`{}` is not a database id: ids are 1 to 128 letters, digits, _ or -.",
                    shorten(db_id, 80)
                ),
            ));
        }
        self.inner.catalog.get(db_id).cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_database",
                format!("There is no database `{db_id}` here; GET /api/databases lists them."),
            )
        })
    }

    fn limits(&self, max_rows: usize) -> RunLimits {
        RunLimits {
            timeout: self.inner.config.sql_timeout,
            max_rows,
        }
    }
}

/// The whole application: page, API, health check, fallbacks, and the
/// body-size and deadline bounds.
pub fn router(state: AppState) -> Router {
    let config = state.config().clone();
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/api/openapi.yaml", get(openapi))
        .route("/api/databases", get(list_databases))
        .route("/api/databases/{db_id}/schema", get(schema))
        .route("/api/ask", post(ask))
        .route("/api/execute", post(execute))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            config.request_timeout,
            deadline,
        ))
        .layer(TraceLayer::new_for_http())
}

/// Stops waiting for a request after the configured deadline. Blocking work
/// already running finishes in its pool (which stays bounded); the client
/// gets a 503 now.
async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "deadline_exceeded",
            format!(
                "The request took longer than {} s and was abandoned; the server is busy, try again shortly.",
                limit.as_secs_f64()
            ),
        )
        .retry_after(RETRY_AFTER_S)
        .into_response(),
    }
}

// ---- errors ---------------------------------------------------------------

/// Every API failure: a status, a stable code, a sentence for people, and
/// optionally the raw detail (SQLite's own message).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
}

impl ErrorBody {
    fn from_run(error: &RunError, author: Author, sql: &str) -> Self {
        let Explanation { code, message } = explain(error, author, sql);
        let detail = match error {
            RunError::Sql(text) => Some(strip_location(text, sql).to_string()),
            RunError::Refused(text) | RunError::Unavailable(text) => Some(text.clone()),
            RunError::TimedOut(_) => None,
        };
        Self {
            code: code.into(),
            message,
            detail,
        }
    }
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code: code.into(),
                message: message.into(),
                detail: None,
            },
            retry_after: None,
        }
    }

    fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    fn json(rejection: JsonRejection, max_body_bytes: usize) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(e) => Self::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("The request body is not valid JSON: {}", e.body_text()),
            ),
            JsonRejection::JsonDataError(e) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!(
                    "The request body does not have the expected fields: {}",
                    e.body_text()
                ),
            ),
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the request body as JSON, with Content-Type: application/json.",
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "The request body is larger than the limit of {} KiB.",
                    max_body_bytes / 1024
                ),
            ),
            other => Self::new(other.status(), "bad_request", other.body_text()),
        }
    }

    fn pool(error: PoolError) -> Self {
        match error {
            PoolError::Busy { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "The server is busy with other questions; try again in a few seconds.",
            )
            .retry_after(RETRY_AFTER_S),
            PoolError::Panicked { pool } => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                format!("The {pool} worker failed unexpectedly; the error is in the server log."),
            ),
        }
    }

    fn run(error: &RunError, sql: &str) -> Self {
        let status = match error {
            RunError::Refused(_) => StatusCode::FORBIDDEN,
            RunError::TimedOut(_) | RunError::Sql(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RunError::Unavailable(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            body: ErrorBody::from_run(error, Author::User, sql),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = %self.body.code, "{}", self.body.message);
        }
        let mut response =
            (self.status, Json(serde_json::json!({ "error": self.body }))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "There is no {method} {}; the API is described at /api/openapi.yaml.",
            shorten(uri.path(), 200)
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not accept {method}; the API is described at /api/openapi.yaml.",
            shorten(uri.path(), 200)
        ),
    )
}

// ---- page, health, spec ----------------------------------------------------

async fn page() -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Html(PAGE),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI).into_response()
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    databases: usize,
    inference_jobs: usize,
    execution_jobs: usize,
}

async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        databases: state.catalog().len(),
        inference_jobs: state.inner.inference.load(),
        execution_jobs: state.inner.execution.load(),
    })
}

// ---- databases and schemas --------------------------------------------------

#[derive(Serialize)]
struct DatabaseList {
    databases: Vec<DatabaseSummary>,
    limits: Limits,
}

#[derive(Serialize)]
struct DatabaseSummary {
    db_id: String,
    tables: usize,
    columns: usize,
}

/// The bounds a client should respect, so the page can say so up front.
#[derive(Serialize)]
struct Limits {
    max_question_chars: usize,
    max_sql_chars: usize,
    max_rows: usize,
    beams: usize,
    sql_timeout_ms: u128,
    request_timeout_ms: u128,
}

async fn list_databases(State(state): State<AppState>) -> Json<DatabaseList> {
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

/// A schema as the page shows it: names instead of indices, keys marked on
/// their columns.
#[derive(Serialize)]
pub struct SchemaView {
    db_id: String,
    /// `tables.json` or `sqlite` (read from the file itself).
    source: &'static str,
    tables: Vec<TableView>,
    foreign_keys: Vec<ForeignKeyView>,
}

#[derive(Serialize)]
struct TableView {
    name: String,
    natural_name: String,
    primary_key: Vec<String>,
    columns: Vec<ColumnView>,
}

#[derive(Serialize)]
struct ColumnView {
    name: String,
    description: String,
    data_type: String,
    primary_key: bool,
    /// The column this one refers to, when it is a foreign key.
    references: Option<ColumnRef>,
    samples: Vec<Value>,
}

#[derive(Serialize)]
struct ColumnRef {
    table: String,
    column: String,
}

#[derive(Serialize)]
struct ForeignKeyView {
    table: String,
    column: String,
    ref_table: String,
    ref_column: String,
}

fn column_name(schema: &DatabaseSchema, table: usize, column: usize) -> Option<(&str, &str)> {
    let t = schema.tables.get(table)?;
    Some((t.name.as_str(), t.columns.get(column)?.name.as_str()))
}

fn schema_view(db: &Database) -> SchemaView {
    let schema = &db.schema;
    let tables = schema
        .tables
        .iter()
        .enumerate()
        .map(|(table_index, table)| TableView {
            name: table.name.clone(),
            natural_name: table.natural_name.clone(),
            primary_key: table
                .primary_key
                .iter()
                .filter_map(|&i| table.columns.get(i).map(|c| c.name.clone()))
                .collect(),
            columns: table
                .columns
                .iter()
                .enumerate()
                .map(|(column_index, column)| ColumnView {
                    name: column.name.clone(),
                    description: column.description.clone(),
                    data_type: column.data_type.clone(),
                    primary_key: table.primary_key.contains(&column_index),
                    references: schema
                        .foreign_keys_from(table_index)
                        .find(|fk| fk.column == column_index)
                        .and_then(|fk| column_name(schema, fk.ref_table, fk.ref_column))
                        .map(|(table, column)| ColumnRef {
                            table: table.into(),
                            column: column.into(),
                        }),
                    samples: column
                        .sample_values
                        .iter()
                        .map(|v| match v {
                            SampleValue::Integer(i) => Value::from(*i),
                            SampleValue::Real(f) => Value::from(*f),
                            SampleValue::Text(s) => Value::from(s.as_str()),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let foreign_keys = schema
        .foreign_keys
        .iter()
        .filter_map(|fk| {
            let (table, column) = column_name(schema, fk.table, fk.column)?;
            let (ref_table, ref_column) = column_name(schema, fk.ref_table, fk.ref_column)?;
            Some(ForeignKeyView {
                table: table.into(),
                column: column.into(),
                ref_table: ref_table.into(),
                ref_column: ref_column.into(),
            })
        })
        .collect();
    SchemaView {
        db_id: db.db_id.clone(),
        source: match db.schema_source {
            SchemaSource::TablesFile(_) => "tables.json",
            SchemaSource::Sqlite => "sqlite",
        },
        tables,
        foreign_keys,
    }
}

async fn schema(
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

// ---- ask and execute ---------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AskRequest {
    db_id: String,
    question: String,
    /// Fewer candidates than the server's beam width, if wanted.
    #[serde(default)]
    beams: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecuteRequest {
    db_id: String,
    sql: String,
}

/// The rows of one execution as JSON.
#[derive(Serialize)]
struct ResultView {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    row_count: usize,
    /// More rows exist than `max_rows`; only the first ones are here.
    truncated: bool,
    elapsed_ms: f64,
}

impl From<ResultSet> for ResultView {
    fn from(result: ResultSet) -> Self {
        Self {
            row_count: result.rows.len(),
            columns: result.columns,
            rows: result.rows,
            truncated: result.truncated,
            elapsed_ms: millis(result.elapsed),
        }
    }
}

#[derive(Serialize)]
struct Alternative {
    /// 1 = the generator's best.
    rank: usize,
    sql: String,
    score: f64,
    executes: bool,
    error: Option<ErrorBody>,
}

#[derive(Serialize)]
struct AskTimings {
    queue_ms: f64,
    generate_ms: f64,
    execute_ms: f64,
    total_ms: f64,
}

#[derive(Serialize)]
struct AskResponse {
    db_id: String,
    question: String,
    /// The SQL shown: the best candidate that executes, else the best one.
    sql: String,
    /// Rank of `sql` among `alternatives` when it executed.
    chosen_rank: Option<usize>,
    result: Option<ResultView>,
    /// Why `sql` did not run, when no candidate did.
    error: Option<ErrorBody>,
    alternatives: Vec<Alternative>,
    timings: AskTimings,
}

#[derive(Serialize)]
struct ExecuteTimings {
    queue_ms: f64,
    execute_ms: f64,
    total_ms: f64,
}

#[derive(Serialize)]
struct ExecuteResponse {
    db_id: String,
    sql: String,
    result: ResultView,
    timings: ExecuteTimings,
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

fn check_text(text: &str, field: &str, max_chars: usize, what: &str) -> Result<String, ApiError> {
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

async fn ask(
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
                (candidates, started.elapsed())
            })
            .await
            .map_err(ApiError::pool)?
    };
    let (candidates, generate_time) = generated.value;
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
fn distinct_candidates(candidates: Vec<Candidate>) -> Vec<Candidate> {
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
fn execute_candidates(
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

async fn execute(
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
