//! Layers: each file holds one op's options, the parameters it needs, and
//! its forward — composed from primitive ops, and fused through
//! `emily::fast` where the op has a fused form.

mod activation;
mod attention;
mod attention_core;
mod cast;
mod conv1d;
mod dense;
mod dropout;
mod elementwise;
mod embedding;
mod input;
mod kv_cache;
mod layer_norm;
mod positional;
mod reshape;
mod rms_norm;
mod rotary;

pub use activation::Activation;
pub use attention::{AttentionOptions, ProjectionBias, ProjectionNames};
pub use attention_core::{AttentionCoreOptions, AttentionMask};
pub use cast::{CastOptions, LastPositionOptions};
pub use conv1d::Conv1dOptions;
pub use dense::DenseOptions;
pub use dropout::DropoutOptions;
pub use embedding::EmbeddingOptions;
pub use input::InputOptions;
pub use kv_cache::KvCacheOptions;
pub use layer_norm::LayerNormOptions;
pub use positional::{PositionalEmbeddingOptions, PositionalKind, SinusoidalLayout};
pub use reshape::{ReshapeOptions, SplitHeadsOptions, TransposeOptions};
pub use rms_norm::RmsNormOptions;
pub use rotary::{RopeConfig, RotaryOptions, RotaryPositions};

use std::collections::HashMap;

use emily::{DType, Tensor};

use crate::build::Mode;
use crate::exec::Extras;
use crate::node::Op;
use crate::params::ParamSpec;

/// A node's bound tensors by local name: its parameters (`"weight"`,
/// `"q_proj.bias"`) and constants prepared at build (`"rope.cos"` …).
pub(crate) type Locals = HashMap<String, Tensor>;

/// What a layer's forward sees.
pub(crate) struct Ctx<'a> {
    /// The node's name.
    pub name: &'a str,
    /// Values of the input nodes, in role order.
    pub inputs: Vec<Tensor>,
    /// Parameters and constants.
    pub locals: &'a Locals,
    /// Inference or training.
    pub mode: Mode,
    /// Whether to run the fused implementation.
    pub fused: bool,
    /// State (KV caches) and dropout noise.
    pub extras: &'a mut dyn Extras,
}

impl Ctx<'_> {
    /// A parameter or prepared constant.
    pub fn local(&self, name: &str) -> emily::Result<&Tensor> {
        self.locals
            .get(name)
            .ok_or_else(|| invalid("param", format!("`{}.{name}` is not bound", self.name)))
    }

    /// An optional parameter.
    pub fn local_opt(&self, name: &str, present: bool) -> emily::Result<Option<&Tensor>> {
        if present {
            self.local(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The current value of a state slot.
    pub fn state(
        &mut self,
        slot: &'static str,
        shape: &[usize],
        dtype: DType,
    ) -> emily::Result<Tensor> {
        self.extras.state(self.name, slot, shape, dtype)
    }

    /// The new value of the state slot read last.
    pub fn update_state(&mut self, value: Tensor) {
        self.extras.update_state(value)
    }

    /// Uniform `[0, 1)` f32 noise for dropout, in training mode.
    pub fn noise(&mut self, shape: &[usize]) -> emily::Result<Tensor> {
        self.extras.noise(self.name, shape)
    }
}

/// An `emily::Error::Invalid` for layer-level problems (wrapped with the node
/// name by the interpreter).
pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> emily::Error {
    emily::Error::Invalid {
        op,
        msg: msg.into(),
    }
}

/// An `emily::Error::Shape` for layer-level shape problems.
pub(crate) fn shape_err(op: &'static str, msg: impl Into<String>) -> emily::Error {
    emily::Error::Shape {
        op,
        msg: msg.into(),
    }
}

/// Half types compute through f32 in the composed forms (as model libraries
/// upcast for norms and softmax).
pub(crate) fn upcast(t: &Tensor) -> emily::Result<Tensor> {
    match t.dtype() {
        DType::F16 | DType::BF16 => t.cast(DType::F32),
        _ => Ok(t.clone()),
    }
}

/// A scalar integer tensor (an offset input) as a rank-0 I64 tensor.
pub(crate) fn offset_scalar(offset: &Tensor) -> emily::Result<Tensor> {
    if offset.numel() != 1 || !matches!(offset.dtype(), DType::I32 | DType::I64) {
        return Err(shape_err(
            "offset",
            format!(
                "an offset must be a one-element i32/i64 tensor, got {:?} {}",
                offset.shape(),
                offset.dtype()
            ),
        ));
    }
    offset.cast(DType::I64)?.reshape_to(&[])
}

/// The parameters an op needs.
pub(crate) fn param_specs(op: &Op) -> Vec<ParamSpec> {
    match op {
        Op::Dense(o) => o.specs(),
        Op::Conv1d(o) => o.specs(),
        Op::Embedding(o) => o.specs(),
        Op::PositionalEmbedding(o) => o.specs(),
        Op::LayerNorm(o) => o.specs(),
        Op::RmsNorm(o) => o.specs(),
        Op::Attention(o) => o.specs(),
        _ => Vec::new(),
    }
}

/// Constants an op prepares once per build (cos/sin tables, sinusoids).
/// With `eager` false they are lazy zeros of the right shapes (for shape
/// inference, which must not pay for big tables).
pub(crate) fn constants(op: &Op, eager: bool) -> emily::Result<Vec<(String, Tensor)>> {
    match op {
        Op::PositionalEmbedding(o) => o.constants(eager),
        Op::RotaryEmbedding(o) => o.rope.constants("rope", eager),
        Op::Attention(o) => match &o.rope {
            Some(r) => r.constants("rope", eager),
            None => Ok(Vec::new()),
        },
        _ => Ok(Vec::new()),
    }
}

/// The constants of a build's ops, made once per distinct RoPE
/// configuration and shared by every node that has it (each layer of a
/// decoder would otherwise hold its own identical cos/sin tables).
#[derive(Default)]
pub(crate) struct SharedConstants {
    rope: Vec<(rotary::RopeConfig, Vec<(String, Tensor)>)>,
}

impl SharedConstants {
    /// [`constants`] of `op` (eager), shared with earlier identical ones.
    pub(crate) fn get(&mut self, op: &Op) -> emily::Result<Vec<(String, Tensor)>> {
        let rope = match op {
            Op::RotaryEmbedding(o) => Some(&o.rope),
            Op::Attention(o) => o.rope.as_ref(),
            _ => None,
        };
        let Some(rope) = rope else {
            return constants(op, true);
        };
        if let Some((_, c)) = self.rope.iter().find(|(r, _)| r == rope) {
            return Ok(c.clone());
        }
        let c = constants(op, true)?;
        self.rope.push((rope.clone(), c.clone()));
        Ok(c)
    }
}

/// Whether a node of this op draws dropout noise in `mode`.
pub(crate) fn uses_dropout(op: &Op, mode: Mode) -> bool {
    mode == Mode::Train
        && match op {
            Op::Dropout(o) => o.rate > 0.0,
            Op::Attention(o) => o.dropout > 0.0,
            Op::AttentionCore(o) => o.dropout > 0.0,
            _ => false,
        }
}

/// Runs one node.
pub(crate) fn forward(op: &Op, ctx: &mut Ctx<'_>) -> emily::Result<Tensor> {
    match op {
        Op::Input(_) => Err(invalid("input", "inputs are bound by the interpreter")),
        Op::Dense(o) => o.forward(ctx),
        Op::Conv1d(o) => o.forward(ctx),
        Op::Embedding(o) => o.forward(ctx),
        Op::PositionalEmbedding(o) => o.forward(ctx),
        Op::LayerNorm(o) => o.forward(ctx),
        Op::RmsNorm(o) => o.forward(ctx),
        Op::RotaryEmbedding(o) => o.forward(ctx),
        Op::Attention(o) => o.forward(ctx),
        Op::AttentionCore(o) => o.forward(ctx),
        Op::KvCache(o) => o.forward(ctx),
        Op::Activation(a) => a.apply(&ctx.inputs[0]),
        Op::Add => elementwise::add(&ctx.inputs[0], &ctx.inputs[1]),
        Op::Multiply => elementwise::multiply(&ctx.inputs[0], &ctx.inputs[1]),
        Op::Reshape(o) => o.forward(&ctx.inputs[0]),
        Op::Transpose(o) => o.forward(&ctx.inputs[0]),
        Op::SplitHeads(o) => o.forward(&ctx.inputs[0]),
        Op::MergeHeads => reshape::merge_heads(&ctx.inputs[0]),
        Op::Dropout(o) => o.forward(ctx),
        Op::Cast(o) => o.forward(&ctx.inputs[0]),
        Op::LastPosition(o) => {
            cast::last_position(&ctx.inputs[0], ctx.inputs.get(1).filter(|_| o.lengths))
        }
    }
}
