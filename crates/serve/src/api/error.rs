//! Every API failure as one type: a status, a stable code, a sentence for
//! people, and the raw detail where there is one.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::RETRY_AFTER_S;
use crate::backend::RunError;
use crate::explain::{explain, strip_location, Author, Explanation};
use crate::pool::PoolError;

/// Every API failure: a status, a stable code, a sentence for people, and
/// optionally the raw detail (SQLite's own message).
#[derive(Debug)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) body: ErrorBody,
    pub(super) retry_after: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
}

impl ErrorBody {
    pub(super) fn from_run(error: &RunError, author: Author, sql: &str) -> Self {
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
    pub(super) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
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

    pub(super) fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub(super) fn json(rejection: JsonRejection, max_body_bytes: usize) -> Self {
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

    pub(super) fn pool(error: PoolError) -> Self {
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

    pub(super) fn run(error: &RunError, sql: &str) -> Self {
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

pub(super) fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

pub(super) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "There is no {method} {}; the API is described at /api/openapi.yaml.",
            shorten(uri.path(), 200)
        ),
    )
}

pub(super) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not accept {method}; the API is described at /api/openapi.yaml.",
            shorten(uri.path(), 200)
        ),
    )
}
