//! The compiler's graph: values in topological order, built by walking the
//! outputs of a traced function back to its symbolic inputs and captured
//! constants.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::fast::Kernels;
use crate::ops::Op;
use crate::tensor::{State, Tensor};
use crate::{Array, DType};

/// How a value is produced.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// The i-th argument of the compiled function.
    Input(usize),
    /// A captured tensor (weights) or a folded constant.
    Const(Array),
    /// An op over earlier values.
    Node { op: Op, inputs: Vec<usize> },
}

/// One value of the graph.
#[derive(Clone, Debug)]
pub(crate) struct Value {
    pub kind: Kind,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

/// A traced computation: `values` in dependency order, `outputs` index them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Graph {
    pub values: Vec<Value>,
    pub outputs: Vec<usize>,
}

impl Graph {
    /// Builds the graph reachable from `outputs` (iteratively: graphs can be
    /// deep). With [`Kernels::Composed`] every fast-op node is replaced by its
    /// decomposition (built over the same inputs while walking).
    pub fn from_outputs(outputs: &[Tensor], kernels: Kernels) -> Result<Graph> {
        let mut g = Graph::default();
        let mut ids: HashMap<u64, usize> = HashMap::new();
        // Fast nodes lowered to their decompositions, by node id.
        let mut lowered: HashMap<u64, Tensor> = HashMap::new();
        let mut stack: Vec<(Tensor, bool)> =
            outputs.iter().rev().map(|t| (t.clone(), false)).collect();
        while let Some((t, expanded)) = stack.pop() {
            if ids.contains_key(&t.id()) {
                continue;
            }
            let kind = {
                let st = t.state();
                match &*st {
                    State::Ready(a) => Some(Kind::Const(a.clone())),
                    State::Symbolic { index } => Some(Kind::Input(*index)),
                    State::Failed(m) => {
                        return Err(Error::Invalid {
                            op: "compile",
                            msg: m.clone(),
                        })
                    }
                    State::Pending {
                        op: Op::Fast(fast),
                        inputs,
                    } if kernels == Kernels::Composed => {
                        if expanded {
                            let value = ids[&lowered[&t.id()].id()];
                            ids.insert(t.id(), value);
                        } else {
                            let (fast, inputs) = (fast.clone(), inputs.clone());
                            drop(st);
                            let d = fast.decompose(&inputs)?;
                            stack.push((t.clone(), true));
                            stack.push((d.clone(), false));
                            lowered.insert(t.id(), d);
                        }
                        None
                    }
                    State::Pending { op, inputs } => {
                        if expanded {
                            let ins = inputs.iter().map(|i| ids[&i.id()]).collect();
                            Some(Kind::Node {
                                op: op.clone(),
                                inputs: ins,
                            })
                        } else {
                            let pending: Vec<Tensor> = inputs
                                .iter()
                                .filter(|i| !ids.contains_key(&i.id()))
                                .cloned()
                                .collect();
                            drop(st);
                            stack.push((t.clone(), true));
                            stack.extend(pending.into_iter().rev().map(|i| (i, false)));
                            None
                        }
                    }
                }
            };
            if let Some(kind) = kind {
                ids.insert(t.id(), g.values.len());
                g.values.push(Value {
                    kind,
                    shape: t.shape().to_vec(),
                    dtype: t.dtype(),
                });
            }
        }
        g.outputs = outputs.iter().map(|t| ids[&t.id()]).collect();
        Ok(g)
    }

    /// Number of op nodes (kernels a replay launches).
    pub fn num_nodes(&self) -> usize {
        self.values
            .iter()
            .filter(|v| matches!(v.kind, Kind::Node { .. }))
            .count()
    }

    /// Number of consumers of each value (outputs count as consumers).
    pub fn use_counts(&self) -> Vec<usize> {
        let mut uses = vec![0; self.values.len()];
        for v in &self.values {
            if let Kind::Node { inputs, .. } = &v.kind {
                for &i in inputs {
                    uses[i] += 1;
                }
            }
        }
        for &o in &self.outputs {
            uses[o] += 1;
        }
        uses
    }

    /// Reorders values so every node follows its inputs (after a rewrite
    /// pointed earlier nodes at appended ones), keeping the existing order
    /// where it already does.
    pub fn sort_topologically(&mut self) {
        let n = self.values.len();
        let mut order = Vec::with_capacity(n);
        let mut state = vec![0u8; n]; // 0 new, 1 on the stack, 2 placed
        for root in 0..n {
            let mut stack = vec![root];
            while let Some(&i) = stack.last() {
                if state[i] == 2 {
                    stack.pop();
                    continue;
                }
                state[i] = 1;
                let pending = match &self.values[i].kind {
                    Kind::Node { inputs, .. } => inputs.iter().copied().find(|&j| state[j] == 0),
                    _ => None,
                };
                match pending {
                    Some(j) => stack.push(j),
                    None => {
                        state[i] = 2;
                        order.push(i);
                        stack.pop();
                    }
                }
            }
        }
        self.apply_order(&order);
    }

    /// Renumbers values into `order` (a permutation of the values that keeps
    /// every node after its inputs), updating references and outputs.
    pub fn apply_order(&mut self, order: &[usize]) {
        let mut remap = vec![0; order.len()];
        for (new, &old) in order.iter().enumerate() {
            remap[old] = new;
        }
        let mut old: Vec<Option<Value>> = std::mem::take(&mut self.values)
            .into_iter()
            .map(Some)
            .collect();
        self.values = order
            .iter()
            .map(|&i| old[i].take().expect("each value placed once"))
            .collect();
        for v in self.values.iter_mut() {
            if let Kind::Node { inputs, .. } = &mut v.kind {
                inputs.iter_mut().for_each(|i| *i = remap[*i]);
            }
        }
        self.outputs.iter_mut().for_each(|o| *o = remap[*o]);
    }

    /// Keeps only values flagged in `keep` (in order), renumbering references.
    pub fn retain(&mut self, keep: &[bool]) {
        let mut remap = vec![usize::MAX; self.values.len()];
        let mut values = Vec::new();
        for (i, v) in std::mem::take(&mut self.values).into_iter().enumerate() {
            if keep[i] {
                remap[i] = values.len();
                values.push(v);
            }
        }
        for v in values.iter_mut() {
            if let Kind::Node { inputs, .. } = &mut v.kind {
                for i in inputs.iter_mut() {
                    *i = remap[*i];
                }
            }
        }
        self.outputs.iter_mut().for_each(|o| *o = remap[*o]);
        self.values = values;
    }
}
