//! The sizes of a batched matrix product, derived once for every backend.

use crate::shape::{broadcast_strides, numel};

/// `a @ b` with output `shape` `(…, m, n)`: `a` is `(…, m, k)`, or `(…, k, m)`
/// read transposed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MatmulDims<'s> {
    /// Rows of each output matrix.
    pub m: usize,
    /// Columns of each output matrix.
    pub n: usize,
    /// The contracted length.
    pub k: usize,
    /// The output's batch axes.
    pub batch: &'s [usize],
    /// Matrices in the batch (the product of `batch`).
    pub nb: usize,
}

impl<'s> MatmulDims<'s> {
    /// The sizes of `a @ b` for `a` of `a_shape` (transposed when `ta`) and
    /// the output `shape` (rank ≥ 2, validated by the op).
    pub fn new(a_shape: &[usize], ta: bool, shape: &'s [usize]) -> Self {
        let (r, ar) = (shape.len(), a_shape.len());
        let k = if ta { a_shape[ar - 2] } else { a_shape[ar - 1] };
        let batch = &shape[..r - 2];
        MatmulDims {
            m: shape[r - 2],
            n: shape[r - 1],
            k,
            batch,
            nb: numel(batch),
        }
    }

    /// Rows of all the output matrices together (`nb · m`).
    pub fn rows(&self) -> usize {
        self.nb * self.m
    }

    /// Batch strides, in whole matrices, of an operand of `operand_shape`
    /// broadcast over the output's batch axes (0 on broadcast axes).
    pub fn batch_strides(&self, operand_shape: &[usize]) -> Vec<usize> {
        broadcast_strides(&operand_shape[..operand_shape.len() - 2], self.batch)
    }

    /// The matrix index, within an operand of batch `strides`, that batch
    /// entry `idx` of the output reads.
    pub fn batch_offset(&self, idx: usize, strides: &[usize]) -> usize {
        let (mut rem, mut off) = (idx, 0);
        for d in (0..self.batch.len()).rev() {
            off += (rem % self.batch[d]) * strides[d];
            rem /= self.batch[d];
        }
        off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_strides_and_offsets() {
        let shape = [2, 3, 4, 5];
        let d = MatmulDims::new(&[3, 4, 7], false, &shape);
        assert_eq!((d.m, d.n, d.k, d.nb, d.rows()), (4, 5, 7, 6, 24));
        assert_eq!(MatmulDims::new(&[7, 4], true, &[4, 5]).k, 7);
        // a (3, 4, 7) broadcasts over the leading batch axis of 2.
        let s = d.batch_strides(&[3, 4, 7]);
        assert_eq!(s, vec![0, 1]);
        assert_eq!(d.batch_offset(4, &s), 1);
        let full = d.batch_strides(&[2, 3, 7, 5]);
        assert_eq!(d.batch_offset(4, &full), 4);
    }
}
