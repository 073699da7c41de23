//! Helpers shared by the gradient tests: seeded f32 inputs and the relative
//! distance between two results.

use emily::{DType, Tensor};

/// A standard-normal f32 tensor of `shape` from `seed`, evaluated.
pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, seed, DType::F32)
        .unwrap()
        .eval()
        .unwrap()
}

/// Largest `|a − b|` over the elements, relative to `b`'s largest magnitude
/// (at least 1e-3); the shapes must agree.
pub fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / scale)
        .fold(0.0, f32::max)
}

/// How many kernels of op `name` a replay of `plan` runs.
#[allow(dead_code)] // not every test binary counts kernels
pub fn count(plan: &emily::compile::Plan, name: &str) -> usize {
    plan.op_frequencies()
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |c| c.1)
}

/// Checks the outputs of a fused (compiled) step, `fused`, against `f`
/// evaluated eagerly and against `f` compiled with composed kernels only
/// (whose plan must hold no fast op): output `n` within `fused_tol(n)` of
/// eager, the composed plan within 1e-6. `case` names the inputs in messages.
#[allow(dead_code)] // not every test binary fuses
pub fn check_fused_eager_composed(
    f: impl Fn(&[Tensor]) -> emily::Result<Vec<Tensor>>,
    a: &[Tensor],
    fused: &[Tensor],
    fused_tol: impl Fn(usize) -> f32,
    case: &str,
) {
    let eager = f(a).unwrap();
    let composed_plan = emily::compile_with(
        f,
        emily::CompileOptions {
            kernels: emily::Kernels::Composed,
            ..Default::default()
        },
    );
    assert_eq!(composed_plan.plan(a).unwrap().num_fast_ops(), 0, "{case}");
    let composed = composed_plan.call(a).unwrap();
    for (n, (x, y)) in fused.iter().zip(&eager).enumerate() {
        let diff = max_rel_diff(x, y);
        assert!(
            diff < fused_tol(n),
            "{case}: output {n} fused vs eager {diff}"
        );
        let diff = max_rel_diff(&composed[n], y);
        assert!(
            diff < 1e-6,
            "{case}: output {n} composed plan vs eager {diff}"
        );
    }
}
