//! The bf16 and int8 GEMM engines against float64 / exact integer references
//! on random inputs at odd shapes (1, 7, 77, 1000: every SIMD, micro-panel,
//! panel, depth-chunk and AMX-tile tail), on every engine this CPU runs plus
//! the emulated AMX tile program.

mod isa_children;

use emily_kernels::gemm::{
    bf16_bits, gemm_bf16_on, gemm_bf16_then_on, gemm_int8_bias_on, gemm_int8_on, gemm_int8_then_on,
    gemm_s8s8_on, gemm_u8s8, gemm_u8s8_on, quantize_columns_s8, quantize_row_u8, Engine, MatRef,
    PackedBf16, PackedInt8, Precision, RowEpilogue,
};
use half::bf16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

const SIZES: [usize; 4] = [1, 7, 77, 1000];

/// The engines to test for `p`: all that run here, plus the AMX emulation for
/// products small enough to emulate quickly.
fn engines(p: Precision, macs: usize) -> Vec<Engine> {
    let mut e = Engine::available(p);
    if macs <= 100_000_000 {
        e.push(Engine::AmxEmulated);
    }
    e
}

fn randn(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// Output positions to check: all of a small output, else a random sample
/// plus the whole last row and last column (the tails).
fn positions(rng: &mut StdRng, m: usize, n: usize) -> Vec<(usize, usize)> {
    if m * n <= 20_000 {
        return (0..m).flat_map(|i| (0..n).map(move |j| (i, j))).collect();
    }
    let mut p: Vec<_> = (0..3000)
        .map(|_| (rng.gen_range(0..m), rng.gen_range(0..n)))
        .collect();
    p.extend((0..n).map(|j| (m - 1, j)));
    p.extend((0..m).map(|i| (i, n - 1)));
    p
}

fn round_bf16(x: f32) -> f64 {
    bf16::from_bits(bf16_bits(x)).to_f64()
}

/// Checks `got` against Σ_k a(i,k)·b(k,j) in f64 with the operands rounded to
/// bf16: |err| ≤ 1e-6·√k·Σ|a·b| (f32 summation) + tiny.
fn check_bf16(
    what: &str,
    rng: &mut StdRng,
    a: &dyn Fn(usize, usize) -> f64,
    b: &dyn Fn(usize, usize) -> f64,
    (m, n, k): (usize, usize, usize),
    got: &[f32],
) {
    let tol = 1e-6 * (k as f64).sqrt().max(1.0);
    for (i, j) in positions(rng, m, n) {
        let (mut s, mut abs) = (0f64, 0f64);
        for kk in 0..k {
            let p = a(i, kk) * b(kk, j);
            s += p;
            abs += p.abs();
        }
        let g = got[i * n + j] as f64;
        assert!(
            (g - s).abs() <= tol * abs + 1e-30,
            "{what} m={m} n={n} k={k}: out[{i},{j}] = {g}, expected {s} (sum|ab| {abs})"
        );
    }
}

#[test]
fn bf16_f32_activations_every_engine_odd_shapes() {
    let mut rng = StdRng::seed_from_u64(1);
    for &m in &SIZES {
        for &n in &SIZES {
            for &k in &SIZES {
                let a = randn(&mut rng, m * k);
                let b = randn(&mut rng, k * n);
                // Alternate the weight layout: k × n row-major, or n × k (Linear).
                let packed = if (m + n + k) % 2 == 0 {
                    PackedBf16::from_f32(MatRef::row_major(&b, k, n))
                } else {
                    let bt: Vec<f32> = (0..n * k).map(|x| b[(x % k) * n + x / k]).collect();
                    PackedBf16::from_f32(MatRef::transposed(&bt, k, n))
                };
                for e in engines(Precision::Bf16, m * n * k) {
                    let mut out = vec![f32::NAN; m * n];
                    gemm_bf16_on(e, MatRef::row_major(&a, m, k), &packed, &mut out);
                    check_bf16(
                        &format!("bf16/{}", e.name()),
                        &mut rng,
                        &|i, kk| round_bf16(a[i * k + kk]),
                        &|kk, j| round_bf16(b[kk * n + j]),
                        (m, n, k),
                        &out,
                    );
                }
            }
        }
    }
}

#[test]
fn bf16_bf16_and_strided_activations() {
    let mut rng = StdRng::seed_from_u64(2);
    for &(m, n, k) in &[(77, 7, 1000), (1000, 77, 7), (7, 1000, 77), (33, 65, 301)] {
        let a = randn(&mut rng, m * k);
        let b = randn(&mut rng, k * n);
        let packed = PackedBf16::from_f32(MatRef::row_major(&b, k, n));
        let ah: Vec<bf16> = a.iter().map(|&v| bf16::from_f32(v)).collect();
        // A stored transposed (k × m): element (i, kk) at kk * m + i.
        let at: Vec<f32> = (0..k * m).map(|x| a[(x % m) * k + x / m]).collect();
        for e in engines(Precision::Bf16, m * n * k) {
            let mut out = vec![f32::NAN; m * n];
            gemm_bf16_on(e, MatRef::row_major(&ah, m, k), &packed, &mut out);
            let (ra, rb) = (
                |i, kk| round_bf16(a[i * k + kk]),
                |kk, j| round_bf16(b[kk * n + j]),
            );
            check_bf16(
                &format!("bf16 A/{}", e.name()),
                &mut rng,
                &ra,
                &rb,
                (m, n, k),
                &out,
            );
            let mut out2 = vec![f32::NAN; m * n];
            gemm_bf16_on(e, MatRef::new(&at, m, k, 1, m), &packed, &mut out2);
            check_bf16(
                &format!("strided A/{}", e.name()),
                &mut rng,
                &ra,
                &rb,
                (m, n, k),
                &out2,
            );
        }
    }
}

#[test]
fn u8s8_exact_every_engine_odd_shapes() {
    let mut rng = StdRng::seed_from_u64(3);
    for &m in &SIZES {
        for &n in &SIZES {
            for &k in &SIZES {
                let a: Vec<u8> = (0..m * k).map(|_| rng.gen()).collect();
                let zp: Vec<i32> = (0..m).map(|_| rng.gen_range(0..=255)).collect();
                let b: Vec<i8> = (0..k * n).map(|_| rng.gen_range(-127..=127)).collect();
                let packed = PackedInt8::from_i8(MatRef::row_major(&b, k, n), vec![1.0; n]);
                for e in engines(Precision::Int8, m * n * k) {
                    let mut out = vec![i32::MIN; m * n];
                    gemm_u8s8_on(e, MatRef::row_major(&a, m, k), &zp, &packed, &mut out);
                    for (i, j) in positions(&mut rng, m, n) {
                        let want: i64 = (0..k)
                            .map(|kk| (a[i * k + kk] as i64 - zp[i] as i64) * b[kk * n + j] as i64)
                            .sum();
                        assert_eq!(
                            out[i * n + j] as i64,
                            want,
                            "u8s8/{} m={m} n={n} k={k} at ({i},{j})",
                            e.name()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn s8s8_signed_activations_exact() {
    let mut rng = StdRng::seed_from_u64(4);
    for &(m, n, k) in &[(7, 77, 1000), (77, 33, 77), (1, 1, 1), (130, 40, 129)] {
        let a: Vec<i8> = (0..m * k).map(|_| rng.gen()).collect();
        let b: Vec<i8> = (0..k * n).map(|_| rng.gen_range(-127..=127)).collect();
        let bt: Vec<i8> = (0..n * k).map(|x| b[(x % k) * n + x / k]).collect();
        let packed = PackedInt8::from_i8(MatRef::transposed(&bt, k, n), vec![1.0; n]);
        for e in engines(Precision::Int8, m * n * k) {
            let mut out = vec![i32::MIN; m * n];
            gemm_s8s8_on(e, MatRef::row_major(&a, m, k), &packed, &mut out);
            for i in 0..m {
                for j in 0..n {
                    let want: i64 = (0..k)
                        .map(|kk| a[i * k + kk] as i64 * b[kk * n + j] as i64)
                        .sum();
                    assert_eq!(out[i * n + j] as i64, want, "s8s8/{} ({i},{j})", e.name());
                }
            }
        }
    }
}

#[test]
fn int8_f32_matches_its_quantization_and_the_f64_product() {
    let mut rng = StdRng::seed_from_u64(5);
    for &(m, n, k) in &[
        (1, 7, 77),
        (77, 1000, 7),
        (1000, 77, 1000),
        (7, 7, 1),
        (13, 129, 257),
    ] {
        let a = randn(&mut rng, m * k);
        let b = randn(&mut rng, k * n);
        let packed = PackedInt8::quantize(MatRef::row_major(&b, k, n));
        let (qb, sb) = quantize_columns_s8(MatRef::row_major(&b, k, n));
        assert_eq!(packed.scales(), &sb[..]);
        for e in engines(Precision::Int8, m * n * k) {
            let mut out = vec![f32::NAN; m * n];
            gemm_int8_on(e, MatRef::row_major(&a, m, k), &packed, &mut out);
            for (i, j) in positions(&mut rng, m, n) {
                let mut qa = vec![0u8; k];
                let rq = quantize_row_u8(&a[i * k..][..k], &mut qa);
                let (mut q, mut exact, mut bound) = (0i64, 0f64, 0f64);
                for kk in 0..k {
                    let (x, w) = (qa[kk] as i64 - rq.zero_point as i64, qb[kk * n + j] as i64);
                    q += x * w;
                    let (av, bv) = (a[i * k + kk] as f64, b[kk * n + j] as f64);
                    exact += av * bv;
                    // |a·b − â·b̂| ≤ |a|·s_b/2 + |b̂|·s_a/2 (each operand within half a step).
                    bound += av.abs() * sb[j] as f64 * 0.5
                        + (w as f64 * sb[j] as f64).abs() * rq.scale as f64 * 0.5;
                }
                let deq = q as f64 * rq.scale as f64 * sb[j] as f64;
                let g = out[i * n + j] as f64;
                assert!(
                    (g - deq).abs() <= 1e-6 * deq.abs() + 1e-6 * bound + 1e-30,
                    "int8/{} m={m} n={n} k={k} ({i},{j}): {g} vs dequantized {deq}",
                    e.name()
                );
                assert!(
                    (g - exact).abs() <= bound * 1.0001 + 1e-5,
                    "int8/{} ({i},{j}): {g} vs exact {exact}, bound {bound}",
                    e.name()
                );
            }
        }
    }
}

/// The int8 path quantizes A straight into the packed blocks: strided rows
/// (gathered), several row blocks and depth chunks on every engine (AMX's
/// 256-word chunks included), and the fused bias equal to adding it after.
#[test]
fn int8_strided_activations_many_chunks_and_fused_bias() {
    let mut rng = StdRng::seed_from_u64(9);
    for &(m, n, k) in &[(1, 33, 1100), (200, 33, 1100), (385, 70, 13)] {
        // A stored transposed (k × m) and read as m × k.
        let at = randn(&mut rng, k * m);
        let a: Vec<f32> = (0..m * k).map(|x| at[(x % k) * m + x / k]).collect();
        let b = randn(&mut rng, k * n);
        let bias = randn(&mut rng, n);
        let packed = PackedInt8::quantize(MatRef::row_major(&b, k, n));
        let (qb, sb) = quantize_columns_s8(MatRef::row_major(&b, k, n));
        for e in engines(Precision::Int8, m * n * k) {
            let mut plain = vec![f32::NAN; m * n];
            gemm_int8_on(e, MatRef::row_major(&a, m, k), &packed, &mut plain);
            let mut fused = vec![f32::NAN; m * n];
            let strided = MatRef::transposed(&at, m, k);
            gemm_int8_bias_on(e, strided, &packed, Some(&bias), &mut fused);
            for (i, j) in positions(&mut rng, m, n) {
                let mut qa = vec![0u8; k];
                let rq = quantize_row_u8(&a[i * k..][..k], &mut qa);
                let q: i64 = (0..k)
                    .map(|kk| (qa[kk] as i64 - rq.zero_point as i64) * qb[kk * n + j] as i64)
                    .sum();
                let deq = q as f64 * rq.scale as f64 * sb[j] as f64;
                let g = plain[i * n + j];
                assert!(
                    (g as f64 - deq).abs() <= 1e-6 * deq.abs() + 1e-6,
                    "int8/{} m={m} n={n} k={k} ({i},{j}): {g} vs dequantized {deq}",
                    e.name()
                );
                assert_eq!(
                    fused[i * n + j],
                    g + bias[j],
                    "int8/{} fused bias ({i},{j})",
                    e.name()
                );
            }
        }
    }
}

/// The row epilogue sees every finished output exactly once (groups of
/// panels, tails of rows and columns) and its result equals applying the
/// same function after the plain product, on every int8 and bf16 engine.
#[test]
fn row_epilogue_equals_a_pass_after() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let mut rng = StdRng::seed_from_u64(21);
    for &(m, n, k) in &[(1, 33, 45), (7, 200, 45), (77, 161, 64), (1000, 47, 13)] {
        let a = randn(&mut rng, m * k);
        let b = randn(&mut rng, k * n);
        let residual = randn(&mut rng, m * n);
        let packed = PackedInt8::quantize(MatRef::row_major(&b, k, n));
        let packed_bf16 = PackedBf16::from_f32(MatRef::row_major(&b, k, n));
        let f = |v: f32, i: usize, j: usize| (v * 0.5 + residual[i * n + j]).tanh();
        let int8 = engines(Precision::Int8, m * n * k)
            .into_iter()
            .map(|e| (e, true));
        let bf16 = engines(Precision::Bf16, m * n * k)
            .into_iter()
            .map(|e| (e, false));
        for (e, is_int8) in int8.chain(bf16) {
            let a = MatRef::row_major(&a, m, k);
            let run = |then: Option<RowEpilogue<'_>>, out: &mut [f32]| match (is_int8, then) {
                (true, None) => gemm_int8_on(e, a, &packed, out),
                (true, Some(t)) => gemm_int8_then_on(e, a, &packed, t, out),
                (false, None) => gemm_bf16_on(e, a, &packed_bf16, out),
                (false, Some(t)) => gemm_bf16_then_on(e, a, &packed_bf16, t, out),
            };
            let mut plain = vec![f32::NAN; m * n];
            run(None, &mut plain);
            let visits: Vec<AtomicU32> = (0..m * n).map(|_| AtomicU32::new(0)).collect();
            let then = |i: usize, j0: usize, row: &mut [f32]| {
                for (c, v) in row.iter_mut().enumerate() {
                    visits[i * n + j0 + c].fetch_add(1, Ordering::Relaxed);
                    *v = f(*v, i, j0 + c);
                }
            };
            let mut fused = vec![f32::NAN; m * n];
            run(Some(&then), &mut fused);
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(
                        visits[i * n + j].load(Ordering::Relaxed),
                        1,
                        "int8/{} visits ({i},{j})",
                        e.name()
                    );
                    assert_eq!(
                        fused[i * n + j].to_bits(),
                        f(plain[i * n + j], i, j).to_bits(),
                        "int8/{} m={m} n={n} k={k} ({i},{j})",
                        e.name()
                    );
                }
            }
        }
    }
}

/// The packed, quantized A buffer is reused by the next call on the same
/// thread without clearing: a small product with short micro-panels, a depth
/// that is not whole words and AMX's zero rows, run right after a large one
/// that filled the buffer with other values, equals its exact dequantized
/// integer product everywhere, on every engine.
#[test]
fn int8_reused_pack_buffer_leaves_no_stale_words() {
    let mut rng = StdRng::seed_from_u64(13);
    let (bm, bn, bk) = (300, 40, 901);
    let big_a: Vec<f32> = randn(&mut rng, bm * bk).iter().map(|x| x + 3.0).collect();
    let big_b = randn(&mut rng, bk * bn);
    let big = PackedInt8::quantize(MatRef::row_major(&big_b, bk, bn));
    for &(m, n, k) in &[(13, 35, 257), (1, 7, 3), (45, 33, 66)] {
        let a = randn(&mut rng, m * k);
        let b = randn(&mut rng, k * n);
        let packed = PackedInt8::quantize(MatRef::row_major(&b, k, n));
        let (qb, sb) = quantize_columns_s8(MatRef::row_major(&b, k, n));
        for e in engines(Precision::Int8, bm * bn * bk) {
            let mut scratch = vec![0f32; bm * bn];
            gemm_int8_on(e, MatRef::row_major(&big_a, bm, bk), &big, &mut scratch);
            let mut out = vec![f32::NAN; m * n];
            gemm_int8_on(e, MatRef::row_major(&a, m, k), &packed, &mut out);
            for i in 0..m {
                let mut qa = vec![0u8; k];
                let rq = quantize_row_u8(&a[i * k..][..k], &mut qa);
                for j in 0..n {
                    let q: i64 = (0..k)
                        .map(|kk| (qa[kk] as i64 - rq.zero_point as i64) * qb[kk * n + j] as i64)
                        .sum();
                    let deq = q as f64 * rq.scale as f64 * sb[j] as f64;
                    let g = out[i * n + j] as f64;
                    assert!(
                        (g - deq).abs() <= 1e-6 * deq.abs() + 1e-6,
                        "int8/{} m={m} n={n} k={k} ({i},{j}): {g} vs dequantized {deq}",
                        e.name()
                    );
                }
            }
        }
    }
}

/// bf16 products with few rows and many columns pack A once per call into
/// the thread's reused buffer (the one the int8 products use too): after a
/// larger int8 and bf16 call left words there, a smaller one must be right,
/// for row-major, bf16 and strided activations.
#[test]
fn bf16_packed_once_after_larger_products() {
    let mut rng = StdRng::seed_from_u64(17);
    let (bm, bn, bk) = (100, 320, 901);
    let big_a = randn(&mut rng, bm * bk);
    let big_b = randn(&mut rng, bk * bn);
    let (big8, big16) = (
        PackedInt8::quantize(MatRef::row_major(&big_b, bk, bn)),
        PackedBf16::from_f32(MatRef::row_major(&big_b, bk, bn)),
    );
    for &(m, n, k) in &[(13, 300, 601), (45, 333, 129), (7, 2000, 301)] {
        let a = randn(&mut rng, m * k);
        let b = randn(&mut rng, k * n);
        let packed = PackedBf16::from_f32(MatRef::row_major(&b, k, n));
        let ah: Vec<bf16> = a.iter().map(|&v| bf16::from_f32(v)).collect();
        let at: Vec<f32> = (0..k * m).map(|x| a[(x % m) * k + x / m]).collect();
        let (ra, rb) = (
            |i, kk| round_bf16(a[i * k + kk]),
            |kk, j| round_bf16(b[kk * n + j]),
        );
        for e in engines(Precision::Bf16, bm * bn * bk) {
            let mut scratch = vec![0f32; bm * bn];
            let big = MatRef::row_major(&big_a, bm, bk);
            if e.runs_here(Precision::Int8) || e == Engine::AmxEmulated {
                gemm_int8_on(e, big, &big8, &mut scratch);
            }
            gemm_bf16_on(e, big, &big16, &mut scratch);
            for (what, out) in [
                ("f32 A", {
                    let mut o = vec![f32::NAN; m * n];
                    gemm_bf16_on(e, MatRef::row_major(&a, m, k), &packed, &mut o);
                    o
                }),
                ("bf16 A", {
                    let mut o = vec![f32::NAN; m * n];
                    gemm_bf16_on(e, MatRef::row_major(&ah, m, k), &packed, &mut o);
                    o
                }),
                ("strided A", {
                    let mut o = vec![f32::NAN; m * n];
                    gemm_bf16_on(e, MatRef::new(&at, m, k, 1, m), &packed, &mut o);
                    o
                }),
            ] {
                check_bf16(
                    &format!("packed once, {what}/{}", e.name()),
                    &mut rng,
                    &ra,
                    &rb,
                    (m, n, k),
                    &out,
                );
            }
        }
    }
}

#[test]
fn empty_and_zero_depth_products() {
    let packed = PackedBf16::from_f32(MatRef::row_major(&[], 0, 5));
    let packed8 = PackedInt8::quantize(MatRef::row_major(&[], 0, 5));
    for e in engines(Precision::Bf16, 0) {
        let mut out = vec![f32::NAN; 15];
        gemm_bf16_on(e, MatRef::<f32>::row_major(&[], 3, 0), &packed, &mut out);
        assert!(out.iter().all(|&v| v == 0.0), "{}", e.name());
        gemm_bf16_on(e, MatRef::<f32>::row_major(&[], 0, 0), &packed, &mut []);
    }
    for e in engines(Precision::Int8, 0) {
        let mut out = vec![f32::NAN; 15];
        gemm_int8_on(e, MatRef::<f32>::row_major(&[], 3, 0), &packed8, &mut out);
        assert!(out.iter().all(|&v| v == 0.0), "{}", e.name());
    }
}

/// `EMILY_ISA` caps the engine `Engine::best` picks. The check runs in child
/// processes (the choice is made once per process).
#[test]
fn emily_isa_forces_each_path() {
    if let Ok(cap) = std::env::var("EMILY_GEMM_ISA_CHILD") {
        for p in [Precision::Bf16, Precision::Int8] {
            let best = Engine::best(p);
            let ok = match cap.as_str() {
                "baseline" => best == Engine::Portable,
                "avx2" => matches!(best, Engine::Avx2 | Engine::Portable),
                "avx512" => best != Engine::Amx,
                _ => best == Engine::available(p)[0],
            };
            assert!(ok, "EMILY_ISA={cap}: {p:?} chose {best:?}");
        }
        // The capped engine's int8 product is exact at an odd shape.
        let (m, n, k) = (77, 33, 129);
        let mut rng = StdRng::seed_from_u64(9);
        let a: Vec<u8> = (0..m * k).map(|_| rng.gen()).collect();
        let zp: Vec<i32> = (0..m).map(|_| rng.gen_range(0..=255)).collect();
        let b: Vec<i8> = (0..k * n).map(|_| rng.gen_range(-128..=127)).collect();
        let packed = PackedInt8::from_i8(MatRef::row_major(&b, k, n), vec![1.0; n]);
        let mut out = vec![i32::MIN; m * n];
        gemm_u8s8(MatRef::row_major(&a, m, k), &zp, &packed, &mut out);
        for i in 0..m {
            for j in 0..n {
                let want: i64 = (0..k)
                    .map(|kk| (a[i * k + kk] as i64 - zp[i] as i64) * b[kk * n + j] as i64)
                    .sum();
                assert_eq!(out[i * n + j] as i64, want, "EMILY_ISA={cap} ({i},{j})");
            }
        }
        return;
    }
    isa_children::run_under_isa_caps(
        "emily_isa_forces_each_path",
        "EMILY_GEMM_ISA_CHILD",
        &["baseline", "avx2", "avx512", ""],
    );
}

/// Depths of several chunks, with whole and partial 32 × 32 output blocks:
/// later chunks add into outputs the earlier ones wrote (on AMX, by loading
/// the accumulator tiles from the output).
#[test]
fn deep_products_accumulate_across_depth_chunks() {
    let mut rng = StdRng::seed_from_u64(5);
    let (m, n, k) = (71, 69, 4100);
    let a = randn(&mut rng, m * k);
    let b = randn(&mut rng, k * n);
    let packed = PackedBf16::from_f32(MatRef::row_major(&b, k, n));
    for e in engines(Precision::Bf16, m * n * k) {
        let mut out = vec![f32::NAN; m * n];
        gemm_bf16_on(e, MatRef::row_major(&a, m, k), &packed, &mut out);
        check_bf16(
            &format!("deep bf16/{}", e.name()),
            &mut rng,
            &|i, kk| round_bf16(a[i * k + kk]),
            &|kk, j| round_bf16(b[kk * n + j]),
            (m, n, k),
            &out,
        );
    }
    let qa: Vec<u8> = (0..m * k).map(|_| rng.gen()).collect();
    let zp: Vec<i32> = (0..m).map(|_| rng.gen_range(0..=255)).collect();
    let qb: Vec<i8> = (0..k * n).map(|_| rng.gen_range(-127..=127)).collect();
    let packed = PackedInt8::from_i8(MatRef::row_major(&qb, k, n), vec![1.0; n]);
    for e in engines(Precision::Int8, m * n * k) {
        let mut out = vec![i32::MIN; m * n];
        gemm_u8s8_on(e, MatRef::row_major(&qa, m, k), &zp, &packed, &mut out);
        for i in 0..m {
            for j in 0..n {
                let want: i64 = (0..k)
                    .map(|kk| (qa[i * k + kk] as i64 - zp[i] as i64) * qb[kk * n + j] as i64)
                    .sum();
                assert_eq!(
                    out[i * n + j] as i64,
                    want,
                    "deep u8s8/{} ({i},{j})",
                    e.name()
                );
            }
        }
    }
}
