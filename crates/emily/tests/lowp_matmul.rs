//! bf16 and int8 products on the CPU's matrix engines, through the op
//! catalogue: against f64 references of the rounded/quantized operands at
//! odd shapes, plus the packed-weight cache (reused, never stale) and
//! compiled plans.

mod common;
use common::*;
use emily::{compile, DType, Tensor};
use half::bf16;

/// f32 values (held as f64) rounded to bf16 as the engines round them (from
/// f32, nearest-even; `bf16::from_f64` rounds some f64 ties differently).
fn bf16_round(v: &[f64]) -> Vec<f64> {
    v.iter()
        .map(|&x| bf16::from_f32(x as f32).to_f64())
        .collect()
}

/// Σ_k a[i,k]·b[k,j] and Σ|a·b|, with b given as (n, k) when `bt`.
fn reference(
    a: &[f64],
    b: &[f64],
    (m, k, n): (usize, usize, usize),
    bt: bool,
) -> (Vec<f64>, Vec<f64>) {
    let mut s = vec![0.0; m * n];
    let mut abs = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let bv = if bt { b[j * k + p] } else { b[p * n + j] };
                let t = a[i * k + p] * bv;
                s[i * n + j] += t;
                abs[i * n + j] += t.abs();
            }
        }
    }
    (s, abs)
}

fn check(got: &[f64], want: &[f64], abs: &[f64], rel: f64, what: &str) {
    for (i, ((&g, &w), &a)) in got.iter().zip(want).zip(abs).enumerate() {
        assert!(
            (g - w).abs() <= rel * a + 1e-6,
            "{what}[{i}]: got {g}, want {w} (sum|ab| {a})"
        );
    }
}

#[test]
fn f32_activations_times_bf16_weights_use_the_engine() {
    for &(m, k, n) in &[
        (9, 7, 77),
        (77, 77, 7),
        (1000, 77, 33),
        (130, 1000, 65),
        (9, 1, 1),
    ] {
        let (x, xv) = randn(&[m, k], 40);
        let (w, wv) = randn(&[n, k], 41);
        let wb = w.cast(DType::BF16).unwrap().eval().unwrap();
        let y = x.matmul(&wb.t().unwrap()).unwrap();
        assert_eq!(y.dtype(), DType::F32);
        let (want, abs) = reference(&bf16_round(&xv), &bf16_round(&wv), (m, k, n), true);
        check(
            &y.to_f64_vec().unwrap(),
            &want,
            &abs,
            1e-5,
            &format!("f32 x bf16 {m}x{k}x{n}"),
        );
        // Same weight again (cached packed form), and batched activations.
        let x3 = x.reshape_to(&[1, m, k]).unwrap();
        let y3 = x3.matmul(&wb.t().unwrap()).unwrap().to_f64_vec().unwrap();
        check(&y3, &want, &abs, 1e-5, "batched rows, cached weights");
    }
}

#[test]
fn bf16_times_bf16_rounds_once_to_bf16() {
    // Rows against a weight (narrowed from each finished row: one job, then
    // several jobs with panel groups and row and column tails).
    for (bs, m, k, n) in [(2, 77, 65, 33), (1, 301, 130, 700)] {
        let (a, av) = randn(&[bs, m, k], 42);
        let (b, bv) = randn(&[k, n], 43);
        let (ab, bb) = (a.cast(DType::BF16).unwrap(), b.cast(DType::BF16).unwrap());
        let y = ab.matmul(&bb).unwrap();
        assert_eq!(y.dtype(), DType::BF16);
        let got = y.to_f64_vec().unwrap();
        let (ar, br) = (bf16_round(&av), bf16_round(&bv));
        for bi in 0..bs {
            let (want, abs) = reference(&ar[bi * m * k..][..m * k], &br, (m, k, n), false);
            for (i, (&g, &w)) in got[bi * m * n..][..m * n].iter().zip(&want).enumerate() {
                // One bf16 rounding of the f32 sum: half an ulp (2^-8 relative) plus f32 sums.
                assert!(
                    (g - w).abs() <= w.abs() * (1.0 / 256.0) + 1e-5 * abs[i] + 1e-6,
                    "bf16 {m}x{k}x{n} [{bi}][{i}]: {g} vs {w}"
                );
            }
        }
    }
    let (a, av) = randn(&[2, 77, 65], 42);
    let ab = a.cast(DType::BF16).unwrap();
    let ar = bf16_round(&av);
    // Batched right operand, transposed left operand.
    let (c, cv) = randn(&[2, 33, 65], 44);
    let cb = c.cast(DType::BF16).unwrap();
    let at = ab.t().unwrap(); // (2, 65, 77), read transposed
    let y = at
        .t()
        .unwrap()
        .matmul(&cb.t().unwrap())
        .unwrap()
        .to_f64_vec()
        .unwrap();
    let cr = bf16_round(&cv);
    for bi in 0..2 {
        let (want, abs) = reference(
            &ar[bi * 77 * 65..][..77 * 65],
            &cr[bi * 33 * 65..][..33 * 65],
            (77, 65, 33),
            true,
        );
        for (i, (&g, &w)) in y[bi * 77 * 33..][..77 * 33].iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= w.abs() / 256.0 + 1e-5 * abs[i] + 1e-6,
                "batched [{bi}][{i}]"
            );
        }
    }
}

#[test]
fn packed_weights_never_go_stale() {
    let (x, xv) = randn(&[20, 40], 45);
    for seed in 0..4 {
        // A fresh weight each time, same shape: a stale cache entry would give
        // the previous weight's product.
        let (w, wv) = randn(&[24, 40], 100 + seed);
        let wb = w.cast(DType::BF16).unwrap().eval().unwrap();
        let (want, abs) = reference(&bf16_round(&xv), &bf16_round(&wv), (20, 40, 24), true);
        for _ in 0..2 {
            let y = x.matmul(&wb.t().unwrap()).unwrap().to_f64_vec().unwrap();
            check(&y, &want, &abs, 1e-5, &format!("weight {seed}"));
            // bf16 x bf16 packs a 2-D right operand once per buffer too.
            let xb = x.cast(DType::BF16).unwrap();
            let y = xb.matmul(&wb.t().unwrap()).unwrap().to_f64_vec().unwrap();
            // One bf16 rounding of the output: half an ulp, 2^-8 relative.
            let tol: Vec<f64> = want
                .iter()
                .zip(&abs)
                .map(|(w, a)| w.abs() / 256.0 + 1e-5 * a)
                .collect();
            check(&y, &want, &tol, 1.0, &format!("bf16 x bf16, weight {seed}"));
        }
    }
}

#[test]
fn int8_matmul_within_its_quantization_bound() {
    for &(m, k, n) in &[(1, 7, 77), (77, 1000, 7), (1000, 77, 33), (3, 1, 1)] {
        let (x, xv) = randn(&[m, k], 46);
        let (w, _) = randn(&[n, k], 47);
        for wdt in [DType::F32, DType::BF16] {
            let wc = w.cast(wdt).unwrap().eval().unwrap();
            let wcv = wc.to_f64_vec().unwrap();
            let y = x.matmul_int8(&wc.t().unwrap()).unwrap();
            assert_eq!((y.shape(), y.dtype()), (&[m, n][..], DType::F32));
            let got = y.to_f64_vec().unwrap();
            let (want, _) = reference(&xv, &wcv, (m, k, n), true);
            for i in 0..m {
                let row = &xv[i * k..][..k];
                let (lo, hi) = row
                    .iter()
                    .fold((0f64, 0f64), |(l, h), &v| (l.min(v), h.max(v)));
                let sx = (hi - lo) / 255.0;
                for j in 0..n {
                    let col: Vec<f64> = (0..k).map(|p| wcv[j * k + p]).collect();
                    let sw = col.iter().fold(0f64, |a, v| a.max(v.abs())) / 127.0;
                    let bound: f64 = (0..k)
                        .map(|p| (row[p].abs() * sw + (col[p].abs() + sw) * sx) * 0.5)
                        .sum();
                    let (g, e) = (got[i * n + j], want[i * n + j]);
                    assert!(
                        (g - e).abs() <= bound * 1.01 + 1e-5,
                        "int8 {wdt} {m}x{k}x{n} [{i},{j}]: {g} vs {e}, bound {bound}"
                    );
                }
            }
        }
    }
    // A batched activation and a (k, n) weight stored as is.
    let (x, _) = randn(&[2, 5, 16], 48);
    let (w, _) = randn(&[16, 3], 49);
    assert_eq!(x.matmul_int8(&w).unwrap().shape(), &[2, 5, 3]);
}

#[test]
fn int8_matmul_rejects_bad_operands() {
    let x = Tensor::zeros(&[4, 8], DType::F32).unwrap();
    let e = x
        .matmul_int8(&Tensor::zeros(&[7, 3], DType::F32).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("matmul_int8"), "{e}");
    let e = x
        .cast(DType::F16)
        .unwrap()
        .matmul_int8(&Tensor::zeros(&[8, 3], DType::F32).unwrap());
    assert!(e.unwrap_err().to_string().contains("f32"));
    let e = x
        .matmul_int8(&Tensor::zeros(&[8, 3], DType::I32).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("weights"), "{e}");
    assert!(x
        .matmul_int8(&Tensor::zeros(&[2, 8, 3], DType::F32).unwrap())
        .is_err());
}

#[test]
fn conv1d_with_bf16_weights_matches_direct_convolution() {
    // The last two are Whisper's convolutions at a long length (1000 frames),
    // so the im2col rows are packed in parallel.
    for (stride, padding, dilation, groups, cin, l) in [
        (1, 1, 1, 1, 6, 41),
        (2, 1, 1, 1, 6, 41),
        (1, 0, 2, 2, 6, 41),
        (3, 2, 1, 1, 6, 41),
        (1, 1, 1, 1, 77, 1000),
        (2, 1, 1, 1, 77, 1000),
    ] {
        let (cout, kw) = (4, 3);
        let (x, xv) = randn(&[2, cin, l], 50);
        let (w, wv) = randn(&[cout, cin / groups, kw], 51);
        let wb = w.cast(DType::BF16).unwrap();
        let y = x.conv1d(&wb, stride, padding, dilation, groups).unwrap();
        assert_eq!(y.dtype(), DType::F32);
        let lout = y.shape()[2];
        let got = y.to_f64_vec().unwrap();
        let (xr, wr) = (bf16_round(&xv), bf16_round(&wv));
        let (cg, og) = (cin / groups, cout / groups);
        for b in 0..2 {
            for o in 0..cout {
                let g = o / og;
                for t in 0..lout {
                    let (mut s, mut a) = (0.0, 0.0);
                    for c in 0..cg {
                        for kk in 0..kw {
                            let p = (t * stride + kk * dilation) as isize - padding as isize;
                            if p >= 0 && (p as usize) < l {
                                let v = xr[(b * cin + g * cg + c) * l + p as usize]
                                    * wr[(o * cg + c) * kw + kk];
                                s += v;
                                a += v.abs();
                            }
                        }
                    }
                    let gv = got[(b * cout + o) * lout + t];
                    assert!(
                        (gv - s).abs() <= 1e-5 * a + 1e-6,
                        "conv bf16 s{stride} p{padding} d{dilation} g{groups}: {gv} vs {s}"
                    );
                }
            }
        }
    }
}

#[test]
fn compiled_plans_with_bf16_and_int8_weights_match_eager() {
    let (x, _) = randn(&[50, 64], 52);
    let (w, _) = randn(&[32, 64], 53);
    let wb = w.cast(DType::BF16).unwrap().eval().unwrap();
    let (wb2, w2) = (wb.clone(), w.clone());
    let f = move |xs: &[Tensor]| {
        Ok(vec![
            xs[0].matmul(&wb2.t()?)?.gelu()?,
            xs[0].matmul_int8(&w2.t()?)?,
        ])
    };
    let eager = f(std::slice::from_ref(&x)).unwrap();
    let c = compile(f);
    for _ in 0..2 {
        let out = c.call(std::slice::from_ref(&x)).unwrap();
        for (e, o) in eager.iter().zip(&out) {
            assert_eq!(e.to_vec::<f32>().unwrap(), o.to_vec::<f32>().unwrap());
        }
    }
}
