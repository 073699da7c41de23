//! `Op::RandomUniform` on the CPU: the catalogue's counter-based generator
//! ([`crate::ops::random`]) filled in parallel (element `i` depends on the
//! key, the stream and `i` only).

use emily_kernels::parallel;
use half::{bf16, f16};

use crate::error::Result;
use crate::ops::random::{stream_key, uniform_value};
use crate::{Array, DType};

/// Uniform `[0, 1)` samples of `shape`/`dtype` for `key` and `stream`.
pub(crate) fn uniform(key: &Array, stream: u64, shape: &[usize], dtype: DType) -> Result<Array> {
    let k = match key.dtype() {
        DType::I32 => key.as_slice::<i32>()[0] as i64,
        _ => key.as_slice::<i64>()[0],
    };
    let k = stream_key(k, stream);
    let mut out = Array::uninit(shape, dtype)?;
    macro_rules! fill {
        ($t:ty, $conv:expr) => {{
            let dst = out.as_mut_slice::<$t>().expect("fresh array");
            parallel::for_each_row_block_mut(dst, 1, 64, |start, block| {
                for (j, v) in block.iter_mut().enumerate() {
                    *v = $conv(uniform_value(k, start + j, dtype));
                }
            });
        }};
    }
    match dtype {
        DType::F64 => fill!(f64, |v: f64| v),
        DType::F32 => fill!(f32, |v: f64| v as f32),
        DType::F16 => fill!(f16, f16::from_f64),
        DType::BF16 => fill!(bf16, bf16::from_f64),
        d => unreachable!("random_uniform of {d} rejected at build"),
    }
    Ok(out)
}
