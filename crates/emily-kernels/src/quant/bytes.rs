//! Little-endian field access inside a block and the rounding helpers the
//! quantizers share.

use half::f16;

/// The f16 at byte offset `off` of `b`, widened.
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], off: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

/// Stores `v` as f16 at byte offset `off` and returns the stored value widened.
#[inline(always)]
pub(crate) fn put_f16(b: &mut [u8], off: usize, v: f32) -> f32 {
    let h = f16::from_f32(v);
    b[off..off + 2].copy_from_slice(&h.to_bits().to_le_bytes());
    h.to_f32()
}

/// The u32 at byte offset `off` of `b`.
#[inline(always)]
pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Round to nearest (ties to even), then clamp to `lo..=hi`.
#[inline(always)]
pub(crate) fn nearest_clamped(v: f32, lo: i32, hi: i32) -> i32 {
    (v.round_ties_even() as i32).clamp(lo, hi)
}

/// Why a block cannot be quantized: any non-finite input.
#[inline]
pub(crate) fn check_finite(x: &[f32]) -> Result<(), &'static str> {
    if x.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err("input holds NaN or infinity")
    }
}

/// Why a block cannot be quantized: a scale `v` that f16 cannot hold.
#[inline]
pub(crate) fn check_f16_range(v: f32) -> Result<(), &'static str> {
    if v.abs() <= f16::MAX.to_f32() {
        Ok(())
    } else {
        Err("value range too large for an f16 scale")
    }
}
