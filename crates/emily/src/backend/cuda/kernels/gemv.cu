// f32 activations times half-precision weights stored (n, k): out[r, c] =
// sum_k x[r, k] * w[c, k] for a few rows r (decode-sized products), f32
// accumulation. One warp per output column; 16-byte weight loads when k is
// a multiple of 8 (rows then stay 16-byte aligned).

#define GEMV_MAX_ROWS 8

template <typename W>
__device__ __forceinline__ void gemv_impl(float* out, const float* x, const W* w, i64 rows, i64 n, i64 k) {
  const int lane = threadIdx.x & 31;
  const i64 col = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  if (col >= n) return;
  const W* wr = w + col * k;
  float acc[GEMV_MAX_ROWS];
#pragma unroll
  for (int r = 0; r < GEMV_MAX_ROWS; ++r) acc[r] = 0.0f;
  if ((k & 7) == 0) {
    for (i64 kk = (i64)lane * 8; kk < k; kk += 256) {
      const V16 wv = *(const V16*)(wr + kk);
      float wf[8];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        W lo, hi;
        lo.bits = (u16)(wv.w[i] & 0xffffu);
        hi.bits = (u16)(wv.w[i] >> 16);
        wf[2 * i] = ldf(lo);
        wf[2 * i + 1] = ldf(hi);
      }
#pragma unroll
      for (int r = 0; r < GEMV_MAX_ROWS; ++r) {
        if (r < rows) {
          const V16 x0 = *(const V16*)(x + r * k + kk);
          const V16 x1 = *(const V16*)(x + r * k + kk + 4);
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            acc[r] += __uint_as_float(x0.w[i]) * wf[i];
            acc[r] += __uint_as_float(x1.w[i]) * wf[4 + i];
          }
        }
      }
    }
  } else {
    for (i64 kk = lane; kk < k; kk += 32) {
      const float wf = ldf(wr[kk]);
#pragma unroll
      for (int r = 0; r < GEMV_MAX_ROWS; ++r)
        if (r < rows) acc[r] += x[r * k + kk] * wf;
    }
  }
#pragma unroll
  for (int r = 0; r < GEMV_MAX_ROWS; ++r) {
    if (r < rows) {
      const float s = warp_sum(acc[r]);
      if (lane == 0) out[r * n + col] = s;
    }
  }
}
#define DEFINE_GEMV(NAME, W) \
  extern "C" __global__ void NAME(float* out, const float* x, const W* w, i64 rows, i64 n, i64 k) { gemv_impl<W>(out, x, w, rows, n, k); }
