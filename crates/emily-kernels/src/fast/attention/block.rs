//! One work unit of attention: a block of query rows against all visible keys,
//! tile by tile with the online softmax.
//!
//! Two layouts share the bookkeeping here: the *lanes* layout of
//! [`super::microkernel`] (query rows on the SIMD lanes, used for blocks of many rows)
//! and the *rows* layout of [`super::decode`] (features on the lanes, for the
//! few rows of a decoding step). Per block: pack the queries once,
//! pre-multiplied by `scale * log2(e)`; then per key tile: scores, mask,
//! online softmax, accumulate values; finally `out = O / l`. Causal tiles past
//! every row's last visible key are never computed, and tiles entirely before
//! every row's limit are not masked.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::io::{Dst, Src};
use super::mask::{self, TileStrides};
#[cfg(target_arch = "x86_64")]
use super::microkernel::rows::{Avx2Rows, Avx512Rows};
#[cfg(target_arch = "x86_64")]
use super::microkernel::{Avx2, Avx512};
use super::microkernel::{MicroKernels, Portable};
use super::plan::{Block, Plan};
use super::softmax::{short_exp, LOG2E};
use super::{Mask, SdpaParams};
use crate::gemm::Floats;
use crate::simd::{isa, Isa};

/// Everything a unit reads, shared by all workers.
pub(super) struct Ctx<'p, 'a> {
    pub p: &'p SdpaParams<'a>,
    pub plan: &'p Plan,
    /// This call's identity ([`next_call`]): the per-worker caches of
    /// prepared keys and values ([`Scratch`]) are valid for it alone.
    pub call: u64,
    pub q: Src<'p>,
    pub k: Src<'p>,
    pub v: Src<'p>,
    pub out: Dst,
}

/// A fresh call identity for [`Ctx::call`].
pub(super) fn next_call() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

thread_local! {
    /// This thread's [`Scratch`], kept across units and calls: its buffers
    /// stay allocated, and the keys and values it prepared for a head serve
    /// every later block of that head in the same call that this thread
    /// runs, however the call's units are split among the workers.
    static SCRATCH: Cell<Option<Box<Scratch>>> = const { Cell::new(None) };
}

/// Runs `f` on this thread's [`Scratch`] (taken out while in use, so a
/// nested call on the same thread gets a fresh one).
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut scratch = SCRATCH.take().unwrap_or_default();
    let r = f(&mut scratch);
    SCRATCH.set(Some(scratch));
    r
}

/// Per-worker buffers, grown on demand and reused across units and calls.
#[derive(Default)]
pub(super) struct Scratch {
    /// The block's scaled queries, row-major (`rows x head_dim`).
    pub qrows: Vec<f32>,
    /// The same transposed for the lanes layout (`head_dim x lanes`).
    pub qt: Vec<f32>,
    /// Score / probability tile (on cache lines: its rows are whole vectors).
    pub st: Floats,
    /// Output accumulator (`v_head_dim x lanes` or `rows x v_head_dim`), as `st`.
    pub ot: Floats,
    /// Final output rows (`rows x v_head_dim`) and `1 / l` per row.
    pub orows: Vec<f32>,
    pub inv: Vec<f32>,
    /// Running maximum, running denominator, and per-tile rescale factor.
    pub m: Vec<f32>,
    pub l: Vec<f32>,
    pub alpha: Vec<f32>,
    /// Per lane: the maximum of the running maximum and an unmasked tile's
    /// scores ([`super::microkernel::MicroKernels::scores_max`]).
    pub tmax: Vec<f32>,
    /// `lanes` ones: the rescale factor of a tile's later runs of keys.
    pub ones: Vec<f32>,
    /// Per row: offset of its `(b, h, q, 0)` mask entry.
    pub mask_base: Vec<usize>,
    /// Per row: last visible key under the causal mask.
    pub last_visible: Vec<isize>,
    /// Widened f16/bf16 data: one query or output row, a K tile, a V tile.
    pub row: Vec<f32>,
    pub kbuf: Vec<f32>,
    pub vbuf: Vec<f32>,
    /// The bf16-product loop ([`super::bf16_products`]): Q^T, the
    /// probability tile and the value tile as bf16 pairs.
    pub qt2: Vec<u32>,
    pub pt2: Vec<u32>,
    pub vt2: Vec<u32>,
    /// The int8 scores of [`super::int8_scores`]: quantized keys and queries.
    #[cfg(target_arch = "x86_64")]
    pub i8: super::int8_scores::Int8Scratch,
    /// The int8 value product of [`super::int8_values`].
    #[cfg(target_arch = "x86_64")]
    pub v8: super::int8_values::Int8Values,
}

impl Scratch {
    /// Keys `j0..j0 + keys` of kv head `(b, hk)` as `f32` rows: `(K, ldk, V, ldv)`.
    pub fn kv_tile<'s>(
        &'s mut self,
        ctx: &'s Ctx<'_, '_>,
        b: usize,
        hk: usize,
        j0: usize,
        keys: usize,
    ) -> (&'s [f32], usize, &'s [f32], usize) {
        let p = ctx.p;
        let (ks, vs) = (p.k_strides, p.v_strides);
        let k_start = ks.offset(b, hk, j0);
        let (k, ldk) = ctx
            .k
            .rows_f32(k_start, ks.seq, keys, p.head_dim, &mut self.kbuf);
        let v_start = vs.offset(b, hk, j0);
        let (v, ldv) = ctx
            .v
            .rows_f32(v_start, vs.seq, keys, p.v_head_dim, &mut self.vbuf);
        (k, ldk, v, ldv)
    }
}

/// Runs unit `u` with the best kernels of this CPU: the rows layout for a
/// handful of rows (AVX-512 or AVX2), else the lanes layout with full- or half-width
/// tiles (bf16 products for bf16 tensors on AVX512-BF16).
pub(super) fn run(ctx: &Ctx<'_, '_>, u: usize, s: &mut Scratch) {
    let blk = ctx.plan.block(u);
    let rows = blk.rows();
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` reported AVX-512 on this CPU.
        Isa::Avx512 => unsafe { run_avx512(ctx, &blk, s, rows) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` reported AVX2 + FMA on this CPU.
        Isa::Avx2 => unsafe { run_avx2(ctx, &blk, s, rows) },
        // SAFETY: the portable kernels run anywhere.
        _ => unsafe { process::<Portable<2, 4>>(ctx, &blk, s) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")]
unsafe fn run_avx512(ctx: &Ctx<'_, '_>, blk: &Block, s: &mut Scratch, rows: usize) {
    if rows <= super::decode::MAX_ROWS {
        super::decode::process_rows::<Avx512Rows>(ctx, blk, s)
    } else if rows <= 16 {
        process::<Avx512<1, 8>>(ctx, blk, s)
    } else if let Some(qkv) = super::bf16_products::operands(ctx) {
        super::bf16_products::process(ctx, blk, s, qkv)
    } else {
        process::<Avx512<2, 8>>(ctx, blk, s)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run_avx2(ctx: &Ctx<'_, '_>, blk: &Block, s: &mut Scratch, rows: usize) {
    if rows <= super::decode::MAX_ROWS {
        super::decode::process_rows::<Avx2Rows>(ctx, blk, s)
    } else {
        process::<Avx2<2, 6>>(ctx, blk, s)
    }
}

/// Resets the scratch for a block of `blk.rows()` rows padded to `lanes`
/// (the output accumulator `dv` rows of stride `ld >= lanes`), with a score
/// tile of `tile_len` floats, packs the
/// scaled queries row-major into `s.qrows`, and fills the per-row statistics
/// (sinks), causal limits and mask offsets. Returns the smallest and largest
/// causal limit over the rows.
pub(super) fn init_rows(
    ctx: &Ctx<'_, '_>,
    blk: &Block,
    s: &mut Scratch,
    lanes: usize,
    ld: usize,
    tile_len: usize,
) -> (isize, isize) {
    let (p, plan) = (ctx.p, ctx.plan);
    let (d, dv) = (p.head_dim, p.v_head_dim);
    let head = |g: usize| blk.hk * plan.group + g;
    s.qrows.clear();
    s.ot.clear();
    s.ot.resize(dv * ld, 0.0);
    s.st.resize(tile_len, 0.0);
    s.m.clear();
    s.l.clear();
    s.alpha.clear();
    s.alpha.resize(lanes, 1.0);
    s.ones.clear();
    s.ones.resize(lanes, 1.0);
    s.mask_base.clear();
    s.last_visible.clear();
    let qscale = p.scale * LOG2E;
    // (mask row start, its last kept key): rows of one position share a
    // mask row when the mask broadcasts over heads.
    let mut kept: Option<(usize, isize)> = None;
    for r in 0..blk.rows() {
        let (g, t) = blk.row(r);
        let start = p.q_strides.offset(blk.b, head(g), t);
        let (src, _) = ctx.q.rows_f32(start, 0, 1, d, &mut s.row);
        s.qrows.extend(src.iter().map(|&x| x * qscale));
        let (m0, l0) = match p.sinks {
            Some(sinks) if sinks[head(g)] != f32::NEG_INFINITY => (sinks[head(g)] * LOG2E, 1.0),
            _ => (f32::NEG_INFINITY, 0.0),
        };
        s.m.push(m0);
        s.l.push(l0);
        let mut last_visible = t as isize + plan.causal_shift;
        if let Mask::Additive { strides, .. } | Mask::Boolean { strides, .. } = p.mask {
            let base = blk.b * strides.batch + head(g) * strides.head + t * strides.q;
            s.mask_base.push(base);
            if let Mask::Boolean { data, strides } = p.mask {
                let last = match kept {
                    Some((b, last)) if b == base => last,
                    _ => last_kept(data, base, strides.k, p.kv_len),
                };
                kept = Some((base, last));
                last_visible = last_visible.min(last);
            }
        }
        s.last_visible.push(last_visible);
    }
    s.m.resize(lanes, f32::NEG_INFINITY);
    s.l.resize(lanes, 0.0);
    let first = *s.last_visible.iter().min().unwrap_or(&0);
    let last = *s.last_visible.iter().max().unwrap_or(&0);
    (first, last)
}

/// The last key a Boolean mask row keeps (-1: none), so the key loop stops
/// there: a static KV cache masked by key padding (a batch of sequences
/// decoding at one offset) costs the filled positions, not the cache size.
fn last_kept(data: &[u8], base: usize, k_stride: usize, kv_len: usize) -> isize {
    if k_stride == 1 {
        // Eight keys at a time from the end (a padded cache is mostly zeros).
        let row = &data[base..base + kv_len];
        let mut end = kv_len;
        while end >= 8 {
            let word: [u8; 8] = row[end - 8..end].try_into().expect("8 bytes");
            if u64::from_ne_bytes(word) != 0 {
                break;
            }
            end -= 8;
        }
        return row[..end]
            .iter()
            .rposition(|&x| x != 0)
            .map_or(-1, |j| j as isize);
    }
    (0..kv_len)
        .rev()
        .find(|&j| data[base + j * k_stride] != 0)
        .map_or(-1, |j| j as isize)
}

/// Applies the call's mask to a score tile of `keys` keys from `j0`, laid out
/// as `t`. Causal masking is skipped when every key of the tile is at or
/// before `first_limit`, every row's last visible key.
#[allow(clippy::too_many_arguments)]
pub(super) fn apply_mask(
    p: &SdpaParams<'_>,
    tile: &mut [f32],
    t: TileStrides,
    keys: usize,
    j0: usize,
    mask_base: &[usize],
    last_visible: &[isize],
    first_limit: isize,
) {
    match p.mask {
        Mask::Additive { data, strides } => {
            mask::add_bias(tile, t, keys, j0, data, mask_base, strides.k)
        }
        Mask::Boolean { data, strides } => {
            mask::keep_only(tile, t, keys, j0, data, mask_base, strides.k)
        }
        Mask::Causal if (j0 + keys - 1) as isize > first_limit => {
            mask::causal(tile, t, keys, j0, last_visible)
        }
        Mask::CausalBand { window, .. } => {
            if (j0 + keys - 1) as isize > first_limit {
                mask::causal(tile, t, keys, j0, last_visible)
            }
            if let Some(w) = window {
                mask::window(tile, t, keys, j0, last_visible, w)
            }
        }
        _ => {}
    }
}

/// Fills `s.inv` with `1 / l` for each of the block's rows, 0 for a row that
/// saw no key (and no sink), so that row outputs zeros.
pub(super) fn inverse_denominators(s: &mut Scratch, rows: usize) {
    s.inv.clear();
    let inv = s.l[..rows]
        .iter()
        .map(|&l| if l == 0.0 { 0.0 } else { 1.0 / l });
    s.inv.extend(inv);
}

/// Writes the block's finished rows, `s.orows` (`rows x v_head_dim`), to the
/// output.
///
/// # Safety
/// `ctx.out` must be valid for the validated output strides, and no other
/// worker may write this block's rows.
pub(super) unsafe fn write_out(ctx: &Ctx<'_, '_>, blk: &Block, s: &Scratch) {
    let (p, dv) = (ctx.p, ctx.p.v_head_dim);
    for r in 0..blk.rows() {
        let (g, t) = blk.row(r);
        let offset = p.out_strides.offset(blk.b, blk.hk * ctx.plan.group + g, t);
        // SAFETY: validated in bounds and non-aliasing; this unit owns row (g, t).
        ctx.out.write_slice(offset, &s.orows[r * dv..][..dv]);
    }
}

/// The flash loop of one block in the lanes layout with the micro-kernels `K`.
///
/// # Safety
/// The CPU must support `K`'s ISA; `ctx` must describe buffers that passed
/// `SdpaParams::validate`, and no other worker may write this block's rows.
#[inline(always)]
unsafe fn process<K: MicroKernels>(ctx: &Ctx<'_, '_>, blk: &Block, s: &mut Scratch) {
    let (nr, mr) = (K::NR, K::MR);
    let (p, plan) = (ctx.p, ctx.plan);
    let (d, dv, kv_len) = (p.head_dim, p.v_head_dim, p.kv_len);
    let lanes = blk.rows().next_multiple_of(nr);
    let rows = blk.rows();
    // Score, probability and accumulator rows `ld` floats apart.
    let ld = tile_stride(lanes);
    let (first_limit, last_limit) = init_rows(ctx, blk, s, lanes, ld, plan.key_tile * ld);
    // Q^T: feature i of row r at i * lanes + r; padded lanes stay zero.
    s.qt.clear();
    s.qt.resize(d * lanes, 0.0);
    K::transpose(
        s.qrows.as_ptr(),
        d,
        rows,
        d,
        s.qt.as_mut_ptr(),
        lanes,
        &[1.0],
    );

    let short = short_exp(&p.mask);
    let mut j0 = plan.first_key(first_limit);
    while j0 < kv_len && j0 as isize <= last_limit {
        let keys = tile_keys(plan, kv_len, j0, last_limit);
        let (k, ldk, v, ldv) = s.kv_tile(ctx, blk.b, blk.hk, j0, keys);
        let (k_base, v_base) = (k.as_ptr(), v.as_ptr());
        let st = s.st.as_mut_ptr();
        // An unmasked tile's maximum comes from the score kernel, so the
        // softmax makes one pass over the tile instead of two.
        let unmasked = tile_unmasked(p, (j0, keys), first_limit);
        if unmasked {
            s.tmax.clear();
            s.tmax.extend_from_slice(&s.m[..lanes]);
        }
        let tmax = s.tmax.as_mut_ptr();
        for rc in (0..lanes).step_by(nr) {
            let qt = s.qt.as_ptr().add(rc);
            for kg in (0..keys).step_by(mr) {
                let k_ptr = k_base.add(kg * ldk);
                let nk = mr.min(keys - kg);
                let out = st.add(kg * ld + rc);
                if unmasked {
                    K::scores_max(qt, lanes, k_ptr, ldk, nk, d, out, ld, tmax.add(rc));
                } else {
                    K::scores(qt, lanes, k_ptr, ldk, nk, d, out, ld);
                }
            }
        }
        if unmasked {
            for rc in (0..lanes).step_by(nr) {
                let (m, l, a) = (s.m.as_mut_ptr(), s.l.as_mut_ptr(), s.alpha.as_mut_ptr());
                let (m, l, a) = (m.add(rc), l.add(rc), a.add(rc));
                let (st, tmax) = (st.add(rc), tmax.add(rc));
                if short {
                    K::softmax_max::<true>(st, ld, keys, tmax, m, l, a);
                } else {
                    K::softmax_max::<false>(st, ld, keys, tmax, m, l, a);
                }
            }
        } else {
            mask_and_softmax::<K>(p, s, (lanes, ld), (j0, keys), first_limit);
        }
        let pt = s.st.as_ptr();
        let ot = s.ot.as_mut_ptr();
        let kc = value_keys(keys);
        for k0 in (0..keys).step_by(kc) {
            let nk = kc.min(keys - k0);
            // The first run of keys rescales the accumulator, the later ones
            // carry on its sums (times one: exact, the sums bit-identical to
            // one pass over the tile).
            let alpha = if k0 == 0 { &s.alpha } else { &s.ones };
            for rc in (0..lanes).step_by(nr) {
                for dv0 in (0..dv).step_by(mr) {
                    let v_ptr = v_base.add(k0 * ldv + dv0);
                    let nv = mr.min(dv - dv0);
                    let acc = ot.add(dv0 * ld + rc);
                    let p_ptr = pt.add(k0 * ld + rc);
                    let a = alpha.as_ptr().add(rc);
                    K::values(p_ptr, ld, nk, v_ptr, ldv, nv, a, acc, ld);
                }
            }
        }
        j0 += keys;
    }
    finish::<K>(ctx, blk, s, ld);
}

/// The row stride of a lanes-layout tile of `lanes` lanes: one cache line
/// more, so that rows 256 bytes apart (64 lanes) do not all fall into the
/// same few L1 sets — the value product reads probability, value and
/// accumulator rows at once, and at a 256-byte stride they shared a quarter
/// of an 8-way L1's sets (~4 % of the attention on Zen 2).
pub(super) fn tile_stride(lanes: usize) -> usize {
    lanes + 16
}

/// Whether [`apply_mask`] leaves the tile of keys `j0 .. j0 + keys` as it
/// is: no mask, or causal with every key at or before `first_limit`.
pub(super) fn tile_unmasked(
    p: &SdpaParams<'_>,
    (j0, keys): (usize, usize),
    first_limit: isize,
) -> bool {
    match p.mask {
        Mask::None => true,
        Mask::Causal => (j0 + keys - 1) as isize <= first_limit,
        _ => false,
    }
}

/// Keys per run of the value product: its probability rows and value rows
/// (`VALUE_KEYS` each, 256 bytes wide at 64 lanes and features) stay in L1
/// across the block's value-feature tiles, instead of streaming a whole key
/// tile from L2 for each (the value product ran ~15 % below the score
/// product's rate on Zen 2 before).
const VALUE_KEYS: usize = 64;

/// Keys per run of the value product over a tile of `keys` keys.
fn value_keys(keys: usize) -> usize {
    VALUE_KEYS.min(keys).max(1)
}

/// Keys in the tile from `j0`: at most a key tile, the keys left, and the
/// block's causal frontier (`last_limit`).
pub(super) fn tile_keys(plan: &Plan, kv_len: usize, j0: usize, last_limit: isize) -> usize {
    plan.key_tile
        .min(kv_len - j0)
        .min((last_limit + 1 - j0 as isize) as usize)
}

/// The mask of [`mask_and_softmax`] alone, on the tile of keys `j0 .. j0 +
/// keys` (`keys` rows of scores `ld` floats apart in `s.st`).
pub(super) fn mask_tile(
    p: &SdpaParams<'_>,
    s: &mut Scratch,
    ld: usize,
    (j0, keys): (usize, usize),
    first_limit: isize,
) {
    let tile = &mut s.st[..keys * ld];
    let t = TileStrides { rs: 1, ks: ld };
    apply_mask(
        p,
        tile,
        t,
        keys,
        j0,
        &s.mask_base,
        &s.last_visible,
        first_limit,
    );
}

/// Masks the lanes-layout score tile of keys `j0 .. j0 + keys` and runs the
/// online softmax on it with `K`'s kernel (probabilities left in `s.st`,
/// statistics and rescale factors updated).
///
/// # Safety
/// The CPU must support `K`'s ISA; `s` was set up by [`init_rows`] for
/// `lanes` (a multiple of `K::NR`) lanes and holds `keys` score rows `ld`
/// floats apart.
#[inline(always)]
pub(super) unsafe fn mask_and_softmax<K: MicroKernels>(
    p: &SdpaParams<'_>,
    s: &mut Scratch,
    (lanes, ld): (usize, usize),
    (j0, keys): (usize, usize),
    first_limit: isize,
) {
    mask_tile(p, s, ld, (j0, keys), first_limit);
    for rc in (0..lanes).step_by(K::NR) {
        // SAFETY: NR lanes of the tile and of the statistics, as documented.
        unsafe {
            K::softmax(
                s.st.as_mut_ptr().add(rc),
                ld,
                keys,
                s.m.as_mut_ptr().add(rc),
                s.l.as_mut_ptr().add(rc),
                s.alpha.as_mut_ptr().add(rc),
            )
        };
    }
}

/// `out = O / l`: the lanes-layout accumulator `s.ot` (`v_head_dim` rows
/// `ld` floats apart) transposed back to rows, scaled and written to the
/// output.
///
/// # Safety
/// The CPU must support `K`'s ISA; `ctx` must describe buffers that passed
/// `SdpaParams::validate`, and no other worker may write this block's rows.
#[inline(always)]
pub(super) unsafe fn finish<K: MicroKernels>(
    ctx: &Ctx<'_, '_>,
    blk: &Block,
    s: &mut Scratch,
    ld: usize,
) {
    let (rows, dv) = (blk.rows(), ctx.p.v_head_dim);
    inverse_denominators(s, rows);
    s.orows.clear();
    s.orows.resize(rows * dv, 0.0);
    // SAFETY: O^T is dv rows of ld, orows rows x dv; the rest as documented.
    unsafe {
        K::transpose(
            s.ot.as_ptr(),
            ld,
            dv,
            rows,
            s.orows.as_mut_ptr(),
            dv,
            &s.inv,
        );
        write_out(ctx, blk, s);
    }
}
