//! Folds the head transposes around a fused attention into the kernel.
//!
//! Attention layers project to `(B, T, H·D)`, view that as `(B, T, H, D)`
//! and permute it `(0, 2, 1, 3)` to heads before attending; the output is
//! permuted back to `(B, T, H, D)` for the output projection. The attention
//! kernel reads and writes through per-axis strides, so a
//! [`FastOp::SdpaSeqMajor`] reads the projections and writes the merged
//! layout directly, saving a copy of each operand (Whisper tiny.en's
//! encoder: 16 permutes, ~3 % of it).
//!
//! An input permute may have other readers (they keep it); the output
//! permute is folded only when it is the attention's sole reader and the
//! attention is not an output.

use super::graph::{Graph, Kind};
use super::passes::dead_code;
use super::pattern::{consumers, head_swap_source, is_head_swap, node};
use crate::backend::Backend;
use crate::fast::{FastOp, SeqMajor};
use crate::ops::Op;
use crate::DType;

/// Rewrites every attention with a foldable head permute (module docs);
/// returns how many attentions were rewritten.
pub(crate) fn fold_attention_permutes(g: &mut Graph, backend: &dyn Backend) -> usize {
    let users = consumers(g);
    let mut folded = 0;
    for (a, readers) in users.iter().enumerate() {
        let Some((
            Op::Fast(FastOp::Sdpa {
                scale,
                mask,
                has_sinks,
                int8_products,
            }),
            inputs,
        )) = node(g, a)
        else {
            continue;
        };
        let mut inputs = inputs.to_vec();
        let mut flags = [false; 3];
        for (input, flag) in inputs.iter_mut().zip(&mut flags) {
            if let Some(src) = head_swap_source(g, *input) {
                (*input, *flag) = (src, true);
            }
        }
        let [q, k, v] = flags;
        // The node to rewrite: the output permute when it folds.
        let (at, out) = match readers.as_slice() {
            &[p] if is_head_swap(g, p) && !g.outputs.contains(&a) => (p, true),
            _ => (a, false),
        };
        if !(q || k || v || out) {
            continue;
        }
        let op = FastOp::SdpaSeqMajor {
            scale: *scale,
            mask: *mask,
            has_sinks: *has_sinks,
            int8_products: *int8_products,
            seq_major: SeqMajor { q, k, v, out },
        };
        let shapes: Vec<_> = inputs
            .iter()
            .map(|&i| (g.values[i].shape.as_slice(), g.values[i].dtype))
            .collect();
        if backend.supports_fast(&op, &shapes).is_err() {
            continue;
        }
        g.values[at].kind = Kind::Node {
            op: Op::Fast(op),
            inputs,
        };
        folded += 1;
    }
    if folded > 0 {
        folded += fold_widening_casts(g);
        dead_code(g);
    }
    folded
}

/// Writes a bf16 [`FastOp::SdpaSeqMajor`] whose output is only widened to
/// f32 (directly or after a reshape: the merged heads) as f32 itself: the
/// kernel stores each bf16 result widened, the same bits the cast gives,
/// without a pass over the output of its own. Returns how many were folded.
fn fold_widening_casts(g: &mut Graph) -> usize {
    let users = consumers(g);
    let sole_reader = |i: usize| match users[i].as_slice() {
        &[r] if !g.outputs.contains(&i) => Some(r),
        _ => None,
    };
    let is_widening =
        |c: usize| matches!(node(g, c), Some((Op::Cast, _))) && g.values[c].dtype == DType::F32;
    let mut sites = Vec::new();
    for (a, v) in g.values.iter().enumerate() {
        let Kind::Node {
            op: Op::Fast(FastOp::SdpaSeqMajor { .. }),
            ..
        } = &v.kind
        else {
            continue;
        };
        if v.dtype != DType::BF16 {
            continue;
        }
        let Some(r) = sole_reader(a) else { continue };
        if is_widening(r) {
            sites.push((a, r));
        } else if matches!(node(g, r), Some((Op::Reshape, _))) {
            if let Some(c) = sole_reader(r).filter(|&c| is_widening(c)) {
                sites.push((a, c));
            }
        }
    }
    for &(a, cast) in &sites {
        g.values[a].dtype = DType::F32;
        // The cast becomes a reshape of the attention (to its own shape when
        // no reshape was between); a reshape it read has no reader left.
        g.values[cast].kind = Kind::Node {
            op: Op::Reshape,
            inputs: vec![a],
        };
    }
    sites.len()
}
