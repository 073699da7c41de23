//! Seeded random parameters for a model (tests, benchmarks, smoke runs).

use emily::{DType, Tensor};

use crate::error::Result;
use crate::graph::Model;
use crate::params::{ParamInit, ParamStore};

impl ParamStore {
    /// A store holding every parameter `model` needs, filled with seeded
    /// normal noise shaped by each [`crate::ParamSpec`]'s [`ParamInit`]
    /// (weights `N(0, 1/fan_in)`, biases `N(0, 0.02²)`, gains `N(1, 0.1²)`,
    /// tables `N(0, 1)`). Deterministic for a seed; tensors are materialised.
    pub fn random(model: &Model, seed: u64, dtype: DType) -> Result<ParamStore> {
        let mut store = ParamStore::new();
        let mut k = 0u64;
        for node in model.nodes() {
            for spec in crate::layers::param_specs(node.op()) {
                let (mean, std) = match spec.init {
                    ParamInit::Weight { fan_in } => (0.0, 1.0 / (fan_in.max(1) as f64).sqrt()),
                    ParamInit::Bias => (0.0, 0.02),
                    ParamInit::Gain => (1.0, 0.1),
                    ParamInit::Table => (0.0, 1.0),
                };
                let s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(k);
                k += 1;
                let t = Tensor::randn(&spec.shape, mean, std, s, dtype)?.eval()?;
                store.insert(spec.key(node.name()), t);
            }
        }
        Ok(store)
    }
}
