//! A layer node: a unique name, an op with its options, the nodes it reads,
//! and — where the op has both — the implementation that runs it.

use emily::Kernels;

use crate::layers::{
    Activation, AttentionCoreOptions, AttentionOptions, CastOptions, Conv1dOptions, DenseOptions,
    DropoutOptions, EmbeddingOptions, InputOptions, KvCacheOptions, LastPositionOptions,
    LayerNormOptions, PositionalEmbeddingOptions, ReshapeOptions, RmsNormOptions, RotaryOptions,
    SplitHeadsOptions, TransposeOptions,
};

/// A layer op and its options. Inputs are positional; [`Op::input_roles`]
/// names them.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A model input (no inputs).
    Input(InputOptions),
    /// `x · Wᵀ + b` over the last axis.
    Dense(DenseOptions),
    /// 1-D convolution over `(N, C, L)`.
    Conv1d(Conv1dOptions),
    /// Table lookup of integer ids.
    Embedding(EmbeddingOptions),
    /// Adds learned or sinusoidal position embeddings to `(B, T, D)`.
    PositionalEmbedding(PositionalEmbeddingOptions),
    /// Layer normalisation over one axis.
    LayerNorm(LayerNormOptions),
    /// RMS normalisation over one axis.
    RmsNorm(RmsNormOptions),
    /// Rotary position embedding of `(B, H, T, D)`.
    RotaryEmbedding(RotaryOptions),
    /// Multi-head attention with its q/k/v/out projections (self or cross,
    /// optional static KV cache, grouped-query heads, optional RoPE).
    Attention(AttentionOptions),
    /// The attention core `softmax(q·kᵀ·scale + mask)·v` on `(B, H, T, D)`.
    AttentionCore(AttentionCoreOptions),
    /// A static-size cache: writes its input at a run-time offset and outputs
    /// the whole cache (the buffer is model state).
    KvCache(KvCacheOptions),
    /// An elementwise activation.
    Activation(Activation),
    /// Elementwise `a + b` (residual connections).
    Add,
    /// Elementwise `a * b` (gates).
    Multiply,
    /// Reshape (0 copies an input dim, -1 is inferred).
    Reshape(ReshapeOptions),
    /// Axis permutation.
    Transpose(TransposeOptions),
    /// `(B, T, H·D)` → `(B, H, T, D)`.
    SplitHeads(SplitHeadsOptions),
    /// `(B, H, T, D)` → `(B, T, H·D)`.
    MergeHeads,
    /// Dropout (identity in inference).
    Dropout(DropoutOptions),
    /// Converts the element type.
    Cast(CastOptions),
    /// The last position along the sequence axis of `(B, T, …)`, kept as
    /// `(B, 1, …)` (a prompt step projects only its last row to logits).
    LastPosition(LastPositionOptions),
}

impl Op {
    /// The op's name (`"dense"`, `"layer_norm"`, `"attention"`, `"gelu"` …).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input(_) => "input",
            Op::Dense(_) => "dense",
            Op::Conv1d(_) => "conv1d",
            Op::Embedding(_) => "embedding",
            Op::PositionalEmbedding(_) => "positional_embedding",
            Op::LayerNorm(_) => "layer_norm",
            Op::RmsNorm(_) => "rms_norm",
            Op::RotaryEmbedding(_) => "rotary_embedding",
            Op::Attention(_) => "attention",
            Op::AttentionCore(_) => "attention_core",
            Op::KvCache(_) => "kv_cache",
            Op::Activation(a) => a.name(),
            Op::Add => "add",
            Op::Multiply => "multiply",
            Op::Reshape(_) => "reshape",
            Op::Transpose(_) => "transpose",
            Op::SplitHeads(_) => "split_heads",
            Op::MergeHeads => "merge_heads",
            Op::Dropout(_) => "dropout",
            Op::Cast(_) => "cast",
            Op::LastPosition(_) => "last_position",
        }
    }

    /// The name with `fast.` prepended when `implementation` is
    /// [`Kernels::Fused`] (`"fast.rms_norm"`).
    pub fn label(&self, implementation: Option<Kernels>) -> &'static str {
        if implementation != Some(Kernels::Fused) {
            return self.name();
        }
        match self {
            Op::LayerNorm(_) => "fast.layer_norm",
            Op::RmsNorm(_) => "fast.rms_norm",
            Op::RotaryEmbedding(_) => "fast.rotary_embedding",
            Op::Attention(_) => "fast.attention",
            Op::AttentionCore(_) => "fast.attention_core",
            Op::Conv1d(o) if o.channels_last => "fast.conv1d",
            other => other.name(),
        }
    }

    /// Whether the op has a fused implementation besides the composed one.
    pub fn has_fused(&self) -> bool {
        matches!(
            self,
            Op::LayerNorm(_)
                | Op::RmsNorm(_)
                | Op::RotaryEmbedding(_)
                | Op::Attention(_)
                | Op::AttentionCore(_)
        ) || matches!(self, Op::Conv1d(o) if o.channels_last)
    }

    /// The roles of the node's inputs, in order, as the options call for them.
    pub fn input_roles(&self) -> Vec<&'static str> {
        let mut r = Vec::new();
        match self {
            Op::Input(_) => {}
            Op::Embedding(_) => r.push("ids"),
            Op::PositionalEmbedding(o) => {
                r.push("x");
                if o.offset {
                    r.push("offset");
                }
            }
            Op::RotaryEmbedding(o) => {
                r.push("x");
                if let Some(role) = o.positions.input_role() {
                    r.push(role);
                }
            }
            Op::Attention(o) => {
                r.push("x");
                if o.cross {
                    r.push("context");
                }
                if o.mask.has_input() {
                    r.push("mask");
                }
                if o.cache.is_some() {
                    r.push("offset");
                }
            }
            Op::AttentionCore(o) => {
                r.extend(["q", "k", "v"]);
                if o.mask.has_input() {
                    r.push("mask");
                }
                if o.kv_offset {
                    r.push("offset");
                }
            }
            Op::KvCache(_) => r.extend(["update", "offset"]),
            Op::LastPosition(o) => {
                r.push("x");
                if o.lengths {
                    r.push("lengths");
                }
            }
            Op::Add | Op::Multiply => r.extend(["a", "b"]),
            _ => r.push("x"),
        }
        r
    }

    /// Checks the options for consistency; `Err` says what is wrong.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self {
            Op::Input(o) => o.validate(),
            Op::Dense(o) => o.validate(),
            Op::Conv1d(o) => o.validate(),
            Op::Embedding(o) => o.validate(),
            Op::PositionalEmbedding(o) => o.validate(),
            Op::LayerNorm(o) => o.validate(),
            Op::RmsNorm(o) => o.validate(),
            Op::RotaryEmbedding(o) => o.validate(),
            Op::Attention(o) => o.validate(),
            Op::AttentionCore(o) => o.validate(),
            Op::KvCache(o) => o.validate(),
            Op::Reshape(o) => o.validate(),
            Op::Transpose(o) => o.validate(),
            Op::SplitHeads(o) => o.validate(),
            Op::Dropout(o) => o.validate(),
            Op::Activation(_) | Op::Add | Op::Multiply | Op::MergeHeads | Op::LastPosition(_) => {
                Ok(())
            }
            Op::Cast(_) => Ok(()),
        }
    }
}

/// One named layer of a [`crate::Model`]. The name is the key of the node's
/// parameters in a [`crate::ParamStore`]; it and the inputs are fixed once the
/// node is in a graph (rewrites change options and implementation only).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    name: String,
    op: Op,
    inputs: Vec<String>,
    implementation: Option<Kernels>,
}

impl Node {
    /// A node; ops with a fused form start [`Kernels::Composed`].
    pub(crate) fn new(name: String, op: Op, inputs: Vec<String>) -> Node {
        let implementation = op.has_fused().then_some(Kernels::Composed);
        Node {
            name,
            op,
            inputs,
            implementation,
        }
    }

    /// The unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The op and its options.
    pub fn op(&self) -> &Op {
        &self.op
    }

    /// Mutable access to the options (for rewrites).
    pub fn op_mut(&mut self) -> &mut Op {
        &mut self.op
    }

    /// Names of the input nodes, in the order of [`Op::input_roles`].
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// The implementation, for ops that have a choice; `None` otherwise.
    pub fn implementation(&self) -> Option<Kernels> {
        self.implementation
    }

    /// Sets the implementation; ignored for ops without a fused form.
    pub fn set_implementation(&mut self, implementation: Kernels) {
        if self.op.has_fused() {
            self.implementation = Some(implementation);
        }
    }

    /// `self` with the implementation set (see [`Node::set_implementation`]).
    pub fn with_implementation(mut self, implementation: Kernels) -> Node {
        self.set_implementation(implementation);
        self
    }

    /// The op label: its name, `fast.`-prefixed when fused.
    pub fn label(&self) -> &'static str {
        self.op.label(self.implementation)
    }
}
