//! RoPE kernel against a float64 reference.

mod isa_children;

use emily_kernels::fast::{rope_bf16, rope_f16, rope_f32, HeadStrides, Positions, RopeParams};
use half::{bf16, f16};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;

fn randn(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// float64 RoPE of a logical `(batch, heads, seq, head_dim)` tensor read through
/// `p.x_strides`; returns the output in contiguous `(B, H, T, D)` order.
fn rope_ref(x: &[f32], p: &RopeParams<'_>) -> Vec<f64> {
    let half = p.dims / 2;
    let inv: Vec<f64> = match p.freqs {
        Some(f) => f.iter().map(|&v| v as f64).collect(),
        None => (0..half)
            .map(|i| (p.base as f64).powf(-2.0 * i as f64 / p.dims as f64))
            .collect(),
    };
    let mut out = Vec::new();
    for b in 0..p.batch {
        for h in 0..p.heads {
            for t in 0..p.seq {
                let pos = match p.positions {
                    Positions::Offset(o) => (o + t) as f64,
                    Positions::PerToken(v) => {
                        v[if v.len() == p.seq { t } else { b * p.seq + t }] as f64
                    }
                    Positions::PerTokenI64(v) => {
                        v[if v.len() == p.seq { t } else { b * p.seq + t }] as f64
                    }
                };
                let row = &x[p.x_strides.offset(b, h, t)..][..p.head_dim];
                let mut o: Vec<f64> = row.iter().map(|&v| v as f64).collect();
                for (i, &f) in inv.iter().enumerate() {
                    let theta = pos * p.scale as f64 * f;
                    let (s, c) = theta.sin_cos();
                    let (ia, ib) = if p.traditional {
                        (2 * i, 2 * i + 1)
                    } else {
                        (i, i + half)
                    };
                    let (a, bv) = (row[ia] as f64, row[ib] as f64);
                    o[ia] = a * c - bv * s;
                    o[ib] = bv * c + a * s;
                }
                out.extend(o);
            }
        }
    }
    out
}

/// Runs the kernel and returns max |kernel - reference| over all elements, reading
/// the output back through `p.out_strides`.
fn run(x: &[f32], p: &RopeParams<'_>) -> f64 {
    let len = p
        .out_strides
        .required_len(p.batch, p.heads, p.seq, p.head_dim);
    let mut out = vec![f32::NAN; len];
    rope_f32(x, &mut out, p);
    let want = rope_ref(x, p);
    let mut worst = 0.0f64;
    let mut i = 0;
    for b in 0..p.batch {
        for h in 0..p.heads {
            for t in 0..p.seq {
                let o = &out[p.out_strides.offset(b, h, t)..][..p.head_dim];
                for &g in o {
                    worst = worst.max((g as f64 - want[i]).abs());
                    i += 1;
                }
            }
        }
    }
    worst
}

const TOL: f64 = 2e-6;

#[test]
fn split_and_traditional_at_many_shapes() {
    check_many_shapes();
}

#[test]
fn many_shapes_under_every_isa_cap() {
    if std::env::var("EMILY_ROPE_CHILD").is_ok() {
        check_many_shapes();
        return;
    }
    isa_children::run_under_isa_caps(
        "many_shapes_under_every_isa_cap",
        "EMILY_ROPE_CHILD",
        &["baseline", "avx2", "avx512"],
    );
}

/// Split halves and interleaved pairs at head sizes with and without the
/// fixed-length row paths (16, 64, 128) and with short tails (2, 24, 80).
fn check_many_shapes() {
    let mut seed = 0;
    for (batch, heads, seq, head_dim) in [
        (1, 1, 1, 2),
        (2, 2, 7, 16),
        (1, 3, 77, 24),
        (1, 1, 1000, 16),
        (2, 3, 3, 64),
        (1, 2, 77, 80),
        (2, 4, 130, 128),
    ] {
        for traditional in [false, true] {
            seed += 1;
            let x = randn(batch * heads * seq * head_dim, seed);
            let mut p = RopeParams::new(batch, heads, seq, head_dim);
            p.traditional = traditional;
            let err = run(&x, &p);
            assert!(
                err < TOL,
                "{batch}x{heads}x{seq}x{head_dim} trad={traditional}: {err:e}"
            );
        }
    }
}

#[test]
fn partial_dims_offset_scale_and_base() {
    let (batch, heads, seq, head_dim) = (2, 3, 9, 80);
    let x = randn(batch * heads * seq * head_dim, 7);
    for (dims, traditional, offset, scale, base) in [
        (32, false, 3, 1.0, 10_000.0),
        (32, true, 3, 1.0, 10_000.0),
        (64, false, 0, 0.25, 500_000.0),
        (2, true, 11, 2.0, 10_000.0),
        (0, false, 5, 1.0, 10_000.0),
    ] {
        let mut p = RopeParams::new(batch, heads, seq, head_dim);
        p.dims = dims;
        p.traditional = traditional;
        p.positions = Positions::Offset(offset);
        p.scale = scale;
        p.base = base;
        let err = run(&x, &p);
        assert!(
            err < TOL,
            "dims={dims} trad={traditional} offset={offset}: {err:e}"
        );
    }
}

#[test]
fn long_positions_stay_accurate() {
    // Angles up to ~8200 rad: an f32 angle would be off by ~5e-4 here.
    let (heads, seq, head_dim) = (2, 40, 128);
    let x = randn(heads * seq * head_dim, 8);
    for traditional in [false, true] {
        let mut p = RopeParams::new(1, heads, seq, head_dim);
        p.positions = Positions::Offset(8160);
        p.traditional = traditional;
        let err = run(&x, &p);
        assert!(err < TOL, "offset 8160 trad={traditional}: {err:e}");
    }
}

#[test]
fn per_token_positions_and_custom_freqs() {
    let (batch, heads, seq, head_dim) = (2, 2, 5, 16);
    let x = randn(batch * heads * seq * head_dim, 9);
    let shared: Vec<i32> = vec![4, 0, 9, 2000, 7];
    let per_batch: Vec<i64> = vec![0, 1, 2, 3, 4, 100, 101, 5000, -3, 6];
    let freqs: Vec<f32> = vec![1.0, 0.5, 0.125, 0.01, 1e-3, 3e-4];
    for traditional in [false, true] {
        let mut p = RopeParams::new(batch, heads, seq, head_dim);
        p.traditional = traditional;
        p.positions = Positions::PerToken(&shared);
        assert!(
            run(&x, &p) < TOL,
            "per-token shared positions trad={traditional}"
        );
        p.positions = Positions::PerTokenI64(&per_batch);
        assert!(
            run(&x, &p) < TOL,
            "per-(batch, token) positions trad={traditional}"
        );
        p.dims = 12;
        p.freqs = Some(&freqs);
        p.scale = 0.5;
        assert!(run(&x, &p) < TOL, "custom freqs trad={traditional}");
    }
}

#[test]
fn bshd_layouts_in_and_out() {
    for head_dim in [64, 16] {
        let (batch, heads, seq) = (2, 4, 70);
        let x = randn(batch * heads * seq * head_dim, 10);
        let mut p = RopeParams::new(batch, heads, seq, head_dim);
        p.positions = Positions::Offset(17);
        p.x_strides = HeadStrides::bshd(heads, seq, head_dim);
        assert!(run(&x, &p) < TOL, "D{head_dim} bshd in, bhsd out");
        p.out_strides = HeadStrides::bshd(heads, seq, head_dim);
        assert!(run(&x, &p) < TOL, "D{head_dim} bshd in and out");
        p.x_strides = HeadStrides::bhsd(heads, seq, head_dim);
        assert!(run(&x, &p) < TOL, "D{head_dim} bhsd in, bshd out");
    }
}

#[test]
fn large_call_takes_the_parallel_path() {
    let (heads, seq, head_dim) = (8, 1500, 64);
    let x = randn(heads * seq * head_dim, 11);
    let p = RopeParams::new(1, heads, seq, head_dim);
    let err = run(&x, &p);
    assert!(err < TOL, "1x8x1500x64: {err:e}");
}

#[test]
fn half_precision_entry_points() {
    // Each output is the f64 rotation of the widened inputs, rounded once: the
    // error is at most half an ulp of the result plus the f32 arithmetic.
    let (batch, heads, seq, head_dim) = (2, 3, 70, 80);
    let x = randn(batch * heads * seq * head_dim, 12);
    let mut p = RopeParams::new(batch, heads, seq, head_dim);
    p.dims = 64;
    p.positions = Positions::Offset(100);
    p.x_strides = HeadStrides::bshd(heads, seq, head_dim);
    for traditional in [false, true] {
        p.traditional = traditional;
        let xh: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
        let mut out = vec![f16::ZERO; xh.len()];
        rope_f16(&xh, &mut out, &p);
        let want = rope_ref(&xh.iter().map(|v| v.to_f32()).collect::<Vec<_>>(), &p);
        let worst = out
            .iter()
            .zip(&want)
            .map(|(g, &w)| (g.to_f64() - w).abs() / (w.abs().max(1e-2) * 4.9e-4 + 1e-7))
            .fold(0.0, f64::max);
        assert!(worst <= 1.01, "f16 trad={traditional}: {worst} half-ulps");

        let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
        let mut out = vec![bf16::ZERO; xb.len()];
        rope_bf16(&xb, &mut out, &p);
        let want = rope_ref(&xb.iter().map(|v| v.to_f32()).collect::<Vec<_>>(), &p);
        let worst = out
            .iter()
            .zip(&want)
            .map(|(g, &w)| (g.to_f64() - w).abs() / (w.abs().max(1e-2) * 3.9e-3 + 1e-7))
            .fold(0.0, f64::max);
        assert!(worst <= 1.01, "bf16 trad={traditional}: {worst} half-ulps");
    }
}

#[test]
#[should_panic(expected = "[rope] dims 7 must be even")]
fn odd_dims_are_rejected() {
    let mut p = RopeParams::new(1, 1, 1, 8);
    p.dims = 7;
    rope_f32(&[0.0; 8], &mut [0.0; 8], &p);
}

#[test]
#[should_panic(expected = "alias")]
fn aliasing_output_strides_are_rejected() {
    let mut p = RopeParams::new(1, 2, 2, 8);
    p.out_strides = HeadStrides {
        batch: 0,
        head: 4,
        seq: 8,
    };
    rope_f32(&[0.0; 32], &mut [0.0; 32], &p);
}
