//! Elementwise ops against f64 references on random inputs, odd sizes,
//! broadcasting and every float dtype.

mod common;
use common::*;
use emily::ops::{BinaryOp, UnaryOp};
use emily::{DType, Tensor};

/// The f64 reference of every unary op (the reference backend's definition).
fn unary_ref(op: UnaryOp, x: f64) -> f64 {
    emily::backend::reference::scalar::unary(op, x)
}

/// Every unary op that takes floats and has a smooth f64 reference.
fn float_unary() -> impl Iterator<Item = UnaryOp> {
    use UnaryOp::*;
    UnaryOp::ALL
        .into_iter()
        .filter(|op| !matches!(op, Floor | Ceil | Round | Sign | LogicalNot))
}

fn domain_positive(op: UnaryOp) -> bool {
    matches!(
        op,
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Recip
    )
}

#[test]
fn unary_f32_matches_f64_at_odd_sizes() {
    for (s, &n) in SIZES.iter().enumerate() {
        let (x, xv) = randn(&[n], 10 + s as u64);
        for op in float_unary() {
            let (x, xv) = if domain_positive(op) {
                (
                    x.abs().unwrap().add_scalar(0.1).unwrap(),
                    xv.iter()
                        .map(|v| (v.abs() as f32 + 0.1f32) as f64)
                        .collect(),
                )
            } else {
                (x.clone(), xv.clone())
            };
            let got = x.unary(op).unwrap().to_f64_vec().unwrap();
            let want: Vec<f64> = xv.iter().map(|&v| unary_ref(op, v)).collect();
            assert_close(&got, &want, 2e-6, 2e-6, &format!("{op:?} n={n}"));
        }
    }
}

#[test]
fn unary_half_types_compute_in_f32_and_round_once() {
    for dtype in [DType::F16, DType::BF16] {
        let (x, _) = randn(&[1000], 3);
        let xh = x.cast(dtype).unwrap();
        let xv = xh.to_f64_vec().unwrap();
        for op in [UnaryOp::Exp, UnaryOp::GeluErf, UnaryOp::Tanh, UnaryOp::Silu] {
            let got = xh.unary(op).unwrap();
            assert_eq!(got.dtype(), dtype);
            let want: Vec<f64> = xv.iter().map(|&v| unary_ref(op, v)).collect();
            let tol = if dtype == DType::F16 { 1e-3 } else { 8e-3 };
            assert_close(
                &got.to_f64_vec().unwrap(),
                &want,
                tol,
                tol,
                &format!("{op:?} {dtype}"),
            );
        }
    }
}

fn binary_ref(op: BinaryOp, a: f64, b: f64) -> f64 {
    use BinaryOp::*;
    match op {
        Add => a + b,
        Sub => a - b,
        Mul => a * b,
        Div => a / b,
        Maximum => a.max(b),
        Minimum => a.min(b),
        Lt => (a < b) as u8 as f64,
        Ge => (a >= b) as u8 as f64,
        Eq => (a == b) as u8 as f64,
        _ => f64::NAN,
    }
}

#[test]
fn binary_ops_broadcast_like_numpy() {
    let cases: [(&[usize], &[usize]); 6] = [
        (&[4099], &[4099]),
        (&[7, 77], &[77]),
        (&[77, 1], &[1, 7]),
        (&[1000], &[]),
        (&[3, 1, 5], &[4, 1]),
        (&[2, 300, 129], &[300, 1]),
    ];
    for (c, (sa, sb)) in cases.iter().enumerate() {
        let (a, av) = randn(sa, 100 + c as u64);
        let (b, bv) = randn(sb, 200 + c as u64);
        for op in [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Maximum,
            BinaryOp::Minimum,
            BinaryOp::Lt,
            BinaryOp::Ge,
        ] {
            let y = a.binary(op, &b).unwrap();
            let shape = y.shape().to_vec();
            let got = y.to_f64_vec().unwrap();
            let want: Vec<f64> = indices(&shape)
                .iter()
                .map(|i| binary_ref(op, bcast_at(&av, sa, i), bcast_at(&bv, sb, i)))
                .collect();
            assert_close(&got, &want, 1e-6, 1e-6, &format!("{op:?} {sa:?} {sb:?}"));
        }
    }
}

#[test]
fn pow_where_and_casts() {
    let (a, av) = randn(&[77], 1);
    let a = a.abs().unwrap().add_scalar(0.5).unwrap();
    let av: Vec<f64> = av.iter().map(|v| (v.abs() as f32 + 0.5) as f64).collect();
    let p = a.pow_scalar(1.7).unwrap().to_f64_vec().unwrap();
    assert_close(
        &p,
        &av.iter().map(|v| v.powf(1.7)).collect::<Vec<_>>(),
        1e-5,
        2e-6,
        "pow",
    );

    let (b, bv) = randn(&[77], 2);
    let cond = a.gt_scalar(1.0).unwrap();
    let w = Tensor::where_cond(&cond, &a, &b)
        .unwrap()
        .to_f64_vec()
        .unwrap();
    let want: Vec<f64> = av
        .iter()
        .zip(&bv)
        .map(|(&x, &y)| if x > 1.0 { x } else { y })
        .collect();
    assert_close(&w, &want, 0.0, 0.0, "where");

    let i = b
        .mul_scalar(100.0)
        .unwrap()
        .cast(DType::I32)
        .unwrap()
        .to_vec::<i32>()
        .unwrap();
    let want: Vec<i32> = bv.iter().map(|v| (*v as f32 * 100.0) as i32).collect();
    assert_eq!(i, want, "f32 -> i32 truncates");
    let back = Tensor::from_slice(&[3i64, -7, 1 << 40], &[3])
        .unwrap()
        .cast(DType::F64)
        .unwrap()
        .to_vec::<f64>()
        .unwrap();
    assert_eq!(back, vec![3.0, -7.0, (1u64 << 40) as f64]);
    let ints = Tensor::from_slice(&[7i64, -9, 100], &[3]).unwrap();
    let q = ints
        .div(&Tensor::from_slice(&[2i64, 2, 7], &[3]).unwrap())
        .unwrap()
        .to_vec::<i64>()
        .unwrap();
    assert_eq!(q, vec![3, -4, 14], "integer division truncates toward zero");
}

#[test]
fn special_values_propagate() {
    let x = Tensor::from_slice(
        &[f32::NEG_INFINITY, f32::INFINITY, f32::NAN, 0.0, -0.0],
        &[5],
    )
    .unwrap();
    let e = x.exp().unwrap().to_vec::<f32>().unwrap();
    assert_eq!(e[0], 0.0);
    assert_eq!(e[1], f32::INFINITY);
    assert!(e[2].is_nan());
    assert_eq!(e[3], 1.0);
    let t = x.tanh().unwrap().to_vec::<f32>().unwrap();
    assert_eq!((t[0], t[1]), (-1.0, 1.0));
}

#[test]
fn shape_and_dtype_errors_are_values_not_panics() {
    let a = Tensor::zeros(&[2, 3], DType::F32).unwrap();
    let b = Tensor::zeros(&[4], DType::F32).unwrap();
    let e = a.add(&b).unwrap_err().to_string();
    assert!(
        e.contains("[binary]") && e.contains("[2, 3]") && e.contains("[4]"),
        "{e}"
    );
    let c = Tensor::zeros(&[2, 3], DType::F16).unwrap();
    assert!(a.add(&c).unwrap_err().to_string().contains("cast"));
    let i = Tensor::zeros(&[3], DType::I32).unwrap();
    assert!(i.exp().is_err());
    assert!(a.to_vec::<f64>().is_err());
    assert!(Tensor::from_slice(&[1.0f32; 5], &[2, 3]).is_err());
}

/// Values that probe rounding to a half type: random magnitudes from 1e-9
/// to 1e5 of both signs, plus exact ties, overflow and signed zeros.
fn rounding_probes(n: usize, seed: u64) -> Vec<f32> {
    let (_, r) = randn(&[n], seed);
    let mut v: Vec<f32> = r
        .iter()
        .enumerate()
        .map(|(i, x)| (*x as f32) * 10f32.powi((i % 15) as i32 - 9))
        .collect();
    v.extend([
        1.0 + 2f32.powi(-11), // f16 tie: to even (1.0)
        1.0 + 3.0 * 2f32.powi(-11),
        1.0 + 2f32.powi(-8), // bf16 tie
        65519.0,             // largest that rounds to f16 max
        65520.0,             // rounds to f16 inf
        -1e-7,               // f16 subnormal
        3e38,                // bf16 overflow
        -0.0,
        0.0,
        f32::INFINITY,
    ]);
    v
}

#[test]
fn fused_half_chains_round_each_step_like_the_scalar_rounding() {
    for (dtype, round) in [
        (
            DType::F16,
            (|x: f32| half::f16::from_f32(x).to_f32()) as fn(f32) -> f32,
        ),
        (DType::BF16, |x: f32| half::bf16::from_f32(x).to_f32()),
    ] {
        for n in [1usize, 7, 77, 1000] {
            let probes = |seed| -> (Tensor, Vec<f32>) {
                let v = rounding_probes(n, seed);
                let t = Tensor::from_slice(&v, &[v.len()])
                    .unwrap()
                    .cast(dtype)
                    .unwrap()
                    .eval()
                    .unwrap();
                let r = t.cast(DType::F32).unwrap().to_vec::<f32>().unwrap();
                (t, r)
            };
            let ((a, av), (b, bv), (c, cv)) = (probes(n as u64), probes(3), probes(11));
            // One chain on half values: each op computes in f32 and rounds
            // its result to the half type before the next reads it — in the
            // compiled plan one fused group, whose registers round in place.
            let chain = |t: &[Tensor]| -> emily::Result<Vec<Tensor>> {
                Ok(vec![t[0].mul(&t[1])?.add(&t[2])?.cast(DType::F32)?])
            };
            let args = [a, b, c];
            let eager = chain(&args).unwrap().remove(0);
            let compiled = emily::compile(chain).call(&args).unwrap().remove(0);
            for (got, what) in [(eager, "eager"), (compiled, "compiled")] {
                let got = got.to_vec::<f32>().unwrap();
                for i in 0..got.len() {
                    let want = round(round(av[i] * bv[i]) + cv[i]);
                    assert_eq!(
                        got[i].to_bits(),
                        want.to_bits(),
                        "{what} {dtype} n={n} [{i}]: {} * {} + {} -> {}, want {want}",
                        av[i],
                        bv[i],
                        cv[i],
                        got[i]
                    );
                }
            }
        }
    }
}
