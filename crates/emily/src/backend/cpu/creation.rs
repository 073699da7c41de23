//! Constant-producing ops: full and iota.

use half::{bf16, f16};

use crate::error::Result;
use crate::shape::{contiguous_strides, numel};
use crate::{Array, DType};

fn fill_with(shape: &[usize], dtype: DType, f: impl Fn(usize) -> f64) -> Result<Array> {
    let n = numel(shape);
    let mut out = Array::uninit(shape, dtype)?;
    let b = out.bytes_mut().unwrap();
    macro_rules! fill {
        ($t:ty, $conv:expr) => {{
            let s: &mut [$t] = bytemuck::cast_slice_mut(b);
            for (i, v) in s.iter_mut().enumerate().take(n) {
                *v = $conv(f(i));
            }
        }};
    }
    match dtype {
        DType::F32 => fill!(f32, |v: f64| v as f32),
        DType::F64 => fill!(f64, |v: f64| v),
        DType::F16 => fill!(f16, f16::from_f64),
        DType::BF16 => fill!(bf16, bf16::from_f64),
        DType::I32 => fill!(i32, |v: f64| v as i32),
        DType::I64 => fill!(i64, |v: f64| v as i64),
        DType::U8 => fill!(u8, |v: f64| v as u8),
        DType::Bool => fill!(u8, |v: f64| (v != 0.0) as u8),
        DType::Quantized(f) => unreachable!("full/iota of {f} is refused when the node is built"),
    }
    Ok(out)
}

/// Every element `value`.
pub(crate) fn full(shape: &[usize], value: f64, dtype: DType) -> Result<Array> {
    if value.to_bits() == 0 {
        // +0.0 is all zero bytes in every element type (not -0.0).
        return Array::zeroed(shape, dtype);
    }
    // Half types: one conversion, then a fill (`from_f64` is a software
    // routine; per element it was half of a short LLM prefill, which fills
    // f16 buffers of the whole context).
    let half = match dtype {
        DType::F16 => f16::from_f64(value).to_bits(),
        DType::BF16 => bf16::from_f64(value).to_bits(),
        _ => return fill_with(shape, dtype, |_| value),
    };
    let mut out = Array::uninit(shape, dtype)?;
    let b = out.bytes_mut().unwrap();
    bytemuck::cast_slice_mut::<u8, u16>(b).fill(half);
    Ok(out)
}

/// Each element is its index along `axis`.
pub(crate) fn iota(shape: &[usize], axis: usize, dtype: DType) -> Result<Array> {
    let strides = contiguous_strides(shape);
    let (st, dim) = (strides[axis], shape[axis]);
    fill_with(shape, dtype, |i| ((i / st) % dim) as f64)
}
