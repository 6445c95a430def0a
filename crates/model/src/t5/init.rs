//! T5's random initialisation, as Hugging Face's transformers does it
//! (`T5PreTrainedModel._init_weights`, `initializer_factor` 1): the spread
//! of every randomly initialised weight, drawn from a normal of mean 0.
//! The layers ask candle for these, and a trainer that redraws a fresh
//! model from its own seeded generator reads them from [`init_std`], so a
//! model trained from scratch here starts where one from transformers would.
//! Layer-norm weights start at the constant [`LAYER_NORM_INIT`].

use super::config::T5Config;

/// The initial value of every layer-norm weight.
pub const LAYER_NORM_INIT: f64 = 1.0;

/// The spread of the shared token embedding (`shared`).
pub const EMBEDDING_STD: f64 = 1.0;

/// The attention query projection (`q`): `(d_model · d_kv)^-1/2`, which
/// folds in the score scaling T5's attention does not apply.
pub fn query_std(config: &T5Config) -> f64 {
    ((config.shape.d_model * config.shape.d_kv) as f64).powf(-0.5)
}

/// Every projection reading the model width (`k`, `v`, `wi`, `wi_0`, `wi_1`,
/// `lm_head`, `schema_pointer`) and the relative-attention bias: `d_model^-1/2`.
pub fn d_model_std(config: &T5Config) -> f64 {
    (config.shape.d_model as f64).powf(-0.5)
}

/// The attention output projection (`o`): `(num_heads · d_kv)^-1/2`.
pub fn attention_output_std(config: &T5Config) -> f64 {
    ((config.shape.num_heads * config.shape.d_kv) as f64).powf(-0.5)
}

/// The feed-forward output projection (`wo`): `d_ff^-1/2`.
pub fn feed_forward_output_std(config: &T5Config) -> f64 {
    (config.shape.d_ff as f64).powf(-0.5)
}

/// The spread the weight `name` (a Hugging Face parameter name, with or
/// without `.weight`) is initialised with, or `None` for a constant one
/// (layer norms).
pub fn init_std(config: &T5Config, name: &str) -> Option<f64> {
    let leaf = name.strip_suffix(".weight").unwrap_or(name);
    let last = leaf.rsplit('.').next().unwrap_or(leaf);
    match last {
        "shared" => Some(EMBEDDING_STD),
        "q" => Some(query_std(config)),
        "k"
        | "v"
        | "wi"
        | "wi_0"
        | "wi_1"
        | "lm_head"
        | "relative_attention_bias"
        | "schema_pointer" => Some(d_model_std(config)),
        "o" => Some(attention_output_std(config)),
        "wo" => Some(feed_forward_output_std(config)),
        _ => None,
    }
}
