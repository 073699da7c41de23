//! A batch of generations that rows join while it runs (continuous
//! batching): every row's last real token sits at the same cache position
//! (`offset − 1`), rows are left-padded up to it (padded keys masked), and
//! one decode step serves every row. A new row joins at a step boundary:
//! its prompt is prefilled alone so that it ends at the batch's offset (the
//! positions before it masked as padding), then its caches are stacked onto
//! the batch's. A row that finishes, or whose caller stops it, leaves at
//! the next step (its cache rows dropped, the batch's last row moved into
//! its place); when the last row leaves, the batch starts over at position
//! 0. Joins and departures work in the caches' own buffers where they can
//! ([`Tensor::append_rows`], [`Tensor::retain_rows`]): a row's static cache
//! is large (SmolLM2-135M at 4,096 positions: 94 MB), and copying the
//! whole batch's on every join and departure cost more than the steps.

use std::time::{Duration, Instant};

use emily::Tensor;
use emily_nn::State;
use rayon::prelude::*;

use super::batch::BatchRequest;
use super::generate::{Generation, Timings};
use super::model::LlmModel;
use super::sequence::{FinishReason, Sequence, TokenEvent};
use super::LlmError;
use crate::batch_rows::{fill_from_the_end, regroup_rows};

/// A row that left the batch, with its caller's id.
#[derive(Clone, Debug)]
pub struct Finished {
    /// The id the row joined with.
    pub id: usize,
    /// Its generation (ending where it stopped).
    pub generation: Generation,
}

/// One row of the batch.
struct Row<'m> {
    id: usize,
    seq: Sequence<'m>,
    /// Logits the row samples its next token from.
    logits: Vec<f32>,
    timings: Timings,
}

impl Row<'_> {
    fn finish(self) -> Finished {
        Finished {
            id: self.id,
            generation: Generation {
                tokens: self.seq.generated.clone(),
                text: self.seq.text.clone(),
                finish: self.seq.finish.clone().unwrap_or(FinishReason::Length),
                timings: self.timings,
            },
        }
    }
}

/// Generations decoded together; rows join and leave at step boundaries.
pub struct RunningBatch<'m> {
    model: &'m LlmModel,
    state: State,
    rows: Vec<Row<'m>>,
    /// Masked (padding) cache positions at the start of each row.
    pads: Vec<usize>,
    /// Cache position of the next token.
    offset: usize,
    /// Most rows the batch will hold ([`RunningBatch::with_max_rows`]): the
    /// room its caches' buffers grow to.
    max_rows: Option<usize>,
}

impl<'m> RunningBatch<'m> {
    /// An empty batch over `model`.
    pub fn new(model: &'m LlmModel) -> RunningBatch<'m> {
        RunningBatch {
            model,
            state: State::new(),
            rows: Vec::new(),
            pads: Vec::new(),
            offset: 0,
            max_rows: None,
        }
    }

    /// An empty batch that will hold at most `rows` rows (a server's batch
    /// limit): when a join outgrows the caches' buffers, the new ones have
    /// room for all `rows` at once (a row's context-long caches are large,
    /// so growing by powers of two copied the batch at every doubling; room
    /// never written takes address space, not memory).
    pub fn with_max_rows(model: &'m LlmModel, rows: usize) -> RunningBatch<'m> {
        RunningBatch {
            max_rows: Some(rows),
            ..RunningBatch::new(model)
        }
    }

    /// The rows of room for a batch of `rows` rows: the batch limit when
    /// there is one, else the next power of two.
    fn room_for(&self, rows: usize) -> usize {
        self.max_rows
            .unwrap_or_else(|| rows.next_power_of_two())
            .max(rows)
    }

    /// Rows decoding.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no row is decoding.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether `r` can join now: always into an empty batch; into a running
    /// one when its prompt's prefill fits before the batch's position and
    /// its token limit in the cache after it.
    /// Otherwise it waits for the batch to move on or to drain.
    pub fn can_join(&self, r: &BatchRequest) -> bool {
        self.rows.is_empty() || self.join_plan(r).is_some()
    }

    /// The prefill calls of `r` joining this running batch now
    /// ([`RunningBatch::join_chunks`]), or `None` when its token limit does
    /// not fit in the cache after the batch's position.
    fn join_plan(&self, r: &BatchRequest) -> Option<Vec<usize>> {
        let fits = self.offset.saturating_add(r.opts.max_tokens) <= self.model.context();
        fits.then(|| self.join_chunks(r.prompt.len())).flatten()
    }

    /// The widths of the prefill calls of a `len`-token prompt joining at
    /// the batch's position, each a prompt bucket (so prefills reuse a few
    /// compiled plans), the first left-padded: one call of the prompt's
    /// bucket when it fits before the position, else calls of powers of two
    /// summing to `len` rounded up to 8 (a 35-token prompt: 32 + 8 from
    /// position 40 on, where its 64-token bucket would wait for position
    /// 64 — ~30 steps a young batch ran without it). `None`: not yet.
    fn join_chunks(&self, len: usize) -> Option<Vec<usize>> {
        let bucket = self.model.bucket(len);
        if bucket <= self.offset {
            return Some(vec![bucket]);
        }
        let width = len.next_multiple_of(8);
        if width > self.offset {
            return None;
        }
        // Binary digits of the width, largest first (each at least 8).
        Some(
            (3..usize::BITS)
                .rev()
                .map(|b| 1usize << b)
                .filter(|&c| width & c != 0)
                .collect(),
        )
    }

    /// Starts an empty batch with `requests` (`(id, request)`), their
    /// prompts left-padded to one bucket and prefilled together (a request
    /// alone: prefilled as a single generation is, ending at its length).
    pub fn start(&mut self, requests: &[(usize, &BatchRequest)]) -> Result<(), LlmError> {
        if !self.rows.is_empty() {
            return Err(LlmError::Input(
                "a running batch cannot be started again".into(),
            ));
        }
        for (_, r) in requests {
            self.model.check_request(r)?;
        }
        let Some(longest) = requests.iter().map(|(_, r)| r.prompt.len()).max() else {
            return Ok(());
        };
        let t = Instant::now();
        let mut state = State::new();
        let (logits, pads, offset) = if let [(_, r)] = requests {
            // Alone: prefilled as a single generation is (right-padded to
            // its bucket, ending at its own length), so a job that never
            // shares the batch gets exactly the single generation's tokens.
            let width = self.model.bucket(longest);
            let mut row = r.prompt.clone();
            row.resize(width, 0);
            let logits = self.model.step(&row, longest, 0, &mut state)?;
            (logits, vec![0], longest)
        } else {
            let width = self.model.bucket(longest);
            let pads: Vec<usize> = requests
                .iter()
                .map(|(_, r)| width - r.prompt.len())
                .collect();
            let rows: Vec<Vec<u32>> = requests
                .iter()
                .map(|(_, r)| left_padded(&r.prompt, width))
                .collect();
            // Prefilled into caches of the prompts' positions, then widened
            // to the context's with room for the rows that will join.
            let mut short = State::new();
            let cache = self.model.join_cache(width);
            let logits = self
                .model
                .batch_step_in(cache, &rows, &pads, 0, &mut short)?;
            state = widened(short, self.model.context(), self.room_for(rows.len()))?;
            (logits, pads, width)
        };
        let prefill = t.elapsed();
        let vocab = self.model.config().vocab;
        self.rows = requests
            .iter()
            .enumerate()
            .map(|(b, (id, r))| self.row(*id, r, logits[b * vocab..][..vocab].to_vec(), prefill))
            .collect();
        self.state = state;
        self.pads = pads;
        self.offset = offset;
        Ok(())
    }

    /// Adds `r` (as `id`) to the batch at this step boundary (see
    /// [`RunningBatch::can_join`]; an error if it cannot join now).
    pub fn join(&mut self, id: usize, r: &BatchRequest) -> Result<(), LlmError> {
        if self.rows.is_empty() {
            return self.start(&[(id, r)]);
        }
        self.model.check_request(r)?;
        let Some(chunks) = self.join_plan(r) else {
            return Err(LlmError::Input(format!(
                "a {}-token prompt cannot join a batch at position {}",
                r.prompt.len(),
                self.offset
            )));
        };
        // The prompt, left-padded to the chunks' width, ends at the batch's
        // offset; everything before its first real token is masked.
        let width: usize = chunks.iter().sum();
        let pad = self.offset - r.prompt.len();
        let t = Instant::now();
        // Prefilled into caches of the positions it fills, then joined to
        // the batch's (the context's) with zeros after them.
        let mut state = State::new();
        let cache = self.model.join_cache(self.offset);
        let tokens = left_padded(&r.prompt, width);
        let (mut at, mut logits) = (0, Vec::new());
        for c in chunks {
            let chunk = tokens[at..at + c].to_vec();
            let position = self.offset - width + at;
            logits = self
                .model
                .batch_step_in(cache, &[chunk], &[pad], position, &mut state)?;
            at += c;
        }
        // The row's caches go after the batch's, in the batch's buffers when
        // they have room.
        let room = self.room_for(self.rows.len() + 1);
        let batch = std::mem::take(&mut self.state).into_entries();
        let entries = append_each(batch, &state, room)?;
        self.state = State::from_entries(entries);
        let row = self.row(id, r, logits, t.elapsed());
        self.rows.push(row);
        self.pads.push(pad);
        Ok(())
    }

    fn row(&self, id: usize, r: &BatchRequest, logits: Vec<f32>, prefill: Duration) -> Row<'m> {
        Row {
            id,
            seq: Sequence::new(self.model.tokenizer(), &r.prompt, &r.opts),
            logits,
            timings: Timings {
                prompt_tokens: r.prompt.len(),
                prefill,
                ..Timings::default()
            },
        }
    }

    /// One step: every row takes its next token (`on_token(id, event)`;
    /// `false` stops that row), the rows that finished leave (returned), and
    /// one decode step computes the others' next logits. On an error the
    /// batch is emptied (its rows' callers get the error).
    pub fn advance(
        &mut self,
        mut on_token: impl FnMut(usize, &TokenEvent) -> bool,
    ) -> Result<Vec<Finished>, LlmError> {
        let result = self.try_advance(&mut on_token);
        if result.is_err() {
            self.clear();
        }
        result
    }

    fn try_advance(
        &mut self,
        on_token: &mut impl FnMut(usize, &TokenEvent) -> bool,
    ) -> Result<Vec<Finished>, LlmError> {
        let mut keep = Vec::with_capacity(self.rows.len());
        let mut feed = Vec::with_capacity(self.rows.len());
        for row in &mut self.rows {
            if row.seq.finish.is_some() {
                // Nothing to generate (a limit of 0 tokens).
                keep.push(false);
                feed.push(0);
                continue;
            }
            let ev = row.seq.accept(&row.logits)?;
            let go_on = on_token(row.id, &ev) && row.seq.finish.is_none();
            keep.push(go_on);
            feed.push(ev.id);
        }
        let mut done = Vec::new();
        if keep.iter().any(|&k| !k) {
            // The batch's last rows fill the leavers' places.
            let order = fill_from_the_end(&keep);
            let (stay, gone) = regroup_rows(std::mem::take(&mut self.rows), &order);
            done.extend(gone.into_iter().map(Row::finish));
            self.rows = stay;
            self.pads = order.iter().map(|&i| self.pads[i]).collect();
            feed = order.iter().map(|&i| feed[i]).collect();
            if self.rows.is_empty() {
                self.clear();
                return Ok(done);
            }
            retain_rows(&mut self.state, &order)?;
        }
        if self.offset >= self.model.context() {
            for (row, &last) in self.rows.iter_mut().zip(&feed) {
                let ev = row.seq.context_full(last);
                on_token(row.id, &ev);
            }
            done.extend(std::mem::take(&mut self.rows).into_iter().map(Row::finish));
            self.clear();
            return Ok(done);
        }
        let t = Instant::now();
        let tokens: Vec<Vec<u32>> = feed.iter().map(|&id| vec![id]).collect();
        let logits = self
            .model
            .batch_step(&tokens, &self.pads, self.offset, &mut self.state)?;
        let spent = t.elapsed();
        let vocab = self.model.config().vocab;
        for (b, row) in self.rows.iter_mut().enumerate() {
            row.logits.clear();
            row.logits.extend_from_slice(&logits[b * vocab..][..vocab]);
            row.timings.decode_steps += 1;
            row.timings.decode += spent;
        }
        self.offset += 1;
        Ok(done)
    }

    /// Drops every row and cache; the next row starts at position 0.
    fn clear(&mut self) {
        self.rows.clear();
        self.pads.clear();
        self.state = State::new();
        self.offset = 0;
    }
}

/// `prompt` after `width − len` zeros.
fn left_padded(prompt: &[u32], width: usize) -> Vec<u32> {
    let mut row = vec![0; width - prompt.len()];
    row.extend_from_slice(prompt);
    row
}

/// `state`'s caches `(B, heads, positions, dim)` widened to `context`
/// positions, zeros after their own, in buffers with room for `room` rows.
fn widened(state: State, context: usize, room: usize) -> Result<State, LlmError> {
    let empty = state
        .iter()
        .map(|(n, t)| {
            let mut shape = t.shape().to_vec();
            if shape.len() != 4 || shape[2] > context {
                return Err(LlmError::Input(format!(
                    "cache `{n}` of shape {shape:?} for a context of {context}"
                )));
            }
            (shape[0], shape[2]) = (0, context);
            Ok((n.to_string(), Tensor::zeros(&shape, t.dtype())?))
        })
        .collect::<Result<Vec<_>, LlmError>>()?;
    Ok(State::from_entries(append_each(empty, &state, room)?))
}

/// Each of `batch`'s caches followed by the same-named cache of `rows`,
/// zero-padded to its positions ([`Tensor::append_rows_zero_padded`]), in
/// its own buffer when that has room, else in one with room for `room`
/// rows. One cache per task on the kernels' pool: each append is mostly a
/// fill of the context's zeros, bound by one core's stores.
fn append_each(
    batch: Vec<(String, Tensor)>,
    rows: &State,
    room: usize,
) -> Result<Vec<(String, Tensor)>, LlmError> {
    if batch.len() != rows.len() {
        return Err(LlmError::Input(format!(
            "joining rows have {} caches, the batch {}",
            rows.len(),
            batch.len()
        )));
    }
    let rows: Vec<(&str, &Tensor)> = rows.iter().collect();
    emily_kernels::parallel::pool().install(|| {
        batch
            .into_par_iter()
            .zip(rows.into_par_iter())
            .map(|((name, batch), (row_name, row))| {
                if name != row_name {
                    return Err(LlmError::Input(format!(
                        "a joining row's cache `{row_name}` against the batch's `{name}`"
                    )));
                }
                Ok((name, batch.append_rows_zero_padded(&[row], room)?))
            })
            .collect()
    })
}

/// Keeps the rows `order` of every cache (in that order, as
/// [`fill_from_the_end`] gives it), in their own buffers where they can.
fn retain_rows(state: &mut State, order: &[usize]) -> Result<(), LlmError> {
    // One cache per task on the kernels' pool (a moved row is a copy of
    // the whole context's positions).
    let entries = emily_kernels::parallel::pool().install(|| {
        std::mem::take(state)
            .into_entries()
            .into_par_iter()
            .map(|(n, t)| Ok((n, t.retain_rows(order)?)))
            .collect::<Result<Vec<_>, LlmError>>()
    })?;
    *state = State::from_entries(entries);
    Ok(())
}
