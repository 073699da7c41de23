//! The SiLU gradient program run as one loop: the fused program a SiLU's
//! gradient rule builds (`dy · s · (g · (1 − s) + 1)`, `s = sigmoid(g)`,
//! with `dy = d · u` as SwiGLU's gate gradient has it) gives the same bits
//! as evaluating its ops one by one, at odd sizes, with large, tiny and
//! special inputs, in place over a donated input or not, under every
//! `EMILY_ISA` cap; programs that only look alike give the same bits too.

mod common;
use common::on_every_isa;
use emily::{compile, grad, DType, Result, Tensor};

/// `dg` of `Σ silu(g) ∘ u ∘ d` (args `[g, u, d]`): the gate gradient.
fn gate_grad(a: &[Tensor]) -> Result<Vec<Tensor>> {
    let f = |v: &[Tensor]| Ok(vec![v[0].silu()?.mul(&v[1])?]);
    let (_, g) = grad::vjp(f, &a[..2], &[a[2].clone()])?;
    Ok(vec![g[0].clone()])
}

/// `dg` of `Σ silu(g) ∘ d` (args `[g, d]`): the cotangent read as is.
fn silu_grad(a: &[Tensor]) -> Result<Vec<Tensor>> {
    let f = |v: &[Tensor]| Ok(vec![v[0].silu()?]);
    let (_, g) = grad::vjp(f, &a[..1], &[a[1].clone()])?;
    Ok(vec![g[0].clone()])
}

/// The rule's shape with 2 where it has 1: not the SiLU gradient.
fn lookalike(a: &[Tensor]) -> Result<Vec<Tensor>> {
    let (g, d) = (&a[0], &a[1]);
    let s = g.sigmoid()?;
    let t = g.mul(&s.neg()?.add_scalar(2.0)?)?.add_scalar(1.0)?;
    Ok(vec![d.mul(&s.mul(&t)?)?])
}

/// Normal values with every `k`-th one special (large, tiny, ±0, ±inf, NaN).
fn values(n: usize, seed: u64) -> Tensor {
    let t = Tensor::randn(&[n], 0.0, 3.0, seed, DType::F32).unwrap();
    let specials = [
        1e30f32,
        -1e30,
        90.0,
        -90.0,
        -110.0,
        1e-40,
        -0.0,
        0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    let mut v = t.to_vec::<f32>().unwrap();
    for (i, x) in v.iter_mut().enumerate() {
        if i % 7 == 3 {
            *x = specials[(i / 7) % specials.len()];
        }
    }
    Tensor::from_vec(v, &[n]).unwrap()
}

/// Same bits as eager (any NaN for a NaN).
fn same_bits(got: &Tensor, want: &Tensor, what: &str) {
    let (g, w) = (got.to_vec::<f32>().unwrap(), want.to_vec::<f32>().unwrap());
    assert_eq!(g.len(), w.len(), "{what}");
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "{what}[{i}]: {a} vs {b}"
        );
    }
}

fn check(f: fn(&[Tensor]) -> Result<Vec<Tensor>>, nargs: usize, name: &str) {
    for (k, shape) in [vec![1], vec![7], vec![77], vec![1000], vec![2, 64, 172]]
        .into_iter()
        .enumerate()
    {
        let n: usize = shape.iter().product();
        let args: Vec<Tensor> = (0..nargs)
            .map(|j| {
                values(n, 10 * k as u64 + j as u64)
                    .reshape_to(&shape)
                    .unwrap()
            })
            .collect();
        let c = compile(f);
        let plan = c.plan(&args).unwrap();
        let kernels: Vec<&str> = plan
            .op_frequencies()
            .iter()
            .map(|(op, _)| *op)
            .filter(|op| *op != "reshape")
            .collect();
        assert_eq!(kernels, ["fused"], "{name} {shape:?}:\n{}", plan.describe());
        let want = f(&args).unwrap();
        let what = format!("{name} {shape:?}");
        same_bits(&c.call(&args).unwrap()[0], &want[0], &what);
        // Owned arguments: the output takes an input's buffer.
        let owned: Vec<Tensor> = args.iter().map(|t| t.clone().eval().unwrap()).collect();
        let fresh: Vec<Tensor> = owned
            .iter()
            .map(|t| Tensor::from_vec(t.to_vec::<f32>().unwrap(), &shape).unwrap())
            .collect();
        drop(owned);
        same_bits(
            &c.call_owned(fresh).unwrap()[0],
            &want[0],
            &format!("{what} owned"),
        );
    }
}

#[test]
fn silu_gradients_match_eager_bit_for_bit_on_every_isa() {
    on_every_isa(
        "silu_gradients_match_eager_bit_for_bit_on_every_isa",
        "EMILY_FUSED_SILU_GRAD_ISA_CHILD",
        &["baseline", "avx2", ""],
        || {
            check(gate_grad, 3, "gate gradient");
            check(silu_grad, 2, "silu gradient");
            check(lookalike, 2, "lookalike");
        },
    );
}
