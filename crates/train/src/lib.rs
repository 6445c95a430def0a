//! Training for text2sql: the YAML config, in-place optimizers and learning
//! rate schedules, token-budget batching, checkpoint state and resume,
//! metrics and plots, and the non-finite guard. The training loop itself
//! lives with the model it drives.

pub mod atomic;
pub mod config;
pub mod error;
pub mod guard;
pub mod optim;
pub mod schedule;

pub use config::{Tier, TrainConfig};
pub use error::{Result, TrainError};
pub use guard::{check_finite, NonFiniteError, Quantity};
pub use optim::{Optimizer, OptimizerSettings, StepStats};
pub use schedule::LrSchedule;
