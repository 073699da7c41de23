//! The strips' softmax, transposed: `pt[j·STRIP + l]` holds the score of
//! strip row `l` and key `j`, so every per-row reduction runs down one
//! SIMD lane. The scores arrive already multiplied by `scale·log2(e)`
//! (folded into the strip's transposed queries), so `exp(scale·s − max)`
//! is one `2^(x − max')`. The causal mask and the rows' maxima are taken
//! while each tile of scores is still in registers ([`scores_masked`]).
//! The exponential is [`exp2_short`], a shorter polynomial than the
//! Cephes `e^r` form at the same accuracy (the general attention kernels'
//! vector exponential uses the same one for calls without a mask).

use super::{panel, store, L, M, STRIP};
use crate::fast::attention::exp2_short;
use crate::fast::lanes::fmadd;

/// `out[j·STRIP + l] = Σ_{c < depth} rows[j·ld + c] · qt[c·STRIP + l]` for
/// keys `j < keys` (a whole number of tiles) — a strip's scores,
/// transposed — with every key past row `l`'s last visible one
/// (`j > lim[l]`) set to `−inf`; returns each row's maximum (`−inf` for a
/// row that sees no key). Keys below `first` are visible to every row (no
/// mask test).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn scores_masked<const FMA: bool>(
    rows: &[f32],
    ld: usize,
    qt: &[f32],
    depth: usize,
    keys: usize,
    first: usize,
    lim: &[f32; STRIP],
    out: &mut [f32],
) -> [f32; STRIP] {
    let mut mx = [[f32::NEG_INFINITY; L]; 2];
    for j0 in (0..keys).step_by(M) {
        let mut acc = panel::<FMA, 2>(&rows[j0 * ld..], ld, 1, qt, STRIP, depth);
        if j0 + M > first {
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let jf = (j0 + r) as f32;
                for (w, aw) in acc_r.iter_mut().enumerate() {
                    for l in 0..L {
                        aw[l] = if jf > lim[w * L + l] {
                            f32::NEG_INFINITY
                        } else {
                            aw[l]
                        };
                    }
                }
            }
        }
        for acc_r in &acc {
            for (m, aw) in mx.iter_mut().zip(acc_r) {
                for l in 0..L {
                    m[l] = if aw[l] > m[l] { aw[l] } else { m[l] };
                }
            }
        }
        store::<false, 2>(&acc, &mut out[j0 * STRIP..], STRIP);
    }
    std::array::from_fn(|l| mx[l / L][l % L])
}

/// The shift of each row's exponentials: its maximum, or 0 for a row that
/// sees no key (every `2^(−inf − 0)` is then 0).
#[inline(always)]
fn shifts(mx: &[f32; STRIP]) -> [f32; STRIP] {
    std::array::from_fn(|l| {
        if mx[l] == f32::NEG_INFINITY {
            0.0
        } else {
            mx[l]
        }
    })
}

/// `1 / Σ` per row, 0 for a row whose exponentials sum to 0 (none visible).
#[inline(always)]
fn inverses(sum: &[f32; STRIP]) -> [f32; STRIP] {
    std::array::from_fn(|l| if sum[l] > 0.0 { 1.0 / sum[l] } else { 0.0 })
}

/// The forward's softmax without its division: the first `keys` rows of
/// masked scores ([`scores_masked`], maxima `mx`) become `2^(x − max)` in
/// place; returns each row's `1 / Σ` (0 for a row that sees no key), which
/// the caller applies to the row's output.
#[inline(always)]
pub(super) fn exponentials<const FMA: bool>(
    pt: &mut [f32],
    keys: usize,
    mx: &[f32; STRIP],
) -> [f32; STRIP] {
    let mx = shifts(mx);
    let mut sum = [0.0f32; STRIP];
    for es in pt[..keys * STRIP].chunks_exact_mut(STRIP) {
        let mut e: [f32; STRIP] = (*es).try_into().unwrap();
        for l in 0..STRIP {
            e[l] = exp2_short::<FMA>(e[l] - mx[l]);
            sum[l] += e[l];
        }
        es.copy_from_slice(&e);
    }
    inverses(&sum)
}

/// The backward's softmax and its gradient, without the softmax's
/// division: the first `keys` rows of masked scores ([`scores_masked`],
/// maxima `mx`) become the exponentials `e = 2^(x − max)`, and `dst`
/// (holding `dp = dO·vᵀ` the same way) becomes
/// `ds = scale·p ∘ (dp − Σ p·dp)` with `p = e / Σe`, both in place. Returns
/// each row's `1 / Σe` (0 for a row that sees no key): `pᵀ·dO` is `eᵀ`
/// times the cotangent rows so scaled.
#[inline(always)]
pub(super) fn exponentials_and_grads<const FMA: bool>(
    pt: &mut [f32],
    dst: &mut [f32],
    keys: usize,
    mx: &[f32; STRIP],
    scale: f32,
) -> [f32; STRIP] {
    let mx = shifts(mx);
    let mut sum = [0.0f32; STRIP];
    let mut edp = [0.0f32; STRIP];
    for (es, ds) in pt[..keys * STRIP]
        .chunks_exact_mut(STRIP)
        .zip(dst.chunks_exact(STRIP))
    {
        let mut e: [f32; STRIP] = (*es).try_into().unwrap();
        let d: [f32; STRIP] = ds.try_into().unwrap();
        for l in 0..STRIP {
            e[l] = exp2_short::<FMA>(e[l] - mx[l]);
            sum[l] += e[l];
            edp[l] = fmadd::<FMA>(e[l], d[l], edp[l]);
        }
        es.copy_from_slice(&e);
    }
    let inv = inverses(&sum);
    // ds = e ∘ (dp·c − D·c) with c = scale / Σe and D = Σ e·dp / Σe.
    let c: [f32; STRIP] = std::array::from_fn(|l| scale * inv[l]);
    let dc: [f32; STRIP] = std::array::from_fn(|l| edp[l] * inv[l] * c[l]);
    for (es, ds) in pt[..keys * STRIP]
        .chunks_exact(STRIP)
        .zip(dst.chunks_exact_mut(STRIP))
    {
        let e: [f32; STRIP] = es.try_into().unwrap();
        let mut dv: [f32; STRIP] = (*ds).try_into().unwrap();
        for l in 0..STRIP {
            dv[l] = e[l] * fmadd::<FMA>(dv[l], c[l], -dc[l]);
        }
        ds.copy_from_slice(&dv);
    }
    inv
}

/// Multiplies a strip's transposed queries by `scale·log2(e)`, so its
/// scores come out in the base-2 domain of the softmax.
#[inline(always)]
pub(super) fn fold_scale(qt: &mut [f32], scale: f32) {
    let c = scale * std::f32::consts::LOG2_E;
    for x in qt.iter_mut() {
        *x *= c;
    }
}
