//! The gradient of causal scaled-dot-product attention in one pass per key/value
//! head: dQ, dK and dV from q, k, v and the output's cotangent dO, without
//! materialising the (T × T) probabilities.
//!
//! For each query row the kernel recomputes its scores against the visible keys
//! only (causal, aligned to the end: query `i` sees keys `j <= i + Tk − Tq`),
//! their softmax `p`, `dp = dO·vᵀ`, `D = Σ p·dp` (which equals `dO·o`) and
//! `ds = p ∘ (dp − D)`, then accumulates `dV += pᵀ·dO`, `dK += scale·dsᵀ·q` and
//! writes `dQ = scale·ds·k`. Fully masked keys (past the row's last visible
//! key, rounded up to a block of [`BLOCK`]) are never touched. Keys and values
//! are transposed once per head so that scores and their gradients vectorise
//! across keys. Grouped-query attention: the query heads sharing a kv head run
//! in the same task, so dK and dV are summed over the group without atomics.
//! Everything accumulates in f32; a query row with no visible key gets zero
//! gradients (the fused forward outputs zeros there).

use crate::fast::attention::{Mask, SdpaParams};
use crate::fast::lanes::{fma_dispatch, fmadd, halving_sum};
use crate::fast::layout::HeadStrides;
use crate::math::exp_nonpos_with;
use crate::parallel;
use rayon::prelude::*;

#[cfg(test)]
mod tests;

/// Keys per vector block.
const BLOCK: usize = 16;

/// `BLOCK` zeros then `BLOCK` `−inf`: added from offset `BLOCK − seen`, it
/// masks a block's lanes from `seen` on without a branch per lane.
const MASK_TAIL: [f32; 2 * BLOCK] = {
    let mut t = [0.0f32; 2 * BLOCK];
    let mut i = BLOCK;
    while i < 2 * BLOCK {
        t[i] = f32::NEG_INFINITY;
        i += 1;
    }
    t
};

/// Element counts of the gradient's tensors for `p` (all contiguous
/// `(batch, heads, seq, dim)`): q and dQ, k and dK, v and dV, the output and dO.
fn totals(p: &SdpaParams<'_>) -> [usize; 4] {
    [
        p.batch * p.q_heads * p.q_len * p.head_dim,
        p.batch * p.kv_heads * p.kv_len * p.head_dim,
        p.batch * p.kv_heads * p.kv_len * p.v_head_dim,
        p.batch * p.q_heads * p.q_len * p.v_head_dim,
    ]
}

/// Writes dQ, dK and dV of `o = softmax(scale·q·kᵀ + causal) · v` given `d_out`
/// (module docs), for `p` with a causal mask, no sinks and contiguous
/// `(batch, heads, seq, dim)` tensors (the forward's parameters). Panics if
/// `p` asks for anything else, a slice's length does not match `p` or
/// `q_heads` is not a multiple of `kv_heads` (the graph validates these
/// before calling).
#[allow(clippy::too_many_arguments)]
pub fn sdpa_causal_backward_f32(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d_out: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    p: &SdpaParams<'_>,
) {
    assert!(
        p.kv_heads > 0 && p.q_heads.is_multiple_of(p.kv_heads),
        "sdpa backward: heads {} not a multiple of kv heads {}",
        p.q_heads,
        p.kv_heads
    );
    let bhsd = HeadStrides::bhsd;
    assert!(
        matches!(p.mask, Mask::Causal)
            && p.sinks.is_none()
            && p.q_strides == bhsd(p.q_heads, p.q_len, p.head_dim)
            && p.k_strides == bhsd(p.kv_heads, p.kv_len, p.head_dim)
            && p.v_strides == bhsd(p.kv_heads, p.kv_len, p.v_head_dim)
            && p.out_strides == bhsd(p.q_heads, p.q_len, p.v_head_dim),
        "sdpa backward: only a causal mask, no sinks, contiguous (B, H, T, D) tensors"
    );
    let [nq, nk, nv, no] = totals(p);
    assert_eq!(q.len(), nq, "sdpa backward: q");
    assert_eq!(dq.len(), nq, "sdpa backward: dq");
    assert_eq!(k.len(), nk, "sdpa backward: k");
    assert_eq!(dk.len(), nk, "sdpa backward: dk");
    assert_eq!(v.len(), nv, "sdpa backward: v");
    assert_eq!(dv.len(), nv, "sdpa backward: dv");
    assert_eq!(d_out.len(), no, "sdpa backward: d_out");
    let tasks = p.batch * p.kv_heads;
    if tasks == 0 {
        return;
    }
    let groups = p.q_heads / p.kv_heads;
    let q_step = groups * p.q_len * p.head_dim;
    let o_step = groups * p.q_len * p.v_head_dim;
    let k_step = p.kv_len * p.head_dim;
    let v_step = p.kv_len * p.v_head_dim;
    if dq.is_empty() || dk.is_empty() || dv.is_empty() {
        // Some axis is empty: nothing visible, every gradient (if any) is zero.
        dq.fill(0.0);
        dk.fill(0.0);
        dv.fill(0.0);
        return;
    }
    let run = |t: usize, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]| {
        let mut scratch = Scratch::new(p);
        let group = HeadGroup {
            q: &q[t * q_step..][..q_step],
            k: &k[t * k_step..][..k_step],
            v: &v[t * v_step..][..v_step],
            d_out: &d_out[t * o_step..][..o_step],
            dq,
            dk,
            dv,
        };
        head_group(group, p, &mut scratch);
    };
    // Work per task: ~5 products over the visible half of the score matrix.
    let work = groups * p.q_len * p.kv_len * (2 * p.head_dim + 3 * p.v_head_dim) / 2;
    if parallel::chunks_for(tasks * work) <= 1 || tasks == 1 {
        for (t, ((dq, dk), dv)) in dq
            .chunks_mut(q_step)
            .zip(dk.chunks_mut(k_step))
            .zip(dv.chunks_mut(v_step))
            .enumerate()
        {
            run(t, dq, dk, dv);
        }
        return;
    }
    parallel::pool().install(|| {
        dq.par_chunks_mut(q_step)
            .zip(dk.par_chunks_mut(k_step))
            .zip(dv.par_chunks_mut(v_step))
            .enumerate()
            .for_each(|(t, ((dq, dk), dv))| run(t, dq, dk, dv));
    });
}

/// Query rows per tile: each key block of kᵀ, vᵀ, dKᵀ and dVᵀ loaded from
/// memory serves this many rows from registers.
const ROWS: usize = 4;

/// One task's slices: the kv head's keys and values, its query heads'
/// queries and output cotangents, and the gradients to write.
struct HeadGroup<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    d_out: &'a [f32],
    dq: &'a mut [f32],
    dk: &'a mut [f32],
    dv: &'a mut [f32],
}

/// Per-task buffers: keys, values and their gradients transposed to
/// `(dim, keys)` with the key axis padded to a whole block; for one tile of
/// rows, the queries (scaled and not) and the output cotangents by column
/// (`[c][r]`), the probabilities and the score gradients.
struct Scratch {
    kt: Vec<f32>,
    vt: Vec<f32>,
    dkt: Vec<f32>,
    dvt: Vec<f32>,
    probs: Vec<f32>,
    dscores: Vec<f32>,
    q_cols: Vec<[f32; ROWS]>,
    qs_cols: Vec<[f32; ROWS]>,
    o_cols: Vec<[f32; ROWS]>,
}

impl Scratch {
    fn new(p: &SdpaParams<'_>) -> Scratch {
        let tkp = p.kv_len.div_ceil(BLOCK) * BLOCK;
        Scratch {
            kt: vec![0.0; p.head_dim * tkp],
            vt: vec![0.0; p.v_head_dim * tkp],
            dkt: vec![0.0; p.head_dim * tkp],
            dvt: vec![0.0; p.v_head_dim * tkp],
            probs: vec![0.0; ROWS * tkp],
            dscores: vec![0.0; ROWS * tkp],
            q_cols: vec![[0.0; ROWS]; p.head_dim],
            qs_cols: vec![[0.0; ROWS]; p.head_dim],
            o_cols: vec![[0.0; ROWS]; p.v_head_dim],
        }
    }
}

/// `dst[c·stride + j] = src[j·cols + c]` for the first `rows` rows.
fn transpose_into(src: &[f32], rows: usize, cols: usize, dst: &mut [f32], stride: usize) {
    for (j, row) in src.chunks_exact(cols).take(rows).enumerate() {
        for (c, &x) in row.iter().enumerate() {
            dst[c * stride + j] = x;
        }
    }
}

/// `dst[j·cols + c] = src[c·stride + j]`.
fn transpose_back(src: &[f32], rows: usize, cols: usize, dst: &mut [f32], stride: usize) {
    for (j, row) in dst.chunks_exact_mut(cols).take(rows).enumerate() {
        for (c, x) in row.iter_mut().enumerate() {
            *x = src[c * stride + j];
        }
    }
}

/// `e^x` for `x <= 0`, flushed to 0 below `e^-87` (the smallest normal
/// f32 is `e^-87.3`): masked keys (`-inf`) must not make subnormal
/// intermediates, which cost a microcode assist per lane.
#[inline(always)]
fn exp_flushed<const FMA: bool>(x: f32) -> f32 {
    let y = exp_nonpos_with::<FMA>(if x < -87.0 { -87.0 } else { x });
    if x < -87.0 {
        0.0
    } else {
        y
    }
}

/// The maximum of a block's lanes (no NaN), as a halving tree.
#[inline(always)]
fn block_max(mut x: [f32; BLOCK]) -> f32 {
    let mut w = BLOCK / 2;
    while w > 0 {
        for l in 0..w {
            x[l] = if x[l + w] > x[l] { x[l + w] } else { x[l] };
        }
        w /= 2;
    }
    x[0]
}

/// `dst[c][r] = factor·src[r·cols + c]` for the first `n` rows of `src`
/// (`dst.len()` = `cols`); rows `n..` of `dst` get zeros.
fn by_columns(src: &[f32], n: usize, factor: f32, dst: &mut [[f32; ROWS]]) {
    let cols = dst.len();
    for (c, x) in dst.iter_mut().enumerate() {
        *x = std::array::from_fn(|r| {
            if r < n {
                factor * src[r * cols + c]
            } else {
                0.0
            }
        });
    }
}

/// `out[r][l] = Σ_c x[c][r]·cols[c·stride + l]` for the [`ROWS`] rows of a
/// tile by column (`x`) and one block of lanes: each column block is loaded
/// once for all rows, whose accumulators are independent FMA chains. `N`:
/// the column count when fixed at compile time (0: `x.len()`). `SPLIT`:
/// even and odd columns in separate accumulators (eight chains; with 16
/// vector registers, AVX2 has no room for them and keeps four).
#[inline(always)]
fn tile_dot<const FMA: bool, const N: usize, const SPLIT: bool>(
    x: &[[f32; ROWS]],
    cols: &[f32],
    stride: usize,
) -> [[f32; BLOCK]; ROWS] {
    let n = if N == 0 { x.len() } else { N };
    let mut even = [[0.0f32; BLOCK]; ROWS];
    if !SPLIT {
        for (c, xc) in x[..n].iter().enumerate() {
            let col: [f32; BLOCK] = cols[c * stride..][..BLOCK].try_into().unwrap();
            for (a, &xr) in even.iter_mut().zip(xc) {
                for l in 0..BLOCK {
                    a[l] = fmadd::<FMA>(xr, col[l], a[l]);
                }
            }
        }
        return even;
    }
    let mut odd = [[0.0f32; BLOCK]; ROWS];
    for c in (0..n & !1).step_by(2) {
        let c0: [f32; BLOCK] = cols[c * stride..][..BLOCK].try_into().unwrap();
        let c1: [f32; BLOCK] = cols[(c + 1) * stride..][..BLOCK].try_into().unwrap();
        for r in 0..ROWS {
            let (x0, x1) = (x[c][r], x[c + 1][r]);
            for l in 0..BLOCK {
                even[r][l] = fmadd::<FMA>(x0, c0[l], even[r][l]);
                odd[r][l] = fmadd::<FMA>(x1, c1[l], odd[r][l]);
            }
        }
    }
    if n % 2 == 1 {
        let col: [f32; BLOCK] = cols[(n - 1) * stride..][..BLOCK].try_into().unwrap();
        for (a, &xr) in even.iter_mut().zip(&x[n - 1]) {
            for l in 0..BLOCK {
                a[l] = fmadd::<FMA>(xr, col[l], a[l]);
            }
        }
    }
    for (e, o) in even.iter_mut().zip(&odd) {
        for l in 0..BLOCK {
            e[l] += o[l];
        }
    }
    even
}

/// `acc[c·stride + l] += Σ_r x[c][r]·w[r][l]` for one block of lanes and
/// every column `c` of a tile by column (`x`): the [`ROWS`] weight vectors
/// stay in registers. `N` as for [`tile_dot`].
#[inline(always)]
fn tile_update<const FMA: bool, const N: usize>(
    x: &[[f32; ROWS]],
    w: &[[f32; BLOCK]; ROWS],
    acc: &mut [f32],
    stride: usize,
) {
    let n = if N == 0 { x.len() } else { N };
    for c in 0..n {
        let slot = &mut acc[c * stride..][..BLOCK];
        let mut t: [f32; BLOCK] = (*slot).try_into().unwrap();
        for (wr, &xr) in w.iter().zip(&x[c]) {
            for l in 0..BLOCK {
                t[l] = fmadd::<FMA>(xr, wr[l], t[l]);
            }
        }
        slot.copy_from_slice(&t);
    }
}

/// `dq[r·d + c] = Σ_{j < keys} ds[r·stride + j]·k[j·d + c]` for the first `n`
/// tile rows: a block of columns of every row at a time in registers (two
/// accumulators per row, even and odd keys), each key's row of `k` loaded
/// once for the whole tile. Score gradients past a row's visible keys are 0.
/// `SPLIT` as for [`tile_dot`] (without it, one accumulator per row).
#[inline(always)]
fn tile_dq<const FMA: bool, const SPLIT: bool>(
    ds: &[f32],
    stride: usize,
    k: &[f32],
    keys: usize,
    d: usize,
    dq: &mut [f32],
    n: usize,
) {
    let whole = d / BLOCK * BLOCK;
    for cb in (0..whole).step_by(BLOCK) {
        let mut even = [[0.0f32; BLOCK]; ROWS];
        let mut odd = [[0.0f32; BLOCK]; ROWS];
        if !SPLIT {
            for j in 0..keys {
                let k0: [f32; BLOCK] = k[j * d + cb..][..BLOCK].try_into().unwrap();
                for (r, a) in even.iter_mut().enumerate() {
                    let g0 = ds[r * stride + j];
                    for l in 0..BLOCK {
                        a[l] = fmadd::<FMA>(g0, k0[l], a[l]);
                    }
                }
            }
            for r in 0..n {
                dq[r * d + cb..][..BLOCK].copy_from_slice(&even[r]);
            }
            continue;
        }
        for j in (0..keys & !1).step_by(2) {
            let k0: [f32; BLOCK] = k[j * d + cb..][..BLOCK].try_into().unwrap();
            let k1: [f32; BLOCK] = k[(j + 1) * d + cb..][..BLOCK].try_into().unwrap();
            for r in 0..ROWS {
                let (g0, g1) = (ds[r * stride + j], ds[r * stride + j + 1]);
                for l in 0..BLOCK {
                    even[r][l] = fmadd::<FMA>(g0, k0[l], even[r][l]);
                    odd[r][l] = fmadd::<FMA>(g1, k1[l], odd[r][l]);
                }
            }
        }
        if keys % 2 == 1 {
            let j = keys - 1;
            let k0: [f32; BLOCK] = k[j * d + cb..][..BLOCK].try_into().unwrap();
            for r in 0..ROWS {
                let g0 = ds[r * stride + j];
                for l in 0..BLOCK {
                    even[r][l] = fmadd::<FMA>(g0, k0[l], even[r][l]);
                }
            }
        }
        for r in 0..n {
            for l in 0..BLOCK {
                dq[r * d + cb + l] = even[r][l] + odd[r][l];
            }
        }
    }
    for r in 0..n {
        for c in whole..d {
            dq[r * d + c] = (0..keys).fold(0.0, |acc, j| {
                fmadd::<FMA>(ds[r * stride + j], k[j * d + c], acc)
            });
        }
    }
}

/// Softmax of each tile row over its first `nb` keys, whose masked scores
/// (keys at or past the row's `visible` count) are already `−inf` and whose
/// lane-wise maxima are `row_max`, then `ds = scale·p ∘ (dp − Σ p·dp)` in
/// place of `dp`. Rows with no visible key get zeros.
#[inline(always)]
fn tile_softmax_grad<const FMA: bool>(
    probs: &mut [f32],
    dscores: &mut [f32],
    visible: &[usize; ROWS],
    row_max: &[[f32; BLOCK]; ROWS],
    nb: usize,
    stride: usize,
    scale: f32,
) {
    for (r, &vis) in visible.iter().enumerate() {
        let pr = &mut probs[r * stride..][..nb];
        let dr = &mut dscores[r * stride..][..nb];
        if vis == 0 {
            pr.fill(0.0);
            dr.fill(0.0);
            continue;
        }
        let max = block_max(row_max[r]);
        // Unnormalised e = exp(s − max), Σ e and Σ e·dp in one pass.
        let mut sum = [0.0f32; BLOCK];
        let mut edp = [0.0f32; BLOCK];
        for (pb, db) in pr.chunks_exact_mut(BLOCK).zip(dr.chunks_exact(BLOCK)) {
            let mut e: [f32; BLOCK] = (*pb).try_into().unwrap();
            let dp: [f32; BLOCK] = db.try_into().unwrap();
            for l in 0..BLOCK {
                e[l] = exp_flushed::<FMA>(e[l] - max);
                sum[l] += e[l];
                edp[l] = fmadd::<FMA>(e[l], dp[l], edp[l]);
            }
            pb.copy_from_slice(&e);
        }
        let inv = 1.0 / halving_sum(sum);
        let dsum = halving_sum(edp) * inv;
        for (pb, db) in pr.chunks_exact_mut(BLOCK).zip(dr.chunks_exact_mut(BLOCK)) {
            let mut pv: [f32; BLOCK] = (*pb).try_into().unwrap();
            let mut dv: [f32; BLOCK] = (*db).try_into().unwrap();
            for l in 0..BLOCK {
                pv[l] *= inv;
                dv[l] = pv[l] * (dv[l] - dsum) * scale;
            }
            pb.copy_from_slice(&pv);
            db.copy_from_slice(&dv);
        }
    }
}

/// Block `jb` of each tile row of `m` (rows `stride` apart).
#[inline(always)]
fn tile_block(m: &[f32], jb: usize, stride: usize) -> [[f32; BLOCK]; ROWS] {
    std::array::from_fn(|r| m[r * stride + jb..][..BLOCK].try_into().unwrap())
}

fma_dispatch! {
    /// One kv head and the query heads of its group (module docs), in tiles
    /// of [`ROWS`] consecutive query rows of one head. Head sizes 16 (one
    /// vector per row) and 64 get their loops sized at compile time.
    fn head_group(g: HeadGroup<'_>, p: &SdpaParams<'_>, s: &mut Scratch) {
        if crate::simd::isa() == crate::simd::Isa::Avx512 {
            sized_group::<FMA, true>(g, p, s);
        } else {
            sized_group::<FMA, false>(g, p, s);
        }
    }
}

/// [`head_group`] with the head sizes 16 (one vector block per row) and 64
/// fixed at compile time; `SPLIT` as for [`tile_dot`] (32 vector registers).
#[inline(always)]
fn sized_group<const FMA: bool, const SPLIT: bool>(
    g: HeadGroup<'_>,
    p: &SdpaParams<'_>,
    s: &mut Scratch,
) {
    if p.head_dim == BLOCK && p.v_head_dim == BLOCK {
        group_tiles::<FMA, BLOCK, BLOCK, SPLIT>(g, p, s);
    } else if p.head_dim == 64 && p.v_head_dim == 64 {
        group_tiles::<FMA, 64, 64, SPLIT>(g, p, s);
    } else {
        group_tiles::<FMA, 0, 0, SPLIT>(g, p, s);
    }
}

/// [`head_group`]'s body; `D` and `DV` are the query/key and value head sizes
/// when fixed at compile time (0: read from `p`).
#[inline(always)]
fn group_tiles<const FMA: bool, const D: usize, const DV: usize, const SPLIT: bool>(
    g: HeadGroup<'_>,
    p: &SdpaParams<'_>,
    s: &mut Scratch,
) {
    let HeadGroup {
        q,
        k,
        v,
        d_out,
        dq,
        dk,
        dv,
    } = g;
    let d = if D == 0 { p.head_dim } else { D };
    let dvh = if DV == 0 { p.v_head_dim } else { DV };
    let (tq, tk) = (p.q_len, p.kv_len);
    let tkp = tk.div_ceil(BLOCK) * BLOCK;
    let scale = p.scale;
    transpose_into(k, tk, d, &mut s.kt, tkp);
    transpose_into(v, tk, dvh, &mut s.vt, tkp);
    s.dkt.fill(0.0);
    s.dvt.fill(0.0);
    let shift = tk as isize - tq as isize;
    let heads = q.len() / (tq * d).max(1);
    for h in 0..heads {
        for i0 in (0..tq).step_by(ROWS) {
            let n = ROWS.min(tq - i0);
            let row0 = h * tq + i0;
            let visible: [usize; ROWS] = std::array::from_fn(|r| {
                if r < n {
                    ((i0 + r) as isize + shift + 1).clamp(0, tk as isize) as usize
                } else {
                    0
                }
            });
            let most = visible.iter().copied().max().unwrap_or(0);
            if most == 0 {
                dq[row0 * d..][..n * d].fill(0.0);
                continue;
            }
            let nb = most.div_ceil(BLOCK) * BLOCK;
            // The tile's queries (scaled) and cotangents; rows past the
            // head's end are zero.
            let (q_cols, qs_cols, o_cols) = (
                &mut s.q_cols[..d],
                &mut s.qs_cols[..d],
                &mut s.o_cols[..dvh],
            );
            by_columns(&q[row0 * d..], n, 1.0, q_cols);
            by_columns(&q[row0 * d..], n, scale, qs_cols);
            by_columns(&d_out[row0 * dvh..], n, 1.0, o_cols);
            // Scores (masked keys −inf, lane-wise row maxima kept) and
            // dp = dO·vᵀ.
            let mut row_max = [[f32::NEG_INFINITY; BLOCK]; ROWS];
            for jb in (0..nb).step_by(BLOCK) {
                let mut sc = tile_dot::<FMA, D, SPLIT>(qs_cols, &s.kt[jb..], tkp);
                let dp = tile_dot::<FMA, DV, SPLIT>(o_cols, &s.vt[jb..], tkp);
                for r in 0..ROWS {
                    if jb + BLOCK > visible[r] {
                        let seen = visible[r].saturating_sub(jb);
                        let tail = &MASK_TAIL[BLOCK - seen..][..BLOCK];
                        for l in 0..BLOCK {
                            sc[r][l] += tail[l];
                        }
                    }
                    for l in 0..BLOCK {
                        let m = &mut row_max[r][l];
                        *m = if sc[r][l] > *m { sc[r][l] } else { *m };
                    }
                    s.probs[r * tkp + jb..][..BLOCK].copy_from_slice(&sc[r]);
                    s.dscores[r * tkp + jb..][..BLOCK].copy_from_slice(&dp[r]);
                }
            }
            tile_softmax_grad::<FMA>(
                &mut s.probs,
                &mut s.dscores,
                &visible,
                &row_max,
                nb,
                tkp,
                scale,
            );
            // dVᵀ += dOᵀ·p and dKᵀ += qᵀ·ds (unscaled q: `scale` is in ds).
            for jb in (0..nb).step_by(BLOCK) {
                let pb = tile_block(&s.probs, jb, tkp);
                tile_update::<FMA, DV>(o_cols, &pb, &mut s.dvt[jb..], tkp);
                let db = tile_block(&s.dscores, jb, tkp);
                tile_update::<FMA, D>(q_cols, &db, &mut s.dkt[jb..], tkp);
            }
            // dQ = ds · k.
            tile_dq::<FMA, SPLIT>(&s.dscores, tkp, k, most, d, &mut dq[row0 * d..][..n * d], n);
        }
    }
    transpose_back(&s.dkt, tk, d, dk, tkp);
    transpose_back(&s.dvt, tk, dvh, dv, tkp);
}
