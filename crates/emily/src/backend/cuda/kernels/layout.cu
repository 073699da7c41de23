// Data movement and creation: strided copy (permute, broadcast, slice,
// concat, pad), fill, iota, gather, dynamic slice update, scatter-add and the
// counter-based uniform generator. Instantiated per element type by the
// DEFINE_* macros at the end of the generated source.

#define EM_MAX_RANK 8

// A strided view: element i of the contiguous iteration space `shape`
// reads src[src_off + sum(idx * src_st)] and writes dst[dst_off + sum(idx * dst_st)].
struct StridedCopy {
  int rank;
  i64 n;
  i64 src_off;
  i64 dst_off;
  i64 shape[EM_MAX_RANK];
  i64 src_st[EM_MAX_RANK];
  i64 dst_st[EM_MAX_RANK];
};

template <typename E>
__device__ __forceinline__ void copy_strided_impl(E* dst, const E* src, const StridedCopy p) {
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; i += (i64)gridDim.x * blockDim.x) {
    i64 r = i, s = p.src_off, d = p.dst_off;
    for (int k = p.rank - 1; k >= 0; --k) {
      i64 q = r / p.shape[k];
      i64 x = r - q * p.shape[k];
      r = q;
      s += x * p.src_st[k];
      d += x * p.dst_st[k];
    }
    dst[d] = src[s];
  }
}
#define DEFINE_COPY(NAME, E) \
  extern "C" __global__ void NAME(E* dst, const E* src, const StridedCopy p) { copy_strided_impl<E>(dst, src, p); }

// Every element `value` (rounded as the CPU backend rounds an f64).
template <typename T>
__device__ __forceinline__ void fill_impl(T* out, i64 n, double value) {
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    st(out + i, value);
}
#define DEFINE_FILL(NAME, T) \
  extern "C" __global__ void NAME(T* out, i64 n, double value) { fill_impl<T>(out, n, value); }

// Each element is its index along one axis: (i / stride) % dim.
template <typename T>
__device__ __forceinline__ void iota_impl(T* out, i64 n, i64 stride, i64 dim) {
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    st(out + i, (double)((i / stride) % dim));
}
#define DEFINE_IOTA(NAME, T) \
  extern "C" __global__ void NAME(T* out, i64 n, i64 stride, i64 dim) { iota_impl<T>(out, n, stride, dim); }

#define EM_ERR_GATHER 1u
#define EM_ERR_SCATTER 2u
#define EM_ERR_SLICE_UPDATE 3u
#define EM_ERR_ROPE_OFFSET 4u
#define EM_ERR_RANDOM_KEY 5u

// out[o, j, i] = x[o, idx[j], i] for x (outer, dim, inner) and idx (nidx,).
// An index outside [0, dim) writes zeros and reports an error.
template <typename E, typename I>
__device__ __forceinline__ void gather_impl(E* out, const E* x, const I* idx, i64 outer, i64 dim,
                                            i64 inner, i64 nidx, u32* err) {
  const i64 n = outer * nidx * inner;
  for (i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (i64)gridDim.x * blockDim.x) {
    const i64 i = t % inner;
    const i64 oj = t / inner;
    const i64 j = oj % nidx;
    const i64 o = oj / nidx;
    const i64 k = (i64)idx[j];
    if (k < 0 || k >= dim) {
      report_error(err, EM_ERR_GATHER, k, dim, 0);
      out[t] = E();
    } else {
      out[t] = x[(o * dim + k) * inner + i];
    }
  }
}
#define DEFINE_GATHER(NAME, E, I)                                                              \
  extern "C" __global__ void NAME(E* out, const E* x, const I* idx, i64 outer, i64 dim, i64 inner, \
                                  i64 nidx, u32* err) {                                        \
    gather_impl<E, I>(out, x, idx, outer, dim, inner, nidx, err);                              \
  }

// target[o, off + j, i] = update[o, j, i] for update (outer, len, inner),
// target (outer, dim, inner), off read from device memory. An offset that
// does not fit writes nothing and reports an error.
template <typename E, typename I>
__device__ __forceinline__ void slice_update_impl(E* target, const E* update, const I* offset, i64 outer,
                                                  i64 dim, i64 inner, i64 len, u32* err) {
  const i64 off = (i64)offset[0];
  if (off < 0 || off + len > dim) {
    if (blockIdx.x == 0 && threadIdx.x == 0) report_error(err, EM_ERR_SLICE_UPDATE, off, len, dim);
    return;
  }
  const i64 n = outer * len * inner;
  for (i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (i64)gridDim.x * blockDim.x) {
    const i64 i = t % inner;
    const i64 oj = t / inner;
    const i64 j = oj % len;
    const i64 o = oj / len;
    target[(o * dim + off + j) * inner + i] = update[t];
  }
}
#define DEFINE_SLICE_UPDATE(NAME, E, I)                                                              \
  extern "C" __global__ void NAME(E* target, const E* update, const I* offset, i64 outer, i64 dim,   \
                                  i64 inner, i64 len, u32* err) {                                    \
    slice_update_impl<E, I>(target, update, offset, outer, dim, inner, len, err);                    \
  }

// target[o, idx[j], i] += updates[o, j, i], one thread per (o, i) walking j
// in order (deterministic; repeated indices accumulate in index order).
// T is the accumulation type (f32 for half data, converted around it).
template <typename T, typename I>
__device__ __forceinline__ void scatter_add_impl(T* target, const I* idx, const T* updates, i64 outer,
                                                 i64 dim, i64 inner, i64 nidx, u32* err) {
  const i64 n = outer * inner;
  for (i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (i64)gridDim.x * blockDim.x) {
    const i64 i = t % inner;
    const i64 o = t / inner;
    for (i64 j = 0; j < nidx; ++j) {
      const i64 k = (i64)idx[j];
      if (k < 0 || k >= dim) {
        report_error(err, EM_ERR_SCATTER, k, dim, 0);
        continue;
      }
      T* d = target + (o * dim + k) * inner + i;
      *d = (T)(*d + updates[(o * nidx + j) * inner + i]);
    }
  }
}
#define DEFINE_SCATTER_ADD(NAME, T, I)                                                             \
  extern "C" __global__ void NAME(T* target, const I* idx, const T* updates, i64 outer, i64 dim,   \
                                  i64 inner, i64 nidx, u32* err) {                                 \
    scatter_add_impl<T, I>(target, idx, updates, outer, dim, inner, nidx, err);                    \
  }

// The catalogue's counter-based generator (ops::random): SplitMix64's
// finaliser over the key, the stream and the element index.
__device__ __forceinline__ u64 sm_mix(u64 z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
// dtype_code: 0 f32, 1 f64, 2 f16, 3 bf16.
__device__ __forceinline__ double uniform_value(u64 key, i64 i, int dtype_code) {
  const u64 bits = sm_mix(sm_mix(key ^ 0x5851F42D4C957F2DULL) + (u64)i * 0x9E3779B97F4A7C15ULL);
  if (dtype_code == 1) return (double)(bits >> 11) / 9007199254740992.0;
  float v = (float)(bits >> 40) / 16777216.0f;
  if (dtype_code == 2) v = fminf(h2f(f2h(v)), 1.0f - 1.0f / 2048.0f);
  if (dtype_code == 3) v = fminf(b2f(f2b(v)), 1.0f - 1.0f / 256.0f);
  return (double)v;
}
template <typename T, typename K>
__device__ __forceinline__ void random_uniform_impl(T* out, const K* key, u64 stream, i64 n, int dtype_code) {
  const i64 k = (i64)key[0];
  const u64 sk = sm_mix((u64)k ^ sm_mix(stream + 0x2545F4914F6CDD1DULL));
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
    st(out + i, uniform_value(sk, i, dtype_code));
}
#define DEFINE_RANDOM(NAME, T, K)                                                                  \
  extern "C" __global__ void NAME(T* out, const K* key, u64 stream, i64 n, int dtype_code) {      \
    random_uniform_impl<T, K>(out, key, stream, n, dtype_code);                                    \
  }
