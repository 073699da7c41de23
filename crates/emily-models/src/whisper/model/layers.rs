//! The building blocks shared by encoder and decoder, in both implementations.

use emily::fast::{self, SdpaMask, SdpaOptions};
use emily::{Result, Tensor};

use super::{param, param_stored, Kernels, ModelError};
use crate::weights::Weights;

/// A linear layer `x · Wᵀ + b` (W stored (out, in) as in PyTorch).
#[derive(Clone)]
pub struct Linear {
    w: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    /// Loads `{name}.weight` and, if `bias`, `{name}.bias`.
    pub fn load(w: &Weights, name: &str, bias: bool) -> std::result::Result<Linear, ModelError> {
        Self::with_weight(w, param(w, &format!("{name}.weight"))?, name, bias)
    }

    /// Like [`Linear::load`], keeping the weight matrix in its stored precision
    /// (for decode-sized inputs; see [`super::param_stored`]).
    pub fn load_stored(
        w: &Weights,
        name: &str,
        bias: bool,
    ) -> std::result::Result<Linear, ModelError> {
        Self::with_weight(w, param_stored(w, &format!("{name}.weight"))?, name, bias)
    }

    fn with_weight(
        w: &Weights,
        weight: Tensor,
        name: &str,
        bias: bool,
    ) -> std::result::Result<Linear, ModelError> {
        let b = if bias {
            Some(param(w, &format!("{name}.bias"))?)
        } else {
            None
        };
        Ok(Linear { w: weight, b })
    }

    /// Applies the layer (the transpose is read in place by matmul).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.w.t()?)?;
        match &self.b {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }
}

/// LayerNorm with weight and bias over the last axis (eps 1e-5).
#[derive(Clone)]
pub struct LayerNorm {
    w: Tensor,
    b: Tensor,
}

impl LayerNorm {
    /// Loads `{name}.weight` / `{name}.bias`.
    pub fn load(w: &Weights, name: &str) -> std::result::Result<LayerNorm, ModelError> {
        Ok(LayerNorm {
            w: param(w, &format!("{name}.weight"))?,
            b: param(w, &format!("{name}.bias"))?,
        })
    }

    /// Normalises `x`.
    pub fn forward(&self, x: &Tensor, k: Kernels) -> Result<Tensor> {
        match k {
            Kernels::Fused => fast::layer_norm(x, Some(&self.w), Some(&self.b), 1e-5),
            Kernels::Composed => {
                let mean = x.mean(&[-1], true)?;
                let xc = x.sub(&mean)?;
                let var = xc.square()?.mean(&[-1], true)?;
                xc.mul(&var.add_scalar(1e-5)?.rsqrt()?)?
                    .mul(&self.w)?
                    .add(&self.b)
            }
        }
    }
}

/// Splits (B, T, H·D) into heads (B, H, T, D).
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    x.reshape_to(&[b, t, heads, d / heads])?.transpose(1, 2)
}

/// Joins heads (B, H, T, D) back into (B, T, H·D).
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, t, d) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    x.transpose(1, 2)?.reshape_to(&[b, t, h * d])
}

/// Attention of q (B,H,Tq,D) over k, v (B,H,Tk,D) with an optional Bool keep-mask (Tq, Tk).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    keep: Option<&Tensor>,
    kernels: Kernels,
) -> Result<Tensor> {
    let scale = 1.0 / (q.shape()[3] as f64).sqrt();
    match kernels {
        Kernels::Fused => {
            let mask = keep
                .map(|m| SdpaMask::Boolean(m.clone()))
                .unwrap_or_default();
            fast::scaled_dot_product_attention(
                q,
                k,
                v,
                SdpaOptions {
                    scale: Some(scale as f32),
                    mask,
                    sinks: None,
                },
            )
        }
        Kernels::Composed => {
            let mut scores = q.mul_scalar(scale)?.matmul(&k.t()?)?;
            if let Some(m) = keep {
                let neg = scores.scalar_like(f64::NEG_INFINITY);
                scores = Tensor::where_cond(m, &scores, &neg)?;
            }
            scores.softmax(-1)?.matmul(v)
        }
    }
}

/// The MLP: fc2(gelu(fc1(x))).
#[derive(Clone)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    /// Loads `{prefix}.fc1` and `{prefix}.fc2` (weights as f32, or as stored if `stored`).
    pub fn load(w: &Weights, prefix: &str, stored: bool) -> std::result::Result<Mlp, ModelError> {
        let lin = if stored {
            Linear::load_stored
        } else {
            Linear::load
        };
        Ok(Mlp {
            fc1: lin(w, &format!("{prefix}.fc1"), true)?,
            fc2: lin(w, &format!("{prefix}.fc2"), true)?,
        })
    }

    /// Applies the MLP.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.gelu()?)
    }
}
