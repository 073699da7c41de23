//! Applying an attention mask to one score tile of a block. Entry `(r, jj)` —
//! query row `r` of the block, key `j0 + jj` — lives at `st[r * rs + jj * ks]`
//! (the transposed lanes layout has `rs = 1`, the row layout `ks = 1`). Scores
//! are in the base-2 domain, so additive biases are scaled by `log2(e)`;
//! masked-out entries become `-inf`.

use super::softmax::LOG2E;

/// Where a tile's entries live: row stride and key stride.
#[derive(Clone, Copy)]
pub(super) struct TileStrides {
    pub rs: usize,
    pub ks: usize,
}

/// Adds `data[base[r] + (j0 + jj) * k_stride] * log2(e)` to entry `(r, jj)`.
#[inline(always)]
pub(super) fn add_bias(
    st: &mut [f32],
    t: TileStrides,
    keys: usize,
    j0: usize,
    data: &[f32],
    base: &[usize],
    k_stride: usize,
) {
    for (r, &b) in base.iter().enumerate() {
        let start = b + j0 * k_stride;
        if k_stride == 1 {
            for (jj, &bias) in data[start..start + keys].iter().enumerate() {
                st[r * t.rs + jj * t.ks] += bias * LOG2E;
            }
        } else {
            for jj in 0..keys {
                st[r * t.rs + jj * t.ks] += data[start + jj * k_stride] * LOG2E;
            }
        }
    }
}

/// Sets entry `(r, jj)` to `-inf` where the keep-mask byte
/// `data[base[r] + (j0 + jj) * k_stride]` is 0.
#[inline(always)]
pub(super) fn keep_only(
    st: &mut [f32],
    t: TileStrides,
    keys: usize,
    j0: usize,
    data: &[u8],
    base: &[usize],
    k_stride: usize,
) {
    for (r, &b) in base.iter().enumerate() {
        let start = b + j0 * k_stride;
        for jj in 0..keys {
            if data[start + jj * k_stride] == 0 {
                st[r * t.rs + jj * t.ks] = f32::NEG_INFINITY;
            }
        }
    }
}

/// Sets entry `(r, jj)` to `-inf` where key `j0 + jj` lies after
/// `last_visible[r]`, the last key row `r` may attend to (negative: none).
#[inline(always)]
pub(super) fn causal(
    st: &mut [f32],
    t: TileStrides,
    keys: usize,
    j0: usize,
    last_visible: &[isize],
) {
    for (r, &last) in last_visible.iter().enumerate() {
        // First masked key index within the tile.
        let first_masked = (last + 1 - j0 as isize).clamp(0, keys as isize) as usize;
        for jj in first_masked..keys {
            st[r * t.rs + jj * t.ks] = f32::NEG_INFINITY;
        }
    }
}

/// Sets entry `(r, jj)` to `-inf` where key `j0 + jj` lies before the
/// `window` keys ending at `last_visible[r]` (sliding-window attention).
#[inline(always)]
pub(super) fn window(
    st: &mut [f32],
    t: TileStrides,
    keys: usize,
    j0: usize,
    last_visible: &[isize],
    window: usize,
) {
    let window = window.min(isize::MAX as usize / 4) as isize;
    for (r, &last) in last_visible.iter().enumerate() {
        // Keys before `last + 1 - window` are outside the window.
        let first_kept = (last + 1 - window - j0 as isize).clamp(0, keys as isize) as usize;
        for jj in 0..first_kept {
            st[r * t.rs + jj * t.ks] = f32::NEG_INFINITY;
        }
    }
}
