//! `/api/execute` against the published hostile suite
//! (`crates/sql/data/hostile_sql.json`): every entry answered within the
//! SQL deadline + 1 s with a 4xx or an allowed result, the database
//! unchanged, no file created, the server's memory bounded, and a normal
//! query answered right after; and the freeze (LIKE bombs holding
//! every SQL worker) no longer happens.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use common::*;
use http_body_util::BodyExt;
use serde_json::Value;
use text2sql_serve::{router, ServeConfig};
use text2sql_sql::hostile::{
    create_target_database, created_files, hostile_suite, CONTROL_ANSWER, CONTROL_QUERY,
};
use tower::ServiceExt;

const SQL_TIMEOUT: Duration = Duration::from_secs(1);

fn setup() -> (Fixture, Router, ServeConfig) {
    let fixture = Fixture::new();
    let folder = fixture.databases.join("target");
    std::fs::create_dir_all(&folder).unwrap();
    create_target_database(&folder.join("target.sqlite")).unwrap();
    let config = ServeConfig {
        sql_timeout: SQL_TIMEOUT,
        ..fixture.config()
    };
    let app = router(fixture.state(config.clone(), Arc::new(FixedGenerator::new())));
    (fixture, app, config)
}

/// The outcome as the suite names it, the status and the reply.
async fn execute(app: &Router, body: Vec<u8>) -> (String, StatusCode, String) {
    let request = Request::post("/api/execute")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let code = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default();
    let kind = match (status, code.as_str()) {
        (StatusCode::OK, _) => "ok",
        (_, "timed_out") => "timeout",
        (_, "sql_error") => "sql_error",
        // Refused by the sandbox (403), or before it: a body too large
        // (413) or not JSON (400: invalid UTF-8).
        (StatusCode::FORBIDDEN | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::BAD_REQUEST, _) => {
            "refused"
        }
        _ => "unexpected",
    };
    (kind.to_string(), status, text)
}

fn body(sql: &[u8]) -> Vec<u8> {
    execute_body("target", sql)
}

async fn control(app: &Router) -> Duration {
    let started = Instant::now();
    let (kind, _, text) = execute(app, body(CONTROL_QUERY.as_bytes())).await;
    assert_eq!(kind, "ok", "{text}");
    let reply: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reply["result"]["rows"][0][0], CONTROL_ANSWER, "{text}");
    started.elapsed()
}

fn resident_bytes() -> u64 {
    rss_kib(None).map_or(0, |kib| kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_holds_against_every_hostile_query() {
    let (fixture, app, _) = setup();
    let before = snapshot(fixture.dir.path());
    control(&app).await;
    let memory_before = resident_bytes();
    let mut failures = Vec::new();
    for query in hostile_suite().unwrap() {
        let started = Instant::now();
        let (kind, status, text) = execute(&app, body(&query.bytes)).await;
        let took = started.elapsed();
        if !query.expect.contains(&kind) {
            failures.push(format!(
                "{}: {kind} ({status}: {text:.300}), expected {:?}",
                query.name, query.expect
            ));
        }
        if status.is_server_error() {
            failures.push(format!("{}: {status}", query.name));
        }
        if took > SQL_TIMEOUT + Duration::from_secs(1) {
            failures.push(format!("{}: took {took:?}", query.name));
        }
        let folder = fixture.dir.path().to_string_lossy().into_owned();
        if text.contains(&folder) {
            failures.push(format!(
                "{}: the reply names a server path: {text:.300}",
                query.name
            ));
        }
        control(&app).await;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        snapshot(fixture.dir.path()) == before,
        "a served file changed or appeared"
    );
    let cwd = std::env::current_dir().unwrap();
    let created = created_files(&[&cwd, &std::env::temp_dir()]);
    assert!(created.is_empty(), "{created:?}");
    // Results are bounded in bytes and queries run in workers: the server
    // itself does not grow by more than a few result buffers.
    let grown = resident_bytes().saturating_sub(memory_before);
    assert!(grown < 200 << 20, "the server grew by {} MiB", grown >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn like_bombs_on_every_sql_worker_do_not_freeze_the_server() {
    let (_fixture, app, config) = setup();
    let bomb = hostile_suite()
        .unwrap()
        .into_iter()
        .find(|q| q.name == "like_bomb")
        .unwrap();
    // One more bomb than there are SQL workers, as in the issue.
    let bombs: Vec<_> = (0..=config.sql_workers)
        .map(|_| {
            let app = app.clone();
            let sql = bomb.bytes.clone();
            tokio::spawn(async move { execute(&app, body(&sql)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Queued behind the bombs, the normal query waits for a worker to be
    // killed at the deadline, not for the bombs to finish on their own.
    let waited = control(&app).await;
    assert!(
        waited < 2 * (SQL_TIMEOUT + Duration::from_secs(1)),
        "{waited:?}"
    );
    for bomb in bombs {
        let (kind, status, _) = bomb.await.unwrap();
        assert_eq!(kind, "timeout", "{status}");
    }
    let health = app
        .clone()
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

text2sql_sql::sql_worker_entry!();
