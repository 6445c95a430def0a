//! The tokenizer shared by training, generation and serving: a thin wrapper
//! over the `tokenizers` crate that knows T5's conventions (`<pad>` = 0,
//! `</s>` = 1, `<unk>` = 2, `</s>` appended to encoder inputs and labels) and
//! the Hugging Face folder layout.
//!
//! Loading: `tokenizer.json` (any Hub T5, flan-t5 or codet5 checkpoint, or one
//! trained here), else SentencePiece's `spiece.model` built into the same
//! pipeline transformers builds, else CodeT5's `vocab.json` + `merges.txt`
//! (byte-level BPE, see `bpe.rs`). Special tokens are added as the
//! tokenizer's post-processor says, so that ids match transformers: T5
//! appends `</s>`, CodeT5 (RoBERTa-style) wraps inputs as `<s> ... </s>`.
//! Training: [`train_unigram`].

mod bpe;
mod corpus;
mod spiece;
mod train;

use std::fs;
use std::path::{Path, PathBuf};

use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::{PostProcessor, PreTokenizerWrapper, TruncationDirection};

pub use bpe::{ADDED_TOKENS_FILE, MERGES_FILE, VOCAB_FILE};
pub use corpus::{
    sample_texts, train_on_datasets, train_on_text_files, uncovered_chars, CorpusOptions,
    CorpusProgress, CorpusTokenizer, DatasetTexts, TextScan,
};
pub use spiece::{SentencePieceModel, T5_EXTRA_IDS};
pub use train::{
    train_unigram, train_unigram_with_progress, TrainOptions, TrainStage, SQL_KEYWORDS,
    SQL_OPERATORS,
};

pub const PAD_TOKEN: &str = "<pad>";
pub const EOS_TOKEN: &str = "</s>";
pub const UNK_TOKEN: &str = "<unk>";

pub const TOKENIZER_FILE: &str = "tokenizer.json";

pub const SPIECE_FILE: &str = "spiece.model";
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
pub const SPECIAL_TOKENS_MAP_FILE: &str = "special_tokens_map.json";

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: neither {TOKENIZER_FILE} nor {SPIECE_FILE} found, nor {VOCAB_FILE} + {MERGES_FILE}",
        dir.display()
    )]
    NotFound { dir: PathBuf },
    #[error("{}: cannot load the tokenizer: {message}", path.display())]
    Load { path: PathBuf, message: String },
    #[error("{}: bad SentencePiece model: {message}", path.display())]
    SentencePiece { path: PathBuf, message: String },
    #[error("the tokenizer has no `{token}` token (T5 needs <pad>, </s> and <unk>)")]
    MissingSpecial { token: &'static str },
    #[error("encoding {text:?}: {message}")]
    Encode { text: String, message: String },
    #[error("decoding ids {ids:?}: {message}")]
    Decode { ids: Vec<u32>, message: String },
    #[error("training the tokenizer: {0}")]
    Train(String),
    #[error("{}: cannot save the tokenizer: {message}", path.display())]
    Save { path: PathBuf, message: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TokenizerError + '_ {
    move |source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A T5-family tokenizer: Unigram pieces (T5, flan-t5) or byte-level BPE
/// (CodeT5), with the model's special tokens added on request.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    pad_id: u32,
    eos_id: u32,
    unk_id: u32,
}

impl Tokenizer {
    /// Loads a Hugging Face model folder: `tokenizer.json` when present, else
    /// `spiece.model`, else `vocab.json` + `merges.txt`.
    pub fn from_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let json = dir.join(TOKENIZER_FILE);
        if json.is_file() {
            return Self::from_json_file(&json);
        }
        let spiece = dir.join(SPIECE_FILE);
        if spiece.is_file() {
            return Self::from_spiece_file(&spiece);
        }
        if bpe::present(dir) {
            return Self::from_tokenizers(bpe::load(dir)?);
        }
        Err(TokenizerError::NotFound {
            dir: dir.to_path_buf(),
        })
    }

    /// Loads a `tokenizer.json`.
    pub fn from_json_file(path: &Path) -> Result<Self, TokenizerError> {
        let bytes = fs::read(path).map_err(io_error(path))?;
        let inner =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| TokenizerError::Load {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Self::from_tokenizers(inner)
    }

    /// Loads a SentencePiece `spiece.model` the way transformers' `T5Tokenizer` does.
    pub fn from_spiece_file(path: &Path) -> Result<Self, TokenizerError> {
        let bytes = fs::read(path).map_err(io_error(path))?;
        let inner = SentencePieceModel::parse(&bytes, path)?.into_t5_tokenizer(path)?;
        Self::from_tokenizers(inner)
    }

    /// Wraps an already built `tokenizers` pipeline; it must know T5's special
    /// tokens. Truncation and padding set in the pipeline are dropped: callers
    /// ask for them per call (`encode_batch`, the model's batching), and the
    /// pipeline's own would pad before the special tokens are added.
    pub fn from_tokenizers(mut inner: tokenizers::Tokenizer) -> Result<Self, TokenizerError> {
        inner
            .with_truncation(None)
            .map_err(|e| TokenizerError::Load {
                path: PathBuf::from(TOKENIZER_FILE),
                message: e.to_string(),
            })?
            .with_padding(None);
        let id = |token: &'static str| {
            inner
                .token_to_id(token)
                .ok_or(TokenizerError::MissingSpecial { token })
        };
        Ok(Tokenizer {
            pad_id: id(PAD_TOKEN)?,
            eos_id: id(EOS_TOKEN)?,
            unk_id: id(UNK_TOKEN)?,
            inner,
        })
    }

    /// `text` split into tokens without special tokens.
    fn split(&self, text: &str) -> Result<tokenizers::Encoding, TokenizerError> {
        self.inner
            .encode_fast(text, false)
            .map_err(|e| TokenizerError::Encode {
                text: text.to_string(),
                message: e.to_string(),
            })
    }

    /// The ids of `text`. With `add_eos` (encoder inputs and labels) the
    /// special tokens transformers adds come too: `</s>` appended for T5,
    /// `<s> ... </s>` for CodeT5.
    pub fn encode(&self, text: &str, add_eos: bool) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self.split(text)?;
        self.finish(encoding, add_eos, None)
            .map_err(|message| TokenizerError::Encode {
                text: text.to_string(),
                message,
            })
    }

    /// The ids of an encoding made without special tokens, cut so that at
    /// most `max_len` ids remain once the special tokens are added (as
    /// transformers' truncation does: content first, specials kept), then
    /// the special tokens added when `add_special`: by the post-processor
    /// when the tokenizer has one, else `</s>` appended.
    fn finish(
        &self,
        mut encoding: tokenizers::Encoding,
        add_special: bool,
        max_len: Option<usize>,
    ) -> Result<Vec<u32>, String> {
        let post_processor = self.inner.get_post_processor().filter(|_| add_special);
        let specials = match (add_special, post_processor) {
            (false, _) => 0,
            (true, Some(processor)) => processor.added_tokens(false),
            (true, None) => 1,
        };
        if let Some(max) = max_len {
            if max == 0 {
                return Ok(Vec::new());
            }
            encoding.truncate(max.saturating_sub(specials), 0, TruncationDirection::Right);
        }
        let mut ids = match post_processor {
            Some(_) => self
                .inner
                .post_process(encoding, None, true)
                .map_err(|e| e.to_string())?
                .get_ids()
                .to_vec(),
            None => encoding.get_ids().to_vec(),
        };
        if add_special && post_processor.is_none() {
            ids.push(self.eos_id);
        }
        Ok(ids)
    }

    /// The pieces and ids of `text` (no `</s>`): for showing users how text is split.
    pub fn tokens(&self, text: &str) -> Result<Vec<(String, u32)>, TokenizerError> {
        let encoding = self.split(text)?;
        // `encode_fast` leaves the token strings empty: look them up.
        Ok(encoding
            .get_ids()
            .iter()
            .map(|&id| (self.id_to_token(id).unwrap_or_default(), id))
            .collect())
    }

    /// Encodes many texts in parallel, special tokens as [`Tokenizer::encode`]
    /// adds them. With `max_len`, each sequence is cut to at most `max_len`
    /// ids, keeping the special tokens (`</s>` last) when `add_eos`, as
    /// transformers' truncation does.
    pub fn encode_batch<S: AsRef<str>>(
        &self,
        texts: &[S],
        add_eos: bool,
        max_len: Option<usize>,
    ) -> Result<Vec<Vec<u32>>, TokenizerError> {
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let encodings = self
            .inner
            .encode_batch_fast(inputs.clone(), false)
            .map_err(|e| TokenizerError::Encode {
                text: format!(
                    "batch of {} texts starting with {:?}",
                    inputs.len(),
                    inputs.first()
                ),
                message: e.to_string(),
            })?;
        encodings
            .into_iter()
            .zip(&inputs)
            .map(|(encoding, text)| {
                self.finish(encoding, add_eos, max_len)
                    .map_err(|message| TokenizerError::Encode {
                        text: text.to_string(),
                        message,
                    })
            })
            .collect()
    }

    /// Text for `ids`; `skip_special` drops `<pad>`, `</s>` and other special tokens.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| TokenizerError::Decode {
                ids: ids.to_vec(),
                message: e.to_string(),
            })
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    pub fn unk_id(&self) -> u32 {
        self.unk_id
    }

    /// Number of ids, special tokens and sentinels included (the model's
    /// embedding table needs at least this many rows).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// How many schema symbols (`<sym0>`, `<sym1>`, …: see
    /// [`text2sql_data::serialize::SchemaSymbols`]) the vocabulary has, in
    /// an unbroken run from `<sym0>`; 0 for tokenizers trained without.
    pub fn schema_symbols(&self) -> u32 {
        (0..).take_while(|&i| self.symbol_id(i).is_some()).count() as u32
    }

    /// The id of schema symbol `index` (`<symN>`), if it has one.
    pub fn symbol_id(&self, index: u32) -> Option<u32> {
        self.inner
            .token_to_id(&text2sql_data::serialize::symbol_token(index))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The underlying `tokenizers` pipeline.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// `tokenizer.json` exactly as [`Tokenizer::save`] writes it.
    pub fn to_json(&self) -> Result<String, TokenizerError> {
        self.inner
            .to_string(true)
            .map_err(|e| TokenizerError::Save {
                path: PathBuf::from(TOKENIZER_FILE),
                message: e.to_string(),
            })
    }

    /// Writes `tokenizer.json`, `tokenizer_config.json` and
    /// `special_tokens_map.json` into `dir` (created if missing), so that
    /// `transformers.AutoTokenizer.from_pretrained(dir)` loads a
    /// `T5TokenizerFast`. Each file is written under a temporary name and
    /// renamed into place.
    pub fn save(&self, dir: &Path) -> Result<(), TokenizerError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let sentinels = self.sentinel_tokens();
        let config = serde_json::json!({
            "tokenizer_class": self.transformers_class(),
            "pad_token": PAD_TOKEN,
            "eos_token": EOS_TOKEN,
            "unk_token": UNK_TOKEN,
            "extra_ids": sentinels.len(),
            "additional_special_tokens": sentinels,
            "clean_up_tokenization_spaces": false,
        });
        let special_map = serde_json::json!({
            "pad_token": PAD_TOKEN,
            "eos_token": EOS_TOKEN,
            "unk_token": UNK_TOKEN,
            "additional_special_tokens": sentinels,
        });
        let pretty = |value: &serde_json::Value| {
            serde_json::to_string_pretty(value).map_err(|e| TokenizerError::Save {
                path: dir.to_path_buf(),
                message: e.to_string(),
            })
        };
        write_atomically(&dir.join(TOKENIZER_FILE), &self.to_json()?)?;
        write_atomically(&dir.join(TOKENIZER_CONFIG_FILE), &pretty(&config)?)?;
        write_atomically(&dir.join(SPECIAL_TOKENS_MAP_FILE), &pretty(&special_map)?)?;
        Ok(())
    }

    /// The transformers class that reproduces this tokenizer's ids. transformers
    /// 5's `T5Tokenizer` ignores the normaliser and pre-tokenizer in
    /// tokenizer.json and installs T5's (whitespace split, no newlines): right
    /// for Hub and `spiece.model` tokenizers, wrong for ours (they keep
    /// newlines and repeated spaces), which the generic fast class loads as written.
    fn transformers_class(&self) -> &'static str {
        let t5_pre_tokenizer = PreTokenizerWrapper::Sequence(PreTokenizerSequence::new(vec![
            PreTokenizerWrapper::WhitespaceSplit(WhitespaceSplit),
            PreTokenizerWrapper::Metaspace(Metaspace::new('▁', PrependScheme::Always, true)),
        ]));
        let same = |a: &PreTokenizerWrapper| {
            serde_json::to_value(a).ok() == serde_json::to_value(&t5_pre_tokenizer).ok()
        };
        match self.inner.get_pre_tokenizer() {
            Some(pre_tokenizer) if same(pre_tokenizer) => "T5Tokenizer",
            _ => "PreTrainedTokenizerFast",
        }
    }

    /// T5's `<extra_id_N>` sentinels present in the vocabulary, N ascending.
    fn sentinel_tokens(&self) -> Vec<String> {
        (0..)
            .map(|i| format!("<extra_id_{i}>"))
            .take_while(|token| self.inner.token_to_id(token).is_some())
            .collect()
    }
}

fn write_atomically(path: &Path, contents: &str) -> Result<(), TokenizerError> {
    text2sql_data::atomic::write_file(path, contents.as_bytes()).map_err(|e| TokenizerError::Io {
        path: e.path,
        source: e.source,
    })
}

#[cfg(test)]
mod tests;
