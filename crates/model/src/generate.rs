//! Batched greedy and beam-search decoding with an external key/value cache,
//! following transformers' `generate` so that results match it token for
//! token: the same beam bookkeeping (2 x beams candidates per step, finished
//! hypotheses scored `sum_logprobs / generated_len ^ length_penalty`, the
//! same early-stop heuristic) and the same `min_new_tokens` rule.

use std::path::Path;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::t5::{T5Config, T5Model};

/// How to decode. Field names follow transformers' `GenerationConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    /// The most tokens generated per input (an EOS included).
    pub max_new_tokens: usize,
    /// EOS is forbidden before this many tokens.
    pub min_new_tokens: usize,
    /// 1 = greedy.
    pub num_beams: usize,
    /// Finished beams are ranked by `sum_logprobs / len ^ length_penalty`:
    /// above 0 favours longer outputs.
    pub length_penalty: f32,
    /// Stop as soon as `num_beams` hypotheses have finished, instead of
    /// transformers' default heuristic.
    pub early_stopping: bool,
    pub decoder_start_token_id: u32,
    pub eos_token_id: u32,
    pub pad_token_id: u32,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 128,
            min_new_tokens: 0,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: false,
            decoder_start_token_id: 0,
            eos_token_id: 1,
            pad_token_id: 0,
        }
    }
}

impl GenerationConfig {
    /// Defaults with the model's special tokens.
    pub fn for_model(config: &T5Config) -> Self {
        Self {
            decoder_start_token_id: config.decoder_start_token(),
            eos_token_id: config.eos_token(),
            pad_token_id: config.pad_token(),
            ..Self::default()
        }
    }

    /// Reads a `generation_config.json`; fields it lacks keep `base`'s values.
    pub fn from_file(path: &Path, base: &Self) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let overrides: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| ModelError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let mut merged =
            serde_json::to_value(base).map_err(|e| ModelError::Invalid(e.to_string()))?;
        if let (Some(merged), Some(overrides)) = (merged.as_object_mut(), overrides.as_object()) {
            for (key, value) in overrides {
                // transformers allows a list of EOS ids; the first is ours.
                let value = match (key.as_str(), value) {
                    ("eos_token_id", serde_json::Value::Array(ids)) => {
                        ids.first().cloned().unwrap_or_default()
                    }
                    _ => value.clone(),
                };
                if merged.contains_key(key) && !value.is_null() {
                    merged.insert(key.clone(), value);
                }
            }
        }
        serde_json::from_value(merged).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    fn validate(&self) -> Result<()> {
        if self.num_beams == 0 {
            return Err(ModelError::Invalid("num_beams must be at least 1".into()));
        }
        if self.max_new_tokens == 0 {
            return Err(ModelError::Invalid(
                "max_new_tokens must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// One decoded sequence: the generated tokens (no start token; the EOS
/// included when the model emitted one) and its score (greedy: the sum of
/// token log-probabilities; beam: that sum length-normalised).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hypothesis {
    pub tokens: Vec<u32>,
    pub score: f32,
}

/// Decodes every input (token ids, EOS included as the tokenizer gives
/// them) and returns, per input, its hypotheses best first: one for greedy,
/// `num_beams` for beam search. Deterministic.
pub fn generate(
    model: &T5Model,
    config: &GenerationConfig,
    inputs: &[Vec<u32>],
) -> Result<Vec<Vec<Hypothesis>>> {
    config.validate()?;
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(index) = inputs.iter().position(|ids| ids.is_empty()) {
        return Err(ModelError::Invalid(format!("input #{index} has no tokens")));
    }
    let vocab = model.config().vocab_size as u32;
    for (index, ids) in inputs.iter().enumerate() {
        if let Some(bad) = ids.iter().find(|&&id| id >= vocab) {
            return Err(ModelError::Invalid(format!(
                "input #{index}: token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
    }
    let (ids, mask) = pad_batch(model, inputs, config.pad_token_id)?;
    let encoded = model.encode(&ids, mask.as_ref(), false)?;
    if config.num_beams == 1 {
        greedy(model, config, &encoded, mask.as_ref())
    } else {
        beam_search(model, config, &encoded, mask.as_ref())
    }
}

/// Right-pads `inputs` into `(batch, max_len)` ids and a mask, or no mask
/// when all have the same length.
fn pad_batch(model: &T5Model, inputs: &[Vec<u32>], pad: u32) -> Result<(Tensor, Option<Tensor>)> {
    let max_len = inputs.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(inputs.len() * max_len);
    let mut mask = Vec::with_capacity(inputs.len() * max_len);
    for row in inputs {
        ids.extend(
            row.iter()
                .copied()
                .chain(std::iter::repeat_n(pad, max_len - row.len())),
        );
        mask.extend((0..max_len).map(|i| u32::from(i < row.len())));
    }
    let shape = (inputs.len(), max_len);
    let ids = Tensor::from_vec(ids, shape, model.device())?;
    let padded = inputs.iter().any(|row| row.len() != max_len);
    let mask = if padded {
        Some(Tensor::from_vec(mask, shape, model.device())?)
    } else {
        None
    };
    Ok((ids, mask))
}

/// `log(sum(exp(row)))`, stable.
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
    max + sum.ln()
}

fn greedy(
    model: &T5Model,
    config: &GenerationConfig,
    encoded: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Vec<Vec<Hypothesis>>> {
    let batch = encoded.dim(0)?;
    let mut cache = model.start_decoding(encoded, mask)?;
    let mut hypotheses = vec![
        Hypothesis {
            tokens: Vec::new(),
            score: 0.0,
        };
        batch
    ];
    // Rows still decoding; finished rows are dropped from the cache so they
    // cost nothing.
    let mut active: Vec<usize> = (0..batch).collect();
    let mut next = vec![config.decoder_start_token_id; batch];
    for step in 0..config.max_new_tokens {
        let tokens = Tensor::from_slice(&next, active.len(), model.device())?;
        let logits = model.decode_step(&mut cache, &tokens)?.to_vec2::<f32>()?;
        let mut still_active = Vec::with_capacity(active.len());
        let mut next_tokens = Vec::with_capacity(active.len());
        for (row, mut row_logits) in logits.into_iter().enumerate() {
            let log_norm = log_sum_exp(&row_logits);
            if step < config.min_new_tokens {
                if let Some(eos) = row_logits.get_mut(config.eos_token_id as usize) {
                    *eos = f32::NEG_INFINITY;
                }
            }
            let token = argmax(&row_logits);
            let hypothesis = &mut hypotheses[active[row]];
            hypothesis.tokens.push(token);
            hypothesis.score += row_logits[token as usize] - log_norm;
            if token != config.eos_token_id {
                still_active.push(row);
                next_tokens.push(token);
            }
        }
        if still_active.is_empty() {
            break;
        }
        if still_active.len() != active.len() {
            let keep: Vec<u32> = still_active.iter().map(|&row| row as u32).collect();
            cache.reorder(&Tensor::from_vec(keep, still_active.len(), model.device())?)?;
            active = still_active.iter().map(|&row| active[row]).collect();
        }
        next = next_tokens;
    }
    Ok(hypotheses.into_iter().map(|h| vec![h]).collect())
}

/// The first index of the largest value (torch's `argmax` on ties).
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &value) in row.iter().enumerate() {
        if value > row[best] {
            best = i;
        }
    }
    best as u32
}

/// transformers' "unreachable" score.
const NEG: f32 = -1.0e9;

#[derive(Debug, Clone)]
struct Beam {
    tokens: Vec<u32>,
    score: f32,
}

struct BeamState {
    running: Vec<Beam>,
    /// Best first, at most `num_beams`.
    finished: Vec<Hypothesis>,
    /// transformers' `is_early_stop_heuristic_unsatisfied`.
    improvable: bool,
}

fn beam_search(
    model: &T5Model,
    config: &GenerationConfig,
    encoded: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Vec<Vec<Hypothesis>>> {
    let batch = encoded.dim(0)?;
    let beams = config.num_beams;
    let candidates = 2 * beams;
    let device = model.device();
    // Every input repeated once per beam.
    let repeat: Vec<u32> = (0..batch as u32)
        .flat_map(|b| std::iter::repeat_n(b, beams))
        .collect();
    let repeat = Tensor::from_vec(repeat, batch * beams, device)?;
    let encoded = encoded.index_select(&repeat, 0)?;
    let mask = mask.map(|m| m.index_select(&repeat, 0)).transpose()?;
    let mut cache = model.start_decoding(&encoded, mask.as_ref())?;
    let mut states: Vec<BeamState> = (0..batch)
        .map(|_| BeamState {
            running: (0..beams)
                .map(|k| Beam {
                    tokens: Vec::new(),
                    score: if k == 0 { 0.0 } else { NEG },
                })
                .collect(),
            finished: Vec::new(),
            improvable: true,
        })
        .collect();
    let mut next = vec![config.decoder_start_token_id; batch * beams];
    for step in 0..config.max_new_tokens {
        let tokens = Tensor::from_slice(&next, batch * beams, device)?;
        let logits = model.decode_step(&mut cache, &tokens)?.to_vec2::<f32>()?;
        let last_step = step + 1 == config.max_new_tokens;
        // Length of a hypothesis ending at this step, start token excluded.
        let generated_len = (step + 1) as f64;
        let normaliser = generated_len.powf(config.length_penalty as f64) as f32;
        let mut source_rows = Vec::with_capacity(batch * beams);
        for (b, state) in states.iter_mut().enumerate() {
            // Top `2 * beams` continuations over all beams, best first.
            let mut top: Vec<(f32, usize, u32)> = Vec::with_capacity(candidates + 1);
            for (k, beam) in state.running.iter().enumerate() {
                let mut row = logits[b * beams + k].clone();
                let log_norm = log_sum_exp(&row);
                for value in row.iter_mut() {
                    *value -= log_norm;
                }
                if step < config.min_new_tokens {
                    if let Some(eos) = row.get_mut(config.eos_token_id as usize) {
                        *eos = f32::NEG_INFINITY;
                    }
                }
                for (token, &log_prob) in row.iter().enumerate() {
                    let total = log_prob + beam.score;
                    if top.len() == candidates && total <= top[candidates - 1].0 {
                        continue;
                    }
                    let at = top.partition_point(|&(score, _, _)| score >= total);
                    top.insert(at, (total, k, token as u32));
                    top.truncate(candidates);
                }
            }
            let hits: Vec<bool> = top
                .iter()
                .map(|&(_, _, token)| token == config.eos_token_id || last_step)
                .collect();
            // Finished hypotheses: candidates among the first `beams` that stop.
            let full = state.finished.len() == beams;
            let frozen = !state.improvable || (config.early_stopping && full);
            if !frozen {
                for (i, &(total, k, token)) in top.iter().enumerate().take(beams) {
                    if !hits[i] {
                        continue;
                    }
                    let mut tokens = state.running[k].tokens.clone();
                    tokens.push(token);
                    let score = total / normaliser;
                    let at = state.finished.partition_point(|h| h.score >= score);
                    state.finished.insert(at, Hypothesis { tokens, score });
                    state.finished.truncate(beams);
                }
            }
            // Next running beams: the best continuations that did not stop.
            let mut order: Vec<usize> = (0..top.len()).collect();
            order.sort_by(|&i, &j| {
                let key = |i: usize| top[i].0 + if hits[i] { NEG } else { 0.0 };
                key(j).total_cmp(&key(i))
            });
            let mut running = Vec::with_capacity(beams);
            for &i in order.iter().take(beams) {
                let (total, k, token) = top[i];
                let mut tokens = state.running[k].tokens.clone();
                tokens.push(token);
                running.push(Beam {
                    tokens,
                    score: total + if hits[i] { NEG } else { 0.0 },
                });
                source_rows.push((b * beams + k) as u32);
            }
            state.running = running;
            // transformers' early-stop heuristic, with the length so far.
            if state.improvable {
                let best_possible = state.running[0].score / normaliser;
                let worst_finished = if state.finished.len() == beams {
                    state.finished[beams - 1].score
                } else {
                    NEG
                };
                state.improvable = best_possible > worst_finished;
            }
        }
        let all_full = states.iter().all(|s| s.finished.len() == beams);
        if last_step || states.iter().all(|s| !s.improvable) || (config.early_stopping && all_full)
        {
            break;
        }
        next = states
            .iter()
            .flat_map(|s| {
                s.running
                    .iter()
                    .map(|beam| beam.tokens.last().copied().unwrap_or(0))
            })
            .collect();
        cache.reorder(&Tensor::from_vec(source_rows, batch * beams, device)?)?;
    }
    Ok(states.into_iter().map(|s| s.finished).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_config_file_overrides_only_what_it_sets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("generation_config.json");
        std::fs::write(
            &path,
            r#"{"num_beams": 4, "eos_token_id": [7, 1], "length_penalty": 0.6,
                "transformers_version": "5.24.0", "max_length": 20}"#,
        )
        .unwrap();
        let base = GenerationConfig {
            max_new_tokens: 33,
            ..GenerationConfig::default()
        };
        let config = GenerationConfig::from_file(&path, &base).unwrap();
        assert_eq!(config.num_beams, 4);
        assert_eq!(config.eos_token_id, 7);
        assert_eq!(config.length_penalty, 0.6);
        assert_eq!(config.max_new_tokens, 33);
        std::fs::write(&path, r#"{"num_beams": "many"}"#).unwrap();
        let message = GenerationConfig::from_file(&path, &base)
            .unwrap_err()
            .to_string();
        assert!(message.contains("generation_config.json"), "{message}");
    }

    #[test]
    fn argmax_takes_the_first_of_equal_values() {
        assert_eq!(argmax(&[0.5, 2.0, 2.0, -1.0]), 1);
        assert!((log_sum_exp(&[0.0, 0.0]) - 2f32.ln()).abs() < 1e-6);
    }
}
