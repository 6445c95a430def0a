//! Checks of a [`TrainConfig`] that its types cannot express, run once the
//! YAML and the overrides are deserialised; every error names the key.

use std::path::Path;

use text2sql_data::schema::{SAMPLE_TEXT_MAX_CHARS, SAMPLE_VALUES_PER_COLUMN};

use super::{
    BestMetricKind, DTypeChoice, DataSource, DeviceChoice, MixedPrecision, SchemaFormat,
    TrainConfig,
};
use crate::error::{Result, TrainError};

/// Builds the error for a bad value at a key.
type Invalid<'a> = &'a dyn Fn(&str, String) -> TrainError;

impl TrainConfig {
    /// Checks every value a type cannot; the error names the first bad
    /// key.
    pub(super) fn validate(&self, path: &Path) -> Result<()> {
        let invalid = |key: &str, message: String| TrainError::InvalidValue {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        if self.run.name.trim().is_empty() || self.run.name.contains(['/', '\\']) {
            return Err(invalid(
                "run.name",
                "must be a non-empty folder name without slashes".into(),
            ));
        }
        self.validate_model(&invalid)?;
        self.validate_sources(&invalid)?;
        if self.data.max_source_tokens == 0 || self.data.max_target_tokens == 0 {
            return Err(invalid(
                "data.max_source_tokens",
                "token limits must be positive".into(),
            ));
        }
        self.validate_curriculum(&invalid)?;
        self.validate_optimizer(&invalid)?;
        if !(0.0..=1.0).contains(&self.schedule.min_lr_ratio) {
            return Err(invalid(
                "schedule.min_lr_ratio",
                format!("{} is not in [0, 1]", self.schedule.min_lr_ratio),
            ));
        }
        if self.batch.max_tokens == 0
            || self.batch.grad_accum == 0
            || self.batch.parallel_micro_batches == 0
        {
            return Err(invalid(
                "batch",
                "max_tokens, grad_accum and parallel_micro_batches must be positive".into(),
            ));
        }
        let longest = self.data.max_source_tokens + self.data.max_target_tokens;
        if self.batch.max_tokens < longest {
            return Err(invalid(
                "batch.max_tokens",
                format!(
                    "{} cannot hold one example of max_source_tokens + max_target_tokens = {longest}",
                    self.batch.max_tokens
                ),
            ));
        }
        if self.training.max_steps == 0 {
            return Err(invalid("training.max_steps", "must be positive".into()));
        }
        if let Some(minutes) = self.training.max_minutes {
            if !(minutes.is_finite() && minutes > 0.0) {
                return Err(invalid(
                    "training.max_minutes",
                    format!("must be a positive number of minutes, not {minutes}"),
                ));
            }
        }
        let mut start = 0u64;
        for (i, phase) in self.curriculum.phases.iter().enumerate() {
            if start >= self.training.max_steps {
                return Err(invalid(
                    &format!("curriculum.phases[{i}]"),
                    format!(
                        "starts at step {start}, at or after training.max_steps = {}: it would never run",
                        self.training.max_steps
                    ),
                ));
            }
            start = start.saturating_add(phase.steps);
        }
        if self.training.dtype == DTypeChoice::F16 {
            return Err(invalid(
                "training.dtype",
                "f16 is not supported: T5 overflows to NaN in fp16; use f32 (CPU) or bf16 (GPU)"
                    .into(),
            ));
        }
        if self.training.mixed_precision == MixedPrecision::Bf16 {
            if self.training.device != DeviceChoice::Cpu
                || self.training.resolved_dtype() != candle_core::DType::F32
            {
                return Err(invalid(
                    "training.mixed_precision",
                    "bf16 mixed precision is for f32 training on the CPU (on a GPU, set training.dtype: bf16)"
                        .into(),
                ));
            }
            if let Err(why) = text2sql_model::bf16_matmul::require() {
                return Err(invalid("training.mixed_precision", why.into()));
            }
        }
        if self.training.log_every_steps == 0 {
            return Err(invalid(
                "training.log_every_steps",
                "must be positive".into(),
            ));
        }
        if self.eval.every_steps == 0 {
            return Err(invalid("eval.every_steps", "must be positive".into()));
        }
        if self.checkpoint.every_steps == 0 {
            return Err(invalid("checkpoint.every_steps", "must be positive".into()));
        }
        if self.eval.beams == 0 {
            return Err(invalid("eval.beams", "must be at least 1".into()));
        }
        self.validate_schema(&invalid)?;
        self.validate_eval(&invalid)
    }

    /// `init_from` or `architecture` (with a tokenizer and the model crate's
    /// rules for a T5 shape).
    fn validate_model(&self, invalid: Invalid<'_>) -> Result<()> {
        match (&self.model.init_from, &self.model.architecture) {
            (Some(_), Some(_)) => return Err(invalid(
                "model",
                "give either `init_from` (a checkpoint) or `architecture` (random init), not both"
                    .into(),
            )),
            (None, None) => {
                return Err(invalid(
                    "model",
                    "give `init_from` (a checkpoint) or `architecture` with `tokenizer`".into(),
                ))
            }
            (None, Some(arch)) => {
                if self.model.tokenizer.is_none() {
                    return Err(invalid(
                        "model.tokenizer",
                        "required when training from `architecture`".into(),
                    ));
                }
                // The model crate's rules for a T5 shape, keyed in this file.
                arch.to_config().validate().map_err(|(field, message)| {
                    invalid(&format!("model.architecture.{field}"), message)
                })?;
                if arch.schema_pointer && !self.data.schema.symbols {
                    return Err(invalid(
                        "model.architecture.schema_pointer",
                        "points at schema symbols: needs data.schema.symbols: true".into(),
                    ));
                }
            }
            (Some(_), None) => {}
        }
        Ok(())
    }

    /// At least one phase, each with usable tier and source weights.
    fn validate_curriculum(&self, invalid: Invalid<'_>) -> Result<()> {
        if self.curriculum.phases.is_empty() {
            return Err(invalid(
                "curriculum.phases",
                "at least one phase is needed".into(),
            ));
        }
        for (i, phase) in self.curriculum.phases.iter().enumerate() {
            let key = format!("curriculum.phases[{i}]");
            if phase.steps == 0 {
                return Err(invalid(&format!("{key}.steps"), "must be positive".into()));
            }
            if let Some((tier, w)) = phase
                .tiers
                .iter()
                .find(|(_, w)| !w.is_finite() || **w < 0.0)
            {
                return Err(invalid(
                    &format!("{key}.tiers.{tier}"),
                    format!("weight {w} must be finite and not negative"),
                ));
            }
            if !phase.tiers.is_empty() && phase.tiers.values().sum::<f64>() <= 0.0 {
                return Err(invalid(
                    &format!("{key}.tiers"),
                    "at least one tier needs a positive weight (or leave tiers out: all of them)"
                        .into(),
                ));
            }
            let sources = self.data.sources();
            for (name, &w) in &phase.sources {
                if !sources.iter().any(|s| &s.name == name) {
                    return Err(invalid(
                        &format!("{key}.sources.{name}"),
                        no_source_named(name, &sources),
                    ));
                }
                if !(w.is_finite() && w >= 0.0) {
                    return Err(invalid(
                        &format!("{key}.sources.{name}"),
                        format!("weight {w} must be finite and not negative"),
                    ));
                }
            }
            if sources
                .iter()
                .all(|s| phase.sources.get(&s.name).copied().unwrap_or(s.weight) <= 0.0)
            {
                return Err(invalid(
                    &format!("{key}.sources"),
                    "every source has weight 0 in this phase".into(),
                ));
            }
        }
        Ok(())
    }

    /// A positive learning rate and epsilon, betas in [0, 1), no negative
    /// weight decay or clipping norm.
    fn validate_optimizer(&self, invalid: Invalid<'_>) -> Result<()> {
        let opt = &self.optimizer;
        if !(opt.lr.is_finite() && opt.lr > 0.0) {
            return Err(invalid(
                "optimizer.lr",
                format!("{} must be positive", opt.lr),
            ));
        }
        for (i, beta) in opt.betas.iter().enumerate() {
            if !(0.0..1.0).contains(beta) {
                return Err(invalid(
                    &format!("optimizer.betas[{i}]"),
                    format!("{beta} is not in [0, 1)"),
                ));
            }
        }
        if !(opt.eps.is_finite() && opt.eps > 0.0) {
            return Err(invalid(
                "optimizer.eps",
                format!("{} must be positive", opt.eps),
            ));
        }
        if !(opt.weight_decay.is_finite() && opt.weight_decay >= 0.0) {
            return Err(invalid(
                "optimizer.weight_decay",
                format!("{} must not be negative", opt.weight_decay),
            ));
        }
        if let Some(clip) = opt.clip_norm {
            if !(clip.is_finite() && clip >= 0.0) {
                return Err(invalid(
                    "optimizer.clip_norm",
                    format!("{clip} must not be negative"),
                ));
            }
        }
        Ok(())
    }

    /// `data.processed_dir` or `data.sources`, with distinct names and
    /// usable weights.
    fn validate_sources(&self, invalid: Invalid<'_>) -> Result<()> {
        let data = &self.data;
        match (&data.processed_dir, data.sources.is_empty()) {
            (Some(_), false) => {
                return Err(invalid(
                    "data.sources",
                    "give either `processed_dir` (one dataset) or `sources` (a mix), not both"
                        .into(),
                ))
            }
            (None, true) => {
                return Err(invalid(
                    "data.processed_dir",
                    "required (the output folder of `text2sql prepare`), or a list of `sources`"
                        .into(),
                ))
            }
            (None, false) if data.databases.is_some() => {
                return Err(invalid(
                    "data.databases",
                    "with `sources`, give each source its own `databases`".into(),
                ))
            }
            _ => {}
        }
        let sources = data.sources();
        for (i, source) in sources.iter().enumerate() {
            if source.name.trim().is_empty() {
                return Err(invalid(
                    &format!("{}.name", source.key),
                    "must not be empty".into(),
                ));
            }
            if let Some(twin) = sources[..i].iter().find(|s| s.name == source.name) {
                return Err(invalid(
                    &format!("{}.name", source.key),
                    format!(
                        "`{}` is also the name of {}; give each source its own name",
                        source.name, twin.key
                    ),
                ));
            }
            if !(source.weight.is_finite() && source.weight >= 0.0) {
                return Err(invalid(
                    &format!("{}.weight", source.key),
                    format!("{} must be finite and not negative", source.weight),
                ));
            }
        }
        if sources.iter().all(|s| s.weight <= 0.0) {
            return Err(invalid(
                "data.sources",
                "at least one source needs a positive weight".into(),
            ));
        }
        if let Some(name) = &self.eval.source {
            if !sources.iter().any(|s| &s.name == name) {
                return Err(invalid("eval.source", no_source_named(name, &sources)));
            }
        }
        Ok(())
    }

    /// The schema options the saved input format can express; anything
    /// else is refused rather than silently trained differently.
    fn validate_schema(&self, invalid: Invalid<'_>) -> Result<()> {
        let schema = &self.data.schema;
        if schema.format != SchemaFormat::Compact {
            return Err(invalid(
                "data.schema.format",
                "only `compact` can be trained: the model input format \
                 (text2sql_input.json, read by ask, eval and serve) has no CREATE TABLE form"
                    .into(),
            ));
        }
        if schema.sample_values != 0 && schema.sample_values != SAMPLE_VALUES_PER_COLUMN {
            return Err(invalid(
                "data.schema.sample_values",
                format!(
                    "{} cannot be honoured: `text2sql prepare` stores {SAMPLE_VALUES_PER_COLUMN} \
                     example values per column, so use 0 (none) or {SAMPLE_VALUES_PER_COLUMN} (all)",
                    schema.sample_values
                ),
            ));
        }
        if schema.natural_names && !schema.symbols {
            return Err(invalid(
                "data.schema.natural_names",
                "relabels the names that have symbols: needs data.schema.symbols: true \
                 (without symbols the model writes names as the input spells them)"
                    .into(),
            ));
        }
        let chars = SAMPLE_TEXT_MAX_CHARS;
        if schema.max_value_chars != chars {
            return Err(invalid(
                "data.schema.max_value_chars",
                format!(
                    "{} cannot be honoured: `text2sql prepare` cuts example strings at {chars} \
                     characters, so it must be {chars}",
                    schema.max_value_chars
                ),
            ));
        }
        if schema.values_in_question_only && schema.sample_values == 0 {
            return Err(invalid(
                "data.schema.values_in_question_only",
                "needs example values (sample_values: 2); with sample_values: 0 none are shown"
                    .into(),
            ));
        }
        Ok(())
    }

    fn validate_eval(&self, invalid: Invalid<'_>) -> Result<()> {
        let eval = &self.eval;
        if eval.exec_sample > 0 {
            // The source evaluated is only known once the datasets are open
            // (the first with a val split) unless `eval.source` names it:
            // then it needs databases, otherwise some source must have them.
            let sources = self.data.sources();
            let named = sources
                .iter()
                .find(|s| eval.source.as_ref() == Some(&s.name));
            let required = match named {
                Some(source) => Some(source),
                None if sources.iter().all(|s| s.databases.is_none()) => sources.first(),
                None => None,
            };
            if let Some(source) = required.filter(|s| s.databases.is_none()) {
                return Err(invalid(
                    &source.databases_key(),
                    format!(
                        "required for execution accuracy (eval.exec_sample = {}): the folder \
                         of <db_id>/<db_id>.sqlite databases",
                        eval.exec_sample
                    ),
                ));
            }
            for source in &sources {
                if let Some(dir) = source.databases.as_ref().filter(|d| !d.is_dir()) {
                    return Err(invalid(
                        &source.databases_key(),
                        format!(
                            "{} is not a folder (needed for eval.exec_sample = {}; \
                             set eval.exec_sample=0 to train without execution accuracy)",
                            dir.display(),
                            eval.exec_sample
                        ),
                    ));
                }
            }
        }
        match eval.best_metric {
            Some(BestMetricKind::ExecAccuracy) if eval.exec_sample == 0 => {
                return Err(invalid(
                    "eval.best_metric",
                    "exec_accuracy needs eval.exec_sample > 0".into(),
                ))
            }
            Some(BestMetricKind::ValLoss) if eval.val_sample_size == 0 => {
                return Err(invalid(
                    "eval.best_metric",
                    "val_loss needs eval.val_sample_size > 0".into(),
                ))
            }
            _ => {}
        }
        if let Err(e) = text2sql_sql::timeout_from_secs(eval.timeout_s) {
            return Err(invalid("eval.timeout_s", e.to_string()));
        }
        if eval.max_new_tokens == Some(0) {
            return Err(invalid("eval.max_new_tokens", "must be at least 1".into()));
        }
        if eval.batch_size == 0 {
            return Err(invalid("eval.batch_size", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// Says that no source of `sources` is named `name`, listing their names.
fn no_source_named(name: &str, sources: &[DataSource]) -> String {
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    format!(
        "no source is named `{name}` (sources: {})",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use crate::config::test_support::{parse, two_sources, MINIMAL};
    use crate::config::{BestMetricKind, Rule};

    #[test]
    fn bf16_mixed_precision_is_for_f32_training_on_a_cpu_that_has_it() {
        let err = parse(
            MINIMAL,
            &["training.mixed_precision=bf16", "training.device=cuda"],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("training.mixed_precision"), "{err}");
        let on_cpu = parse(MINIMAL, &["training.mixed_precision=bf16"]);
        if text2sql_model::bf16_matmul::available() {
            assert_eq!(
                on_cpu.unwrap().training.mixed_precision,
                crate::config::MixedPrecision::Bf16
            );
        } else {
            let err = on_cpu.unwrap_err().to_string();
            assert!(err.contains("AVX-512 BF16"), "{err}");
        }
    }

    #[test]
    fn invalid_values_are_rejected_with_their_key() {
        for (set, key) in [
            ("optimizer.lr=0", "optimizer.lr"),
            ("optimizer.betas=[0.9, 1.5]", "optimizer.betas[1]"),
            ("training.dtype=f16", "training.dtype"),
            ("batch.max_tokens=100", "batch.max_tokens"),
            (
                "curriculum.phases.0.tiers={Simple: 0}",
                "curriculum.phases[0].tiers",
            ),
            ("model.architecture={vocab_size: 8}", "model"),
            ("training.max_steps=10", "curriculum.phases[1]"),
            ("checkpoint.every_steps=0", "checkpoint.every_steps"),
            ("training.max_minutes=0", "training.max_minutes"),
            ("training.max_minutes=-1.5", "training.max_minutes"),
        ] {
            let err = parse(MINIMAL, &[set]).unwrap_err().to_string();
            assert!(err.contains(key), "{set}: {err}");
        }
    }

    #[test]
    fn architecture_rules_come_from_the_model_crate_keyed_here() {
        let shape = "model.architecture={vocab_size: 8, d_model: 4, d_kv: 2, d_ff: 8, \
                     num_layers: 1, num_heads: 2}";
        let base = ["model.init_from=null", "model.tokenizer=tok", shape];
        let c = parse(MINIMAL, &base).unwrap();
        let arch = c.model.architecture.unwrap();
        assert_eq!(arch.relative_attention_num_buckets, 32);
        assert_eq!(arch.dropout_rate, 0.1);
        assert_eq!(arch.feed_forward_proj, "relu");
        for (set, key, says) in [
            (
                "model.architecture.d_model=0",
                "model.architecture.d_model",
                "must be positive",
            ),
            (
                "model.architecture.dropout_rate=1.5",
                "model.architecture.dropout_rate",
                "1.5 is not in [0, 1)",
            ),
            (
                "model.architecture.feed_forward_proj=gated-wobble",
                "model.architecture.feed_forward_proj",
                "wobble",
            ),
        ] {
            let mut sets = base.to_vec();
            sets.push(set);
            let err = parse(MINIMAL, &sets).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{set}: {err}");
        }
    }

    #[test]
    fn schema_options_that_cannot_be_honoured_are_refused() {
        for (set, key, says) in [
            (
                "data.schema.format=create_table",
                "data.schema.format",
                "compact",
            ),
            (
                "data.schema.sample_values=1",
                "data.schema.sample_values",
                "0 (none) or 2",
            ),
            (
                "data.schema.sample_values=5",
                "data.schema.sample_values",
                "0 (none) or 2",
            ),
            (
                "data.schema.max_value_chars=20",
                "data.schema.max_value_chars",
                "40",
            ),
        ] {
            let err = parse(MINIMAL, &[set]).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{set}: {err}");
        }
        let err = parse(
            MINIMAL,
            &[
                "data.schema.sample_values=0",
                "data.schema.values_in_question_only=true",
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("values_in_question_only"), "{err}");
    }

    #[test]
    fn execution_accuracy_settings_are_checked_at_load() {
        let dbs = tempfile::tempdir().unwrap();
        let set_dbs = format!("data.databases={}", dbs.path().display());
        // Off by default; the best metric is then the validation loss.
        let c = parse(MINIMAL, &[]).unwrap();
        assert_eq!(c.eval.exec_sample, 0);
        assert_eq!(c.eval.resolved_best_metric(), BestMetricKind::ValLoss);
        assert_eq!(c.eval.resolved_max_new_tokens(&c.data), 128);
        let c = parse(
            MINIMAL,
            &[
                &set_dbs,
                "eval.exec_sample=50",
                "eval.rule=bird",
                "eval.max_new_tokens=64",
            ],
        )
        .unwrap();
        assert_eq!(c.eval.resolved_best_metric(), BestMetricKind::ExecAccuracy);
        assert_eq!(c.eval.rule, Rule::Bird);
        assert_eq!(c.eval.resolved_max_new_tokens(&c.data), 64);
        let c = parse(
            MINIMAL,
            &[&set_dbs, "eval.exec_sample=50", "eval.best_metric=val_loss"],
        )
        .unwrap();
        assert_eq!(c.eval.resolved_best_metric(), BestMetricKind::ValLoss);

        for (sets, key, says) in [
            (vec!["eval.exec_sample=5"], "data.databases", "required"),
            (
                vec!["eval.exec_sample=5", "data.databases=/nonexistent/dbs"],
                "data.databases",
                "/nonexistent/dbs is not a folder",
            ),
            (
                vec!["eval.best_metric=exec_accuracy"],
                "eval.best_metric",
                "exec_sample",
            ),
            (
                vec!["eval.best_metric=val_loss", "eval.val_sample_size=0"],
                "eval.best_metric",
                "val_sample_size",
            ),
            (
                vec!["eval.best_metric=accuracy"],
                "eval.best_metric",
                "unknown variant",
            ),
            (vec!["eval.rule=strict"], "eval.rule", "unknown variant"),
            (vec!["eval.timeout_s=0"], "eval.timeout_s", "positive"),
            (vec!["eval.timeout_s=1e20"], "eval.timeout_s", "at most"),
            (
                vec!["eval.max_new_tokens=0"],
                "eval.max_new_tokens",
                "at least 1",
            ),
            (vec!["eval.batch_size=0"], "eval.batch_size", "at least 1"),
        ] {
            let err = parse(MINIMAL, &sets).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{sets:?}: {err}");
        }
    }

    #[test]
    fn bad_sources_are_refused_naming_the_key() {
        let text = two_sources();
        let dbs = tempfile::tempdir().unwrap();
        let set_dbs = format!("data.sources.0.databases={}", dbs.path().display());
        for (sets, key, says) in [
            (vec!["data.processed_dir=p"], "data.sources", "not both"),
            (vec!["data.sources=[]"], "data.processed_dir", "required"),
            (
                vec!["data.sources.1.name=synsql"],
                "data.sources[1].name",
                "also the name of data.sources[0]",
            ),
            (
                vec!["data.sources.0.weight=-1"],
                "data.sources[0].weight",
                "not negative",
            ),
            (
                vec!["data.sources.0.weight=0", "data.sources.1.weight=0"],
                "data.sources",
                "positive weight",
            ),
            (
                vec!["data.sources.0.wieght=2"],
                "data.sources[0].wieght",
                "unknown field",
            ),
            (vec!["data.databases=dbs"], "data.databases", "its own"),
            (
                vec!["eval.source=bird"],
                "eval.source",
                "no source is named `bird`",
            ),
            (
                vec!["curriculum.phases.1.sources={bird: 1}"],
                "curriculum.phases[1].sources.bird",
                "no source",
            ),
            (
                vec!["curriculum.phases.1.sources={synsql: 0, spider: 0}"],
                "curriculum.phases[1].sources",
                "weight 0",
            ),
            (
                vec![&set_dbs, "eval.exec_sample=5", "eval.source=spider"],
                "data.sources[1].databases",
                "required",
            ),
            (
                vec![
                    "eval.exec_sample=5",
                    "data.sources.1.databases=/nonexistent/dbs",
                ],
                "data.sources[1].databases",
                "not a folder",
            ),
        ] {
            let err = parse(&text, &sets).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{sets:?}: {err}");
        }
        let c = parse(&text, &[&set_dbs, "eval.exec_sample=5"]).unwrap();
        assert_eq!(c.eval.exec_sample, 5, "some source has databases");
    }
}
