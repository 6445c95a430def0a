//! The best model of a run: which evaluation metric chooses it, the
//! `best/` folder that holds its weights with the record of why, and how a
//! resumed run takes an existing `best/` into account.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Trainer;
use crate::checkpoint::BestRecord;
use crate::config::BestMetricKind;
use crate::error::{Result, TrainError};
use crate::metrics::MetricsEvent;

/// Folder of the best checkpoint inside the run directory.
pub const BEST_DIR: &str = "best";

/// The best checkpoint of a run and the metric it won by.
#[derive(Debug, Clone, Serialize)]
pub struct BestSummary {
    /// `exec_accuracy` or `val_loss`.
    pub metric: String,
    pub value: f64,
    pub step: u64,
    pub dir: PathBuf,
}

impl Trainer {
    /// Checks the saved best metric against the config and, when
    /// `resuming`, takes the run's `best/` record into account (see
    /// [`crate::checkpoint::TrainState::reconcile_best`]); a fresh run ignores a `best/` left by
    /// an earlier one and replaces it at its first evaluation.
    pub(super) fn reconcile_best(&mut self, resuming: bool) -> Result<()> {
        let best_dir = self.run_dir.join(BEST_DIR);
        let on_disk = if resuming {
            BestRecord::load(&best_dir)?.map(|r| r.best)
        } else {
            None
        };
        let metric = self.config.eval.resolved_best_metric().name();
        self.state
            .reconcile_best(metric, on_disk.as_ref())
            .map_err(|message| TrainError::Checkpoint {
                path: best_dir,
                message,
            })
    }

    /// Offers the evaluation `event` to the best-model tracking: when it
    /// beats the best so far on the configured metric, the model and its
    /// record replace `best/`.
    pub(super) fn record_best(&mut self, event: &MetricsEvent) -> Result<()> {
        let metric = self.config.eval.resolved_best_metric();
        let value = match metric {
            BestMetricKind::ExecAccuracy => event.exec_accuracy,
            BestMetricKind::ValLoss => event.val_loss,
        };
        let Some(value) = value else {
            return Ok(());
        };
        let improved = self.state.record_eval(
            metric.name(),
            value,
            metric.higher_is_better(),
            match metric {
                BestMetricKind::ExecAccuracy => event.val_loss,
                BestMetricKind::ValLoss => None,
            },
        );
        if !improved {
            return Ok(());
        }
        let record = BestRecord {
            best: self
                .state
                .best
                .clone()
                .ok_or_else(|| TrainError::Checkpoint {
                    path: self.run_dir.join(BEST_DIR),
                    message: "a new best was recorded but is missing".into(),
                })?,
            val_loss: event.val_loss,
            exec_accuracy: event.exec_accuracy,
            exec_accuracy_by_tier: event.exec_accuracy_by_tier.clone(),
        };
        self.write_model_atomically(&self.run_dir.join(BEST_DIR), Some(&record))
    }

    /// The best checkpoint so far, when its folder exists.
    pub(super) fn best_summary(&self) -> Option<BestSummary> {
        let best_dir = self.run_dir.join(BEST_DIR);
        self.state
            .best
            .clone()
            .filter(|_| best_dir.is_dir())
            .map(|b| BestSummary {
                metric: b.metric,
                value: b.value,
                step: b.step,
                dir: best_dir,
            })
    }

    /// Writes the model (weights, config, tokenizer, input format, and the
    /// best-metric `record` when given) to `dir` through a temporary folder,
    /// replacing an older copy.
    fn write_model_atomically(&self, dir: &Path, record: Option<&BestRecord>) -> Result<()> {
        text2sql_data::atomic::write_dir(dir, |staged| {
            self.write_model(staged)?;
            if let Some(record) = record {
                record.save(staged)?;
            }
            Ok(())
        })
    }
}
