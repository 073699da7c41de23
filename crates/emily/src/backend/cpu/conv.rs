//! 1-D convolution as im2col + GEMM, and the channels-last convolution as
//! one GEMM over overlapping input rows.

use emily_kernels::gemm::{gemm_bf16, gemm_bf16_then, MatRef, PackedBf16, RowEpilogue};

use super::epilogue::RowProgram;
use super::{convert, matmul::matmul};
use crate::error::{invalid, Result};
use crate::ops::FusedProgram;
use crate::shape::numel;
use crate::{Array, DType};

/// Stride, padding, dilation and groups of a convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvParams {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

/// Convolution of x (N, C_in, L) with w (C_out, C_in/groups, K) into `shape`.
pub(crate) fn conv1d(
    x: &Array,
    w: &Array,
    p: ConvParams,
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    if numel(shape) == 0 {
        return Array::uninit(shape, dtype);
    }
    if w.dtype() == DType::BF16 {
        let out = bf16_engine(&convert(x, DType::F32)?, w, p, shape)?;
        return convert(&out, dtype);
    }
    let cdt = if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let (x, w) = (convert(x, cdt)?, convert(w, cdt)?);
    let out = match cdt {
        DType::F64 => typed::<f64>(&x, &w, p, shape, cdt)?,
        _ => typed::<f32>(&x, &w, p, shape, cdt)?,
    };
    convert(&out, dtype)
}

fn typed<T: crate::Element + Default>(
    x: &Array,
    w: &Array,
    p: ConvParams,
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    let ConvParams {
        stride,
        padding,
        dilation,
        groups,
    } = p;
    let (n, cin, l) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let (cout, cg, k) = (w.shape()[0], w.shape()[1], w.shape()[2]);
    let lout = shape[2];
    let og = cout / groups;
    let xs = x.as_slice::<T>();
    let mut outs = Vec::with_capacity(n * groups);
    for b in 0..n {
        for g in 0..groups {
            // cols[(c*k + t), o] = x[b, g*cg + c, o*stride + t*dilation - padding]
            let mut cols_arr = Array::uninit(&[cg * k, lout], dtype)?;
            let cols = cols_arr.as_mut_slice::<T>().expect("fresh array");
            let base = (b * cin + g * cg) * l;
            emily_kernels::parallel::for_each_row_block_mut(cols, lout, lout, |first, block| {
                for (i, dst) in block.chunks_mut(lout).enumerate() {
                    let (c, t) = ((first + i) / k, (first + i) % k);
                    im2col_row(&xs[base + c * l..][..l], t * dilation, stride, padding, dst);
                }
            });
            let cols = cols_arr;
            let wg = if groups == 1 {
                w.reshaped(&[og, cg * k])
            } else {
                Array::from_slice(
                    &w.as_slice::<T>()[g * og * cg * k..][..og * cg * k],
                    &[og, cg * k],
                )?
            };
            outs.push(matmul(&wg, &cols, false, false, &[og, lout], dtype)?);
        }
    }
    if outs.len() == 1 {
        return Ok(outs.pop().expect("one output").reshaped(shape));
    }
    let mut out = Array::uninit(shape, dtype)?;
    let dst = out.as_mut_slice::<T>().unwrap();
    for (i, o) in outs.iter().enumerate() {
        dst[i * og * lout..][..og * lout].copy_from_slice(o.as_slice::<T>());
    }
    Ok(out)
}

thread_local! {
    /// The im2col operand this thread packed last, refilled by its next
    /// convolution: a fresh one was allocated and cleared every call (Whisper
    /// tiny.en's second convolution: 3.5 MB, 6 % of the op). It stays
    /// resident between calls (3.5 MB for tiny.en, 4.6 MB for base: JFK int8
    /// peak RSS 0.90–0.95× → 0.93–0.98× whisper.cpp q8_0's on the Xeon).
    static COLS: std::cell::Cell<Option<emily_kernels::gemm::PackedBf16>> =
        const { std::cell::Cell::new(None) };
}

/// Convolution with bf16 weights on the bf16 GEMM engine: the im2col matrix
/// is computed row by row straight into the engine's packed B layout (no
/// intermediate matrix), and `W_g (og × cg·K) · cols` lands in the output's rows; f32 out.
fn bf16_engine(x: &Array, w: &Array, p: ConvParams, shape: &[usize]) -> Result<Array> {
    let ConvParams {
        stride,
        padding,
        dilation,
        groups,
    } = p;
    let (n, cin, l) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let (cout, cg, k) = (w.shape()[0], w.shape()[1], w.shape()[2]);
    let (lout, og) = (shape[2], cout / groups);
    let (xs, ws) = (x.as_slice::<f32>(), w.as_slice::<half::bf16>());
    let mut out = Array::uninit(shape, DType::F32)?;
    let o = out.as_mut_slice::<f32>().expect("fresh array");
    for b in 0..n {
        for g in 0..groups {
            let base = (b * cin + g * cg) * l;
            // cols[(c*k + t), o] = x[b, g*cg + c, o*stride + t*dilation - padding]
            let cols = PackedBf16::from_rows_reusing(COLS.take(), cg * k, lout, |row, dst| {
                let (c, t) = (row / k, row % k);
                im2col_row(&xs[base + c * l..][..l], t * dilation, stride, padding, dst);
            });
            let wg = MatRef::row_major(&ws[g * og * cg * k..][..og * cg * k], og, cg * k);
            let dst = &mut o[(b * cout + g * og) * lout..][..og * lout];
            gemm_bf16(wg, &cols, dst);
            COLS.set(Some(cols));
        }
    }
    Ok(out)
}

/// A channels-last convolution ([`crate::fast::FastOp::Conv1dChannelsLast`])
/// on the bf16 engine: `x` `(N, L, C)` f32, `w` `(C_out, C, K)` bf16 (packed
/// once per buffer as its taps, [`packed_weights::bf16_conv_taps`]), output
/// `(N, L', C_out)` f32. Output row `t` reads the `K·C` contiguous values from
/// input row `t·stride − padding`: the rows whose window lies inside the
/// input are one GEMM over overlapping rows of `x` in place; the few whose
/// window crosses an end are gathered, zero-padded, into a small matrix.
pub(crate) fn conv1d_channels_last(
    x: &Array,
    w: &Array,
    stride: usize,
    padding: usize,
    shape: &[usize],
) -> Result<Array> {
    channels_last(x, w, (stride, padding), shape, None)
}

/// [`crate::ops::Op::ConvThen`]: [`conv1d_channels_last`] with `program`
/// run over each finished output row while the GEMM writes it (f32 output).
pub(crate) fn conv1d_channels_last_then(
    inputs: &[Array],
    stride_padding: (usize, usize),
    program: &FusedProgram,
    acc: usize,
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    if dtype != DType::F32 {
        return Err(invalid(
            "conv1d_channels_last_then",
            format!("output {dtype}: the epilogue writes f32"),
        ));
    }
    let then = RowProgram::new(program, acc, &inputs[2..], shape)?;
    let epilogue = |i: usize, j0: usize, row: &mut [f32]| then.apply(i, j0, row);
    channels_last(
        &inputs[0],
        &inputs[1],
        stride_padding,
        shape,
        Some(&epilogue),
    )
}

/// The channels-last convolution, `then` applied to each finished piece of
/// an output row (row index over the whole `(N·L') × C_out` output).
fn channels_last(
    x: &Array,
    w: &Array,
    (stride, padding): (usize, usize),
    shape: &[usize],
    then: Option<RowEpilogue<'_>>,
) -> Result<Array> {
    let (n, l, c) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let (cout, k) = (w.shape()[0], w.shape()[2]);
    let lout = shape[1];
    let mut out = Array::uninit(shape, DType::F32)?;
    if numel(shape) == 0 {
        return Ok(out);
    }
    let taps = super::packed_weights::bf16_conv_taps(w)?;
    let (xs, o) = (
        x.as_slice::<f32>(),
        out.as_mut_slice::<f32>().expect("fresh array"),
    );
    let width = k * c;
    // Output rows `inner` read only input rows inside `0..l`.
    let first = padding.div_ceil(stride).min(lout);
    let last = ((l + padding).saturating_sub(k) / stride + 1).clamp(first, lout);
    let mut edge = Vec::new();
    for b in 0..n {
        let (xb, ob) = (
            &xs[b * l * c..][..l * c],
            &mut o[b * lout * cout..][..lout * cout],
        );
        // Rows `r0..` of batch entry `b` through the engine (and `then`).
        let product = |a: MatRef<'_, f32>, r0: usize, out: &mut [f32]| match then {
            Some(then) => {
                let base = b * lout + r0;
                gemm_bf16_then(a, &taps, &|i, j0, row| then(base + i, j0, row), out)
            }
            None => gemm_bf16(a, &taps, out),
        };
        if first < last {
            let start = (first * stride - padding) * c;
            let a = MatRef::new(&xb[start..], last - first, width, stride * c, 1);
            product(a, first, &mut ob[first * cout..last * cout]);
        }
        for rows in [0..first, last..lout] {
            if rows.is_empty() {
                continue;
            }
            // Window of row t: input rows t·stride − padding + tap, zero
            // outside the input.
            edge.clear();
            edge.resize(rows.len() * width, 0.0);
            for (t, dst) in rows.clone().zip(edge.chunks_exact_mut(width)) {
                for tap in 0..k {
                    let src = (t * stride + tap).checked_sub(padding).filter(|&s| s < l);
                    if let Some(s) = src {
                        dst[tap * c..][..c].copy_from_slice(&xb[s * c..][..c]);
                    }
                }
            }
            let a = MatRef::row_major(&edge, rows.len(), width);
            product(a, rows.start, &mut ob[rows.start * cout..rows.end * cout]);
        }
    }
    Ok(out)
}

/// One row of the im2col matrix: `dst[o] = row[o*stride + shift - padding]`,
/// zero outside the row. The in-range span `lo..hi` is computed directly, so
/// stride-1 rows are one contiguous copy.
fn im2col_row<T: crate::Element + Default>(
    row: &[T],
    shift: usize,
    stride: usize,
    padding: usize,
    dst: &mut [T],
) {
    let n = dst.len();
    // First output whose source position `o*stride + shift - padding` is ≥ 0,
    // and the first whose position is ≥ the row's length.
    let lo = padding.saturating_sub(shift).div_ceil(stride).min(n);
    let hi = (row.len() + padding)
        .saturating_sub(shift)
        .div_ceil(stride)
        .clamp(lo, n);
    dst[..lo].fill(T::default());
    dst[hi..].fill(T::default());
    if lo < hi {
        let start = lo * stride + shift - padding;
        if stride == 1 {
            dst[lo..hi].copy_from_slice(&row[start..start + (hi - lo)]);
        } else {
            // Whole strides first (`chunks_exact` lets the compiler vectorise
            // the gather), then the one source element a partial stride holds.
            let src = &row[start..];
            let span = &mut dst[lo..hi];
            let whole = (src.len() / stride).min(span.len());
            if stride == 2 {
                // A constant stride lets the compiler vectorise the gather
                // (Whisper's second convolution: im2col 16 % of the op with
                // the runtime stride).
                for (d, pair) in span.iter_mut().zip(src.chunks_exact(2)) {
                    *d = pair[0];
                }
            } else {
                for (d, chunk) in span.iter_mut().zip(src.chunks_exact(stride)) {
                    *d = chunk[0];
                }
            }
            if whole < span.len() {
                span[whole] = src[whole * stride];
            }
        }
    }
}
