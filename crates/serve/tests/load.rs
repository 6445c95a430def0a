//! Load test, run on demand (it takes a minute or more and wants a quiet
//! machine):
//!
//! ```sh
//! cargo test --release -p text2sql-serve --test load -- --ignored --nocapture
//! # with a trained model and its sample corpus, and 8 hostile clients:
//! LOAD_MODEL=runs/quickstart/best LOAD_SAMPLE=quickstart/sample LOAD_HOSTILE=8 \
//!   cargo test --release -p text2sql-serve --test load -- --ignored --nocapture
//! ```
//! (`bench/load_bench.sh` runs the second form.)
//!
//! `LOAD_CLIENTS` clients (default 32) on loopback for `LOAD_SECONDS` (default
//! 30) mix `/api/ask` and `/api/execute` against the real server and the real
//! sandbox. With `LOAD_MODEL` and `LOAD_SAMPLE` the generator is that
//! checkpoint and the questions and gold SQL come from the sample's
//! `data.json` over its databases; without them a double sleeps
//! `LOAD_GENERATE_MS` (default 20 ms) per question on the concert fixture.
//! A prober asks `/healthz` every 200 ms throughout. Prints p50/p90/p99 per
//! endpoint and the process's resident memory after a warm-up, half-way, at
//! the end and after a short rest; fails on any 5xx or transport error, a
//! failed health check, or memory after the rest above the half-way mark by
//! more than 10% + 1 MiB (a leak keeps growing through the second half).
//!
//! With `LOAD_BINARY` (the `text2sql` binary) as well, the server is that
//! binary's `serve` in its own process, as users run it (its allocator, its
//! thread settings), and the memory figures are that process's.
//!
//! `LOAD_HOSTILE=N` then runs the same again with N of the clients sending
//! the published hostile suite to `/api/execute` instead: the others must
//! still get every answer, with p99 within twice the quiet run's.

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
use text2sql_model::{Device, SqlModel};
use text2sql_serve::{ModelGenerator, ServeConfig, Server, SqlGenerator};
use text2sql_sql::hostile::{create_target_database, hostile_suite};

fn env_or(name: &str, default: u64, max: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .min(max)
}

fn show(kib: Option<u64>) -> String {
    kib.map_or_else(|| "unknown".into(), |k| k.to_string())
}

/// Latencies in 100 µs buckets up to 60 s, allocated and touched before the
/// load starts, so that recording them does not itself grow the memory the
/// test measures (a Vec of 150,000 durations would).
struct Histogram {
    buckets: Vec<AtomicU32>,
    slowest_us: AtomicU64,
}

const BUCKET_US: u64 = 100;
const BUCKETS: usize = 600_000;

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

/// One request a client may send: method GET without a body, POST with one.
#[derive(Clone)]
struct Call {
    endpoint: Endpoint,
    path: String,
    body: Option<Bytes>,
}

#[derive(Clone, Copy, PartialEq)]
enum Endpoint {
    Ask,
    Execute,
    Schema,
    Health,
}

/// Latencies of successful requests, per endpoint.
struct Latencies {
    ask: Histogram,
    execute: Histogram,
    schema: Histogram,
    health: Histogram,
}

impl Latencies {
    fn new() -> Self {
        Self {
            ask: Histogram::new(),
            execute: Histogram::new(),
            schema: Histogram::new(),
            health: Histogram::new(),
        }
    }

    fn of(&self, endpoint: Endpoint) -> &Histogram {
        match endpoint {
            Endpoint::Ask => &self.ask,
            Endpoint::Execute => &self.execute,
            Endpoint::Schema => &self.schema,
            Endpoint::Health => &self.health,
        }
    }

    fn print(&self, label: &str) {
        for (name, histogram) in [
            ("/api/ask", &self.ask),
            ("/api/execute", &self.execute),
            ("schema", &self.schema),
            ("/healthz", &self.health),
        ] {
            if histogram.count() == 0 {
                continue;
            }
            println!(
                "load {label}: {name:<13} {:>6} ok, p50 {:>8.1} ms, p90 {:>8.1} ms, p99 {:>8.1} ms, max {:>8.1} ms",
                histogram.count(),
                histogram.percentile_ms(50.0),
                histogram.percentile_ms(90.0),
                histogram.percentile_ms(99.0),
                histogram.slowest_ms(),
            );
        }
    }
}

/// What the normal clients ask, and what the served folder holds.
struct Workload {
    calls: Vec<Call>,
    /// None when an external server runs the model.
    generator: Option<Arc<dyn SqlGenerator>>,
    describe: String,
}

fn post(endpoint: Endpoint, path: &str, body: serde_json::Value) -> Call {
    Call {
        endpoint,
        path: path.to_string(),
        body: Some(Bytes::from(body.to_string())),
    }
}

/// The concert fixture with a sleeping double for the model.
fn double_workload(generate_ms: u64) -> Workload {
    let mut calls = vec![
        Call {
            endpoint: Endpoint::Schema,
            path: "/api/databases/concert/schema".into(),
            body: None,
        },
        post(
            Endpoint::Execute,
            "/api/execute",
            serde_json::json!({"db_id": "concert", "sql": "SELECT country, count(*) FROM singer GROUP BY country"}),
        ),
    ];
    for question in [Q_COUNT, Q_FRANCE, Q_CONCERTS, Q_NOTHING_RUNS] {
        for _ in 0..2 {
            calls.push(post(
                Endpoint::Ask,
                "/api/ask",
                serde_json::json!({"db_id": "concert", "question": question}),
            ));
        }
    }
    let mut generator = FixedGenerator::new();
    generator.delay = Duration::from_millis(generate_ms);
    Workload {
        calls,
        generator: Some(Arc::new(generator)),
        describe: format!("simulated inference {generate_ms} ms"),
    }
}

/// A trained checkpoint over a sample corpus: each record gives an ask
/// (its question) and an execute (its gold SQL). The sample's databases are
/// linked into `served`, next to the hostile suite's target database.
fn model_workload(
    model: &std::path::Path,
    sample: &std::path::Path,
    served: &std::path::Path,
    in_process: bool,
) -> Workload {
    let records: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(sample.join("data.json")).unwrap()).unwrap();
    for entry in std::fs::read_dir(sample.join("databases")).unwrap() {
        let entry = entry.unwrap();
        let db_id = entry.file_name();
        let file = entry
            .path()
            .join(format!("{}.sqlite", db_id.to_string_lossy()));
        if file.is_file() {
            let folder = served.join(&db_id);
            std::fs::create_dir_all(&folder).unwrap();
            let target = folder.join(file.file_name().unwrap());
            if std::fs::hard_link(&file, &target).is_err() {
                std::fs::copy(&file, &target).unwrap();
            }
        }
    }
    let mut calls = Vec::new();
    // Every 97th record: a spread over the databases without reading all.
    for record in records.iter().step_by(97).take(400) {
        let db_id = &record["db_id"];
        calls.push(post(
            Endpoint::Ask,
            "/api/ask",
            serde_json::json!({"db_id": db_id, "question": record["question"]}),
        ));
        calls.push(post(
            Endpoint::Execute,
            "/api/execute",
            serde_json::json!({"db_id": db_id, "sql": record["sql"]}),
        ));
    }
    let generator = in_process.then(|| {
        let mut loaded = SqlModel::load(model, &Device::Cpu).unwrap();
        loaded.set_constrained(true);
        Arc::new(ModelGenerator::new(loaded)) as Arc<dyn SqlGenerator>
    });
    Workload {
        calls,
        generator,
        describe: format!("model {}", model.display()),
    }
}

fn hostile_calls() -> Vec<Call> {
    hostile_suite()
        .unwrap()
        .into_iter()
        .map(|query| {
            let body = execute_body("target", &query.bytes);
            Call {
                endpoint: Endpoint::Execute,
                path: "/api/execute".into(),
                body: Some(Bytes::from(body)),
            }
        })
        .collect()
}

/// Sends `calls` in turn (from `seed`) until stopped. Normal clients record
/// latencies and count anything but 200 as an error; hostile clients expect
/// 4xx and count only 5xx and transport failures.
async fn client_loop(
    client: HttpClient,
    base: String,
    calls: Arc<Vec<Call>>,
    seed: usize,
    hostile: bool,
    stop: Arc<AtomicBool>,
    latencies: Arc<Latencies>,
) -> Vec<String> {
    let max_body = ServeConfig::default().max_body_bytes;
    let mut errors = Vec::new();
    let mut i = seed;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let call = &calls[i % calls.len()];
        let request = match &call.body {
            Some(body) => Request::post(format!("{base}{}", call.path))
                .header("content-type", "application/json")
                .body(Full::new(body.clone())),
            None => Request::get(format!("{base}{}", call.path)).body(Full::default()),
        }
        .unwrap();
        let started = Instant::now();
        match client.request(request).await {
            Ok(response) => {
                let status = response.status();
                match response.into_body().collect().await {
                    Ok(_) if status == StatusCode::OK && !hostile => {
                        latencies.of(call.endpoint).record(started.elapsed());
                    }
                    Ok(_) if hostile && !status.is_server_error() => {}
                    Ok(body) => errors.push(format!(
                        "status {status}: {}",
                        String::from_utf8_lossy(&body.to_bytes())
                            .chars()
                            .take(200)
                            .collect::<String>()
                    )),
                    Err(e) => errors.push(format!("body: {e}")),
                }
            }
            // A server may answer 413 and close before a body over its limit
            // is sent, which the client sees as a failed send.
            Err(_) if hostile && call.body.as_ref().is_some_and(|b| b.len() > max_body) => {}
            Err(e) => errors.push(format!("request: {e}")),
        }
        if call.endpoint == Endpoint::Health {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    errors
}

struct Phase {
    latencies: Arc<Latencies>,
    errors: Vec<String>,
    elapsed: Duration,
    rss_mid: Option<u64>,
    rss_end: Option<u64>,
}

impl Phase {
    fn print(&self, label: &str, clients: String) {
        println!(
            "load {label}: {clients}; {:.1} s, {} errors",
            self.elapsed.as_secs_f64(),
            self.errors.len()
        );
        self.latencies.print(label);
    }
}

#[test]
#[ignore = "load test of a minute or more; run on demand with --ignored --nocapture"]
fn thirty_two_clients_for_thirty_seconds() {
    let clients = env_or("LOAD_CLIENTS", 32, 128) as usize;
    let seconds = env_or("LOAD_SECONDS", 30, 120);
    let generate_ms = env_or("LOAD_GENERATE_MS", 20, 1000);
    let hostile_clients = (env_or("LOAD_HOSTILE", 0, 64) as usize).min(clients.saturating_sub(1));
    let fixture = Fixture::new();
    let binary = std::env::var_os("LOAD_BINARY");
    let model = std::env::var_os("LOAD_MODEL");
    let workload = match (&model, std::env::var_os("LOAD_SAMPLE")) {
        (Some(model), Some(sample)) => model_workload(
            model.as_ref(),
            sample.as_ref(),
            &fixture.databases,
            binary.is_none(),
        ),
        _ => double_workload(generate_ms),
    };
    let target = fixture.databases.join("target");
    std::fs::create_dir_all(&target).unwrap();
    create_target_database(&target.join("target.sqlite")).unwrap();
    let config = ServeConfig {
        workers: 2,
        queue: 64,
        sql_workers: ServeConfig::default().sql_workers,
        ..fixture.config()
    };
    let normal_calls = Arc::new(workload.calls);
    let hostile = Arc::new(hostile_calls());
    let health = Arc::new(vec![Call {
        endpoint: Endpoint::Health,
        path: "/healthz".into(),
        body: None,
    }]);
    let sql_workers = config.sql_workers;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let server = match (&binary, &model, workload.generator) {
            (Some(binary), Some(model), _) => {
                ServerUnderTest::external(binary.as_ref(), model.as_ref(), &config)
            }
            (_, _, Some(generator)) => ServerUnderTest::in_process(config, generator).await,
            _ => panic!("LOAD_BINARY needs LOAD_MODEL and LOAD_SAMPLE"),
        };
        let base = server.base.clone();
        let pid = server.pid();
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

        // `hostile_clients` of the clients send the hostile suite; a prober
        // asks /healthz throughout; the rest are normal.
        let run = |duration: Duration, hostile_clients: usize, latencies: Arc<Latencies>| {
            let stop = Arc::new(AtomicBool::new(false));
            let mut tasks: Vec<_> = (0..clients)
                .map(|seed| {
                    let is_hostile = seed < hostile_clients;
                    let calls = if is_hostile {
                        hostile.clone()
                    } else {
                        normal_calls.clone()
                    };
                    tokio::spawn(client_loop(
                        client.clone(),
                        base.clone(),
                        calls,
                        seed * 7,
                        is_hostile,
                        stop.clone(),
                        latencies.clone(),
                    ))
                })
                .collect();
            tasks.push(tokio::spawn(client_loop(
                client.clone(),
                base.clone(),
                health.clone(),
                0,
                false,
                stop.clone(),
                latencies.clone(),
            )));
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
        // Two halves: a leak keeps growing through the second half, while
        // allocator and thread-pool warm-up levels off in the first.
        let phase = |hostile_clients: usize| {
            let run = &run;
            async move {
                let latencies = Arc::new(Latencies::new());
                let started = Instant::now();
                let mut errors = run(
                    Duration::from_secs(seconds / 2),
                    hostile_clients,
                    latencies.clone(),
                )
                .await;
                let rss_mid = rss_kib(pid);
                errors.extend(
                    run(
                        Duration::from_secs(seconds - seconds / 2),
                        hostile_clients,
                        latencies.clone(),
                    )
                    .await,
                );
                Phase {
                    latencies,
                    errors,
                    elapsed: started.elapsed(),
                    rss_mid,
                    rss_end: rss_kib(pid),
                }
            }
        };

        let warmup_errors = run(Duration::from_secs(3), 0, Arc::new(Latencies::new())).await;
        assert!(
            warmup_errors.is_empty(),
            "warm-up errors: {:?}",
            &warmup_errors[..warmup_errors.len().min(5)]
        );
        let rss_before = rss_kib(pid);
        let quiet = phase(0).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_after = rss_kib(pid);
        println!(
            "load: {clients} clients on 2 inference and {sql_workers} SQL workers, {}; CPU: {}",
            workload.describe,
            cpu_model()
        );
        quiet.print("quiet", format!("{clients} normal clients"));
        println!(
            "load quiet: RSS (KiB) after warm-up {}, half-way {}, at the end {}, after 3 s rest {}",
            show(rss_before),
            show(quiet.rss_mid),
            show(quiet.rss_end),
            show(rss_after)
        );
        let hostile_run = if hostile_clients > 0 {
            let run = phase(hostile_clients).await;
            run.print(
                "hostile",
                format!("{hostile_clients} of {clients} clients send the hostile suite"),
            );
            println!(
                "load hostile: RSS (KiB) half-way {}, at the end {}",
                show(run.rss_mid),
                show(run.rss_end)
            );
            Some(run)
        } else {
            None
        };

        server.stop().await;
        for (label, errors) in std::iter::once(("quiet", &quiet.errors))
            .chain(hostile_run.as_ref().map(|r| ("hostile", &r.errors)))
        {
            assert!(
                errors.is_empty(),
                "{label}: {} errors, e.g. {:?}",
                errors.len(),
                &errors[..errors.len().min(5)]
            );
        }
        assert!(quiet.latencies.ask.count() > 0 && quiet.latencies.health.count() > 0);
        if let (Some(mid), Some(after)) = (quiet.rss_mid, rss_after) {
            assert!(
                after <= mid + mid / 10 + 1024,
                "memory kept growing: {mid} KiB half-way, {after} KiB after the load"
            );
        }
        if let Some(run) = hostile_run {
            for endpoint in [Endpoint::Ask, Endpoint::Execute] {
                let (calm, attacked) = (
                    quiet.latencies.of(endpoint).percentile_ms(99.0),
                    run.latencies.of(endpoint).percentile_ms(99.0),
                );
                assert!(
                    attacked <= 2.0 * calm,
                    "p99 under attack {attacked:.1} ms is over twice the quiet {calm:.1} ms"
                );
            }
            assert!(run.latencies.health.count() > 0);
        }
    });
}

/// The server the clients load: in this process, or `text2sql serve`.
struct ServerUnderTest {
    base: String,
    kind: ServerKind,
}

enum ServerKind {
    InProcess {
        stop: tokio::sync::oneshot::Sender<()>,
        serving: tokio::task::JoinHandle<Result<(), text2sql_serve::ServeError>>,
    },
    External(std::process::Child),
    Stopped,
}

impl ServerUnderTest {
    async fn in_process(config: ServeConfig, generator: Arc<dyn SqlGenerator>) -> Self {
        let server = Server::bind(config, Arc::new(SandboxRunner), generator)
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            base,
            kind: ServerKind::InProcess { stop, serving },
        }
    }

    /// Starts `binary serve` on a free loopback port and waits for its URL.
    fn external(binary: &std::path::Path, model: &std::path::Path, config: &ServeConfig) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(binary)
            .args(["--json", "serve", "--addr", "127.0.0.1:0", "--workers"])
            .arg(config.workers.to_string())
            .arg("--queue")
            .arg(config.queue.to_string())
            .arg("--model")
            .arg(model)
            .arg("--databases")
            .arg(&config.databases)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut server = Self {
            base: String::new(),
            kind: ServerKind::External(child),
        };
        // `--json` announces {"url": ..., "databases": ..., ...} once the
        // port is open.
        let mut announced = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            announced.push_str(&line);
            if line == "}" {
                break;
            }
        }
        let announced: serde_json::Value = serde_json::from_str(&announced)
            .unwrap_or_else(|e| panic!("serve did not announce its URL ({e}): {announced}"));
        server.base = announced["url"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        server
    }

    fn pid(&self) -> Option<u32> {
        match &self.kind {
            ServerKind::External(child) => Some(child.id()),
            _ => None,
        }
    }

    /// Stops an in-process server gracefully; an external one is killed
    /// when dropped.
    async fn stop(mut self) {
        if matches!(self.kind, ServerKind::InProcess { .. }) {
            if let ServerKind::InProcess { stop, serving } =
                std::mem::replace(&mut self.kind, ServerKind::Stopped)
            {
                let _ = stop.send(());
                serving.await.unwrap().unwrap();
            }
        }
    }
}

impl Drop for ServerUnderTest {
    /// An external server goes with the test, even when the test fails.
    fn drop(&mut self) {
        if let ServerKind::External(child) = &mut self.kind {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The CPU's model name, for the printed figures.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

text2sql_sql::sql_worker_entry!();
