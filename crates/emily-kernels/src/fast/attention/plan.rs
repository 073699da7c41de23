//! How an attention call is cut into independent work units.
//!
//! A unit is one block of query rows of one (batch, kv head) group. Rows are
//! `(g, t)` pairs — query head `g` of the group, position `t` — so for short
//! queries (decoding: `q_len = 1`) all the query heads that share a kv head form
//! one block and K/V are read once for all of them; for long queries a block is
//! a run of up to [`BLOCK_ROWS`] positions of one head. Keys are walked in tiles
//! of [`KEY_TILE`], or in one tile when the whole key range is short enough
//! that its score block stays in cache (the two-pass "naive" shape).

use super::{Mask, SdpaParams};
use crate::simd::{isa, Isa};

/// Most query rows per block (the lanes of the micro-kernels times a few).
pub(crate) const BLOCK_ROWS: usize = 64;
/// Query rows per block of a causal call on AVX2 and the portable kernels
/// (one register tile's lanes there): a block computes every key up to its
/// last row's limit, so smaller blocks skip more of the masked triangle —
/// at 64 positions, 62.5 % of the 64-row blocks' scores. (AVX-512 keeps
/// [`BLOCK_ROWS`]: its 16-row tiles are its half-width kernels.)
const CAUSAL_BLOCK_ROWS: usize = 16;
/// Keys per tile of the online softmax.
const KEY_TILE: usize = 256;
/// Key ranges up to this length are done in one tile.
const SINGLE_TILE_MAX: usize = 512;
/// Query rows and keys per block when both products run on the AMX int8
/// tiles ([`on_int8_tiles`]): a 32-lane block's score tile (64 KiB) stays
/// in L1 longer, and a longer key tile halves the per-tile work (the
/// value rescale, the tile configuration). At Whisper tiny.en's encoder
/// shape, one thread: 7.41 → 6.38 ms a call (64 rows × 256 keys: 7.41,
/// 32 × 256: 6.76, 32 × 128: 8.0, 32 × 1024: 7.0, 32 × 1536: 6.7).
const INT8_TILE_BLOCK_ROWS: usize = 32;
const INT8_TILE_KEY_TILE: usize = 512;

/// Whether a call with these parameters runs both products on the AMX int8
/// tiles (when its tensors are bf16: [`super::sdpa_bf16`] is the entry point
/// that honours the int8 flags).
fn on_int8_tiles(p: &SdpaParams<'_>) -> bool {
    p.int8_scores
        && p.int8_values
        && super::int8_scores::available()
        && !matches!(
            p.mask,
            Mask::CausalBand {
                window: Some(_),
                ..
            }
        )
        && super::tile_products::scores_on_tiles(p.head_dim.next_multiple_of(4))
        && super::tile_products::values_on_tiles()
}

/// The decomposition of one call.
pub(super) struct Plan {
    /// Query heads per kv head.
    pub group: usize,
    /// Query heads per block (> 1 only when `q_len` is short).
    heads_per_block: usize,
    /// Position blocks per query head (when `heads_per_block == 1`).
    pos_blocks: usize,
    /// Blocks per (batch, kv head) group.
    blocks_per_group: usize,
    /// Positions per block (when `heads_per_block == 1`).
    block_rows: usize,
    /// Keys per tile.
    pub key_tile: usize,
    /// Last key index visible to query position `t` is `t + causal_shift`.
    pub causal_shift: isize,
    /// Keys each query sees, ending at its last visible one (sliding window).
    pub window: Option<isize>,
    kv_heads: usize,
    batch: usize,
    q_len: usize,
    work_per_row: usize,
}

/// One unit: query heads `hk * group + g0 ..+ ng` at positions `t0 ..+ nt`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Block {
    pub b: usize,
    pub hk: usize,
    pub g0: usize,
    pub ng: usize,
    pub t0: usize,
    pub nt: usize,
}

impl Block {
    /// Query rows in the block.
    pub fn rows(&self) -> usize {
        self.ng * self.nt
    }

    /// `(head within group, position)` of row `r` (heads outer, positions inner).
    pub fn row(&self, r: usize) -> (usize, usize) {
        (self.g0 + r / self.nt, self.t0 + r % self.nt)
    }
}

impl Plan {
    pub fn new(p: &SdpaParams<'_>) -> Self {
        let group = p.q_heads / p.kv_heads;
        let heads_per_block = if p.q_len >= BLOCK_ROWS {
            1
        } else {
            (BLOCK_ROWS / p.q_len).clamp(1, group)
        };
        let tiles = on_int8_tiles(p);
        let block_rows = if matches!(p.mask, Mask::Causal) && isa() != Isa::Avx512 {
            CAUSAL_BLOCK_ROWS
        } else if tiles {
            INT8_TILE_BLOCK_ROWS
        } else {
            BLOCK_ROWS
        };
        let (pos_blocks, blocks_per_group) = if heads_per_block == 1 {
            let n = p.q_len.div_ceil(block_rows);
            (n, n * group)
        } else {
            (1, group.div_ceil(heads_per_block))
        };
        let key_tile = if p.kv_len <= SINGLE_TILE_MAX {
            p.kv_len.max(1)
        } else if tiles {
            INT8_TILE_KEY_TILE
        } else {
            KEY_TILE
        };
        Self {
            group,
            heads_per_block,
            pos_blocks,
            blocks_per_group,
            block_rows,
            key_tile,
            causal_shift: match p.mask {
                Mask::Causal => p.kv_len as isize - p.q_len as isize,
                Mask::CausalBand { shift, .. } => shift.clamp(-(isize::MAX / 4), isize::MAX / 4),
                _ => isize::MAX / 2,
            },
            window: match p.mask {
                Mask::CausalBand {
                    window: Some(w), ..
                } => Some(w.min(isize::MAX as usize / 4) as isize),
                _ => None,
            },
            kv_heads: p.kv_heads,
            batch: p.batch,
            q_len: p.q_len,
            work_per_row: p.kv_len * (p.head_dim + p.v_head_dim).max(1),
        }
    }

    /// The first key a block whose rows' smallest causal limit is
    /// `first_limit` can see (0 without a window).
    pub fn first_key(&self, first_limit: isize) -> usize {
        match self.window {
            Some(w) => (first_limit + 1 - w).max(0) as usize,
            None => 0,
        }
    }

    /// Number of units.
    pub fn units(&self) -> usize {
        self.batch * self.kv_heads * self.blocks_per_group
    }

    /// Rough multiply-adds of the largest unit (for the parallel threshold).
    pub fn work_per_unit(&self) -> usize {
        self.work_per_row * self.block_rows.min(self.q_len * self.heads_per_block)
    }

    /// The block of unit `u`.
    pub fn block(&self, u: usize) -> Block {
        let (bh, i) = (u / self.blocks_per_group, u % self.blocks_per_group);
        let (b, hk) = (bh / self.kv_heads, bh % self.kv_heads);
        if self.heads_per_block == 1 {
            let (g, tb) = (i / self.pos_blocks, i % self.pos_blocks);
            let t0 = tb * self.block_rows;
            Block {
                b,
                hk,
                g0: g,
                ng: 1,
                t0,
                nt: self.block_rows.min(self.q_len - t0),
            }
        } else {
            let g0 = i * self.heads_per_block;
            Block {
                b,
                hk,
                g0,
                ng: self.heads_per_block.min(self.group - g0),
                t0: 0,
                nt: self.q_len,
            }
        }
    }
}
