//! The x86 micro-kernels' bodies, written once over a vector of `L` f32 lanes
//! ([`F32Vector`]) and instantiated per ISA (`avx2.rs`: 8 lanes, `avx512.rs`:
//! 16 lanes) inside a `#[target_feature]` function, where every
//! `#[inline(always)]` vector operation below becomes one instruction. Same
//! contracts as the [`super::MicroKernels`] methods.

// Index loops over the tile keep every access a compile-time constant, which
// is what lets the accumulator tile live in registers.
#![allow(clippy::needless_range_loop)]

use crate::fast::attention::softmax::EXP2_SHORT;

/// One SIMD register of f32 lanes and the operations the kernels need. Every
/// method is `unsafe`: it needs the ISA its implementation is written for,
/// which the `#[target_feature]` caller guarantees.
pub(super) trait F32Vector: Copy {
    /// Lanes per register.
    const L: usize;
    /// All lanes `0.0`.
    unsafe fn zero() -> Self;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self;
    /// `L` lanes from `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self;
    /// `L` lanes to `p` (unaligned).
    unsafe fn store(self, p: *mut f32);
    /// Lane-wise `self + o`.
    unsafe fn add(self, o: Self) -> Self;
    /// Lane-wise `self - o`.
    unsafe fn sub(self, o: Self) -> Self;
    /// Lane-wise `self * o`.
    unsafe fn mul(self, o: Self) -> Self;
    /// Lane-wise maximum, x86 style: where either lane is NaN, `o`'s lane.
    unsafe fn max(self, o: Self) -> Self;
    /// Lane-wise `a * b + c`, one rounding.
    unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self;
    /// Lanes rounded to the nearest integer (ties to even).
    unsafe fn round(self) -> Self;
    /// `self * 2^k` for integral `k` in `[-127, 0]`, where `x` (the exponent
    /// before clamping) decides which lanes underflow to exactly `0.0`.
    unsafe fn scale_pow2(self, k: Self, x: Self) -> Self;
    /// Lanes equal to `-inf` replaced by `0.0`.
    unsafe fn zero_if_neg_inf(self) -> Self;
}

/// `2^x` lane-wise for `x <= 0`; `-inf` and anything below the smallest
/// normal exponent give exactly 0; NaN stays NaN. `2^k · 2^f` with `k` the
/// nearest integer and, for `2^f`: with `SHORT`, the polynomial of the
/// training strips' `exp2_short` ([`EXP2_SHORT`], in `f` itself: five fused
/// multiply-adds, relative error < 3e-7); without, the Cephes `e^r` form
/// (`r = f·ln 2`, eight operations, relative error ~2e-7). Which calls take
/// which: [`crate::fast::attention::softmax::short_exp`].
#[inline(always)]
pub(super) unsafe fn exp2<V: F32Vector, const SHORT: bool>(x: V) -> V {
    // `max(c, x)` returns `x` when it is NaN.
    let xc = V::splat(-127.0).max(x);
    let k = xc.round();
    let f = xc.sub(k);
    let p = if SHORT {
        let [c0, rest @ ..] = EXP2_SHORT;
        let mut p = V::splat(c0);
        for c in rest {
            p = V::fmadd(p, f, V::splat(c));
        }
        V::fmadd(p, f, V::splat(1.0))
    } else {
        let r = f.mul(V::splat(std::f32::consts::LN_2));
        // e^r on |r| <= ln(2)/2, the Cephes expf polynomial.
        let mut p = V::splat(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = V::fmadd(p, r, V::splat(c));
        }
        V::fmadd(p, r.mul(r), r.add(V::splat(1.0)))
    };
    p.scale_pow2(k, x)
}

/// `MicroKernels::scores`: an `MR` keys by `NV * L` queries tile of `K Q^T`.
/// With `MAX`, also `MicroKernels::scores_max`: `tmax` (`NV * L` lanes)
/// raised to each lane's largest stored score.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn scores<V: F32Vector, const NV: usize, const MR: usize, const MAX: bool>(
    qt: *const f32,
    ldq: usize,
    k: *const f32,
    ldk: usize,
    nk: usize,
    depth: usize,
    st: *mut f32,
    ldst: usize,
    tmax: *mut f32,
) {
    let rows: [*const f32; MR] = super::padded_rows(k, nk, ldk);
    let mut acc = [[V::zero(); NV]; MR];
    for d in 0..depth {
        let mut q = [V::zero(); NV];
        for (x, qv) in q.iter_mut().enumerate() {
            *qv = V::load(qt.add(d * ldq + x * V::L));
        }
        for m in 0..MR {
            let kb = V::splat(*rows[m].add(d));
            for x in 0..NV {
                acc[m][x] = V::fmadd(kb, q[x], acc[m][x]);
            }
        }
    }
    for m in 0..MR {
        if m < nk {
            for x in 0..NV {
                acc[m][x].store(st.add(m * ldst + x * V::L));
            }
        }
    }
    if MAX {
        for x in 0..NV {
            let mut mx = V::load(tmax.add(x * V::L));
            for m in 0..MR {
                if m < nk {
                    mx = mx.max(acc[m][x]);
                }
            }
            mx.store(tmax.add(x * V::L));
        }
    }
}

/// `MicroKernels::values`: an `MR` value features by `NV * L` queries tile of
/// `alpha * O^T + V^T P^T`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn values<V: F32Vector, const NV: usize, const MR: usize>(
    pt: *const f32,
    ldp: usize,
    nkeys: usize,
    v: *const f32,
    ldv: usize,
    nv: usize,
    alpha: *const f32,
    ot: *mut f32,
    ldo: usize,
) {
    let mut cols = [0usize; MR];
    for (m, c) in cols.iter_mut().enumerate() {
        *c = m.min(nv - 1);
    }
    let mut acc = [[V::zero(); NV]; MR];
    for x in 0..NV {
        let a = V::load(alpha.add(x * V::L));
        for m in 0..MR {
            acc[m][x] = V::load(ot.add(cols[m] * ldo + x * V::L)).mul(a);
        }
    }
    for j in 0..nkeys {
        let mut p = [V::zero(); NV];
        for (x, pv) in p.iter_mut().enumerate() {
            *pv = V::load(pt.add(j * ldp + x * V::L));
        }
        let vr = v.add(j * ldv);
        for m in 0..MR {
            let vb = V::splat(*vr.add(cols[m]));
            for x in 0..NV {
                acc[m][x] = V::fmadd(vb, p[x], acc[m][x]);
            }
        }
    }
    for m in 0..MR {
        if m < nv {
            for x in 0..NV {
                acc[m][x].store(ot.add(m * ldo + x * V::L));
            }
        }
    }
}

/// Independent running maxima per vector (hides the max latency).
const U: usize = 4;

/// `MicroKernels::softmax`: the online-softmax step on `keys` score rows of
/// `NV * L` query lanes.
#[inline(always)]
pub(super) unsafe fn softmax<V: F32Vector, const NV: usize>(
    st: *mut f32,
    ldst: usize,
    keys: usize,
    m: *mut f32,
    l: *mut f32,
    alpha: *mut f32,
) {
    let lanes = V::L;
    let neg_inf = V::splat(f32::NEG_INFINITY);
    let mut mx = [[neg_inf; NV]; U];
    for x in 0..NV {
        mx[0][x] = V::load(m.add(x * lanes));
    }
    let full = keys / U * U;
    for j in (0..full).step_by(U) {
        for u in 0..U {
            for x in 0..NV {
                let s = V::load(st.add((j + u) * ldst + x * lanes));
                mx[u][x] = mx[u][x].max(s);
            }
        }
    }
    for j in full..keys {
        for x in 0..NV {
            mx[0][x] = mx[0][x].max(V::load(st.add(j * ldst + x * lanes)));
        }
    }
    for x in 0..NV {
        let mut v = mx[0][x];
        for row in mx.iter().skip(1) {
            v = v.max(row[x]);
        }
        mx[0][x] = v;
    }
    softmax_from_max::<V, NV, false>(mx[0], st, ldst, keys, m, l, alpha)
}

/// [`softmax_from_max`] with each lane's maximum read from `tmax` (`NV`
/// vectors of lanes, the score kernel's tile maximum): the step of
/// `MicroKernels::softmax_max` for every vector ISA (`SHORT`: which
/// polynomial [`exp2`] uses).
#[inline(always)]
pub(super) unsafe fn softmax_given_max<V: F32Vector, const NV: usize, const SHORT: bool>(
    st: *mut f32,
    ldst: usize,
    keys: usize,
    tmax: *const f32,
    m: *mut f32,
    l: *mut f32,
    alpha: *mut f32,
) {
    let mut mx = [V::zero(); NV];
    for (x, v) in mx.iter_mut().enumerate() {
        *v = V::load(tmax.add(x * V::L));
    }
    softmax_from_max::<V, NV, SHORT>(mx, st, ldst, keys, m, l, alpha)
}

/// [`softmax`] after its maximum pass: `mx` holds each lane's maximum over
/// the running maximum `m` and the tile's scores (`MicroKernels::softmax_max`
/// when the score kernel found it). `SHORT`: which polynomial [`exp2`] uses.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn softmax_from_max<V: F32Vector, const NV: usize, const SHORT: bool>(
    mx: [V; NV],
    st: *mut f32,
    ldst: usize,
    keys: usize,
    m: *mut f32,
    l: *mut f32,
    alpha: *mut f32,
) {
    let lanes = V::L;
    let mut safe = [V::zero(); NV];
    for x in 0..NV {
        safe[x] = mx[x].zero_if_neg_inf();
        let old = V::load(m.add(x * lanes));
        exp2::<V, SHORT>(old.sub(safe[x])).store(alpha.add(x * lanes));
    }
    let mut sum = [[V::zero(); NV]; 2];
    // Even keys into `sum[0]`, odd into `sum[1]`, two keys per step and one
    // vector of lanes at a time, so that the sums, the maximum and the
    // polynomial's constants stay in registers.
    for x in 0..NV {
        let col = st.add(x * lanes);
        let (mut even, mut odd) = (V::zero(), V::zero());
        for j in (0..keys / 2 * 2).step_by(2) {
            exp_lanes::<V, SHORT>(col.add(j * ldst), safe[x], &mut even);
            exp_lanes::<V, SHORT>(col.add((j + 1) * ldst), safe[x], &mut odd);
        }
        if keys % 2 == 1 {
            exp_lanes::<V, SHORT>(col.add((keys - 1) * ldst), safe[x], &mut even);
        }
        sum[0][x] = even;
        sum[1][x] = odd;
    }
    for x in 0..NV {
        let a = V::load(alpha.add(x * lanes));
        let s = sum[0][x].add(sum[1][x]);
        V::fmadd(V::load(l.add(x * lanes)), a, s).store(l.add(x * lanes));
        mx[x].store(m.add(x * lanes));
    }
}

/// `L` scores of [`softmax_from_max`] at `ptr` replaced by `2^(s - safe)`,
/// added to `sum`. A function rather than
/// a closure: closures do not inherit the caller's `#[target_feature]`, this
/// inlines into it.
#[inline(always)]
unsafe fn exp_lanes<V: F32Vector, const SHORT: bool>(ptr: *mut f32, safe: V, sum: &mut V) {
    let p = exp2::<V, SHORT>(V::load(ptr).sub(safe));
    p.store(ptr);
    *sum = sum.add(p);
}
