//! The scores `q·k` of the bf16-product loop ([`super::bf16_products`]) on
//! int8 dot products (`vpdpbusd`, AVX512-VNNI: 64 multiply-adds per
//! instruction, twice `vdpbf16ps`), for bf16 calls that allow it
//! ([`super::SdpaParams::int8_scores`]).
//!
//! The recipe (as SageAttention's): the keys of a kv head are centred on
//! their mean over all keys — a row's scores all move by `q·mean`, which the
//! softmax cancels — then each key is quantized to int8 codes with its own
//! scale (`max|k - mean| / 127`) and each query row with its own
//! (`max|q| / 127`), rounded to nearest. `vpdpbusd` multiplies unsigned by
//! signed bytes, so the query codes are stored offset by 128 and each key's
//! `128 · Σ codes` starts its accumulator negated; the i32 sum is exact and
//! the score is `sum · s_q · s_k · scale`. Feature counts that are not a
//! multiple of 4 are padded with zero codes.
//!
//! Error: with `e_q ≤ s_q / 2`, `e_k ≤ s_k / 2` per feature, a score moves
//! by at most `scale · (Σ|q| · s_k + Σ|k - mean| · s_q + d · s_q · s_k / 2) / 2`
//! (relative about `2⁻⁸` of `|q|·|k - mean|`), which moves each softmax
//! weight by a factor within `e^{±2δ}` for a row-wide bound `δ`.
//!
//! The centred, quantized keys of the kv head last used are kept in the
//! worker's scratch, so the blocks of one head quantize them once per worker.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use half::bf16;

use super::block::{Ctx, Scratch};
use super::microkernel::padded_rows;
use super::plan::Block;
use super::tile_products::{ScoreOperands, KEY_PAD};
use crate::gemm::{Engine, Precision, Words};

/// Query lanes per register tile (as the bf16 loop: two 16-lane vectors).
const NR: usize = 32;
/// Keys per register tile.
const MR: usize = 8;
/// The query code offset that makes signed codes unsigned bytes.
const OFFSET: i32 = 128;

/// Whether this CPU runs int8 scores: the bf16-product loop runs and the
/// int8 GEMM engine is AVX-512 (VNNI) or AMX (so `EMILY_ISA=avx2` turns it
/// off with the bf16 loop).
pub(super) fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        super::bf16_products::available()
            && Engine::Avx512.runs_here(Precision::Int8)
            && matches!(Engine::best(Precision::Int8), Engine::Avx512 | Engine::Amx)
    })
}

/// Whether `ctx` asks for int8 scores and this CPU has them.
pub(super) fn wanted(ctx: &Ctx<'_, '_>) -> bool {
    ctx.p.int8_scores && available()
}

/// Per-worker buffers of the int8 scores.
#[derive(Default)]
pub(super) struct Int8Scratch {
    /// `(call, batch, kv head)` whose keys `codes` hold (`None`: none yet).
    head: Option<(u64, usize, usize)>,
    /// Bytes per key row of `codes`: the head dim rounded up to 4.
    width: usize,
    /// Centred key codes, `kv_len` rows of `width` bytes (as words: on
    /// cache lines, which the tile unit's row loads want).
    codes: Words,
    /// Per key: its scale, and `128 ·` the sum of its codes.
    kscale: Vec<f32>,
    kcorr: Vec<i32>,
    /// The head's mean key and one widened key or query row.
    mean: Vec<f32>,
    row: Vec<f32>,
    /// One query row's codes, padded with zeros to `width`.
    qcodes: Vec<i8>,
    /// Q^T as 4-byte groups of query codes ([`QueryCodes`]; `width / 4`
    /// rows of `lanes` words) and each lane's `s_q · scale · log2(e)`.
    qt4: Words,
    qscale: Vec<f32>,
}

impl Int8Scratch {
    /// Bytes per key row of the codes (the head dim rounded up to 4).
    pub(super) fn width(&self) -> usize {
        self.width
    }

    /// Each query lane's score factor `s_q · scale · log2(e)` (0 for padded
    /// lanes), as [`pack_queries`] left it.
    pub(super) fn qscale(&self) -> &[f32] {
        &self.qscale
    }

    /// The key codes, row-major.
    fn codes(&self) -> &[i8] {
        bytemuck::cast_slice(self.codes.as_slice())
    }

    /// The operands of the tile-unit score product for keys `j0 .. j0 +
    /// keys` (see [`super::tile_products::scores`]) after [`prepare_keys`]
    /// and [`pack_queries`] ran with `lanes` lanes.
    pub(super) fn score_operands(&self, lanes: usize, j0: usize, keys: usize) -> ScoreOperands {
        debug_assert!(self.codes().len() >= (j0 + keys.next_multiple_of(KEY_PAD)) * self.width);
        ScoreOperands {
            qt4: self.qt4.as_slice().as_ptr(),
            lanes,
            codes: self.codes()[j0 * self.width..].as_ptr(),
            width: self.width,
            keys,
            kscale: self.kscale[j0..].as_ptr(),
            qscale: self.qscale.as_ptr(),
        }
    }
}

/// Quantizes the keys of kv head `(b, hk)` into `s` unless they are there
/// already (the cache lives as long as the scratch: one call).
///
/// # Safety
/// AVX-512 F/BW CPU; `ctx` passed `SdpaParams::validate` and `k` is its keys.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn prepare_keys(
    ctx: &Ctx<'_, '_>,
    k: &[bf16],
    b: usize,
    hk: usize,
    s: &mut Int8Scratch,
) {
    if s.head == Some((ctx.call, b, hk)) {
        return;
    }
    let p = ctx.p;
    let (d, n, ks) = (p.head_dim, p.kv_len, p.k_strides);
    let width = d.next_multiple_of(4);
    let key = |j: usize| &k[ks.offset(b, hk, j)..][..d];
    s.mean.clear();
    s.mean.resize(d, 0.0);
    s.row.resize(d, 0.0);
    for j in 0..n {
        crate::cast::bf16_to_f32(key(j), &mut s.row);
        for (m, x) in s.mean.iter_mut().zip(&s.row) {
            *m += x;
        }
    }
    let inv_n = 1.0 / n.max(1) as f32;
    s.mean.iter_mut().for_each(|m| *m *= inv_n);
    s.width = width;
    // Zero rows past the last key: the tile unit reads whole 32-key blocks.
    s.codes.resize(0);
    s.codes.resize((n + KEY_PAD) * width / 4);
    s.kscale.clear();
    s.kcorr.clear();
    let codes = bytemuck::cast_slice_mut::<u32, i8>(s.codes.as_mut_slice());
    for j in 0..n {
        crate::cast::bf16_to_f32(key(j), &mut s.row);
        for (x, m) in s.row.iter_mut().zip(&s.mean) {
            *x -= m;
        }
        // SAFETY: AVX-512 F/BW present, as documented.
        let (scale, sum) = unsafe { quantize_row(&s.row, &mut codes[j * width..][..d]) };
        s.kscale.push(scale);
        s.kcorr.push(OFFSET * sum);
    }
    s.head = Some((ctx.call, b, hk));
}

/// Rounds `x / s` to int8 codes in `out` (nearest, ties to even) with
/// `s = max|x| / 127` (0 for an all-zero row, whose codes are 0; NaN for a
/// row with a non-finite value, so its scores are NaN as the f32 loop's
/// would be non-finite); returns `s` and the codes' sum.
///
/// # Safety
/// AVX-512 F/BW CPU; `out` is as long as `x`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn quantize_row(x: &[f32], out: &mut [i8]) -> (f32, i32) {
    let n = x.len();
    let mask = |i: usize| -> __mmask16 { (((1u32 << (n - i).min(16)) - 1) & 0xFFFF) as u16 };
    // SAFETY: masked loads and stores stay inside `x` and `out`.
    unsafe {
        let (mut amax, mut bad) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        for i in (0..n).step_by(16) {
            let v = _mm512_maskz_loadu_ps(mask(i), x.as_ptr().add(i));
            amax = _mm512_max_ps(amax, _mm512_abs_ps(v));
            // 0 for finite values, NaN for infinities and NaN.
            bad = _mm512_add_ps(bad, _mm512_sub_ps(v, v));
        }
        let amax = _mm512_reduce_max_ps(amax);
        if _mm512_reduce_add_ps(bad).is_nan() {
            out.fill(0);
            return (f32::NAN, 0);
        }
        if amax == 0.0 {
            out.fill(0);
            return (0.0, 0);
        }
        let inv = _mm512_set1_ps(127.0 / amax);
        let mut sum = _mm512_setzero_si512();
        for i in (0..n).step_by(16) {
            let m = mask(i);
            let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
            // |v · inv| ≤ 127 up to rounding: the codes stay in [-127, 127].
            let c = _mm512_cvtps_epi32(_mm512_mul_ps(v, inv));
            sum = _mm512_add_epi32(sum, c);
            _mm512_mask_cvtepi32_storeu_epi8(out.as_mut_ptr().add(i).cast(), m, c);
        }
        (amax / 127.0, _mm512_reduce_add_epi32(sum))
    }
}

/// How the query codes are stored for the product that reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum QueryCodes {
    /// Plus 128, as unsigned bytes (`vpdpbusd` here: each key's
    /// `128 · Σ codes` is subtracted).
    Offset,
    /// As they are (`tdpbssd` on the tile unit takes both operands signed).
    Signed,
}

/// Packs the block's query rows as int8 codes stored as `codes_as` says,
/// transposed in 4-byte groups (`qt4[i][lane]` = codes `4i..4i + 4` of row
/// `lane`), and each lane's score factor `s_q · qscale`; padded lanes get
/// code 0 and factor 0.
///
/// # Safety
/// AVX-512 F/BW CPU; `ctx` passed `SdpaParams::validate`, `q` is its
/// queries, and [`prepare_keys`] ran on `s`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn pack_queries(
    ctx: &Ctx<'_, '_>,
    blk: &Block,
    q: &[bf16],
    lanes: usize,
    qscale: f32,
    codes_as: QueryCodes,
    s: &mut Int8Scratch,
) {
    let p = ctx.p;
    let d = p.head_dim;
    let groups = s.width / 4;
    // Adding 128 to each byte flips its top bit.
    let flip = match codes_as {
        QueryCodes::Offset => 0x8080_8080u32,
        QueryCodes::Signed => 0,
    };
    s.qt4.resize(groups * lanes);
    s.qt4.as_mut_slice().fill(flip);
    s.qscale.clear();
    s.qscale.resize(lanes, 0.0);
    s.row.resize(d, 0.0);
    let mut codes = std::mem::take(&mut s.qcodes);
    codes.clear();
    codes.resize(s.width, 0);
    for r in 0..blk.rows() {
        let (g, t) = blk.row(r);
        let start = p.q_strides.offset(blk.b, blk.hk * ctx.plan.group + g, t);
        crate::cast::bf16_to_f32(&q[start..start + d], &mut s.row);
        // SAFETY: AVX-512 F/BW present, as documented.
        let (scale, _) = unsafe { quantize_row(&s.row, &mut codes[..d]) };
        s.qscale[r] = scale * qscale;
        for (i, c) in codes.chunks_exact(4).enumerate() {
            let word = u32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8]);
            s.qt4.as_mut_slice()[i * lanes + r] = word ^ flip;
        }
    }
    s.qcodes = codes;
}

/// The score tile of keys `j0 .. j0 + keys` (lanes layout, `keys` rows of
/// `lanes` floats in `s.st`) from the packed queries and the head's keys.
///
/// # Safety
/// AVX512-VNNI CPU ([`available`]); [`prepare_keys`] and [`pack_queries`]
/// ran for this block with `lanes` (a multiple of 32) lanes; `s.st` holds
/// `keys · lanes` floats and `j0 + keys ≤ kv_len`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn tile_scores(s: &mut Scratch, lanes: usize, j0: usize, keys: usize) {
    let i8s = &s.i8;
    let (width, groups) = (i8s.width, i8s.width / 4);
    let st = s.st.as_mut_ptr();
    for rc in (0..lanes).step_by(NR) {
        for kg in (0..keys).step_by(MR) {
            let j = j0 + kg;
            // SAFETY: keys j.. of the head (kv_len rows), score rows kg..,
            // lanes rc..rc + NR, as documented.
            unsafe {
                scores(
                    i8s.qt4.as_slice().as_ptr().add(rc),
                    lanes,
                    i8s.codes().as_ptr().add(j * width),
                    width,
                    MR.min(keys - kg),
                    groups,
                    (i8s.kcorr.as_ptr().add(j), i8s.kscale.as_ptr().add(j)),
                    i8s.qscale.as_ptr().add(rc),
                    st.add(kg * lanes + rc),
                    lanes,
                )
            };
        }
    }
}

/// `S^T[m][lane] = s_q[lane] · s_k[m] · (Σ_i Q^T[i][lane] · K[m][i] - corr[m])`
/// for `nk` (`1..=MR`) keys and `NR` lanes, over `groups` 4-byte groups.
///
/// # Safety
/// AVX512-VNNI CPU; `qt4` addresses `groups` rows of `NR` words at stride
/// `ldq`; `k` `nk` rows of `4 · groups` bytes at stride `ldk`; `corr`,
/// `kscale` `nk` entries; `qscale` `NR` floats; `st` `nk` writable rows of
/// `NR` floats at stride `ldst`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn scores(
    qt4: *const u32,
    ldq: usize,
    k: *const i8,
    ldk: usize,
    nk: usize,
    groups: usize,
    (corr, kscale): (*const i32, *const f32),
    qscale: *const f32,
    st: *mut f32,
    ldst: usize,
) {
    // SAFETY: rows past `nk` repeat the last valid key and are not stored.
    unsafe {
        let rows = padded_rows::<_, MR>(k, nk, ldk).map(<*const _>::cast::<i32>);
        let mut acc: [[__m512i; 2]; MR] = std::array::from_fn(|m| {
            let c = _mm512_set1_epi32(-*corr.add(m.min(nk - 1)));
            [c, c]
        });
        for i in 0..groups {
            let q0 = _mm512_loadu_si512(qt4.add(i * ldq).cast());
            let q1 = _mm512_loadu_si512(qt4.add(i * ldq + 16).cast());
            for (row, acc) in rows.iter().zip(acc.iter_mut()) {
                let kb = _mm512_set1_epi32(row.add(i).read_unaligned());
                acc[0] = _mm512_dpbusd_epi32(acc[0], q0, kb);
                acc[1] = _mm512_dpbusd_epi32(acc[1], q1, kb);
            }
        }
        let (s0, s1) = (_mm512_loadu_ps(qscale), _mm512_loadu_ps(qscale.add(16)));
        for (m, acc) in acc.iter().enumerate().take(nk) {
            let sk = _mm512_set1_ps(*kscale.add(m));
            let f0 = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[0]), _mm512_mul_ps(s0, sk));
            let f1 = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[1]), _mm512_mul_ps(s1, sk));
            _mm512_storeu_ps(st.add(m * ldst), f0);
            _mm512_storeu_ps(st.add(m * ldst + 16), f1);
        }
    }
}
