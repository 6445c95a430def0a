//! The parent's side of process isolation: a pool of query worker processes
//! (see `worker.rs`). A query goes to an idle worker (or a new one); if no
//! answer comes by its deadline plus [`GRACE`], the worker is killed, the
//! query is a timeout, and the next query starts a fresh worker. This is the
//! design online judges and browsers use for untrusted work: whatever the
//! SQL does inside SQLite, the caller gets an answer in time.

use std::ffi::OsString;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::protocol::{path_to_bytes, read_frame, skip_to_ready, write_frame, Reply, Request};
use super::worker::WORKER_ENV;
use super::{human_bytes, ExecError, QueryResult, SandboxLimits};

/// How long past its deadline a query may take before its worker is killed:
/// the worker's own deadline check answers first in all but the cases it
/// cannot see.
pub const GRACE: Duration = Duration::from_millis(250);

/// A query still running after this is likely a slow or hostile one: its
/// worker drops to the idle CPU class, so that a crowd of such queries takes
/// only the CPU that the model, the server and quick queries leave. Quick
/// queries (Spider's take about a millisecond) never get there.
pub const DEMOTE_AFTER: Duration = Duration::from_millis(100);

/// How long a new worker may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The name of the entry point that [`crate::sql_worker_entry!`] defines.
const TEST_ENTRY: &str = "sql_worker_entry";

/// How to start a query worker: a program whose `main` calls
/// [`super::serve_worker_if_requested`] before anything else.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    program: Option<PathBuf>,
    args: Vec<OsString>,
}

impl WorkerCommand {
    /// This very executable, started again as a worker. The arguments make a
    /// Rust test harness run only the entry point of
    /// [`crate::sql_worker_entry!`]; a binary that calls
    /// `serve_worker_if_requested` first never reads them.
    pub fn current_exe() -> Self {
        WorkerCommand {
            program: None,
            args: [
                TEST_ENTRY,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ]
            .map(OsString::from)
            .to_vec(),
        }
    }

    /// Another program, with these arguments.
    pub fn program(program: impl Into<PathBuf>, args: impl IntoIterator<Item = OsString>) -> Self {
        WorkerCommand {
            program: Some(program.into()),
            args: args.into_iter().collect(),
        }
    }

    fn resolve(&self) -> Result<PathBuf, ExecError> {
        // The running executable itself, even when a rebuild or upgrade has
        // replaced the file on disk since it started (a training run of an
        // hour outlives many builds): its path may name another program
        // by now, or none.
        const RUNNING: &str = "/proc/self/exe";
        match &self.program {
            Some(program) => Ok(program.clone()),
            None if Path::new(RUNNING).exists() => Ok(PathBuf::from(RUNNING)),
            None => std::env::current_exe().map_err(|e| {
                ExecError::Worker(format!("cannot find this program to start a worker: {e}"))
            }),
        }
    }
}

/// Worker processes that run queries, reused while they behave.
#[derive(Debug)]
pub struct QueryWorkers {
    command: WorkerCommand,
    idle: Mutex<Vec<Worker>>,
    max_idle: usize,
}

impl QueryWorkers {
    /// A pool that starts workers with `command` and keeps up to `max_idle`
    /// of them waiting between queries.
    pub fn new(command: WorkerCommand, max_idle: usize) -> Self {
        QueryWorkers {
            command,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// The pool behind [`super::run_query`]: workers are this executable,
    /// and as many wait between queries as there are cores, times two.
    pub fn shared() -> &'static QueryWorkers {
        static SHARED: OnceLock<QueryWorkers> = OnceLock::new();
        SHARED.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            QueryWorkers::new(WorkerCommand::current_exe(), 2 * cores)
        })
    }

    /// Runs `sql` on `database` in a worker under `limits`; an answer comes
    /// within `limits.timeout` + [`GRACE`] (plus a worker's start-up).
    pub fn query(
        &self,
        database: &Path,
        sql: &str,
        limits: &SandboxLimits,
    ) -> Result<QueryResult, ExecError> {
        let request = Request {
            database: path_to_bytes(database),
            sql: sql.to_string(),
            limits: limits.clone(),
        };
        let mut worker = match self.take_idle() {
            Some(worker) => worker,
            None => Worker::start(&self.command)?,
        };
        if worker.send(&request).is_err() {
            // An idle worker can die (the OOM killer, an operator's kill):
            // one more try on a fresh one.
            worker = Worker::start(&self.command)?;
            worker
                .send(&request)
                .map_err(|e| ExecError::Worker(format!("cannot send the query: {e}")))?;
        }
        let deadline = limits.timeout + GRACE;
        let mut event = worker.events.recv_timeout(DEMOTE_AFTER.min(deadline));
        if matches!(event, Err(RecvTimeoutError::Timeout)) && DEMOTE_AFTER < deadline {
            worker.demote();
            event = worker.events.recv_timeout(deadline - DEMOTE_AFTER);
        }
        match event {
            Ok(Event::Reply(reply)) => {
                // A demoted worker cannot be raised back without privileges:
                // it goes, and a fresh one serves the next query at full speed.
                if !worker.demoted {
                    self.put_back(worker);
                }
                match reply {
                    Reply::Rows(result) => Ok(result.into()),
                    Reply::Failed(error) => Err(error),
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                worker.kill();
                Err(ExecError::Timeout(limits.timeout.as_secs_f64()))
            }
            Ok(Event::Ready) => Err(ExecError::Worker("the worker said ready twice".into())),
            Ok(Event::Gone(why)) => Err(worker.died(&why, limits)),
            Err(RecvTimeoutError::Disconnected) => Err(worker.died("no reader", limits)),
        }
    }

    fn take_idle(&self) -> Option<Worker> {
        self.idle.lock().ok()?.pop()
    }

    fn put_back(&self, worker: Worker) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push(worker);
            }
        }
    }
}

enum Event {
    Ready,
    Reply(Reply),
    /// The worker's stdout ended or broke; the text says how.
    Gone(String),
}

/// One worker process and the thread that reads its answers.
struct Worker {
    /// `None` once killed: reaped, or handed to a reaper thread.
    child: Option<Child>,
    pid: u32,
    requests: BufWriter<ChildStdin>,
    events: Receiver<Event>,
    /// Moved to the idle CPU class by [`Worker::demote`].
    demoted: bool,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Worker(pid {})", self.pid)
    }
}

impl Worker {
    fn start(command: &WorkerCommand) -> Result<Worker, ExecError> {
        let program = command.resolve()?;
        let failed =
            |why: String| ExecError::Worker(format!("{}: cannot start: {why}", program.display()));
        let mut child = Command::new(&program)
            .args(&command.args)
            .env(WORKER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed("no pipes".into()));
        };
        let (sender, events) = mpsc::channel();
        let reader = std::thread::Builder::new()
            .name("sql-worker-reader".into())
            .spawn(move || {
                let mut stdout = BufReader::new(stdout);
                match skip_to_ready(&mut stdout) {
                    Ok(true) => {
                        if sender.send(Event::Ready).is_err() {
                            return;
                        }
                    }
                    Ok(false) => {
                        let _ = sender.send(Event::Gone("exited before it was ready".into()));
                        return;
                    }
                    Err(e) => {
                        let _ = sender.send(Event::Gone(e.to_string()));
                        return;
                    }
                }
                loop {
                    let event = match read_frame::<Reply>(&mut stdout) {
                        Ok(Some(reply)) => Event::Reply(reply),
                        Ok(None) => Event::Gone("its output ended".into()),
                        Err(e) => Event::Gone(e.to_string()),
                    };
                    let last = matches!(event, Event::Gone(_));
                    if sender.send(event).is_err() || last {
                        return;
                    }
                }
            });
        let mut worker = Worker {
            pid: child.id(),
            child: Some(child),
            requests: BufWriter::new(stdin),
            events,
            demoted: false,
        };
        if let Err(e) = reader {
            worker.kill();
            return Err(failed(e.to_string()));
        }
        match worker.events.recv_timeout(START_TIMEOUT) {
            Ok(Event::Ready) => Ok(worker),
            Ok(Event::Gone(why)) => {
                worker.kill();
                Err(failed(format!(
                    "{why} (does its main call text2sql_sql::serve_worker_if_requested first?)"
                )))
            }
            _ => {
                worker.kill();
                Err(failed(format!(
                    "not ready within {} s",
                    START_TIMEOUT.as_secs()
                )))
            }
        }
    }

    fn send(&mut self, request: &Request) -> std::io::Result<()> {
        write_frame(&mut self.requests, request)
    }

    /// Moves the worker to Linux's SCHED_IDLE class: it runs only when no
    /// ordinary thread wants the CPU, and yields at once when one wakes.
    fn demote(&mut self) {
        self.demoted = true;
        #[cfg(target_os = "linux")]
        {
            let param = libc::sched_param { sched_priority: 0 };
            let pid = self.pid as libc::pid_t;
            // SAFETY: sched_setscheduler only reads `param`; lowering a
            // child's scheduling class needs no privilege.
            unsafe {
                libc::sched_setscheduler(pid, libc::SCHED_IDLE, &param);
            }
        }
    }

    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = child.kill();
        if !self.demoted {
            let _ = child.wait();
            return;
        }
        // A killed process still has to be scheduled to exit, and a demoted
        // one on a busy machine waits long for the CPU (0.6 s seen on two
        // loaded cores). It runs no more of the query once SIGKILL is sent,
        // so the answer does not wait for it: a thread reaps it.
        let reaper = std::thread::Builder::new()
            .name("sql-worker-reaper".into())
            .spawn(move || {
                let _ = child.wait();
            });
        if let Err(e) = reaper {
            tracing::warn!("cannot start a thread to reap a killed SQL worker: {e}");
        }
    }

    /// What to tell the caller when the worker died mid-query: past the
    /// address-space limit an allocation fails and the process aborts.
    fn died(mut self, why: &str, limits: &SandboxLimits) -> ExecError {
        let status = match self.child.as_mut() {
            Some(child) => child.wait(),
            None => Err(std::io::Error::other("already killed")),
        };
        tracing::warn!("SQL worker died: {why}; {status:?}");
        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        ExecError::Refused(format!(
            "the query's worker process died ({status}): the query likely needed more than {} of memory",
            human_bytes(limits.max_memory_bytes)
        ))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Idle workers would exit on their own once stdin closes; killing
        // and reaping here leaves no zombie either way.
        self.kill();
    }
}
