//! The JSON API, endpoint by endpoint, including the bad inputs a public
//! server meets: unknown databases, path tricks, oversized and malformed
//! bodies, SQL that writes. Every failure must be a clear 4xx (or 503 when
//! busy) and leave the served files untouched.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use text2sql_serve::{router, ServeConfig, Server};
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap().to_string()
    }

    fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(app: &Router, uri: &str) -> Reply {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post(app: &Router, uri: &str, body: impl Into<Body>) -> Reply {
    let request = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap();
    send(app, request).await
}

async fn post_json(app: &Router, uri: &str, body: Value) -> Reply {
    post(app, uri, body.to_string()).await
}

fn app(fixture: &Fixture) -> Router {
    router(fixture.state(fixture.config(), Arc::new(FixedGenerator::new())))
}

#[tokio::test]
async fn healthz_and_page() {
    let fixture = Fixture::new();
    let app = app(&fixture);
    let health = get(&app, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(health.json()["databases"], 2);

    let page = get(&app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    for id in [
        "database",
        "schema",
        "question",
        "ask",
        "sql",
        "run",
        "result",
        "alternatives",
        "history",
    ] {
        assert!(
            page.text.contains(&format!("id=\"{id}\"")),
            "page lacks #{id}"
        );
    }
    // Self-contained: nothing is fetched from elsewhere.
    assert!(!page.text.contains("http://") && !page.text.contains("https://"));
    assert!(!page.text.contains("<script src") && !page.text.contains("<link"));

    let spec = get(&app, "/api/openapi.yaml").await;
    assert_eq!(spec.status, StatusCode::OK);
    for path in [
        "/api/databases:",
        "/api/databases/{db_id}/schema:",
        "/api/ask:",
        "/api/execute:",
        "/healthz:",
    ] {
        assert!(spec.text.contains(path), "openapi.yaml lacks {path}");
    }
}

#[tokio::test]
async fn lists_databases_with_limits() {
    let fixture = Fixture::new();
    let reply = get(&app(&fixture), "/api/databases").await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(
        body["databases"],
        json!([
            {"db_id": "concert", "tables": 2, "columns": 8},
            {"db_id": "shop", "tables": 1, "columns": 3}
        ])
    );
    assert_eq!(body["limits"]["max_rows"], 50);
    assert_eq!(body["limits"]["max_question_chars"], 1000);
}

#[tokio::test]
async fn schema_shows_columns_keys_and_examples() {
    let fixture = Fixture::new();
    let reply = get(&app(&fixture), "/api/databases/concert/schema").await;
    assert_eq!(reply.status, StatusCode::OK);
    let schema = reply.json();
    assert_eq!(schema["db_id"], "concert");
    assert_eq!(schema["source"], "sqlite");
    let singer = &schema["tables"][0];
    assert_eq!(singer["name"], "singer");
    assert_eq!(singer["primary_key"], json!(["singer_id"]));
    assert_eq!(singer["columns"][1]["name"], "name");
    assert_eq!(singer["columns"][1]["data_type"], "TEXT");
    assert_eq!(
        singer["columns"][1]["samples"],
        json!(["Joe Sharp", "Timbaland"])
    );
    assert_eq!(singer["columns"][3]["samples"], json!([52, 32]));
    let concert_singer = &schema["tables"][1]["columns"][3];
    assert_eq!(
        concert_singer["references"],
        json!({"table": "singer", "column": "singer_id"})
    );
    assert_eq!(
        schema["foreign_keys"],
        json!([{"table": "concert", "column": "singer_id", "ref_table": "singer", "ref_column": "singer_id"}])
    );
}

#[tokio::test]
async fn unknown_databases_and_path_tricks_are_4xx() {
    let fixture = Fixture::new();
    let app = app(&fixture);
    let before = snapshot(fixture.dir.path());

    let unknown = get(&app, "/api/databases/nope/schema").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), "unknown_database");
    assert!(unknown.error_message().contains("nope"));

    for trick in [
        "/api/databases/..%2F..%2Fetc%2Fpasswd/schema",
        "/api/databases/..%2Fdatabases%2Fconcert/schema",
        "/api/databases/../schema",
        "/api/databases/concert.sqlite/schema",
        "/api/databases/%2Fetc%2Fpasswd/schema",
        "/api/databases/concert%00/schema",
    ] {
        let reply = get(&app, trick).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{trick}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "invalid_database_id", "{trick}");
    }
    // A path that is not a route at all.
    let elsewhere = get(&app, "/api/databases/concert/../../../etc/passwd").await;
    assert!(elsewhere.status.is_client_error(), "{}", elsewhere.status);

    for db_id in ["../concert", "/etc/passwd", "concert/concert.sqlite", ""] {
        let reply = post_json(
            &app,
            "/api/ask",
            json!({"db_id": db_id, "question": Q_COUNT}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{db_id}");
        assert_eq!(reply.error_code(), "invalid_database_id");
        let reply = post_json(
            &app,
            "/api/execute",
            json!({"db_id": db_id, "sql": "SELECT 1"}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{db_id}");
    }
    let reply = post_json(
        &app,
        "/api/execute",
        json!({"db_id": "absent", "sql": "SELECT 1"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(before, snapshot(fixture.dir.path()));
}

#[tokio::test]
async fn ask_returns_sql_rows_timings_and_alternatives() {
    let fixture = Fixture::new();
    let app = app(&fixture);
    let reply = post_json(
        &app,
        "/api/ask",
        json!({"db_id": "concert", "question": Q_COUNT}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["sql"], "SELECT count(*) FROM singer");
    assert_eq!(body["chosen_rank"], 1);
    assert_eq!(body["result"]["columns"], json!(["count(*)"]));
    assert_eq!(body["result"]["rows"], json!([[6]]));
    assert_eq!(body["result"]["truncated"], false);
    assert_eq!(body["error"], Value::Null);
    let alternatives = body["alternatives"].as_array().unwrap();
    assert_eq!(alternatives.len(), 3);
    assert_eq!(alternatives[0]["executes"], true);
    assert_eq!(alternatives[1]["executes"], false);
    assert_eq!(
        alternatives[1]["error"]["message"],
        "The model's SQL refers to a table that does not exist: singers."
    );
    assert_eq!(alternatives[1]["error"]["detail"], "no such table: singers");
    assert_eq!(alternatives[2]["executes"], true);
    assert_eq!(body["shapes"], json!(["select count ( * ) from _"]));
    for key in ["queue_ms", "generate_ms", "execute_ms", "total_ms"] {
        assert!(body["timings"][key].as_f64().unwrap() >= 0.0, "{key}");
    }

    // Asking for fewer beams gives fewer alternatives.
    let one = post_json(
        &app,
        "/api/ask",
        json!({"db_id": "concert", "question": Q_COUNT, "beams": 1}),
    )
    .await;
    assert_eq!(one.json()["alternatives"].as_array().unwrap().len(), 1);
    let too_many = post_json(
        &app,
        "/api/ask",
        json!({"db_id": "concert", "question": Q_COUNT, "beams": 99}),
    )
    .await;
    assert_eq!(too_many.status, StatusCode::BAD_REQUEST);
    assert_eq!(too_many.error_code(), "invalid_beams");
}

#[tokio::test]
async fn ask_falls_back_to_the_best_candidate_that_runs() {
    let fixture = Fixture::new();
    let app = app(&fixture);
    let body = post_json(
        &app,
        "/api/ask",
        json!({"db_id": "concert", "question": Q_FRANCE}),
    )
    .await
    .json();
    assert_eq!(body["chosen_rank"], 2);
    // Held to no shape: an empty list, not a missing field.
    assert_eq!(body["shapes"], json!([]));
    assert_eq!(
        body["sql"],
        "SELECT name FROM singer WHERE country = 'France' ORDER BY name"
    );
    assert_eq!(
        body["result"]["rows"],
        json!([
            ["John Nizinik"],
            ["Justin Brown"],
            ["Rose White"],
            ["Tribal King"]
        ])
    );
    let alternatives = body["alternatives"].as_array().unwrap();
    // The trimmed duplicate of #2 is dropped.
    assert_eq!(alternatives.len(), 3);
    assert_eq!(
        alternatives[0]["error"]["message"],
        "The model's SQL refers to a column that does not exist: nme."
    );
}

#[tokio::test]
async fn ask_when_no_candidate_runs_explains_the_best_one() {
    let fixture = Fixture::new();
    let app = app(&fixture);
    let reply = post_json(
        &app,
        "/api/ask",
        json!({"db_id": "concert", "question": Q_NOTHING_RUNS}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["sql"], "SELECT title FROM singer");
    assert_eq!(body["chosen_rank"], Value::Null);
    assert_eq!(body["result"], Value::Null);
    assert_eq!(body["error"]["code"], "sql_error");
    assert_eq!(
        body["error"]["message"],
        "The model's SQL refers to a column that does not exist: title."
    );

    // Model SQL that writes is refused by the runner, never executed.
    let before = snapshot(fixture.dir.path());
    let body = post_json(
        &app,
        "/api/ask",
        json!({"db_id": "concert", "question": Q_WRITES}),
    )
    .await
    .json();
    assert_eq!(body["error"]["code"], "refused");
    assert_eq!(before, snapshot(fixture.dir.path()));

    // The generator failing as a whole is the server's problem: 500.
    let reply = post_json(
        &app,
        "/api/ask",
        json!({"db_id": "concert", "question": "unknown to the double"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.error_code(), "generation_failed");
}

#[tokio::test]
async fn questions_are_bounded() {
    let fixture = Fixture::new();
    let app = app(&fixture);
    let empty = post_json(
        &app,
        "/api/ask",
        json!({"db_id": "concert", "question": "   "}),
    )
    .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(empty.error_code(), "empty_question");
    let long = "é".repeat(1001);
    let reply = post_json(
        &app,
        "/api/ask",
        json!({"db_id": "concert", "question": long}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "question_too_long");
    assert_eq!(
        reply.error_message(),
        "The question has 1001 characters; the limit is 1000."
    );
}

#[tokio::test]
async fn bad_bodies_are_4xx_with_a_reason() {
    let fixture = Fixture::new();
    let app = app(&fixture);
    let before = snapshot(fixture.dir.path());

    let malformed = post(&app, "/api/ask", "{\"db_id\": \"concert\", \"question\": ").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.error_code(), "malformed_json");

    let not_json = post(&app, "/api/execute", "SELECT 1").await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_json.error_code(), "malformed_json");

    let wrong_shape = post_json(
        &app,
        "/api/ask",
        json!({"db": "concert", "question": Q_COUNT}),
    )
    .await;
    assert_eq!(wrong_shape.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong_shape.error_code(), "invalid_request");
    assert!(
        wrong_shape.error_message().contains("db"),
        "{}",
        wrong_shape.error_message()
    );

    let wrong_type = post_json(&app, "/api/ask", json!({"db_id": 7, "question": Q_COUNT})).await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);

    let no_content_type = send(
        &app,
        Request::post("/api/ask")
            .body(Body::from(
                json!({"db_id": "concert", "question": Q_COUNT}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(no_content_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(no_content_type.error_code(), "unsupported_media_type");

    // 64 KiB is the limit; a 100 KiB question never reaches the handler.
    let huge = json!({"db_id": "concert", "question": "x".repeat(100 * 1024)}).to_string();
    let oversized = post(&app, "/api/ask", huge).await;
    assert_eq!(oversized.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(oversized.error_code(), "body_too_large");
    assert!(oversized.error_message().contains("64 KiB"));
    let huge_sql =
        json!({"db_id": "concert", "sql": format!("SELECT 1 -- {}", "x".repeat(100 * 1024))})
            .to_string();
    assert_eq!(
        post(&app, "/api/execute", huge_sql).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );

    let wrong_method = get(&app, "/api/ask").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.error_code(), "method_not_allowed");
    let no_route = get(&app, "/api/nothing-here").await;
    assert_eq!(no_route.status, StatusCode::NOT_FOUND);
    assert_eq!(no_route.error_code(), "not_found");

    assert_eq!(before, snapshot(fixture.dir.path()));
}

#[tokio::test]
async fn execute_runs_edited_sql_under_the_row_cap() {
    let fixture = Fixture::new();
    let app = app(&fixture);
    let reply = post_json(
        &app,
        "/api/execute",
        json!({"db_id": "shop", "sql": "SELECT label, price FROM item WHERE price > 1 ORDER BY price DESC"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["result"]["columns"], json!(["label", "price"]));
    assert_eq!(body["result"]["rows"], json!([["ink", 4.25], ["pen", 1.5]]));
    assert_eq!(body["result"]["row_count"], 2);

    // 60 concerts, cap 50.
    let capped = post_json(
        &app,
        "/api/execute",
        json!({"db_id": "concert", "sql": "SELECT * FROM concert"}),
    )
    .await
    .json();
    assert_eq!(capped["result"]["row_count"], 50);
    assert_eq!(capped["result"]["truncated"], true);
}

#[tokio::test]
async fn execute_refuses_sql_that_writes_and_explains_errors() {
    let fixture = Fixture::new();
    let app = app(&fixture);
    let before = snapshot(fixture.dir.path());
    for sql in [
        "DELETE FROM singer",
        "DROP TABLE singer",
        "INSERT INTO singer VALUES (7, 'New', 'Peru', 30)",
        "UPDATE singer SET age = 0",
        "CREATE TABLE t (x)",
        "PRAGMA user_version = 7",
        "SELECT 1; DELETE FROM singer",
    ] {
        let reply = post_json(
            &app,
            "/api/execute",
            json!({"db_id": "concert", "sql": sql}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{sql}: {}", reply.text);
        assert_eq!(reply.error_code(), "refused", "{sql}");
        assert!(
            reply.error_message().starts_with("Your SQL was not run"),
            "{sql}"
        );
    }
    assert_eq!(before, snapshot(fixture.dir.path()));

    let typo = post_json(
        &app,
        "/api/execute",
        json!({"db_id": "concert", "sql": "SELEC name FROM singer"}),
    )
    .await;
    assert_eq!(typo.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(typo.error_code(), "sql_error");
    assert_eq!(
        typo.error_message(),
        "Your SQL has a syntax error near \"SELEC\"."
    );

    let empty = post_json(
        &app,
        "/api/execute",
        json!({"db_id": "concert", "sql": "  "}),
    )
    .await;
    assert_eq!(empty.error_code(), "empty_sql");
    let long = post_json(
        &app,
        "/api/execute",
        json!({"db_id": "concert", "sql": "x".repeat(20_001)}),
    )
    .await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert_eq!(long.error_code(), "sql_too_long");
}

#[tokio::test]
async fn runaway_sql_is_stopped_at_its_deadline() {
    let fixture = Fixture::new();
    let config = ServeConfig {
        sql_timeout: Duration::from_millis(200),
        ..fixture.config()
    };
    let app = router(fixture.state(config, Arc::new(FixedGenerator::new())));
    let endless =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";
    let reply = post_json(
        &app,
        "/api/execute",
        json!({"db_id": "concert", "sql": endless}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_code(), "timed_out");
    assert!(
        reply.error_message().contains("200 ms"),
        "{}",
        reply.error_message()
    );
}

/// A generator that blocks until the test releases it, so that the test
/// controls how many jobs are in the pool.
fn gated() -> (Arc<FixedGenerator>, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (generator, started, release) = FixedGenerator::gated();
    (Arc::new(generator), started, release)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_inference_queue_answers_503_with_retry_after() {
    let fixture = Fixture::new();
    let config = ServeConfig {
        workers: 1,
        queue: 0,
        ..fixture.config()
    };
    let (generator, started, release) = gated();
    let app = router(fixture.state(config, generator));
    let ask = json!({"db_id": "concert", "question": Q_COUNT});

    let first = tokio::spawn({
        let app = app.clone();
        let ask = ask.clone();
        async move { post_json(&app, "/api/ask", ask).await }
    });
    tokio::task::spawn_blocking(move || started.recv().unwrap())
        .await
        .unwrap();
    let second = post_json(&app, "/api/ask", ask).await;
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.error_code(), "busy");
    assert_eq!(second.headers[header::RETRY_AFTER], "2");
    // Other endpoints are not held up by inference.
    assert_eq!(get(&app, "/healthz").await.json()["inference_jobs"], 1);

    release.send(()).unwrap();
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json()["result"]["rows"], json!([[6]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_gets_503_and_the_pool_stays_bounded() {
    let fixture = Fixture::new();
    let config = ServeConfig {
        workers: 1,
        queue: 4,
        request_timeout: Duration::from_millis(300),
        ..fixture.config()
    };
    let (generator, started, release) = gated();
    let app = router(fixture.state(config, generator));
    let reply = post_json(
        &app,
        "/api/ask",
        json!({"db_id": "concert", "question": Q_COUNT}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.error_code(), "deadline_exceeded");
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
    // The abandoned generation still holds its worker until it ends.
    started.recv().unwrap();
    assert_eq!(get(&app, "/healthz").await.json()["inference_jobs"], 1);
    release.send(()).unwrap();
    for _ in 0..200 {
        if get(&app, "/healthz").await.json()["inference_jobs"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the finished generation never gave its worker back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_listens_on_loopback_and_shuts_down_gracefully() {
    let fixture = Fixture::new();
    let server = Server::bind(
        fixture.config(),
        Arc::new(SandboxRunner),
        Arc::new(FixedGenerator::new()),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback());
    assert_eq!(server.catalog().len(), 2);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stop_rx.await;
    }));

    let body = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    })
    .await
    .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the server did not stop after the shutdown signal")
        .unwrap()
        .unwrap();
    assert!(std::net::TcpStream::connect(addr).is_err());
}

text2sql_sql::sql_worker_entry!();
