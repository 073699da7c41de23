//! The running state of decoding one audio window through the graph: the
//! self-attention KV caches (model state of the decoder step) and the
//! window's cross-attention keys and values, for one or more rows (beams or
//! samples of the same window, decoded together). The rows share the
//! window's one copy of the cross keys and values.

use emily::Tensor;
use emily_nn::State;

use super::GraphError;

/// Decoder state for one window, made by [`super::WhisperGraph::start`] and
/// advanced by [`super::WhisperGraph::step`].
#[derive(Clone, Debug)]
pub struct GraphDecoderState {
    /// Self-attention caches `(B, H, n_text_ctx, D)` per layer, empty until
    /// the first step fills them with zeros.
    pub caches: State,
    /// `(input name, tensor)` of every layer's cross keys and values.
    pub cross: Vec<(String, Tensor)>,
    /// Rows (batch entries) of the caches.
    rows: usize,
}

impl GraphDecoderState {
    /// A state over the window's cross keys and values, as many rows as they
    /// have, and empty caches.
    pub fn new(cross: Vec<(String, Tensor)>) -> GraphDecoderState {
        let rows = cross.first().map_or(0, |(_, t)| t.shape()[0]);
        GraphDecoderState {
            caches: State::new(),
            cross,
            rows,
        }
    }

    /// Starts over on the same window (the caches are zeroed by the next step).
    pub fn reset(&mut self) {
        self.caches.clear();
    }

    /// Rows (batch entries) of the state.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// True when several rows decode one window whose cross keys and values
    /// are held once (after [`GraphDecoderState::select_rows`] made rows).
    pub fn shares_cross(&self) -> bool {
        let cross_rows = self.cross.first().map_or(0, |(_, t)| t.shape()[0]);
        self.rows != cross_rows
    }

    /// Rearranges the rows: row `i` becomes the old row `rows[i]` (a row may
    /// be repeated or dropped). Only the first `filled` cache positions (the
    /// ones written so far) are moved, in place when the row count stays;
    /// the cross keys and values, the same for every row, are not touched.
    pub fn select_rows(&mut self, rows: &[usize], filled: usize) -> Result<(), GraphError> {
        let n = self.rows;
        if rows.is_empty() || rows.iter().any(|&r| r >= n) {
            return Err(GraphError::Input(format!(
                "rows {rows:?} of a decoder state with {n} rows"
            )));
        }
        let identity = rows.len() == n && rows.iter().enumerate().all(|(i, &r)| i == r);
        if identity {
            return Ok(());
        }
        let idx: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
        let idx = Tensor::from_slice(&idx, &[idx.len()])?;
        let zero = Tensor::from_slice(&[0i64], &[1])?;
        let entries = std::mem::take(&mut self.caches).into_entries();
        let mut moved = Vec::with_capacity(entries.len());
        for (name, cache) in entries {
            let ctx = cache.shape().get(2).copied().unwrap_or(0);
            if cache.rank() != 4 || filled > ctx || cache.shape()[0] != n {
                return Err(GraphError::Input(format!(
                    "cache `{name}` {:?}: expected (rows {n}, H, ≥ {filled}, D)",
                    cache.shape()
                )));
            }
            let picked = cache.narrow(2, 0, filled)?.index_select(&idx, 0)?.eval()?;
            let next = if rows.len() == n {
                let updated = cache.slice_update(&picked, &zero, 2)?;
                // The update holds the last reference: its buffer is reused.
                drop(cache);
                updated.eval()?
            } else {
                let pads = [(0, 0), (0, 0), (0, ctx - filled), (0, 0)];
                drop(cache);
                picked.pad(&pads, 0.0)?.eval()?
            };
            moved.push((name, next));
        }
        self.caches = State::from_entries(moved);
        self.rows = rows.len();
        Ok(())
    }
}
