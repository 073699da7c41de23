//! Graph passes that do not change what is computed: dead-code elimination,
//! common-subexpression elimination and constant folding.

use std::collections::HashMap;

use super::graph::{Graph, Kind};
use crate::backend;
use crate::error::Result;
use crate::ops::Op;
use crate::{Array, Device};

/// Constants larger than this (bytes) are not produced by folding when they
/// are bigger than their inputs (a broadcast would bloat the plan).
const FOLD_LIMIT: usize = 64 << 20;

/// Drops values no output depends on.
pub(crate) fn dead_code(g: &mut Graph) {
    let mut live = vec![false; g.values.len()];
    for &o in &g.outputs {
        live[o] = true;
    }
    for i in (0..g.values.len()).rev() {
        if live[i] {
            if let Kind::Node { inputs, .. } = &g.values[i].kind {
                for &j in inputs {
                    live[j] = true;
                }
            }
        }
    }
    g.retain(&live);
}

/// Merges values computed by the same op from the same inputs (and identical
/// constants), keeping the first.
pub(crate) fn common_subexpressions(g: &mut Graph) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut remap: Vec<usize> = (0..g.values.len()).collect();
    for i in 0..g.values.len() {
        let v = &mut g.values[i];
        let key = match &mut v.kind {
            Kind::Input(k) => format!("in{k}"),
            Kind::Const(a) => format!("c{}:{:?}:{:?}", a.buffer_id(), a.shape(), a.dtype()),
            Kind::Node { op, inputs } => {
                inputs.iter_mut().for_each(|j| *j = remap[*j]);
                format!("{op:?}|{inputs:?}|{:?}|{:?}", v.shape, v.dtype)
            }
        };
        match seen.get(&key) {
            Some(&first) => remap[i] = first,
            None => {
                seen.insert(key, i);
            }
        }
    }
    g.outputs.iter_mut().for_each(|o| *o = remap[*o]);
    dead_code(g);
}

/// A fill (`Op::Full`) larger than this (bytes) is not folded: filling it at
/// run time is cheaper than copying a constant the plan keeps, and the fresh
/// buffer can be updated in place by its consumer (the zeros a gather's
/// gradient scatters into).
const FILL_FOLD_LIMIT: usize = 4 << 10;

/// Evaluates nodes whose inputs are all constants at compile time.
pub(crate) fn fold_constants(g: &mut Graph, device: Device) -> Result<()> {
    let be = backend::get(device);
    for i in 0..g.values.len() {
        let Kind::Node { op, inputs } = &g.values[i].kind else {
            continue;
        };
        let consts: Option<Vec<Array>> = inputs
            .iter()
            .map(|&j| match &g.values[j].kind {
                Kind::Const(a) => Some(a.clone()),
                _ => None,
            })
            .collect();
        let Some(consts) = consts else { continue };
        let v = &g.values[i];
        let out_bytes = v.dtype.storage_bytes(&v.shape)?;
        let in_bytes: usize = consts.iter().map(|a| a.len_bytes()).sum();
        if out_bytes > FOLD_LIMIT && out_bytes > in_bytes {
            continue;
        }
        if matches!(op, Op::Full { .. }) && out_bytes > FILL_FOLD_LIMIT {
            continue;
        }
        let a = be.execute(op, consts, &v.shape, v.dtype)?;
        g.values[i].kind = Kind::Const(a);
    }
    dead_code(g);
    Ok(())
}
