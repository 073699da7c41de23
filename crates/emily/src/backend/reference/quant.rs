//! Block-quantised data in the reference backend: each element read on its
//! own, in f64, from the format's description (independent of the CPU
//! kernels' unpacking), and quantisation for `cast` to a block format.
//!
//! Every format stores a row (the last axis) as consecutive blocks; element
//! `e` of a block is a code `q` scaled by the block's f16 fields:
//! - `q8_0`: d · q, q the signed byte `e` after d.
//! - `q4_0`, `q5_0`: d · (q − 8), d · (q − 16); `q4_1`, `q5_1`, `int4-*`,
//!   `int8-*`: d · q + m. 4-bit codes: byte `e mod G/2` of the code bytes,
//!   low nibble for the first half of the group, high for the second; the
//!   fifth bit of 5-bit codes is bit `e` of a little-endian u32.
//! - `q4_k`, `q5_k`: 8 sub-blocks of 32 with 6-bit scale `sc` and min `mn`:
//!   d · sc · q − dmin · mn.
//! - `q6_k`: 16 sub-blocks of 16 with signed 8-bit scales: d · sc · (q − 32).

use emily_kernels::quant::BlockFormat;
use half::f16;

/// The f16 at byte `at`.
fn half(b: &[u8], at: usize) -> f64 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f64()
}

/// Bits `lo..lo + n` of the little-endian bit string starting at byte `at`.
fn bits(b: &[u8], at: usize, lo: usize, n: usize) -> u32 {
    (0..n)
        .map(|i| ((b[at + (lo + i) / 8] >> ((lo + i) % 8)) & 1) as u32)
        .enumerate()
        .fold(0, |v, (i, bit)| v | bit << i)
}

/// 4-bit code `e` of a group of `g` codes packed from byte `at`.
fn nibble(b: &[u8], at: usize, g: usize, e: usize) -> u32 {
    let half = g / 2;
    bits(b, at + e % half, 4 * (e / half), 4)
}

/// The 6-bit scale (or, with `min`, the min) of K sub-block `s`: the low 6
/// bits of byte s (or s + 4) for s < 4; for s >= 4 the low (or high) nibble
/// of byte s + 4 with the top 2 bits of byte s − 4 (or s) above it.
fn k_six_bit(b: &[u8], s: usize, min: bool) -> u32 {
    let sc = &b[4..16];
    if s < 4 {
        bits(sc, if min { s + 4 } else { s }, 0, 6)
    } else {
        let low = bits(sc, s + 4, if min { 4 } else { 0 }, 4);
        let high = bits(sc, if min { s } else { s - 4 }, 6, 2);
        low | high << 4
    }
}

/// Element `e` of the block `b` of `format`, in f64.
fn element(format: BlockFormat, b: &[u8], e: usize) -> f64 {
    use BlockFormat::*;
    let affine = |q: u32| half(b, 0) * q as f64 + half(b, 2);
    match format {
        Q8_0 => half(b, 0) * (b[2 + e] as i8) as f64,
        Q4_0 => half(b, 0) * (nibble(b, 2, 32, e) as f64 - 8.0),
        Q5_0 => half(b, 0) * ((nibble(b, 6, 32, e) | bits(b, 2, e, 1) << 4) as f64 - 16.0),
        Q4_1 | Int4G32 => affine(nibble(b, 4, 32, e)),
        Int4G64 => affine(nibble(b, 4, 64, e)),
        Q5_1 => affine(nibble(b, 8, 32, e) | bits(b, 4, e, 1) << 4),
        Int8G32 | Int8G64 => affine(b[4 + e] as u32),
        Q4K | Q5K => {
            // Chunk c of 64 holds sub-blocks 2c (low nibbles) and 2c + 1 (high).
            let (c, hi, l) = (e / 64, (e / 32) % 2, e % 32);
            let s = 2 * c + hi;
            let codes = if format == Q4K { 16 } else { 48 };
            let mut q = bits(b, codes + 32 * c + l, 4 * hi, 4);
            if format == Q5K {
                q |= bits(b, 16 + l, s, 1) << 4;
            }
            half(b, 0) * k_six_bit(b, s, false) as f64 * q as f64
                - half(b, 2) * k_six_bit(b, s, true) as f64
        }
        Q6K => {
            // Half h of 128: element 32t + l has its low 4 bits in byte
            // 64h + l + 32(t mod 2) (nibble t div 2), its top 2 at bit 2t of
            // byte 128 + 32h + l.
            let (h, t, l) = (e / 128, (e % 128) / 32, e % 32);
            let low = bits(b, 64 * h + l + 32 * (t % 2), 4 * (t / 2), 4);
            let top = bits(b, 128 + 32 * h + l, 2 * t, 2);
            let scale = b[192 + e / 16] as i8;
            half(b, 208) * scale as f64 * ((low | top << 4) as f64 - 32.0)
        }
    }
}

/// Element `i` (row-major) of a `format` array of `shape` stored in `bytes`.
pub(super) fn get(bytes: &[u8], shape: &[usize], format: BlockFormat, i: usize) -> f64 {
    let last = shape.last().copied().unwrap_or(1);
    let (row, col) = (i / last, i % last);
    let (be, bb) = (format.block_elems(), format.block_bytes());
    let start = (row * (last / be) + col / be) * bb;
    element(format, &bytes[start..start + bb], col % be)
}

/// `x` quantised to `format` (a cast). Quantisation is a choice of codes,
/// not arithmetic to check, so this uses the same rounding rules as the
/// kernel crate's reference quantisers (`emily_kernels::quant::quantize`);
/// what the reference backend verifies is every product computed from the
/// blocks.
pub(super) fn quantize(
    x: &super::View,
    format: BlockFormat,
    shape: &[usize],
) -> crate::Result<crate::Array> {
    let values: Vec<f32> = (0..x.numel()).map(|i| x.get(i) as f32).collect();
    let bytes = emily_kernels::quant::quantize(format, &values)
        .map_err(|e| crate::error::invalid("cast", e.to_string()))?;
    super::array(bytes, shape, crate::DType::Quantized(format))
}

/// An error unless `op` is one that reads quantised inputs (matmul, gather,
/// cast): `wᵀ` built as matmul's view is never computed on its own.
pub(super) fn check_op(op: &crate::ops::Op, inputs: &[crate::Array]) -> crate::Result<()> {
    use crate::ops::Op;
    match inputs.iter().map(|a| a.dtype()).find(|d| d.is_quantized()) {
        Some(q) if !matches!(op, Op::Matmul { .. } | Op::Gather { .. } | Op::Cast) => {
            Err(crate::error::dtype_err(
                op.name(),
                q,
                ": the reference backend reads block-quantised tensors only in matmul, gather and cast",
            ))
        }
        _ => Ok(()),
    }
}
