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
/// and step, so libm's scalar `exp` was a good part of a beam step. `x[i]`
/// goes to lane `(lane0 + i) % 8`: a row's tail summed with `lane0` = its
/// start sums as the whole row does when everything before it is -inf.
#[inline(always)]
fn sum_exp_shifted(x: &[f32], m: f32, lane0: usize) -> f64 {
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
    // Lane `l` of the loop above holds the terms of lane `(lane0 + l) % 8`.
    let mut lanes = [0f64; 8];
    for (l, a) in acc.iter().enumerate() {
        lanes[(lane0 + l) % 8] = *a;
    }
    lanes.iter().sum()
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

/// `m + ln Σ e^(x - m)` (`m` the largest of `x`) in f64, the terms in the
/// lanes of [`sum_exp_shifted`]; -inf when every `x` is.
#[inline(always)]
fn log_normaliser_portable(x: &[f32], lane0: usize) -> f64 {
    let m = max_of(x);
    if m == f32::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    m as f64 + sum_exp_shifted(x, m, lane0).ln()
}

#[inline(always)]
fn log_softmax_portable(logits: &mut [f32]) {
    let lse = log_normaliser_portable(logits, 0);
    if lse == f64::NEG_INFINITY {
        return;
    }
    for v in logits.iter_mut() {
        *v = log_prob(*v, lse);
    }
}

/// The portable functions compiled for AVX-512 and for AVX2 (the same
/// operations in the same order, no FMA contraction: bit-identical results,
/// sixteen or eight lanes wide). A beam step runs them over 5 × 51,865
/// logits.
macro_rules! isa_build {
    ($name:ident, $feat:literal, $what:literal) => {
        #[cfg(target_arch = "x86_64")]
        mod $name {
            /// [`super::log_normaliser_portable`].
            ///
            /// # Safety
            #[doc = $what]
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn log_normaliser(x: &[f32], lane0: usize) -> f64 {
                super::log_normaliser_portable(x, lane0)
            }

            /// [`super::log_softmax_portable`].
            ///
            /// # Safety
            #[doc = $what]
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn log_softmax(logits: &mut [f32]) {
                super::log_softmax_portable(logits)
            }

            /// [`super::max_of`].
            ///
            /// # Safety
            #[doc = $what]
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn max_of(x: &[f32]) -> f32 {
                super::max_of(x)
            }
        }
    };
}

isa_build!(
    avx512,
    "avx512f,avx512vl,avx512bw,avx512dq",
    "The CPU must support AVX-512 F/VL/BW/DQ."
);
isa_build!(avx2, "avx2", "The CPU must support AVX2.");

/// A logit's log-probability in a row of log-normaliser `lse` (what
/// [`log_softmax`] writes).
#[inline(always)]
pub fn log_prob(logit: f32, lse: f64) -> f32 {
    (logit as f64 - lse) as f32
}

/// Which build of the row functions runs (the detected ISA, `EMILY_ISA` caps it).
fn isa() -> emily_kernels::simd::Isa {
    emily_kernels::simd::isa()
}

/// [`log_normaliser_portable`] on the best build for the CPU.
fn log_normaliser_from(x: &[f32], lane0: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    match isa() {
        // SAFETY: the CPU has AVX-512 F/VL/BW/DQ (the detected ISA).
        emily_kernels::simd::Isa::Avx512 => return unsafe { avx512::log_normaliser(x, lane0) },
        // SAFETY: the CPU has AVX2 (the detected ISA).
        emily_kernels::simd::Isa::Avx2 => return unsafe { avx2::log_normaliser(x, lane0) },
        emily_kernels::simd::Isa::Baseline => {}
    }
    log_normaliser_portable(x, lane0)
}

/// The largest of `x` (-inf for none) on the best build for the CPU.
pub fn max_logit(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    match isa() {
        // SAFETY: the CPU has AVX-512 F/VL/BW/DQ (the detected ISA).
        emily_kernels::simd::Isa::Avx512 => return unsafe { avx512::max_of(x) },
        // SAFETY: the CPU has AVX2 (the detected ISA).
        emily_kernels::simd::Isa::Avx2 => return unsafe { avx2::max_of(x) },
        emily_kernels::simd::Isa::Baseline => {}
    }
    max_of(x)
}

/// The log-normaliser of a row (`ln Σ e^x`, computed as [`log_softmax`]
/// does, in f64): [`log_prob`] of a logit and it give the logit's
/// log-probability without rewriting the row. -inf when every logit is.
pub fn log_normaliser(x: &[f32]) -> f64 {
    log_normaliser_from(x, 0)
}

fn log_sum_exp(x: &[f32]) -> f32 {
    log_normaliser(x) as f32
}

/// OpenAI's `ApplyTimestampRules` for the tokens `generated` so far (after the
/// prompt), with the first timestamp at most `max_initial_timestamp_steps`
/// steps of 20 ms in; returns the row's [`log_normaliser`] afterwards (from
/// the sums the last rule computes anyway).
fn timestamp_rules(
    logits: &mut [f32],
    generated: &[u32],
    sp: &SpecialTokens,
    max_initial_timestamp_steps: u32,
) -> f64 {
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
    let norm_all = log_normaliser(logits);
    let lse_all = norm_all as f32;
    let ts_lse = log_sum_exp(&logits[tb..]) - lse_all;
    let max_text = max_logit(&logits[..tb]) - lse_all;
    if ts_lse > max_text {
        fill(logits, 0, tb);
        // Only the timestamps are left: the whole row's sum is theirs, in
        // the whole row's lanes.
        return log_normaliser_from(&logits[tb..], tb);
    }
    norm_all
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
        self.apply_suppressions(logits, generated);
        if self.timestamps {
            self.timestamp_rules(logits, generated);
        }
    }

    /// [`LogitFilter::apply`], returning the row's [`log_normaliser`]
    /// afterwards (bit for bit; with timestamp rules, from the sums they
    /// compute anyway): the row stays logits, [`log_prob`] gives any one's
    /// log-probability.
    pub fn apply_normaliser(&self, logits: &mut [f32], generated: &[u32]) -> f64 {
        self.apply_suppressions(logits, generated);
        if self.timestamps {
            self.timestamp_rules(logits, generated)
        } else {
            log_normaliser(logits)
        }
    }

    /// The timestamp rules with this filter's settings (see [`timestamp_rules`]).
    fn timestamp_rules(&self, logits: &mut [f32], generated: &[u32]) -> f64 {
        timestamp_rules(
            logits,
            generated,
            &self.special,
            self.max_initial_timestamp_steps,
        )
    }

    fn apply_suppressions(&self, logits: &mut [f32], generated: &[u32]) {
        suppress(logits, &self.suppress);
        if generated.is_empty() {
            suppress(logits, &self.suppress_begin);
        }
    }
}

/// `logits` turned into log-probabilities in place (`-inf` stays `-inf`).
pub fn log_softmax(logits: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match isa() {
        // SAFETY: the CPU has AVX-512 F/VL/BW/DQ (the detected ISA).
        emily_kernels::simd::Isa::Avx512 => return unsafe { avx512::log_softmax(logits) },
        // SAFETY: the CPU has AVX2 (the detected ISA).
        emily_kernels::simd::Isa::Avx2 => return unsafe { avx2::log_softmax(logits) },
        emily_kernels::simd::Isa::Baseline => {}
    }
    log_softmax_portable(logits)
}

emily_kernels::simd_dispatch! {
    /// The first position holding NaN or an infinity, if any (raw logits are
    /// always finite; suppression sets -inf only afterwards), on the best
    /// build for the CPU: a beam step checks 5 × 51,865 logits on the
    /// decoding thread. A value is NaN or infinite exactly when its exponent
    /// bits are all ones, the largest value the field can hold: each chunk
    /// keeps the largest exponent field of its values (an integer maximum in
    /// sixteen lanes, branch-free) and is searched only when that is all
    /// ones. (The earlier test, a sum of `v · 0` per lane over chunks of 256
    /// outside the per-ISA builds, ran 120 µs for a beam step's logits on the
    /// Xeon with AMX; this one 40–42 µs.) Loops, not closures, so that every
    /// build compiles the scan with its features.
    pub fn first_non_finite(logits: &[f32]) -> Option<usize> {
        const CHUNK: usize = 1024;
        const EXPONENT: u32 = 0x7f80_0000;
        for (c, chunk) in logits.chunks(CHUNK).enumerate() {
            let mut lanes = [0u32; 16];
            let mut parts = chunk.chunks_exact(16);
            for part in &mut parts {
                for (l, &v) in lanes.iter_mut().zip(part) {
                    *l = (*l).max(v.to_bits() & EXPONENT);
                }
            }
            let mut largest = 0;
            for &l in &lanes {
                largest = largest.max(l);
            }
            for &v in parts.remainder() {
                largest = largest.max(v.to_bits() & EXPONENT);
            }
            if largest == EXPONENT {
                for (i, v) in chunk.iter().enumerate() {
                    if !v.is_finite() {
                        return Some(c * CHUNK + i);
                    }
                }
            }
        }
        None
    }
}

/// Index of the largest logit (the first among ties).
pub use crate::argmax::argmax;

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

    /// A row of `n` logits in ±30 with every third one after the first -inf.
    fn row(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<f32> {
        let mut x: Vec<f32> = (0..n).map(|_| rng.gen_range(-30.0..30.0)).collect();
        for i in (0..n).step_by(3).skip(1) {
            x[i] = f32::NEG_INFINITY;
        }
        x
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    #[test]
    fn isa_builds_equal_the_portable_ones_bit_for_bit() {
        use emily_kernels::simd::Isa;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for n in [1, 7, 16, 77, 1000, 51_865] {
            let x = row(&mut rng, n);
            let mut want = x.clone();
            log_softmax_portable(&mut want);
            for lane0 in [0, 3] {
                let norm = log_normaliser_portable(&x, lane0).to_bits();
                if isa() == Isa::Avx512 {
                    // SAFETY: the detected ISA.
                    let fast = unsafe { avx512::log_normaliser(&x, lane0) };
                    assert_eq!(fast.to_bits(), norm, "avx512 n {n}");
                }
                if matches!(isa(), Isa::Avx2 | Isa::Avx512) {
                    // SAFETY: the detected ISA (AVX-512 hosts have AVX2).
                    let fast = unsafe { avx2::log_normaliser(&x, lane0) };
                    assert_eq!(fast.to_bits(), norm, "avx2 n {n}");
                }
            }
            let mut got = x.clone();
            log_softmax(&mut got);
            assert_eq!(bits(&got), bits(&want), "n {n}");
            assert_eq!(max_logit(&x).to_bits(), max_of(&x).to_bits(), "n {n}");
        }
    }

    /// The filter's normaliser is the one `log_softmax` computes after the
    /// filter, bit for bit: with and without timestamp rules, at the first
    /// step and later, and when the rules leave only the timestamps (whose
    /// start is not a multiple of the eight lanes).
    #[test]
    fn filter_normaliser_is_log_softmax_s() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        // tiny.en's ids: the timestamps start at 50,363 (3 mod 8).
        let sp = SpecialTokens {
            eot: 50_256,
            sot: 50_257,
            translate: 50_357,
            transcribe: 50_358,
            sot_lm: Some(50_359),
            sot_prev: 50_360,
            no_speech: Some(50_361),
            no_timestamps: 50_362,
            timestamp_begin: 50_363,
            languages: Vec::new(),
        };
        let n = 51_864;
        let mut filled = 0;
        for timestamps in [false, true] {
            let filter = LogitFilter {
                suppress: vec![1, 2, 7, 50_359],
                suppress_begin: vec![220, sp.eot],
                timestamps,
                max_initial_timestamp_steps: MAX_INITIAL_TIMESTAMP_STEPS,
                special: sp.clone(),
            };
            let ts = sp.timestamp_begin;
            for generated in [vec![], vec![400], vec![400, ts + 3], vec![ts + 3, 400, 500]] {
                for cut in [false, true] {
                    let mut x: Vec<f32> = (0..n).map(|_| rng.gen_range(-10.0..10.0)).collect();
                    if cut {
                        // Timestamps likelier than any text token: the text
                        // is cut (terms over a wide range: their sum's
                        // rounding depends on the lanes).
                        for v in &mut x[ts as usize..] {
                            *v = rng.gen_range(-60.0..20.0);
                        }
                    }
                    let mut a = x.clone();
                    let norm = filter.apply_normaliser(&mut a, &generated);
                    let mut b = x;
                    filter.apply(&mut b, &generated);
                    assert_eq!(bits(&a), bits(&b));
                    filled += usize::from(b[..ts as usize].iter().all(|v| v.is_infinite()));
                    assert_eq!(norm.to_bits(), log_normaliser(&b).to_bits());
                    let mut want = b.clone();
                    log_softmax(&mut want);
                    let got: Vec<f32> = b.iter().map(|&v| log_prob(v, norm)).collect();
                    assert_eq!(bits(&got), bits(&want), "{timestamps} {generated:?} {cut}");
                }
            }
        }
        assert!(filled >= 3, "the text-cut case ran {filled} times");
    }

    #[test]
    fn first_non_finite_finds_the_first_nan_or_infinity() {
        for n in [
            0usize, 1, 7, 255, 256, 257, 1000, 1023, 1024, 1025, 4097, 51_865,
        ] {
            // Finite values of every size, the largest and subnormal ones too.
            let x: Vec<f32> = (0..n)
                .map(|i| match i % 5 {
                    0 => f32::MAX,
                    1 => -f32::MAX,
                    2 => f32::from_bits(1 + i as u32),
                    _ => (i as f32 - 500.0) * 1e30,
                })
                .collect();
            assert_eq!(first_non_finite(&x), None, "n {n}");
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                for at in [0, n / 3, n.saturating_sub(1)] {
                    if at >= n {
                        continue;
                    }
                    let mut y = x.clone();
                    y[at] = bad;
                    if at + 300 < n {
                        y[at + 300] = f32::NAN;
                    }
                    assert_eq!(first_non_finite(&y), Some(at), "n {n} {bad} at {at}");
                }
            }
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
