//! The 256-element GGML "K" formats `Q4_K`, `Q5_K` and `Q6_K`, one super-block
//! at a time.
//!
//! Layouts (little-endian, packed):
//! - `Q4_K` (144 bytes): f16 d, f16 dmin, scales[12], qs[128]. Eight
//!   sub-blocks of 32 elements, each with a 6-bit scale `sc` and 6-bit min
//!   `mn` packed in `scales` (see [`scale_min`]); x = d·sc·q − dmin·mn. The 256
//!   elements are 4 chunks of 64: chunk c takes qs[32c..32c+32], its low
//!   nibbles are sub-block 2c and its high nibbles sub-block 2c + 1.
//! - `Q5_K` (176 bytes): f16 d, f16 dmin, scales[12], qh[32], qs[128]; as
//!   `Q4_K`, plus bit 4 of element 64c + l (resp. 64c + 32 + l) is bit 2c
//!   (resp. 2c + 1) of qh[l].
//! - `Q6_K` (210 bytes): ql[128], qh[64], i8 scales[16], f16 d. Sixteen
//!   sub-blocks of 16 elements with signed 8-bit scales; x = d·sc·(q − 32).
//!   Two halves of 128: in half h, element 128h + 32t + l (t = 0..4, l < 32)
//!   has its low 4 bits in ql[64h + l + 32·(t & 1)] (low nibble for t < 2,
//!   high for t ≥ 2) and its top 2 bits at bit 2t of qh[32h + l].

use super::bytes::{check_f16_range, check_finite, f16_at, nearest_clamped, put_f16};
use super::format::QK_K;

/// The 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes `q`.
#[inline(always)]
pub(crate) fn scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs 8 six-bit scales and mins into the 12 bytes [`scale_min`] reads.
fn pack_scale_min(sc: &[u8; 8], mn: &[u8; 8], q: &mut [u8]) {
    q[..12].fill(0);
    for j in 0..4 {
        q[j] = sc[j] & 63;
        q[j + 4] = mn[j] & 63;
    }
    for j in 4..8 {
        q[j + 4] = (sc[j] & 0xF) | (mn[j] & 0xF) << 4;
        q[j - 4] |= (sc[j] >> 4) << 6;
        q[j] |= (mn[j] >> 4) << 6;
    }
}

/// Dequantizes one `Q4_K` super-block into 256 values.
#[inline(always)]
pub(crate) fn dequant_q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let qs = &b[16..144];
    for c in 0..4 {
        let (s0, m0) = scale_min(2 * c, scales);
        let (s1, m1) = scale_min(2 * c + 1, scales);
        let (d0, d1) = (d * s0 as f32, d * s1 as f32);
        let (o0, o1) = (dmin * m0 as f32, dmin * m1 as f32);
        let (lo, hi) = y[64 * c..64 * c + 64].split_at_mut(32);
        for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&qs[32 * c..32 * c + 32]) {
            *l = d0 * (q & 0xF) as f32 - o0;
            *h = d1 * (q >> 4) as f32 - o1;
        }
    }
}

/// Dequantizes one `Q5_K` super-block into 256 values.
#[inline(always)]
pub(crate) fn dequant_q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    for c in 0..4 {
        let (s0, m0) = scale_min(2 * c, scales);
        let (s1, m1) = scale_min(2 * c + 1, scales);
        let (d0, d1) = (d * s0 as f32, d * s1 as f32);
        let (o0, o1) = (dmin * m0 as f32, dmin * m1 as f32);
        let (lo, hi) = y[64 * c..64 * c + 64].split_at_mut(32);
        let chunk = qs[32 * c..32 * c + 32].iter().zip(qh);
        for ((l, h), (&q, &hb)) in lo.iter_mut().zip(hi).zip(chunk) {
            let q0 = (q & 0xF) | ((hb >> (2 * c)) & 1) << 4;
            let q1 = (q >> 4) | ((hb >> (2 * c + 1)) & 1) << 4;
            *l = d0 * q0 as f32 - o0;
            *h = d1 * q1 as f32 - o1;
        }
    }
}

/// Dequantizes one `Q6_K` super-block into 256 values.
#[inline(always)]
pub(crate) fn dequant_q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for h in 0..2 {
        let ql = &b[64 * h..64 * h + 64];
        let qh = &b[128 + 32 * h..128 + 32 * h + 32];
        let sc = &b[192 + 8 * h..192 + 8 * h + 8];
        let y = &mut y[128 * h..128 * h + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = (ql[l] & 0xF) | (qh[l] & 3) << 4;
            let q2 = (ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4;
            let q3 = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
            let q4 = (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4;
            y[l] = d * (sc[is] as i8) as f32 * (q1 as i32 - 32) as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * (q2 as i32 - 32) as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * (q3 as i32 - 32) as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * (q4 as i32 - 32) as f32;
        }
    }
}

/// Codes 0..=`levels` of a `Q4_K`/`Q5_K` super-block: per sub-block of 32, a
/// scale `(max − min)/levels` and a min `−min(0, min)`, both quantized to 6 bits
/// under f16 super-scales stored at bytes 0 and 2, then each element rounded to
/// the nearest code under the stored scale and min.
fn k_minmax_codes(x: &[f32], b: &mut [u8], levels: i32) -> Result<[u8; QK_K], &'static str> {
    check_finite(x)?;
    let mut scale = [0f32; 8];
    let mut min = [0f32; 8];
    for (s, sub) in x.chunks_exact(32).enumerate() {
        let lo = sub.iter().fold(0f32, |a, &v| a.min(v));
        let hi = sub.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
        scale[s] = (hi - lo) / levels as f32;
        min[s] = -lo;
    }
    let max_scale = scale.iter().fold(0f32, |a, &v| a.max(v));
    let max_min = min.iter().fold(0f32, |a, &v| a.max(v));
    check_f16_range(max_scale / 63.0)?;
    check_f16_range(max_min / 63.0)?;
    let d = put_f16(b, 0, max_scale / 63.0);
    let dmin = put_f16(b, 2, max_min / 63.0);
    let six_bit = |v: f32, unit: f32| {
        if unit == 0.0 {
            0
        } else {
            nearest_clamped(v / unit, 0, 63) as u8
        }
    };
    let sc: [u8; 8] = std::array::from_fn(|s| six_bit(scale[s], d));
    let mn: [u8; 8] = std::array::from_fn(|s| six_bit(min[s], dmin));
    pack_scale_min(&sc, &mn, &mut b[4..16]);
    let mut q = [0u8; QK_K];
    for (s, (sub, qs)) in x.chunks_exact(32).zip(q.chunks_exact_mut(32)).enumerate() {
        let step = d * sc[s] as f32;
        let offset = dmin * mn[s] as f32;
        if step == 0.0 {
            continue;
        }
        for (q, &v) in qs.iter_mut().zip(sub) {
            *q = nearest_clamped((v + offset) / step, 0, levels) as u8;
        }
    }
    Ok(q)
}

/// Quantizes 256 values into one `Q4_K` super-block.
pub(crate) fn quant_q4_k(x: &[f32], b: &mut [u8]) -> Result<(), &'static str> {
    let q = k_minmax_codes(x, b, 15)?;
    for c in 0..4 {
        for l in 0..32 {
            b[16 + 32 * c + l] = q[64 * c + l] | q[64 * c + 32 + l] << 4;
        }
    }
    Ok(())
}

/// Quantizes 256 values into one `Q5_K` super-block.
pub(crate) fn quant_q5_k(x: &[f32], b: &mut [u8]) -> Result<(), &'static str> {
    let q = k_minmax_codes(x, b, 31)?;
    b[16..48].fill(0);
    for c in 0..4 {
        for l in 0..32 {
            let (q0, q1) = (q[64 * c + l], q[64 * c + 32 + l]);
            b[48 + 32 * c + l] = (q0 & 0xF) | (q1 & 0xF) << 4;
            b[16 + l] |= (q0 >> 4) << (2 * c) | (q1 >> 4) << (2 * c + 1);
        }
    }
    Ok(())
}

/// Quantizes 256 values into one `Q6_K` super-block: per sub-block of 16 a
/// scale mapping its largest-magnitude element to code −32, the 16 scales
/// quantized to signed 8 bits under an f16 super-scale, then each element
/// rounded to the nearest code in −32..=31 under its stored scale.
pub(crate) fn quant_q6_k(x: &[f32], b: &mut [u8]) -> Result<(), &'static str> {
    check_finite(x)?;
    let mut scale = [0f32; 16];
    for (s, sub) in x.chunks_exact(16).enumerate() {
        let mut max = 0f32;
        for &v in sub {
            if v.abs() > max.abs() {
                max = v;
            }
        }
        scale[s] = max / -32.0;
    }
    let mut max_scale = 0f32;
    for &s in &scale {
        if s.abs() > max_scale.abs() {
            max_scale = s;
        }
    }
    let d = if max_scale == 0.0 {
        0.0
    } else {
        max_scale / -128.0
    };
    check_f16_range(d)?;
    let d = put_f16(b, 208, d);
    let sc: [i8; 16] = std::array::from_fn(|s| {
        if d == 0.0 {
            0
        } else {
            nearest_clamped(scale[s] / d, -128, 127) as i8
        }
    });
    for (s, &v) in sc.iter().enumerate() {
        b[192 + s] = v as u8;
    }
    let mut q = [32u8; QK_K];
    for (s, (sub, qs)) in x.chunks_exact(16).zip(q.chunks_exact_mut(16)).enumerate() {
        let step = d * sc[s] as f32;
        if step == 0.0 {
            continue;
        }
        for (q, &v) in qs.iter_mut().zip(sub) {
            *q = (nearest_clamped(v / step, -32, 31) + 32) as u8;
        }
    }
    b[128..192].fill(0);
    for h in 0..2 {
        for l in 0..32 {
            let e = |t: usize| q[128 * h + 32 * t + l];
            b[64 * h + l] = (e(0) & 0xF) | (e(2) & 0xF) << 4;
            b[64 * h + l + 32] = (e(1) & 0xF) | (e(3) & 0xF) << 4;
            b[128 + 32 * h + l] =
                (e(0) >> 4) | (e(1) >> 4) << 2 | (e(2) >> 4) << 4 | (e(3) >> 4) << 6;
        }
    }
    Ok(())
}
