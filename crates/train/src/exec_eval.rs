//! Execution accuracy during training: a fixed, seeded sample of validation
//! examples is decoded by the model being trained and scored in the SQLite
//! sandbox by the same scorer as `text2sql eval`.
//!
//! The encoder inputs are built once, exactly as `ask` and `eval --model`
//! build them from the checkpoint's saved `text2sql_input.json` (no gold SQL
//! steering the schema pruning), and decoding follows
//! [`text2sql_model::SqlModel::generate_batch_for`] (constrained unless `eval.constrain` is false): so on the same examples the
//! accuracy logged here is the one `text2sql eval --model runs/NAME/best`
//! reports.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use text2sql_data::loader::SplitReader;
use text2sql_data::reader::Tier;
use text2sql_data::schema::DatabaseSchema;
use text2sql_data::serialize::SchemaSymbols;
use text2sql_data::splitmix::GOLDEN_GAMMA;
use text2sql_model::tokenizer::Tokenizer;
use text2sql_model::{
    decode_sql, generate_in_batches, table_links, Constraint, GenerationConfig, InputFormat,
    SymbolLink, T5Model, TokenTexts,
};
use text2sql_sql::{evaluate, EvalExample, EvalOptions, EvalReport, SchemaIndex, SqlChecker};

use crate::error::{Result, TrainError};
use text2sql_data::database_path;

/// One sampled validation example, ready to decode and score.
struct SampleItem {
    /// Its encoder input, as `ask` / `eval --model` build it.
    source: String,
    /// Everything but the candidates, which each evaluation fills in.
    example: EvalExample,
    /// Its database's names, for constrained decoding.
    schema: Arc<SchemaIndex>,
    /// Its schema symbols, when the format uses them (as `SqlModel` does).
    symbols: Option<SchemaSymbols>,
    /// The tables its question names, with a bonus of 1 per word (scaled by
    /// the generation's `table_link_bonus` when decoding).
    table_words: Vec<SymbolLink>,
}

/// The validation examples scored at every evaluation.
pub struct ExecSample {
    items: Vec<SampleItem>,
    /// Each token's text when decoding is constrained (`eval.constrain`,
    /// on by default as in `ask` and `eval --model`); None without.
    token_texts: Option<TokenTexts>,
}

/// How many of `n` examples each tier gets, for tiers of `sizes` rows:
/// in proportion to their size (largest remainder, ties to the earlier
/// tier), except that every non-empty tier gets at least one when `n` is at
/// least the number of non-empty tiers, so each tier has an accuracy curve.
/// Asking for more than there are takes everything.
pub fn allocate(sizes: &[u64], n: u64) -> Vec<u64> {
    let total: u64 = sizes.iter().sum();
    if n >= total {
        return sizes.to_vec();
    }
    let share = |size: u64| (u128::from(n) * u128::from(size), u128::from(total));
    let mut quota: Vec<u64> = sizes
        .iter()
        .map(|&size| {
            let (num, den) = share(size);
            (num / den) as u64
        })
        .collect();
    let mut left = n - quota.iter().sum::<u64>();
    let mut by_remainder: Vec<usize> = (0..sizes.len()).collect();
    by_remainder.sort_by(|&a, &b| {
        let (ra, rb) = (share(sizes[a]), share(sizes[b]));
        (rb.0 % rb.1).cmp(&(ra.0 % ra.1)).then(a.cmp(&b))
    });
    for &t in &by_remainder {
        if left == 0 {
            break;
        }
        if quota[t] < sizes[t] {
            quota[t] += 1;
            left -= 1;
        }
    }
    let non_empty = sizes.iter().filter(|&&s| s > 0).count() as u64;
    if n >= non_empty {
        for t in 0..sizes.len() {
            if sizes[t] > 0 && quota[t] == 0 {
                // Taken from the largest share, which keeps at least one.
                if let Some(donor) = (0..sizes.len())
                    .filter(|&d| quota[d] > 1)
                    .max_by_key(|&d| (quota[d], std::cmp::Reverse(d)))
                {
                    quota[donor] -= 1;
                    quota[t] = 1;
                }
            }
        }
    }
    quota
}

/// The rows (ascending) of a split chosen for execution accuracy. The split
/// is stored in row groups of one tier each (`groups`: tier and row count,
/// in file order); each tier gets its [`allocate`]d share, drawn uniformly
/// from its rows by a generator seeded by `seed` and the tier.
pub fn select_rows(groups: &[(Option<Tier>, u64)], n: usize, seed: u64) -> Vec<u64> {
    let mut tiers: Vec<Option<Tier>> = groups.iter().map(|g| g.0).collect();
    tiers.sort();
    tiers.dedup();
    // Each tier's rows as (first row, count) ranges in file order.
    let mut ranges: Vec<Vec<(u64, u64)>> = vec![Vec::new(); tiers.len()];
    let mut start = 0u64;
    for &(tier, rows) in groups {
        if let Ok(t) = tiers.binary_search(&tier) {
            ranges[t].push((start, rows));
        }
        start += rows;
    }
    let sizes: Vec<u64> = ranges
        .iter()
        .map(|r| r.iter().map(|(_, n)| n).sum())
        .collect();
    let quotas = allocate(&sizes, n as u64);
    let mut chosen = Vec::with_capacity(n);
    for (t, (&size, &quota)) in sizes.iter().zip(&quotas).enumerate() {
        let tier_key = tiers[t].map_or(u64::MAX, |tier| tier as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ tier_key.wrapping_mul(GOLDEN_GAMMA));
        let picks: Vec<u64> = if quota >= size {
            (0..size).collect()
        } else {
            rand::seq::index::sample(&mut rng, size as usize, quota as usize)
                .into_iter()
                .map(|i| i as u64)
                .collect()
        };
        for k in picks {
            chosen.push(row_of(&ranges[t], k));
        }
    }
    chosen.sort_unstable();
    chosen
}

/// The file row of a tier's `k`-th row.
fn row_of(ranges: &[(u64, u64)], mut k: u64) -> u64 {
    for &(start, rows) in ranges {
        if k < rows {
            return start + k;
        }
        k -= rows;
    }
    // `k` is below the tier's size by construction.
    unreachable!("row {k} is past the tier's rows")
}

impl ExecSample {
    /// Reads the `n` sampled examples of `split` and builds their inputs
    /// with `format`. Every example's database must be in `databases`: a
    /// missing one is an error, not a silently smaller sample.
    pub fn load(
        split: &SplitReader,
        schemas: &HashMap<String, DatabaseSchema>,
        databases: &Path,
        n: usize,
        seed: u64,
        format: &InputFormat,
        tokenizer: &Tokenizer,
    ) -> Result<ExecSample> {
        let groups: Vec<(Option<Tier>, u64)> = (0..split.row_group_count())
            .filter_map(|g| split.row_group_info(g))
            .collect();
        let mut items = Vec::new();
        for row in select_rows(&groups, n, seed) {
            let record = split.get(row)?;
            let schema = schemas.get(&record.db_id).ok_or_else(|| {
                TrainError::Dataset(format!(
                    "validation example {} names database `{}`, which schemas.parquet lacks",
                    record.id, record.db_id
                ))
            })?;
            let db_path = database_path(databases, &record.db_id);
            if !db_path.is_file() {
                return Err(TrainError::Dataset(format!(
                    "eval.exec_sample: validation example {} needs database `{}`, but {} does \
                     not exist (is data.databases the folder the data was prepared from?)",
                    record.id,
                    record.db_id,
                    db_path.display()
                )));
            }
            let symbols = format.symbols(schema, tokenizer, None);
            let source = format
                .source_text(
                    &record.question,
                    &record.external_knowledge,
                    schema,
                    symbols.as_ref(),
                    None,
                    tokenizer,
                )
                .text;
            let table_words = symbols.as_ref().map_or_else(Vec::new, |symbols| {
                table_links(&record.question, schema, symbols, tokenizer, 1.0)
            });
            items.push(SampleItem {
                schema: Arc::new(SchemaIndex::new(schema)),
                symbols,
                table_words,
                source,
                example: EvalExample::for_record(record, databases, Vec::new()),
            });
        }
        Ok(ExecSample {
            items,
            token_texts: Some(TokenTexts::new(tokenizer)),
        })
    }

    /// With `constrain` false the sample decodes without the SQL checker.
    pub fn constrained(mut self, constrain: bool) -> Self {
        if !constrain {
            self.token_texts = None;
        }
        self
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Decodes the sample with `model` in batches of `batch_size` and scores
    /// it. `generation` carries the beams and length; the tokens are read
    /// back with `tokenizer` as [`text2sql_model::SqlModel`] does.
    pub fn evaluate(
        &self,
        model: &T5Model,
        tokenizer: &Tokenizer,
        generation: &GenerationConfig,
        batch_size: usize,
        options: &EvalOptions,
    ) -> Result<EvalReport> {
        let model = inference_copy(model)?;
        let inputs = self
            .items
            .iter()
            .map(|item| tokenizer.encode(&item.source, true))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let constraint = self.token_texts.as_ref().map(|texts| {
            let checkers = self
                .items
                .iter()
                .map(|item| SqlChecker::new(item.schema.clone()))
                .collect();
            let symbols: Vec<_> = self
                .items
                .iter()
                .map(|item| item.symbols.as_ref())
                .collect();
            let links = self
                .items
                .iter()
                .map(|item| {
                    let scale = |link: &SymbolLink| SymbolLink {
                        bonus: link.bonus * generation.table_link_bonus,
                        ..*link
                    };
                    item.table_words.iter().map(scale).collect()
                })
                .collect();
            Constraint::new(texts, tokenizer, checkers, &symbols).with_table_links(links)
        });
        let outputs = generate_in_batches(
            &model,
            generation,
            &inputs,
            constraint.as_ref(),
            batch_size.max(1),
            &mut |_| {},
        )?;
        let mut examples = Vec::with_capacity(self.items.len());
        for (item, hypotheses) in self.items.iter().zip(outputs) {
            let mut candidates = Vec::with_capacity(hypotheses.len());
            for hypothesis in hypotheses {
                candidates.push(decode_sql(
                    tokenizer,
                    &hypothesis.tokens,
                    item.symbols.as_ref(),
                )?);
            }
            examples.push(EvalExample {
                candidates,
                ..item.example.clone()
            });
        }
        evaluate(&examples, options, &|| {}).map_err(|e| TrainError::Dataset(e.to_string()))
    }
}

/// The model's weights as plain f32 tensors (shared, not copied, when
/// training in f32): no gradient tracking while decoding, and the same
/// precision as `SqlModel::load`, which reads checkpoints in f32.
fn inference_copy(model: &T5Model) -> Result<T5Model> {
    let device: Device = model.device().clone();
    let tensors = model
        .named_tensors()
        .into_iter()
        .map(|(name, tensor)| Ok((name, tensor.detach().to_dtype(DType::F32)?)))
        .collect::<Result<HashMap<_, _>>>()?;
    Ok(T5Model::new(
        VarBuilder::from_tensors(tensors, DType::F32, &device),
        model.config(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Option<Tier>; 4] = [
        Some(Tier::Simple),
        Some(Tier::Moderate),
        Some(Tier::Complex),
        Some(Tier::HighlyComplex),
    ];

    #[test]
    fn shares_follow_tier_sizes_and_sum_to_the_request() {
        assert_eq!(allocate(&[500, 300, 150, 50], 100), vec![50, 30, 15, 5]);
        // 10 * (1/3) each: the remainder goes to the earliest tiers.
        assert_eq!(allocate(&[30, 30, 30], 10), vec![4, 3, 3]);
        for n in 0..40 {
            let q = allocate(&[97, 3, 11, 0, 40], n);
            assert_eq!(q.iter().sum::<u64>(), n, "{n}: {q:?}");
            assert!(q.iter().zip([97, 3, 11, 0, 40]).all(|(a, s)| *a <= s));
        }
    }

    #[test]
    fn every_tier_is_represented_when_the_sample_allows() {
        // 1 % of 5 is 0.05 rows: proportion alone would leave the tier out.
        assert_eq!(allocate(&[495, 5], 10), vec![9, 1]);
        assert_eq!(allocate(&[1000, 1, 1, 1], 4), vec![1, 1, 1, 1]);
        // Fewer picks than tiers: proportion decides, nothing is invented.
        assert_eq!(allocate(&[1000, 1, 1, 1], 2).iter().sum::<u64>(), 2);
        // More than there are: everything.
        assert_eq!(allocate(&[3, 2], 10), vec![3, 2]);
    }

    #[test]
    fn selection_is_seeded_stratified_and_stable() {
        // Tier-grouped row groups as `prepare` writes them, one tier split
        // over two groups.
        let groups = [
            (ALL[0], 400),
            (ALL[1], 300),
            (ALL[1], 100),
            (ALL[2], 150),
            (ALL[3], 50),
        ];
        let rows = select_rows(&groups, 100, 7);
        assert_eq!(rows.len(), 100);
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        let in_range = |lo: u64, hi: u64| rows.iter().filter(|&&r| r >= lo && r < hi).count();
        assert_eq!(
            [
                in_range(0, 400),
                in_range(400, 800),
                in_range(800, 950),
                in_range(950, 1000)
            ],
            [40, 40, 15, 5]
        );
        // The second group of the Moderate tier is reachable.
        assert!(in_range(700, 800) > 0, "{rows:?}");
        // Same seed, same rows (every eval and a resumed run score the same
        // examples); another seed, another sample; not just the first rows.
        assert_eq!(select_rows(&groups, 100, 7), rows);
        assert_ne!(select_rows(&groups, 100, 8), rows);
        assert_ne!(rows[..40], (0..40).collect::<Vec<u64>>()[..]);
        // A split without tiers (Spider) is one stratum.
        let untiered = select_rows(&[(None, 20)], 5, 1);
        assert_eq!(untiered.len(), 5);
        assert!(untiered.iter().all(|&r| r < 20));
        assert_eq!(select_rows(&[(None, 3)], 5, 1), vec![0, 1, 2]);
        assert!(select_rows(&groups, 0, 7).is_empty());
    }
}
