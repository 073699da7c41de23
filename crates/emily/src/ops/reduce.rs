//! Reductions over axes and softmax.

use super::Op;
use crate::error::{dtype_err, Result};
use crate::shape::{normalize_axes, normalize_axis};
use crate::{DType, Tensor};

/// What a reduction computes. Half types accumulate in f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Sum.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Maximum (NaN propagates).
    Max,
    /// Minimum (NaN propagates).
    Min,
    /// Product.
    Prod,
    /// Index of the first maximum (I64 output; one axis).
    ArgMax,
    /// Index of the first minimum (I64 output; one axis).
    ArgMin,
    /// `log(sum(exp(x)))`, computed stably.
    LogSumExp,
}

impl Tensor {
    /// Reduces over `axes` (negative counts from the end; empty = all axes).
    pub fn reduce(&self, op: Reduction, axes: &[isize], keep_dims: bool) -> Result<Tensor> {
        let axes = if axes.is_empty() {
            (0..self.rank()).collect()
        } else {
            normalize_axes("reduce", axes, self.rank())?
        };
        let dtype = match op {
            Reduction::ArgMax | Reduction::ArgMin => {
                if axes.len() != 1 {
                    return Err(crate::error::invalid("argmax", "takes exactly one axis"));
                }
                DType::I64
            }
            Reduction::Mean | Reduction::LogSumExp if !self.dtype().is_float() => {
                return Err(dtype_err("reduce", self.dtype(), format!(" for {op:?}")))
            }
            _ if self.dtype() == DType::Bool => {
                return Err(dtype_err("reduce", self.dtype(), " (cast first)"))
            }
            _ => self.dtype(),
        };
        let shape: Vec<usize> = self
            .shape()
            .iter()
            .enumerate()
            .filter_map(|(i, &d)| match (axes.contains(&i), keep_dims) {
                (false, _) => Some(d),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect();
        Tensor::from_op(
            Op::Reduce {
                op,
                axes,
                keep_dims,
            },
            vec![self.clone()],
            shape,
            dtype,
            self.device(),
        )
    }

    /// Sum over `axes`.
    pub fn sum(&self, axes: &[isize], keep_dims: bool) -> Result<Tensor> {
        self.reduce(Reduction::Sum, axes, keep_dims)
    }

    /// `Σ x²` over every element of every tensor in `parts` (a scalar of
    /// their dtype; f32 zero for none): the squared global norm gradient
    /// clipping needs, as one long row — one concat, square and sum rather
    /// than a square and a sum per tensor. A compiled plan runs it without
    /// the concat (`FastOp::SumSquares`).
    pub fn sum_of_squares(parts: &[Tensor]) -> Result<Tensor> {
        if parts.is_empty() {
            return Tensor::zeros(&[], DType::F32);
        }
        let flat = parts
            .iter()
            .map(|t| t.reshape_to(&[t.numel()]))
            .collect::<Result<Vec<_>>>()?;
        Tensor::concat(&flat.iter().collect::<Vec<_>>(), 0)?
            .square()?
            .sum(&[], false)
    }

    /// Mean over `axes`.
    pub fn mean(&self, axes: &[isize], keep_dims: bool) -> Result<Tensor> {
        self.reduce(Reduction::Mean, axes, keep_dims)
    }

    /// Maximum over `axes`.
    pub fn max(&self, axes: &[isize], keep_dims: bool) -> Result<Tensor> {
        self.reduce(Reduction::Max, axes, keep_dims)
    }

    /// Minimum over `axes`.
    pub fn min(&self, axes: &[isize], keep_dims: bool) -> Result<Tensor> {
        self.reduce(Reduction::Min, axes, keep_dims)
    }

    /// Index of the maximum along `axis` (I64).
    pub fn argmax(&self, axis: isize, keep_dims: bool) -> Result<Tensor> {
        self.reduce(Reduction::ArgMax, &[axis], keep_dims)
    }

    /// Index of the minimum along `axis` (I64).
    pub fn argmin(&self, axis: isize, keep_dims: bool) -> Result<Tensor> {
        self.reduce(Reduction::ArgMin, &[axis], keep_dims)
    }

    /// `log(sum(exp(x)))` over `axes`.
    pub fn logsumexp(&self, axes: &[isize], keep_dims: bool) -> Result<Tensor> {
        self.reduce(Reduction::LogSumExp, axes, keep_dims)
    }

    /// Softmax along `axis`. A row of all `-inf` gives zeros.
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        if !self.dtype().is_float() {
            return Err(dtype_err(
                "softmax",
                self.dtype(),
                ", expected a float type",
            ));
        }
        let axis = normalize_axis("softmax", axis, self.rank())?;
        Tensor::from_op(
            Op::Softmax { axis },
            vec![self.clone()],
            self.shape().to_vec(),
            self.dtype(),
            self.device(),
        )
    }
}
