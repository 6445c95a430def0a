//! The T5 configuration, read from (and written back to) a Hugging Face
//! `config.json`. Fields this crate does not use are kept verbatim so that a
//! converted checkpoint still carries them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The feed-forward activation, from `feed_forward_proj` / `dense_act_fn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    /// Exact GELU (`gelu`).
    Gelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`): what
    /// transformers uses for `gated-gelu` (t5 v1.1, flan-t5).
    GeluTanh,
    Silu,
}

impl Activation {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "relu" => Some(Self::Relu),
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            "silu" | "swish" => Some(Self::Silu),
            _ => None,
        }
    }
}

// transformers' defaults for the fields of `T5Config`, shared by
// `T5Architecture` (a training config's `model.architecture`).
pub fn default_relative_attention_max_distance() -> usize {
    128
}
pub fn default_relative_attention_num_buckets() -> usize {
    32
}
pub fn default_dropout_rate() -> f64 {
    0.1
}
pub fn default_layer_norm_epsilon() -> f64 {
    1e-6
}
pub fn default_feed_forward_proj() -> String {
    "relu".to_string()
}
pub fn default_true() -> bool {
    true
}
pub fn default_eos_token_id() -> Option<u32> {
    Some(1)
}
pub fn default_pad_token_id() -> Option<u32> {
    Some(0)
}

/// The shape of a fresh T5 as a training config gives it
/// (`model.architecture`): the fields of [`T5Config`] a user chooses, with
/// the same names and defaults; everything else takes its default. Unknown
/// fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct T5Architecture {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    /// Defaults to `num_layers` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_decoder_layers: Option<usize>,
    pub num_heads: usize,
    #[serde(default = "default_relative_attention_num_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_relative_attention_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_dropout_rate")]
    pub dropout_rate: f64,
    /// `relu` (T5 v1.0), `gated-gelu` (T5 v1.1 / flan), `gated-silu`, ...
    #[serde(default = "default_feed_forward_proj")]
    pub feed_forward_proj: String,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Schema symbols (`<sym0>` …) are chosen by pointing at where the
    /// input shows them, not from their embeddings (see
    /// [`T5Config::schema_symbol_ids`]): a text2sql extension, off by
    /// default and absent from plain T5 configs.
    #[serde(default, skip_serializing_if = "is_false")]
    pub schema_pointer: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// The ids of the schema symbols, an unbroken run `first..first + count`
/// (the tokenizer gives them the last ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolIds {
    pub first: u32,
    pub count: u32,
}

impl SymbolIds {
    /// The symbol's index (`N` of `<symN>`) when `id` is one.
    pub fn index(&self, id: u32) -> Option<usize> {
        id.checked_sub(self.first)
            .filter(|&i| i < self.count)
            .map(|i| i as usize)
    }

    pub fn end(&self) -> u32 {
        self.first + self.count
    }
}

impl T5Architecture {
    /// The full configuration of this shape: every other field at its
    /// default, no extra fields. Check it with [`T5Config::validate`].
    pub fn to_config(&self) -> T5Config {
        T5Config {
            shape: self.clone(),
            layer_norm_epsilon: default_layer_norm_epsilon(),
            pad_token_id: default_pad_token_id(),
            eos_token_id: default_eos_token_id(),
            decoder_start_token_id: None,
            schema_symbol_ids: None,
            extra: serde_json::Map::new(),
        }
    }

    /// The shape of t5-small (60 M parameters), used by benchmarks and tests.
    pub fn t5_small() -> Self {
        T5Architecture {
            vocab_size: 32128,
            d_model: 512,
            d_kv: 64,
            d_ff: 2048,
            num_layers: 6,
            num_decoder_layers: None,
            num_heads: 8,
            relative_attention_num_buckets: default_relative_attention_num_buckets(),
            relative_attention_max_distance: default_relative_attention_max_distance(),
            dropout_rate: default_dropout_rate(),
            feed_forward_proj: default_feed_forward_proj(),
            tie_word_embeddings: true,
            schema_pointer: false,
        }
    }
}

/// A Hugging Face `T5Config`: the network's shape (the fields a training
/// config chooses, written once in [`T5Architecture`]) and the rest, with
/// transformers' defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct T5Config {
    #[serde(flatten)]
    pub shape: T5Architecture,
    #[serde(default = "default_layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_pad_token_id")]
    pub pad_token_id: Option<u32>,
    #[serde(default = "default_eos_token_id")]
    pub eos_token_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder_start_token_id: Option<u32>,
    /// The schema symbols a `schema_pointer` model points at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_symbol_ids: Option<SymbolIds>,
    /// Everything else in config.json, written back unchanged (after the
    /// shape, which takes its own keys first).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl T5Config {
    /// Reads and validates a Hugging Face `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Self = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        config
            .validate()
            .map_err(|(field, message)| ModelError::Config {
                path: path.to_path_buf(),
                field: field.to_string(),
                message,
            })?;
        Ok(config)
    }

    /// The configuration as `config.json` text.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| ModelError::Invalid(e.to_string()))
    }

    /// Checks what the network needs; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (field, value) in [
            ("vocab_size", self.shape.vocab_size),
            ("d_model", self.shape.d_model),
            ("d_kv", self.shape.d_kv),
            ("d_ff", self.shape.d_ff),
            ("num_layers", self.shape.num_layers),
            ("num_heads", self.shape.num_heads),
            (
                "relative_attention_num_buckets",
                self.shape.relative_attention_num_buckets,
            ),
            (
                "relative_attention_max_distance",
                self.shape.relative_attention_max_distance,
            ),
        ] {
            if value == 0 {
                return Err((field, "must be positive".to_string()));
            }
        }
        if self.shape.num_decoder_layers == Some(0) {
            return Err(("num_decoder_layers", "must be positive".to_string()));
        }
        if self.shape.relative_attention_num_buckets < 4 {
            return Err((
                "relative_attention_num_buckets",
                "must be at least 4".to_string(),
            ));
        }
        if !(0.0..1.0).contains(&self.shape.dropout_rate) {
            return Err((
                "dropout_rate",
                format!("{} is not in [0, 1)", self.shape.dropout_rate),
            ));
        }
        self.activation()
            .map_err(|message| ("feed_forward_proj", message))?;
        if let Some(ids) = self.schema_symbol_ids {
            if ids.count == 0 || ids.end() as usize > self.shape.vocab_size {
                return Err((
                    "schema_symbol_ids",
                    format!(
                        "{}..{} is empty or outside the vocabulary of {}",
                        ids.first,
                        ids.end(),
                        self.shape.vocab_size
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether decoder outputs are multiplied by `d_model^-0.5` before the
    /// vocabulary projection (original T5). transformers 5 writes this as
    /// `scale_decoder_outputs`; older configs imply it by tied embeddings.
    pub fn scale_decoder_outputs(&self) -> bool {
        self.extra
            .get("scale_decoder_outputs")
            .and_then(|v| v.as_bool())
            .unwrap_or(self.shape.tie_word_embeddings)
    }

    pub fn decoder_layers(&self) -> usize {
        self.shape
            .num_decoder_layers
            .unwrap_or(self.shape.num_layers)
    }

    /// Whether the feed-forward is gated (`wi_0`, `wi_1`) as in t5 v1.1.
    pub fn is_gated(&self) -> bool {
        self.shape.feed_forward_proj.starts_with("gated-")
    }

    /// The feed-forward activation, following transformers: `gated-gelu`
    /// means the tanh approximation; `dense_act_fn`, when present, names it.
    pub fn activation(&self) -> Result<Activation, String> {
        let parts: Vec<&str> = self.shape.feed_forward_proj.split('-').collect();
        let name = match parts.as_slice() {
            [name] => *name,
            ["gated", name] => *name,
            _ => {
                return Err(format!(
                    "`{}` is not `ACT` or `gated-ACT`",
                    self.shape.feed_forward_proj
                ))
            }
        };
        if self.shape.feed_forward_proj == "gated-gelu" {
            return Ok(Activation::GeluTanh);
        }
        let name = self
            .extra
            .get("dense_act_fn")
            .and_then(|v| v.as_str())
            .unwrap_or(name);
        Activation::parse(name).ok_or_else(|| format!("unknown activation `{name}`"))
    }

    pub fn pad_token(&self) -> u32 {
        self.pad_token_id.unwrap_or(0)
    }

    pub fn eos_token(&self) -> u32 {
        self.eos_token_id.unwrap_or(1)
    }

    /// T5 starts decoding from the pad token unless told otherwise.
    pub fn decoder_start_token(&self) -> u32 {
        self.decoder_start_token_id.unwrap_or(self.pad_token())
    }

    /// t5-small (60 M parameters), used by benchmarks and tests.
    pub fn t5_small() -> Self {
        Self {
            shape: T5Architecture::t5_small(),
            layer_norm_epsilon: default_layer_norm_epsilon(),
            pad_token_id: default_pad_token_id(),
            eos_token_id: default_eos_token_id(),
            decoder_start_token_id: Some(0),
            schema_symbol_ids: None,
            extra: serde_json::Map::from_iter([(
                "model_type".to_string(),
                serde_json::Value::from("t5"),
            )]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> T5Config {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn gated_gelu_is_the_tanh_approximation_and_untied_flag_is_read() {
        let config = parse(
            r#"{"vocab_size": 10, "d_model": 8, "d_kv": 2, "d_ff": 16, "num_layers": 2,
                "num_heads": 4, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false,
                "model_type": "t5", "architectures": ["T5ForConditionalGeneration"]}"#,
        );
        assert!(config.is_gated());
        assert_eq!(config.activation().unwrap(), Activation::GeluTanh);
        assert!(!config.shape.tie_word_embeddings);
        assert_eq!(config.decoder_layers(), 2);
        // Unknown fields survive a round trip, and the shape's keys are
        // the shape's alone (not kept twice in `extra`).
        let back: serde_json::Value = serde_json::from_str(&config.to_json().unwrap()).unwrap();
        assert_eq!(back["architectures"][0], "T5ForConditionalGeneration");
        assert_eq!(back["d_model"], 8);
        assert!(!config.extra.contains_key("d_model"));
        assert!(back.get("num_decoder_layers").is_none());
    }

    #[test]
    fn a_training_shape_is_the_config_it_becomes() {
        let shape = T5Architecture {
            vocab_size: 100,
            num_decoder_layers: Some(1),
            ..T5Architecture::t5_small()
        };
        let config = shape.to_config();
        config.validate().unwrap();
        let text = config.to_json().unwrap();
        let back: T5Config = serde_json::from_str(&text).unwrap();
        assert_eq!(back.shape, shape);
        assert_eq!(back.decoder_layers(), 1);
        assert!(back.extra.is_empty(), "{text}");
    }

    #[test]
    fn schema_symbol_ids_round_trip_and_must_lie_in_the_vocabulary() {
        let mut config = T5Architecture {
            vocab_size: 100,
            schema_pointer: true,
            ..T5Architecture::t5_small()
        }
        .to_config();
        config.schema_symbol_ids = Some(SymbolIds {
            first: 90,
            count: 10,
        });
        config.validate().unwrap();
        let back: T5Config = serde_json::from_str(&config.to_json().unwrap()).unwrap();
        assert!(back.shape.schema_pointer);
        assert_eq!(back.schema_symbol_ids, config.schema_symbol_ids);
        assert_eq!(back.schema_symbol_ids.unwrap().index(95), Some(5));
        assert_eq!(back.schema_symbol_ids.unwrap().index(89), None);
        config.schema_symbol_ids = Some(SymbolIds {
            first: 95,
            count: 10,
        });
        let (field, message) = config.validate().unwrap_err();
        assert_eq!(field, "schema_symbol_ids");
        assert!(message.contains("95..105"), "{message}");
        // A plain T5 config says nothing of either.
        let plain = T5Config::t5_small().to_json().unwrap();
        assert!(!plain.contains("schema"), "{plain}");
    }

    #[test]
    fn bad_fields_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"vocab_size": 10, "d_model": 8, "d_kv": 2, "d_ff": 16, "num_layers": 2,
                "num_heads": 4, "feed_forward_proj": "gated-wobble"}"#,
        )
        .unwrap();
        let message = T5Config::from_file(&path).unwrap_err().to_string();
        assert!(message.contains("feed_forward_proj"), "{message}");
        assert!(message.contains("wobble"), "{message}");

        std::fs::write(&path, r#"{"vocab_size": 10}"#).unwrap();
        let message = T5Config::from_file(&path).unwrap_err().to_string();
        assert!(message.contains("d_model"), "{message}");
    }
}
