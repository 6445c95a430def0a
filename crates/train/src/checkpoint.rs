//! Checkpoint folders `run_dir/checkpoint-STEP/`: model weights (written by
//! the caller), `optimizer.safetensors` and `train_state.json`. A checkpoint
//! is assembled in a temporary folder and renamed into place, with the train
//! state written last, so a folder named `checkpoint-*` is always complete.

use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::optim::Optimizer;
use crate::schedule::LrSchedule;

pub const STATE_FILE: &str = "train_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const PREFIX: &str = "checkpoint-";
const STATE_VERSION: u32 = 1;

/// The position of a ChaCha8 stream, enough to continue it exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte key as hex.
    pub seed: String,
    pub stream: u64,
    /// Words consumed so far (a u128, as a decimal string for JSON).
    pub word_pos: String,
}

impl RngState {
    pub fn capture(rng: &ChaCha8Rng) -> RngState {
        RngState {
            seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    pub fn restore(&self) -> std::result::Result<ChaCha8Rng, String> {
        use rand::SeedableRng;
        if self.seed.len() != 64 || !self.seed.is_ascii() {
            return Err(format!("rng seed `{}` is not 64 hex digits", self.seed));
        }
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16)
                .map_err(|_| format!("rng seed `{}` is not hex", self.seed))?;
        }
        let word_pos: u128 = self
            .word_pos
            .parse()
            .map_err(|_| format!("rng word_pos `{}` is not a number", self.word_pos))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(word_pos);
        Ok(rng)
    }
}

/// The best validation result so far; its checkpoint is never rotated away.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestMetric {
    /// e.g. `exec_accuracy` or `val_loss`.
    pub metric: String,
    pub value: f64,
    pub step: u64,
    pub higher_is_better: bool,
    /// Validation loss of the best step when the metric is execution
    /// accuracy: an equal accuracy with a lower loss is better, so a run
    /// whose accuracy has not moved yet (all 0% early on) keeps its latest
    /// better-fitting model rather than its first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tie_val_loss: Option<f64>,
}

/// `best/best_metric.json`: why the best model is the best, written with
/// it, so the folder says which metric and step it won with.
pub const BEST_RECORD_FILE: &str = "best_metric.json";

/// The content of [`BEST_RECORD_FILE`]: the winning metric and the whole
/// evaluation it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestRecord {
    #[serde(flatten)]
    pub best: BestMetric,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub exec_accuracy_by_tier: std::collections::BTreeMap<String, f64>,
}

impl BestRecord {
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(BEST_RECORD_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(|source| TrainError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, json).map_err(|e| TrainError::io(&path, e))
    }

    /// The record of a best-model folder; `None` when there is none yet.
    pub fn load(dir: &Path) -> Result<Option<BestRecord>> {
        let path = dir.join(BEST_RECORD_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| TrainError::Json { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TrainError::io(&path, e)),
        }
    }
}

impl BestMetric {
    /// Strictly better: on a tie a lower `tie_val_loss` wins when both are
    /// known; otherwise the earlier checkpoint stays the best.
    pub fn is_improved_by(&self, value: f64, tie_val_loss: Option<f64>) -> bool {
        if value == self.value {
            return matches!((self.tie_val_loss, tie_val_loss), (Some(old), Some(new)) if new < old);
        }
        if self.higher_is_better {
            value > self.value
        } else {
            value < self.value
        }
    }
}

/// Everything besides weights and optimizer moments needed to resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    pub version: u32,
    /// Optimizer steps completed.
    pub step: u64,
    pub epoch: u64,
    /// The data sampler's own position (opaque here).
    pub data_position: serde_json::Value,
    /// Named random streams (sampler, dropout, ...).
    pub rngs: std::collections::BTreeMap<String, RngState>,
    pub schedule: LrSchedule,
    pub best: Option<BestMetric>,
    /// Evaluations since `best` last improved (early stopping).
    pub evals_without_improvement: u32,
    pub tokens_seen: u64,
    pub elapsed_s: f64,
}

impl TrainState {
    pub fn new(schedule: LrSchedule) -> TrainState {
        TrainState {
            version: STATE_VERSION,
            step: 0,
            epoch: 0,
            data_position: serde_json::Value::Null,
            rngs: Default::default(),
            schedule,
            best: None,
            evals_without_improvement: 0,
            tokens_seen: 0,
            elapsed_s: 0.0,
        }
    }

    /// On resume: the metric the run chose its best checkpoint by must be
    /// the one the config asks for, or best values would be compared across
    /// metrics. `best_on_disk` (the run's `best/` record) replaces the saved
    /// best when it is better: an interrupted run may have written a better
    /// best model after its last checkpoint, and resuming must not let a
    /// worse one overwrite it.
    pub fn reconcile_best(
        &mut self,
        metric: &str,
        best_on_disk: Option<&BestMetric>,
    ) -> std::result::Result<(), String> {
        for best in self.best.iter().chain(best_on_disk) {
            if best.metric != metric {
                return Err(format!(
                    "the run chose its best checkpoint by `{}` but the config asks for `{metric}`; \
                     resume with --set eval.best_metric={} or start a new run.name",
                    best.metric, best.metric
                ));
            }
        }
        if let Some(disk) = best_on_disk {
            if self
                .best
                .as_ref()
                .is_none_or(|b| b.is_improved_by(disk.value, disk.tie_val_loss))
            {
                self.best = Some(disk.clone());
            }
        }
        Ok(())
    }

    /// Records an evaluation result (`tie_val_loss`: the validation loss
    /// that breaks a tie, see [`BestMetric::tie_val_loss`]); returns true
    /// when it is the new best.
    pub fn record_eval(
        &mut self,
        metric: &str,
        value: f64,
        higher_is_better: bool,
        tie_val_loss: Option<f64>,
    ) -> bool {
        let improved = self
            .best
            .as_ref()
            .is_none_or(|b| b.is_improved_by(value, tie_val_loss));
        if improved {
            self.best = Some(BestMetric {
                metric: metric.to_string(),
                value,
                step: self.step,
                higher_is_better,
                tie_val_loss,
            });
            self.evals_without_improvement = 0;
        } else {
            self.evals_without_improvement += 1;
        }
        improved
    }

    pub fn load(checkpoint: &Path) -> Result<TrainState> {
        let path = checkpoint.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        let state: TrainState = serde_json::from_str(&text).map_err(|source| TrainError::Json {
            path: path.clone(),
            source,
        })?;
        if state.version != STATE_VERSION {
            return Err(TrainError::Checkpoint {
                path,
                message: format!(
                    "train state version {} is not supported (expected {STATE_VERSION})",
                    state.version
                ),
            });
        }
        Ok(state)
    }
}

/// A complete checkpoint found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    pub step: u64,
    pub path: PathBuf,
}

pub fn checkpoint_dir(run_dir: &Path, step: u64) -> PathBuf {
    run_dir.join(format!("{PREFIX}{step}"))
}

/// Error type of the caller's model writer.
pub type WriteError = Box<dyn std::error::Error + Send + Sync>;

/// Writes `run_dir/checkpoint-STEP/`: `write_model` fills the folder with
/// the weights and configs, then the optimizer state and the train state go
/// in, and the finished folder is renamed into place (replacing an older one
/// of the same step, as after a resume).
pub fn save_checkpoint(
    run_dir: &Path,
    state: &TrainState,
    optimizer: &Optimizer,
    write_model: impl FnOnce(&Path) -> std::result::Result<(), WriteError>,
) -> Result<PathBuf> {
    let target = checkpoint_dir(run_dir, state.step);
    // Built as `.tmp-checkpoint-STEP-*`, a name `list_checkpoints` ignores.
    let staged = text2sql_data::atomic::StagedDir::new(&target)?;
    write_model(staged.path()).map_err(|e| TrainError::Checkpoint {
        path: target.clone(),
        message: format!("writing the model: {e}"),
    })?;
    optimizer.save_state(&staged.path().join(OPTIMIZER_FILE))?;
    let json = serde_json::to_vec_pretty(state).map_err(|source| TrainError::Json {
        path: target.join(STATE_FILE),
        source,
    })?;
    let state_path = staged.path().join(STATE_FILE);
    std::fs::write(&state_path, json).map_err(|e| TrainError::io(&state_path, e))?;
    // An older checkpoint of the same step is moved aside (to a temporary
    // name `list_checkpoints` ignores) before the new one takes its name,
    // and put back if the rename fails.
    staged.commit()?;
    Ok(target)
}

/// Complete checkpoints in `run_dir`, oldest first. Temporary folders of an
/// interrupted save and folders without a train state are not checkpoints.
pub fn list_checkpoints(run_dir: &Path) -> Result<Vec<CheckpointInfo>> {
    let entries = match std::fs::read_dir(run_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TrainError::io(run_dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| TrainError::io(run_dir, e))?;
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let path = entry.path();
        if path.join(STATE_FILE).is_file() {
            found.push(CheckpointInfo { step, path });
        }
    }
    found.sort_by_key(|c| c.step);
    Ok(found)
}

/// The newest complete checkpoint, for `--resume`.
pub fn latest_checkpoint(run_dir: &Path) -> Result<Option<CheckpointInfo>> {
    Ok(list_checkpoints(run_dir)?.pop())
}

/// Deletes all but the newest `keep_last` checkpoints, never the one at
/// `best_step`. Returns the deleted folders.
pub fn rotate_checkpoints(
    run_dir: &Path,
    keep_last: usize,
    best_step: Option<u64>,
) -> Result<Vec<PathBuf>> {
    let all = list_checkpoints(run_dir)?;
    let cut = all.len().saturating_sub(keep_last);
    let mut removed = Vec::new();
    for c in &all[..cut] {
        if Some(c.step) == best_step {
            continue;
        }
        std::fs::remove_dir_all(&c.path).map_err(|e| TrainError::io(&c.path, e))?;
        removed.push(c.path.clone());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ScheduleConfig, ScheduleKind};
    use crate::optim::{AdamWSettings, Algorithm, OptimizerSettings};
    use candle_core::{Device, Tensor, Var};
    use rand::{Rng, SeedableRng};

    fn optimizer() -> (Var, Optimizer) {
        let w = Var::new(&[1.0f32, -2.0, 3.0], &Device::Cpu).unwrap();
        let settings = OptimizerSettings {
            algorithm: Algorithm::AdamW(AdamWSettings::default()),
            clip_norm: Some(1.0),
        };
        let mut opt = Optimizer::new(vec![("w".into(), w.clone())], settings).unwrap();
        let loss = (w.as_tensor() * Tensor::new(&[0.5f32, 1.0, -1.0], &Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        opt.accumulate(&loss.backward().unwrap()).unwrap();
        opt.step(0.01).unwrap();
        (w, opt)
    }

    fn state(step: u64) -> TrainState {
        let config = ScheduleConfig {
            kind: ScheduleKind::Cosine,
            warmup_steps: 10,
            min_lr_ratio: 0.1,
        };
        let mut s = TrainState::new(LrSchedule::new(&config, 1e-3, 1000));
        s.step = step;
        s
    }

    fn write_weights(dir: &Path) -> std::result::Result<(), WriteError> {
        std::fs::write(dir.join("model.safetensors"), b"weights")?;
        Ok(())
    }

    #[test]
    fn state_round_trips_with_rng_and_optimizer() {
        let dir = tempfile::tempdir().unwrap();
        let (_, opt) = optimizer();
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        rng.set_stream(3);
        let _: u64 = rng.random();
        let mut s = state(1);
        s.epoch = 2;
        s.data_position = serde_json::json!({"cursor": [1, 2, 3], "tier": "Complex"});
        s.rngs.insert("sampler".into(), RngState::capture(&rng));
        s.record_eval("exec_accuracy", 0.4, true, None);
        let path = save_checkpoint(dir.path(), &s, &opt, write_weights).unwrap();
        assert_eq!(path, dir.path().join("checkpoint-1"));
        assert!(path.join("model.safetensors").is_file() && path.join(OPTIMIZER_FILE).is_file());

        let loaded = TrainState::load(&path).unwrap();
        assert_eq!(loaded, s);
        let mut restored = loaded.rngs["sampler"].restore().unwrap();
        assert_eq!(restored.random::<u64>(), rng.random::<u64>());

        let (_, mut fresh) = optimizer();
        fresh.load_state(&path.join(OPTIMIZER_FILE)).unwrap();
        assert_eq!(fresh.step_count(), opt.step_count());
    }

    #[test]
    fn best_metric_tracks_improvement_and_patience() {
        let mut s = state(10);
        assert!(s.record_eval("exec_accuracy", 0.3, true, None));
        s.step = 20;
        assert!(!s.record_eval("exec_accuracy", 0.2, true, None));
        assert!(!s.record_eval("exec_accuracy", 0.3, true, None));
        assert_eq!(s.evals_without_improvement, 2);
        s.step = 30;
        assert!(s.record_eval("exec_accuracy", 0.5, true, None));
        assert_eq!(
            (s.best.as_ref().unwrap().step, s.evals_without_improvement),
            (30, 0)
        );
        let mut loss = state(1);
        loss.record_eval("val_loss", 2.0, false, None);
        assert!(loss.record_eval("val_loss", 1.5, false, None));
    }

    #[test]
    fn ties_keep_the_earlier_best() {
        let mut s = state(10);
        assert!(s.record_eval("exec_accuracy", 0.5, true, None));
        s.step = 20;
        assert!(!s.record_eval("exec_accuracy", 0.5, true, None));
        assert_eq!(s.best.as_ref().unwrap().step, 10);
        let mut loss = state(10);
        loss.record_eval("val_loss", 1.0, false, None);
        loss.step = 20;
        assert!(!loss.record_eval("val_loss", 1.0, false, None));
        assert_eq!(loss.best.as_ref().unwrap().step, 10);
    }

    #[test]
    fn an_accuracy_tie_goes_to_the_lower_validation_loss() {
        let mut s = state(10);
        assert!(s.record_eval("exec_accuracy", 0.0, true, Some(2.0)));
        s.step = 20;
        assert!(s.record_eval("exec_accuracy", 0.0, true, Some(1.5)));
        s.step = 30;
        assert!(!s.record_eval("exec_accuracy", 0.0, true, Some(1.7)));
        assert!(!s.record_eval("exec_accuracy", 0.0, true, None));
        assert_eq!(s.best.as_ref().unwrap().step, 20);
        s.step = 40;
        assert!(s.record_eval("exec_accuracy", 0.1, true, Some(9.0)));
        assert_eq!(s.best.as_ref().unwrap().step, 40);
    }

    #[test]
    fn resuming_keeps_the_better_of_saved_and_on_disk_best() {
        let best = |value: f64, step: u64| BestMetric {
            metric: "exec_accuracy".into(),
            value,
            step,
            higher_is_better: true,
            tie_val_loss: None,
        };
        // The checkpoint (step 100) knew 0.4; best/ was rewritten at step 150
        // with 0.6 before the crash: 0.6 stays the bar to beat.
        let mut s = state(100);
        s.best = Some(best(0.4, 100));
        s.reconcile_best("exec_accuracy", Some(&best(0.6, 150)))
            .unwrap();
        assert_eq!(s.best, Some(best(0.6, 150)));
        assert!(!s.record_eval("exec_accuracy", 0.55, true, None));
        // A worse (older) record on disk changes nothing.
        let mut s = state(100);
        s.best = Some(best(0.4, 100));
        s.reconcile_best("exec_accuracy", Some(&best(0.3, 50)))
            .unwrap();
        assert_eq!(s.best, Some(best(0.4, 100)));
        // Another metric than the config's is refused, naming both.
        let err = s.reconcile_best("val_loss", None).unwrap_err();
        assert!(
            err.contains("exec_accuracy") && err.contains("val_loss"),
            "{err}"
        );
    }

    #[test]
    fn best_record_round_trips_and_is_optional() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(BestRecord::load(dir.path()).unwrap(), None);
        let record = BestRecord {
            best: BestMetric {
                metric: "exec_accuracy".into(),
                value: 0.25,
                step: 40,
                higher_is_better: true,
                tie_val_loss: Some(1.5),
            },
            val_loss: Some(1.5),
            exec_accuracy: Some(0.25),
            exec_accuracy_by_tier: [("Simple".to_string(), 0.5)].into(),
        };
        record.save(dir.path()).unwrap();
        assert_eq!(BestRecord::load(dir.path()).unwrap(), Some(record));
    }

    #[test]
    fn rotation_keeps_the_newest_and_the_best() {
        let dir = tempfile::tempdir().unwrap();
        let (_, opt) = optimizer();
        for step in [100, 200, 300, 400, 500] {
            save_checkpoint(dir.path(), &state(step), &opt, write_weights).unwrap();
        }
        let removed = rotate_checkpoints(dir.path(), 2, Some(200)).unwrap();
        assert_eq!(
            removed,
            vec![
                checkpoint_dir(dir.path(), 100),
                checkpoint_dir(dir.path(), 300)
            ]
        );
        let left: Vec<u64> = list_checkpoints(dir.path())
            .unwrap()
            .iter()
            .map(|c| c.step)
            .collect();
        assert_eq!(left, vec![200, 400, 500]);
        // The best being among the newest changes nothing else.
        assert!(rotate_checkpoints(dir.path(), 3, Some(500))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn half_written_checkpoints_are_ignored_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(latest_checkpoint(dir.path()).unwrap(), None);
        let (_, opt) = optimizer();
        save_checkpoint(dir.path(), &state(100), &opt, write_weights).unwrap();
        // A crash during the save of step 200 leaves only its temporary folder;
        // a folder someone made by hand has no train state.
        let tmp = dir.path().join(".tmp-checkpoint-200-abc");
        std::fs::create_dir(&tmp).unwrap();
        std::fs::write(tmp.join("model.safetensors"), b"half").unwrap();
        std::fs::create_dir(dir.path().join("checkpoint-300")).unwrap();
        let latest = latest_checkpoint(dir.path()).unwrap().unwrap();
        assert_eq!(latest.step, 100);
        // A failing model writer leaves no checkpoint folder behind.
        let err = save_checkpoint(dir.path(), &state(400), &opt, |_| Err("disk full".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("disk full"), "{err}");
        assert!(!checkpoint_dir(dir.path(), 400).exists());
        assert_eq!(latest_checkpoint(dir.path()).unwrap().unwrap().step, 100);
    }

    #[test]
    fn saving_the_same_step_again_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let (_, opt) = optimizer();
        let mut s = state(100);
        save_checkpoint(dir.path(), &s, &opt, write_weights).unwrap();
        s.tokens_seen = 77;
        let path = save_checkpoint(dir.path(), &s, &opt, write_weights).unwrap();
        assert_eq!(TrainState::load(&path).unwrap().tokens_seen, 77);
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(
            entries.len(),
            1,
            "the replaced checkpoint is gone, nothing left aside"
        );
    }

    #[test]
    fn a_corrupt_state_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE_FILE), "{\"step\": 1").unwrap();
        let err = TrainState::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(STATE_FILE), "{err}");
    }
}
