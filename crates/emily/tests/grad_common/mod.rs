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
