//! The 32-element GGML formats `Q8_0`, `Q4_0`, `Q4_1`, `Q5_0` and `Q5_1`, one
//! block at a time.
//!
//! Layouts (little-endian, packed): `Q8_0` = f16 d, i8 q[32], x = d·q.
//! `Q4_0` = f16 d, u8 qs[16]; byte j holds element j in its low nibble and
//! j + 16 in its high one; x = d·(q − 8). `Q4_1` = f16 d, f16 m, qs[16];
//! x = d·q + m. `Q5_0` = f16 d, u32 qh, qs[16]: the nibbles as in `Q4_0`, bit
//! j of qh is bit 4 of element j; x = d·(q − 16). `Q5_1` = f16 d, f16 m, u32
//! qh, qs[16]; x = d·q + m.
//!
//! The quantizers round to nearest as GGML's reference ones do: symmetric
//! formats map the element of largest magnitude to the most negative code,
//! min/max formats spread `min..max` over the codes. Codes are computed from
//! the stored (f16-rounded) scale, so each element lands on its nearest code.

use super::bytes::{check_f16_range, check_finite, f16_at, nearest_clamped, put_f16, u32_at};

/// Dequantizes one `Q8_0` block (34 bytes) into 32 values.
#[inline(always)]
pub(crate) fn dequant_q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (y, &q) in y[..32].iter_mut().zip(&b[2..34]) {
        *y = d * (q as i8) as f32;
    }
}

/// Dequantizes one `Q4_0` block (18 bytes) into 32 values.
#[inline(always)]
pub(crate) fn dequant_q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let (lo, hi) = y[..32].split_at_mut(16);
    for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&b[2..18]) {
        *l = d * ((q & 0xF) as i32 - 8) as f32;
        *h = d * ((q >> 4) as i32 - 8) as f32;
    }
}

/// Dequantizes one `Q4_1`-layout block (20 bytes; also `Int4G32`) into 32 values.
#[inline(always)]
pub(crate) fn dequant_q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let (lo, hi) = y[..32].split_at_mut(16);
    for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&b[4..20]) {
        *l = d * (q & 0xF) as f32 + m;
        *h = d * (q >> 4) as f32 + m;
    }
}

/// Dequantizes one `Q5_0` block (22 bytes) into 32 values.
#[inline(always)]
pub(crate) fn dequant_q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32_at(b, 2);
    let (lo, hi) = y[..32].split_at_mut(16);
    for (j, ((l, h), &q)) in lo.iter_mut().zip(hi).zip(&b[6..22]).enumerate() {
        let q0 = (q & 0xF) as u32 | ((qh >> j) & 1) << 4;
        let q1 = (q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
        *l = d * (q0 as i32 - 16) as f32;
        *h = d * (q1 as i32 - 16) as f32;
    }
}

/// Dequantizes one `Q5_1` block (24 bytes) into 32 values.
#[inline(always)]
pub(crate) fn dequant_q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qh = u32_at(b, 4);
    let (lo, hi) = y[..32].split_at_mut(16);
    for (j, ((l, h), &q)) in lo.iter_mut().zip(hi).zip(&b[8..24]).enumerate() {
        let q0 = (q & 0xF) as u32 | ((qh >> j) & 1) << 4;
        let q1 = (q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
        *l = d * q0 as f32 + m;
        *h = d * q1 as f32 + m;
    }
}

/// The element of largest magnitude, with its sign (the first one on ties).
fn signed_absmax(x: &[f32]) -> f32 {
    let mut best = 0f32;
    for &v in x {
        if v.abs() > best.abs() {
            best = v;
        }
    }
    best
}

/// `1 / d`, or 0 when `d` is 0 (an all-zero block).
fn inverse(d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

/// Quantizes 32 values into one `Q8_0` block.
pub(crate) fn quant_q8_0(x: &[f32], b: &mut [u8]) -> Result<(), &'static str> {
    check_finite(x)?;
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = put_f16(b, 0, amax / 127.0);
    let id = inverse(d);
    for (q, &v) in b[2..34].iter_mut().zip(x) {
        *q = nearest_clamped(v * id, -127, 127) as i8 as u8;
    }
    Ok(())
}

/// Quantizes 32 values into one symmetric 4- or 5-bit block: codes `0..2·half`
/// with `x ≈ d·(q − half)`; returns the codes.
fn symmetric_codes(x: &[f32], b: &mut [u8], half: i32) -> Result<[u8; 32], &'static str> {
    check_finite(x)?;
    let max = signed_absmax(x);
    let d = max / -(half as f32);
    check_f16_range(d)?;
    let d = put_f16(b, 0, d);
    let id = inverse(d);
    let mut q = [0u8; 32];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (nearest_clamped(v * id, -half, half - 1) + half) as u8;
    }
    Ok(q)
}

/// Quantizes 32 values into min/max codes `0..=levels`: stores d at byte 0 and
/// m at byte 2 and returns the codes (`x ≈ d·q + m`).
pub(crate) fn minmax_codes<const N: usize>(
    x: &[f32],
    b: &mut [u8],
    levels: i32,
) -> Result<[u8; N], &'static str> {
    check_finite(x)?;
    let (min, max) = x
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let d = (max - min) / levels as f32;
    check_f16_range(d)?;
    check_f16_range(min)?;
    let d = put_f16(b, 0, d);
    let m = put_f16(b, 2, min);
    let id = inverse(d);
    let mut q = [0u8; N];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = nearest_clamped((v - m) * id, 0, levels) as u8;
    }
    Ok(q)
}

/// Packs 2·`qs.len()` 4-bit codes: byte j holds code j low and code j + len high.
pub(crate) fn pack_nibbles(codes: &[u8], qs: &mut [u8]) {
    let half = qs.len();
    for (j, q) in qs.iter_mut().enumerate() {
        *q = (codes[j] & 0xF) | (codes[j + half] & 0xF) << 4;
    }
}

/// The bit-4 mask of 32 five-bit codes (bit j = bit 4 of code j), little-endian.
fn high_bits(codes: &[u8; 32]) -> [u8; 4] {
    let mut qh = 0u32;
    for (j, &c) in codes.iter().enumerate() {
        qh |= ((c as u32 >> 4) & 1) << j;
    }
    qh.to_le_bytes()
}

/// Quantizes 32 values into one `Q4_0` block.
pub(crate) fn quant_q4_0(x: &[f32], b: &mut [u8]) -> Result<(), &'static str> {
    let q = symmetric_codes(x, b, 8)?;
    pack_nibbles(&q, &mut b[2..18]);
    Ok(())
}

/// Quantizes 32 values into one `Q4_1`-layout block (also `Int4G32`).
pub(crate) fn quant_q4_1(x: &[f32], b: &mut [u8]) -> Result<(), &'static str> {
    let q = minmax_codes::<32>(x, b, 15)?;
    pack_nibbles(&q, &mut b[4..20]);
    Ok(())
}

/// Quantizes 32 values into one `Q5_0` block.
pub(crate) fn quant_q5_0(x: &[f32], b: &mut [u8]) -> Result<(), &'static str> {
    let q = symmetric_codes(x, b, 16)?;
    b[2..6].copy_from_slice(&high_bits(&q));
    pack_nibbles(&q, &mut b[6..22]);
    Ok(())
}

/// Quantizes 32 values into one `Q5_1` block.
pub(crate) fn quant_q5_1(x: &[f32], b: &mut [u8]) -> Result<(), &'static str> {
    let q = minmax_codes::<32>(x, b, 31)?;
    b[4..8].copy_from_slice(&high_bits(&q));
    pack_nibbles(&q, &mut b[8..24]);
    Ok(())
}
