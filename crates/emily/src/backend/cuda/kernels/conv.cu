// im2col for 1-D convolution, every (batch, group) in one launch:
// cols[b, g, c * kw + t, o] = x[b, g * cg + c, o * stride + t * dil - pad]
// (zero outside the input), widened to the compute type C.

template <typename T, typename C>
__device__ __forceinline__ void im2col_impl(C* cols, const T* x, i64 n, i64 cin, i64 len, i64 groups, i64 cg,
                                            i64 kw, i64 lout, i64 stride, i64 pad, i64 dil) {
  const i64 total = n * groups * cg * kw * lout;
  for (i64 u = (i64)blockIdx.x * blockDim.x + threadIdx.x; u < total; u += (i64)gridDim.x * blockDim.x) {
    const i64 o = u % lout;
    i64 r = u / lout;
    const i64 t = r % kw;
    r /= kw;
    const i64 c = r % cg;
    r /= cg;
    const i64 g = r % groups;
    const i64 b = r / groups;
    const i64 pos = o * stride + t * dil - pad;
    C val = (C)0;
    if (pos >= 0 && pos < len) val = ld<C>(x[(b * cin + g * cg + c) * len + pos]);
    cols[u] = val;
  }
}
#define DEFINE_IM2COL(NAME, T, C)                                                                     \
  extern "C" __global__ void NAME(C* cols, const T* x, i64 n, i64 cin, i64 len, i64 groups, i64 cg, i64 kw, \
                                  i64 lout, i64 stride, i64 pad, i64 dil) {                           \
    im2col_impl<T, C>(cols, x, n, cin, len, groups, cg, kw, lout, stride, pad, dil);                  \
  }
