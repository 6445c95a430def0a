//! What the config tests share: a minimal valid config and its parser.

use std::path::{Path, PathBuf};

use super::TrainConfig;
use crate::error::Result;

pub(super) fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

pub(super) const MINIMAL: &str = r#"
run: {name: test}
model: {init_from: ckpt/t5-small}
data: {processed_dir: processed, max_source_tokens: 256, max_target_tokens: 128}
curriculum:
  phases:
    - {steps: 10, tiers: {simple: 1}}
    - {steps: 10, tiers: {Simple: 1, Moderate: 1, Complex: 1, "Highly Complex": 1}}
optimizer: {kind: adamw, lr: 3.0e-4}
schedule: {kind: cosine, warmup_steps: 5}
batch: {max_tokens: 4096}
training: {max_steps: 100}
eval: {every_steps: 50, val_sample_size: 64}
checkpoint: {every_steps: 50, keep_last: 2}
"#;

pub(super) fn parse(text: &str, overrides: &[&str]) -> Result<TrainConfig> {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    TrainConfig::from_yaml(text, Path::new("test.yaml"), &overrides)
}

/// MINIMAL with two sources instead of `processed_dir`.
pub(super) fn two_sources() -> String {
    MINIMAL.replace(
        "data: {processed_dir: processed, max_source_tokens: 256, max_target_tokens: 128}",
        "data:
  sources:
    - {processed_dir: out/synsql, weight: 3}
    - {name: spider, processed_dir: out/spider_train}
  max_source_tokens: 256
  max_target_tokens: 128",
    )
}
