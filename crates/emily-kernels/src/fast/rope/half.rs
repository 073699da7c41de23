//! RoPE for f16/bf16 tensors: each row is widened to `f32`, rotated, and
//! rounded back once.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use super::rotate::rotate_one;
use super::{for_each_chunk, RopeParams};
use crate::fast::layout::SharedOut;

/// [`super::rope_f32`] for `f16` tensors (angles and rotation in `f32`/`f64`,
/// one rounding per output element).
///
/// # Panics
/// As [`super::rope_f32`].
pub fn rope_f16(x: &[f16], out: &mut [f16], params: &RopeParams<'_>) {
    rope_half(x, out, params)
}

/// [`super::rope_f32`] for `bf16` tensors (angles and rotation in `f32`/`f64`,
/// one rounding per output element).
///
/// # Panics
/// As [`super::rope_f32`].
pub fn rope_bf16(x: &[bf16], out: &mut [bf16], params: &RopeParams<'_>) {
    rope_half(x, out, params)
}

fn rope_half<T>(x: &[T], out: &mut [T], p: &RopeParams<'_>)
where
    T: Copy + Send + Sync,
    [T]: HalfFloatSliceExt,
{
    p.validate(x.len(), out.len());
    let dst = SharedOut(out.as_mut_ptr());
    let half = p.dims / 2;
    for_each_chunk(p, |b, t0, n, table| {
        let (mut src, mut rotated) = (vec![0.0f32; p.head_dim], vec![0.0f32; p.head_dim]);
        for h in 0..p.heads {
            for i in 0..n {
                let t = t0 + i;
                x[p.x_strides.offset(b, h, t)..][..p.head_dim].convert_to_f32_slice(&mut src);
                let (c, s) = table.row(i, half);
                rotate_one(&src, &mut rotated, c, s, p.dims, p.traditional);
                // SAFETY: `validate` checked that the output strides stay in
                // bounds and never alias; each (b, h, t) row belongs to one chunk.
                let o = unsafe { dst.slice(p.out_strides.offset(b, h, t), p.head_dim) };
                o.convert_from_f32_slice(&rotated);
            }
        }
    });
}
