//! Multi-output fusion groups: an elementwise group whose result another
//! group of its shape reads, and something else too, is merged into that
//! reader: one program computes both in a single pass and writes every
//! result some other node reads (SwiGLU's `silu(g)`, kept for the gradient,
//! and `silu(g)·u`; a residual add read by a norm's reduction and by the
//! next fused chain). The merged node's main output is its last result; the
//! others become [`crate::ops::Op::FusedOutput`] nodes filled by the same
//! run. Only for backends that run such programs
//! ([`crate::backend::Backend::max_fused_outputs`]).
//!
//! Two groups merge when they have the same shape, one reads the other's
//! result, the merge keeps the graph acyclic (no path from one group to the
//! other through a node outside both) and the merged program stays small.
//! Groups that only read a common input are not merged: measured (loaded
//! host) on SwiGLU's `dg` and `du`, one pass writing both ran 0.87–1.02×
//! the speed of the two passes, whose second reads the shared input from
//! cache.

use super::graph::{Graph, Kind};

/// Most instructions a merged program may have.
const MAX_MERGED: usize = 64;

/// A fusion group: the values its program computes and those it writes.
#[derive(Clone, Debug)]
pub(super) struct Group {
    /// Values computed, sorted (recomputed copies of shared values included).
    pub members: Vec<usize>,
    /// Values only this group produces ([`Group::members`] minus copies of
    /// values other nodes compute too), sorted.
    pub owned: Vec<usize>,
    /// Results read outside the group, sorted: the last is the node's main
    /// output (one, the group's root, until groups are merged).
    pub outputs: Vec<usize>,
}

impl Group {
    /// Values the group reads from outside (each once, in member order).
    fn external(&self, g: &Graph) -> Vec<usize> {
        let mut ext = Vec::new();
        for &m in &self.members {
            if let Kind::Node { inputs, .. } = &g.values[m].kind {
                for &j in inputs {
                    if self.members.binary_search(&j).is_err() && !ext.contains(&j) {
                        ext.push(j);
                    }
                }
            }
        }
        ext
    }
}

/// Sorted union of two sorted lists.
fn union(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut u: Vec<usize> = a.iter().chain(b).copied().collect();
    u.sort_unstable();
    u.dedup();
    u
}

/// Merges `groups` (each with its root as its one output) where one reads
/// another's result, up to `max_outputs` results per program; returns the merged
/// list with each group's outputs set to the results read outside it. A
/// group that merges with nothing comes back unchanged.
pub(super) fn merge(g: &Graph, groups: Vec<Group>, max_outputs: usize) -> Vec<Group> {
    if max_outputs < 2 || groups.len() < 2 {
        return groups;
    }
    let n = g.values.len();
    let mut owner = vec![usize::MAX; n];
    for (k, grp) in groups.iter().enumerate() {
        grp.owned.iter().for_each(|&m| owner[m] = k);
    }
    let mut groups: Vec<Option<Group>> = groups.into_iter().map(Some).collect();
    // The group each original one was merged into (a chain ending at itself).
    let mut rep: Vec<usize> = (0..groups.len()).collect();
    let find = |rep: &[usize], mut k: usize| {
        while rep[k] != k {
            k = rep[k];
        }
        k
    };
    for (a, b) in candidates(g, &groups, &owner) {
        let (a, b) = (find(&rep, a), find(&rep, b));
        if a == b {
            continue;
        }
        let (Some(ga), Some(gb)) = (groups[a].as_ref(), groups[b].as_ref()) else {
            continue;
        };
        let outputs = union(&ga.outputs, &gb.outputs);
        let members = union(&ga.members, &gb.members);
        if outputs.len() > max_outputs || members.len() > MAX_MERGED {
            continue;
        }
        let merged = Group {
            owned: union(&ga.owned, &gb.owned),
            members,
            outputs,
        };
        if reaches_itself(g, &merged, &groups, &owner, (a, b)) {
            continue;
        }
        merged.owned.iter().for_each(|&m| owner[m] = a);
        groups[a] = Some(merged);
        groups[b] = None;
        rep[b] = a;
    }
    let groups: Vec<Group> = groups.into_iter().flatten().collect();
    with_read_outputs(g, groups)
}

/// Pairs of groups `(a, b)` worth merging, in order: each group of a shape
/// with a group of that shape reading its result.
fn candidates(g: &Graph, groups: &[Option<Group>], owner: &[usize]) -> Vec<(usize, usize)> {
    let shape = |k: usize| -> &[usize] {
        let grp = groups[k].as_ref().expect("all groups present");
        &g.values[grp.outputs[0]].shape
    };
    let mut pairs = Vec::new();
    for (b, grp) in groups.iter().enumerate() {
        let grp = grp.as_ref().expect("all groups present");
        for j in grp.external(g) {
            let a = owner[j];
            if a != usize::MAX && a != b && shape(a) == shape(b) {
                pairs.push((a.min(b), a.max(b)));
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// Whether a value `merged` reads from outside depends on a value it
/// produces (through nodes and groups outside it): merging `pair` would
/// make a cycle. Another group counts as one node reading all its inputs.
fn reaches_itself(
    g: &Graph,
    merged: &Group,
    groups: &[Option<Group>],
    owner: &[usize],
    pair: (usize, usize),
) -> bool {
    let inside = |k: usize| k == pair.0 || k == pair.1;
    let mut seen = vec![false; g.values.len()];
    let mut seen_group = vec![false; groups.len()];
    let mut stack = merged.external(g);
    while let Some(v) = stack.pop() {
        if std::mem::replace(&mut seen[v], true) {
            continue;
        }
        match owner[v] {
            k if k != usize::MAX && inside(k) => return true,
            k if k != usize::MAX => {
                if !std::mem::replace(&mut seen_group[k], true) {
                    if let Some(other) = &groups[k] {
                        stack.extend(other.external(g));
                    }
                }
            }
            _ => {
                if let Kind::Node { inputs, .. } = &g.values[v].kind {
                    stack.extend(inputs.iter().copied());
                }
            }
        }
    }
    false
}

/// Sets each merged group's outputs to the results something outside it
/// reads (a graph output, a node outside every group, another group), and
/// drops members no output needs. A value is read when something that
/// is itself needed reads it, starting from the graph's outputs.
fn with_read_outputs(g: &Graph, mut groups: Vec<Group>) -> Vec<Group> {
    let mut owner = vec![usize::MAX; g.values.len()];
    for (k, grp) in groups.iter().enumerate() {
        grp.owned.iter().for_each(|&m| owner[m] = k);
    }
    let mut needed = vec![false; g.values.len()];
    let mut group_needed = vec![false; groups.len()];
    let mut stack: Vec<usize> = g.outputs.clone();
    while let Some(v) = stack.pop() {
        if std::mem::replace(&mut needed[v], true) {
            continue;
        }
        match owner[v] {
            k if k != usize::MAX => {
                if !std::mem::replace(&mut group_needed[k], true) {
                    stack.extend(groups[k].external(g));
                }
            }
            _ => {
                if let Kind::Node { inputs, .. } = &g.values[v].kind {
                    stack.extend(inputs.iter().copied());
                }
            }
        }
    }
    for grp in groups.iter_mut().filter(|grp| grp.outputs.len() > 1) {
        grp.outputs.retain(|&o| needed[o]);
        // Members the remaining outputs do not depend on are dropped.
        let mut keep = vec![false; grp.members.len()];
        let mut stack = grp.outputs.clone();
        while let Some(v) = stack.pop() {
            let Ok(p) = grp.members.binary_search(&v) else {
                continue;
            };
            if std::mem::replace(&mut keep[p], true) {
                continue;
            }
            if let Kind::Node { inputs, .. } = &g.values[v].kind {
                stack.extend(inputs.iter().copied());
            }
        }
        let mut p = 0;
        grp.members.retain(|_| {
            p += 1;
            keep[p - 1]
        });
        let members = &grp.members;
        grp.owned.retain(|m| members.binary_search(m).is_ok());
    }
    groups.retain(|grp| !grp.outputs.is_empty());
    groups
}
