//! Activation rows quantized to 8-bit blocks of 32, the other operand of the
//! integer dot products.
//!
//! Each block of 32 values gets an f32 scale `d = max|x| / 127` and codes
//! `q = round(x / d)` in −127..=127 (so `|x − d·q| ≤ d/2`). Next to them the
//! kernels need the scaled sums `d·Σq` of each block and of each half-block of
//! 16 (for formats whose codes carry an offset or a min), stored as f32. A
//! block holding NaN or infinity gets a NaN scale, so it poisons the products
//! as it would in float arithmetic; a block too small for `1/d` to be finite
//! (max |x| below about 3.7e-37) is flushed to zero.

use super::send_ptr::SendPtr;
use crate::parallel;

/// `m` activation rows of `k` values (k a multiple of 32) as 8-bit blocks.
#[derive(Clone, Debug, Default)]
pub struct Q8Activations {
    /// Values per row.
    pub k: usize,
    /// Rows.
    pub m: usize,
    /// Codes, row-major `(m, k)`.
    pub qs: Vec<i8>,
    /// Per-block scales, row-major `(m, k / 32)`.
    pub d: Vec<f32>,
    /// `d · Σq` per block, row-major `(m, k / 32)`.
    pub sum32: Vec<f32>,
    /// `d · Σq` per half-block of 16, row-major `(m, k / 16)`.
    pub sum16: Vec<f32>,
}

impl Q8Activations {
    /// Quantizes `x` (`m` rows of `k` values, row-major; `k % 32 == 0`).
    ///
    /// # Panics
    /// If `k` is not a multiple of 32 or `x.len() != m * k`.
    pub fn quantize(x: &[f32], m: usize, k: usize) -> Q8Activations {
        let mut a = Q8Activations::default();
        a.requantize(x, m, k);
        a
    }

    /// As [`Q8Activations::quantize`], reusing this value's buffers.
    pub fn requantize(&mut self, x: &[f32], m: usize, k: usize) {
        assert!(
            k.is_multiple_of(32),
            "activation rows of {k} values are not whole 32-blocks"
        );
        assert_eq!(
            x.len(),
            m * k,
            "activations: {} values for {m} rows of {k}",
            x.len()
        );
        self.k = k;
        self.m = m;
        self.qs.resize(m * k, 0);
        self.d.resize(m * k / 32, 0.0);
        self.sum32.resize(m * k / 32, 0.0);
        self.sum16.resize(m * k / 16, 0.0);
        let blocks = m * k / 32;
        let ptrs = (
            SendPtr(self.qs.as_mut_ptr()),
            SendPtr(self.d.as_mut_ptr()),
            SendPtr(self.sum32.as_mut_ptr()),
            SendPtr(self.sum16.as_mut_ptr()),
        );
        parallel::for_each_range(blocks, 32 * 4, |b0, b1| {
            let n = b1 - b0;
            // SAFETY: each range writes its own disjoint blocks `b0..b1` of
            // the buffers sized above, which outlive the call.
            let out = unsafe {
                BlockOut {
                    qs: std::slice::from_raw_parts_mut(ptrs.0.get().add(b0 * 32), n * 32),
                    d: std::slice::from_raw_parts_mut(ptrs.1.get().add(b0), n),
                    sum32: std::slice::from_raw_parts_mut(ptrs.2.get().add(b0), n),
                    sum16: std::slice::from_raw_parts_mut(ptrs.3.get().add(b0 * 2), n * 2),
                }
            };
            let x = &x[b0 * 32..b1 * 32];
            #[cfg(target_arch = "x86_64")]
            if crate::simd::isa() == crate::simd::Isa::Avx512 {
                // SAFETY: the CPU has AVX-512 F and BW.
                return unsafe { quantize_blocks_avx512(x, out) };
            }
            quantize_blocks(x, out);
        });
    }

    /// Codes of row `i`.
    pub fn row_qs(&self, i: usize) -> &[i8] {
        &self.qs[i * self.k..(i + 1) * self.k]
    }
}

/// Output slices of a run of blocks.
struct BlockOut<'a> {
    qs: &'a mut [i8],
    d: &'a mut [f32],
    sum32: &'a mut [f32],
    sum16: &'a mut [f32],
}

/// One 32-block: its inputs, codes and outputs.
struct Block<'a> {
    x: &'a [f32],
    q: &'a mut [i8],
    d: &'a mut f32,
    sum32: &'a mut f32,
    sum16: &'a mut [f32],
}

impl<'a> BlockOut<'a> {
    /// The whole 32-blocks of `x` with their outputs.
    fn blocks(self, x: &'a [f32]) -> impl Iterator<Item = Block<'a>> {
        x.chunks_exact(32)
            .zip(self.qs.chunks_exact_mut(32))
            .zip(self.d.iter_mut().zip(self.sum32.iter_mut()))
            .zip(self.sum16.chunks_exact_mut(2))
            .map(|(((x, q), (d, sum32)), sum16)| Block {
                x,
                q,
                d,
                sum32,
                sum16,
            })
    }
}

impl Block<'_> {
    /// Stores the block's step and its code sums (each half and the whole)
    /// times the step; a NaN step makes every output NaN.
    #[inline(always)]
    fn finish(self, scale: f32, sums: [i32; 2]) {
        *self.d = scale;
        self.sum16[0] = scale * sums[0] as f32;
        self.sum16[1] = scale * sums[1] as f32;
        *self.sum32 = scale * (sums[0] + sums[1]) as f32;
    }
}

/// The block step and its inverse for the step `max|x| / 127`: a step whose
/// inverse overflows (max |x| below about 3.7e-37) flushes the block to zero
/// (step 0), since `x · inf` would make every code ±127; NaN stays NaN.
#[inline(always)]
fn step(scale: f32) -> (f32, f32) {
    if scale.is_nan() || scale <= 0.0 {
        return (scale, 0.0);
    }
    let inv = 1.0 / scale;
    if inv.is_infinite() {
        (0.0, 0.0)
    } else {
        (scale, inv)
    }
}

/// [`quantize_blocks`] in AVX-512 registers, bit for bit: two vectors per
/// block, rounding half away from zero by truncation and a comparison (the
/// portable loop's `round` is a libm call per value, and LLVM does not
/// vectorise its saturating `as i8`).
///
/// # Safety
/// The CPU supports AVX-512 F and BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_blocks_avx512(x: &[f32], out: BlockOut<'_>) {
    use std::arch::x86_64::*;
    let half = _mm512_set1_ps(0.5);
    let one = _mm512_set1_ps(1.0);
    let sign = _mm512_set1_epi32(i32::MIN);
    for b in out.blocks(x) {
        let (x, q) = (b.x, &mut *b.q);
        // SAFETY: `x` holds 32 readable f32s and `q` 32 writable bytes.
        unsafe {
            let v = [
                _mm512_loadu_ps(x.as_ptr()),
                _mm512_loadu_ps(x.as_ptr().add(16)),
            ];
            let a = [_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])];
            // Not `|v| <= MAX`: NaN or infinite.
            let bad = _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(a[0], _mm512_set1_ps(f32::MAX))
                | _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(a[1], _mm512_set1_ps(f32::MAX));
            if bad != 0 {
                q.fill(0);
                b.finish(f32::NAN, [0, 0]);
                continue;
            }
            let (scale, inv) = step(_mm512_reduce_max_ps(_mm512_max_ps(a[0], a[1])) / 127.0);
            let inv = _mm512_set1_ps(inv);
            let mut sums = [0i32; 2];
            for h in 0..2 {
                let y = _mm512_mul_ps(v[h], inv);
                let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
                let frac = _mm512_abs_ps(_mm512_sub_ps(y, t));
                let away = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(frac, half);
                // ±1 with y's sign, added where the fraction is at least 1/2.
                let step = _mm512_or_ps(one, _mm512_and_ps(y, _mm512_castsi512_ps(sign)));
                let r = _mm512_mask_add_ps(t, away, t, step);
                let r = _mm512_min_ps(
                    _mm512_max_ps(r, _mm512_set1_ps(-127.0)),
                    _mm512_set1_ps(127.0),
                );
                let c = _mm512_cvttps_epi32(r);
                _mm_storeu_si128(q.as_mut_ptr().add(16 * h).cast(), _mm512_cvtepi32_epi8(c));
                sums[h] = _mm512_reduce_add_epi32(c);
            }
            b.finish(scale, sums);
        }
    }
}

crate::simd_dispatch! {
    /// Quantizes whole 32-blocks of `x` into codes, scales and sums.
    fn quantize_blocks(x: &[f32], out: BlockOut<'_>) {
        for b in out.blocks(x) {
            let (x, q) = (b.x, &mut *b.q);
            let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
            let finite = x.iter().all(|v| v.is_finite());
            let (scale, inv) = step(if finite { amax / 127.0 } else { f32::NAN });
            let mut sums = [0i32; 2];
            for (h, (x, q)) in x.chunks_exact(16).zip(q.chunks_exact_mut(16)).enumerate() {
                for (q, &v) in q.iter_mut().zip(x) {
                    // |v · inv| <= 127 up to rounding; `as` maps NaN to 0.
                    let c = (v * inv).round().clamp(-127.0, 127.0) as i8;
                    *q = c;
                    sums[h] += c as i32;
                }
            }
            b.finish(scale, sums);
        }
    }
}
