//! T5 on candle: configuration, layers and the encoder-decoder model.

pub mod config;
pub(crate) mod huge_pages;
pub mod init;
pub mod layers;
pub mod model;

pub use config::{Activation, SymbolIds, T5Architecture, T5Config};
pub use model::{loss, shift_right, DecoderCache, T5Model, IGNORED_LABEL};
