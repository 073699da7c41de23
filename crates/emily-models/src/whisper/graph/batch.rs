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
//! keys/values are stacked onto the batch's; a finished row's place is
//! taken by the batch's last row (callers reorder their rows with
//! [`regroup_rows`]). When the slots run short, the batch's caches are
//! shifted left over slots no row uses any more.

use emily::{DType, Tensor};
use emily_nn::State;

use super::names::{INPUT_EMBEDS, KEY_MASK, OFFSET, POSITION_IDS};
use super::{GraphError, WhisperGraph};
use crate::batch_rows::fill_from_the_end;
pub use crate::batch_rows::regroup_rows;

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
    /// Most rows the batch will hold ([`BatchDecoderState::with_max_rows`]):
    /// the room its buffers grow to.
    max_rows: Option<usize>,
}

fn shape_err(msg: String) -> GraphError {
    GraphError::Input(format!("batched decoder: {msg}"))
}

/// `base`'s rows followed by the rows `picks` names (`(source, row)`, in
/// order) of `sources`, stacked along the batch axis (all with the same
/// names in the same order; an empty `base` is none). The new rows are
/// appended to `base`'s buffers, in place where they have room, else into
/// buffers with room for `reserve` rows, so a row joining a batch that one
/// left copies its own rows only.
fn stack_rows(
    base: Vec<(String, Tensor)>,
    sources: &[Vec<(String, Tensor)>],
    picks: &[(usize, usize)],
    reserve: usize,
) -> Result<Vec<(String, Tensor)>, GraphError> {
    // Consecutive rows of one source are taken as one slice.
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for &(src, row) in picks {
        match runs.last_mut() {
            Some((s, start, len)) if *s == src && *start + *len == row => *len += 1,
            _ => runs.push((src, row, 1)),
        }
    }
    let Some(first) = sources.first() else {
        return Ok(base);
    };
    if let Some(p) = sources.iter().find(|p| p.len() != first.len()) {
        return Err(shape_err(format!("{} entries vs {}", first.len(), p.len())));
    }
    if !base.is_empty() && base.len() != first.len() {
        return Err(shape_err(format!(
            "{} entries vs {}",
            base.len(),
            first.len()
        )));
    }
    let mut base = base.into_iter();
    (0..first.len())
        .map(|e| {
            let name = &first[e].0;
            let mut tensors: Vec<Tensor> = Vec::with_capacity(runs.len());
            for &(src, start, len) in &runs {
                let (n, t) = &sources[src][e];
                if n != name {
                    return Err(shape_err(format!("entry `{name}` vs `{n}`")));
                }
                tensors.push(if start == 0 && len == t.shape()[0] {
                    t.clone()
                } else {
                    t.narrow(0, start, len)?
                });
            }
            let refs: Vec<&Tensor> = tensors.iter().collect();
            let stacked = match (base.next(), refs.as_slice()) {
                (Some((n, _)), _) if n != *name => {
                    return Err(shape_err(format!("entry `{name}` vs `{n}`")));
                }
                (Some((_, b)), more) => b.append_rows(more, reserve)?,
                (None, [one]) => (*one).clone().eval()?,
                (None, many) => Tensor::concat(many, 0)?.eval()?,
            };
            Ok((name.clone(), stacked))
        })
        .collect()
}

impl BatchDecoderState {
    /// An empty batch. When a join outgrows its buffers, the new ones have
    /// room for the next power of two of rows, so rows that join after
    /// others left are written in place.
    pub fn new() -> BatchDecoderState {
        BatchDecoderState::default()
    }

    /// An empty batch that will hold at most `rows` rows: its buffers never
    /// grow room beyond that (a server's batch limit; the room of a tiny.en
    /// row is about 15 MB, of a base row 30 MB).
    pub fn with_max_rows(rows: usize) -> BatchDecoderState {
        BatchDecoderState {
            max_rows: Some(rows),
            ..BatchDecoderState::default()
        }
    }

    /// The rows of room for a batch of `rows` rows.
    fn room_for(&self, rows: usize) -> usize {
        let room = rows.next_power_of_two();
        self.max_rows.map_or(room, |m| room.min(m)).max(rows)
    }

    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no row is decoding.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Keeps the rows whose `keep` entry is true, dropping the others'
    /// caches and cross keys/values, and returns the kept rows' old indices
    /// in their new order. A dropped row's place goes to the last kept row
    /// (of those past the new row count), so a departure moves one row's
    /// buffers rather than every row after it (tiny.en, the second of four
    /// rows leaving: 2.6–3.2 → 1.3–2.1 ms on the Xeon with AMX).
    pub fn retain(&mut self, keep: &[bool]) -> Result<Vec<usize>, GraphError> {
        if keep.len() != self.rows.len() {
            return Err(shape_err(format!(
                "{} flags for {} rows",
                keep.len(),
                self.rows.len()
            )));
        }
        let order = fill_from_the_end(keep);
        if order.len() == keep.len() {
            return Ok(order);
        }
        if order.is_empty() {
            *self = BatchDecoderState {
                max_rows: self.max_rows,
                ..BatchDecoderState::default()
            };
            return Ok(order);
        }
        // By value, so each buffer's only handle moves its kept rows in place.
        let select = |v: &mut Vec<(String, Tensor)>| -> Result<(), GraphError> {
            *v = std::mem::take(v)
                .into_iter()
                .map(|(n, t)| Ok((n, t.retain_rows(&order)?)))
                .collect::<Result<_, GraphError>>()?;
            Ok(())
        };
        select(&mut self.caches)?;
        select(&mut self.cross)?;
        self.rows = order.iter().map(|&i| self.rows[i]).collect();
        Ok(order)
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

    /// Shifts the batch so that its write slot leaves room for the longest
    /// of the joining prompts and picks the joiners that fit (`(len,
    /// max_new)` each, in order); returns the new write slot and which
    /// joiners fit. Nothing changes when none fits.
    fn make_room(
        &mut self,
        joiners: &[(usize, usize)],
        ctx: usize,
    ) -> Result<(usize, Vec<bool>), GraphError> {
        if self.rows.is_empty() {
            self.caches.clear();
            self.cross.clear();
            self.offset = 0;
        }
        // As far left as the running rows allow.
        let min_start = self
            .rows
            .iter()
            .map(|r| r.start)
            .min()
            .unwrap_or(self.offset);
        let max_end = self.rows.iter().map(|r| r.end).max().unwrap_or(0);
        let base = self.offset - min_start;
        let (mut target, mut max_new_all) = (base, 0);
        let mut fits = vec![false; joiners.len()];
        for (i, &(len, max_new)) in joiners.iter().enumerate() {
            let t = target.max(len);
            let m = max_new_all.max(max_new);
            let shift = t as isize - self.offset as isize;
            if max_end as isize + shift <= ctx as isize && t + m <= ctx {
                (target, max_new_all) = (t, m);
                fits[i] = true;
            }
        }
        if fits.iter().any(|&f| f) {
            self.shift(target as isize - self.offset as isize, ctx)?;
        }
        Ok((target, fits))
    }
}

/// A sequence joining a batch: its window's encoder output `(1, frames, d)`,
/// its prompt, and the most tokens it may generate.
#[derive(Clone, Copy, Debug)]
pub struct Joiner<'a> {
    /// The window's encoder output `(1, frames, d)`.
    pub enc: &'a Tensor,
    /// The decoder prompt (not empty).
    pub prompt: &'a [u32],
    /// Most tokens the row may generate.
    pub max_new: usize,
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
        let embeds = self.tokens.embed(tokens.ids, b, t)?;
        let pos = Tensor::from_slice(tokens.positions, &[b, t])?;
        let off = Tensor::from_slice(&[offset as i64], &[1])?;
        let mask = key_mask(rows, ctx)?;
        let mut inputs: Vec<(&str, &Tensor)> = vec![
            (INPUT_EMBEDS, &embeds),
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
        let joiner = Joiner {
            enc,
            prompt,
            max_new,
        };
        Ok(self.batch_join_many(state, &[joiner])?.remove(0))
    }

    /// Adds several sequences to `state` at once: one cross-key/value call
    /// and one prefill for all of them (prompts of different lengths end at
    /// the same slot, each row's earlier slots masked), and one copy of the
    /// batch's caches. Returns each joiner's logits after its prompt, or
    /// `None` for those the batch has no room for until some rows finish.
    pub fn batch_join_many(
        &self,
        state: &mut BatchDecoderState,
        joiners: &[Joiner<'_>],
    ) -> Result<Vec<Option<Vec<f32>>>, GraphError> {
        let ctx = self.dims.n_text_ctx;
        for j in joiners {
            if j.prompt.is_empty() || j.enc.rank() != 3 || j.enc.shape()[0] != 1 {
                return Err(shape_err(format!(
                    "a row needs a prompt and a (1, frames, d) encoder output; got {} tokens, {:?}",
                    j.prompt.len(),
                    j.enc.shape()
                )));
            }
        }
        let sizes: Vec<(usize, usize)> = joiners
            .iter()
            .map(|j| (j.prompt.len(), j.max_new))
            .collect();
        let (offset, fits) = state.make_room(&sizes, ctx)?;
        let joining: Vec<&Joiner<'_>> = joiners
            .iter()
            .zip(&fits)
            .filter_map(|(j, &f)| f.then_some(j))
            .collect();
        if joining.is_empty() {
            return Ok(vec![None; joiners.len()]);
        }
        // Rows in the order they join: grouped by prompt length, so each
        // group is prefilled in one call ending at `offset`.
        let mut order: Vec<usize> = (0..joining.len()).collect();
        order.sort_by_key(|&i| joining[i].prompt.len());
        let encs: Vec<&Tensor> = order.iter().map(|&i| joining[i].enc).collect();
        let enc = match encs.as_slice() {
            [one] => (*one).clone(),
            many => Tensor::concat(many, 0)?,
        };
        let mut cross = self.start(&enc)?.cross;
        let mut parts = Vec::new();
        let mut rows = vec![None; joining.len()];
        // Where each joiner's caches are: (group, row in the group).
        let mut cache_of = vec![(0, 0); joining.len()];
        let mut logits = vec![None; joining.len()];
        let mut first = 0;
        while first < order.len() {
            let len = joining[order[first]].prompt.len();
            let group = order[first..]
                .iter()
                .take_while(|&&i| joining[i].prompt.len() == len)
                .count();
            let members = &order[first..first + group];
            let group_rows: Vec<Row> = members
                .iter()
                .map(|&i| Row {
                    start: offset - len,
                    fed: len,
                    end: offset + joining[i].max_new,
                })
                .collect();
            let ids: Vec<i64> = members
                .iter()
                .flat_map(|&i| joining[i].prompt.iter().map(|&t| t as i64))
                .collect();
            let positions: Vec<i64> = members.iter().flat_map(|_| 0..len as i64).collect();
            let group_cross: Vec<(String, Tensor)> = cross
                .iter()
                .map(|(n, t)| Ok((n.clone(), t.narrow(0, first, group)?)))
                .collect::<Result<_, GraphError>>()?;
            let mut caches = State::new();
            let out = self.batch_call(
                StepTokens {
                    ids: &ids,
                    positions: &positions,
                    len,
                },
                offset - len,
                &group_rows,
                &mut caches,
                &group_cross,
            )?;
            let out = out.cast(DType::F32)?.to_vec::<f32>()?;
            for (k, ((&i, l), row)) in members
                .iter()
                .zip(out.chunks_exact(self.dims.n_vocab))
                .zip(group_rows)
                .enumerate()
            {
                logits[i] = Some(l.to_vec());
                rows[i] = Some(row);
                cache_of[i] = (parts.len(), k);
            }
            parts.push(caches.into_entries());
            first += group;
        }
        // The batch keeps the joiners' order.
        let mut sorted_pos = vec![0; joining.len()];
        for (pos, &i) in order.iter().enumerate() {
            sorted_pos[i] = pos;
        }
        let cross_picks: Vec<(usize, usize)> = sorted_pos.iter().map(|&p| (0, p)).collect();
        let room = state.room_for(state.rows.len() + joining.len());
        state.caches = stack_rows(std::mem::take(&mut state.caches), &parts, &cache_of, room)?;
        state.cross = stack_rows(
            std::mem::take(&mut state.cross),
            &[std::mem::take(&mut cross)],
            &cross_picks,
            room,
        )?;
        state.rows.extend(rows.into_iter().flatten());
        state.offset = offset;
        let mut joined = logits.into_iter();
        Ok(fits
            .iter()
            .map(|&f| if f { joined.next().flatten() } else { None })
            .collect())
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
