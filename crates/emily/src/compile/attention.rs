//! Recognises a composed causal attention and its gradient in a traced
//! training step and runs them as fused kernels.
//!
//! The forward `softmax(where(causal, (q'·kᵀ)·scale, −inf)) · v` (q' being q
//! with the query heads of each kv head stacked as rows, as the composed
//! layers and [`crate::fast`]'s decomposition build it) becomes one
//! [`FastOp::Sdpa`] node, and its vector-Jacobian product — the nodes the
//! gradient rules emit for those ops: `dP = dO·vᵀ`, `dV = Pᵀ·dO`, the
//! softmax backward `P ∘ (dP − Σ dP∘P)`, the mask's `where`, the scale and
//! the two score products — becomes one [`FastOp::SdpaCausalGrad`] node
//! whose flat output is sliced into dQ, dK and dV. Neither kernel forms the
//! (T × T) probabilities, and both skip the masked half. The probabilities
//! and everything else of the composed subgraph are then dead and dropped.
//!
//! A match requires every piece: f32 tensors, a constant keep-mask equal
//! to the causal mask aligned to the end (with every query seeing a key), a
//! constant scale, the `−inf` and `0` fills, and the backward exactly as the
//! rules build it, with dQ, dK and dV all present. Anything else is left
//! composed, so the rewrite only ever replaces values by equal ones (up to
//! round-off: the fused kernels accumulate in a different order).

use super::graph::{Graph, Kind};
use super::passes::dead_code;
use super::pattern::{
    as_shape, commutative_use, consumers, is_binary, is_matmul, node, push, reshaped_by,
    slice_into, uniform_const, unreshaped,
};
use crate::backend::Backend;
use crate::fast::{FastOp, MaskKind};
use crate::ops::{BinaryOp, Op, Reduction};
use crate::DType;

/// The value ids of one matched attention.
struct Site {
    /// q `(B, Hq, Tq, D)` (the input of the row-stacking reshape, or q' itself).
    q: usize,
    /// q' `(B, Hkv, g·Tq, D)`.
    q_rows: usize,
    k: usize,
    v: usize,
    /// The forward output (the last node of the composed chain).
    out: usize,
    /// dO as the composed products read it `(B, Hkv, g·Tq, Dv)`.
    d_out: usize,
    /// The exits of the backward: dQ', dK, dV.
    dq: usize,
    dk: usize,
    dv: usize,
    scale: f32,
}

/// Rewrites every matched attention (module docs); returns how many.
pub(crate) fn fuse_causal_attention(g: &mut Graph, backend: &dyn Backend) -> usize {
    let consumers = consumers(g);
    let sites: Vec<Site> = (0..g.values.len())
        .filter_map(|p| match_site(g, &consumers, p))
        .collect();
    let mut fused = 0;
    for s in &sites {
        if rewrite(g, backend, s) {
            fused += 1;
        }
    }
    if fused > 0 {
        g.sort_topologically();
        dead_code(g);
    }
    fused
}

/// Whether `i` is a Bool constant equal to the causal keep-mask aligned to
/// the end, `j <= i + (tk − tq)`, over its last two axes `(tq, tk)`.
fn is_causal_keep(g: &Graph, i: usize, tq: usize, tk: usize) -> bool {
    let Kind::Const(a) = &g.values[i].kind else {
        return false;
    };
    let shape = a.shape();
    if a.dtype() != DType::Bool || shape.len() < 2 || shape[shape.len() - 2..] != [tq, tk] {
        return false;
    }
    let Ok(bytes) = a.to_host_bytes() else {
        return false;
    };
    bytes.chunks_exact(tq * tk).all(|plane| {
        plane.iter().enumerate().all(|(n, &b)| {
            let (r, c) = (n / tk, n % tk);
            (b != 0) == (c + tq <= r + tk)
        })
    })
}

/// Matches the attention whose probabilities are value `p` (module docs).
fn match_site(g: &Graph, consumers: &[Vec<usize>], p: usize) -> Option<Site> {
    let (Op::Softmax { axis: 3 }, &[masked]) = node(g, p)? else {
        return None;
    };
    let shape = &g.values[p].shape;
    if shape.len() != 4 || g.values[p].dtype != DType::F32 {
        return None;
    }
    let (tq, tk) = (shape[2], shape[3]);
    if tq == 0 || tk < tq {
        return None;
    }
    // Forward scores: where(keep, (q'·kᵀ)·scale, −inf).
    let (Op::Where, &[keep, scaled, neg_inf]) = node(g, masked)? else {
        return None;
    };
    if !is_causal_keep(g, keep, tq, tk) || uniform_const(g, neg_inf)? != f64::NEG_INFINITY {
        return None;
    }
    let (op, &[a0, a1]) = node(g, scaled)? else {
        return None;
    };
    if !is_binary(op, BinaryOp::Mul) {
        return None;
    }
    let (scores, scale_c) = if uniform_const(g, a1).is_some() {
        (a0, a1)
    } else {
        (a1, a0)
    };
    let scale = uniform_const(g, scale_c)? as f32;
    let products = unreshaped(g, scores);
    let (op, &[q_rows, k]) = node(g, products)? else {
        return None;
    };
    if !is_matmul(op, false, true) {
        return None;
    }
    let (qr, ks) = (&g.values[q_rows].shape, &g.values[k].shape);
    if qr.len() != 4 || ks.len() != 4 || ks[2] != tk || qr[1] != ks[1] || ks[1] == 0 {
        return None;
    }
    let (b, hkv, d) = (qr[0], ks[1], qr[3]);
    let groups = qr[2] / tq;
    let hq = hkv * groups;
    if qr[2] != groups * tq || shape[..2] != [b, hq] {
        return None;
    }
    // Forward output: P' = P as (B, Hkv, g·Tq, Tk); O' = P'·v.
    let probs_rows = reshaped_by(g, consumers, p);
    let (probs_rows, out_rows, v) = probs_rows.iter().find_map(|&pr| {
        consumers[pr].iter().find_map(|&c| match node(g, c) {
            Some((op, &[x, v])) if x == pr && is_matmul(op, false, false) => Some((pr, c, v)),
            _ => None,
        })
    })?;
    let dvh = *g.values[v].shape.last()?;
    let out_shape = [b, hq, tq, dvh];
    let out = consumers[out_rows]
        .iter()
        .copied()
        .find(|&c| matches!(node(g, c), Some((Op::Reshape, _))) && g.values[c].shape == out_shape)
        .unwrap_or(out_rows);
    if g.values[out].shape != out_shape {
        return None;
    }
    // dV = P'ᵀ·dO' and dP = dO'·vᵀ.
    let (dv, d_out) = consumers[probs_rows]
        .iter()
        .find_map(|&c| match node(g, c) {
            Some((op, &[x, d_out])) if x == probs_rows && is_matmul(op, true, false) => {
                Some((c, d_out))
            }
            _ => None,
        })?;
    let dp_rows = consumers[d_out].iter().copied().find(|&c| {
        matches!(node(g, c), Some((op, &[x, y])) if x == d_out && y == v && is_matmul(op, false, true))
    })?;
    let dp = reshaped_by(g, consumers, dp_rows)
        .into_iter()
        .find(|&x| g.values[x].shape == *shape)?;
    // Softmax backward: P ∘ (dP − sum(dP ∘ P, keep)).
    let prod = commutative_use(g, consumers, dp, BinaryOp::Mul, |o| o == p)?;
    let dot = consumers[prod].iter().copied().find(|&c| {
        matches!(node(g, c), Some((Op::Reduce { op: Reduction::Sum, axes, keep_dims: true }, _)) if axes == &[3])
    })?;
    let diff = consumers[dot].iter().copied().find(|&c| {
        matches!(node(g, c), Some((op, &[x, y])) if is_binary(op, BinaryOp::Sub) && x == dp && y == dot)
    })?;
    let ds = commutative_use(g, consumers, diff, BinaryOp::Mul, |o| o == p)?;
    // The mask's and the scale's rules: where(keep, ds, 0) · scale.
    let kept = consumers[ds].iter().copied().find(|&c| {
        matches!(node(g, c), Some((Op::Where, &[m, x, z])) if m == keep && x == ds
            && uniform_const(g, z) == Some(0.0))
    })?;
    let dscaled = commutative_use(g, consumers, kept, BinaryOp::Mul, |o| {
        uniform_const(g, o) == Some(scale as f64)
    })?;
    let ds_rows = reshaped_by(g, consumers, dscaled)
        .into_iter()
        .find(|&x| g.values[x].shape == g.values[products].shape)?;
    // dQ' = dS'·k and dK = dS'ᵀ·q'.
    let dq = consumers[ds_rows].iter().copied().find(|&c| {
        matches!(node(g, c), Some((op, &[x, y])) if x == ds_rows && y == k && is_matmul(op, false, false))
    })?;
    let dk = consumers[ds_rows].iter().copied().find(|&c| {
        matches!(node(g, c), Some((op, &[x, y])) if x == ds_rows && y == q_rows && is_matmul(op, true, false))
    })?;
    let q = unreshaped(g, q_rows);
    let q = if g.values[q].shape == [b, hq, tq, d] {
        q
    } else {
        q_rows
    };
    let d_out = match unreshaped(g, d_out) {
        x if g.values[x].shape == out_shape => x,
        _ => d_out,
    };
    Some(Site {
        q,
        q_rows,
        k,
        v,
        out,
        d_out,
        dq,
        dk,
        dv,
        scale,
    })
}

/// Replaces the site's forward output and gradient exits (module docs).
fn rewrite(g: &mut Graph, backend: &dyn Backend, s: &Site) -> bool {
    let out_shape = g.values[s.out].shape.clone();
    let qr = g.values[s.q_rows].shape.clone();
    let (b, hq, tq) = (out_shape[0], out_shape[1], out_shape[2]);
    let q_shape = vec![b, hq, tq, qr[3]];
    let k_shape = g.values[s.k].shape.clone();
    let v_shape = g.values[s.v].shape.clone();
    let forward = FastOp::Sdpa {
        scale: s.scale,
        mask: MaskKind::Causal,
        has_sinks: false,
        int8_products: false,
    };
    let backward = FastOp::SdpaCausalGrad { scale: s.scale };
    let ins = [q_shape.as_slice(), &k_shape, &v_shape];
    let all_f32 = [s.q, s.k, s.v, s.d_out]
        .iter()
        .all(|&i| g.values[i].dtype == DType::F32);
    let fwd_ok = backend
        .supports_fast(&forward, &ins.map(|sh| (sh, DType::F32)))
        .is_ok();
    let bwd_ins = [q_shape.as_slice(), &k_shape, &v_shape, &out_shape];
    let bwd_ok = backend
        .supports_fast(&backward, &bwd_ins.map(|sh| (sh, DType::F32)))
        .is_ok();
    if !(all_f32 && fwd_ok && bwd_ok) {
        return false;
    }
    let q = as_shape(g, s.q, &q_shape);
    let d_out = as_shape(g, s.d_out, &out_shape);
    let sizes = [
        q_shape.iter().product::<usize>(),
        k_shape.iter().product::<usize>(),
        v_shape.iter().product::<usize>(),
    ];
    let grads = push(
        g,
        Op::Fast(backward),
        vec![q, s.k, s.v, d_out],
        vec![sizes.iter().sum()],
    );
    let mut start = 0;
    for (exit, n) in [s.dq, s.dk, s.dv].into_iter().zip(sizes) {
        slice_into(g, grads, start, exit);
        start += n;
    }
    g.values[s.out].kind = Kind::Node {
        op: Op::Fast(forward),
        inputs: vec![q, s.k, s.v],
    };
    true
}
