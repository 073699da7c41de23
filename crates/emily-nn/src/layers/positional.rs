//! Position embeddings added to `(…, T, D)`: a learned table or fixed
//! sinusoids, read from position `offset` (a constant 0, or a run-time
//! offset input during cached decoding).

use emily::{DType, Tensor};

use super::{offset_scalar, shape_err, Ctx};
use crate::params::{ParamInit, ParamSpec};

/// How sinusoids are laid out along the feature axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SinusoidalLayout {
    /// `pe[p, 2i] = sin(p·ω_i)`, `pe[p, 2i+1] = cos(p·ω_i)`, `ω_i = 10000^(−2i/D)`
    /// (the original Transformer).
    Interleaved,
    /// `pe[p] = [sin(p·ω_0..ω_{D/2}), cos(p·ω_0..ω_{D/2})]`,
    /// `ω_i = 10000^(−i/(D/2−1))` (Whisper's encoder).
    Concatenated,
}

/// Where position embeddings come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PositionalKind {
    /// A learned `(max_len, dim)` table, parameter `weight`.
    Learned,
    /// Fixed sinusoids, computed once per build in f64.
    Sinusoidal(SinusoidalLayout),
}

/// Options of a positional embedding. Inputs: `x (…, T, dim)` and, when
/// `offset` is set, a scalar offset. Output: `x + table[offset..offset+T]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionalEmbeddingOptions {
    /// Learned or sinusoidal.
    pub kind: PositionalKind,
    /// Positions in the table.
    pub max_len: usize,
    /// Feature width.
    pub dim: usize,
    /// Whether positions start at a run-time offset input (set by the builder).
    pub offset: bool,
}

impl PositionalEmbeddingOptions {
    /// A learned `(max_len, dim)` table.
    pub fn learned(max_len: usize, dim: usize) -> PositionalEmbeddingOptions {
        PositionalEmbeddingOptions {
            kind: PositionalKind::Learned,
            max_len,
            dim,
            offset: false,
        }
    }

    /// Fixed sinusoids.
    pub fn sinusoidal(
        max_len: usize,
        dim: usize,
        layout: SinusoidalLayout,
    ) -> PositionalEmbeddingOptions {
        PositionalEmbeddingOptions {
            kind: PositionalKind::Sinusoidal(layout),
            max_len,
            dim,
            offset: false,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_len == 0 || self.dim == 0 {
            return Err("max_len and dim must be positive".into());
        }
        if matches!(self.kind, PositionalKind::Sinusoidal(_))
            && (!self.dim.is_multiple_of(2) || self.dim < 4)
        {
            return Err(format!("sinusoids need an even dim >= 4, got {}", self.dim));
        }
        Ok(())
    }

    pub(crate) fn specs(&self) -> Vec<ParamSpec> {
        match self.kind {
            PositionalKind::Learned => vec![ParamSpec::new(
                "weight",
                vec![self.max_len, self.dim],
                ParamInit::Table,
            )],
            PositionalKind::Sinusoidal(_) => Vec::new(),
        }
    }

    pub(crate) fn constants(&self, eager: bool) -> emily::Result<Vec<(String, Tensor)>> {
        let PositionalKind::Sinusoidal(layout) = self.kind else {
            return Ok(Vec::new());
        };
        if !eager {
            return Ok(vec![(
                "table".to_string(),
                Tensor::zeros(&[self.max_len, self.dim], DType::F32)?,
            )]);
        }
        let table = sinusoids(self.max_len, self.dim, layout);
        Ok(vec![(
            "table".to_string(),
            Tensor::from_vec(table, &[self.max_len, self.dim])?
                .cast(DType::F32)?
                .eval()?,
        )])
    }

    pub(crate) fn forward(&self, ctx: &mut Ctx<'_>) -> emily::Result<Tensor> {
        let x = &ctx.inputs[0];
        let table = match self.kind {
            PositionalKind::Learned => ctx.local("weight")?,
            PositionalKind::Sinusoidal(_) => ctx.local("table")?,
        };
        if x.rank() < 2 || x.shape()[x.rank() - 1] != self.dim {
            return Err(shape_err(
                "positional_embedding",
                format!("expected (…, T, {}), got {:?}", self.dim, x.shape()),
            ));
        }
        let t = x.shape()[x.rank() - 2];
        let rows = if self.offset {
            let idx = Tensor::arange(t, DType::I64)?.add(&offset_scalar(&ctx.inputs[1])?)?;
            table.gather(&idx, 0)?
        } else {
            if t > self.max_len {
                return Err(shape_err(
                    "positional_embedding",
                    format!("{t} positions exceed the table's {}", self.max_len),
                ));
            }
            table.narrow(0, 0, t)?
        };
        x.add(&rows.cast(x.dtype())?)
    }
}

/// The `(max_len, dim)` sinusoid table in f64, row-major.
pub(crate) fn sinusoids(max_len: usize, dim: usize, layout: SinusoidalLayout) -> Vec<f64> {
    let half = dim / 2;
    let mut out = vec![0.0; max_len * dim];
    for p in 0..max_len {
        let row = &mut out[p * dim..(p + 1) * dim];
        for i in 0..half {
            match layout {
                SinusoidalLayout::Interleaved => {
                    let w = (-(2.0 * i as f64) / dim as f64 * 10000f64.ln()).exp();
                    row[2 * i] = (p as f64 * w).sin();
                    row[2 * i + 1] = (p as f64 * w).cos();
                }
                SinusoidalLayout::Concatenated => {
                    let w = (-(i as f64) * 10000f64.ln() / (half as f64 - 1.0)).exp();
                    row[i] = (p as f64 * w).sin();
                    row[half + i] = (p as f64 * w).cos();
                }
            }
        }
    }
    out
}
