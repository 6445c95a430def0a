//! Tokenizer, T5 on candle, checkpoint load/convert/save, and generation.

pub mod checkpoint;
pub mod error;
pub mod generate;
pub mod t5;

/// Re-exported so that callers need no direct candle dependency.
pub use candle_core::{DType, Device};
pub use checkpoint::{convert, expected_tensors, ConvertReport};
pub use error::{ModelError, Result};
pub use generate::{generate, GenerationConfig, Hypothesis};
pub use t5::{loss, shift_right, DecoderCache, T5Config, T5Model};
