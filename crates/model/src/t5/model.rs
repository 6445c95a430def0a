//! The T5 encoder-decoder with Hugging Face parameter names: teacher-forced
//! forward and loss for training, and an incremental decoder whose key/value
//! cache lives outside the model (one [`DecoderCache`] per generation).

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;

use super::config::{SymbolIds, T5Config};
use super::init;
use super::layers::{
    bucket_ids, log_softmax_last_dim, position_bias, Attention, DropoutRng, FeedForward, Linear,
    RmsNorm,
};
use crate::error::{ModelError, Result};

/// A teacher-forced batch: input ids, their mask, decoder input ids, theirs.
type TeacherForced<'a> = (
    &'a Tensor,
    Option<&'a Tensor>,
    &'a Tensor,
    Option<&'a Tensor>,
);
use crate::ops;

/// What masked positions add to attention scores. Not the dtype's minimum:
/// a fully masked row (a padding query) must stay finite, not NaN.
const MASKED: f64 = -1e9;

#[derive(Debug, Clone)]
struct Block {
    self_attention: Attention,
    self_attention_norm: RmsNorm,
    /// Decoder blocks only.
    cross_attention: Option<(Attention, RmsNorm)>,
    feed_forward: FeedForward,
    feed_forward_norm: RmsNorm,
}

impl Block {
    fn new(vb: VarBuilder, config: &T5Config, is_decoder: bool, first: bool) -> Result<Self> {
        let eps = config.layer_norm_epsilon;
        let layer = vb.pp("layer");
        let self_attention = Attention::new(layer.pp("0").pp("SelfAttention"), config, first)?;
        let self_attention_norm =
            RmsNorm::new(layer.pp("0").pp("layer_norm"), config.shape.d_model, eps)?;
        let (cross_attention, ff_index) = if is_decoder {
            let attention = Attention::new(layer.pp("1").pp("EncDecAttention"), config, false)?;
            let norm = RmsNorm::new(layer.pp("1").pp("layer_norm"), config.shape.d_model, eps)?;
            (Some((attention, norm)), "2")
        } else {
            (None, "1")
        };
        let feed_forward = FeedForward::new(layer.pp(ff_index).pp("DenseReluDense"), config)?;
        let feed_forward_norm = RmsNorm::new(
            layer.pp(ff_index).pp("layer_norm"),
            config.shape.d_model,
            eps,
        )?;
        Ok(Self {
            self_attention,
            self_attention_norm,
            cross_attention,
            feed_forward,
            feed_forward_norm,
        })
    }

    fn named_tensors(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        self.self_attention
            .named_tensors(&format!("{prefix}.layer.0.SelfAttention"), out);
        out.push((
            format!("{prefix}.layer.0.layer_norm.weight"),
            self.self_attention_norm.weight.clone(),
        ));
        let ff_index = match &self.cross_attention {
            Some((attention, norm)) => {
                attention.named_tensors(&format!("{prefix}.layer.1.EncDecAttention"), out);
                out.push((
                    format!("{prefix}.layer.1.layer_norm.weight"),
                    norm.weight.clone(),
                ));
                2
            }
            None => 1,
        };
        self.feed_forward
            .named_tensors(&format!("{prefix}.layer.{ff_index}.DenseReluDense"), out);
        out.push((
            format!("{prefix}.layer.{ff_index}.layer_norm.weight"),
            self.feed_forward_norm.weight.clone(),
        ));
    }

    /// The feed-forward sub-layer with its residual connection.
    fn feed_forward(&self, xs: &Tensor, dropout: &DropoutRng, train: bool) -> Result<Tensor> {
        let hidden = self.feed_forward_norm.forward(xs)?;
        let hidden = self.feed_forward.forward(&hidden, dropout, train)?;
        Ok((xs + dropout.apply(&hidden, train)?)?)
    }
}

#[derive(Debug, Clone)]
struct Stack {
    blocks: Vec<Block>,
    final_layer_norm: RmsNorm,
}

impl Stack {
    fn new(vb: VarBuilder, config: &T5Config, is_decoder: bool) -> Result<Self> {
        let layers = if is_decoder {
            config.decoder_layers()
        } else {
            config.shape.num_layers
        };
        let blocks = (0..layers)
            .map(|i| Block::new(vb.pp("block").pp(i), config, is_decoder, i == 0))
            .collect::<Result<Vec<_>>>()?;
        let final_layer_norm = RmsNorm::new(
            vb.pp("final_layer_norm"),
            config.shape.d_model,
            config.layer_norm_epsilon,
        )?;
        Ok(Self {
            blocks,
            final_layer_norm,
        })
    }

    fn relative_attention_bias(&self) -> Result<&Tensor> {
        self.blocks
            .first()
            .and_then(|block| block.self_attention.relative_attention_bias.as_ref())
            .ok_or_else(|| {
                ModelError::Invalid("the first block has no relative attention bias".into())
            })
    }

    fn named_tensors(&self, prefix: &str, out: &mut Vec<(String, Tensor)>) {
        for (i, block) in self.blocks.iter().enumerate() {
            block.named_tensors(&format!("{prefix}.block.{i}"), out);
        }
        out.push((
            format!("{prefix}.final_layer_norm.weight"),
            self.final_layer_norm.weight.clone(),
        ));
    }
}

/// Self-attention key/value buffers start with room for this many steps and
/// double when full.
const MIN_CACHE_STEPS: usize = 64;

/// The per-generation decoder state: self-attention keys/values so far, and
/// the encoder's keys/values for cross-attention, computed once. Not
/// `Clone`: decoding writes the self-attention buffers in place, which a
/// shallow copy would share; [`DecoderCache::duplicate`] copies them.
#[derive(Debug)]
pub struct DecoderCache {
    /// Per layer, `(batch, heads, capacity, d_kv)` buffers whose first
    /// `steps` positions are filled: each step writes its keys/values in
    /// place instead of concatenating (copying) the whole history.
    self_key_values: Vec<Option<(Tensor, Tensor)>>,
    /// Per layer, `(batch / group, heads, source_len, d_kv)`: one per input.
    cross_key_values: Vec<(Tensor, Tensor)>,
    /// `(batch / group, 1, 1, source_len)`, or none when nothing is padded.
    cross_bias: Option<Tensor>,
    /// Consecutive rows that read one input (beam search's beams): they
    /// share its cross-attention keys/values, the bulk of the cache, which
    /// a decoding step would otherwise read once per row.
    group: usize,
    /// What a schema-pointer model points at, computed once.
    symbol_keys: Option<SymbolKeys>,
    steps: usize,
}

impl DecoderCache {
    /// How many tokens the decoder has consumed.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// An independent copy: its own self-attention buffers (the rest is
    /// never written in place, and stays shared).
    pub fn duplicate(&self) -> Result<DecoderCache> {
        let self_key_values = self
            .self_key_values
            .iter()
            .map(|entry| {
                entry
                    .as_ref()
                    .map(|(keys, values)| Ok((keys.copy()?, values.copy()?)))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        Ok(DecoderCache {
            self_key_values,
            cross_key_values: self.cross_key_values.clone(),
            cross_bias: self.cross_bias.clone(),
            group: self.group,
            symbol_keys: self.symbol_keys.clone(),
            steps: self.steps,
        })
    }

    /// Writes this step's `keys`/`values` `(batch, heads, 1, d_kv)` of
    /// `layer` at position `steps` and returns views of all positions so far.
    fn append_self_key_values(
        &mut self,
        layer: usize,
        keys: &Tensor,
        values: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let position = self.steps;
        let entry = &mut self.self_key_values[layer];
        let capacity = match entry {
            Some((buffer, _)) => buffer.dim(2)?,
            None => 0,
        };
        if position >= capacity {
            let grown = (position + 1).next_power_of_two().max(MIN_CACHE_STEPS);
            let (batch, heads, _, d_kv) = keys.dims4()?;
            let grow = |old: Option<&Tensor>, new: &Tensor| -> Result<Tensor> {
                let room = Tensor::zeros(
                    (batch, heads, grown - capacity, d_kv),
                    new.dtype(),
                    new.device(),
                )?;
                Ok(match old {
                    Some(old) => Tensor::cat(&[old, &room], 2)?,
                    None => room,
                })
            };
            let old = entry.as_ref();
            *entry = Some((
                grow(old.map(|(k, _)| k), keys)?,
                grow(old.map(|(_, v)| v), values)?,
            ));
        }
        let Some((key_buffer, value_buffer)) = entry.as_ref() else {
            unreachable!("the buffers were created above")
        };
        key_buffer.slice_set(keys, 2, position)?;
        value_buffer.slice_set(values, 2, position)?;
        Ok((
            key_buffer.narrow(2, 0, position + 1)?,
            value_buffer.narrow(2, 0, position + 1)?,
        ))
    }

    /// Rearranges (and duplicates) batch rows: row `i` of the result is row
    /// `rows[i]` now. Beam search uses it to follow surviving beams.
    /// With groups (see [`T5Model::start_beam_decoding`]) `rows` must come
    /// in whole groups, each following rows of one group.
    pub fn reorder(&mut self, rows: &Tensor) -> Result<()> {
        let inputs = if self.group == 1 {
            rows.clone()
        } else {
            let picked = rows.to_vec1::<u32>()?;
            if !picked.len().is_multiple_of(self.group) {
                return Err(ModelError::Invalid(format!(
                    "{} rows do not make groups of {}",
                    picked.len(),
                    self.group
                )));
            }
            let mut inputs = Vec::with_capacity(picked.len() / self.group);
            for (at, group) in picked.chunks(self.group).enumerate() {
                let input = group[0] as usize / self.group;
                if let Some(stray) = group
                    .iter()
                    .find(|&&row| row as usize / self.group != input)
                {
                    return Err(ModelError::Invalid(format!(
                        "group {at} mixes rows of inputs {input} and {}",
                        *stray as usize / self.group
                    )));
                }
                inputs.push(input as u32);
            }
            Tensor::from_vec(inputs.clone(), inputs.len(), rows.device())?
        };
        for entry in self.self_key_values.iter_mut().flatten() {
            *entry = (
                entry.0.index_select(rows, 0)?,
                entry.1.index_select(rows, 0)?,
            );
        }
        for entry in self.cross_key_values.iter_mut() {
            *entry = (
                entry.0.index_select(&inputs, 0)?,
                entry.1.index_select(&inputs, 0)?,
            );
        }
        if let Some(bias) = &self.cross_bias {
            self.cross_bias = Some(bias.index_select(&inputs, 0)?);
        }
        if let Some(symbols) = &self.symbol_keys {
            self.symbol_keys = Some(SymbolKeys {
                keys: symbols.keys.index_select(rows, 0)?,
                absent: symbols.absent.index_select(rows, 0)?,
            });
        }
        Ok(())
    }

    /// [`DecoderCache::reorder`] for beam search, whose rows come in groups
    /// of `group` beams of one input and only ever follow a beam of their
    /// own group: the group's rows hold the same encoder output, so only
    /// the self-attention history moves (the cross-attention keys/values,
    /// most of the cache, stay), and of it only the rows of beams that
    /// now continue another beam are rewritten, in place (so a clone of
    /// this cache would see the change, as it sees each step's keys).
    pub fn follow_beams(&mut self, rows: &[u32], group: usize) -> Result<()> {
        if group == 0 || !rows.len().is_multiple_of(group) {
            return Err(ModelError::Invalid(format!(
                "{} rows do not make groups of {group} beams",
                rows.len()
            )));
        }
        if let Some(row) = (0..rows.len()).find(|&i| rows[i] as usize / group != i / group) {
            return Err(ModelError::Invalid(format!(
                "row {row} follows row {} of another group of {group} beams",
                rows[row]
            )));
        }
        // Only the rows that follow another beam are rewritten, in place:
        // most beams keep their own history from one step to the next.
        let moved: Vec<usize> = (0..rows.len()).filter(|&i| rows[i] as usize != i).collect();
        if moved.is_empty() {
            return Ok(());
        }
        let history = self.self_key_values.iter().flatten().next();
        let Some(device) = history.map(|(keys, _)| keys.device().clone()) else {
            return Ok(());
        };
        let followed: Vec<u32> = moved.iter().map(|&i| rows[i]).collect();
        let followed = Tensor::from_vec(followed, moved.len(), &device)?;
        // Runs of consecutive rewritten rows: one copy each.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (at, &row) in moved.iter().enumerate() {
            match runs.last_mut() {
                Some((start, len)) if moved[*start] + *len == row => *len += 1,
                _ => runs.push((at, 1)),
            }
        }
        for (keys, values) in self.self_key_values.iter().flatten() {
            for buffer in [keys, values] {
                // Gathered before any row is written: a beam may follow a
                // row that is itself rewritten.
                let picked = buffer.index_select(&followed, 0)?;
                for &(start, len) in &runs {
                    buffer.slice_set(&picked.narrow(0, start, len)?, 0, moved[start])?;
                }
            }
        }
        Ok(())
    }
}

/// A T5 encoder-decoder (`T5ForConditionalGeneration`).
#[derive(Debug)]
pub struct T5Model {
    config: T5Config,
    shared: Tensor,
    encoder: Stack,
    decoder: Stack,
    /// Untied models (t5 v1.1, flan-t5) only.
    lm_head: Option<Linear>,
    /// `schema_pointer` models only.
    pointer: Option<SchemaPointer>,
    dropout: DropoutRng,
    device: Device,
    dtype: DType,
}

impl T5Model {
    /// Builds the model from `vb` with Hugging Face names. A `VarBuilder` over
    /// a `VarMap` gives a trainable model initialised as transformers does;
    /// one over checkpoint tensors gives a pretrained model.
    pub fn new(vb: VarBuilder, config: &T5Config) -> Result<Self> {
        config.validate().map_err(|(field, message)| {
            ModelError::Invalid(format!("config field `{field}`: {message}"))
        })?;
        let shared = vb.pp("shared").get_with_hints(
            (config.shape.vocab_size, config.shape.d_model),
            "weight",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: init::EMBEDDING_STD,
            },
        )?;
        let encoder = Stack::new(vb.pp("encoder"), config, false)?;
        let decoder = Stack::new(vb.pp("decoder"), config, true)?;
        let lm_head = if config.shape.tie_word_embeddings {
            None
        } else {
            Some(Linear::new(
                vb.pp("lm_head"),
                config.shape.d_model,
                config.shape.vocab_size,
                init::d_model_std(config),
            )?)
        };
        let pointer = match (config.shape.schema_pointer, config.schema_symbol_ids) {
            (true, Some(ids)) => Some(SchemaPointer {
                query: Linear::new(
                    vb.pp(SchemaPointer::NAME),
                    config.shape.d_model,
                    config.shape.d_model,
                    init::d_model_std(config),
                )?,
                ids,
            }),
            (true, None) => {
                return Err(ModelError::Invalid(
                    "config field `schema_symbol_ids`: a schema_pointer model needs the ids \
                     of its symbols (a tokenizer trained with --schema-symbols)"
                        .into(),
                ))
            }
            (false, _) => None,
        };
        Ok(Self {
            config: config.clone(),
            shared,
            encoder,
            decoder,
            lm_head,
            pointer,
            dropout: DropoutRng::new(config.shape.dropout_rate, 0),
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    pub fn config(&self) -> &T5Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Restarts the dropout generator. Seeding it from the step number
    /// makes a resumed run draw the same masks as an uninterrupted one.
    pub fn set_dropout_seed(&self, seed: u64) {
        self.dropout.reseed(seed);
    }

    /// Every parameter with its Hugging Face name, in a fixed order. Tied
    /// models list the embedding once, as `shared.weight`.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("shared.weight".to_string(), self.shared.clone())];
        self.encoder.named_tensors("encoder", &mut out);
        self.decoder.named_tensors("decoder", &mut out);
        if let Some(lm_head) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), lm_head.weight.clone()));
        }
        if let Some(pointer) = &self.pointer {
            out.push((
                format!("{}.weight", SchemaPointer::NAME),
                pointer.query.weight.clone(),
            ));
        }
        out
    }

    /// The schema symbols a schema-pointer model points at (their labels
    /// are only learnable where the input shows them).
    pub fn pointed_symbols(&self) -> Option<SymbolIds> {
        self.pointer.as_ref().map(|p| p.ids)
    }

    /// A copy of the model whose parameters are plain tensors, not training
    /// variables: no gradient is tracked and inference takes candle's fused
    /// kernels (for evaluation during training, or decoding a model built
    /// in memory). Large CPU weights are copied onto huge pages (see
    /// `huge_pages.rs`), the others shared.
    pub fn detached(&self) -> Result<Self> {
        let tensors = self
            .named_tensors()
            .into_iter()
            .map(|(name, tensor)| (name, tensor.detach()))
            .collect();
        let tensors = super::huge_pages::on_huge_pages(tensors)?;
        T5Model::new(
            VarBuilder::from_tensors(tensors, self.dtype, &self.device),
            &self.config,
        )
    }

    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let dims = ids.dims().to_vec();
        let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
        let embedded = self.shared.index_select(&flat, 0)?;
        let mut shape = dims;
        shape.push(self.config.shape.d_model);
        Ok(embedded.reshape(shape)?)
    }

    /// `(batch, len)` mask of 1 (attend) / 0 (padding) as an additive
    /// `(batch, 1, 1, len)` bias.
    fn padding_bias(&self, mask: &Tensor) -> Result<Tensor> {
        let (batch, len) = mask.dims2()?;
        let keep = mask.to_dtype(DType::F32)?;
        let bias = ((1.0 - keep)? * MASKED)?;
        Ok(bias.reshape((batch, 1, 1, len))?.to_dtype(self.dtype)?)
    }

    /// Runs the encoder: `input_ids` `(batch, src_len)`, optional
    /// `attention_mask` of the same shape (1 = token, 0 = padding).
    /// Returns `(batch, src_len, d_model)`.
    pub fn encode(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        self.encode_with(input_ids, attention_mask, train, &self.dropout)
    }

    /// [`Self::encode`] drawing its dropout masks from `dropout`.
    fn encode_with(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        train: bool,
        dropout: &DropoutRng,
    ) -> Result<Tensor> {
        let (_, len) = input_ids.dims2()?;
        let mut xs = dropout.apply(&self.embed(input_ids)?, train)?;
        // The position bias (and mask) is computed once and shared by all layers.
        let buckets = bucket_ids(0, len, len, true, &self.config, &self.device)?;
        let mut bias = position_bias(self.encoder.relative_attention_bias()?, &buckets)?;
        if let Some(mask) = attention_mask {
            bias = bias.broadcast_add(&self.padding_bias(mask)?)?;
        }
        for block in &self.encoder.blocks {
            let hidden = block.self_attention_norm.forward(&xs)?;
            let attention = &block.self_attention;
            let (keys, values) = attention.key_values(&hidden)?;
            let query = attention.query(&hidden)?;
            let out = attention.attend(&query, &keys, &values, Some(&bias), dropout, train)?;
            xs = (xs + dropout.apply(&out, train)?)?;
            xs = block.feed_forward(&xs, dropout, train)?;
        }
        let xs = self.encoder.final_layer_norm.forward(&xs)?;
        dropout.apply(&xs, train)
    }

    /// Teacher-forced decoder over the whole target: `(batch, tgt_len,
    /// d_model)` hidden states, causally masked.
    pub fn decode(
        &self,
        decoder_input_ids: &Tensor,
        decoder_attention_mask: Option<&Tensor>,
        encoder_output: &Tensor,
        encoder_attention_mask: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        self.decode_with(
            decoder_input_ids,
            decoder_attention_mask,
            encoder_output,
            encoder_attention_mask,
            train,
            &self.dropout,
        )
    }

    /// [`Self::decode`] drawing its dropout masks from `dropout`.
    fn decode_with(
        &self,
        decoder_input_ids: &Tensor,
        decoder_attention_mask: Option<&Tensor>,
        encoder_output: &Tensor,
        encoder_attention_mask: Option<&Tensor>,
        train: bool,
        dropout: &DropoutRng,
    ) -> Result<Tensor> {
        let (_, len) = decoder_input_ids.dims2()?;
        let mut xs = dropout.apply(&self.embed(decoder_input_ids)?, train)?;
        let buckets = bucket_ids(0, len, len, false, &self.config, &self.device)?;
        let causal: Vec<f32> = (0..len)
            .flat_map(|q| (0..len).map(move |k| if k > q { MASKED as f32 } else { 0.0 }))
            .collect();
        let causal =
            Tensor::from_vec(causal, (1, 1, len, len), &self.device)?.to_dtype(self.dtype)?;
        let mut self_bias = position_bias(self.decoder.relative_attention_bias()?, &buckets)?
            .broadcast_add(&causal)?;
        if let Some(mask) = decoder_attention_mask {
            self_bias = self_bias.broadcast_add(&self.padding_bias(mask)?)?;
        }
        let cross_bias = encoder_attention_mask
            .map(|mask| self.padding_bias(mask))
            .transpose()?;
        for block in &self.decoder.blocks {
            let hidden = block.self_attention_norm.forward(&xs)?;
            let attention = &block.self_attention;
            let (keys, values) = attention.key_values(&hidden)?;
            let query = attention.query(&hidden)?;
            let out = attention.attend(&query, &keys, &values, Some(&self_bias), dropout, train)?;
            xs = (xs + dropout.apply(&out, train)?)?;
            let cross_bias = cross_bias.as_ref();
            let training_dropout = train.then_some(dropout);
            xs = self.cross_attend(
                block,
                &xs,
                None,
                encoder_output,
                cross_bias,
                training_dropout,
            )?;
            xs = block.feed_forward(&xs, dropout, train)?;
        }
        let xs = self.decoder.final_layer_norm.forward(&xs)?;
        dropout.apply(&xs, train)
    }

    /// The cross-attention sub-layer with its residual; keys/values either
    /// cached or computed from `encoder_output`; dropout only with
    /// `training_dropout`.
    fn cross_attend(
        &self,
        block: &Block,
        xs: &Tensor,
        cached: Option<&(Tensor, Tensor)>,
        encoder_output: &Tensor,
        bias: Option<&Tensor>,
        training_dropout: Option<&DropoutRng>,
    ) -> Result<Tensor> {
        let (dropout, train) = self.dropout_or_off(training_dropout);
        let (attention, norm) = block
            .cross_attention
            .as_ref()
            .ok_or_else(|| ModelError::Invalid("decoder block without cross-attention".into()))?;
        let hidden = norm.forward(xs)?;
        let query = attention.query(&hidden)?;
        let out = match cached {
            Some((keys, values)) => attention.attend(&query, keys, values, bias, dropout, train)?,
            None => {
                let (keys, values) = attention.key_values(encoder_output)?;
                attention.attend(&query, &keys, &values, bias, dropout, train)?
            }
        };
        Ok((xs + dropout.apply(&out, train)?)?)
    }

    /// Vocabulary logits for decoder hidden states. Original T5 rescales by
    /// `d_model^-0.5` first (see [`T5Config::scale_decoder_outputs`]); the
    /// projection is the shared embedding unless the model has an lm_head.
    pub fn lm_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let hidden = if self.config.scale_decoder_outputs() {
            (hidden * (self.config.shape.d_model as f64).powf(-0.5))?
        } else {
            hidden.clone()
        };
        match &self.lm_head {
            Some(head) => head.forward(&hidden),
            None => Linear {
                weight: self.shared.clone(),
            }
            .forward(&hidden),
        }
    }

    /// The teacher-forced forward pass used for training and scoring:
    /// `(batch, tgt_len, vocab)` logits. Dropout is active only when `train`.
    pub fn forward_train(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        decoder_input_ids: &Tensor,
        decoder_attention_mask: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let ids = (
            input_ids,
            attention_mask,
            decoder_input_ids,
            decoder_attention_mask,
        );
        self.forward_with(ids, train.then_some(&self.dropout))
    }

    /// [`Self::forward_train`] with dropout on, its masks drawn from a
    /// generator of this call's own seeded with `dropout_seed`: concurrent
    /// calls (micro-batches computed in parallel) stay independent and
    /// each draws what a sequential call after `set_dropout_seed` would.
    pub fn forward_train_seeded(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        decoder_input_ids: &Tensor,
        decoder_attention_mask: Option<&Tensor>,
        dropout_seed: u64,
    ) -> Result<Tensor> {
        let dropout = DropoutRng::new(self.dropout.rate(), dropout_seed);
        let ids = (
            input_ids,
            attention_mask,
            decoder_input_ids,
            decoder_attention_mask,
        );
        self.forward_with(ids, Some(&dropout))
    }

    /// The generator to draw from and whether dropout is on: `training`'s
    /// when given, else none (the model's own, switched off).
    fn dropout_or_off<'a>(&'a self, training: Option<&'a DropoutRng>) -> (&'a DropoutRng, bool) {
        match training {
            Some(dropout) => (dropout, true),
            None => (&self.dropout, false),
        }
    }

    /// The teacher-forced pass over `(input_ids, attention_mask,
    /// decoder_input_ids, decoder_attention_mask)`, with dropout drawn from
    /// `training_dropout` when given.
    fn forward_with(
        &self,
        (input_ids, attention_mask, decoder_input_ids, decoder_attention_mask): TeacherForced,
        training_dropout: Option<&DropoutRng>,
    ) -> Result<Tensor> {
        let (dropout, train) = self.dropout_or_off(training_dropout);
        let encoded = self.encode_with(input_ids, attention_mask, train, dropout)?;
        let hidden = self.decode_with(
            decoder_input_ids,
            decoder_attention_mask,
            &encoded,
            attention_mask,
            train,
            dropout,
        )?;
        let logits = self.lm_logits(&hidden)?;
        match &self.pointer {
            Some(pointer) => {
                let keys = pointer.keys(input_ids, &encoded)?;
                pointer.logits(&logits, &hidden, &keys)
            }
            None => Ok(logits),
        }
    }

    /// Prepares incremental decoding over `encoder_output` (of
    /// `input_ids`): the cross-attention keys/values of every layer, and
    /// what a schema pointer points at, computed once.
    pub fn start_decoding(
        &self,
        input_ids: &Tensor,
        encoder_output: &Tensor,
        encoder_attention_mask: Option<&Tensor>,
    ) -> Result<DecoderCache> {
        self.start_beam_decoding(input_ids, encoder_output, encoder_attention_mask, 1)
    }

    /// [`T5Model::start_decoding`] for `beams` rows per input (input `i`'s
    /// rows are `i * beams ..`), which share the input's cross-attention
    /// keys/values: the same logits as decoding every input repeated
    /// `beams` times, with a quarter of the memory read per step at 4
    /// beams.
    pub fn start_beam_decoding(
        &self,
        input_ids: &Tensor,
        encoder_output: &Tensor,
        encoder_attention_mask: Option<&Tensor>,
        beams: usize,
    ) -> Result<DecoderCache> {
        if beams == 0 {
            return Err(ModelError::Invalid("beam decoding needs a beam".into()));
        }
        let cross_key_values = self
            .decoder
            .blocks
            .iter()
            .map(|block| match &block.cross_attention {
                Some((attention, _)) => attention.key_values(encoder_output),
                None => Err(ModelError::Invalid(
                    "decoder block without cross-attention".into(),
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DecoderCache {
            self_key_values: vec![None; self.decoder.blocks.len()],
            cross_key_values,
            cross_bias: encoder_attention_mask
                .map(|mask| self.padding_bias(mask))
                .transpose()?,
            symbol_keys: self
                .pointer
                .as_ref()
                .map(|p| p.keys(input_ids, encoder_output)?.repeat_rows(beams))
                .transpose()?,
            group: beams,
            steps: 0,
        })
    }

    /// Feeds one token per row (`(batch,)` u32) and returns the next-token
    /// logits `(batch, vocab)` in f32, extending `cache`.
    pub fn decode_step(&self, cache: &mut DecoderCache, tokens: &Tensor) -> Result<Tensor> {
        let batch = tokens.dim(0)?;
        let position = cache.steps;
        let mut xs = self.embed(&tokens.reshape((batch, 1))?)?;
        let buckets = bucket_ids(position, 1, position + 1, false, &self.config, &self.device)?;
        let bias = position_bias(self.decoder.relative_attention_bias()?, &buckets)?;
        for (i, block) in self.decoder.blocks.iter().enumerate() {
            let hidden = block.self_attention_norm.forward(&xs)?;
            let attention = &block.self_attention;
            let (keys, values) = attention.key_values(&hidden)?;
            let (keys, values) = cache.append_self_key_values(i, &keys, &values)?;
            let query = attention.query(&hidden)?;
            let out =
                attention.attend(&query, &keys, &values, Some(&bias), &self.dropout, false)?;
            xs = (xs + out)?;
            // A group's rows attend as one input's `group` positions.
            let grouped = xs.reshape((batch / cache.group, cache.group, ()))?;
            xs = self
                .cross_attend(
                    block,
                    &grouped,
                    Some(&cache.cross_key_values[i]),
                    &grouped,
                    cache.cross_bias.as_ref(),
                    None,
                )?
                .reshape((batch, 1, ()))?;
            xs = block.feed_forward(&xs, &self.dropout, false)?;
        }
        cache.steps += 1;
        let xs = self.decoder.final_layer_norm.forward(&xs)?;
        let mut logits = self.lm_logits(&xs)?;
        if let (Some(pointer), Some(keys)) = (&self.pointer, &cache.symbol_keys) {
            logits = pointer.logits(&logits, &xs, keys)?;
        }
        Ok(logits.i((.., 0, ..))?.to_dtype(DType::F32)?)
    }
}

/// Chooses schema symbols by pointing, as pointer networks for schema items
/// do (IRNet, RAT-SQL): a symbol's logit is the decoder state, projected,
/// against the encoder's output where the input shows that symbol, and a
/// symbol the input does not show cannot be chosen. With embeddings alone a
/// symbol's meaning is tied to its number (`<sym7>`, the seventh name of
/// whatever schema), which a model must learn number by number; a pointer
/// only needs to learn which shown name the question asks for.
#[derive(Debug, Clone)]
struct SchemaPointer {
    query: Linear,
    ids: SymbolIds,
}

/// Per row, each symbol's key, transposed for the product with queries:
/// `(batch, d_model, symbols)` (the encoder output where the input shows
/// it, averaged when shown twice), and the additive bias `(batch, 1,
/// symbols)` masking those not shown.
#[derive(Debug, Clone)]
struct SymbolKeys {
    keys: Tensor,
    absent: Tensor,
}

impl SymbolKeys {
    /// Each row `times` times in a row.
    fn repeat_rows(self, times: usize) -> Result<SymbolKeys> {
        if times == 1 {
            return Ok(self);
        }
        let batch = self.keys.dim(0)?;
        let rows: Vec<u32> = (0..batch as u32)
            .flat_map(|row| std::iter::repeat_n(row, times))
            .collect();
        let rows = Tensor::from_vec(rows, batch * times, self.keys.device())?;
        Ok(SymbolKeys {
            keys: self.keys.index_select(&rows, 0)?,
            absent: self.absent.index_select(&rows, 0)?,
        })
    }
}

impl SchemaPointer {
    const NAME: &'static str = "schema_pointer";

    fn keys(&self, input_ids: &Tensor, encoded: &Tensor) -> Result<SymbolKeys> {
        let (batch, len) = input_ids.dims2()?;
        let count = self.ids.count as usize;
        let rows = input_ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let mut select = vec![0f32; batch * count * len];
        let mut absent = vec![MASKED as f32; batch * count];
        for (b, row) in rows.iter().enumerate() {
            let mut shown = vec![0u32; count];
            for index in row.iter().filter_map(|&id| self.ids.index(id)) {
                shown[index] += 1;
            }
            for (position, &id) in row.iter().enumerate() {
                if let Some(index) = self.ids.index(id) {
                    select[(b * count + index) * len + position] = 1.0 / shown[index] as f32;
                    absent[b * count + index] = 0.0;
                }
            }
        }
        let device = encoded.device();
        let select =
            Tensor::from_vec(select, (batch, count, len), device)?.to_dtype(encoded.dtype())?;
        Ok(SymbolKeys {
            keys: select
                .matmul(&encoded.contiguous()?)?
                .transpose(1, 2)?
                .contiguous()?,
            absent: Tensor::from_vec(absent, (batch, 1, count), device)?
                .to_dtype(encoded.dtype())?,
        })
    }

    /// `logits` `(batch, len, vocab)` with the symbols' columns replaced by
    /// the pointer's scores for decoder states `hidden`.
    fn logits(&self, logits: &Tensor, hidden: &Tensor, symbols: &SymbolKeys) -> Result<Tensor> {
        let vocab = logits.dim(2)?;
        let query = self.query.forward(hidden)?;
        let scale = (query.dim(2)? as f64).powf(-0.5);
        let scores =
            (query.contiguous()?.matmul(&symbols.keys)? * scale)?.broadcast_add(&symbols.absent)?;
        let (first, end) = (self.ids.first as usize, self.ids.end() as usize);
        let mut parts = Vec::with_capacity(3);
        if first > 0 {
            parts.push(logits.narrow(2, 0, first)?);
        }
        parts.push(scores);
        if end < vocab {
            parts.push(logits.narrow(2, end, vocab - end)?);
        }
        Ok(Tensor::cat(&parts, 2)?)
    }
}

/// The label that pads a target row, as in transformers: [`loss`] ignores it
/// (as every negative label) and [`shift_right`] turns it into padding.
pub const IGNORED_LABEL: i64 = -100;

/// Mean cross-entropy of `logits` `(batch, len, vocab)` against `labels`
/// `(batch, len)`, ignoring every negative label ([`IGNORED_LABEL`] for
/// padding). Differentiable; computed in f32 for half-precision logits.
pub fn loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (batch, len, vocab) = logits.dims3()?;
    let label_dims = labels.dims2()?;
    if label_dims != (batch, len) {
        return Err(ModelError::Invalid(format!(
            "labels have shape {label_dims:?}, logits ({batch}, {len}, {vocab})"
        )));
    }
    let labels = labels.to_dtype(DType::I64)?.flatten_all()?;
    let label_values = labels.to_vec1::<i64>()?;
    if let Some(bad) = label_values.iter().find(|&&l| l >= vocab as i64) {
        return Err(ModelError::Invalid(format!(
            "label {bad} is outside the vocabulary of {vocab}"
        )));
    }
    let counted = label_values.iter().filter(|&&l| l >= 0).count();
    if counted == 0 {
        return Err(ModelError::Invalid(
            "every label is ignored: nothing to learn from".into(),
        ));
    }
    let logits = logits.to_dtype(DType::F32)?;
    if ops::is_cpu_f32(&logits) {
        let labels = label_values
            .iter()
            .map(|&l| u32::try_from(l).ok())
            .collect();
        return Ok(ops::cross_entropy(&logits, labels, counted)?);
    }
    loss_composed(&logits, &label_values, counted)
}

/// [`loss`] from basic differentiable ops on f32 `logits` for labels already
/// checked: any device.
pub(crate) fn loss_composed(
    logits: &Tensor,
    label_values: &[i64],
    counted: usize,
) -> Result<Tensor> {
    let (batch, len, vocab) = logits.dims3()?;
    let keep: Vec<f32> = label_values
        .iter()
        .map(|&l| if l >= 0 { 1.0 } else { 0.0 })
        .collect();
    let safe: Vec<u32> = label_values.iter().map(|&l| l.max(0) as u32).collect();
    let device = logits.device();
    let keep = Tensor::from_vec(keep, batch * len, device)?;
    let safe = Tensor::from_vec(safe, (batch * len, 1), device)?;
    let logits = logits.reshape((batch * len, vocab))?;
    let log_probs = log_softmax_last_dim(&logits)?;
    let picked = log_probs.gather(&safe, 1)?.squeeze(1)?;
    Ok(((picked * keep)?.sum_all()? * (-1.0 / counted as f64))?)
}

/// Decoder inputs for teacher forcing from `labels`, as transformers'
/// `_shift_right`: prepend the start token, drop the last label, and turn
/// ignored ([`IGNORED_LABEL`]) labels into padding.
pub fn shift_right(labels: &[Vec<i64>], decoder_start_token: u32, pad_token: u32) -> Vec<Vec<u32>> {
    labels
        .iter()
        .map(|row| {
            std::iter::once(decoder_start_token)
                .chain(row.iter().take(row.len().saturating_sub(1)).map(|&l| {
                    if l < 0 {
                        pad_token
                    } else {
                        l as u32
                    }
                }))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::t5::T5Architecture;
    use crate::test_util::max_abs_diff;

    /// A random 2-layer T5 with a 40-token vocabulary, on the CPU.
    fn tiny_model() -> (T5Model, Device) {
        tiny_model_pointing(false)
    }

    /// Ids 30..40 of the tiny models are schema symbols.
    const TINY_SYMBOLS: SymbolIds = SymbolIds {
        first: 30,
        count: 10,
    };

    fn tiny_config(pointer: bool) -> T5Config {
        T5Config {
            shape: T5Architecture {
                vocab_size: 40,
                d_model: 16,
                d_kv: 4,
                d_ff: 32,
                num_layers: 2,
                num_heads: 4,
                schema_pointer: pointer,
                ..T5Architecture::t5_small()
            },
            schema_symbol_ids: pointer.then_some(TINY_SYMBOLS),
            ..T5Config::t5_small()
        }
    }

    /// [`tiny_model`], choosing schema symbols by pointing when `pointer`.
    fn tiny_model_pointing(pointer: bool) -> (T5Model, Device) {
        let config = tiny_config(pointer);
        let device = Device::Cpu;
        let varmap = candle_nn::VarMap::new();
        let model = T5Model::new(
            VarBuilder::from_varmap(&varmap, DType::F32, &device),
            &config,
        )
        .unwrap()
        .detached()
        .unwrap();
        (model, device)
    }

    #[test]
    fn cache_grows_past_its_first_buffer_and_follows_reordered_rows() {
        for pointer in [false, true] {
            incremental_decoding_matches_teacher_forcing(pointer);
        }
    }

    fn incremental_decoding_matches_teacher_forcing(pointer: bool) {
        let (model, device) = tiny_model_pointing(pointer);
        let steps = MIN_CACHE_STEPS + 6;
        // Symbols shown once, and one shown twice.
        let source = Tensor::new(&[[3u32, 31, 7, 35, 1], [5, 33, 6, 33, 1]], &device).unwrap();
        let targets: Vec<u32> = (0..2 * steps as u32).map(|i| (i * 7) % 40).collect();
        let targets = Tensor::from_vec(targets, (2, steps), &device).unwrap();
        let full = model
            .forward_train(&source, None, &targets, None, false)
            .unwrap();
        let encoded = model.encode(&source, None, false).unwrap();
        let mut cache = model.start_decoding(&source, &encoded, None).unwrap();
        let swap_at = MIN_CACHE_STEPS + 2;
        for step in 0..steps {
            // After `swap_at` the rows are swapped: row 0 continues input 1.
            let order: &[u32] = if step < swap_at { &[0, 1] } else { &[1, 0] };
            let order = Tensor::new(order, &device).unwrap();
            if step == swap_at {
                cache.reorder(&order).unwrap();
            }
            // Column `step` of `t`, rows in the cache's current order.
            let at_step = |t: &Tensor| {
                t.narrow(1, step, 1)
                    .and_then(|c| c.squeeze(1))
                    .and_then(|c| c.contiguous())
                    .and_then(|c| c.index_select(&order, 0))
                    .unwrap()
            };
            let tokens = at_step(&targets);
            let stepped = model.decode_step(&mut cache, &tokens).unwrap();
            let reference = at_step(&full);
            let diff = max_abs_diff(&stepped, &reference);
            assert!(diff < 1e-4, "step {step}: {diff}");
        }
        assert_eq!(cache.steps(), steps);
    }

    #[test]
    fn a_schema_pointer_scores_only_the_symbols_its_input_shows() {
        let (pointing, device) = tiny_model_pointing(true);
        // The same weights without the pointer: every other logit is theirs.
        let tensors = pointing
            .named_tensors()
            .into_iter()
            .filter(|(name, _)| !name.starts_with(SchemaPointer::NAME))
            .collect();
        let plain = T5Model::new(
            VarBuilder::from_tensors(tensors, DType::F32, &device),
            &tiny_config(false),
        )
        .unwrap();
        let source = Tensor::new(&[[3u32, 31, 7, 35, 1], [5, 33, 6, 2, 1]], &device).unwrap();
        let targets = Tensor::new(&[[0u32, 31, 4], [0, 33, 8]], &device).unwrap();
        let run = |model: &T5Model| {
            model
                .forward_train(&source, None, &targets, None, false)
                .unwrap()
                .to_vec3::<f32>()
                .unwrap()
        };
        let (pointed, spelled) = (run(&pointing), run(&plain));
        let shown: [&[usize]; 2] = [&[31, 35], &[33]];
        for (row, shown) in shown.iter().enumerate() {
            for step in 0..3 {
                let (p, s) = (&pointed[row][step], &spelled[row][step]);
                assert_eq!(p[..30], s[..30], "row {row} step {step}: words changed");
                for id in 30..40 {
                    if shown.contains(&id) {
                        assert!(p[id] > -1e3, "row {row}: shown <sym{}> masked", id - 30);
                        assert_ne!(p[id], s[id], "row {row}: <sym{}> not pointed", id - 30);
                    } else {
                        assert!(p[id] < -1e8, "row {row}: unshown <sym{}> open", id - 30);
                    }
                }
            }
        }
        assert_eq!(pointing.pointed_symbols(), Some(TINY_SYMBOLS));
        assert_eq!(plain.pointed_symbols(), None);
        // A pointer without symbol ids is refused, naming the field.
        let mut config = tiny_config(true);
        config.schema_symbol_ids = None;
        let varmap = candle_nn::VarMap::new();
        let error = T5Model::new(
            VarBuilder::from_varmap(&varmap, DType::F32, &device),
            &config,
        )
        .unwrap_err();
        assert!(error.to_string().contains("schema_symbol_ids"), "{error}");
    }

    #[test]
    fn following_beams_moves_the_history_as_a_reorder_does_and_only_within_a_group() {
        let (model, device) = tiny_model();
        // Two inputs, two beams each, as beam search lays them out.
        let source = Tensor::new(
            &[[3u32, 7, 9, 1], [3, 7, 9, 1], [5, 6, 2, 1], [5, 6, 2, 1]],
            &device,
        )
        .unwrap();
        let encoded = model.encode(&source, None, false).unwrap();
        let mut followed = model.start_decoding(&source, &encoded, None).unwrap();
        for tokens in [[0u32, 0, 0, 0], [4, 8, 12, 16]] {
            let tokens = Tensor::new(&tokens, &device).unwrap();
            model.decode_step(&mut followed, &tokens).unwrap();
        }
        // One beam taking another's place, beams swapping (each follows a
        // row that is itself rewritten), both beams of an input following
        // one, and no change; then a second step on the result.
        for rows in [[1u32, 1, 2, 3], [1, 0, 3, 2], [0, 0, 3, 3], [0, 1, 2, 3]] {
            let mut reordered = followed.duplicate().unwrap();
            followed.follow_beams(&rows, 2).unwrap();
            reordered
                .reorder(&Tensor::new(&rows, &device).unwrap())
                .unwrap();
            let tokens = Tensor::new(&[5u32, 6, 7, 8], &device).unwrap();
            let a = model.decode_step(&mut followed, &tokens).unwrap();
            let b = model.decode_step(&mut reordered, &tokens).unwrap();
            assert_eq!(max_abs_diff(&a, &b), 0.0, "rows {rows:?}");
            followed = reordered;
        }
        // Beam 0 of input 1 cannot continue a beam of input 0.
        let error = followed.follow_beams(&[0, 1, 0, 3], 2).unwrap_err();
        assert!(error.to_string().contains("row 2 follows row 0"), "{error}");
    }

    #[test]
    fn beams_sharing_their_input_decode_as_the_input_repeated_per_beam() {
        for pointer in [false, true] {
            let (model, device) = tiny_model_pointing(pointer);
            // Three inputs, padded, two beams each.
            let source =
                Tensor::new(&[[3u32, 31, 7, 1], [5, 33, 1, 0], [4, 9, 35, 1]], &device).unwrap();
            let mask =
                Tensor::new(&[[1u32, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]], &device).unwrap();
            let encoded = model.encode(&source, Some(&mask), false).unwrap();
            let repeat = Tensor::new(&[0u32, 0, 1, 1, 2, 2], &device).unwrap();
            let pick = |t: &Tensor| t.index_select(&repeat, 0).unwrap();
            let mut repeated = model
                .start_decoding(&pick(&source), &pick(&encoded), Some(&pick(&mask)))
                .unwrap();
            let mut shared = model
                .start_beam_decoding(&source, &encoded, Some(&mask), 2)
                .unwrap();
            let steps: [(&[u32], Option<&[u32]>); 4] = [
                (&[0, 0, 0, 0, 0, 0], None),
                (&[4, 8, 12, 16, 20, 24], Some(&[1, 1, 2, 3, 4, 5])),
                // Input 1 is done: its beams leave.
                (&[5, 6, 7, 8], Some(&[1, 0, 4, 4])),
                (&[11, 12, 13, 14], None),
            ];
            for (step, (tokens, rows)) in steps.into_iter().enumerate() {
                if let Some(rows) = rows {
                    let rows = Tensor::new(rows, &device).unwrap();
                    repeated.reorder(&rows).unwrap();
                    shared.reorder(&rows).unwrap();
                }
                let tokens = Tensor::new(tokens, &device).unwrap();
                let a = model.decode_step(&mut repeated, &tokens).unwrap();
                let b = model.decode_step(&mut shared, &tokens).unwrap();
                let diff = max_abs_diff(&a, &b);
                assert!(diff < 1e-5, "pointer {pointer}, step {step}: {diff}");
            }
            // A group may not mix the beams of two inputs.
            let mixed = Tensor::new(&[0u32, 2], &device).unwrap();
            let error = shared.reorder(&mixed).unwrap_err();
            assert!(error.to_string().contains("mixes rows"), "{error}");
        }
    }

    #[test]
    fn shift_right_starts_with_the_start_token_and_pads_ignored_labels() {
        let labels = vec![vec![5, 6, 1, -100], vec![7, 1, -100, -100]];
        assert_eq!(
            shift_right(&labels, 0, 0),
            vec![vec![0, 5, 6, 1], vec![0, 7, 1, 0]]
        );
    }

    #[test]
    fn fused_loss_and_gradient_equal_the_composed_ops_version() {
        let logits = candle_core::Var::randn(0f32, 2.0, (2, 5, 33), &Device::Cpu).unwrap();
        let label_values: Vec<i64> = vec![3, 0, 32, -100, 7, 1, -100, -100, 20, 5];
        let labels = Tensor::from_vec(label_values.clone(), (2, 5), &Device::Cpu).unwrap();
        let fused = loss(logits.as_tensor(), &labels).unwrap();
        let composed = loss_composed(logits.as_tensor(), &label_values, 7).unwrap();
        let (f, c) = (
            fused.to_scalar::<f32>().unwrap(),
            composed.to_scalar::<f32>().unwrap(),
        );
        assert!((f - c).abs() < 1e-5, "loss {f} vs {c}");
        let fused_grad = (fused * 3.0).unwrap().backward().unwrap();
        let composed_grad = (composed * 3.0).unwrap().backward().unwrap();
        let diff = max_abs_diff(
            fused_grad.get(logits.as_tensor()).unwrap(),
            composed_grad.get(logits.as_tensor()).unwrap(),
        );
        assert!(diff < 1e-6, "gradients differ by {diff}");
    }

    #[test]
    fn loss_rejects_labels_it_cannot_use() {
        let logits = Tensor::zeros((1, 2, 4), DType::F32, &Device::Cpu).unwrap();
        let all_ignored = Tensor::new(&[[-100i64, -100]], &Device::Cpu).unwrap();
        assert!(loss(&logits, &all_ignored)
            .unwrap_err()
            .to_string()
            .contains("ignored"));
        let too_big = Tensor::new(&[[1i64, 9]], &Device::Cpu).unwrap();
        assert!(loss(&logits, &too_big)
            .unwrap_err()
            .to_string()
            .contains("label 9"));
        // Uniform logits: the loss is log(vocab).
        let fine = Tensor::new(&[[1i64, -100]], &Device::Cpu).unwrap();
        let value = loss(&logits, &fine).unwrap().to_scalar::<f32>().unwrap();
        assert!((value - 4f32.ln()).abs() < 1e-6);
    }
}
