//! `emily::grad` as a user meets it: value_and_grad/grad/vjp, composition
//! with `compile`, fast ops (fused forward, composed backward; RoPE's
//! backward the inverse rotation), and the
//! errors for non-differentiable paths.

use emily::fast::{self, FastOp, MaskKind, PositionsKind, RopeOptions, SdpaMask, SdpaOptions};
use emily::{compile, grad, DType, Result, Tensor};

mod grad_common;

use grad_common::{max_rel_diff, randn};

/// A small MLP loss: mean(gelu(x·w1 + b1)·w2)².
fn mlp(a: &[Tensor]) -> Result<Vec<Tensor>> {
    let (w1, b1, w2, x) = (&a[0], &a[1], &a[2], &a[3]);
    let h = x.matmul(w1)?.add(b1)?.gelu()?;
    let y = h.matmul(w2)?;
    Ok(vec![y.square()?.mean(&[], false)?, y])
}

#[test]
fn compiled_value_and_grad_matches_eager_and_replays() {
    let args = [
        randn(&[7, 13], 1),
        randn(&[13], 2),
        randn(&[13, 3], 3),
        randn(&[5, 7], 4),
    ];
    let (values, grads) = grad::value_and_grad(mlp, &[0, 1, 2])(&args).unwrap();
    assert_eq!(values.len(), 2, "aux outputs are carried along");
    let vg = grad::value_and_grad(mlp, &[0, 1, 2]);
    let step = compile(move |a: &[Tensor]| {
        let (v, g) = vg(a)?;
        Ok(v.into_iter().chain(g).collect())
    });
    for _ in 0..2 {
        let out = step.call(&args).unwrap();
        assert_eq!(out.len(), 5);
        assert_eq!(
            out[0].to_vec::<f32>().unwrap(),
            values[0].to_vec::<f32>().unwrap()
        );
        for k in 0..3 {
            assert_eq!(out[2 + k].shape(), args[k].shape());
            assert!(max_rel_diff(&out[2 + k], &grads[k]) < 1e-6, "grad {k}");
        }
    }
    let plan = step.plan(&args).unwrap();
    assert!(
        plan.op_frequencies().iter().any(|(op, _)| *op == "fused"),
        "the backward's elementwise chains fuse: {:?}",
        plan.op_frequencies()
    );
}

#[test]
fn passing_one_tensor_twice_gives_two_gradients() {
    let x = Tensor::from_slice(&[3.0f32], &[1]).unwrap();
    let g = grad::grad(|a| Ok(vec![a[0].mul(&a[1])?.sum(&[], false)?]), &[0, 1])(&[x.clone(), x])
        .unwrap();
    assert_eq!(g[0].to_vec::<f32>().unwrap(), [3.0]);
    assert_eq!(g[1].to_vec::<f32>().unwrap(), [3.0]);
}

#[test]
fn an_unused_input_gets_zeros() {
    let g =
        grad::grad(|a| Ok(vec![a[0].sum(&[], false)?]), &[0, 1])(&[randn(&[2], 1), randn(&[3], 2)])
            .unwrap();
    assert_eq!(g[1].to_vec::<f32>().unwrap(), [0.0; 3]);
}

#[test]
fn a_path_through_a_comparison_contributes_nothing_beside_a_differentiable_one() {
    // x · (x > 0) is relu: its gradient is the step function.
    let x = Tensor::from_slice(&[-1.5f32, 0.5, 2.0], &[3]).unwrap();
    let g = grad::grad(
        |a| {
            let mask = a[0].gt_scalar(0.0)?.cast(DType::F32)?;
            Ok(vec![a[0].mul(&mask)?.sum(&[], false)?])
        },
        &[0],
    )(&[x])
    .unwrap();
    assert_eq!(g[0].to_vec::<f32>().unwrap(), [0.0, 1.0, 1.0]);
}

#[test]
fn an_input_reached_only_through_non_differentiable_ops_is_an_error_naming_the_op() {
    let x = randn(&[4, 3], 1);
    type Loss = fn(&Tensor) -> Result<Tensor>;
    let cases: [(&str, Loss); 5] = [
        ("argmax", |x| {
            x.argmax(-1, false)?.cast(DType::F32)?.sum(&[], false)
        }),
        ("gt", |x| {
            x.gt_scalar(0.0)?.cast(DType::F32)?.sum(&[], false)
        }),
        ("cast to i32", |x| {
            x.cast(DType::I32)?.cast(DType::F32)?.sum(&[], false)
        }),
        ("floor", |x| {
            x.unary(emily::ops::UnaryOp::Floor)?.sum(&[], false)
        }),
        ("gt", |x| {
            let one = Tensor::ones(&[], DType::F32)?;
            Tensor::where_cond(&x.gt_scalar(0.0)?, &one, &one.neg()?)?.sum(&[], false)
        }),
    ];
    for (name, f) in cases {
        let e = grad::grad(move |a| Ok(vec![f(&a[0])?]), &[0])(std::slice::from_ref(&x))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("`{name}`")) && e.contains("not differentiable"),
            "{name}: {e}"
        );
    }
    let ids = Tensor::from_slice(&[1i64], &[1]).unwrap();
    let e = grad::grad(|a| Ok(vec![a[0].cast(DType::F32)?.sum(&[], false)?]), &[0])(&[ids])
        .unwrap_err()
        .to_string();
    assert!(e.contains("i64"), "{e}");
    let e = grad::grad(|a| Ok(vec![a[0].clone()]), &[0])(&[randn(&[2], 1)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("one-element loss"), "{e}");
}

/// Gradients of `sum(f(inputs) · c)` for every input.
fn grads(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) -> Vec<Tensor> {
    let y = f(inputs).unwrap();
    let c = randn(y.shape(), 77);
    grad::vjp(|xs| Ok(vec![f(xs)?]), inputs, &[c]).unwrap().1
}

/// The fused forward (one fast node) and its decomposition give the same
/// gradients, for every input.
fn fused_vs_composed(
    what: &str,
    fused: impl Fn(&[Tensor]) -> Result<Tensor>,
    op: FastOp,
    inputs: &[Tensor],
) {
    let node = fused(inputs).unwrap();
    assert!(format!("{node:?}").contains("pending"));
    let a = grads(&fused, inputs);
    let b = grads(|xs| op.decompose(xs), inputs);
    for (k, (ga, gb)) in a.iter().zip(&b).enumerate() {
        let d = max_rel_diff(ga, gb);
        assert!(d < 2e-5, "{what}: input {k} differs by {d}");
    }
}

#[test]
fn fast_ops_differentiate_through_their_decomposition() {
    fused_vs_composed(
        "rms_norm",
        |x| fast::rms_norm(&x[0], Some(&x[1]), 1e-5),
        FastOp::RmsNorm {
            eps: 1e-5,
            has_weight: true,
        },
        &[randn(&[3, 5, 19], 1), randn(&[19], 2)],
    );
    fused_vs_composed(
        "layer_norm",
        |x| fast::layer_norm(&x[0], Some(&x[1]), Some(&x[2]), 1e-5),
        FastOp::LayerNorm {
            eps: 1e-5,
            has_weight: true,
            has_bias: true,
        },
        &[randn(&[4, 23], 3), randn(&[23], 4), randn(&[23], 5)],
    );
    fused_vs_composed(
        "rope",
        |x| {
            fast::rope(
                &x[0],
                RopeOptions {
                    offset: fast::RopeOffset::Static(3),
                    ..RopeOptions::new(6)
                },
            )
        },
        FastOp::Rope {
            dims: 6,
            traditional: false,
            base: 10000.0,
            scale: 1.0,
            positions: PositionsKind::Offset(3),
            has_freqs: false,
        },
        &[randn(&[2, 3, 5, 8], 6)],
    );
    let scale = 1.0 / 8f32.sqrt();
    fused_vs_composed(
        "sdpa causal gqa",
        |x| {
            fast::scaled_dot_product_attention(
                &x[0],
                &x[1],
                &x[2],
                SdpaOptions {
                    mask: SdpaMask::Causal,
                    ..Default::default()
                },
            )
        },
        FastOp::Sdpa {
            scale,
            mask: MaskKind::Causal,
            has_sinks: false,
            int8_products: false,
        },
        &[
            randn(&[2, 4, 5, 8], 7),
            randn(&[2, 2, 5, 8], 8),
            randn(&[2, 2, 5, 8], 9),
        ],
    );
}

#[test]
fn random_uniform_is_keyed_deterministic_and_in_range() {
    let key = |k: i64| Tensor::from_slice(&[k], &[]).unwrap();
    let a = Tensor::random_uniform(&[1001], &key(7), 0, DType::F32)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let b = Tensor::random_uniform(&[1001], &key(7), 0, DType::F32)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    let c = Tensor::random_uniform(&[1001], &key(8), 0, DType::F32)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let other_stream = Tensor::random_uniform(&[1001], &key(7), 1, DType::F32)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_ne!(a, other_stream);
    assert!(a.iter().all(|&v| (0.0..1.0).contains(&v)));
    let mean = a.iter().sum::<f32>() / a.len() as f32;
    assert!((mean - 0.5).abs() < 0.05, "mean {mean}");
    // Prefixes agree: element i depends on the key and i only.
    let short = Tensor::random_uniform(&[7], &key(7), 0, DType::F32)
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(short[..], a[..7]);
    for dtype in [DType::F16, DType::BF16, DType::F64] {
        let v = Tensor::random_uniform(&[4099], &key(1), 0, dtype)
            .unwrap()
            .to_f64_vec()
            .unwrap();
        assert!(v.iter().all(|&x| (0.0..1.0).contains(&x)), "{dtype}");
    }
    assert!(Tensor::random_uniform(&[2], &key(1), 0, DType::I32).is_err());
    assert!(Tensor::random_uniform(
        &[2],
        &Tensor::ones(&[2], DType::I64).unwrap(),
        0,
        DType::F32
    )
    .is_err());
}

/// `Σ y·c` for `y = f(x)`: with `f` linear, `<f(x), c> = <x, f'(c)>`.
fn dot(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

#[test]
fn rope_gradient_is_the_inverse_rotation_kernel() {
    // (dims, traditional, offset, freqs): partial and full rotation, both
    // pair layouts, static / tensor / per-token positions, given frequencies.
    let t = 7;
    let positions = Tensor::from_slice(&[4i64, 0, 9, 2, 2, 13, 1], &[t]).unwrap();
    let freqs = Tensor::rand_uniform(&[4], 0.01, 1.0, 21, DType::F32)
        .unwrap()
        .eval()
        .unwrap();
    let cases: Vec<(usize, bool, fast::RopeOffset, PositionsKind, bool)> = vec![
        (
            6,
            false,
            fast::RopeOffset::Static(3),
            PositionsKind::Offset(3),
            false,
        ),
        (
            10,
            true,
            fast::RopeOffset::Scalar(Tensor::from_slice(&[5i64], &[]).unwrap()),
            PositionsKind::OffsetTensor,
            false,
        ),
        (
            8,
            false,
            fast::RopeOffset::Positions(positions.clone()),
            PositionsKind::PerToken,
            true,
        ),
    ];
    for (case, (dims, traditional, offset, kind, with_freqs)) in cases.into_iter().enumerate() {
        let x = randn(&[2, 3, t, 10], 30 + case as u64);
        let opts = RopeOptions {
            traditional,
            scale: 0.75,
            offset: offset.clone(),
            ..RopeOptions::new(dims)
        };
        let fused = |xs: &[Tensor]| {
            if with_freqs {
                fast::rope_with_freqs(&xs[0], &freqs, opts.clone())
            } else {
                fast::rope(&xs[0], opts.clone())
            }
        };
        let mut inputs = vec![x.clone()];
        match &offset {
            fast::RopeOffset::Scalar(p) | fast::RopeOffset::Positions(p) => inputs.push(p.clone()),
            fast::RopeOffset::Static(_) => {}
        }
        if with_freqs {
            inputs.push(freqs.clone());
        }
        let op = FastOp::Rope {
            dims,
            traditional,
            base: 10000.0,
            scale: 0.75,
            positions: kind,
            has_freqs: with_freqs,
        };
        // Against the composed gradient.
        let c = randn(x.shape(), 40 + case as u64);
        let g_fused = grad::vjp(
            |xs| Ok(vec![fused(xs)?]),
            std::slice::from_ref(&x),
            std::slice::from_ref(&c),
        )
        .unwrap()
        .1;
        let g_composed = grad::vjp(
            |xs| {
                let mut ins = inputs.clone();
                ins[0] = xs[0].clone();
                Ok(vec![op.decompose(&ins)?])
            },
            std::slice::from_ref(&x),
            std::slice::from_ref(&c),
        )
        .unwrap()
        .1;
        let d = max_rel_diff(&g_fused[0], &g_composed[0]);
        assert!(d < 2e-5, "case {case}: fused vs composed gradient {d}");
        // The adjoint identity of a linear map: <R x, c> = <x, Rᵀ c>.
        let y = fused(std::slice::from_ref(&x)).unwrap();
        let (lhs, rhs) = (dot(&y, &c), dot(&x, &g_fused[0]));
        assert!(
            (lhs - rhs).abs() <= 1e-5 * lhs.abs().max(1.0),
            "case {case}: <Rx, c> {lhs} vs <x, R'c> {rhs}"
        );
        // The backward is one RoPE kernel, not the composed transpose.
        let vg = grad::value_and_grad(
            |xs: &[Tensor]| Ok(vec![fused(xs)?.mul(&xs[1])?.sum(&[], false)?]),
            &[0],
        );
        let step = compile(move |a: &[Tensor]| {
            let (v, g) = vg(a)?;
            Ok(v.into_iter().chain(g).collect())
        });
        let plan = step.plan(&[x.clone(), c.clone()]).unwrap();
        assert_eq!(
            plan.num_fast_ops(),
            2,
            "case {case}: {:?}",
            plan.op_frequencies()
        );
        let out = step.call(&[x.clone(), c.clone()]).unwrap();
        assert!(max_rel_diff(&out[1], &g_fused[0]) < 1e-6, "case {case}");
    }
}
