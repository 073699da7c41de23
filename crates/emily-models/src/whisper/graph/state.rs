//! The running state of decoding one audio window through the graph: the
//! self-attention KV caches (model state of the decoder step) and the
//! window's cross-attention keys and values, for one or more rows (beams or
//! samples of the same window, decoded together).

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
}

impl GraphDecoderState {
    /// Starts over on the same window (the caches are zeroed by the next step).
    pub fn reset(&mut self) {
        self.caches.clear();
    }

    /// Rows (batch entries) of the state.
    pub fn rows(&self) -> usize {
        self.cross.first().map_or(0, |(_, t)| t.shape()[0])
    }

    /// Rearranges the rows: row `i` becomes the old row `rows[i]` (a row may
    /// be repeated or dropped). Every row decodes the same window, so the
    /// cross keys and values only change their row count.
    pub fn select_rows(&mut self, rows: &[usize]) -> Result<(), GraphError> {
        let n = self.rows();
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
        let entries = std::mem::take(&mut self.caches).into_entries();
        let mut moved = Vec::with_capacity(entries.len());
        for (name, t) in entries {
            moved.push((name, t.index_select(&idx, 0)?.eval()?));
        }
        self.caches = State::from_entries(moved);
        if rows.len() != n {
            let zeros = Tensor::from_slice(&vec![0i64; rows.len()], &[rows.len()])?;
            for (_, t) in self.cross.iter_mut() {
                *t = t.index_select(&zeros, 0)?.eval()?;
            }
        }
        Ok(())
    }
}
