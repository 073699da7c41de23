//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod blocks;

use emily::{DType, Tensor};

/// Seeded standard-normal f32 tensor.
pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0, seed, DType::F32)
        .unwrap()
        .eval()
        .unwrap()
}

/// Max |a − b| over two f32 tensors of one shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A scalar i64 position tensor.
pub fn position(p: i64) -> Tensor {
    Tensor::from_slice(&[p], &[]).unwrap()
}

/// Op frequencies as a sorted map.
pub fn freq(m: &emily_nn::Model) -> std::collections::BTreeMap<String, usize> {
    m.op_frequencies().into_iter().collect()
}

/// A snapshot of a parameter store: names, tensor ids and values.
pub fn snapshot(p: &emily_nn::ParamStore) -> Vec<(String, u64, Vec<f32>)> {
    p.iter()
        .map(|(k, t)| (k.to_string(), t.id(), t.to_vec::<f32>().unwrap()))
        .collect()
}
