// Reductions over one axis block viewed as (outer, len, inner), and softmax.
// T is the input storage type, C the accumulation type (float for f32 and
// half data, double otherwise), O the output storage type. The fold follows
// the reference: max/min propagate NaN, argmax/argmin give the first NaN or
// the first extreme, logsumexp is NaN/inf-aware, an empty axis gives the
// identity (0, 1, -inf, +inf, index 0, -inf).

#define RED_SUM 0
#define RED_MAX 1
#define RED_MIN 2
#define RED_PROD 3
#define RED_ARGMAX 4
#define RED_ARGMIN 5
#define RED_LSE 6

template <typename C>
struct RedState {
  C v;     // sum / product / extreme / running max (lse)
  C s;     // lse: sum of exp(x - v)
  i64 idx; // argmax / argmin
};

template <typename C, int OP>
__device__ __forceinline__ RedState<C> red_init() {
  RedState<C> r;
  r.s = (C)0;
  r.idx = -1;
  if (OP == RED_SUM) r.v = (C)0;
  else if (OP == RED_PROD) r.v = (C)1;
  else if (OP == RED_MIN || OP == RED_ARGMIN) r.v = pos_inf<C>();
  else r.v = neg_inf<C>();
  return r;
}

template <typename C, int OP>
__device__ __forceinline__ void red_push(RedState<C>& r, C x, i64 i) {
  if (OP == RED_SUM) r.v += x;
  else if (OP == RED_PROD) r.v *= x;
  else if (OP == RED_MAX) r.v = nan_max(r.v, x);
  else if (OP == RED_MIN) r.v = (m_isnan(r.v) || m_isnan(x)) ? qnan<C>() : (x < r.v ? x : r.v);
  else if (OP == RED_ARGMAX || OP == RED_ARGMIN) {
    // Elements are pushed in increasing index order within one lane.
    if (r.idx < 0) { r.v = x; r.idx = i; }
    else if (!m_isnan(r.v) && (m_isnan(x) || (OP == RED_ARGMAX ? x > r.v : x < r.v))) { r.v = x; r.idx = i; }
  } else { // RED_LSE: online max-rescaled sum; NaN sticks in v.
    if (m_isnan(r.v)) return;
    if (m_isnan(x)) { r.v = x; return; }
    if (x > r.v) {
      r.s = (r.v == neg_inf<C>() ? (C)0 : r.s * m_exp(r.v - x)) + (C)1;
      r.v = x;
    } else if (x != neg_inf<C>()) {
      r.s += m_exp(x - r.v);
    }
  }
}

template <typename C, int OP>
__device__ __forceinline__ RedState<C> red_merge(RedState<C> a, RedState<C> b) {
  if (OP == RED_SUM) { a.v += b.v; return a; }
  if (OP == RED_PROD) { a.v *= b.v; return a; }
  if (OP == RED_MAX) { a.v = nan_max(a.v, b.v); return a; }
  if (OP == RED_MIN) { a.v = (m_isnan(a.v) || m_isnan(b.v)) ? qnan<C>() : (b.v < a.v ? b.v : a.v); return a; }
  if (OP == RED_ARGMAX || OP == RED_ARGMIN) {
    if (b.idx < 0) return a;
    if (a.idx < 0) return b;
    const bool an = m_isnan(a.v), bn = m_isnan(b.v);
    if (an || bn) return (an && (!bn || a.idx < b.idx)) ? a : b;
    if (a.v == b.v) return a.idx < b.idx ? a : b;
    return (OP == RED_ARGMAX ? a.v > b.v : a.v < b.v) ? a : b;
  }
  // RED_LSE
  if (m_isnan(a.v)) return a;
  if (m_isnan(b.v)) return b;
  if (b.v == neg_inf<C>()) return a;
  if (a.v == neg_inf<C>()) return b;
  if (a.v >= b.v) { a.s += b.s * m_exp(b.v - a.v); return a; }
  b.s += a.s * m_exp(a.v - b.v);
  return b;
}

template <typename C, int OP>
__device__ __forceinline__ C red_final(RedState<C> r, C scale) {
  if (OP == RED_SUM) return r.v * scale;
  if (OP == RED_ARGMAX || OP == RED_ARGMIN) return (C)(r.idx < 0 ? 0 : r.idx);
  if (OP == RED_LSE) {
    if (m_isnan(r.v) || r.v == neg_inf<C>() || r.v == pos_inf<C>()) return r.v;
    return r.v + m_log(r.s);
  }
  return r.v;
}

// Stores the result; indices go through double so they stay exact.
template <typename C, int OP, typename O>
__device__ __forceinline__ void red_store(O* p, RedState<C> r, C scale) {
  if (OP == RED_ARGMAX || OP == RED_ARGMIN) st(p, (double)(r.idx < 0 ? 0 : r.idx));
  else st(p, red_final<C, OP>(r, scale));
}

template <typename C, int OP>
__device__ __forceinline__ RedState<C> red_shfl(RedState<C> r, int o) {
  RedState<C> b;
  b.v = __shfl_xor_sync(0xffffffffu, r.v, o);
  b.s = __shfl_xor_sync(0xffffffffu, r.s, o);
  b.idx = __shfl_xor_sync(0xffffffffu, r.idx, o);
  return b;
}

template <typename C, int OP>
__device__ __forceinline__ RedState<C> warp_reduce(RedState<C> r) {
  for (int o = 16; o > 0; o >>= 1) r = red_merge<C, OP>(r, red_shfl<C, OP>(r, o));
  return r;
}

// inner == 1: one warp per row, rows spread over the grid (8 warps a block).
template <typename T, typename C, typename O, int OP>
__device__ __forceinline__ void reduce_rows_impl(O* out, const T* x, i64 rows, i64 len, C scale) {
  const int lane = threadIdx.x & 31;
  const i64 warp = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const i64 nwarps = ((i64)gridDim.x * blockDim.x) >> 5;
  for (i64 row = warp; row < rows; row += nwarps) {
    const T* xr = x + row * len;
    RedState<C> r = red_init<C, OP>();
    for (i64 j = lane; j < len; j += 32) red_push<C, OP>(r, ld<C>(xr[j]), j);
    r = warp_reduce<C, OP>(r);
    if (lane == 0) red_store<C, OP>(out + row, r, scale);
  }
}
#define DEFINE_REDUCE_ROWS(NAME, T, C, O, OP) \
  extern "C" __global__ void NAME(O* out, const T* x, i64 rows, i64 len, C scale) { reduce_rows_impl<T, C, O, OP>(out, x, rows, len, scale); }

// inner == 1, few long rows: one block (up to 1024 threads) per row.
template <typename T, typename C, typename O, int OP>
__device__ __forceinline__ void reduce_long_rows_impl(O* out, const T* x, i64 rows, i64 len, C scale) {
  __shared__ C sv[32];
  __shared__ C ss[32];
  __shared__ i64 si[32];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * len;
    RedState<C> r = red_init<C, OP>();
    for (i64 j = threadIdx.x; j < len; j += blockDim.x) red_push<C, OP>(r, ld<C>(xr[j]), j);
    r = warp_reduce<C, OP>(r);
    if (lane == 0) { sv[wid] = r.v; ss[wid] = r.s; si[wid] = r.idx; }
    __syncthreads();
    if (wid == 0) {
      RedState<C> q = red_init<C, OP>();
      if (lane < nw) { q.v = sv[lane]; q.s = ss[lane]; q.idx = si[lane]; }
      q = warp_reduce<C, OP>(q);
      if (lane == 0) red_store<C, OP>(out + row, q, scale);
    }
    __syncthreads();
  }
}
#define DEFINE_REDUCE_LONG_ROWS(NAME, T, C, O, OP) \
  extern "C" __global__ void NAME(O* out, const T* x, i64 rows, i64 len, C scale) { reduce_long_rows_impl<T, C, O, OP>(out, x, rows, len, scale); }

// inner > 1: one thread per (outer, inner) column walking the axis in order.
template <typename T, typename C, typename O, int OP>
__device__ __forceinline__ void reduce_cols_impl(O* out, const T* x, i64 outer, i64 len, i64 inner, C scale) {
  const i64 n = outer * inner;
  for (i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (i64)gridDim.x * blockDim.x) {
    const i64 i = t % inner, o = t / inner;
    const T* xc = x + o * len * inner + i;
    RedState<C> r = red_init<C, OP>();
    for (i64 j = 0; j < len; ++j) red_push<C, OP>(r, ld<C>(xc[j * inner]), j);
    red_store<C, OP>(out + t, r, scale);
  }
}
#define DEFINE_REDUCE_COLS(NAME, T, C, O, OP) \
  extern "C" __global__ void NAME(O* out, const T* x, i64 outer, i64 len, i64 inner, C scale) { reduce_cols_impl<T, C, O, OP>(out, x, outer, len, inner, scale); }

// Softmax over rows of `len` contiguous elements, one warp per row: max,
// sum of exp, write. A row of all -inf gives zeros; NaN or +inf a NaN row.
template <typename T, typename C>
__device__ __forceinline__ void softmax_rows_impl(T* out, const T* x, i64 rows, i64 len) {
  const int lane = threadIdx.x & 31;
  const i64 warp = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const i64 nwarps = ((i64)gridDim.x * blockDim.x) >> 5;
  for (i64 row = warp; row < rows; row += nwarps) {
    const T* xr = x + row * len;
    T* orow = out + row * len;
    C m = neg_inf<C>();
    for (i64 j = lane; j < len; j += 32) m = nan_max(m, ld<C>(xr[j]));
    m = warp_max(m);
    if (m == neg_inf<C>()) {
      for (i64 j = lane; j < len; j += 32) st(orow + j, (C)0);
      continue;
    }
    C s = (C)0;
    for (i64 j = lane; j < len; j += 32) s += m_exp(ld<C>(xr[j]) - m);
    s = warp_sum(s);
    const C inv = (C)1 / s;
    for (i64 j = lane; j < len; j += 32) st(orow + j, m_exp(ld<C>(xr[j]) - m) * inv);
  }
}
#define DEFINE_SOFTMAX_ROWS(NAME, T, C) \
  extern "C" __global__ void NAME(T* out, const T* x, i64 rows, i64 len) { softmax_rows_impl<T, C>(out, x, rows, len); }

// Softmax along a middle axis of (outer, len, inner): one thread per column.
template <typename T, typename C>
__device__ __forceinline__ void softmax_cols_impl(T* out, const T* x, i64 outer, i64 len, i64 inner) {
  const i64 n = outer * inner;
  for (i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x; t < n; t += (i64)gridDim.x * blockDim.x) {
    const i64 i = t % inner, o = t / inner;
    const T* xc = x + o * len * inner + i;
    T* oc = out + o * len * inner + i;
    C m = neg_inf<C>();
    for (i64 j = 0; j < len; ++j) m = nan_max(m, ld<C>(xc[j * inner]));
    if (m == neg_inf<C>()) {
      for (i64 j = 0; j < len; ++j) st(oc + j * inner, (C)0);
      continue;
    }
    C s = (C)0;
    for (i64 j = 0; j < len; ++j) s += m_exp(ld<C>(xc[j * inner]) - m);
    const C inv = (C)1 / s;
    for (i64 j = 0; j < len; ++j) st(oc + j * inner, m_exp(ld<C>(xc[j * inner]) - m) * inv);
  }
}
#define DEFINE_SOFTMAX_COLS(NAME, T, C) \
  extern "C" __global__ void NAME(T* out, const T* x, i64 outer, i64 len, i64 inner) { softmax_cols_impl<T, C>(out, x, outer, len, inner); }
