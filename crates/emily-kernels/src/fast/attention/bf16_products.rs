//! The lanes-layout flash loop of [`super::block`] with bf16 products
//! (`vdpbf16ps`, AVX512-BF16) for bf16 tensors: twice the f32 FMA rate on
//! the same registers.
//!
//! Per block the queries are packed once as bf16 pairs of features
//! (`Q^T[i][lane] = (q[2i], q[2i+1])`, read exactly from the bf16 input); the
//! keys are read in place (a row's features are already bf16 pairs). Per key
//! tile the f32 softmax of [`super::microkernel`] runs on the f32 scores, then
//! the probabilities are rounded to bf16 and paired along keys
//! (`P^T[j/2][lane]`), and the tile's values are paired the same way
//! (`V[j/2][feature]`), so the value product is a bf16 dot product over key
//! pairs. Numerics: the products `q·k` and `p·v` are exact in f32 and every
//! sum is f32; the scale is applied to the f32 scores; the only rounding that
//! the f32 loop does not do is `p` to bf16 (relative 2⁻⁹ per weight, the
//! denominator summed from the unrounded `p`), so an output differs from the
//! f32 loop by at most about `2⁻⁸ · max|v|`.
//!
//! Taken for blocks of more than 16 rows when the head dim is even and the
//! bf16 GEMM engine of this CPU is AVX-512 or AMX (so `EMILY_ISA=avx2`
//! turns it off). With `SdpaParams::int8_scores` on a VNNI CPU the scores
//! come from [`super::int8_scores`] instead (any head dim), the rest as here.

use std::arch::x86_64::*;
use std::mem::transmute;
use std::sync::OnceLock;

use half::bf16;

use super::block::{finish, init_rows, mask_and_softmax, tile_keys, Ctx, Scratch};
use super::int8_scores::QueryCodes;
use super::io::Src;
use super::microkernel::{padded_rows, Avx512};
use super::plan::Block;
use super::softmax::LOG2E;
use crate::gemm::{Engine, Precision};

/// Query lanes per register tile (two 16-lane vectors).
const NR: usize = 32;
/// Keys (scores) or value features (values) per register tile.
const MR: usize = 8;
/// The f32 kernels of the same tile width (softmax and transposes).
type F32Tile = Avx512<2, 8>;

/// Interleaves the two 16-element halves of a 32 × u16 vector:
/// element `2i` from the low half, `2i + 1` from the high half.
static INTERLEAVE: [u16; 32] = [
    0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28,
    13, 29, 14, 30, 15, 31,
];

/// Whether this CPU runs the bf16-product loop (AVX512-BF16 present and the
/// bf16 GEMM engine not capped below AVX-512 by `EMILY_ISA`).
pub(super) fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        Engine::Avx512.runs_here(Precision::Bf16)
            && matches!(Engine::best(Precision::Bf16), Engine::Avx512 | Engine::Amx)
    })
}

/// The bf16 q, k and v of `ctx` when the bf16-product loop applies to it.
pub(super) fn operands<'c>(ctx: &Ctx<'c, '_>) -> Option<(&'c [bf16], &'c [bf16], &'c [bf16])> {
    match (ctx.q, ctx.k, ctx.v) {
        (Src::Bf16(q), Src::Bf16(k), Src::Bf16(v))
            if available()
                && (ctx.p.head_dim.is_multiple_of(2) || super::int8_scores::wanted(ctx)) =>
        {
            Some((q, k, v))
        }
        _ => None,
    }
}

/// One block of the lanes layout with bf16 products.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/DQ and BF16 ([`available`]); `ctx`
/// must describe buffers that passed `SdpaParams::validate`, `q`, `k`, `v` are
/// its inputs, `head_dim` is even, and no other worker writes this block's rows.
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx2,fma,f16c")]
pub(super) unsafe fn process(
    ctx: &Ctx<'_, '_>,
    blk: &Block,
    s: &mut Scratch,
    (q, k, v): (&[bf16], &[bf16], &[bf16]),
) {
    let (p, plan) = (ctx.p, ctx.plan);
    let (d, dv, kv_len) = (p.head_dim, p.v_head_dim, p.kv_len);
    let rows = blk.rows();
    let lanes = rows.next_multiple_of(NR);
    let (first_limit, last_limit) = init_rows(ctx, blk, s, lanes, lanes, plan.key_tile * lanes);
    let pairs = d / 2;
    let qscale = p.scale * LOG2E;
    let int8 = super::int8_scores::wanted(ctx);
    let mut score_tiles = false;
    if int8 {
        // SAFETY: AVX-512 present (this function's features); validated.
        unsafe {
            super::int8_scores::prepare_keys(ctx, k, blk.b, blk.hk, &mut s.i8);
            score_tiles = super::tile_products::scores_on_tiles(s.i8.width());
            let codes_as = if score_tiles {
                QueryCodes::Signed
            } else {
                QueryCodes::Offset
            };
            super::int8_scores::pack_queries(ctx, blk, q, lanes, qscale, codes_as, &mut s.i8);
        }
    } else {
        // Q^T as bf16 pairs: features (2i, 2i + 1) of row r at i * lanes + r;
        // padded lanes stay zero.
        s.qt2.clear();
        s.qt2.resize(pairs * lanes, 0);
        for r in 0..rows {
            let (g, t) = blk.row(r);
            let start = p.q_strides.offset(blk.b, blk.hk * plan.group + g, t);
            let row = &q[start..start + d];
            for i in 0..pairs {
                s.qt2[i * lanes + r] = pair(row[2 * i], row[2 * i + 1]);
            }
        }
    }
    let int8v = super::int8_values::wanted(ctx);
    let value_tiles = int8v && super::tile_products::values_on_tiles();
    if int8v {
        // SAFETY: AVX-512 present (this function's features); validated.
        unsafe { super::int8_values::prepare_values(ctx, v, blk.b, blk.hk, &mut s.v8) };
    }
    // One tile configuration for the block's products, not one per call.
    // SAFETY: either flag is set only where the tiles are permitted.
    let _tiles = (score_tiles || value_tiles).then(|| unsafe { crate::gemm::HeldTiles::hold() });
    let (ks, vs) = (p.k_strides, p.v_strides);
    // The tile products find an unmasked tile's maxima as they write it (the
    // int8 softmax then reads the tile once).
    let tile_max = |j0, keys| int8v && super::block::tile_unmasked(p, (j0, keys), first_limit);
    let mut j0 = plan.first_key(first_limit);
    while j0 < kv_len && j0 as isize <= last_limit {
        let keys = tile_keys(plan, kv_len, j0, last_limit);
        if int8 {
            // SAFETY: VNNI present (`wanted`); keys and queries prepared
            // above for `lanes` lanes; the tile holds keys * lanes floats.
            unsafe {
                if score_tiles {
                    super::tile_products::tile_scores(s, lanes, j0, keys, tile_max(j0, keys))
                } else {
                    super::int8_scores::tile_scores(s, lanes, j0, keys)
                }
            };
        } else {
            // SAFETY: as documented on `bf16_scores`.
            unsafe {
                bf16_scores(
                    s,
                    lanes,
                    k,
                    ks.offset(blk.b, blk.hk, j0),
                    ks.seq,
                    keys,
                    pairs,
                    qscale,
                )
            };
        }
        if int8v {
            // SAFETY: VNNI present (`wanted`); the scratch was set up for
            // `lanes` lanes; values prepared above; j0 is a multiple of 4
            // without a window (tiles start at 0 and step by key tiles).
            unsafe {
                let max_known = score_tiles && tile_max(j0, keys);
                super::int8_values::softmax_and_pack(
                    p,
                    s,
                    lanes,
                    (j0, keys),
                    first_limit,
                    max_known,
                );
                if value_tiles {
                    super::tile_products::tile_values(s, lanes, dv, j0, keys);
                } else {
                    super::int8_values::tile_values(s, lanes, dv, j0, keys);
                }
            }
        } else {
            // SAFETY: AVX-512 present; the scratch was set up for `lanes` lanes.
            unsafe { mask_and_softmax::<F32Tile>(p, s, (lanes, lanes), (j0, keys), first_limit) };
            // SAFETY: the tile holds `keys` rows of `lanes` probabilities.
            unsafe { pair_probabilities(&s.st[..keys * lanes], lanes, keys, &mut s.pt2) };
            let v_rows = &v[vs.offset(blk.b, blk.hk, j0)..];
            pair_values(v_rows, vs.seq, keys, dv, &mut s.vt2);
            let kp = keys.div_ceil(2);
            for rc in (0..lanes).step_by(NR) {
                for dv0 in (0..dv).step_by(MR) {
                    // SAFETY: `kp` pair rows of P^T (lanes words) and of V (dv
                    // words); output rows dv0.. of O^T, lanes rc..rc + NR.
                    unsafe {
                        values(
                            s.pt2.as_ptr().add(rc),
                            lanes,
                            kp,
                            s.vt2.as_ptr().add(dv0),
                            dv,
                            MR.min(dv - dv0),
                            s.alpha.as_ptr().add(rc),
                            s.ot.as_mut_ptr().add(dv0 * lanes + rc),
                            lanes,
                        )
                    };
                }
            }
        }
        j0 += keys;
    }
    // SAFETY: AVX-512 present; O^T holds the block's sums.
    unsafe { finish::<F32Tile>(ctx, blk, s, lanes) };
}

/// The score tile (lanes layout, `keys` rows of `lanes` floats in `s.st`)
/// from the bf16 pairs of Q^T in `s.qt2` and the bf16 keys `k[k0..]`, rows
/// `ldk` apart, scaled by `qscale`.
///
/// # Safety
/// AVX512-BF16 CPU; `s.qt2` holds `pairs` rows of `lanes` (a multiple of
/// `NR`) words, `s.st` `keys · lanes` floats, and `k` `keys` rows of
/// `2 · pairs` elements from `k0`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn bf16_scores(
    s: &mut Scratch,
    lanes: usize,
    k: &[bf16],
    k0: usize,
    ldk: usize,
    keys: usize,
    pairs: usize,
    qscale: f32,
) {
    // SAFETY: as documented; `k0` is in bounds of the validated keys.
    let k_base = unsafe { k.as_ptr().add(k0) };
    let st = s.st.as_mut_ptr();
    for rc in (0..lanes).step_by(NR) {
        for kg in (0..keys).step_by(MR) {
            // SAFETY: key rows kg.. of the tile, score rows kg.. of `st`
            // (keys * lanes floats), lanes rc..rc + NR of Q^T.
            unsafe {
                scores(
                    s.qt2.as_ptr().add(rc),
                    lanes,
                    k_base.add(kg * ldk),
                    ldk,
                    MR.min(keys - kg),
                    pairs,
                    qscale,
                    st.add(kg * lanes + rc),
                    lanes,
                )
            };
        }
    }
}

/// `lo` in the low 16 bits, `hi` in the high 16 (the pair order of `vdpbf16ps`).
#[inline(always)]
fn pair(lo: bf16, hi: bf16) -> u32 {
    lo.to_bits() as u32 | (hi.to_bits() as u32) << 16
}

/// `S^T[m][lane] = scale · Σ_i Q^T[i][lane] · K[m][i]` for `nk` (`1..=MR`)
/// keys and `NR` lanes, the products over feature pairs.
///
/// # Safety
/// AVX512-BF16 CPU; `qt2` addresses `pairs` rows of `NR` words at stride
/// `ldq`; `k` addresses `nk` rows of `2 · pairs` bf16 at stride `ldk`; `st`
/// addresses `nk` writable rows of `NR` floats at stride `ldst`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn scores(
    qt2: *const u32,
    ldq: usize,
    k: *const bf16,
    ldk: usize,
    nk: usize,
    pairs: usize,
    scale: f32,
    st: *mut f32,
    ldst: usize,
) {
    // SAFETY: rows past `nk` repeat the last valid key and are not stored.
    unsafe {
        let rows = padded_rows::<_, MR>(k, nk, ldk).map(<*const _>::cast::<i32>);
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for i in 0..pairs {
            let q0: __m512bh = transmute(_mm512_loadu_si512(qt2.add(i * ldq).cast()));
            let q1: __m512bh = transmute(_mm512_loadu_si512(qt2.add(i * ldq + 16).cast()));
            for (row, acc) in rows.iter().zip(acc.iter_mut()) {
                let kb: __m512bh = transmute(_mm512_set1_epi32(row.add(i).read_unaligned()));
                acc[0] = _mm512_dpbf16_ps(acc[0], kb, q0);
                acc[1] = _mm512_dpbf16_ps(acc[1], kb, q1);
            }
        }
        let sc = _mm512_set1_ps(scale);
        for (m, acc) in acc.iter().enumerate().take(nk) {
            _mm512_storeu_ps(st.add(m * ldst), _mm512_mul_ps(acc[0], sc));
            _mm512_storeu_ps(st.add(m * ldst + 16), _mm512_mul_ps(acc[1], sc));
        }
    }
}

/// `O^T[m][lane] = alpha[lane] · O^T[m][lane] + Σ_jp P^T[jp][lane] · V[jp][m]`
/// for `nv` (`1..=MR`) value features and `NR` lanes, over `kp` key pairs.
///
/// # Safety
/// AVX512-BF16 CPU; `pt2` addresses `kp` rows of `NR` words at stride `ldp`,
/// `vt2` `kp` rows of `nv` words at stride `ldv`, `alpha` `NR` floats, `ot`
/// `nv` rows of `NR` floats at stride `ldo`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn values(
    pt2: *const u32,
    ldp: usize,
    kp: usize,
    vt2: *const u32,
    ldv: usize,
    nv: usize,
    alpha: *const f32,
    ot: *mut f32,
    ldo: usize,
) {
    // SAFETY: as documented; features past `nv` repeat the last valid one
    // and are not stored.
    unsafe {
        let (a0, a1) = (_mm512_loadu_ps(alpha), _mm512_loadu_ps(alpha.add(16)));
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for (m, acc) in acc.iter_mut().enumerate().take(nv) {
            acc[0] = _mm512_mul_ps(_mm512_loadu_ps(ot.add(m * ldo)), a0);
            acc[1] = _mm512_mul_ps(_mm512_loadu_ps(ot.add(m * ldo + 16)), a1);
        }
        let cols: [usize; MR] = std::array::from_fn(|m| m.min(nv - 1));
        for jp in 0..kp {
            let p0: __m512bh = transmute(_mm512_loadu_si512(pt2.add(jp * ldp).cast()));
            let p1: __m512bh = transmute(_mm512_loadu_si512(pt2.add(jp * ldp + 16).cast()));
            let row = vt2.add(jp * ldv);
            for (&c, acc) in cols.iter().zip(acc.iter_mut()) {
                let vb: __m512bh = transmute(_mm512_set1_epi32(*row.add(c) as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], vb, p0);
                acc[1] = _mm512_dpbf16_ps(acc[1], vb, p1);
            }
        }
        for (m, acc) in acc.iter().enumerate().take(nv) {
            _mm512_storeu_ps(ot.add(m * ldo), acc[0]);
            _mm512_storeu_ps(ot.add(m * ldo + 16), acc[1]);
        }
    }
}

/// `out[jp][lane] = (bf16 p[2jp][lane], bf16 p[2jp + 1][lane])` for the
/// `keys` rows of `lanes` (a multiple of 16) probabilities in `st`; an odd
/// last key pairs with 0.
///
/// # Safety
/// AVX512-BF16 CPU.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn pair_probabilities(st: &[f32], lanes: usize, keys: usize, out: &mut Vec<u32>) {
    let kp = keys.div_ceil(2);
    out.clear();
    out.resize(kp * lanes, 0);
    // SAFETY: every load is inside `st` (rows < keys), every store inside
    // `out` (kp rows of lanes words); the index table has 32 entries.
    unsafe {
        let idx = _mm512_loadu_si512(INTERLEAVE.as_ptr().cast());
        let zero = _mm512_setzero_ps();
        for jp in 0..kp {
            let lo_row = st.as_ptr().add(2 * jp * lanes);
            let has_hi = 2 * jp + 1 < keys;
            for c in (0..lanes).step_by(16) {
                let lo = _mm512_loadu_ps(lo_row.add(c));
                let hi = if has_hi {
                    _mm512_loadu_ps(lo_row.add(lanes + c))
                } else {
                    zero
                };
                let both: __m512i = transmute(_mm512_cvtne2ps_pbh(hi, lo));
                let pairs = _mm512_permutexvar_epi16(idx, both);
                _mm512_storeu_si512(out.as_mut_ptr().add(jp * lanes + c).cast(), pairs);
            }
        }
    }
}

/// `out[jp][c] = (v[2jp][c], v[2jp + 1][c])` for `keys` rows of `dv` bf16 at
/// stride `ldv` in `v`; an odd last key pairs with 0.
///
/// # Safety
/// AVX512-BF16 CPU.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
unsafe fn pair_values(v: &[bf16], ldv: usize, keys: usize, dv: usize, out: &mut Vec<u32>) {
    let kp = keys.div_ceil(2);
    out.clear();
    out.resize(kp * dv, 0);
    let vector_cols = dv - dv % 16;
    let zero = bf16::ZERO;
    for jp in 0..kp {
        let lo = &v[2 * jp * ldv..][..dv];
        let hi = (2 * jp + 1 < keys).then(|| &v[(2 * jp + 1) * ldv..][..dv]);
        let dst = &mut out[jp * dv..][..dv];
        // SAFETY: 16 elements at c < vector_cols lie inside `lo`, `hi` and `dst`.
        unsafe {
            let idx = _mm512_loadu_si512(INTERLEAVE.as_ptr().cast());
            for c in (0..vector_cols).step_by(16) {
                let l = _mm256_loadu_si256(lo.as_ptr().add(c).cast());
                let h = hi.map_or(_mm256_setzero_si256(), |h| {
                    _mm256_loadu_si256(h.as_ptr().add(c).cast())
                });
                let both = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(l), h);
                let pairs = _mm512_permutexvar_epi16(idx, both);
                _mm512_storeu_si512(dst.as_mut_ptr().add(c).cast(), pairs);
            }
        }
        for c in vector_cols..dv {
            dst[c] = pair(lo[c], hi.map_or(zero, |h| h[c]));
        }
    }
}

#[cfg(test)]
mod tests {
    use half::bf16;

    use super::super::{sdpa_bf16, Mask, SdpaParams};
    use super::available;

    fn randn(n: usize, seed: u64) -> Vec<bf16> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u, w) = (next().max(1e-12), next());
                let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * w).cos();
                bf16::from_f64(2.0 * z)
            })
            .collect()
    }

    /// The f64 attention of contiguous `(B, H, T, D)` bf16 tensors, causal
    /// aligned to the end when `causal`.
    fn reference(q: &[bf16], k: &[bf16], v: &[bf16], p: &SdpaParams<'_>, causal: bool) -> Vec<f64> {
        let (d, dv) = (p.head_dim, p.v_head_dim);
        let group = p.q_heads / p.kv_heads;
        let mut out = Vec::new();
        for b in 0..p.batch {
            for h in 0..p.q_heads {
                let g = h / group;
                for t in 0..p.q_len {
                    let qr = &q[((b * p.q_heads + h) * p.q_len + t) * d..][..d];
                    let last = if causal {
                        t + p.kv_len - p.q_len
                    } else {
                        p.kv_len - 1
                    };
                    let s: Vec<f64> = (0..=last)
                        .map(|j| {
                            let kr = &k[((b * p.kv_heads + g) * p.kv_len + j) * d..][..d];
                            let dot: f64 = qr
                                .iter()
                                .zip(kr)
                                .map(|(a, c)| a.to_f64() * c.to_f64())
                                .sum();
                            dot * p.scale as f64
                        })
                        .collect();
                    let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
                    let l: f64 = e.iter().sum();
                    for c in 0..dv {
                        let acc: f64 = e
                            .iter()
                            .enumerate()
                            .map(|(j, w)| {
                                w * v[((b * p.kv_heads + g) * p.kv_len + j) * dv + c].to_f64()
                            })
                            .sum();
                        out.push(acc / l);
                    }
                }
            }
        }
        out
    }

    /// bf16 products against the f64 reference at odd lengths (1, 7, 77,
    /// 1500 keys; blocks of 17..64 rows), an odd last key pair, a value
    /// width with a tail (40), grouped heads and a causal mask: within
    /// the output's own rounding plus `2⁻⁸ · max|v|` for the bf16 weights.
    #[test]
    fn matches_the_f64_reference() {
        if !available() {
            eprintln!("skipped: no AVX512-BF16 here");
            return;
        }
        let cases = [
            (1, 2, 1, 33, 1, 64, 64, false),
            (1, 2, 2, 40, 7, 64, 40, false),
            (2, 4, 2, 77, 77, 32, 40, true),
            (1, 1, 1, 1500, 1500, 64, 64, false),
            (1, 2, 1, 70, 601, 16, 24, true),
        ];
        for (i, &(batch, hq, hkv, tq, tk, d, dv, causal)) in cases.iter().enumerate() {
            let mut p = SdpaParams::new(batch, hq, hkv, tq, tk, d);
            p.v_head_dim = dv;
            p.v_strides = crate::fast::HeadStrides::bhsd(hkv, tk, dv);
            p.out_strides = crate::fast::HeadStrides::bhsd(hq, tq, dv);
            if causal {
                p.mask = Mask::Causal;
            }
            let seed = 10 * i as u64;
            let q = randn(batch * hq * tq * d, seed);
            let k = randn(batch * hkv * tk * d, seed + 1);
            let v = randn(batch * hkv * tk * dv, seed + 2);
            let mut out = vec![bf16::NAN; batch * hq * tq * dv];
            sdpa_bf16(&q, &k, &v, &mut out, &p);
            let want = reference(&q, &k, &v, &p, causal);
            let vmax = v.iter().fold(0f64, |m, x| m.max(x.to_f64().abs()));
            let (mut worst, mut mean) = (0f64, 0f64);
            for (g, w) in out.iter().zip(&want) {
                let err = (g.to_f64() - w).abs();
                worst = worst.max(err / (w.abs() * 3.9e-3 + vmax / 256.0));
                mean += err;
            }
            mean /= want.len() as f64;
            assert!(worst <= 1.0, "case {i}: {worst} x tolerance");
            // The typical error is far below the bound (errors average out).
            assert!(mean < vmax * 1e-3, "case {i}: mean error {mean}");
        }
    }
}
