//! A compiled plan: the optimised graph as a flat list of steps, replayed
//! without re-tracing. Each value is dropped right after its last use (its
//! buffer returns to the pool for the next step to reuse) and handed to that
//! last consumer by value, so elementwise kernels update it in place.

use super::graph::{Graph, Kind};
use crate::backend;
use crate::error::{invalid, Result};
use crate::ops::Op;
use crate::shape::numel;
use crate::{telemetry, Array, DType, Device, Tensor};

/// See [`Plan::bytes`]; steps are counted by their own size and their vectors.
fn plan_bytes(consts: &[(usize, Array)], steps: &[Step]) -> usize {
    let word = std::mem::size_of::<usize>();
    let consts: usize = consts
        .iter()
        .map(|(_, a)| a.sole_host_bytes() + std::mem::size_of::<(usize, Array)>())
        .sum();
    let steps: usize = steps
        .iter()
        .map(|s| {
            let program = match &s.op {
                Op::Fused(p) => {
                    p.instrs.len() * std::mem::size_of::<crate::ops::FusedInstr>()
                        + p.inputs.iter().map(|i| i.shape.len() * word).sum::<usize>()
                }
                _ => 0,
            };
            std::mem::size_of::<Step>() + (s.inputs.len() + s.shape.len()) * word + program
        })
        .sum();
    consts + steps
}

/// Whether the per-op profile names a plan's kernels by output shape
/// (`EMILY_PROFILE_SHAPES=1`, read once).
fn shape_labels() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("EMILY_PROFILE_SHAPES").is_ok_and(|v| v == "1"))
}

/// A step's name in the per-op profile: its op's name, or with
/// `EMILY_PROFILE_SHAPES=1` the op, its transposes (products) and its output
/// shape, so one op kind's time splits by the kernels it runs. Each distinct
/// label is allocated once for the process.
fn profile_label(op: &Op, shape: &[usize]) -> &'static str {
    if !shape_labels() {
        return op.name();
    }
    let text = shape_label(op, shape);
    static LABELS: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut labels = LABELS.lock().unwrap_or_else(|e| e.into_inner());
    match labels.iter().find(|l| **l == text) {
        Some(l) => l,
        None => {
            let l: &'static str = Box::leak(text.into_boxed_str());
            labels.push(l);
            l
        }
    }
}

/// `op`, its transposes (products) and its output `shape` as one label.
fn shape_label(op: &Op, shape: &[usize]) -> String {
    match op {
        Op::Matmul {
            transpose_a,
            transpose_b,
        } => format!(
            "matmul{}{} {shape:?}",
            if *transpose_a { " aT" } else { "" },
            if *transpose_b { " bT" } else { "" }
        ),
        Op::Fused(p) => format!(
            "fused {}i {}in{} {shape:?}",
            p.instrs.len(),
            p.inputs.len(),
            match p.extra_outputs.len() {
                0 => String::new(),
                n => format!(" +{n}out"),
            }
        ),
        _ => format!("{} {shape:?}", op.name()),
    }
}

struct Step {
    op: Op,
    /// The step's name in the per-op profile ([`profile_label`]).
    label: &'static str,
    inputs: Vec<usize>,
    /// For each input, whether this is its last read (move instead of clone).
    last: Vec<bool>,
    out: usize,
    /// The values of a fused program's extra outputs, in order (`None`: not
    /// read); empty for every other step.
    extra: Vec<Option<usize>>,
    shape: Vec<usize>,
    dtype: DType,
}

/// A replayable, optimised computation.
pub struct Plan {
    num_values: usize,
    params: Vec<(usize, usize)>,
    consts: Vec<(usize, Array)>,
    steps: Vec<Step>,
    outputs: Vec<usize>,
    device: Device,
    bytes: usize,
    /// Nodes of the traced graph, before any pass.
    traced: usize,
    /// Whether some kernel may use the CPU thread pool (see
    /// [`uses_pool`]): then the replay runs on the pool.
    pooled: bool,
}

/// Whether a CPU step may hand work to the thread pool: products, fast ops
/// and anything large enough to be split. Plans of only small elementwise
/// and layout steps (an optimizer's update) stay on the calling thread.
fn uses_pool(s: &Step) -> bool {
    matches!(
        s.op,
        Op::Matmul { .. }
            | Op::MatmulInt8 { .. }
            | Op::MatmulThen { .. }
            | Op::ConvThen { .. }
            | Op::MlpInt8Then { .. }
            | Op::Conv1d { .. }
            | Op::Fast(_)
    ) || numel(&s.shape) >= emily_kernels::parallel::MIN_PARALLEL_ELEMS
}

impl Plan {
    /// Lowers an optimised graph to steps with last-use information;
    /// `traced` is the number of nodes the function traced (what eager
    /// evaluation would run).
    pub(crate) fn new(g: Graph, device: Device, traced: usize) -> Plan {
        // Extra outputs of multi-output fused programs: no step of their
        // own, filled by their program's step.
        let extra_of = |v: &super::graph::Value| match &v.kind {
            Kind::Node {
                op: Op::FusedOutput { index },
                inputs,
            } => Some((inputs[0], *index)),
            _ => None,
        };
        let mut last_use = vec![usize::MAX; g.values.len()];
        let mut extras: Vec<Vec<Option<usize>>> = vec![Vec::new(); g.values.len()];
        let mut params = Vec::new();
        let mut consts = Vec::new();
        let mut steps: Vec<Step> = Vec::new();
        let mut step_idx = 0;
        for (i, v) in g.values.iter().enumerate() {
            if let Some((of, index)) = extra_of(v) {
                let e = &mut extras[of];
                if e.len() <= index {
                    e.resize(index + 1, None);
                }
                e[index] = Some(i);
            } else if let Kind::Node { inputs, .. } = &v.kind {
                for &j in inputs {
                    last_use[j] = step_idx;
                }
                step_idx += 1;
            }
        }
        for &o in &g.outputs {
            last_use[o] = usize::MAX - 1; // outputs are never moved out early
        }
        for (i, v) in g.values.into_iter().enumerate() {
            match v.kind {
                Kind::Input(k) => params.push((i, k)),
                Kind::Const(a) => consts.push((i, a)),
                Kind::Node {
                    op: Op::FusedOutput { .. },
                    ..
                } => {}
                Kind::Node { op, inputs } => {
                    let s = steps.len();
                    let last = inputs
                        .iter()
                        .enumerate()
                        .map(|(p, &j)| last_use[j] == s && !inputs[p + 1..].contains(&j))
                        .collect();
                    steps.push(Step {
                        label: profile_label(&op, &v.shape),
                        op,
                        inputs,
                        last,
                        out: i,
                        extra: std::mem::take(&mut extras[i]),
                        shape: v.shape,
                        dtype: v.dtype,
                    });
                }
            }
        }
        let bytes = plan_bytes(&consts, &steps);
        let pooled = device == Device::Cpu && steps.iter().any(uses_pool);
        Plan {
            pooled,
            traced,
            num_values: last_use.len(),
            params,
            consts,
            steps,
            outputs: g.outputs,
            device,
            bytes,
        }
    }

    /// Bytes this plan keeps alive: constants it alone holds (folded
    /// constants; captured weights are shared with their owner and not
    /// counted) and its steps. What the plan cache budgets.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many kernels of each op a replay runs, most frequent first.
    pub fn op_frequencies(&self) -> Vec<(&'static str, usize)> {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for s in &self.steps {
            match counts.iter_mut().find(|c| c.0 == s.op.name()) {
                Some(c) => c.1 += 1,
                None => counts.push((s.op.name(), 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        counts
    }

    /// Number of fused fast-op kernels (norms, RoPE, attention) a replay runs.
    pub fn num_fast_ops(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s.op, Op::Fast(_)))
            .count()
    }

    /// Number of results fused programs write besides their main output
    /// (their extra outputs that the plan reads).
    pub fn num_extra_outputs(&self) -> usize {
        self.steps
            .iter()
            .map(|s| s.extra.iter().flatten().count())
            .sum()
    }

    /// The steps one per line, for inspection: each step's value, its
    /// profile label (op and output shape; fused programs with their
    /// instruction, input and extra-output counts), and the values it reads
    /// (`pN` the N-th argument, `cN` a constant, `vN` an earlier step's
    /// result; extra outputs follow their step as `vN = fused_output`).
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let mut name = vec![String::new(); self.num_values];
        for &(i, k) in &self.params {
            name[i] = format!("p{k}");
        }
        for (i, _) in &self.consts {
            name[*i] = format!("c{i}");
        }
        let mut out = String::new();
        for s in &self.steps {
            name[s.out] = format!("v{}", s.out);
            let ins: Vec<&str> = s.inputs.iter().map(|&j| name[j].as_str()).collect();
            let _ = writeln!(
                out,
                "v{} = {} <- {}",
                s.out,
                shape_label(&s.op, &s.shape),
                ins.join(" ")
            );
            for (k, v) in s.extra.iter().enumerate() {
                if let Some(v) = v {
                    name[*v] = format!("v{v}");
                    let _ = writeln!(out, "v{v} = fused_output {k} of v{}", s.out);
                }
            }
        }
        out
    }

    /// Number of kernels a replay runs.
    pub fn num_steps(&self) -> usize {
        self.steps.len()
    }

    /// Number of ops the function traced, before common-subexpression
    /// elimination, constant folding and fusion: the kernels evaluating the
    /// same function eagerly runs.
    pub fn num_traced_ops(&self) -> usize {
        self.traced
    }

    /// Runs the plan on `args` (evaluated first if pending).
    pub fn run(&self, args: &[Tensor]) -> Result<Vec<Tensor>> {
        let arrays = args.iter().map(|t| t.array()).collect::<Result<Vec<_>>>()?;
        self.run_arrays(arrays)
    }

    /// Runs the plan taking ownership of `args`: an argument held by nobody
    /// else hands its buffer to the plan, so e.g. a KV cache passed in and
    /// returned updated is written in place instead of copied.
    pub fn run_owned(&self, args: Vec<Tensor>) -> Result<Vec<Tensor>> {
        let mut arrays = Vec::with_capacity(args.len());
        for t in args {
            t.array()?; // evaluate if pending
            arrays.push(crate::eval::take_ready(t)?);
        }
        self.run_arrays(arrays)
    }

    fn run_arrays(&self, args: Vec<Array>) -> Result<Vec<Tensor>> {
        if self.pooled && emily_kernels::parallel::num_threads() > 1 {
            // The whole replay on one of the pool's threads: each kernel's
            // own `install` is then a plain call instead of a hand-off to
            // the pool and back (a futex wake and wait per kernel). A
            // one-thread pool runs every kernel inline on the caller. The
            // other threads are kept awake for the replay's kernels.
            return emily_kernels::parallel::pool().install(|| {
                emily_kernels::awake_workers::with_workers_awake(|| self.replay(args))
            });
        }
        self.replay(args)
    }

    fn replay(&self, args: Vec<Array>) -> Result<Vec<Tensor>> {
        let be = backend::get(self.device);
        let mut vals: Vec<Option<Array>> = vec![None; self.num_values];
        let mut uses = vec![0usize; args.len()];
        for &(_, k) in &self.params {
            uses[k] += 1;
        }
        // The last placeholder reading an argument takes it (so it can be donated).
        let mut args: Vec<Option<Array>> = args.into_iter().map(Some).collect();
        for &(i, k) in &self.params {
            uses[k] -= 1;
            vals[i] = if uses[k] == 0 {
                args[k].take()
            } else {
                args[k].clone()
            };
        }
        for (i, a) in &self.consts {
            vals[*i] = Some(a.clone());
        }
        let profile = telemetry::profiling();
        for s in &self.steps {
            let mut ins = Vec::with_capacity(s.inputs.len());
            for (&j, &last) in s.inputs.iter().zip(&s.last) {
                let a = if last {
                    vals[j].take()
                } else {
                    vals[j].clone()
                };
                ins.push(a.ok_or_else(|| {
                    invalid("compile", "plan read a value before it was computed")
                })?);
            }
            let t = profile.then(telemetry::OpClock::start);
            match &s.op {
                Op::Fused(p) if !p.extra_outputs.is_empty() => {
                    let mut outs = be.execute_fused(p, ins, &s.shape, s.dtype)?.into_iter();
                    vals[s.out] = outs.next();
                    for (v, a) in s.extra.iter().zip(outs) {
                        if let Some(v) = v {
                            vals[*v] = Some(a);
                        }
                    }
                }
                op => vals[s.out] = Some(be.execute(op, ins, &s.shape, s.dtype)?),
            }
            if let Some(t) = t {
                t.record(s.label);
            }
        }
        self.outputs
            .iter()
            .map(|&o| {
                let a = vals[o]
                    .clone()
                    .ok_or_else(|| invalid("compile", "plan output missing"))?;
                Ok(Tensor::from_array(a))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::shape_label;
    use crate::ops::{Op, UnaryOp};

    #[test]
    fn profile_labels_name_op_transposes_and_shape() {
        let mm = Op::Matmul {
            transpose_a: true,
            transpose_b: false,
        };
        assert_eq!(shape_label(&mm, &[344, 64]), "matmul aT [344, 64]");
        let mm = Op::Matmul {
            transpose_a: false,
            transpose_b: true,
        };
        assert_eq!(shape_label(&mm, &[7, 1]), "matmul bT [7, 1]");
        assert_eq!(shape_label(&Op::Unary(UnaryOp::Exp), &[3]), "unary [3]");
    }
}
