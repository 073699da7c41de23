//! The builder: add named nodes one at a time, each reading earlier nodes,
//! then declare the outputs and build the [`Model`].

use std::collections::HashSet;

use emily::DType;

use crate::error::{Error, Result};
use crate::graph::Model;
use crate::layers::{
    Activation, AttentionCoreOptions, AttentionOptions, CastOptions, Conv1dOptions, DenseOptions,
    DropoutOptions, EmbeddingOptions, InputOptions, KvCacheOptions, LastPositionOptions,
    LayerNormOptions, PositionalEmbeddingOptions, ReshapeOptions, RmsNormOptions, RotaryOptions,
    SplitHeadsOptions, TransposeOptions,
};
use crate::node::{Node, Op};

/// A handle to a node added to a [`ModelBuilder`] (its name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeRef(String);

impl NodeRef {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Builds a [`Model`] node by node. Every method checks the new node (unique
/// name, options, arity) and returns a [`NodeRef`] to feed later nodes.
///
/// ```
/// use emily::DType;
/// use emily_nn::{DenseOptions, ModelBuilder};
/// let mut b = ModelBuilder::new();
/// let x = b.input("x", &[None, Some(4)], DType::F32)?;
/// let h = b.dense("fc1", &x, DenseOptions::new(4, 8))?;
/// let h = b.relu("act", &h)?;
/// let y = b.dense("fc2", &h, DenseOptions::new(8, 4))?;
/// let y = b.add("residual", &x, &y)?;
/// b.output(&y)?;
/// let model = b.build()?;
/// assert_eq!(model.len(), 5);
/// # Ok::<(), emily_nn::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct ModelBuilder {
    nodes: Vec<Node>,
    names: HashSet<String>,
    outputs: Vec<String>,
}

impl ModelBuilder {
    /// An empty builder.
    pub fn new() -> ModelBuilder {
        ModelBuilder::default()
    }

    /// Adds a node of any op reading `inputs` (in the order of
    /// [`Op::input_roles`]).
    pub fn add_node(&mut self, name: &str, op: Op, inputs: &[&NodeRef]) -> Result<NodeRef> {
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(Error::InvalidName(name.to_string()));
        }
        if self.names.contains(name) {
            return Err(Error::DuplicateName(name.to_string()));
        }
        for i in inputs {
            if !self.names.contains(i.name()) {
                return Err(Error::UnknownInput {
                    node: name.to_string(),
                    input: i.name().to_string(),
                });
            }
        }
        let roles = op.input_roles();
        if roles.len() != inputs.len() {
            return Err(Error::Arity {
                node: name.to_string(),
                op: op.name(),
                expected: roles.len(),
                roles: roles.join(", "),
                got: inputs.len(),
            });
        }
        op.validate().map_err(|msg| Error::InvalidOptions {
            node: name.to_string(),
            op: op.name(),
            msg,
        })?;
        let inputs = inputs.iter().map(|i| i.name().to_string()).collect();
        self.nodes.push(Node::new(name.to_string(), op, inputs));
        self.names.insert(name.to_string());
        Ok(NodeRef(name.to_string()))
    }

    /// A model input of `shape` (`None` = free dim) and `dtype`.
    pub fn input(&mut self, name: &str, shape: &[Option<usize>], dtype: DType) -> Result<NodeRef> {
        self.add_node(name, Op::Input(InputOptions::new(shape, dtype)), &[])
    }

    /// A dense layer.
    pub fn dense(&mut self, name: &str, x: &NodeRef, opts: DenseOptions) -> Result<NodeRef> {
        self.add_node(name, Op::Dense(opts), &[x])
    }

    /// A 1-D convolution.
    pub fn conv1d(&mut self, name: &str, x: &NodeRef, opts: Conv1dOptions) -> Result<NodeRef> {
        self.add_node(name, Op::Conv1d(opts), &[x])
    }

    /// A token embedding of integer `ids`.
    pub fn embedding(
        &mut self,
        name: &str,
        ids: &NodeRef,
        opts: EmbeddingOptions,
    ) -> Result<NodeRef> {
        self.add_node(name, Op::Embedding(opts), &[ids])
    }

    /// Adds position embeddings to `x`, from position `offset` when given.
    pub fn positional_embedding(
        &mut self,
        name: &str,
        x: &NodeRef,
        offset: Option<&NodeRef>,
        mut opts: PositionalEmbeddingOptions,
    ) -> Result<NodeRef> {
        opts.offset = offset.is_some();
        let inputs: Vec<&NodeRef> = std::iter::once(x).chain(offset).collect();
        self.add_node(name, Op::PositionalEmbedding(opts), &inputs)
    }

    /// A layer norm.
    pub fn layer_norm(
        &mut self,
        name: &str,
        x: &NodeRef,
        opts: LayerNormOptions,
    ) -> Result<NodeRef> {
        self.add_node(name, Op::LayerNorm(opts), &[x])
    }

    /// An RMS norm.
    pub fn rms_norm(&mut self, name: &str, x: &NodeRef, opts: RmsNormOptions) -> Result<NodeRef> {
        self.add_node(name, Op::RmsNorm(opts), &[x])
    }

    /// Rotary embedding of `x (B, H, T, D)`; `positions` is the offset or ids
    /// input that `opts.positions` calls for.
    pub fn rotary_embedding(
        &mut self,
        name: &str,
        x: &NodeRef,
        positions: Option<&NodeRef>,
        opts: RotaryOptions,
    ) -> Result<NodeRef> {
        let inputs: Vec<&NodeRef> = std::iter::once(x).chain(positions).collect();
        self.add_node(name, Op::RotaryEmbedding(opts), &inputs)
    }

    /// Multi-head self-attention over `x`; `mask` as `opts.mask` says, and
    /// `offset` (the first position of `x`) when `opts.cache` is set.
    pub fn self_attention(
        &mut self,
        name: &str,
        x: &NodeRef,
        mask: Option<&NodeRef>,
        offset: Option<&NodeRef>,
        mut opts: AttentionOptions,
    ) -> Result<NodeRef> {
        opts.cross = false;
        let inputs: Vec<&NodeRef> = std::iter::once(x).chain(mask).chain(offset).collect();
        self.add_node(name, Op::Attention(opts), &inputs)
    }

    /// Multi-head cross-attention of `x` over `context`.
    pub fn cross_attention(
        &mut self,
        name: &str,
        x: &NodeRef,
        context: &NodeRef,
        mask: Option<&NodeRef>,
        mut opts: AttentionOptions,
    ) -> Result<NodeRef> {
        opts.cross = true;
        let inputs: Vec<&NodeRef> = [x, context].into_iter().chain(mask).collect();
        self.add_node(name, Op::Attention(opts), &inputs)
    }

    /// The attention core over `(B, H, T, D)` queries, keys and values;
    /// `offset` marks `k`/`v` as a static cache valid up to `offset + Tq`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_core(
        &mut self,
        name: &str,
        q: &NodeRef,
        k: &NodeRef,
        v: &NodeRef,
        mask: Option<&NodeRef>,
        offset: Option<&NodeRef>,
        mut opts: AttentionCoreOptions,
    ) -> Result<NodeRef> {
        opts.kv_offset = offset.is_some();
        let inputs: Vec<&NodeRef> = [q, k, v].into_iter().chain(mask).chain(offset).collect();
        self.add_node(name, Op::AttentionCore(opts), &inputs)
    }

    /// A static-size cache written with `update` at `offset`.
    pub fn kv_cache(
        &mut self,
        name: &str,
        update: &NodeRef,
        offset: &NodeRef,
        opts: KvCacheOptions,
    ) -> Result<NodeRef> {
        self.add_node(name, Op::KvCache(opts), &[update, offset])
    }

    /// An activation.
    pub fn activation(&mut self, name: &str, x: &NodeRef, act: Activation) -> Result<NodeRef> {
        self.add_node(name, Op::Activation(act), &[x])
    }

    /// Exact (erf) GELU.
    pub fn gelu(&mut self, name: &str, x: &NodeRef) -> Result<NodeRef> {
        self.activation(name, x, Activation::Gelu)
    }

    /// Tanh-approximated GELU.
    pub fn gelu_tanh(&mut self, name: &str, x: &NodeRef) -> Result<NodeRef> {
        self.activation(name, x, Activation::GeluTanh)
    }

    /// SiLU.
    pub fn silu(&mut self, name: &str, x: &NodeRef) -> Result<NodeRef> {
        self.activation(name, x, Activation::Silu)
    }

    /// ReLU.
    pub fn relu(&mut self, name: &str, x: &NodeRef) -> Result<NodeRef> {
        self.activation(name, x, Activation::Relu)
    }

    /// `a + b` (a residual connection).
    pub fn add(&mut self, name: &str, a: &NodeRef, b: &NodeRef) -> Result<NodeRef> {
        self.add_node(name, Op::Add, &[a, b])
    }

    /// `a * b` (a gate).
    pub fn multiply(&mut self, name: &str, a: &NodeRef, b: &NodeRef) -> Result<NodeRef> {
        self.add_node(name, Op::Multiply, &[a, b])
    }

    /// Reshape (`0` copies an input dim, `-1` is inferred).
    pub fn reshape(&mut self, name: &str, x: &NodeRef, shape: &[isize]) -> Result<NodeRef> {
        self.add_node(
            name,
            Op::Reshape(ReshapeOptions {
                shape: shape.to_vec(),
            }),
            &[x],
        )
    }

    /// Axis permutation.
    pub fn transpose(&mut self, name: &str, x: &NodeRef, perm: &[usize]) -> Result<NodeRef> {
        self.add_node(
            name,
            Op::Transpose(TransposeOptions {
                perm: perm.to_vec(),
            }),
            &[x],
        )
    }

    /// `(B, T, H·D)` → `(B, H, T, D)`.
    pub fn split_heads(&mut self, name: &str, x: &NodeRef, num_heads: usize) -> Result<NodeRef> {
        self.add_node(name, Op::SplitHeads(SplitHeadsOptions { num_heads }), &[x])
    }

    /// `(B, H, T, D)` → `(B, T, H·D)`.
    pub fn merge_heads(&mut self, name: &str, x: &NodeRef) -> Result<NodeRef> {
        self.add_node(name, Op::MergeHeads, &[x])
    }

    /// Dropout with probability `rate` (training only).
    pub fn dropout(&mut self, name: &str, x: &NodeRef, rate: f32) -> Result<NodeRef> {
        self.add_node(name, Op::Dropout(DropoutOptions { rate }), &[x])
    }

    /// Converts `x` to `dtype`.
    pub fn cast(&mut self, name: &str, x: &NodeRef, dtype: DType) -> Result<NodeRef> {
        self.add_node(name, Op::Cast(CastOptions::new(dtype)), &[x])
    }

    /// The last position of `x (B, T, …)` as `(B, 1, …)`: position `T − 1`,
    /// or `lengths[b] − 1` of each row when a `lengths (B,)` input is given.
    pub fn last_position(
        &mut self,
        name: &str,
        x: &NodeRef,
        lengths: Option<&NodeRef>,
    ) -> Result<NodeRef> {
        let opts = LastPositionOptions {
            lengths: lengths.is_some(),
        };
        let inputs: Vec<&NodeRef> = std::iter::once(x).chain(lengths).collect();
        self.add_node(name, Op::LastPosition(opts), &inputs)
    }

    /// Declares `node` an output (outputs keep declaration order).
    pub fn output(&mut self, node: &NodeRef) -> Result<()> {
        if !self.names.contains(node.name()) {
            return Err(Error::UnknownInput {
                node: "<outputs>".into(),
                input: node.name().to_string(),
            });
        }
        if !self.outputs.iter().any(|o| o == node.name()) {
            self.outputs.push(node.name().to_string());
        }
        Ok(())
    }

    /// The model.
    pub fn build(self) -> Result<Model> {
        Model::from_parts(self.nodes, &self.outputs)
    }
}
