//! A batch of generations that rows join while it runs (continuous
//! batching): every row's last real token sits at the same cache position
//! (`offset − 1`), rows are left-padded up to it (padded keys masked), and
//! one decode step serves every row. A new row joins at a step boundary:
//! its prompt is prefilled alone so that it ends at the batch's offset (the
//! positions before it masked as padding), then its caches are stacked onto
//! the batch's. A row that finishes, or whose caller stops it, leaves at
//! the next step (its cache rows dropped); when the last row leaves, the
//! batch starts over at position 0.

use std::time::{Duration, Instant};

use emily::Tensor;
use emily_nn::State;

use super::batch::BatchRequest;
use super::generate::{Generation, Timings};
use super::model::LlmModel;
use super::sequence::{FinishReason, Sequence, TokenEvent};
use super::LlmError;

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
        }
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
    /// one when its prompt (rounded up to a prompt bucket, so prefills reuse
    /// a few compiled plans) fits before the batch's position and its token
    /// limit fits in the cache after it. Otherwise it waits for the batch to
    /// move on or to drain.
    pub fn can_join(&self, r: &BatchRequest) -> bool {
        self.rows.is_empty()
            || (self.model.bucket(r.prompt.len()) <= self.offset
                && self.offset.saturating_add(r.opts.max_tokens) <= self.model.context())
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
            let logits = self.model.batch_step(&rows, &pads, 0, &mut state)?;
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
        if !self.can_join(r) {
            return Err(LlmError::Input(format!(
                "a {}-token prompt cannot join a batch at position {}",
                r.prompt.len(),
                self.offset
            )));
        }
        // The prompt, left-padded to its bucket, ends at the batch's offset;
        // everything before its first real token is masked.
        let width = self.model.bucket(r.prompt.len());
        let pad = self.offset - r.prompt.len();
        let t = Instant::now();
        let mut state = State::new();
        let logits = self.model.batch_step(
            &[left_padded(&r.prompt, width)],
            &[pad],
            self.offset - width,
            &mut state,
        )?;
        let entries = self
            .state
            .iter()
            .zip(state.iter())
            .map(|((name, batch), (_, row))| {
                Ok((name.to_string(), Tensor::concat(&[batch, row], 0)?.eval()?))
            })
            .collect::<Result<Vec<_>, LlmError>>()?;
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
            let mut flags = keep.iter();
            let (stay, gone): (Vec<Row<'m>>, Vec<Row<'m>>) = std::mem::take(&mut self.rows)
                .into_iter()
                .partition(|_| *flags.next().unwrap_or(&false));
            done.extend(gone.into_iter().map(Row::finish));
            self.rows = stay;
            let mut flags = keep.iter();
            self.pads.retain(|_| *flags.next().unwrap_or(&false));
            let mut flags = keep.iter();
            feed.retain(|_| *flags.next().unwrap_or(&false));
            if self.rows.is_empty() {
                self.clear();
                return Ok(done);
            }
            retain_rows(&mut self.state, &keep)?;
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

/// Keeps the rows of every cache whose `keep` flag is set.
fn retain_rows(state: &mut State, keep: &[bool]) -> Result<(), LlmError> {
    let idx: Vec<i64> = (0..keep.len())
        .filter(|&i| keep[i])
        .map(|i| i as i64)
        .collect();
    let idx = Tensor::from_slice(&idx, &[idx.len()])?;
    let entries = std::mem::take(state)
        .into_entries()
        .into_iter()
        .map(|(n, t)| Ok((n, t.index_select(&idx, 0)?.eval()?)))
        .collect::<Result<Vec<_>, LlmError>>()?;
    *state = State::from_entries(entries);
    Ok(())
}
