//! Folds the head transposes around a fused RoPE into the kernel.
//!
//! Attention layers project to `(B, T, H·D)`, view that as `(B, T, H, D)`
//! and permute it `(0, 2, 1, 3)` to heads before rotating queries and keys;
//! their gradients rotate back and permute to `(B, T, H, D)` again. The
//! RoPE kernel reads and writes through per-axis strides, so a
//! [`FastOp::RopeHeads`] does the permute and the rotation in one pass,
//! saving a copy of the tensor each way (a permute moves as many bytes as
//! the rotation it feeds; the byte LM step's permutes and rotations took
//! 0.56 ms, now 0.32).
//!
//! Only the plain rotation the training rewrite produces is folded: split
//! halves over every feature, positions `0..T`, no explicit frequencies,
//! f32, rank 4. The permute before a rotation may have other readers (they
//! keep it); a permute after one is folded only when it is the rotation's
//! sole reader and the rotation is not an output.

use super::graph::{Graph, Kind};
use super::passes::dead_code;
use super::pattern::{consumers, head_swap_source, is_head_swap, node};
use crate::backend::Backend;
use crate::fast::{FastOp, PositionsKind};
use crate::ops::Op;
use crate::DType;

/// Rewrites every foldable RoPE (module docs); returns how many permutes
/// were folded.
pub(crate) fn fold_head_permutes(g: &mut Graph, backend: &dyn Backend) -> usize {
    let users = consumers(g);
    let mut folded = 0;
    for (r, readers) in users.iter().enumerate() {
        let Some((base, scale, x)) = plain_rope(g, r) else {
            continue;
        };
        // (node to rewrite, its new input, direction)
        let site = if let Some(src) = swapped_input(g, x) {
            Some((r, src, true))
        } else {
            match readers.as_slice() {
                &[p] if is_head_swap(g, p) && !g.outputs.contains(&r) => Some((p, x, false)),
                _ => None,
            }
        };
        let Some((at, input, to_heads)) = site else {
            continue;
        };
        let op = FastOp::RopeHeads {
            base,
            scale,
            to_heads,
        };
        let shape = g.values[input].shape.clone();
        if backend
            .supports_fast(&op, &[(shape.as_slice(), DType::F32)])
            .is_err()
        {
            continue;
        }
        g.values[at].kind = Kind::Node {
            op: Op::Fast(op),
            inputs: vec![input],
        };
        folded += 1;
    }
    if folded > 0 {
        dead_code(g);
    }
    folded
}

/// `(base, scale, input)` of a RoPE node the kernel can fold a permute
/// into.
fn plain_rope(g: &Graph, r: usize) -> Option<(f32, f32, usize)> {
    let (
        Op::Fast(FastOp::Rope {
            dims,
            traditional: false,
            base,
            scale,
            positions: PositionsKind::Offset(0),
            has_freqs: false,
        }),
        &[x],
    ) = node(g, r)?
    else {
        return None;
    };
    let v = &g.values[r];
    (v.shape.len() == 4 && v.dtype == DType::F32 && v.shape.last() == Some(dims))
        .then_some((*base, *scale, x))
}

/// The input of `x` when `x` is the `(0, 2, 1, 3)` permute of an f32 value.
fn swapped_input(g: &Graph, x: usize) -> Option<usize> {
    head_swap_source(g, x).filter(|&src| g.values[src].dtype == DType::F32)
}
