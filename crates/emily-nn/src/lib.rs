//! `emily-nn`: a model graph of named layer nodes, a parameter store kept
//! apart from it, a compiled forward, inspection, and the fast-kernels rewrite.
//!
//! A [`Model`] is a DAG of [`Node`]s, each with a unique name, an [`Op`] with
//! its options, its input nodes and — for layer norm, RMS norm, rotary
//! embedding and attention — an implementation, [`emily::Kernels`]: `Composed`
//! (written from primitive ops as a model library ships it) or `Fused` (one
//! `emily::fast` node). Weights live in a [`ParamStore`] keyed by `"{node}.{param}"`
//! (Hugging Face names, e.g. `"model.layers.0.self_attn.q_proj.weight"`).
//! [`Model::build`] binds a store and a [`Mode`] into a [`Forward`] compiled
//! through `emily::compile` (one plan per input signature, weights as plan
//! constants). [`Model::properties`], [`Model::op_frequencies`] and the
//! `Display` summary inspect a model; [`Model::map_nodes`] rewrites nodes
//! without touching parameters; [`fast_kernels::apply`] switches every
//! eligible node to its fused implementation.
//!
//! ```
//! use emily::{DType, Tensor};
//! use emily_nn::{DenseOptions, LayerNormOptions, Mode, ModelBuilder, ParamStore};
//!
//! let mut b = ModelBuilder::new();
//! let x = b.input("x", &[None, Some(8)], DType::F32)?;
//! let h = b.dense("proj", &x, DenseOptions::new(8, 8))?;
//! let h = b.gelu("act", &h)?;
//! let y = b.layer_norm("norm", &h, LayerNormOptions::new(8))?;
//! b.output(&y)?;
//! let model = b.build()?;
//!
//! let params = ParamStore::random(&model, 0, DType::F32)?;
//! let forward = model.build(&params, Mode::Inference)?;
//! let out = forward.call(&[("x", &Tensor::ones(&[3, 8], DType::F32)?)])?;
//! assert_eq!(out["norm"].shape(), &[3, 8]);
//! # Ok::<(), emily_nn::Error>(())
//! ```

#![warn(missing_docs)]

mod build;
mod builder;
mod error;
mod exec;
pub mod fast_kernels;
mod graph;
mod init;
pub mod layers;
mod node;
mod params;
pub mod quantize;
mod rewrite;
mod shapes;
mod summary;
pub mod train;

pub use build::{Forward, Mode, Outputs, State};
pub use builder::{ModelBuilder, NodeRef};
pub use error::{Error, Result};
pub use fast_kernels::{KeptComposed, Report, Rewrite};
pub use graph::Model;
pub use layers::{
    Activation, AttentionCoreOptions, AttentionMask, AttentionOptions, CastOptions, Conv1dOptions,
    DenseOptions, DropoutOptions, EmbeddingOptions, InputOptions, KvCacheOptions,
    LastPositionOptions, LayerNormOptions, PositionalEmbeddingOptions, PositionalKind,
    ProjectionBias, ProjectionNames, ReshapeOptions, RmsNormOptions, RopeConfig, RotaryOptions,
    RotaryPositions, SinusoidalLayout, SplitHeadsOptions, TransposeOptions,
};
pub use node::{Node, Op};
pub use params::{ParamInit, ParamSpec, ParamStore};
