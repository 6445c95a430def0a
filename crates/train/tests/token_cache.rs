//! The token cache on a real prepared dataset: a sample corpus from
//! `text2sql_data::sample`, prepared, with a tokenizer trained on it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use text2sql_data::loader::ProcessedDataset;
use text2sql_data::prepare::{prepare, PrepareOptions, Split, SplitBy};
use text2sql_data::sample::{write_sample, SampleOptions};
use text2sql_data::schema::DatabaseSchema;
use text2sql_model::tokenizer::{train_unigram, Tokenizer, TrainOptions};
use text2sql_model::{Device, InputFormat};
use text2sql_train::token_cache::{CacheMeta, META_FILE, TOKEN_CACHE_DIR};
use text2sql_train::{
    CacheEvent, CacheOrigin, ExampleEncoder, TokenCache, TokenCacheOptions, TrainConfig, Trainer,
};

/// A prepared sample of 120 records (10% validation) and a tokenizer,
/// made once per test binary; tests copy the dataset before using it.
fn fixture() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static FIXTURE: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let sample = dir.path().join("sample");
        let options = SampleOptions {
            records: 120,
            ..SampleOptions::default()
        };
        write_sample(&sample, &options, &mut |_| {}).unwrap();
        let processed = dir.path().join("processed");
        let mut prep = PrepareOptions::new(
            sample.join("data.json"),
            sample.join("tables.json"),
            &processed,
        );
        prep.databases = Some(sample.join("databases"));
        prep.split_by = SplitBy::Example;
        prep.val_ratio = Some(0.1);
        prepare(&prep, &|_| {}).unwrap();

        let records: Vec<Value> =
            serde_json::from_slice(&std::fs::read(sample.join("data.json")).unwrap()).unwrap();
        let texts = records
            .iter()
            .flat_map(|r| ["question", "sql"].map(|k| r[k].as_str().unwrap().replace('\n', " ")));
        let options = TrainOptions {
            vocab_size: 400,
            ..TrainOptions::default()
        };
        let tokenizer = train_unigram(texts, &options).unwrap();
        let tok = dir.path().join("tok");
        std::fs::create_dir_all(&tok).unwrap();
        tokenizer.save(&tok).unwrap();
        (dir, processed, tok)
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// A private copy of the prepared dataset.
fn dataset_copy(dir: &Path) -> PathBuf {
    let processed = dir.join("processed");
    copy_dir(&fixture().1, &processed);
    processed
}

struct Setup {
    dataset: ProcessedDataset,
    tokenizer: Tokenizer,
    tokenizer_files: Vec<PathBuf>,
    schemas: HashMap<String, DatabaseSchema>,
    format: InputFormat,
}

impl Setup {
    fn new(processed: &Path) -> Self {
        let dataset = ProcessedDataset::open(processed).unwrap();
        let schemas = dataset
            .schemas()
            .unwrap()
            .into_iter()
            .map(|(id, row)| (id, row.schema))
            .collect();
        let tok = &fixture().2;
        Setup {
            dataset,
            tokenizer: Tokenizer::from_dir(tok).unwrap(),
            tokenizer_files: vec![tok.join("tokenizer.json")],
            schemas,
            format: InputFormat {
                max_source_tokens: 96,
                max_target_tokens: 48,
                ..InputFormat::default()
            },
        }
    }

    fn encoder(&self) -> ExampleEncoder<'_> {
        ExampleEncoder::new(
            &self.tokenizer,
            &self.format,
            &self.schemas,
            self.dataset.dir(),
        )
    }

    /// Opens (or builds) the cache; returns it with the warnings reported.
    fn open(&self, options: &TokenCacheOptions) -> (TokenCache, Vec<String>) {
        let mut warnings = Vec::new();
        let cache = TokenCache::open_or_build(
            &self.dataset,
            &self.encoder(),
            &self.tokenizer_files,
            options,
            &mut |event| {
                if let CacheEvent::Warning(w) = event {
                    warnings.push(w);
                }
            },
        )
        .unwrap();
        (cache, warnings)
    }

    /// Every row of both splits holds what the encoder makes of it, found
    /// by row and by example id.
    fn assert_matches_encoder(&self, cache: &TokenCache) {
        let encoder = self.encoder();
        for split in [Split::Train, Split::Val] {
            let reader = self.dataset.split(split);
            let tokens = cache.split(split);
            assert_eq!(tokens.len(), reader.len());
            for row in 0..reader.len() {
                let example = reader.get(row).unwrap();
                let fresh = encoder.encode(&example).unwrap();
                assert_eq!(
                    tokens.get(row).unwrap().to_encoded(),
                    fresh,
                    "{split:?} {row}"
                );
                assert_eq!(tokens.row_of_id(example.id), Some(row));
            }
            assert!(tokens.get(reader.len()).is_none());
        }
    }
}

fn split_bytes(cache: &TokenCache) -> Vec<Vec<u8>> {
    ["train.tokens", "val.tokens"]
        .map(|f| std::fs::read(cache.dir().join(f)).unwrap())
        .to_vec()
}

#[test]
fn the_cache_holds_the_encoders_ids_for_every_row_and_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(&dataset_copy(dir.path()));
    let (built, warnings) = setup.open(&TokenCacheOptions::default());
    assert!(warnings.is_empty(), "{warnings:?}");
    let total = setup.dataset.split(Split::Train).len() + setup.dataset.split(Split::Val).len();
    assert!(
        matches!(built.origin(), CacheOrigin::Built { examples, .. } if examples == total),
        "{:?}",
        built.origin()
    );
    assert!(built
        .dir()
        .starts_with(setup.dataset.dir().join(TOKEN_CACHE_DIR)));
    setup.assert_matches_encoder(&built);

    let meta: CacheMeta =
        serde_json::from_slice(&std::fs::read(built.dir().join(META_FILE)).unwrap()).unwrap();
    assert_eq!(meta.key, built.key());
    assert_eq!(meta.inputs.input_format, setup.format);
    assert_eq!(meta.token_width_bytes, 2, "a 400-token vocabulary fits u16");
    assert_eq!(meta.train.examples, setup.dataset.split(Split::Train).len());
    assert!(meta.train.longest_source <= 96 && meta.train.longest_target <= 48);

    let (reused, warnings) = setup.open(&TokenCacheOptions::default());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(reused.origin(), CacheOrigin::Reused);

    // A rebuild reports its start (where, how many) and counts up to the total.
    let (mut starts, mut last_done) = (Vec::new(), 0);
    let rebuild = TokenCacheOptions {
        rebuild: true,
        threads: None,
    };
    TokenCache::open_or_build(
        &setup.dataset,
        &setup.encoder(),
        &setup.tokenizer_files,
        &rebuild,
        &mut |event| match event {
            CacheEvent::Building { dir, examples } => starts.push((dir.to_path_buf(), examples)),
            CacheEvent::Encoded { done, total: t } => {
                assert!(done >= last_done && t == total);
                last_done = done;
            }
            CacheEvent::Warning(w) => panic!("{w}"),
        },
    )
    .unwrap();
    assert_eq!(starts, vec![(built.dir().to_path_buf(), total)]);
    assert_eq!(last_done, total);
    assert_eq!(reused.dir(), built.dir());
    setup.assert_matches_encoder(&reused);
    // Nothing half-written is left beside the cache.
    let leftovers: Vec<_> = std::fs::read_dir(setup.dataset.dir().join(TOKEN_CACHE_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn another_input_format_or_tokenizer_never_uses_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(&dataset_copy(dir.path()));
    let (first, _) = setup.open(&TokenCacheOptions::default());

    setup.format.max_source_tokens = 64;
    let (shorter, _) = setup.open(&TokenCacheOptions::default());
    assert_ne!(shorter.dir(), first.dir());
    assert!(matches!(shorter.origin(), CacheOrigin::Built { .. }));
    setup.assert_matches_encoder(&shorter);

    setup.format.external_knowledge = !setup.format.external_knowledge;
    let (other, _) = setup.open(&TokenCacheOptions::default());
    assert_ne!(other.dir(), shorter.dir());

    // The same ids from a tokenizer file with other bytes: another key.
    let tok = dir.path().join("tok");
    copy_dir(&fixture().2, &tok);
    let json = tok.join("tokenizer.json");
    let pretty: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    std::fs::write(&json, serde_json::to_vec_pretty(&pretty).unwrap()).unwrap();
    setup.tokenizer_files = vec![json];
    let (retokenized, _) = setup.open(&TokenCacheOptions::default());
    assert_ne!(retokenized.dir(), other.dir());
    assert!(matches!(retokenized.origin(), CacheOrigin::Built { .. }));
}

#[test]
fn the_files_do_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(&dataset_copy(dir.path()));
    let one = TokenCacheOptions {
        rebuild: true,
        threads: Some(1),
    };
    let (single, _) = setup.open(&one);
    let single_bytes = split_bytes(&single);
    let three = TokenCacheOptions {
        rebuild: true,
        threads: Some(3),
    };
    let (parallel, _) = setup.open(&three);
    assert!(matches!(parallel.origin(), CacheOrigin::Built { .. }));
    assert_eq!(split_bytes(&parallel), single_bytes);
    // The first mapping still reads the replaced files it was opened on.
    setup.assert_matches_encoder(&single);
}

#[test]
fn a_damaged_or_stale_cache_is_rebuilt_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(&dataset_copy(dir.path()));
    let (cache, _) = setup.open(&TokenCacheOptions::default());
    let cache_dir = cache.dir().to_path_buf();
    drop(cache);
    let train = cache_dir.join("train.tokens");

    // Cut short, as by a crash while copying the dataset.
    let bytes = std::fs::read(&train).unwrap();
    std::fs::write(&train, &bytes[..bytes.len() - 5]).unwrap();
    let (rebuilt, warnings) = setup.open(&TokenCacheOptions::default());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("cannot be used"), "{warnings:?}");
    assert!(warnings[0].contains("train.tokens"), "{warnings:?}");
    assert!(matches!(rebuilt.origin(), CacheOrigin::Built { .. }));
    setup.assert_matches_encoder(&rebuilt);
    drop(rebuilt);

    // Written by another format version.
    let mut bytes = std::fs::read(&train).unwrap();
    bytes[8] = 9;
    std::fs::write(&train, &bytes).unwrap();
    let (rebuilt, warnings) = setup.open(&TokenCacheOptions::default());
    assert!(warnings[0].contains("format version 9"), "{warnings:?}");
    setup.assert_matches_encoder(&rebuilt);
    drop(rebuilt);

    // Intact but holding other ids than this build encodes (a changed
    // serializer): the spot check notices.
    let mut bytes = std::fs::read(&train).unwrap();
    bytes[80] ^= 1;
    std::fs::write(&train, &bytes).unwrap();
    let (rebuilt, warnings) = setup.open(&TokenCacheOptions::default());
    assert!(warnings[0].contains("other ids"), "{warnings:?}");
    setup.assert_matches_encoder(&rebuilt);
    assert_eq!(rebuilt.dir(), cache_dir);
}

#[test]
fn concurrent_builders_all_end_with_the_same_valid_cache() {
    let dir = tempfile::tempdir().unwrap();
    let processed = dataset_copy(dir.path());
    let caches: Vec<(PathBuf, Vec<Vec<u8>>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let setup = Setup::new(&processed);
                    let (cache, warnings) = setup.open(&TokenCacheOptions::default());
                    assert!(warnings.is_empty(), "{warnings:?}");
                    setup.assert_matches_encoder(&cache);
                    (cache.dir().to_path_buf(), split_bytes(&cache))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(caches.windows(2).all(|w| w[0] == w[1]));
    let entries = std::fs::read_dir(processed.join(TOKEN_CACHE_DIR))
        .unwrap()
        .count();
    assert_eq!(entries, 1, "losers' staging folders are removed");
}

fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|e| {
            let value = e.get("loss").or_else(|| e.get("val_loss"))?.as_f64()?;
            Some((e["step"].as_u64().unwrap(), value))
        })
        .collect()
}

/// `model:` of a tiny random T5 (with dropout) on the fixture's tokenizer.
fn tiny_random_model() -> String {
    format!(
        "{{tokenizer: {}, architecture: {{vocab_size: 400, d_model: 32, d_kv: 8, d_ff: 64, \
         num_layers: 1, num_decoder_layers: 1, num_heads: 4, dropout_rate: 0.1, \
         feed_forward_proj: relu, tie_word_embeddings: true}}}}",
        fixture().2.display()
    )
}

/// The batch of [`train_run`] unless a test says otherwise.
const ONE_MICRO_BATCH: &str = "{max_tokens: 1024, grad_accum: 1}";

/// Trains run `name` for `steps` steps from `model` (a YAML mapping) with
/// `batch` (a YAML mapping) and returns the token cache's origin and the
/// run's losses.
fn train_run(
    dir: &Path,
    processed: &Path,
    name: &str,
    model: &str,
    (steps, batch): (u64, &str),
    cache: &TokenCacheOptions,
) -> (CacheOrigin, Vec<(u64, f64)>) {
    let yaml = format!(
        r#"
run: {{dir: {runs}, name: {name}}}
model: {model}
data: {{processed_dir: {data}, max_source_tokens: 96, max_target_tokens: 64}}
curriculum:
  phases:
    - {{name: simple, steps: 2, tiers: {{Simple: 1.0}}}}
    - {{name: all, steps: 100, tiers: {{Simple: 1, Moderate: 1, Complex: 1, Highly Complex: 1}}}}
optimizer: {{kind: adamw, lr: 3.0e-3, weight_decay: 0.01, clip_norm: 1.0}}
schedule: {{kind: linear, warmup_steps: 2}}
batch: {batch}
training: {{max_steps: {steps}, seed: 3, log_every_steps: 1}}
eval: {{every_steps: 2, val_sample_size: 6}}
checkpoint: {{every_steps: 4, keep_last: 1}}
"#,
        runs = dir.join("runs").display(),
        data = processed.display(),
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    let config = TrainConfig::load(&path, &[]).unwrap();
    let mut trainer =
        Trainer::with_token_cache(config, Device::Cpu, false, cache, &mut |_| {}).unwrap();
    let origin = trainer.token_cache().origin();
    trainer.train(|_| {}).unwrap();
    (origin, losses(trainer.run_dir()))
}

#[test]
fn training_on_a_fresh_and_on_a_reused_cache_gives_identical_losses() {
    let dir = tempfile::tempdir().unwrap();
    let processed = dataset_copy(dir.path());
    // A random model saved once, so both runs start from the same weights.
    let architecture = tiny_random_model();
    let defaults = TokenCacheOptions::default();
    train_run(
        dir.path(),
        &processed,
        "init",
        &architecture,
        (3, ONE_MICRO_BATCH),
        &defaults,
    );
    let init = format!(
        "{{init_from: {}}}",
        dir.path().join("runs/init/checkpoint-3").display()
    );

    let rebuild = TokenCacheOptions {
        rebuild: true,
        threads: None,
    };
    let run = |name: &str, cache: &TokenCacheOptions| {
        train_run(
            dir.path(),
            &processed,
            name,
            &init,
            (4, ONE_MICRO_BATCH),
            cache,
        )
    };
    let (fresh_origin, fresh) = run("fresh", &rebuild);
    let (reused_origin, reused) = run("reused", &defaults);
    assert!(matches!(fresh_origin, CacheOrigin::Built { .. }));
    assert_eq!(reused_origin, CacheOrigin::Reused);
    // Four train losses and two validation losses, bit for bit.
    assert_eq!(fresh.len(), 6, "{fresh:?}");
    assert_eq!(fresh, reused);
}

#[test]
fn micro_batches_computed_at_once_give_the_losses_of_one_after_another() {
    let dir = tempfile::tempdir().unwrap();
    let processed = dataset_copy(dir.path());
    let model = tiny_random_model();
    let defaults = TokenCacheOptions::default();
    // Three micro-batches a step: one at a time, two then one, all three.
    let runs: Vec<Vec<(u64, f64)>> = [1, 2, 3]
        .iter()
        .map(|parallel| {
            let batch =
                format!("{{max_tokens: 256, grad_accum: 3, parallel_micro_batches: {parallel}}}");
            let name = format!("parallel{parallel}");
            train_run(
                dir.path(),
                &processed,
                &name,
                &model,
                (4, &batch),
                &defaults,
            )
            .1
        })
        .collect();
    assert_eq!(runs[0].len(), 6, "{:?}", runs[0]);
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[0], runs[2]);
}
