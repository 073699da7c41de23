//! Batched decoding: several sequences (windows of different requests) in
//! one decoder step, so the decoder's weights — the cost of a step — are
//! read once for the whole batch.
//!
//! Rows share one cache write slot (`offset`) but not their positions: row
//! `r`'s tokens occupy cache slots `start_r..offset` and its positions run
//! from 0, so a row can join a batch that is already decoding (continuous
//! batching). A row's cache slots are unmasked by the step's key mask; the
//! causal rule masks the slots not yet written. A joining row is prefilled
//! alone (its prompt written at `offset - len`), then its caches and cross
//! keys/values are stacked onto the batch's; a finished row is dropped by
//! selecting the others. When the slots run short, the batch's caches are
//! shifted left over slots no row uses any more.

use emily::{DType, Tensor};
use emily_nn::State;

use super::names::{INPUT_IDS, KEY_MASK, OFFSET, POSITION_IDS};
use super::{GraphError, WhisperGraph};

/// One row of a batch: where its slots start, how many tokens it has fed,
/// and the furthest slot it may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Row {
    start: usize,
    fed: usize,
    end: usize,
}

/// The decoder state of a batch of sequences, made empty by
/// [`BatchDecoderState::new`], grown by [`WhisperGraph::batch_join`],
/// advanced by [`WhisperGraph::batch_step`], shrunk by
/// [`BatchDecoderState::retain`].
#[derive(Debug, Default)]
pub struct BatchDecoderState {
    caches: Vec<(String, Tensor)>,
    cross: Vec<(String, Tensor)>,
    offset: usize,
    rows: Vec<Row>,
}

fn shape_err(msg: String) -> GraphError {
    GraphError::Input(format!("batched decoder: {msg}"))
}

/// Stacks `a` and `b` (same names, same order) along the batch axis.
fn stack(
    a: Vec<(String, Tensor)>,
    b: Vec<(String, Tensor)>,
) -> Result<Vec<(String, Tensor)>, GraphError> {
    if a.is_empty() {
        return Ok(b);
    }
    if a.len() != b.len() {
        return Err(shape_err(format!("{} entries vs {}", a.len(), b.len())));
    }
    a.into_iter()
        .zip(b)
        .map(|((na, ta), (nb, tb))| {
            if na != nb {
                return Err(shape_err(format!("entry `{na}` vs `{nb}`")));
            }
            Ok((na, Tensor::concat(&[&ta, &tb], 0)?.eval()?))
        })
        .collect()
}

impl BatchDecoderState {
    /// An empty batch.
    pub fn new() -> BatchDecoderState {
        BatchDecoderState::default()
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no row is decoding.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Keeps the rows whose `keep` entry is true (in order), dropping the
    /// others' caches and cross keys/values.
    pub fn retain(&mut self, keep: &[bool]) -> Result<(), GraphError> {
        if keep.len() != self.rows.len() {
            return Err(shape_err(format!(
                "{} flags for {} rows",
                keep.len(),
                self.rows.len()
            )));
        }
        if keep.iter().all(|&k| k) {
            return Ok(());
        }
        let idx: Vec<i64> = (0..keep.len())
            .filter(|&i| keep[i])
            .map(|i| i as i64)
            .collect();
        if idx.is_empty() {
            *self = BatchDecoderState::new();
            return Ok(());
        }
        let idx = Tensor::from_slice(&idx, &[idx.len()])?;
        let select = |v: &mut Vec<(String, Tensor)>| -> Result<(), GraphError> {
            for (_, t) in v.iter_mut() {
                *t = t.index_select(&idx, 0)?.eval()?;
            }
            Ok(())
        };
        select(&mut self.caches)?;
        select(&mut self.cross)?;
        let mut i = 0;
        self.rows.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        Ok(())
    }

    /// Moves every cache by `shift` slots (negative = left), filling with zeros.
    fn shift(&mut self, shift: isize, ctx: usize) -> Result<(), GraphError> {
        if shift == 0 {
            return Ok(());
        }
        let s = shift.unsigned_abs();
        for (_, t) in self.caches.iter_mut() {
            let (keep_from, pads) = if shift < 0 {
                (s, [(0, 0), (0, 0), (0, s), (0, 0)])
            } else {
                (0, [(0, 0), (0, 0), (s, 0), (0, 0)])
            };
            *t = t.narrow(2, keep_from, ctx - s)?.pad(&pads, 0.0)?.eval()?;
        }
        for r in &mut self.rows {
            r.start = r.start.wrapping_add_signed(shift);
            r.end = r.end.wrapping_add_signed(shift);
        }
        self.offset = self.offset.wrapping_add_signed(shift);
        Ok(())
    }

    /// The write slot a row with a `len`-token prompt and `max_new` tokens to
    /// generate can join at, shifting the batch if that makes room; `None`
    /// when it must wait for rows to finish.
    fn make_room(
        &mut self,
        len: usize,
        max_new: usize,
        ctx: usize,
    ) -> Result<Option<usize>, GraphError> {
        if self.rows.is_empty() {
            self.caches.clear();
            self.cross.clear();
            self.offset = len;
            return Ok((len + max_new <= ctx).then_some(len));
        }
        let min_start = self.rows.iter().map(|r| r.start).min().unwrap_or(0);
        let max_end = self.rows.iter().map(|r| r.end).max().unwrap_or(0);
        // As far left as the rows allow, but with `len` slots for the prompt.
        let target = (self.offset - min_start).max(len);
        let shift = target as isize - self.offset as isize;
        let fits = max_end as isize + shift <= ctx as isize && target + max_new <= ctx;
        if !fits {
            return Ok(None);
        }
        self.shift(shift, ctx)?;
        Ok(Some(self.offset))
    }
}

/// The key mask `(rows, ctx)`: slot `j` belongs to row `r` when `j ≥ start_r`.
fn key_mask(rows: &[Row], ctx: usize) -> Result<Tensor, GraphError> {
    let mut m = vec![0u8; rows.len() * ctx];
    for (r, row) in rows.iter().enumerate() {
        m[r * ctx + row.start..(r + 1) * ctx].fill(1);
    }
    Ok(Tensor::from_slice(&m, &[rows.len(), ctx])?.cast(DType::Bool)?)
}

/// The tokens of one batched call: ids and positions, both `(B, len)`.
struct StepTokens<'a> {
    ids: &'a [i64],
    positions: &'a [i64],
    len: usize,
}

impl WhisperGraph {
    /// Runs the batched step graph on `tokens`, writing slot `offset`, and
    /// returns the last position's logits `(B, vocab)`.
    fn batch_call(
        &self,
        tokens: StepTokens<'_>,
        offset: usize,
        rows: &[Row],
        caches: &mut State,
        cross: &[(String, Tensor)],
    ) -> Result<Tensor, GraphError> {
        let (b, t) = (rows.len(), tokens.len);
        let ctx = self.dims.n_text_ctx;
        let ids = Tensor::from_slice(tokens.ids, &[b, t])?;
        let pos = Tensor::from_slice(tokens.positions, &[b, t])?;
        let off = Tensor::from_slice(&[offset as i64], &[1])?;
        let mask = key_mask(rows, ctx)?;
        let mut inputs: Vec<(&str, &Tensor)> = vec![
            (INPUT_IDS, &ids),
            (OFFSET, &off),
            (POSITION_IDS, &pos),
            (KEY_MASK, &mask),
        ];
        inputs.extend(cross.iter().map(|(n, t)| (n.as_str(), t)));
        let out = self
            .decoder_batch
            .forward
            .call_with_state(&inputs, caches)?;
        self.logits_of_last(out.into_tensors().remove(0), b, t)
    }

    /// Adds a sequence to `state`: the window's encoder output `enc`
    /// `(1, 1500, d)`, its `prompt`, and the most tokens it may generate.
    /// Returns the logits after the prompt, or `None` when the batch has no
    /// room until some rows finish (nothing is changed then).
    pub fn batch_join(
        &self,
        state: &mut BatchDecoderState,
        enc: &Tensor,
        prompt: &[u32],
        max_new: usize,
    ) -> Result<Option<Vec<f32>>, GraphError> {
        let ctx = self.dims.n_text_ctx;
        let len = prompt.len();
        if len == 0 || enc.rank() != 3 || enc.shape()[0] != 1 {
            return Err(shape_err(format!(
                "a row needs a prompt and a (1, frames, d) encoder output; got {len} tokens, {:?}",
                enc.shape()
            )));
        }
        let Some(offset) = state.make_room(len, max_new, ctx)? else {
            return Ok(None);
        };
        let start = offset - len;
        let row = Row {
            start,
            fed: len,
            end: offset + max_new,
        };
        let cross = self.start(enc)?.cross;
        let tokens: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
        let positions: Vec<i64> = (0..len as i64).collect();
        let mut caches = State::new();
        let logits = self.batch_call(
            StepTokens {
                ids: &tokens,
                positions: &positions,
                len,
            },
            start,
            &[row],
            &mut caches,
            &cross,
        )?;
        let logits = logits.cast(DType::F32)?.to_vec::<f32>()?;
        state.caches = stack(std::mem::take(&mut state.caches), caches.into_entries())?;
        state.cross = stack(std::mem::take(&mut state.cross), cross)?;
        state.rows.push(row);
        Ok(Some(logits))
    }

    /// One decoder step of every row: `tokens[r]` is row `r`'s next token.
    /// Returns each row's logits.
    pub fn batch_step(
        &self,
        state: &mut BatchDecoderState,
        tokens: &[u32],
    ) -> Result<Vec<Vec<f32>>, GraphError> {
        let b = state.rows.len();
        if tokens.len() != b || b == 0 {
            return Err(shape_err(format!("{} tokens for {b} rows", tokens.len())));
        }
        if let Some(r) = state.rows.iter().find(|r| state.offset >= r.end) {
            return Err(shape_err(format!(
                "a row ending at slot {} cannot write slot {}",
                r.end, state.offset
            )));
        }
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let positions: Vec<i64> = state.rows.iter().map(|r| r.fed as i64).collect();
        let mut caches = State::from_entries(std::mem::take(&mut state.caches));
        let result = self.batch_call(
            StepTokens {
                ids: &ids,
                positions: &positions,
                len: 1,
            },
            state.offset,
            &state.rows,
            &mut caches,
            &state.cross,
        );
        state.caches = caches.into_entries();
        let logits = result?.cast(DType::F32)?.to_vec::<f32>()?;
        state.offset += 1;
        for r in &mut state.rows {
            r.fed += 1;
        }
        let v = self.dims.n_vocab;
        Ok(logits.chunks_exact(v).map(<[f32]>::to_vec).collect())
    }
}
