//! Scaled-dot-product attention, flash style:
//! `out = softmax(scale * Q K^T + mask) V` per (batch, query head), with
//! grouped-query heads, four mask kinds and optional attention sinks.
//!
//! The queries of a (batch, kv head) group are cut into blocks of at most
//! [`plan::BLOCK_ROWS`] rows; each block walks the keys in tiles with an online
//! softmax (running max and denominator, rescaling the accumulator), so no
//! score matrix larger than one tile is ever held; when the whole key range
//! fits one tile the walk degenerates to the plain two-pass softmax (the
//! "naive" path of small shapes). Both products are GEMM-shaped register-tiled
//! micro-kernels ([`microkernel`]). Blocks run in parallel on the pool.
//!
//! # Fully masked rows
//! A query row for which every key is masked (all `-inf` additive entries, all
//! `false` keep bytes, or causal with `q_len > kv_len` leaving nothing visible)
//! and which has no sink outputs **zeros**, not NaN: this is the project-wide
//! convention, and the composed fallback must do the same. A row whose entries
//! are merely very negative (e.g. `-1e9`) is not fully masked: it gets the
//! softmax of those values, like any other row. With a sink, a row whose keys
//! are all masked also outputs zeros (all weight goes to the sink, which has no
//! value vector).

#[cfg(target_arch = "x86_64")]
mod bf16_products;
mod block;
#[cfg(target_arch = "x86_64")]
mod decode;
#[cfg(target_arch = "x86_64")]
mod int8_scores;
#[cfg(target_arch = "x86_64")]
mod int8_values;
mod io;
mod mask;
mod microkernel;
mod plan;
mod softmax;
#[cfg(target_arch = "x86_64")]
mod tile_products;
pub(crate) use softmax::exp2_short;

use half::{bf16, f16};
use rayon::prelude::*;

use io::{Dst, Src};

use super::layout::{HeadStrides, SharedOut};
use crate::parallel;

/// Element strides of a 4-D `(batch, head, q, k)` mask. A stride of 0 broadcasts
/// that axis (e.g. one `(q, k)` mask shared by every batch entry and head).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaskStrides {
    /// Elements between batch entries (0: shared by all).
    pub batch: usize,
    /// Elements between query heads (0: shared by all).
    pub head: usize,
    /// Elements between query positions.
    pub q: usize,
    /// Elements between key positions (1 for a row-major mask).
    pub k: usize,
}

impl MaskStrides {
    /// Strides of a contiguous row-major mask of `shape = [b, h, q, k]`, where an
    /// extent of 1 broadcasts (gets stride 0): `[1, 1, q_len, kv_len]` is one mask
    /// for every batch entry and head.
    pub fn broadcast(shape: [usize; 4]) -> Self {
        let mut strides = [0usize; 4];
        let mut acc = 1;
        for axis in (0..4).rev() {
            strides[axis] = if shape[axis] == 1 { 0 } else { acc };
            acc *= shape[axis];
        }
        Self {
            batch: strides[0],
            head: strides[1],
            q: strides[2],
            k: strides[3],
        }
    }

    fn offset(&self, b: usize, h: usize, q: usize, k: usize) -> usize {
        b * self.batch + h * self.head + q * self.q + k * self.k
    }
}

/// Which query/key pairs take part, and with what bias.
#[derive(Clone, Copy, Debug)]
pub enum Mask<'a> {
    /// Every query sees every key.
    None,
    /// Query `i` sees keys `j <= i + kv_len - q_len` (aligned to the end, as when
    /// decoding with a KV cache; top-left aligned when `q_len == kv_len`).
    Causal,
    /// Query `i` sees keys `i + shift - window < j <= i + shift`: causal with
    /// the queries at key positions `shift..shift + q_len` (a static KV cache
    /// filled up to `shift + q_len`), limited to the last `window` keys when
    /// given (sliding-window attention). Keys outside the band are never
    /// computed, so the cost follows the visible keys, not the cache size.
    CausalBand {
        /// Key position of query 0.
        shift: isize,
        /// How many keys (ending at its own position) each query sees.
        window: Option<usize>,
    },
    /// A bias added to the scaled scores, indexed by `(batch, query head, q, k)`
    /// through `strides`; `-inf` entries mask a key out.
    Additive {
        /// The bias values.
        data: &'a [f32],
        /// Its layout (0 strides broadcast).
        strides: MaskStrides,
    },
    /// A keep-mask: key `k` takes part for query `q` iff the byte is nonzero.
    Boolean {
        /// One byte per entry, nonzero = keep.
        data: &'a [u8],
        /// Its layout (0 strides broadcast).
        strides: MaskStrides,
    },
}

/// Shape, layout and options of an [`sdpa_f32`] call.
#[derive(Clone, Copy, Debug)]
pub struct SdpaParams<'a> {
    /// Batch entries.
    pub batch: usize,
    /// Query (and output) heads.
    pub q_heads: usize,
    /// Key/value heads; must divide `q_heads`. Query head `h` uses kv head
    /// `h / (q_heads / kv_heads)` (grouped-query attention, no repeated copies).
    pub kv_heads: usize,
    /// Query positions.
    pub q_len: usize,
    /// Key/value positions.
    pub kv_len: usize,
    /// Features of queries and keys.
    pub head_dim: usize,
    /// Features of values and of the output.
    pub v_head_dim: usize,
    /// Multiplier of `Q K^T` (usually `1 / sqrt(head_dim)`).
    pub scale: f32,
    /// The mask.
    pub mask: Mask<'a>,
    /// Optional attention sinks, one logit per query head: each joins its
    /// head's softmax denominator as `exp(sink - max)` (the maximum taking the
    /// sink into account) but contributes no value.
    pub sinks: Option<&'a [f32]>,
    /// Layout of `q`: `(batch, q_heads, q_len, head_dim)`.
    pub q_strides: HeadStrides,
    /// Layout of `k`: `(batch, kv_heads, kv_len, head_dim)`.
    pub k_strides: HeadStrides,
    /// Layout of `v`: `(batch, kv_heads, kv_len, v_head_dim)`.
    pub v_strides: HeadStrides,
    /// Layout of `out`: `(batch, q_heads, q_len, v_head_dim)`; must not alias.
    pub out_strides: HeadStrides,
    /// Lets [`sdpa_bf16`] compute the scores `q·k` on int8 codes where this
    /// CPU runs them (AVX512-VNNI with the bf16-product loop): keys centred
    /// on their mean and quantized per key, queries per row, exact integer
    /// sums (see [`sdpa_bf16`] for the error). Ignored by the other entry
    /// points and on other CPUs. Default `false`.
    pub int8_scores: bool,
    /// Lets [`sdpa_bf16`] compute the value product `p·v` on int8 codes
    /// where this CPU runs int8 scores: values quantized per feature over
    /// each kv head, softmax weights per row and key tile to unsigned
    /// bytes, exact integer sums (see [`sdpa_bf16`] for the error). Not
    /// with a sliding window; ignored where `int8_scores` is. Default `false`.
    pub int8_values: bool,
}

impl<'a> SdpaParams<'a> {
    /// Contiguous `(B, H, T, D)` tensors, `v_head_dim = head_dim`,
    /// `scale = 1/sqrt(head_dim)`, no mask, no sinks.
    pub fn new(
        batch: usize,
        q_heads: usize,
        kv_heads: usize,
        q_len: usize,
        kv_len: usize,
        head_dim: usize,
    ) -> Self {
        Self {
            batch,
            q_heads,
            kv_heads,
            q_len,
            kv_len,
            head_dim,
            v_head_dim: head_dim,
            scale: 1.0 / (head_dim.max(1) as f32).sqrt(),
            mask: Mask::None,
            sinks: None,
            q_strides: HeadStrides::bhsd(q_heads, q_len, head_dim),
            k_strides: HeadStrides::bhsd(kv_heads, kv_len, head_dim),
            v_strides: HeadStrides::bhsd(kv_heads, kv_len, head_dim),
            out_strides: HeadStrides::bhsd(q_heads, q_len, head_dim),
            int8_scores: false,
            int8_values: false,
        }
    }

    /// Value (and output) features `v_head_dim` on the contiguous
    /// `(B, H, T, D)` layout of [`SdpaParams::new`]: the value and output
    /// strides follow.
    pub fn with_v_head_dim(mut self, v_head_dim: usize) -> Self {
        self.v_head_dim = v_head_dim;
        self.v_strides = HeadStrides::bhsd(self.kv_heads, self.kv_len, v_head_dim);
        self.out_strides = HeadStrides::bhsd(self.q_heads, self.q_len, v_head_dim);
        self
    }

    /// The same call on contiguous `(B, T, H, D)` tensors (the layout right after
    /// the Q/K/V projections): only the strides change.
    pub fn with_bshd_layout(mut self) -> Self {
        self.q_strides = HeadStrides::bshd(self.q_heads, self.q_len, self.head_dim);
        self.k_strides = HeadStrides::bshd(self.kv_heads, self.kv_len, self.head_dim);
        self.v_strides = HeadStrides::bshd(self.kv_heads, self.kv_len, self.v_head_dim);
        self.out_strides = HeadStrides::bshd(self.q_heads, self.q_len, self.v_head_dim);
        self
    }

    fn validate(&self, q: usize, k: usize, v: usize, out: usize) {
        let p = self;
        assert!(
            p.kv_heads > 0 && p.q_heads.is_multiple_of(p.kv_heads),
            "[sdpa] kv_heads {} must be nonzero and divide q_heads {}",
            p.kv_heads,
            p.q_heads
        );
        let checks = [
            ("q", q, p.q_strides, p.q_heads, p.q_len, p.head_dim),
            ("k", k, p.k_strides, p.kv_heads, p.kv_len, p.head_dim),
            ("v", v, p.v_strides, p.kv_heads, p.kv_len, p.v_head_dim),
            ("out", out, p.out_strides, p.q_heads, p.q_len, p.v_head_dim),
        ];
        for (name, len, strides, heads, seq, dim) in checks {
            let need = strides.required_len(p.batch, heads, seq, dim);
            assert!(
                len >= need,
                "[sdpa] {name} has {len} elements, its strides {strides:?} address {need}"
            );
        }
        assert!(
            p.out_strides
                .is_disjoint(p.batch, p.q_heads, p.q_len, p.v_head_dim),
            "[sdpa] output strides {:?} make elements alias",
            p.out_strides
        );
        if let Some(s) = p.sinks {
            assert_eq!(
                s.len(),
                p.q_heads,
                "[sdpa] {} sinks given for {} query heads",
                s.len(),
                p.q_heads
            );
        }
        let (len, strides) = match p.mask {
            Mask::Additive { data, strides } => (data.len(), strides),
            Mask::Boolean { data, strides } => (data.len(), strides),
            Mask::None | Mask::Causal | Mask::CausalBand { .. } => return,
        };
        if p.batch > 0 && p.q_heads > 0 && p.q_len > 0 && p.kv_len > 0 {
            let need = strides.offset(p.batch - 1, p.q_heads - 1, p.q_len - 1, p.kv_len - 1) + 1;
            assert!(
                len >= need,
                "[sdpa] mask has {len} elements, its strides {strides:?} address {need}"
            );
        }
    }
}

/// Scaled-dot-product attention: for each batch entry `b`, query head `h` and
/// query `i`, `out[b, h, i] = sum_j softmax_j(scale * q[b,h,i] . k[b,g,j] + mask)
/// v[b,g,j]` with `g = h / (q_heads / kv_heads)`, the mask as in [`Mask`] and the
/// sinks joining the denominator. Tensors are addressed through the strides in
/// `params` (feature axis contiguous). A fully masked row without a sink
/// outputs zeros (see the module docs).
///
/// # Panics
/// If `kv_heads` does not divide `q_heads`, a buffer is shorter than its
/// strides address, the output strides alias, or `sinks` has the wrong length.
pub fn sdpa_f32(q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], params: &SdpaParams<'_>) {
    if crate::fast::attention_grad::takes_forward(params) {
        params.validate(q.len(), k.len(), v.len(), out.len());
        crate::fast::attention_grad::sdpa_causal_forward_f32(q, k, v, out, params);
        return;
    }
    let dst = Dst::F32(SharedOut(out.as_mut_ptr()));
    run(
        Src::F32(q),
        Src::F32(k),
        Src::F32(v),
        dst,
        out.len(),
        params,
    );
}

/// Whether [`sdpa_f32`] would run this call on its head-major-only causal
/// kernel (f32, causal, no sinks, on CPUs without AVX-512) were its
/// tensors contiguous `(B, H, T, D)`: then another layout of the same call
/// runs on the general kernel instead, slower and with other roundings, so
/// a caller choosing the layout (the compiler's permute folds) keeps
/// head-major. `p`'s strides are ignored.
pub fn sdpa_f32_wants_head_major(p: &SdpaParams<'_>) -> bool {
    let bhsd = HeadStrides::bhsd;
    let head_major = SdpaParams {
        q_strides: bhsd(p.q_heads, p.q_len, p.head_dim),
        k_strides: bhsd(p.kv_heads, p.kv_len, p.head_dim),
        v_strides: bhsd(p.kv_heads, p.kv_len, p.v_head_dim),
        out_strides: bhsd(p.q_heads, p.q_len, p.v_head_dim),
        ..*p
    };
    crate::fast::attention_grad::takes_forward(&head_major)
}

/// [`sdpa_f32`] for `f16` tensors: queries, keys and values are widened to
/// `f32` (per query row and per key tile), everything accumulates in `f32`, and
/// each output element is rounded once. Mask and sinks stay `f32` / bytes.
///
/// # Panics
/// As [`sdpa_f32`].
pub fn sdpa_f16(q: &[f16], k: &[f16], v: &[f16], out: &mut [f16], params: &SdpaParams<'_>) {
    let dst = Dst::F16(SharedOut(out.as_mut_ptr()));
    run(
        Src::F16(q),
        Src::F16(k),
        Src::F16(v),
        dst,
        out.len(),
        params,
    );
}

/// [`sdpa_f32`] with `f16` keys and values (a half-precision KV cache) and
/// `f32` queries and output: keys and values are widened to `f32` per key
/// tile (F16C), everything else is as [`sdpa_f32`] — exact on the rounded
/// keys and values to f32 round-off.
///
/// # Panics
/// As [`sdpa_f32`].
pub fn sdpa_f32_f16_kv(q: &[f32], k: &[f16], v: &[f16], out: &mut [f32], params: &SdpaParams<'_>) {
    let dst = Dst::F32(SharedOut(out.as_mut_ptr()));
    run(
        Src::F32(q),
        Src::F16(k),
        Src::F16(v),
        dst,
        out.len(),
        params,
    );
}

/// [`sdpa_f32`] for `bf16` tensors, as [`sdpa_f16`], except that on a CPU
/// with AVX512-BF16 (bf16 GEMM engine not capped below AVX-512 by
/// `EMILY_ISA`) blocks of more than 16 query rows with an even head dim run
/// on bf16 dot products: `q·k` and `p·v` products exact, sums f32, and the
/// softmax weights `p` rounded to bf16 before the value product (an output
/// moves by at most about `2⁻⁸ · max|v|` from the f32 loop).
///
/// With [`SdpaParams::int8_scores`] on a CPU with AVX512-VNNI, those blocks
/// (any head dim) compute `q·k` with `vpdpbusd` on int8 codes instead:
/// each kv head's keys centred on their mean key (which the softmax
/// cancels) and rounded per key to `s_k · [-127, 127]`, each query row to
/// `s_q · [-127, 127]` (`s = max|x| / 127`), integer sums exact. A score
/// then moves by at most `δ = scale · (Σ|q| · s_k + Σ|k - mean| · s_q + d ·
/// s_q · s_k / 2) / 2`, so each softmax weight by a factor within
/// `e^{±2δ}` (for `δ` the row's largest), on top of the bf16 weights' bound.
///
/// With [`SdpaParams::int8_values`] too, the value product runs on int8
/// codes: values rounded per feature to `s_v · [-127, 127]` over the kv
/// head, each row's weights of a key tile to `s_p · [0, 255]` (`s_p` the
/// row's largest weight in the tile / 255), replacing the bf16 weights'
/// rounding: an output moves by at most `max|v| / 254` plus the weights'
/// roundings (each at most `1/510`, cancelling between keys) over the
/// row's denominator.
///
/// # Panics
/// As [`sdpa_f32`].
pub fn sdpa_bf16(q: &[bf16], k: &[bf16], v: &[bf16], out: &mut [bf16], params: &SdpaParams<'_>) {
    let dst = Dst::Bf16(SharedOut(out.as_mut_ptr()));
    run(
        Src::Bf16(q),
        Src::Bf16(k),
        Src::Bf16(v),
        dst,
        out.len(),
        params,
    );
}

/// [`sdpa_bf16`] written widened to `f32`: each output element is the bf16
/// [`sdpa_bf16`] gives, as an `f32` (for a caller that widens the output
/// next — an f32 projection after it — without a pass of its own).
///
/// # Panics
/// As [`sdpa_f32`].
pub fn sdpa_bf16_f32_out(
    q: &[bf16],
    k: &[bf16],
    v: &[bf16],
    out: &mut [f32],
    params: &SdpaParams<'_>,
) {
    let dst = Dst::Bf16Widened(SharedOut(out.as_mut_ptr()));
    run(
        Src::Bf16(q),
        Src::Bf16(k),
        Src::Bf16(v),
        dst,
        out.len(),
        params,
    );
}

/// Validates, plans and runs one call; `out` is a pointer into a buffer of
/// `out_len` elements that the caller holds exclusively.
fn run(q: Src<'_>, k: Src<'_>, v: Src<'_>, out: Dst, out_len: usize, p: &SdpaParams<'_>) {
    p.validate(q.len(), k.len(), v.len(), out_len);
    if p.batch == 0 || p.q_heads == 0 || p.q_len == 0 || p.v_head_dim == 0 {
        return;
    }
    let plan = plan::Plan::new(p);
    let ctx = block::Ctx {
        p,
        plan: &plan,
        call: block::next_call(),
        q,
        k,
        v,
        out,
    };
    let units = plan.units();
    if units == 1 || parallel::chunks_for(plan.work_per_unit().saturating_mul(units)) <= 1 {
        block::with_scratch(|scratch| {
            for u in 0..units {
                block::run(&ctx, u, scratch);
            }
        });
        return;
    }
    parallel::pool().install(|| {
        (0..units)
            .into_par_iter()
            .for_each(|u| block::with_scratch(|scratch| block::run(&ctx, u, scratch)));
    });
}
