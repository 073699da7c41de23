//! Element types at the boundary of an attention call. `f32` tensors are read
//! in place; `f16`/`bf16` ones are widened into `f32` scratch — once per query
//! row and once per key/value tile of a block — and the output is rounded once
//! per element. All arithmetic is `f32` (but see `bf16_products` for the
//! bf16 dot products of long bf16 blocks).

use half::{bf16, f16};

use crate::fast::layout::SharedOut;

/// A read-only input tensor.
#[derive(Clone, Copy)]
pub(super) enum Src<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    Bf16(&'a [bf16]),
}

impl Src<'_> {
    /// Elements in the buffer.
    pub fn len(&self) -> usize {
        match self {
            Src::F32(x) => x.len(),
            Src::F16(x) => x.len(),
            Src::Bf16(x) => x.len(),
        }
    }

    /// `rows` rows of `width` elements, the first at `start` and the others
    /// `stride` apart, as `f32`: the returned slice holds row `r` at
    /// `r * row_stride`, where `(slice, row_stride)` is the result. `f32` data is
    /// returned in place; half data is widened into `buf`.
    pub fn rows_f32<'b>(
        &'b self,
        start: usize,
        stride: usize,
        rows: usize,
        width: usize,
        buf: &'b mut Vec<f32>,
    ) -> (&'b [f32], usize) {
        if rows == 0 {
            return (&[], width);
        }
        match self {
            Src::F32(x) => (&x[start..start + (rows - 1) * stride + width], stride),
            Src::F16(x) => (
                widen(x, start, stride, rows, width, buf, crate::cast::f16_to_f32),
                width,
            ),
            Src::Bf16(x) => (
                widen(x, start, stride, rows, width, buf, crate::cast::bf16_to_f32),
                width,
            ),
        }
    }
}

/// Rows of `x` widened by `convert` (the cast kernels: F16C in
/// registers, not `half`'s call per 8 values) into `buf`, `width` apart.
fn widen<'b, T>(
    x: &[T],
    start: usize,
    stride: usize,
    rows: usize,
    width: usize,
    buf: &'b mut Vec<f32>,
    convert: fn(&[T], &mut [f32]),
) -> &'b [f32] {
    buf.resize(rows * width, 0.0);
    if stride == width {
        // Contiguous rows (keys/values of one head): one call for the tile.
        convert(&x[start..start + rows * width], &mut buf[..rows * width]);
        return &buf[..rows * width];
    }
    for (r, dst) in buf.chunks_exact_mut(width.max(1)).enumerate().take(rows) {
        convert(&x[start + r * stride..][..width], dst);
    }
    &buf[..rows * width]
}

/// The output tensor, written row by row by the workers.
#[derive(Clone, Copy)]
pub(super) enum Dst {
    F32(SharedOut<f32>),
    F16(SharedOut<f16>),
    Bf16(SharedOut<bf16>),
    /// f32 elements holding bf16 values: each rounded as for `Bf16`, then
    /// widened (a bf16 attention whose output is widened next).
    Bf16Widened(SharedOut<f32>),
}

impl Dst {
    /// Writes `vals` to the `vals.len()` elements at `offset` (rounding once
    /// for half outputs).
    ///
    /// # Safety
    /// `offset + vals.len()` must lie inside the output buffer, and no other
    /// worker may be writing these elements.
    pub unsafe fn write_slice(&self, offset: usize, vals: &[f32]) {
        match self {
            Dst::F32(o) => o.slice(offset, vals.len()).copy_from_slice(vals),
            Dst::F16(o) => crate::cast::f32_to_f16(vals, o.slice(offset, vals.len())),
            Dst::Bf16(o) => crate::cast::f32_to_bf16(vals, o.slice(offset, vals.len())),
            Dst::Bf16Widened(o) => {
                for (d, &v) in o.slice(offset, vals.len()).iter_mut().zip(vals) {
                    *d = f32::from_bits((crate::gemm::bf16_bits(v) as u32) << 16);
                }
            }
        }
    }
}
