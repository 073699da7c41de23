//! Scaled dot-product attention on `(batch, heads, seq, head_dim)`.
//!
//! Masks: none, causal (aligned to the end when `q_len < kv_len`, as in
//! decoding), an additive bias broadcastable to `(B, H, q, k)`, or a Bool
//! keep-mask. Optional per-head sinks join the softmax denominator only.
//! Grouped-query attention: `k`/`v` may have fewer heads than `q` (dividing
//! it); query head `h` uses kv head `h / (Hq / Hkv)`; repeats are never
//! materialised. A query row whose keys are all masked (and has no sink)
//! outputs zeros, in the fused kernels and the decomposition alike.

use super::{build, to_compute, FastOp, Kernels, MaskKind};
use crate::error::{dtype_err, shape_err, Result};
use crate::shape::broadcast_shapes;
use crate::{DType, Tensor};

/// The attention mask.
#[derive(Clone, Debug, Default)]
pub enum SdpaMask {
    /// No mask.
    #[default]
    None,
    /// Causal, aligned to the end of the keys.
    Causal,
    /// Float bias added to the scores (use `-inf` to mask), broadcastable to `(B, H, q, k)`.
    Additive(Tensor),
    /// Bool keep-mask (true = attend), broadcastable to `(B, H, q, k)`.
    Boolean(Tensor),
    /// Causal with the queries at key positions `offset..offset + q` (a
    /// static KV cache filled up to `offset + q`; `offset` is a one-element
    /// integer tensor), each query seeing only the last `window` keys up to
    /// its own when a window is given (sliding-window attention). No mask
    /// tensor is built; the fused kernel skips keys outside the band.
    CausalBand {
        /// Key position of the first query.
        offset: Tensor,
        /// Keys each query sees (ending at its own position).
        window: Option<usize>,
    },
}

/// Attention options.
#[derive(Clone, Debug, Default)]
pub struct SdpaOptions {
    /// Score multiplier; `None` = `1/sqrt(head_dim)`.
    pub scale: Option<f32>,
    /// The mask.
    pub mask: SdpaMask,
    /// Per-query-head sink logits `(Hq,)` that join the softmax denominator.
    pub sinks: Option<Tensor>,
}

/// `softmax(q·kᵀ·scale + mask) · v` for q `(B, Hq, Tq, D)`, k `(B, Hkv, Tk, D)`,
/// v `(B, Hkv, Tk, Dv)`; output `(B, Hq, Tq, Dv)` in q's dtype. q, k and v
/// share a float dtype, or q is f32 and k, v are f16 (a half-precision KV
/// cache: computed in f32 on the rounded keys and values).
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: SdpaOptions,
) -> Result<Tensor> {
    build_sdpa(Kernels::Fused, q, k, v, opts, false)
}

/// [`scaled_dot_product_attention`] that lets the CPU's bf16 kernel compute
/// both products on int8 codes where it has them (AVX512-VNNI): the scores
/// `q·k` with keys centred on their mean and quantized per key, queries per
/// row; the value product with values quantized per feature and the softmax
/// weights per row and key tile to unsigned bytes; exact integer sums
/// (`emily_kernels::fast::sdpa_bf16` states the error). For a trade of
/// exactness for speed where the caller has one already (an int8 encoder);
/// other dtypes, backends and CPUs compute as without it.
pub fn scaled_dot_product_attention_int8(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: SdpaOptions,
) -> Result<Tensor> {
    build_sdpa(Kernels::Fused, q, k, v, opts, true)
}

pub(super) fn build_sdpa(
    kernels: Kernels,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: SdpaOptions,
    int8_products: bool,
) -> Result<Tensor> {
    const OP: &str = "scaled_dot_product_attention";
    // One float dtype, or f32 queries over f16 keys and values (a
    // half-precision KV cache).
    let half_kv = q.dtype() == DType::F32 && k.dtype() == DType::F16;
    if !q.dtype().is_float() || (k.dtype() != q.dtype() && !half_kv) || v.dtype() != k.dtype() {
        return Err(dtype_err(
            OP,
            k.dtype(),
            format!(
                "; q, k, v must share a float dtype (or be f32, f16, f16), got {} {} {}",
                q.dtype(),
                k.dtype(),
                v.dtype()
            ),
        ));
    }
    if q.rank() != 4 || k.rank() != 4 || v.rank() != 4 {
        return Err(shape_err(
            OP,
            format!(
                "q, k, v must be (B, H, T, D), got {:?} {:?} {:?}",
                q.shape(),
                k.shape(),
                v.shape()
            ),
        ));
    }
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    let ok = qs[0] == ks[0]
        && ks[0] == vs[0]
        && ks[1] == vs[1]
        && ks[2] == vs[2]
        && qs[3] == ks[3]
        && ks[1] > 0
        && qs[1] % ks[1] == 0;
    if !ok {
        return Err(shape_err(OP, format!("incompatible q {qs:?}, k {ks:?}, v {vs:?} (batch, kv heads dividing q heads, seq and head_dim must agree)")));
    }
    let scale = opts.scale.unwrap_or(1.0 / (qs[3] as f32).sqrt());
    let mut inputs = vec![q.clone(), k.clone(), v.clone()];
    let full = [qs[0], qs[1], qs[2], ks[2]];
    let mask = match &opts.mask {
        SdpaMask::None => MaskKind::None,
        SdpaMask::Causal => MaskKind::Causal,
        SdpaMask::CausalBand { offset, window } => {
            if offset.numel() != 1 || !offset.dtype().is_int() {
                return Err(shape_err(
                    OP,
                    format!(
                        "a causal band offset must be a one-element integer tensor, got {:?} {}",
                        offset.shape(),
                        offset.dtype()
                    ),
                ));
            }
            inputs.push(offset.cast(DType::I64)?.reshape_to(&[])?);
            MaskKind::CausalBand { window: *window }
        }
        SdpaMask::Additive(m) | SdpaMask::Boolean(m) => {
            let boolean = matches!(opts.mask, SdpaMask::Boolean(_));
            if boolean && m.dtype() != DType::Bool {
                return Err(dtype_err(OP, m.dtype(), " for a boolean mask"));
            }
            if !boolean && !m.dtype().is_float() {
                return Err(dtype_err(OP, m.dtype(), " for an additive mask"));
            }
            if m.rank() > 4 || broadcast_shapes(OP, m.shape(), &full)? != full {
                return Err(shape_err(
                    OP,
                    format!("mask {:?} does not broadcast to {full:?}", m.shape()),
                ));
            }
            let m = if !boolean && m.dtype() != q.dtype() {
                m.cast(q.dtype())?
            } else {
                m.clone()
            };
            inputs.push(m);
            if boolean {
                MaskKind::Boolean
            } else {
                MaskKind::Additive
            }
        }
    };
    if let Some(s) = &opts.sinks {
        if s.shape() != [qs[1]] || !s.dtype().is_float() {
            return Err(shape_err(
                OP,
                format!(
                    "sinks must be float of shape [{}], got {:?}",
                    qs[1],
                    s.shape()
                ),
            ));
        }
        inputs.push(s.cast(q.dtype())?);
    }
    let op = FastOp::Sdpa {
        scale,
        mask,
        has_sinks: opts.sinks.is_some(),
        int8_products,
    };
    build(
        kernels,
        op,
        inputs,
        vec![qs[0], qs[1], qs[2], vs[3]],
        q.dtype(),
    )
}

/// The composed gradient of causal attention (inputs `[q, k, v, d_out]`):
/// the vector-Jacobian product of [`decompose`], flattened and concatenated
/// as dQ, dK, dV.
pub(super) fn decompose_causal_grad(scale: f32, inputs: &[Tensor]) -> Result<Tensor> {
    let attend = |a: &[Tensor]| Ok(vec![decompose(scale, MaskKind::Causal, false, a)?]);
    let (_, grads) = crate::grad::vjp(attend, &inputs[..3], &inputs[3..4])?;
    let flat = grads
        .iter()
        .map(|g| g.flatten())
        .collect::<Result<Vec<_>>>()?;
    Tensor::concat(&flat.iter().collect::<Vec<_>>(), 0)
}

/// Composed [`FastOp::SdpaSeqMajor`]: the head transposes it folds, around
/// [`decompose`].
pub(super) fn decompose_seq_major(
    scale: f32,
    mask: MaskKind,
    has_sinks: bool,
    seq_major: super::SeqMajor,
    inputs: &[Tensor],
) -> Result<Tensor> {
    const SWAP: [usize; 4] = [0, 2, 1, 3];
    let mut heads = inputs.to_vec();
    for (i, flag) in [seq_major.q, seq_major.k, seq_major.v]
        .into_iter()
        .enumerate()
    {
        if flag {
            heads[i] = inputs[i].permute(&SWAP)?;
        }
    }
    let out = decompose(scale, mask, has_sinks, &heads)?;
    if seq_major.out {
        out.permute(&SWAP)
    } else {
        Ok(out)
    }
}

/// Composed attention: grouped scores by broadcasting matmul, f32 softmax.
pub(super) fn decompose(
    scale: f32,
    mask: MaskKind,
    has_sinks: bool,
    inputs: &[Tensor],
) -> Result<Tensor> {
    let (q0, k0, v0) = (&inputs[0], &inputs[1], &inputs[2]);
    let (b, hq, tq, d) = (q0.shape()[0], q0.shape()[1], q0.shape()[2], q0.shape()[3]);
    let (hkv, tk, dv) = (k0.shape()[1], k0.shape()[2], v0.shape()[3]);
    let g = hq / hkv;
    let q = to_compute(q0)?
        .mul_scalar(scale as f64)?
        .reshape_to(&[b, hkv, g, tq, d])?;
    let k = to_compute(k0)?.reshape_to(&[b, hkv, 1, tk, d])?;
    let v = to_compute(v0)?.reshape_to(&[b, hkv, 1, tk, dv])?;
    let mut scores = q.matmul(&k.t()?)?;
    let grouped = |m: &Tensor| -> Result<Tensor> {
        let mut s = vec![1; 4 - m.rank()];
        s.extend_from_slice(m.shape());
        let m = m.reshape_to(&s)?;
        if s[1] == hq && g > 1 {
            m.reshape_to(&[s[0], hkv, g, s[2], s[3]])
        } else if s[1] == hq {
            m.reshape_to(&[s[0], hkv, 1, s[2], s[3]])
        } else {
            m.reshape_to(&[s[0], 1, 1, s[2], s[3]])
        }
    };
    let neg_inf = scores.scalar_like(f64::NEG_INFINITY);
    match mask {
        MaskKind::None => {}
        MaskKind::Causal => {
            let device = scores.device();
            let qi = Tensor::iota_on(&[tq, tk], 0, DType::I64, device)?
                .add_scalar((tk as i64 - tq as i64) as f64)?;
            let kj = Tensor::iota_on(&[tq, tk], 1, DType::I64, device)?;
            scores = Tensor::where_cond(&kj.le(&qi)?, &scores, &neg_inf)?;
        }
        MaskKind::Additive => scores = scores.add(&to_compute(&grouped(&inputs[3])?)?)?,
        MaskKind::Boolean => scores = Tensor::where_cond(&grouped(&inputs[3])?, &scores, &neg_inf)?,
        MaskKind::CausalBand { window } => {
            let qi = Tensor::iota_on(&[tq, tk], 0, DType::I64, scores.device())?.add(&inputs[3])?;
            let kj = Tensor::iota_on(&[tq, tk], 1, DType::I64, scores.device())?;
            let mut keep = kj.le(&qi)?;
            if let Some(w) = window {
                keep = keep.logical_and(&kj.gt(&qi.add_scalar(-(w as f64))?)?)?;
            }
            scores = Tensor::where_cond(&keep, &scores, &neg_inf)?;
        }
    }
    let probs = if has_sinks {
        let sinks = to_compute(&inputs[inputs.len() - 1])?.reshape_to(&[1, hkv, g, 1, 1])?;
        let sinks = sinks.broadcast_to(&[b, hkv, g, tq, 1])?;
        let ext = Tensor::concat(&[&sinks, &scores], -1)?.softmax(-1)?;
        ext.narrow(-1, 1, tk)?
    } else {
        scores.softmax(-1)?
    };
    probs
        .matmul(&v)?
        .reshape_to(&[b, hq, tq, dv])?
        .cast(q0.dtype())
}
