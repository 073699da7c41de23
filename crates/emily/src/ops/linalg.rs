//! Matrix products and convolution.

use super::{common_device, is_last_two_swap, Op};
use crate::error::{dtype_err, invalid, shape_err, Result};
use crate::shape::{broadcast_shapes, checked_add, checked_mul};
use crate::tensor::State;
use crate::{DType, Tensor};

/// If `t` is a pending swap of its last two axes, the tensor it swaps.
fn swapped_source(t: &Tensor) -> Option<Tensor> {
    match &*t.state() {
        State::Pending {
            op: Op::Permute { perm },
            inputs,
        } if is_last_two_swap(perm) => Some(inputs[0].clone()),
        _ => None,
    }
}

/// `x · wᵀ` with `w_t` a pending transpose of block-quantised weights
/// `w (n, k)` and `x (…, m, k)` f32: an f32 `(…, m, n)` node whose kernel
/// dequantises `w` in registers.
fn quantized_matmul(x: &Tensor, w_t: &Tensor, device: crate::Device) -> Result<Tensor> {
    let q = w_t.dtype();
    let Some(w) = swapped_source(w_t).filter(|w| w.rank() == 2) else {
        return Err(dtype_err(
            "matmul",
            q,
            format!(
                " weights of shape {:?} must be the transposed right operand, x.matmul(&w.t()) with w of shape (n, k)",
                w_t.shape()
            ),
        ));
    };
    if x.dtype() != DType::F32 {
        return Err(dtype_err(
            "matmul",
            x.dtype(),
            format!(", {q} weights take f32 activations"),
        ));
    }
    if x.rank() < 2 {
        return Err(shape_err(
            "matmul",
            format!("operands must have rank >= 2, got {:?}", x.shape()),
        ));
    }
    let (n, k) = (w.shape()[0], w.shape()[1]);
    let a = x.shape();
    if a[a.len() - 1] != k {
        return Err(shape_err(
            "matmul",
            format!("inner dimensions differ: {a:?} @ {:?} ({q} weights of shape ({n}, {k}), transposed)", w_t.shape()),
        ));
    }
    let (ix, ta) = match swapped_source(x) {
        Some(s) => (s, true),
        None => (x.clone(), false),
    };
    let mut shape = a.to_vec();
    *shape.last_mut().expect("rank >= 2") = n;
    Tensor::from_op(
        Op::Matmul {
            transpose_a: ta,
            transpose_b: true,
        },
        vec![ix, w],
        shape,
        DType::F32,
        device,
    )
}

impl Tensor {
    /// Batched matrix product `(…, m, k) @ (…, k, n) -> (…, m, n)`; batch axes
    /// broadcast; 1-d operands are not promoted (reshape them). An operand that
    /// is a pending `transpose` of its last two axes is read in place (no copy).
    ///
    /// Dtypes: equal float operands give that dtype; f32 activations times
    /// f16/bf16 weights give f32. With bf16 weights the f32 activations are
    /// rounded to bf16 (bf16 weights mean bf16 products: exact products, f32
    /// sums; on the CPU's bf16 matrix engine above a few rows); a bf16 × bf16
    /// output is rounded once at the end. f16 weights are widened to f32
    /// exactly.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        let device = common_device("matmul", &[self, other])?;
        if other.dtype().is_quantized() {
            return quantized_matmul(self, other, device);
        }
        // Mixed precision: f32 activations times f16/bf16 weights gives f32
        // (weights stay half in memory; decode-sized products stream them).
        let mixed = self.dtype() == DType::F32 && matches!(other.dtype(), DType::F16 | DType::BF16);
        if self.dtype() != other.dtype() && !mixed {
            return Err(dtype_err(
                "matmul",
                other.dtype(),
                format!(", operands are {} and {}", self.dtype(), other.dtype()),
            ));
        }
        if !self.dtype().is_float() {
            return Err(dtype_err("matmul", self.dtype(), ", expected a float type"));
        }
        if self.rank() < 2 || other.rank() < 2 {
            return Err(shape_err(
                "matmul",
                format!(
                    "operands must have rank >= 2, got {:?} and {:?}",
                    self.shape(),
                    other.shape()
                ),
            ));
        }
        let (a, b) = (self.shape(), other.shape());
        let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
        let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
        if k != k2 {
            return Err(shape_err(
                "matmul",
                format!("inner dimensions differ: {a:?} @ {b:?}"),
            ));
        }
        let mut shape = broadcast_shapes("matmul", &a[..a.len() - 2], &b[..b.len() - 2])?;
        shape.extend([m, n]);
        let (ia, ta) = match swapped_source(self) {
            Some(s) => (s, true),
            None => (self.clone(), false),
        };
        let (ib, tb) = match swapped_source(other) {
            Some(s) => (s, true),
            None => (other.clone(), false),
        };
        Tensor::from_op(
            Op::Matmul {
                transpose_a: ta,
                transpose_b: tb,
            },
            vec![ia, ib],
            shape,
            self.dtype(),
            device,
        )
    }

    /// `self · weight` with 8-bit integer products: `self` is f32 activations
    /// `(…, m, k)`, `weight` a 2-D float matrix `(k, n)` (or the pending
    /// transpose of an `(n, k)` matrix, read in place: `x.matmul_int8(&w.t()?)`
    /// for `Linear` weights); the output is f32 `(…, m, n)`.
    ///
    /// Numerics (approximate by design): each activation row is quantized to
    /// u8 with its own scale and zero point (range widened to include 0), each
    /// weight column symmetrically to s8 with scale `max|w| / 127` (once per
    /// weight buffer on the CPU), the integer products are exact, and
    /// `out = s_x · s_w · (Σ q_x·q_w − zp_x · Σ q_w)`. The error per output is
    /// at most `Σ_k (|x|·s_w + |q_w·s_w|·s_x) / 2`. On the CPU it runs on the
    /// int8 matrix engine (AMX, AVX512-VNNI, AVX2 or portable).
    pub fn matmul_int8(&self, weight: &Tensor) -> Result<Tensor> {
        let device = common_device("matmul_int8", &[self, weight])?;
        if self.dtype() != DType::F32 {
            return Err(dtype_err(
                "matmul_int8",
                self.dtype(),
                ", activations must be f32",
            ));
        }
        if !weight.dtype().is_float() || weight.dtype() == DType::F64 {
            return Err(dtype_err(
                "matmul_int8",
                weight.dtype(),
                ", weights must be f32, f16 or bf16",
            ));
        }
        let (a, b) = (self.shape(), weight.shape());
        if a.len() < 2 || b.len() != 2 || a[a.len() - 1] != b[0] {
            return Err(shape_err(
                "matmul_int8",
                format!("expected x (…, m, k) and a 2-D weight (k, n), got {a:?} and {b:?}"),
            ));
        }
        if b[0] > emily_kernels::gemm::MAX_INT8_DEPTH {
            return Err(shape_err(
                "matmul_int8",
                format!(
                    "depth {} exceeds the int8 engines' limit {}",
                    b[0],
                    emily_kernels::gemm::MAX_INT8_DEPTH
                ),
            ));
        }
        let mut shape = a.to_vec();
        *shape.last_mut().expect("rank >= 2") = b[1];
        let (iw, tb) = match swapped_source(weight) {
            Some(s) => (s, true),
            None => (weight.clone(), false),
        };
        Tensor::from_op(
            Op::MatmulInt8 { transpose_b: tb },
            vec![self.clone(), iw],
            shape,
            DType::F32,
            device,
        )
    }

    /// 1-D convolution: input (N, C_in, L), weight (C_out, C_in/groups, K),
    /// output (N, C_out, (L + 2·padding − dilation·(K−1) − 1)/stride + 1).
    /// Input and weight share a float dtype, or an f32 input meets bf16
    /// weights (f32 output, computed on the bf16 engine like `matmul`).
    pub fn conv1d(
        &self,
        weight: &Tensor,
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
    ) -> Result<Tensor> {
        let device = common_device("conv1d", &[self, weight])?;
        let mixed = self.dtype() == DType::F32 && weight.dtype() == DType::BF16;
        if (self.dtype() != weight.dtype() && !mixed) || !self.dtype().is_float() {
            return Err(dtype_err(
                "conv1d",
                weight.dtype(),
                format!(", input is {}", self.dtype()),
            ));
        }
        let (x, w) = (self.shape(), weight.shape());
        if x.len() != 3 || w.len() != 3 {
            return Err(shape_err("conv1d", format!("expected input (N, C, L) and weight (C_out, C_in/groups, K), got {x:?} and {w:?}")));
        }
        if stride == 0 || dilation == 0 || groups == 0 {
            return Err(invalid(
                "conv1d",
                "stride, dilation and groups must be positive",
            ));
        }
        if x[1] % groups != 0 || w[0] % groups != 0 || x[1] / groups != w[1] {
            return Err(shape_err(
                "conv1d",
                format!("channels do not match: input {x:?}, weight {w:?}, groups {groups}"),
            ));
        }
        if w[2] == 0 {
            return Err(shape_err(
                "conv1d",
                format!("weight {w:?} has an empty kernel"),
            ));
        }
        let span = checked_add("conv1d", checked_mul("conv1d", dilation, w[2] - 1)?, 1)?;
        let padded = checked_add("conv1d", x[2], checked_mul("conv1d", 2, padding)?)?;
        if padded > isize::MAX as usize {
            return Err(shape_err(
                "conv1d",
                format!(
                    "input length {} + 2*{padding} padding exceeds isize::MAX",
                    x[2]
                ),
            ));
        }
        if padded < span {
            return Err(shape_err(
                "conv1d",
                format!(
                    "input length {} (+2*{padding} padding) shorter than the kernel span {span}",
                    x[2]
                ),
            ));
        }
        let l_out = (padded - span) / stride + 1;
        Tensor::from_op(
            Op::Conv1d {
                stride,
                padding,
                dilation,
                groups,
            },
            vec![self.clone(), weight.clone()],
            vec![x[0], w[0], l_out],
            self.dtype(),
            device,
        )
    }
}
