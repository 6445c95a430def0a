//! Predictions of a [`SqlModel`] for a prepared split (`eval --model`):
//! which records, their inputs built as the model was trained, generation
//! in batches, and the examples the scorer reads.

use std::path::Path;
use std::time::Instant;

use text2sql_data::loader::ProcessedDataset;
use text2sql_data::prepare::Split;
use text2sql_sql::{EvalExample, GenerationStats};

use crate::error::{ModelError, Result};
use crate::SqlModel;

/// Which records to predict and how.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    pub split: Split,
    /// At most this many records, evenly spread over the split.
    pub limit: Option<usize>,
    pub beams: usize,
    pub batch_size: usize,
}

/// The examples to score (candidates filled, best first) and how long
/// generation took.
#[derive(Debug)]
pub struct SplitPredictions {
    pub examples: Vec<EvalExample>,
    pub stats: GenerationStats,
}

/// Generates `model`'s candidates for the records of a prepared dataset in
/// `data_dir`, whose databases live in `db_dir`. `on_generated` receives
/// the questions finished so far and their total after each batch.
pub fn predict_split(
    model: &SqlModel,
    data_dir: &Path,
    db_dir: &Path,
    options: &PredictOptions,
    on_generated: &mut dyn FnMut(usize, usize),
) -> Result<SplitPredictions> {
    if options.beams == 0 || options.batch_size == 0 {
        return Err(ModelError::Invalid(
            "beams and batch size must be at least 1".into(),
        ));
    }
    let dataset = ProcessedDataset::open(data_dir)?;
    let schemas = dataset.schemas()?;
    let reader = dataset.split(options.split);
    let total = reader.len();
    let wanted = options.limit.map_or(total, |n| (n as u64).min(total));
    // Rows are stored grouped by tier, so the first N would all be easy
    // ones: take N evenly spread rows instead (deterministic, ascending).
    let mut records = Vec::with_capacity(wanted as usize);
    for k in 0..wanted {
        records.push(reader.get(k * total / wanted)?);
    }
    if records.is_empty() {
        return Err(ModelError::Invalid(format!(
            "{}: the {} split has no examples",
            data_dir.display(),
            options.split.as_str()
        )));
    }
    let mut inputs = Vec::with_capacity(records.len());
    for record in &records {
        let row = schemas.get(&record.db_id).ok_or_else(|| {
            ModelError::Invalid(format!(
                "{}: example {} names database `{}`, which schemas.parquet lacks",
                data_dir.display(),
                record.id,
                record.db_id
            ))
        })?;
        model
            .format()
            .check_value_index(&row.schema, &data_dir.display().to_string())?;
        inputs.push(model.input(&record.question, &record.external_knowledge, &row.schema));
    }

    let started = Instant::now();
    let questions = inputs.len();
    let candidates: Vec<Vec<String>> = model
        .generate_in_batches_for(&inputs, options.beams, options.batch_size, &mut |done| {
            on_generated(done, questions)
        })?
        .into_iter()
        .map(|beams| beams.into_iter().map(|g| g.sql).collect())
        .collect();
    let stats = GenerationStats::new(
        records.len(),
        options.beams,
        model.constrained(),
        started.elapsed().as_secs_f64(),
    );
    let examples = records
        .into_iter()
        .zip(candidates)
        .map(|(record, candidates)| EvalExample::for_record(record, db_dir, candidates))
        .collect();
    Ok(SplitPredictions { examples, stats })
}
