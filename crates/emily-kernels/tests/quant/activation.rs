//! 8-bit activation blocks against a scalar reading of their definition:
//! `d = max|x| / 127`, codes `round(x · (1/d))` rounded half away from zero,
//! the scaled sums of each block and half-block; NaN or infinity poisons the
//! scale; a block too small for a finite `1/d` is flushed to zero. Bit-exact, at odd row counts and depths, on whichever path
//! `EMILY_ISA` leaves (AVX-512 or portable).

use emily_kernels::quant::Q8Activations;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// `(codes, scale, d·Σq per 32, d·Σq per 16)` of one block, scalar.
fn reference_block(x: &[f32]) -> (Vec<i8>, f32, f32, [f32; 2]) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let mut scale = if x.iter().all(|v| v.is_finite()) {
        amax / 127.0
    } else {
        f32::NAN
    };
    let mut inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    if inv.is_infinite() {
        // Too small for 1/d: flushed to zero.
        (scale, inv) = (0.0, 0.0);
    }
    let codes: Vec<i8> = x
        .iter()
        .map(|&v| (v * inv).round().clamp(-127.0, 127.0) as i8)
        .collect();
    let sum = |c: &[i8]| c.iter().map(|&c| c as i32).sum::<i32>();
    let (s0, s1) = (sum(&codes[..16]), sum(&codes[16..]));
    (
        codes,
        scale,
        scale * (s0 + s1) as f32,
        [scale * s0 as f32, scale * s1 as f32],
    )
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn check(x: &[f32], m: usize, k: usize) {
    let act = Q8Activations::quantize(x, m, k);
    assert_eq!((act.m, act.k), (m, k));
    for (b, block) in x.chunks_exact(32).enumerate() {
        let (codes, d, s32, s16) = reference_block(block);
        assert_eq!(&act.qs[b * 32..b * 32 + 32], &codes[..], "block {b} codes");
        assert!(same(act.d[b], d), "block {b} scale {} vs {d}", act.d[b]);
        assert!(same(act.sum32[b], s32), "block {b} sum32");
        assert!(same(act.sum16[2 * b], s16[0]), "block {b} sum16[0]");
        assert!(same(act.sum16[2 * b + 1], s16[1]), "block {b} sum16[1]");
        if d == 0.0 {
            assert!(block.iter().all(|v| v.abs() < 3.8e-37), "block {b} flushed");
            assert!(codes.iter().all(|&c| c == 0));
        } else if d.is_finite() {
            // The definition's bound, read in f64.
            for (&v, &c) in block.iter().zip(&codes) {
                let err = (v as f64 - d as f64 * c as f64).abs();
                assert!(
                    err <= d as f64 * 0.5 * (1.0 + 1e-5),
                    "block {b}: {v} -> {c} (d {d})"
                );
            }
        }
    }
}

#[test]
fn activation_blocks_match_the_scalar_definition() {
    let mut rng = StdRng::seed_from_u64(31);
    for (m, blocks) in [(1, 1), (1, 7), (7, 3), (2, 77), (77, 2), (3, 152)] {
        let k = 32 * blocks;
        let scale = [1e-3f32, 1.0, 300.0][blocks % 3];
        let x: Vec<f32> = (0..m * k)
            .map(|_| rng.gen_range(-1.0f32..1.0) * scale)
            .collect();
        check(&x, m, k);
    }
}

#[test]
fn ties_round_away_from_zero_and_bad_blocks_poison_the_scale() {
    // max |x| = 127 gives d = 1: the codes are x rounded, ties away from 0.
    let mut x: Vec<f32> = (0..32).map(|i| i as f32 - 15.5).collect();
    x[31] = 127.0;
    x[30] = -2.5;
    x[29] = 0.5;
    x[28] = -0.5;
    // A zero block, a NaN block, an infinite block, a tiny block.
    x.extend([0.0f32; 32]);
    let mut nan = [0.25f32; 32];
    nan[7] = f32::NAN;
    x.extend(nan);
    let mut inf = [-3.0f32; 32];
    inf[31] = f32::NEG_INFINITY;
    x.extend(inf);
    x.extend((0..32).map(|i| (i as f32 - 16.0) * 1e-30));
    // Subnormal values: 1/d overflows to infinity (0 · inf is NaN).
    x.extend((0..32).map(|i| (i as f32 - 16.0) * 1e-41));
    check(&x, 1, 192);
    let act = Q8Activations::quantize(&x, 1, 192);
    assert_eq!(act.d[0], 1.0);
    assert_eq!(&act.qs[28..32], &[-1, 1, -3, 127]);
    assert_eq!(act.qs[0], -16, "-15.5 rounds away from zero");
    assert_eq!(act.qs[1], -15, "-14.5 rounds away from zero");
    assert!(act.d[1] == 0.0 && act.qs[32..64].iter().all(|&c| c == 0));
    assert!(act.d[2].is_nan() && act.d[3].is_nan());
    assert!(act.d[4] > 0.0, "1e-29 values keep their step");
    assert!(
        act.d[5] == 0.0 && act.qs[160..].iter().all(|&c| c == 0),
        "subnormal block flushed"
    );
}
