//! Indexing: gather / index_select (embeddings), its transpose scatter-add
//! (embedding gradients), and the dynamic slice update used by static-size
//! KV caches.

use super::{common_device, Op};
use crate::error::{dtype_err, invalid, shape_err, Result};
use crate::shape::normalize_axis;
use crate::{DType, Tensor};

impl Tensor {
    /// Selects entries of `axis` by an integer tensor: output shape
    /// `self[..axis] + indices.shape + self[axis+1..]`. Out-of-range indices
    /// are an error at eval.
    pub fn gather(&self, indices: &Tensor, axis: isize) -> Result<Tensor> {
        let device = common_device("gather", &[self, indices])?;
        if !matches!(indices.dtype(), DType::I32 | DType::I64 | DType::U8) {
            return Err(dtype_err(
                "gather",
                indices.dtype(),
                " for indices, expected an integer type",
            ));
        }
        let a = normalize_axis("gather", axis, self.rank())?;
        let mut shape = self.shape()[..a].to_vec();
        shape.extend_from_slice(indices.shape());
        shape.extend_from_slice(&self.shape()[a + 1..]);
        // A block-quantised table gives f32 rows; its blocks run along the
        // last axis, so whole rows are all it can gather.
        let dtype = match self.dtype() {
            DType::Quantized(f) if a + 1 == self.rank() => {
                return Err(invalid(
                    "gather",
                    format!("a {f} table gathers whole rows: axis {a} is its block axis"),
                ))
            }
            DType::Quantized(_) => DType::F32,
            d => d,
        };
        Tensor::from_op(
            Op::Gather { axis: a },
            vec![self.clone(), indices.clone()],
            shape,
            dtype,
            device,
        )
    }

    /// `self` with `updates` added at `indices` along `axis`; `updates` has
    /// the shape `gather(indices, axis)` would give
    /// (`self[..axis] + indices.shape + self[axis+1..]`). Repeated indices
    /// accumulate; out-of-range indices are an error at eval.
    pub fn scatter_add(&self, indices: &Tensor, updates: &Tensor, axis: isize) -> Result<Tensor> {
        let device = common_device("scatter_add", &[self, indices, updates])?;
        if !matches!(indices.dtype(), DType::I32 | DType::I64 | DType::U8) {
            return Err(dtype_err(
                "scatter_add",
                indices.dtype(),
                " for indices, expected an integer type",
            ));
        }
        if updates.dtype() != self.dtype() || self.dtype() == DType::Bool {
            return Err(dtype_err(
                "scatter_add",
                updates.dtype(),
                format!(" for updates, target is {}", self.dtype()),
            ));
        }
        let a = normalize_axis("scatter_add", axis, self.rank())?;
        let mut want = self.shape()[..a].to_vec();
        want.extend_from_slice(indices.shape());
        want.extend_from_slice(&self.shape()[a + 1..]);
        if updates.shape() != want.as_slice() {
            return Err(shape_err(
                "scatter_add",
                format!(
                    "updates {:?} do not match target {:?} indexed by {:?} along axis {a} (expected {want:?})",
                    updates.shape(),
                    self.shape(),
                    indices.shape()
                ),
            ));
        }
        Tensor::from_op(
            Op::ScatterAdd { axis: a },
            vec![self.clone(), indices.clone(), updates.clone()],
            self.shape().to_vec(),
            self.dtype(),
            device,
        )
    }

    /// Rows of a 2-d table by 1-d indices (an embedding lookup).
    pub fn index_select(&self, indices: &Tensor, axis: isize) -> Result<Tensor> {
        if indices.rank() != 1 {
            return Err(shape_err(
                "index_select",
                format!("indices must be 1-d, got {:?}", indices.shape()),
            ));
        }
        self.gather(indices, axis)
    }

    /// A copy of `self` with `update` written at `offset` along `axis`; the
    /// offset is a scalar integer tensor read at eval (so one compiled plan
    /// serves every decode position). Out-of-range offsets are an error at eval.
    pub fn slice_update(&self, update: &Tensor, offset: &Tensor, axis: isize) -> Result<Tensor> {
        let device = common_device("slice_update", &[self, update, offset])?;
        let a = normalize_axis("slice_update", axis, self.rank())?;
        if update.dtype() != self.dtype() {
            return Err(dtype_err(
                "slice_update",
                update.dtype(),
                format!(", target is {}", self.dtype()),
            ));
        }
        if !matches!(offset.dtype(), DType::I32 | DType::I64) || offset.numel() != 1 {
            return Err(shape_err(
                "slice_update",
                format!(
                    "offset must be a one-element i32/i64 tensor, got {:?} {}",
                    offset.shape(),
                    offset.dtype()
                ),
            ));
        }
        let fits = update.rank() == self.rank()
            && (0..self.rank()).all(|i| {
                if i == a {
                    update.shape()[i] <= self.shape()[i]
                } else {
                    update.shape()[i] == self.shape()[i]
                }
            });
        if !fits {
            return Err(shape_err(
                "slice_update",
                format!(
                    "update {:?} does not fit target {:?} along axis {a}",
                    update.shape(),
                    self.shape()
                ),
            ));
        }
        Tensor::from_op(
            Op::SliceUpdate { axis: a },
            vec![self.clone(), update.clone(), offset.clone()],
            self.shape().to_vec(),
            self.dtype(),
            device,
        )
    }
}
