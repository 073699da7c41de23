//! The gradient of causal scaled-dot-product attention in one pass per key/value
//! head: dQ, dK and dV from q, k, v and the output's cotangent dO, without
//! materialising the (T × T) probabilities.
//!
//! Query rows go in strips of [`STRIP`]. For a strip the kernel recomputes
//! its scores against the keys its last row sees (causal, aligned to the
//! end: query `i` sees keys `j <= i + Tk − Tq`), their softmax `p`,
//! `dp = dO·vᵀ`, `D = Σ p·dp` (which equals `dO·o`) and
//! `ds = p ∘ (dp − D)`, then accumulates `dV += pᵀ·dO`, `dK += scale·dsᵀ·q`
//! and writes `dQ = scale·ds·k`. Scores, probabilities and their gradients
//! are kept transposed (keys by the strip's rows), so a row's softmax runs
//! down one SIMD lane with no horizontal reduction ([`softmax`]: the mask
//! and the rows' maxima taken on the scores' register tiles, the division
//! by the rows' sums moved onto dO's rows), and every product is one
//! register tile ([`panel`]: [`M`] rows × 16 columns, each step one
//! broadcast per row against two vectors); dQ comes out by row. Keys no
//! row of the strip sees are never touched. Grouped-query attention: the query heads sharing a kv
//! head run in the same task, so dK and dV are summed over the group without
//! atomics. Everything accumulates in f32; a query row with no visible key
//! gets zero gradients (the fused forward outputs zeros there).

use crate::fast::attention::{Mask, SdpaParams};
use crate::fast::lanes::fmadd;
use crate::fast::layout::HeadStrides;
use crate::parallel;
use rayon::prelude::*;

mod forward;
mod softmax;
#[cfg(test)]
mod tests;
mod transpose;

pub(crate) use forward::{sdpa_causal_forward_f32, takes_forward};
use softmax::{exponentials_and_grads, fold_scale, scores_masked};
use transpose::transpose_into;

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

/// Elements per task (one kv head and the query heads of its group) of q,
/// k, v and the output (or their gradients) for `p`.
fn task_steps(p: &SdpaParams<'_>) -> [usize; 4] {
    let groups = p.q_heads / p.kv_heads;
    [
        groups * p.q_len * p.head_dim,
        p.kv_len * p.head_dim,
        p.kv_len * p.v_head_dim,
        groups * p.q_len * p.v_head_dim,
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
    let [q_step, k_step, v_step, o_step] = task_steps(p);
    if dq.is_empty() || dk.is_empty() || dv.is_empty() {
        // Some axis is empty: nothing visible, every gradient (if any) is zero.
        dq.fill(0.0);
        dk.fill(0.0);
        dv.fill(0.0);
        return;
    }
    let run = |t: usize, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]| {
        let group = HeadGroup {
            q: &q[t * q_step..][..q_step],
            k: &k[t * k_step..][..k_step],
            v: &v[t * v_step..][..v_step],
            d_out: &d_out[t * o_step..][..o_step],
            dq,
            dk,
            dv,
        };
        with_scratch(p, |scratch| head_group(group, p, scratch));
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

/// Query rows per strip: one strip's scores, probabilities and score
/// gradients are kept (`STRIP × keys`), and the products over its rows
/// (dV, dK) accumulate in registers across all of them.
const STRIP: usize = 16;

/// Rows (or keys) per register tile of every product.
const M: usize = 4;

/// Lanes per accumulator vector of the products.
const L: usize = 8;

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

/// Sizes of one task: head sizes `d`/`dv` and the same rounded up to whole
/// vectors (`dp`/`dvp`, the padded row strides), query and key counts, the
/// key count rounded up to a block (`tkp`) and the causal shift (query `i`
/// sees keys `j <= i + shift`).
#[derive(Clone, Copy)]
struct Dims {
    d: usize,
    dv: usize,
    dp: usize,
    dvp: usize,
    tq: usize,
    tk: usize,
    tkp: usize,
    shift: isize,
}

impl Dims {
    fn new(p: &SdpaParams<'_>) -> Dims {
        Dims {
            d: p.head_dim,
            dv: p.v_head_dim,
            dp: p.head_dim.div_ceil(L) * L,
            dvp: p.v_head_dim.div_ceil(L) * L,
            tq: p.q_len,
            tk: p.kv_len,
            tkp: p.kv_len.div_ceil(M) * M,
            shift: p.kv_len as isize - p.q_len as isize,
        }
    }

    /// Keys visible to query `i`.
    fn visible(&self, i: usize) -> usize {
        (i as isize + self.shift + 1).clamp(0, self.tk as isize) as usize
    }

    /// The strips of `heads` query heads' rows, head by head.
    fn strips(self, heads: usize) -> impl Iterator<Item = Strip> {
        (0..heads).flat_map(move |h| {
            (0..self.tq).step_by(STRIP).map(move |i0| {
                let n = STRIP.min(self.tq - i0);
                Strip {
                    row0: h * self.tq + i0,
                    i0,
                    n,
                    // Up to its last row's visible keys, in whole tiles.
                    keys: self.visible(i0 + n - 1).div_ceil(M) * M,
                }
            })
        })
    }

    /// Keys visible to row `r` of strip `st` (none past its rows).
    fn strip_visible(&self, st: &Strip, r: usize) -> usize {
        if r < st.n {
            self.visible(st.i0 + r)
        } else {
            0
        }
    }
}

/// One strip: its first row among the task's (head-major) rows, its first
/// query position, its row count and the keys it computes (0: none visible).
struct Strip {
    row0: usize,
    i0: usize,
    n: usize,
    keys: usize,
}

/// Per-task buffers (row-major, padded strides in brackets): keys, values,
/// dK and dV by row (`[tkp][dp]`, `[tkp][dvp]`); for one strip, the
/// queries and cotangents by row (`[STRIP][dp]`, `[STRIP][dvp]`), the
/// cotangent rows over their softmax sums (`[STRIP][dvp]`), dQ (or
/// the forward's output) by row when it cannot be written in place
/// (`[STRIP][max(dp, dvp)]`), the queries and cotangents transposed
/// (`[d][STRIP]`, `[dv][STRIP]`), and the probabilities and score
/// gradients transposed, keys by strip rows (`[tkp][STRIP]`: a row's
/// softmax runs down a lane).
struct Scratch {
    /// `(head_dim, v_head_dim, kv_len)` the buffers are sized for.
    sizes: (usize, usize, usize),
    kr: Vec<f32>,
    vr: Vec<f32>,
    dkr: Vec<f32>,
    dvr: Vec<f32>,
    qs: Vec<f32>,
    os: Vec<f32>,
    ps: Vec<f32>,
    dqs: Vec<f32>,
    qt: Vec<f32>,
    ot: Vec<f32>,
    pt: Vec<f32>,
    dst: Vec<f32>,
}

impl Scratch {
    fn new(p: &SdpaParams<'_>) -> Scratch {
        let z = Dims::new(p);
        Scratch {
            sizes: (p.head_dim, p.v_head_dim, p.kv_len),
            kr: vec![0.0; z.tkp * z.dp],
            vr: vec![0.0; z.tkp * z.dvp],
            dkr: vec![0.0; z.tkp * z.dp],
            dvr: vec![0.0; z.tkp * z.dvp],
            qs: vec![0.0; STRIP * z.dp],
            os: vec![0.0; STRIP * z.dvp],
            ps: vec![0.0; STRIP * z.dvp],
            dqs: vec![0.0; STRIP * z.dp.max(z.dvp)],
            qt: vec![0.0; z.d * STRIP],
            ot: vec![0.0; z.dv * STRIP],
            pt: vec![0.0; z.tkp * STRIP],
            dst: vec![0.0; z.tkp * STRIP],
        }
    }
}

thread_local! {
    /// This thread's [`Scratch`]: kept across tasks and calls of the same sizes.
    static SCRATCH: std::cell::RefCell<Option<Scratch>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` on this thread's [`Scratch`] for `p`'s sizes (made anew when the
/// sizes change).
fn with_scratch<R>(p: &SdpaParams<'_>, f: impl FnOnce(&mut Scratch) -> R) -> R {
    let sizes = (p.head_dim, p.v_head_dim, p.kv_len);
    SCRATCH.with(|cell| {
        let mut slot = cell.borrow_mut();
        match &mut *slot {
            Some(s) if s.sizes == sizes => f(s),
            _ => f(slot.insert(Scratch::new(p))),
        }
    })
}

/// Rows of `cols` floats from `src` into `dst` at row stride `ld >= cols`,
/// zeros after each row and in every row of `dst` past `src`'s.
fn pad_rows(src: &[f32], cols: usize, dst: &mut [f32], ld: usize) {
    if ld == cols {
        dst[..src.len()].copy_from_slice(src);
        dst[src.len()..].fill(0.0);
        return;
    }
    let rows = src.len() / cols.max(1);
    for (r, out) in dst.chunks_exact_mut(ld).enumerate() {
        if r < rows && cols > 0 {
            out[..cols].copy_from_slice(&src[r * cols..][..cols]);
            out[cols..].fill(0.0);
        } else {
            out.fill(0.0);
        }
    }
}

/// `rows` rows of `cols` floats from `src` (zero rows past its own) at row
/// stride `ld`: `src` itself when it already is that (`ld == cols` and it
/// has the rows), else padded into `buf`.
fn rows_at<'a>(
    src: &'a [f32],
    cols: usize,
    ld: usize,
    rows: usize,
    buf: &'a mut [f32],
) -> &'a [f32] {
    if ld == cols && src.len() >= rows * ld {
        src
    } else {
        pad_rows(src, cols, buf, ld);
        buf
    }
}

/// The first `dst.len() / cols` rows of `src` (row stride `ld`), unpadded.
fn unpad_rows(src: &[f32], ld: usize, cols: usize, dst: &mut [f32]) {
    if ld == cols {
        dst.copy_from_slice(&src[..dst.len()]);
        return;
    }
    for (r, out) in dst.chunks_exact_mut(cols).enumerate() {
        out.copy_from_slice(&src[r * ld..][..cols]);
    }
}

/// The register tile of every product: `acc[r][w][l] = Σ_{t < depth}
/// a[r·lda + t·sa] · b[t·ldb + w·L + l]` for `M` rows and `W` vectors of
/// columns. Each step loads `W` vectors of `b` once for all rows and
/// broadcasts one `a` element per row; the `M·W` accumulators are
/// independent FMA chains.
#[inline(always)]
fn panel<const FMA: bool, const W: usize>(
    a: &[f32],
    lda: usize,
    sa: usize,
    b: &[f32],
    ldb: usize,
    depth: usize,
) -> [[[f32; L]; W]; M] {
    let mut acc = [[[0.0f32; L]; W]; M];
    if depth == 0 {
        return acc;
    }
    assert!(
        (M - 1) * lda + (depth - 1) * sa < a.len() && (depth - 1) * ldb + W * L <= b.len(),
        "attention backward: a product tile past its operands"
    );
    for t in 0..depth {
        // SAFETY: the largest indices read are the ones asserted above.
        let bt: [[f32; L]; W] = std::array::from_fn(|w| unsafe {
            b.as_ptr()
                .add(t * ldb + w * L)
                .cast::<[f32; L]>()
                .read_unaligned()
        });
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: as above.
            let x = unsafe { *a.get_unchecked(r * lda + t * sa) };
            for (aw, bw) in acc_r.iter_mut().zip(&bt) {
                for l in 0..L {
                    aw[l] = fmadd::<FMA>(x, bw[l], aw[l]);
                }
            }
        }
    }
    acc
}

/// `out[r·ldo + c] (+)= Σ_{t < depth} a[r·lda + t·sa] · b[t·ldb + c]` for
/// the `M` rows of a tile and `cols` columns (a multiple of [`L`]): the
/// products whose result runs along the head's features (dV, dK, dQ).
/// `ADD`: accumulate into `out` instead of overwriting it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile_cols<const FMA: bool, const ADD: bool>(
    a: &[f32],
    lda: usize,
    sa: usize,
    b: &[f32],
    ldb: usize,
    depth: usize,
    cols: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let mut c0 = 0;
    while c0 < cols {
        if cols - c0 >= 2 * L {
            let acc = panel::<FMA, 2>(a, lda, sa, &b[c0..], ldb, depth);
            store::<ADD, 2>(&acc, &mut out[c0..], ldo);
            c0 += 2 * L;
        } else {
            let acc = panel::<FMA, 1>(a, lda, sa, &b[c0..], ldb, depth);
            store::<ADD, 1>(&acc, &mut out[c0..], ldo);
            c0 += L;
        }
    }
}

/// Writes (or with `ADD` adds) a register tile to rows `ldo` apart.
#[inline(always)]
fn store<const ADD: bool, const W: usize>(acc: &[[[f32; L]; W]; M], out: &mut [f32], ldo: usize) {
    for (r, acc_r) in acc.iter().enumerate() {
        for (w, aw) in acc_r.iter().enumerate() {
            let slot = &mut out[r * ldo + w * L..][..L];
            let mut o: [f32; L] = (*slot).try_into().unwrap();
            for l in 0..L {
                o[l] = if ADD { o[l] + aw[l] } else { aw[l] };
            }
            slot.copy_from_slice(&o);
        }
    }
}

/// `out[j·STRIP + l] = Σ_{c < depth} rows[j·ld + c] · cols[c·STRIP + l]`
/// for keys `j < keys` (a whole number of tiles): scores or `dp`
/// transposed, from keys (or values) by row and a strip's queries (or
/// cotangents) transposed.
#[inline(always)]
fn keys_by_rows<const FMA: bool>(
    rows: &[f32],
    ld: usize,
    cols: &[f32],
    depth: usize,
    keys: usize,
    out: &mut [f32],
) {
    for j0 in (0..keys).step_by(M) {
        let acc = panel::<FMA, 2>(&rows[j0 * ld..], ld, 1, cols, STRIP, depth);
        store::<false, 2>(&acc, &mut out[j0 * STRIP..], STRIP);
    }
}

/// `out[l·cols + c] = Σ_j pt[j·STRIP + l] · rows[j·ld + c]` for the strip's
/// rows `l < n` and features `c < cols` (`ld`: `cols` rounded up to whole
/// vectors): dQ from the score gradients and the keys by row, or the
/// output from the probabilities and the values by row. A tile of [`M`]
/// rows sums over the keys its last row sees (`vis`; `pt` is zero past
/// them). Whole tiles of unpadded rows go straight into `out`; otherwise
/// the rows go through `stage` (`[STRIP][ld]`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn rows_by_features<const FMA: bool>(
    pt: &[f32],
    rows: &[f32],
    ld: usize,
    cols: usize,
    n: usize,
    vis: &impl Fn(usize) -> usize,
    out: &mut [f32],
    stage: &mut [f32],
) {
    let direct = cols == ld && n.is_multiple_of(M);
    for r0 in (0..n).step_by(M) {
        let depth = vis((r0 + M).min(n) - 1);
        let (dst, ldo) = if direct {
            (&mut out[r0 * cols..], cols)
        } else {
            (&mut stage[r0 * ld..], ld)
        };
        // Zeroed and accumulated into: with the tile stored over `dst`
        // instead, LLVM reorders this product's accumulators into a mix of
        // partial vectors and spills (16 % slower at head size 16).
        for r in 0..M {
            for c in dst[r * ldo..][..ld].chunks_exact_mut(L) {
                c.copy_from_slice(&[0.0; L]);
            }
        }
        tile_cols::<FMA, true>(&pt[r0..], 1, STRIP, rows, ld, depth, ld, dst, ldo);
    }
    if !direct {
        unpad_rows(stage, ld, cols, &mut out[..n * cols]);
    }
}

/// The keys every row of a strip sees (`vis(0)`: no mask test below it)
/// and, per row, the last key it sees (`vis(l) − 1`; −1 for rows past the
/// valid ones, which see none).
#[inline(always)]
fn limits(vis: &impl Fn(usize) -> usize) -> (usize, [f32; STRIP]) {
    (vis(0), std::array::from_fn(|l| vis(l) as f32 - 1.0))
}

/// One kv head and the query heads of its group (module docs), in strips
/// of [`STRIP`] consecutive query rows of one head. AVX-512 hosts run the
/// AVX2 build: the strips' tiles are 8-lane arrays, and their AVX-512 build
/// measured slower at head size 16 on the lent Xeon (BENCHMARKS.md,
/// session 10).
fn head_group(g: HeadGroup<'_>, p: &SdpaParams<'_>, s: &mut Scratch) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn v3(g: HeadGroup<'_>, p: &SdpaParams<'_>, s: &mut Scratch) {
            group_strips::<true>(g, p, s)
        }
        use crate::simd::{isa, Isa};
        if matches!(isa(), Isa::Avx2 | Isa::Avx512) {
            // SAFETY: `isa()` reported AVX2 and FMA (AVX-512 hosts have both).
            return unsafe { v3(g, p, s) };
        }
    }
    group_strips::<{ cfg!(target_arch = "aarch64") }>(g, p, s)
}

/// [`head_group`]'s body.
#[inline(always)]
fn group_strips<const FMA: bool>(g: HeadGroup<'_>, p: &SdpaParams<'_>, s: &mut Scratch) {
    let HeadGroup {
        q,
        k,
        v,
        d_out,
        dq,
        dk,
        dv,
    } = g;
    let z = Dims::new(p);
    let Dims {
        d,
        dv: dvh,
        dp,
        dvp,
        tq,
        tkp,
        shift,
        ..
    } = z;
    let scale = p.scale;
    let kr = rows_at(k, d, dp, tkp, &mut s.kr);
    let vr = rows_at(v, dvh, dvp, tkp, &mut s.vr);
    s.dkr.fill(0.0);
    s.dvr.fill(0.0);
    for st in z.strips(q.len() / (tq * d).max(1)) {
        let Strip {
            row0, i0, n, keys, ..
        } = st;
        let vis = |r: usize| z.strip_visible(&st, r);
        if keys == 0 {
            dq[row0 * d..][..n * d].fill(0.0);
            continue;
        }
        let qrows = rows_at(&q[row0 * d..][..n * d], d, dp, n, &mut s.qs);
        let orows = rows_at(&d_out[row0 * dvh..][..n * dvh], dvh, dvp, n, &mut s.os);
        if n < STRIP {
            s.qt.fill(0.0);
            s.ot.fill(0.0);
        }
        transpose_into::<FMA>(qrows, n, d, dp, &mut s.qt, STRIP);
        transpose_into::<FMA>(orows, n, dvh, dvp, &mut s.ot, STRIP);
        fold_scale(&mut s.qt, scale);
        // Scores and dp = dO·vᵀ, transposed (keys by strip rows).
        let (first, lim) = limits(&vis);
        let mx = scores_masked::<FMA>(kr, dp, &s.qt, d, keys, first, &lim, &mut s.pt);
        keys_by_rows::<FMA>(vr, dvp, &s.ot, dvh, keys, &mut s.dst);
        let inv = exponentials_and_grads::<FMA>(&mut s.pt, &mut s.dst, keys, &mx, scale);
        // The cotangent rows over their softmax sums, for dV += eᵀ·(dO / Σe).
        for ((out, row), &c) in
            s.ps.chunks_exact_mut(dvp)
                .zip(orows.chunks_exact(dvp))
                .zip(&inv)
                .take(n)
        {
            for (o, &x) in out.iter_mut().zip(row) {
                *o = x * c;
            }
        }
        // dV += eᵀ·(dO / Σe) and dK += dsᵀ·q (unscaled q: `scale` is in ds), by
        // tiles of keys over the strip's rows that see them.
        for j0 in (0..keys).step_by(M) {
            let t0 = (j0 as isize - shift - i0 as isize).clamp(0, n as isize) as usize;
            let depth = n - t0;
            if depth == 0 {
                continue;
            }
            let (pa, da) = (&s.pt[j0 * STRIP + t0..], &s.dst[j0 * STRIP + t0..]);
            let dvr = &mut s.dvr[j0 * dvp..];
            tile_cols::<FMA, true>(pa, STRIP, 1, &s.ps[t0 * dvp..], dvp, depth, dvp, dvr, dvp);
            let dkr = &mut s.dkr[j0 * dp..];
            tile_cols::<FMA, true>(da, STRIP, 1, &qrows[t0 * dp..], dp, depth, dp, dkr, dp);
        }
        // dQ = ds · k, by row.
        let dq = &mut dq[row0 * d..][..n * d];
        rows_by_features::<FMA>(&s.dst, kr, dp, d, n, &vis, dq, &mut s.dqs);
    }
    unpad_rows(&s.dkr, dp, d, dk);
    unpad_rows(&s.dvr, dvp, dvh, dv);
}
