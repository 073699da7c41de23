// The catalogue's elementwise functions in the compute type C (float or
// double), for the generated fused kernels. Semantics follow the reference
// backend: comparisons and logic give 1 or 0, maximum/minimum propagate NaN,
// the GELU / SiLU family tends to -0 at -inf, round is half-to-even.

template <typename C> __device__ __forceinline__ C u_neg(C x) { return -x; }
template <typename C> __device__ __forceinline__ C u_abs(C x) { return m_abs(x); }
template <typename C> __device__ __forceinline__ C u_exp(C x) { return m_exp(x); }
template <typename C> __device__ __forceinline__ C u_log(C x) { return m_log(x); }
template <typename C> __device__ __forceinline__ C u_sqrt(C x) { return m_sqrt(x); }
template <typename C> __device__ __forceinline__ C u_rsqrt(C x) { return (C)1 / m_sqrt(x); }
template <typename C> __device__ __forceinline__ C u_recip(C x) { return (C)1 / x; }
template <typename C> __device__ __forceinline__ C u_sin(C x) { return m_sin(x); }
template <typename C> __device__ __forceinline__ C u_cos(C x) { return m_cos(x); }
template <typename C> __device__ __forceinline__ C u_tanh(C x) { return m_tanh(x); }
template <typename C> __device__ __forceinline__ C u_erf(C x) { return m_erf(x); }
template <typename C> __device__ __forceinline__ C u_sigmoid(C x) { return (C)1 / ((C)1 + m_exp(-x)); }
template <typename C> __device__ __forceinline__ C u_gelu_erf(C x) {
  if (x == neg_inf<C>()) return -(C)0;
  return (C)0.5 * x * m_erfc(-x * (C)0.70710678118654752440);
}
template <typename C> __device__ __forceinline__ C u_gelu_tanh(C x) {
  if (x == neg_inf<C>()) return -(C)0;
  const C u = (C)0.79788456080286535588 * (x + (C)0.044715 * x * x * x);
  return x * u_sigmoid((C)2 * u);
}
template <typename C> __device__ __forceinline__ C u_silu(C x) {
  if (x == neg_inf<C>()) return -(C)0;
  return x * u_sigmoid(x);
}
template <typename C> __device__ __forceinline__ C u_relu(C x) { return x <= (C)0 ? (C)0 : x; }
template <typename C> __device__ __forceinline__ C u_square(C x) { return x * x; }
template <typename C> __device__ __forceinline__ C u_floor(C x) { return m_floor(x); }
template <typename C> __device__ __forceinline__ C u_ceil(C x) { return m_ceil(x); }
template <typename C> __device__ __forceinline__ C u_round(C x) { return m_rint(x); }
template <typename C> __device__ __forceinline__ C u_sign(C x) { return x > (C)0 ? (C)1 : (x < (C)0 ? (C)-1 : x); }
template <typename C> __device__ __forceinline__ C u_logical_not(C x) { return x == (C)0 ? (C)1 : (C)0; }

template <typename C> __device__ __forceinline__ C b_add(C a, C b) { return a + b; }
template <typename C> __device__ __forceinline__ C b_sub(C a, C b) { return a - b; }
template <typename C> __device__ __forceinline__ C b_mul(C a, C b) { return a * b; }
template <typename C> __device__ __forceinline__ C b_div(C a, C b) { return a / b; }
template <typename C> __device__ __forceinline__ C b_pow(C a, C b) { return m_pow(a, b); }
template <typename C> __device__ __forceinline__ C b_maximum(C a, C b) { return (m_isnan(a) || m_isnan(b)) ? qnan<C>() : (a > b ? a : b); }
template <typename C> __device__ __forceinline__ C b_minimum(C a, C b) { return (m_isnan(a) || m_isnan(b)) ? qnan<C>() : (a < b ? a : b); }
template <typename C> __device__ __forceinline__ C b_eq(C a, C b) { return a == b ? (C)1 : (C)0; }
template <typename C> __device__ __forceinline__ C b_ne(C a, C b) { return a != b ? (C)1 : (C)0; }
template <typename C> __device__ __forceinline__ C b_lt(C a, C b) { return a < b ? (C)1 : (C)0; }
template <typename C> __device__ __forceinline__ C b_le(C a, C b) { return a <= b ? (C)1 : (C)0; }
template <typename C> __device__ __forceinline__ C b_gt(C a, C b) { return a > b ? (C)1 : (C)0; }
template <typename C> __device__ __forceinline__ C b_ge(C a, C b) { return a >= b ? (C)1 : (C)0; }
template <typename C> __device__ __forceinline__ C b_logical_and(C a, C b) { return (a != (C)0 && b != (C)0) ? (C)1 : (C)0; }
template <typename C> __device__ __forceinline__ C b_logical_or(C a, C b) { return (a != (C)0 || b != (C)0) ? (C)1 : (C)0; }
