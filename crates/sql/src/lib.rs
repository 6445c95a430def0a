//! The SQLite sandbox, execution-accuracy comparison (Spider and BIRD rules),
//! SQL normalisation and exact match, Spider hardness, and the scorer that
//! turns predictions into an accuracy report, and the incremental SQL checker
//! behind constrained decoding.

pub mod check;
pub mod compare;
pub mod eval;
pub mod exact;
pub mod hardness;
pub mod hostile;
pub mod sandbox;
pub mod skeleton_bank;
pub mod value;

pub use check::{
    alias_prefix, check_pieces, check_sql, rename_identifiers, unalias_tables, Rejection,
    SchemaIndex, Skeleton, SkeletonItem, SqlChecker,
};
pub use compare::{results_equal, Rule};
pub use eval::{
    evaluate, score_example, EvalExample, EvalOptions, EvalReport, EvalSummary, ExampleOutcome,
    GenerationStats, ThreadPoolError, Verdict,
};
pub use exact::{normalize_sql, normalized_exact_match};
pub use hardness::{spider_hardness, Hardness};
pub use sandbox::{
    run_query, serve_worker_if_requested, timeout_from_secs, CancelHandle, ExecError, QueryResult,
    QueryWorkers, Sandbox, SandboxLimits, WorkerCommand,
};
pub use skeleton_bank::SkeletonBank;
pub use value::Value;

/// Defines the entry point of the SQL worker processes that a test binary
/// starts of itself ([`WorkerCommand::current_exe`]): a binary calls
/// [`serve_worker_if_requested`] first thing in `main`, and a test harness,
/// whose `main` is not ours, gets this ignored test to run instead. Put it at
/// the root of each test crate that runs queries through [`run_query`].
#[macro_export]
macro_rules! sql_worker_entry {
    () => {
        /// Not a test: where this test binary's SQL worker processes start.
        #[test]
        #[ignore = "the entry point of SQL worker processes, not a test"]
        fn sql_worker_entry() {
            $crate::serve_worker_if_requested();
        }
    };
}

#[cfg(test)]
sql_worker_entry!();
