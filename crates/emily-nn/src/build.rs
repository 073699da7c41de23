//! Building a model: bind a parameter store and a mode, and compile the
//! forward through `emily::compile` (one plan per input signature; weights
//! and prepared tables are plan constants).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use emily::{Compiled, DType, Tensor};

use crate::error::{Error, Result};
use crate::exec::{ExtraKind, ExtraSpec, Program, Recorder, Supplied};
use crate::fast_kernels::KeptComposed;
use crate::graph::Model;
use crate::layers::{self, Locals};
use crate::node::Op;
use crate::params::ParamStore;

/// Whether a forward trains or infers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Dropout is the identity; parameters are constants of the plan.
    Inference,
    /// Parameters are arguments of the plan (differentiable inputs: new
    /// values replay the same plan, see [`Forward::call_with_params`] and
    /// [`Forward::train_step`]); dropout is active, its noise drawn by the
    /// graph from a per-call seed; attention that drops probabilities keeps
    /// its composed form.
    Train,
}

type Traced = Box<dyn Fn(&[Tensor]) -> emily::Result<Vec<Tensor>> + Send + Sync>;
type Signature = Vec<(Vec<usize>, DType)>;

thread_local! {
    /// The node-level error of the last failed trace on this thread (the
    /// compiled function can only return core errors).
    static TRACE_ERROR: RefCell<Option<Error>> = const { RefCell::new(None) };
}

impl Model {
    /// Binds `params` (checked against every node's parameter specs; the
    /// store is read, never changed) and compiles the forward for `mode`.
    ///
    /// Nodes set to [`emily::Kernels::Fused`] run `emily::fast` ops,
    /// except attention with dropout in [`Mode::Train`], which runs composed
    /// and is listed by [`Forward::kept_composed`].
    pub fn build(&self, params: &ParamStore, mode: Mode) -> Result<Forward> {
        let locals = bind(self, params, mode)?;
        let (program, kept) = Program::new(self.clone(), locals, mode);
        for k in &kept {
            tracing::warn!(target: "emily_nn::build", node = %k.node, op = k.op, reason = %k.reason, "fused node runs composed");
        }
        Ok(Forward::new(program, kept))
    }
}

/// Looks up and checks every node's parameters, and prepares its constants.
/// Parameters are float tensors; in inference the weight of a dense or
/// embedding node may also be block-quantised (multiplied or gathered
/// through the quantised kernels).
pub(crate) fn bind(model: &Model, params: &ParamStore, mode: Mode) -> Result<Vec<Locals>> {
    // Identical constants (every layer's RoPE table) are made once and shared.
    let mut made = layers::SharedConstants::default();
    model
        .nodes()
        .iter()
        .map(|node| {
            let mut locals = Locals::new();
            for spec in layers::param_specs(node.op()) {
                let key = spec.key(node.name());
                let t = params.get(&key).ok_or_else(|| Error::MissingParam {
                    node: node.name().into(),
                    param: key.clone(),
                })?;
                if t.shape() != spec.shape {
                    return Err(Error::ParamShape {
                        node: node.name().into(),
                        param: key,
                        expected: spec.shape,
                        actual: t.shape().to_vec(),
                    });
                }
                let quantized_weight = t.dtype().is_quantized()
                    && mode == Mode::Inference
                    && (spec.local == "weight"
                        && matches!(node.op(), Op::Dense(_) | Op::Embedding(_))
                        || spec.local.ends_with(".weight")
                            && spec.shape.len() == 2
                            && matches!(node.op(), Op::Attention(_)));
                if !t.dtype().is_float() && !quantized_weight {
                    return Err(Error::ParamDType {
                        node: node.name().into(),
                        param: key,
                        dtype: t.dtype(),
                    });
                }
                locals.insert(spec.local, t.clone());
            }
            let consts = made.get(node.op()).map_err(|source| Error::Node {
                node: node.name().into(),
                op: node.label(),
                source,
            })?;
            locals.extend(consts);
            Ok(locals)
        })
        .collect()
}

/// A compiled forward: call it with named inputs. Plans are cached per
/// input signature, so repeated calls with the same shapes replay without
/// re-tracing. Cheap to share across threads.
pub struct Forward {
    program: Arc<Program>,
    /// The parameters bound at build, passed as the plan's leading
    /// arguments in training mode (empty in inference).
    params: Vec<Tensor>,
    compiled: Compiled<Traced>,
    extras: Mutex<HashMap<Signature, Arc<Vec<ExtraSpec>>>>,
    signatures: Mutex<HashSet<Signature>>,
    has_extras: bool,
    seed: AtomicU64,
    calls: AtomicU64,
    kept: Vec<KeptComposed>,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("mode", &self.program.mode)
            .field("nodes", &self.program.model.len())
            .field("kept_composed", &self.kept)
            .finish()
    }
}

impl Forward {
    fn new(program: Program, kept: Vec<KeptComposed>) -> Forward {
        let has_extras = program.model.nodes().iter().any(|n| {
            matches!(n.op(), Op::KvCache(_))
                || matches!(n.op(), Op::Attention(o) if o.cache.is_some())
                || layers::uses_dropout(n.op(), program.mode)
        });
        let params: Vec<Tensor> = match program.mode {
            Mode::Inference => Vec::new(),
            Mode::Train => program
                .params
                .iter()
                .map(|s| program.locals[s.node][&s.local].clone())
                .collect(),
        };
        let program = Arc::new(program);
        let p = program.clone();
        let (np, n) = (params.len(), p.inputs.len());
        let traced: Traced = Box::new(move |args: &[Tensor]| {
            let mut supplied = Supplied::new(&args[np + n..]);
            let run = if np == 0 {
                p.run(&args[..n], &mut supplied)
            } else {
                p.run_with(
                    &p.locals_with(&args[..np]),
                    &args[np..np + n],
                    &mut supplied,
                )
            };
            match run {
                Ok(mut outs) => {
                    outs.extend(supplied.updates);
                    Ok(outs)
                }
                Err(e) => {
                    let msg = e.to_string();
                    TRACE_ERROR.with(|c| *c.borrow_mut() = Some(e));
                    Err(emily::Error::Invalid {
                        op: "emily-nn",
                        msg,
                    })
                }
            }
        });
        Forward {
            program,
            params,
            compiled: emily::compile(traced),
            extras: Mutex::new(HashMap::new()),
            signatures: Mutex::new(HashSet::new()),
            has_extras,
            seed: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            kept,
        }
    }

    /// The mode this forward was built for.
    pub fn mode(&self) -> Mode {
        self.program.mode
    }

    /// The model this forward runs.
    pub fn model(&self) -> &Model {
        &self.program.model
    }

    /// Fused nodes that run composed in this mode, and why.
    pub fn kept_composed(&self) -> &[KeptComposed] {
        &self.kept
    }

    /// Seeds the dropout noise of later calls (training).
    pub fn set_seed(&self, seed: u64) {
        self.seed.store(seed, Ordering::Relaxed);
        self.calls.store(0, Ordering::Relaxed);
    }

    /// Runs the model on named inputs. A model with KV caches starts from
    /// empty (zero) caches and the updated caches are dropped; use
    /// [`Forward::call_with_state`] to keep them.
    pub fn call(&self, inputs: &[(&str, &Tensor)]) -> Result<Outputs> {
        self.call_with_state(inputs, &mut State::new())
    }

    /// Runs the model, reading and updating `state` (the KV caches). An empty
    /// state is filled with zero caches shaped for these inputs.
    pub fn call_with_state(
        &self,
        inputs: &[(&str, &Tensor)],
        state: &mut State,
    ) -> Result<Outputs> {
        self.call_inner(&self.params, inputs, state)
    }

    /// Runs a training-mode forward with other parameter values (same
    /// names and shapes as the store it was built with): the plan is
    /// replayed, not re-traced.
    pub fn call_with_params(
        &self,
        params: &ParamStore,
        inputs: &[(&str, &Tensor)],
    ) -> Result<Outputs> {
        let values = self.param_values(params)?;
        self.call_inner(&values, inputs, &mut State::new())
    }

    /// The store's tensors in the order of the plan's parameter arguments,
    /// checked against the model (training mode only).
    pub(crate) fn param_values(&self, params: &ParamStore) -> Result<Vec<Tensor>> {
        if self.program.mode != Mode::Train {
            return Err(Error::Mode(
                "parameters are plan constants in inference mode; build with Mode::Train",
            ));
        }
        self.program
            .params
            .iter()
            .zip(&self.params)
            .map(|(slot, bound)| {
                let node = self.program.model.nodes()[slot.node].name();
                let t = params.get(&slot.key).ok_or_else(|| Error::MissingParam {
                    node: node.into(),
                    param: slot.key.clone(),
                })?;
                if t.shape() != bound.shape() {
                    return Err(Error::ParamShape {
                        node: node.into(),
                        param: slot.key.clone(),
                        expected: bound.shape().to_vec(),
                        actual: t.shape().to_vec(),
                    });
                }
                if t.dtype() != bound.dtype() {
                    return Err(Error::Train {
                        what: "parameters",
                        msg: format!(
                            "`{}` is {}, the forward was built with {}",
                            slot.key,
                            t.dtype(),
                            bound.dtype()
                        ),
                    });
                }
                Ok(t.clone())
            })
            .collect()
    }

    pub(crate) fn program(&self) -> &Arc<Program> {
        &self.program
    }

    fn call_inner(
        &self,
        params: &[Tensor],
        inputs: &[(&str, &Tensor)],
        state: &mut State,
    ) -> Result<Outputs> {
        let inputs = self.order_inputs(inputs)?;
        let specs = self.extra_specs(&inputs)?;
        let mut args = params.to_vec();
        args.extend(inputs);
        let state_specs: Vec<(&String, &ExtraSpec)> = specs
            .iter()
            .filter_map(|s| match &s.kind {
                ExtraKind::State(name) => Some((name, s)),
                ExtraKind::Seed => None,
            })
            .collect();
        if state.is_empty() {
            state.entries = state_specs
                .iter()
                .map(|(n, s)| Ok(((*n).clone(), Tensor::zeros(&s.shape, s.dtype)?)))
                .collect::<Result<_>>()?;
        } else {
            check_state(state, &state_specs)?;
        }
        // Move the state into the arguments: a cache nobody else holds is then
        // updated in place by the plan instead of copied every step. (If the
        // call fails the state is reset and the next call starts from zeros.)
        let (state_names, state_tensors): (Vec<String>, Vec<Tensor>) =
            std::mem::take(&mut state.entries).into_iter().unzip();
        let mut states = state_tensors.into_iter();
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let seed = self.seed.load(Ordering::Relaxed);
        for spec in specs.iter() {
            match &spec.kind {
                ExtraKind::State(_) => args.push(states.next().expect("checked state")),
                ExtraKind::Seed => args.push(seed_tensor(mix(seed, call))?),
            }
        }
        TRACE_ERROR.with(|c| c.borrow_mut().take());
        let mut outs = self.compiled.call_owned(args).map_err(|e| {
            TRACE_ERROR
                .with(|c| c.borrow_mut().take())
                .unwrap_or(Error::Core(e))
        })?;
        let n_out = self.program.model.output_indices().len();
        let updates = outs.split_off(n_out);
        state.entries = state_names.into_iter().zip(updates).collect();
        let names = self
            .program
            .model
            .outputs()
            .iter()
            .map(|s| s.to_string())
            .collect();
        Ok(Outputs {
            names,
            tensors: outs,
        })
    }

    /// Number of kernels the compiled plan for these inputs runs (traces it
    /// if new). Compares base and rewritten models at the plan level.
    pub fn num_kernels(&self, inputs: &[(&str, &Tensor)]) -> Result<usize> {
        Ok(self.plan_for(inputs)?.num_steps())
    }

    /// Number of fused `emily::fast` kernels the compiled plan for these
    /// inputs runs (0 for a model whose nodes are all composed): proof that
    /// a fused model really runs the fused kernels.
    pub fn num_fast_ops(&self, inputs: &[(&str, &Tensor)]) -> Result<usize> {
        Ok(self.plan_for(inputs)?.num_fast_ops())
    }

    /// The compiled plan for these inputs (traced if new).
    fn plan_for(&self, inputs: &[(&str, &Tensor)]) -> Result<std::sync::Arc<emily::compile::Plan>> {
        let inputs = self.order_inputs(inputs)?;
        let specs = self.extra_specs(&inputs)?;
        let mut args = self.params.clone();
        args.extend(inputs);
        for spec in specs.iter() {
            args.push(Tensor::zeros(&spec.shape, spec.dtype)?);
        }
        self.compiled.plan(&args).map_err(|e| {
            TRACE_ERROR
                .with(|c| c.borrow_mut().take())
                .unwrap_or(Error::Core(e))
        })
    }

    /// Number of plans compiled so far: one per distinct input signature
    /// (state and noise shapes follow from the inputs).
    pub fn num_plans(&self) -> usize {
        self.signatures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The model inputs in graph order, checked against their declarations.
    pub(crate) fn order_inputs(&self, inputs: &[(&str, &Tensor)]) -> Result<Vec<Tensor>> {
        let nodes = self.program.model.nodes();
        for (name, _) in inputs {
            let is_input = self
                .program
                .inputs
                .iter()
                .any(|&i| nodes[i].name() == *name);
            if !is_input {
                return Err(Error::UnexpectedInput(name.to_string()));
            }
        }
        self.program
            .inputs
            .iter()
            .map(|&i| {
                let node = &nodes[i];
                let (_, t) = inputs
                    .iter()
                    .find(|(n, _)| *n == node.name())
                    .ok_or_else(|| Error::MissingInput(node.name().to_string()))?;
                let Op::Input(decl) = node.op() else {
                    unreachable!("inputs are input nodes")
                };
                if !decl.accepts(t.shape(), t.dtype()) {
                    return Err(Error::InputMismatch {
                        name: node.name().to_string(),
                        actual_shape: t.shape().to_vec(),
                        actual_dtype: t.dtype(),
                        declared: decl.describe(),
                    });
                }
                Ok((*t).clone())
            })
            .collect()
    }

    /// The state and noise a call with these inputs needs (a lazy dry run
    /// per new input signature; nothing is computed).
    pub(crate) fn extra_specs(&self, args: &[Tensor]) -> Result<Arc<Vec<ExtraSpec>>> {
        let sig: Signature = args
            .iter()
            .map(|t| (t.shape().to_vec(), t.dtype()))
            .collect();
        self.signatures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sig.clone());
        if !self.has_extras {
            return Ok(Arc::new(Vec::new()));
        }
        if let Some(s) = self
            .extras
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&sig)
        {
            return Ok(s.clone());
        }
        let mut rec = Recorder::default();
        self.program.run(args, &mut rec)?;
        let specs = Arc::new(rec.specs);
        self.extras
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sig, specs.clone());
        Ok(specs)
    }
}

fn check_state(state: &State, specs: &[(&String, &ExtraSpec)]) -> Result<()> {
    if state.entries.len() != specs.len() {
        return Err(Error::State {
            name: "<all>".into(),
            msg: format!(
                "holds {} entries, the model has {}",
                state.entries.len(),
                specs.len()
            ),
        });
    }
    for ((name, t), (want, spec)) in state.entries.iter().zip(specs) {
        if name != *want || t.shape() != spec.shape || t.dtype() != spec.dtype {
            return Err(Error::State {
                name: name.clone(),
                msg: format!(
                    "is {:?} {} (as `{name}`), this call needs `{want}` {:?} {}",
                    t.shape(),
                    t.dtype(),
                    spec.shape,
                    spec.dtype
                ),
            });
        }
    }
    Ok(())
}

/// The dropout seed argument of a call: a scalar i64 tensor.
pub(crate) fn seed_tensor(seed: u64) -> Result<Tensor> {
    Ok(Tensor::from_slice(&[seed as i64], &[])?)
}

/// A per-call noise seed.
pub(crate) fn mix(seed: u64, call: u64) -> u64 {
    let mut z = seed ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The KV caches of a model with cached attention, carried between calls
/// of [`Forward::call_with_state`]. Entries are named `"{node}.{slot}"`.
#[derive(Clone, Debug, Default)]
pub struct State {
    entries: Vec<(String, Tensor)>,
}

impl State {
    /// An empty state (filled with zero caches by the first call).
    pub fn new() -> State {
        State::default()
    }

    /// True if no cache has been allocated yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Entries in model order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Drops every cache (the next call starts from zeros).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// A state of named entries (e.g. caches rearranged by the caller).
    pub fn from_entries(entries: Vec<(String, Tensor)>) -> State {
        State { entries }
    }

    /// Takes the entries out, leaving the state empty.
    pub fn into_entries(self) -> Vec<(String, Tensor)> {
        self.entries
    }
}

/// The outputs of a forward call, by output node name.
#[derive(Clone, Debug)]
pub struct Outputs {
    names: Vec<String>,
    tensors: Vec<Tensor>,
}

impl Outputs {
    pub(crate) fn new(names: Vec<String>, tensors: Vec<Tensor>) -> Outputs {
        Outputs { names, tensors }
    }

    /// The output of node `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.tensors[i])
    }

    /// Output names in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// The tensors in declaration order.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// The tensors, consuming the outputs.
    pub fn into_tensors(self) -> Vec<Tensor> {
        self.tensors
    }

    /// Number of outputs.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True if there are none (never, for a built model).
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}

impl std::ops::Index<&str> for Outputs {
    type Output = Tensor;

    /// The output of node `name`; panics if the model has no such output.
    fn index(&self, name: &str) -> &Tensor {
        self.get(name)
            .unwrap_or_else(|| panic!("`{name}` is not an output of the model"))
    }
}
