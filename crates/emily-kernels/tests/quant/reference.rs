//! An independent float64 reading of every block format, written from the
//! format description element by element (no shared code with the crate), and
//! random blocks to feed it.

use emily_kernels::quant::BlockFormat;
use half::f16;
use rand::rngs::StdRng;
use rand::Rng;

fn f16_le(b: &[u8], off: usize) -> f64 {
    f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f64()
}

/// Bit `bit` of the little-endian bit string starting at `b[off]`.
fn bit(b: &[u8], off: usize, bit: usize) -> u32 {
    ((b[off + bit / 8] >> (bit % 8)) & 1) as u32
}

/// 4-bit code `i` of a block whose `n` codes sit in `n/2` bytes from `off`,
/// byte j holding code j (low nibble) and code j + n/2 (high nibble).
fn split_nibble(b: &[u8], off: usize, n: usize, i: usize) -> u32 {
    let byte = b[off + i % (n / 2)];
    ((byte >> (4 * (i / (n / 2)))) & 0xF) as u32
}

/// The 6-bit K-quant scale (`want_min = false`) or min of sub-block `s`,
/// gathered as (byte, shift, bits) pieces, low bits first.
fn k_scale(b: &[u8], s: usize, want_min: bool) -> u32 {
    let sc = &b[4..16];
    let pieces: [(usize, u32, u32); 2] = match (s < 4, want_min) {
        (true, false) => [(s, 0, 6), (0, 0, 0)],
        (true, true) => [(s + 4, 0, 6), (0, 0, 0)],
        (false, false) => [(s + 4, 0, 4), (s - 4, 6, 2)],
        (false, true) => [(s + 4, 4, 4), (s, 6, 2)],
    };
    let mut v = 0u32;
    let mut at = 0u32;
    for (byte, shift, bits) in pieces {
        v |= ((sc[byte] as u32 >> shift) & ((1 << bits) - 1)) << at;
        at += bits;
    }
    v
}

/// Element `i` of one block of `format`, and the sum of the magnitudes of the
/// terms that make it (for a round-off bound).
pub fn element(format: BlockFormat, b: &[u8], i: usize) -> (f64, f64) {
    use BlockFormat::*;
    match format {
        Q8_0 => {
            let v = f16_le(b, 0) * (b[2 + i] as i8) as f64;
            (v, v.abs())
        }
        Q4_0 => {
            let v = f16_le(b, 0) * (split_nibble(b, 2, 32, i) as f64 - 8.0);
            (v, v.abs())
        }
        Q5_0 => {
            let q = split_nibble(b, 6, 32, i) | bit(b, 2, i) << 4;
            let v = f16_le(b, 0) * (q as f64 - 16.0);
            (v, v.abs())
        }
        Q4_1 | Int4G32 | Int4G64 | Q5_1 | Int8G32 | Int8G64 => {
            let q = match format {
                Q4_1 | Int4G32 => split_nibble(b, 4, 32, i),
                Int4G64 => split_nibble(b, 4, 64, i),
                Q5_1 => split_nibble(b, 8, 32, i) | bit(b, 4, i) << 4,
                _ => b[4 + i] as u32,
            };
            let (a, m) = (f16_le(b, 0) * q as f64, f16_le(b, 2));
            (a + m, a.abs() + m.abs())
        }
        Q4K | Q5K => {
            let (c, half, l) = (i / 64, (i % 64) / 32, i % 32);
            let s = 2 * c + half;
            let mut q = if format == Q4K {
                (b[16 + 32 * c + l] as u32 >> (4 * half)) & 0xF
            } else {
                (b[48 + 32 * c + l] as u32 >> (4 * half)) & 0xF
            };
            if format == Q5K {
                q |= ((b[16 + l] as u32 >> s) & 1) << 4;
            }
            let a = f16_le(b, 0) * k_scale(b, s, false) as f64 * q as f64;
            let m = f16_le(b, 2) * k_scale(b, s, true) as f64;
            (a - m, a.abs() + m.abs())
        }
        Q6K => {
            let (h, t, l) = (i / 128, (i % 128) / 32, i % 32);
            let low = (b[64 * h + l + 32 * (t & 1)] as u32 >> (4 * (t >> 1))) & 0xF;
            let high = (b[128 + 32 * h + l] as u32 >> (2 * t)) & 3;
            let q = (low | high << 4) as f64 - 32.0;
            let v = f16_le(b, 208) * (b[192 + i / 16] as i8) as f64 * q;
            (v, v.abs())
        }
    }
}

/// All elements of consecutive blocks, read with [`element`].
pub fn read(format: BlockFormat, bytes: &[u8]) -> Vec<(f64, f64)> {
    bytes
        .chunks_exact(format.block_bytes())
        .flat_map(|b| (0..format.block_elems()).map(move |i| element(format, b, i)))
        .collect()
}

/// Byte offsets of the f16 fields of a block.
fn f16_fields(format: BlockFormat) -> &'static [usize] {
    use BlockFormat::*;
    match format {
        Q8_0 | Q4_0 | Q5_0 => &[0],
        Q6K => &[208],
        _ => &[0, 2],
    }
}

/// `blocks` random blocks: random bytes, with every f16 field set to a random
/// finite value of either sign in about ±2^±4.
pub fn random_blocks(rng: &mut StdRng, format: BlockFormat, blocks: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..blocks * format.block_bytes())
        .map(|_| rng.gen())
        .collect();
    for b in bytes.chunks_exact_mut(format.block_bytes()) {
        for &off in f16_fields(format) {
            let mag = 2f32.powf(rng.gen_range(-4.0..4.0));
            let v = if rng.gen() { mag } else { -mag };
            b[off..off + 2].copy_from_slice(&f16::from_f32(v).to_bits().to_le_bytes());
        }
    }
    bytes
}
