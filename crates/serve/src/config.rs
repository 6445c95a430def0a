use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the server needs besides its runner and generator. Every
/// bound a request can hit is here.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    /// The served folder: `<db_id>/<db_id>.sqlite` inside.
    pub databases: PathBuf,
    /// Inference jobs that may run at once.
    pub workers: usize,
    /// SQL executions that may run at once.
    pub sql_workers: usize,
    /// Jobs that may wait for a worker, per pool, before requests get 503.
    pub queue: usize,
    /// Candidates asked of the generator (beam width).
    pub beams: usize,
    /// Deadline of one SQL execution.
    pub sql_timeout: Duration,
    /// Deadline of a whole request, queueing included.
    pub request_timeout: Duration,
    /// Rows returned by one execution at most.
    pub max_rows: usize,
    pub max_body_bytes: usize,
    pub max_question_chars: usize,
    pub max_sql_chars: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let cpus = num_cpus::get().max(1);
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            databases: PathBuf::from("quickstart/sample/databases"),
            workers: (cpus / 2).max(1),
            // Queries run in worker processes at the lowest CPU priority and
            // end by their deadline, so slots are cheap; many of them keep a
            // few clients sending slow SQL from taking every one.
            sql_workers: (4 * cpus).max(16),
            queue: 64,
            beams: 4,
            sql_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            max_rows: 1000,
            max_body_bytes: 64 * 1024,
            max_question_chars: 1000,
            max_sql_chars: 20_000,
        }
    }
}
