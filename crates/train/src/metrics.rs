//! `runs/NAME/metrics.jsonl`: one JSON object per training or evaluation
//! event, appended as training goes, read back for plots and reports.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

pub const METRICS_FILE: &str = "metrics.jsonl";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Train,
    Eval,
}

/// One line of `metrics.jsonl`; absent values are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsEvent {
    pub event: EventKind,
    pub step: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// Curriculum phase in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    /// Execution accuracy over the `eval.exec_sample` validation examples,
    /// 0..1, as `text2sql eval --model` computes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_accuracy: Option<f64>,
    /// Execution accuracy per tier name (`Simple`, ..., `Highly Complex`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exec_accuracy_by_tier: BTreeMap<String, f64>,
    /// Share of the sample whose SQL SQLite rejected or the sandbox refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_error_rate: Option<f64>,
    /// Examples of the sample whose gold query itself failed (a broken
    /// database, a sandbox that could not start): they count as wrong, so
    /// the accuracy then measures the setup, not the model. Unset when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_gold_errors: Option<usize>,
    /// Seconds the evaluation took (validation loss and execution accuracy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_s: Option<f64>,
    /// Runs on several sources: training examples drawn from each source
    /// since the previous train line (the steps this line covers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub examples_by_source: BTreeMap<String, u64>,
    /// Runs on several sources: the validation loss of each source's val
    /// split (`val_loss` is the one of `eval.source`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub val_loss_by_source: BTreeMap<String, f64>,
}

impl MetricsEvent {
    /// An event of `kind` at `step` with every value unset.
    pub fn new(event: EventKind, step: u64) -> MetricsEvent {
        MetricsEvent {
            event,
            step,
            epoch: None,
            elapsed_s: None,
            loss: None,
            lr: None,
            grad_norm: None,
            tokens_per_s: None,
            phase: None,
            val_loss: None,
            exec_accuracy: None,
            exec_accuracy_by_tier: BTreeMap::new(),
            exec_error_rate: None,
            exec_gold_errors: None,
            eval_s: None,
            examples_by_source: BTreeMap::new(),
            val_loss_by_source: BTreeMap::new(),
        }
    }
}

/// Appends events to `metrics.jsonl`, one complete line per write.
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `run_dir/metrics.jsonl` for appending, creating it if needed.
    /// When resuming from `resume_step`, events after that step (written by
    /// the interrupted run past its last checkpoint) and a torn last line are
    /// removed first, so the log never holds two histories.
    pub fn open(run_dir: &Path, resume_step: Option<u64>) -> Result<MetricsLog> {
        std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
        let path = run_dir.join(METRICS_FILE);
        if let Some(step) = resume_step {
            if path.exists() {
                let kept: Vec<MetricsEvent> = read_events(&path)?
                    .into_iter()
                    .filter(|e| e.step <= step)
                    .collect();
                let mut text = String::new();
                for e in &kept {
                    text.push_str(&to_line(e, &path)?);
                }
                text2sql_data::atomic::write_file(&path, text.as_bytes())?;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(MetricsLog { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, event: &MetricsEvent) -> Result<()> {
        let line = to_line(event, &self.path)?;
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| TrainError::io(&self.path, e))
    }
}

fn to_line(event: &MetricsEvent, path: &Path) -> Result<String> {
    let mut line = serde_json::to_string(event).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    line.push('\n');
    Ok(line)
}

/// Reads every event. A last line without its newline is a write cut short by
/// a crash and is skipped; any other bad line is an error naming its number.
pub fn read_events(path: &Path) -> Result<Vec<MetricsEvent>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    let mut events = Vec::new();
    for (n, line) in complete.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(line).map_err(|e| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: format!("line {}: {e}", n + 1),
        })?;
        events.push(event);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train_event(step: u64, loss: f64) -> MetricsEvent {
        MetricsEvent {
            loss: Some(loss),
            lr: Some(1e-3),
            ..MetricsEvent::new(EventKind::Train, step)
        }
    }

    #[test]
    fn events_round_trip_one_json_object_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::open(dir.path(), None).unwrap();
        log.append(&train_event(1, 2.5)).unwrap();
        let mut eval = MetricsEvent::new(EventKind::Eval, 1);
        eval.exec_accuracy = Some(0.25);
        eval.exec_accuracy_by_tier
            .insert("Highly Complex".into(), 0.1);
        log.append(&eval).unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["event"], "train");
        assert_eq!(first["loss"], 2.5);
        assert!(first.get("val_loss").is_none(), "unset values are left out");
        assert_eq!(
            read_events(log.path()).unwrap(),
            vec![train_event(1, 2.5), eval]
        );
    }

    #[test]
    fn resuming_drops_events_past_the_checkpoint_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::open(dir.path(), None).unwrap();
        for step in 1..=5 {
            log.append(&train_event(step, 1.0)).unwrap();
        }
        drop(log);
        let path = dir.path().join(METRICS_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"event\":\"train\",\"st").unwrap();
        assert_eq!(read_events(&path).unwrap().len(), 5);
        let mut log = MetricsLog::open(dir.path(), Some(3)).unwrap();
        log.append(&train_event(4, 0.5)).unwrap();
        let steps: Vec<u64> = read_events(&path).unwrap().iter().map(|e| e.step).collect();
        assert_eq!(steps, vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_corrupt_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(METRICS_FILE);
        std::fs::write(&path, "{\"event\":\"train\",\"step\":1}\nnot json\n").unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
