//! The reverse walk: order the pending graph between the outputs and the
//! inputs being differentiated, find which nodes carry gradient, then visit
//! them outputs-first, building each op's vector-Jacobian product and summing
//! cotangents per node.

use std::collections::HashMap;

use super::rules;
use crate::error::{invalid, shape_err, Result};
use crate::ops::{Op, Reduction, UnaryOp};
use crate::tensor::State;
use crate::Tensor;

/// One node of the walk.
struct Entry {
    tensor: Tensor,
    /// The op and inputs of a pending node that is not a leaf.
    node: Option<(Op, Vec<Tensor>)>,
    /// Which leaves the node depends on (any path).
    reach: Vec<u64>,
    /// Whether a cotangent flows from this node to some leaf.
    needs: bool,
    /// The first non-differentiable op on a path from this node to a leaf.
    blocker: Option<String>,
}

/// Whether an op's output can carry gradient to its inputs (discrete ops
/// cannot).
fn differentiable(op: &Op) -> bool {
    !matches!(
        op,
        Op::Unary(
            UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round | UnaryOp::Sign | UnaryOp::LogicalNot
        ) | Op::RandomUniform { .. }
            | Op::Reduce {
                op: Reduction::ArgMax | Reduction::ArgMin,
                ..
            }
    )
}

/// How an error names an op that stops gradient.
fn describe(op: &Op, out: &Tensor) -> String {
    match op {
        Op::Unary(u) => format!("{u:?}").to_lowercase(),
        Op::Binary(b) => format!("{b:?}").to_lowercase(),
        Op::Reduce { op, .. } => format!("{op:?}").to_lowercase(),
        Op::Cast => format!("cast to {}", out.dtype()),
        other => other.name().to_string(),
    }
}

/// The cotangents of `wrt` given `outputs` and one cotangent per output
/// (same shape and dtype as the output), as lazy tensors.
///
/// The walk stops at the `wrt` tensors, at materialised tensors and at
/// symbolic inputs; everything else between them and `outputs` must be
/// pending. A `wrt` tensor the outputs do not depend on gets zeros; one they
/// depend on only through non-differentiable ops is an error naming the op.
/// If one tensor appears several times in `wrt`, the first gets its
/// gradient and the others zeros.
pub fn backward(outputs: &[Tensor], cotangents: &[Tensor], wrt: &[Tensor]) -> Result<Vec<Tensor>> {
    if outputs.len() != cotangents.len() {
        return Err(invalid(
            "grad",
            format!(
                "{} outputs but {} cotangents",
                outputs.len(),
                cotangents.len()
            ),
        ));
    }
    for (o, c) in outputs.iter().zip(cotangents) {
        if o.shape() != c.shape() || o.dtype() != c.dtype() {
            return Err(shape_err(
                "grad",
                format!(
                    "cotangent {:?} {} does not match its output {:?} {}",
                    c.shape(),
                    c.dtype(),
                    o.shape(),
                    o.dtype()
                ),
            ));
        }
    }
    let mut leaf_of: HashMap<u64, usize> = HashMap::new();
    for (k, w) in wrt.iter().enumerate() {
        if !w.dtype().is_float() {
            return Err(invalid(
                "grad",
                format!(
                    "cannot differentiate with respect to input {k} of dtype {} (shape {:?})",
                    w.dtype(),
                    w.shape()
                ),
            ));
        }
        leaf_of.entry(w.id()).or_insert(k);
    }
    let words = wrt.len().div_ceil(64).max(1);
    let (entries, index) = order(outputs, &leaf_of, words);

    let mut cot: HashMap<u64, Tensor> = HashMap::new();
    for (o, c) in outputs.iter().zip(cotangents) {
        if entries[index[&o.id()]].needs {
            accumulate(&mut cot, o.id(), c.clone())?;
        }
    }
    for e in entries.iter().rev() {
        let Some((op, inputs)) = &e.node else {
            continue;
        };
        if !e.needs {
            continue;
        }
        let Some(g) = cot.remove(&e.tensor.id()) else {
            continue;
        };
        let needs: Vec<bool> = inputs
            .iter()
            .map(|i| entries[index[&i.id()]].needs)
            .collect();
        let grads = rules::vjp(op, inputs, &e.tensor, &g, &needs)?;
        for ((input, gi), need) in inputs.iter().zip(grads).zip(&needs) {
            if let (Some(gi), true) = (gi, need) {
                if gi.shape() != input.shape() || gi.dtype() != input.dtype() {
                    return Err(invalid(
                        "grad",
                        format!(
                            "the {} rule gave a {:?} {} gradient for a {:?} {} input",
                            op.name(),
                            gi.shape(),
                            gi.dtype(),
                            input.shape(),
                            input.dtype()
                        ),
                    ));
                }
                accumulate(&mut cot, input.id(), gi)?;
            }
        }
    }

    let mut reach = vec![0u64; words];
    let mut blocker = None;
    for o in outputs {
        let e = &entries[index[&o.id()]];
        reach.iter_mut().zip(&e.reach).for_each(|(a, b)| *a |= b);
        blocker = blocker.or_else(|| e.blocker.clone());
    }
    wrt.iter()
        .enumerate()
        .map(|(k, w)| {
            if leaf_of[&w.id()] == k {
                if let Some(g) = cot.remove(&w.id()) {
                    return Ok(g);
                }
                if reach[k / 64] >> (k % 64) & 1 == 1 {
                    return Err(invalid(
                        "grad",
                        format!(
                            "input {k} ({:?} {}) reaches the output only through `{}`, which is not differentiable",
                            w.shape(),
                            w.dtype(),
                            blocker.as_deref().unwrap_or("a non-float value")
                        ),
                    ));
                }
            }
            Tensor::full(w.shape(), 0.0, w.dtype(), w.device())
        })
        .collect()
}

fn accumulate(cot: &mut HashMap<u64, Tensor>, id: u64, g: Tensor) -> Result<()> {
    let g = match cot.remove(&id) {
        Some(prev) => prev.add(&g)?,
        None => g,
    };
    cot.insert(id, g);
    Ok(())
}

/// The nodes reachable from `outputs` (not expanding leaves or non-pending
/// nodes), inputs before consumers, with their reach, needs and blockers.
fn order(
    outputs: &[Tensor],
    leaf_of: &HashMap<u64, usize>,
    words: usize,
) -> (Vec<Entry>, HashMap<u64, usize>) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut stack: Vec<(Tensor, bool)> = outputs.iter().rev().map(|t| (t.clone(), false)).collect();
    let mut pending: HashMap<u64, (Op, Vec<Tensor>)> = HashMap::new();
    while let Some((t, expanded)) = stack.pop() {
        if index.contains_key(&t.id()) {
            continue;
        }
        if !expanded {
            let node = if leaf_of.contains_key(&t.id()) {
                None
            } else {
                match &*t.state() {
                    State::Pending { op, inputs } => Some((op.clone(), inputs.clone())),
                    _ => None,
                }
            };
            match node {
                Some((op, inputs)) => {
                    stack.push((t.clone(), true));
                    for i in inputs.iter().rev() {
                        if !index.contains_key(&i.id()) {
                            stack.push((i.clone(), false));
                        }
                    }
                    pending.insert(t.id(), (op, inputs));
                }
                None => {
                    let mut reach = vec![0u64; words];
                    let is_leaf = leaf_of.get(&t.id()).copied();
                    if let Some(k) = is_leaf {
                        reach[k / 64] |= 1 << (k % 64);
                    }
                    index.insert(t.id(), entries.len());
                    entries.push(Entry {
                        needs: is_leaf.is_some(),
                        tensor: t,
                        node: None,
                        reach,
                        blocker: None,
                    });
                }
            }
            continue;
        }
        let (op, inputs) = pending
            .remove(&t.id())
            .expect("expanded nodes were recorded");
        let mut reach = vec![0u64; words];
        let mut any_input_needs = false;
        let mut blocker = None;
        for i in &inputs {
            let e = &entries[index[&i.id()]];
            reach.iter_mut().zip(&e.reach).for_each(|(a, b)| *a |= b);
            any_input_needs |= e.needs;
            if blocker.is_none() && e.reach.iter().any(|&w| w != 0) {
                blocker = e.blocker.clone();
            }
        }
        let needs = any_input_needs && t.dtype().is_float() && differentiable(&op);
        if any_input_needs && !needs {
            blocker = Some(describe(&op, &t));
        }
        index.insert(t.id(), entries.len());
        entries.push(Entry {
            tensor: t,
            node: Some((op, inputs)),
            reach,
            needs,
            blocker,
        });
    }
    (entries, index)
}
