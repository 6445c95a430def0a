//! Training for text2sql: the YAML config, in-place optimizers and learning
//! rate schedules, token-budget batching, checkpoint state and resume,
//! metrics and plots, the non-finite guard, the token cache
//! ([`TokenCache`]: every example tokenized once), and the training loop
//! ([`Trainer`]) that drives the T5 model with them.

pub mod alloc;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod encode;
pub mod error;
pub mod exec_eval;
pub mod guard;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod schedule;
pub mod token_cache;
pub mod trainer;

pub use batch::{pad_batch, plan_epoch, Batch, ExampleLen};
pub use checkpoint::{
    latest_checkpoint, rotate_checkpoints, save_checkpoint, CheckpointInfo, TrainState,
};
pub use config::{BestMetricKind, MixedPrecision, Tier, TrainConfig};
pub use encode::{Encoded, ExampleEncoder};
pub use error::{Result, TrainError};
pub use exec_eval::ExecSample;
pub use guard::{check_finite, NonFiniteError, Quantity};
pub use metrics::{EventKind, MetricsEvent, MetricsLog};
pub use optim::{Optimizer, OptimizerSettings, StepStats};
pub use plot::render_plots;
pub use schedule::LrSchedule;
pub use token_cache::{CacheEvent, CacheOrigin, TokenCache, TokenCacheOptions};
pub use trainer::{BestSummary, StepReport, TrainSummary, Trainer};

#[cfg(test)]
text2sql_sql::sql_worker_entry!();
