//! Dense (linear) layer: `y = x · Wᵀ + b` over the last axis, with the
//! Hugging Face weight layout `(out_features, in_features)`.

use emily::Tensor;

use super::{shape_err, Ctx};
use crate::params::{ParamInit, ParamSpec};

/// Options of a dense layer. Parameters: `weight` `(out, in)`, `bias` `(out)`.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseOptions {
    /// Size of the input's last axis.
    pub in_features: usize,
    /// Size of the output's last axis.
    pub out_features: usize,
    /// Whether a bias is added.
    pub bias: bool,
    /// Multiply with 8-bit integer products (`Tensor::matmul_int8`):
    /// activation rows quantized on the fly, the weight per output channel
    /// (once per weight buffer); approximate, f32 output. Off by default.
    pub quantized: bool,
}

impl DenseOptions {
    /// A dense layer with a bias.
    pub fn new(in_features: usize, out_features: usize) -> DenseOptions {
        DenseOptions {
            in_features,
            out_features,
            bias: true,
            quantized: false,
        }
    }

    /// The same layer without a bias.
    pub fn without_bias(mut self) -> DenseOptions {
        self.bias = false;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.in_features == 0 || self.out_features == 0 {
            return Err(format!(
                "features must be positive, got {} -> {}",
                self.in_features, self.out_features
            ));
        }
        Ok(())
    }

    pub(crate) fn specs(&self) -> Vec<ParamSpec> {
        let mut s = vec![ParamSpec::new(
            "weight",
            vec![self.out_features, self.in_features],
            ParamInit::Weight {
                fan_in: self.in_features,
            },
        )];
        if self.bias {
            s.push(ParamSpec::new(
                "bias",
                vec![self.out_features],
                ParamInit::Bias,
            ));
        }
        s
    }

    pub(crate) fn forward(&self, ctx: &mut Ctx<'_>) -> emily::Result<Tensor> {
        linear(
            &ctx.inputs[0],
            ctx.local("weight")?,
            ctx.local_opt("bias", self.bias)?,
            self.quantized,
        )
    }
}

/// `x · wᵀ + b` for `x (…, in)`, `w (out, in)`: the leading axes are folded
/// into one GEMM and `wᵀ` is read in place; with 8-bit integer products when
/// `quantized`.
pub(crate) fn linear(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    quantized: bool,
) -> emily::Result<Tensor> {
    let (out_f, in_f) = (w.shape()[0], w.shape()[1]);
    if x.rank() == 0 || x.shape()[x.rank() - 1] != in_f {
        return Err(shape_err(
            "dense",
            format!("input {:?} does not end in {in_f} features", x.shape()),
        ));
    }
    let lead = &x.shape()[..x.rank() - 1];
    let rows: usize = lead.iter().product();
    let mut shape = lead.to_vec();
    shape.push(out_f);
    // Reshape before the bias add, so the add fuses with what follows.
    let x2 = x.reshape_to(&[rows, in_f])?;
    let y = if quantized {
        x2.matmul_int8(&w.t()?)?
    } else {
        x2.matmul(&w.t()?)?
    }
    .reshape_to(&shape)?;
    match b {
        Some(b) => y.add(b),
        None => Ok(y),
    }
}
