//! Load test, run on demand (it takes 30 s and wants a quiet machine):
//!
//! ```sh
//! cargo test --release -p text2sql-serve --test load -- --ignored --nocapture
//! ```
//!
//! 32 clients on loopback for 30 s (`LOAD_CLIENTS`, `LOAD_SECONDS`, capped at
//! 128 and 120) mix asks (80%), executions and schema reads against the real
//! server. The generator double sleeps `LOAD_GENERATE_MS` (default 20 ms) to
//! stand in for inference on a pool of 2 workers, so requests queue as they
//! would behind a model; the runner is a read-only rusqlite double. Prints
//! latency percentiles and the process's resident memory after a warm-up,
//! right after the load and after a short rest; fails on any error or when
//! memory after the rest has grown by more than a quarter over the warm-up.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use text2sql_serve::{ServeConfig, Server};

fn env_or(name: &str, default: u64, max: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .min(max)
}

/// Resident set size of this process in KiB, from /proc (Linux only).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Outcome {
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

async fn client_loop(
    client: HttpClient,
    base: String,
    seed: usize,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let questions = [Q_COUNT, Q_FRANCE, Q_CONCERTS, Q_NOTHING_RUNS];
    let mut outcome = Outcome {
        latencies: Vec::new(),
        errors: Vec::new(),
    };
    let mut i = seed;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let request = match i % 10 {
            0 => Request::get(format!("{base}/api/databases/concert/schema")).body(Full::default()),
            1 => Request::post(format!("{base}/api/execute"))
                .header("content-type", "application/json")
                .body(Full::from(
                    r#"{"db_id":"concert","sql":"SELECT country, count(*) FROM singer GROUP BY country"}"#,
                )),
            _ => Request::post(format!("{base}/api/ask"))
                .header("content-type", "application/json")
                .body(Full::from(
                    serde_json::json!({"db_id": "concert", "question": questions[i % questions.len()]})
                        .to_string(),
                )),
        };
        let request = request.unwrap();
        let started = Instant::now();
        match client.request(request).await {
            Ok(response) => {
                let status = response.status();
                match response.into_body().collect().await {
                    Ok(_) if status == StatusCode::OK => outcome.latencies.push(started.elapsed()),
                    Ok(_) => outcome.errors.push(format!("status {status}")),
                    Err(e) => outcome.errors.push(format!("body: {e}")),
                }
            }
            Err(e) => outcome.errors.push(format!("request: {e}")),
        }
    }
    outcome
}

#[test]
#[ignore = "30 s load test; run on demand with --ignored --nocapture"]
fn thirty_two_clients_for_thirty_seconds() {
    let clients = env_or("LOAD_CLIENTS", 32, 128) as usize;
    let seconds = env_or("LOAD_SECONDS", 30, 120);
    let generate_ms = env_or("LOAD_GENERATE_MS", 20, 1000);
    let fixture = Fixture::new();
    let config = ServeConfig {
        workers: 2,
        sql_workers: 2,
        queue: 64,
        ..fixture.config()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut generator = FixedGenerator::new();
        generator.delay = Duration::from_millis(generate_ms);
        let server = Server::bind(config, Arc::new(ReadOnlyRunner), Arc::new(generator))
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

        let run = |duration: Duration| {
            let stop = Arc::new(AtomicBool::new(false));
            let tasks: Vec<_> = (0..clients)
                .map(|seed| tokio::spawn(client_loop(client.clone(), base.clone(), seed, stop.clone())))
                .collect();
            async move {
                tokio::time::sleep(duration).await;
                stop.store(true, Ordering::Relaxed);
                let mut all = Outcome {
                    latencies: Vec::new(),
                    errors: Vec::new(),
                };
                for task in tasks {
                    let outcome = task.await.unwrap();
                    all.latencies.extend(outcome.latencies);
                    all.errors.extend(outcome.errors);
                }
                all
            }
        };

        let warmup = run(Duration::from_secs(3)).await;
        assert!(warmup.errors.is_empty(), "warm-up errors: {:?}", &warmup.errors[..warmup.errors.len().min(5)]);
        let rss_before = rss_kib();
        let started = Instant::now();
        let outcome = run(Duration::from_secs(seconds)).await;
        let elapsed = started.elapsed();
        let rss_end = rss_kib();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_after = rss_kib();

        let mut latencies = outcome.latencies;
        latencies.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "load: {clients} clients, {:.1} s, simulated inference {generate_ms} ms on 2 workers",
            elapsed.as_secs_f64()
        );
        println!(
            "load: {} requests ok, {} errors, {:.0} requests/s",
            latencies.len(),
            outcome.errors.len(),
            latencies.len() as f64 / elapsed.as_secs_f64()
        );
        println!(
            "load: latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(percentile(&latencies, 50.0)),
            ms(percentile(&latencies, 90.0)),
            ms(percentile(&latencies, 99.0)),
            ms(percentile(&latencies, 100.0)),
        );
        println!("load: RSS after warm-up {rss_before:?} KiB, at the end {rss_end:?} KiB, after 3 s rest {rss_after:?} KiB");

        let _ = stop_server.send(());
        serving.await.unwrap().unwrap();
        assert!(
            outcome.errors.is_empty(),
            "{} errors, e.g. {:?}",
            outcome.errors.len(),
            &outcome.errors[..outcome.errors.len().min(5)]
        );
        assert!(!latencies.is_empty());
        if let (Some(before), Some(after)) = (rss_before, rss_after) {
            assert!(
                after <= before + before / 4,
                "memory grew from {before} KiB to {after} KiB"
            );
        }
    });
}
