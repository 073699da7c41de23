//! The fast ops as their textbook formulas, row by row in f64: RMSNorm,
//! LayerNorm, RoPE and scaled-dot-product attention.

use super::element::offset;
use super::{Out, View};
use crate::error::{invalid, Result};
use crate::fast::{FastOp, MaskKind, PositionsKind};
use crate::shape::{broadcast_strides, numel};
use crate::DType;

/// Runs a fast op (inputs as documented on [`FastOp`]).
pub(super) fn execute(op: &FastOp, inputs: &[View], shape: &[usize], dtype: DType) -> Result<Out> {
    match *op {
        FastOp::RmsNorm { eps, has_weight } => norm(
            &inputs[0],
            has_weight.then(|| &inputs[1]),
            None,
            eps,
            false,
            dtype,
        ),
        FastOp::LayerNorm {
            eps,
            has_weight,
            has_bias,
        } => {
            let w = has_weight.then(|| &inputs[1]);
            let b = has_bias.then(|| &inputs[1 + has_weight as usize]);
            norm(&inputs[0], w, b, eps, true, dtype)
        }
        FastOp::Rope { .. } => rope(op, inputs, shape, dtype),
        FastOp::Sdpa {
            scale,
            mask,
            has_sinks,
            ..
        } => sdpa(inputs, scale as f64, mask, has_sinks, shape, dtype),
        FastOp::RopeHeads { .. }
        | FastOp::SdpaSeqMajor { .. }
        | FastOp::Conv1dChannelsLast { .. }
        | FastOp::SumSquares
        | FastOp::SdpaCausalGrad { .. }
        | FastOp::RmsNormGrad { .. }
        | FastOp::SoftmaxLogSumExp { .. } => Err(invalid(
            op.name(),
            "no reference kernel (supports_fast declines it)",
        )),
    }
}

/// RMSNorm (`centered == false`) or LayerNorm over the last axis.
fn norm(
    x: &View,
    weight: Option<&View>,
    bias: Option<&View>,
    eps: f32,
    centered: bool,
    dtype: DType,
) -> Result<Out> {
    let d = *x.shape.last().unwrap_or(&1);
    let mut out = Out::new(x.shape, dtype)?;
    for row in 0..x.numel() / d.max(1) {
        let xs: Vec<f64> = (0..d).map(|j| x.get(row * d + j)).collect();
        let mean = if centered {
            xs.iter().sum::<f64>() / d as f64
        } else {
            0.0
        };
        let var = xs.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for (j, v) in xs.iter().enumerate() {
            let mut y = (v - mean) * inv;
            if let Some(w) = weight {
                y *= w.get(j);
            }
            if let Some(b) = bias {
                y += b.get(j);
            }
            out.set(row * d + j, y);
        }
    }
    Ok(out)
}

/// Rotary embedding of x (…, T, D): position p of token t rotates feature
/// pair i by `p · scale · inv_freq[i]`.
fn rope(op: &FastOp, inputs: &[View], shape: &[usize], dtype: DType) -> Result<Out> {
    let FastOp::Rope {
        dims,
        traditional,
        base,
        scale,
        positions,
        has_freqs,
    } = *op
    else {
        return Err(invalid("rope", format!("not a rope op: {op:?}")));
    };
    let x = &inputs[0];
    let r = shape.len();
    let (t_len, d) = (shape[r - 2], shape[r - 1]);
    let half = dims / 2;
    let position = |t: usize| -> Result<f64> {
        Ok(match positions {
            PositionsKind::Offset(o) => (o + t) as f64,
            PositionsKind::OffsetTensor => {
                let o = inputs[1].index(0);
                if o < 0 {
                    return Err(invalid("rope", format!("negative offset {o}")));
                }
                (o as usize + t) as f64
            }
            PositionsKind::PerToken => inputs[1].index(t) as f64,
        })
    };
    let inv_freq: Vec<f64> = (0..half)
        .map(|i| {
            if has_freqs {
                inputs[inputs.len() - 1].get(i)
            } else {
                (base as f64).powf(-2.0 * i as f64 / dims as f64)
            }
        })
        .collect();
    let mut out = Out::new(shape, dtype)?;
    for row in 0..numel(shape) / d.max(1) {
        let p = position(row % t_len.max(1))?;
        let at = |j: usize| row * d + j;
        for (i, f) in inv_freq.iter().enumerate() {
            let angle = p * scale as f64 * f;
            let (sin, cos) = angle.sin_cos();
            let (j1, j2) = if traditional {
                (2 * i, 2 * i + 1)
            } else {
                (i, i + half)
            };
            let (x1, x2) = (x.get(at(j1)), x.get(at(j2)));
            out.set(at(j1), x1 * cos - x2 * sin);
            out.set(at(j2), x2 * cos + x1 * sin);
        }
        for j in dims..d {
            out.set(at(j), x.get(at(j)));
        }
    }
    Ok(out)
}

/// `softmax(q·kᵀ·scale + mask) · v` per (batch, query head, query), with
/// grouped kv heads, optional sinks in the denominator, and zeros for a row
/// whose keys are all masked.
fn sdpa(
    inputs: &[View],
    scale: f64,
    mask: MaskKind,
    has_sinks: bool,
    shape: &[usize],
    dtype: DType,
) -> Result<Out> {
    let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
    let (b, hq, tq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3]);
    let (hkv, tk, dv) = (k.shape[1], k.shape[2], v.shape[3]);
    let group = hq / hkv;
    let full = [b, hq, tq, tk];
    let mask_view = matches!(mask, MaskKind::Additive | MaskKind::Boolean).then(|| &inputs[3]);
    let mask_strides = mask_view.map(|m| broadcast_strides(m.shape, &full));
    let sinks = has_sinks.then(|| &inputs[inputs.len() - 1]);
    let mut out = Out::new(shape, dtype)?;
    for bi in 0..b {
        for h in 0..hq {
            let kh = h / group;
            for i in 0..tq {
                let q_at = |c: usize| ((bi * hq + h) * tq + i) * d + c;
                let kv_at =
                    |j: usize, c: usize, width: usize| ((bi * hkv + kh) * tk + j) * width + c;
                let scores: Vec<f64> = (0..tk)
                    .map(|j| {
                        let flat = ((bi * hq + h) * tq + i) * tk + j;
                        let visible = match (mask, mask_view, &mask_strides) {
                            (MaskKind::Causal, _, _) => j + tq <= i + tk,
                            (MaskKind::Boolean, Some(m), Some(s)) => {
                                m.get(offset(flat, &full, s)) != 0.0
                            }
                            _ => true,
                        };
                        if !visible {
                            return f64::NEG_INFINITY;
                        }
                        let mut s = scale
                            * (0..d)
                                .map(|c| q.get(q_at(c)) * k.get(kv_at(j, c, d)))
                                .sum::<f64>();
                        if let (MaskKind::Additive, Some(m), Some(st)) =
                            (mask, mask_view, &mask_strides)
                        {
                            s += m.get(offset(flat, &full, st));
                        }
                        s
                    })
                    .collect();
                let sink = sinks.map(|s| s.get(h));
                let m = scores
                    .iter()
                    .copied()
                    .chain(sink)
                    .fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = if m == f64::NEG_INFINITY {
                    vec![0.0; tk]
                } else {
                    let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                    let denom = e.iter().sum::<f64>() + sink.map_or(0.0, |s| (s - m).exp());
                    e.iter().map(|x| x / denom).collect()
                };
                for c in 0..dv {
                    let y: f64 = (0..tk).map(|j| weights[j] * v.get(kv_at(j, c, dv))).sum();
                    out.set(((bi * hq + h) * tq + i) * dv + c, y);
                }
            }
        }
    }
    Ok(out)
}
