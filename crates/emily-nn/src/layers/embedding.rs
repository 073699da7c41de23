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
    /// Multiply the looked-up rows by this (Gemma's √dim); `None` = 1.
    pub scale: Option<f32>,
}

impl EmbeddingOptions {
    /// A `vocab_size × dim` table.
    pub fn new(vocab_size: usize, dim: usize) -> EmbeddingOptions {
        EmbeddingOptions {
            vocab_size,
            dim,
            output_dtype: None,
            scale: None,
        }
    }

    /// The same table, its rows cast to `dtype` after the lookup.
    pub fn with_output_dtype(mut self, dtype: DType) -> EmbeddingOptions {
        self.output_dtype = Some(dtype);
        self
    }

    /// The same table, its rows multiplied by `scale` after the lookup.
    pub fn with_scale(mut self, scale: f32) -> EmbeddingOptions {
        self.scale = Some(scale);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.scale.is_some_and(|s| !s.is_finite()) {
            return Err(format!("scale {:?} is not finite", self.scale));
        }
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
        let mut rows = ctx.local("weight")?.gather(&ctx.inputs[0], 0)?;
        if let Some(d) = self.output_dtype {
            rows = rows.cast(d)?;
        }
        match self.scale {
            Some(s) => rows.mul_scalar(s as f64),
            None => Ok(rows),
        }
    }
}
