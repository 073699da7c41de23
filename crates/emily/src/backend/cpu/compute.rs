//! The two compute types of the CPU elementwise engine: `f32` (for f32, f16,
//! bf16, bool and u8 data) and `f64` (for f64 and 32/64-bit integers, exact
//! below 2^53). Loads widen any dtype into the compute type, stores narrow back,
//! and `round_to` reproduces the rounding an intermediate of a given dtype would
//! get if it were stored, so fused programs match op-by-op evaluation exactly.

use emily_kernels::{binary, unary};
use half::{bf16, f16};

use super::fused_special::Special;
use crate::ops::{BinaryOp, UnaryOp};
use crate::DType;

/// A scalar type the elementwise interpreter computes in.
pub(crate) trait Compute: Copy + Default + Send + Sync + PartialEq + 'static {
    /// Widens the elements in `src` (bytes of `dtype`) into `dst`: `src` holds
    /// either `dst.len()` elements or one element to broadcast.
    fn load(src: &[u8], dtype: DType, dst: &mut [Self]);
    /// `src` itself when it already holds this type.
    fn direct(src: &[u8], dtype: DType) -> Option<&[Self]>;
    /// Whether data of `dtype` is this type (read and written in place).
    fn holds(dtype: DType) -> bool;
    /// `dst` itself when it holds this type (and is aligned for it).
    fn direct_mut(dst: &mut [u8], dtype: DType) -> Option<&mut [Self]>;
    /// Narrows `src` into `dst` (bytes of `dtype`, same element count).
    fn store(src: &[Self], dst: &mut [u8], dtype: DType);
    /// `out = op(x)`.
    fn unary(op: UnaryOp, x: &[Self], out: &mut [Self]);
    /// `out = op(a, b)`.
    fn binary(op: BinaryOp, a: &[Self], b: &[Self], out: &mut [Self]);
    /// `out = c != 0 ? a : b`.
    fn select(c: &[Self], a: &[Self], b: &[Self], out: &mut [Self]);
    /// Like [`Compute::store`], bypassing the caches where the types allow it
    /// (large outputs nobody reads soon).
    fn store_streaming(src: &[Self], dst: &mut [u8], dtype: DType) {
        Self::store(src, dst, dtype)
    }
    /// Fills `dst` row by row: row `r` (of `w` elements) with `vals[r]`
    /// (`dst.len()` is a multiple of `w`, at most `vals.len() * w`).
    fn spread_rows(vals: &[Self], w: usize, dst: &mut [Self]) {
        for (row, &v) in dst.chunks_exact_mut(w).zip(vals) {
            row.fill(v);
        }
    }
    /// The compute-type value of an f64 constant.
    fn from_f64(v: f64) -> Self;
    /// Rounds values as storing them as `dtype` would.
    fn round_to(dtype: DType, x: &mut [Self]);
    /// Runs a recognised program's dedicated loop over one chunk
    /// (`input(j)`: input `j`'s values) into `out`; false when this type
    /// has none (the engine then runs the instructions).
    fn special(_s: Special, _input: &dyn Fn(usize) -> *const Self, _out: &mut [Self]) -> bool {
        false
    }
}

/// Rounds `x` to a half type and back in place, a stack buffer at a time,
/// on the vectorised cast kernels (the same rounding as `half`'s scalar
/// `from_f32`, several times faster per element).
fn round_through<H: Copy + Default>(
    x: &mut [f32],
    narrow: fn(&[f32], &mut [H]),
    widen: fn(&[H], &mut [f32]),
) {
    let mut buf = [H::default(); 256];
    for chunk in x.chunks_mut(256) {
        let b = &mut buf[..chunk.len()];
        narrow(chunk, b);
        widen(b, chunk);
    }
}

macro_rules! load_as {
    ($src:expr, $dst:expr, $t:ty, $conv:expr) => {{
        let s: &[$t] = bytemuck::cast_slice($src);
        if s.len() == 1 && $dst.len() != 1 {
            let v = $conv(s[0]);
            $dst.fill(v);
        } else {
            for (d, x) in $dst.iter_mut().zip(s) {
                *d = $conv(*x);
            }
        }
    }};
}

macro_rules! store_as {
    ($src:expr, $dst:expr, $t:ty, $conv:expr) => {{
        let d: &mut [$t] = bytemuck::cast_slice_mut($dst);
        for (o, x) in d.iter_mut().zip($src) {
            *o = $conv(*x);
        }
    }};
}

impl Compute for f32 {
    fn load(src: &[u8], dtype: DType, dst: &mut [f32]) {
        let one = src.len() == dtype.size_in_bytes() && dst.len() != 1;
        match dtype {
            DType::F32 => load_as!(src, dst, f32, |x| x),
            DType::F16 if !one => emily_kernels::cast::f16_to_f32(bytemuck::cast_slice(src), dst),
            DType::BF16 if !one => emily_kernels::cast::bf16_to_f32(bytemuck::cast_slice(src), dst),
            DType::F16 => load_as!(src, dst, f16, |x: f16| x.to_f32()),
            DType::BF16 => load_as!(src, dst, bf16, |x: bf16| x.to_f32()),
            DType::F64 => load_as!(src, dst, f64, |x: f64| x as f32),
            DType::I32 => load_as!(src, dst, i32, |x: i32| x as f32),
            DType::I64 => load_as!(src, dst, i64, |x: i64| x as f32),
            DType::U8 | DType::Bool => load_as!(src, dst, u8, |x: u8| x as f32),
            DType::Quantized(f) => unreachable!("{f} data is routed to the quantized kernels"),
        }
    }

    fn direct(src: &[u8], dtype: DType) -> Option<&[f32]> {
        (dtype == DType::F32).then(|| bytemuck::cast_slice(src))
    }

    fn holds(dtype: DType) -> bool {
        dtype == DType::F32
    }

    fn direct_mut(dst: &mut [u8], dtype: DType) -> Option<&mut [f32]> {
        (dtype == DType::F32)
            .then(|| bytemuck::try_cast_slice_mut(dst).ok())
            .flatten()
    }

    fn store(src: &[f32], dst: &mut [u8], dtype: DType) {
        match dtype {
            DType::F32 => bytemuck::cast_slice_mut::<u8, f32>(dst).copy_from_slice(src),
            DType::F16 => emily_kernels::cast::f32_to_f16(src, bytemuck::cast_slice_mut(dst)),
            DType::BF16 => emily_kernels::cast::f32_to_bf16(src, bytemuck::cast_slice_mut(dst)),
            DType::F64 => store_as!(src, dst, f64, |x: f32| x as f64),
            DType::I32 => store_as!(src, dst, i32, |x: f32| x as i32),
            DType::I64 => store_as!(src, dst, i64, |x: f32| x as i64),
            DType::U8 => store_as!(src, dst, u8, |x: f32| x as u8),
            DType::Bool => store_as!(src, dst, u8, |x: f32| (x != 0.0) as u8),
            DType::Quantized(f) => unreachable!("{f} data is routed to the quantized kernels"),
        }
    }

    fn unary(op: UnaryOp, x: &[f32], out: &mut [f32]) {
        unary::unary_f32(kernel_unary(op), x, out)
    }

    fn binary(op: BinaryOp, a: &[f32], b: &[f32], out: &mut [f32]) {
        binary::binary_f32(kernel_binary(op), a, b, out)
    }

    fn select(c: &[f32], a: &[f32], b: &[f32], out: &mut [f32]) {
        binary::where_f32(c, a, b, out)
    }

    fn store_streaming(src: &[f32], dst: &mut [u8], dtype: DType) {
        #[cfg(target_arch = "x86_64")]
        if dtype == DType::F32 && (dst.as_ptr() as usize).is_multiple_of(16) {
            use std::arch::x86_64::{_mm_loadu_ps, _mm_sfence, _mm_stream_ps};
            let d: &mut [f32] = bytemuck::cast_slice_mut(dst);
            let body = src.len() / 4 * 4;
            // SAFETY: SSE is baseline on x86-64; `d` is 16-byte aligned and holds
            // `src.len()` elements; the fence orders the streaming stores.
            unsafe {
                for i in (0..body).step_by(4) {
                    _mm_stream_ps(d.as_mut_ptr().add(i), _mm_loadu_ps(src.as_ptr().add(i)));
                }
                _mm_sfence();
            }
            d[body..].copy_from_slice(&src[body..]);
            return;
        }
        Self::store(src, dst, dtype)
    }

    fn spread_rows(vals: &[f32], w: usize, dst: &mut [f32]) {
        spread_rows_f32(vals, w, dst)
    }

    fn from_f64(v: f64) -> f32 {
        v as f32
    }

    #[inline]
    fn special(s: Special, input: &dyn Fn(usize) -> *const f32, out: &mut [f32]) -> bool {
        let n = out.len();
        // SAFETY: the engine's inputs hold `n` values for this chunk, and
        // none of them is `out` (see `fused::run_typed`).
        let get = |j: usize| unsafe { std::slice::from_raw_parts(input(j), n) };
        match s {
            Special::SiluGrad { a, b, g } => {
                emily_kernels::silu_grad::silu_grad_f32(get(a), b.map(get), get(g), out)
            }
        }
        true
    }

    fn round_to(dtype: DType, x: &mut [f32]) {
        match dtype {
            DType::F16 => round_through(
                x,
                emily_kernels::cast::f32_to_f16,
                emily_kernels::cast::f16_to_f32,
            ),
            DType::BF16 => round_through(
                x,
                emily_kernels::cast::f32_to_bf16,
                emily_kernels::cast::bf16_to_f32,
            ),
            DType::Bool => x.iter_mut().for_each(|v| *v = (*v != 0.0) as u8 as f32),
            DType::U8 => x.iter_mut().for_each(|v| *v = *v as u8 as f32),
            DType::I32 | DType::I64 => x.iter_mut().for_each(|v| *v = v.trunc()),
            DType::F32 | DType::F64 => {}
            DType::Quantized(f) => unreachable!("{f} data is routed to the quantized kernels"),
        }
    }
}

impl Compute for f64 {
    fn load(src: &[u8], dtype: DType, dst: &mut [f64]) {
        match dtype {
            DType::F64 => load_as!(src, dst, f64, |x| x),
            DType::F32 => load_as!(src, dst, f32, |x: f32| x as f64),
            DType::F16 => load_as!(src, dst, f16, |x: f16| x.to_f64()),
            DType::BF16 => load_as!(src, dst, bf16, |x: bf16| x.to_f64()),
            DType::I32 => load_as!(src, dst, i32, |x: i32| x as f64),
            DType::I64 => load_as!(src, dst, i64, |x: i64| x as f64),
            DType::U8 | DType::Bool => load_as!(src, dst, u8, |x: u8| x as f64),
            DType::Quantized(f) => unreachable!("{f} data is routed to the quantized kernels"),
        }
    }

    fn direct(src: &[u8], dtype: DType) -> Option<&[f64]> {
        (dtype == DType::F64).then(|| bytemuck::cast_slice(src))
    }

    fn holds(dtype: DType) -> bool {
        dtype == DType::F64
    }

    fn direct_mut(dst: &mut [u8], dtype: DType) -> Option<&mut [f64]> {
        (dtype == DType::F64)
            .then(|| bytemuck::try_cast_slice_mut(dst).ok())
            .flatten()
    }

    fn store(src: &[f64], dst: &mut [u8], dtype: DType) {
        match dtype {
            DType::F64 => store_as!(src, dst, f64, |x: f64| x),
            DType::F32 => store_as!(src, dst, f32, |x: f64| x as f32),
            DType::F16 => store_as!(src, dst, f16, f16::from_f64),
            DType::BF16 => store_as!(src, dst, bf16, bf16::from_f64),
            DType::I32 => store_as!(src, dst, i32, |x: f64| x as i32),
            DType::I64 => store_as!(src, dst, i64, |x: f64| x as i64),
            DType::U8 => store_as!(src, dst, u8, |x: f64| x as u8),
            DType::Bool => store_as!(src, dst, u8, |x: f64| (x != 0.0) as u8),
            DType::Quantized(f) => unreachable!("{f} data is routed to the quantized kernels"),
        }
    }

    fn unary(op: UnaryOp, x: &[f64], out: &mut [f64]) {
        unary::unary_f64(kernel_unary(op), x, out)
    }

    fn binary(op: BinaryOp, a: &[f64], b: &[f64], out: &mut [f64]) {
        binary::binary_f64(kernel_binary(op), a, b, out)
    }

    fn select(c: &[f64], a: &[f64], b: &[f64], out: &mut [f64]) {
        for i in 0..out.len() {
            out[i] = if c[i] != 0.0 { a[i] } else { b[i] };
        }
    }

    fn from_f64(v: f64) -> f64 {
        v
    }

    fn round_to(dtype: DType, x: &mut [f64]) {
        match dtype {
            DType::F32 => x.iter_mut().for_each(|v| *v = *v as f32 as f64),
            DType::F16 => x.iter_mut().for_each(|v| *v = f16::from_f64(*v).to_f64()),
            DType::BF16 => x.iter_mut().for_each(|v| *v = bf16::from_f64(*v).to_f64()),
            DType::Bool => x.iter_mut().for_each(|v| *v = (*v != 0.0) as u8 as f64),
            DType::U8 => x.iter_mut().for_each(|v| *v = *v as u8 as f64),
            DType::I32 => x.iter_mut().for_each(|v| *v = *v as i32 as f64),
            DType::I64 => x.iter_mut().for_each(|v| *v = v.trunc()),
            DType::F64 => {}
            DType::Quantized(f) => unreachable!("{f} data is routed to the quantized kernels"),
        }
    }
}

emily_kernels::simd_dispatch! {
    /// [`Compute::spread_rows`] for f32, on the widest vectors.
    fn spread_rows_f32(vals: &[f32], w: usize, dst: &mut [f32]) {
        for (row, &v) in dst.chunks_exact_mut(w).zip(vals) {
            row.fill(v);
        }
    }
}

/// Dtypes whose values pass exactly through f32 registers (f32, f16, bf16,
/// bool, u8): the ones the f32 engine computes and the compiler fuses. f64
/// and wide integers run op by op in the f64 engine.
pub(crate) fn f32_exact(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::F32 | DType::F16 | DType::BF16 | DType::Bool | DType::U8
    )
}

/// The kernel crate's unary op for a catalogue op.
fn kernel_unary(op: UnaryOp) -> unary::UnaryOp {
    use unary::UnaryOp as K;
    match op {
        UnaryOp::Neg => K::Neg,
        UnaryOp::Abs => K::Abs,
        UnaryOp::Exp => K::Exp,
        UnaryOp::Log => K::Log,
        UnaryOp::Sqrt => K::Sqrt,
        UnaryOp::Rsqrt => K::Rsqrt,
        UnaryOp::Recip => K::Recip,
        UnaryOp::Sin => K::Sin,
        UnaryOp::Cos => K::Cos,
        UnaryOp::Tanh => K::Tanh,
        UnaryOp::Erf => K::Erf,
        UnaryOp::GeluErf => K::GeluErf,
        UnaryOp::GeluTanh => K::GeluTanh,
        UnaryOp::Silu => K::Silu,
        UnaryOp::Sigmoid => K::Sigmoid,
        UnaryOp::Relu => K::Relu,
        UnaryOp::Square => K::Square,
        UnaryOp::Floor => K::Floor,
        UnaryOp::Ceil => K::Ceil,
        UnaryOp::Round => K::Round,
        UnaryOp::Sign => K::Sign,
        UnaryOp::LogicalNot => K::LogicalNot,
    }
}

/// The kernel crate's binary op for a catalogue op.
fn kernel_binary(op: BinaryOp) -> binary::BinaryOp {
    use binary::BinaryOp as K;
    match op {
        BinaryOp::Add => K::Add,
        BinaryOp::Sub => K::Sub,
        BinaryOp::Mul => K::Mul,
        BinaryOp::Div => K::Div,
        BinaryOp::Pow => K::Pow,
        BinaryOp::Maximum => K::Maximum,
        BinaryOp::Minimum => K::Minimum,
        BinaryOp::Eq => K::Eq,
        BinaryOp::Ne => K::Ne,
        BinaryOp::Lt => K::Lt,
        BinaryOp::Le => K::Le,
        BinaryOp::Gt => K::Gt,
        BinaryOp::Ge => K::Ge,
        BinaryOp::LogicalAnd => K::LogicalAnd,
        BinaryOp::LogicalOr => K::LogicalOr,
    }
}
