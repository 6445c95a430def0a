//! Evaluation during training: the validation loss of every source and
//! execution accuracy on a fixed sample of the evaluated source
//! ([`crate::exec_eval`]), written to the metrics, `eval/step-N.jsonl` and
//! the plots, and offered to the best-model tracking ([`super::best`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use text2sql_data::prepare::Split;
use text2sql_model::GenerationConfig;
use text2sql_sql::{EvalOptions, EvalReport, SandboxLimits};

use super::seeds::{self, mix_seed};
use super::{loss_value, Trainer};
use crate::encode::Encoded;
use crate::error::{Result, TrainError};
use crate::exec_eval::ExecSample;
use crate::guard::{check_finite, Quantity};
use crate::metrics::{EventKind, MetricsEvent};
use crate::plot::render_plots;

/// Folder of the per-example outcomes of each evaluation
/// (`eval/step-N.jsonl`, the lines `text2sql eval --per-example` writes).
pub const EVAL_DIR: &str = "eval";

impl Trainer {
    /// The execution-accuracy sample, when the config asks for one.
    pub(super) fn load_exec_sample(&self) -> Result<Option<ExecSample>> {
        let eval = &self.config.eval;
        if eval.exec_sample == 0 {
            return Ok(None);
        }
        let data = &self.sources[self.eval_source];
        let Some(databases) = data.source.databases.as_deref() else {
            return Err(TrainError::Config {
                path: data.source.processed_dir.clone(),
                message: format!(
                    "`{}`: required for execution accuracy on source `{}` (eval.exec_sample = {}; \
                     eval.source picks another source)",
                    data.source.databases_key(),
                    data.source.name,
                    eval.exec_sample
                ),
            });
        };
        let sample = ExecSample::load(
            data.dataset.split(Split::Val),
            &data.schemas,
            databases,
            eval.exec_sample,
            mix_seed(self.config.training.seed, &[seeds::EXEC_SAMPLE]),
            &self.input_format,
            &self.tokenizer,
        )?
        .constrained(eval.constrain);
        if sample.is_empty() {
            return Err(TrainError::Dataset(format!(
                "eval.exec_sample = {}, but the val split of {} has no example \
                 (prepare with --val-ratio > 0, or set eval.exec_sample=0)",
                eval.exec_sample,
                data.dataset.dir().display()
            )));
        }
        Ok(Some(sample))
    }

    /// Number of examples scored for execution accuracy at each evaluation.
    pub fn exec_sample_len(&self) -> usize {
        self.exec_sample.as_ref().map_or(0, ExecSample::len)
    }

    /// Decodes the execution-accuracy sample with the current weights and
    /// scores it; `None` without a sample.
    pub fn execution_accuracy(&self) -> Result<Option<EvalReport>> {
        let Some(sample) = &self.exec_sample else {
            return Ok(None);
        };
        let eval = &self.config.eval;
        let generation = GenerationConfig {
            num_beams: eval.beams,
            max_new_tokens: eval.resolved_max_new_tokens(&self.config.data),
            ..GenerationConfig::for_model(self.model.config())
        };
        // The limits `text2sql eval` uses by default, with the config's timeout.
        let options = EvalOptions {
            rule: eval.rule,
            limits: SandboxLimits::for_eval(Duration::from_secs_f64(eval.timeout_s)),
            ..EvalOptions::default()
        };
        sample
            .evaluate(
                &self.model,
                &self.tokenizer,
                &generation,
                eval.batch_size,
                &options,
            )
            .map(Some)
    }

    /// One evaluation at `step`: validation loss, execution accuracy (with
    /// its per-example outcomes in `eval/step-N.jsonl`), the metrics line,
    /// the best model, the plots.
    pub(super) fn evaluate(&mut self, step: u64) -> Result<MetricsEvent> {
        let started = Instant::now();
        let mut event = MetricsEvent::new(EventKind::Eval, step);
        event.val_loss = self.validation_loss()?;
        event.val_loss_by_source = self.validation_loss_by_source(event.val_loss)?;
        if let Some(report) = self.execution_accuracy()? {
            let summary = &report.summary;
            event.exec_accuracy = Some(summary.accuracy);
            event.exec_error_rate = Some(summary.error_rate);
            event.exec_gold_errors = (summary.gold_errors > 0).then_some(summary.gold_errors);
            event.exec_accuracy_by_tier = summary
                .by_tier
                .iter()
                .map(|b| (b.name.clone(), b.accuracy))
                .collect();
            self.write_outcomes(step, &report)?;
        }
        event.eval_s = Some(started.elapsed().as_secs_f64());
        event.elapsed_s = Some(self.state.elapsed_s);
        if event.val_loss.is_none()
            && event.exec_accuracy.is_none()
            && event.val_loss_by_source.is_empty()
        {
            return Ok(event);
        }
        self.metrics.append(&event)?;
        self.events.push(event.clone());
        self.record_best(&event)?;
        render_plots(&self.run_dir, &self.events)?;
        Ok(event)
    }

    /// `eval/step-N.jsonl`: one line per sampled example, as
    /// `text2sql eval --per-example` writes them.
    fn write_outcomes(&self, step: u64, report: &EvalReport) -> Result<()> {
        let dir = self.run_dir.join(EVAL_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        let path = dir.join(format!("step-{step}.jsonl"));
        let mut text = Vec::new();
        for outcome in &report.examples {
            serde_json::to_writer(&mut text, outcome).map_err(|source| TrainError::Json {
                path: path.clone(),
                source,
            })?;
            text.push(b'\n');
        }
        Ok(text2sql_data::atomic::write_file(&path, &text)?)
    }

    /// Mean validation loss over the fixed validation sample of the
    /// evaluated source (`eval.source`).
    pub fn validation_loss(&self) -> Result<Option<f64>> {
        self.loss_on(&self.sources[self.eval_source].val)
    }

    /// Each source's validation loss, by name, in a run on several sources
    /// (empty otherwise); the evaluated source's is `eval_loss`, already
    /// measured.
    fn validation_loss_by_source(&self, eval_loss: Option<f64>) -> Result<BTreeMap<String, f64>> {
        let mut losses = BTreeMap::new();
        if self.sources.len() < 2 {
            return Ok(losses);
        }
        for (i, data) in self.sources.iter().enumerate() {
            let loss = if i == self.eval_source {
                eval_loss
            } else {
                self.loss_on(&data.val)?
            };
            if let Some(loss) = loss {
                losses.insert(data.source.name.clone(), loss);
            }
        }
        Ok(losses)
    }

    /// Mean teacher-forced loss over `val`; `None` when it is empty.
    fn loss_on(&self, val: &[Encoded]) -> Result<Option<f64>> {
        if val.is_empty() {
            return Ok(None);
        }
        let (mut sum, mut count) = (0f64, 0usize);
        for chunk in val.chunks(16) {
            let (l, _) = self.batch_loss(chunk, None)?;
            sum += loss_value(&l)? * chunk.len() as f64;
            count += chunk.len();
        }
        Ok(Some(check_finite(
            Quantity::ValLoss,
            sum / count as f64,
            self.state.step,
        )?))
    }
}
