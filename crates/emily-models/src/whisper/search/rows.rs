//! The decoder rows of one window: every row (a beam, a sample) decodes the
//! same encoder output, all rows advance one position per step together, and
//! one decoder call steps them all (batch = rows).

use emily::{DType, Tensor};

use super::super::decoding;
use super::super::graph::GraphDecoderState;
use super::super::transcriber::{Whisper, WhisperError};

/// Decoder rows over one window.
pub(crate) struct Rows<'w> {
    whisper: &'w Whisper,
    state: GraphDecoderState,
    /// Positions fed so far (the same for every row).
    offset: usize,
    /// Decoder calls made.
    pub steps: usize,
}

/// Logits of one step: one row of `vocab` values per decoder row.
pub(crate) struct StepLogits {
    pub data: Vec<f32>,
    pub vocab: usize,
}

impl StepLogits {
    /// Row `r`'s logits, mutable.
    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        &mut self.data[r * self.vocab..(r + 1) * self.vocab]
    }
}

impl<'w> Rows<'w> {
    /// One row over the encoder output `enc` `(1, 1500, d)`.
    pub fn new(whisper: &'w Whisper, enc: &Tensor) -> Result<Rows<'w>, WhisperError> {
        Ok(Rows {
            whisper,
            state: whisper.graph().start(enc)?,
            offset: 0,
            steps: 0,
        })
    }

    /// Feeds `prompt` to the single row; returns the logits after its last
    /// token, and after the token at `also` (an index into `prompt`) when asked.
    pub fn prompt(
        &mut self,
        prompt: &[u32],
        also: Option<usize>,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>), WhisperError> {
        let last = prompt.len().saturating_sub(1);
        let positions = match also {
            Some(p) if p != last => vec![last, p],
            _ => vec![last],
        };
        let ids: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
        let logits = self.call(&ids, 1, prompt.len(), &positions)?;
        let vocab = self.whisper.dims().n_vocab;
        let at_last = logits.data[..vocab].to_vec();
        let at_also = match also {
            Some(p) if p != last => Some(logits.data[vocab..2 * vocab].to_vec()),
            Some(_) => Some(at_last.clone()),
            None => None,
        };
        Ok((at_last, at_also))
    }

    /// Feeds one token to every row (`tokens[r]` to row `r`).
    pub fn step(&mut self, tokens: &[u32]) -> Result<StepLogits, WhisperError> {
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        self.call(&ids, tokens.len(), 1, &[0])
    }

    /// Rearranges the rows: row `i` continues the old row `rows[i]`.
    pub fn select(&mut self, rows: &[usize]) -> Result<(), WhisperError> {
        Ok(self.state.select_rows(rows, self.offset)?)
    }

    fn call(
        &mut self,
        ids: &[i64],
        b: usize,
        t: usize,
        positions: &[usize],
    ) -> Result<StepLogits, WhisperError> {
        let rows = self.state.rows();
        if rows != b {
            return Err(WhisperError::Model(super::super::graph::GraphError::Input(
                format!("{b} tokens per step for a decoder state of {rows} rows"),
            )));
        }
        let ids = Tensor::from_slice(ids, &[b, t])?;
        let offset = Tensor::from_slice(&[self.offset as i64], &[1])?;
        let logits = self
            .whisper
            .graph()
            .step_at(&ids, &offset, &mut self.state, positions)?;
        self.offset += t;
        self.steps += 1;
        let data = logits.cast(DType::F32)?.to_vec::<f32>()?;
        if let Some(token) = decoding::first_non_finite(&data) {
            let vocab = self.whisper.dims().n_vocab;
            return Err(WhisperError::NonFiniteLogits {
                input: "decoder".into(),
                window_start: 0.0,
                token: token % vocab,
                value: data[token],
            });
        }
        Ok(StepLogits {
            data,
            vocab: self.whisper.dims().n_vocab,
        })
    }
}
