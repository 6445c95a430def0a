//! Question in, SQL out: a checkpoint folder's model, tokenizer, input
//! format and generation settings behind one call, shared by `ask`, `eval`
//! and `serve` so that all three build the model's input exactly as training
//! did (see [`InputFormat`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use text2sql_data::schema::DatabaseSchema;
use text2sql_data::serialize::SchemaSymbols;
use text2sql_sql::{SchemaIndex, Skeleton, SkeletonBank, SqlChecker};

use crate::checkpoint::{expected_tensors, GENERATION_CONFIG_FILE};
use crate::error::{ModelError, Result};
use crate::fill_links::FillLinks;
use crate::generate::{generate_in_batches, Constraint, GenerationConfig, TokenTexts};
use crate::input::{decode_sql, InputFormat};
use crate::t5::{T5Architecture, T5Config, T5Model};
use crate::table_links::{table_links, SymbolLink};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// One generated query with its score (greedy: the sum of token
/// log-probabilities; beam search: that sum length-normalised).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneratedSql {
    pub sql: String,
    pub score: f32,
}

/// A question about a known schema, ready for the model: its encoder
/// input, built as training built it ([`SqlModel::input`]).
#[derive(Debug, Clone)]
pub struct SchemaInput<'a> {
    pub source: String,
    /// The question alone, which decoding links to the schema's tables
    /// (see [`crate::table_links`]).
    pub question: String,
    pub schema: &'a DatabaseSchema,
}

/// What constrained decoding holds each input to: its checker, the tables
/// and the fill links of its question (one entry per input).
#[derive(Default)]
struct InputChecks {
    checkers: Vec<SqlChecker>,
    table_links: Vec<Vec<SymbolLink>>,
    fill_links: Vec<FillLinks>,
}

/// A checkpoint ready to answer questions.
pub struct SqlModel {
    model: T5Model,
    tokenizer: Tokenizer,
    format: InputFormat,
    generation: GenerationConfig,
    dir: PathBuf,
    /// Constrained decoding where a schema is known (on by default).
    constrain: bool,
    /// Each token's text, built on the first constrained generation.
    token_texts: OnceLock<Arc<TokenTexts>>,
    /// Training questions whose query shapes constrained decoding keeps
    /// to, and how many shapes a question gets (see [`SkeletonBank`]).
    skeletons: Option<(Arc<SkeletonBank>, usize)>,
}

fn tokenizer_error(dir: &Path) -> impl Fn(TokenizerError) -> ModelError + '_ {
    move |error| ModelError::Checkpoint {
        path: dir.to_path_buf(),
        message: error.to_string(),
    }
}

impl SqlModel {
    /// Loads `dir` (config.json, weights, tokenizer.json or spiece.model,
    /// and optionally text2sql_input.json and generation_config.json) in f32
    /// for inference on `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let model = T5Model::load(dir, DType::F32, device)?;
        let tokenizer = Tokenizer::from_dir(dir).map_err(tokenizer_error(dir))?;
        if tokenizer.vocab_size() > model.config().shape.vocab_size {
            return Err(ModelError::Checkpoint {
                path: dir.to_path_buf(),
                message: format!(
                    "the tokenizer has {} ids but the model only {} embeddings: \
                     they do not belong together",
                    tokenizer.vocab_size(),
                    model.config().shape.vocab_size
                ),
            });
        }
        let format = InputFormat::load(dir)?;
        format
            .check_tokenizer(&tokenizer)
            .map_err(|e| ModelError::Checkpoint {
                path: dir.to_path_buf(),
                message: e.to_string(),
            })?;
        let base = GenerationConfig::for_model(model.config());
        let generation_file = dir.join(GENERATION_CONFIG_FILE);
        let mut generation = if generation_file.is_file() {
            GenerationConfig::from_file(&generation_file, &base)?
        } else {
            base
        };
        // The format knows how long the SQL the model was trained on gets.
        generation.max_new_tokens = format.max_target_tokens.max(1);
        Ok(Self {
            model,
            tokenizer,
            format,
            generation,
            dir: dir.to_path_buf(),
            constrain: true,
            token_texts: OnceLock::new(),
            skeletons: None,
        })
    }

    /// Turns constrained decoding (only SQL that parses and names real
    /// tables and columns of the question's schema) on or off; on by default.
    pub fn set_constrained(&mut self, constrain: bool) {
        self.constrain = constrain;
    }

    pub fn constrained(&self) -> bool {
        self.constrain
    }

    /// The query shapes constrained decoding holds `question` to (see
    /// [`SqlModel::set_skeletons`]); empty when it is free.
    pub fn query_shapes(&self, question: &str, schema: &DatabaseSchema) -> Vec<Skeleton> {
        match &self.skeletons {
            Some((bank, count)) if self.constrain => bank.suggest(question, schema, *count),
            _ => Vec::new(),
        }
    }

    /// Holds constrained decoding to the `count` query shapes `bank`
    /// suggests for each question (see [`SkeletonBank::suggest`]); a
    /// question the bank has nothing for is decoded freely.
    pub fn set_skeletons(&mut self, bank: Arc<SkeletonBank>, count: usize) {
        self.skeletons = (count > 0).then_some((bank, count));
    }

    /// The decoding settings (`max_new_tokens`, `length_penalty`, ...).
    pub fn generation_mut(&mut self) -> &mut GenerationConfig {
        &mut self.generation
    }

    /// Each token's text, as constrained decoding appends it.
    pub fn token_texts(&self) -> Arc<TokenTexts> {
        self.token_texts
            .get_or_init(|| Arc::new(TokenTexts::new(&self.tokenizer)))
            .clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn format(&self) -> &InputFormat {
        &self.format
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The encoder input for a question about `schema`, as training built it.
    pub fn source_text(
        &self,
        question: &str,
        external_knowledge: &str,
        schema: &DatabaseSchema,
    ) -> String {
        let symbols = self.symbols(schema);
        self.format
            .source_text(
                question,
                external_knowledge,
                schema,
                symbols.as_ref(),
                None,
                &self.tokenizer,
            )
            .text
    }

    /// [`SqlModel::source_text`] with what decoding needs besides it.
    pub fn input<'a>(
        &self,
        question: &str,
        external_knowledge: &str,
        schema: &'a DatabaseSchema,
    ) -> SchemaInput<'a> {
        SchemaInput {
            source: self.source_text(question, external_knowledge, schema),
            question: question.to_string(),
            schema,
        }
    }

    /// The schema symbols of `schema` when the model uses them.
    fn symbols(&self, schema: &DatabaseSchema) -> Option<SchemaSymbols> {
        self.format.symbols(schema, &self.tokenizer, None)
    }

    /// Up to `beams` queries for the question, best first (1 = greedy).
    pub fn generate_sql(
        &self,
        question: &str,
        external_knowledge: &str,
        schema: &DatabaseSchema,
        beams: usize,
    ) -> Result<Vec<GeneratedSql>> {
        let input = self.input(question, external_knowledge, schema);
        let mut all = self.generate_batch_for(&[input], beams)?;
        Ok(all.pop().unwrap_or_default())
    }

    /// [`SqlModel::generate_batch`] for inputs about known schemas:
    /// constrained to SQL valid on each schema unless turned off.
    pub fn generate_batch_for(
        &self,
        inputs: &[SchemaInput<'_>],
        beams: usize,
    ) -> Result<Vec<Vec<GeneratedSql>>> {
        self.generate_in_batches_for(inputs, beams, inputs.len().max(1), &mut |_| {})
    }

    /// [`SqlModel::generate_batch_for`] for many inputs, `batch_size` at a
    /// time through the model (see [`crate::generate_in_batches`]);
    /// `on_batch` receives the inputs decoded so far after each batch.
    pub fn generate_in_batches_for(
        &self,
        inputs: &[SchemaInput<'_>],
        beams: usize,
        batch_size: usize,
        on_batch: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<GeneratedSql>>> {
        let symbols: Vec<Option<SchemaSymbols>> = inputs
            .iter()
            .map(|input| self.symbols(input.schema))
            .collect();
        let constrained = self.constrain.then(|| {
            let mut checks = InputChecks::default();
            for (input, symbols) in inputs.iter().zip(&symbols) {
                checks.checkers.push(
                    SqlChecker::new(Arc::new(SchemaIndex::new(input.schema)))
                        .with_skeletons(self.query_shapes(&input.question, input.schema)),
                );
                let (tables, fill) = match symbols {
                    Some(symbols) => (
                        table_links(
                            &input.question,
                            input.schema,
                            symbols,
                            &self.tokenizer,
                            self.generation.table_link_bonus,
                        ),
                        if self.generation.fill_links {
                            FillLinks::new(&input.question, input.schema, symbols, &self.tokenizer)
                        } else {
                            FillLinks::default()
                        },
                    ),
                    None => (Vec::new(), FillLinks::default()),
                };
                checks.table_links.push(tables);
                checks.fill_links.push(fill);
            }
            checks
        });
        let sources: Vec<&str> = inputs.iter().map(|input| input.source.as_str()).collect();
        self.run(&sources, beams, constrained, &symbols, batch_size, on_batch)
    }

    /// Generation from a ready-made encoder input (no schema serialization).
    pub fn generate_from_raw(&self, source_text: &str, beams: usize) -> Result<Vec<GeneratedSql>> {
        let mut all = self.generate_batch(&[source_text], beams)?;
        Ok(all.pop().unwrap_or_default())
    }

    /// [`SqlModel::generate_from_raw`] for many inputs at once (one padded
    /// batch through the encoder and decoder), in input order. Without a
    /// schema, a model with schema symbols writes them as they are.
    pub fn generate_batch<S: AsRef<str>>(
        &self,
        source_texts: &[S],
        beams: usize,
    ) -> Result<Vec<Vec<GeneratedSql>>> {
        self.run(
            source_texts,
            beams,
            None,
            &[],
            source_texts.len().max(1),
            &mut |_| {},
        )
    }

    /// `symbols` (per input, or empty) map the model's schema symbols back
    /// to names, for the checker and in the SQL returned; `constrained`
    /// holds each input's checker, table links and fill links.
    fn run<S: AsRef<str>>(
        &self,
        source_texts: &[S],
        beams: usize,
        constrained: Option<InputChecks>,
        symbols: &[Option<SchemaSymbols>],
        batch_size: usize,
        on_batch: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<GeneratedSql>>> {
        if beams == 0 {
            return Err(ModelError::Invalid("beams must be at least 1".into()));
        }
        let inputs = source_texts
            .iter()
            .map(|text| Ok(self.tokenizer.encode(text.as_ref(), true)?))
            .collect::<Result<Vec<_>>>()?;
        let config = GenerationConfig {
            num_beams: beams,
            ..self.generation.clone()
        };
        let texts = constrained.as_ref().map(|_| self.token_texts());
        let constraint = match (&texts, constrained) {
            (Some(texts), Some(checks)) => {
                let symbols: Vec<_> = symbols.iter().map(Option::as_ref).collect();
                Some(
                    Constraint::new(texts, &self.tokenizer, checks.checkers, &symbols)
                        .with_table_links(checks.table_links)
                        .with_fill_links(checks.fill_links),
                )
            }
            _ => None,
        };
        let outputs = generate_in_batches(
            &self.model,
            &config,
            &inputs,
            constraint.as_ref(),
            batch_size,
            on_batch,
        )?;
        outputs
            .into_iter()
            .enumerate()
            .map(|(input, hypotheses)| {
                let symbols = symbols.get(input).and_then(Option::as_ref);
                hypotheses
                    .into_iter()
                    .map(|hypothesis| {
                        let sql = decode_sql(&self.tokenizer, &hypothesis.tokens, symbols)?;
                        Ok(GeneratedSql {
                            sql,
                            score: hypothesis.score,
                        })
                    })
                    .collect()
            })
            .collect()
    }
}

/// Writes a checkpoint folder holding a tiny T5 with seeded random weights,
/// `tokenizer` and `format`: deterministic fixtures for tests of everything
/// downstream of the model (its SQL is gibberish).
#[doc(hidden)]
pub fn write_random_checkpoint(
    dir: &Path,
    tokenizer: &Tokenizer,
    format: &InputFormat,
    seed: u64,
) -> Result<()> {
    let config = T5Config {
        shape: T5Architecture {
            vocab_size: tokenizer.vocab_size(),
            d_model: 16,
            d_kv: 4,
            d_ff: 32,
            num_layers: 1,
            num_heads: 2,
            ..T5Architecture::t5_small()
        },
        ..T5Config::t5_small()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = std::collections::HashMap::new();
    for (name, shape) in expected_tensors(&config)? {
        let count = shape.iter().product::<usize>();
        let values: Vec<f32> = (0..count).map(|_| rng.random_range(-0.5..0.5)).collect();
        tensors.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?);
    }
    let model = T5Model::new(
        VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
        &config,
    )?;
    let staging = tempfile_dir(dir)?;
    tokenizer
        .save(&staging)
        .map_err(tokenizer_error(&staging))?;
    format.save(&staging)?;
    let extra = std::fs::read_dir(&staging)
        .map_err(|source| ModelError::Io {
            path: staging.clone(),
            source,
        })?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|source| ModelError::Io {
            path: staging.clone(),
            source,
        })?;
    let saved = model.save_pretrained(dir, &extra);
    let _ = std::fs::remove_dir_all(&staging);
    saved
}

fn tempfile_dir(dir: &Path) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let staging = dir
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!(".{name}.extra-{}", std::process::id()));
    std::fs::create_dir_all(&staging).map_err(|source| ModelError::Io {
        path: staging.clone(),
        source,
    })?;
    Ok(staging)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::{train_unigram, TrainOptions};
    use text2sql_data::schema::{Column, Table};

    fn tokenizer() -> Tokenizer {
        let lines = [
            "How many singers are there ? | concert | singer : singer_id , name , age",
            "SELECT count(*) FROM singer",
            "SELECT name FROM singer WHERE age > 30 ORDER BY age DESC",
            "What are the names of singers older than 30 ?",
        ];
        let texts = lines.iter().cycle().take(200).map(|s| s.to_string());
        train_unigram(
            texts,
            &TrainOptions {
                vocab_size: 400,
                ..TrainOptions::default()
            },
        )
        .unwrap()
    }

    fn schema() -> DatabaseSchema {
        let column = |name: &str, ty: &str| Column {
            name: name.to_string(),
            description: name.to_string(),
            data_type: ty.to_string(),
            sample_values: Vec::new(),
        };
        DatabaseSchema {
            db_id: "concert".into(),
            tables: vec![Table {
                name: "singer".into(),
                natural_name: "singer".into(),
                columns: vec![column("singer_id", "number"), column("name", "text")],
                primary_key: vec![0],
            }],
            foreign_keys: Vec::new(),
            ddls: Vec::new(),
            values: None,
        }
    }

    #[test]
    fn random_checkpoint_generates_deterministically_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let model_dir = dir.path().join("model");
        let format = InputFormat {
            max_source_tokens: 64,
            max_target_tokens: 12,
            ..InputFormat::default()
        };
        write_random_checkpoint(&model_dir, &tokenizer(), &format, 7).unwrap();
        let model = SqlModel::load(&model_dir, &Device::Cpu).unwrap();
        assert_eq!(model.format(), &format);

        let schema = schema();
        let expected_source = format
            .source_text(
                "How many singers?",
                "",
                &schema,
                None,
                None,
                model.tokenizer(),
            )
            .text;
        assert_eq!(
            model.source_text("How many singers?", "", &schema),
            expected_source
        );
        assert!(expected_source.contains("singer"), "{expected_source}");

        let greedy = model
            .generate_sql("How many singers?", "", &schema, 1)
            .unwrap();
        assert_eq!(greedy.len(), 1);
        let beams = model
            .generate_sql("How many singers?", "", &schema, 3)
            .unwrap();
        assert_eq!(beams.len(), 3);
        assert!(beams.windows(2).all(|w| w[0].score >= w[1].score));
        // Same input, same output: from the source text, and reloaded.
        assert_eq!(
            model
                .generate_batch_for(&[model.input("How many singers?", "", &schema)], 1)
                .unwrap()[0],
            greedy
        );
        // Constrained by default; off, it is plain decoding of the raw text.
        assert!(model.constrained());
        let mut free = SqlModel::load(&model_dir, &Device::Cpu).unwrap();
        free.set_constrained(false);
        assert_eq!(
            free.generate_sql("How many singers?", "", &schema, 1)
                .unwrap(),
            model.generate_from_raw(&expected_source, 1).unwrap()
        );
        let again = SqlModel::load(&model_dir, &Device::Cpu).unwrap();
        assert_eq!(
            again
                .generate_sql("How many singers?", "", &schema, 3)
                .unwrap(),
            beams
        );
        // A batch answers each input as alone.
        let batch = model
            .generate_batch_for(
                &[
                    model.input("How many singers?", "", &schema),
                    model.input("SELECT name FROM singer", "", &schema),
                ],
                1,
            )
            .unwrap();
        assert_eq!(batch.len(), 2);
        // Padding changes the logits in the last float digits only.
        assert_eq!(batch[0][0].sql, greedy[0].sql);
        assert!((batch[0][0].score - greedy[0].score).abs() < 1e-3);
        assert!(model.generate_batch(&["x"], 0).is_err());
    }

    #[test]
    fn a_folder_without_tokenizer_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let model_dir = dir.path().join("model");
        write_random_checkpoint(&model_dir, &tokenizer(), &InputFormat::default(), 1).unwrap();
        std::fs::remove_file(model_dir.join("tokenizer.json")).unwrap();
        let err = SqlModel::load(&model_dir, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("model"), "{err}");
        assert!(err.contains("tokenizer.json"), "{err}");
    }
}
