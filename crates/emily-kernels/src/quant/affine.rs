//! The affine group formats `Int8G32`, `Int8G64`, `Int4G32` and `Int4G64`:
//! the original's group-wise scheme, made from float weights on load.
//!
//! A group of G elements stores an f16 scale `d`, an f16 bias `m` (the
//! group's minimum) and G unsigned codes; `x = d·q + m`. 8-bit codes are one
//! byte each in order; 4-bit codes pack byte j = element j (low nibble) and
//! element j + G/2 (high nibble), so `Int4G32` has exactly `Q4_1`'s layout.

use super::bytes::f16_at;
use super::legacy::{minmax_codes, pack_nibbles};

/// Dequantizes one 8-bit affine group of `G` elements (`4 + G` bytes).
#[inline(always)]
pub(crate) fn dequant_int8<const G: usize>(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (y, &q) in y[..G].iter_mut().zip(&b[4..4 + G]) {
        *y = d * q as f32 + m;
    }
}

/// Dequantizes one 4-bit affine group of `G` elements (`4 + G/2` bytes).
#[inline(always)]
pub(crate) fn dequant_int4<const G: usize>(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let (lo, hi) = y[..G].split_at_mut(G / 2);
    for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&b[4..4 + G / 2]) {
        *l = d * (q & 0xF) as f32 + m;
        *h = d * (q >> 4) as f32 + m;
    }
}

/// Quantizes `G` values into one 8-bit affine group.
pub(crate) fn quant_int8<const G: usize>(x: &[f32], b: &mut [u8]) -> Result<(), &'static str> {
    let q = minmax_codes::<G>(x, b, 255)?;
    b[4..4 + G].copy_from_slice(&q);
    Ok(())
}

/// Quantizes `G` values into one 4-bit affine group.
pub(crate) fn quant_int4<const G: usize>(x: &[f32], b: &mut [u8]) -> Result<(), &'static str> {
    let q = minmax_codes::<G>(x, b, 15)?;
    pack_nibbles(&q, &mut b[4..4 + G / 2]);
    Ok(())
}
