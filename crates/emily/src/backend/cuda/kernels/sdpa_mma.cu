// Flash attention on tensor cores for f16 / bf16 (d == dv, a multiple of 16,
// at most 256). A block of 4 warps owns 64 query rows of one (batch, head),
// 16 rows a warp. Q, and each tile of BN keys of K and V, sit in shared
// memory (rows padded by 16 bytes so ldmatrix is free of bank conflicts).
// S = Q K^T and O += P V run on mma.sync.m16n8k16 with f32 accumulators;
// the online softmax (running max and sum per row, in f32) rescales O
// between tiles; P is rounded to the input type for the second product.
// Tiles beyond the causal / band limits of the block's rows are skipped.
// Scores are scaled in f32, then the additive mask is added. A row with no
// visible key (and no sink) gives zeros.

__device__ __forceinline__ void ldsm_x4(u32* r, const u16* p) {
  const u32 a = (u32)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(u32* r, const u16* p) {
  const u32 a = (u32)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
template <bool BF16>
__device__ __forceinline__ void mma16816(float* c, const u32* a, u32 b0, u32 b1) {
  if (BF16) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}
// Two f32 as one register of two 16-bit values (lo in the low half).
template <bool BF16>
__device__ __forceinline__ u32 pack2(float lo, float hi) {
  u32 r;
  if (BF16) asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  else asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
template <bool BF16>
__device__ __forceinline__ float half_to_f32(u16 x) { return BF16 ? b2f(x) : h2f(x); }

#define MMA_ROWS 64
#define LOG2E_F 1.4426950408889634f

template <int D, int BN, bool BF16>
__device__ __forceinline__ void sdpa_mma_impl(u16* out, const u16* q, const u16* k, const u16* v, const void* mask,
                                              const i64* band_off, const u16* sinks, const SdpaParams p) {
  extern __shared__ V16 smem_v16[];
  const int LD = D + 8; // row stride in 16-bit elements
  u16* sQ = (u16*)smem_v16;
  u16* sK = sQ + MMA_ROWS * LD;
  u16* sV = sK + BN * LD;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const i64 h = blockIdx.y, bidx = blockIdx.z, g = p.hq / p.hkv, hk = h / g;
  const i64 row0 = (i64)blockIdx.x * MMA_ROWS;
  const u16* qb = q + (bidx * p.hq + h) * p.tq * D;
  const u16* kb = k + (bidx * p.hkv + hk) * p.tk * D;
  const u16* vb = v + (bidx * p.hkv + hk) * p.tk * D;
  const i64 off = band_offset(p, band_off);
  const int CH = D / 8; // 16-byte chunks per row

  for (int idx = tid; idx < MMA_ROWS * CH; idx += blockDim.x) {
    const int r = idx / CH, c = idx % CH;
    V16 val = {{0u, 0u, 0u, 0u}};
    if (row0 + r < p.tq) val = *(const V16*)(qb + (row0 + r) * D + c * 8);
    *(V16*)(sQ + r * LD + c * 8) = val;
  }

  const int gq = lane >> 2, t4 = lane & 3;
  const i64 qi[2] = {row0 + warp * 16 + gq, row0 + warp * 16 + gq + 8};
  float o[D / 8][4];
#pragma unroll
  for (int dn = 0; dn < D / 8; ++dn) o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.0f;
  float m[2] = {EM_NINF, EM_NINF}, l[2] = {0.0f, 0.0f};
  if (sinks) {
    const float s = half_to_f32<BF16>(sinks[h]);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      m[r] = s;
      l[r] = (t4 == 0 && s != EM_NINF) ? 1.0f : 0.0f;
    }
  }

  i64 lo, hi;
  sdpa_key_range(p, off, row0, min(row0 + MMA_ROWS - 1, p.tq - 1), lo, hi);

  for (i64 kt = lo; kt < hi; kt += BN) {
    __syncthreads();
    for (int idx = tid; idx < BN * CH; idx += blockDim.x) {
      const int r = idx / CH, c = idx % CH;
      V16 kv = {{0u, 0u, 0u, 0u}}, vv = {{0u, 0u, 0u, 0u}};
      if (kt + r < p.tk) {
        kv = *(const V16*)(kb + (kt + r) * D + c * 8);
        vv = *(const V16*)(vb + (kt + r) * D + c * 8);
      }
      *(V16*)(sK + r * LD + c * 8) = kv;
      *(V16*)(sV + r * LD + c * 8) = vv;
    }
    __syncthreads();

    float s[BN / 8][4];
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D; kk += 16) {
      u32 a[4];
      ldsm_x4(a, sQ + (warp * 16 + (lane & 15)) * LD + kk + (lane >> 4) * 8);
#pragma unroll
      for (int nt = 0; nt < BN / 8; nt += 2) {
        u32 b[4];
        ldsm_x4(b, sK + (nt * 8 + (lane & 7) + (lane >> 4) * 8) * LD + kk + ((lane >> 3) & 1) * 8);
        mma16816<BF16>(s[nt], a, b[0], b[1]);
        mma16816<BF16>(s[nt + 1], a, b[2], b[3]);
      }
    }

    float mx[2] = {EM_NINF, EM_NINF};
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1;
        const i64 j = kt + nt * 8 + t4 * 2 + (e & 1);
        float x = s[nt][e] * p.scale;
        bool vis = qi[r] < p.tq && j < hi && sdpa_visible(p, off, qi[r], j);
        if (vis && p.mask_kind == 2) x += half_to_f32<BF16>(((const u16*)mask)[mask_index(p, bidx, h, qi[r], j)]);
        if (vis && p.mask_kind == 3) vis = ((const u8*)mask)[mask_index(p, bidx, h, qi[r], j)] != 0;
        s[nt][e] = vis ? x : EM_NINF;
        mx[r] = nan_max(mx[r], s[nt][e]);
      }
    }
    float mu[2], alpha[2], lsum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = nan_max(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = nan_max(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float mn = nan_max(m[r], mx[r]);
      mu[r] = mn == EM_NINF ? 0.0f : mn;
      alpha[r] = expf(m[r] - mu[r]);
      m[r] = mn;
    }
#pragma unroll
    for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1;
        const float pv = exp2f((s[nt][e] - mu[r]) * LOG2E_F);
        s[nt][e] = pv;
        lsum[r] += pv;
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) l[r] = l[r] * alpha[r] + lsum[r];
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn) {
      o[dn][0] *= alpha[0];
      o[dn][1] *= alpha[0];
      o[dn][2] *= alpha[1];
      o[dn][3] *= alpha[1];
    }
#pragma unroll
    for (int ks = 0; ks < BN / 16; ++ks) {
      u32 a[4];
      a[0] = pack2<BF16>(s[2 * ks][0], s[2 * ks][1]);
      a[1] = pack2<BF16>(s[2 * ks][2], s[2 * ks][3]);
      a[2] = pack2<BF16>(s[2 * ks + 1][0], s[2 * ks + 1][1]);
      a[3] = pack2<BF16>(s[2 * ks + 1][2], s[2 * ks + 1][3]);
#pragma unroll
      for (int dn = 0; dn < D / 8; dn += 2) {
        u32 b[4];
        ldsm_x4_t(b, sV + (ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + dn * 8 + (lane >> 4) * 8);
        mma16816<BF16>(o[dn], a, b[0], b[1]);
        mma16816<BF16>(o[dn + 1], a, b[2], b[3]);
      }
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
  u16* ob = out + (bidx * p.hq + h) * p.tq * D;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (qi[r] >= p.tq) continue;
    const float inv = 1.0f / l[r];
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn) {
      const float y0 = l[r] != 0.0f ? o[dn][2 * r] * inv : 0.0f;
      const float y1 = l[r] != 0.0f ? o[dn][2 * r + 1] * inv : 0.0f;
      *(u32*)(ob + qi[r] * D + dn * 8 + t4 * 2) = pack2<BF16>(y0, y1);
    }
  }
}
#define DEFINE_SDPA_MMA(NAME, D, BN, BF16)                                                             \
  extern "C" __global__ void __launch_bounds__(128) NAME(u16* out, const u16* q, const u16* k, const u16* v, \
      const void* mask, const i64* band_off, const u16* sinks, const SdpaParams p) {                    \
    sdpa_mma_impl<D, BN, BF16>(out, q, k, v, mask, band_off, sinks, p);                                \
  }
