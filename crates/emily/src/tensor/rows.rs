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
            match take_ready(t)?.append_rows(&arrays, reserve)? {
                Ok(a) => return Ok(Tensor::from_array(a)),
                Err(a) => t = Tensor::from_array(a),
            }
        }
        let mut all = vec![&t];
        all.extend_from_slice(more);
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
}
