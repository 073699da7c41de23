//! Conversions into the engines' operand types: f32 → bf16 rounding, per-row
//! asymmetric u8 quantization of activations and per-column symmetric s8
//! quantization of weights.

use super::MatRef;

/// `x` rounded to bf16 (round to nearest, ties to even; NaN stays NaN), as bits.
#[inline(always)]
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// The scale and zero point of one quantized row: `x ≈ scale · (q − zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowQuant {
    /// Step between quantization levels.
    pub scale: f32,
    /// The level that represents 0.0 (0..=255).
    pub zero_point: i32,
}

/// Quantizes `x` to u8 with its own range (min and max, widened to include
/// 0 so that zero is exact); writes `out[j]` for every `x[j]`.
///
/// # Panics
/// If `out.len() != x.len()`.
pub fn quantize_row_u8(x: &[f32], out: &mut [u8]) -> RowQuant {
    assert_eq!(x.len(), out.len(), "quantize_row_u8: lengths differ");
    let (lo, hi) = row_range(x);
    let range = hi - lo;
    if range == 0.0 || !range.is_finite() {
        // All zeros (or a non-finite value: the NaN propagates through the scale).
        let scale = if range == 0.0 { 1.0 } else { f32::NAN };
        out.fill(0);
        return RowQuant {
            scale,
            zero_point: 0,
        };
    }
    let scale = range / 255.0;
    let inv = 1.0 / scale;
    let zero_point = (-lo * inv).round().clamp(0.0, 255.0) as i32;
    quantize_levels(x, inv, zero_point as f32, out);
    RowQuant { scale, zero_point }
}

/// Lanes of the vectorised range pass.
const LANES: usize = 16;

/// `(min(0, x…), max(0, x…))`; NaNs are skipped (as `f32::min`/`max` do).
fn row_range(x: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::isa() == crate::simd::Isa::Avx512 {
        // SAFETY: the CPU has AVX-512 F.
        return unsafe { row_range_avx512(x) };
    }
    #[cfg(target_arch = "x86_64")]
    if crate::simd::isa() == crate::simd::Isa::Avx2 {
        // SAFETY: the CPU has AVX2.
        return unsafe { row_range_avx2(x) };
    }
    row_range_lanes(x)
}

/// Independent accumulator pairs of the vector range passes: with one pair
/// per 16 values the AVX-512 loop ran at the latency of `vminps` (4 cycles
/// per 16 values), which was the whole pass, from memory or cache (Whisper
/// tiny.en int8 encoder on the Xeon with AMX, 2 threads, interleaved rounds
/// of 21 passes: 42.6–44.0 → 41.3–42.0 ms in a slow spell of the host,
/// median 38.4 → 37.6 ms in a fast one; base unchanged within the noise).
const RANGE_WAYS: usize = 4;

/// [`row_range`] with 8-lane `vminps`/`vmaxps` over [`RANGE_WAYS`] pairs of
/// accumulators (the portable loop compiled for AVX2 spent ~1.3 % of the
/// tiny.en int8 encoder here).
///
/// # Safety
/// The CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_range_avx2(x: &[f32]) -> (f32, f32) {
    use std::arch::x86_64::*;
    let z = _mm256_setzero_ps();
    let (mut lo, mut hi) = ([z; RANGE_WAYS], [z; RANGE_WAYS]);
    let mut chunks = x.chunks_exact(8 * RANGE_WAYS);
    for c in &mut chunks {
        for w in 0..RANGE_WAYS {
            // SAFETY: `c` holds 8 · RANGE_WAYS readable f32s.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * w)) };
            // `vminps a, b` returns b when either is NaN: a NaN in `v` is skipped.
            lo[w] = _mm256_min_ps(v, lo[w]);
            hi[w] = _mm256_max_ps(v, hi[w]);
        }
    }
    let (mut lo_all, mut hi_all) = (lo[0], hi[0]);
    for w in 1..RANGE_WAYS {
        lo_all = _mm256_min_ps(lo_all, lo[w]);
        hi_all = _mm256_max_ps(hi_all, hi[w]);
    }
    let (mut l, mut u) = ([0f32; 8], [0f32; 8]);
    // SAFETY: 8 writable f32s each.
    unsafe {
        _mm256_storeu_ps(l.as_mut_ptr(), lo_all);
        _mm256_storeu_ps(u.as_mut_ptr(), hi_all);
    }
    finish_range(&l, &u, chunks.remainder())
}

/// [`row_range`] with one `vminps`/`vmaxps` per 16 values (LLVM turns the
/// portable loop's NaN rule into lane shuffles and mask moves), over
/// [`RANGE_WAYS`] pairs of accumulators.
///
/// # Safety
/// The CPU supports AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn row_range_avx512(x: &[f32]) -> (f32, f32) {
    use std::arch::x86_64::*;
    let z = _mm512_setzero_ps();
    let (mut lo, mut hi) = ([z; RANGE_WAYS], [z; RANGE_WAYS]);
    let mut blocks = x.chunks_exact(RANGE_WAYS * LANES);
    for b in &mut blocks {
        for w in 0..RANGE_WAYS {
            // SAFETY: `b` holds RANGE_WAYS · 16 readable f32s.
            let v = unsafe { _mm512_loadu_ps(b.as_ptr().add(w * LANES)) };
            // `vminps a, b` returns b when either is NaN: a NaN in `v` is skipped.
            lo[w] = _mm512_min_ps(v, lo[w]);
            hi[w] = _mm512_max_ps(v, hi[w]);
        }
    }
    let mut chunks = blocks.remainder().chunks_exact(LANES);
    for c in &mut chunks {
        // SAFETY: `c` holds 16 readable f32s.
        let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
        lo[0] = _mm512_min_ps(v, lo[0]);
        hi[0] = _mm512_max_ps(v, hi[0]);
    }
    let (mut lo_all, mut hi_all) = (lo[0], hi[0]);
    for w in 1..RANGE_WAYS {
        lo_all = _mm512_min_ps(lo_all, lo[w]);
        hi_all = _mm512_max_ps(hi_all, hi[w]);
    }
    let (lo, hi) = (_mm512_reduce_min_ps(lo_all), _mm512_reduce_max_ps(hi_all));
    finish_range(&[lo], &[hi], chunks.remainder())
}

/// [`row_range`] in portable code.
fn row_range_lanes(x: &[f32]) -> (f32, f32) {
    let (mut lo, mut hi) = ([0f32; LANES], [0f32; LANES]);
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            lo[l] = lo[l].min(c[l]);
            hi[l] = hi[l].max(c[l]);
        }
    }
    finish_range(&lo, &hi, chunks.remainder())
}

/// The range passes' last step: `(min(0, lows…, tail…), max(0, highs…,
/// tail…))` (NaNs skipped, as `f32::min`/`max` do).
fn finish_range(lows: &[f32], highs: &[f32], tail: &[f32]) -> (f32, f32) {
    let lo = lows.iter().chain(tail).fold(0f32, |a, &b| a.min(b));
    let hi = highs.iter().chain(tail).fold(0f32, |a, &b| a.max(b));
    (lo, hi)
}

crate::simd_dispatch! {
    /// `out[j] = clamp(round(x[j] · inv + zp), 0, 255)` (NaN → 0).
    fn quantize_levels(x: &[f32], inv: f32, zp: f32, out: &mut [u8]) {
        for (q, &v) in out.iter_mut().zip(x) {
            // `max` maps NaN to 0 (what `NaN as u8` gives), so `r` is a whole
            // number in 0..=255 and converts without Rust's saturating cast,
            // which LLVM would not vectorise.
            #[allow(clippy::manual_clamp)] // `clamp` keeps NaN.
            let r = (v * inv + zp).round().max(0.0).min(255.0);
            // SAFETY: `r` is finite and within i32's range.
            *q = unsafe { r.to_int_unchecked::<i32>() } as u8;
        }
    }
}

/// Quantizes each column of `w` (a `k × n` view) to s8 with its own scale
/// `max|w| / 127`; returns the `k × n` row-major values and the `n` scales
/// (0.0 for an all-zero column). Weights stored `n × k` are packed without
/// this `k × n` copy by [`super::PackedInt8::quantize`], which codes them in
/// their own layout with the same rule (`quantize_s8_slice`).
pub fn quantize_columns_s8(w: MatRef<'_, f32>) -> (Vec<i8>, Vec<f32>) {
    let (k, n) = (w.rows(), w.cols());
    let mut scales = vec![0f32; n];
    for i in 0..k {
        for (j, s) in scales.iter_mut().enumerate() {
            *s = s.max(w.get(i, j).abs());
        }
    }
    let inv: Vec<f32> = scales
        .iter_mut()
        .map(|s| {
            *s /= 127.0;
            inverse_step(*s)
        })
        .collect();
    let mut q = vec![0i8; k * n];
    for (i, row) in q.chunks_exact_mut(n.max(1)).take(k).enumerate() {
        match w.row_slice(i) {
            Some(values) => s8_codes(values, &inv, row),
            None => {
                for (j, (q, &inv)) in row.iter_mut().zip(&inv).enumerate() {
                    *q = s8_code(w.get(i, j), inv);
                }
            }
        }
    }
    (q, scales)
}

crate::simd_dispatch! {
    /// One contiguous column: its codes at scale `max|x| / 127` into
    /// `codes`; returns that scale.
    pub(crate) fn quantize_s8_slice(x: &[f32], codes: &mut [i8]) -> f32 {
        let amax = x.iter().fold(0f32, |m, &v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inv = inverse_step(scale);
        for (q, &v) in codes.iter_mut().zip(x) {
            *q = s8_code(v, inv);
        }
        scale
    }
}

crate::simd_dispatch! {
    /// One row of values with one inverse scale per column.
    fn s8_codes(x: &[f32], inv: &[f32], codes: &mut [i8]) {
        for ((q, &v), &s) in codes.iter_mut().zip(x).zip(inv) {
            *q = s8_code(v, s);
        }
    }
}

/// `1 / step`, or 0 for an all-zero column (step 0: every code 0).
#[inline(always)]
fn inverse_step(step: f32) -> f32 {
    if step > 0.0 {
        1.0 / step
    } else {
        0.0
    }
}

/// `round(x · inv)` (half away from zero, as `f32::round`) clamped to ±127;
/// NaN gives 0. Written with `trunc` so that it vectorises (`round` is a
/// libm call): `x · inv − trunc(x · inv)` is exact below 2²³.
#[inline(always)]
fn s8_code(x: f32, inv: f32) -> i8 {
    let y = x * inv;
    let t = y.trunc();
    let r = if (y - t).abs() >= 0.5 {
        t + 1f32.copysign(y)
    } else {
        t
    };
    // Past ±2²³ `y` is a whole number already (`t == y`); ±inf stays ±inf.
    // NaN → 0 as `as i8` gives, by a select: the saturating cast itself does
    // not vectorise.
    let r = if r.is_nan() {
        0.0
    } else {
        r.clamp(-127.0, 127.0)
    };
    // SAFETY: `r` is a whole number in -127..=127.
    unsafe { r.to_int_unchecked::<i32>() as i8 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar definition of the per-column s8 quantization.
    fn reference_columns(w: MatRef<'_, f32>) -> (Vec<i8>, Vec<f32>) {
        let (k, n) = (w.rows(), w.cols());
        let scales: Vec<f32> = (0..n)
            .map(|j| (0..k).fold(0f32, |m, i| m.max(w.get(i, j).abs())) / 127.0)
            .collect();
        let mut q = vec![0i8; k * n];
        for i in 0..k {
            for (j, &s) in scales.iter().enumerate() {
                let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
                q[i * n + j] = (w.get(i, j) * inv).round().clamp(-127.0, 127.0) as i8;
            }
        }
        (q, scales)
    }

    #[test]
    fn s8_codes_round_half_away_from_zero_like_f32_round() {
        let mut x = 0x9e37_79b9u32;
        let mut values: Vec<f32> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32 - 0.5) * 300.0
            })
            .collect();
        // Ties and their neighbours, both signs, NaN and infinities.
        for t in -130..130 {
            let h = t as f32 + 0.5;
            values.extend([h, h.next_up(), h.next_down(), -h, (t as f32).next_down()]);
        }
        values.extend([
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e30,
            -1e30,
        ]);
        for &v in &values {
            let want = v.round().clamp(-127.0, 127.0) as i8;
            assert_eq!(s8_code(v, 1.0), want, "{v:e}");
        }
    }

    #[test]
    fn column_quantization_matches_the_scalar_definition_for_both_layouts() {
        let mut x = 0x1234_5679u32;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for (k, n) in [(1, 1), (7, 3), (77, 65), (384, 130), (1000, 7), (5, 200)] {
            let mut w: Vec<f32> = (0..k * n)
                .map(|_| (next() as f32 / u32::MAX as f32 - 0.5) * 0.2)
                .collect();
            // An all-zero column (scale 0) and exact ties at the scale.
            if n > 2 {
                for i in 0..k {
                    w[i + k] = 0.0;
                }
                w[2 * k] = 127.0;
                if k > 1 {
                    w[2 * k + 1] = 2.5;
                }
            }
            for view in [MatRef::transposed(&w, k, n), MatRef::row_major(&w, k, n)] {
                let (q, s) = quantize_columns_s8(view);
                let (rq, rs) = reference_columns(view);
                assert_eq!(s, rs, "{k}x{n} scales");
                assert_eq!(q, rq, "{k}x{n} codes");
            }
        }
    }

    #[test]
    fn bf16_rounding_matches_half() {
        let mut x = 0x1234_5679u32;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let f = f32::from_bits(x);
            let ours = bf16_bits(f);
            let theirs = half::bf16::from_f32(f).to_bits();
            if f.is_nan() {
                assert!(half::bf16::from_bits(ours).is_nan());
            } else {
                assert_eq!(ours, theirs, "{f:e}");
            }
        }
    }

    /// The scalar definition the vectorised passes must reproduce bit for bit.
    fn reference_row(x: &[f32]) -> (Vec<u8>, RowQuant) {
        let (lo, hi) = x
            .iter()
            .fold((0f32, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
        let scale = (hi - lo) / 255.0;
        let inv = 1.0 / scale;
        let zp = (-lo * inv).round().clamp(0.0, 255.0) as i32;
        let q = x
            .iter()
            .map(|&v| (v * inv + zp as f32).round().clamp(0.0, 255.0) as u8)
            .collect();
        (
            q,
            RowQuant {
                scale,
                zero_point: zp,
            },
        )
    }

    #[test]
    fn row_quantization_matches_the_scalar_definition() {
        let mut s = 0x9e37_79b9u32;
        for len in [1usize, 7, 16, 17, 31, 64, 65, 77, 130, 1000, 1536] {
            for offset in [-3.0f32, 0.0, 2.5] {
                let x: Vec<f32> = (0..len)
                    .map(|_| {
                        s ^= s << 13;
                        s ^= s >> 17;
                        s ^= s << 5;
                        (s as f32 / u32::MAX as f32 - 0.5) * 7.0 + offset
                    })
                    .collect();
                let mut x = x;
                if len >= 7 {
                    // A NaN is skipped by the range and becomes level 0
                    // (in the vector blocks and in the tail).
                    x[len / 2] = f32::NAN;
                    x[len - 1] = f32::NAN;
                }
                let mut q = vec![0u8; len];
                let rq = quantize_row_u8(&x, &mut q);
                let (want_q, want) = reference_row(&x);
                // Every range pass (the dispatched one ran above).
                let lo = x.iter().fold(0f32, |l, &v| l.min(v));
                let hi = x.iter().fold(0f32, |h, &v| h.max(v));
                assert_eq!(row_range_lanes(&x), (lo, hi), "len {len}");
                #[cfg(target_arch = "x86_64")]
                if is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    assert_eq!(unsafe { row_range_avx2(&x) }, (lo, hi), "len {len}");
                }
                #[cfg(target_arch = "x86_64")]
                if is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512 F.
                    assert_eq!(unsafe { row_range_avx512(&x) }, (lo, hi), "len {len}");
                }
                assert_eq!(rq, want, "len {len} offset {offset}");
                assert_eq!(q, want_q, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn row_quantization_round_trips_within_half_a_step() {
        let x: Vec<f32> = (0..77)
            .map(|i| ((i * 37 % 101) as f32 - 30.0) * 0.13)
            .collect();
        let mut q = vec![0u8; x.len()];
        let rq = quantize_row_u8(&x, &mut q);
        for (&v, &qi) in x.iter().zip(&q) {
            let back = rq.scale * (qi as i32 - rq.zero_point) as f32;
            assert!(
                (back - v).abs() <= 0.5 * rq.scale * 1.001 + 1e-6,
                "{v} -> {back}"
            );
        }
        // Zero is exact.
        let mut z = [0u8; 1];
        let r = quantize_row_u8(&[0.0], &mut z);
        assert_eq!(r.scale * (z[0] as i32 - r.zero_point) as f32, 0.0);
    }
}
