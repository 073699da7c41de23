//! Elementwise fusion: chains of unary/binary/where/cast nodes of one output
//! shape become one [`Op::Fused`] node whose program makes a single pass over
//! memory. An intermediate joins its consumer's group when the consumer is its
//! only user, or when all its users are in that group, and it has the
//! group's shape. A cheap intermediate (arithmetic,
//! no transcendental) read by a few elementwise consumers of its shape, and
//! nothing else, is recomputed inside each of their groups instead of being
//! written out and read back (what a backward pass is full of: `x·y` reused
//! by several gradient terms). Everything else becomes a program input
//! (broadcast as needed); a materialised `broadcast_to` feeding a group is
//! read through its source instead. Registers are assigned by liveness so a
//! long chain still fits in L1. Intermediates are rounded to their own dtype
//! inside the program, so results match op-by-op evaluation exactly.

use std::collections::HashMap;
use std::sync::Arc;

use super::graph::{Graph, Kind};
use super::multi_output::Group;
use crate::backend::Backend;
use crate::ops::{
    BinaryOp, ExtraOutput, FusedInput, FusedInstr, FusedProgram, Op, Operand, UnaryOp,
};
use crate::DType;

/// Most consumers a shared intermediate may be recomputed for.
const MAX_RECOMPUTE_USERS: usize = 4;

/// Most instructions a group grows to by taking in shared intermediates.
const MAX_GROUP: usize = 48;

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

/// Ops cheap enough to compute more than once rather than store and reload.
fn cheap(op: &Op) -> bool {
    match op {
        Op::Unary(u) => matches!(
            u,
            UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Square | UnaryOp::Relu
        ),
        Op::Binary(b) => !matches!(b, BinaryOp::Pow),
        Op::Where | Op::Cast => true,
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
    let ok: Vec<bool> = (0..g.values.len())
        .map(|i| fusable(g, i, backend))
        .collect();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); g.values.len()];
    for (i, v) in g.values.iter().enumerate() {
        if let Kind::Node { inputs, .. } = &v.kind {
            for &j in inputs {
                if !users[j].contains(&i) {
                    users[j].push(i);
                }
            }
        }
    }
    // Recomputable: cheap, fusable, not an output, read only by a few
    // fusable nodes of its own shape (each of which will take it in).
    let shared: Vec<bool> = (0..g.values.len())
        .map(|j| {
            let cheap_op = matches!(&g.values[j].kind, Kind::Node { op, .. } if cheap(op));
            ok[j]
                && cheap_op
                && !is_output[j]
                && uses[j] > 1
                && uses[j] <= MAX_RECOMPUTE_USERS
                && users[j]
                    .iter()
                    .all(|&u| ok[u] && g.values[u].shape == g.values[j].shape)
        })
        .collect();
    let mut group_of = vec![usize::MAX; g.values.len()];
    // The group a value was last taken into (shared values join several).
    let mut joined = vec![usize::MAX; g.values.len()];
    let before = g.num_nodes();
    let mut groups = Vec::new();
    for root in (0..g.values.len()).rev() {
        if group_of[root] != usize::MAX || !ok[root] || joined[root] != usize::MAX {
            continue;
        }
        group_of[root] = root;
        joined[root] = root;
        // (member, reached through a recomputed value)
        let mut members = vec![(root, false)];
        // Values read by several members, taken in once every reader is one.
        let mut pending: Vec<usize> = Vec::new();
        let mut k = 0;
        loop {
            while k < members.len() {
                let (m, via_shared) = members[k];
                k += 1;
                let Kind::Node { inputs, .. } = &g.values[m].kind else {
                    continue;
                };
                for &j in inputs {
                    if joined[j] == root
                        || !ok[j]
                        || is_output[j]
                        || g.values[j].shape != g.values[root].shape
                    {
                        continue;
                    }
                    let own = uses[j] == 1 && group_of[j] == usize::MAX;
                    let cheap_j = matches!(&g.values[j].kind, Kind::Node { op, .. } if cheap(op));
                    let copy = members.len() < MAX_GROUP
                        && (shared[j] || (via_shared && uses[j] == 1 && cheap_j));
                    if copy {
                        // Computed again here; the original stays for any other
                        // reader and is dropped as dead code if none is left.
                        joined[j] = root;
                        members.push((j, true));
                    } else if own && !via_shared {
                        group_of[j] = root;
                        joined[j] = root;
                        members.push((j, false));
                    } else if !via_shared && group_of[j] == usize::MAX && !pending.contains(&j) {
                        pending.push(j);
                    }
                }
            }
            // A value whose readers all ended up in this group (e.g. the
            // sigmoid a SiLU gradient reads three times) is computed once in
            // a register instead of written out and read back.
            let before = members.len();
            pending.retain(|&j| {
                let inside =
                    group_of[j] == usize::MAX && users[j].iter().all(|&u| group_of[u] == root);
                if inside {
                    group_of[j] = root;
                    joined[j] = root;
                    members.push((j, false));
                }
                !inside
            });
            if members.len() == before {
                break;
            }
        }
        let mut owned: Vec<usize> = members.iter().filter(|m| !m.1).map(|m| m.0).collect();
        let mut members: Vec<usize> = members.into_iter().map(|(m, _)| m).collect();
        members.sort_unstable();
        owned.sort_unstable();
        groups.push(Group {
            members,
            owned,
            outputs: vec![root],
        });
    }
    // Groups (lone nodes included) that share inputs or feed each other may
    // become one program with several outputs.
    let groups = super::multi_output::merge(g, groups, backend.max_fused_outputs());
    let built: Vec<(Group, FusedProgram, Vec<usize>)> = groups
        .into_iter()
        .filter(|grp| grp.members.len() > 1 || grp.outputs.len() > 1)
        .map(|grp| {
            let (prog, ext) = build_program(g, &grp.members, &grp.outputs);
            (grp, prog, ext)
        })
        .collect();
    let mut reordered = false;
    for (grp, prog, ext) in built {
        let (&main, extra) = grp.outputs.split_last().expect("a group has an output");
        g.values[main].kind = Kind::Node {
            op: Op::Fused(Arc::new(prog)),
            inputs: ext,
        };
        for (index, &o) in extra.iter().enumerate() {
            g.values[o].kind = Kind::Node {
                op: Op::FusedOutput { index },
                inputs: vec![main],
            };
            reordered = true;
        }
    }
    if reordered {
        // Readers of an extra output now follow the program's node.
        g.sort_topologically();
    }
    super::passes::dead_code(g);
    before.saturating_sub(g.num_nodes())
}

/// The value a group reads for external input `j`: a materialised
/// `broadcast_to` is read through its source (the program broadcasts it).
fn through_broadcast(g: &Graph, j: usize) -> usize {
    match &g.values[j].kind {
        Kind::Node {
            op: Op::Broadcast,
            inputs,
        } => inputs[0],
        _ => j,
    }
}

/// Builds the register program for `members` (sorted topologically) writing
/// `outputs` (members, sorted; the last is the last member and the main
/// output, the others extra outputs) and returns it with its external inputs.
pub(super) fn build_program(
    g: &Graph,
    members: &[usize],
    outputs: &[usize],
) -> (FusedProgram, Vec<usize>) {
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
                    let j = through_broadcast(g, *j);
                    let n = ext.len();
                    Operand::Input(*ext_pos.entry(j).or_insert_with(|| {
                        ext.push(j);
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
    let extra_outputs = outputs[..outputs.len().saturating_sub(1)]
        .iter()
        .map(|o| {
            let p = in_group[o];
            ExtraOutput {
                reg: reg_of[p],
                after: p,
                dtype: g.values[*o].dtype,
            }
        })
        .collect();
    (
        FusedProgram {
            inputs,
            instrs,
            num_regs,
            output,
            constants,
            extra_outputs,
        },
        ext,
    )
}
