//! End-to-end tests of the `text2sql` binary, one module per subcommand,
//! built as one test binary so the workspace is linked once rather than
//! once per file.

mod common;

mod ask;
mod convert;
mod eval;
mod eval_model;
mod hostile;
mod mix;
mod prepare;
mod sample;
mod schema;
mod serve;
mod sql;
mod token_cache;
mod tokenizer;
mod train;

text2sql_sql::sql_worker_entry!();
