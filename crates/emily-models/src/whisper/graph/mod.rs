//! Whisper as `emily-nn` graphs: the encoder, the decoder's cross-attention
//! K/V projections (once per window), the decoder step (static KV caches
//! written at an offset) and the decoder head (final norm, tied-embedding
//! logits of the last position), all on one [`ParamStore`] keyed by Hugging
//! Face names.
//!
//! [`WhisperGraph::new`] builds the composed graphs (norms and attention
//! written from primitive ops); [`WhisperGraph::with_fast_kernels`] rewrites
//! them with [`emily_nn::fast_kernels::apply`] — same nodes, edges and
//! parameters, fused implementations — and serves them from the same store.

mod batch;
mod blocks;
mod cross_kv;
mod decoder;
mod encoder;
mod head;
mod logits;
pub mod names;
mod params;
mod state;
mod tokens;

pub use batch::{regroup_rows, BatchDecoderState, Joiner};
pub use cross_kv::cross_kv_model;
pub use decoder::{
    decoder_align_model, decoder_batch_step_model, decoder_rows_step_model, decoder_step_model,
};
pub use encoder::encoder_model;
pub use head::{decoder_head_model, decoder_norm_model};
pub use params::{
    checkpoint_name, encoder_bf16, encoder_int8, keeps_stored_precision, param_store, TIED_OUTPUT,
    TOKEN_EMBEDDING,
};
pub use state::GraphDecoderState;
pub use tokens::TokenTable;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use emily::{DType, Tensor};
use emily_kernels::gemv_i8::I8Rows;
use emily_nn::{fast_kernels, Forward, Mode, Model, ParamStore, Report};

use super::ComputeType;
use super::{WhisperCheckpoint, WhisperDims};
use crate::weights::WeightsError;
use names::{DECODER_HIDDEN_STATES, ENCODER_HIDDEN_STATES, INPUT_EMBEDS, INPUT_FEATURES, OFFSET};

/// Errors of the Whisper graphs; each names the node, tensor or input.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Building or running a graph.
    #[error(transparent)]
    Nn(#[from] emily_nn::Error),
    /// A tensor op outside the graphs.
    #[error(transparent)]
    Tensor(#[from] emily::Error),
    /// A checkpoint tensor is missing or misshapen.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// An input of the wrong shape.
    #[error("whisper graph: {0}")]
    Input(String),
}

/// One `emily-nn` model, compiled over the shared store.
struct Served {
    model: Model,
    forward: Forward,
}

impl Served {
    fn new(model: Model, params: &ParamStore) -> Result<Served, GraphError> {
        let forward = model.build(params, Mode::Inference)?;
        Ok(Served { model, forward })
    }
}

/// Whisper's encoder, cross-K/V, decoder-step and decoder-head graphs with
/// their shared parameter store and compiled forwards. Share it across
/// threads by reference or `Arc`.
pub struct WhisperGraph {
    dims: WhisperDims,
    params: ParamStore,
    encoder: Served,
    cross_kv: Served,
    decoder: Served,
    /// The decoder step over rows at different positions ([`batch`]).
    decoder_batch: Served,
    /// The decoder step with the cross-attention queries as outputs (word
    /// alignment only).
    decoder_align: Served,
    /// The single-token step of several rows sharing one window's cross
    /// keys and values (beams, samples).
    decoder_rows: Served,
    /// The final norm and logits, or the final norm alone when the logits
    /// run on the int8 GEMV (`int8_logits`).
    head: Served,
    /// The tied embedding as int8 rows for the logits ([`ComputeType::int8_logits`]).
    int8_logits: Option<Arc<I8Rows>>,
    /// Where the step's token embedding rows are gathered from.
    tokens: TokenTable,
    fast: Option<Vec<Report>>,
}

impl WhisperGraph {
    /// Builds the composed graphs for `ck` and binds its weights.
    pub fn new(ck: &WhisperCheckpoint) -> Result<WhisperGraph, GraphError> {
        Self::with_compute(ck, ComputeType::F32)
    }

    /// [`WhisperGraph::new`] with the encoder prepared for `compute`
    /// (`Auto` is resolved for this CPU): bf16 matrices at load, or int8
    /// projections (`emily_nn::quantize::int8_projections`).
    pub fn with_compute(
        ck: &WhisperCheckpoint,
        compute: ComputeType,
    ) -> Result<WhisperGraph, GraphError> {
        // Before resolving: `auto` holds f16 cross keys and values even
        // where it resolves to f32.
        let cross = compute.cross_kv_dtype();
        let encoder_stored = compute.encoder_stored_weights();
        let compute = compute.resolve();
        let dims = ck.dims;
        // Under `Bf16` the attention cores run on bf16 too where bf16 dot
        // products are the fast path (the int8 types' quantized attention
        // does so already).
        let mut encoder = encoder_model(&dims, compute)?;
        let mut cross_kv = cross_kv_model(&dims, cross)?;
        if compute.int8_encoder() {
            encoder = emily_nn::quantize::int8_projections(&encoder)?.0;
        }
        if compute.int8_encoder() {
            // The cross-attention K/V projections read all 1500 encoder rows
            // once per window: a GEMM, on the int8 engine like the encoder's.
            cross_kv = emily_nn::quantize::int8_projections(&cross_kv)?.0;
        }
        let head = if compute.int8_logits() {
            decoder_norm_model(&dims)?
        } else {
            decoder_head_model(&dims)?
        };
        let models = [
            encoder,
            cross_kv,
            decoder_step_model(&dims, cross)?,
            head,
            decoder_batch_step_model(&dims, cross)?,
            decoder_align_model(&dims, cross)?,
            decoder_rows_step_model(&dims, cross)?,
        ];
        let params = param_store(
            ck,
            &models.iter().collect::<Vec<_>>(),
            compute,
            encoder_stored,
        )?;
        let [encoder, cross_kv, decoder, head, decoder_batch, decoder_align, decoder_rows] = models;
        let embedding = ck
            .weights
            .get_shaped(TOKEN_EMBEDDING, &[dims.n_vocab, dims.d_model])?;
        let int8_logits = if compute.int8_logits() {
            let rows = logits::int8_rows("token embedding", embedding)?;
            // Packing read the whole table: its file pages need not stay.
            embedding.release_pages();
            Some(Arc::new(rows))
        } else {
            None
        };
        let tokens = match &int8_logits {
            Some(rows) if compute == ComputeType::Int8 => TokenTable::Int8(rows.clone()),
            _ => TokenTable::stored(embedding)?,
        };
        Ok(WhisperGraph {
            dims,
            encoder: Served::new(encoder, &params)?,
            cross_kv: Served::new(cross_kv, &params)?,
            decoder: Served::new(decoder, &params)?,
            decoder_batch: Served::new(decoder_batch, &params)?,
            decoder_align: Served::new(decoder_align, &params)?,
            decoder_rows: Served::new(decoder_rows, &params)?,
            head: Served::new(head, &params)?,
            params,
            int8_logits,
            tokens,
            fast: None,
        })
    }

    /// The same graphs rewritten by [`fast_kernels::apply`] (layer norms and
    /// attention fused), served from the same parameter store.
    pub fn with_fast_kernels(&self) -> Result<WhisperGraph, GraphError> {
        let rewrite = |s: &Served| -> Result<(Served, Report), GraphError> {
            let r = fast_kernels::apply(&s.model)?;
            Ok((Served::new(r.model, &self.params)?, r.report))
        };
        let (encoder, r0) = rewrite(&self.encoder)?;
        let (cross_kv, r1) = rewrite(&self.cross_kv)?;
        let (decoder, r2) = rewrite(&self.decoder)?;
        let (head, r3) = rewrite(&self.head)?;
        let (decoder_batch, _) = rewrite(&self.decoder_batch)?;
        let (decoder_align, _) = rewrite(&self.decoder_align)?;
        let (decoder_rows, _) = rewrite(&self.decoder_rows)?;
        Ok(WhisperGraph {
            dims: self.dims,
            params: self.params.clone(),
            encoder,
            cross_kv,
            decoder,
            decoder_batch,
            decoder_align,
            decoder_rows,
            head,
            int8_logits: self.int8_logits.clone(),
            tokens: self.tokens.clone(),
            fast: Some(vec![r0, r1, r2, r3]),
        })
    }

    /// Model sizes.
    pub fn dims(&self) -> &WhisperDims {
        &self.dims
    }

    /// The shared parameter store (Hugging Face names).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The encoder graph.
    pub fn encoder_model(&self) -> &Model {
        &self.encoder.model
    }

    /// The decoder's cross-attention K/V graph (run once per window).
    pub fn cross_kv_model(&self) -> &Model {
        &self.cross_kv.model
    }

    /// The decoder-step graph.
    pub fn decoder_model(&self) -> &Model {
        &self.decoder.model
    }

    /// The decoder-head graph (final norm and logits).
    pub fn head_model(&self) -> &Model {
        &self.head.model
    }

    /// The four graphs, named: `encoder`, `decoder.cross_kv`, `decoder.step`,
    /// `decoder.head`.
    pub fn models(&self) -> [(&'static str, &Model); 4] {
        [
            ("encoder", &self.encoder.model),
            ("decoder.cross_kv", &self.cross_kv.model),
            ("decoder.step", &self.decoder.model),
            ("decoder.head", &self.head.model),
        ]
    }

    /// The fast-kernels reports (in [`WhisperGraph::models`] order), if rewritten.
    pub fn fast_kernel_reports(&self) -> Option<&[Report]> {
        self.fast.as_deref()
    }

    /// Op frequencies over all four graphs, most frequent first (ties by name).
    pub fn op_frequencies(&self) -> Vec<(String, usize)> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for (_, m) in self.models() {
            for (op, n) in m.op_frequencies() {
                *counts.entry(op).or_default() += n;
            }
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// The `Display` summary of every graph, each under its name.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (name, m) in self.models() {
            let _ = writeln!(s, "== {name} ==\n{m}\n");
        }
        if let Some(reports) = &self.fast {
            for ((name, _), r) in self.models().iter().zip(reports) {
                let _ = writeln!(s, "{name}: {r}");
            }
        }
        s.trim_end().to_string()
    }

    /// Log-mel features `(B, n_mels, 3000)` → encoder output `(B, 1500, d)`.
    pub fn encode(&self, mel: &Tensor) -> Result<Tensor, GraphError> {
        let out = self.encoder.forward.call(&[(INPUT_FEATURES, mel)])?;
        Ok(out.into_tensors().remove(0))
    }

    /// Number of fused `emily::fast` kernels the encoder's compiled plan runs
    /// (0 for the composed graphs): proof that the fast-kernel graphs really
    /// run fused kernels.
    pub fn encoder_fast_ops(&self) -> Result<usize, GraphError> {
        let shape = [1, self.dims.n_mels, 2 * self.dims.n_audio_ctx];
        let mel = Tensor::zeros(&shape, DType::F32)?;
        Ok(self
            .encoder
            .forward
            .num_fast_ops(&[(INPUT_FEATURES, &mel)])?)
    }

    /// Decoder state for encoder output `enc` `(B, 1500, d)`: the window's
    /// cross keys and values, and empty self-attention caches.
    pub fn start(&self, enc: &Tensor) -> Result<GraphDecoderState, GraphError> {
        let out = self
            .cross_kv
            .forward
            .call(&[(ENCODER_HIDDEN_STATES, enc)])?;
        let cross = out
            .names()
            .map(str::to_string)
            .zip(out.tensors().iter().cloned())
            .collect();
        Ok(GraphDecoderState::new(cross))
    }

    /// One decoder step over `tokens` `(B, T)` i64 at positions
    /// `offset..offset+T` (`offset` a one-element i64 tensor): updates the
    /// caches in `state` and returns the last position's logits `(B, vocab)`.
    pub fn step(
        &self,
        tokens: &Tensor,
        offset: &Tensor,
        state: &mut GraphDecoderState,
    ) -> Result<Tensor, GraphError> {
        let t = tokens.shape().get(1).copied().unwrap_or(0);
        let logits = self.step_at(tokens, offset, state, &[t.saturating_sub(1)])?;
        let (b, v) = (logits.shape()[0], self.dims.n_vocab);
        Ok(logits.reshape_to(&[b, v])?)
    }

    /// [`WhisperGraph::step`] returning the logits `(B, P, vocab)` at the
    /// token positions `positions` (indices into `0..T`, in any order).
    pub fn step_at(
        &self,
        tokens: &Tensor,
        offset: &Tensor,
        state: &mut GraphDecoderState,
        positions: &[usize],
    ) -> Result<Tensor, GraphError> {
        // With several threads the whole step runs on one of the pool's
        // threads: the decoder's replay, the head's and the int8 logits then
        // fork their kernels directly, instead of each handing its work to
        // the pool and waiting to be woken (as `Plan::run_arrays` does for
        // one plan). A one-thread pool runs everything on the caller.
        if emily_kernels::parallel::num_threads() > 1 {
            return emily_kernels::parallel::pool()
                .install(|| self.step_at_here(tokens, offset, state, positions));
        }
        self.step_at_here(tokens, offset, state, positions)
    }

    /// [`WhisperGraph::step_at`] on the calling thread.
    fn step_at_here(
        &self,
        tokens: &Tensor,
        offset: &Tensor,
        state: &mut GraphDecoderState,
        positions: &[usize],
    ) -> Result<Tensor, GraphError> {
        let t = tokens.shape().get(1).copied().unwrap_or(0);
        let b = tokens.shape().first().copied().unwrap_or(0);
        if b != state.rows() {
            return Err(GraphError::Input(format!(
                "{b} token rows for a decoder state of {} rows",
                state.rows()
            )));
        }
        // Rows that share the window's cross keys/values (one copy for all).
        let served = if state.shares_cross() {
            if t != 1 {
                return Err(GraphError::Input(format!(
                    "rows sharing a window step one token at a time, got {t}"
                )));
            }
            &self.decoder_rows
        } else {
            &self.decoder
        };
        let hidden = self
            .run_decoder(served, tokens, offset, state, positions)?
            .remove(0);
        self.logits_at(hidden, t, positions)
    }

    /// The head on the hidden states `(B, T, d)` at `positions`: `(B, P, vocab)`.
    fn logits_at(
        &self,
        hidden: Tensor,
        t: usize,
        positions: &[usize],
    ) -> Result<Tensor, GraphError> {
        let picked = if positions.len() == t && positions.iter().enumerate().all(|(i, &p)| i == p) {
            hidden
        } else if let [p] = positions {
            hidden.narrow(1, *p, 1)?
        } else {
            let idx: Vec<i64> = positions.iter().map(|&p| p as i64).collect();
            hidden.index_select(&Tensor::from_slice(&idx, &[idx.len()])?, 1)?
        };
        let out = self
            .head
            .forward
            .call(&[(DECODER_HIDDEN_STATES, &picked)])?
            .into_tensors()
            .remove(0);
        match &self.int8_logits {
            Some(rows) => logits::int8_logits(rows, &out),
            None => Ok(out),
        }
    }

    /// The int8 rows the logits run on, if they do ([`ComputeType::int8_logits`]).
    pub fn int8_logits(&self) -> Option<&I8Rows> {
        self.int8_logits.as_deref()
    }

    /// Where the decoder step's token embedding rows come from.
    pub fn token_table(&self) -> &TokenTable {
        &self.tokens
    }

    /// The decoder over a whole token sequence `(1, T)` from position 0 in a
    /// fresh `state`, for word alignment: the logits at every position
    /// `(1, T, vocab)` and every layer's cross-attention queries
    /// `(1, H, T, d/H)`.
    pub fn align_forward(
        &self,
        tokens: &Tensor,
        state: &mut GraphDecoderState,
    ) -> Result<(Tensor, Vec<Tensor>), GraphError> {
        let zero = Tensor::from_slice(&[0i64], &[1])?;
        let t = tokens.shape().get(1).copied().unwrap_or(0);
        let all: Vec<usize> = (0..t).collect();
        let mut outs = self.run_decoder(&self.decoder_align, tokens, &zero, state, &all)?;
        let hidden = outs.remove(0);
        Ok((self.logits_at(hidden, t, &all)?, outs))
    }

    /// The decoder's cross-attention keys of layer `layer` in `state`
    /// `(B, H, 1500, d/H)`, f32 or f16 ([`ComputeType::cross_kv_dtype`]).
    pub fn cross_keys<'s>(&self, state: &'s GraphDecoderState, layer: usize) -> Option<&'s Tensor> {
        let name = names::cross_keys(layer);
        state.cross.iter().find(|(n, _)| *n == name).map(|(_, t)| t)
    }

    /// The head on the last position of a step's hidden states `(B, T, d)`:
    /// logits `(B, vocab)`.
    fn logits_of_last(&self, hidden: Tensor, b: usize, t: usize) -> Result<Tensor, GraphError> {
        let logits = self.logits_at(hidden, t, &[t.saturating_sub(1)])?;
        Ok(logits.reshape_to(&[b, self.dims.n_vocab])?)
    }

    /// The batched decoder-step graph (rows at different positions).
    pub fn decoder_batch_model(&self) -> &Model {
        &self.decoder_batch.model
    }

    /// Plans the decoder step has compiled: one per distinct `(B, T)` (a
    /// prompt, then one for every single-token step at any offset).
    pub fn decoder_step_plans(&self) -> usize {
        self.decoder.forward.num_plans()
    }
}

impl WhisperGraph {
    /// Runs a decoder step graph (`decoder`, `decoder_rows` or
    /// `decoder_align`) on checked inputs; returns its outputs.
    fn run_decoder(
        &self,
        served: &Served,
        tokens: &Tensor,
        offset: &Tensor,
        state: &mut GraphDecoderState,
        positions: &[usize],
    ) -> Result<Vec<Tensor>, GraphError> {
        let (offset, t) = check_step_inputs(tokens, offset, positions)?;
        let ids = tokens.cast(DType::I64)?.to_vec::<i64>()?;
        let embeds = self.tokens.embed(&ids, tokens.shape()[0], t)?;
        let mut inputs: Vec<(&str, &Tensor)> = vec![(INPUT_EMBEDS, &embeds), (OFFSET, &offset)];
        inputs.extend(state.cross.iter().map(|(n, t)| (n.as_str(), t)));
        let out = served.forward.call_with_state(&inputs, &mut state.caches)?;
        Ok(out.into_tensors())
    }
}

/// Checks a step's `(B, T)` tokens and the positions wanted from them; returns
/// the offset as a `[1]` i64 tensor and `T`.
fn check_step_inputs(
    tokens: &Tensor,
    offset: &Tensor,
    positions: &[usize],
) -> Result<(Tensor, usize), GraphError> {
    if tokens.rank() != 2 || tokens.shape()[1] == 0 {
        return Err(GraphError::Input(format!(
            "tokens must be (B, T) with T > 0, got {:?}",
            tokens.shape()
        )));
    }
    let t = tokens.shape()[1];
    if positions.is_empty() || positions.iter().any(|&p| p >= t) {
        return Err(GraphError::Input(format!(
            "positions {positions:?} must be a non-empty list below T = {t}"
        )));
    }
    let offset = if offset.shape() == [1] && offset.dtype() == DType::I64 {
        offset.clone()
    } else {
        offset.cast(DType::I64)?.reshape_to(&[1])?
    };
    Ok((offset, t))
}
