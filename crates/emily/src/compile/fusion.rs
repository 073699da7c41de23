//! Elementwise fusion: chains of unary/binary/where/cast nodes of one output
//! shape become one [`Op::Fused`] node whose program makes a single pass over
//! memory. An intermediate joins its consumer's group when the consumer is its
//! only user and it has the group's shape; everything else becomes a program
//! input (broadcast as needed). Registers are assigned by liveness so a long
//! chain still fits in L1. Intermediates are rounded to their own dtype inside
//! the program, so results match op-by-op evaluation exactly.

use std::collections::HashMap;
use std::sync::Arc;

use super::graph::{Graph, Kind};
use crate::backend::Backend;
use crate::ops::{FusedInput, FusedInstr, FusedProgram, Op, Operand};
use crate::DType;

/// Whether value `i` is an elementwise node the backend can fuse.
fn fusable(g: &Graph, i: usize, backend: &dyn Backend) -> bool {
    let v = &g.values[i];
    match &v.kind {
        Kind::Node { op, inputs } if op.is_elementwise() => {
            let dtypes: Vec<DType> = inputs.iter().map(|&j| g.values[j].dtype).collect();
            backend.can_fuse(op, &dtypes, v.dtype)
        }
        _ => false,
    }
}

/// Fuses the elementwise chains `backend` can run as one program; returns
/// the number of nodes fused away.
pub(crate) fn fuse_elementwise(g: &mut Graph, backend: &dyn Backend) -> usize {
    let uses = g.use_counts();
    let is_output: Vec<bool> = {
        let mut o = vec![false; g.values.len()];
        g.outputs.iter().for_each(|&i| o[i] = true);
        o
    };
    let mut group_of = vec![usize::MAX; g.values.len()];
    let mut removed = 0;
    for root in (0..g.values.len()).rev() {
        if group_of[root] != usize::MAX || !fusable(g, root, backend) {
            continue;
        }
        group_of[root] = root;
        let mut members = vec![root];
        let mut k = 0;
        while k < members.len() {
            let m = members[k];
            k += 1;
            if let Kind::Node { inputs, .. } = &g.values[m].kind {
                for &j in inputs {
                    if group_of[j] == usize::MAX
                        && fusable(g, j, backend)
                        && uses[j] == 1
                        && !is_output[j]
                        && g.values[j].shape == g.values[root].shape
                    {
                        group_of[j] = root;
                        members.push(j);
                    }
                }
            }
        }
        if members.len() < 2 {
            continue;
        }
        members.sort_unstable();
        let (prog, ext) = build_program(g, &members);
        removed += members.len() - 1;
        g.values[root].kind = Kind::Node {
            op: Op::Fused(Arc::new(prog)),
            inputs: ext,
        };
    }
    super::passes::dead_code(g);
    removed
}

/// Builds the register program for `members` (sorted topologically; the last is
/// the root) and returns it with its external inputs.
fn build_program(g: &Graph, members: &[usize]) -> (FusedProgram, Vec<usize>) {
    let in_group: HashMap<usize, usize> =
        members.iter().enumerate().map(|(p, &m)| (m, p)).collect();
    // Last position inside the group where each member is read.
    let mut last_read = vec![0usize; members.len()];
    for (p, &m) in members.iter().enumerate() {
        if let Kind::Node { inputs, .. } = &g.values[m].kind {
            for j in inputs {
                if let Some(&q) = in_group.get(j) {
                    last_read[q] = p;
                }
            }
        }
    }
    let mut constants: Vec<u64> = Vec::new();
    let mut const_pos: HashMap<usize, usize> = HashMap::new();
    let mut ext: Vec<usize> = Vec::new();
    let mut ext_pos: HashMap<usize, usize> = HashMap::new();
    let mut reg_of = vec![usize::MAX; members.len()];
    let mut free: Vec<usize> = Vec::new();
    let mut num_regs = 0;
    let mut instrs = Vec::with_capacity(members.len());
    for (p, &m) in members.iter().enumerate() {
        let Kind::Node { op, inputs } = &g.values[m].kind else {
            unreachable!()
        };
        let operands: Vec<Operand> = inputs
            .iter()
            .map(|j| match (in_group.get(j), &g.values[*j].kind) {
                (Some(&q), _) => Operand::Reg(reg_of[q]),
                (None, Kind::Const(a)) if a.numel() == 1 => {
                    let v = a.scalar_f64().expect("one element").to_bits();
                    let n = constants.len();
                    Operand::Const(*const_pos.entry(*j).or_insert_with(|| {
                        constants.push(v);
                        n
                    }))
                }
                (None, _) => {
                    let n = ext.len();
                    Operand::Input(*ext_pos.entry(*j).or_insert_with(|| {
                        ext.push(*j);
                        n
                    }))
                }
            })
            .collect();
        // Take the destination before freeing sources: dst never aliases a source.
        let dst = free.pop().unwrap_or_else(|| {
            num_regs += 1;
            num_regs - 1
        });
        reg_of[p] = dst;
        for j in inputs {
            if let Some(&q) = in_group.get(j) {
                if last_read[q] == p && !free.contains(&reg_of[q]) {
                    free.push(reg_of[q]);
                }
            }
        }
        let dtype = g.values[m].dtype;
        instrs.push(match op {
            Op::Unary(u) => FusedInstr::Unary {
                op: *u,
                src: operands[0],
                dst,
                dtype,
            },
            Op::Binary(b) => FusedInstr::Binary {
                op: *b,
                a: operands[0],
                b: operands[1],
                dst,
                dtype,
            },
            Op::Where => FusedInstr::Where {
                cond: operands[0],
                a: operands[1],
                b: operands[2],
                dst,
                dtype,
            },
            Op::Cast => FusedInstr::Cast {
                src: operands[0],
                dst,
                dtype,
            },
            other => unreachable!("{other:?} is not elementwise"),
        });
    }
    let inputs = ext
        .iter()
        .map(|&j| FusedInput {
            shape: g.values[j].shape.clone(),
            dtype: g.values[j].dtype,
        })
        .collect();
    let output = Operand::Reg(reg_of[members.len() - 1]);
    (
        FusedProgram {
            inputs,
            instrs,
            num_regs,
            output,
            constants,
        },
        ext,
    )
}
