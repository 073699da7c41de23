//! Every op's vector-Jacobian rule against central finite differences in
//! float64, on seeded random inputs of odd shapes (broadcasting, keep-dims,
//! strided and transposed forms included).

use emily::ops::{BinaryOp, Reduction, UnaryOp};
use emily::{grad, DType, Device, Result, Tensor};

/// Seeded standard-normal f64 tensor.
fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, seed, DType::F64)
        .unwrap()
        .eval()
        .unwrap()
}

/// Seeded uniform f64 tensor in `[low, high)`.
fn uniform(shape: &[usize], low: f64, high: f64, seed: u64) -> Tensor {
    Tensor::rand_uniform(shape, low, high, seed, DType::F64)
        .unwrap()
        .eval()
        .unwrap()
}

/// Checks `vjp(f)` against central differences of `sum(f(x) · c)` for a
/// random cotangent `c`, for every element of every input, on the CPU and
/// on the reference backend.
fn check(what: &str, f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) {
    for device in [Device::Cpu, Device::Reference] {
        let inputs: Vec<Tensor> = inputs
            .iter()
            .map(|t| t.to_device(device).unwrap())
            .collect();
        check_on(&format!("{what} on {device}"), &f, &inputs, device);
    }
}

fn check_on(
    what: &str,
    f: &impl Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    device: Device,
) {
    let y = f(inputs).unwrap();
    let c = randn(y.shape(), 999).to_device(device).unwrap();
    let (_, grads) = grad::vjp(|xs| Ok(vec![f(xs)?]), inputs, std::slice::from_ref(&c)).unwrap();
    let objective = |xs: &[Tensor]| -> f64 {
        let y = f(xs).unwrap();
        y.mul(&c)
            .unwrap()
            .sum(&[], false)
            .unwrap()
            .to_f64_vec()
            .unwrap()[0]
    };
    let h = 1e-6;
    for (k, x) in inputs.iter().enumerate() {
        let base = x.to_f64_vec().unwrap();
        let got = grads[k].to_f64_vec().unwrap();
        assert_eq!(grads[k].shape(), x.shape(), "{what}: gradient {k} shape");
        assert_eq!(grads[k].device(), device, "{what}: gradient {k} device");
        for i in 0..base.len() {
            let at = |d: f64| {
                let mut v = base.clone();
                v[i] += d;
                let mut xs = inputs.to_vec();
                xs[k] = Tensor::from_slice_on(&v, x.shape(), device).unwrap();
                objective(&xs)
            };
            let want = (at(h) - at(-h)) / (2.0 * h);
            let tol = 1e-6 + 1e-5 * want.abs();
            assert!(
                (got[i] - want).abs() <= tol,
                "{what}: d/dx{k}[{i}] analytic {} vs numeric {want}",
                got[i]
            );
        }
    }
}

#[test]
fn unary_functions() {
    use UnaryOp::*;
    let shape = [3, 5];
    for (i, op) in [
        Neg, Abs, Exp, Log, Sqrt, Rsqrt, Recip, Sin, Cos, Tanh, Erf, GeluErf, GeluTanh, Silu,
        Sigmoid, Relu, Square,
    ]
    .into_iter()
    .enumerate()
    {
        let x = match op {
            // Positive inputs away from the singularity.
            Log | Sqrt | Rsqrt | Recip => uniform(&shape, 0.5, 2.0, i as u64),
            _ => randn(&shape, i as u64),
        };
        check(&format!("{op:?}"), |xs| xs[0].unary(op), &[x]);
    }
}

#[test]
fn binary_arithmetic_with_broadcasting() {
    use BinaryOp::*;
    for (i, op) in [Add, Sub, Mul, Div, Pow, Maximum, Minimum]
        .into_iter()
        .enumerate()
    {
        let s = 10 * i as u64;
        for (sa, sb) in [
            (&[2usize, 3, 4][..], &[2usize, 3, 4][..]),
            (&[2, 1, 4][..], &[3, 1][..]),
            (&[5][..], &[][..]),
            (&[1, 7][..], &[3, 1][..]),
        ] {
            let (a, b) = match op {
                Pow => (uniform(sa, 0.5, 2.0, s), randn(sb, s + 1)),
                Div => (randn(sa, s), uniform(sb, 0.5, 2.0, s + 1)),
                _ => (randn(sa, s), randn(sb, s + 1)),
            };
            check(
                &format!("{op:?} {sa:?} {sb:?}"),
                |xs| xs[0].binary(op, &xs[1]),
                &[a, b],
            );
        }
    }
}

#[test]
fn where_with_a_broadcast_condition() {
    let cond = randn(&[3, 1], 1).gt_scalar(0.0).unwrap().eval().unwrap();
    check(
        "where",
        |xs| Tensor::where_cond(&cond.to_device(xs[0].device())?, &xs[0], &xs[1]),
        &[randn(&[3, 4], 2), randn(&[4], 3)],
    );
}

#[test]
fn reductions_over_axes_with_and_without_keep_dims() {
    use Reduction::*;
    let shape = [3, 4, 5];
    for (i, op) in [Sum, Mean, Max, Min, Prod, LogSumExp]
        .into_iter()
        .enumerate()
    {
        for axes in [&[1isize][..], &[0, 2], &[-1], &[]] {
            for keep in [false, true] {
                let x = match op {
                    Prod => uniform(&shape, 0.5, 1.5, i as u64),
                    _ => randn(&shape, i as u64),
                };
                check(
                    &format!("{op:?} {axes:?} keep={keep}"),
                    |xs| xs[0].reduce(op, axes, keep),
                    &[x],
                );
            }
        }
    }
}

#[test]
fn prod_gradient_is_exact_with_zeros() {
    // rows: no zero, one zero, two zeros
    let x = Tensor::from_slice(&[2.0f64, 3.0, 4.0, 2.0, 0.0, 5.0, 0.0, 3.0, 0.0], &[3, 3]).unwrap();
    let g = grad::grad(
        |xs| {
            Ok(vec![xs[0]
                .reduce(Reduction::Prod, &[1], false)?
                .sum(&[], false)?])
        },
        &[0],
    )(&[x])
    .unwrap();
    assert_eq!(
        g[0].to_vec::<f64>().unwrap(),
        [12.0, 8.0, 6.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn softmax_along_each_axis() {
    for axis in [0isize, 1, -1] {
        check(
            &format!("softmax {axis}"),
            |xs| xs[0].softmax(axis),
            &[randn(&[3, 4, 5], 7)],
        );
    }
}

#[test]
fn matmul_plain_batched_broadcast_and_transposed() {
    let cases: [(&[usize], &[usize], bool, bool); 8] = [
        (&[3, 4], &[4, 5], false, false),
        (&[2, 3, 4], &[2, 4, 5], false, false),
        (&[4, 3, 4], &[4, 5], false, false),
        (&[1, 3, 4], &[2, 4, 5], false, false),
        (&[4, 3], &[4, 5], true, false),
        (&[3, 4], &[5, 4], false, true),
        (&[2, 4, 3], &[5, 4], true, true),
        (&[3, 1, 4, 3], &[2, 5, 4], true, true),
    ];
    for (i, (sa, sb, ta, tb)) in cases.into_iter().enumerate() {
        check(
            &format!("matmul {sa:?} {sb:?} ta={ta} tb={tb}"),
            |xs| {
                let a = if ta { xs[0].t()? } else { xs[0].clone() };
                let b = if tb { xs[1].t()? } else { xs[1].clone() };
                a.matmul(&b)
            },
            &[randn(sa, i as u64), randn(sb, 100 + i as u64)],
        );
    }
}

#[test]
fn conv1d_stride_padding_dilation_groups() {
    // (stride, padding, dilation, groups, length)
    for (i, (s, p, d, g, l)) in [
        (1, 0, 1, 1, 9),
        (2, 1, 1, 1, 11),
        (1, 2, 2, 1, 8),
        (3, 1, 2, 2, 13),
        (2, 0, 1, 4, 10),
    ]
    .into_iter()
    .enumerate()
    {
        let x = randn(&[2, 4, l], i as u64);
        let cout = 2 * g.max(3);
        let w = randn(&[cout, 4 / g, 3], 50 + i as u64);
        check(
            &format!("conv1d s={s} p={p} d={d} g={g}"),
            |xs| xs[0].conv1d(&xs[1], s, p, d, g),
            &[x, w],
        );
    }
}

#[test]
fn layout_ops() {
    let x = randn(&[3, 4, 5], 1);
    check(
        "reshape",
        |xs| xs[0].reshape(&[5, -1]),
        std::slice::from_ref(&x),
    );
    check(
        "permute",
        |xs| xs[0].permute(&[2, 0, 1]),
        std::slice::from_ref(&x),
    );
    check(
        "broadcast",
        |xs| xs[0].broadcast_to(&[2, 3, 4, 5]),
        &[randn(&[3, 1, 5], 2)],
    );
    check(
        "slice strided",
        |xs| xs[0].slice(&[1, 0, 1], &[3, 4, 5], &[1, 3, 2]),
        std::slice::from_ref(&x),
    );
    check(
        "narrow",
        |xs| xs[0].narrow(-1, 2, 2),
        std::slice::from_ref(&x),
    );
    check(
        "concat",
        |xs| Tensor::concat(&[&xs[0], &xs[1], &xs[2]], 1),
        &[
            randn(&[2, 1, 3], 3),
            randn(&[2, 4, 3], 4),
            randn(&[2, 2, 3], 5),
        ],
    );
    check("pad", |xs| xs[0].pad(&[(1, 0), (0, 2), (2, 1)], 0.5), &[x]);
}

#[test]
fn gather_and_scatter_add() {
    let table = randn(&[5, 3], 1);
    let ids = Tensor::from_slice(&[4i64, 0, 4, 2, 4, 1], &[2, 3]).unwrap();
    check(
        "gather axis 0",
        |xs| xs[0].gather(&ids.to_device(xs[0].device())?, 0),
        &[table],
    );
    let ids1 = Tensor::from_slice(&[2i32, 2, 0], &[3]).unwrap();
    check(
        "gather axis 1",
        |xs| xs[0].gather(&ids1.to_device(xs[0].device())?, 1),
        &[randn(&[2, 4, 3], 2)],
    );
    check(
        "scatter_add",
        |xs| xs[0].scatter_add(&ids.to_device(xs[0].device())?, &xs[1], 0),
        &[randn(&[5, 3], 3), randn(&[2, 3, 3], 4)],
    );
}

#[test]
fn scatter_add_accumulates_repeated_indices() {
    let target = Tensor::from_slice(&[1.0f32, 2.0, 3.0], &[3]).unwrap();
    let ids = Tensor::from_slice(&[2i64, 0, 2, 2], &[4]).unwrap();
    let upd = Tensor::from_slice(&[10.0f32, 20.0, 30.0, 40.0], &[4]).unwrap();
    let out = target.scatter_add(&ids, &upd, 0).unwrap();
    assert_eq!(out.to_vec::<f32>().unwrap(), [21.0, 2.0, 83.0]);
    let bad = Tensor::from_slice(&[3i64], &[1]).unwrap();
    let e = target
        .scatter_add(&bad, &Tensor::ones(&[1], DType::F32).unwrap(), 0)
        .unwrap()
        .eval()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("scatter_add") && e.contains("out of range"),
        "{e}"
    );
    let e = target
        .scatter_add(&ids, &Tensor::ones(&[3], DType::F32).unwrap(), 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("scatter_add") && e.contains("[3]"), "{e}");
}

#[test]
fn slice_update_target_and_update() {
    let offset = Tensor::from_slice(&[2i64], &[]).unwrap();
    check(
        "slice_update",
        |xs| xs[0].slice_update(&xs[1], &offset.to_device(xs[0].device())?, 1),
        &[randn(&[2, 7, 3], 1), randn(&[2, 3, 3], 2)],
    );
}

#[test]
fn cast_passes_the_gradient_back_in_the_input_dtype() {
    let x = randn(&[4], 1);
    let c = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0], &[4]).unwrap();
    let (_, g) = grad::vjp(|xs| Ok(vec![xs[0].cast(DType::F32)?]), &[x], &[c]).unwrap();
    assert_eq!(g[0].dtype(), DType::F64);
    assert_eq!(g[0].to_vec::<f64>().unwrap(), [1.0, -2.0, 0.5, 3.0]);
}
