//! The SQLite sandbox, execution-accuracy comparison (Spider and BIRD rules),
//! SQL normalisation and exact match, Spider hardness, and the scorer that
//! turns predictions into an accuracy report, and the incremental SQL checker
//! behind constrained decoding.

pub mod check;
pub mod compare;
pub mod eval;
pub mod exact;
pub mod hardness;
pub mod sandbox;
pub mod value;

pub use check::{check_pieces, check_sql, Rejection, SchemaIndex, SqlChecker};
pub use compare::{results_equal, Rule};
pub use eval::{
    evaluate, score_example, EvalExample, EvalOptions, EvalReport, EvalSummary, ExampleOutcome,
    GenerationStats, ThreadPoolError, Verdict,
};
pub use exact::{normalize_sql, normalized_exact_match};
pub use hardness::{spider_hardness, Hardness};
pub use sandbox::{
    run_query, timeout_from_secs, CancelHandle, ExecError, QueryResult, Sandbox, SandboxLimits,
};
pub use value::Value;
