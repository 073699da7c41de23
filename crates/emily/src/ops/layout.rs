//! Shape and layout ops: reshape, permute, broadcast, slice, concat, pad and
//! their conveniences (transpose, squeeze, expand_dims, stack, narrow).

use super::{common_device, Op};
use crate::error::{dtype_err, invalid, shape_err, Result};
use crate::shape::{broadcast_shapes, checked_add, checked_numel, normalize_axis};
use crate::Tensor;

impl Tensor {
    /// Same elements, new shape; one entry may be -1 (inferred). Free on
    /// materialised tensors (the buffer is shared).
    pub fn reshape(&self, shape: &[isize]) -> Result<Tensor> {
        let inferred = shape.iter().filter(|&&d| d < 0).count();
        if inferred > 1 || shape.iter().any(|&d| d < -1) {
            return Err(invalid(
                "reshape",
                format!("invalid target shape {shape:?}"),
            ));
        }
        let known = shape
            .iter()
            .filter(|&&d| d >= 0)
            .try_fold(1usize, |n, &d| n.checked_mul(d as usize))
            .ok_or_else(|| {
                shape_err(
                    "reshape",
                    format!("target shape {shape:?} has more elements than usize holds"),
                )
            })?;
        let out: Vec<usize> = shape
            .iter()
            .map(|&d| {
                if d < 0 {
                    self.numel().checked_div(known).unwrap_or(0)
                } else {
                    d as usize
                }
            })
            .collect();
        if checked_numel("reshape", &out)? != self.numel() {
            return Err(shape_err(
                "reshape",
                format!(
                    "cannot reshape {:?} ({} elements) to {shape:?}",
                    self.shape(),
                    self.numel()
                ),
            ));
        }
        self.reshape_to(&out)
    }

    /// Reshape to an explicit shape.
    pub fn reshape_to(&self, shape: &[usize]) -> Result<Tensor> {
        if checked_numel("reshape", shape)? != self.numel() {
            return Err(shape_err(
                "reshape",
                format!("cannot reshape {:?} to {shape:?}", self.shape()),
            ));
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        Tensor::from_op(
            Op::Reshape,
            vec![self.clone()],
            shape.to_vec(),
            self.dtype(),
            self.device(),
        )
    }

    /// Permutes axes: output axis i is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let r = self.rank();
        let mut seen = vec![false; r];
        if perm.len() != r
            || perm
                .iter()
                .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
        {
            return Err(invalid(
                "permute",
                format!("{perm:?} is not a permutation of {r} axes"),
            ));
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        let shape = perm.iter().map(|&p| self.shape()[p]).collect();
        Tensor::from_op(
            Op::Permute {
                perm: perm.to_vec(),
            },
            vec![self.clone()],
            shape,
            self.dtype(),
            self.device(),
        )
    }

    /// Swaps two axes.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let (a, b) = (
            normalize_axis("transpose", a, self.rank())?,
            normalize_axis("transpose", b, self.rank())?,
        );
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Swaps the last two axes (matrix transpose; free inside `matmul`).
    pub fn t(&self) -> Result<Tensor> {
        self.transpose(-2, -1)
    }

    /// Broadcasts to `shape` (numpy rules).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        let s = broadcast_shapes("broadcast_to", self.shape(), shape)?;
        if s != shape {
            return Err(shape_err(
                "broadcast_to",
                format!("cannot broadcast {:?} to {shape:?}", self.shape()),
            ));
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        Tensor::from_op(
            Op::Broadcast,
            vec![self.clone()],
            shape.to_vec(),
            self.dtype(),
            self.device(),
        )
    }

    /// Strided slice: per axis `start..end` by `step` (all positive; `end` clamps).
    pub fn slice(&self, starts: &[usize], ends: &[usize], steps: &[usize]) -> Result<Tensor> {
        let r = self.rank();
        if starts.len() != r || ends.len() != r || steps.len() != r {
            return Err(invalid(
                "slice",
                format!("need {r} starts/ends/steps for shape {:?}", self.shape()),
            ));
        }
        let mut shape = Vec::with_capacity(r);
        for i in 0..r {
            let end = ends[i].min(self.shape()[i]);
            if steps[i] == 0 || starts[i] > end {
                return Err(invalid(
                    "slice",
                    format!(
                        "axis {i}: start {} end {} step {} invalid for size {}",
                        starts[i],
                        ends[i],
                        steps[i],
                        self.shape()[i]
                    ),
                ));
            }
            shape.push((end - starts[i]).div_ceil(steps[i]));
        }
        if shape == self.shape() {
            return Ok(self.clone());
        }
        Tensor::from_op(
            Op::Slice {
                starts: starts.to_vec(),
                steps: steps.to_vec(),
            },
            vec![self.clone()],
            shape,
            self.dtype(),
            self.device(),
        )
    }

    /// `len` elements of `axis` starting at `start`.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let a = normalize_axis("narrow", axis, self.rank())?;
        if start
            .checked_add(len)
            .is_none_or(|end| end > self.shape()[a])
        {
            return Err(invalid(
                "narrow",
                format!("{start}+{len} exceeds axis {a} of {:?}", self.shape()),
            ));
        }
        let mut starts = vec![0; self.rank()];
        let mut ends = self.shape().to_vec();
        starts[a] = start;
        ends[a] = start + len;
        self.slice(&starts, &ends, &vec![1; self.rank()])
    }

    /// Joins tensors along `axis`; all other axes must match.
    pub fn concat(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| invalid("concat", "no tensors"))?;
        let device = common_device("concat", tensors)?;
        let a = normalize_axis("concat", axis, first.rank())?;
        let mut shape = first.shape().to_vec();
        shape[a] = 0;
        for t in tensors {
            if t.dtype() != first.dtype() {
                return Err(dtype_err(
                    "concat",
                    t.dtype(),
                    format!(", first input is {}", first.dtype()),
                ));
            }
            let ok = t.rank() == first.rank()
                && (0..t.rank()).all(|i| i == a || t.shape()[i] == first.shape()[i]);
            if !ok {
                return Err(shape_err(
                    "concat",
                    format!(
                        "shapes {:?} and {:?} differ off axis {a}",
                        first.shape(),
                        t.shape()
                    ),
                ));
            }
            shape[a] = checked_add("concat", shape[a], t.shape()[a])?;
        }
        if tensors.len() == 1 {
            return Ok((*first).clone());
        }
        Tensor::from_op(
            Op::Concat { axis: a },
            tensors.iter().map(|t| (*t).clone()).collect(),
            shape,
            first.dtype(),
            device,
        )
    }

    /// Stacks equal-shaped tensors along a new `axis`.
    pub fn stack(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| invalid("stack", "no tensors"))?;
        let a = normalize_axis("stack", axis, first.rank() + 1)? as isize;
        let expanded = tensors
            .iter()
            .map(|t| t.expand_dims(a))
            .collect::<Result<Vec<_>>>()?;
        Tensor::concat(&expanded.iter().collect::<Vec<_>>(), a)
    }

    /// Pads with `value`, `(before, after)` per axis.
    pub fn pad(&self, pads: &[(usize, usize)], value: f64) -> Result<Tensor> {
        if pads.len() != self.rank() {
            return Err(invalid(
                "pad",
                format!(
                    "need {} (before, after) pairs, got {}",
                    self.rank(),
                    pads.len()
                ),
            ));
        }
        if pads.iter().all(|&p| p == (0, 0)) {
            return Ok(self.clone());
        }
        let shape = self
            .shape()
            .iter()
            .zip(pads)
            .map(|(&d, &(b, a))| checked_add("pad", d, b).and_then(|n| checked_add("pad", n, a)))
            .collect::<Result<Vec<usize>>>()?;
        Tensor::from_op(
            Op::Pad {
                pads: pads.to_vec(),
                value,
            },
            vec![self.clone()],
            shape,
            self.dtype(),
            self.device(),
        )
    }

    /// Inserts a size-1 axis at `axis`.
    pub fn expand_dims(&self, axis: isize) -> Result<Tensor> {
        let a = normalize_axis("expand_dims", axis, self.rank() + 1)?;
        let mut s = self.shape().to_vec();
        s.insert(a, 1);
        self.reshape_to(&s)
    }

    /// Removes size-1 `axes` (all size-1 axes when empty).
    pub fn squeeze(&self, axes: &[isize]) -> Result<Tensor> {
        let axes: Vec<usize> = if axes.is_empty() {
            (0..self.rank()).filter(|&i| self.shape()[i] == 1).collect()
        } else {
            axes.iter()
                .map(|&a| normalize_axis("squeeze", a, self.rank()))
                .collect::<Result<_>>()?
        };
        if let Some(&a) = axes.iter().find(|&&a| self.shape()[a] != 1) {
            return Err(shape_err(
                "squeeze",
                format!("axis {a} of {:?} is not 1", self.shape()),
            ));
        }
        let s: Vec<usize> = (0..self.rank())
            .filter(|i| !axes.contains(i))
            .map(|i| self.shape()[i])
            .collect();
        self.reshape_to(&s)
    }

    /// Collapses everything into one axis.
    pub fn flatten(&self) -> Result<Tensor> {
        self.reshape_to(&[self.numel()])
    }
}
