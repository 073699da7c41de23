//! Reductions, softmax, matmul and conv1d against f64 references.

mod common;
use common::*;
use emily::{DType, Tensor};

fn reduce_ref(v: &[f64], shape: &[usize], axes: &[usize], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let out_shape: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    let mut groups: Vec<Vec<f64>> = vec![Vec::new(); out_shape.iter().product()];
    for idx in indices(shape) {
        let o: Vec<usize> = idx
            .iter()
            .enumerate()
            .map(|(i, &x)| if axes.contains(&i) { 0 } else { x })
            .collect();
        groups[flat(&o, &out_shape)].push(v[flat(&idx, shape)]);
    }
    groups.iter().map(|g| f(g)).collect()
}

#[test]
fn reductions_over_any_axes() {
    let shape = [7, 77, 13];
    let (x, xv) = randn(&shape, 5);
    let lse = |g: &[f64]| {
        let m = g.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        m + g.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
    };
    for axes in [
        vec![0],
        vec![1],
        vec![2],
        vec![0, 2],
        vec![0, 1, 2],
        vec![1, 2],
    ] {
        let ax: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
        let checks: [(&str, Tensor, Vec<f64>); 5] = [
            (
                "sum",
                x.sum(&ax, true).unwrap(),
                reduce_ref(&xv, &shape, &axes, |g| g.iter().sum()),
            ),
            (
                "mean",
                x.mean(&ax, true).unwrap(),
                reduce_ref(&xv, &shape, &axes, |g| {
                    g.iter().sum::<f64>() / g.len() as f64
                }),
            ),
            (
                "max",
                x.max(&ax, true).unwrap(),
                reduce_ref(&xv, &shape, &axes, |g| {
                    g.iter().cloned().fold(f64::MIN, f64::max)
                }),
            ),
            (
                "min",
                x.min(&ax, true).unwrap(),
                reduce_ref(&xv, &shape, &axes, |g| {
                    g.iter().cloned().fold(f64::MAX, f64::min)
                }),
            ),
            (
                "logsumexp",
                x.logsumexp(&ax, true).unwrap(),
                reduce_ref(&xv, &shape, &axes, lse),
            ),
        ];
        for (name, got, want) in checks {
            assert_close(
                &got.to_f64_vec().unwrap(),
                &want,
                1e-5,
                1e-5,
                &format!("{name} {axes:?}"),
            );
        }
    }
    let s = x.sum(&[1], false).unwrap();
    assert_eq!(s.shape(), &[7, 13]);
}

#[test]
fn sums_are_accurate_at_large_sizes() {
    for &n in &SIZES {
        let (x, xv) = randn(&[n], 77);
        let got = x.sum(&[], false).unwrap().to_f64_vec().unwrap()[0];
        let want: f64 = xv.iter().sum();
        assert!(
            (got - want).abs() <= 1e-5 * (n as f64).sqrt() + 1e-6,
            "n={n}: {got} vs {want}"
        );
    }
}

#[test]
fn argmax_and_softmax() {
    let (x, xv) = randn(&[33, 1000], 9);
    let am = x.argmax(-1, false).unwrap().to_vec::<i64>().unwrap();
    for (r, &a) in am.iter().enumerate() {
        let row = &xv[r * 1000..(r + 1) * 1000];
        let best = row
            .iter()
            .cloned()
            .enumerate()
            .fold((0, f64::MIN), |b, (i, v)| if v > b.1 { (i, v) } else { b });
        assert_eq!(a as usize, best.0);
    }
    for axis in [-1isize, 0] {
        let sm = x.softmax(axis).unwrap().to_f64_vec().unwrap();
        let ax = if axis < 0 { 1 } else { 0 };
        let want = {
            let m = reduce_ref(&xv, &[33, 1000], &[ax], |g| {
                g.iter().cloned().fold(f64::MIN, f64::max)
            });
            let exps: Vec<f64> = indices(&[33, 1000])
                .iter()
                .map(|i| {
                    let o = if ax == 1 { i[0] } else { i[1] };
                    (xv[flat(i, &[33, 1000])] - m[o]).exp()
                })
                .collect();
            let s = reduce_ref(&exps, &[33, 1000], &[ax], |g| g.iter().sum());
            indices(&[33, 1000])
                .iter()
                .map(|i| exps[flat(i, &[33, 1000])] / s[if ax == 1 { i[0] } else { i[1] }])
                .collect::<Vec<_>>()
        };
        assert_close(&sm, &want, 1e-7, 1e-5, &format!("softmax axis {axis}"));
    }
    let masked = Tensor::from_slice(&[f32::NEG_INFINITY; 4], &[1, 4])
        .unwrap()
        .softmax(-1)
        .unwrap();
    assert_eq!(
        masked.to_vec::<f32>().unwrap(),
        vec![0.0; 4],
        "an all -inf row softmaxes to zeros"
    );
}

fn matmul_ref(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    out
}

#[test]
fn matmul_batched_transposed_and_broadcast() {
    let (a, av) = randn(&[3, 77, 65], 1);
    let (b, bv) = randn(&[65, 33], 2);
    let y = a.matmul(&b).unwrap();
    assert_eq!(y.shape(), &[3, 77, 33]);
    let got = y.to_f64_vec().unwrap();
    for bi in 0..3 {
        let want = matmul_ref(&av[bi * 77 * 65..(bi + 1) * 77 * 65], &bv, 77, 65, 33);
        assert_close(
            &got[bi * 77 * 33..(bi + 1) * 77 * 33],
            &want,
            1e-4,
            1e-4,
            "batched",
        );
    }
    // b stored transposed (n, k) and read through strides.
    let (bt, btv) = randn(&[33, 65], 3);
    let y = a.matmul(&bt.t().unwrap()).unwrap().to_f64_vec().unwrap();
    let btt: Vec<f64> = (0..65 * 33).map(|i| btv[(i % 33) * 65 + i / 33]).collect();
    let want = matmul_ref(&av[..77 * 65], &btt, 77, 65, 33);
    assert_close(&y[..77 * 33], &want, 1e-4, 1e-4, "transposed rhs");
    for dtype in [DType::F16, DType::BF16, DType::F64] {
        let y = a
            .cast(dtype)
            .unwrap()
            .matmul(&b.cast(dtype).unwrap())
            .unwrap();
        assert_eq!(y.dtype(), dtype);
        let tol = if dtype == DType::F64 { 1e-10 } else { 0.15 };
        let want = matmul_ref(&av[..77 * 65], &bv, 77, 65, 33);
        assert_close(
            &y.to_f64_vec().unwrap()[..77 * 33],
            &want,
            tol,
            tol,
            &format!("matmul {dtype}"),
        );
    }
    assert!(a
        .matmul(&a)
        .unwrap_err()
        .to_string()
        .contains("inner dimensions"));
}

/// Products tall enough to be split into row blocks across the pool's
/// threads (odd row counts, so the last block is partial), with either
/// operand transposed and batched with a broadcast right-hand side.
#[test]
fn tall_matmuls_split_into_row_blocks() {
    let transpose = |v: &[f64], rows: usize, cols: usize| -> Vec<f64> {
        (0..rows * cols)
            .map(|i| v[(i % rows) * cols + i / rows])
            .collect()
    };
    for (m, k, n) in [(1000, 65, 33), (777, 130, 7), (1001, 1, 77)] {
        let (a, av) = randn(&[m, k], 11);
        let (b, bv) = randn(&[k, n], 12);
        let want = matmul_ref(&av, &bv, m, k, n);
        let plain = a.matmul(&b).unwrap().to_f64_vec().unwrap();
        assert_close(&plain, &want, 1e-4, 1e-4, &format!("{m}x{k}x{n}"));
        // a stored (k, m), b stored (n, k): both read through strides.
        let (at, atv) = randn(&[k, m], 13);
        let (bt, btv) = randn(&[n, k], 14);
        let want_t = matmul_ref(&transpose(&atv, k, m), &transpose(&btv, n, k), m, k, n);
        let got_t = at
            .t()
            .unwrap()
            .matmul(&bt.t().unwrap())
            .unwrap()
            .to_f64_vec()
            .unwrap();
        assert_close(
            &got_t,
            &want_t,
            1e-4,
            1e-4,
            &format!("{m}x{k}x{n} transposed"),
        );
    }
    let (m, k, n) = (1000, 33, 65);
    let (a, av) = randn(&[2, m, k], 15);
    let (b, bv) = randn(&[k, n], 16);
    let got = a.matmul(&b).unwrap().to_f64_vec().unwrap();
    for bi in 0..2 {
        let want = matmul_ref(&av[bi * m * k..(bi + 1) * m * k], &bv, m, k, n);
        assert_close(
            &got[bi * m * n..(bi + 1) * m * n],
            &want,
            1e-4,
            1e-4,
            "batched tall",
        );
    }
}

#[test]
fn conv1d_matches_direct_convolution() {
    for (stride, padding, dilation) in [(1, 1, 1), (2, 1, 1), (1, 0, 2), (3, 2, 1)] {
        let (x, xv) = randn(&[2, 5, 41], 11);
        let (w, wv) = randn(&[6, 5, 3], 12);
        let y = x.conv1d(&w, stride, padding, dilation, 1).unwrap();
        let lout = y.shape()[2];
        let got = y.to_f64_vec().unwrap();
        for b in 0..2 {
            for o in 0..6 {
                for t in 0..lout {
                    let mut s = 0.0;
                    for c in 0..5 {
                        for kk in 0..3 {
                            let p = (t * stride + kk * dilation) as isize - padding as isize;
                            if p >= 0 && (p as usize) < 41 {
                                s += xv[(b * 5 + c) * 41 + p as usize] * wv[(o * 5 + c) * 3 + kk];
                            }
                        }
                    }
                    let g = got[(b * 6 + o) * lout + t];
                    assert!(
                        (g - s).abs() < 1e-4,
                        "conv s{stride} p{padding} d{dilation}: {g} vs {s}"
                    );
                }
            }
        }
    }
}

#[test]
fn mixed_precision_matmul_streams_half_weights() {
    for (rows, dtype) in [(1usize, DType::F16), (3, DType::BF16), (20, DType::F16)] {
        let (x, xv) = randn(&[rows, 385], 30);
        let (w, _) = randn(&[77, 385], 31);
        let wh = w.cast(dtype).unwrap();
        let whv = wh.to_f64_vec().unwrap();
        let y = x.matmul(&wh.t().unwrap()).unwrap();
        assert_eq!(y.dtype(), DType::F32);
        let got = y.to_f64_vec().unwrap();
        // bf16 weights mean bf16 products: the activations are rounded to bf16.
        let xr: Vec<f64> = if dtype == DType::BF16 {
            xv.iter()
                .map(|&v| half::bf16::from_f32(v as f32).to_f64())
                .collect()
        } else {
            xv.clone()
        };
        for i in 0..rows {
            for r in 0..77 {
                let want: f64 = (0..385).map(|j| xr[i * 385 + j] * whv[r * 385 + j]).sum();
                assert!(
                    (got[i * 77 + r] - want).abs() < 1e-4,
                    "{dtype} rows={rows}: {} vs {want}",
                    got[i * 77 + r]
                );
            }
        }
    }
    let h = Tensor::zeros(&[2, 3], DType::F16).unwrap();
    assert!(
        h.matmul(&Tensor::zeros(&[3, 2], DType::F32).unwrap())
            .is_err(),
        "half activations with f32 weights are rejected"
    );
}
