//! Reads a SentencePiece `spiece.model` and builds the same `tokenizers`
//! pipeline that transformers' `T5Tokenizer` builds from it.
//!
//! The model file is a protobuf `ModelProto`. It is decoded by hand rather
//! than with `prost`: T5 needs four fields of a format frozen for years
//! (pieces, the trainer's model type and unk id, the normalizer's precompiled
//! charsmap), and `prost` would add a code generator and two crates to the
//! build for what is a hundred lines of wire-format reading.

use std::path::Path;

use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::precompiled::Precompiled;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, PreTokenizerWrapper};

use super::{TokenizerError, EOS_TOKEN, PAD_TOKEN, UNK_TOKEN};

/// How many `<extra_id_N>` sentinels transformers appends to a T5 vocabulary
/// (`T5Tokenizer(extra_ids=100)`), so ids match `t5-small`'s 32100.
pub const T5_EXTRA_IDS: usize = 100;

/// The parts of a SentencePiece `ModelProto` that T5's pipeline uses.
#[derive(Debug, Clone, PartialEq)]
pub struct SentencePieceModel {
    /// (piece, score) in id order.
    pub pieces: Vec<(String, f64)>,
    /// `TrainerSpec.model_type`: 1 = Unigram, 2 = BPE, 3 = word, 4 = char.
    pub model_type: u64,
    /// `TrainerSpec.unk_id` (SentencePiece's default is 0).
    pub unk_id: usize,
    /// `NormalizerSpec.precompiled_charsmap` (empty for the identity rule).
    pub precompiled_charsmap: Vec<u8>,
}

const UNIGRAM_MODEL_TYPE: u64 = 1;

impl SentencePieceModel {
    /// Decodes a `ModelProto`; `path` only names the file in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, TokenizerError> {
        let bad = |message: String| TokenizerError::SentencePiece {
            path: path.to_path_buf(),
            message,
        };
        let mut model = SentencePieceModel {
            pieces: Vec::new(),
            model_type: UNIGRAM_MODEL_TYPE,
            unk_id: 0,
            precompiled_charsmap: Vec::new(),
        };
        let mut reader = WireReader::new(bytes);
        while let Some((field, value)) = reader.next_field().map_err(&bad)? {
            match (field, value) {
                // ModelProto.pieces
                (1, WireValue::Bytes(piece)) => {
                    let index = model.pieces.len();
                    let (text, score) = parse_piece(piece)
                        .map_err(|message| bad(format!("piece {index}: {message}")))?;
                    model.pieces.push((text, score));
                }
                // ModelProto.trainer_spec
                (2, WireValue::Bytes(spec)) => {
                    let mut spec = WireReader::new(spec);
                    while let Some((field, value)) = spec.next_field().map_err(&bad)? {
                        match (field, value) {
                            (3, WireValue::Varint(v)) => model.model_type = v,
                            (40, WireValue::Varint(v)) => {
                                model.unk_id = usize::try_from(v).map_err(|_| {
                                    bad(format!("trainer_spec.unk_id {v} out of range"))
                                })?
                            }
                            _ => {}
                        }
                    }
                }
                // ModelProto.normalizer_spec
                (3, WireValue::Bytes(spec)) => {
                    let mut spec = WireReader::new(spec);
                    while let Some((field, value)) = spec.next_field().map_err(&bad)? {
                        if let (2, WireValue::Bytes(map)) = (field, value) {
                            model.precompiled_charsmap = map.to_vec();
                        }
                    }
                }
                _ => {}
            }
        }
        if model.pieces.is_empty() {
            return Err(bad("no pieces: not a SentencePiece model".into()));
        }
        if model.model_type != UNIGRAM_MODEL_TYPE {
            return Err(bad(format!(
                "model_type {} is not Unigram (1); T5 tokenizers are Unigram",
                model.model_type
            )));
        }
        if model.unk_id >= model.pieces.len() {
            return Err(bad(format!(
                "trainer_spec.unk_id {} is past the {} pieces",
                model.unk_id,
                model.pieces.len()
            )));
        }
        Ok(model)
    }

    /// The pipeline of transformers' `T5Tokenizer` (5.x; same ids as the 4.x
    /// `T5Converter`): Unigram over the pieces plus [`T5_EXTRA_IDS`] sentinels,
    /// the precompiled normalizer, `WhitespaceSplit` + `Metaspace`, and `</s>`
    /// appended by the post-processor.
    pub fn into_t5_tokenizer(self, path: &Path) -> Result<tokenizers::Tokenizer, TokenizerError> {
        let load = |message: String| TokenizerError::SentencePiece {
            path: path.to_path_buf(),
            message,
        };
        let unk_id = self.unk_id;
        let charsmap = self.precompiled_charsmap;
        let mut vocab = self.pieces;
        vocab.extend(
            (0..T5_EXTRA_IDS)
                .rev()
                .map(|i| (format!("<extra_id_{i}>"), 0.0)),
        );
        let eos_id = vocab
            .iter()
            .position(|(piece, _)| piece == EOS_TOKEN)
            .ok_or_else(|| load(format!("no `{EOS_TOKEN}` piece")))?;
        let model = Unigram::from(vocab.clone(), Some(unk_id), false)
            .map_err(|e| load(format!("building the Unigram model: {e}")))?;
        let mut tokenizer = tokenizers::Tokenizer::new(model);
        if !charsmap.is_empty() {
            let precompiled = Precompiled::from(&charsmap)
                .map_err(|e| load(format!("normalizer_spec.precompiled_charsmap: {e}")))?;
            tokenizer
                .with_normalizer(Some(precompiled))
                .map_err(|e| load(format!("installing the normalizer: {e}")))?;
        }
        tokenizer.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::WhitespaceSplit(WhitespaceSplit),
            PreTokenizerWrapper::Metaspace(Metaspace::new('▁', PrependScheme::Always, true)),
        ]))));
        tokenizer.with_decoder(Some(Metaspace::new('▁', PrependScheme::Always, true)));
        tokenizer.with_post_processor(Some(eos_template(eos_id as u32).map_err(load)?));
        let specials: Vec<AddedToken> = [PAD_TOKEN, EOS_TOKEN, UNK_TOKEN]
            .into_iter()
            .filter(|token| vocab.iter().any(|(piece, _)| piece == token))
            .map(str::to_string)
            .chain((0..T5_EXTRA_IDS).rev().map(|i| format!("<extra_id_{i}>")))
            .map(|token| AddedToken::from(token, true))
            .collect();
        tokenizer
            .add_special_tokens(specials)
            .map_err(|e| load(format!("adding special tokens: {e}")))?;
        Ok(tokenizer)
    }
}

/// `$A </s>` for one sequence, `$A </s> $B </s>` for a pair, as T5 does.
pub(crate) fn eos_template(eos_id: u32) -> Result<TemplateProcessing, String> {
    TemplateProcessing::builder()
        .try_single(format!("$A {EOS_TOKEN}"))
        .and_then(|b| b.try_pair(format!("$A {EOS_TOKEN} $B {EOS_TOKEN}")))
        .map_err(|e| format!("EOS template: {e}"))?
        .special_tokens(vec![(EOS_TOKEN, eos_id)])
        .build()
        .map_err(|e| format!("EOS template: {e}"))
}

/// `SentencePiece { piece = 1; score = 2; type = 3 }`.
fn parse_piece(bytes: &[u8]) -> Result<(String, f64), String> {
    let mut text = None;
    let mut score = 0.0f32;
    let mut reader = WireReader::new(bytes);
    while let Some((field, value)) = reader.next_field()? {
        match (field, value) {
            (1, WireValue::Bytes(b)) => {
                text = Some(
                    String::from_utf8(b.to_vec()).map_err(|_| "piece is not UTF-8".to_string())?,
                )
            }
            (2, WireValue::Fixed32(bits)) => score = f32::from_bits(bits),
            _ => {}
        }
    }
    let text = text.ok_or("no piece text")?;
    Ok((text, f64::from(score)))
}

enum WireValue<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Protobuf wire format: a sequence of (tag varint, value) where the tag's low
/// three bits give the value's encoding.
struct WireReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> WireReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        WireReader { bytes, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .bytes
                .get(self.pos)
                .ok_or_else(|| format!("truncated varint at byte {}", self.pos))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("varint longer than 10 bytes at byte {}", self.pos))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "field of {len} bytes at byte {} runs past the end",
                    self.pos
                )
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn next_field(&mut self) -> Result<Option<(u64, WireValue<'a>)>, String> {
        if self.pos >= self.bytes.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let field = tag >> 3;
        let value = match tag & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                WireValue::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                WireValue::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                WireValue::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            other => return Err(format!("unsupported wire type {other} for field {field}")),
        };
        Ok(Some((field, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_reader_decodes_varints_strings_and_floats() {
        // field 1 (bytes) = "ab", field 2 (fixed32) = 1.5, field 3 (varint) = 300
        let mut bytes = vec![0x0a, 2, b'a', b'b', 0x15];
        bytes.extend(1.5f32.to_le_bytes());
        bytes.extend([0x18, 0xac, 0x02]);
        assert_eq!(parse_piece(&bytes).unwrap(), ("ab".to_string(), 1.5));
        let mut reader = WireReader::new(&bytes);
        let mut fields = Vec::new();
        while let Some((field, value)) = reader.next_field().unwrap() {
            if let WireValue::Varint(v) = value {
                assert_eq!(v, 300);
            }
            fields.push(field);
        }
        assert_eq!(fields, vec![1, 2, 3]);
    }

    #[test]
    fn truncated_model_is_an_error_naming_the_file() {
        let err = SentencePieceModel::parse(&[0x0a, 10, b'a'], Path::new("x/spiece.model"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x/spiece.model"), "{err}");
        assert!(err.contains("runs past the end"), "{err}");
    }

    #[test]
    fn bpe_models_are_refused() {
        // one piece "a", trainer_spec { model_type: BPE }
        let bytes = [0x0a, 3, 0x0a, 1, b'a', 0x12, 2, 0x18, 2];
        let err = SentencePieceModel::parse(&bytes, Path::new("spiece.model"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not Unigram"), "{err}");
    }
}
