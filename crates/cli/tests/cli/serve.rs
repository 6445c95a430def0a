//! `text2sql serve` end to end: a tiny seeded random model over a sample
//! corpus, driven over real HTTP, stopped with SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use crate::common::sample_with_model;

/// One HTTP/1.1 exchange; returns the status code and the JSON body.
fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn serve_answers_questions_executes_sql_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (sample, model) = sample_with_model(dir.path(), 200, 16, 5);

    // Served from a copy that is deleted once the server listens, as an
    // upgrade replaces the file under a running server: the SQL worker
    // processes it starts later must still be this program.
    let binary = dir.path().join("text2sql-copy");
    std::fs::copy(env!("CARGO_BIN_EXE_text2sql"), &binary).unwrap();
    let mut command = Command::new(&binary);
    command
        .args([
            "serve",
            "--model",
            model.to_str().unwrap(),
            "--databases",
            sample.join("databases").to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--beams",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // A process another test thread forks while the copy is open for
    // writing holds it open: exec then fails with "text file busy" until
    // that process execs in turn.
    let mut attempts = 0;
    let mut child = loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(26) && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            spawned => break spawned.unwrap(),
        }
    };
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut announced = String::new();
    let addr = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("serve exited before listening: {announced}");
        }
        announced.push_str(&line);
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            break url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
        }
    };
    std::fs::remove_file(&binary).unwrap();
    // Keep draining stderr so that logging can never block the server.
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });

    let (status, health) = http(&addr, "GET", "/healthz", None);
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["databases"], 10);

    let (status, list) = http(&addr, "GET", "/api/databases", None);
    assert_eq!(status, 200);
    let databases = list["databases"].as_array().unwrap();
    assert!(databases
        .iter()
        .any(|d| d["db_id"] == "retail_store_sales_0001"));

    let (status, answer) = http(
        &addr,
        "POST",
        "/api/ask",
        Some(r#"{"db_id": "retail_store_sales_0001", "question": "How many stores are there?"}"#),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["alternatives"].as_array().unwrap().len(),
        2,
        "{answer}"
    );
    assert!(answer["sql"].is_string(), "{answer}");
    // A random model's SQL rarely runs: then the answer explains why.
    if answer["result"].is_null() {
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }

    let (status, executed) = http(
        &addr,
        "POST",
        "/api/execute",
        Some(r#"{"db_id": "retail_store_sales_0001", "sql": "SELECT 1 + 1 AS two"}"#),
    );
    assert_eq!(status, 200, "{executed}");
    assert_eq!(
        executed["result"]["rows"],
        serde_json::json!([[2]]),
        "{executed}"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let log = drain.join().unwrap();
    assert!(status.success(), "{status:?}: {log}");
}
