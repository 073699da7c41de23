//! Recognises a composed rotary embedding and its gradient in a traced
//! training step and runs them as the fused RoPE kernel.
//!
//! The forward `x·cos + rotate_half(x)·sin` — `rotate_half(x)` being
//! `concat(−x[…, D/2:], x[…, :D/2])` and `cos`/`sin` constant `(T, D)`
//! tables of positions `0..T`, as the model layers' composed form builds
//! them — becomes one [`FastOp::Rope`] node, and its vector-Jacobian
//! product (the nodes the gradient rules emit: `dy·cos`, `dy·sin` cut in
//! halves, the negation, the two pads and the sum of the three
//! contributions) becomes one RoPE of `dy` by the opposite angle
//! (`R(θ)ᵀ = R(−θ)`). The tables are checked against the kernel's own
//! angles `t·base^(−2i/D)` (the base fitted from them), so the rewrite only
//! ever replaces values by equal ones up to round-off.
//!
//! Forward and backward are matched separately: the layers share one pair
//! of tables between queries and keys (and across layers), and nothing in
//! the graph ties a cotangent to its forward — but each side is a complete
//! rotation on its own (`x ↦ R·x`, `dy ↦ Rᵀ·dy`), so each is verified and
//! replaced on its own. Tables are rewritten only where a backward reads
//! them (a training step; inference graphs keep their composed form).
//!
//! A match requires every piece: f32 tensors, split halves over the whole
//! last axis, tables matching a base, and the backward exactly as the rules
//! build it with the three contributions summed among themselves. Anything
//! else (interleaved pairs, partial rotation, scaled positions, explicit
//! frequencies) is left composed.

use super::graph::{Graph, Kind};
use super::passes::dead_code;
use super::pattern::{const_values, consumers, is_binary, node};
use crate::backend::Backend;
use crate::fast::{FastOp, PositionsKind};
use crate::ops::{BinaryOp, Op, UnaryOp};
use crate::DType;

/// A matched forward rotation.
struct Forward {
    x: usize,
    /// The output (the sum of the two products).
    out: usize,
    /// The cos and sin table constants.
    tables: (usize, usize),
    base: f32,
}

/// Largest difference allowed between a table entry and the kernel's
/// cosine or sine (the tables are f32-rounded f64 values).
const TABLE_TOL: f64 = 2e-6;

/// Rewrites every matched rotary embedding (module docs); returns how many
/// rotations (forward and backward) now run fused.
pub(crate) fn fuse_rotary_embeddings(g: &mut Graph, backend: &dyn Backend) -> usize {
    let consumers = consumers(g);
    let forwards: Vec<Forward> = (0..g.values.len())
        .filter_map(|c| match_forward(g, &consumers, c))
        .collect();
    // (dy, the sum of its three pieces, base, tables) for every backward
    // over a forward's tables.
    let mut backwards: Vec<(usize, usize, f32, (usize, usize))> = Vec::new();
    for f in &forwards {
        for &m in &consumers[f.tables.0] {
            if let Some((dy, dx)) = match_backward(g, &consumers, m, f.tables) {
                if !backwards.iter().any(|b| b.1 == dx) {
                    backwards.push((dy, dx, f.base, f.tables));
                }
            }
        }
    }
    let mut sites: Vec<(usize, usize, (f32, f32))> = forwards
        .iter()
        .filter(|f| backwards.iter().any(|b| b.3 == f.tables))
        .map(|f| (f.x, f.out, (f.base, 1.0)))
        .collect();
    sites.extend(backwards.iter().map(|b| (b.0, b.1, (b.2, -1.0))));
    let mut fused = 0;
    for (input, exit, angle) in sites {
        if rewrite(g, backend, input, exit, angle) {
            fused += 1;
        }
    }
    if fused > 0 {
        g.sort_topologically();
        dead_code(g);
    }
    fused
}

/// The half `[…, start..start + len)` of `x`'s last axis taken by a
/// consumer `Slice`, or the slice of `v` with those bounds.
fn half_slice(
    g: &Graph,
    consumers: &[Vec<usize>],
    v: usize,
    start: usize,
    len: usize,
) -> Option<usize> {
    let rank = g.values[v].shape.len();
    consumers[v].iter().copied().find(|&c| match node(g, c) {
        Some((Op::Slice { starts, steps }, _)) => {
            starts[..rank - 1].iter().all(|&s| s == 0)
                && starts[rank - 1] == start
                && steps.iter().all(|&s| s == 1)
                && g.values[c].shape[..rank - 1] == g.values[v].shape[..rank - 1]
                && g.values[c].shape[rank - 1] == len
        }
        _ => false,
    })
}

/// A constant `(…1, T, D)` table as `T·D` values.
fn table(g: &Graph, i: usize, t: usize, d: usize) -> Option<Vec<f64>> {
    let s = &g.values[i].shape;
    let r = s.len();
    if r < 2 || s[r - 2..] != [t, d] || s[..r - 2].iter().any(|&n| n != 1) {
        return None;
    }
    const_values(g, i)
}

/// The base whose angles `p·base^(−2i/d)` reproduce the tables (split
/// halves, positions `0..t`), if any.
fn fit_base(cos: &[f64], sin: &[f64], t: usize, d: usize) -> Option<f32> {
    let half = d / 2;
    let angle = |p: usize, i: usize| sin[p * d + i].atan2(cos[p * d + i]);
    let base = if half < 2 || t < 2 {
        10_000.0
    } else {
        // inv_1 from position 1, refined by the last position (unwrapped).
        let a1 = angle(1, 1);
        let last = t - 1;
        let k = ((last as f64 * a1 - angle(last, 1)) / std::f64::consts::TAU).round();
        let inv1 = (angle(last, 1) + k * std::f64::consts::TAU) / last as f64;
        if inv1 <= 0.0 {
            return None;
        }
        let b = inv1.powf(-(d as f64) / 2.0);
        // Bases are integers in practice; f32 rounding of a fitted one
        // would shift the far angles.
        if (b - b.round()).abs() < 1e-3 * b.max(1.0) {
            b.round()
        } else {
            b
        }
    };
    let base = base as f32;
    let inv: Vec<f64> = (0..half)
        .map(|i| (base as f64).powf(-((2 * i) as f64) / d as f64))
        .collect();
    let ok = (0..t).all(|p| {
        (0..d).all(|j| {
            let a = p as f64 * inv[j % half];
            (cos[p * d + j] - a.cos()).abs() <= TABLE_TOL
                && (sin[p * d + j] - a.sin()).abs() <= TABLE_TOL
        })
    });
    ok.then_some(base)
}

/// `(x, table)` of a product `x·table` or `table·x` where `table` is a
/// constant `(T, D)` table.
fn times_table(g: &Graph, i: usize, t: usize, d: usize) -> Option<(usize, usize, Vec<f64>)> {
    let (op, &[a, b]) = node(g, i)? else {
        return None;
    };
    if !is_binary(op, BinaryOp::Mul) {
        return None;
    }
    if let Some(v) = table(g, b, t, d) {
        return Some((a, b, v));
    }
    table(g, a, t, d).map(|v| (b, a, v))
}

/// Matches the forward rotation whose output is the sum `out` (module docs).
fn match_forward(g: &Graph, consumers: &[Vec<usize>], out: usize) -> Option<Forward> {
    let (op, &[s0, s1]) = node(g, out)? else {
        return None;
    };
    let shape = g.values[out].shape.clone();
    let r = shape.len();
    if !is_binary(op, BinaryOp::Add) || r < 2 || g.values[out].dtype != DType::F32 {
        return None;
    }
    let (t, d) = (shape[r - 2], shape[r - 1]);
    if d < 2 || d % 2 != 0 {
        return None;
    }
    let half = d / 2;
    // x·cos and rotate_half(x)·sin, in either order.
    let rotation = |rot: usize| -> Option<usize> {
        let (Op::Concat { axis }, &[neg, x1]) = node(g, rot)? else {
            return None;
        };
        let x2 = match node(g, neg)? {
            (Op::Unary(UnaryOp::Neg), &[x2]) => x2,
            _ => return None,
        };
        let (Op::Slice { .. }, &[x]) = node(g, x1)? else {
            return None;
        };
        let ok = *axis == r - 1
            && half_slice(g, consumers, x, 0, half) == Some(x1)
            && half_slice(g, consumers, x, half, half) == Some(x2);
        ok.then_some(x)
    };
    let (x, cos, sin, cos_c, sin_c) = [(s0, s1), (s1, s0)].into_iter().find_map(|(a, b)| {
        let (x, cos_c, cos) = times_table(g, a, t, d)?;
        let (rot, sin_c, sin) = times_table(g, b, t, d)?;
        (rotation(rot)? == x).then_some((x, cos, sin, cos_c, sin_c))
    })?;
    if g.values[x].shape != shape || g.values[x].dtype != DType::F32 {
        return None;
    }
    let base = fit_base(&cos, &sin, t, d)?;
    Some(Forward {
        x,
        out,
        tables: (cos_c, sin_c),
        base,
    })
}

/// Matches the backward whose first piece is the product `m = dy·cos` over
/// `tables` (module docs): returns `dy` and the sum of the three pieces.
fn match_backward(
    g: &Graph,
    consumers: &[Vec<usize>],
    m: usize,
    (cos_c, sin_c): (usize, usize),
) -> Option<(usize, usize)> {
    let (op, &[dy, c]) = node(g, m)? else {
        return None;
    };
    let shape = g.values[dy].shape.clone();
    let r = shape.len();
    if !is_binary(op, BinaryOp::Mul)
        || c != cos_c
        || g.values[dy].dtype != DType::F32
        || g.values[m].shape != shape
        || r < 2
    {
        return None;
    }
    // The kernel's positions are 0..T of dy's own sequence axis.
    let ts = &g.values[cos_c].shape;
    if ts.len() < 2 || ts[ts.len() - 2..] != shape[r - 2..] {
        return None;
    }
    let half = shape[r - 1] / 2;
    let grot = consumers[dy].iter().copied().find(|&p| {
        matches!(node(g, p), Some((op, &[a, b])) if is_binary(op, BinaryOp::Mul) && a == dy && b == sin_c)
    })?;
    let gn = half_slice(g, consumers, grot, 0, half)?;
    let gx1 = half_slice(g, consumers, grot, half, half)?;
    let gx2 = consumers[gn]
        .iter()
        .copied()
        .find(|&c| matches!(node(g, c), Some((Op::Unary(UnaryOp::Neg), _))))?;
    let padded = |v: usize, before: usize, after: usize| {
        consumers[v].iter().copied().find(|&c| match node(g, c) {
            Some((Op::Pad { pads, value }, _)) => {
                *value == 0.0
                    && pads[..r - 1].iter().all(|&p| p == (0, 0))
                    && pads[r - 1] == (before, after)
                    && g.values[c].shape == shape
            }
            _ => false,
        })
    };
    let c1 = padded(gx1, 0, half)?;
    let c2 = padded(gx2, half, 0)?;
    let dx = sum_of_exactly(g, consumers, &[m, c1, c2])?;
    Some((dy, dx))
}

/// The `Add` node summing exactly `parts` (each once, through sums that
/// nothing else reads), if there is one.
fn sum_of_exactly(g: &Graph, consumers: &[Vec<usize>], parts: &[usize]) -> Option<usize> {
    // Leaves of a sum tree made only of adds read once.
    fn leaves(
        g: &Graph,
        consumers: &[Vec<usize>],
        parts: &[usize],
        v: usize,
        out: &mut Vec<usize>,
    ) -> bool {
        if parts.contains(&v) {
            out.push(v);
            return consumers[v].len() == 1;
        }
        match node(g, v) {
            Some((op, &[a, b])) if is_binary(op, BinaryOp::Add) && consumers[v].len() == 1 => {
                leaves(g, consumers, parts, a, out) && leaves(g, consumers, parts, b, out)
            }
            _ => false,
        }
    }
    let mut v = *consumers[parts[0]].first()?;
    loop {
        let mut found = Vec::new();
        let (op, &[a, b]) = node(g, v)? else {
            return None;
        };
        if !is_binary(op, BinaryOp::Add) {
            return None;
        }
        let whole = leaves(g, consumers, parts, a, &mut found)
            && leaves(g, consumers, parts, b, &mut found);
        if whole {
            found.sort_unstable();
            let mut want = parts.to_vec();
            want.sort_unstable();
            return (found == want).then_some(v);
        }
        // Not all parts below yet: climb to the sum reading this one.
        let &[up] = consumers[v].as_slice() else {
            return None;
        };
        v = up;
    }
}

/// Turns value `exit` into the RoPE kernel over `input` (the angle's sign
/// `sign`, base `base`), if the backend runs it.
fn rewrite(
    g: &mut Graph,
    backend: &dyn Backend,
    input: usize,
    exit: usize,
    (base, sign): (f32, f32),
) -> bool {
    let shape = g.values[input].shape.clone();
    let d = *shape.last().unwrap_or(&0);
    let rope = FastOp::Rope {
        dims: d,
        traditional: false,
        base,
        scale: sign,
        positions: PositionsKind::Offset(0),
        has_freqs: false,
    };
    if backend
        .supports_fast(&rope, &[(shape.as_slice(), DType::F32)])
        .is_err()
    {
        return false;
    }
    g.values[exit].kind = Kind::Node {
        op: Op::Fast(rope),
        inputs: vec![input],
    };
    true
}
