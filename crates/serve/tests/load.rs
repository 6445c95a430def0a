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
//! half-way, at the end and after a short rest; fails on any error, or when
//! memory after the rest exceeds the half-way mark by more than 10% + 1 MiB
//! (a leak keeps growing through the second half; warm-up levels off).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
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

fn show(kib: Option<u64>) -> String {
    kib.map_or_else(|| "unknown".into(), |k| k.to_string())
}

/// Latencies in 10 µs buckets up to 5 s, allocated and touched before the
/// load starts, so that recording them does not itself grow the memory the
/// test measures (a Vec of 150,000 durations would).
struct Histogram {
    buckets: Vec<AtomicU32>,
    slowest_us: AtomicU64,
}

const BUCKET_US: u64 = 10;
const BUCKETS: usize = 500_000;

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
            slowest_us: AtomicU64::new(0),
        }
    }

    fn record(&self, latency: Duration) {
        let us = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        let index = ((us / BUCKET_US) as usize).min(BUCKETS - 1);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.slowest_us.fetch_max(us, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.buckets
            .iter()
            .map(|b| u64::from(b.load(Ordering::Relaxed)))
            .sum()
    }

    /// Upper edge of the bucket holding the p-th percentile, in ms.
    fn percentile_ms(&self, p: f64) -> f64 {
        let total = self.count();
        let wanted = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += u64::from(bucket.load(Ordering::Relaxed));
            if seen >= wanted {
                return ((index as u64 + 1) * BUCKET_US) as f64 / 1000.0;
            }
        }
        self.slowest_ms()
    }

    fn slowest_ms(&self) -> f64 {
        self.slowest_us.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn client_loop(
    client: HttpClient,
    base: String,
    seed: usize,
    stop: Arc<AtomicBool>,
    latencies: Arc<Histogram>,
) -> Vec<String> {
    let questions = [Q_COUNT, Q_FRANCE, Q_CONCERTS, Q_NOTHING_RUNS];
    let mut errors = Vec::new();
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
                    Ok(_) if status == StatusCode::OK => latencies.record(started.elapsed()),
                    Ok(_) => errors.push(format!("status {status}")),
                    Err(e) => errors.push(format!("body: {e}")),
                }
            }
            Err(e) => errors.push(format!("request: {e}")),
        }
    }
    errors
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
        let server = Server::bind(config, Arc::new(SandboxRunner), Arc::new(generator))
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

        let warmup_latencies = Arc::new(Histogram::new());
        let latencies = Arc::new(Histogram::new());
        let run = |duration: Duration, histogram: Arc<Histogram>| {
            let stop = Arc::new(AtomicBool::new(false));
            let tasks: Vec<_> = (0..clients)
                .map(|seed| {
                    tokio::spawn(client_loop(
                        client.clone(),
                        base.clone(),
                        seed,
                        stop.clone(),
                        histogram.clone(),
                    ))
                })
                .collect();
            async move {
                tokio::time::sleep(duration).await;
                stop.store(true, Ordering::Relaxed);
                let mut errors = Vec::new();
                for task in tasks {
                    errors.extend(task.await.unwrap());
                }
                errors
            }
        };

        let warmup_errors = run(Duration::from_secs(3), warmup_latencies).await;
        assert!(
            warmup_errors.is_empty(),
            "warm-up errors: {:?}",
            &warmup_errors[..warmup_errors.len().min(5)]
        );
        // Two halves: a leak keeps growing through the second half, while
        // allocator and thread-pool warm-up levels off in the first.
        let rss_before = rss_kib();
        let started = Instant::now();
        let mut errors = run(Duration::from_secs(seconds / 2), latencies.clone()).await;
        let rss_mid = rss_kib();
        errors.extend(
            run(
                Duration::from_secs(seconds - seconds / 2),
                latencies.clone(),
            )
            .await,
        );
        let elapsed = started.elapsed();
        let rss_end = rss_kib();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_after = rss_kib();

        let ok = latencies.count();
        println!(
            "load: {clients} clients, {:.1} s, simulated inference {generate_ms} ms on 2 workers",
            elapsed.as_secs_f64()
        );
        println!(
            "load: {ok} requests ok, {} errors, {:.0} requests/s",
            errors.len(),
            ok as f64 / elapsed.as_secs_f64()
        );
        println!(
            "load: latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            latencies.percentile_ms(50.0),
            latencies.percentile_ms(90.0),
            latencies.percentile_ms(99.0),
            latencies.slowest_ms(),
        );
        println!(
            "load: RSS (KiB) after warm-up {}, half-way {}, at the end {}, after 3 s rest {}",
            show(rss_before),
            show(rss_mid),
            show(rss_end),
            show(rss_after)
        );

        let _ = stop_server.send(());
        serving.await.unwrap().unwrap();
        assert!(
            errors.is_empty(),
            "{} errors, e.g. {:?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        );
        assert!(ok > 0);
        if let (Some(mid), Some(after)) = (rss_mid, rss_after) {
            assert!(
                after <= mid + mid / 10 + 1024,
                "memory kept growing: {mid} KiB half-way, {after} KiB after the load"
            );
        }
    });
}

text2sql_sql::sql_worker_entry!();
