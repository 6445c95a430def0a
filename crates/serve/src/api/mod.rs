//! The HTTP surface: the page, the JSON API behind it, `/healthz`, and the
//! bounds every request meets (body size, field lengths, deadline, pools).
//! `docs/openapi.yaml` describes the same endpoints for clients.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tower_http::trace::TraceLayer;

use crate::backend::{RunLimits, SqlGenerator, SqlRunner};
use crate::catalog::{is_valid_db_id, Catalog, Database};
use crate::config::ServeConfig;
use crate::pool::WorkerPool;

mod error;
mod handlers;
mod views;

use error::{method_not_allowed, not_found, shorten};
pub use error::{ApiError, ErrorBody};
use handlers::{ask, execute, list_databases, schema};

/// The demo page: one self-contained file, no build step, nothing fetched
/// from the internet.
const PAGE: &str = include_str!("../page.html");
const OPENAPI: &str = include_str!("../../../../docs/openapi.yaml");
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
