//! The causal attention forward on the backward's strips (module docs of
//! [`super`]): scores transposed, the softmax down the lanes, `o = p·v` by row.
//! For training shapes — short sequences, small heads — where the general
//! kernel's per-block bookkeeping outweighs its products.

use super::softmax::{exponentials, fold_scale, scores_masked};
use super::{
    limits, rows_at, rows_by_features, task_steps, totals, transpose_into, with_scratch, Dims,
    Scratch, Strip, L, STRIP,
};
use crate::fast::attention::{Mask, SdpaParams};
use crate::fast::lanes::fma_dispatch;
use crate::fast::layout::HeadStrides;
use crate::parallel;
use crate::simd::{isa, Isa};
use rayon::prelude::*;

/// The strips' forward takes heads of up to [`SMALL_HEAD`] features with up
/// to [`MAX_KEYS`] keys, and heads of up to [`MAX_HEAD`] with up to
/// [`MAX_KEYS_WIDE`]: past those the general kernel's blocks are as fast
/// or faster (probe B·T = 1024, H4 kv2, thread CPU, loaded: D64 T64
/// 1005 -> 688 us, T128 1447 -> 1207, T256 2425 -> 2527, T512 4158 -> 4934;
/// D128 T64 2025 -> 1480, T128 2768 -> 2416, T256 4501 -> 4457).
const SMALL_HEAD: usize = 32;
const MAX_KEYS: usize = 512;
const MAX_HEAD: usize = 128;
const MAX_KEYS_WIDE: usize = 128;

/// Whether [`sdpa_causal_forward_f32`] takes `p`: a causal mask, no sinks,
/// contiguous `(B, H, T, D)` tensors, at least a strip of queries, heads
/// and key ranges within the limits above, on the AVX2 and portable
/// kernels (AVX-512 keeps the general kernel's 16-lane tiles).
pub(crate) fn takes_forward(p: &SdpaParams<'_>) -> bool {
    let bhsd = HeadStrides::bhsd;
    matches!(p.mask, Mask::Causal)
        && p.sinks.is_none()
        && isa() != Isa::Avx512
        && p.q_len >= STRIP
        && p.kv_len
            <= if p.head_dim.max(p.v_head_dim) <= SMALL_HEAD {
                MAX_KEYS
            } else {
                MAX_KEYS_WIDE
            }
        && (1..=MAX_HEAD).contains(&p.head_dim)
        && (1..=MAX_HEAD).contains(&p.v_head_dim)
        && p.kv_heads > 0
        && p.q_heads.is_multiple_of(p.kv_heads)
        && p.q_strides == bhsd(p.q_heads, p.q_len, p.head_dim)
        && p.k_strides == bhsd(p.kv_heads, p.kv_len, p.head_dim)
        && p.v_strides == bhsd(p.kv_heads, p.kv_len, p.v_head_dim)
        && p.out_strides == bhsd(p.q_heads, p.q_len, p.v_head_dim)
}

/// `out = softmax(scale·q·kᵀ + causal) · v` for parameters [`takes_forward`]
/// accepts (rows with no visible key output zeros), on the first elements
/// of each slice that `p` addresses. Panics if a slice is shorter.
pub(crate) fn sdpa_causal_forward_f32(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    p: &SdpaParams<'_>,
) {
    let [nq, nk, nv, no] = totals(p);
    let (q, k, v, out) = (&q[..nq], &k[..nk], &v[..nv], &mut out[..no]);
    let tasks = p.batch * p.kv_heads;
    if no == 0 {
        return;
    }
    let groups = p.q_heads / p.kv_heads;
    let [q_step, k_step, v_step, o_step] = task_steps(p);
    let run = |t: usize, out: &mut [f32]| {
        let (q, k, v) = (
            &q[t * q_step..][..q_step],
            &k[t * k_step..][..k_step],
            &v[t * v_step..][..v_step],
        );
        with_scratch(p, |s| forward_group(q, k, v, out, p, s));
    };
    // Work per task: two products over the visible half of the scores.
    let work = groups * p.q_len * p.kv_len * (p.head_dim + p.v_head_dim) / 2;
    if parallel::chunks_for(tasks * work) <= 1 || tasks == 1 {
        for (t, out) in out.chunks_mut(o_step).enumerate() {
            run(t, out);
        }
        return;
    }
    parallel::pool().install(|| {
        out.par_chunks_mut(o_step)
            .enumerate()
            .for_each(|(t, out)| run(t, out));
    });
}

fma_dispatch! {
    /// One kv head and the query heads of its group, in strips of
    /// [`STRIP`] query rows.
    fn forward_group(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        out: &mut [f32],
        p: &SdpaParams<'_>,
        s: &mut Scratch,
    ) {
        forward_strips::<FMA>(q, k, v, out, p, s);
    }
}

/// [`forward_group`]'s body.
#[inline(always)]
fn forward_strips<const FMA: bool>(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    p: &SdpaParams<'_>,
    s: &mut Scratch,
) {
    let z = Dims::new(p);
    let Dims {
        d,
        dv,
        dp,
        dvp,
        tq,
        tkp,
        ..
    } = z;
    let kr = rows_at(k, d, dp, tkp, &mut s.kr);
    let vr = rows_at(v, dv, dvp, tkp, &mut s.vr);
    for st in z.strips(q.len() / (tq * d)) {
        let Strip { row0, n, keys, .. } = st;
        if keys == 0 {
            out[row0 * dv..][..n * dv].fill(0.0);
            continue;
        }
        // The strip's queries transposed; lanes past its rows zero.
        if n < STRIP {
            s.qt.fill(0.0);
        }
        transpose_into::<FMA>(&q[row0 * d..][..n * d], n, d, d, &mut s.qt, STRIP);
        fold_scale(&mut s.qt, p.scale);
        let vis = |r: usize| z.strip_visible(&st, r);
        let (first, lim) = limits(&vis);
        let mx = scores_masked::<FMA>(kr, dp, &s.qt, d, keys, first, &lim, &mut s.pt);
        let inv = exponentials::<FMA>(&mut s.pt, keys, &mx);
        let out = &mut out[row0 * dv..][..n * dv];
        rows_by_features::<FMA>(&s.pt, vr, dvp, dv, n, &vis, out, &mut s.dqs);
        // The softmax's division, once per output row.
        for (row, &c) in out.chunks_exact_mut(dv).zip(&inv) {
            let mut parts = row.chunks_exact_mut(L);
            for part in &mut parts {
                for x in part {
                    *x *= c;
                }
            }
            for x in parts.into_remainder() {
                *x *= c;
            }
        }
    }
}
