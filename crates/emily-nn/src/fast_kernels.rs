//! The fast-kernels shim: switch every layer norm and RMS norm over the last
//! axis, every rotary embedding, every attention node and every
//! channels-last convolution to its fused (`emily::fast`) implementation, keeping names, edges and parameters.
//!
//! Nodes that cannot run fused stay composed and are reported with the
//! reason: norms over another axis, and — when rewriting for
//! [`Mode::Train`] — attention that drops probabilities (the fused kernel has
//! no dropout, which is why training stays on the composed path).

use std::fmt;

use crate::build::Mode;
use crate::error::Result;
use crate::graph::Model;
use emily::Kernels;

use crate::node::{Node, Op};

/// A node left on (or put back to) its composed implementation, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptComposed {
    /// The node.
    pub node: String,
    /// Its op name.
    pub op: &'static str,
    /// Why it is not fused.
    pub reason: String,
}

impl fmt::Display for KeptComposed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ({}): {}", self.node, self.op, self.reason)
    }
}

/// Why attention with dropout runs composed in training.
pub(crate) fn dropout_reason(op: &Op) -> String {
    let rate = match op {
        Op::Attention(o) => o.dropout,
        Op::AttentionCore(o) => o.dropout,
        _ => 0.0,
    };
    format!("attention dropout {rate} > 0 in training mode: the fused kernel has no dropout, so it stays composed")
}

/// What [`apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Nodes now fused, in node order.
    pub fused: Vec<String>,
    /// Eligible-op nodes left composed, with reasons.
    pub kept: Vec<KeptComposed>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fast kernels: {} nodes fused, {} kept composed",
            self.fused.len(),
            self.kept.len()
        )?;
        for k in &self.kept {
            write!(f, "\n  kept {k}")?;
        }
        Ok(())
    }
}

/// A rewritten model and its report.
#[derive(Clone, Debug)]
pub struct Rewrite {
    /// The model with fused implementations (same nodes, names and edges).
    pub model: Model,
    /// Which nodes were fused and which were kept composed.
    pub report: Report,
}

/// Switches every eligible node of `model` to [`Kernels::Fused`] for
/// inference (see [`apply_for`]); `model` itself is unchanged, and the same
/// [`crate::ParamStore`] serves both.
///
/// ```
/// use emily::{DType, Tensor};
/// use emily_nn::{fast_kernels, AttentionOptions, LayerNormOptions, Mode, ModelBuilder, ParamStore};
///
/// let mut b = ModelBuilder::new();
/// let x = b.input("x", &[None, None, Some(16)], DType::F32)?;
/// let h = b.layer_norm("ln", &x, LayerNormOptions::new(16))?;
/// let a = b.self_attention("attn", &h, None, None, AttentionOptions::new(16, 4).causal())?;
/// let y = b.add("residual", &x, &a)?;
/// b.output(&y)?;
/// let model = b.build()?;
///
/// let fast = fast_kernels::apply(&model)?;
/// assert_eq!(fast.report.fused, ["ln", "attn"]);
/// assert_eq!(fast.model.edges(), model.edges());
/// let labels: Vec<String> = fast.model.properties().into_iter().map(|(_, op)| op).collect();
/// assert_eq!(labels, ["input", "fast.layer_norm", "fast.attention", "add"]);
///
/// let params = ParamStore::random(&model, 7, DType::F32)?;
/// let base = model.build(&params, Mode::Inference)?;
/// let fused = fast.model.build(&params, Mode::Inference)?;
/// let input = Tensor::randn(&[2, 5, 16], 0.0, 1.0, 1, DType::F32)?;
/// let (y0, y1) = (base.call(&[("x", &input)])?, fused.call(&[("x", &input)])?);
/// let diff = y0["residual"].sub(&y1["residual"])?.abs()?.max(&[], false)?.to_scalar::<f32>()?;
/// assert!(diff < 1e-5, "max abs diff {diff}");
/// # Ok::<(), emily_nn::Error>(())
/// ```
pub fn apply(model: &Model) -> Result<Rewrite> {
    apply_for(model, Mode::Inference)
}

/// Switches every eligible node to [`Kernels::Fused`] for `mode`:
/// layer/RMS norms over the last axis, rotary embeddings, attention and
/// attention cores, channels-last convolutions — except attention with dropout > 0 when `mode` is
/// [`Mode::Train`]. Ineligible nodes stay composed and are reported.
pub fn apply_for(model: &Model, mode: Mode) -> Result<Rewrite> {
    let shapes = model.probe_shapes();
    let mut report = Report::default();
    let rewritten = model.map_nodes(|node| {
        let i = model.index_of(node.name()).expect("same nodes");
        match eligibility(&node, mode, shapes.as_ref().map(|s| s[i].len())) {
            None => node,
            Some(Ok(())) => {
                report.fused.push(node.name().to_string());
                node.with_implementation(Kernels::Fused)
            }
            Some(Err(reason)) => {
                report.kept.push(KeptComposed {
                    node: node.name().to_string(),
                    op: node.op().name(),
                    reason,
                });
                node.with_implementation(Kernels::Composed)
            }
        }
    })?;
    for k in &report.kept {
        tracing::info!(target: "emily_nn::fast_kernels", node = %k.node, op = k.op, reason = %k.reason, "kept composed");
    }
    Ok(Rewrite {
        model: rewritten,
        report,
    })
}

/// `None` for ops without a fused form; `Some(Err(reason))` when the node
/// cannot be fused. `rank` is the node's output rank when known.
fn eligibility(
    node: &Node,
    mode: Mode,
    rank: Option<usize>,
) -> Option<std::result::Result<(), String>> {
    let last_axis = |axis: isize| -> std::result::Result<(), String> {
        if axis == -1 {
            return Ok(());
        }
        match rank {
            Some(r) if (if axis < 0 { axis + r as isize } else { axis }) == r as isize - 1 => Ok(()),
            Some(r) => Err(format!("normalises axis {axis} of a rank-{r} input, not the last axis")),
            None => Err(format!("normalises axis {axis}, which cannot be shown to be the last (input shapes unknown)")),
        }
    };
    Some(match node.op() {
        Op::LayerNorm(o) => last_axis(o.axis),
        Op::RmsNorm(o) => last_axis(o.axis),
        Op::RotaryEmbedding(_) => Ok(()),
        Op::Attention(_) | Op::AttentionCore(_) if crate::layers::uses_dropout(node.op(), mode) => {
            Err(dropout_reason(node.op()))
        }
        Op::Attention(_) | Op::AttentionCore(_) => Ok(()),
        Op::Conv1d(o) if o.channels_last => Ok(()),
        _ => return None,
    })
}
