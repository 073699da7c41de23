//! Orders the slices cut out of one value so the slice of its leading
//! elements reads it last. Fast ops with several results (the RMSNorm
//! gradient's dx and weight gradient, attention's dQ, dK and dV) write them
//! into one flat output that the plan slices apart; the CPU backend hands a
//! leading slice the whole buffer instead of copying when it is that
//! buffer's last reader ([`crate::shape::is_leading_slice`]). The other
//! slices, together at most half of the value (the backend's bound for
//! reusing a buffer for a prefix), move to right after the value, so the
//! leading one is its last reader. Nothing is computed differently.

use super::graph::{Graph, Kind};
use crate::ops::Op;
use crate::shape::{is_leading_slice, numel};

/// Moves the slices described above; returns how many moved.
pub(crate) fn hoist_slices(g: &mut Graph) -> usize {
    let n = g.values.len();
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, v) in g.values.iter().enumerate() {
        if let Kind::Node { inputs, .. } = &v.kind {
            for &j in inputs {
                if !readers[j].contains(&i) {
                    readers[j].push(i);
                }
            }
        }
    }
    let is_output: Vec<bool> = {
        let mut o = vec![false; n];
        g.outputs.iter().for_each(|&i| o[i] = true);
        o
    };
    // For each value, the slices to place right after it.
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut moved = vec![false; n];
    for (src, rs) in readers.iter().enumerate() {
        if rs.len() < 2 || is_output[src] {
            continue;
        }
        let slice = |r: usize| match &g.values[r].kind {
            Kind::Node {
                op: Op::Slice { starts, steps },
                ..
            } => Some((starts, steps)),
            _ => None,
        };
        let shape = &g.values[src].shape;
        let leading = rs.iter().any(|&r| {
            slice(r).is_some_and(|(starts, steps)| {
                let out = &g.values[r].shape;
                is_leading_slice(shape, starts, steps, out) && 2 * numel(out) >= numel(shape)
            })
        });
        // Every reader must be a slice: another reader after the leading
        // slice would keep the buffer anyway.
        if !leading || !rs.iter().all(|&r| slice(r).is_some()) {
            continue;
        }
        for &r in rs {
            let (starts, steps) = slice(r).expect("all readers are slices");
            if !is_leading_slice(shape, starts, steps, &g.values[r].shape) {
                after[src].push(r);
                moved[r] = true;
            }
        }
    }
    let count = moved.iter().filter(|&&m| m).count();
    if count == 0 {
        return 0;
    }
    let mut order = Vec::with_capacity(n);
    for i in 0..n {
        if !moved[i] {
            order.push(i);
            order.extend(after[i].iter().copied());
        }
    }
    g.apply_order(&order);
    count
}
