//! The int8-row GEMV's activations: rows quantized to 16-bit codes in blocks
//! of 32 (one f32 scale per block), with each block's code sum.
//!
//! A block's scale is `s = max|x| / CODE_MAX` and its codes `a = round(x /
//! s)` (ties to even) in `−CODE_MAX..=CODE_MAX`, so `|x − s·a| ≤ s/2`:
//! about 16 bits per value, so a block holding one large value (a layer
//! norm's outlier feature) keeps its other values to ~1e-5 of that value.
//! `CODE_MAX = 127 · 256` splits every code into two bytes a `vpdpbusd`
//! takes, `a = 256·hi + lo` with `hi` in `−127..=127` and `lo` in
//! `−128..=127` ([`I16Blocks::split`]). A block holding NaN or infinity
//! gets a NaN scale and zero codes (it poisons the products as float
//! arithmetic would); a block whose `1/s` overflows is flushed to zero.

use crate::gemv_i8::BLOCK;

/// Largest code magnitude.
pub const CODE_MAX: i32 = 127 * 256;

/// `m` activation rows of `kp` values (`kp` a multiple of 32) as 16-bit
/// codes in blocks of 32.
#[derive(Clone, Debug, Default)]
pub struct I16Blocks {
    /// Codes, row-major `(m, kp)`.
    pub codes: Vec<i16>,
    /// Per-block scales, row-major `(m, kp / 32)`.
    pub scales: Vec<f32>,
    /// Per-block code sums, row-major `(m, kp / 32)`.
    pub sums: Vec<i32>,
}

/// The two byte planes of [`I16Blocks`] codes (`a = 256·hi + lo`) and their
/// per-block sums, for products on unsigned × signed bytes.
#[derive(Clone, Debug, Default)]
pub struct BytePlanes {
    /// High bytes, `(m, kp)`.
    pub hi: Vec<i8>,
    /// Low bytes, `(m, kp)`.
    pub lo: Vec<i8>,
    /// `Σhi` per block, `(m, kp / 32)`.
    pub hi_sums: Vec<i32>,
    /// `Σlo` per block, `(m, kp / 32)`.
    pub lo_sums: Vec<i32>,
}

impl I16Blocks {
    /// Quantizes `x` (`m` rows of `k` values, row-major), each row padded
    /// with zeros to `kp` columns; `avx2` picks the AVX2 loop, which gives
    /// the same codes, scales and sums as the plain one.
    ///
    /// # Panics
    /// If `x.len() != m * k`, `k > kp` or `kp` is not a multiple of 32.
    pub fn quantize(x: &[f32], m: usize, k: usize, kp: usize, avx2: bool) -> I16Blocks {
        assert!(
            x.len() == m * k && k <= kp && kp.is_multiple_of(BLOCK),
            "I16Blocks: {} values for {m} × {k} padded to {kp}",
            x.len()
        );
        let blocks = m * kp / BLOCK;
        let mut q = I16Blocks {
            codes: vec![0; m * kp],
            scales: vec![0.0; blocks],
            sums: vec![0; blocks],
        };
        let mut padded = [0f32; BLOCK];
        for i in 0..m {
            let row = &x[i * k..(i + 1) * k];
            for b in 0..kp / BLOCK {
                let at = i * kp / BLOCK + b;
                let cols = (b * BLOCK).min(k)..((b + 1) * BLOCK).min(k);
                let n = cols.len();
                padded[..n].copy_from_slice(&row[cols]);
                padded[n..].fill(0.0);
                let codes: &mut [i16; BLOCK] = (&mut q.codes[at * BLOCK..(at + 1) * BLOCK])
                    .try_into()
                    .expect("a block of codes");
                let (scale, sum) = quantize_block(&padded, codes, avx2);
                q.scales[at] = scale;
                q.sums[at] = sum;
            }
        }
        q
    }

    /// The codes' byte planes (for `vpdpbusd`).
    pub fn split(&self) -> BytePlanes {
        let hi: Vec<i8> = self.codes.iter().map(|&a| high_byte(a)).collect();
        let lo: Vec<i8> = self
            .codes
            .iter()
            .zip(&hi)
            .map(|(&a, &h)| (a as i32 - 256 * h as i32) as i8)
            .collect();
        let sums = |v: &[i8]| -> Vec<i32> {
            v.chunks(BLOCK)
                .map(|b| b.iter().map(|&c| c as i32).sum())
                .collect()
        };
        BytePlanes {
            hi_sums: sums(&hi),
            lo_sums: sums(&lo),
            hi,
            lo,
        }
    }
}

/// `round(a / 256)` with ties up: the high byte of `a = 256·hi + lo`,
/// `lo` in `−128..=127` (|a| ≤ [`CODE_MAX`] keeps `hi` in `−127..=127`).
fn high_byte(a: i16) -> i8 {
    ((a as i32 + 128) >> 8) as i8
}

/// One block's scale and inverse for `max|x|` (see the module doc).
fn scale_of(amax: f32) -> (f32, f32) {
    if !amax.is_finite() {
        return (f32::NAN, 0.0);
    }
    let scale = amax / CODE_MAX as f32;
    if scale <= 0.0 {
        return (0.0, 0.0);
    }
    let inv = 1.0 / scale;
    if inv.is_infinite() {
        (0.0, 0.0)
    } else {
        (scale, inv)
    }
}

/// Quantizes one block into `codes`: its scale and code sum.
fn quantize_block(x: &[f32; BLOCK], codes: &mut [i16; BLOCK], avx2: bool) -> (f32, i32) {
    #[cfg(target_arch = "x86_64")]
    if avx2 && crate::quant::QuantIsa::Avx2.available() {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe {
            let (scale, inv) = scale_of(super::x86::amax_avx2(x));
            if scale.is_nan() {
                codes.fill(0);
                return (scale, 0);
            }
            return (scale, super::x86::codes_avx2(x, inv, codes));
        }
    }
    let _ = avx2;
    // Any NaN makes the max NaN (`f32::max` alone would drop it).
    let amax = x.iter().fold(0f32, |m, v| {
        if v.is_nan() || m.is_nan() {
            f32::NAN
        } else {
            m.max(v.abs())
        }
    });
    let (scale, inv) = scale_of(amax);
    if scale.is_nan() {
        codes.fill(0);
        return (scale, 0);
    }
    let mut sum = 0;
    for (c, &v) in codes.iter_mut().zip(x) {
        // |v · inv| ≤ CODE_MAX up to rounding.
        let q = (v * inv)
            .round_ties_even()
            .clamp(-CODE_MAX as f32, CODE_MAX as f32) as i32;
        *c = q as i16;
        sum += q;
    }
    (scale, sum)
}
