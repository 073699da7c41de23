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

use crate::fast::lanes::{fma_dispatch, fmadd};
use crate::math::exp_nonpos_with;
use crate::parallel;
use rayon::prelude::*;

#[cfg(test)]
mod tests;

/// Keys per vector block.
const BLOCK: usize = 16;

/// Shapes and scale of a causal attention gradient. All tensors are
/// contiguous `(batch, heads, seq, dim)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CausalGradParams {
    /// Batch size.
    pub batch: usize,
    /// Query heads (a multiple of `kv_heads`).
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Query length.
    pub q_len: usize,
    /// Key/value length.
    pub kv_len: usize,
    /// Query/key feature size.
    pub head_dim: usize,
    /// Value feature size.
    pub v_head_dim: usize,
    /// Score multiplier.
    pub scale: f32,
}

impl CausalGradParams {
    /// Elements of q (and dQ).
    pub fn q_len_total(&self) -> usize {
        self.batch * self.heads * self.q_len * self.head_dim
    }

    /// Elements of k (and dK).
    pub fn k_len_total(&self) -> usize {
        self.batch * self.kv_heads * self.kv_len * self.head_dim
    }

    /// Elements of v (and dV).
    pub fn v_len_total(&self) -> usize {
        self.batch * self.kv_heads * self.kv_len * self.v_head_dim
    }

    /// Elements of the output and of dO.
    pub fn out_len_total(&self) -> usize {
        self.batch * self.heads * self.q_len * self.v_head_dim
    }
}

/// Writes dQ, dK and dV of `o = softmax(scale·q·kᵀ + causal) · v` given `d_out`
/// (module docs). Panics if a slice's length does not match `p` or `heads` is
/// not a multiple of `kv_heads` (the graph validates both before calling).
#[allow(clippy::too_many_arguments)]
pub fn sdpa_causal_backward_f32(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d_out: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    p: &CausalGradParams,
) {
    assert!(
        p.kv_heads > 0 && p.heads.is_multiple_of(p.kv_heads),
        "sdpa backward: heads {} not a multiple of kv heads {}",
        p.heads,
        p.kv_heads
    );
    assert_eq!(q.len(), p.q_len_total(), "sdpa backward: q");
    assert_eq!(dq.len(), p.q_len_total(), "sdpa backward: dq");
    assert_eq!(k.len(), p.k_len_total(), "sdpa backward: k");
    assert_eq!(dk.len(), p.k_len_total(), "sdpa backward: dk");
    assert_eq!(v.len(), p.v_len_total(), "sdpa backward: v");
    assert_eq!(dv.len(), p.v_len_total(), "sdpa backward: dv");
    assert_eq!(d_out.len(), p.out_len_total(), "sdpa backward: d_out");
    let tasks = p.batch * p.kv_heads;
    if tasks == 0 {
        return;
    }
    let groups = p.heads / p.kv_heads;
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
        head_group(
            &q[t * q_step..][..q_step],
            &k[t * k_step..][..k_step],
            &v[t * v_step..][..v_step],
            &d_out[t * o_step..][..o_step],
            dq,
            dk,
            dv,
            p,
            &mut scratch,
        );
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

/// Per-task buffers: keys, values and their gradients transposed to
/// `(dim, keys)` with the key axis padded to a whole block; for one tile of
/// rows, the scaled queries, the output cotangents, the probabilities and
/// the score gradients.
struct Scratch {
    kt: Vec<f32>,
    vt: Vec<f32>,
    dkt: Vec<f32>,
    dvt: Vec<f32>,
    probs: Vec<f32>,
    dscores: Vec<f32>,
    q_tile: Vec<f32>,
    o_tile: Vec<f32>,
}

impl Scratch {
    fn new(p: &CausalGradParams) -> Scratch {
        let tkp = p.kv_len.div_ceil(BLOCK) * BLOCK;
        Scratch {
            kt: vec![0.0; p.head_dim * tkp],
            vt: vec![0.0; p.v_head_dim * tkp],
            dkt: vec![0.0; p.head_dim * tkp],
            dvt: vec![0.0; p.v_head_dim * tkp],
            probs: vec![0.0; ROWS * tkp],
            dscores: vec![0.0; ROWS * tkp],
            q_tile: vec![0.0; ROWS * p.head_dim],
            o_tile: vec![0.0; ROWS * p.v_head_dim],
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

/// The maximum of `x` (a whole number of blocks, no NaN), lane-parallel.
#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; BLOCK];
    for blk in x.chunks_exact(BLOCK) {
        for l in 0..BLOCK {
            m[l] = if blk[l] > m[l] { blk[l] } else { m[l] };
        }
    }
    m.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

/// `out[r][l] = Σ_c x[r·n + c]·cols[c·stride + l]` for the [`ROWS`] rows of
/// `x` (each `n` long) and one block of lanes: each column block is loaded
/// once for all rows, whose accumulators are independent FMA chains.
#[inline(always)]
fn tile_dot<const FMA: bool>(
    x: &[f32],
    n: usize,
    cols: &[f32],
    stride: usize,
) -> [[f32; BLOCK]; ROWS] {
    let mut acc = [[0.0f32; BLOCK]; ROWS];
    for c in 0..n {
        let col: [f32; BLOCK] = cols[c * stride..][..BLOCK].try_into().unwrap();
        for (r, a) in acc.iter_mut().enumerate() {
            let xr = x[r * n + c];
            for l in 0..BLOCK {
                a[l] = fmadd::<FMA>(xr, col[l], a[l]);
            }
        }
    }
    acc
}

/// `acc[c·stride + l] += Σ_r x[r·n + c]·w[r][l]` for one block of lanes and
/// every `c < n`: the [`ROWS`] weight vectors stay in registers.
#[inline(always)]
fn tile_update<const FMA: bool>(
    x: &[f32],
    n: usize,
    w: &[[f32; BLOCK]; ROWS],
    acc: &mut [f32],
    stride: usize,
) {
    for c in 0..n {
        let slot = &mut acc[c * stride..][..BLOCK];
        let mut t: [f32; BLOCK] = (*slot).try_into().unwrap();
        for (r, wr) in w.iter().enumerate() {
            let xr = x[r * n + c];
            for l in 0..BLOCK {
                t[l] = fmadd::<FMA>(xr, wr[l], t[l]);
            }
        }
        slot.copy_from_slice(&t);
    }
}

/// `out = Σ_j w[j]·rows[j]` over `rows` of length `cols` (= `out.len()`),
/// a block of columns at a time in registers (two accumulators, even and
/// odd rows).
#[inline(always)]
fn weighted_rows<const FMA: bool>(w: &[f32], rows: &[f32], cols: usize, out: &mut [f32]) {
    let whole = cols / BLOCK * BLOCK;
    for cb in (0..whole).step_by(BLOCK) {
        let mut a0 = [0.0f32; BLOCK];
        let mut a1 = [0.0f32; BLOCK];
        let mut pairs = w.chunks_exact(2);
        for (n, pair) in (&mut pairs).enumerate() {
            let r0: [f32; BLOCK] = rows[2 * n * cols + cb..][..BLOCK].try_into().unwrap();
            let r1: [f32; BLOCK] = rows[(2 * n + 1) * cols + cb..][..BLOCK].try_into().unwrap();
            for l in 0..BLOCK {
                a0[l] = fmadd::<FMA>(pair[0], r0[l], a0[l]);
                a1[l] = fmadd::<FMA>(pair[1], r1[l], a1[l]);
            }
        }
        if let [last] = pairs.remainder() {
            let r: [f32; BLOCK] = rows[(w.len() - 1) * cols + cb..][..BLOCK]
                .try_into()
                .unwrap();
            for l in 0..BLOCK {
                a0[l] = fmadd::<FMA>(*last, r[l], a0[l]);
            }
        }
        for l in 0..BLOCK {
            out[cb + l] = a0[l] + a1[l];
        }
    }
    for (c, o) in out.iter_mut().enumerate().skip(whole) {
        *o = w
            .iter()
            .enumerate()
            .fold(0.0, |acc, (j, &g)| fmadd::<FMA>(g, rows[j * cols + c], acc));
    }
}

/// Softmax of each tile row over its first `nb` keys (keys at or past the
/// row's `visible` count get exactly 0), then `ds = scale·p ∘ (dp − Σ p·dp)`
/// in place of `dp`. Rows with no visible key get zeros.
#[inline(always)]
fn tile_softmax_grad<const FMA: bool>(
    probs: &mut [f32],
    dscores: &mut [f32],
    visible: &[usize; ROWS],
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
        pr[vis..].fill(f32::NEG_INFINITY);
        let max = lane_max(pr);
        let mut sum = [0.0f32; BLOCK];
        for blk in pr.chunks_exact_mut(BLOCK) {
            for l in 0..BLOCK {
                blk[l] = exp_flushed::<FMA>(blk[l] - max);
                sum[l] += blk[l];
            }
        }
        let inv = 1.0 / sum.iter().sum::<f32>();
        let mut dsum = [0.0f32; BLOCK];
        for (pb, db) in pr.chunks_exact_mut(BLOCK).zip(dr.chunks_exact(BLOCK)) {
            for l in 0..BLOCK {
                pb[l] *= inv;
                dsum[l] = fmadd::<FMA>(pb[l], db[l], dsum[l]);
            }
        }
        let dsum: f32 = dsum.iter().sum();
        for (db, pb) in dr.chunks_exact_mut(BLOCK).zip(pr.chunks_exact(BLOCK)) {
            for l in 0..BLOCK {
                db[l] = pb[l] * (db[l] - dsum) * scale;
            }
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
    /// of [`ROWS`] consecutive query rows of one head.
    fn head_group(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        d_out: &[f32],
        dq: &mut [f32],
        dk: &mut [f32],
        dv: &mut [f32],
        p: &CausalGradParams,
        s: &mut Scratch,
    ) {
        let (tq, tk, d, dvh) = (p.q_len, p.kv_len, p.head_dim, p.v_head_dim);
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
                s.q_tile.fill(0.0);
                s.o_tile.fill(0.0);
                for (x, &y) in s.q_tile.iter_mut().zip(&q[row0 * d..][..n * d]) {
                    *x = y * scale;
                }
                s.o_tile[..n * dvh].copy_from_slice(&d_out[row0 * dvh..][..n * dvh]);
                // Scores and dp = dO·vᵀ.
                for jb in (0..nb).step_by(BLOCK) {
                    let sc = tile_dot::<FMA>(&s.q_tile, d, &s.kt[jb..], tkp);
                    let dp = tile_dot::<FMA>(&s.o_tile, dvh, &s.vt[jb..], tkp);
                    for r in 0..ROWS {
                        s.probs[r * tkp + jb..][..BLOCK].copy_from_slice(&sc[r]);
                        s.dscores[r * tkp + jb..][..BLOCK].copy_from_slice(&dp[r]);
                    }
                }
                tile_softmax_grad::<FMA>(&mut s.probs, &mut s.dscores, &visible, nb, tkp, scale);
                // dVᵀ += dOᵀ·p and dKᵀ += qᵀ·ds (unscaled q: `scale` is in ds).
                s.q_tile[..n * d].copy_from_slice(&q[row0 * d..][..n * d]);
                for jb in (0..nb).step_by(BLOCK) {
                    let pb = tile_block(&s.probs, jb, tkp);
                    tile_update::<FMA>(&s.o_tile, dvh, &pb, &mut s.dvt[jb..], tkp);
                    let db = tile_block(&s.dscores, jb, tkp);
                    tile_update::<FMA>(&s.q_tile, d, &db, &mut s.dkt[jb..], tkp);
                }
                // dQ = ds · k, row by row.
                for (r, &vis) in visible.iter().enumerate().take(n) {
                    let out = &mut dq[(row0 + r) * d..][..d];
                    weighted_rows::<FMA>(&s.dscores[r * tkp..][..vis], k, d, out);
                }
            }
        }
        transpose_back(&s.dkt, tk, d, dk, tkp);
        transpose_back(&s.dvt, tk, dvh, dv, tkp);
    }
}
