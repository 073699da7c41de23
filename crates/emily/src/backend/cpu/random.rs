//! The counter-based uniform generator behind `Op::RandomUniform`.

use emily_kernels::parallel;
use half::{bf16, f16};

use crate::error::Result;
use crate::{Array, DType};

/// SplitMix64's finaliser: a bijective 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 64 random bits of element `i` under `key`.
fn bits(key: u64, i: u64) -> u64 {
    mix(mix(key ^ 0x5851_F42D_4C95_7F2D).wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// Uniform `[0, 1)` samples: element `i` is a function of `key`, `stream`
/// and `i` only.
pub(crate) fn uniform(key: &Array, stream: u64, shape: &[usize], dtype: DType) -> Result<Array> {
    let key = match key.dtype() {
        DType::I32 => key.as_slice::<i32>()[0] as i64 as u64,
        _ => key.as_slice::<i64>()[0] as u64,
    };
    let key = mix(key ^ mix(stream.wrapping_add(0x2545_F491_4F6C_DD1D)));
    let mut out = Array::uninit(shape, dtype)?;
    // 24 bits give exact f32 values in [0, 1); f64 takes 53.
    let f32_at = |i: usize| (bits(key, i as u64) >> 40) as f32 * (1.0 / (1u64 << 24) as f32);
    macro_rules! fill {
        ($t:ty, $conv:expr) => {{
            let dst = out.as_mut_slice::<$t>().expect("fresh array");
            parallel::for_each_row_block_mut(dst, 1, 64, |start, block| {
                for (k, v) in block.iter_mut().enumerate() {
                    *v = $conv(start + k);
                }
            });
        }};
    }
    match dtype {
        DType::F64 => fill!(f64, |i: usize| (bits(key, i as u64) >> 11) as f64
            * (1.0 / (1u64 << 53) as f64)),
        DType::F32 => fill!(f32, f32_at),
        // Rounding could reach 1.0: clamp to the largest value below one.
        DType::F16 => fill!(f16, |i| f16::from_f32(f32_at(i))
            .min(f16::from_f32(1.0 - 1.0 / 2048.0))),
        DType::BF16 => fill!(bf16, |i| bf16::from_f32(f32_at(i))
            .min(bf16::from_f32(1.0 - 1.0 / 256.0))),
        d => unreachable!("random_uniform of {d} rejected at build"),
    }
    Ok(out)
}
