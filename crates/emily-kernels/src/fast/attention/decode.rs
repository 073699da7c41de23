//! The rows layout for blocks of a few query rows (a decoding step: `q_len` 1
//! with all the query heads that share a kv head, or the rows of a beam
//! search over one window's keys): features on the lanes, so a single query
//! keeps every lane busy. Keys and values are read in place — `f16`/`bf16`
//! widened in registers, never copied to scratch — and each key once per
//! group of up to [`GROUP`] rows. The bookkeeping (queries, sinks, masks,
//! output) is shared with the lanes layout in [`super::block`]; the kernels
//! are one [`RowKernels`] set per instruction set (`microkernel::avx512_rows`,
//! `microkernel::avx2_rows`).

use half::{bf16, f16};

use super::block::{apply_mask, init_rows, inverse_denominators, write_out, Ctx, Scratch};
use super::io::Src;
use super::mask::TileStrides;
use super::microkernel::rows::{KvElem, RowKernels};
use super::plan::Block;
use super::SdpaParams;
use crate::prefetch::{last_level_cache_bytes, Hint};

/// Blocks of at most this many rows take the rows layout (AVX-512 or AVX2).
pub(super) const MAX_ROWS: usize = 8;

/// Row-group height of the kernels.
const GROUP: usize = 4;

/// The flash loop of one block in the rows layout on the kernels `RK`, on
/// the element types of the call's keys and values.
///
/// # Safety
/// A CPU with `RK`'s features; `ctx` must describe buffers that passed
/// `SdpaParams::validate`, and no other worker may write this block's rows.
pub(super) unsafe fn process_rows<RK: RowKernels>(ctx: &Ctx<'_, '_>, blk: &Block, s: &mut Scratch) {
    /// `process_typed` on the pointers of `ctx.k` and `ctx.v`, whatever
    /// their types.
    macro_rules! dispatch {
        ($($k:ident => $kt:ty),*) => {
            match ctx.k {
                $(Src::$k(k) => match ctx.v {
                    Src::F32(v) => process_typed::<RK, $kt, f32>(ctx, blk, s, k.as_ptr(), v.as_ptr()),
                    Src::F16(v) => process_typed::<RK, $kt, f16>(ctx, blk, s, k.as_ptr(), v.as_ptr()),
                    Src::Bf16(v) => process_typed::<RK, $kt, bf16>(ctx, blk, s, k.as_ptr(), v.as_ptr()),
                },)*
            }
        };
    }
    dispatch!(F32 => f32, F16 => f16, Bf16 => bf16)
}

/// [`process_rows`] with keys of type `K` at `k` and values of type `V` at
/// `v` (the starts of the call's buffers).
///
/// # Safety
/// As [`process_rows`]; `k` and `v` are the call's key and value buffers.
unsafe fn process_typed<RK: RowKernels, K: KvElem, V: KvElem>(
    ctx: &Ctx<'_, '_>,
    blk: &Block,
    s: &mut Scratch,
    k: *const K,
    v: *const V,
) {
    let (p, plan) = (ctx.p, ctx.plan);
    let (d, dv, kv_len) = (p.head_dim, p.v_head_dim, p.kv_len);
    let (ks, vs) = (p.k_strides, p.v_strides);
    let rows = blk.rows();
    let tile = plan.key_tile;
    let hint = kv_hint::<K, V>(p);
    let (first_limit, last_limit) = init_rows(ctx, blk, s, rows, rows, rows * tile);

    let mut j0 = plan.first_key(first_limit);
    while j0 < kv_len && j0 as isize <= last_limit {
        let keys = tile
            .min(kv_len - j0)
            .min((last_limit + 1 - j0 as isize) as usize); // causal frontier of the block
                                                           // SAFETY (both): validated strides address keys j0..j0 + keys.
        let k_ptr = k.add(ks.offset(blk.b, blk.hk, j0));
        let v_ptr = v.add(vs.offset(blk.b, blk.hk, j0));
        let (ldk, ldv) = (ks.seq, vs.seq);
        let st = s.st.as_mut_ptr();
        for r0 in (0..rows).step_by(GROUP) {
            let n = GROUP.min(rows - r0);
            let (q, out) = (s.qrows.as_ptr().add(r0 * d), st.add(r0 * keys));
            RK::scores(q, d, n, k_ptr, ldk, keys, d, out, keys, hint);
        }
        let t = TileStrides { rs: keys, ks: 1 };
        let tile_scores = &mut s.st[..rows * keys];
        apply_mask(
            p,
            tile_scores,
            t,
            keys,
            j0,
            &s.mask_base,
            &s.last_visible,
            first_limit,
        );
        for r in 0..rows {
            let (m, l, a) = (s.m.as_mut_ptr(), s.l.as_mut_ptr(), s.alpha.as_mut_ptr());
            RK::softmax_row(
                s.st.as_mut_ptr().add(r * keys),
                keys,
                m.add(r),
                l.add(r),
                a.add(r),
            );
        }
        for r0 in (0..rows).step_by(GROUP) {
            let n = GROUP.min(rows - r0);
            let pr = s.st.as_ptr().add(r0 * keys);
            let (a, o) = (s.alpha.as_ptr().add(r0), s.ot.as_mut_ptr().add(r0 * dv));
            RK::values(pr, keys, n, keys, v_ptr, ldv, dv, a, o, dv, hint);
        }
        j0 += keys;
    }
    // out = O / l.
    inverse_denominators(s, rows);
    s.orows.clear();
    let (ot, inv) = (&s.ot, &s.inv);
    s.orows
        .extend((0..rows * dv).map(|n| ot[n] * inv[n / dv.max(1)]));
    write_out(ctx, blk, s);
}

/// How a call asks for its keys and values ahead of reading them: kept in
/// cache when they are small enough to be there again at the next step,
/// streamed (non-temporal) when one call's keys and values pass a quarter of
/// the last-level cache — a decoder has several such layers, so they would
/// only evict each other and the step's other data. Measured on Zen 2 (16
/// MiB L3), Whisper decoder steps, keep → stream: base's f32 cross
/// keys/values (6.1 MB per layer) 1 thread 9.36 → 7.73 ms, 2 threads 4.95 →
/// 4.30 ms; tiny.en's f32 ones (4.6 MB) 1 thread 4.29 → 4.11 ms, 2 threads
/// 2.15 → 2.34 ms (streamed: the 1-thread JFK is the tighter target); the
/// f16 ones (2.3 / 3.1 MB) kept, 2–6 % slower streamed.
fn kv_hint<K, V>(p: &SdpaParams<'_>) -> Hint {
    let per_position =
        p.head_dim * std::mem::size_of::<K>() + p.v_head_dim * std::mem::size_of::<V>();
    let bytes = p
        .batch
        .saturating_mul(p.kv_heads)
        .saturating_mul(p.kv_len)
        .saturating_mul(per_position);
    if bytes > last_level_cache_bytes() / 4 {
        Hint::Stream
    } else {
        Hint::Keep
    }
}
