//! Every op family on every dtype it accepts, against f64 references.

mod common;
use common::*;
use emily::{DType, Tensor};

const ALL: [DType; 8] = ALL_DTYPES;

/// Seeded values representable in `dtype` (small integers for integer types).
fn values(shape: &[usize], dtype: DType, seed: u64) -> (Tensor, Vec<f64>) {
    let (x, _) = randn(shape, seed);
    let x = match dtype {
        DType::U8 => x.abs().unwrap().mul_scalar(40.0).unwrap(),
        DType::Bool => x.gt_scalar(0.0).unwrap().cast(DType::F32).unwrap(),
        d if d.is_int() => x.mul_scalar(50.0).unwrap(),
        _ => x,
    };
    let t = x.cast(dtype).unwrap().eval().unwrap();
    let v = t.to_f64_vec().unwrap();
    (t, v)
}

fn tol(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 2e-3,
        DType::BF16 => 1.6e-2,
        DType::F32 => 1e-5,
        _ => 0.0,
    }
}

#[test]
fn arithmetic_and_comparisons_on_every_numeric_dtype() {
    let shape = [7, 77];
    for dtype in ALL.into_iter().filter(|&d| d != DType::Bool) {
        let (a, av) = values(&shape, dtype, 1);
        let (b, bv) = values(&[77], dtype, 2);
        let bc = |i: usize| bv[i % 77];
        let round = |v: f64| {
            Tensor::from_slice(&[v], &[1])
                .unwrap()
                .cast(dtype)
                .unwrap()
                .to_f64_vec()
                .unwrap()[0]
        };
        let add = a.add(&b).unwrap().to_f64_vec().unwrap();
        let max = a.maximum(&b).unwrap().to_f64_vec().unwrap();
        let lt = a.lt(&b).unwrap();
        assert_eq!(lt.dtype(), DType::Bool);
        let lt = lt.to_f64_vec().unwrap();
        for i in 0..av.len() {
            let want = if dtype == DType::U8 {
                ((av[i] + bc(i)) as u64 % 256) as f64
            } else {
                round(av[i] + bc(i))
            };
            if dtype != DType::U8 || av[i] + bc(i) < 256.0 {
                assert!(
                    (add[i] - want).abs() <= tol(dtype) * want.abs().max(1.0),
                    "{dtype} add[{i}]: {} vs {want}",
                    add[i]
                );
            }
            assert_eq!(max[i], av[i].max(bc(i)), "{dtype} maximum");
            assert_eq!(lt[i], (av[i] < bc(i)) as u8 as f64, "{dtype} lt");
        }
        let neg_ok = dtype != DType::U8;
        if neg_ok {
            let n = a.neg().unwrap().to_f64_vec().unwrap();
            assert!(n.iter().zip(&av).all(|(x, y)| *x == -*y), "{dtype} neg");
        }
    }
}

#[test]
fn reductions_on_every_numeric_dtype() {
    let shape = [5, 300];
    for dtype in ALL.into_iter().filter(|&d| d != DType::Bool) {
        let (a, av) = values(&shape, dtype, 3);
        let sum = a.sum(&[-1], false).unwrap();
        assert_eq!(sum.dtype(), dtype);
        let max = a.max(&[0], false).unwrap().to_f64_vec().unwrap();
        let am = a.argmax(-1, false).unwrap().to_vec::<i64>().unwrap();
        for r in 0..5 {
            let row = &av[r * 300..(r + 1) * 300];
            let want: f64 = row.iter().sum();
            let got = sum.to_f64_vec().unwrap()[r];
            if dtype != DType::U8 {
                assert!(
                    (got - want).abs()
                        <= 3.0 * tol(dtype) * row.iter().map(|v| v.abs()).sum::<f64>() + 1e-9,
                    "{dtype} sum: {got} vs {want}"
                );
            }
            let best = row.iter().cloned().fold(f64::MIN, f64::max);
            assert_eq!(row[am[r] as usize], best, "{dtype} argmax");
            assert_eq!(
                row.iter().position(|&v| v == best).unwrap(),
                am[r] as usize,
                "{dtype} argmax is the first"
            );
        }
        for c in 0..300 {
            let want = (0..5).map(|r| av[r * 300 + c]).fold(f64::MIN, f64::max);
            assert_eq!(max[c], want, "{dtype} max over axis 0");
        }
    }
}

#[test]
fn layout_and_indexing_are_exact_on_every_dtype() {
    for dtype in ALL {
        let (a, av) = values(&[4, 6, 5], dtype, 4);
        let p = a.permute(&[2, 0, 1]).unwrap().to_f64_vec().unwrap();
        for i in indices(&[5, 4, 6]) {
            assert_eq!(
                p[flat(&i, &[5, 4, 6])],
                av[flat(&[i[1], i[2], i[0]], &[4, 6, 5])],
                "{dtype} permute"
            );
        }
        let s = a
            .slice(&[1, 0, 1], &[4, 6, 5], &[2, 3, 2])
            .unwrap()
            .to_f64_vec()
            .unwrap();
        for i in indices(&[2, 2, 2]) {
            assert_eq!(
                s[flat(&i, &[2, 2, 2])],
                av[flat(&[1 + 2 * i[0], 3 * i[1], 1 + 2 * i[2]], &[4, 6, 5])],
                "{dtype} slice"
            );
        }
        let c = Tensor::concat(&[&a, &a], 2).unwrap().to_f64_vec().unwrap();
        assert_eq!(
            c[flat(&[3, 5, 9], &[4, 6, 10])],
            av[flat(&[3, 5, 4], &[4, 6, 5])],
            "{dtype} concat"
        );
        let idx = Tensor::from_slice(&[5i32, 0, 3], &[3]).unwrap();
        let g = a.gather(&idx, 1).unwrap().to_f64_vec().unwrap();
        assert_eq!(
            g[flat(&[2, 1, 4], &[4, 3, 5])],
            av[flat(&[2, 0, 4], &[4, 6, 5])],
            "{dtype} gather"
        );
        let pd = a
            .pad(&[(1, 0), (0, 0), (0, 2)], 1.0)
            .unwrap()
            .to_f64_vec()
            .unwrap();
        assert_eq!(pd[0], 1.0, "{dtype} pad value");
        assert_eq!(pd[flat(&[1, 0, 0], &[5, 6, 7])], av[0], "{dtype} pad copy");
        let w = Tensor::where_cond(&a.cast(DType::Bool).unwrap(), &a, &a.scalar_like(0.0))
            .unwrap()
            .to_f64_vec()
            .unwrap();
        assert_eq!(w, av, "{dtype} where(x != 0, x, 0) == x");
    }
}

#[test]
fn casts_round_trip_through_f64_exactly_where_representable() {
    let ints = Tensor::from_slice(&[-7i64, 0, 3, 255, 1 << 20], &[5]).unwrap();
    for dtype in [DType::F32, DType::F64, DType::I32, DType::I64] {
        assert_eq!(
            ints.cast(dtype)
                .unwrap()
                .cast(DType::I64)
                .unwrap()
                .to_vec::<i64>()
                .unwrap(),
            vec![-7, 0, 3, 255, 1 << 20],
            "{dtype}"
        );
    }
    let f = Tensor::from_slice(&[0.5f32, -1.25, 3.0], &[3]).unwrap();
    for dtype in [DType::F16, DType::BF16, DType::F64] {
        assert_eq!(
            f.cast(dtype)
                .unwrap()
                .cast(DType::F32)
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            vec![0.5, -1.25, 3.0],
            "{dtype}"
        );
    }
    let b = Tensor::from_slice(&[0.0f32, 2.0, -0.5], &[3])
        .unwrap()
        .cast(DType::Bool)
        .unwrap();
    assert_eq!(
        b.cast(DType::U8).unwrap().to_vec::<u8>().unwrap(),
        vec![0, 1, 1]
    );
}

#[test]
fn full_of_half_types_rounds_the_value_once_as_a_cast_does() {
    use emily::Device;
    // Rounding up and down, the largest finite, overflow, a subnormal, -0, NaN.
    let values = [0.1, -2.675, 65504.0, 70000.0, 1e-7, 3.0e38, -0.0, f64::NAN];
    for dtype in [DType::F16, DType::BF16] {
        for &v in &values {
            for n in [1usize, 7, 77] {
                let got = Tensor::full(&[n], v, dtype, Device::Cpu)
                    .unwrap()
                    .to_f64_vec()
                    .unwrap();
                let want = Tensor::from_slice(&[v], &[1])
                    .unwrap()
                    .cast(dtype)
                    .unwrap()
                    .to_f64_vec()
                    .unwrap()[0];
                for g in got {
                    assert!(
                        g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                        "{dtype:?} full({v}) x{n}: {g} vs {want}"
                    );
                }
            }
        }
    }
}
