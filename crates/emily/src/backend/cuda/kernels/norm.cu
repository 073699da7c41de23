// RMSNorm and LayerNorm over the last axis: one block per row, f32 math,
// warp-shuffle reductions. The vector kernels load and store 16 bytes per
// thread and keep the row in registers (VPT vectors a thread); rows whose
// bytes are not a multiple of 16 use the scalar kernels (two passes, the
// second from cache). Numerics follow the decompositions: mean = sum / d,
// y = x * (1 / sqrt(ms + eps)) [* w]; layer_norm centres first (two-pass
// variance).

template <typename T> struct Vec;
template <> struct Vec<float> {
  static const int N = 4;
  __device__ __forceinline__ static void load(const float* p, float* f) {
    V16 v = *(const V16*)p;
    for (int i = 0; i < 4; ++i) f[i] = __uint_as_float(v.w[i]);
  }
  __device__ __forceinline__ static void store(float* p, const float* f) {
    V16 v;
    for (int i = 0; i < 4; ++i) v.w[i] = __float_as_uint(f[i]);
    *(V16*)p = v;
  }
};
template <> struct Vec<half_t> {
  static const int N = 8;
  __device__ __forceinline__ static void load(const half_t* p, float* f) {
    V16 v = *(const V16*)p;
    for (int i = 0; i < 4; ++i) { f[2 * i] = h2f((u16)(v.w[i] & 0xffffu)); f[2 * i + 1] = h2f((u16)(v.w[i] >> 16)); }
  }
  __device__ __forceinline__ static void store(half_t* p, const float* f) {
    V16 v;
    for (int i = 0; i < 4; ++i) v.w[i] = (u32)f2h(f[2 * i]) | ((u32)f2h(f[2 * i + 1]) << 16);
    *(V16*)p = v;
  }
};
template <> struct Vec<bhalf_t> {
  static const int N = 8;
  __device__ __forceinline__ static void load(const bhalf_t* p, float* f) {
    V16 v = *(const V16*)p;
    for (int i = 0; i < 4; ++i) { f[2 * i] = b2f((u16)(v.w[i] & 0xffffu)); f[2 * i + 1] = b2f((u16)(v.w[i] >> 16)); }
  }
  __device__ __forceinline__ static void store(bhalf_t* p, const float* f) {
    V16 v;
    for (int i = 0; i < 4; ++i) v.w[i] = (u32)f2b(f[2 * i]) | ((u32)f2b(f[2 * i + 1]) << 16);
    *(V16*)p = v;
  }
};

// The sum of `v` over the block (blockDim a multiple of 32), returned to
// every thread. `sh` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float* sh) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) sh[wid] = v;
  __syncthreads();
  return warp_sum(lane < nw ? sh[lane] : 0.0f);
}

// mode 0: rms_norm; mode 1: layer_norm.
template <typename T, int VPT>
__device__ __forceinline__ void norm_vec_impl(T* out, const T* x, const T* w, const T* b, i64 rows, int d,
                                              float eps, int mode) {
  __shared__ float sh[32];
  const int N = Vec<T>::N;
  const int nvec = d / N;
  const float inv_d = 1.0f / (float)d;
  for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * d;
    float v[VPT][N];
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int vi = threadIdx.x + k * blockDim.x;
      if (vi < nvec) {
        Vec<T>::load(xr + vi * N, v[k]);
#pragma unroll
        for (int e = 0; e < N; ++e) s += mode == 0 ? v[k][e] * v[k][e] : v[k][e];
      }
    }
    s = block_sum(s, sh);
    float mean = 0.0f, inv;
    if (mode == 0) {
      inv = 1.0f / sqrtf(s * inv_d + eps);
    } else {
      mean = s * inv_d;
      float q = 0.0f;
#pragma unroll
      for (int k = 0; k < VPT; ++k) {
        const int vi = threadIdx.x + k * blockDim.x;
        if (vi < nvec) {
#pragma unroll
          for (int e = 0; e < N; ++e) { v[k][e] -= mean; q += v[k][e] * v[k][e]; }
        }
      }
      q = block_sum(q, sh);
      inv = 1.0f / sqrtf(q * inv_d + eps);
    }
#pragma unroll
    for (int k = 0; k < VPT; ++k) {
      const int vi = threadIdx.x + k * blockDim.x;
      if (vi < nvec) {
        float y[N], ww[N], bb[N];
        if (w) Vec<T>::load(w + vi * N, ww);
        if (b) Vec<T>::load(b + vi * N, bb);
#pragma unroll
        for (int e = 0; e < N; ++e) {
          y[e] = v[k][e] * inv;
          if (w) y[e] *= ww[e];
          if (b) y[e] += bb[e];
        }
        Vec<T>::store(out + row * d + vi * N, y);
      }
    }
  }
}
#define DEFINE_NORM_VEC(NAME, T, VPT)                                                                 \
  extern "C" __global__ void NAME(T* out, const T* x, const T* w, const T* b, i64 rows, int d, float eps, \
                                  int mode) {                                                         \
    norm_vec_impl<T, VPT>(out, x, w, b, rows, d, eps, mode);                                          \
  }

// Any row length: passes over global memory (the row stays in cache).
template <typename T>
__device__ __forceinline__ void norm_scalar_impl(T* out, const T* x, const T* w, const T* b, i64 rows, i64 d,
                                                 float eps, int mode) {
  __shared__ float sh[32];
  const float inv_d = 1.0f / (float)d;
  for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * d;
    float s = 0.0f;
    for (i64 j = threadIdx.x; j < d; j += blockDim.x) {
      const float v = ldf(xr[j]);
      s += mode == 0 ? v * v : v;
    }
    s = block_sum(s, sh);
    float mean = 0.0f, inv;
    if (mode == 0) {
      inv = 1.0f / sqrtf(s * inv_d + eps);
    } else {
      mean = s * inv_d;
      float q = 0.0f;
      for (i64 j = threadIdx.x; j < d; j += blockDim.x) {
        const float c = ldf(xr[j]) - mean;
        q += c * c;
      }
      q = block_sum(q, sh);
      inv = 1.0f / sqrtf(q * inv_d + eps);
    }
    for (i64 j = threadIdx.x; j < d; j += blockDim.x) {
      float y = (ldf(xr[j]) - mean) * inv;
      if (w) y *= ldf(w[j]);
      if (b) y += ldf(b[j]);
      st(out + row * d + j, y);
    }
  }
}
#define DEFINE_NORM_SCALAR(NAME, T)                                                                   \
  extern "C" __global__ void NAME(T* out, const T* x, const T* w, const T* b, i64 rows, i64 d, float eps, \
                                  int mode) {                                                         \
    norm_scalar_impl<T>(out, x, w, b, rows, d, eps, mode);                                            \
  }
