//! Glue from fast-op nodes to the fused CPU kernels in `emily_kernels::fast`.
//! Each op runs in its tensors' own float type through the kernel's f32, f16
//! or bf16 entry point ([`FusedFloat`]): half-precision tensors are widened a
//! row at a time inside the kernel and rounded once, never converted whole.
//! Masks, sinks and RoPE frequencies are read as f32.

use emily_kernels::fast::{
    self as k, HeadStrides, Mask, MaskStrides, Positions, RopeParams, SdpaParams,
};
use half::{bf16, f16};

use super::convert;
use crate::error::{invalid, Result};
use crate::fast::{FastOp, MaskKind, PositionsKind, SeqMajor};
use crate::shape::numel;
use crate::{Array, DType, Element};

/// A float type with an entry point for each fused kernel.
trait FusedFloat: Element {
    fn rms_norm(x: &[Self], w: Option<&[Self]>, eps: f32, cols: usize, out: &mut [Self]);
    #[allow(clippy::too_many_arguments)]
    fn layer_norm(
        x: &[Self],
        w: Option<&[Self]>,
        b: Option<&[Self]>,
        eps: f32,
        cols: usize,
        out: &mut [Self],
    );
    fn rope(x: &[Self], out: &mut [Self], p: &RopeParams<'_>);
    fn sdpa(q: &[Self], k: &[Self], v: &[Self], out: &mut [Self], p: &SdpaParams<'_>);
}

macro_rules! fused_float {
    ($t:ty, $rms:ident, $ln:ident, $rope:ident, $sdpa:ident) => {
        impl FusedFloat for $t {
            fn rms_norm(x: &[$t], w: Option<&[$t]>, eps: f32, cols: usize, out: &mut [$t]) {
                k::$rms(x, w, eps, cols, out)
            }
            fn layer_norm(
                x: &[$t],
                w: Option<&[$t]>,
                b: Option<&[$t]>,
                eps: f32,
                cols: usize,
                out: &mut [$t],
            ) {
                k::$ln(x, w, b, eps, cols, out)
            }
            fn rope(x: &[$t], out: &mut [$t], p: &RopeParams<'_>) {
                k::$rope(x, out, p)
            }
            fn sdpa(q: &[$t], kk: &[$t], v: &[$t], out: &mut [$t], p: &SdpaParams<'_>) {
                k::$sdpa(q, kk, v, out, p)
            }
        }
    };
}
fused_float!(f32, rms_norm_f32, layer_norm_f32, rope_f32, sdpa_f32);
fused_float!(f16, rms_norm_f16, layer_norm_f16, rope_f16, sdpa_f16);
fused_float!(bf16, rms_norm_bf16, layer_norm_bf16, rope_bf16, sdpa_bf16);

/// Whether a fused CPU kernel handles `op` for these inputs (every float
/// dtype and shape the op accepts).
pub(crate) fn supports(
    op: &FastOp,
    inputs: &[(&[usize], DType)],
) -> std::result::Result<(), String> {
    if let FastOp::Conv1dChannelsLast { .. } = op {
        return match (inputs[0].1, inputs[1].1) {
            (DType::F32, DType::BF16) => Ok(()),
            (x, w) => Err(format!(
                "no fused CPU {} kernel for {x} input and {w} weight (bf16 weights only)",
                op.name()
            )),
        };
    }
    if let FastOp::SdpaSeqMajor {
        mask: MaskKind::Causal,
        has_sinks: false,
        seq_major,
        ..
    } = *op
    {
        // The causal f32 kernel of CPUs without AVX-512 reads head-major
        // operands only: keep its layout (the permutes) there.
        if inputs[..3].iter().all(|(_, d)| *d == DType::F32) {
            let [b, hq, tq, d] = heads_first(inputs[0].0, seq_major.q);
            let [_, hk, tk, _] = heads_first(inputs[1].0, seq_major.k);
            let p = SdpaParams {
                mask: Mask::Causal,
                ..SdpaParams::new(b, hq, hk, tq, tk, d).with_v_head_dim(inputs[2].0[3])
            };
            if k::sdpa_f32_wants_head_major(&p) {
                return Err("the head-major causal f32 kernel serves this call".into());
            }
        }
    }
    if op.compiler_only() && !matches!(op, FastOp::SdpaSeqMajor { .. }) {
        return match inputs.iter().find(|(_, d)| *d != DType::F32) {
            Some((_, d)) => Err(format!("no fused CPU {} kernel for {d}", op.name())),
            None => Ok(()),
        };
    }
    match inputs[0].1 {
        DType::F32 | DType::F16 | DType::BF16 => Ok(()),
        d => Err(format!("no fused CPU {} kernel for {d}", op.name())),
    }
}

/// `Σ x²` over every input (f32 only, which [`supports`] checks): one dot
/// product of each input with itself, summed in f64.
fn sum_squares(inputs: &[Array]) -> Result<Array> {
    let mut total = 0.0f64;
    for a in inputs {
        let x = a.as_slice::<f32>();
        let mut dot = [0.0f32];
        emily_kernels::gemv::gemv_f32(x, 1, x.len(), x, 1, &mut dot);
        total += dot[0] as f64;
    }
    Array::from_slice(&[total as f32], &[])
}

/// RoPE with the head transpose (f32 only, which [`supports`] checks): the
/// kernel reads one layout and writes the other through its strides.
fn rope_heads(x: &Array, base: f32, scale: f32, to_heads: bool, shape: &[usize]) -> Result<Array> {
    let s = x.shape();
    let (b, h, t, d) = if to_heads {
        (s[0], s[2], s[1], s[3])
    } else {
        (s[0], s[1], s[2], s[3])
    };
    let mut p = RopeParams::new(b, h, t, d);
    p.base = base;
    p.scale = scale;
    let (heads, seqs) = (HeadStrides::bhsd(h, t, d), HeadStrides::bshd(h, t, d));
    (p.x_strides, p.out_strides) = if to_heads {
        (seqs, heads)
    } else {
        (heads, seqs)
    };
    let mut out = Array::uninit(shape, DType::F32)?;
    k::rope_f32(x.as_slice(), out.as_mut_slice().unwrap(), &p);
    Ok(out)
}

/// dQ, dK and dV of causal attention, concatenated flat (f32 only, which
/// [`supports`] checks).
fn sdpa_causal_grad(inputs: &[Array], scale: f32, shape: &[usize]) -> Result<Array> {
    let (qs, ks, vs) = (inputs[0].shape(), inputs[1].shape(), inputs[2].shape());
    let p = SdpaParams {
        scale,
        mask: Mask::Causal,
        ..SdpaParams::new(qs[0], qs[1], ks[1], qs[2], ks[2], qs[3]).with_v_head_dim(vs[3])
    };
    let nq = qs.iter().product::<usize>();
    let nk = ks.iter().product::<usize>();
    let mut out = Array::uninit(shape, DType::F32)?;
    let all = out.as_mut_slice::<f32>().unwrap();
    let (dq, rest) = all.split_at_mut(nq);
    let (dk, dv) = rest.split_at_mut(nk);
    k::sdpa_causal_backward_f32(
        inputs[0].as_slice(),
        inputs[1].as_slice(),
        inputs[2].as_slice(),
        inputs[3].as_slice(),
        dq,
        dk,
        dv,
        &p,
    );
    Ok(out)
}

/// dx (plus the residual input, `has_residual`) and (with a weight) the
/// weight's gradient of RMSNorm, concatenated flat (f32 only, which
/// [`supports`] checks).
fn rms_norm_grad(
    inputs: &[Array],
    eps: f32,
    has_weight: bool,
    dy_parts: usize,
    has_residual: bool,
    shape: &[usize],
) -> Result<Array> {
    let x = &inputs[0];
    let cols = *x.shape().last().unwrap_or(&1);
    let w = has_weight.then(|| inputs[1].as_slice::<f32>());
    let first = 1 + has_weight as usize;
    let d_out: Vec<&[f32]> = inputs[first..first + dy_parts]
        .iter()
        .map(|a| a.as_slice::<f32>())
        .collect();
    let residual = has_residual.then(|| inputs[first + dy_parts].as_slice::<f32>());
    let mut out = Array::uninit(shape, DType::F32)?;
    let all = out.as_mut_slice::<f32>().unwrap();
    let (dx, dw) = all.split_at_mut(x.numel());
    k::rms_norm_backward_plus_f32(
        x.as_slice(),
        w,
        &d_out,
        residual,
        eps,
        cols,
        dx,
        has_weight.then_some(dw),
    );
    Ok(out)
}

/// Each row's softmax (times the row's scale, `inputs[1]`, when given)
/// flattened, then its log-sum-exp (f32 only, which [`supports`] checks).
fn softmax_logsumexp(inputs: &[Array], shape: &[usize]) -> Result<Array> {
    let x = &inputs[0];
    let cols = *x.shape().last().unwrap_or(&1);
    let rows = numel(shape) - x.numel();
    let scale = inputs.get(1).map(|s| s.as_slice::<f32>());
    if scale.is_some_and(|s| s.len() != rows) {
        return Err(invalid("softmax_logsumexp", "needs one scale per row"));
    }
    let mut out = Array::uninit(shape, DType::F32)?;
    let all = out.as_mut_slice::<f32>().unwrap();
    let (probs, lse) = all.split_at_mut(x.numel());
    emily_kernels::softmax_lse::softmax_logsumexp_f32(x.as_slice(), rows, cols, scale, probs, lse);
    Ok(out)
}

fn f32s(a: &Array) -> Result<Array> {
    convert(a, DType::F32)
}

/// Runs a supported fast op in `dtype` (`x`'s type, which the weights share).
pub(crate) fn execute(
    op: &FastOp,
    inputs: &[Array],
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    match dtype {
        DType::F16 => run::<f16>(op, inputs, shape, dtype),
        DType::BF16 => run::<bf16>(op, inputs, shape, dtype),
        _ => run::<f32>(op, inputs, shape, DType::F32).and_then(|out| convert(&out, dtype)),
    }
}

/// [`execute`] with every float tensor as `T` (a no-op conversion when it
/// already is).
fn run<T: FusedFloat>(
    op: &FastOp,
    inputs: &[Array],
    shape: &[usize],
    dtype: DType,
) -> Result<Array> {
    let as_t = |a: &Array| convert(a, dtype);
    let x = &inputs[0];
    let cols = *shape.last().unwrap_or(&1);
    match *op {
        FastOp::SdpaCausalGrad { scale } => sdpa_causal_grad(inputs, scale, shape),
        FastOp::RopeHeads {
            base,
            scale,
            to_heads,
        } => rope_heads(x, base, scale, to_heads, shape),
        FastOp::SumSquares => sum_squares(inputs),
        FastOp::Conv1dChannelsLast { stride, padding } => {
            super::conv::conv1d_channels_last(&inputs[0], &inputs[1], stride, padding, shape)
        }
        FastOp::RmsNormGrad {
            eps,
            has_weight,
            dy_parts,
            has_residual,
        } => rms_norm_grad(inputs, eps, has_weight, dy_parts, has_residual, shape),
        FastOp::SoftmaxLogSumExp { .. } => softmax_logsumexp(inputs, shape),
        FastOp::RmsNorm { eps, has_weight } => {
            let x = as_t(x)?;
            let w = has_weight.then(|| as_t(&inputs[1])).transpose()?;
            let mut out = Array::uninit(shape, dtype)?;
            T::rms_norm(
                x.as_slice(),
                w.as_ref().map(|w| w.as_slice()),
                eps,
                cols,
                out.as_mut_slice().unwrap(),
            );
            Ok(out)
        }
        FastOp::LayerNorm {
            eps,
            has_weight,
            has_bias,
        } => {
            let x = as_t(x)?;
            let w = has_weight.then(|| as_t(&inputs[1])).transpose()?;
            let b = has_bias
                .then(|| as_t(&inputs[1 + has_weight as usize]))
                .transpose()?;
            let mut out = Array::uninit(shape, dtype)?;
            T::layer_norm(
                x.as_slice(),
                w.as_ref().map(|w| w.as_slice()),
                b.as_ref().map(|b| b.as_slice()),
                eps,
                cols,
                out.as_mut_slice().unwrap(),
            );
            Ok(out)
        }
        FastOp::Rope {
            dims,
            traditional,
            base,
            scale,
            positions,
            has_freqs,
        } => {
            let r = shape.len();
            let (t, d) = (shape[r - 2], shape[r - 1]);
            let batch = numel(shape) / (t * d).max(1);
            let x = as_t(x)?;
            let freqs = has_freqs
                .then(|| f32s(&inputs[inputs.len() - 1]))
                .transpose()?;
            let ids: Vec<i64>;
            let pos = match positions {
                PositionsKind::Offset(o) => Positions::Offset(o),
                PositionsKind::OffsetTensor => {
                    let o = scalar_i64(&inputs[1]);
                    if o < 0 {
                        return Err(invalid("rope", format!("negative offset {o}")));
                    }
                    Positions::Offset(o as usize)
                }
                PositionsKind::PerToken => {
                    ids = int_values(&inputs[1]);
                    Positions::PerTokenI64(&ids)
                }
            };
            // Positions are shared by every leading index, so all of them are
            // "heads" of one batch entry: the kernel computes each position's
            // sin/cos once and applies it to every head.
            let mut p = RopeParams::new(1, batch, t, d);
            p.dims = dims;
            p.traditional = traditional;
            p.base = base;
            p.scale = scale;
            p.positions = pos;
            p.freqs = freqs.as_ref().map(|f| f.as_slice());
            let mut out = Array::uninit(shape, dtype)?;
            T::rope(x.as_slice(), out.as_mut_slice().unwrap(), &p);
            Ok(out)
        }
        FastOp::Sdpa {
            scale,
            mask,
            has_sinks,
            int8_products,
        }
        | FastOp::SdpaSeqMajor {
            scale,
            mask,
            has_sinks,
            int8_products,
            ..
        } => {
            let seq_major = match *op {
                FastOp::SdpaSeqMajor { seq_major, .. } => seq_major,
                _ => SeqMajor::default(),
            };
            // f32 queries over f16 keys and values take their own kernel
            // (no f32 copy of the keys and values).
            let half_kv = dtype == DType::F32
                && inputs[1].dtype() == DType::F16
                && inputs[2].dtype() == DType::F16;
            // bf16 operands with an f32 output: the compiler folded the
            // widening cast after the attention into it.
            let widened_out = dtype == DType::F32 && x.dtype() == DType::BF16;
            let (q, kk, v) = if widened_out {
                (x.clone(), inputs[1].clone(), inputs[2].clone())
            } else if half_kv {
                (as_t(x)?, inputs[1].clone(), inputs[2].clone())
            } else {
                (as_t(x)?, as_t(&inputs[1])?, as_t(&inputs[2])?)
            };
            let [b, hq, tq, d] = heads_first(q.shape(), seq_major.q);
            let [_, hk, tk, _] = heads_first(kk.shape(), seq_major.k);
            let dv = v.shape()[3];
            let mut p = SdpaParams::new(b, hq, hk, tq, tk, d);
            p.v_head_dim = dv;
            p.int8_scores = int8_products;
            p.int8_values = int8_products;
            p.scale = scale;
            let strides = |seq: bool, heads: usize, len: usize, dim: usize| {
                if seq {
                    HeadStrides::bshd(heads, len, dim)
                } else {
                    HeadStrides::bhsd(heads, len, dim)
                }
            };
            p.q_strides = strides(seq_major.q, hq, tq, d);
            p.k_strides = strides(seq_major.k, hk, tk, d);
            p.v_strides = strides(seq_major.v, hk, tk, dv);
            p.out_strides = strides(seq_major.out, hq, tq, dv);
            let full = [b, hq, tq, tk];
            let m = matches!(mask, MaskKind::Additive | MaskKind::Boolean).then(|| &inputs[3]);
            let mask_f32 = (mask == MaskKind::Additive)
                .then(|| f32s(m.unwrap()))
                .transpose()?;
            let mask_strides = m.map(|m| {
                let st = crate::shape::broadcast_strides(m.shape(), &full);
                MaskStrides {
                    batch: st[0],
                    head: st[1],
                    q: st[2],
                    k: st[3],
                }
            });
            p.mask = match mask {
                MaskKind::None => Mask::None,
                MaskKind::Causal => Mask::Causal,
                MaskKind::Additive => Mask::Additive {
                    data: mask_f32.as_ref().unwrap().as_slice(),
                    strides: mask_strides.unwrap(),
                },
                MaskKind::Boolean => Mask::Boolean {
                    data: bytemuck::cast_slice(m.unwrap().bytes()),
                    strides: mask_strides.unwrap(),
                },
                MaskKind::CausalBand { window } => Mask::CausalBand {
                    shift: scalar_i64(&inputs[3]).clamp(isize::MIN as i64, isize::MAX as i64)
                        as isize,
                    window,
                },
            };
            let sinks = has_sinks
                .then(|| f32s(&inputs[inputs.len() - 1]))
                .transpose()?;
            p.sinks = sinks.as_ref().map(|s| s.as_slice());
            let mut out = Array::uninit(shape, dtype)?;
            if widened_out {
                k::sdpa_bf16_f32_out(
                    q.as_slice(),
                    kk.as_slice(),
                    v.as_slice(),
                    out.as_mut_slice().unwrap(),
                    &p,
                );
                return Ok(out);
            }
            if half_kv {
                // f16 keys and values (a half-precision KV cache), read in
                // place and widened per key tile.
                k::sdpa_f32_f16_kv(
                    q.as_slice(),
                    inputs[1].as_slice(),
                    inputs[2].as_slice(),
                    out.as_mut_slice().unwrap(),
                    &p,
                );
                return Ok(out);
            }
            T::sdpa(
                q.as_slice(),
                kk.as_slice(),
                v.as_slice(),
                out.as_mut_slice().unwrap(),
                &p,
            );
            Ok(out)
        }
    }
}

/// `(B, H, T, D)` of an attention operand's shape, sequence-major
/// `(B, T, H, D)` when `seq_major`.
fn heads_first(shape: &[usize], seq_major: bool) -> [usize; 4] {
    if seq_major {
        [shape[0], shape[2], shape[1], shape[3]]
    } else {
        [shape[0], shape[1], shape[2], shape[3]]
    }
}

fn int_values(a: &Array) -> Vec<i64> {
    match a.dtype() {
        DType::I32 => a.as_slice::<i32>().iter().map(|&v| v as i64).collect(),
        _ => a.as_slice::<i64>().to_vec(),
    }
}

fn scalar_i64(a: &Array) -> i64 {
    int_values(a)[0]
}
