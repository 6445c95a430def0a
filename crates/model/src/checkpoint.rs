//! Checkpoints in the Hugging Face layout: load (`model.safetensors`, a
//! sharded `model.safetensors.index.json`, or `pytorch_model.bin`), validate
//! every tensor against the config, save, and convert.
//!
//! The project's own layout IS the Hugging Face layout (config.json,
//! model.safetensors, generation_config.json, tokenizer files), so a
//! checkpoint written here loads in `transformers` unchanged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};

use crate::error::{ModelError, Result};
use crate::t5::{T5Config, T5Model};

pub const CONFIG_FILE: &str = "config.json";
pub const SAFETENSORS_FILE: &str = "model.safetensors";
pub const SAFETENSORS_INDEX_FILE: &str = "model.safetensors.index.json";
pub const PYTORCH_FILE: &str = "pytorch_model.bin";
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";
/// Tokenizer files carried along unchanged when a checkpoint is converted.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "spiece.model",
    "vocab.json",
    "merges.txt",
];

/// The tokenizer files of [`TOKENIZER_FILES`] present in `dir`: what a
/// checkpoint carries from its tokenizer folder, whichever of the formats
/// (`tokenizer.json`, `spiece.model`, CodeT5's `vocab.json` + `merges.txt`)
/// the folder holds.
pub fn tokenizer_files_in(dir: &Path) -> Vec<PathBuf> {
    TOKENIZER_FILES
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.is_file())
        .collect()
}

/// Other names under which checkpoints store a tensor the model asks for:
/// transformers ties the encoder/decoder embeddings to `shared`, and some
/// exports keep only one of the copies.
fn aliases(name: &str) -> &'static [&'static str] {
    match name {
        "shared.weight" => &["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"],
        _ => &[],
    }
}

/// Records the name and shape of every tensor the model asks for, handing
/// back broadcast zeros (no memory is allocated).
struct Recorder(std::sync::Mutex<Vec<(String, Vec<usize>)>>);

impl SimpleBackend for Recorder {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((name.to_string(), shape.dims().to_vec()));
        Tensor::zeros((), dtype, device)?.broadcast_as(shape)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("no shape known for tensor `{name}`")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// The name and shape of every tensor a model with `config` needs, in the
/// order the model asks for them.
pub fn expected_tensors(config: &T5Config) -> Result<Vec<(String, Vec<usize>)>> {
    let recorder = Recorder(std::sync::Mutex::new(Vec::new()));
    let recorded = {
        let vb = VarBuilder::from_backend(Box::new(&recorder), DType::F32, Device::Cpu);
        T5Model::new(vb, config)?;
        recorder.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    };
    Ok(recorded)
}

impl SimpleBackend for &Recorder {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: candle_nn::Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        (*self).get(shape, name, init, dtype, device)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        (*self).get_unchecked(name, dtype, device)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        (*self).contains_tensor(name)
    }
}

/// The weights file(s) of a checkpoint directory.
enum Weights {
    Safetensors(candle_core::safetensors::MmapedSafetensors),
    Pytorch(candle_core::pickle::PthTensors),
}

struct WeightSource {
    path: PathBuf,
    weights: Weights,
    shapes: HashMap<String, Vec<usize>>,
}

impl WeightSource {
    fn open(dir: &Path) -> Result<Self> {
        let checkpoint_error = |path: &Path, e: candle_core::Error| ModelError::Checkpoint {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let single = dir.join(SAFETENSORS_FILE);
        let index = dir.join(SAFETENSORS_INDEX_FILE);
        let pytorch = dir.join(PYTORCH_FILE);
        if single.is_file() || index.is_file() {
            let (path, files) = if single.is_file() {
                (single.clone(), vec![single])
            } else {
                (index.clone(), shard_files(dir, &index)?)
            };
            // SAFETY: the files are mapped read-only; like every reader of
            // memory-mapped checkpoints we assume nobody truncates them
            // while the model is loaded.
            let mapped = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&files) }
                .map_err(|e| checkpoint_error(&path, e))?;
            let shapes = mapped
                .tensors()
                .into_iter()
                .map(|(name, view)| (name, view.shape().to_vec()))
                .collect();
            return Ok(Self {
                path,
                weights: Weights::Safetensors(mapped),
                shapes,
            });
        }
        if pytorch.is_file() {
            let tensors = candle_core::pickle::PthTensors::new(&pytorch, None)
                .map_err(|e| checkpoint_error(&pytorch, e))?;
            let shapes = tensors
                .tensor_infos()
                .iter()
                .map(|(name, info)| (name.clone(), info.layout.shape().dims().to_vec()))
                .collect();
            return Ok(Self {
                path: pytorch,
                weights: Weights::Pytorch(tensors),
                shapes,
            });
        }
        Err(ModelError::Checkpoint {
            path: dir.to_path_buf(),
            message: format!("no {SAFETENSORS_FILE}, {SAFETENSORS_INDEX_FILE} or {PYTORCH_FILE}"),
        })
    }

    fn load(&self, name: &str, device: &Device) -> Result<Tensor> {
        let tensor = match &self.weights {
            Weights::Safetensors(mapped) => mapped.load(name, device),
            Weights::Pytorch(tensors) => tensors.get(name).and_then(|t| {
                t.ok_or_else(|| candle_core::Error::Msg(format!("no tensor `{name}`")))?
                    .to_device(device)
            }),
        };
        tensor.map_err(|e| ModelError::Checkpoint {
            path: self.path.clone(),
            message: format!("tensor `{name}`: {e}"),
        })
    }
}

fn shard_files(dir: &Path, index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|source| ModelError::Io {
        path: index.to_path_buf(),
        source,
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: index.to_path_buf(),
            source,
        })?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| ModelError::Config {
            path: index.to_path_buf(),
            field: "weight_map".into(),
            message: "missing or not an object".into(),
        })?;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut seen = HashSet::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| ModelError::Config {
            path: index.to_path_buf(),
            field: format!("weight_map.{tensor}"),
            message: "not a file name".into(),
        })?;
        if seen.insert(file.to_string()) {
            files.push(dir.join(file));
        }
    }
    Ok(files)
}

/// Loads and validates every tensor a model with `config` needs from the
/// checkpoint in `dir`, converted to `dtype` on `device`. All missing or
/// mis-shaped tensors are reported together, by name.
pub fn load_tensors(
    dir: &Path,
    config: &T5Config,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let source = WeightSource::open(dir)?;
    let mut problems = Vec::new();
    let mut used = HashSet::new();
    let mut plan = Vec::new();
    for (name, shape) in expected_tensors(config)? {
        let found = std::iter::once(name.as_str())
            .chain(aliases(&name).iter().copied())
            .find(|candidate| source.shapes.contains_key(*candidate));
        match found {
            None => problems.push(format!("missing tensor `{name}` (shape {shape:?})")),
            Some(stored) => {
                let stored_shape = &source.shapes[stored];
                if *stored_shape != shape {
                    problems.push(format!(
                        "tensor `{stored}` has shape {stored_shape:?}, the config needs {shape:?}"
                    ));
                }
                let stored = stored.to_string();
                used.insert(stored.clone());
                plan.push((name, stored));
            }
        }
    }
    if !problems.is_empty() {
        return Err(ModelError::Tensors {
            path: source.path,
            problems,
        });
    }
    let mut unused: Vec<&String> = source
        .shapes
        .keys()
        .filter(|name| !used.contains(*name) && !is_known_redundant(name, config))
        .collect();
    if !unused.is_empty() {
        unused.sort();
        tracing::warn!(
            "{}: {} tensor(s) not used by the model: {:?}",
            source.path.display(),
            unused.len(),
            unused
        );
    }
    let mut tensors = HashMap::with_capacity(plan.len());
    for (name, stored) in plan {
        let tensor = source.load(&stored, device)?.to_dtype(dtype)?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

/// Copies of tied tensors that transformers writes and never reads back.
fn is_known_redundant(name: &str, config: &T5Config) -> bool {
    matches!(name, "encoder.embed_tokens.weight" | "decoder.embed_tokens.weight")
        || (config.shape.tie_word_embeddings && name == "lm_head.weight")
        // Old T5 exports carry an unused cross-attention position table.
        || name.ends_with("EncDecAttention.relative_attention_bias.weight")
}

impl T5Model {
    /// Loads a checkpoint directory in the Hugging Face layout for
    /// inference: `config.json` plus `model.safetensors`,
    /// `model.safetensors.index.json` or `pytorch_model.bin`.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = T5Config::from_file(&dir.join(CONFIG_FILE))?;
        let tensors = load_tensors(dir, &config, dtype, device)?;
        let tensors = crate::t5::huge_pages::on_huge_pages(tensors)?;
        T5Model::new(VarBuilder::from_tensors(tensors, dtype, device), &config)
    }

    /// Loads a checkpoint for training: every parameter becomes a `Var` of
    /// the returned `VarMap` (tied embeddings are one `Var`).
    pub fn load_trainable(dir: &Path, dtype: DType, device: &Device) -> Result<(Self, VarMap)> {
        let config = T5Config::from_file(&dir.join(CONFIG_FILE))?;
        let tensors = load_tensors(dir, &config, dtype, device)?;
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
            for (name, tensor) in tensors {
                data.insert(name, Var::from_tensor(&tensor)?);
            }
        }
        let model = T5Model::new(VarBuilder::from_varmap(&varmap, dtype, device), &config)?;
        Ok((model, varmap))
    }

    /// Writes the checkpoint in the Hugging Face layout: `config.json`,
    /// `model.safetensors` (in the model's dtype), `generation_config.json`,
    /// and copies of `extra_files` (tokenizer files) by their file names.
    /// The directory is assembled beside `dir` and renamed into place; an
    /// existing `dir` is replaced only if it is empty or a checkpoint
    /// (holds a `config.json`).
    pub fn save_pretrained(&self, dir: &Path, extra_files: &[PathBuf]) -> Result<()> {
        write_dir_atomically(dir, |tmp| {
            let config_path = tmp.join(CONFIG_FILE);
            write_file(&config_path, self.config_for_saving().to_json()?.as_bytes())?;
            write_file(
                &tmp.join(GENERATION_CONFIG_FILE),
                serde_json::to_string_pretty(&serde_json::json!({
                    "_from_model_config": true,
                    "decoder_start_token_id": self.config().decoder_start_token(),
                    "eos_token_id": self.config().eos_token(),
                    "pad_token_id": self.config().pad_token(),
                }))
                .map_err(|e| ModelError::Invalid(e.to_string()))?
                .as_bytes(),
            )?;
            self.write_safetensors(&tmp.join(SAFETENSORS_FILE))?;
            for file in extra_files {
                let name = file.file_name().ok_or_else(|| ModelError::Checkpoint {
                    path: file.clone(),
                    message: "not a file".into(),
                })?;
                std::fs::copy(file, tmp.join(name)).map_err(|source| ModelError::Io {
                    path: file.clone(),
                    source,
                })?;
            }
            Ok(())
        })
    }

    fn config_for_saving(&self) -> T5Config {
        let mut config = self.config().clone();
        let dtype = dtype_name(self.dtype());
        config.extra.insert("dtype".into(), dtype.into());
        if config.extra.contains_key("torch_dtype") {
            config.extra.insert("torch_dtype".into(), dtype.into());
        }
        config
            .extra
            .entry("model_type")
            .or_insert_with(|| "t5".into());
        config
            .extra
            .entry("architectures")
            .or_insert_with(|| serde_json::json!(["T5ForConditionalGeneration"]));
        config
            .extra
            .entry("is_encoder_decoder")
            .or_insert(true.into());
        if config.decoder_start_token_id.is_none() {
            config.decoder_start_token_id = Some(config.pad_token());
        }
        config
    }

    fn write_safetensors(&self, path: &Path) -> Result<()> {
        let tensors = self
            .named_tensors()
            .into_iter()
            .map(|(name, tensor)| {
                Ok((name, tensor.detach().to_device(&Device::Cpu)?.contiguous()?))
            })
            .collect::<Result<BTreeMap<String, Tensor>>>()?;
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize_to_file(&tensors, Some(metadata), path).map_err(|e| {
            ModelError::Checkpoint {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })
    }
}

/// transformers' name for a dtype in config.json.
pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        DType::F64 => "float64",
        _ => "float32",
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Fills a fresh directory beside `dir` with `fill` and renames it to `dir`
/// ([`text2sql_data::atomic::write_dir`]), so a crash never leaves a
/// half-written checkpoint under the final name. An existing `dir` is
/// replaced only if it is empty or a checkpoint.
pub(crate) fn write_dir_atomically(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    if dir.file_name().is_none() {
        return Err(ModelError::Checkpoint {
            path: dir.to_path_buf(),
            message: "not a directory name".into(),
        });
    }
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|source| ModelError::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .next()
            .is_none();
        if !empty && !dir.join(CONFIG_FILE).is_file() {
            return Err(ModelError::Checkpoint {
                path: dir.to_path_buf(),
                message: "exists and is neither empty nor a checkpoint; not replacing it".into(),
            });
        }
    }
    text2sql_data::atomic::write_dir(dir, fill)
}

/// What [`convert`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConvertReport {
    pub source_weights: PathBuf,
    pub tensors: usize,
    pub parameters: usize,
    pub dtype: String,
    pub copied_files: Vec<String>,
}

/// Reads a Hugging Face T5 checkpoint from `from` (safetensors or
/// `pytorch_model.bin`), validates every tensor, and writes the project's
/// layout to `to` in `dtype`, carrying tokenizer files and an existing
/// `generation_config.json` along.
pub fn convert(from: &Path, to: &Path, dtype: DType) -> Result<ConvertReport> {
    let source_weights = WeightSource::open(from)?.path;
    let model = T5Model::load(from, dtype, &Device::Cpu)?;
    let mut copied = tokenizer_files_in(from);
    let generation_config = from.join(GENERATION_CONFIG_FILE);
    if generation_config.is_file() {
        copied.push(generation_config);
    }
    // A checkpoint that ships only `spiece.model` also gets the
    // `tokenizer.json` our layout promises, built by the same conversion
    // `transformers` applies, staged outside `to` and copied in atomically
    // with the weights.
    let staging = std::env::temp_dir().join(format!("text2sql-convert-{}", std::process::id()));
    if !from.join("tokenizer.json").is_file() && from.join("spiece.model").is_file() {
        let tokenizer =
            crate::tokenizer::Tokenizer::from_dir(from).map_err(|e| ModelError::Checkpoint {
                path: from.join("spiece.model"),
                message: e.to_string(),
            })?;
        tokenizer
            .save(&staging)
            .map_err(|e| ModelError::Checkpoint {
                path: staging.clone(),
                message: e.to_string(),
            })?;
        copied.push(staging.join("tokenizer.json"));
    }
    let saved = model.save_pretrained(to, &copied);
    // Best effort: the staging folder is only a temporary copy.
    let _ = std::fs::remove_dir_all(&staging);
    saved?;
    let named = model.named_tensors();
    Ok(ConvertReport {
        source_weights,
        tensors: named.len(),
        parameters: named.iter().map(|(_, t)| t.elem_count()).sum(),
        dtype: dtype_name(dtype).to_string(),
        copied_files: copied
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .collect(),
    })
}
