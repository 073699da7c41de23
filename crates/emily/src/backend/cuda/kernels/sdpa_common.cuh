// Shared by the attention kernels: parameters and the mask rule.
//
// q (b, hq, tq, d), k (b, hkv, tk, d), v (b, hkv, tk, dv), out (b, hq, tq, dv),
// all contiguous. Query head h reads kv head h / (hq / hkv). mask_kind:
// 0 none; 1 causal aligned to the end (key j visible to query i when
// j <= i + tk - tq); 2 additive (mask in q's dtype, added to the scaled
// scores); 3 boolean (u8, 0 = masked); 4 causal band (queries at key
// positions off + i, off a device i64 scalar; visible when j <= off + i and,
// with window w >= 0, j > off + i - w). Mask strides are per (batch, head,
// query, key), 0 where the mask broadcasts.

struct SdpaParams {
  i64 b, hq, hkv, tq, tk, d, dv;
  i64 window;
  i64 ms[4];
  int mask_kind;
  int splits;
  float scale;
};

__device__ __forceinline__ i64 band_offset(const SdpaParams& p, const i64* band_off) {
  return p.mask_kind == 4 ? band_off[0] : 0;
}

// Whether key j is visible to query i (before additive / boolean masks).
__device__ __forceinline__ bool sdpa_visible(const SdpaParams& p, i64 off, i64 i, i64 j) {
  if (j >= p.tk || j < 0) return false;
  if (p.mask_kind == 1) return j <= i + p.tk - p.tq;
  if (p.mask_kind == 4) {
    const i64 pos = off + i;
    return j <= pos && (p.window < 0 || j > pos - p.window);
  }
  return true;
}

// Keys [lo, hi) any query in [i0, i1] can see (a superset; per-key checks follow).
__device__ __forceinline__ void sdpa_key_range(const SdpaParams& p, i64 off, i64 i0, i64 i1, i64& lo, i64& hi) {
  lo = 0;
  hi = p.tk;
  if (p.mask_kind == 1) hi = min(hi, i1 + p.tk - p.tq + 1);
  if (p.mask_kind == 4) {
    hi = min(hi, off + i1 + 1);
    if (p.window >= 0) lo = max(lo, off + i0 - p.window + 1);
  }
  if (hi < lo) hi = lo;
}

__device__ __forceinline__ i64 mask_index(const SdpaParams& p, i64 b, i64 h, i64 i, i64 j) {
  return b * p.ms[0] + h * p.ms[1] + i * p.ms[2] + j * p.ms[3];
}
