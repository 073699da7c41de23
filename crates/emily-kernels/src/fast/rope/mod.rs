//! Rotary position embeddings (RoPE) in one pass.
//!
//! For each position the `dims/2` rotation angles `pos * scale * inv_freq[i]` are
//! turned into `(cos, sin)` once (accurately, see [`sincos`]) and applied to every
//! head at that position. Positions are processed in chunks whose `(cos, sin)`
//! table holds at most [`TABLE_FLOATS`] values each (64 KiB, cache-resident)
//! while each head streams through a long contiguous run of rows — never a
//! full `(seq, dims)` temporary. Chunks are spread across the pool. When every
//! batch entry has the same positions (an offset, or `seq` position ids), the
//! work runs chunk-major, so each worker fills a chunk's table once and applies
//! it to every batch entry it is given instead of once per entry.

mod half;
mod rotate;
mod sincos;
#[cfg(test)]
mod tests;

pub use half::{rope_bf16, rope_f16};

use super::layout::{HeadStrides, SharedOut};
use crate::parallel;

/// Most entries of each of the `cos` and `sin` tables of one chunk.
const TABLE_FLOATS: usize = 16 * 1024;

/// Positions per chunk: as many as the table allows (long per-head runs keep
/// the hardware prefetchers streaming), but at least a few chunks per call so
/// the pool has work to share.
fn chunk_positions(seq: usize, half: usize) -> usize {
    (TABLE_FLOATS / half.max(1)).min(seq.div_ceil(4)).max(16)
}

/// Where the rotation angle of each `(batch, seq)` index comes from.
#[derive(Clone, Copy, Debug)]
pub enum Positions<'a> {
    /// Sequence index `t` is at position `offset + t` in every batch entry (a
    /// KV-cache offset while decoding).
    Offset(usize),
    /// Explicit `i32` position ids: `seq` of them (shared by every batch entry)
    /// or `batch * seq` (batch-major).
    PerToken(&'a [i32]),
    /// As [`Positions::PerToken`], with `i64` ids.
    PerTokenI64(&'a [i64]),
}

/// Shape and options of a [`rope_f32`] call.
#[derive(Clone, Copy, Debug)]
pub struct RopeParams<'a> {
    /// Batch entries.
    pub batch: usize,
    /// Heads per batch entry (all rotated alike).
    pub heads: usize,
    /// Sequence length.
    pub seq: usize,
    /// Features per head (the contiguous last axis).
    pub head_dim: usize,
    /// Leading features that rotate (even, `<= head_dim`); the rest are copied.
    pub dims: usize,
    /// `true`: rotate interleaved pairs `(2i, 2i+1)` (GPT-J, MLX `traditional`);
    /// `false`: rotate split halves `(i, i + dims/2)` (GPT-NeoX / Llama "rotate half").
    pub traditional: bool,
    /// Frequency base: `inv_freq[i] = base^(-2i/dims)`. Ignored when `freqs` is set.
    pub base: f32,
    /// Multiplier applied to every position before the angle is formed.
    pub scale: f32,
    /// The position of each `(batch, seq)` index.
    pub positions: Positions<'a>,
    /// Precomputed *inverse* frequencies (`dims/2` of them), replacing the `base`
    /// formula: `angle = pos * scale * freqs[i]` (Llama-3 / linear / dynamic
    /// scaling tables).
    pub freqs: Option<&'a [f32]>,
    /// Layout of the input.
    pub x_strides: HeadStrides,
    /// Layout of the output (its elements must not alias one another).
    pub out_strides: HeadStrides,
}

impl<'a> RopeParams<'a> {
    /// Defaults for a contiguous `(batch, heads, seq, head_dim)` tensor: every
    /// feature rotates, split halves, base 10000, scale 1, positions `0..seq`.
    pub fn new(batch: usize, heads: usize, seq: usize, head_dim: usize) -> Self {
        let strides = HeadStrides::bhsd(heads, seq, head_dim);
        Self {
            batch,
            heads,
            seq,
            head_dim,
            dims: head_dim,
            traditional: false,
            base: 10_000.0,
            scale: 1.0,
            positions: Positions::Offset(0),
            freqs: None,
            x_strides: strides,
            out_strides: strides,
        }
    }

    /// The position (already times `scale`) of sequence index `t` of batch entry `b`.
    fn position(&self, b: usize, t: usize) -> f64 {
        let pos = match self.positions {
            Positions::Offset(o) => o as f64 + t as f64,
            Positions::PerToken(p) => {
                p[if p.len() == self.seq {
                    t
                } else {
                    b * self.seq + t
                }] as f64
            }
            Positions::PerTokenI64(p) => {
                p[if p.len() == self.seq {
                    t
                } else {
                    b * self.seq + t
                }] as f64
            }
        };
        pos * self.scale as f64
    }

    /// Whether [`Self::position`] is the same for every batch entry (an
    /// offset, or `seq` position ids): one `(cos, sin)` table then serves all.
    fn positions_shared(&self) -> bool {
        match self.positions {
            Positions::Offset(_) => true,
            Positions::PerToken(p) => p.len() == self.seq || self.batch == 1,
            Positions::PerTokenI64(p) => p.len() == self.seq || self.batch == 1,
        }
    }

    fn validate(&self, x_len: usize, out_len: usize) {
        let p = self;
        assert!(
            p.dims.is_multiple_of(2) && p.dims <= p.head_dim,
            "[rope] dims {} must be even and at most head_dim {}",
            p.dims,
            p.head_dim
        );
        if let Some(f) = p.freqs {
            assert_eq!(
                f.len(),
                p.dims / 2,
                "[rope] freqs has {} elements, dims/2 is {}",
                f.len(),
                p.dims / 2
            );
        }
        let n_pos = match p.positions {
            Positions::Offset(_) => None,
            Positions::PerToken(v) => Some(v.len()),
            Positions::PerTokenI64(v) => Some(v.len()),
        };
        if let Some(n) = n_pos {
            assert!(
                n == p.seq || n == p.batch * p.seq,
                "[rope] {n} positions given, expected seq {} or batch*seq {}",
                p.seq,
                p.batch * p.seq
            );
        }
        let need = p
            .x_strides
            .required_len(p.batch, p.heads, p.seq, p.head_dim);
        assert!(
            x_len >= need,
            "[rope] x has {x_len} elements, its strides address {need}"
        );
        let need = p
            .out_strides
            .required_len(p.batch, p.heads, p.seq, p.head_dim);
        assert!(
            out_len >= need,
            "[rope] out has {out_len} elements, its strides address {need}"
        );
        assert!(
            p.out_strides
                .is_disjoint(p.batch, p.heads, p.seq, p.head_dim),
            "[rope] output strides {:?} make elements alias",
            p.out_strides
        );
    }
}

/// Applies rotary embeddings to `x` (`(batch, heads, seq, head_dim)` under
/// `params.x_strides`) and writes the result to `out` (under
/// `params.out_strides`). For pair `i < dims/2` with partner features
/// `(a, b)` = `(2i, 2i+1)` (traditional) or `(i, i + dims/2)` (split halves), and
/// `theta = pos * scale * inv_freq[i]`:
/// `a' = a cos(theta) - b sin(theta)`, `b' = b cos(theta) + a sin(theta)`.
/// Features `dims..head_dim` are copied unchanged.
///
/// # Panics
/// If `dims` is odd or larger than `head_dim`, `freqs` does not have `dims/2`
/// elements, the position ids are neither `seq` nor `batch * seq` long, a
/// buffer is shorter than its strides address, or the output strides alias.
pub fn rope_f32(x: &[f32], out: &mut [f32], params: &RopeParams<'_>) {
    params.validate(x.len(), out.len());
    let dst = SharedOut(out.as_mut_ptr());
    for_each_chunk(params, |b, t0, n, table| {
        // `validate` checked that the output strides stay in bounds and never
        // alias, and each (b, h, t) row belongs to exactly one chunk.
        rotate::rotate_chunk(x, dst, params, b, t0, n, table);
    });
}

/// Splits the `(batch, seq)` positions into chunks, fills each chunk's
/// `(cos, sin)` table and calls `apply(b, t0, n, table)` for positions
/// `t0..t0 + n` of batch entry `b`, in parallel on the pool.
///
/// With [positions shared](RopeParams::positions_shared) by every batch entry,
/// work units are ordered chunk-major (`chunk * batch + b`), so a worker's
/// contiguous range visits each chunk's batch entries back to back and fills
/// that chunk's table once for all of them (the same values the batch-major
/// order computes per entry: `position(b, t)` does not depend on `b`).
fn for_each_chunk(p: &RopeParams<'_>, apply: impl Fn(usize, usize, usize, &Table) + Sync) {
    if p.batch == 0 || p.heads == 0 || p.seq == 0 || p.head_dim == 0 {
        return;
    }
    let half = p.dims / 2;
    let inv = sincos::inv_freqs(p.dims, p.base, p.freqs);
    let chunk = chunk_positions(p.seq, half);
    let chunks_per_batch = p.seq.div_ceil(chunk);
    let cost = chunk * p.heads * p.head_dim;
    let shared = p.positions_shared();
    parallel::for_each_range(p.batch * chunks_per_batch, cost, |first, last| {
        let mut table = Table {
            cos: vec![0.0f32; chunk.min(p.seq) * half],
            sin: vec![0.0f32; chunk.min(p.seq) * half],
        };
        // The (batch entry, chunk) whose positions the table holds.
        let mut filled = None;
        for unit in first..last {
            let (b, c) = if shared {
                (unit % p.batch, unit / p.batch)
            } else {
                (unit / chunks_per_batch, unit % chunks_per_batch)
            };
            let t0 = c * chunk;
            let n = chunk.min(p.seq - t0);
            let key = (if shared { 0 } else { b }, c);
            if filled != Some(key) {
                for i in 0..n {
                    let pos = p.position(key.0, t0 + i);
                    let cos = &mut table.cos[i * half..][..half];
                    let sin = &mut table.sin[i * half..][..half];
                    sincos::fill_cos_sin(pos, &inv, cos, sin);
                }
                filled = Some(key);
            }
            apply(b, t0, n, &table);
        }
    });
}

/// The `(cos, sin)` table of a chunk, `dims/2` entries per position.
struct Table {
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Table {
    /// `(cos, sin)` of position `i` of the chunk.
    fn row(&self, i: usize, half: usize) -> (&[f32], &[f32]) {
        (&self.cos[i * half..][..half], &self.sin[i * half..][..half])
    }
}
