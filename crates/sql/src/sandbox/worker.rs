//! The query worker: a child process that runs one query at a time in an
//! in-process [`Sandbox`], so that a query SQLite cannot interrupt (a LIKE or
//! GLOB that matches inside one virtual-machine step) can still be stopped by
//! killing the process, and so that memory is bounded per query: the worker
//! runs nothing else, so SQLite's process-wide heap limit and the address
//! space limit are this one query's.

use std::io::{self, BufReader, BufWriter, Write};

use super::protocol::{read_frame, write_frame, Reply, Request, READY_LINE};
use super::{set_sqlite_heap_limit, Sandbox, SandboxLimits};

/// Set in a worker's environment: the program was started to serve queries.
pub const WORKER_ENV: &str = "TEXT2SQL_SQL_WORKER";

/// Room for the worker's own code, stacks and allocator, on top of what a
/// query may use.
const ADDRESS_SPACE_SLACK: u64 = 512 << 20;

/// If this process was started as a query worker, serves queries until its
/// stdin closes and exits; otherwise returns at once. Every program that
/// runs queries through [`super::run_query`] calls this first thing in
/// `main`, before parsing arguments (test binaries get it from
/// [`crate::sql_worker_entry!`]).
pub fn serve_worker_if_requested() {
    if std::env::var_os(WORKER_ENV).is_none() {
        return;
    }
    let status = match serve() {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("text2sql SQL worker: {error}");
            1
        }
    };
    std::process::exit(status);
}

fn serve() -> io::Result<()> {
    os::forbid_files_and_core_dumps();
    let baseline = os::address_space_bytes();
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    output.write_all(READY_LINE)?;
    output.flush()?;
    // Started at full priority (a caller may be waiting for the start-up);
    // queries run lower.
    os::lower_priority();
    while let Some(request) = read_frame::<Request>(&mut input)? {
        let reply = answer(&request, baseline);
        write_frame(&mut output, &reply)?;
    }
    Ok(())
}

fn answer(request: &Request, baseline: Option<u64>) -> Reply {
    let limits = &request.limits;
    set_sqlite_heap_limit(i64::try_from(limits.max_memory_bytes).unwrap_or(i64::MAX));
    if let Some(baseline) = baseline {
        os::limit_address_space(baseline.saturating_add(address_space_budget(limits)));
    }
    let outcome = Sandbox::open(&request.database_path(), limits.clone())
        .and_then(|mut sandbox| sandbox.query(&request.sql));
    match outcome {
        Ok(result) => Reply::Rows(result.into()),
        Err(error) => Reply::Failed(error),
    }
}

/// What one query may add to the worker's address space: SQLite's heap, the
/// result read back, its JSON copy on the way out, and slack.
fn address_space_budget(limits: &SandboxLimits) -> u64 {
    let result = limits.max_result_bytes.unwrap_or(limits.max_memory_bytes) as u64;
    (limits.max_memory_bytes as u64)
        .saturating_add(result.saturating_mul(8))
        .saturating_add(ADDRESS_SPACE_SLACK)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod os {
    /// The process's virtual size now (`VmSize`), from `/proc/self/status`.
    pub fn address_space_bytes() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Lowers (or raises back, up to the hard limit) the soft address-space
    /// limit: past it allocations fail, and the parent sees the worker die.
    pub fn limit_address_space(bytes: u64) {
        set_soft_limit(libc::RLIMIT_AS, bytes);
    }

    /// A worker never writes a file (SIGXFSZ if SQLite ever tried) and
    /// leaves no core dump of someone's data.
    pub fn forbid_files_and_core_dumps() {
        set_soft_limit(libc::RLIMIT_FSIZE, 0);
        set_soft_limit(libc::RLIMIT_CORE, 0);
    }

    /// Nice 10: untrusted SQL gets about a tenth of a core's weight next to
    /// each thread of the model or the server, so that clients sending a
    /// stream of costly queries cannot take the CPU that answers everyone
    /// else; on an idle machine it still runs at full speed.
    pub fn lower_priority() {
        // SAFETY: setpriority only changes this process's nice value.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, 0, 10);
        }
    }

    fn set_soft_limit(resource: libc::__rlimit_resource_t, bytes: u64) {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed.
        unsafe {
            if libc::getrlimit(resource, &mut limit) != 0 {
                return;
            }
            limit.rlim_cur = if limit.rlim_max == libc::RLIM_INFINITY {
                bytes
            } else {
                bytes.min(limit.rlim_max)
            };
            libc::setrlimit(resource, &limit);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod os {
    // Elsewhere the worker still isolates and can be killed, and SQLite's
    // heap limit still holds; the rlimits and priority are set only where
    // they were tested (glibc Linux: libc's resource type differs on musl).
    pub fn address_space_bytes() -> Option<u64> {
        None
    }
    pub fn limit_address_space(_bytes: u64) {}
    pub fn forbid_files_and_core_dumps() {}
    pub fn lower_priority() {}
}
