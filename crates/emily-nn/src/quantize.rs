//! Rewrite: dense and attention projections to 8-bit integer products.

use crate::error::Result;
use crate::graph::Model;
use crate::node::Op;

/// `model` with every dense layer and attention projection switched to
/// 8-bit integer products (`Tensor::matmul_int8`: activations quantized per
/// row on the fly, weights per output channel); same nodes, names and
/// parameters (the float weights are quantized by the backend at first use).
/// Returns the rewritten model and the names of the nodes it switched.
///
/// ```
/// use emily::{DType, Tensor};
/// use emily_nn::{quantize, AttentionOptions, DenseOptions, Mode, ModelBuilder, ParamStore};
///
/// let mut b = ModelBuilder::new();
/// let x = b.input("x", &[None, None, Some(32)], DType::F32)?;
/// let a = b.self_attention("attn", &x, None, None, AttentionOptions::new(32, 4))?;
/// let y = b.dense("fc", &a, DenseOptions::new(32, 16))?;
/// b.output(&y)?;
/// let model = b.build()?;
/// let (q, switched) = quantize::int8_projections(&model)?;
/// assert_eq!(switched, ["attn", "fc"]);
///
/// let params = ParamStore::random(&model, 7, DType::F32)?;
/// let input = Tensor::randn(&[2, 9, 32], 0.0, 1.0, 1, DType::F32)?;
/// let y0 = model.build(&params, Mode::Inference)?.call(&[("x", &input)])?;
/// let y1 = q.build(&params, Mode::Inference)?.call(&[("x", &input)])?;
/// let (f, i) = (y0["fc"].to_vec::<f32>()?, y1["fc"].to_vec::<f32>()?);
/// let scale = f.iter().fold(0f32, |m, v| m.max(v.abs()));
/// let err = f.iter().zip(&i).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
/// assert!(f != i && err < 0.05 * scale, "int8 error {err} vs output scale {scale}");
/// # Ok::<(), emily_nn::Error>(())
/// ```
pub fn int8_projections(model: &Model) -> Result<(Model, Vec<String>)> {
    let mut switched = Vec::new();
    let out = model.map_nodes(|mut node| {
        let name = node.name().to_string();
        match node.op_mut() {
            Op::Dense(o) => {
                o.quantized = true;
                switched.push(name);
            }
            Op::Attention(o) => {
                o.quantized = true;
                switched.push(name);
            }
            _ => {}
        }
        node
    })?;
    Ok((out, switched))
}
