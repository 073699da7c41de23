//! Token embedding: rows of a `(vocab_size, dim)` table selected by integer ids.

use emily::Tensor;

use super::Ctx;
use crate::params::{ParamInit, ParamSpec};

/// Options of an embedding. Parameter: `weight` `(vocab_size, dim)`. Ids of
/// any shape `S` give `S + [dim]`.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingOptions {
    /// Rows of the table.
    pub vocab_size: usize,
    /// Width of each row.
    pub dim: usize,
}

impl EmbeddingOptions {
    /// A `vocab_size × dim` table.
    pub fn new(vocab_size: usize, dim: usize) -> EmbeddingOptions {
        EmbeddingOptions { vocab_size, dim }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.vocab_size == 0 || self.dim == 0 {
            return Err("vocab_size and dim must be positive".into());
        }
        Ok(())
    }

    pub(crate) fn specs(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::new(
            "weight",
            vec![self.vocab_size, self.dim],
            ParamInit::Table,
        )]
    }

    pub(crate) fn forward(&self, ctx: &mut Ctx<'_>) -> emily::Result<Tensor> {
        ctx.local("weight")?.gather(&ctx.inputs[0], 0)
    }
}
