//! CodeT5's tokenizer: RoBERTa-style byte-level BPE from `vocab.json` +
//! `merges.txt`, built into the pipeline transformers' `RobertaTokenizer`
//! builds (the CodeT5 checkpoints on the Hub ship no `tokenizer.json`):
//! byte-level pre-tokenizer and decoder, and a post-processor that wraps
//! every input as `<s> ... </s>`. Special tokens and their flags come from
//! `tokenizer_config.json` and `special_tokens_map.json`; `added_tokens.json`
//! adds the tokens it lists under the ids it gives.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;

use serde_json::Value;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::AddedToken;

use super::{io_error, TokenizerError};

pub const VOCAB_FILE: &str = "vocab.json";
pub const MERGES_FILE: &str = "merges.txt";
pub const ADDED_TOKENS_FILE: &str = "added_tokens.json";

/// The special-token keys transformers reads from the tokenizer configs.
const SPECIAL_KEYS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "cls_token",
    "pad_token",
    "mask_token",
];

/// Whether `dir` holds a byte-level BPE tokenizer in the vocab/merges layout.
pub(super) fn present(dir: &Path) -> bool {
    dir.join(VOCAB_FILE).is_file() && dir.join(MERGES_FILE).is_file()
}

/// Builds the `RobertaTokenizer` pipeline from the files in `dir`.
pub(super) fn load(dir: &Path) -> Result<tokenizers::Tokenizer, TokenizerError> {
    let vocab_path = dir.join(VOCAB_FILE);
    let merges_path = dir.join(MERGES_FILE);
    let vocab: HashMap<String, u32> = read_json(&vocab_path)?;
    let merges = read_merges(&merges_path)?;
    let settings = Settings::read(dir)?;

    let load_error = |path: &Path, message: String| TokenizerError::Load {
        path: path.to_path_buf(),
        message,
    };
    let model = BPE::builder()
        .vocab_and_merges(
            vocab
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect::<Vocab>(),
            merges,
        )
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix(String::new())
        .build()
        .map_err(|e| load_error(&merges_path, e.to_string()))?;
    let mut tokenizer = tokenizers::Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(settings.add_prefix_space, true, true)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

    // Tokens of added_tokens.json first, in id order, so that the ones not
    // in vocab.json get the ids the file gives them.
    let added_path = dir.join(ADDED_TOKENS_FILE);
    let mut added: Vec<(u32, String)> = if added_path.is_file() {
        read_json::<BTreeMap<String, u32>>(&added_path)?
            .into_iter()
            .map(|(token, id)| (id, token))
            .collect()
    } else {
        Vec::new()
    };
    added.sort();
    let special_names: HashSet<&str> = settings
        .specials
        .iter()
        .map(|token| token.content.as_str())
        .collect();
    for (id, token) in &added {
        let special = special_names.contains(token.as_str());
        let added_token = match settings.specials.iter().find(|t| &t.content == token) {
            Some(configured) => configured.clone(),
            None => AddedToken::from(token.clone(), special).normalized(!special),
        };
        tokenizer
            .add_tokens([added_token])
            .map_err(|e| load_error(&added_path, e.to_string()))?;
        if tokenizer.token_to_id(token) != Some(*id) {
            return Err(load_error(
                &added_path,
                format!(
                    "token {token:?} would get id {:?}, the file says {id} (ids must follow \
                     vocab.json's {} entries without gaps)",
                    tokenizer.token_to_id(token),
                    vocab.len()
                ),
            ));
        }
    }
    tokenizer
        .add_special_tokens(settings.specials.clone())
        .map_err(|e| load_error(&vocab_path, e.to_string()))?;

    let id_of = |name: &str| {
        tokenizer.token_to_id(name).ok_or_else(|| {
            load_error(
                &vocab_path,
                format!("the special token {name:?} is not in the vocabulary"),
            )
        })
    };
    let sep = (settings.sep.clone(), id_of(&settings.sep)?);
    let cls = (settings.cls.clone(), id_of(&settings.cls)?);
    tokenizer.with_post_processor(Some(
        RobertaProcessing::new(sep, cls)
            .trim_offsets(settings.trim_offsets)
            .add_prefix_space(settings.add_prefix_space),
    ));
    Ok(tokenizer)
}

/// What the tokenizer configs say, with `RobertaTokenizer`'s defaults.
struct Settings {
    sep: String,
    cls: String,
    add_prefix_space: bool,
    trim_offsets: bool,
    /// Every special token with its flags (lstrip for `<mask>`, ...).
    specials: Vec<AddedToken>,
}

impl Settings {
    fn read(dir: &Path) -> Result<Self, TokenizerError> {
        // transformers reads tokenizer_config.json, then lets
        // special_tokens_map.json override the special tokens.
        let mut entries = serde_json::Map::new();
        for name in [super::TOKENIZER_CONFIG_FILE, super::SPECIAL_TOKENS_MAP_FILE] {
            let path = dir.join(name);
            if path.is_file() {
                let value: Value = read_json(&path)?;
                let Value::Object(map) = value else {
                    return Err(TokenizerError::Load {
                        path,
                        message: "expected a JSON object".into(),
                    });
                };
                entries.extend(map);
            }
        }
        let mut specials: Vec<AddedToken> = Vec::new();
        let mut names: HashMap<&str, String> = HashMap::new();
        let mut push = |token: AddedToken| {
            if !specials.iter().any(|t| t.content == token.content) {
                specials.push(token);
            }
        };
        for key in SPECIAL_KEYS {
            let token = match entries.get(key) {
                Some(value) => special_token(value, key, dir)?,
                None => Some(AddedToken::from(default_special(key), true)),
            };
            if let Some(token) = token {
                names.insert(key, token.content.clone());
                push(token);
            }
        }
        for key in ["additional_special_tokens", "extra_special_tokens"] {
            if let Some(Value::Array(tokens)) = entries.get(key) {
                for value in tokens {
                    if let Some(token) = special_token(value, key, dir)? {
                        push(token);
                    }
                }
            }
        }
        let flag =
            |key: &str, default: bool| entries.get(key).and_then(Value::as_bool).unwrap_or(default);
        Ok(Self {
            sep: names.remove("sep_token").unwrap_or_else(|| "</s>".into()),
            cls: names.remove("cls_token").unwrap_or_else(|| "<s>".into()),
            add_prefix_space: flag("add_prefix_space", false),
            trim_offsets: flag("trim_offsets", true),
            specials,
        })
    }
}

fn default_special(key: &str) -> &'static str {
    match key {
        "bos_token" | "cls_token" => "<s>",
        "eos_token" | "sep_token" => "</s>",
        "unk_token" => "<unk>",
        "pad_token" => "<pad>",
        _ => "<mask>",
    }
}

/// A special token as the configs write it: a string, or an object with
/// `content` and flags; `null` means none.
fn special_token(
    value: &Value,
    key: &str,
    dir: &Path,
) -> Result<Option<AddedToken>, TokenizerError> {
    let config_error = |message: String| TokenizerError::Load {
        path: dir.join(super::TOKENIZER_CONFIG_FILE),
        message: format!("(or {}) {message}", super::SPECIAL_TOKENS_MAP_FILE),
    };
    Ok(match value {
        Value::Null => None,
        Value::String(content) => Some(AddedToken::from(content.clone(), true)),
        Value::Object(fields) => {
            let content = fields
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| config_error(format!("`{key}` has no string `content`")))?;
            let flag = |name: &str, default: bool| {
                fields.get(name).and_then(Value::as_bool).unwrap_or(default)
            };
            Some(
                AddedToken::from(content.to_string(), true)
                    .lstrip(flag("lstrip", false))
                    .rstrip(flag("rstrip", false))
                    .single_word(flag("single_word", false))
                    .normalized(flag("normalized", false)),
            )
        }
        other => {
            return Err(config_error(format!(
                "`{key}` should be a token string or object, not {other}"
            )))
        }
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, TokenizerError> {
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    serde_json::from_str(&text).map_err(|e| TokenizerError::Load {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// `merges.txt`: an optional `#version` line, then one `left right` pair per line.
fn read_merges(path: &Path) -> Result<Vec<(String, String)>, TokenizerError> {
    let text = fs::read_to_string(path).map_err(io_error(path))?;
    let mut merges = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.starts_with("#version") || line.is_empty() {
            continue;
        }
        match line.split(' ').collect::<Vec<_>>()[..] {
            [left, right] => merges.push((left.to_string(), right.to_string())),
            _ => {
                return Err(TokenizerError::Load {
                    path: path.to_path_buf(),
                    message: format!("line {}: expected two pieces, got {line:?}", index + 1),
                })
            }
        }
    }
    Ok(merges)
}
