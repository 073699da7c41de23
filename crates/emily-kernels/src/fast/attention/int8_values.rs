//! The value product `P·V` of the bf16-product loop ([`super::bf16_products`])
//! on int8 dot products (`vpdpbusd`), for bf16 calls that allow it
//! ([`super::SdpaParams::int8_values`]).
//!
//! Each kv head's values are quantized once per worker with one scale per
//! feature (`s_v[c] = max_j |v[j][c]| / 127`, over all the head's keys),
//! packed in 4-key groups (`V4[g][c]` = the codes of keys `4g..4g + 4`).
//! Per key tile, each row's softmax weights `p ∈ [0, 1]` are rounded to
//! unsigned bytes with the row's own scale (`s_p = max_j p / 255` over the
//! tile) and packed the same way; the i32 sums are exact and
//! `O = α·O + s_p · s_v · Σ`. The denominator is summed from the unrounded
//! weights, as in the bf16 loop. The weights' codes come from a cubic
//! `2^x` (relative error 7.5e-5: 0.02 of a code's step at most, and as
//! much of the denominator).
//!
//! Error: a weight moves by at most `s_p / 2 ≤ 1/510` (plus the cubic's
//! 0.02 steps) and a value by
//! `s_v / 2`, so an output row moves by at most
//! `(Σ_j |Δp_j| · max|v| + s_v / 2 · Σ_j p_j) / l ≤ (n_tile_keys / 510 ·
//! max|v|) / l + max|v| / 254` — the first term is a worst case of
//! same-signed roundings; rounding errors of independent weights cancel,
//! and weights below `s_p / 2` round to 0 (losing at most themselves).
//!
//! Used when the tiles start at multiples of 4 keys (no sliding window),
//! so the head's packed groups line up with every tile.

use std::arch::x86_64::*;

use half::bf16;

use super::block::{mask_tile, Ctx, Scratch};
use super::tile_products::{self, ValueOperands};
use super::SdpaParams;
use crate::gemm::Words;

/// Query lanes per register tile.
const NR: usize = 32;
/// Value features per register tile.
const MR: usize = 8;

/// Whether `ctx` asks for int8 values and this CPU has them (as the int8
/// scores) and every key tile starts at a multiple of 4.
pub(super) fn wanted(ctx: &Ctx<'_, '_>) -> bool {
    ctx.p.int8_values && ctx.plan.window.is_none() && super::int8_scores::available()
}

/// Per-worker buffers of the int8 value product.
#[derive(Default)]
pub(super) struct Int8Values {
    /// `(call, batch, kv head)` whose values `v4` hold (`None`: none yet).
    head: Option<(u64, usize, usize)>,
    /// Packed value codes: `ceil(kv_len / 4)` rows of `v_head_dim` words.
    v4: Vec<u32>,
    /// Per feature: its scale.
    vscale: Vec<f32>,
    /// Row-major codes of the head (`kv_len x v_head_dim`) before packing,
    /// one widened row, and the per-feature `127 / max`.
    codes: Vec<i8>,
    row: Vec<f32>,
    inv: Vec<f32>,
    /// The tile's packed weight codes (`ceil(keys / 4)` rows of `lanes`
    /// words) and each lane's `s_p`.
    p4: Words,
    pscale: Vec<f32>,
    /// For the tile unit ([`tile_products`]): `v4` transposed, feature `c`'s
    /// 4-key words at `c · gstride` (zero-padded rows and words, so whole
    /// tiles read initialised memory); empty when the tiles are not used.
    v4t: Words,
    gstride: usize,
}

impl Int8Values {
    /// The operands of the tile-unit value product for the tile of keys
    /// from `j0` (see [`tile_products::values`]): pads the tile's weight
    /// rows with zeros to whole tiles first.
    pub(super) fn value_operands(
        &mut self,
        alpha: &[f32],
        lanes: usize,
        dv: usize,
        j0: usize,
        keys: usize,
    ) -> ValueOperands {
        let groups = keys.div_ceil(4);
        self.p4.resize(groups.next_multiple_of(16) * lanes);
        debug_assert!(j0 / 4 + groups.next_multiple_of(16) <= self.gstride);
        debug_assert!(self.v4t.as_slice().len() >= dv.next_multiple_of(32) * self.gstride);
        ValueOperands {
            p4: self.p4.as_slice().as_ptr(),
            lanes,
            groups,
            v4t: self.v4t.as_slice()[j0 / 4..].as_ptr(),
            gstride: self.gstride,
            dv,
            pscale: self.pscale.as_ptr(),
            vscale: self.vscale.as_ptr(),
            alpha: alpha.as_ptr(),
        }
    }
}

/// Quantizes the values of kv head `(b, hk)` into `s` unless they are
/// there already.
///
/// # Safety
/// AVX-512 F/BW CPU; `ctx` passed `SdpaParams::validate`, `v` is its values.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn prepare_values(
    ctx: &Ctx<'_, '_>,
    v: &[bf16],
    b: usize,
    hk: usize,
    s: &mut Int8Values,
) {
    if s.head == Some((ctx.call, b, hk)) {
        return;
    }
    let p = ctx.p;
    let (dv, n, vs) = (p.v_head_dim, p.kv_len, p.v_strides);
    let value = |j: usize| &v[vs.offset(b, hk, j)..][..dv];
    // Per-feature max |v| (NaN when the feature holds a non-finite value).
    s.row.resize(dv, 0.0);
    s.vscale.clear();
    s.vscale.resize(dv, 0.0);
    for j in 0..n {
        crate::cast::bf16_to_f32(value(j), &mut s.row);
        for (m, x) in s.vscale.iter_mut().zip(&s.row) {
            let a = x.abs();
            *m = if a.is_finite() && !m.is_nan() {
                m.max(a)
            } else {
                f32::NAN
            };
        }
    }
    s.inv.clear();
    s.inv.extend(
        s.vscale
            .iter()
            .map(|&m| if m > 0.0 { 127.0 / m } else { 0.0 }),
    );
    s.vscale.iter_mut().for_each(|m| *m /= 127.0);
    s.codes.clear();
    s.codes.resize(n * dv, 0);
    for j in 0..n {
        crate::cast::bf16_to_f32(value(j), &mut s.row);
        let out = &mut s.codes[j * dv..][..dv];
        // SAFETY: AVX-512 F/BW present; `out`, `row` and `inv` hold `dv`.
        unsafe { round_codes(&s.row, &s.inv, out) };
    }
    let groups = n.div_ceil(4);
    s.v4.clear();
    s.v4.resize(groups * dv, 0);
    for g in 0..groups {
        for e in 0..4.min(n - 4 * g) {
            let src = &s.codes[(4 * g + e) * dv..][..dv];
            for (w, &c) in s.v4[g * dv..][..dv].iter_mut().zip(src) {
                *w |= (c as u8 as u32) << (8 * e);
            }
        }
    }
    if tile_products::values_on_tiles() {
        // Feature-major words for the tile unit's A operand: each row long
        // enough for a tile read (16 words) from any tile's first group.
        s.gstride = groups.next_multiple_of(16) + 16;
        s.v4t.resize(0);
        s.v4t.resize(dv.next_multiple_of(32) * s.gstride);
        let v4t = s.v4t.as_mut_slice();
        for g in 0..groups {
            for c in 0..dv {
                v4t[c * s.gstride + g] = s.v4[g * dv + c];
            }
        }
    }
    s.head = Some((ctx.call, b, hk));
}

/// `out[c] = round(x[c] · inv[c])` (nearest, ties to even; the products lie
/// in [-127, 127]; NaN gives 0).
///
/// # Safety
/// AVX-512 F/BW CPU; `inv` and `out` are as long as `x`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn round_codes(x: &[f32], inv: &[f32], out: &mut [i8]) {
    let n = x.len();
    // SAFETY: masked loads and stores stay inside the slices.
    unsafe {
        for i in (0..n).step_by(16) {
            let m = (((1u32 << (n - i).min(16)) - 1) & 0xFFFF) as __mmask16;
            let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
            let f = _mm512_maskz_loadu_ps(m, inv.as_ptr().add(i));
            let prod = _mm512_mul_ps(v, f);
            // NaN products become 0 codes (their feature's scale is NaN).
            let prod = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(prod, prod), prod);
            let c = _mm512_cvtps_epi32(prod);
            _mm512_mask_cvtepi32_storeu_epi8(out.as_mut_ptr().add(i).cast(), m, c);
        }
    }
}

/// Masks the score tile of keys `j0 .. j0 + keys` and runs the online
/// softmax on it (as [`super::block::mask_and_softmax`] with the AVX-512
/// kernel), rounding the weights to bytes and packing them in 4-key groups
/// into `s.v8.p4` on the way ([`softmax_pack_lanes`]): the weights are never
/// stored as floats. `max_known`: the tile is unmasked, the tile products
/// stored its scores without their lane factor and `s.tmax` holds each
/// lane's largest of them ([`tile_products::scores`]), so the tile is read
/// once and the factor is multiplied in as the maximum is subtracted.
/// Unmasked calls take the short exponential
/// ([`super::softmax::short_exp`]).
///
/// # Safety
/// AVX-512 F/BW CPU; `s` was set up by `init_rows` for `lanes` (a multiple
/// of 32) lanes and holds `keys` score rows (and with `max_known`, `s.tmax`
/// `lanes` maxima).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn softmax_and_pack(
    p: &SdpaParams<'_>,
    s: &mut Scratch,
    lanes: usize,
    (j0, keys): (usize, usize),
    first_limit: isize,
    max_known: bool,
) {
    if !max_known {
        mask_tile(p, s, lanes, (j0, keys), first_limit);
    }
    let short = super::softmax::short_exp(&p.mask);
    let groups = keys.div_ceil(4);
    let v8 = &mut s.v8;
    v8.pscale.clear();
    v8.pscale.resize(lanes, 0.0);
    // Every word is written below.
    v8.p4.resize(groups * lanes);
    for c in (0..lanes).step_by(16) {
        let tmax = max_known.then(|| (s.tmax[c..c + 16].as_ptr(), s.i8.qscale()[c..].as_ptr()));
        let (st, m, l, alpha) = (
            s.st.as_ptr(),
            s.m.as_mut_ptr(),
            s.l.as_mut_ptr(),
            s.alpha.as_mut_ptr(),
        );
        let lanes_of = (st.add(c), m.add(c), l.add(c), alpha.add(c));
        let out = (
            v8.pscale.as_mut_ptr().add(c),
            v8.p4.as_mut_slice().as_mut_ptr().add(c),
        );
        // SAFETY: lanes c..c + 16 of the tile, the statistics and the
        // scales; the `groups · lanes` words of `p4`.
        unsafe {
            if short {
                softmax_pack_lanes::<true>(lanes_of, lanes, keys, tmax, out)
            } else {
                softmax_pack_lanes::<false>(lanes_of, lanes, keys, tmax, out)
            }
        };
    }
}

/// Lanes `(st, m, l, alpha)` of [`softmax_pack_lanes`].
type LaneStats = (*const f32, *mut f32, *mut f32, *mut f32);

/// The online softmax step of 16 query lanes over `keys` score rows (`ld`
/// floats apart at `st`) with the weights rounded to bytes as they are
/// computed. The lane's largest weight of the tile is known before any is
/// computed — `p_max = 2^(tile max − new max)`, by the same exponential as
/// the running statistics — so each weight's code `p · 255 / p_max` is
/// computed at once as `2^(s − tile max + log2 255)` ([`exp2_code`]),
/// rounded, saturated to a byte, and four keys are packed per word
/// (`p4[g · ld]`, key `4g + e` in byte `e`); `pscale` receives
/// `p_max / 255`. The denominator sums the codes before rounding, times
/// `p_max / 255` (the unrounded weights); `m`, `l` and `alpha` are updated
/// as by the float kernel. The tile's maxima come from `tile_max` when
/// given — `(maxima, factors)`: the scores and their maxima are then
/// without the lane's factor, which multiplies both — else from a pass
/// over it.
///
/// # Safety
/// AVX-512 F/BW CPU; `st` holds `keys` rows of at least 16 floats `ld`
/// apart, `m`, `l`, `alpha`, `pscale` and `tile_max` 16 floats each, `p4`
/// room for `ceil(keys / 4)` rows of 16 words `ld` apart.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn softmax_pack_lanes<const SHORT: bool>(
    (st, m, l, alpha): LaneStats,
    ld: usize,
    keys: usize,
    tile_max: Option<(*const f32, *const f32)>,
    (pscale, p4): (*mut f32, *mut u32),
) {
    use super::microkernel::exp2_avx512;
    // SAFETY: the caller's contract bounds every access below.
    unsafe {
        // Each score is `s · factor` (1 where the scores carry it).
        let factor = tile_max.map_or(_mm512_set1_ps(1.0), |(_, f)| _mm512_loadu_ps(f));
        let tmax = match tile_max {
            Some((t, _)) => _mm512_mul_ps(_mm512_loadu_ps(t), factor),
            None => {
                let mut t = _mm512_set1_ps(f32::NEG_INFINITY);
                for j in 0..keys {
                    t = _mm512_max_ps(t, _mm512_loadu_ps(st.add(j * ld)));
                }
                t
            }
        };
        let old = _mm512_loadu_ps(m);
        let mx = _mm512_max_ps(old, tmax);
        let safe = super::microkernel::safe_max_avx512(mx);
        _mm512_storeu_ps(alpha, exp2_avx512::<SHORT>(_mm512_sub_ps(old, safe)));
        let pmax = exp2_avx512::<SHORT>(_mm512_sub_ps(tmax, safe));
        let ps = _mm512_mul_ps(pmax, _mm512_set1_ps(1.0 / 255.0));
        _mm512_storeu_ps(pscale, ps);
        // Subtracted from the scores: `tile max − log2 255`, and +inf in
        // lanes whose tile is all masked (their codes are then 0).
        let unseen = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(tmax, _mm512_set1_ps(f32::NEG_INFINITY));
        let shift = _mm512_mask_blend_ps(
            unseen,
            _mm512_sub_ps(tmax, _mm512_set1_ps(255f32.log2())),
            _mm512_set1_ps(f32::INFINITY),
        );
        let (mut even, mut odd) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let full = keys / 4;
        for g in 0..full {
            let row = |e: usize| st.add((4 * g + e) * ld);
            let c0 = weight_code(row(0), (factor, shift), &mut even);
            let c1 = weight_code(row(1), (factor, shift), &mut odd);
            let c2 = weight_code(row(2), (factor, shift), &mut even);
            let c3 = weight_code(row(3), (factor, shift), &mut odd);
            _mm512_storeu_si512(p4.add(g * ld).cast(), pack_codes(c0, c1, c2, c3));
        }
        if full * 4 < keys {
            let mut c = [_mm512_setzero_si512(); 4];
            for (e, code) in c.iter_mut().enumerate().take(keys - 4 * full) {
                let sum = if e % 2 == 0 { &mut even } else { &mut odd };
                *code = weight_code(st.add((4 * full + e) * ld), (factor, shift), sum);
            }
            _mm512_storeu_si512(p4.add(full * ld).cast(), pack_codes(c[0], c[1], c[2], c[3]));
        }
        let a = _mm512_loadu_ps(alpha);
        let sum = _mm512_mul_ps(_mm512_add_ps(even, odd), ps);
        _mm512_storeu_ps(l, _mm512_fmadd_ps(_mm512_loadu_ps(l), a, sum));
        _mm512_storeu_ps(m, mx);
    }
}

/// The codes `2^(s · factor − shift)` of the 16 scores at `row` (`[0, 255]`
/// when `shift` is the tile maximum less `log2 255`), added to `sum`, and
/// rounded to i32 lanes. A function rather than a closure, so that it
/// inlines with the caller's target features.
///
/// # Safety
/// AVX-512 F CPU; `row` addresses 16 readable floats.
#[inline(always)]
unsafe fn weight_code(
    row: *const f32,
    (factor, shift): (__m512, __m512),
    sum: &mut __m512,
) -> __m512i {
    // SAFETY: the caller's contract.
    unsafe {
        let w = exp2_code(_mm512_fmsub_ps(_mm512_loadu_ps(row), factor, shift));
        *sum = _mm512_add_ps(*sum, w);
        _mm512_cvtps_epi32(w)
    }
}

/// Coefficients of `2^f` on `|f| ≤ 1/2`, constant term first: a cubic
/// fitted to the relative error (largest 7.5e-5 — a code moves by at most
/// 0.02 of its step, the denominator by 7.5e-5 of itself, both far below
/// what rounding the weights to bytes does).
const EXP2_CODE: [f32; 4] = [0.999_928_07, 0.693_261, 0.242_611_15, 0.055_171_623];

/// `2^x` lane-wise for a weight's code (`x ≤ 8`): `2^k · 2^f` with `k` the
/// nearest integer and [`EXP2_CODE`] for `2^f`; lanes below `-126`
/// (`-inf` included) give exactly 0, NaN stays NaN.
///
/// # Safety
/// AVX-512 F CPU.
#[inline(always)]
unsafe fn exp2_code(x: __m512) -> __m512 {
    // SAFETY: register-only AVX-512 F operations (the caller's CPU).
    unsafe {
        let k = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x);
        let f = _mm512_sub_ps(x, k);
        let [c0, c1, c2, c3] = EXP2_CODE;
        let mut p = _mm512_fmadd_ps(_mm512_set1_ps(c3), f, _mm512_set1_ps(c2));
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c1));
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c0));
        let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, _mm512_set1_ps(-126.0));
        _mm512_maskz_scalef_ps(keep, p, k)
    }
}

/// Byte `e` of lane `i`'s word = `c_e[i]`, each saturated to `[0, 255]`:
/// two unsigned packs put, per 128-bit lane, the four vectors' four codes
/// one after another; a byte shuffle gathers each lane's four.
///
/// # Safety
/// AVX-512 F/BW CPU.
#[inline(always)]
unsafe fn pack_codes(c0: __m512i, c1: __m512i, c2: __m512i, c3: __m512i) -> __m512i {
    // SAFETY: register-only AVX-512 F/BW operations (the caller's CPU).
    unsafe {
        let words = _mm512_packus_epi16(_mm512_packus_epi32(c0, c1), _mm512_packus_epi32(c2, c3));
        let gather = _mm512_broadcast_i32x4(_mm_setr_epi8(
            0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
        ));
        _mm512_shuffle_epi8(words, gather)
    }
}

/// `O^T = α·O^T + P·V` for the tile of keys from `j0` (a multiple of 4):
/// the packed weights of [`softmax_and_pack`] against the head's packed values.
///
/// # Safety
/// AVX512-VNNI CPU; [`prepare_values`] ran for this head and
/// [`softmax_and_pack`] for this tile of `keys` keys and `lanes` lanes; `s.ot`
/// holds `v_head_dim · lanes` floats and `s.alpha` `lanes`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn tile_values(s: &mut Scratch, lanes: usize, dv: usize, j0: usize, keys: usize) {
    debug_assert!(j0.is_multiple_of(4));
    let v8 = &s.v8;
    let groups = keys.div_ceil(4);
    let v4 = v8.v4[j0 / 4 * dv..].as_ptr();
    let ot = s.ot.as_mut_ptr();
    for rc in (0..lanes).step_by(NR) {
        for dv0 in (0..dv).step_by(MR) {
            // SAFETY: `groups` rows of P (lanes words) and of V (dv words)
            // from this tile; O^T rows dv0.., lanes rc..rc + NR.
            unsafe {
                values(
                    v8.p4.as_slice().as_ptr().add(rc),
                    lanes,
                    groups,
                    (v4.add(dv0), dv),
                    MR.min(dv - dv0),
                    (v8.pscale.as_ptr().add(rc), v8.vscale.as_ptr().add(dv0)),
                    s.alpha.as_ptr().add(rc),
                    ot.add(dv0 * lanes + rc),
                    lanes,
                )
            };
        }
    }
}

/// `O^T[m][lane] = α[lane]·O^T[m][lane] + s_p[lane]·s_v[m]·Σ_g P4[g][lane]·V4[g][m]`
/// for `nv` (`1..=MR`) features and `NR` lanes over `groups` 4-key groups.
///
/// # Safety
/// AVX512-VNNI CPU; `p4` addresses `groups` rows of `NR` words at stride
/// `ldp`, `v4` `groups` rows of `nv` words at stride `ldv`; `pscale`,
/// `alpha` `NR` floats, `vscale` `nv`; `ot` `nv` rows of `NR` floats at
/// stride `ldo`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn values(
    p4: *const u32,
    ldp: usize,
    groups: usize,
    (v4, ldv): (*const u32, usize),
    nv: usize,
    (pscale, vscale): (*const f32, *const f32),
    alpha: *const f32,
    ot: *mut f32,
    ldo: usize,
) {
    // SAFETY: as documented; features past `nv` repeat the last valid one
    // and are not stored.
    unsafe {
        let mut acc = [[_mm512_setzero_si512(); 2]; MR];
        let cols: [usize; MR] = std::array::from_fn(|m| m.min(nv - 1));
        for g in 0..groups {
            let p0 = _mm512_loadu_si512(p4.add(g * ldp).cast());
            let p1 = _mm512_loadu_si512(p4.add(g * ldp + 16).cast());
            let row = v4.add(g * ldv);
            for (&c, acc) in cols.iter().zip(acc.iter_mut()) {
                let vb = _mm512_set1_epi32(*row.add(c) as i32);
                acc[0] = _mm512_dpbusd_epi32(acc[0], p0, vb);
                acc[1] = _mm512_dpbusd_epi32(acc[1], p1, vb);
            }
        }
        let (a0, a1) = (_mm512_loadu_ps(alpha), _mm512_loadu_ps(alpha.add(16)));
        let (s0, s1) = (_mm512_loadu_ps(pscale), _mm512_loadu_ps(pscale.add(16)));
        for (m, acc) in acc.iter().enumerate().take(nv) {
            let sv = _mm512_set1_ps(*vscale.add(m));
            let o0 = _mm512_loadu_ps(ot.add(m * ldo));
            let o1 = _mm512_loadu_ps(ot.add(m * ldo + 16));
            let f0 = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[0]), _mm512_mul_ps(s0, sv));
            let f1 = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[1]), _mm512_mul_ps(s1, sv));
            _mm512_storeu_ps(ot.add(m * ldo), _mm512_fmadd_ps(o0, a0, f0));
            _mm512_storeu_ps(ot.add(m * ldo + 16), _mm512_fmadd_ps(o1, a1, f1));
        }
    }
}
