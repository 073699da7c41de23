//! Token embedding: rows of a `(vocab_size, dim)` table selected by integer ids.

use emily::{DType, Tensor};

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
    /// Cast the looked-up rows to this dtype (e.g. an f16 table shared with a
    /// tied output projection feeding an f32 network); `None` keeps the
    /// table's dtype.
    pub output_dtype: Option<DType>,
}

impl EmbeddingOptions {
    /// A `vocab_size × dim` table.
    pub fn new(vocab_size: usize, dim: usize) -> EmbeddingOptions {
        EmbeddingOptions {
            vocab_size,
            dim,
            output_dtype: None,
        }
    }

    /// The same table, its rows cast to `dtype` after the lookup.
    pub fn with_output_dtype(mut self, dtype: DType) -> EmbeddingOptions {
        self.output_dtype = Some(dtype);
        self
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
        let rows = ctx.local("weight")?.gather(&ctx.inputs[0], 0)?;
        match self.output_dtype {
            Some(d) => rows.cast(d),
            None => Ok(rows),
        }
    }
}
