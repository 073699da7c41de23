// Attention on CUDA cores, any float dtype (C = float, or double for f64):
// a block of 16 warps owns up to 16 query rows, one a warp, and walks the keys in tiles
// of 32 held in shared memory; lane j scores key j of the tile against each
// row, the row's online softmax (running max m, sum l) rescales its output
// accumulator, and each lane accumulates output features lane, lane + 32, ...
//
// Two layouts of rows: `grouped == 0`: rows are queries blockIdx.x*16 .. of
// head blockIdx.y % hq (prefill); `grouped == 1`: rows are the g = hq/hkv
// heads x tq queries sharing kv head blockIdx.y % hkv (decoding: each key is
// read once per kv head), and blockIdx.x splits the keys into `splits`
// chunks whose partial (m, l, acc) go to a workspace for sdpa_combine.
// Sinks join the softmax denominator (in sdpa_combine when splitting).

#define SIMT_ROWS 16
#define SIMT_KEYS 32

template <typename T, typename C, int DVPL>
__device__ __forceinline__ void sdpa_simt_impl(T* out, const T* q, const T* k, const T* v, const void* mask,
                                               const i64* band_off, const T* sinks, float* ws,
                                               const SdpaParams p, int grouped) {
  extern __shared__ char smem_raw[];
  const i64 d = p.d, dv = p.dv;
  C* sq = (C*)smem_raw;                  // [16][d + 1]
  C* sk = sq + SIMT_ROWS * (d + 1);      // [32][d + 1]
  C* sv = sk + SIMT_KEYS * (d + 1);      // [32][dv]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const i64 g = p.hq / p.hkv;
  const i64 off = band_offset(p, band_off);
  const i64 by = blockIdx.y;
  const i64 bidx = grouped ? by / p.hkv : by / p.hq;
  const i64 nrows = grouped ? g * p.tq : min((i64)SIMT_ROWS, p.tq - (i64)blockIdx.x * SIMT_ROWS);
  // Row r of this block: head and query index.
  auto row_head = [&](i64 r) -> i64 { return grouped ? (by % p.hkv) * g + r / p.tq : by % p.hq; };
  auto row_query = [&](i64 r) -> i64 { return grouped ? r % p.tq : (i64)blockIdx.x * SIMT_ROWS + r; };
  const i64 hk = row_head(0) / g;
  const T* kb = k + (bidx * p.hkv + hk) * p.tk * d;
  const T* vb = v + (bidx * p.hkv + hk) * p.tk * dv;
  const C scale = (C)p.scale;

  for (i64 idx = threadIdx.x; idx < SIMT_ROWS * d; idx += blockDim.x) {
    const i64 r = idx / d, c = idx % d;
    C val = (C)0;
    if (r < nrows) {
      const i64 h = row_head(r), i = row_query(r);
      val = ld<C>(q[((bidx * p.hq + h) * p.tq + i) * d + c]) * scale;
    }
    sq[r * (d + 1) + c] = val;
  }

  // The keys this block visits: its split of the range all its rows can see.
  i64 lo, hi;
  {
    i64 qmin = row_query(0), qmax = row_query(nrows - 1);
    if (grouped) { qmin = 0; qmax = p.tq - 1; }
    sdpa_key_range(p, off, qmin, qmax, lo, hi);
    if (grouped) {
      const i64 chunk = (((hi - lo) + p.splits - 1) / p.splits + SIMT_KEYS - 1) / SIMT_KEYS * SIMT_KEYS;
      const i64 s0 = lo + (i64)blockIdx.x * chunk;
      hi = min(hi, s0 + chunk);
      lo = s0;
      if (hi < lo) hi = lo;
    }
  }

  // One row per warp (16 warps): the state of row `warp` in registers.
  const i64 r = warp;
  const bool active = r < nrows;
  C m = neg_inf<C>(), l = (C)0, acc[DVPL];
  if (!grouped && sinks && active) {
    const C s = ld<C>(sinks[row_head(r)]);
    m = s;
    l = s == neg_inf<C>() ? (C)0 : (C)1;
  }
#pragma unroll
  for (int e = 0; e < DVPL; ++e) acc[e] = (C)0;
  const i64 h = active ? row_head(r) : 0, i = active ? row_query(r) : 0;
  const C* qr = sq + r * (d + 1);

#pragma unroll 1
  for (i64 kt = lo; kt < hi; kt += SIMT_KEYS) {
    __syncthreads();
    for (i64 idx = threadIdx.x; idx < SIMT_KEYS * d; idx += blockDim.x) {
      const i64 j = idx / d, c = idx % d;
      sk[j * (d + 1) + c] = kt + j < p.tk ? ld<C>(kb[(kt + j) * d + c]) : (C)0;
    }
    for (i64 idx = threadIdx.x; idx < SIMT_KEYS * dv; idx += blockDim.x) {
      const i64 j = idx / dv, c = idx % dv;
      sv[j * dv + c] = kt + j < p.tk ? ld<C>(vb[(kt + j) * dv + c]) : (C)0;
    }
    __syncthreads();
    if (!active) continue; // warp-uniform
    const i64 j = kt + lane;
    C s = (C)0;
    const C* kr = sk + lane * (d + 1);
#pragma unroll 4
    for (i64 c = 0; c < d; ++c) s += qr[c] * kr[c];
    bool vis = j < hi && sdpa_visible(p, off, i, j);
    if (vis && p.mask_kind == 2) s += ld<C>(((const T*)mask)[mask_index(p, bidx, h, i, j)]);
    if (vis && p.mask_kind == 3) vis = ((const u8*)mask)[mask_index(p, bidx, h, i, j)] != 0;
    if (!vis) s = neg_inf<C>();
    const C m_new = nan_max(m, warp_max(s));
    const C m_use = m_new == neg_inf<C>() ? (C)0 : m_new;
    const C pj = m_exp(s - m_use);
    const C alpha = m_exp(m - m_use);
    l = l * alpha + warp_sum(pj);
    m = m_new;
#pragma unroll
    for (int e = 0; e < DVPL; ++e) acc[e] *= alpha;
#pragma unroll 4
    for (int jj = 0; jj < SIMT_KEYS; ++jj) {
      const C pv = __shfl_sync(0xffffffffu, pj, jj);
#pragma unroll
      for (int e = 0; e < DVPL; ++e) {
        const i64 c = lane + 32 * e;
        if (c < dv) acc[e] += pv * sv[jj * dv + c];
      }
    }
  }

  if (!active) return;
  if (grouped) {
    // Partial state of (block row r, split blockIdx.x) for sdpa_combine.
    const i64 slot = (by * SIMT_ROWS + r) * p.splits + blockIdx.x;
    if (lane == 0) { ws[2 * slot] = (float)m; ws[2 * slot + 1] = (float)l; }
    float* wa = ws + 2 * (p.b * p.hkv * SIMT_ROWS * p.splits) + slot * dv;
#pragma unroll
    for (int e = 0; e < DVPL; ++e) {
      const i64 c = lane + 32 * e;
      if (c < dv) wa[c] = (float)acc[e];
    }
  } else {
    T* o = out + ((bidx * p.hq + h) * p.tq + i) * dv;
    const C inv = (C)1 / l;
#pragma unroll
    for (int e = 0; e < DVPL; ++e) {
      const i64 c = lane + 32 * e;
      if (c < dv) st(o + c, l != (C)0 ? acc[e] * inv : (C)0);
    }
  }
}
#define DEFINE_SDPA_SIMT(NAME, T, C, DVPL)                                                            \
  extern "C" __global__ void __launch_bounds__(512) NAME(T* out, const T* q, const T* k, const T* v,  \
      const void* mask, const i64* band_off, const T* sinks, float* ws, const SdpaParams p, int grouped) { \
    sdpa_simt_impl<T, C, DVPL>(out, q, k, v, mask, band_off, sinks, ws, p, grouped);                  \
  }

// Combines the split partials of the grouped kernel: one warp per row
// (b, kv head, block row r), sinks joining the denominator here.
template <typename T>
__device__ __forceinline__ void sdpa_combine_impl(T* out, const float* ws, const T* sinks, const SdpaParams p) {
  const int lane = threadIdx.x & 31;
  const i64 g = p.hq / p.hkv;
  const i64 nrows = g * p.tq;
  const i64 total = p.b * p.hkv * nrows;
  const i64 warp = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const i64 nwarps = ((i64)gridDim.x * blockDim.x) >> 5;
  const float* wacc = ws + 2 * (p.b * p.hkv * SIMT_ROWS * p.splits);
  for (i64 w = warp; w < total; w += nwarps) {
    const i64 by = w / nrows, r = w % nrows;
    const i64 bidx = by / p.hkv, h = (by % p.hkv) * g + r / p.tq, i = r % p.tq;
    const i64 slot0 = (by * SIMT_ROWS + r) * p.splits;
    const float S = sinks ? ldf(sinks[h]) : EM_NINF;
    float M = S;
    for (int s = 0; s < p.splits; ++s) M = nan_max(M, ws[2 * (slot0 + s)]);
    const float mu = M == EM_NINF ? 0.0f : M;
    float L = S == EM_NINF ? 0.0f : expf(S - mu);
    for (int s = 0; s < p.splits; ++s) L += ws[2 * (slot0 + s) + 1] * expf(ws[2 * (slot0 + s)] - mu);
    T* o = out + ((bidx * p.hq + h) * p.tq + i) * p.dv;
    for (i64 c = lane; c < p.dv; c += 32) {
      float a = 0.0f;
      for (int s = 0; s < p.splits; ++s) a += wacc[(slot0 + s) * p.dv + c] * expf(ws[2 * (slot0 + s)] - mu);
      st(o + c, L != 0.0f ? a / L : 0.0f);
    }
  }
}
#define DEFINE_SDPA_COMBINE(NAME, T) \
  extern "C" __global__ void NAME(T* out, const float* ws, const T* sinks, const SdpaParams p) { sdpa_combine_impl<T>(out, ws, sinks, p); }
