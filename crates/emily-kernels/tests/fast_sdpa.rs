//! Scaled-dot-product attention kernel against a float64 reference, over every
//! mask kind, sinks, grouped-query heads, decode shapes and both layouts.

use emily_kernels::fast::{
    sdpa_bf16, sdpa_f16, sdpa_f32, sdpa_f32_f16_kv, Mask, MaskStrides, SdpaParams,
};
use half::{bf16, f16};
use rand::{rngs::StdRng, Rng, SeedableRng};

mod isa_children;
mod sdpa_common;
use sdpa_common::{randn, sdpa_ref};

/// Runs the kernel on random data and returns `(max abs error, output, reference)`.
fn check(p: &SdpaParams<'_>, seed: u64) -> (f64, Vec<f32>, Vec<f64>) {
    let ql = p
        .q_strides
        .required_len(p.batch, p.q_heads, p.q_len, p.head_dim);
    let kl = p
        .k_strides
        .required_len(p.batch, p.kv_heads, p.kv_len, p.head_dim);
    let vl = p
        .v_strides
        .required_len(p.batch, p.kv_heads, p.kv_len, p.v_head_dim);
    let (q, k, v) = (randn(ql, seed), randn(kl, seed + 1), randn(vl, seed + 2));
    let ol = p
        .out_strides
        .required_len(p.batch, p.q_heads, p.q_len, p.v_head_dim);
    let mut out = vec![f32::NAN; ol];
    sdpa_f32(&q, &k, &v, &mut out, p);
    let want = sdpa_ref(&q, &k, &v, p);
    let mut got = Vec::with_capacity(want.len());
    for b in 0..p.batch {
        for h in 0..p.q_heads {
            for t in 0..p.q_len {
                got.extend_from_slice(&out[p.out_strides.offset(b, h, t)..][..p.v_head_dim]);
            }
        }
    }
    let err = got
        .iter()
        .zip(&want)
        .map(|(&g, &w)| (g as f64 - w).abs())
        .fold(0.0, f64::max);
    (err, got, want)
}

const TOL: f64 = 1e-5;

fn assert_close(p: &SdpaParams<'_>, seed: u64, what: &str) -> Vec<f32> {
    let (err, got, _) = check(p, seed);
    assert!(err < TOL, "{what}: max abs error {err:e}");
    got
}

#[test]
fn unmasked_at_odd_shapes_and_head_dims() {
    let mut seed = 100;
    for (batch, heads, q_len, kv_len, d) in [
        (1, 1, 1, 1, 64),
        (2, 3, 3, 7, 80),
        (1, 2, 77, 77, 128),
        (2, 2, 65, 600, 64), // several key tiles with the online rescale
        (1, 1, 5, 3, 1),
        (1, 2, 19, 33, 7),
    ] {
        seed += 10;
        let p = SdpaParams::new(batch, heads, heads, q_len, kv_len, d);
        assert_close(&p, seed, &format!("{batch}x{heads}x{q_len}x{kv_len}x{d}"));
    }
}

#[test]
fn every_block_height_and_kernel_layout() {
    // Blocks of 1..=8 rows take the rows (decode) layout with AVX-512, 9..=16
    // the half-width lanes layout, more the full-width one; heights that are
    // not a multiple of the row group / lane count exercise the tails.
    for (i, q_len) in [1, 2, 3, 4, 5, 8, 9, 12, 16, 17, 33, 40]
        .into_iter()
        .enumerate()
    {
        for (kv_len, d) in [(13, 72), (600, 64)] {
            let mut p = SdpaParams::new(1, 1, 1, q_len, kv_len, d);
            assert_close(
                &p,
                80 + i as u64,
                &format!("rows {q_len} kv {kv_len} d {d}"),
            );
            p.mask = Mask::Causal;
            assert_close(
                &p,
                90 + i as u64,
                &format!("causal rows {q_len} kv {kv_len}"),
            );
        }
    }
}

/// Unmasked calls, whose lanes-layout tiles take the short exponential
/// (the rows layout of a few query rows keeps the Cephes one): 1, 7, 77 and
/// 1000 keys against 1, 7, 77 and 1000 queries, head sizes 64 and odd.
fn check_unmasked_key_counts() {
    let mut seed = 500;
    for kv_len in [1, 7, 77, 1000] {
        for (q_len, d) in [(1, 64), (7, 33), (77, 64), (1000, 64), (77, 7)] {
            seed += 1;
            let p = SdpaParams::new(1, 2, 2, q_len, kv_len, d);
            assert_close(&p, seed, &format!("unmasked {q_len}x{kv_len} d {d}"));
        }
    }
}

#[test]
fn unmasked_key_counts_under_every_isa_cap() {
    if std::env::var("EMILY_SDPA_UNMASKED_CHILD").is_ok() {
        check_unmasked_key_counts();
        return;
    }
    isa_children::run_under_isa_caps(
        "unmasked_key_counts_under_every_isa_cap",
        "EMILY_SDPA_UNMASKED_CHILD",
        &["baseline", "avx2", "avx512"],
    );
}

#[test]
fn whisper_encoder_length() {
    let p = SdpaParams::new(1, 2, 2, 1500, 1500, 64);
    assert_close(&p, 7, "1x2x1500x1500x64");
}

#[test]
fn value_width_differs_from_key_width() {
    let mut p = SdpaParams::new(2, 2, 1, 9, 700, 80);
    p.v_head_dim = 48;
    p.out_strides = emily_kernels::fast::HeadStrides::bhsd(2, 9, 48);
    p.v_strides = emily_kernels::fast::HeadStrides::bhsd(1, 700, 48);
    assert_close(&p, 8, "d=80 dv=48");
}

#[test]
fn causal_square_rectangular_and_overlong_queries() {
    for (q_len, kv_len) in [
        (5, 5),
        (70, 70),
        (77, 77),
        (3, 10),
        (1, 9),
        (100, 900),
        (700, 700),
        (6, 4),
    ] {
        let mut p = SdpaParams::new(1, 2, 2, q_len, kv_len, 64);
        p.mask = Mask::Causal;
        let got = assert_close(&p, 9 + q_len as u64, &format!("causal {q_len}x{kv_len}"));
        if q_len > kv_len {
            // Query i sees keys j <= i - 2: the first two rows see nothing.
            assert!(
                got[..2 * 64].iter().all(|&x| x == 0.0),
                "fully masked causal rows not zero"
            );
        }
    }
}

#[test]
fn causal_band_at_a_cache_offset_with_and_without_a_window() {
    // (q_len, kv_len, shift, window): prefill at offset 0 of a larger cache,
    // decode steps, windows inside one tile and across key tiles, a window
    // wider than the cache, and a negative shift (rows with nothing visible).
    let cases: [(usize, usize, isize, Option<usize>); 12] = [
        (7, 16, 0, None),
        (1, 16, 6, None),
        (1, 1000, 700, None),
        (5, 77, 30, Some(7)),
        (1, 77, 76, Some(1)),
        (1, 1000, 999, Some(300)),
        (77, 1000, 600, Some(256)),
        (70, 600, 0, Some(33)),
        (3, 9, 2, Some(100)),
        (4, 9, -2, Some(3)),
        (1, 513, 512, Some(512)),
        (66, 100, 10, Some(0)),
    ];
    for (i, &(tq, tk, shift, window)) in cases.iter().enumerate() {
        for (hq, hkv) in [(6, 2), (3, 3), (8, 1)] {
            let mut p = SdpaParams::new(2, hq, hkv, tq, tk, 24);
            p.mask = Mask::CausalBand { shift, window };
            let got = assert_close(&p, 900 + i as u64, &format!("case {i} heads {hq}/{hkv}"));
            assert!(got.iter().all(|x| x.is_finite()));
        }
    }
    // The band equals the same mask given as a boolean tensor.
    let (tq, tk, shift, w) = (9, 40, 20, 5usize);
    let keep: Vec<u8> = (0..tq * tk)
        .map(|e| {
            let (i, j) = ((e / tk) as isize, (e % tk) as isize);
            (j <= i + shift && j > i + shift - w as isize) as u8
        })
        .collect();
    let mut band = SdpaParams::new(1, 4, 2, tq, tk, 16);
    band.mask = Mask::CausalBand {
        shift,
        window: Some(w),
    };
    let mut boolean = band;
    boolean.mask = Mask::Boolean {
        data: &keep,
        strides: MaskStrides::broadcast([1, 1, tq, tk]),
    };
    let (a, b) = (check(&band, 5).1, check(&boolean, 5).1);
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-6, "band vs boolean {diff}");
}

#[test]
fn additive_masks_with_inf_entries_broadcast_and_fully_masked_rows() {
    let (batch, heads, q_len, kv_len) = (2, 2, 6, 37);
    let mut full = randn(batch * heads * q_len * kv_len, 20);
    for (n, x) in full.iter_mut().enumerate() {
        if n % 5 == 0 {
            *x = f32::NEG_INFINITY;
        }
    }
    // Fully mask row (b=1, h=0, i=2); give row (0, 1, 3) some -1e9 entries.
    let at = |b: usize, h: usize, i: usize| ((b * heads + h) * q_len + i) * kv_len;
    full[at(1, 0, 2)..at(1, 0, 2) + kv_len].fill(f32::NEG_INFINITY);
    full[at(0, 1, 3)..at(0, 1, 3) + kv_len - 3].fill(-1e9);
    let mut p = SdpaParams::new(batch, heads, heads, q_len, kv_len, 64);
    p.mask = Mask::Additive {
        data: &full,
        strides: MaskStrides::broadcast([batch, heads, q_len, kv_len]),
    };
    let got = assert_close(&p, 21, "full additive mask");
    let row = |b: usize, h: usize, i: usize| &got[((b * heads + h) * q_len + i) * 64..][..64];
    assert!(
        row(1, 0, 2).iter().all(|&x| x == 0.0),
        "fully masked row must be zeros"
    );
    assert!(
        row(0, 1, 3).iter().any(|&x| x != 0.0),
        "-1e9 entries do not mask"
    );

    // One (q, k) mask shared by every batch entry and head, spanning key tiles.
    let shared = randn(q_len * 1100, 22);
    let mut p = SdpaParams::new(batch, heads, 1, q_len, 1100, 64);
    p.mask = Mask::Additive {
        data: &shared,
        strides: MaskStrides::broadcast([1, 1, q_len, 1100]),
    };
    assert_close(&p, 23, "broadcast (1,1,q,k) additive mask");
}

#[test]
fn a_row_of_large_negative_biases_is_not_fully_masked() {
    // Every entry -1e9: in f32 the O(1) scores vanish below the resolution of
    // -1e9 (ulp 64), so all keys tie and the row is the plain mean of V (what
    // any f32 implementation, composed or fused, computes) -- not zeros.
    let (q_len, kv_len, d) = (2, 40, 64);
    let bias = vec![-1e9f32; q_len * kv_len];
    let (q, k, v) = (
        randn(q_len * d, 70),
        randn(kv_len * d, 71),
        randn(kv_len * d, 72),
    );
    let mut p = SdpaParams::new(1, 1, 1, q_len, kv_len, d);
    p.mask = Mask::Additive {
        data: &bias,
        strides: MaskStrides::broadcast([1, 1, q_len, kv_len]),
    };
    let mut out = vec![f32::NAN; q_len * d];
    sdpa_f32(&q, &k, &v, &mut out, &p);
    for i in 0..q_len {
        for x in 0..d {
            let mean = (0..kv_len).map(|j| v[j * d + x] as f64).sum::<f64>() / kv_len as f64;
            let got = out[i * d + x] as f64;
            assert!(
                (got - mean).abs() < 1e-5,
                "row {i} feature {x}: {got} vs mean {mean}"
            );
        }
    }
}

#[test]
fn boolean_masks() {
    let (batch, heads, q_len, kv_len) = (2, 4, 5, 300);
    let mut rng = StdRng::seed_from_u64(30);
    let mut keep: Vec<u8> = (0..batch * q_len * kv_len)
        .map(|_| rng.gen_bool(0.7) as u8)
        .collect();
    keep[(q_len + 1) * kv_len..(q_len + 2) * kv_len].fill(0); // (b=1, i=1) sees nothing
    let mut p = SdpaParams::new(batch, heads, 2, q_len, kv_len, 80);
    p.mask = Mask::Boolean {
        data: &keep,
        strides: MaskStrides::broadcast([batch, 1, q_len, kv_len]),
    };
    let got = assert_close(&p, 31, "boolean (b,1,q,k) mask with GQA");
    for h in 0..heads {
        let row = &got[((heads + h) * q_len + 1) * 80..][..80];
        assert!(row.iter().all(|&x| x == 0.0), "all-false row must be zeros");
    }
}

/// A batch decoding at one offset over a static KV cache: each row keeps its
/// real keys (after its left padding, up to the offset) and masks the rest of
/// the cache. The kernel stops at each block's last kept key; the result
/// must not change (decode and prefill shapes, both layouts, a fully masked
/// row, keys ending on an odd tile boundary).
#[test]
fn key_padding_masks_over_a_static_cache() {
    let (batch, heads, kv_heads, kv_len, d) = (3, 6, 2, 1000, 64);
    for (q_len, filled, seed) in [(1usize, 77usize, 60u64), (7, 301, 62), (1, 1, 64)] {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut keep = vec![0u8; batch * q_len * kv_len];
        for b in 0..batch {
            let pad = rng.gen_range(0..filled);
            for i in 0..q_len {
                let row = &mut keep[(b * q_len + i) * kv_len..][..kv_len];
                // Causal within the filled part: query i sees keys up to
                // filled - q_len + i.
                let last = (filled + i).saturating_sub(q_len);
                row[pad..=last.max(pad)].fill(1);
            }
        }
        // Row (b=2, i=0) sees nothing.
        keep[2 * q_len * kv_len..][..kv_len].fill(0);
        let mut p = SdpaParams::new(batch, heads, kv_heads, q_len, kv_len, d);
        p.mask = Mask::Boolean {
            data: &keep,
            strides: MaskStrides::broadcast([batch, 1, q_len, kv_len]),
        };
        let got = assert_close(
            &p,
            seed + 1,
            &format!("key padding q {q_len}, {filled} filled"),
        );
        for h in 0..heads {
            let row = &got[(2 * heads + h) * q_len * d..][..d];
            assert!(row.iter().all(|&x| x == 0.0), "all-false row must be zeros");
        }
    }
}

#[test]
fn sinks_with_and_without_masks() {
    let sinks = [0.5f32, -1.0, 3.0, f32::NEG_INFINITY];
    let mut p = SdpaParams::new(1, 4, 4, 7, 530, 64);
    p.sinks = Some(&sinks);
    assert_close(&p, 40, "sinks");
    p.mask = Mask::Causal;
    assert_close(&p, 41, "sinks + causal");

    // A fully masked row with a sink: all weight on the sink, output zeros.
    let mut bias = vec![0.0f32; 7 * 530];
    bias[..530].fill(f32::NEG_INFINITY);
    p.mask = Mask::Additive {
        data: &bias,
        strides: MaskStrides::broadcast([1, 1, 7, 530]),
    };
    let got = assert_close(&p, 42, "sinks + additive");
    assert!(
        got[..64].iter().all(|&x| x == 0.0),
        "masked row with sink must be zeros"
    );
}

/// Causal calls of training shapes (small heads, short sequences; on AVX2
/// and the portable kernels the strip forward takes them): head sizes 1 to
/// 128 and unequal, lengths around a strip (16 rows), several strips with a
/// partial last one, keys past the strips' limits, queries longer than keys.
fn check_causal_training_shapes() {
    let mut seed = 400;
    for (q_heads, kv_heads, q_len, kv_len, d, dv) in [
        (4, 2, 64, 64, 16, 16),
        (2, 1, 16, 16, 1, 1),
        (2, 2, 17, 17, 7, 7),
        (4, 2, 77, 77, 16, 5),
        (2, 1, 33, 33, 32, 24),
        (2, 1, 40, 300, 16, 16),
        (2, 2, 20, 10, 8, 8),
        (1, 1, 1000, 1000, 16, 16),
        (4, 2, 64, 64, 64, 64),
        (2, 1, 40, 100, 128, 72),
        (2, 2, 77, 77, 40, 96),
        (2, 1, 129, 129, 64, 64),
    ] {
        seed += 1;
        let mut p = SdpaParams::new(2, q_heads, kv_heads, q_len, kv_len, d).with_v_head_dim(dv);
        p.mask = Mask::Causal;
        let got = assert_close(
            &p,
            seed,
            &format!("causal {q_heads}/{kv_heads} {q_len}x{kv_len} d {d}/{dv}"),
        );
        if q_len > kv_len {
            let blind = (q_len - kv_len) * dv;
            assert!(
                got[..blind].iter().all(|&x| x == 0.0),
                "rows seeing nothing"
            );
        }
    }
}

#[test]
fn causal_training_shapes_under_every_isa_cap() {
    if std::env::var("EMILY_SDPA_TRAIN_CHILD").is_ok() {
        check_causal_training_shapes();
        return;
    }
    isa_children::run_under_isa_caps(
        "causal_training_shapes_under_every_isa_cap",
        "EMILY_SDPA_TRAIN_CHILD",
        &["baseline", "avx2", "avx512"],
    );
}

#[test]
fn grouped_query_heads_and_decode() {
    let mut seed = 50;
    for (q_heads, kv_heads, q_len, kv_len, d) in [
        (4, 2, 3, 5, 8),
        (32, 8, 1, 700, 128), // decode, group of 4 in one block
        (8, 1, 1, 33, 64),    // multi-query
        (6, 2, 40, 90, 80),   // several heads' rows per block
        (4, 4, 1, 1, 128),
    ] {
        seed += 10;
        let p = SdpaParams::new(2, q_heads, kv_heads, q_len, kv_len, d);
        assert_close(
            &p,
            seed,
            &format!("gqa {q_heads}/{kv_heads} {q_len}x{kv_len}x{d}"),
        );
        let mut p = p;
        p.mask = Mask::Causal;
        assert_close(
            &p,
            seed + 1,
            &format!("gqa causal {q_heads}/{kv_heads} {q_len}x{kv_len}"),
        );
    }
}

#[test]
fn bshd_layout_matches() {
    for mask_causal in [false, true] {
        let mut p = SdpaParams::new(2, 6, 2, 33, 600, 64).with_bshd_layout();
        if mask_causal {
            p.mask = Mask::Causal;
        }
        assert_close(&p, 60, &format!("bshd causal={mask_causal}"));
    }
}

/// Runs the f16 and bf16 entry points on rounded random data; each output must
/// be the f64 result on the rounded inputs to within one rounding of the
/// output (plus f32 arithmetic). bf16 also allows `2⁻⁸ · max|v|`: on
/// AVX512-BF16 CPUs long bf16 blocks round the softmax weights to bf16 for
/// the value product (`sdpa_bf16`'s documented bound).
fn check_half(p: &SdpaParams<'_>, seed: u64, what: &str) {
    let ql = p
        .q_strides
        .required_len(p.batch, p.q_heads, p.q_len, p.head_dim);
    let kl = p
        .k_strides
        .required_len(p.batch, p.kv_heads, p.kv_len, p.head_dim);
    let vl = p
        .v_strides
        .required_len(p.batch, p.kv_heads, p.kv_len, p.v_head_dim);
    let ol = p
        .out_strides
        .required_len(p.batch, p.q_heads, p.q_len, p.v_head_dim);
    let (q, k, v) = (randn(ql, seed), randn(kl, seed + 1), randn(vl, seed + 2));
    let read = |out: &[f64]| {
        let mut got = Vec::new();
        for b in 0..p.batch {
            for h in 0..p.q_heads {
                for t in 0..p.q_len {
                    got.extend_from_slice(&out[p.out_strides.offset(b, h, t)..][..p.v_head_dim]);
                }
            }
        }
        got
    };
    for (half_ulp, name) in [(4.9e-4, "f16"), (3.9e-3, "bf16")] {
        let round = |x: &[f32]| -> Vec<f32> {
            x.iter()
                .map(|&v| {
                    if name == "f16" {
                        f16::from_f32(v).to_f32()
                    } else {
                        bf16::from_f32(v).to_f32()
                    }
                })
                .collect()
        };
        let (qr, kr, vr) = (round(&q), round(&k), round(&v));
        let out: Vec<f64> = if name == "f16" {
            let h = |x: &[f32]| x.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>();
            let mut o = vec![f16::NAN; ol];
            sdpa_f16(&h(&qr), &h(&kr), &h(&vr), &mut o, p);
            o.iter().map(|x| x.to_f64()).collect()
        } else {
            let h = |x: &[f32]| x.iter().map(|&v| bf16::from_f32(v)).collect::<Vec<_>>();
            let mut o = vec![bf16::NAN; ol];
            sdpa_bf16(&h(&qr), &h(&kr), &h(&vr), &mut o, p);
            o.iter().map(|x| x.to_f64()).collect()
        };
        let want = sdpa_ref(&qr, &kr, &vr, p);
        let weights = if name == "bf16" {
            vr.iter().fold(0f64, |m, &x| m.max(x.abs() as f64)) / 256.0
        } else {
            0.0
        };
        let worst = read(&out)
            .iter()
            .zip(&want)
            .map(|(&g, &w)| (g - w).abs() / (w.abs() * half_ulp + 2e-5 + weights))
            .fold(0.0, f64::max);
        assert!(worst <= 1.0, "{what} {name}: {worst} x tolerance");
    }
}

/// f32 queries over f16 keys and values: the f64 result on the rounded keys
/// and values to f32 round-off, at decode and prefill shapes, odd head dims
/// and cache lengths, every mask kind the LLM graphs use.
#[test]
fn f16_keys_and_values_with_f32_queries() {
    let cases: [(usize, usize, usize, usize, usize, Mask<'_>); 6] = [
        (
            3,
            1,
            1,
            1,
            64,
            Mask::CausalBand {
                shift: 0,
                window: None,
            },
        ),
        (
            9,
            3,
            1,
            512,
            64,
            Mask::CausalBand {
                shift: 200,
                window: None,
            },
        ),
        (
            4,
            1,
            1,
            77,
            256,
            Mask::CausalBand {
                shift: 76,
                window: Some(7),
            },
        ),
        (
            14,
            2,
            7,
            1000,
            64,
            Mask::CausalBand {
                shift: 128,
                window: None,
            },
        ),
        (2, 2, 77, 600, 24, Mask::Causal),
        (3, 3, 5, 7, 7, Mask::None),
    ];
    for (i, (hq, hkv, tq, tk, d, mask)) in cases.into_iter().enumerate() {
        let mut p = SdpaParams::new(1, hq, hkv, tq, tk, d);
        p.mask = mask;
        let ql = p.q_strides.required_len(1, hq, tq, d);
        let kl = p.k_strides.required_len(1, hkv, tk, d);
        let seed = 700 + 3 * i as u64;
        let q = randn(ql, seed);
        let (k, v) = (randn(kl, seed + 1), randn(kl, seed + 2));
        let half = |x: &[f32]| x.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>();
        let (kh, vh) = (half(&k), half(&v));
        let widen = |x: &[f16]| x.iter().map(|v| v.to_f32()).collect::<Vec<_>>();
        let want = sdpa_ref(&q, &widen(&kh), &widen(&vh), &p);
        let mut out = vec![f32::NAN; p.out_strides.required_len(1, hq, tq, d)];
        sdpa_f32_f16_kv(&q, &kh, &vh, &mut out, &p);
        let err = out
            .iter()
            .zip(&want)
            .map(|(&g, &w)| (g as f64 - w).abs())
            .fold(0.0, f64::max);
        assert!(err < TOL, "case {i}: max abs error {err:e}");
    }
}

#[test]
fn half_precision_entry_points() {
    let p = SdpaParams::new(2, 4, 2, 70, 600, 64);
    check_half(&p, 200, "gqa 70x600");
    let mut p = SdpaParams::new(1, 8, 2, 1, 300, 128).with_bshd_layout();
    p.mask = Mask::Causal;
    check_half(&p, 210, "decode bshd causal");
    let bias = randn(9 * 40, 220);
    let mut p = SdpaParams::new(1, 2, 2, 9, 40, 80);
    p.mask = Mask::Additive {
        data: &bias,
        strides: MaskStrides::broadcast([1, 1, 9, 40]),
    };
    check_half(&p, 230, "additive 9x40");
}

#[test]
fn empty_key_range_gives_zeros() {
    let p = SdpaParams::new(1, 2, 2, 3, 0, 8);
    let mut out = vec![f32::NAN; 2 * 3 * 8];
    sdpa_f32(&[1.0; 48], &[], &[], &mut out, &p);
    assert!(out.iter().all(|&x| x == 0.0));
}

#[test]
#[should_panic(expected = "[sdpa] kv_heads 3 must be nonzero and divide q_heads 4")]
fn indivisible_heads_are_rejected() {
    let p = SdpaParams::new(1, 4, 3, 1, 1, 8);
    sdpa_f32(&[0.0; 32], &[0.0; 24], &[0.0; 24], &mut [0.0; 32], &p);
}
