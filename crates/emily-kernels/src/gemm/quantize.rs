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
    let (mut lo, mut hi) = (0f32, 0f32);
    for &v in x {
        lo = lo.min(v);
        hi = hi.max(v);
    }
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
    let zp = zero_point as f32;
    for (q, &v) in out.iter_mut().zip(x) {
        *q = (v * inv + zp).round().clamp(0.0, 255.0) as u8;
    }
    RowQuant { scale, zero_point }
}

/// Quantizes each column of `w` (a `k × n` view) to s8 with its own scale
/// `max|w| / 127`; returns the `k × n` row-major values and the `n` scales
/// (0.0 for an all-zero column).
pub fn quantize_columns_s8(w: MatRef<'_, f32>) -> (Vec<i8>, Vec<f32>) {
    let (k, n) = (w.rows(), w.cols());
    let mut scales = vec![0f32; n];
    for (j, s) in scales.iter_mut().enumerate() {
        let amax = (0..k).fold(0f32, |m, i| m.max(w.get(i, j).abs()));
        *s = amax / 127.0;
    }
    let mut q = vec![0i8; k * n];
    for i in 0..k {
        for (j, &s) in scales.iter().enumerate() {
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            q[i * n + j] = (w.get(i, j) * inv).round().clamp(-127.0, 127.0) as i8;
        }
    }
    (q, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

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
