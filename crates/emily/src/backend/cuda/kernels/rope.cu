// Rotary position embedding on x viewed as (batch, t_len, d). One thread per
// (position t, item) where items < dims/2 rotate a pair and the rest copy the
// features past `dims`; the thread walks every batch entry with the same
// angle. Angles, cosines and sines are computed in f64 and rounded to f32 as
// the decomposition does; the rotation itself is f32.
//
// pos_kind: 0 = offset + t (constant `offset`), 1 = pos[0] + t (a device
// scalar; negative is an error), 2 = pos[t]. pos_i64 selects the index type.
// freqs (f64, dims/2 of them) replace base^(-2i/dims) when non-null.

#define EM_ERR_ROPE_OFFSET 4u

template <typename T>
__device__ __forceinline__ void rope_impl(T* out, const T* x, i64 batch, i64 t_len, i64 d, i64 dims,
                                          int traditional, double log_step, double scale, int pos_kind,
                                          i64 offset, const void* pos, int pos_i64, const double* freqs,
                                          u32* err) {
  const i64 half = dims / 2;
  const i64 items = half + (d - dims);
  const i64 n = t_len * items;
  i64 base_off = offset;
  if (pos_kind == 1) {
    base_off = pos_i64 ? ((const i64*)pos)[0] : (i64)((const int*)pos)[0];
    if (base_off < 0) {
      if (blockIdx.x == 0 && threadIdx.x == 0) report_error(err, EM_ERR_ROPE_OFFSET, base_off, 0, 0);
      base_off = 0;
    }
  }
  for (i64 u = (i64)blockIdx.x * blockDim.x + threadIdx.x; u < n; u += (i64)gridDim.x * blockDim.x) {
    const i64 t = u / items, it = u % items;
    if (it >= half) {
      const i64 f = dims + (it - half);
      for (i64 bb = 0; bb < batch; ++bb) {
        const i64 o = (bb * t_len + t) * d + f;
        out[o] = x[o];
      }
      continue;
    }
    i64 p;
    if (pos_kind == 2) p = pos_i64 ? ((const i64*)pos)[t] : (i64)((const int*)pos)[t];
    else p = base_off + t;
    const double inv = freqs ? freqs[it] : exp((double)it * log_step);
    const double angle = ((double)p * scale) * inv;
    const float c = (float)cos(angle), s = (float)sin(angle);
    const i64 i1 = traditional ? 2 * it : it;
    const i64 i2 = traditional ? 2 * it + 1 : it + half;
    for (i64 bb = 0; bb < batch; ++bb) {
      const i64 row = (bb * t_len + t) * d;
      const float x1 = ldf(x[row + i1]), x2 = ldf(x[row + i2]);
      const float o1 = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
      const float o2 = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
      st(out + row + i1, o1);
      st(out + row + i2, o2);
    }
  }
}
#define DEFINE_ROPE(NAME, T)                                                                          \
  extern "C" __global__ void NAME(T* out, const T* x, i64 batch, i64 t_len, i64 d, i64 dims, int traditional, \
                                  double log_step, double scale, int pos_kind, i64 offset, const void* pos, \
                                  int pos_i64, const double* freqs, u32* err) {                      \
    rope_impl<T>(out, x, batch, t_len, d, dims, traditional, log_step, scale, pos_kind, offset, pos,   \
                 pos_i64, freqs, err);                                                               \
  }
