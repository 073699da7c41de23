//! Decoding rules: suppressed tokens, OpenAI's timestamp rules (gathered in
//! [`LogitFilter`]), log-probabilities, and splitting timestamped token
//! streams into segments.

use crate::tokenizer::SpecialTokens;

/// Seconds per timestamp step.
pub const SECONDS_PER_TOKEN: f64 = 0.02;
/// The first timestamp may be at most this many steps (1.0 s) in.
pub const MAX_INITIAL_TIMESTAMP_STEPS: u32 = 50;

/// Sets `logits[ids]` to -inf.
pub fn suppress(logits: &mut [f32], ids: &[u32]) {
    for &i in ids {
        if let Some(l) = logits.get_mut(i as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
}

fn fill(logits: &mut [f32], from: usize, to: usize) {
    let to = to.min(logits.len());
    if from < to {
        logits[from..to].fill(f32::NEG_INFINITY);
    }
}

/// `Σ e^(x - m)` for `m` ≥ every `x` (-inf terms add 0), in f64: each term
/// by the kernels' f32 `exp` (~1 ulp) a block of 64 at a time (vectorised),
/// summed in eight f64 lanes — a vocabulary row (51,865 logits) per beam
/// and step, so libm's scalar `exp` was a good part of a beam step.
#[inline(always)]
fn sum_exp_shifted(x: &[f32], m: f32) -> f64 {
    const BLOCK: usize = 64;
    let mut acc = [0f64; 8];
    let mut e = [0f32; BLOCK];
    for chunk in x.chunks(BLOCK) {
        for (d, &v) in e.iter_mut().zip(chunk) {
            *d = emily_kernels::math::exp_nonpos_with::<false>(v - m);
        }
        for (i, &d) in e[..chunk.len()].iter().enumerate() {
            acc[i % 8] += d as f64;
        }
    }
    acc.iter().sum()
}

/// The largest of `x` (-inf for none), in sixteen independent lanes so that
/// it vectorises (a maximum is exact: the order does not change it).
#[inline(always)]
fn max_of(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = l.max(v);
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

#[inline(always)]
fn log_sum_exp_portable(x: &[f32]) -> f32 {
    let m = max_of(x);
    if m == f32::NEG_INFINITY {
        return m;
    }
    (m as f64 + sum_exp_shifted(x, m).ln()) as f32
}

#[inline(always)]
fn log_softmax_portable(logits: &mut [f32]) {
    let m = max_of(logits);
    if m == f32::NEG_INFINITY {
        return;
    }
    let lse = m as f64 + sum_exp_shifted(logits, m).ln();
    for v in logits.iter_mut() {
        *v = (*v as f64 - lse) as f32;
    }
}

/// The portable functions compiled for AVX-512 (the same operations in the
/// same order, no FMA contraction: bit-identical results, sixteen lanes
/// wide). A beam step runs them over 5 × 51,865 logits.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    /// [`super::log_sum_exp_portable`].
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/VL/BW/DQ.
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
    pub(super) unsafe fn log_sum_exp(x: &[f32]) -> f32 {
        super::log_sum_exp_portable(x)
    }

    /// [`super::log_softmax_portable`].
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/VL/BW/DQ.
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
    pub(super) unsafe fn log_softmax(logits: &mut [f32]) {
        super::log_softmax_portable(logits)
    }
}

/// Whether the AVX-512 builds may run (the detected ISA, `EMILY_ISA` caps it).
fn avx512() -> bool {
    cfg!(target_arch = "x86_64") && emily_kernels::simd::isa() == emily_kernels::simd::Isa::Avx512
}

fn log_sum_exp(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU has AVX-512 F/VL/BW/DQ (the detected ISA).
        return unsafe { avx512::log_sum_exp(x) };
    }
    log_sum_exp_portable(x)
}

/// OpenAI's `ApplyTimestampRules` for the tokens `generated` so far (after the
/// prompt), with the first timestamp at most [`MAX_INITIAL_TIMESTAMP_STEPS`] in.
pub fn apply_timestamp_rules(logits: &mut [f32], generated: &[u32], sp: &SpecialTokens) {
    apply_timestamp_rules_with(logits, generated, sp, MAX_INITIAL_TIMESTAMP_STEPS);
}

/// [`apply_timestamp_rules`] with the latest first timestamp given in steps
/// of 20 ms.
pub fn apply_timestamp_rules_with(
    logits: &mut [f32],
    generated: &[u32],
    sp: &SpecialTokens,
    max_initial_timestamp_steps: u32,
) {
    let tb = sp.timestamp_begin as usize;
    let eot = sp.eot as usize;
    logits[sp.no_timestamps as usize] = f32::NEG_INFINITY;
    let is_ts = |t: u32| t as usize >= tb;
    let n = generated.len();
    let last_ts = n >= 1 && is_ts(generated[n - 1]);
    let penult_ts = n < 2 || is_ts(generated[n - 2]);
    if last_ts {
        if penult_ts {
            fill(logits, tb, usize::MAX);
        } else {
            fill(logits, 0, eot);
        }
    }
    if let Some(&last) = generated.iter().rev().find(|&&t| is_ts(t)) {
        let bound = if last_ts && !penult_ts {
            last as usize
        } else {
            last as usize + 1
        };
        fill(logits, tb, bound);
    }
    if n == 0 {
        fill(logits, 0, tb);
        fill(
            logits,
            tb + max_initial_timestamp_steps as usize + 1,
            usize::MAX,
        );
    }
    // If the timestamps together are likelier than any text token, emit a timestamp.
    let lse_all = log_sum_exp(logits);
    let ts_lse = log_sum_exp(&logits[tb..]) - lse_all;
    let max_text = logits[..tb]
        .iter()
        .cloned()
        .fold(f32::NEG_INFINITY, f32::max)
        - lse_all;
    if ts_lse > max_text {
        fill(logits, 0, tb);
    }
}

/// The rules every decoding strategy applies to a row's logits before
/// choosing its next token, in CTranslate2's order: suppressed tokens, blank
/// and end-of-text at the first step (suppress-blank), timestamp rules.
#[derive(Clone, Debug)]
pub struct LogitFilter {
    /// Never generated.
    pub suppress: Vec<u32>,
    /// Not generated at the first step.
    pub suppress_begin: Vec<u32>,
    /// Apply the timestamp rules (the prompt did not end in `<|notimestamps|>`).
    pub timestamps: bool,
    /// Latest first timestamp, in 20 ms steps.
    pub max_initial_timestamp_steps: u32,
    /// The tokenizer's special tokens.
    pub special: SpecialTokens,
}

impl LogitFilter {
    /// Applies the rules for a row that has generated `generated` so far.
    pub fn apply(&self, logits: &mut [f32], generated: &[u32]) {
        suppress(logits, &self.suppress);
        if generated.is_empty() {
            suppress(logits, &self.suppress_begin);
        }
        if self.timestamps {
            apply_timestamp_rules_with(
                logits,
                generated,
                &self.special,
                self.max_initial_timestamp_steps,
            );
        }
    }
}

/// `logits` turned into log-probabilities in place (`-inf` stays `-inf`).
pub fn log_softmax(logits: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU has AVX-512 F/VL/BW/DQ (the detected ISA).
        return unsafe { avx512::log_softmax(logits) };
    }
    log_softmax_portable(logits)
}

/// The first position holding NaN or an infinity, if any (raw logits are always
/// finite; suppression sets -inf only afterwards).
pub fn first_non_finite(logits: &[f32]) -> Option<usize> {
    logits.iter().position(|v| !v.is_finite())
}

/// Index of the largest logit.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// A decoded span of one window, in window-relative seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct RawSegment {
    /// Start, seconds from the window start.
    pub start: f64,
    /// End, seconds from the window start.
    pub end: f64,
    /// Text tokens (no timestamps).
    pub tokens: Vec<u32>,
    /// The segment's tokens with its timestamps, as later windows' prompts
    /// take them.
    pub timed: Vec<u32>,
}

/// Splits a window's timestamped tokens into segments (OpenAI's rules) and
/// returns them with how far to advance, in timestamp steps (`None` = the
/// whole window).
pub fn split_segments(
    tokens: &[u32],
    sp: &SpecialTokens,
    window_seconds: f64,
) -> (Vec<RawSegment>, Option<u32>) {
    let tb = sp.timestamp_begin;
    let is_ts = |t: u32| t >= tb;
    let text = |s: &[u32]| {
        s.iter()
            .cloned()
            .filter(|&t| t < sp.eot)
            .collect::<Vec<_>>()
    };
    let n = tokens.len();
    let single_ending =
        n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]) || n == 1 && is_ts(tokens[0]);
    let mut cuts: Vec<usize> = (1..n)
        .filter(|&i| is_ts(tokens[i - 1]) && is_ts(tokens[i]))
        .collect();
    let mut segs = Vec::new();
    if !cuts.is_empty() {
        if single_ending {
            cuts.push(n);
        }
        let mut last = 0;
        for &c in &cuts {
            let s = &tokens[last..c];
            let start = (s[0].saturating_sub(tb)) as f64 * SECONDS_PER_TOKEN;
            let end = (s[s.len() - 1].saturating_sub(tb)) as f64 * SECONDS_PER_TOKEN;
            let t = text(s);
            if !t.is_empty() {
                segs.push(RawSegment {
                    start,
                    end,
                    tokens: t,
                    timed: s.to_vec(),
                });
            }
            last = c;
        }
        if single_ending {
            (segs, None)
        } else {
            (segs, Some(tokens[last - 1] - tb))
        }
    } else {
        let mut end = window_seconds;
        if let Some(&t) = tokens.iter().rev().find(|&&t| is_ts(t)) {
            if t != tb {
                end = (t - tb) as f64 * SECONDS_PER_TOKEN;
            }
        }
        let t = text(tokens);
        if !t.is_empty() {
            segs.push(RawSegment {
                start: 0.0,
                end,
                tokens: t,
                timed: tokens.to_vec(),
            });
        }
        (segs, None)
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Log-probabilities computed in f64 with libm's `exp` and `ln`.
    fn reference(x: &[f32]) -> Vec<f64> {
        let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let s: f64 = x.iter().map(|&v| (v as f64 - m).exp()).sum();
        x.iter().map(|&v| v as f64 - m - s.ln()).collect()
    }

    #[test]
    fn avx512_builds_equal_the_portable_ones_bit_for_bit() {
        if !avx512() {
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for n in [1, 7, 16, 77, 1000, 51_865] {
            let mut x: Vec<f32> = (0..n).map(|_| rng.gen_range(-30.0..30.0)).collect();
            for i in (0..n).step_by(3).skip(1) {
                x[i] = f32::NEG_INFINITY;
            }
            // SAFETY: `avx512()` checked the CPU.
            let fast = unsafe { avx512::log_sum_exp(&x) };
            assert_eq!(fast.to_bits(), log_sum_exp_portable(&x).to_bits(), "n {n}");
            let (mut a, mut b) = (x.clone(), x);
            // SAFETY: as above.
            unsafe { avx512::log_softmax(&mut a) };
            log_softmax_portable(&mut b);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "n {n}");
        }
    }

    #[test]
    fn log_softmax_and_log_sum_exp_match_an_f64_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for n in [1, 7, 77, 1000, 51_865] {
            let mut x: Vec<f32> = (0..n).map(|_| rng.gen_range(-30.0..30.0)).collect();
            // Suppressed tokens, as the filters leave them.
            for i in (0..n).step_by(5).skip(1) {
                x[i] = f32::NEG_INFINITY;
            }
            let want = reference(&x);
            let lse = log_sum_exp(&x) as f64;
            assert!((lse - (x[0] as f64 - want[0])).abs() < 1e-5, "n {n}: {lse}");
            let mut got = x.clone();
            log_softmax(&mut got);
            for (g, w) in got.iter().zip(&want) {
                if w.is_infinite() {
                    assert_eq!(*g, f32::NEG_INFINITY);
                } else {
                    assert!(
                        (*g as f64 - w).abs() < 1e-5 * (1.0 + w.abs()),
                        "n {n}: {g} vs {w}"
                    );
                }
            }
        }
        let mut all_suppressed = vec![f32::NEG_INFINITY; 9];
        log_softmax(&mut all_suppressed);
        assert!(all_suppressed.iter().all(|v| *v == f32::NEG_INFINITY));
        assert_eq!(log_sum_exp(&all_suppressed), f32::NEG_INFINITY);
    }
}
