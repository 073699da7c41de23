// Emily CUDA prelude: storage types, conversions and math shared by every
// kernel. No CUDA headers are included (NVRTC compiles this alone), so half
// types are plain 16-bit storage converted with PTX instructions, and every
// conversion follows the CPU backend's rules exactly:
//   float -> f16/bf16 round to nearest even; f64 -> f16/bf16 round once
//   (through an f32 rounded to odd); float -> integer truncates and
//   saturates (NaN -> 0) as Rust's `as` does; -> bool is `x != 0`.

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

struct half_t { u16 bits; };
struct bhalf_t { u16 bits; };
struct bool_t { u8 v; };
// 16 bytes, for vector loads and stores.
struct alignas(16) V16 { u32 w[4]; };

#define EM_INF __int_as_float(0x7f800000)
#define EM_NINF __int_as_float(0xff800000)
#define EM_NAN __int_as_float(0x7fc00000)
#define EM_DINF __longlong_as_double(0x7ff0000000000000LL)
#define EM_DNINF __longlong_as_double(0xfff0000000000000LL)
#define EM_DNAN __longlong_as_double(0x7ff8000000000000LL)

__device__ __forceinline__ float h2f(u16 h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
__device__ __forceinline__ u16 f2h(float f) {
  u16 h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
__device__ __forceinline__ float b2f(u16 b) { return __uint_as_float(((u32)b) << 16); }
__device__ __forceinline__ u16 f2b(float f) {
  u32 u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 0x40u);
  return (u16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
// f64 -> f32 rounded to odd: a later rounding to f16/bf16 is then correct.
__device__ __forceinline__ float d2f_odd(double d) {
  float r = __double2float_rz(d);
  if ((double)r != d && r == r) r = __uint_as_float(__float_as_uint(r) | 1u);
  return r;
}
__device__ __forceinline__ u16 d2h(double d) { return f2h(d2f_odd(d)); }
__device__ __forceinline__ u16 d2b(double d) { return f2b(d2f_odd(d)); }

__device__ __forceinline__ int f2i32(float x) { int r; asm("cvt.rzi.s32.f32 %0, %1;" : "=r"(r) : "f"(x)); return r; }
__device__ __forceinline__ i64 f2i64(float x) { i64 r; asm("cvt.rzi.s64.f32 %0, %1;" : "=l"(r) : "f"(x)); return r; }
__device__ __forceinline__ int d2i32(double x) { int r; asm("cvt.rzi.s32.f64 %0, %1;" : "=r"(r) : "d"(x)); return r; }
__device__ __forceinline__ i64 d2i64(double x) { i64 r; asm("cvt.rzi.s64.f64 %0, %1;" : "=l"(r) : "d"(x)); return r; }
__device__ __forceinline__ u8 f2u8(float x) { return (u8)f2i32(fminf(fmaxf(x, 0.0f), 255.0f)); }
__device__ __forceinline__ u8 d2u8(double x) { return (u8)d2i32(fmin(fmax(x, 0.0), 255.0)); }

// Loads: any storage type widened to the compute type (float or double).
__device__ __forceinline__ float ldf(float x) { return x; }
__device__ __forceinline__ float ldf(double x) { return __double2float_rn(x); }
__device__ __forceinline__ float ldf(half_t x) { return h2f(x.bits); }
__device__ __forceinline__ float ldf(bhalf_t x) { return b2f(x.bits); }
__device__ __forceinline__ float ldf(int x) { return (float)x; }
__device__ __forceinline__ float ldf(i64 x) { return (float)x; }
__device__ __forceinline__ float ldf(u8 x) { return (float)x; }
__device__ __forceinline__ float ldf(bool_t x) { return (float)x.v; }
__device__ __forceinline__ double ldd(float x) { return (double)x; }
__device__ __forceinline__ double ldd(double x) { return x; }
__device__ __forceinline__ double ldd(half_t x) { return (double)h2f(x.bits); }
__device__ __forceinline__ double ldd(bhalf_t x) { return (double)b2f(x.bits); }
__device__ __forceinline__ double ldd(int x) { return (double)x; }
__device__ __forceinline__ double ldd(i64 x) { return (double)x; }
__device__ __forceinline__ double ldd(u8 x) { return (double)x; }
__device__ __forceinline__ double ldd(bool_t x) { return (double)x.v; }

template <typename C> struct Ld;
template <> struct Ld<float> { template <typename T> __device__ __forceinline__ static float of(T x) { return ldf(x); } };
template <> struct Ld<double> { template <typename T> __device__ __forceinline__ static double of(T x) { return ldd(x); } };
template <typename C, typename T> __device__ __forceinline__ C ld(T x) { return Ld<C>::of(x); }

// Stores: a compute-type value narrowed to a storage type.
__device__ __forceinline__ void st(float* p, float v) { *p = v; }
__device__ __forceinline__ void st(double* p, float v) { *p = (double)v; }
__device__ __forceinline__ void st(half_t* p, float v) { p->bits = f2h(v); }
__device__ __forceinline__ void st(bhalf_t* p, float v) { p->bits = f2b(v); }
__device__ __forceinline__ void st(int* p, float v) { *p = f2i32(v); }
__device__ __forceinline__ void st(i64* p, float v) { *p = f2i64(v); }
__device__ __forceinline__ void st(u8* p, float v) { *p = f2u8(v); }
__device__ __forceinline__ void st(bool_t* p, float v) { p->v = (u8)(v != 0.0f); }
__device__ __forceinline__ void st(float* p, double v) { *p = __double2float_rn(v); }
__device__ __forceinline__ void st(double* p, double v) { *p = v; }
__device__ __forceinline__ void st(half_t* p, double v) { p->bits = d2h(v); }
__device__ __forceinline__ void st(bhalf_t* p, double v) { p->bits = d2b(v); }
__device__ __forceinline__ void st(int* p, double v) { *p = d2i32(v); }
__device__ __forceinline__ void st(i64* p, double v) { *p = d2i64(v); }
__device__ __forceinline__ void st(u8* p, double v) { *p = d2u8(v); }
__device__ __forceinline__ void st(bool_t* p, double v) { p->v = (u8)(v != 0.0); }

// Rounding an intermediate as storing it in a dtype would (fused programs
// round every instruction to its node's dtype, as eager evaluation does).
__device__ __forceinline__ float rnd_f32(float x) { return x; }
__device__ __forceinline__ float rnd_f64(float x) { return x; }
__device__ __forceinline__ float rnd_f16(float x) { return h2f(f2h(x)); }
__device__ __forceinline__ float rnd_bf16(float x) { return b2f(f2b(x)); }
__device__ __forceinline__ float rnd_bool(float x) { return x != 0.0f ? 1.0f : 0.0f; }
__device__ __forceinline__ float rnd_u8(float x) { return (float)f2u8(x); }
__device__ __forceinline__ float rnd_i32(float x) { return truncf(x); }
__device__ __forceinline__ float rnd_i64(float x) { return truncf(x); }
__device__ __forceinline__ double rnd_f32(double x) { return (double)__double2float_rn(x); }
__device__ __forceinline__ double rnd_f64(double x) { return x; }
__device__ __forceinline__ double rnd_f16(double x) { return (double)h2f(d2h(x)); }
__device__ __forceinline__ double rnd_bf16(double x) { return (double)b2f(d2b(x)); }
__device__ __forceinline__ double rnd_bool(double x) { return x != 0.0 ? 1.0 : 0.0; }
__device__ __forceinline__ double rnd_u8(double x) { return (double)d2u8(x); }
__device__ __forceinline__ double rnd_i32(double x) { return (double)d2i32(x); }
__device__ __forceinline__ double rnd_i64(double x) { return trunc(x); }

// Math in both compute types.
__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ double m_exp(double x) { return exp(x); }
__device__ __forceinline__ float m_log(float x) { return logf(x); }
__device__ __forceinline__ double m_log(double x) { return log(x); }
__device__ __forceinline__ float m_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double m_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float m_sin(float x) { return sinf(x); }
__device__ __forceinline__ double m_sin(double x) { return sin(x); }
__device__ __forceinline__ float m_cos(float x) { return cosf(x); }
__device__ __forceinline__ double m_cos(double x) { return cos(x); }
__device__ __forceinline__ float m_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double m_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float m_erf(float x) { return erff(x); }
__device__ __forceinline__ double m_erf(double x) { return erf(x); }
__device__ __forceinline__ float m_erfc(float x) { return erfcf(x); }
__device__ __forceinline__ double m_erfc(double x) { return erfc(x); }
__device__ __forceinline__ float m_floor(float x) { return floorf(x); }
__device__ __forceinline__ double m_floor(double x) { return floor(x); }
__device__ __forceinline__ float m_ceil(float x) { return ceilf(x); }
__device__ __forceinline__ double m_ceil(double x) { return ceil(x); }
__device__ __forceinline__ float m_rint(float x) { return rintf(x); }
__device__ __forceinline__ double m_rint(double x) { return rint(x); }
__device__ __forceinline__ float m_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double m_abs(double x) { return fabs(x); }
__device__ __forceinline__ float m_pow(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double m_pow(double a, double b) { return pow(a, b); }
__device__ __forceinline__ bool m_isnan(float x) { return x != x; }
__device__ __forceinline__ bool m_isnan(double x) { return x != x; }
template <typename C> __device__ __forceinline__ C neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() { return EM_NINF; }
template <> __device__ __forceinline__ double neg_inf<double>() { return EM_DNINF; }
template <typename C> __device__ __forceinline__ C pos_inf();
template <> __device__ __forceinline__ float pos_inf<float>() { return EM_INF; }
template <> __device__ __forceinline__ double pos_inf<double>() { return EM_DINF; }
template <typename C> __device__ __forceinline__ C qnan();
template <> __device__ __forceinline__ float qnan<float>() { return EM_NAN; }
template <> __device__ __forceinline__ double qnan<double>() { return EM_DNAN; }

// Warp reductions over all 32 lanes.
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
// Maximum that propagates NaN.
__device__ __forceinline__ float nan_max(float a, float b) { return (a != a || b != b) ? EM_NAN : fmaxf(a, b); }
__device__ __forceinline__ double nan_max(double a, double b) { return (a != a || b != b) ? EM_DNAN : fmax(a, b); }
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ double warp_max(double v) {
  for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Device-side error reports (bad indices found by a kernel). Word 0 holds
// the first error's code (0 = none); words 2.. its three i64 details. The
// host reads and clears it at the next synchronisation.
__device__ __forceinline__ void report_error(u32* flag, u32 code, i64 a, i64 b, i64 c) {
  if (atomicCAS(flag, 0u, code) == 0u) {
    i64* d = (i64*)(flag + 2);
    d[0] = a;
    d[1] = b;
    d[2] = c;
    __threadfence_system();
  }
}
