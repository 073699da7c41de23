//! Rows of an evaluated tensor kept or appended along its leading axis in
//! its own buffer where it can be ([`Array`]'s in-place forms), else by
//! the ordinary ops: a batch that sequences join and leave (a decoder
//! batch's caches) then copies only the rows that move.

use super::Tensor;
use crate::array::moves_down_below;
use crate::error::{invalid, Result};
use crate::eval::take_ready;
use crate::{Array, Device};

impl Tensor {
    /// Rows `keep` of this tensor along axis 0 (row `i` of the result is
    /// row `keep[i]`; each row at most once and none from above its new
    /// place, `keep[i] >= i`: rows in order, or holes filled from the end),
    /// evaluated: moved in its own buffer when this handle is the buffer's
    /// only holder on the CPU, else copied by `index_select`.
    pub fn retain_rows(self, keep: &[usize]) -> Result<Tensor> {
        let rows = self
            .shape()
            .first()
            .copied()
            .ok_or_else(|| invalid("retain_rows", "a scalar has no rows".to_string()))?;
        if !moves_down_below(keep, rows) {
            return Err(invalid(
                "retain_rows",
                format!(
                    "rows {keep:?} are not distinct indices below {rows}, each at or after its new place"
                ),
            ));
        }
        let mut t = self.eval()?;
        if t.device() == Device::Cpu {
            match take_ready(t)?.retain_rows_in_place(keep) {
                Ok(a) => return Ok(Tensor::from_array(a)),
                Err(a) => t = Tensor::from_array(a),
            }
        }
        let idx: Vec<i64> = keep.iter().map(|&k| k as i64).collect();
        t.index_select(&Tensor::from_slice(&idx, &[idx.len()])?, 0)?
            .eval()
    }

    /// This tensor followed by `more` along axis 0, evaluated: written into
    /// this tensor's buffer when this handle is its only holder on the CPU
    /// and the buffer has room, else into a new buffer with room for
    /// `reserve` rows in all (so later appends fit in place); by `concat`
    /// off the CPU or for block-quantized types. Shapes and types are
    /// checked as `concat` checks them.
    pub fn append_rows(self, more: &[&Tensor], reserve: usize) -> Result<Tensor> {
        self.append_rows_with(more, reserve, false)
    }

    /// [`Tensor::append_rows`] where each of `more` may also be shorter
    /// than this tensor along any trailing axis: its elements keep their
    /// indices and the rest of its rows are zeros, as if padded at the end
    /// of each axis first. A sequence prefilled into caches of its first
    /// positions joins a batch whose caches span the whole context without
    /// first filling and copying the context's zeros (a SmolLM2-135M row at
    /// 4,096 positions: 94 MB).
    pub fn append_rows_zero_padded(self, more: &[&Tensor], reserve: usize) -> Result<Tensor> {
        self.append_rows_with(more, reserve, true)
    }

    fn append_rows_with(self, more: &[&Tensor], reserve: usize, zero_pad: bool) -> Result<Tensor> {
        if more.is_empty() {
            return self.eval();
        }
        let mut t = self.eval()?;
        let on_cpu = |x: &Tensor| x.device() == Device::Cpu;
        if on_cpu(&t) && more.iter().all(|m| on_cpu(m)) {
            let arrays = more
                .iter()
                .map(|m| m.array())
                .collect::<Result<Vec<Array>>>()?;
            match take_ready(t)?.append_rows_padded(&arrays, reserve, zero_pad)? {
                Ok(a) => return Ok(Tensor::from_array(a)),
                Err(a) => t = Tensor::from_array(a),
            }
        }
        let padded: Vec<Tensor> = more
            .iter()
            .map(|m| {
                if !zero_pad
                    || m.shape().len() != t.shape().len()
                    || m.shape()[1..] == t.shape()[1..]
                {
                    return Ok((*m).clone());
                }
                // Zeros at the end of each trailing axis (none on the rows').
                let pads: Vec<(usize, usize)> = std::iter::once((0, 0))
                    .chain(
                        m.shape()[1..]
                            .iter()
                            .zip(&t.shape()[1..])
                            .map(|(&have, &want)| (0, want.saturating_sub(have))),
                    )
                    .collect();
                m.pad(&pads, 0.0)
            })
            .collect::<Result<_>>()?;
        let mut all = vec![&t];
        all.extend(padded.iter());
        Tensor::concat(&all, 0)?.eval()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, from: f32) -> Tensor {
        let data: Vec<f32> = (0..n * 300)
            .map(|i| from + (i as f32 * 0.37).sin())
            .collect();
        Tensor::from_slice(&data, &[n, 3, 100]).unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.to_vec::<f32>().unwrap()
    }

    #[test]
    fn kept_and_appended_rows_match_index_select_and_concat() {
        let (a, b) = (rows(4, 0.0), rows(2, 10.0));
        let idx = Tensor::from_slice(&[0i64, 3], &[2]).unwrap();
        let want_kept = values(&a.index_select(&idx, 0).unwrap());
        let kept = a.clone().retain_rows(&[0, 3]).unwrap();
        assert_eq!(values(&kept), want_kept, "shared handle: copied");
        drop(a);
        let want = values(&Tensor::concat(&[&kept, &b], 0).unwrap());
        let joined = kept.append_rows(&[&b], 8).unwrap();
        assert_eq!(joined.shape(), &[4, 3, 100]);
        assert_eq!(values(&joined), want);
        let left = joined.retain_rows(&[1, 2]).unwrap();
        assert_eq!(values(&left), want[300..900].to_vec());
    }

    #[test]
    fn wrong_rows_and_shapes_are_errors() {
        let a = rows(3, 0.0);
        assert!(a.clone().retain_rows(&[1, 1]).is_err());
        assert!(a.clone().retain_rows(&[1, 0]).is_err(), "row 0 from above");
        assert!(a.clone().retain_rows(&[3]).is_err());
        let wide = Tensor::from_slice(&[0f32; 400], &[1, 4, 100]).unwrap();
        assert!(a.append_rows(&[&wide], 4).is_err());
    }

    #[test]
    fn zero_padded_rows_match_pad_then_concat() {
        let base = rows(2, 0.0);
        let short_data: Vec<f32> = (0..2 * 40).map(|i| 1.0 + i as f32).collect();
        let short = Tensor::from_slice(&short_data, &[1, 2, 40]).unwrap();
        let want = Tensor::concat(
            &[&base, &short.pad(&[(0, 0), (0, 1), (0, 60)], 0.0).unwrap()],
            0,
        )
        .unwrap();
        let shared = base.clone();
        let copied = shared.append_rows_zero_padded(&[&short], 4).unwrap();
        assert_eq!(
            values(&copied),
            values(&want),
            "shared handle: a new buffer"
        );
        let joined = base.append_rows_zero_padded(&[&short], 4).unwrap();
        assert_eq!(joined.shape(), &[3, 3, 100]);
        assert_eq!(values(&joined), values(&want), "in place");
        let long = Tensor::from_slice(&[0f32; 101], &[1, 1, 101]).unwrap();
        assert!(joined.append_rows_zero_padded(&[&long], 4).is_err());
    }
}
