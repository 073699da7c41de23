//! The interpreter: runs a model's nodes in order over lazy tensors. The
//! compiled forward runs it once per input signature while `emily::compile`
//! traces; shape inference runs it on lazy zeros (nothing is computed).

use emily::{DType, Tensor};

use crate::build::Mode;
use crate::error::{Error, Result};
use crate::graph::Model;
use crate::layers::{self, Ctx, Locals};
use emily::Kernels;

use crate::node::Op;

/// State (KV caches) and dropout noise a run reads besides the model inputs.
pub(crate) trait Extras {
    /// The current value of state slot `slot` of `node`, of `shape`/`dtype`.
    fn state(
        &mut self,
        node: &str,
        slot: &'static str,
        shape: &[usize],
        dtype: DType,
    ) -> emily::Result<Tensor>;
    /// The new value of the state slot read last.
    fn update_state(&mut self, value: Tensor);
    /// Uniform `[0, 1)` f32 noise of `shape` for `node`'s dropout, drawn by
    /// the graph from the call's seed (one stream per use site).
    fn noise(&mut self, node: &str, shape: &[usize]) -> emily::Result<Tensor>;
}

/// One extra argument of a compiled forward, in the order a run asks for them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ExtraKind {
    /// A state slot: its name `"{node}.{slot}"`.
    State(String),
    /// The seed of the call's dropout noise (an i64 scalar; every dropout
    /// site draws its own stream from it inside the graph).
    Seed,
}

/// An extra argument's kind, shape and dtype.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ExtraSpec {
    pub kind: ExtraKind,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

/// Records what a run asks for, answering with lazy zeros.
#[derive(Default)]
pub(crate) struct Recorder {
    pub specs: Vec<ExtraSpec>,
    seeded: bool,
}

impl Extras for Recorder {
    fn state(
        &mut self,
        node: &str,
        slot: &'static str,
        shape: &[usize],
        dtype: DType,
    ) -> emily::Result<Tensor> {
        self.specs.push(ExtraSpec {
            kind: ExtraKind::State(format!("{node}.{slot}")),
            shape: shape.to_vec(),
            dtype,
        });
        Tensor::zeros(shape, dtype)
    }

    fn update_state(&mut self, _value: Tensor) {}

    fn noise(&mut self, _node: &str, shape: &[usize]) -> emily::Result<Tensor> {
        if !std::mem::replace(&mut self.seeded, true) {
            self.specs.push(ExtraSpec {
                kind: ExtraKind::Seed,
                shape: Vec::new(),
                dtype: DType::I64,
            });
        }
        Tensor::zeros(shape, DType::F32)
    }
}

/// Answers from supplied tensors, in order; collects new state values.
pub(crate) struct Supplied<'a> {
    args: &'a [Tensor],
    next: usize,
    /// The dropout seed, once taken, and the next site's stream.
    seed: Option<Tensor>,
    stream: u64,
    pub updates: Vec<Tensor>,
}

impl<'a> Supplied<'a> {
    pub(crate) fn new(args: &'a [Tensor]) -> Supplied<'a> {
        Supplied {
            args,
            next: 0,
            seed: None,
            stream: 0,
            updates: Vec::new(),
        }
    }

    /// How many supplied tensors the run has taken.
    pub(crate) fn consumed(&self) -> usize {
        self.next
    }

    fn take(&mut self, what: &str, shape: &[usize]) -> emily::Result<Tensor> {
        let t = self
            .args
            .get(self.next)
            .cloned()
            .ok_or_else(|| layers::invalid("forward", format!("{what} was not supplied")))?;
        self.next += 1;
        if t.shape() != shape {
            return Err(layers::shape_err(
                "forward",
                format!("{what} has shape {:?}, expected {shape:?}", t.shape()),
            ));
        }
        Ok(t)
    }
}

impl Extras for Supplied<'_> {
    fn state(
        &mut self,
        node: &str,
        slot: &'static str,
        shape: &[usize],
        _dtype: DType,
    ) -> emily::Result<Tensor> {
        self.take(&format!("state `{node}.{slot}`"), shape)
    }

    fn update_state(&mut self, value: Tensor) {
        self.updates.push(value);
    }

    fn noise(&mut self, node: &str, shape: &[usize]) -> emily::Result<Tensor> {
        let seed = match &self.seed {
            Some(s) => s.clone(),
            None => {
                let s = self.take(&format!("the dropout seed (first used by `{node}`)"), &[])?;
                self.seed = Some(s.clone());
                s
            }
        };
        self.stream += 1;
        Tensor::random_uniform(shape, &seed, self.stream, DType::F32)
    }
}

/// Where a parameter is bound: node index, local name, store key.
#[derive(Clone, Debug)]
pub(crate) struct ParamSlot {
    pub node: usize,
    pub local: String,
    pub key: String,
}

/// A model bound to its parameters, constants, mode and per-node implementation.
pub(crate) struct Program {
    pub model: Model,
    pub locals: Vec<Locals>,
    pub fused: Vec<bool>,
    pub mode: Mode,
    pub inputs: Vec<usize>,
    /// Every parameter, in model order (the order of a training forward's
    /// leading arguments).
    pub params: Vec<ParamSlot>,
}

impl Program {
    /// Binds `locals` (per node) and decides each node's implementation:
    /// fused where the node says so, except attention that drops
    /// probabilities in training. Returns the program and the nodes kept
    /// composed for that reason.
    pub(crate) fn new(
        model: Model,
        locals: Vec<Locals>,
        mode: Mode,
    ) -> (Program, Vec<crate::KeptComposed>) {
        let mut kept = Vec::new();
        let fused = model
            .nodes()
            .iter()
            .map(|n| {
                let want = n.implementation() == Some(Kernels::Fused);
                if want
                    && matches!(n.op(), Op::Attention(_) | Op::AttentionCore(_))
                    && layers::uses_dropout(n.op(), mode)
                {
                    kept.push(crate::KeptComposed {
                        node: n.name().to_string(),
                        op: n.op().name(),
                        reason: crate::fast_kernels::dropout_reason(n.op()),
                    });
                    return false;
                }
                want
            })
            .collect();
        let inputs = model
            .nodes()
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(n.op(), Op::Input(_)))
            .map(|(i, _)| i)
            .collect();
        let params = model
            .nodes()
            .iter()
            .enumerate()
            .flat_map(|(i, n)| {
                layers::param_specs(n.op())
                    .into_iter()
                    .map(move |spec| ParamSlot {
                        node: i,
                        key: spec.key(n.name()),
                        local: spec.local,
                    })
            })
            .collect();
        (
            Program {
                model,
                locals,
                fused,
                mode,
                inputs,
                params,
            },
            kept,
        )
    }

    /// The bound locals with every parameter replaced by `values` (one per
    /// [`Program::params`] slot, in order).
    pub(crate) fn locals_with(&self, values: &[Tensor]) -> Vec<Locals> {
        let mut locals = self.locals.clone();
        for (slot, v) in self.params.iter().zip(values) {
            locals[slot.node].insert(slot.local.clone(), v.clone());
        }
        locals
    }

    /// Every node's value for `args` (one per model input, in order).
    pub(crate) fn run_all(&self, args: &[Tensor], extras: &mut dyn Extras) -> Result<Vec<Tensor>> {
        self.run_all_with(&self.locals, args, extras)
    }

    /// [`Program::run_all`] with other bound locals (parameters as inputs).
    pub(crate) fn run_all_with(
        &self,
        locals: &[Locals],
        args: &[Tensor],
        extras: &mut dyn Extras,
    ) -> Result<Vec<Tensor>> {
        let nodes = self.model.nodes();
        let mut values: Vec<Option<Tensor>> = vec![None; nodes.len()];
        for (k, &i) in self.inputs.iter().enumerate() {
            values[i] = Some(args[k].clone());
        }
        for (i, node) in nodes.iter().enumerate() {
            if values[i].is_some() {
                continue;
            }
            let inputs = node
                .inputs()
                .iter()
                .map(|name| {
                    let j = self.model.index_of(name).expect("validated graph");
                    values[j].clone().expect("topological order")
                })
                .collect();
            let mut ctx = Ctx {
                name: node.name(),
                inputs,
                locals: &locals[i],
                mode: self.mode,
                fused: self.fused[i],
                extras,
            };
            let v = layers::forward(node.op(), &mut ctx).map_err(|source| Error::Node {
                node: node.name().to_string(),
                op: node.label(),
                source,
            })?;
            values[i] = Some(v);
        }
        Ok(values
            .into_iter()
            .map(|v| v.expect("every node ran"))
            .collect())
    }

    /// The model outputs for `args`.
    pub(crate) fn run(&self, args: &[Tensor], extras: &mut dyn Extras) -> Result<Vec<Tensor>> {
        self.run_with(&self.locals, args, extras)
    }

    /// [`Program::run`] with other bound locals (parameters as inputs).
    pub(crate) fn run_with(
        &self,
        locals: &[Locals],
        args: &[Tensor],
        extras: &mut dyn Extras,
    ) -> Result<Vec<Tensor>> {
        let all = self.run_all_with(locals, args, extras)?;
        Ok(self
            .model
            .output_indices()
            .iter()
            .map(|&i| all[i].clone())
            .collect())
    }
}
